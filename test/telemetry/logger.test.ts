import assert from 'node:assert/strict';
import pino from 'pino';
import { loadConfig } from '../../src/config/load.js';
import type { QuernNode } from '../../src/node/node.js';
import { Telemetry } from '../../src/telemetry/events.js';
import { attachLogger } from '../../src/telemetry/logger.js';
import { cleanup, createSchema, eventually, type TestSchema } from '../helpers/db.js';
import { FIXTURE_WORKERS, spawnCluster, startNode, writeConfig } from '../helpers/node.js';

const SECRET = 'hunter2-do-not-log';

/** A pino logger whose lines are collected, parsed, in memory. */
function memoryLogger(level = 'info') {
  const lines: Record<string, unknown>[] = [];
  const raw: string[] = [];
  const log = pino(
    { level },
    {
      write(line: string) {
        raw.push(line);
        lines.push(JSON.parse(line) as Record<string, unknown>);
      },
    },
  );
  return { log, lines, text: () => raw.join('') };
}

describe('the default logger', function () {
  let db: TestSchema;
  let node: QuernNode | undefined;
  beforeEach(async function () {
    db = await createSchema(this.currentTest!.title);
  });
  afterEach(async function () {
    await node?.stop();
    node = undefined;
    await cleanup(this, db);
  });

  async function runAndLog(overrides: Record<string, unknown>, level = 'debug') {
    const memory = memoryLogger(level);
    node = await startNode(db.schema, db.url, overrides, { log: memory.log });
    const ok = await db.client.insert({ worker: 'ok', args: { value: 1, password: SECRET } });
    const bad = await db.client.insert({
      worker: 'returns',
      args: { throw: 'nope', password: SECRET },
      maxAttempts: 1,
    });
    await node.telemetry.waitFor('job:stop', (e) => e.id === bad.id);
    await eventually(() =>
      Promise.resolve(memory.lines.some((l) => l.id === ok.id && l.state === 'completed')),
    );
    return { ...memory, ok, bad };
  }

  it('logs job lines without args by default', async function () {
    const { lines, text, ok, bad } = await runAndLog({});
    const completed = lines.find((l) => l.id === ok.id && l.state === 'completed')!;
    assert.match(completed.msg as string, /^job \d+ ok completed in \d+ ms$/);
    assert.equal(completed.worker, 'ok');
    assert.equal(completed.queue, 'default');
    assert.equal(completed.args, undefined);
    const failed = lines.find((l) => l.id === bad.id && l.level === 40)!;
    assert.match(failed.msg as string, /failed \(attempt 1\), no attempts left/);
    assert.equal(failed.error, 'Error: nope');
    assert.ok(lines.some((l) => l.id === ok.id && /started/.test(l.msg as string)));
    assert.ok(!text().includes(SECRET), 'args never appear in the log');
  });

  it('includes args with logArgs', async function () {
    const { lines, ok, bad } = await runAndLog({ logArgs: true });
    const completed = lines.find((l) => l.id === ok.id && l.state === 'completed')!;
    assert.deepEqual(completed.args, { value: 1, password: SECRET });
    const failed = lines.find((l) => l.id === bad.id && l.level === 40)!;
    assert.deepEqual(failed.args, { throw: 'nope', password: SECRET });
  });

  it('attaches in one call and detaches', function () {
    const telemetry = new Telemetry();
    const memory = memoryLogger();
    const detach = attachLogger(telemetry, memory.log);
    telemetry.emit('queue:pause', { queue: 'q', node: 'n' });
    detach();
    telemetry.emit('queue:pause', { queue: 'q', node: 'n' });
    assert.deepEqual(
      memory.lines.map((l) => l.msg),
      ['queue q paused'],
    );
  });

  it('logs a lost notification connection at attempts 1, 2, 4, 8, ..., not at each 250 ms retry', function () {
    const telemetry = new Telemetry();
    const memory = memoryLogger();
    const detach = attachLogger(telemetry, memory.log);
    for (let attempt = 1; attempt <= 240; attempt++)
      // a minute of outage
      telemetry.emit('notifier:reconnect', { node: 'n', attempt });
    detach();
    assert.deepEqual(
      memory.lines.map((l) => l.attempt),
      [1, 2, 4, 8, 16, 32, 64, 128],
    );
    assert.equal(memory.lines[0]!.msg, 'notification connection lost; reconnecting (attempt 1)');
  });

  it('takes its level from config, LOG_LEVEL first', function () {
    assert.equal(loadConfig({ logLevel: 'warn' }, { env: {} }).logLevel, 'warn');
    assert.equal(
      loadConfig({ logLevel: 'warn' }, { env: { LOG_LEVEL: 'debug' } }).logLevel,
      'debug',
    );
    assert.equal(loadConfig({}, { env: {} }).logLevel, 'info');
  });

  it('is on by default in cluster.js, args redacted unless logArgs', async function () {
    const base = {
      schema: db.schema,
      database: { url: db.url },
      workers: FIXTURE_WORKERS,
      heartbeatInterval: 200,
    };
    for (const logArgs of [false, true]) {
      const config = writeConfig({ ...base, node: `log-${logArgs}`, logArgs });
      const child = spawnCluster(['--config', config], { LOG_LEVEL: undefined });
      try {
        await child.waitForLog(/node log-\w+ started/);
        const job = await db.client.insert({ worker: 'ok', args: { password: SECRET } });
        const line = await child.waitForLog(new RegExp(`job ${job.id} ok completed`));
        const parsed = JSON.parse(line) as { level: number; args?: unknown };
        assert.equal(parsed.level, 30);
        assert.equal(child.output().includes(SECRET), logArgs);
      } finally {
        child.child.kill('SIGTERM');
        assert.equal((await child.exited).code, 0);
        assert.match(child.output(), /"reason":"SIGTERM".*"msg":"node log-\w+ down"/);
      }
    }
  });

  it('README example: an error reporter on job:exception and circuit:trip', async function () {
    const memory = memoryLogger();
    node = await startNode(
      db.schema,
      db.url,
      { breaker: { failures: 1, windowMs: 1000, openMs: 100 } },
      { log: memory.log },
    );
    // A stand-in for Sentry, Honeybadger, Bugsnag...
    const reported: { error: Error; context: Record<string, unknown> }[] = [];
    const reporter = {
      captureException: (error: Error, context: Record<string, unknown>) =>
        reported.push({ error, context }),
    };

    // --- as in the README ---
    node.telemetry.on('job:exception', (e) => {
      const error = new Error(e.error);
      error.stack = e.stack;
      reporter.captureException(error, {
        tags: { worker: e.worker, queue: e.queue, node: e.node },
        extra: { job: e.id, attempt: e.attempt, willRetry: e.willRetry },
      });
    });
    node.telemetry.on('circuit:trip', (e) => {
      reporter.captureException(new Error(`database circuit ${e.name} tripped: ${e.error}`), {
        tags: { node: node!.name },
        extra: { failures: e.failures },
      });
    });
    // --- end ---

    const job = await db.client.insert({
      worker: 'returns',
      args: { throw: 'boom' },
      maxAttempts: 1,
    });
    await node.telemetry.waitFor('job:stop', (e) => e.id === job.id);
    await node.breaker
      .call(() =>
        Promise.reject(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' })),
      )
      .catch(() => undefined);
    assert.equal(reported.length, 2);
    assert.equal(reported[0]!.error.message, 'Error: boom');
    assert.match(reported[0]!.error.stack!, /returns\.js/);
    assert.deepEqual(reported[0]!.context, {
      tags: { worker: 'returns', queue: 'default', node: node.name },
      extra: { job: job.id, attempt: 1, willRetry: false },
    });
    assert.match(
      reported[1]!.error.message,
      /database circuit database tripped: connect ECONNREFUSED/,
    );
    assert.ok(memory.lines.some((l) => /circuit database tripped/.test(l.msg as string)));
  });
});
