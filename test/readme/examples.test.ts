// The README's examples for defining workers (typed args), transactions, unique jobs,
// priorities, testing and isolation, run as written. Each region between the markers is checked
// against README.md by readme.test.ts; the code around a region sets up what the README leaves
// to the reader and asserts what the README says happens.

import assert from 'node:assert/strict';
import pg from 'pg';
import { loadConfig, Quern, QuernNode } from '../../src/index.js';
import { InsertError } from '../../src/jobs/insert.js';
import {
  allEnqueued,
  assertEnqueued,
  drainQueue,
  performJob,
  refuteEnqueued,
  useQuern,
} from '../../src/testing/index.js';
import { defineWorker } from '../../src/worker/define.js';
import { cleanup, createSchema, databaseUrl, eventually, type TestSchema } from '../helpers/db.js';
import { startNode } from '../helpers/node.js';

/**
 * A database of its own, for examples that use fixed schema names ('quern', 'tenant_a'), so they
 * never meet another run's on the shared server.
 */
async function privateDatabase(): Promise<{ url: string; drop: () => Promise<void> }> {
  const admin = new pg.Client({ connectionString: databaseUrl() });
  await admin.connect();
  const database = `quern_readme_${process.pid}`;
  await admin.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
  await admin.query(`CREATE DATABASE ${database}`);
  const url = new URL(databaseUrl());
  url.pathname = `/${database}`;
  return {
    url: url.toString(),
    async drop() {
      await admin.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`).catch(() => undefined);
      await admin.end();
    },
  };
}

describe('README examples', function () {
  let db: TestSchema;
  let quern: Quern;
  beforeEach(async function () {
    db = await createSchema(this.currentTest!.title);
    quern = db.client;
  });
  afterEach(async function () {
    useQuern(null);
    await cleanup(this, db);
  });

  it('Defining workers: typed args and validation', async function () {
    const sent: string[] = [];
    const mailer = {
      send: (to: string, subject: string) => Promise.resolve(void sent.push(`${to}:${subject}`)),
    };
    // README example: typed-worker
    const sendEmail = defineWorker<{ to: string; subject: string }>({
      name: 'send-email',
      queue: 'mailers',
      validate(args) {
        return /@/.test(String((args as { to?: unknown }).to)) ? null : 'to: not an email';
      },
      async perform(job) {
        await mailer.send(job.args.to, job.args.subject); // job.args: { to: string; subject: string }
      },
    });

    await quern.insert({ worker: sendEmail, args: { to: 'ada@example.com', subject: 'Hi' } });
    // @ts-expect-error: subject is missing
    await quern.insert({ worker: sendEmail, args: { to: 'ada@example.com' } });
    // Rejected before anything is written: InsertError, 'job.args: rejected by worker "send-email"'
    await assert.rejects(quern.insert({ worker: sendEmail, args: { to: 'nobody', subject: 'x' } }));
    // end README example
    await assert.rejects(
      quern.insert({ worker: sendEmail, args: { to: 'nobody', subject: 'x' } }),
      (e: unknown) => e instanceof InsertError && /rejected by worker "send-email"/.test(e.message),
    );
    const rows = await db.query<{ queue: string }>('SELECT queue FROM jobs');
    assert.deepEqual(rows, [{ queue: 'mailers' }, { queue: 'mailers' }]);
    const outcome = await performJob(sendEmail, { to: 'ada@example.com', subject: 'Hi' });
    assert.equal(outcome.state, 'completed');
    assert.deepEqual(sent, ['ada@example.com:Hi']);
  });

  it('Enqueueing: inside your transaction', async function () {
    await db.query('CREATE TABLE users (id serial PRIMARY KEY, email text UNIQUE)');
    const pool = new pg.Pool({
      connectionString: databaseUrl(),
      max: 2,
      options: `-c search_path=${db.schema}`,
    });
    const signUp = async (email: string): Promise<void> => {
      // README example: transaction
      const client = await pool.connect();
      try {
        await client.query('BEGIN');
        const { rows } = await client.query<{ id: number }>(
          'INSERT INTO users (email) VALUES ($1) RETURNING id',
          [email],
        );
        await quern.insert({ worker: 'welcome-email', args: { user: rows[0]!.id } }, { client });
        await client.query('COMMIT'); // the job exists, and its queue wakes, only now
      } catch (error) {
        await client.query('ROLLBACK'); // no job, no notification
        throw error;
      } finally {
        client.release();
      }
      // end README example
    };
    try {
      await signUp('ada@example.com');
      await assert.rejects(signUp('ada@example.com'), /duplicate key/);
      const jobs = await db.query<{ args: unknown }>('SELECT args FROM jobs');
      assert.deepEqual(jobs, [{ args: { user: 1 } }], 'the failed sign-up left no job');
    } finally {
      await pool.end();
    }
  });

  it('Unique jobs', async function () {
    const synced: number[] = [];
    const sync = (account: number) => void synced.push(account);
    // README example: unique
    // At most one digest per user and day, however often it is asked for.
    const digest = await quern.insert({
      worker: 'daily-digest',
      args: { user: 42, day: '2026-12-03', reason: 'login' },
      unique: { keys: ['user', 'day'], period: 'infinity' },
    });
    // digest.conflict is true when the job already existed: nothing was written

    // A debounce: a new insert moves the waiting job (and its args) instead of adding one.
    await quern.insert({
      worker: 'reindex',
      args: { doc: 7, reason: 'edit' },
      scheduleIn: 30,
      unique: { keys: ['doc'], states: ['scheduled'], replace: ['args', 'scheduledAt'] },
    });

    const syncAccount = defineWorker<{ account: number }>({
      name: 'sync-account',
      unique: { period: 300 }, // one per account per 5 minutes, unless it was cancelled or discarded
      perform: (job) => sync(job.args.account),
    });
    // end README example
    assert.equal(digest.conflict, false);
    const again = await quern.insert({
      worker: 'daily-digest',
      args: { user: 42, day: '2026-12-03', reason: 'email link' },
      unique: { keys: ['user', 'day'], period: 'infinity' },
    });
    assert.equal(again.conflict, true);
    assert.equal(again.id, digest.id);
    const moved = await quern.insert({
      worker: 'reindex',
      args: { doc: 7, reason: 'second edit' },
      scheduleIn: 30,
      unique: { keys: ['doc'], states: ['scheduled'], replace: ['args', 'scheduledAt'] },
    });
    assert.equal(moved.conflict, true);
    assert.deepEqual(moved.args, { doc: 7, reason: 'second edit' });
    const first = await quern.insert({ worker: syncAccount, args: { account: 1 } });
    const second = await quern.insert({ worker: syncAccount, args: { account: 1 } });
    assert.deepEqual([first.conflict, second.conflict], [false, true]);
    assert.equal((await performJob(syncAccount, { account: 3 })).state, 'completed');
    assert.deepEqual(synced, [3]);
    const [count] = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM jobs');
    assert.equal(count!.n, 3);
  });

  it('Priorities', async function () {
    const node = await startNode(db.schema, db.url, {
      queues: { default: { limit: 1, paused: true } },
    });
    try {
      const to = 'ada@example.com';
      // README example: priorities
      await quern.insert({ worker: 'send-newsletter', args: { to }, priority: 3 }); // runs last
      await quern.insert({ worker: 'send-email', args: { to } }); // priority 0, the default
      await quern.insert({ worker: 'send-email', args: { to }, priority: 1 });
      // end README example
      // The fixture folder has neither worker: each attempt fails at once, in fetch order.
      const started: number[] = [];
      node.telemetry.on('job:start', (e) => started.push(e.id));
      await quern.resumeQueue('default');
      await eventually(() => Promise.resolve(started.length === 3), 10000, 'three starts');
      assert.deepEqual(started, [2, 3, 1]);
    } finally {
      await node.stop();
    }
  });

  it('Testing', async function () {
    const { url, drop } = await privateDatabase();
    let app: Quern | undefined;
    const mailer = { send: () => Promise.resolve() };
    const sendEmail = defineWorker<{ to: string; subject: string }>({
      name: 'send-email',
      queue: 'mailers',
      perform: (job) => mailer.send().then(() => ({ ok: job.args.to })),
    });
    // The application code under test.
    const signUp = (email: string) =>
      app!.insert({ worker: sendEmail, args: { to: email, subject: 'Welcome' } });
    try {
      // README example: testing
      const quern = new Quern({ connectionString: url, workers: [sendEmail], testing: 'manual' });
      await quern.migrate(); // the tables, in the test database
      useQuern(quern); // once per file, e.g. in a before hook; or pass { quern } to each helper
      // end README example
      app = quern;
      // README example: testing

      // A worker on its own: perform runs here, after the insert checks; nothing is stored.
      const outcome = await performJob(sendEmail, { to: 'ada@example.com', subject: 'Hi' });
      assert.equal(outcome.state, 'completed');

      // What your code enqueued: args (and meta) are a partial match.
      await signUp('ada@example.com');
      await assertEnqueued({ worker: sendEmail, args: { to: 'ada@example.com' } });
      await refuteEnqueued({ worker: sendEmail, args: { to: 'bob@example.com' } });
      assert.equal((await allEnqueued({ queue: 'mailers' })).length, 1);

      // Run them, in order, here: the counts of what happened.
      const counts = await drainQueue({
        queue: 'mailers',
        withScheduled: true,
        withRecursion: true,
      });
      assert.deepEqual(counts, { completed: 1, failed: 0, cancelled: 0, discarded: 0, snoozed: 0 });
      // end README example
      const [job] = await quern.listJobs();
      assert.equal(job?.state, 'completed');
      assert.equal(job?.result, 'ada@example.com');
      await quern.close();
    } finally {
      await drop();
    }
  });

  it('Isolation: three instances in one process', async function () {
    this.timeout(60000);
    const { url: privateUrl, drop } = await privateDatabase();
    const saved = process.env.DATABASE_URL;
    process.env.DATABASE_URL = privateUrl;
    try {
      // README example: isolation
      // Three instances in one process: one schema and one node name each.
      const url = process.env.DATABASE_URL;
      function instance(schema: string) {
        const config = loadConfig({
          schema,
          node: `${schema}-1`,
          database: { url },
          logLevel: 'error',
        });
        return {
          node: new QuernNode(config),
          client: new Quern({ connectionString: url, schema }),
        };
      }
      const [a, b, c] = [instance('tenant_a'), instance('tenant_b'), instance('tenant_c')];
      await Promise.all([a, b, c].map(({ node }) => node.start())); // each migrates its own schema
      await a.client.insert({ worker: 'echo', args: { message: 'only tenant_a runs this' } });
      // ... a's node runs it; b and c have no job at all, and heard no notification.
      // end README example
      const done = await eventually(
        async () => {
          const [job] = await a.client.listJobs();
          return job?.state === 'completed' ? job : null;
        },
        20000,
        "tenant_a's job to complete",
      );
      assert.equal(done.attemptedBy?.[0], 'tenant_a-1');
      assert.equal(done.result, 'only tenant_a runs this');
      assert.deepEqual(await b.client.listJobs(), []);
      assert.deepEqual(await c.client.listJobs(), []);
      // README example: isolation
      for (const { node, client } of [a, b, c]) {
        await node.stop();
        await client.close();
      }
      // end README example
    } finally {
      process.env.DATABASE_URL = saved;
      if (saved === undefined) delete process.env.DATABASE_URL;
      await drop();
    }
  });
});
