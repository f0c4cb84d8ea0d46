import assert from 'node:assert/strict';
import type { QueueHeartbeat } from '../../src/db/queries/nodes.js';
import { lockHolder, TestCluster, type ClusterNode } from '../helpers/cluster.js';
import { cleanup, createSchema, eventually, type TestSchema } from '../helpers/db.js';
import { runCli } from '../helpers/node.js';

// Fast heartbeats, so a dead node is noticed within a second.
const BASE = {
  heartbeatInterval: 200,
  heartbeatTimeout: 1000,
  plugins: { lifeline: { interval: 200 } },
};

describe('controlling queues and jobs across real nodes', function () {
  let db: TestSchema;
  let cluster: TestCluster;
  beforeEach(async function () {
    db = await createSchema(this.currentTest!.title);
    cluster = new TestCluster(db.schema, db.url, BASE);
  });
  afterEach(async function () {
    await cluster.killAll();
    await cleanup(this, db);
  });

  async function queueOf(node: ClusterNode, queue: string): Promise<QueueHeartbeat | undefined> {
    const [row] = await db.query<{ queues: Record<string, QueueHeartbeat> }>(
      'SELECT queues FROM nodes WHERE name = $1',
      [node.name],
    );
    return row?.queues[queue];
  }

  async function job(id: number) {
    const [row] = await db.query<{
      state: string;
      attempt: number;
      attempted_by: string[] | null;
      errors: { attempt: number; error: string }[];
      result: unknown;
    }>('SELECT state, attempt, attempted_by, errors, result FROM jobs WHERE id = $1', [id]);
    return row!;
  }

  const logTime = (line: string): number => (JSON.parse(line) as { time: number }).time;

  it('pause on all nodes within a second, kept across a restart; resume, scale, start and stop on one', async function () {
    this.timeout(60000);
    const [a, b] = await Promise.all([cluster.start('a'), cluster.start('b')]);

    const sentAt = Date.now();
    await db.client.pauseQueue('default');
    const lines = await Promise.all([a, b].map((n) => n.waitForLog(/queue default paused/, 3000)));
    const appliedMs = Math.max(...lines.map(logTime)) - sentAt;
    process.stderr.write(`      pause applied on both nodes ${appliedMs} ms after it was sent\n`);
    assert.ok(appliedMs < 1000, `applied after ${appliedMs} ms`);
    await eventually(async () => (await queueOf(a, 'default'))?.paused === true, 3000, 'a paused');
    await eventually(async () => (await queueOf(b, 'default'))?.paused === true, 3000, 'b paused');

    const held = await db.client.insert({ worker: 'ok', args: { value: 1 } });
    // Longer than the fallback poll: a paused queue fetches nothing.
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal((await job(held.id)).state, 'available');

    // a restarts: still paused.
    await a.kill('SIGTERM');
    const a2 = await cluster.start('a');
    assert.equal((await queueOf(a2, 'default'))?.paused, true, 'paused after the restart');

    // The CLI, on one node only.
    const resumed = await runCli([
      'queue',
      'resume',
      'default',
      '--node',
      b.name,
      '--config',
      b.config,
    ]);
    assert.equal(resumed.code, 0, resumed.stderr);
    assert.match(resumed.stdout, new RegExp(`queue default: resume sent to ${b.name}`));
    await b.waitForLog(/queue default resumed/, 3000);
    await eventually(
      async () => (await job(held.id)).state === 'completed',
      5000,
      'the job to run',
    );
    assert.equal((await job(held.id)).attempted_by![0], b.name, 'run by the resumed node');
    assert.equal((await queueOf(a2, 'default'))?.paused, true, 'a is still paused');

    const scaled = await runCli([
      'queue',
      'scale',
      'default',
      '--limit',
      '3',
      '--node',
      a2.name,
      '--config',
      a2.config,
    ]);
    assert.equal(scaled.code, 0, scaled.stderr);
    await eventually(
      async () => (await queueOf(a2, 'default'))?.limit === 3,
      3000,
      'a scaled to 3',
    );
    assert.equal((await queueOf(b, 'default'))?.limit, 10, 'b keeps its limit');

    const started = await runCli([
      'queue',
      'start',
      'extra',
      '--limit',
      '2',
      '--config',
      a2.config,
    ]);
    assert.equal(started.code, 0, started.stderr);
    await eventually(async () => (await queueOf(a2, 'extra'))?.limit === 2, 3000, 'extra on a');
    await eventually(async () => (await queueOf(b, 'extra'))?.limit === 2, 3000, 'extra on b');
    const stopped = await runCli([
      'queue',
      'stop',
      'extra',
      '--node',
      b.name,
      '--config',
      b.config,
    ]);
    assert.equal(stopped.code, 0, stopped.stderr);
    await eventually(
      async () => (await queueOf(b, 'extra')) === undefined,
      3000,
      'extra gone from b',
    );
    assert.ok(await queueOf(a2, 'extra'), 'extra still runs on a');

    const status = await runCli(['status', '--config', a2.config]);
    assert.equal(status.code, 0, status.stderr);
    const leader = await lockHolder(db);
    assert.match(status.stdout, new RegExp(`leader: ${leader}`));
    assert.match(status.stdout, /nodes: 2 alive of 2/);
    assert.match(status.stdout, new RegExp(`${a2.name}\\s+default\\s+3\\s+2\\s+0\\s+paused`));
    assert.match(status.stdout, new RegExp(`${b.name}\\s+default\\s+10\\s+2\\s+0\\s+running`));
    assert.match(status.stdout, /default\s+0\s+0\s+0\s+0\s+1\s+0\s+0/, 'counts by queue and state');

    const bad = await runCli(['queue', 'scale', 'default', '--config', a2.config]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /queue scale needs --limit N/);
  });

  it('cancels a job running on another node: its thread is terminated after the grace period, the other job on it keeps its attempt', async function () {
    this.timeout(60000);
    // One thread running two jobs at once on node a; node b runs other queues only.
    const a = await cluster.start('a', {
      queues: { held: { limit: 2, threads: 1, concurrency: 2 } },
      cancelGracePeriod: 500,
    });
    const b = await cluster.start('b', { queues: { default: 2 } });
    const patient = await db.client.insert({ worker: 'slow', args: { ms: 2500 }, queue: 'held' });
    await eventually(
      async () => (await job(patient.id)).state === 'executing',
      5000,
      'slow to start',
    );
    const stubborn = await db.client.insert({
      worker: 'stubborn',
      args: { ms: 30000 },
      queue: 'held',
    });
    await eventually(
      async () => (await job(stubborn.id)).state === 'executing',
      5000,
      'stubborn to start',
    );

    // From the CLI, which runs no node: node a hears it through PostgreSQL.
    const cancelled = await runCli(['job', 'cancel', String(stubborn.id), '--config', b.config]);
    assert.equal(cancelled.code, 0, cancelled.stderr);
    assert.match(
      cancelled.stdout,
      new RegExp(`job ${stubborn.id} cancelled; node ${a.name} running it was told to stop it`),
    );
    const row = await job(stubborn.id);
    assert.equal(row.state, 'cancelled', 'cancelled in its row at once');
    assert.deepEqual(
      row.errors.map((e) => e.error),
      [`cancelled: cancelled by request while running on node ${a.name}`],
    );
    // stubborn ignores its signal: a logs its end once the thread is terminated.
    const stop = await a.waitForLog(new RegExp(`job ${stubborn.id} stubborn cancelled`), 5000);
    const durationMs = (JSON.parse(stop) as { durationMs: number }).durationMs;
    assert.ok(durationMs >= 500, `stopped after the grace period (${durationMs} ms)`);

    // The other job on that thread went back without losing its attempt, and ran again.
    const done = await eventually(
      async () => {
        const r = await job(patient.id);
        return r.state === 'completed' ? r : null;
      },
      15000,
      'the slow job to complete',
    );
    assert.equal(done.attempt, 1, 'its interrupted attempt was given back');
    assert.deepEqual(done.errors, []);
    assert.equal(
      (await job(stubborn.id)).state,
      'cancelled',
      'the old runner wrote nothing over it',
    );

    // Nothing to cancel any more: said so, nothing changed.
    const again = await runCli(['job', 'cancel', String(patient.id), '--config', b.config]);
    assert.equal(again.code, 0);
    assert.match(again.stdout, new RegExp(`job ${patient.id} is completed; nothing changed`));
    assert.ok(!b.output().includes(`job ${stubborn.id} `), 'node b never touched it');
  });

  it('job show, retry and cancel from the CLI', async function () {
    this.timeout(30000);
    const a = await cluster.start('a', { queues: { default: 2 } });
    await db.client.pauseQueue('default');
    await a.waitForLog(/queue default paused/, 3000);
    const waiting = await db.client.insert({ worker: 'ok', args: { value: 'x' }, maxAttempts: 1 });
    const cancel = await runCli(['job', 'cancel', String(waiting.id), '--config', a.config]);
    assert.match(cancel.stdout, new RegExp(`job ${waiting.id} cancelled`));
    assert.equal(
      (await job(waiting.id)).state,
      'cancelled',
      'a job not running is cancelled at once',
    );
    const show = await runCli(['job', 'show', String(waiting.id), '--config', a.config]);
    assert.equal(show.code, 0);
    assert.equal((JSON.parse(show.stdout) as { state: string }).state, 'cancelled');
    const retry = await runCli(['job', 'retry', String(waiting.id), '--config', a.config]);
    assert.match(retry.stdout, new RegExp(`job ${waiting.id} is available again`));
    assert.equal((await job(waiting.id)).state, 'available');
    const again = await runCli(['job', 'retry', String(waiting.id), '--config', a.config]);
    assert.match(again.stdout, /is available; nothing changed/);
    const missing = await runCli(['job', 'show', '999999', '--config', a.config]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /job 999999 does not exist/);
    await db.client.resumeQueue('default');
    await eventually(
      async () => (await job(waiting.id)).state === 'completed',
      5000,
      'the retried job to run',
    );
  });

  it('rescues the jobs of a SIGKILLed node on another node; a node restarted under its name rescues its own at once', async function () {
    this.timeout(60000);
    const a = await cluster.start('a');
    const b = await cluster.start('b', { queues: { other: 1 } });
    const orphan = await db.client.insert({ worker: 'slow', args: { ms: 1500 } });
    await eventually(
      async () => (await job(orphan.id)).attempted_by?.[0] === a.name,
      5000,
      'a to run it',
    );
    const killedAt = Date.now();
    await a.kill('SIGKILL');
    // b leads now; its lifeline sees a silent for a heartbeat timeout and puts the job back.
    await eventually(async () => (await job(orphan.id)).state === 'available', 10000, 'the rescue');
    const rescuedMs = Date.now() - killedAt;
    process.stderr.write(
      `      rescued ${rescuedMs} ms after the SIGKILL (heartbeatTimeout 1000)\n`,
    );
    assert.ok(rescuedMs >= 800, 'not before the heartbeat expired');
    const rescued = await job(orphan.id);
    assert.deepEqual(
      rescued.errors.map((e) => [e.attempt, e.error]),
      [[1, `rescued: node ${a.name} stopped sending heartbeats while the job was executing`]],
    );
    assert.equal(await lockHolder(db), b.name);

    // b runs no default queue: a new node does, and gets the job (attempt 2).
    const c = await cluster.start('c');
    const done = await eventually(
      async () => {
        const r = await job(orphan.id);
        return r.state === 'completed' ? r : null;
      },
      10000,
      'the rescued job to complete',
    );
    assert.equal(done.attempt, 2);
    assert.equal(done.attempted_by![0], c.name);

    // A node SIGKILLed and restarted under its name (alone, so no lifeline gets there first)
    // rescues what its earlier process left executing, before fetching anything.
    await Promise.all([b.kill('SIGTERM'), c.kill('SIGTERM')]);
    const second = await db.client.insert({ worker: 'slow', args: { ms: 30000 }, queue: 'solo' });
    const solo = await cluster.start('solo', { queues: { solo: 1 } });
    await eventually(
      async () => (await job(second.id)).state === 'executing',
      5000,
      'solo to run it',
    );
    await solo.kill('SIGKILL');
    const back = await cluster.start('solo', { queues: { solo: 1 } });
    await back.waitForLog(/rescued jobs an earlier process of this node left executing/, 5000);
    const restarted = await job(second.id);
    assert.match(
      restarted.errors[0]!.error,
      new RegExp(`node ${back.name} restarted while the job was executing`),
    );
    assert.ok(['available', 'executing'].includes(restarted.state));
  });
});
