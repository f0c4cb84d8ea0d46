// What a queue fetches and when: priority, then scheduled time, then id; never more than its free
// slots; scheduled jobs at their time; woken by an insert's notification, with polling as the
// fallback; only the queues the node is configured for.

import assert from 'node:assert/strict';
import pg from 'pg';
import sinon from 'sinon';
import type { QuernNode } from '../../src/node/node.js';
import { channelNames } from '../../src/db/identifiers.js';
import { cleanup, createSchema, eventually, type TestSchema } from '../helpers/db.js';
import { startNode } from '../helpers/node.js';

interface RunRow {
  id: number;
  state: string;
}

describe('fetching jobs', function () {
  let db: TestSchema;
  let node: QuernNode | undefined;
  let other: QuernNode | undefined;
  beforeEach(async function () {
    db = await createSchema(this.currentTest!.title);
    node = undefined;
  });
  afterEach(async function () {
    sinon.restore();
    await node?.stop();
    await other?.stop();
    other = undefined;
    await cleanup(this, db);
  });

  async function allIn(state: string, count: number): Promise<RunRow[]> {
    return eventually(
      async () => {
        const rows = await db.query<RunRow>('SELECT id, state FROM jobs ORDER BY id');
        return rows.length === count && rows.every((r) => r.state === state) ? rows : null;
      },
      20000,
      `${count} jobs ${state}`,
    );
  }

  it('runs jobs by priority, then scheduled time, then id', async function () {
    const minute = 60_000;
    const base = Date.now() - 10 * minute;
    // Inserted in an order that differs from the expected run order on every key.
    const specs = [
      { label: 'p2', priority: 2, at: base },
      { label: 'p0-late-id-a', priority: 0, at: base + 2 * minute },
      { label: 'p0-late-id-b', priority: 0, at: base + 2 * minute },
      { label: 'p1', priority: 1, at: base },
      { label: 'p0-early', priority: 0, at: base + minute },
      { label: 'p3', priority: 3, at: base - minute },
    ];
    const inserted = await db.client.insertMany(
      specs.map((s) => ({
        worker: 'record',
        args: { label: s.label },
        priority: s.priority,
        scheduledAt: new Date(s.at),
      })),
    );
    // Same scheduled time and priority: the lower id runs first.
    assert.ok(inserted[1]!.id < inserted[2]!.id);
    node = await startNode(db.schema, db.url, { queues: { default: { limit: 1, threads: 1 } } });
    const rows = await allIn('completed', specs.length);
    const order = await db.query<{ label: string }>(
      `SELECT args->>'label' AS label FROM jobs ORDER BY attempted_at, (result->>'startedAt')::bigint`,
    );
    assert.deepEqual(
      order.map((r) => r.label),
      ['p0-early', 'p0-late-id-a', 'p0-late-id-b', 'p1', 'p2', 'p3'],
    );
    assert.equal(rows.length, 6);
  });

  it('fetches only as many jobs as the queue has free slots', async function () {
    await db.client.insertMany(
      Array.from({ length: 9 }, () => ({ worker: 'span', args: { ms: 300 } })),
    );
    node = await startNode(db.schema, db.url, {
      queues: { default: { limit: 3, threads: 1, concurrency: 3, pollInterval: 50 } },
    });
    // While the first three run, the other six are still available, not claimed.
    const early = await eventually(
      async () => {
        const counts = await db.query<{ state: string; n: number }>(
          'SELECT state::text, count(*)::int AS n FROM jobs GROUP BY state',
        );
        const executing = counts.find((c) => c.state === 'executing')?.n ?? 0;
        return executing > 0 ? counts : null;
      },
      20000,
      'jobs executing',
    );
    assert.ok((early.find((c) => c.state === 'executing')?.n ?? 0) <= 3, JSON.stringify(early));
    await allIn('completed', 9);
    // From the rows alone: each job's perform ran from result.start to result.end; at no instant
    // were more than three running, and the queue did use its three slots.
    const spans = await db.query<{ start: string; end: string }>(
      `SELECT result->>'start' AS start, result->>'end' AS end FROM jobs`,
    );
    const edges = spans.flatMap((r) => [
      { t: Number(r.start), d: 1 },
      { t: Number(r.end), d: -1 },
    ]);
    edges.sort((a, b) => a.t - b.t || a.d - b.d);
    let claimed = 0;
    let most = 0;
    for (const edge of edges) {
      claimed += edge.d;
      most = Math.max(most, claimed);
    }
    assert.equal(most, 3, 'three at a time, never more');
    const threads = await db.query<{ n: number }>(
      `SELECT count(DISTINCT result->>'threadId')::int AS n FROM jobs`,
    );
    assert.equal(threads[0]!.n, 1, 'one thread ran three async jobs at once (concurrency 3)');
  });

  it('sizes the pool from the config: threads, and jobs per thread', async function () {
    await db.client.insertMany(
      Array.from({ length: 8 }, () => ({ worker: 'span', args: { ms: 300 } })),
    );
    node = await startNode(db.schema, db.url, {
      queues: { default: { limit: 4, threads: 2, concurrency: 2 } },
    });
    await allIn('completed', 8);
    const rows = await db.query<{ start: string; end: string; thread: string }>(
      `SELECT result->>'start' AS start, result->>'end' AS end, result->>'threadId' AS thread FROM jobs`,
    );
    assert.equal(new Set(rows.map((r) => r.thread)).size, 2, 'two threads');
    // Each thread ran two at once, never more.
    for (const thread of new Set(rows.map((r) => r.thread))) {
      const mine = rows.filter((r) => r.thread === thread);
      const edges = mine.flatMap((r) => [
        { t: Number(r.start), d: 1 },
        { t: Number(r.end), d: -1 },
      ]);
      edges.sort((a, b) => a.t - b.t || a.d - b.d);
      let now = 0;
      let most = 0;
      for (const edge of edges) most = Math.max(most, (now += edge.d));
      assert.equal(most, 2, `thread ${thread} ran ${most} at once`);
    }
  });

  it('runs a scheduled job at its time, to the second', async function () {
    node = await startNode(db.schema, db.url, {
      queues: { default: { limit: 5, pollInterval: 60000 } },
    });
    const job = await db.client.insert({ worker: 'ok', args: { value: 'later' }, scheduleIn: 1.5 });
    assert.equal(job.state, 'scheduled');
    const started = await node.telemetry.waitFor('job:start', (e) => e.id === job.id, 10000);
    const startedAt = Date.now();
    const [row] = await db.query<{ scheduled_at: Date; attempted_at: Date }>(
      'SELECT scheduled_at, attempted_at FROM jobs WHERE id = $1',
      [job.id],
    );
    const late = row!.attempted_at.getTime() - row!.scheduled_at.getTime();
    assert.ok(late >= 0, `ran ${-late} ms before its time`);
    assert.ok(late < 1500, `ran ${late} ms after its time`);
    assert.ok(startedAt - job.scheduledAt.getTime() < 2000);
    assert.equal(started.attempt, 1);
    await allIn('completed', 1);
  });

  it('an insert wakes the queue at once through its notification', async function () {
    // A one-minute poll: only the notification can start this job quickly.
    node = await startNode(db.schema, db.url, {
      queues: { default: { limit: 5, pollInterval: 60000 } },
    });
    const waiting = node.telemetry.waitFor('job:start', () => true, 10000);
    const before = Date.now();
    const job = await db.client.insert({ worker: 'ok', args: { value: 1 } });
    const started = await waiting;
    assert.equal(started.id, job.id);
    const elapsed = Date.now() - before;
    assert.ok(elapsed < 1000, `started ${elapsed} ms after the insert`);
  });

  it('a job inserted without a notification still runs, by the fallback poll', async function () {
    node = await startNode(db.schema, db.url, {
      queues: { default: { limit: 5, pollInterval: 300 } },
    });
    // Listening before inserting: the poll may claim the job before the INSERT's caller resumes.
    const starting = node.telemetry.waitFor('job:start', () => true, 10000);
    // A plain INSERT sends no NOTIFY.
    const [row] = await db.query<{ id: number }>(
      `INSERT INTO jobs (worker, queue, args) VALUES ('ok', 'default', '{"value": "polled"}') RETURNING id`,
    );
    const started = await starting;
    assert.equal(started.id, row!.id);
    assert.equal(started.queue, 'default');
    const [done] = await allIn('completed', 1);
    assert.equal(done!.id, row!.id);
  });

  it('runs only the configured queues and leaves jobs of other queues untouched', async function () {
    const other = await db.client.insert({ worker: 'ok', queue: 'elsewhere', args: {} });
    node = await startNode(db.schema, db.url, {
      queues: { default: { limit: 5, pollInterval: 100 } },
    });
    const first = await db.client.insert({ worker: 'ok', args: {} });
    await eventually(async () => {
      const [r] = await db.query<{ state: string }>('SELECT state FROM jobs WHERE id = $1', [
        first.id,
      ]);
      return r?.state === 'completed';
    });
    // Give the node several polls and another wake-up with the foreign job waiting.
    const secondDone = node.telemetry.waitFor('job:stop', (e) => e.worker === 'ok', 10000);
    await db.client.insert({ worker: 'ok', args: {} });
    await secondDone;
    assert.deepEqual([...node.supervisors.keys()], ['default']);
    const [row] = await db.query<{ state: string; attempt: number; attempted_by: unknown }>(
      'SELECT state, attempt, attempted_by FROM jobs WHERE id = $1',
      [other.id],
    );
    assert.deepEqual(row, { state: 'available', attempt: 0, attempted_by: null });
  });

  it('sends one notification per inserting statement, not per row', async function () {
    const listener = new pg.Client({ connectionString: db.url });
    await listener.connect();
    try {
      const channel = channelNames(db.schema).insert;
      const payloads: string[] = [];
      let sentinel: () => void = () => undefined;
      const sentinelSeen = new Promise<void>((resolve) => (sentinel = resolve));
      listener.on('notification', (message) => {
        if (message.channel !== channel) return;
        if (message.payload === 'sentinel') sentinel();
        else payloads.push(message.payload ?? '');
      });
      await listener.query(`LISTEN "${channel}"`);
      await db.client.insertMany(
        Array.from({ length: 1000 }, (_, i) => ({
          worker: 'ok',
          queue: i % 2 ? 'a' : 'b',
          args: { i },
        })),
      );
      // Notifications arrive in commit order: once this one is here, all earlier ones are too.
      await db.pool.query('SELECT pg_notify($1, $2)', [channel, 'sentinel']);
      await sentinelSeen;
      assert.equal(payloads.length, 1, `got ${payloads.length} notifications`);
      assert.deepEqual(payloads[0]!.split(',').sort(), ['a', 'b']);
    } finally {
      await listener.end();
    }
  });

  it('claims once per notification: a job finishing on an empty queue does not claim again', async function () {
    node = await startNode(db.schema, db.url, {
      queues: { default: { limit: 5, pollInterval: 60000 } },
    });
    const fetch = sinon.spy(node.jobs, 'fetch');
    for (let i = 0; i < 5; i++) {
      const stopped = node.telemetry.waitFor('job:stop', () => true, 10000);
      await db.client.insert({ worker: 'ok', args: { value: i } });
      await stopped;
    }
    // Each claim asked for 5 and got 1: the queue was empty, and stays so until something says
    // otherwise. Claiming again after each job (as before) made 10.
    assert.equal(fetch.callCount, 5);
    await allIn('completed', 5);
  });

  it('a job inserted while a short claim is in flight runs without waiting for the poll, even when the queue cannot claim again at once', async function () {
    // limit 1 on a thread that may run 2: nothing is handed out ahead, so claimed jobs wait here,
    // and with more than half of prefetch 4 waiting the queue claims no more for now.
    node = await startNode(db.schema, db.url, {
      queues: {
        default: { limit: 1, threads: 1, concurrency: 2, prefetch: 4, pollInterval: 60000 },
      },
    });
    const producer = node.supervisors.get('default')!.producer;
    const wake = sinon.spy(producer, 'wake');
    const fetch = node.jobs.fetch.bind(node.jobs);
    let late: Promise<{ id: number }> | null = null;
    sinon.stub(node.jobs, 'fetch').callsFake(async (...args) => {
      const rows = await fetch(...args);
      if (late === null && args[2] === 4) {
        // The claim has taken its snapshot: a job inserted now is not in it, and its
        // notification wakes the queue while the claim is still in flight.
        const woken = wake.callCount;
        late = db.client.insert({ worker: 'slow', args: { ms: 20, i: 'late' } });
        await late;
        await eventually(() => Promise.resolve(wake.callCount > woken), 10000, 'the wake');
      }
      return rows;
    });
    // The first claim takes 1 (what can start at once), the next asks for 4 and gets 3.
    await db.client.insertMany(
      Array.from({ length: 4 }, (_, i) => ({ worker: 'slow', args: { ms: 20, i } })),
    );
    await eventually(() => Promise.resolve(late !== null), 10000, 'the claim of 4');
    // With the wake forgotten, the late job waited for the one-minute poll.
    await allIn('completed', 5);
  });

  it('a job inserted while a claim fails on a lost connection runs without waiting for the poll', async function () {
    // The failed claim ended the fetch loop at once, and the wake that came meanwhile (an
    // insert's notification, the breaker closing, a reconnected LISTEN) was lost with it.
    node = await startNode(db.schema, db.url, {
      queues: { default: { limit: 2, pollInterval: 60000 } },
    });
    const producer = node.supervisors.get('default')!.producer;
    const wake = sinon.spy(producer, 'wake');
    const fetch = node.jobs.fetch.bind(node.jobs);
    let failed = false;
    sinon.stub(node.jobs, 'fetch').callsFake(async (...args) => {
      if (failed) return fetch(...args);
      failed = true;
      // While this claim is in flight a job is inserted, and its notification wakes the queue;
      // then the claim fails as on a connection lost.
      const woken = wake.callCount;
      await db.client.insert({ worker: 'ok', args: { value: 'late' } });
      await eventually(() => Promise.resolve(wake.callCount > woken), 10000, 'the wake');
      throw new Error('Connection terminated unexpectedly');
    });
    producer.wake();
    await eventually(() => Promise.resolve(failed), 10000, 'the failed claim');
    await allIn('completed', 1);
  });

  it('jobs one node gives back (a pause) wake the other nodes at once, not at their next poll', async function () {
    node = await startNode(db.schema, db.url, {
      node: 'holder',
      queues: { default: { limit: 1, prefetch: 5 } },
    });
    await db.client.insertMany(
      Array.from({ length: 6 }, (_, i) => ({ worker: 'slow', args: { ms: 60000, i } })),
    );
    await eventually(
      async () => {
        const rows = await db.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM jobs WHERE state = 'executing'`,
        );
        return rows[0]!.n === 6;
      },
      10000,
      'all 6 claimed by the first node',
    );
    // Started now, it finds nothing to claim, and would look again only after a minute.
    other = await startNode(db.schema, db.url, {
      node: 'idle',
      queues: { default: { limit: 5, pollInterval: 60000 } },
    });
    let started = 0;
    const fiveStarted = new Promise<void>((resolve) =>
      other!.telemetry.on('job:start', () => {
        if (++started === 5) resolve();
      }),
    );
    await db.client.pauseQueue('default', { node: 'holder' });
    // The five claimed ahead go back with a notification, and the idle node takes them.
    await fiveStarted;
    const rows = await db.query<{ node: string; n: number }>(
      `SELECT attempted_by[1] AS node, count(*)::int AS n FROM jobs WHERE state = 'executing'
       GROUP BY 1 ORDER BY 1`,
    );
    assert.deepEqual(rows, [
      { node: 'holder', n: 1 },
      { node: 'idle', n: 5 },
    ]);
  });
});
