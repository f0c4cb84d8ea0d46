import assert from 'node:assert/strict';
import { cleanup, createSchema, eventually, type TestSchema } from '../helpers/db.js';
import {
  nodeConfig,
  runCli,
  spawnCluster,
  writeConfig,
  type SpawnedNode,
} from '../helpers/node.js';

// `status` tells live nodes from dead ones by the age of their heartbeat against the config's
// heartbeatTimeout, in the node table, the queue table and the alive count.
describe('status: dead nodes', function () {
  let db: TestSchema;
  const spawned: SpawnedNode[] = [];
  beforeEach(async function () {
    db = await createSchema(this.currentTest!.title);
  });
  afterEach(async function () {
    for (const node of spawned.splice(0)) {
      node.child.kill('SIGKILL');
      await node.exited;
    }
    await cleanup(this, db);
  });

  it('a SIGKILLed node is shown dead with its queues, and not counted alive', async function () {
    this.timeout(60000);
    const config = writeConfig({
      ...nodeConfig(db.schema, db.url),
      logLevel: 'info',
      queues: { default: 4 },
      heartbeatInterval: 200,
      heartbeatTimeout: 1500,
    });
    const victim = spawnCluster(['--config', config], { NODE_NAME: 'victim' });
    spawned.push(victim);
    await victim.waitForLog(/node victim started/);
    const survivor = spawnCluster(['--config', config], { NODE_NAME: 'survivor' });
    spawned.push(survivor);
    await survivor.waitForLog(/node survivor started/);

    const status = async (): Promise<string> => {
      const result = await runCli(['status', '--config', config]);
      assert.equal(result.code, 0, result.stderr);
      return result.stdout;
    };
    const before = await eventually(
      async () => {
        const out = await status();
        return /nodes: 2 alive of 2/.test(out) ? out : null;
      },
      10000,
      'both nodes alive',
    );
    assert.match(before, /^victim\s+default\s+4\s+2\s+0\s+running\s/m);

    victim.child.kill('SIGKILL');
    assert.equal((await victim.exited).signal, 'SIGKILL');
    // Dead once its heartbeat is older than heartbeatTimeout; the survivor leads by then.
    const after = await eventually(
      async () => {
        const out = await status();
        return /nodes: 1 alive of 2/.test(out) && /leader: survivor/.test(out) ? out : null;
      },
      15000,
      'the victim shown dead and the survivor leading',
    );
    assert.match(after, /^victim\s+dead\s+\d+s ago\s+\d+s ago\s+default\s*$/m, 'node table');
    assert.match(after, /^victim\s+default\s+4\s+2\s+-\s+dead\s+\d+s ago\s*$/m, 'queue table');
    assert.match(after, /^survivor\s+leader\s/m);
    assert.match(after, /^survivor\s+default\s+4\s+2\s+0\s+running\s/m);
    assert.ok(!/^victim\s+default.*running/m.test(after), after);
    // The dead node's row is still there (the lifeline forgets it only after an hour).
    const [row] = await db.query<{ age: number }>(
      `SELECT extract(epoch FROM now() - updated_at)::float8 AS age FROM nodes WHERE name = 'victim'`,
    );
    assert.ok(row && row.age >= 1.5, `the victim's heartbeat is old: ${row?.age}`);
  });

  it("status and status --watch judge by the config's heartbeatTimeout", async function () {
    this.timeout(30000);
    // A node last heard of 10 s ago: dead by the default 5 s timeout, alive by a 30 s one.
    await db.query(
      `INSERT INTO nodes (name, queues, leader, started_at, updated_at)
       VALUES ('ghost', $1, false, now() - interval '1 hour', now() - interval '10 seconds')`,
      [JSON.stringify({ mail: { limit: 5, threads: 1, running: 2, paused: false } })],
    );
    const patient = writeConfig({
      schema: db.schema,
      database: { url: db.url },
      heartbeatTimeout: 30000,
    });
    const strict = writeConfig({ schema: db.schema, database: { url: db.url } });

    const alive = await runCli(['status', '--config', patient]);
    assert.equal(alive.code, 0, alive.stderr);
    assert.match(alive.stdout, /nodes: 1 alive of 1/);
    assert.match(alive.stdout, /^ghost\s+mail\s+5\s+1\s+2\s+running\s/m);
    const dead = await runCli(['status', '--config', strict]);
    assert.equal(dead.code, 0, dead.stderr);
    assert.match(dead.stdout, /nodes: 0 alive of 1/);
    assert.match(dead.stdout, /^ghost\s+dead\s/m);
    assert.match(dead.stdout, /^ghost\s+mail\s+5\s+1\s+-\s+dead\s/m);

    for (const [config, shown] of [
      [patient, /^ghost\s+mail\s+5\s+1\s+2\s+running\s/m],
      [strict, /^ghost\s+mail\s+5\s+1\s+-\s+dead\s/m],
    ] as const) {
      const watch = spawnCluster(['status', '--watch', '--config', config]);
      spawned.push(watch);
      try {
        await watch.waitForLog(/frame 2 /, 15000);
      } finally {
        watch.child.kill('SIGINT');
      }
      assert.equal((await watch.exited).code, 0);
      spawned.splice(spawned.indexOf(watch), 1);
      assert.match(watch.output(), shown);
    }
  });
});
