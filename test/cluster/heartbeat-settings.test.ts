import assert from 'node:assert/strict';
import { cleanup, createSchema, eventually, type TestSchema } from '../helpers/db.js';
import { nodeConfig, spawnCluster, writeConfig, type SpawnedNode } from '../helpers/node.js';

// Two real `node cluster.js` processes with different heartbeat settings. The leader's lifeline
// used to judge every node by its own heartbeatTimeout: a node heartbeating every 7 s beside a
// leader with a 5 s timeout looked dead between two heartbeats, and its running job was
// rescued and started again while it still ran.
describe('nodes with different heartbeat settings', function () {
  let db: TestSchema;
  const nodes: SpawnedNode[] = [];
  beforeEach(async function () {
    db = await createSchema(this.currentTest!.title);
  });
  afterEach(async function () {
    for (const node of nodes.splice(0)) {
      node.child.kill('SIGKILL');
      await node.exited;
    }
    await cleanup(this, db);
  });

  it("a node that heartbeats less often than the leader's timeout keeps its running job", async function () {
    this.timeout(60000);
    const start = (name: string, settings: Record<string, unknown>): SpawnedNode => {
      const config = writeConfig(nodeConfig(db.schema, db.url, { logLevel: 'info', ...settings }));
      const node = spawnCluster(['--config', config], { NODE_NAME: name });
      nodes.push(node);
      return node;
    };
    const leader = start('node-a', {
      queues: { other: 1 },
      heartbeatInterval: 1000,
      heartbeatTimeout: 5000,
      plugins: { lifeline: { interval: 250 } },
    });
    await leader.waitForLog(/node node-a started/);
    await eventually(
      async () => {
        const [row] = await db.query<{ leader: boolean }>(
          `SELECT leader FROM nodes WHERE name = 'node-a'`,
        );
        return row?.leader === true;
      },
      10000,
      'node-a to lead',
    );
    const slow = start('node-b', {
      queues: { slowq: 1 },
      heartbeatInterval: 7000,
      heartbeatTimeout: 28000,
    });
    await slow.waitForLog(/node node-b started/);
    const job = await db.client.insert({ worker: 'slow', queue: 'slowq', args: { ms: 9000 } });
    await eventually(
      async () => (await db.client.getJob(job.id))?.state === 'completed',
      40000,
      'the job to complete',
    );
    const done = await db.client.getJob(job.id);
    assert.deepEqual(done!.errors, [], 'no rescue while node-b ran the job');
    assert.equal(done!.attempt, 1);
    assert.equal(done!.attemptedBy?.[0], 'node-b');
    const [row] = await db.query<{ heartbeat_timeout_ms: number }>(
      `SELECT heartbeat_timeout_ms FROM nodes WHERE name = 'node-b'`,
    );
    assert.equal(row?.heartbeat_timeout_ms, 28000);
  });
});
