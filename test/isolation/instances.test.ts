// Isolation: several instances in one process, each with its own schema and node name, its own
// tables, notification channels and leadership, never seeing each other's jobs or messages;
// and `cluster.js migrate --prefix SCHEMA`.

import assert from 'node:assert/strict';
import pg from 'pg';
import { Quern } from '../../src/client.js';
import type { QuernNode } from '../../src/node/node.js';
import { Notifier } from '../../src/notifier/notifier.js';
import { cleanup, createSchema, databaseUrl, eventually, type TestSchema } from '../helpers/db.js';
import { nodeConfig, runCli, spawnCluster, startNode, writeConfig } from '../helpers/node.js';

describe('isolation', function () {
  const schemas: TestSchema[] = [];
  const nodes: QuernNode[] = [];
  const notifiers: Notifier[] = [];
  afterEach(async function () {
    await Promise.all(nodes.splice(0).map((n) => n.stop()));
    await Promise.all(notifiers.splice(0).map((n) => n.stop()));
    for (const db of schemas.splice(0)) await cleanup(this, db);
  });

  async function instances(count: number, title: string): Promise<TestSchema[]> {
    for (let i = 0; i < count; i++) schemas.push(await createSchema(`${title}_${i}`));
    return schemas;
  }

  it('three instances in one process run only their own jobs', async function () {
    const dbs = await instances(3, 'three instances');
    for (const [i, db] of dbs.entries()) {
      nodes.push(
        await startNode(db.schema, db.url, {
          node: `instance-${i}`,
          queues: { default: 5, shared_name: 5 },
        }),
      );
    }
    const started = nodes.map(() => [] as number[]);
    nodes.forEach((node, i) => node.telemetry.on('job:start', (e) => started[i]!.push(e.id)));
    // The same worker and queue names in every instance, and overlapping ids (one sequence each).
    const counts = [3, 5, 7];
    await Promise.all(
      dbs.map((db, i) =>
        db.client.insertMany(
          Array.from({ length: counts[i]! }, (_, n) => ({
            worker: 'ok',
            queue: n % 2 ? 'default' : 'shared_name',
            args: { value: `${i}:${n}` },
          })),
        ),
      ),
    );
    for (const [i, db] of dbs.entries()) {
      const rows = await eventually(
        async () => {
          const r = await db.query<{ state: string; result: string; by: string }>(
            `SELECT state::text, result #>> '{}' AS result, attempted_by[1] AS by FROM jobs`,
          );
          return r.length === counts[i] && r.every((x) => x.state === 'completed') ? r : null;
        },
        20000,
        `instance ${i} to complete its jobs`,
      );
      assert.ok(rows.every((r) => r.by === `instance-${i}`));
      assert.ok(rows.every((r) => r.result.startsWith(`${i}:`)));
    }
    assert.deepEqual(
      started.map((ids) => ids.length),
      counts,
    );
    await eventually(
      () => Promise.resolve(nodes.every((n) => n.isLeader)),
      10000,
      'each instance to elect itself: leadership is per schema',
    );
    for (const db of dbs) {
      const names = await db.query<{ name: string }>('SELECT name FROM nodes');
      assert.equal(names.length, 1, 'each instance sees only its own node');
    }
  });

  it('notifications and control messages stay within their instance', async function () {
    const [a, b] = await instances(2, 'channels');
    const heard = new Map<string, string[][]>([
      [a!.schema, []],
      [b!.schema, []],
    ]);
    for (const db of [a!, b!]) {
      const notifier = new Notifier(db.url, db.schema);
      notifier.on('insert', (queues) => heard.get(db.schema)!.push(queues));
      await notifier.start();
      notifiers.push(notifier);
    }
    await b!.client.insert({ worker: 'ok', queue: 'only_b' });
    await a!.client.insert({ worker: 'ok', queue: 'only_a' });
    await eventually(
      () => Promise.resolve(heard.get(a!.schema)!.length > 0 && heard.get(b!.schema)!.length > 0),
      10000,
      'both inserts to be heard',
    );
    // B committed first, so had A's channel carried it, A would have heard it first.
    assert.deepEqual(heard.get(a!.schema), [['only_a']]);
    assert.deepEqual(heard.get(b!.schema), [['only_b']]);

    nodes.push(await startNode(a!.schema, a!.url, { node: 'ctl-a' }));
    nodes.push(await startNode(b!.schema, b!.url, { node: 'ctl-b' }));
    await b!.client.pauseQueue('default');
    await eventually(
      () => Promise.resolve(nodes[1]!.supervisors.get('default')?.producer.paused === true),
      10000,
      'B to pause its queue',
    );
    await a!.client.insert({ worker: 'ok' });
    await eventually(
      async () =>
        (
          await a!.query<{ n: number }>(
            `SELECT count(*)::int AS n FROM jobs WHERE state = 'completed'`,
          )
        )[0]!.n === 1,
      10000,
      'A, not paused, to run its job',
    );
    assert.equal(nodes[0]!.supervisors.get('default')?.producer.paused, false);
  });

  it('two clients of different schemas share one pg pool without mixing jobs', async function () {
    const [a, b] = await instances(2, 'shared pool');
    const pool = new pg.Pool({ connectionString: databaseUrl(), max: 2 });
    try {
      const qa = new Quern({ pool, schema: a!.schema });
      const qb = new Quern({ pool, schema: b!.schema });
      await qa.insert({ worker: 'ok', args: { in: 'a' } });
      await qb.insertMany([{ worker: 'ok', args: { in: 'b' } }, { worker: 'ok' }]);
      assert.equal((await qa.listJobs()).length, 1);
      assert.equal((await qb.listJobs()).length, 2);
      assert.deepEqual((await qa.getJob(1))?.args, { in: 'a' });
      assert.deepEqual((await qb.getJob(1))?.args, { in: 'b' });
    } finally {
      await pool.end();
    }
  });

  it('cluster.js migrate --prefix SCHEMA creates one schema, idempotently, and rolls it back', async function () {
    const [other] = await instances(1, 'migrate prefix other');
    const db = await createSchema('migrate prefix', { migrate: false });
    schemas.push(db);
    const env = { DATABASE_URL: db.url };
    const first = await runCli(['migrate', '--prefix', db.schema], env);
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stdout, new RegExp(`schema ${db.schema}: version 0 -> \\d+`));
    const tables = await db.pool.query<{ table_name: string }>(
      `SELECT table_name FROM information_schema.tables WHERE table_schema = $1 ORDER BY 1`,
      [db.schema],
    );
    assert.deepEqual(
      tables.rows
        .map((r) => r.table_name)
        .filter((t) => ['jobs', 'nodes', 'migrations'].includes(t)),
      ['jobs', 'migrations', 'nodes'],
    );
    const again = await runCli(['migrate', '--prefix', db.schema], env);
    assert.equal(again.code, 0, again.stderr);
    assert.doesNotMatch(again.stdout, /applying/);
    const down = await runCli(['migrate', '--prefix', db.schema, '--down', '0'], env);
    assert.equal(down.code, 0, down.stderr);
    const left = await db.pool.query(
      `SELECT 1 FROM information_schema.tables WHERE table_schema = $1 AND table_name = 'jobs'`,
      [db.schema],
    );
    assert.equal(left.rowCount, 0);
    const untouched = await other!.query<{ n: number }>('SELECT count(*)::int AS n FROM jobs');
    assert.equal(untouched[0]!.n, 0, 'another schema is untouched');
    const bad = await runCli(['migrate', '--prefix', 'Not A Schema'], env);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr + bad.stdout, /--prefix/);
  });

  it('--prefix SCHEMA may come before the command, or stand alone to start a node', async function () {
    // `node cluster.js --prefix tenant_a` was "unknown command "tenant_a"": only --config's
    // value was skipped when looking for the command.
    const db = await createSchema('prefix first', { migrate: false });
    schemas.push(db);
    const env = { DATABASE_URL: db.url };
    const migrated = await runCli(['--prefix', db.schema, 'migrate'], env);
    assert.equal(migrated.code, 0, migrated.stderr);
    assert.match(migrated.stdout, new RegExp(`schema ${db.schema}: version 0 -> \\d+`));
    const config = writeConfig({ ...nodeConfig('quern', db.url), logLevel: 'info' });
    const node = spawnCluster(['--prefix', db.schema, '--config', config], env);
    try {
      await node.waitForLog(/"msg":"node \S+ started"/);
      const status = await runCli(['--prefix', db.schema, '--config', config, 'status'], env);
      assert.equal(status.code, 0, status.stderr);
      assert.match(status.stdout, /nodes: 1 alive of 1/);
    } finally {
      node.child.kill('SIGTERM');
    }
    assert.equal((await node.exited).code, 0, node.output());
  });
});
