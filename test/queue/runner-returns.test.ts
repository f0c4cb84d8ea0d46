// The worker thread's per-job path (src/thread/runner.ts) against what perform may return, run
// on a real pool without a node: each job's outcome comes back once, its slot is given back,
// and a hostile value fails that job only, never its thread or the jobs beside it.

import assert from 'node:assert/strict';
import type { Job } from '../../src/jobs/types.js';
import { ThreadPool, type RunResult, type ThreadDeath } from '../../src/queue/threads.js';
import { FIXTURE_WORKERS } from '../helpers/node.js';

function job(id: number, args: Record<string, unknown>, worker = 'thenables'): Job {
  const now = new Date();
  return {
    id,
    args,
    attempt: 1,
    maxAttempts: 1,
    queue: 'runner',
    worker,
    tags: [],
    meta: {},
    insertedAt: now,
    scheduledAt: now,
  };
}

/** Hands the jobs to the pool in one batch (one piscina task); resolves with each one's result. */
function batch(pool: ThreadPool, jobs: Job[], timeoutMs: number | null = null) {
  const entries: Parameters<ThreadPool['runMany']>[0] = [];
  const results = jobs.map(
    (j) =>
      new Promise<RunResult>((resolve) => {
        entries.push({ job: j, key: `k.${j.id}`, timeoutMs, done: (result) => resolve(result) });
      }),
  );
  pool.runMany(entries, jobs.length);
  return Promise.all(results);
}

describe('the worker thread runs each job to one outcome, whatever perform returns', function () {
  let pool: ThreadPool | undefined;
  let deaths: ThreadDeath[] = [];
  afterEach(async function () {
    await pool?.destroy();
    pool = undefined;
    deaths = [];
  });

  function start(concurrency: number): ThreadPool {
    pool = new ThreadPool({
      queue: 'runner',
      workersDir: FIXTURE_WORKERS,
      threads: 1,
      concurrency,
      memoryLimitMb: null,
      cancelGracePeriod: 200,
      capacity: 20,
      onThreadDeath: (death) => deaths.push(death),
    });
    return pool;
  }

  const outcome = (result: RunResult) =>
    result.kind === 'outcome'
      ? result.outcome
      : assert.fail(`not an outcome: ${JSON.stringify(result)}`);

  const modes: [string, RegExp | null][] = [
    ['own-then-throws', null],
    ['own-then-silent', null],
    ['then-throws', /the then refuses/],
    ['then-getter-throws', /the then getter refuses/],
    ['resolve-reject', null],
    ['resolve-twice', null],
    ['constructor-throws', /the constructor getter refuses/],
    ['reject-hostile', /could not read/],
    ['proxy', /the get trap refuses/],
    ['sync-throw', /thrown at once/],
    ['rejected', /rejected/],
    // An unawaited promise in the value: stored as {}, with a warning; a rejected one killed the
    // thread (its rejection left unhandled).
    ['ok-rejected', null],
    ['async-ok-rejected', null],
    [
      'error-rejected',
      /^perform returned \{ error: a promise \} instead of its value \(a missing await\?\)$/,
    ],
    [
      'throws-rejected',
      /^perform threw a promise instead of an error \(a missing await\?\); it rejected with Error: the thrown promise rejects/,
    ],
    ['throws-pending', /^perform threw a promise .*; it had not settled 100 ms later$/],
    [
      'throws-thenable',
      /^perform threw a promise .*; it rejected with Error: the thrown thenable rejects/,
    ],
    [
      'rejects-with-rejected',
      /^perform rejected with a promise .*; it rejected with Error: the inner promise rejects/,
    ],
  ];
  for (const [mode, error] of modes) {
    it(`${mode}: settled as await would, and the thread's one slot is free for the next job`, async function () {
      const p = start(1);
      const [first] = await batch(p, [job(1, { mode })], 2000);
      const result = outcome(first!);
      if (error) {
        assert.equal(result.kind, 'failed', JSON.stringify(result));
        assert.match((result as { error: string }).error, error);
      } else {
        assert.equal(result.kind, 'completed', JSON.stringify(result));
      }
      const [next] = await batch(p, [job(2, {})], 2000);
      assert.deepEqual(outcome(next!), { kind: 'completed', result: 'fine', warning: null });
      assert.deepEqual(deaths, [], 'no thread died');
      assert.equal(p.performingCount, 0);
    });
  }

  it('a job that waited for its slot and returned a promise with its own then: no thread death, no neighbour charged', async function () {
    const p = start(1);
    const jobs = [job(1, { ms: 50 }), job(2, { mode: 'own-then-throws' }), job(3, {})];
    const results = await batch(p, jobs, 3000);
    assert.deepEqual(deaths, [], 'no thread died');
    assert.deepEqual(
      results.map((r) => outcome(r).kind),
      ['completed', 'completed', 'completed'],
    );
  });

  it('every hostile shape in one batch on one thread, waiting for slots: each job alone pays', async function () {
    const p = start(2);
    const jobs = [
      ...modes.map(([mode], i) => job(10 + i, { mode })),
      job(100, { ms: 50 }),
      job(101, {}),
    ];
    const results = await batch(p, jobs, 3000);
    assert.deepEqual(deaths, [], 'no thread died');
    for (const [i, r] of results.entries()) {
      assert.equal(r.kind, 'outcome', `job ${jobs[i]!.id}: ${JSON.stringify(r)}`);
    }
    assert.deepEqual(outcome(results.at(-1)!), {
      kind: 'completed',
      result: 'fine',
      warning: null,
    });
    assert.equal(p.performingCount, 0);
  });
});

