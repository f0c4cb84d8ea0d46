import assert from 'node:assert/strict';
import type { QuernNode } from '../../src/node/node.js';
import {
  Telemetry,
  type TelemetryEventName,
  type TelemetryEvents,
} from '../../src/telemetry/events.js';
import { cleanup, createSchema, eventually, type TestSchema } from '../helpers/db.js';
import { FIXTURE_WORKERS, runCli, spawnCluster, startNode, writeConfig } from '../helpers/node.js';

/** Records every payload of the named events, in order. */
function record(telemetry: Telemetry, events: TelemetryEventName[]) {
  const seen: { event: TelemetryEventName; payload: unknown }[] = [];
  for (const event of events) telemetry.on(event, (payload) => seen.push({ event, payload }));
  return {
    seen,
    of<K extends TelemetryEventName>(event: K): TelemetryEvents[K][] {
      return seen.filter((s) => s.event === event).map((s) => s.payload as TelemetryEvents[K]);
    },
  };
}

describe('the telemetry catalogue, as emitted by a running node', function () {
  let db: TestSchema;
  const nodes: QuernNode[] = [];
  beforeEach(async function () {
    db = await createSchema(this.currentTest!.title);
  });
  afterEach(async function () {
    await Promise.all(nodes.splice(0).map((n) => n.stop()));
    await cleanup(this, db);
  });
  async function start(overrides: Record<string, unknown> = {}, telemetry = new Telemetry()) {
    const node = await startNode(db.schema, db.url, overrides, { telemetry });
    nodes.push(node);
    return node;
  }

  it('job:start, job:stop and job:exception carry their documented payloads', async function () {
    const node = await start();
    const events = record(node.telemetry, ['job:start', 'job:stop', 'job:exception']);
    const ok = await db.client.insert({ worker: 'ok', args: { value: 7 } });
    const bad = await db.client.insert({
      worker: 'returns',
      args: { throw: 'boom' },
      maxAttempts: 2,
    });
    await node.telemetry.waitFor('job:stop', (e) => e.id === bad.id && e.state === 'discarded');
    await eventually(() => Promise.resolve(events.of('job:stop').some((e) => e.id === ok.id)));

    const started = events.of('job:start').find((e) => e.id === ok.id)!;
    assert.equal(started.worker, 'ok');
    assert.equal(started.queue, 'default');
    assert.equal(started.attempt, 1);
    assert.equal(started.node, node.name);
    assert.ok(started.queueTimeMs >= 0);
    assert.deepEqual(started.args, { value: 7 });

    const stop = events.of('job:stop').find((e) => e.id === ok.id)!;
    assert.equal(stop.state, 'completed');
    assert.equal(stop.result, 7);
    assert.ok(stop.durationMs >= 0 && stop.queueTimeMs >= 0);
    assert.equal(stop.worker, 'ok');
    assert.equal(stop.queue, 'default');

    const exceptions = events.of('job:exception').filter((e) => e.id === bad.id);
    assert.deepEqual(
      exceptions.map((e) => [e.attempt, e.willRetry, e.state]),
      [
        [1, true, 'retryable'],
        [2, false, 'discarded'],
      ],
    );
    assert.equal(exceptions[0]!.error, 'Error: boom');
    assert.match(exceptions[0]!.stack, /returns\.js/);
    // job:exception comes before the job:stop of the same attempt
    const order = events.seen
      .filter((s) => (s.payload as { id: number }).id === bad.id && s.event !== 'job:start')
      .map((s) => s.event);
    assert.deepEqual(order, ['job:exception', 'job:stop', 'job:exception', 'job:stop']);
  });

  it('queue changes sent from elsewhere are seen on the node that acts on them', async function () {
    const a = await start({ node: 'node-a' });
    const b = await start({ node: 'node-b' });
    const names: TelemetryEventName[] = [
      'queue:pause',
      'queue:resume',
      'queue:scale',
      'queue:start',
      'queue:stop',
    ];
    const onA = record(a.telemetry, names);
    const onB = record(b.telemetry, names);

    const pausing = b.telemetry.waitFor('queue:pause');
    await db.client.pauseQueue('default', { node: 'node-b' });
    const paused = await pausing;
    assert.deepEqual(paused, { queue: 'default', node: 'node-b' });
    const scaled = [a.telemetry.waitFor('queue:scale'), b.telemetry.waitFor('queue:scale')];
    await db.client.scaleQueue('default', 3);
    await Promise.all(scaled);
    const resuming = b.telemetry.waitFor('queue:resume');
    await db.client.resumeQueue('default', { node: 'node-b' });
    await resuming;
    const starting = a.telemetry.waitFor('queue:start');
    await db.client.startQueue('extra', { node: 'node-a', limit: 2 });
    assert.deepEqual(await starting, {
      queue: 'extra',
      node: 'node-a',
      limit: 2,
    });
    const stopping = a.telemetry.waitFor('queue:stop');
    await db.client.stopQueue('extra', { node: 'node-a' });
    assert.deepEqual(await stopping, { queue: 'extra', node: 'node-a' });

    assert.deepEqual(
      onA.seen.map((s) => s.event),
      ['queue:scale', 'queue:start', 'queue:stop'],
    );
    assert.deepEqual(
      onB.seen.map((s) => s.event),
      ['queue:pause', 'queue:scale', 'queue:resume'],
    );
    assert.deepEqual(onA.of('queue:scale')[0], { queue: 'default', node: 'node-a', limit: 3 });
  });

  it('with real cluster.js processes: a pause for one node is logged by that node only', async function () {
    const config = (name: string) =>
      writeConfig({
        node: name,
        schema: db.schema,
        database: { url: db.url },
        workers: FIXTURE_WORKERS,
        heartbeatInterval: 200,
      });
    const [a, b] = [
      spawnCluster(['--config', config('proc-a')]),
      spawnCluster(['--config', config('proc-b')]),
    ];
    try {
      await Promise.all([a.waitForLog(/node proc-a started/), b.waitForLog(/node proc-b started/)]);
      const sent = await runCli([
        'queue',
        'pause',
        'default',
        '--node',
        'proc-b',
        '--config',
        config('cli'),
      ]);
      assert.equal(sent.code, 0, sent.stderr);
      const line = await b.waitForLog(/queue default paused/);
      assert.match(line, /"node":"proc-b"/);
      // proc-a got the same notification: once proc-b has acted, proc-a has long had it too.
      const job = await db.client.insert({ worker: 'ok' });
      await a.waitForLog(new RegExp(`job ${job.id} ok completed`));
      assert.doesNotMatch(a.output(), /queue default paused/);
    } finally {
      a.child.kill('SIGTERM');
      b.child.kill('SIGTERM');
    }
    assert.deepEqual([(await a.exited).code, (await b.exited).code], [0, 0]);
  });

  it('a cancel sent from elsewhere is seen on the node running the job', async function () {
    const a = await start({ node: 'node-a' });
    const b = await start({ node: 'node-b' });
    const onA = record(a.telemetry, ['job:cancel']);
    const onB = record(b.telemetry, ['job:cancel']);
    // Listening before inserting: the job can start before insert() returns.
    const starting = Promise.race([
      a.telemetry.waitFor('job:start', (e) => e.worker === 'slow'),
      b.telemetry.waitFor('job:start', (e) => e.worker === 'slow'),
    ]);
    const job = await db.client.insert({ worker: 'slow', args: { ms: 60000 } });
    const started = await starting;
    assert.equal(started.id, job.id);
    const runner = started.node === 'node-a' ? a : b;
    const stopped = runner.telemetry.waitFor('job:stop', (e) => e.id === job.id);
    // Listen before asking: the notification can arrive before cancel() returns.
    const cancelSeen = runner.telemetry.waitFor('job:cancel');
    const result = await db.client.cancel(job.id);
    assert.equal(result.before, 'executing');
    assert.deepEqual(await cancelSeen, {
      id: job.id,
      node: runner.name,
      running: true,
    });
    assert.equal((await stopped).state, 'cancelled');
    const other = runner === a ? onB : onA;
    assert.equal(other.seen.length, 0, 'the other node does not act on it');
  });

  it('node, leader and plugin events, with the stager counts', async function () {
    const telemetry = new Telemetry();
    const events = record(telemetry, [
      'node:up',
      'node:down',
      'leader:elected',
      'leader:lost',
      'plugin:start',
      'plugin:stop',
    ]);
    const node = await start({}, telemetry);
    assert.deepEqual(events.of('node:up'), [{ node: node.name, queues: ['default'] }]);
    await eventually(() => Promise.resolve(events.of('leader:elected').length > 0));
    assert.deepEqual(events.of('leader:elected'), [{ node: node.name }]);
    await db.client.insert({ worker: 'ok', scheduleIn: 1 });
    const staged = await telemetry.waitFor(
      'plugin:stop',
      (e) => e.plugin === 'stager' && (e.staged ?? 0) > 0,
    );
    assert.equal(staged.staged, 1);
    assert.equal(staged.node, node.name);
    assert.ok(staged.durationMs >= 0);
    assert.ok(events.of('plugin:start').some((e) => e.plugin === 'stager'));
    await node.stop();
    assert.deepEqual(events.of('leader:lost'), [{ node: node.name, reason: 'node stopping' }]);
    assert.deepEqual(events.of('node:down'), [{ node: node.name, reason: 'stopped' }]);
  });

  it('plugin:stop carries the counts of the pruner, the lifeline and cron', async function () {
    // A finished job past maxAge, and a job left executing by a node that no longer exists.
    await db.query(`INSERT INTO jobs (state, worker, completed_at, scheduled_at)
                    VALUES ('completed', 'ok', now() - interval '1 h', now() - interval '1 h')`);
    await db.query(`INSERT INTO jobs (state, worker, attempt, attempted_at, attempted_by)
                    VALUES ('executing', 'ok', 1, now() - interval '1 h', ARRAY['ghost', 'ghost.1'])`);
    const telemetry = new Telemetry();
    const stops = record(telemetry, ['plugin:stop']);
    const counted = (plugin: string, key: 'pruned' | 'rescued' | 'inserted') =>
      eventually(
        () => Promise.resolve(stops.of('plugin:stop').find((e) => e.plugin === plugin && e[key])),
        10000,
        `${plugin} reporting ${key}`,
      );
    const node = await start(
      {
        queues: {},
        plugins: {
          pruner: { maxAge: 60, interval: 50 },
          lifeline: { interval: 50 },
          cron: { crontab: [{ expression: '@reboot', worker: 'ok' }] },
        },
      },
      telemetry,
    );
    const [pruned, rescued, inserted] = await Promise.all([
      counted('pruner', 'pruned'),
      counted('lifeline', 'rescued'),
      counted('cron', 'inserted'),
    ]);
    assert.equal(pruned.pruned, 1);
    assert.equal(rescued.rescued, 1);
    assert.equal(inserted.inserted, 1);
    for (const e of [pruned, rescued, inserted]) {
      assert.equal(e.node, node.name);
      assert.ok(e.durationMs >= 0);
    }
  });

  it('pool:crash and pool:restart when a worker thread dies', async function () {
    const node = await start();
    const restarted = node.telemetry.waitFor('pool:restart');
    const job = await db.client.insert({ worker: 'crash' });
    const crash = await node.telemetry.waitFor('pool:crash');
    assert.equal(crash.queue, 'default');
    assert.deepEqual(crash.jobs, [job.id]);
    assert.match(crash.error, /worker thread died/);
    assert.deepEqual(await restarted, { queue: 'default', node: node.name, restarts: 1 });
    // the queue still runs jobs
    const after = await db.client.insert({ worker: 'ok', args: { value: 1 } });
    await node.telemetry.waitFor('job:stop', (e) => e.id === after.id && e.state === 'completed');
  });

  it('circuit:trip, circuit:open and circuit:close around database failures', async function () {
    const node = await start({ breaker: { failures: 2, windowMs: 10000, openMs: 100 } });
    const events = record(node.telemetry, ['circuit:trip', 'circuit:open', 'circuit:close']);
    // Fault injection: two calls fail as if the database refused connections.
    const refused = (): Promise<never> =>
      Promise.reject(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }));
    for (let i = 0; i < 2; i++) await node.breaker.call(refused).catch(() => undefined);
    assert.deepEqual(events.of('circuit:trip'), [
      { name: 'database', error: 'connect ECONNREFUSED', failures: 2 },
    ]);
    assert.deepEqual(events.of('circuit:open'), [{ name: 'database' }]);
    // The next heartbeat after openMs is the probe; the database answers, so it closes.
    await node.telemetry.waitFor('circuit:close', undefined, 5000);
    assert.deepEqual(
      events.seen.map((s) => s.event),
      ['circuit:trip', 'circuit:open', 'circuit:close'],
    );
  });

  it('a listener that throws is reported on telemetry:error, never propagated', async function () {
    const node = await start();
    const reported: TelemetryEvents['telemetry:error'][] = [];
    node.telemetry.on('telemetry:error', (e) => reported.push(e));
    node.telemetry.on('job:start', () => {
      throw new Error('listener bug');
    });
    const afterThrow: number[] = [];
    node.telemetry.on('job:start', (e) => afterThrow.push(e.id));
    const job = await db.client.insert({ worker: 'ok', args: { value: 'fine' } });
    const stop = await node.telemetry.waitFor('job:stop', (e) => e.id === job.id);
    assert.equal(stop.state, 'completed');
    assert.deepEqual(afterThrow, [job.id], 'later listeners still run');
    assert.equal(reported.length, 1);
    assert.equal(reported[0]!.event, 'job:start');
    assert.equal(reported[0]!.error.message, 'listener bug');
    const [row] = await db.query('SELECT state FROM jobs WHERE id = $1', [job.id]);
    assert.equal(row!.state, 'completed');
  });

  it('emit never throws, even when a telemetry:error listener throws too', function () {
    const telemetry = new Telemetry();
    telemetry.on('telemetry:error', () => {
      throw new Error('reporter bug');
    });
    telemetry.on('node:up', () => {
      // eslint-disable-next-line @typescript-eslint/only-throw-error -- a listener may throw anything
      throw 'not even an Error';
    });
    assert.doesNotThrow(() => telemetry.emit('node:up', { node: 'x', queues: [] }));
  });
});
