import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fenceTimings } from '../../src/node/fence.js';
import type { QuernNode } from '../../src/node/node.js';
import { cleanup, createSchema, eventually, type TestSchema } from '../helpers/db.js';
import { readLines, runsWithoutOverlap } from '../helpers/ticker.js';
import {
  nodeConfig,
  spawnCluster,
  startNode,
  writeConfig,
  type SpawnedNode,
} from '../helpers/node.js';
import { TcpProxy } from '../helpers/tcp-proxy.js';

// A network split: node A reaches PostgreSQL through a proxy in this process, node B directly.
// Cutting the proxy leaves the server up for B, whose lifeline rescues A's jobs once A's heartbeat
// is heartbeatTimeout old. A must have stopped them by then (src/node/fence.ts), or the same job
// runs on two nodes at once. The `ticker` worker writes every moment of each run to a file both
// nodes share, so an overlap of two runs shows as a line of the older run after the newer began.

describe('a network split: one node cut off from PostgreSQL while the server stays up', function () {
  let db: TestSchema;
  let proxy: TcpProxy;
  const spawned: SpawnedNode[] = [];
  const nodes: QuernNode[] = [];
  beforeEach(async function () {
    db = await createSchema(this.currentTest!.title);
    proxy = new TcpProxy(db.url);
    await proxy.start();
  });
  afterEach(async function () {
    this.timeout(30000);
    for (const node of spawned) node.child.kill('SIGKILL');
    await Promise.all(spawned.splice(0).map((n) => n.exited));
    await proxy.restore();
    await Promise.all(nodes.splice(0).map((n) => n.stop()));
    await proxy.stop();
    await cleanup(this, db);
  });

  it('the cut-off node stops its jobs before the other node rescues them; they run once more, never twice at once; it fetches again when reconnected', async function () {
    this.timeout(90000);
    const file = path.join(mkdtempSync(path.join(tmpdir(), 'quern-split-')), 'ticks.txt');
    const settings = {
      logLevel: 'info',
      heartbeatInterval: 200,
      heartbeatTimeout: 2000,
      cancelGracePeriod: 500,
      plugins: { stager: { interval: 200 }, lifeline: { interval: 100 } },
    };
    const a = spawnCluster(
      [
        '--config',
        writeConfig({
          ...nodeConfig(db.schema, proxy.url),
          ...settings,
          queues: { long: { limit: 2, pollInterval: 200 }, solo: { limit: 1, pollInterval: 200 } },
        }),
      ],
      { NODE_NAME: 'split-a' },
    );
    spawned.push(a);
    await a.waitForLog(/node split-a started/);
    // B waits with its queue paused until A runs both jobs; then it is the node that could rescue.
    const b = spawnCluster(
      [
        '--config',
        writeConfig({
          ...nodeConfig(db.schema, db.url),
          ...settings,
          queues: { long: { limit: 2, pollInterval: 200, paused: true } },
        }),
      ],
      { NODE_NAME: 'split-b' },
    );
    spawned.push(b);
    await b.waitForLog(/node split-b started/);

    // One job that honours its abort signal, one that ignores it (its thread must be terminated).
    const polite = await db.client.insert({
      worker: 'ticker',
      queue: 'long',
      args: { file, ms: 4000 },
    });
    const stubborn = await db.client.insert({
      worker: 'ticker',
      queue: 'long',
      args: { file, ms: 4000, honour: false },
    });
    const onA = async () => {
      const rows = await db.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM jobs WHERE state = 'executing' AND attempted_by[1] = 'split-a'`,
      );
      const started = new Set(readLines(file).map((l) => l.job));
      return rows[0]!.n === 2 && started.has(polite.id) && started.has(stubborn.id);
    };
    await eventually(onA, 20000, 'both jobs running on split-a');
    await db.client.resumeQueue('long', { node: 'split-b' });
    await b.waitForLog(/queue long resumed/);

    const cutAt = Date.now();
    await proxy.cut();

    await a.waitForLog(/fenced: stopped fetching and stopped 2 running jobs/, 20000);
    const finished = async () => {
      const rows = await db.query<{ id: number; state: string; node: string }>(
        `SELECT id, state::text, attempted_by[1] AS node FROM jobs WHERE queue = 'long' ORDER BY id`,
      );
      return rows.every((r) => r.state === 'completed') ? rows : null;
    };
    const done = await eventually(finished, 40000, 'both jobs completed after the split');
    assert.deepEqual(
      done.map((r) => r.node),
      ['split-b', 'split-b'],
    );

    const lines = readLines(file);
    const pidA = String(a.child.pid);
    const pidB = String(b.child.pid);
    for (const job of [polite, stubborn]) {
      const runs = runsWithoutOverlap(lines, job.id);
      assert.deepEqual(
        runs.map((r) => r.run.split('.')[0]),
        [pidA, pidB],
        `job ${job.id} ran on A, then on B`,
      );
      const [onNodeA, onNodeB] = runs as [(typeof runs)[0], (typeof runs)[0]];
      const lastOnA = onNodeA.lines.at(-1)!;
      // Stopped by A itself, before heartbeatTimeout (2000 ms) from the cut; counting from A's
      // last heartbeat, which came before the cut, it was earlier still.
      assert.ok(
        lastOnA.at - cutAt < 2000,
        `job ${job.id}: A's run was alive ${lastOnA.at - cutAt} ms after the cut`,
      );
      assert.ok(!onNodeA.lines.some((l) => l.what === 'end'), 'A did not finish it');
      if (job.id === polite.id) assert.equal(lastOnA.what, 'abort', 'it got its abort signal');
      assert.equal(onNodeB.lines.at(-1)!.what, 'end', 'B ran it to the end');
    }

    // A comes back: its held outcomes are refused (the jobs were rescued), and it fetches again.
    await proxy.restore();
    await a.waitForLog(/heartbeats written again after \d+ ms fenced; fetching again/, 20000);
    const solo = await db.client.insert({
      worker: 'ticker',
      queue: 'solo',
      args: { file, ms: 10 },
    });
    await eventually(
      async () => {
        const [row] = await db.query<{ state: string; node: string }>(
          `SELECT state::text, attempted_by[1] AS node FROM jobs WHERE id = $1`,
          [solo.id],
        );
        return row?.state === 'completed' && row.node === 'split-a';
      },
      20000,
      'a new job run by split-a after it reconnected',
    );
    const after = await db.query<{ state: string; node: string; attempt: number; errors: string }>(
      `SELECT state::text, attempted_by[1] AS node, attempt, errors::text FROM jobs WHERE queue = 'long' ORDER BY id`,
    );
    for (const row of after) {
      assert.equal(row.state, 'completed', 'the old runner did not overwrite what B recorded');
      assert.equal(row.node, 'split-b');
      assert.match(row.errors, /rescued: node split-a stopped sending heartbeats/);
    }
  });

  it('a node that lost its heartbeats gives back its queues as they were: a paused queue stays paused', async function () {
    this.timeout(60000);
    const file = path.join(mkdtempSync(path.join(tmpdir(), 'quern-fence-')), 'ticks.txt');
    const node = await startNode(db.schema, proxy.url, {
      node: 'fenced',
      heartbeatInterval: 200,
      heartbeatTimeout: 2000,
      queues: { default: { limit: 1, pollInterval: 200 }, held: { limit: 1, paused: true } },
      // Alone, it leads again on reconnecting, and its lifeline could rescue its own (stopped)
      // job before its first heartbeat lands; this test is about the job going back by itself.
      plugins: { lifeline: false },
    });
    nodes.push(node);
    const job = await db.client.insert({ worker: 'ticker', args: { file, ms: 60000 } });
    await node.telemetry.waitFor('job:start', (e) => e.id === job.id);
    const fence = node.telemetry.waitFor('node:fence', undefined, 20000);
    await proxy.cut();
    const fenced = await fence;
    assert.equal(fenced.node, 'fenced');
    assert.equal(fenced.jobs, 1);
    assert.ok(fenced.silentMs >= 1350 && fenced.silentMs < 1800, `fenced at ${fenced.silentMs} ms`);
    assert.match(fenced.reason, /no heartbeat written for \d+ ms/);
    const runs = runsWithoutOverlap(readLines(file), job.id);
    await eventually(() =>
      Promise.resolve(node.supervisors.get('default')!.producer.runningCount === 0),
    );
    assert.equal(runs[0]!.lines.length > 0, true);

    const lifted = node.telemetry.waitFor('node:unfence', undefined, 20000);
    // The interrupted outcome was held; written now, the job is available again, attempt refunded.
    const back = node.telemetry.waitFor('job:stop', (e) => e.id === job.id, 20000);
    await proxy.restore();
    await lifted;
    assert.equal((await back).state, 'available');
    assert.equal(node.supervisors.get('held')!.producer.paused, true, 'held stays paused');
    assert.equal(node.supervisors.get('default')!.producer.fenced, false);
    // The same job runs again here, as attempt 1 (the fenced attempt was given back).
    const again = await node.telemetry.waitFor('job:start', (e) => e.id === job.id, 20000);
    assert.equal(again.attempt, 1);
    const [row] = await db.query<{ errors: string }>(
      `SELECT errors::text FROM jobs WHERE id = $1`,
      [job.id],
    );
    assert.equal(row!.errors, '[]', 'no error entry: it went back by itself');
    await db.client.cancel(job.id);
  });

  /**
   * Freezes the proxy (its connections hang, old and new) until the node fences, then lets new
   * connections through, the old ones still hung, until it unfences.
   */
  async function hangUntilUnfenced(node: QuernNode): Promise<void> {
    const fence = node.telemetry.waitFor('node:fence', undefined, 20000);
    proxy.freeze();
    await fence;
    const lifted = node.telemetry.waitFor('node:unfence', undefined, 20000);
    proxy.thaw();
    await lifted;
  }

  async function runsAJob(node: QuernNode): Promise<void> {
    const job = await db.client.insert({ worker: 'ok', args: {} });
    const stop = await node.telemetry.waitFor('job:stop', (e) => e.id === job.id, 20000);
    assert.equal(stop.state, 'completed');
  }

  it('connections that hang for good (a firewall that lost their state) do not keep it fenced once new ones get through', async function () {
    // Nothing bounded a query: the heartbeat in flight on a hung connection never ended, no
    // other heartbeat was sent, and the node stayed fenced (its fetch and outcome writes hung
    // too) until the kernel gave the connection up, about 15 minutes later.
    this.timeout(60000);
    const node = await startNode(db.schema, proxy.url, {
      node: 'hung',
      heartbeatInterval: 200,
      heartbeatTimeout: 2000,
      queues: { default: { limit: 2, pollInterval: 200 } },
      plugins: { lifeline: false },
    });
    nodes.push(node);
    const before = await db.client.insert({ worker: 'ok', args: {} });
    await node.telemetry.waitFor('job:stop', (e) => e.id === before.id);
    try {
      await hangUntilUnfenced(node);
      await runsAJob(node);
    } finally {
      // Unfixed, the hung heartbeat would hold the node's stop too.
      await proxy.cut();
    }
  });

  it('a LISTEN connection that hangs for good is replaced: inserts wake the queue again', async function () {
    // pg-listen checks its connection with a query and reconnects when that fails, but the
    // query had no bound: on a hung connection it waited for good, and no notification came.
    // A long poll, and no breaker trip: only a notification (or a reconnect) wakes the queue.
    this.timeout(60000);
    const node = await startNode(db.schema, proxy.url, {
      node: 'deaf',
      heartbeatInterval: 200,
      heartbeatTimeout: 2000,
      queues: { default: { limit: 2, pollInterval: 60000 } },
      breaker: { failures: 1000 },
      plugins: { lifeline: false },
    });
    nodes.push(node);
    try {
      await hangUntilUnfenced(node);
      await runsAJob(node);
    } finally {
      await proxy.cut();
    }
  });

  it('a follower whose leadership connection hangs for good leads once new connections get through', async function () {
    // Its try for the lock on the hung connection never ended, and it never tried again: with
    // the leader gone, no node led (no rescue, staging or cron) until the kernel gave up.
    this.timeout(60000);
    const settings = { heartbeatInterval: 200, heartbeatTimeout: 2000, queues: { default: 1 } };
    const leader = await startNode(db.schema, db.url, { node: 'lead-a', ...settings });
    nodes.push(leader);
    await eventually(() => Promise.resolve(leader.isLeader));
    const follower = await startNode(db.schema, proxy.url, { node: 'lead-b', ...settings });
    nodes.push(follower);
    try {
      // It tries for the lock every 200 ms: the fence, 1.3 s on, comes after a try went out.
      const fence = follower.telemetry.waitFor('node:fence', undefined, 20000);
      proxy.freeze();
      await fence;
      proxy.thaw();
      const elected = follower.telemetry.waitFor('leader:elected', undefined, 20000);
      await leader.stop();
      assert.equal((await elected).node, 'lead-b');
    } finally {
      await proxy.cut();
    }
  });
});

