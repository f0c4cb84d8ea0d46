// Inserting inside the caller's transaction: a rollback leaves no job and wakes no queue (the
// NOTIFY is transactional too); a commit wakes the queue at once, long before any poll.

import assert from 'node:assert/strict';
import type pg from 'pg';
import type { QuernNode } from '../../src/node/node.js';
import { Notifier } from '../../src/notifier/notifier.js';
import { cleanup, createSchema, eventually, type TestSchema } from '../helpers/db.js';
import { startNode } from '../helpers/node.js';

describe("inserts in the caller's transaction", function () {
  let db: TestSchema;
  let node: QuernNode | undefined;
  let notifier: Notifier | undefined;
  let client: pg.PoolClient | undefined;
  beforeEach(async function () {
    db = await createSchema(this.currentTest!.title);
    node = undefined;
    notifier = undefined;
    client = await db.pool.connect();
  });
  afterEach(async function () {
    client?.release();
    await node?.stop();
    await notifier?.stop();
    await cleanup(this, db);
  });

  for (const unique of [false, true]) {
    const kind = unique ? 'a unique insert' : 'an insert';
    it(`a rollback of ${kind} leaves no job and sends no notification`, async function () {
      const heard: string[][] = [];
      notifier = new Notifier(db.url, db.schema);
      notifier.on('insert', (queues) => heard.push(queues));
      await notifier.start();
      await client!.query('BEGIN');
      await db.client.insert(
        { worker: 'ok', queue: 'rolled_back', ...(unique ? { unique: {} } : {}) },
        { client: client! },
      );
      await db.client.insertMany(
        [{ worker: 'ok', queue: 'rolled_back_many', ...(unique ? { unique: {} } : {}) }],
        { client: client! },
      );
      await client!.query('ROLLBACK');
      // A committed marker: notifications arrive in commit order, so had the rolled-back
      // inserts sent one, it would have come first.
      await db.client.insert({ worker: 'ok', queue: 'marker' });
      await eventually(() => Promise.resolve(heard.length > 0), 10000, 'the marker notification');
      assert.deepEqual(heard, [['marker']]);
      const rows = await db.query<{ queue: string }>('SELECT queue FROM jobs');
      assert.deepEqual(rows, [{ queue: 'marker' }]);
    });

    it(`a commit of ${kind} wakes the queue at once`, async function () {
      // Polling once a minute: only the notification can start the job within the test.
      node = await startNode(db.schema, db.url, {
        queues: { default: { limit: 2, pollInterval: 60000 } },
      });
      const started = node.telemetry.waitFor('job:start', () => true, 10000);
      await client!.query('BEGIN');
      const job = await db.client.insert(
        { worker: 'ok', args: { value: 'committed' }, ...(unique ? { unique: {} } : {}) },
        { client: client! },
      );
      const outside = await db.query('SELECT id FROM jobs');
      assert.equal(outside.length, 0, 'invisible until the commit');
      const committedAt = Date.now();
      await client!.query('COMMIT');
      const event = await started;
      assert.equal(event.id, job.id);
      assert.ok(Date.now() - committedAt < 10000);
      await node.telemetry.waitFor('job:stop', (e) => e.id === job.id, 10000);
    });
  }
});
