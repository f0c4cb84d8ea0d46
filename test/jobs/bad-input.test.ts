import assert from 'node:assert/strict';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { Quern } from '../../src/client.js';
import { CronQueries } from '../../src/db/queries/cron.js';
import { JobQueries } from '../../src/db/queries/jobs.js';
import { MaintenanceQueries } from '../../src/db/queries/maintenance.js';
import { NodeQueries } from '../../src/db/queries/nodes.js';
import { StatsQueries } from '../../src/db/queries/stats.js';
import { TestingQueries } from '../../src/db/queries/testing.js';
import { UniqueQueries } from '../../src/db/queries/unique.js';
import { InsertError } from '../../src/jobs/insert.js';
import type { QuernNode } from '../../src/node/node.js';
import { cleanup, createSchema, eventually, type TestSchema } from '../helpers/db.js';
import { ROOT, startNode } from '../helpers/node.js';

// Bad input at every edge: what jobs throw and return, args JSON cannot carry, huge args, job
// rows naming files, and names that would reach SQL text.
describe('bad input', function () {
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

  async function row(id: number, states: string[]) {
    return eventually(
      async () => {
        const [r] = await db.query('SELECT * FROM jobs WHERE id = $1', [id]);
        return r && states.includes(r.state as string) ? r : null;
      },
      20000,
      `job ${id} to reach ${states.join('/')}`,
    );
  }

  for (const mode of ['throw', 'error'] as const) {
    it(`a job error (${mode === 'throw' ? 'thrown' : '{ error }'}) holding a NUL and a lone surrogate is stored cleaned; the job ends retryable`, async function () {
      node = await startNode(db.schema, db.url);
      const job = await db.client.insert({ worker: 'dirty', args: { mode }, maxAttempts: 3 });
      const r = await row(job.id, ['retryable', 'discarded', 'completed']);
      assert.equal(r.state, 'retryable');
      const errors = r.errors as { error: string }[];
      assert.equal(errors.length, 1);
      assert.match(errors[0]!.error, /bad \uFFFD byte and a lone \uFFFD surrogate/);
      assert.equal(r.attempt, 1);
    });
  }

  it('a result holding a NUL and a lone surrogate is cleaned: completed, with a warning', async function () {
    node = await startNode(db.schema, db.url);
    const warnings: string[] = [];
    node.telemetry.on('job:warning', (e) => warnings.push(e.warning));
    const job = await db.client.insert({ worker: 'dirty', args: { mode: 'result' } });
    const r = await row(job.id, ['completed']);
    assert.deepEqual(r.result, {
      text: 'bad \uFFFD byte and a lone \uFFFD surrogate',
      'key\uFFFD': 1,
    });
    await eventually(() => Promise.resolve(warnings.length > 0));
    assert.match(warnings[0]!, /replaced/);
  });

  it('a result holding symbol keys is stored without them, and a warning names the path', async function () {
    node = await startNode(db.schema, db.url);
    const warnings: string[] = [];
    node.telemetry.on('job:warning', (e) => warnings.push(e.warning));
    const job = await db.client.insert({ worker: 'dirty', args: { mode: 'symbols' } });
    const r = await row(job.id, ['completed']);
    assert.deepEqual(r.result, { kept: 1, inner: {} });
    await eventually(() => Promise.resolve(warnings.length > 0));
    assert.deepEqual(warnings, [
      'changed to be stored as JSON: result.inner: symbol keys, dropped',
    ]);
  });

  it('a result holding an invalid Date is stored with null there, and a warning names the path', async function () {
    node = await startNode(db.schema, db.url);
    const warnings: string[] = [];
    node.telemetry.on('job:warning', (e) => warnings.push(e.warning));
    const job = await db.client.insert({ worker: 'dirty', args: { mode: 'dates' } });
    const r = await row(job.id, ['completed']);
    assert.deepEqual(r.result, { ok: '2024-01-01T00:00:00.000Z', bad: null });
    await eventually(() => Promise.resolve(warnings.length > 0));
    assert.deepEqual(warnings, [
      'changed to be stored as JSON: result.bad: an invalid Date, stored as null',
    ]);
  });

  it('a result holding NaN or Infinity is stored with null there, and a warning names each path', async function () {
    node = await startNode(db.schema, db.url);
    const warnings: { id: number; worker: string; warning: string }[] = [];
    node.telemetry.on('job:warning', (e) => warnings.push(e));
    const job = await db.client.insert({ worker: 'dirty', args: { mode: 'numbers' } });
    const r = await row(job.id, ['completed']);
    assert.deepEqual(r.result, {
      count: 3,
      stats: { mean: null, max: null },
      series: [1, null, 3],
    });
    await eventually(() => Promise.resolve(warnings.length > 0));
    assert.deepEqual(warnings, [
      {
        ...warnings[0]!,
        id: job.id,
        worker: 'dirty',
        warning:
          'changed to be stored as JSON: result.stats.mean: NaN, stored as null; result.stats.max: Infinity, stored as null; result.series[1]: -Infinity, stored as null',
      },
    ]);
  });

  const unstorable: [string, unknown, RegExp][] = [
    ['a BigInt', { n: 10n }, /args\.n: a BigInt cannot be stored as JSON/],
    ['a function', { f: () => 1 }, /args\.f: a function cannot be stored as JSON/],
    [
      'an invalid Date (it was stored as null)',
      { at: [new Date('not a date')] },
      /^job\.args\.at\[0\]: an invalid Date cannot be stored as JSON$/,
    ],
    [
      'a symbol key (it was stored as {})',
      { [Symbol('s')]: 1 },
      /^job\.args key Symbol\(s\): a symbol key cannot be stored as JSON$/,
    ],
    [
      'a symbol key deeper down',
      { a: [{ b: 1, [Symbol.for('t')]: 2 }] },
      /^job\.args\.a\[0\] key Symbol\(t\): a symbol key cannot be stored as JSON$/,
    ],
    [
      'a cycle',
      (() => {
        const a: Record<string, unknown> = {};
        a.self = a;
        return { a };
      })(),
      /cycle/,
    ],
    [
      'a getter that throws (it was a bare Error naming no field)',
      {
        user: {
          get email(): string {
            throw new Error('boom');
          },
        },
      },
      /^job\.args\.user\.email: reading it threw \(boom\)$/,
    ],
  ];
  for (const [what, args, message] of unstorable) {
    it(`args holding ${what}: a clear InsertError, nothing written`, async function () {
      await assert.rejects(
        db.client.insert({ worker: 'ok', args: args as Record<string, unknown> }),
        (error: Error) => error instanceof InsertError && message.test(error.message),
      );
      const [count] = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM jobs');
      assert.equal(count!.n, 0);
    });
  }

  it('10 MB args are stored and run byte-identical; insert notifications stay under 8000 bytes', async function () {
    this.timeout(60000);
    const listener = new pg.Client({ connectionString: db.url });
    await listener.connect();
    const payloads: string[] = [];
    listener.on('notification', (n) => payloads.push(n.payload ?? ''));
    await listener.query(`LISTEN "${db.schema}_insert"`);
    try {
      node = await startNode(db.schema, db.url);
      // Every UTF-16 unit class: ASCII, 2-, 3- and 4-byte UTF-8, escapes JSON must carry.
      const unit = 'abc "quoted" \\ back\nslash é € 𝄞 \t';
      const value = unit.repeat(Math.ceil((10 * 1024 * 1024) / Buffer.byteLength(unit)));
      assert.ok(Buffer.byteLength(value) >= 10 * 1024 * 1024);
      const job = await db.client.insert({ worker: 'ok', args: { value } });
      const r = await row(job.id, ['completed']);
      assert.ok((r.args as { value: string }).value === value, 'args byte-identical');
      assert.ok(r.result === value, 'the job saw (and returned) the same bytes');

      // Many queues in one statement: the payload falls back to '*' rather than grow.
      const queues = Array.from(
        { length: 300 },
        (_, i) => `q_${String(i).padStart(3, '0')}_${'x'.repeat(56)}`,
      );
      await db.client.insertMany(queues.map((queue) => ({ worker: 'ok', queue })));
      await eventually(() => Promise.resolve(payloads.length >= 2), 5000, 'two notifications');
      for (const payload of payloads)
        assert.ok(Buffer.byteLength(payload) < 8000, `payload of ${payload.length}`);
      assert.ok(payloads.includes('*'));
    } finally {
      await listener.end();
    }
  });

  it('a hand-inserted row whose worker is a path: an error on that job, no file loaded', async function () {
    const markerDir = mkdtempSync(path.join(tmpdir(), 'quern-marker-'));
    const marker = path.join(markerDir, 'loaded');
    process.env.QUERN_MARKER = marker;
    try {
      node = await startNode(db.schema, db.url);
      const target = path.join(ROOT, 'test', 'fixtures', 'outside', 'marker.js');
      const relative = path.relative(path.join(ROOT, 'test', 'fixtures', 'workers'), target);
      const names = ['../../etc/passwd', target, relative, relative.replace(/\.js$/, ''), 'marker'];
      const ids: number[] = [];
      for (const name of names) {
        const [inserted] = await db.query<{ id: number }>(
          `INSERT INTO jobs (worker, max_attempts) VALUES ($1, 1) RETURNING id`,
          [name],
        );
        ids.push(inserted!.id);
      }
      for (const id of ids) {
        const r = await row(id, ['discarded']);
        assert.match(JSON.stringify(r.errors), /unknown worker/);
      }
      assert.equal(existsSync(marker), false, 'the file was never loaded');
      const after = await db.client.insert({ worker: 'ok', args: { value: 1 } });
      await row(after.id, ['completed']);
    } finally {
      delete process.env.QUERN_MARKER;
    }
  });

  const hostile = [
    'quern"; DROP TABLE jobs; --',
    'Quern',
    'a b',
    'jobs.x',
    '1abc',
    '',
    'x'.repeat(64),
    'é',
  ];
  it('hostile schema names are refused by the client and by every query class, before any SQL', function () {
    const classes = [
      JobQueries,
      NodeQueries,
      MaintenanceQueries,
      CronQueries,
      StatsQueries,
      TestingQueries,
      UniqueQueries,
    ];
    for (const name of hostile) {
      assert.throws(() => new Quern({ connectionString: db.url, schema: name }), /schema/, name);
      for (const Queries of classes)
        assert.throws(() => new Queries(name), /identifier/, `${Queries.name} took ${name}`);
    }
  });

  it('hostile queue names are refused at insert, as a value never spliced into SQL', async function () {
    for (const queue of hostile) {
      await assert.rejects(
        db.client.insert({ worker: 'ok', queue }),
        (error: Error) => error instanceof InsertError && /queue/.test(error.message),
        queue,
      );
    }
    const [count] = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM jobs');
    assert.equal(count!.n, 0);
  });
});
