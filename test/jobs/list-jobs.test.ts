// listJobs refuses a filter it cannot honour: a misspelt key or a state that does not exist
// would otherwise answer with every job, or with none, and look like a true answer.

import assert from 'node:assert/strict';
import '../../src/db/connect.js';
import { InsertError } from '../../src/jobs/insert.js';
import { cleanup, createSchema, type TestSchema } from '../helpers/db.js';

describe('listJobs filter', function () {
  let db: TestSchema;
  beforeEach(async function () {
    db = await createSchema(this.currentTest!.title);
  });
  afterEach(async function () {
    await cleanup(this, db);
  });

  function refused(field: string, message: RegExp) {
    return (error: unknown): boolean => {
      assert.ok(error instanceof InsertError, String(error));
      assert.equal(error.field, field);
      assert.match(error.message, message);
      return true;
    };
  }

  it('reads jobs back: getJob by id, listJobs newest first by state, queue and worker (README)', async function () {
    await db.client.insertMany(
      Array.from({ length: 3 }, (_, i) => ({
        worker: 'ok',
        queue: i === 1 ? 'other' : 'mailers',
        args: { i },
      })),
    );
    await db.query(`UPDATE jobs SET state = 'retryable', id = id + 41`);
    const quern = db.client;
    // README example: read-jobs
    const job = await quern.getJob(42); // JobRecord | null
    const stuck = await quern.listJobs({ state: 'retryable', queue: 'mailers', limit: 20 });
    // end README example
    assert.deepEqual(job?.args, { i: 0 });
    assert.deepEqual(
      stuck.map((j) => j.id),
      [44, 42],
    );
    assert.equal(await quern.getJob(7), null);
  });

  it('an unknown key, a state that is not one, a bad limit or a non-string name is refused naming it', async function () {
    await db.client.insert({ worker: 'ok', args: {} });
    const list = (filter: unknown) =>
      db.client.listJobs(filter as Parameters<typeof db.client.listJobs>[0]);
    await assert.rejects(
      list({ sate: 'available' }),
      refused('filter', /^filter: unknown key "sate" \(did you mean "state"\?\)/),
    );
    await assert.rejects(
      list({ state: 'failed' }),
      refused('state', /^filter\.state: expected one of scheduled, available, .*, got "failed"/),
    );
    for (const limit of [0, -1, 1.5, '5', Number.MAX_SAFE_INTEGER + 1])
      await assert.rejects(
        list({ limit }),
        refused('limit', /^filter\.limit: expected a whole number from 1/),
      );
    await assert.rejects(list({ queue: 7 }), refused('queue', /^filter\.queue: expected a string/));
    await assert.rejects(
      list({ worker: null }),
      refused('worker', /^filter\.worker: expected a string/),
    );
    await assert.rejects(list([]), refused('filter', /^filter: expected an object/));
    // What is allowed still answers.
    assert.equal(
      (await list({ state: 'available', queue: 'default', worker: 'ok', limit: 5 })).length,
      1,
    );
    assert.equal((await list(undefined)).length, 1);
  });

  it('a job id that is a BigInt is refused as an id, not a TypeError from building the message', async function () {
    for (const call of [
      () => db.client.getJob(5n as unknown as number),
      () => db.client.cancel(5n as unknown as number),
      () => db.client.retry(5n as unknown as number),
    ])
      await assert.rejects(
        call(),
        refused('id', /^id: expected a positive integer job id, got 5n$/),
      );
  });
});
