// The thread pool's shared slots (who runs a job, since when) directly, without a node: a long
// job keeps its slot however many short jobs pass meanwhile, so its timeout still fires and its
// thread is the one terminated; the running count forgets jobs of a thread that died.

import assert from 'node:assert/strict';
import type { Job } from '../../src/jobs/types.js';
import { ThreadPool, type RunResult } from '../../src/queue/threads.js';
import { FIXTURE_WORKERS } from '../helpers/node.js';

function job(id: number, worker: string, args: Record<string, unknown>): Job {
  const now = new Date();
  return {
    id,
    args,
    attempt: 1,
    maxAttempts: 3,
    queue: 'slots',
    worker,
    tags: [],
    meta: {},
    insertedAt: now,
    scheduledAt: now,
  };
}

const slotsPool = (threads: number, concurrency: number, cancelGracePeriod: number) =>
  new ThreadPool({
    queue: 'slots',
    workersDir: FIXTURE_WORKERS,
    threads,
    concurrency,
    memoryLimitMb: null,
    cancelGracePeriod,
    capacity: 10,
  });

describe('thread pool slots', function () {
  let pool: ThreadPool | undefined;
  afterEach(async function () {
    await pool?.destroy();
    pool = undefined;
  });

  const run = (p: ThreadPool, j: Job, timeoutMs: number | null = null) =>
    new Promise<{
      result: RunResult;
      startedAt: number | null;
      performMs: number | null;
      at: number;
    }>((resolve) =>
      p.runMany([
        {
          job: j,
          key: `k.${j.id}`,
          timeoutMs,
          done: (result, startedAt, performMs) =>
            resolve({ result, startedAt, performMs, at: Date.now() }),
        },
      ]),
    );

  it("a job's perform time is timed in its thread, not by when its outcome arrives", async function () {
    pool = slotsPool(1, 2, 200);
    const slow = await run(pool, job(1, 'slow', { ms: 150 }));
    assert.equal(slow.result.kind, 'outcome');
    assert.ok(
      slow.performMs! >= 140 && slow.performMs! < 1000,
      `a 150 ms job took ${slow.performMs} ms`,
    );
    // The main thread is busy for 300 ms right after handing out a job that returns at once:
    // its outcome arrives late, but the job itself was short (the producer tells short jobs
    // apart by this time, to hand them out in larger batches).
    const quick = run(pool, job(2, 'ok', {}));
    const busyUntil = Date.now() + 300;
    while (Date.now() < busyUntil);
    const { result, startedAt, performMs, at } = await quick;
    assert.equal(result.kind, 'outcome');
    assert.ok(at - startedAt! >= 150, `the outcome arrived ${at - startedAt!} ms after its start`);
    assert.ok(performMs !== null && performMs < 100, `a no-op job took ${performMs} ms`);
  });

  it('a long job keeps its slot while many short ones pass: its timeout fires on time', async function () {
    pool = slotsPool(2, 4, 200);
    const began = Date.now();
    let settledAt = 0;
    const long = run(pool, job(1, 'slow', { ms: 4000 }), 500).then((ran) => {
      settledAt = Date.now();
      return ran;
    });
    // Short jobs keep passing (and taking slots) until the long one ends, for 3 s at most.
    for (let i = 0; settledAt === 0 && Date.now() - began < 3000; i++)
      await run(pool, job(100 + i, 'ok', {}));
    const { result } = await long;
    assert.equal(result.kind, 'timeout');
    assert.ok(settledAt - began < 1500, `timed out after ${settledAt - began} ms, not about 500`);
  });

  it('a job whose thread was terminated is no longer counted as running', async function () {
    pool = slotsPool(1, 2, 100);
    const stubborn = run(pool, job(1, 'stubborn', { ms: 60000 }), 200);
    const { result } = await stubborn;
    assert.equal(result.kind, 'timeout');
    assert.equal(pool.performingCount, 0);
  });
});
