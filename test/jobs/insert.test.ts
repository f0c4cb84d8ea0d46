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

  it('stores the same rows whether a batch differs only in its args or in everything', async function () {
    // A batch that differs only in args is sent as its args and the rest once; any other batch
    // row by row. Both must store, and return, what the database holds.
    const uniform = await db.client.insertMany([
      { worker: 'ok', queue: 'q1', priority: 1, maxAttempts: 3, args: { s: 'é"\\', n: 1 } },
      { worker: 'ok', queue: 'q1', priority: 1, maxAttempts: 3, args: { deep: [1, { x: null }] } },
    ]);
    const mixed = await db.client.insertMany([
      { worker: 'ok', queue: 'q1', priority: 1, maxAttempts: 3, args: { s: 'é"\\', n: 1 } },
      { worker: 'ok', queue: 'q1', priority: 1, maxAttempts: 3, args: { deep: [1, { x: null }] } },
      { worker: 'ok', queue: 'q2', tags: ['t'], meta: { m: 1 }, args: {} },
      { worker: 'ok', scheduleIn: 60, args: {} },
    ]);
    const stored = await db.query(
      `SELECT id::int AS id, state::text AS state, queue, worker, args, meta, tags, priority,
              max_attempts, scheduled_at, inserted_at FROM jobs ORDER BY id`,
    );
    const returned = [...uniform, ...mixed];
    assert.equal(stored.length, 6);
    returned.forEach((job, i) => {
      const row = stored[i]!;
      assert.equal(job.id, row.id);
      assert.equal(job.state, row.state);
      assert.equal(job.queue, row.queue);
      assert.deepEqual(job.args, row.args);
      assert.deepEqual(job.meta, row.meta);
      assert.deepEqual(job.tags, row.tags);
      assert.equal(job.priority, row.priority);
      assert.equal(job.maxAttempts, row.max_attempts);
      assert.equal(job.scheduledAt.getTime(), (row.scheduled_at as Date).getTime());
      assert.equal(job.insertedAt.getTime(), (row.inserted_at as Date).getTime());
    });
    // The uniform rows equal their row-by-row twins, but for id and times.
    const strip = ({
      id: _i,
      scheduled_at: _s,
      inserted_at: _n,
      ...rest
    }: Record<string, unknown>) => rest;
    assert.deepEqual(strip(stored[0]!), strip(stored[2]!));
    assert.deepEqual(strip(stored[1]!), strip(stored[3]!));
    assert.equal(stored[5]!.state, 'scheduled');
  });

  it('returns the scheduled times the database stored for fractional scheduleIn', async function () {
    // The database adds scheduleIn to now() in whole microseconds (rounded); a returned time that
    // adds it in floating-point milliseconds is off by one where the two fall on either side of
    // a millisecond. Offsets of (i + 0.6) us for i < 1000 put one row on such an edge whatever
    // now() is.
    const jobs = Array.from({ length: 1000 }, (_, i) => ({
      worker: 'ok',
      args: { i },
      scheduleIn: (i + 0.6) / 1e6,
    }));
    const returned = await db.client.insertMany(jobs);
    const stored = await db.query<{ id: number; scheduled_at: Date; inserted_at: Date }>(
      'SELECT id::int AS id, scheduled_at, inserted_at FROM jobs',
    );
    const byId = new Map(stored.map((r) => [r.id, r]));
    const wrong = returned.filter(
      (job) =>
        job.scheduledAt.getTime() !== byId.get(job.id)!.scheduled_at.getTime() ||
        job.insertedAt.getTime() !== byId.get(job.id)!.inserted_at.getTime(),
    );
    assert.deepEqual(
      wrong.map((job) => [
        job.args.i,
        job.scheduledAt.toISOString(),
        byId.get(job.id)!.scheduled_at.toISOString(),
      ]),
      [],
    );
  });

  it('returns the right ids when another insert takes ids in between', async function () {
    // Two batches inserted at once may interleave their ids (a sequence hands out numbers to
    // whoever asks); each must still get its own, in order. The sequence steps by 7 here, so
    // that every batch has gaps between its ids, as it would when another took ids between.
    await db.query('ALTER SEQUENCE jobs_id_seq INCREMENT BY 7');
    const batch = (tag: string) =>
      Array.from({ length: 300 }, (_, i) => ({ worker: 'ok', args: { tag, i } }));
    const [a, b] = await Promise.all([
      db.client.insertMany(batch('a')),
      db.client.insertMany(batch('b')),
    ]);
    const stored = await db.query<{ id: number; tag: string; i: number }>(
      `SELECT id::int AS id, args->>'tag' AS tag, (args->>'i')::int AS i FROM jobs`,
    );
    const byId = new Map(stored.map((r) => [r.id, r]));
    for (const [tag, rows] of [
      ['a', a],
      ['b', b],
    ] as const) {
      rows.forEach((job, i) => {
        const row = byId.get(job.id);
        assert.ok(row, `job ${job.id} of batch ${tag} is not in the table`);
        assert.equal(row.tag, tag);
        assert.equal(row.i, i);
      });
    }
  });

  const bad: [string, Record<string, unknown>, string, RegExp?][] = [
    ['an unknown option', { worker: 'ok', queu: 'x' }, 'queu'],
    ['priority above 3', { worker: 'ok', priority: 4 }, 'priority'],
    ['priority below 0', { worker: 'ok', priority: -1 }, 'priority'],
    ['maxAttempts below 1', { worker: 'ok', maxAttempts: 0 }, 'maxAttempts'],
    // Said as the number given: JSON would print both as null.
    [
      'an Infinity maxAttempts',
      { worker: 'ok', maxAttempts: Infinity },
      'maxAttempts',
      /got Infinity$/,
    ],
    ['a NaN priority', { worker: 'ok', priority: NaN }, 'priority', /got NaN$/],
    ['args that are an array', { worker: 'ok', args: [1] }, 'args'],
    ['args that are a string', { worker: 'ok', args: 'x' }, 'args'],
    ['args with a NUL character', { worker: 'ok', args: { s: 'a\u0000b' } }, 'args'],
    ['args with a lone surrogate', { worker: 'ok', args: { s: 'a\uD800b' } }, 'args'],
    ['args with a BigInt', { worker: 'ok', args: { n: 10n } }, 'args'],
    ['args with a function', { worker: 'ok', args: { f: () => 1 } }, 'args'],
    ['a missing worker', { args: {} }, 'worker'],
    ['a bad queue name', { worker: 'ok', queue: 'Bad Queue' }, 'queue'],
    [
      'a tag with a NUL character',
      { worker: 'ok', tags: ['a', 'b\u0000'] },
      'tags',
      /tags\[1\] contains a NUL/,
    ],
    ['a negative scheduleIn', { worker: 'ok', scheduleIn: -1 }, 'scheduleIn'],
    ['an invalid scheduledAt', { worker: 'ok', scheduledAt: new Date('nope') }, 'scheduledAt'],
  ];
  for (const [what, job, field, message] of bad) {
    it(`rejects ${what}, naming the field, and writes nothing`, async function () {
      await assert.rejects(
        db.client.insertMany([{ worker: 'ok' }, job as never]),
        (error: unknown) => {
          assert.ok(error instanceof InsertError, String(error));
          assert.equal(error.field, field);
          assert.match(error.message, message ?? new RegExp(field));
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
