import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { createInterface } from 'node:readline';
import pg from 'pg';
import { InsertError } from '../../src/jobs/insert.js';
import { defineWorker } from '../../src/worker/define.js';
import { cleanup, createSchema, eventually, type TestSchema } from '../helpers/db.js';
import { ROOT } from '../helpers/node.js';

const SCRIPT = path.join(ROOT, 'test', 'fixtures', 'scripts', 'unique-insert.js');

describe('unique jobs', function () {
  let db: TestSchema;
  beforeEach(async function () {
    db = await createSchema(this.currentTest!.title);
  });
  afterEach(async function () {
    await cleanup(this, db);
  });

  const count = async (): Promise<number> =>
    (await db.query<{ n: number }>('SELECT count(*)::int AS n FROM jobs'))[0]!.n;

  it('a duplicate writes nothing and returns the existing job as a conflict', async function () {
    const first = await db.client.insert({ worker: 'ok', args: { id: 1 }, unique: {} });
    const second = await db.client.insert({ worker: 'ok', args: { id: 1 }, unique: {} });
    assert.equal(first.conflict, false);
    assert.equal(second.conflict, true);
    assert.equal(second.id, first.id);
    assert.equal(await count(), 1);
    const other = await db.client.insert({ worker: 'ok', args: { id: 2 }, unique: {} });
    assert.equal(other.conflict, false);
    assert.equal(await count(), 2);
  });

  it('ignores the key order inside args, at every depth', async function () {
    const a = await db.client.insert({
      worker: 'ok',
      args: { x: 1, y: { b: [1, { d: 1, c: 2 }], a: 2 } },
      unique: { period: 'infinity' },
    });
    const b = await db.client.insert({
      worker: 'ok',
      args: { y: { a: 2, b: [1, { c: 2, d: 1 }] }, x: 1 },
      unique: { period: 'infinity' },
    });
    assert.equal(b.conflict, true);
    assert.equal(b.id, a.id);
    const reordered = await db.client.insert({
      worker: 'ok',
      args: { y: { a: 2, b: [{ c: 2, d: 1 }, 1] }, x: 1 },
      unique: { period: 'infinity' },
    });
    assert.equal(reordered.conflict, false, 'array order is part of the value');
  });

  it('compares only the listed keys of the args', async function () {
    const unique = { keys: ['account'] };
    const a = await db.client.insert({ worker: 'ok', args: { account: 7, note: 'a' }, unique });
    const b = await db.client.insert({ worker: 'ok', args: { account: 7, note: 'b' }, unique });
    const c = await db.client.insert({ worker: 'ok', args: { account: 8, note: 'a' }, unique });
    assert.deepEqual([a.conflict, b.conflict, c.conflict], [false, true, false]);
    assert.equal(b.id, a.id);
    assert.deepEqual(b.args, { account: 7, note: 'a' }, 'the existing job is returned unchanged');
  });

  it('refuses keys the args do not have, naming the key and the job, before writing anything', async function () {
    await db.client.insert({ worker: 'ok', args: { account: 7 }, unique: { keys: ['account'] } });
    await assert.rejects(
      db.client.insertMany([
        { worker: 'ok', args: { account: 8 }, unique: { keys: ['account'] } },
        { worker: 'ok', args: { account: 9, note: 'x' }, unique: { keys: ['acount'] } },
      ]),
      (error: unknown) => {
        assert.ok(error instanceof InsertError, String(error));
        assert.equal(error.field, 'unique');
        assert.equal(
          error.message,
          `jobs[1].unique.keys: "acount" is not a key of this job's args (did you mean "account"?); its args have account, note. Give it in the args (null when there is no value) or leave it out of keys`,
        );
        return true;
      },
    );
    const digest = defineWorker<{ user: number; day?: string }>({
      name: 'digest',
      unique: { keys: ['user', 'day'] },
      perform: () => undefined,
    });
    // A worker's own unique options are checked against each insert's args the same way.
    await assert.rejects(
      db.client.insert({ worker: digest, args: { user: 1 } }),
      /^InsertError: job\.unique\.keys: "day" is not a key of this job's args; its args have user\./,
    );
    // An arg inherited from Object.prototype is no key of the args either.
    await assert.rejects(
      db.client.insert({ worker: 'ok', args: { a: 1 }, unique: { keys: ['toString'] } }),
      /unique\.keys: "toString" is not a key/,
    );
    assert.equal(await count(), 1, 'only the first insert wrote a job');
  });

  it('an optional key given as null or undefined is accepted: null is compared as a value, undefined as absent (as JSON stores them)', async function () {
    const digest = defineWorker<{ user: number; day?: string | null }>({
      name: 'digest',
      unique: { keys: ['user', 'day'], period: 'infinity' },
      perform: () => undefined,
    });
    const [a, b, c, d] = await db.client.insertMany([
      { worker: digest, args: { user: 1, day: null } },
      { worker: digest, args: { user: 1, day: null } },
      { worker: digest, args: { user: 1, day: '2026-12-03' } },
      { worker: digest, args: { user: 1, day: undefined } },
    ]);
    assert.deepEqual(
      [a, b, c, d].map((r) => r!.conflict),
      [false, true, false, false],
    );
    assert.equal(b!.id, a!.id);
    assert.equal(await count(), 3);
  });

  it('compares the chosen fields: worker, queue, args', async function () {
    const all = await db.client.insert({ worker: 'ok', queue: 'a', unique: {} });
    const otherQueue = await db.client.insert({ worker: 'ok', queue: 'b', unique: {} });
    assert.equal(otherQueue.conflict, false, 'queue is compared by default');
    const noQueue = { fields: ['worker' as const, 'args' as const] };
    const x = await db.client.insert({ worker: 'ok', queue: 'a', unique: noQueue });
    const y = await db.client.insert({ worker: 'ok', queue: 'c', unique: noQueue });
    assert.equal(x.conflict, false, 'a different field set is a different key');
    assert.equal(y.conflict, true);
    assert.equal(y.id, x.id);
    const argsOnly = { fields: ['args' as const] };
    const p = await db.client.insert({ worker: 'ok', args: { v: 1 }, unique: argsOnly });
    const q = await db.client.insert({ worker: 'record', args: { v: 1 }, unique: argsOnly });
    assert.equal(q.conflict, true, 'another worker with the same args is a duplicate');
    assert.equal(q.id, p.id);
    assert.notEqual(all.id, x.id);
  });

  it('counts a duplicate only within the period; infinity has no end', async function () {
    const first = await db.client.insert({ worker: 'ok', args: { p: 1 }, unique: { period: 60 } });
    await db.query(`UPDATE jobs SET inserted_at = now() - interval '61 seconds'`);
    const afterPeriod = await db.client.insert({
      worker: 'ok',
      args: { p: 1 },
      unique: { period: 60 },
    });
    assert.equal(afterPeriod.conflict, false);
    const withinPeriod = await db.client.insert({
      worker: 'ok',
      args: { p: 1 },
      unique: { period: 60 },
    });
    assert.equal(withinPeriod.conflict, true);
    assert.equal(withinPeriod.id, afterPeriod.id);

    await db.query(`UPDATE jobs SET inserted_at = now() - interval '3650 days'`);
    const forever = await db.client.insert({
      worker: 'ok',
      args: { p: 1 },
      unique: { period: 'infinity' },
    });
    assert.equal(forever.conflict, true);
    assert.ok([first.id, afterPeriod.id].includes(forever.id));
  });

  it('by default, a cancelled or discarded job is no duplicate; others are', async function () {
    const job = await db.client.insert({ worker: 'ok', args: { s: 1 }, unique: {} });
    for (const state of ['executing', 'retryable', 'completed', 'scheduled']) {
      await db.query(`UPDATE jobs SET state = $1 WHERE id = $2`, [state, job.id]);
      const again = await db.client.insert({ worker: 'ok', args: { s: 1 }, unique: {} });
      assert.equal(again.conflict, true, state);
    }
    for (const state of ['cancelled', 'discarded']) {
      await db.query(`UPDATE jobs SET state = $1`, [state]);
      const again = await db.client.insert({ worker: 'ok', args: { s: 1 }, unique: {} });
      assert.equal(again.conflict, false, state);
    }
    const onlyWaiting = { states: ['available' as const, 'scheduled' as const] };
    await db.query(`UPDATE jobs SET state = 'completed'`);
    const fresh = await db.client.insert({ worker: 'ok', args: { s: 1 }, unique: onlyWaiting });
    assert.equal(fresh.conflict, false, 'completed does not count with custom states');
    assert.equal(await count(), 4);
  });

  it('replace updates the listed fields of a waiting duplicate, not of a running one', async function () {
    const unique = { keys: ['user'], replace: ['args' as const, 'scheduledAt' as const] };
    const first = await db.client.insert({
      worker: 'ok',
      args: { user: 1, text: 'old' },
      scheduleIn: 3600,
      unique,
      priority: 1,
    });
    assert.equal(first.state, 'scheduled');
    const replaced = await db.client.insert({
      worker: 'ok',
      args: { user: 1, text: 'new' },
      unique,
      priority: 3,
    });
    assert.equal(replaced.conflict, true);
    assert.equal(replaced.id, first.id);
    assert.deepEqual(replaced.args, { user: 1, text: 'new' });
    assert.equal(replaced.state, 'available', 'scheduledAt replaced by now');
    assert.equal(replaced.priority, 1, 'priority was not listed in replace');
    const [row] = await db.query<{ args: unknown; state: string }>('SELECT args, state FROM jobs');
    assert.deepEqual(row, { args: { user: 1, text: 'new' }, state: 'available' });

    await db.query(`UPDATE jobs SET state = 'executing', attempt = 1`);
    const running = await db.client.insert({
      worker: 'ok',
      args: { user: 1, text: 'newer' },
      unique,
    });
    assert.equal(running.conflict, true);
    assert.deepEqual(running.args, { user: 1, text: 'new' }, 'a running job is left alone');
    assert.equal(await count(), 1);
  });

  it('takes unique options from the worker; an insert may override or turn them off', async function () {
    const worker = defineWorker<{ id: number; extra?: string }>({
      name: 'ok',
      unique: { keys: ['id'], period: 'infinity' },
      perform: () => undefined,
    });
    const a = await db.client.insert({ worker, args: { id: 1, extra: 'a' } });
    const b = await db.client.insert({ worker, args: { id: 1, extra: 'b' } });
    assert.equal(b.conflict, true);
    assert.equal(b.id, a.id);
    const c = await db.client.insert({ worker, args: { id: 1 }, unique: false });
    assert.equal(c.conflict, false);
    const d = await db.client.insert({ worker, args: { id: 1, extra: 'b' }, unique: {} });
    assert.equal(d.conflict, false, 'all args compared by the insert’s own options');
    assert.equal(await count(), 3);
  });

  it('applies the same rules in insertMany, within the batch too, in input order', async function () {
    const existing = await db.client.insert({ worker: 'ok', args: { k: 'old' }, unique: {} });
    const results = await db.client.insertMany([
      { worker: 'ok', args: { plain: 1 } },
      { worker: 'ok', args: { k: 'new' }, unique: {} },
      { worker: 'ok', args: { k: 'old' }, unique: {} },
      { worker: 'ok', args: { plain: 2 } },
      { worker: 'ok', args: { k: 'new' }, unique: {} },
      { worker: 'ok', args: { plain: 3 } },
    ]);
    assert.deepEqual(
      results.map((r) => [r.args, r.conflict]),
      [
        [{ plain: 1 }, false],
        [{ k: 'new' }, false],
        [{ k: 'old' }, true],
        [{ plain: 2 }, false],
        [{ k: 'new' }, true],
        [{ plain: 3 }, false],
      ],
    );
    assert.equal(results[2]!.id, existing.id);
    assert.equal(results[4]!.id, results[1]!.id);
    assert.equal(await count(), 5);
  });

  const bad: [string, unknown, RegExp][] = [
    ['a negative period', { period: -1 }, /unique\.period/],
    [
      "a period past PostgreSQL's timestamps (it was a raw DatabaseError: timestamp out of range)",
      { period: 1e20 },
      /unique\.period: expected a number of seconds above 0 and at most 3153600000 \(100 years\), or "infinity", got 100000000000000000000/,
    ],
    ['an unknown field', { fields: ['args', 'tags'] }, /unique\.fields: "tags"/],
    ['keys without args in fields', { fields: ['worker'], keys: ['a'] }, /unique\.keys/],
    [
      'an empty list of keys (it compared no args: every job was a duplicate)',
      { keys: [] },
      /unique\.keys: an empty list would compare none of the args; leave keys out/,
    ],
    ['an unknown state', { states: ['done'] }, /unique\.states: "done"/],
    ['an unknown replace field', { replace: ['state'] }, /unique\.replace: "state"/],
    ['a misspelt option', { perod: 5 }, /unknown option "perod" \(did you mean "period"\?\)/],
    ['a non-object', 'yes', /unique: expected/],
  ];
  for (const [what, unique, message] of bad) {
    it(`rejects ${what} before writing anything`, async function () {
      await assert.rejects(
        db.client.insertMany([
          { worker: 'ok', unique: {} },
          { worker: 'ok', unique: unique as never },
        ]),
        (error: unknown) => {
          assert.ok(error instanceof InsertError, String(error));
          assert.equal(error.field, 'unique');
          assert.match(error.message, message);
          return true;
        },
      );
      assert.equal(await count(), 0);
    });
  }

  describe('in transactions', function () {
    let clients: pg.PoolClient[] = [];
    const connect = async (): Promise<pg.PoolClient> => {
      const client = await db.pool.connect();
      clients.push(client);
      return client;
    };
    afterEach(function () {
      for (const client of clients) client.release();
      clients = [];
    });
    /** Resolves once the session of `client` waits on an advisory lock (the unique lock). */
    const waitsOnLock = async (pid: number): Promise<void> => {
      await eventually(
        async () =>
          (
            await db.pool.query<{ n: number }>(
              `SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND pid = $1`,
              [pid],
            )
          ).rows[0]!.n > 0,
        10000,
        `session ${pid} to wait on the unique lock`,
      );
    };
    const pidOf = async (client: pg.PoolClient): Promise<number> =>
      (await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;

    it('a rolled-back insert neither hides nor blocks a later one', async function () {
      const a = await connect();
      const b = await connect();
      await a.query('BEGIN');
      const inA = await db.client.insert(
        { worker: 'ok', args: { t: 1 }, unique: {} },
        { client: a },
      );
      assert.equal(inA.conflict, false);
      // B waits for A's lock; it must not return before A ends.
      let bDone = false;
      const bPid = await pidOf(b);
      const inB = db.client
        .insert({ worker: 'ok', args: { t: 1 }, unique: {} }, { client: b })
        .finally(() => (bDone = true));
      await waitsOnLock(bPid);
      assert.equal(bDone, false);
      await a.query('ROLLBACK');
      const result = await inB;
      assert.equal(result.conflict, false, 'the rolled-back job does not hide the new one');
      assert.notEqual(result.id, inA.id);
      const later = await db.client.insert({ worker: 'ok', args: { t: 1 }, unique: {} });
      assert.equal(later.conflict, true);
      assert.equal(later.id, result.id);
      assert.equal(await count(), 1);
    });

    it('a second insert waiting on a committed one gets it as the conflict', async function () {
      const a = await connect();
      await a.query('BEGIN');
      const inA = await db.client.insert(
        { worker: 'ok', args: { t: 2 }, unique: {} },
        { client: a },
      );
      const b = await connect();
      const bPid = await pidOf(b);
      const waiting = db.client.insert({ worker: 'ok', args: { t: 2 }, unique: {} }, { client: b });
      await waitsOnLock(bPid);
      await a.query('COMMIT');
      const result = await waiting;
      assert.equal(result.conflict, true);
      assert.equal(result.id, inA.id);
      assert.equal(await count(), 1);
    });

    it('works on a client in autocommit, and keeps the caller transaction usable after an error', async function () {
      const a = await connect();
      const first = await db.client.insert(
        { worker: 'ok', args: { t: 3 }, unique: {} },
        { client: a },
      );
      assert.equal(first.conflict, false);
      await a.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
      await assert.rejects(
        db.client.insert({ worker: 'ok', args: { t: 4 }, unique: {} }, { client: a }),
        /REPEATABLE READ/,
      );
      const { rows } = await a.query<{ one: number }>('SELECT 1 AS one');
      assert.equal(rows[0]!.one, 1, 'the transaction is not aborted');
      await a.query('COMMIT');
      assert.equal(await count(), 1);
    });

    it('under SERIALIZABLE, racing inserts never both commit', async function () {
      const a = await connect();
      const b = await connect();
      await a.query('BEGIN ISOLATION LEVEL SERIALIZABLE');
      await b.query('BEGIN ISOLATION LEVEL SERIALIZABLE');
      await b.query('SELECT count(*) FROM pg_class'); // B's snapshot is taken now
      await db.client.insert({ worker: 'ok', args: { t: 5 }, unique: {} }, { client: a });
      const inB = db.client
        .insert({ worker: 'ok', args: { t: 5 }, unique: {} }, { client: b })
        .then(async (r) => {
          await b.query('COMMIT');
          return r;
        });
      await a.query('COMMIT');
      const outcome = await inB.then(
        (r) => ({ ok: r }),
        (error: unknown) => ({ error: error as { code?: string } }),
      );
      await b.query('ROLLBACK').catch(() => undefined);
      if ('error' in outcome) assert.equal(outcome.error.code, '40001');
      else assert.equal(outcome.ok.conflict, true);
      assert.equal(await count(), 1);
    });
  });

  describe('across processes', function () {
    this.timeout(60000);

    async function race(counts: number[], mode: 'one' | 'many') {
      const children = counts.map((n) =>
        spawn(process.execPath, [SCRIPT, db.url, db.schema, String(n), mode], {
          cwd: ROOT,
          stdio: ['pipe', 'pipe', 'inherit'],
        }),
      );
      const exits = children.map((child) => new Promise((resolve) => child.once('exit', resolve)));
      const lines = children.map((child) => {
        const reader = createInterface({ input: child.stdout });
        const queue: string[] = [];
        const waiting: ((line: string) => void)[] = [];
        reader.on('line', (line) => {
          const next = waiting.shift();
          if (next) next(line);
          else queue.push(line);
        });
        return (): Promise<string> =>
          queue.length > 0
            ? Promise.resolve(queue.shift()!)
            : new Promise((resolve) => waiting.push(resolve));
      });
      for (const next of lines) assert.equal(await next(), 'ready');
      for (const child of children) child.stdin.write('go\n');
      const outputs = await Promise.all(lines.map((next) => next()));
      await Promise.all(exits);
      return outputs.flatMap(
        (line) =>
          JSON.parse(line) as {
            ok?: { id: number; conflict: boolean; key: string }[];
            error?: string;
          }[],
      );
    }

    it('20 concurrent inserts of one unique job from 3 processes leave exactly one row', async function () {
      const results = await race([7, 7, 6], 'one');
      assert.equal(results.length, 20);
      assert.deepEqual(
        results.filter((r) => r.error),
        [],
      );
      const rows = results.flatMap((r) => r.ok!);
      assert.equal(new Set(rows.map((r) => r.id)).size, 1, 'every insert saw the same job');
      assert.equal(rows.filter((r) => !r.conflict).length, 1, 'exactly one insert wrote it');
      assert.equal(await count(), 1);
    });

    it('concurrent insertMany batches with keys in opposite orders neither deadlock nor duplicate', async function () {
      const results = await race([5, 5, 5], 'many');
      assert.deepEqual(
        results.filter((r) => r.error),
        [],
      );
      const rows = results.flatMap((r) => r.ok!);
      assert.equal(rows.length, 45);
      for (const key of ['a', 'b', 'c']) {
        const mine = rows.filter((r) => r.key === key);
        assert.equal(new Set(mine.map((r) => r.id)).size, 1, key);
        assert.equal(mine.filter((r) => !r.conflict).length, 1, key);
      }
      assert.equal(await count(), 3);
    });
  });
});