describe('fence timings', function () {
  it('stop, grace and deadline leave one heartbeatInterval before a rescue may come', function () {
    // The defaults: abort at 3 s without a heartbeat, threads terminated at 4 s, rescue from 5 s.
    assert.deepEqual(
      fenceTimings({ heartbeatInterval: 1000, heartbeatTimeout: 5000, cancelGracePeriod: 5000 }),
      { stopAfterMs: 3000, graceMs: 1000, deadlineMs: 4000 },
    );
    // A short cancelGracePeriod is kept whole; the abort then comes later.
    assert.deepEqual(
      fenceTimings({ heartbeatInterval: 200, heartbeatTimeout: 5000, cancelGracePeriod: 500 }),
      { stopAfterMs: 4300, graceMs: 500, deadlineMs: 4800 },
    );
    // The tightest timeout config allows: the abort still comes after two heartbeatIntervals.
    const tight = fenceTimings({
      heartbeatInterval: 1000,
      heartbeatTimeout: 4000,
      cancelGracePeriod: 5000,
    });
    assert.deepEqual(tight, { stopAfterMs: 2250, graceMs: 750, deadlineMs: 3000 });
  });
});

// A process paused past heartbeatTimeout (SIGSTOP, a frozen VM, a debugger) and then resumed: its
// overdue timers fire together. As leader, its lifeline saw its own heartbeat stale and rescued
// the job it was running itself, which it then fetched again while the old run (its thread not
// yet terminated by the fence) went on: the same job twice at once, on one node.
describe('a leader frozen past heartbeatTimeout, then resumed', function () {
  let db: TestSchema;
  const spawned: SpawnedNode[] = [];
  beforeEach(async function () {
    db = await createSchema(this.currentTest!.title);
  });
  afterEach(async function () {
    for (const node of spawned) node.child.kill('SIGKILL');
    await Promise.all(spawned.splice(0).map((n) => n.exited));
    await cleanup(this, db);
  });

  it('its lifeline leaves its own running job alone: the fence stops it, it runs once more, never twice at once', async function () {
    this.timeout(60000);
    const file = path.join(mkdtempSync(path.join(tmpdir(), 'quern-frozen-')), 'ticks.txt');
    const a = spawnCluster(
      [
        '--config',
        writeConfig({
          ...nodeConfig(db.schema, db.url),
          logLevel: 'info',
          heartbeatInterval: 200,
          heartbeatTimeout: 1000,
          cancelGracePeriod: 500,
          plugins: { stager: { interval: 200 }, lifeline: { interval: 100 } },
          queues: { long: { limit: 1, pollInterval: 200 } },
        }),
      ],
      { NODE_NAME: 'frozen-a' },
    );
    spawned.push(a);
    await a.waitForLog(/frozen-a is the leader/);
    const job = await db.client.insert({
      worker: 'ticker',
      queue: 'long',
      args: { file, ms: 60000, tick: 20, honour: false },
    });
    const runs = () =>
      new Set(
        readLines(file)
          .filter((l) => l.job === job.id)
          .map((l) => l.run),
      );
    await eventually(() => Promise.resolve(runs().size === 1), 10000, 'the job to start');
    a.child.kill('SIGSTOP');
    await new Promise((r) => setTimeout(r, 2500));
    a.child.kill('SIGCONT');
    await eventually(() => Promise.resolve(runs().size >= 2), 15000, 'the job to run again');
    await new Promise((r) => setTimeout(r, 1000));
    runsWithoutOverlap(readLines(file), job.id);
    const [row] = await db.query<{ errors: string }>(
      `SELECT errors::text FROM jobs WHERE id = $1`,
      [job.id],
    );
    assert.doesNotMatch(row!.errors, /rescued/);
    await db.client.cancel(job.id);
  });
});
