// The insert edges a newcomer hits: the call options (`{ client }` only, a client that can
// query), and schedule times PostgreSQL cannot hold. Each is an InsertError naming the field
// (and the job, in insertMany) before anything is written.

import assert from 'node:assert/strict';
// As the public entry does (through db/connect.ts): pg returns int8 ids as numbers.
import '../../src/db/connect.js';
import { ClientClosedError, Quern } from '../../src/client.js';
import { InsertError } from '../../src/jobs/insert.js';
import { cleanup, createSchema, type TestSchema } from '../helpers/db.js';

describe('insert edges', function () {
  let db: TestSchema;
  beforeEach(async function () {
    db = await createSchema(this.currentTest!.title);
  });
  afterEach(async function () {
    await cleanup(this, db);
  });

  async function jobCount(): Promise<number> {
    const [row] = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM jobs');
    return row!.n;
  }

  function insertError(field: string, message: RegExp) {
    return (error: unknown): boolean => {
      assert.ok(error instanceof InsertError, String(error));
      assert.equal(error.field, field);
      assert.match(error.message, message);
      return true;
    };
  }

  it('every call on a closed client says the client was closed, not pg\'s "Cannot use a pool after calling end"', async function () {
    const quern = new Quern({ connectionString: db.url, schema: db.schema });
    await quern.insert({ worker: 'ok', args: {} });
    await quern.close();
    await quern.close(); // a second close is still fine
    const closed = (error: unknown): boolean => {
      assert.ok(error instanceof ClientClosedError, String(error));
      assert.equal(
        error.message,
        `this Quern client (schema "${db.schema}") was closed: close() ended its connection pool; create a new Quern to use the database again`,
      );
      return true;
    };
    await assert.rejects(quern.insert({ worker: 'ok', args: {} }), closed);
    await assert.rejects(quern.insertMany([{ worker: 'ok', unique: { period: 60 } }]), closed);
    await assert.rejects(quern.getJob(1), closed);
    await assert.rejects(quern.listJobs(), closed);
    await assert.rejects(quern.cancel(1), closed);
    await assert.rejects(quern.retry(1), closed);
    await assert.rejects(quern.pauseQueue('default'), closed);
    await assert.rejects(quern.scaleQueue('default', 5), closed);
    await assert.rejects(quern.stats(), closed);
    await assert.rejects(quern.migrate(), closed);
    assert.equal(await jobCount(), 1);
  });

  it('args past what one jsonb value holds are refused naming args, or the batch, before anything is sent', async function () {
    this.timeout(60000);
    // 2^28 characters: PostgreSQL keeps at most 2^28 - 1 bytes in one jsonb value.
    const big = 'x'.repeat(2 ** 28);
    await assert.rejects(
      db.client.insert({ worker: 'ok', args: { big } }),
      insertError('args', /^args: 256 MiB of JSON with its meta, more than PostgreSQL keeps/),
    );
    // Each job fits; the batch, sent as one jsonb array, does not.
    const half = big.slice(0, 2 ** 27 + 16);
    await assert.rejects(
      db.client.insertMany([
        { worker: 'ok', args: { half } },
        { worker: 'ok', args: { half } },
      ]),
      insertError(
        'jobs',
        /^jobs: the 2 jobs' args and meta come to 256 MiB .*insert fewer jobs at a time/,
      ),
    );
    await assert.rejects(
      db.client.insertMany([
        { worker: 'ok', args: { half, other: 1 }, unique: { keys: ['other'] } },
        { worker: 'ok', args: { half, other: 2 }, unique: { keys: ['other'] } },
      ]),
      insertError('jobs', /^jobs: the 2 jobs' args/),
    );
    assert.equal(await jobCount(), 0);
  });

  it('a misspelt option key is refused with the near one, inside a transaction nothing is written outside it', async function () {
    const client = await db.pool.connect();
    try {
      await client.query('BEGIN');
      await assert.rejects(
        db.client.insert({ worker: 'ok' }, { clinet: client } as never),
        insertError(
          'clinet',
          /options\.clinet: unknown option "clinet" \(did you mean "client"\?\)/,
        ),
      );
      await assert.rejects(
        db.client.insertMany([{ worker: 'ok' }], { client, tx: true } as never),
        insertError('tx', /unknown option "tx"/),
      );
      await client.query('ROLLBACK');
    } finally {
      client.release();
    }
    await assert.rejects(
      db.client.getJob(1, { clinet: db.pool } as never),
      insertError('clinet', /did you mean "client"/),
    );
    assert.equal(await jobCount(), 0);
  });

  it('null or undefined options are no options; a non-object is refused', async function () {
    const a = await db.client.insert({ worker: 'ok' }, null);
    const b = await db.client.insert({ worker: 'ok' }, undefined);
    const many = await db.client.insertMany([{ worker: 'ok' }], null);
    assert.equal(await jobCount(), 3);
    assert.equal((await db.client.getJob(a.id, null))?.id, a.id);
    assert.ok(b.id > a.id && many[0]!.id > b.id);
    await assert.rejects(
      db.client.insert({ worker: 'ok' }, 'client' as never),
      insertError('options', /options: expected an object such as \{ client \}, got "client"/),
    );
    assert.equal(await jobCount(), 3);
  });

  it('a hole in an insertMany array is refused as that job, not a TypeError; nothing is written', async function () {
    // eslint-disable-next-line no-sparse-arrays -- the point of the test
    const sparse = [, { worker: 'ok' }] as { worker: string }[];
    await assert.rejects(
      db.client.insertMany(sparse),
      insertError('job', /^jobs\[0\]: expected an object with a worker and args$/),
    );
    assert.equal(await jobCount(), 0);
  });

  it('a hole in tags is refused naming tags, not a TypeError; nothing is written', async function () {
    // eslint-disable-next-line no-sparse-arrays -- the point of the test
    const tags = [, 'a'] as string[];
    await assert.rejects(
      db.client.insertMany([{ worker: 'ok' }, { worker: 'ok', tags }]),
      insertError(
        'tags',
        /^jobs\[1\]\.tags: must be an array of non-empty strings, got undefined at tags\[0\]$/,
      ),
    );
    assert.equal(await jobCount(), 0);
  });

  it('a tag holding a lone surrogate is refused naming tags, not a DatabaseError; nothing is written', async function () {
    await assert.rejects(
      db.client.insertMany([{ worker: 'ok' }, { worker: 'ok', tags: ['fine', 'bad \uD800'] }]),
      insertError('tags', /^jobs\[1\]\.tags: tags\[1\] contains a lone UTF-16 surrogate/),
    );
    assert.equal(await jobCount(), 0);
  });

  it('a BigInt or a cycle given for an option is refused naming the option, not a TypeError from the message', async function () {
    const loop: Record<string, unknown> = {};
    loop.self = loop;
    const inserts: [Record<string, unknown>, string][] = [
      [{ priority: 1n }, 'priority'],
      [{ priority: loop }, 'priority'],
      [{ maxAttempts: 5n }, 'maxAttempts'],
      [{ scheduleIn: 5n }, 'scheduleIn'],
      [{ scheduledAt: loop }, 'scheduledAt'],
      [{ queue: 1n }, 'queue'],
      [{ unique: { period: 5n } }, 'unique'],
      [{ unique: { states: [1n] } }, 'unique'],
    ];
    for (const [options, field] of inserts) {
      await assert.rejects(
        db.client.insertMany([{ worker: 'ok' }, { worker: 'ok', ...options }]),
        (error: unknown) => {
          assert.ok(error instanceof InsertError, `${field}: ${String(error)}`);
          assert.match(error.message, new RegExp(`^jobs\\[1\\]\\.${field}[.:]`));
          return true;
        },
      );
    }
    assert.equal(await jobCount(), 0);
    const calls: [string, () => Promise<unknown>, RegExp][] = [
      ['cancel', () => db.client.cancel(loop as never), /^id: /],
      ['listJobs', () => db.client.listJobs({ queue: loop } as never), /^filter\.queue: /],
      ['scaleQueue', () => db.client.scaleQueue('default', 5n as never), /^limit: /],
      ['startQueue', () => db.client.startQueue('x', { limit: 5n } as never), /^limit: /],
      ['pauseQueue', () => db.client.pauseQueue(5n as never), /^queue: /],
      ['pauseQueue', () => db.client.pauseQueue('default', { node: 5n } as never), /^node: /],
    ];
    for (const [what, call, message] of calls) {
      await assert.rejects(call(), (error: unknown) => {
        assert.ok(!(error instanceof TypeError), `${what}: ${String(error)}`);
        assert.match((error as Error).message, message);
        return true;
      });
    }
  });

  it('a client without a query function is refused, naming client', async function () {
    for (const client of ['x', {}, null, 42]) {
      await assert.rejects(
        db.client.insert({ worker: 'ok' }, { client } as never),
        insertError('client', /options\.client: expected a pg client .*with a query function/),
      );
    }
    assert.equal(await jobCount(), 0);
  });

  const badTimes: [string, Record<string, unknown>, string, RegExp][] = [
    [
      'a scheduledAt past year 9999',
      { scheduledAt: new Date(8.64e15) },
      'scheduledAt',
      /jobs\[1\]\.scheduledAt: must be from 1970-01-01 to 9999-12-31 \(UTC\), got \+275760/,
    ],
    [
      'a scheduledAt before 1970',
      { scheduledAt: new Date(-1) },
      'scheduledAt',
      /jobs\[1\]\.scheduledAt: must be from 1970-01-01/,
    ],
    [
      'a scheduledAt that is a string',
      { scheduledAt: '2030-01-01T00:00:00Z' },
      'scheduledAt',
      /jobs\[1\]\.scheduledAt: must be a valid Date, got "2030/,
    ],
    [
      'a scheduleIn of 1e15 seconds',
      { scheduleIn: 1e15 },
      'scheduleIn',
      /jobs\[1\]\.scheduleIn: must be a number of seconds from 0 to 3153600000 \(100 years\), got 1000000000000000/,
    ],
    ['a NaN scheduleIn', { scheduleIn: NaN }, 'scheduleIn', /got NaN/],
  ];
  for (const [what, options, field, message] of badTimes) {
    it(`${what} is an InsertError naming the job and field; nothing of the batch is written`, async function () {
      await assert.rejects(
        db.client.insertMany([{ worker: 'ok' }, { worker: 'ok', ...options }]),
        insertError(field, message),
      );
      assert.equal(await jobCount(), 0);
    });
  }

  it('the ends of the windows are accepted and stored', async function () {
    const last = new Date(Date.UTC(9999, 11, 31, 23, 59, 59));
    const epoch = new Date(0);
    const [atEnd, atEpoch, farIn] = await db.client.insertMany([
      { worker: 'ok', scheduledAt: last },
      { worker: 'ok', scheduledAt: epoch },
      { worker: 'ok', scheduleIn: 3_153_600_000 }, // the stated maximum, 100 years
    ]);
    assert.equal(atEnd!.scheduledAt.getTime(), last.getTime());
    assert.equal(atEpoch!.scheduledAt.getTime(), 0);
    assert.equal(atEpoch!.state, 'available');
    const years = (farIn!.scheduledAt.getTime() - Date.now()) / (365 * 86400_000);
    assert.ok(years > 99.9 && years < 100.1, String(years));
    assert.equal(farIn!.state, 'scheduled');
  });
});
