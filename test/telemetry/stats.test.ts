import assert from 'node:assert/strict';
import type { QuernNode } from '../../src/node/node.js';
import { cleanup, createSchema, eventually, type TestSchema } from '../helpers/db.js';
import { runCli, startNode, writeConfig } from '../helpers/node.js';

describe('historic metrics (quern.stats and cluster.js stats)', function () {
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

  /**
   * Retained rows with known times. Completed jobs of worker a: 20 in the last minute with queue
   * times 10..200 ms and run times 100..2000 ms, 5 more half an hour ago, 3 two hours ago (outside
   * every window). Worker b: one discarded 10 s ago, one retryable whose last error was 20 minutes
   * ago, one discarded two hours ago; plus waiting jobs.
   */
  async function seed(): Promise<void> {
    await db.query(`
      INSERT INTO jobs (state, queue, worker, attempt, scheduled_at, attempted_at, completed_at)
      SELECT 'completed', 'alpha', 'a', 1,
             now() - interval '30 s' - (i * 10) * interval '1 ms',
             now() - interval '30 s',
             now() - interval '30 s' + (i * 100) * interval '1 ms'
      FROM generate_series(1, 20) i`);
    await db.query(`
      INSERT INTO jobs (state, queue, worker, attempt, scheduled_at, attempted_at, completed_at)
      SELECT 'completed', 'alpha', 'a', 1, now() - interval '30 min', now() - interval '30 min',
             now() - interval '30 min' + interval '50 ms'
      FROM generate_series(1, 5)`);
    await db.query(`
      INSERT INTO jobs (state, queue, worker, attempt, scheduled_at, attempted_at, completed_at)
      SELECT 'completed', 'alpha', 'a', 1, now() - interval '2 h', now() - interval '2 h',
             now() - interval '2 h'
      FROM generate_series(1, 3)`);
    await db.query(`
      INSERT INTO jobs (state, queue, worker, attempt, max_attempts, scheduled_at, attempted_at, discarded_at, errors)
      VALUES
        ('discarded', 'beta', 'b', 1, 1, now() - interval '11 s', now() - interval '11 s', now() - interval '10 s', '[]'),
        ('discarded', 'beta', 'b', 1, 1, now() - interval '2 h', now() - interval '2 h', now() - interval '2 h', '[]')`);
    await db.query(`
      INSERT INTO jobs (state, queue, worker, attempt, scheduled_at, attempted_at, errors)
      VALUES ('retryable', 'beta', 'b', 1, now() + interval '1 h', now() - interval '20 min',
              jsonb_build_array(jsonb_build_object('at', now() - interval '20 min', 'attempt', 1, 'error', 'x')))`);
    await db.query(`
      INSERT INTO jobs (state, queue, worker, scheduled_at)
      VALUES ('available', 'alpha', 'b', now()), ('scheduled', 'beta', 'a', now() + interval '1 h')`);
  }

  it('counts by state, completions and failures in the last minute and hour, p50/p95 times', async function () {
    await seed();
    const stats = await db.client.stats();
    assert.deepEqual(Object.keys(stats.queues), ['alpha', 'beta']);
    assert.deepEqual(Object.keys(stats.workers), ['a', 'b']);

    const alpha = stats.queues.alpha!;
    assert.equal(alpha.counts.completed, 28);
    assert.equal(alpha.counts.available, 1);
    assert.equal(alpha.counts.discarded, 0);
    assert.deepEqual(alpha.completed, { lastMinute: 20, lastHour: 25 });
    assert.deepEqual(alpha.failed, { lastMinute: 0, lastHour: 0 });

    const beta = stats.queues.beta!;
    assert.deepEqual(beta.counts, {
      scheduled: 1,
      available: 0,
      executing: 0,
      retryable: 1,
      completed: 0,
      discarded: 2,
      cancelled: 0,
    });
    assert.deepEqual(beta.failed, { lastMinute: 1, lastHour: 2 });
    assert.deepEqual(beta.completed, { lastMinute: 0, lastHour: 0 });

    const a = stats.workers.a!;
    assert.equal(a.counts.completed, 28);
    assert.equal(a.counts.scheduled, 1);
    // 25 jobs in the hour: 20 with queue times 10..200 ms and 5 with 0 ms.
    // Continuous percentiles over [0 x5, 10, 20, ..., 200]: p50 is the 13th value (80 ms),
    // p95 sits 0.8 of the way from the 23rd (180) to the 24th (190): 188 ms.
    assert.deepEqual(a.queueTime, { p50: 80, p95: 188 });
    // Run times [50 x5, 100, 200, ..., 2000]: p50 = 800 ms, p95 = 1880 ms.
    assert.deepEqual(a.runTime, { p50: 800, p95: 1880 });

    const b = stats.workers.b!;
    assert.deepEqual(b.failed, { lastMinute: 1, lastHour: 2 });
    // Only the discarded job of the last hour has a run; the retryable one waits for its next.
    assert.deepEqual(b.runTime, { p50: 1000, p95: 1000 });
    assert.deepEqual(b.queueTime, { p50: 0, p95: 0 });
  });

  it('reads what a running node leaves behind', async function () {
    node = await startNode(db.schema, db.url);
    const jobs = await db.client.insertMany([
      { worker: 'ok', args: { value: 1 } },
      { worker: 'ok', args: { value: 2 } },
      { worker: 'returns', args: { throw: 'no' }, maxAttempts: 1 },
    ]);
    await eventually(async () => {
      const rows = await db.query(
        `SELECT 1 FROM jobs WHERE id = ANY($1) AND state IN ('completed', 'discarded')`,
        [jobs.map((j) => j.id)],
      );
      return rows.length === 3;
    });
    const stats = await db.client.stats();
    assert.deepEqual(stats.workers.ok!.completed, { lastMinute: 2, lastHour: 2 });
    assert.deepEqual(stats.workers.returns!.failed, { lastMinute: 1, lastHour: 1 });
    assert.deepEqual(stats.queues.default!.completed, { lastMinute: 2, lastHour: 2 });
    assert.equal(stats.queues.default!.counts.discarded, 1);
    assert.ok(stats.workers.ok!.runTime.p95! >= stats.workers.ok!.runTime.p50!);
    assert.ok(stats.workers.ok!.queueTime.p50! >= 0);
  });

  it('is empty, not an error, on an empty table', async function () {
    const stats = await db.client.stats();
    assert.deepEqual(stats.queues, {});
    assert.deepEqual(stats.workers, {});
  });

  it('`cluster.js stats` prints per-queue and per-worker tables, or JSON', async function () {
    await seed();
    const config = writeConfig({ schema: db.schema, database: { url: db.url } });
    const text = await runCli(['stats', '--config', config]);
    assert.equal(text.code, 0, text.stderr);
    const lines = text.stdout.split('\n');
    assert.match(
      lines[0]!,
      /^QUEUE\s+AVAIL\s+SCHED\s+EXEC\s+RETRY\s+DONE\s+DISCARD\s+CANCEL\s+OK\/1M/,
    );
    assert.match(text.stdout, /^alpha\s+1\s+0\s+0\s+0\s+28\s+0\s+0\s+20\s+25\s+0\s+0\s/m);
    assert.match(
      text.stdout,
      /^a\s+0\s+1\s+0\s+0\s+28\s+0\s+0\s+20\s+25\s+0\s+0\s+80ms\s+188ms\s+800ms\s+1\.9s$/m,
    );
    const json = await runCli(['stats', '--json', '--config', config]);
    assert.equal(json.code, 0, json.stderr);
    const parsed = JSON.parse(json.stdout) as { workers: Record<string, { failed: unknown }> };
    assert.deepEqual(parsed.workers.b!.failed, { lastMinute: 1, lastHour: 2 });
    const bad = await runCli(['stats', 'extra', '--config', config]);
    assert.equal(bad.code, 2);
  });
});
