// Outcomes are written in batches, and speed must not cost safety: a job is reported finished
// (job:stop) only once its row says so, a shutdown waits for the batched writes, and a node
// stopped in the middle of a drain leaves no row executing. The writes are held back with a
// gate (sinon, injecting a slow database), so what the node reports meanwhile is seen.

import assert from 'node:assert/strict';
import sinon from 'sinon';
import type { QuernNode } from '../../src/node/node.js';
import { cleanup, createSchema, eventually, type TestSchema } from '../helpers/db.js';
import {
  nodeConfig,
  spawnCluster,
  startNode,
  writeConfig,
  type SpawnedNode,
} from '../helpers/node.js';

describe('outcomes are written before they are reported', function () {
  let db: TestSchema;
  let node: QuernNode | undefined;
  /** Opens the gate of the current test's writes, so that a failed test's node can stop. */
  let openGate: () => void = () => undefined;
  let spawned: SpawnedNode | undefined;
  beforeEach(async function () {
    db = await createSchema(this.currentTest!.title);
  });
  afterEach(async function () {
    openGate();
    sinon.restore();
    await node?.stop();
    node = undefined;
    if (spawned && spawned.child.exitCode === null && spawned.child.signalCode === null) {
      spawned.child.kill('SIGKILL');
      await spawned.exited;
    }
    spawned = undefined;
    await cleanup(this, db);
  });

  async function states(): Promise<Record<string, number>> {
    const rows = await db.query<{ state: string; n: number }>(
      'SELECT state::text, count(*)::int AS n FROM jobs GROUP BY state',
    );
    return Object.fromEntries(rows.map((r) => [r.state, r.n]));
  }

  /**
   * Starts a node whose outcome writes wait until `open` is called, and runs 30 jobs on it: once
   * this resolves, every job has left its thread and its outcome is held by the writer.
   */
  async function thirtyHeld(): Promise<{ node: QuernNode; open: () => void; stops: number[] }> {
    const started = await startNode(db.schema, db.url, {
      queues: { default: { limit: 10, prefetch: 40 } },
    });
    node = started;
    let open!: () => void;
    const gate = new Promise<void>((resolve) => (open = resolve));
    openGate = open;
    const record = started.jobs.recordOutcomes.bind(started.jobs);
    sinon.stub(started.jobs, 'recordOutcomes').callsFake(async (...args) => {
      await gate;
      return record(...args);
    });
    const stops: number[] = [];
    started.telemetry.on('job:stop', (event) => stops.push(event.id));
    let starts = 0;
    started.telemetry.on('job:start', () => starts++);
    await db.client.insertMany(
      Array.from({ length: 30 }, (_, i) => ({ worker: 'ok', args: { value: i } })),
    );
    const producer = started.supervisors.get('default')!.producer;
    await eventually(
      () => Promise.resolve(starts === 30 && producer.runningJobs().length === 0),
      10000,
      '30 jobs started and returned',
    );
    return { node: started, open, stops };
  }

  it('job:stop comes only once the row says the job finished', async function () {
    const gated = await thirtyHeld();
    // The writes are held: nothing reported, every row still executing.
    assert.deepEqual(gated.stops, []);
    assert.deepEqual(await states(), { executing: 30 });
    gated.open();
    await eventually(() => Promise.resolve(gated.stops.length === 30), 10000, '30 job:stop');
    assert.deepEqual(await states(), { completed: 30 });
  });

  it('a graceful stop waits for the outcome writes held back, and writes them all', async function () {
    const gated = await thirtyHeld();
    let stopped = false;
    const stopping = gated.node.stop().then(() => (stopped = true));
    // A stop that did not wait for the writes would be done (or at least closing its pools)
    // well within this window; this one stays at the grace period's wait until they are written.
    await Promise.race([
      stopping,
      gated.node.telemetry.waitFor('node:down', () => true, 300).catch(() => null),
    ]);
    assert.equal(stopped, false);
    assert.ok(
      gated.node
        .shutdownPending()
        .some((line) => /^(jobs: finishing|outcomes: writing)/.test(line)),
      gated.node.shutdownPending().join('; '),
    );
    assert.deepEqual(await states(), { executing: 30 });
    gated.open();
    await stopping;
    node = undefined;
    assert.deepEqual(await states(), { completed: 30 });
    assert.equal(gated.stops.length, 30);
  });

  it('SIGTERM in the middle of a drain leaves no row executing: each job completed once or given back unattempted', async function () {
    const config = writeConfig(
      nodeConfig(db.schema, db.url, {
        queues: { default: { limit: 20, prefetch: 500 } },
        shutdownGracePeriod: 10000,
      }),
    );
    await db.client.insertMany(
      Array.from({ length: 3000 }, (_, i) => ({ worker: 'slow', args: { ms: 20, i } })),
    );
    spawned = spawnCluster(['--config', config], { DATABASE_URL: db.url });
    await eventually(async () => ((await states()).completed ?? 0) >= 200, 30000, '200 done');
    spawned.child.kill('SIGTERM');
    const exit = await spawned.exited;
    assert.deepEqual(exit, { code: 0, signal: null }, spawned.output().slice(-2000));
    const rows = await db.query<{ state: string; attempt: number; errors: number; n: number }>(
      `SELECT state::text, attempt, jsonb_array_length(errors) AS errors, count(*)::int AS n
       FROM jobs GROUP BY 1, 2, 3 ORDER BY 1`,
    );
    const by = Object.fromEntries(rows.map((r) => [`${r.state}/${r.attempt}/${r.errors}`, r.n]));
    const completed = by['completed/1/0'] ?? 0;
    const available = by['available/0/0'] ?? 0;
    assert.equal(completed + available, 3000, `states: ${JSON.stringify(by)}`);
    assert.ok(completed >= 200 && available > 0, `states: ${JSON.stringify(by)}`);
  });
});
