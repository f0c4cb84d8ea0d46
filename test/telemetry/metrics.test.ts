import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { ConfigError } from '../../src/config/validate.js';
import type { QuernNode } from '../../src/node/node.js';
import { cleanup, createSchema, eventually, type TestSchema } from '../helpers/db.js';
import { FIXTURE_WORKERS, spawnCluster, startNode, writeConfig } from '../helpers/node.js';

/** The value of one series in a Prometheus text exposition, or undefined when absent. */
function sample(
  text: string,
  name: string,
  labels: Record<string, string> = {},
): number | undefined {
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    const found: Record<string, string> = {};
    for (const m of (match[3] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) found[m[1]!] = m[2]!;
    if (Object.entries(labels).every(([k, v]) => found[k] === v)) return Number(match[4]);
  }
  return undefined;
}

describe('Prometheus metrics', function () {
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

  async function scrape(
    path = '/metrics',
  ): Promise<{ status: number; text: string; type: string }> {
    const address = node!.metrics!.address!;
    const response = await fetch(`http://127.0.0.1:${address.port}${path}`);
    return {
      status: response.status,
      text: await response.text(),
      type: response.headers.get('content-type') ?? '',
    };
  }

  it('are off unless configured', async function () {
    node = await startNode(db.schema, db.url);
    assert.equal(node.metrics, null);
  });

  it('serve job counters, the run-time histogram, depth, running jobs, leader and breaker over HTTP', async function () {
    node = await startNode(db.schema, db.url, {
      node: 'metrics-node',
      shutdownGracePeriod: 300,
      metrics: { port: 0 },
      queues: { default: 10, other: 2 },
    });
    assert.equal(node.metrics!.address!.address, '127.0.0.1', 'host defaults to 127.0.0.1');
    const jobs = await db.client.insertMany([
      { worker: 'ok', args: { value: 1 } },
      { worker: 'ok', args: { value: 2 } },
      { worker: 'ok', args: { value: 3 } },
      { worker: 'returns', args: { throw: 'x' }, maxAttempts: 1 },
    ]);
    await eventually(async () => {
      const rows = await db.query(
        `SELECT 1 FROM jobs WHERE id = ANY($1) AND state IN ('completed', 'discarded')`,
        [jobs.map((j) => j.id)],
      );
      return rows.length === 4;
    });
    await db.client.insert({ worker: 'ok', scheduleIn: 3600 });
    await db.client.insert({ worker: 'ok', queue: 'nobody_runs_this' });
    // Listening before inserting: the job can start before insert() returns.
    const starting = node.telemetry.waitFor('job:start', (e) => e.worker === 'slow');
    const slow = await db.client.insert({ worker: 'slow', queue: 'other', args: { ms: 60000 } });
    assert.equal((await starting).id, slow.id);
    await eventually(() => Promise.resolve(node!.isLeader));

    const { status, text, type } = await eventually(async () => {
      const scraped = await scrape();
      // counters are bumped when the outcome is written, which the rows above already show; the
      // slow job counts as running once its perform has begun on its thread (just after job:start)
      return sample(scraped.text, 'quern_jobs_total', { worker: 'returns' }) &&
        sample(scraped.text, 'quern_queue_running', { queue: 'other' }) === 1
        ? scraped
        : null;
    });
    assert.equal(status, 200);
    assert.match(type, /^text\/plain/);
    const labels = { node: 'metrics-node', queue: 'default' };
    assert.equal(
      sample(text, 'quern_jobs_total', { ...labels, worker: 'ok', state: 'completed' }),
      3,
    );
    assert.equal(
      sample(text, 'quern_jobs_total', { ...labels, worker: 'returns', state: 'discarded' }),
      1,
    );
    assert.equal(sample(text, 'quern_job_run_seconds_count', { ...labels, worker: 'ok' }), 3);
    assert.equal(
      sample(text, 'quern_job_run_seconds_bucket', { ...labels, worker: 'ok', le: '+Inf' }),
      3,
    );
    assert.ok(sample(text, 'quern_job_queue_seconds_count', { ...labels, worker: 'ok' })! >= 3);
    assert.equal(sample(text, 'quern_queue_jobs', { queue: 'default', state: 'scheduled' }), 1);
    assert.equal(
      sample(text, 'quern_queue_jobs', { queue: 'nobody_runs_this', state: 'available' }),
      1,
    );
    assert.equal(sample(text, 'quern_queue_jobs', { queue: 'other', state: 'executing' }), 1);
    assert.equal(
      sample(text, 'quern_queue_jobs', { queue: 'default', state: 'completed' }),
      undefined,
      'the finished history is not counted on each scrape',
    );
    assert.equal(sample(text, 'quern_queue_running', { queue: 'other' }), 1);
    assert.equal(sample(text, 'quern_queue_running', { queue: 'default' }), 0);
    assert.equal(sample(text, 'quern_queue_limit', { queue: 'other' }), 2);
    assert.equal(sample(text, 'quern_leader', { node: 'metrics-node' }), 1);
    assert.equal(sample(text, 'quern_circuit_state', { name: 'database', state: 'closed' }), 1);
    assert.equal(sample(text, 'quern_circuit_state', { name: 'database', state: 'open' }), 0);
    assert.ok(sample(text, 'process_resident_memory_bytes') !== undefined);

    assert.equal((await scrape('/other')).status, 404);
  });

  it('are served by cluster.js when configured', async function () {
    const config = writeConfig({
      schema: db.schema,
      database: { url: db.url },
      workers: FIXTURE_WORKERS,
      node: 'spawned-metrics',
      metrics: { port: 0 },
    });
    const child = spawnCluster(['--config', config]);
    try {
      const line = await child.waitForLog(/metrics on http:\/\/127\.0\.0\.1:\d+\/metrics/);
      const url = /(http:\/\/\S+\/metrics)/.exec(line)![1]!;
      await child.waitForLog(/node spawned-metrics started/);
      const job = await db.client.insert({ worker: 'ok' });
      await child.waitForLog(new RegExp(`job ${job.id} ok completed`));
      const text = await (await fetch(url)).text();
      const labels = { node: 'spawned-metrics', queue: 'default', worker: 'ok' };
      assert.equal(sample(text, 'quern_jobs_total', { ...labels, state: 'completed' }), 1);
      assert.equal(sample(text, 'quern_leader'), 1);
    } finally {
      child.child.kill('SIGTERM');
    }
    assert.equal((await child.exited).code, 0);
  });

  it('refuse to start on a port in use, naming the key', async function () {
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const { port } = blocker.address() as { port: number };
    try {
      await assert.rejects(
        startNode(db.schema, db.url, { metrics: { port } }),
        (error: Error) =>
          error instanceof ConfigError &&
          /metrics: cannot listen on 127\.0\.0\.1:\d+: EADDRINUSE/.test(error.message),
      );
    } finally {
      blocker.close();
    }
  });
});
