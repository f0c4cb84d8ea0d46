import assert from 'node:assert/strict';
import { InsertError } from '../../src/jobs/insert.js';
import { defineWorker } from '../../src/worker/define.js';
import { cleanup, createSchema, type TestSchema } from '../helpers/db.js';

describe('insert API', function () {
  let db: TestSchema;
  beforeEach(async function () {
    db = await createSchema(this.currentTest!.title);
  });
  afterEach(async function () {
    await cleanup(this, db);
  });

  it('inserts one job with defaults and returns its row', async function () {
    const job = await db.client.insert({ worker: 'ok', args: { value: 1 } });
    assert.equal(job.state, 'available');
    assert.equal(job.queue, 'default');
    assert.equal(job.priority, 0);
    assert.equal(job.maxAttempts, 20);
    assert.equal(job.attempt, 0);
    assert.deepEqual(job.args, { value: 1 });
    assert.equal(job.conflict, false);
  });

  it('applies every option and the worker definition defaults', async function () {
    const worker = defineWorker<{ n: number }>({
      name: 'typed',
      queue: 'mailers',
      priority: 2,
      maxAttempts: 4,
      tags: ['w'],
      perform: () => undefined,
    });
    const fromDefinition = await db.client.insert({ worker, args: { n: 1 } });
    assert.equal(fromDefinition.queue, 'mailers');
    assert.equal(fromDefinition.priority, 2);
    assert.equal(fromDefinition.maxAttempts, 4);
    assert.deepEqual(fromDefinition.tags, ['w']);
    const at = new Date(Date.now() + 3600_000);
    const explicit = await db.client.insert({
      worker: 'ok',
      queue: 'q2',
      priority: 3,
      maxAttempts: 1,
      scheduledAt: at,
      tags: ['a', 'b'],
      meta: { m: true },
    });
    assert.equal(explicit.state, 'scheduled');
    assert.equal(explicit.scheduledAt.getTime(), at.getTime());
    assert.deepEqual(explicit.meta, { m: true });
    const later = await db.client.insert({ worker: 'ok', scheduleIn: 60 });
    assert.equal(later.state, 'scheduled');
    assert.ok(later.scheduledAt.getTime() - Date.now() > 50_000);
  });

  it('inserts thousands of jobs in one statement, in order', async function () {
    const jobs = Array.from({ length: 5000 }, (_, i) => ({ worker: 'ok', args: { i } }));
    const rows = await db.client.insertMany(jobs);
    assert.equal(rows.length, 5000);
    assert.deepEqual(
      rows.slice(0, 3).map((r) => r.args.i),
      [0, 1, 2],
    );
    const [count] = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM jobs');
    assert.equal(count!.n, 5000);
  });

  const bad: [string, Record<string, unknown>, string][] = [
    ['an unknown option', { worker: 'ok', queu: 'x' }, 'queu'],
    ['priority above 3', { worker: 'ok', priority: 4 }, 'priority'],
    ['priority below 0', { worker: 'ok', priority: -1 }, 'priority'],
    ['maxAttempts below 1', { worker: 'ok', maxAttempts: 0 }, 'maxAttempts'],
    ['args that are an array', { worker: 'ok', args: [1] }, 'args'],
    ['args that are a string', { worker: 'ok', args: 'x' }, 'args'],
    ['args with a NUL character', { worker: 'ok', args: { s: 'a\u0000b' } }, 'args'],
    ['args with a lone surrogate', { worker: 'ok', args: { s: 'a\uD800b' } }, 'args'],
    ['args with a BigInt', { worker: 'ok', args: { n: 10n } }, 'args'],
    ['args with a function', { worker: 'ok', args: { f: () => 1 } }, 'args'],
    ['a missing worker', { args: {} }, 'worker'],
    ['a bad queue name', { worker: 'ok', queue: 'Bad Queue' }, 'queue'],
    ['a negative scheduleIn', { worker: 'ok', scheduleIn: -1 }, 'scheduleIn'],
    ['an invalid scheduledAt', { worker: 'ok', scheduledAt: new Date('nope') }, 'scheduledAt'],
  ];
  for (const [what, job, field] of bad) {
    it(`rejects ${what}, naming the field, and writes nothing`, async function () {
      await assert.rejects(
        db.client.insertMany([{ worker: 'ok' }, job as never]),
        (error: unknown) => {
          assert.ok(error instanceof InsertError, String(error));
          assert.equal(error.field, field);
          assert.match(error.message, new RegExp(field));
          return true;
        },
      );
      const [count] = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM jobs');
      assert.equal(count!.n, 0);
    });
  }

  it('rejects args with a cycle', async function () {
    const args: Record<string, unknown> = {};
    args.self = args;
    await assert.rejects(db.client.insert({ worker: 'ok', args }), /cycle/);
  });

  it('commits and rolls back with the caller transaction', async function () {
    const client = await db.pool.connect();
    try {
      await client.query('BEGIN');
      await db.client.insert({ worker: 'ok', args: { keep: false } }, { client });
      await client.query('ROLLBACK');
      await client.query('BEGIN');
      await db.client.insert({ worker: 'ok', args: { keep: true } }, { client });
      await client.query('COMMIT');
    } finally {
      client.release();
    }
    const rows = await db.query<{ args: { keep: boolean } }>('SELECT args FROM jobs');
    assert.deepEqual(
      rows.map((r) => r.args.keep),
      [true],
    );
  });
});
