import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { BreakerOpenError } from '../../src/db/breaker.js';
import { Quern } from '../../src/client.js';
import type { QuernNode } from '../../src/node/node.js';
import { eventually } from '../helpers/db.js';
import {
  nodeConfig,
  spawnCluster,
  startNode,
  writeConfig,
  type SpawnedNode,
} from '../helpers/node.js';
import { PrivatePostgres } from '../helpers/private-pg.js';

// Stops and restarts a real PostgreSQL (a private one) under load, with one node in this process
// (to watch its events) and one real `node cluster.js` (to see that it never exits).
describe('database outage under load (a private PostgreSQL stopped and started again)', function () {
  const schema = 'quern';
  let server: PrivatePostgres;
  let node: QuernNode | undefined;
  let spawned: SpawnedNode | undefined;
  let pool: pg.Pool | undefined;
  let client: Quern | undefined;

  before(async function () {
    this.timeout(120000);
    server = new PrivatePostgres();
    await server.start();
    await server.migrate(schema);
    await server.migrate('quern_long');
  });
  after(async function () {
    this.timeout(60000);
    spawned?.child.kill('SIGKILL');
    await node?.stop().catch(() => undefined);
    await client?.close().catch(() => undefined);
    await pool?.end().catch(() => undefined);
    await server.destroy();
  });

  // Before the heartbeat fence (src/node/fence.ts) the runner kept the job running across the
  // outage and completed it as attempt 1. A node cannot tell an outage from a network split, so
  // it now stops the job itself once its heartbeats have failed for long enough; the lifeline
  // still never rescues it (no error entry), and it runs again, once, after the database is back.
  it('a job running across a database restart longer than heartbeatTimeout is stopped by its own node, not rescued, and runs again once', async function () {
    this.timeout(60000);
    const settings = {
      heartbeatInterval: 200,
      heartbeatTimeout: 1000,
      breaker: { failures: 3, windowMs: 5000, openMs: 200 },
      plugins: { stager: { interval: 100 }, lifeline: { interval: 100 } },
    };
    // The runner's breaker stays open longer after the outage, so its heartbeats resume late.
    const runner = await startNode('quern_long', server.url, {
      ...settings,
      node: 'runner',
      queues: { long: 1 },
      breaker: { failures: 3, windowMs: 5000, openMs: 2500 },
    });
    const other = await startNode('quern_long', server.url, {
      ...settings,
      node: 'other',
      queues: { long: 1 },
      // Only `runner` takes the job (other's queue is paused); either may lead.
    });
    other.supervisors.get('long')!.pause();
    const starts: string[] = [];
    const stops: string[] = [];
    for (const n of [runner, other]) {
      n.telemetry.on('job:start', (e) => starts.push(`${e.node} start`));
      n.telemetry.on('job:stop', (e) => stops.push(`${e.node} ${e.state}`));
    }
    try {
      const quern = new Quern({ connectionString: server.url, schema: 'quern_long' });
      // Listening before inserting: the job can start before insert() and close() return.
      const started = runner.telemetry.waitFor('job:start', (e) => e.worker === 'slow');
      const job = await quern.insert({ worker: 'slow', queue: 'long', args: { ms: 4000 } });
      await quern.close();
      assert.equal((await started).id, job.id);
      const fenced = runner.telemetry.waitFor('node:fence', undefined, 20000);
      await server.stop();
      assert.equal((await fenced).jobs, 1, 'the runner stopped its job itself');
      await new Promise((r) => setTimeout(r, 2500)); // every heartbeat is now older than 1000 ms
      other.supervisors.get('long')!.resume(); // other would take the job if it were rescued
      const completed = Promise.race(
        [runner, other].map((n) =>
          n.telemetry.waitFor('job:stop', (e) => e.id === job.id && e.state === 'completed', 30000),
        ),
      );
      await server.start();
      await completed;
      const check = new pg.Client({ connectionString: server.url });
      await check.connect();
      const { rows } = await check.query<{ attempt: number; errors: unknown[] }>(
        `SELECT attempt, errors FROM quern_long.jobs WHERE id = $1`,
        [job.id],
      );
      await check.end();
      assert.deepEqual(rows[0], { attempt: 1, errors: [] }, 'not rescued, its attempt given back');
      assert.equal(starts.length, 2, `it ran twice, one after the other: ${starts.join(', ')}`);
      assert.equal(starts[0], 'runner start');
      // The stopped attempt went back (available, written once the database was back), then it ran.
      assert.equal(stops[0], 'runner available');
      assert.match(stops[1]!, / completed$/);
    } finally {
      await runner.stop();
      await other.stop();
    }
  });

  it('trips the breaker, holds outcomes, reconnects LISTEN, and finishes every job exactly once', async function () {
    this.timeout(90000);
    const tallyDir = mkdtempSync(path.join(tmpdir(), 'quern-tally-'));
    const file = path.join(tallyDir, 'runs.txt');
    const settings = {
      // A long poll: after the outage, only notifications (and the breaker closing) wake queues.
      queues: { default: { limit: 10, pollInterval: 30000 } },
      breaker: { failures: 3, windowMs: 5000, openMs: 200 },
      plugins: { stager: { interval: 200 } },
    };
    spawned = spawnCluster(
      [
        '--config',
        writeConfig({ ...nodeConfig(schema, server.url), ...settings, logLevel: 'info' }),
      ],
      { NODE_NAME: 'spawned' },
    );
    await spawned.waitForLog(/node spawned started/);
    node = await startNode(schema, server.url, { ...settings, node: 'local' });
    const events: string[] = [];
    for (const name of ['circuit:trip', 'circuit:open', 'circuit:close'] as const)
      node.telemetry.on(name, () => events.push(name));

    pool = new pg.Pool({ connectionString: server.url, max: 2 });
    pool.on('error', () => undefined);
    client = new Quern({ pool, schema });
    const total = 1500;
    await client.insertMany(
      Array.from({ length: total }, () => ({ worker: 'tally', args: { file, ms: 30 } })),
    );
    const count = async (state: string): Promise<number> => {
      const { rows } = await pool!.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM quern.jobs WHERE state = $1`,
        [state],
      );
      return rows[0]!.n;
    };
    await eventually(async () => (await count('completed')) >= total / 4, 30000, 'a quarter done');

    // The database goes away in the middle of the load.
    // While open, calls fail fast without touching the database: tried the moment it trips.
    let touched = false;
    let failedFast: Promise<unknown> | null = null;
    node.telemetry.once('circuit:open', () => {
      failedFast = node!.breaker.call(() => {
        touched = true;
        return Promise.resolve(1);
      });
      failedFast.catch(() => undefined);
    });
    const tripped = node.telemetry.waitFor('circuit:trip', undefined, 20000);
    const held = node.telemetry.waitFor('job:stop', () => true, 20000);
    const completedBefore = await count('completed');
    await server.stop();
    const stoppedAt = Date.now();
    await tripped;
    assert.ok(failedFast);
    await assert.rejects(failedFast, BreakerOpenError);
    assert.equal(touched, false, 'an open breaker does not call the database');
    await spawned.waitForLog(/circuit database tripped/, 20000);
    await new Promise((r) => setTimeout(r, Math.max(0, 1500 - (Date.now() - stoppedAt))));

    const closed = node.telemetry.waitFor('circuit:close', undefined, 30000);
    await server.start();
    await closed;
    await spawned.waitForLog(/circuit database closed/, 30000);

    await eventually(
      async () => (await count('completed')) === total,
      60000,
      'every job completed after the outage',
    );
    assert.equal(await count('executing'), 0, 'none stuck executing');
    const { rows } = await pool.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM quern.jobs WHERE attempt <> 1 OR errors <> '[]'::jsonb`,
    );
    assert.equal(rows[0]!.n, 0, 'no job was retried or charged an attempt');
    assert.ok(existsSync(file));
    const runs = new Map<string, number>();
    for (const line of readFileSync(file, 'utf8').trim().split('\n')) {
      const id = line.split(' ')[0]!;
      runs.set(id, (runs.get(id) ?? 0) + 1);
    }
    assert.equal(runs.size, total, 'every job ran');
    const twice = [...runs].filter(([, n]) => n > 1);
    assert.deepEqual(twice, [], 'no job ran twice');
    assert.deepEqual(events.slice(0, 2), ['circuit:trip', 'circuit:open']);
    assert.ok(events.includes('circuit:close'));

    // LISTEN was re-established: with a 30 s poll, only a notification runs this job at once.
    const started = Date.now();
    const job = await client.insert({ worker: 'tally', args: { ms: 1 } });
    await eventually(
      async () => {
        const r = await pool!.query<{ state: string }>(
          `SELECT state FROM quern.jobs WHERE id = $1`,
          [job.id],
        );
        return r.rows[0]?.state === 'completed';
      },
      5000,
      'a job inserted after the outage to run by notification',
    );
    assert.ok(Date.now() - started < 5000);

    assert.ok(
      completedBefore < total * 0.9,
      `stopped mid-load (${completedBefore} of ${total} done)`,
    );
    assert.ok(await held);
    assert.match(spawned.output(), /holding them/, 'the spawned node held outcomes while away');
    assert.equal(spawned.child.exitCode, null, 'the cluster.js node never exited');
    assert.equal(spawned.child.signalCode, null);
  });
});
