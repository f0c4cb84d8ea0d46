import assert from 'node:assert/strict';
import type { QuernNode } from '../../src/node/node.js';
import type { TelemetryEventName } from '../../src/telemetry/events.js';
import { lockHolder, TestCluster } from '../helpers/cluster.js';
import { cleanup, createSchema, eventually, type TestSchema } from '../helpers/db.js';
import { startNode } from '../helpers/node.js';

describe('leadership', function () {
  let db: TestSchema;
  let cluster: TestCluster | undefined;
  const nodes: QuernNode[] = [];
  beforeEach(async function () {
    db = await createSchema(this.currentTest!.title);
  });
  afterEach(async function () {
    await cluster?.killAll();
    cluster = undefined;
    for (const node of nodes.splice(0)) await node.stop();
    await cleanup(this, db);
  });

  it('a node whose lock connection drops stops leader-only work at once, before another leads', async function () {
    const timeline: { node: string; event: TelemetryEventName; at: number }[] = [];
    const start = async (short: string) => {
      const node = await startNode(db.schema, db.url, {
        node: `${db.schema}-${short}`,
        plugins: { stager: { interval: 50 } },
      });
      for (const event of ['leader:elected', 'leader:lost', 'plugin:start'] as const)
        node.telemetry.on(event, () => timeline.push({ node: node.name, event, at: Date.now() }));
      nodes.push(node);
      return node;
    };
    const a = await start('a');
    await eventually(() => Promise.resolve(a.isLeader), 5000, 'a to lead');
    const b = await start('b');
    await a.telemetry.waitFor('plugin:start', () => true, 5000);

    const lost = a.telemetry.waitFor('leader:lost', () => true, 5000);
    const killedAt = Date.now();
    const { rows } = await db.pool.query<{ killed: boolean }>(
      'SELECT pg_terminate_backend(pid) AS killed FROM pg_stat_activity WHERE application_name = $1',
      [`quern-peer-${a.name}`],
    );
    assert.deepEqual(
      rows.map((r) => r.killed),
      [true],
    );
    const reason = await lost;
    const lostAfterMs = Date.now() - killedAt;
    assert.match(reason.reason, /leadership connection/);
    assert.equal(a.isLeader, false);
    assert.ok(lostAfterMs < 500, `leadership given up ${lostAfterMs} ms after the kill`);

    // Someone leads again soon (either node: the lock is free).
    const holder = await eventually(() => lockHolder(db), 5000, 'a new lock holder');
    const leader = holder === a.name ? a : b;
    await eventually(() => Promise.resolve(leader.isLeader), 5000, 'the holder to know it leads');
    await leader.telemetry.waitFor('plugin:start', () => true, 5000);

    const lostAt = timeline.find((e) => e.node === a.name && e.event === 'leader:lost')!.at;
    const electedAgain = timeline.find((e) => e.event === 'leader:elected' && e.at >= lostAt)!;
    assert.ok(electedAgain.at >= lostAt, 'the next leader was elected after a stopped leading');
    const aWorkWhileFollower = timeline.filter(
      (e) =>
        e.node === a.name &&
        e.event === 'plugin:start' &&
        e.at > lostAt &&
        (electedAgain.node !== a.name || e.at < electedAgain.at),
    );
    assert.deepEqual(aWorkWhileFollower, [], 'no leader-only work on a after it lost the lock');
  });

  it('when the leader is SIGKILLed, another node leads within the bound (2 s by default)', async function () {
    this.timeout(40000);
    // Default heartbeat (1 s): the documented bound is for default settings.
    cluster = new TestCluster(db.schema, db.url, { heartbeatInterval: 1000 });
    const started = await Promise.all(['a', 'b', 'c'].map((n) => cluster!.start(n)));
    const first = await eventually(() => lockHolder(db), 10000, 'a leader');
    const leader = started.find((n) => n.name === first)!;
    await leader.waitForLog(/is the leader/);

    const killedAt = Date.now();
    await leader.kill('SIGKILL');
    const next = await eventually(
      async () => {
        const holder = await lockHolder(db);
        return holder && holder !== first ? holder : null;
      },
      10000,
      'a new leader',
    );
    const failoverMs = Date.now() - killedAt;
    process.stderr.write(`      failover after SIGKILL: ${failoverMs} ms\n`);
    assert.ok(failoverMs < 2000, `new leader after ${failoverMs} ms`);
    const successor = started.find((n) => n.name === next)!;
    await successor.waitForLog(new RegExp(`${next} is the leader`), 5000);
    assert.equal(
      started.filter((n) => n !== leader && /is the leader/.test(n.output())).length,
      1,
      'exactly one successor',
    );
  });
});
