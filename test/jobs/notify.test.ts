// The notification an insert sends names the queues that may have a job to run now: a queue that
// got only jobs scheduled for later (scheduleIn) in the same batch is not woken for an empty fetch.

import assert from 'node:assert/strict';
import pg from 'pg';
import { cleanup, createSchema, eventually, type TestSchema } from '../helpers/db.js';

describe('insert notifications', function () {
  let db: TestSchema;
  let listener: pg.Client | undefined;
  const payloads: string[] = [];
  beforeEach(async function () {
    db = await createSchema(this.currentTest!.title);
    payloads.length = 0;
    listener = new pg.Client({ connectionString: db.url });
    await listener.connect();
    listener.on('notification', (n) => payloads.push(n.payload ?? ''));
    await listener.query(`LISTEN "${db.schema}_insert"`);
  });
  afterEach(async function () {
    await listener?.end();
    await cleanup(this, db);
  });

  it('name the queues with jobs to run now, not those that got only scheduleIn jobs', async function () {
    await db.client.insertMany([
      { worker: 'ok', queue: 'now' },
      { worker: 'ok', queue: 'later', scheduleIn: 60 },
      { worker: 'ok', queue: 'both', scheduleIn: 60 },
      { worker: 'ok', queue: 'both' },
      { worker: 'ok', queue: 'due', scheduledAt: new Date(Date.now() - 1000) },
    ]);
    // Only scheduled jobs: no notification at all. Then one more, so that the wait below ends
    // after every notification of the two batches before it has arrived.
    await db.client.insertMany([{ worker: 'ok', queue: 'later', scheduleIn: 60 }]);
    await db.client.insert({ worker: 'ok', queue: 'last' });
    await eventually(() => Promise.resolve(payloads.length >= 2), 5000, 'two notifications');
    assert.deepEqual(payloads, ['now,both,due', 'last']);
    const rows = await db.query<{ queue: string; state: string }>(
      `SELECT queue, state::text FROM jobs ORDER BY id`,
    );
    assert.deepEqual(
      rows.map((r) => `${r.queue}:${r.state}`),
      [
        'now:available',
        'later:scheduled',
        'both:scheduled',
        'both:available',
        'due:available',
        'later:scheduled',
        'last:available',
      ],
    );
  });
});
