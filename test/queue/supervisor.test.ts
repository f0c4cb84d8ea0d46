import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import sinon from 'sinon';
import type { QuernNode } from '../../src/node/node.js';
import type { TelemetryEvents } from '../../src/telemetry/events.js';
import { cleanup, createSchema, eventually, type TestSchema } from '../helpers/db.js';
import { nodeConfig, runCli, startNode, writeConfig } from '../helpers/node.js';

describe('queue supervisor: restart budget and workers that cannot load', function () {
  let db: TestSchema;
  let node: QuernNode | undefined;
  let clock: sinon.SinonFakeTimers | undefined;
  beforeEach(async function () {
    db = await createSchema(this.currentTest!.title);
  });
  afterEach(async function () {
    clock?.restore();
    clock = undefined;
    await node?.stop();
    node = undefined;
    await cleanup(this, db);
  });

  it('past the restart budget the queue is marked crashed, reported, and restarted after the backoff; other queues keep flowing', async function () {
    const lines: string[] = [];
    const log = pino(
      { level: 'info' },
      new Writable({
        write(chunk: Buffer, _encoding, done) {
          lines.push(chunk.toString());
          done();
        },
      }),
    );
    node = await startNode(
      db.schema,
      db.url,
      {
        queues: { crashy: { limit: 1, threads: 1 }, default: 2 },
        restartBudget: { restarts: 2, seconds: 60, backoff: 1500 },
        plugins: { stager: { interval: 50 } },
      },
      { log },
    );
    const events: string[] = [];
    for (const name of ['pool:crash', 'pool:restart', 'queue:crashed'] as const)
      node.telemetry.on(name, (e) => {
        if (e.queue === 'crashy') events.push(name);
      });
    const crashed = node.telemetry.waitFor('queue:crashed', (e) => e.queue === 'crashy');
    // Three thread deaths in a row: two are within the budget, the third is past it.
    await db.client.insertMany(
      Array.from({ length: 3 }, () => ({
        worker: 'crash',
        queue: 'crashy',
        args: { how: 'exit', delay: 0 },
        maxAttempts: 1,
      })),
    );
    const report: TelemetryEvents['queue:crashed'] = await crashed;
    const crashedAt = Date.now();
    assert.equal(report.retryInMs, 1500);
    assert.deepEqual(events, [
      'pool:crash',
      'pool:restart',
      'pool:crash',
      'pool:restart',
      'pool:crash',
      'queue:crashed',
    ]);
    assert.ok(
      lines.some((l) => /queue crashy crashed 3 times; retrying in 1500 ms/.test(l)),
      'a log line says so',
    );
    assert.equal(node.supervisors.get('crashy')!.crashed, true);

    // While crashy is down, its jobs wait and the default queue still runs.
    const waiting = await db.client.insert({ worker: 'ok', queue: 'crashy', args: { value: 'w' } });
    const flowing = await db.client.insertMany(
      Array.from({ length: 20 }, (_, i) => ({ worker: 'ok', args: { value: i } })),
    );
    await eventually(async () => {
      const [r] = await db.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM jobs WHERE id = ANY($1) AND state = 'completed'`,
        [flowing.map((j) => j.id)],
      );
      return r!.n === 20;
    });
    const [held] = await db.query('SELECT state FROM jobs WHERE id = $1', [waiting.id]);
    assert.equal(held!.state, 'available', 'the crashed queue fetches nothing');

    // After the backoff a fresh pool runs the queue again.
    await node.telemetry.waitFor('pool:restart', (e) => e.queue === 'crashy', 10000);
    assert.ok(Date.now() - crashedAt >= 1400, 'not before the backoff');
    await eventually(async () => {
      const [r] = await db.query('SELECT state FROM jobs WHERE id = $1', [waiting.id]);
      return r?.state === 'completed';
    });
    assert.equal(node.supervisors.get('crashy')!.crashed, false);
    const discarded = await db.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM jobs WHERE worker = 'crash' AND state = 'discarded'`,
    );
    assert.equal(discarded[0]!.n, 3, 'each killer job failed its one attempt');
  });

  it('a wall clock set back does not keep old thread deaths in the restart budget', async function () {
    // Deaths were timed with Date.now(): after the clock went back an hour, a death from before
    // stayed "within the last seconds" for that hour, and two deaths far apart marked the queue
    // crashed (its jobs left for other nodes, the queue down for the backoff).
    // Both clocks faked from the start (advancing in real time), so that they can be moved.
    clock = sinon.useFakeTimers({
      now: Date.now(),
      toFake: ['Date', 'performance'],
      shouldAdvanceTime: true,
    });
    node = await startNode(db.schema, db.url, {
      queues: { crashy: { limit: 1, threads: 1 } },
      restartBudget: { restarts: 1, seconds: 1, backoff: 60000 },
    });
    const crash = { worker: 'crash', queue: 'crashy', args: { how: 'exit', delay: 0 } };
    const first = await db.client.insert(crash);
    await node.telemetry.waitFor('pool:restart', (e) => e.queue === 'crashy');
    // The wall clock goes back an hour; then 1.5 s pass, more than the budget's window.
    clock.setSystemTime(Date.now() - 3_600_000);
    clock.tick(1500);
    const next = Promise.race([
      node.telemetry.waitFor('pool:restart', (e) => e.queue === 'crashy').then(() => 'restarted'),
      node.telemetry.waitFor('queue:crashed', (e) => e.queue === 'crashy').then(() => 'crashed'),
    ]);
    const second = await db.client.insert(crash);
    assert.equal(await next, 'restarted', 'two deaths 1.5 s apart fit a budget of 1 per second');
    assert.equal(node.supervisors.get('crashy')!.crashed, false);
    assert.notEqual(first.id, second.id);
  });

  const broken: [string, string, RegExp][] = [
    ['a syntax error', 'export default { name: "bad", perform( {\n', /SyntaxError|Unexpected/],
    [
      'a module that throws on import',
      'throw new Error("no config for this worker");\nexport default {};\n',
      /no config for this worker/,
    ],
  ];
  for (const [what, source, why] of broken) {
    it(`a worker module with ${what} stops the node at start, naming the file (exit 1)`, async function () {
      const workers = mkdtempSync(path.join(tmpdir(), 'quern-bad-workers-'));
      writeFileSync(
        path.join(workers, 'fine.js'),
        'export default { name: "fine", perform() {} };\n',
      );
      const file = path.join(workers, 'broken.js');
      writeFileSync(file, source);
      const config = writeConfig({ ...nodeConfig(db.schema, db.url), workers, logLevel: 'info' });
      const result = await runCli(['--config', config]);
      assert.equal(result.code, 1, result.stderr);
      assert.ok(result.stderr.includes(file), `names the file: ${result.stderr}`);
      assert.match(result.stderr, why);
      assert.doesNotMatch(result.stdout, /node .* started/);
    });
  }
});
