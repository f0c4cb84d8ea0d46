// The look-ahead (`prefetch`): jobs claimed ahead of free slots never run past the limit, and the
// ones that never started go back (available, attempt refunded) on shutdown, on pause and when
// cancelled, so a claimed-ahead job is never lost or charged an attempt it did not use.

import assert from 'node:assert/strict';
import type { QuernNode } from '../../src/node/node.js';
import { cleanup, createSchema, eventually, type TestSchema } from '../helpers/db.js';
import { startNode } from '../helpers/node.js';

describe('queue look-ahead (prefetch)', function () {
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

  const start = (prefetch: number, limit: number, extra: Record<string, unknown> = {}) =>
    startNode(db.schema, db.url, {
      queues: { default: { limit, prefetch } },
      shutdownGracePeriod: 300,
      ...extra,
    });

  async function states(): Promise<Record<string, number>> {
    const rows = await db.query<{ state: string; n: number }>(
      'SELECT state::text, count(*)::int AS n FROM jobs GROUP BY state',
    );
    return Object.fromEntries(rows.map((r) => [r.state, r.n]));
  }

  it('claims ahead but runs no more than the limit, and completes every job once', async function () {
    node = await start(10, 2);
    // job:stop comes after the outcome is written, later than the slot frees: ask the producer.
    const producer = node.supervisors.get('default')!.producer;
    let most = 0;
    node.telemetry.on('job:start', () => (most = Math.max(most, producer.runningCount)));
    await db.client.insertMany(
      Array.from({ length: 60 }, (_, i) => ({ worker: 'slow', args: { ms: 5, i } })),
    );
    await eventually(async () => (await states()).completed === 60, 20000, '60 completed');
    const rows = await db.query<{ attempt: number }>('SELECT attempt FROM jobs');
    assert.ok(rows.every((r) => r.attempt === 1));
    assert.ok(most <= 2, `at most 2 running at once, saw ${most}`);
  });

  it('from a standstill, claims what can start at once first, then the rest of the look-ahead', async function () {
    // 60 jobs wait before the node starts. Claiming limit + prefetch (42) in one went had the
    // queue wait for all of it; the first claim is what starts at once (the limit, 2, and three
    // limits handed out ahead while job times are unknown, 6), the next the rest of the 42.
    await db.client.insertMany(
      Array.from({ length: 60 }, (_, i) => ({ worker: 'slow', args: { ms: 20, i } })),
    );
    node = await start(40, 2);
    await eventually(async () => (await states()).completed === 60, 20000, '60 completed');
    // attempted_by[2] is the claim's token (node run id and claim number) and the job's id.
    const claims = await db.query<{ claim: number; n: number }>(
      `SELECT substring(attempted_by[2] from '\\.(\\d+)\\.\\d+$')::int AS claim, count(*)::int AS n
       FROM jobs GROUP BY 1 ORDER BY 1`,
    );
    assert.deepEqual(
      claims.slice(0, 2).map((c) => c.n),
      [8, 34],
      `claim sizes in order: ${claims.map((c) => c.n).join(', ')}`,
    );
    const rows = await db.query<{ attempt: number }>('SELECT attempt FROM jobs');
    assert.ok(rows.every((r) => r.attempt === 1));
  });

  it('gives back the claimed-ahead jobs on shutdown with their attempt refunded', async function () {
    node = await start(5, 1);
    await db.client.insertMany(
      Array.from({ length: 6 }, (_, i) => ({ worker: 'slow', args: { ms: 60000, i } })),
    );
    await eventually(async () => (await states()).executing === 6, 10000, '6 claimed');
    await node.stop();
    node = undefined;
    const rows = await db.query<{ state: string; attempt: number; errors: unknown[] }>(
      'SELECT state::text, attempt, errors FROM jobs',
    );
    assert.equal(rows.length, 6);
    for (const row of rows) {
      assert.equal(row.state, 'available');
      assert.equal(row.attempt, 0);
      assert.deepEqual(row.errors, []);
    }
  });

  it('gives back the claimed-ahead jobs when the queue is paused', async function () {
    node = await start(5, 1);
    await db.client.insertMany(
      Array.from({ length: 6 }, (_, i) => ({ worker: 'slow', args: { ms: 60000, i } })),
    );
    await eventually(async () => (await states()).executing === 6, 10000, '6 claimed');
    // Paused once the first job is in its perform: the five others, claimed ahead (waiting here
    // or on the thread for a slot), go back; a job that has not begun goes back too.
    const producer = node.supervisors.get('default')!.producer;
    await eventually(() => Promise.resolve(producer.runningCount === 1), 10000, 'the first runs');
    await db.client.pauseQueue('default');
    const after = await eventually(
      async () => {
        const s = await states();
        return s.available === 5 && s.executing === 1 ? s : null;
      },
      10000,
      '5 given back, 1 still running',
    );
    assert.deepEqual(after, { available: 5, executing: 1 });
    const back = await db.query<{ attempt: number }>(
      `SELECT attempt FROM jobs WHERE state = 'available'`,
    );
    assert.ok(back.every((r) => r.attempt === 0));
  });

  it('cancels a claimed-ahead job without running it', async function () {
    node = await start(5, 1);
    const jobs = await db.client.insertMany(
      Array.from({ length: 3 }, (_, i) => ({ worker: 'slow', args: { ms: 60000, i } })),
    );
    await eventually(async () => (await states()).executing === 3, 10000, '3 claimed');
    const producer = node.supervisors.get('default')!.producer;
    await eventually(() => Promise.resolve(producer.runningCount === 1), 10000, 'the first runs');
    const last = jobs[2]!;
    const told = node.telemetry.waitFor('job:cancel', (e) => e.id === last.id);
    const stopped = node.telemetry.waitFor('job:stop', (e) => e.id === last.id);
    const result = await db.client.cancel(last.id);
    assert.equal(result.after, 'cancelled');
    const cancel = await told;
    // The node found it among the claimed-ahead jobs (here, or waiting on its thread for a
    // slot): it is dropped there, never started.
    assert.equal(cancel.running, true);
    assert.equal((await stopped).state, 'cancelled');
    const [row] = await db.query<{ state: string; attempt: number }>(
      'SELECT state::text, attempt FROM jobs WHERE id = $1',
      [last.id],
    );
    assert.equal(row!.state, 'cancelled');
    assert.ok(!producer.runningIds().includes(last.id));
    assert.equal(producer.runningCount, 1, 'only the first job is in its perform');
  });

  it('a job waiting on its thread for a slot: its timeout and duration count from its perform', async function () {
    node = await start(5, 1);
    const stops = new Map<number, { state: string; durationMs: number }>();
    node.telemetry.on('job:stop', (e) => stops.set(e.id, e));
    // Three jobs of 400 ms with a 700 ms timeout, one at a time: the last waits ~800 ms for its
    // slot, longer than its timeout, and must still complete.
    const jobs = await db.client.insertMany(
      Array.from({ length: 3 }, (_, i) => ({ worker: 'slow', args: { ms: 400, timeout: 700, i } })),
    );
    await eventually(async () => (await states()).completed === 3, 15000, '3 completed');
    await eventually(() => Promise.resolve(stops.size === 3), 5000, 'three job:stop events');
    for (const job of jobs) {
      const stop = stops.get(job.id)!;
      assert.equal(stop.state, 'completed');
      assert.ok(
        stop.durationMs >= 350 && stop.durationMs < 700,
        `job ${job.id} ran ${stop.durationMs} ms, its own perform only`,
      );
    }
  });
});
