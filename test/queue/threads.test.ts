import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { QuernNode } from '../../src/node/node.js';
import type { TelemetryEvents } from '../../src/telemetry/events.js';
import { cleanup, createSchema, eventually, type TestSchema } from '../helpers/db.js';
import { startNode } from '../helpers/node.js';

// Worker threads that die, jobs that must be stopped, and jobs that share their thread with them.
// One thread running several jobs at once (threads: 1, concurrency: 4) is the hard case: killing
// the thread kills every job on it, and only the one at fault may pay an attempt.
describe('worker thread deaths, timeouts and cancellation', function () {
  let db: TestSchema;
  let node: QuernNode | undefined;
  beforeEach(async function () {
    db = await createSchema(this.currentTest!.title);
  });
  afterEach(async function () {
    await node?.stop();
    node = undefined;
    await cleanup(this, db);
  });

  const shared = (extra: Record<string, unknown> = {}) => ({
    queues: { default: { limit: 4, threads: 1, concurrency: 4, ...extra } },
    plugins: { stager: { interval: 50 } },
  });

  async function row(id: number, states: string[]) {
    return eventually(
      async () => {
        const [r] = await db.query('SELECT * FROM jobs WHERE id = $1', [id]);
        return r && states.includes(r.state as string) ? r : null;
      },
      20000,
      `job ${id} to reach ${states.join('/')}`,
    );
  }

  async function bystanders(count: number, ms: number) {
    return db.client.insertMany(
      Array.from({ length: count }, () => ({ worker: 'slow', args: { ms } })),
    );
  }

  /** Bystanders started on the thread before the culprit is inserted. */
  async function startedOnThread(ids: number[]) {
    await eventually(async () => {
      const rows = await db.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM jobs WHERE id = ANY($1) AND state = 'executing'`,
        [ids],
      );
      return rows[0]!.n === ids.length;
    });
    await new Promise((r) => setTimeout(r, 100)); // the rows say fetched; give perform a moment to start
  }

  async function expectRefunded(ids: number[]) {
    for (const id of ids) {
      const r = await row(id, ['completed']);
      assert.equal(r.attempt, 1, `bystander ${id} kept its attempt`);
      assert.deepEqual(r.errors, [], `bystander ${id} has no error`);
    }
  }

  /** Counts job:start per job id: a bystander whose thread was killed starts twice. */
  function countStarts(target: QuernNode): Map<number, number> {
    const starts = new Map<number, number>();
    target.telemetry.on('job:start', (e) => starts.set(e.id, (starts.get(e.id) ?? 0) + 1));
    return starts;
  }

  const deaths: [string, Record<string, unknown>, RegExp][] = [
    ['process.exit() in a job', { how: 'exit' }, /process\.exit\(3\) was called/],
    [
      'an exception thrown outside perform (a timer)',
      { how: 'throw-later' },
      /uncaught exception outside perform: Error: thrown from a timer by job/,
    ],
  ];
  for (const [what, args, expected] of deaths) {
    it(`${what}: that job fails with a clear error, its thread neighbours run again without losing an attempt`, async function () {
      node = await startNode(db.schema, db.url, shared());
      const crashes: TelemetryEvents['pool:crash'][] = [];
      node.telemetry.on('pool:crash', (e) => crashes.push(e));
      const others = await bystanders(3, 600);
      await startedOnThread(others.map((j) => j.id));
      const culprit = await db.client.insert({ worker: 'crash', args, maxAttempts: 1 });
      const failed = await row(culprit.id, ['discarded']);
      const errors = failed.errors as { attempt: number; error: string }[];
      assert.equal(errors.length, 1);
      assert.match(errors[0]!.error, /^worker thread died: /);
      assert.match(errors[0]!.error, expected);
      await expectRefunded(others.map((j) => j.id));
      await eventually(() => Promise.resolve(crashes.length > 0));
      assert.equal(crashes.length, 1, 'one thread died once');
      assert.equal(crashes[0]!.culprit, culprit.id);
      assert.deepEqual(
        [...crashes[0]!.jobs].sort(),
        [culprit.id, ...others.map((j) => j.id)].sort(),
      );
      // the pool replaced its thread and keeps running jobs
      const after = await db.client.insert({ worker: 'ok', args: { value: 'after' } });
      assert.equal((await row(after.id, ['completed'])).result, 'after');
    });
  }

  it("a job that closes its thread's parentPort: the outcomes of its neighbours still arrive, none is left executing", async function () {
    node = await startNode(db.schema, db.url, shared());
    // One statement, so one fetch hands all four to the one thread: the neighbours finish
    // after the port is closed and before the closer does.
    const [closer, ...others] = await db.client.insertMany([
      { worker: 'crash', args: { how: 'close-port', delay: 20 } },
      ...Array.from({ length: 3 }, () => ({ worker: 'slow', args: { ms: 200 } })),
    ]);
    await row(closer!.id, ['completed']);
    await expectRefunded(others.map((j) => j.id));
    const after = await db.client.insert({ worker: 'ok', args: { value: 'after' } });
    assert.equal((await row(after.id, ['completed'])).result, 'after');
  });

  it('what job code posts on the parentPort of its thread is ignored: the job completes, its neighbours and the node run on', async function () {
    node = await startNode(db.schema, db.url, shared());
    // postMessage(null) threw in the node's listener ("Cannot read properties of null (reading
    // 'type')") and the node's whole process exited.
    const [poster, ...others] = await db.client.insertMany([
      { worker: 'crash', args: { how: 'post', delay: 20 } },
      ...Array.from({ length: 3 }, () => ({ worker: 'slow', args: { ms: 200 } })),
    ]);
    assert.equal((await row(poster!.id, ['completed'])).result, 'posted');
    for (const other of others) assert.equal((await row(other.id, ['completed'])).attempt, 1);
    const after = await db.client.insert({ worker: 'ok', args: { value: 'after' } });
    assert.equal((await row(after.id, ['completed'])).result, 'after');
  });

  it('work a job leaves behind (a timer) runs while its thread is idle, not only when the next job comes', async function () {
    const dir = mkdtempSync(path.join(tmpdir(), 'quern-thread-idle-'));
    const file = path.join(dir, 'fired');
    writeFileSync(
      path.join(dir, 'later.js'),
      [
        "import { appendFileSync } from 'node:fs';",
        'export default {',
        "  name: 'later',",
        '  perform(job) {',
        "    setTimeout(() => appendFileSync(job.args.file, 'fired'), 50);",
        '  },',
        '};',
      ].join('\n'),
    );
    try {
      node = await startNode(db.schema, db.url, { ...shared(), workers: dir });
      const job = await db.client.insert({ worker: 'later', args: { file } });
      await row(job.id, ['completed']);
      await eventually(() => Promise.resolve(existsSync(file)), 3000, 'the timer to fire');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a thread that dies with no job running (a timer throwing after its job returned) is reported, not passed over in silence', async function () {
    node = await startNode(db.schema, db.url, shared());
    const crashes: TelemetryEvents['pool:crash'][] = [];
    const restarts: TelemetryEvents['pool:restart'][] = [];
    node.telemetry.on('pool:crash', (e) => crashes.push(e));
    node.telemetry.on('pool:restart', (e) => restarts.push(e));
    const job = await db.client.insert({ worker: 'crash', args: { how: 'throw-after-return' } });
    await row(job.id, ['completed']);
    await eventually(() => Promise.resolve(crashes.length > 0), 5000, 'a pool:crash event');
    assert.equal(crashes.length, 1);
    assert.match(
      crashes[0]!.error,
      /^worker thread died: uncaught exception outside perform: Error: thrown from a timer after job \d+ returned/,
    );
    assert.equal(crashes[0]!.culprit, job.id);
    assert.deepEqual(crashes[0]!.jobs, []);
    assert.equal(restarts.length, 1, 'counted against the restart budget');
    const after = await db.client.insert({ worker: 'ok', args: { value: 'after' } });
    assert.equal((await row(after.id, ['completed'])).result, 'after');
  });

  it('a job that finished in the turn its neighbour killed the thread keeps its outcome: not run again', async function () {
    node = await startNode(db.schema, db.url, shared());
    const starts = countStarts(node);
    const crashes: TelemetryEvents['pool:crash'][] = [];
    node.telemetry.on('pool:crash', (e) => crashes.push(e));
    // One statement, one notification, one claim: one batch on the one thread. 'ok' finishes
    // first, and its outcome waits for the end of the turn to go back with any others; the crash
    // comes in that turn.
    const [done, culprit] = await db.client.insertMany([
      { worker: 'ok', args: { value: 'once' } },
      { worker: 'crash', args: { how: 'throw-at-once' }, maxAttempts: 1 },
    ]);
    await row(culprit!.id, ['discarded']);
    const finished = await row(done!.id, ['completed']);
    await eventually(() => Promise.resolve(crashes.length > 0));
    assert.equal(finished.attempt, 1);
    assert.deepEqual(finished.errors, [], 'not charged for the crash');
    assert.equal(finished.result, 'once');
    assert.equal(starts.get(done!.id), 1, 'the finished job ran once');
  });

  it('a job past the memory limit kills its thread: a failed attempt naming the limit, retried by the normal rules', async function () {
    node = await startNode(db.schema, db.url, shared({ memoryLimitMb: 32 }));
    const job = await db.client.insert({
      worker: 'crash',
      args: { how: 'memory' },
      maxAttempts: 2,
    });
    const done = await row(job.id, ['discarded']);
    const errors = done.errors as { attempt: number; error: string }[];
    assert.deepEqual(
      errors.map((e) => e.attempt),
      [1, 2],
      'retried once, then discarded',
    );
    assert.match(errors[0]!.error, /worker thread died: .*memory limit.*memoryLimitMb 32/);
    const after = await db.client.insert({ worker: 'ok', args: { value: 1 } });
    await row(after.id, ['completed']);
  });

  it('a thread that runs out of memory loading the workers, before any job started: reported and counted, its jobs given back', async function () {
    const dir = mkdtempSync(path.join(tmpdir(), 'quern-thread-oom-'));
    writeFileSync(
      path.join(dir, 'heavy.js'),
      [
        "import { isMainThread } from 'node:worker_threads';",
        'const table = [];',
        "if (!isMainThread) for (let i = 0; ; i++) table.push({ i, s: 'x' + i });",
        "export default { name: 'heavy', perform: () => 'ok' };",
      ].join('\n'),
    );
    try {
      node = await startNode(db.schema, db.url, {
        ...shared({ memoryLimitMb: 32 }),
        workers: dir,
        restartBudget: { restarts: 1, seconds: 60, backoff: 60000 },
      });
      const crashes: TelemetryEvents['pool:crash'][] = [];
      const crashed: TelemetryEvents['queue:crashed'][] = [];
      node.telemetry.on('pool:crash', (e) => crashes.push(e));
      node.telemetry.on('queue:crashed', (e) => crashed.push(e));
      const job = await db.client.insert({ worker: 'heavy' });
      await eventually(() => Promise.resolve(crashed.length > 0), 15000, 'the queue to crash');
      assert.match(
        crashes[0]!.error,
        /^worker thread died before running a job: .*out of memory.*\(memoryLimitMb 32\)/i,
      );
      assert.equal(crashes[0]!.culprit, null);
      await eventually(async () => {
        const [r] = await db.query('SELECT * FROM jobs WHERE id = $1', [job.id]);
        return r?.state === 'available' ? r : null;
      });
      const [r] = await db.query('SELECT * FROM jobs WHERE id = $1', [job.id]);
      assert.deepEqual(r!.errors, [], 'it never ran: no attempt charged');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('an infinite loop past its timeout: signal, then the thread is terminated; neighbours keep their attempt', async function () {
    node = await startNode(db.schema, db.url, shared());
    const starts = countStarts(node);
    const others = await bystanders(2, 1500);
    await startedOnThread(others.map((j) => j.id));
    const crashes: unknown[] = [];
    node.telemetry.on('pool:crash', (e) => crashes.push(e));
    const looping = await db.client.insert({
      worker: 'stubborn',
      args: { ms: 600000, timeout: 200 },
      maxAttempts: 1,
    });
    const started = Date.now();
    const failed = await row(looping.id, ['discarded']);
    const elapsed = Date.now() - started;
    assert.match(JSON.stringify(failed.errors), /timeout: job timed out after 200 ms/);
    // timeout (200 ms) + cancelGracePeriod (500 ms in tests): not the 600 s the loop wanted
    assert.ok(elapsed < 5000, `stopped after ${elapsed} ms`);
    await expectRefunded(others.map((j) => j.id));
    for (const other of others)
      assert.equal(starts.get(other.id), 2, 'interrupted, then run again');
    assert.equal(crashes.length, 0, 'a thread we terminated is not a crash');
  });

  it('a cancelled running job that ignores its signal is stopped by terminating its thread', async function () {
    node = await startNode(db.schema, db.url, shared());
    const starts = countStarts(node);
    const others = await bystanders(2, 1500);
    const looping = await db.client.insert({ worker: 'stubborn', args: { ms: 600000 } });
    await startedOnThread([...others.map((j) => j.id), looping.id]);
    await db.client.cancel(looping.id);
    const cancelled = await row(looping.id, ['cancelled']);
    assert.match(JSON.stringify(cancelled.errors), /cancelled/);
    await expectRefunded(others.map((j) => j.id));
    for (const other of others)
      assert.equal(starts.get(other.id), 2, 'interrupted, then run again');
  });

  it('a cooperative job honours the signal within the grace period: the thread is left alone', async function () {
    node = await startNode(db.schema, db.url, shared());
    const starts = countStarts(node);
    const others = await bystanders(2, 1500);
    const job = await db.client.insert({
      worker: 'slow',
      args: { ms: 600000, timeout: 200 },
      maxAttempts: 1,
    });
    await row(job.id, ['discarded']);
    // the neighbours were never interrupted: they finished their first run
    for (const other of others) {
      const r = await row(other.id, ['completed']);
      assert.equal(r.attempt, 1);
      assert.equal(starts.get(other.id), 1, 'ran once, never interrupted');
    }
  });

  it('a worker module that throws on import only in a worker thread: its jobs fail with why, never given back in a loop', async function () {
    const dir = mkdtempSync(path.join(tmpdir(), 'quern-thread-import-'));
    writeFileSync(
      path.join(dir, 'main-only.js'),
      [
        "import { isMainThread } from 'node:worker_threads';",
        "if (!isMainThread) throw new Error('not in a worker thread');",
        "export default { name: 'main-only', perform: () => 'ok' };",
      ].join('\n'),
    );
    try {
      node = await startNode(db.schema, db.url, { ...shared(), workers: dir });
      const stops: TelemetryEvents['job:stop'][] = [];
      node.telemetry.on('job:stop', (e) => stops.push(e));
      const job = await db.client.insert({ worker: 'main-only', maxAttempts: 1 });
      await eventually(() => Promise.resolve(stops.length > 0), 10000, 'the job to stop');
      await new Promise((r) => setTimeout(r, 300)); // a job given back is fetched again at once
      assert.deepEqual(
        stops.map((e) => e.state),
        ['discarded'],
        'one attempt, failed: not given back unstarted',
      );
      const r = await row(job.id, ['discarded']);
      const errors = r.errors as { error: string }[];
      assert.match(
        errors[0]!.error,
        /^the worker thread could not load the workers: .*main-only\.js: cannot be loaded: not in a worker thread/,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('the thread entry point is a CommonJS file, so piscina require()s it without touching an ES module', function () {
    // piscina require()s the entry first; Node 20's require() of an ES module aborted the whole
    // process from inside V8 (see src/thread/entry.cts). In a process of its own (the runner it
    // imports takes over process.exit of the thread it runs in): require() gives the handler.
    const entry = fileURLToPath(new URL('../../src/thread/entry.cjs', import.meta.url));
    assert.ok(entry.endsWith('.cjs'));
    const child = spawnSync(
      process.execPath,
      ['-e', `process.stdout.write(typeof require(${JSON.stringify(entry)}))`],
      { encoding: 'utf8' },
    );
    assert.equal(child.status, 0, child.stderr);
    assert.equal(child.stdout, 'function');
  });
});