describe('a thread killed by a job names that job', function () {
  let pool: ThreadPool | undefined;
  afterEach(async function () {
    await pool?.destroy();
    pool = undefined;
  });
  for (const mode of [
    'then-exits',
    'then-timer-throws',
    'timer-throws',
    'exits-later',
    'unhandled',
  ]) {
    it(`${mode}: the culprit is named, its neighbours are interrupted`, async function () {
      const deaths: ThreadDeath[] = [];
      pool = new ThreadPool({
        queue: 'runner',
        workersDir: FIXTURE_WORKERS,
        threads: 1,
        concurrency: 3,
        memoryLimitMb: null,
        cancelGracePeriod: 200,
        capacity: 20,
        onThreadDeath: (death) => deaths.push(death),
      });
      const results = await batch(
        pool,
        [job(1, { ms: 2000 }), job(2, { mode }), job(3, { ms: 2000 })],
        5000,
      );
      assert.equal(results[1]!.kind, 'crashed', JSON.stringify(results[1]));
      assert.deepEqual([results[0]!.kind, results[2]!.kind], ['interrupted', 'interrupted']);
      await new Promise((resolve) => setTimeout(resolve, 50)); // onThreadDeath comes a turn later
      assert.equal(deaths.length, 1);
      assert.equal(deaths[0]!.culprit, 2);
    });
  }
});

describe('jobs waiting on their thread for a slot', function () {
  let pool: ThreadPool | undefined;
  let deaths: ThreadDeath[] = [];
  beforeEach(function () {
    deaths = [];
    pool = new ThreadPool({
      queue: 'runner',
      workersDir: FIXTURE_WORKERS,
      threads: 1,
      concurrency: 1,
      memoryLimitMb: null,
      cancelGracePeriod: 2000,
      capacity: 20,
      onThreadDeath: (death) => deaths.push(death),
    });
  });
  afterEach(async function () {
    await pool?.destroy();
    pool = undefined;
  });

  it('one cancelled while it waits ends without running; the slot count stays right', async function () {
    const p = pool!;
    const running = batch(p, [job(1, { ms: 300 }), job(2, { mode: 'sync-throw' }), job(3, {})]);
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(p.stop('k.2', 'cancel', 'cancelled by a test'), true);
    const results = await running;
    assert.deepEqual(
      results.map((r) => r.kind),
      ['outcome', 'cancelled', 'outcome'],
    );
    // One slot, given back once per job that ran: two jobs at once would each take 200 ms.
    const began = Date.now();
    const again = await batch(p, [job(4, { ms: 200 }), job(5, { ms: 200 })]);
    assert.deepEqual(
      again.map((r) => r.kind),
      ['outcome', 'outcome'],
    );
    assert.ok(
      Date.now() - began >= 380,
      `two 200 ms jobs on one slot took ${Date.now() - began} ms`,
    );
    assert.deepEqual(deaths, []);
  });

  it('given back by a release while they wait: unstarted, and later jobs still get the slot', async function () {
    const p = pool!;
    const running = batch(p, [job(1, { ms: 300 }), job(2, {}), job(3, { mode: 'resolve-twice' })]);
    await new Promise((resolve) => setTimeout(resolve, 100));
    p.releaseUnstarted();
    const results = await running;
    assert.deepEqual(
      results.map((r) => r.kind),
      ['outcome', 'interrupted', 'interrupted'],
    );
    const [next] = await batch(p, [job(4, { mode: 'resolve-twice' })]);
    assert.deepEqual(next, {
      kind: 'outcome',
      outcome: { kind: 'completed', result: 'first', warning: null },
    });
    assert.deepEqual(deaths, []);
  });
});
