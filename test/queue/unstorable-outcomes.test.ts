// Outcomes that cannot be stored or read must fail their own job only: never stop a queue, the
// node's outcome writer, or a worker thread and the neighbour jobs on it.

import assert from 'node:assert/strict';
import pg from 'pg';
import { MAX_OUTCOME_BATCH_CHARS, outcomeColumns } from '../../src/db/queries/encode.js';
import type { JobQueries, OutcomeRow } from '../../src/db/queries/jobs.js';
import type { QuernNode } from '../../src/node/node.js';
import { isDataError, OutcomeWriter } from '../../src/queue/outcomes.js';
import { MAX_RESULT_LENGTH } from '../../src/thread/outcome.js';
import { cleanup, createSchema, eventually, type TestSchema } from '../helpers/db.js';
import { startNode } from '../helpers/node.js';

type Row = Record<string, unknown>;
type ErrorEntry = { attempt: number; error: string };

describe('outcomes the database refuses, or the thread cannot read', function () {
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

  const finished = (id: number, states: string[], timeoutMs = 20000) =>
    eventually(
      async () => {
        const [row] = await db.query<Row>('SELECT * FROM jobs WHERE id = $1', [id]);
        return row && states.includes(row.state as string) ? row : null;
      },
      timeoutMs,
      `job ${id} to reach ${states.join('/')}`,
    );

  /**
   * Fault injection in the database itself: completing a job whose result holds `marker` fails
   * with `sqlstate`, as PostgreSQL fails a value it cannot store (the writer's fallback row has
   * no result, so it passes). The trigger lives in this test's schema only.
   */
  async function refuseResults(marker: string, sqlstate: string, message: string) {
    await db.query(`
      CREATE FUNCTION refuse_${marker}() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN RAISE EXCEPTION '${message}' USING ERRCODE = '${sqlstate}'; END $$`);
    await db.query(`
      CREATE TRIGGER refuse_${marker} BEFORE UPDATE ON jobs FOR EACH ROW
      WHEN (NEW.state = 'completed' AND NEW.result @> '{"${marker}": true}')
      EXECUTE FUNCTION refuse_${marker}()`);
  }

  it('an outcome that cannot be stored on the last attempt discards the job, and the queue keeps running', async function () {
    await refuseResults('refuse', '22023', 'refused by the test');
    node = await startNode(db.schema, db.url, { queues: { default: 2 } });
    const bad = await db.client.insert({
      worker: 'returns',
      args: { return: { ok: { refuse: true } } },
      maxAttempts: 1,
    });
    // Before the fix: retryable at attempt 1 of 1, run again, refused again, and then every
    // fetch of the queue failed on attempt_range.
    const row = await finished(bad.id, ['discarded']);
    assert.equal(row.attempt, 1);
    assert.ok(row.discarded_at instanceof Date);
    assert.equal((row.scheduled_at as Date).getTime(), bad.scheduledAt.getTime(), 'not moved');
    assert.equal(row.result, null);
    const errors = row.errors as ErrorEntry[];
    assert.equal(errors.length, 1);
    assert.equal(errors[0]!.attempt, 1);
    assert.match(errors[0]!.error, /^the outcome could not be stored: refused by the test/);
    const after = await db.client.insert({ worker: 'ok', args: { value: 'after' } });
    assert.equal((await finished(after.id, ['completed'])).result, 'after');
  });

  it('a job left available with no attempt left is not fetched, and the queue keeps running', async function () {
    // What an older version's fallback could leave: attempt past max_attempts, still runnable.
    // Fetching it (attempt + 1) breaks attempt_range, which failed every fetch of the queue.
    const [stuck] = await db.query<{ id: number }>(
      `INSERT INTO jobs (worker, state, attempt, max_attempts) VALUES ('ok', 'available', 2, 1) RETURNING id`,
    );
    node = await startNode(db.schema, db.url, { queues: { default: 2 } });
    const job = await db.client.insert({ worker: 'ok', args: { value: 'runs' } });
    assert.equal((await finished(job.id, ['completed'])).result, 'runs');
    const [left] = await db.query<Row>('SELECT state, attempt FROM jobs WHERE id = $1', [
      stuck!.id,
    ]);
    assert.deepEqual(left, { state: 'available', attempt: 2 });
  });

  it('a program limit error (SQLSTATE 54000) fails that job alone; other queues keep flowing', async function () {
    await refuseResults('huge', '54000', 'string too long to represent as jsonb string');
    node = await startNode(db.schema, db.url, { queues: { default: 2, other: 2 } });
    const bad = await db.client.insert({
      worker: 'returns',
      args: { return: { ok: { huge: true } } },
      maxAttempts: 1,
    });
    const other = await db.client.insert({
      worker: 'ok',
      queue: 'other',
      args: { value: 'meanwhile' },
    });
    // Before the fix the writer held every outcome of the node behind the refused one.
    assert.equal((await finished(other.id, ['completed'])).result, 'meanwhile');
    const row = await finished(bad.id, ['discarded']);
    assert.match(
      (row.errors as ErrorEntry[])[0]!.error,
      /^the outcome could not be stored: string too long to represent as jsonb string/,
    );
  });

  it(`a result longer than ${MAX_RESULT_LENGTH} characters of JSON fails in its thread, naming the size and the limit`, async function () {
    this.timeout(30000);
    node = await startNode(db.schema, db.url, { queues: { default: 1, other: 2 } });
    const big = await db.client.insert({
      worker: 'huge',
      args: { length: MAX_RESULT_LENGTH + 1 },
      maxAttempts: 1,
    });
    const other = await db.client.insert({
      worker: 'ok',
      queue: 'other',
      args: { value: 'meanwhile' },
    });
    assert.equal((await finished(other.id, ['completed'])).result, 'meanwhile');
    const row = await finished(big.id, ['discarded', 'completed']);
    assert.equal(row.state, 'discarded');
    assert.equal(row.result, null);
    assert.deepEqual(
      (row.errors as ErrorEntry[]).map((e) => e.error),
      [
        // the string and its two quotes
        `the result is too large to store: its JSON is ${MAX_RESULT_LENGTH + 3} characters, more than the limit of ${MAX_RESULT_LENGTH} (64 MiB)`,
      ],
    );
  });

  it('what perform throws or returns that cannot be read fails that job alone; the thread and its neighbour live', async function () {
    node = await startNode(db.schema, db.url, {
      queues: { default: { limit: 4, threads: 1, concurrency: 4 } },
    });
    const crashes: unknown[] = [];
    node.telemetry.on('pool:crash', (e) => crashes.push(e));
    // One statement, so one fetch hands all four to the one thread: the neighbour is inside
    // perform (sleeping) while the others fail.
    const [neighbour, ...hostile] = await db.client.insertMany([
      { worker: 'slow', args: { ms: 1500 } },
      { worker: 'hostile', args: { mode: 'message' }, maxAttempts: 1 },
      { worker: 'hostile', args: { mode: 'proxy' }, maxAttempts: 1 },
      { worker: 'hostile', args: { mode: 'returned' }, maxAttempts: 1 },
    ]);
    const expected = [
      /^could not read the error perform threw: Error: the message getter refuses/,
      /^could not read the error perform threw: Error: the getPrototypeOf trap refuses/,
      /^could not read the value perform returned: Error: the ok getter refuses/,
    ];
    for (const [index, job] of hostile.entries()) {
      const row = await finished(job.id, ['discarded', 'retryable', 'completed']);
      assert.equal(row.state, 'discarded');
      const errors = row.errors as ErrorEntry[];
      assert.equal(errors.length, 1);
      assert.match(errors[0]!.error, expected[index]!);
    }
    const row = await finished(neighbour!.id, ['completed', 'retryable', 'available']);
    assert.equal(row.state, 'completed');
    assert.equal(row.attempt, 1);
    assert.deepEqual(row.errors, []);
    assert.deepEqual(crashes, []);
  });

  /** Runs one hostile job of `mode` (one attempt) and gives the error its discarded row holds. */
  async function errorOf(mode: string): Promise<string> {
    node = await startNode(db.schema, db.url);
    const job = await db.client.insert({ worker: 'hostile', args: { mode }, maxAttempts: 1 });
    const row = await finished(job.id, ['discarded', 'retryable', 'completed']);
    assert.equal(row.state, 'discarded');
    const errors = row.errors as ErrorEntry[];
    assert.equal(errors.length, 1);
    return errors[0]!.error;
  }

  it('an Error whose stack is not a string is recorded by its name and message', async function () {
    assert.equal(await errorOf('stack'), 'Error: the real message');
  });

  it('a thrown object holding a cycle is recorded by its shape, as a returned { error } is, not as [object Object]', async function () {
    assert.equal(
      await errorOf('cycle'),
      '(an object with keys status, body, self, which cannot be stored as JSON)',
    );
  });
});

describe('the outcome writer, for batches it cannot send', function () {
  const row = (id: number): OutcomeRow => ({
    id,
    token: `t.${id}`,
    state: 'completed',
    delay: null,
    error: null,
    result: null,
    refund: 0,
  });

  it('a batch too long to be one JavaScript string is split, not retried whole forever', async function () {
    // Fault injection: JSON.stringify of a batch of several results near the thread's limit
    // throws RangeError (Invalid string length); here any batch of more than two does.
    const sizes: number[] = [];
    const queries = {
      recordOutcomes(_db: unknown, rows: OutcomeRow[]): Promise<Set<string>> {
        sizes.push(rows.length);
        if (rows.length > 2) return Promise.reject(new RangeError('Invalid string length'));
        return Promise.resolve(new Set(rows.map((r) => r.token)));
      },
    } as unknown as JobQueries;
    const errors: Error[] = [];
    // Never connects: the fake queries are given it and ignore it.
    const pool = new pg.Pool({ max: 1 });
    const writer = new OutcomeWriter(pool, queries, {
      onError: (error) => errors.push(error),
    });
    try {
      const written = await Promise.all(
        [1, 2, 3, 4, 5].map(
          (id) => new Promise<boolean>((done) => writer.push({ row: row(id), done })),
        ),
      );
      assert.deepEqual(written, [true, true, true, true, true]);
      assert.deepEqual(errors, []);
      assert.deepEqual(sizes, [5, 3, 2, 1, 2]);
    } finally {
      writer.close();
      await pool.end();
    }
  });

  it('a connection lost while a split batch is written retries only what was not written: each outcome settles once', async function () {
    // Fault injection: the batch of four is split (RangeError), its first half is written, and
    // the connection is lost while the second half is sent. The whole batch went back to be
    // written again, so the first half was settled twice (its jobs' unwritten counts went below
    // zero, and a stop waited for a node that could never be idle).
    const sizes: number[] = [];
    let lost = false;
    const queries = {
      recordOutcomes(_db: unknown, rows: OutcomeRow[]): Promise<Set<string>> {
        sizes.push(rows.length);
        if (rows.length > 2) return Promise.reject(new RangeError('Invalid string length'));
        if (rows[0]!.id === 3 && !lost) {
          lost = true;
          return Promise.reject(
            Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' }),
          );
        }
        return Promise.resolve(new Set(rows.map((r) => r.token)));
      },
    } as unknown as JobQueries;
    const pool = new pg.Pool({ max: 1 });
    const writer = new OutcomeWriter(pool, queries);
    const settled = new Map<number, boolean[]>();
    try {
      for (const id of [1, 2, 3, 4])
        writer.push({
          row: row(id),
          done: (written) => settled.set(id, [...(settled.get(id) ?? []), written]),
        });
      await new Promise((resolve) => setImmediate(resolve));
      assert.equal(await writer.drain(Date.now() + 5000), 0);
      assert.deepEqual(
        [...settled].sort(([a], [b]) => a - b),
        [
          [1, [true]],
          [2, [true]],
          [3, [true]],
          [4, [true]],
        ],
      );
      assert.deepEqual(sizes, [4, 2, 2, 2]);
    } finally {
      writer.close();
      await pool.end();
    }
  });

  it("a batch whose results and errors would near PostgreSQL's message limit is refused before it is sent, so the writer splits it", function () {
    // A small cap stands in for MAX_OUTCOME_BATCH_CHARS (256 Mi characters): a statement of a
    // gigabyte is refused by the server with a broken connection, which the writer would retry
    // whole, forever. A RangeError is what the writer splits on (see the test above).
    const big = (id: number): OutcomeRow => ({ ...row(id), result: 'x'.repeat(600) });
    assert.throws(() => outcomeColumns([big(1), big(2)], 1000), RangeError);
    assert.doesNotThrow(() => outcomeColumns([big(1)], 1000));
    // One result of the thread's largest, every character escaped, fits the real cap.
    assert.ok(2 * MAX_RESULT_LENGTH + 2 < MAX_OUTCOME_BATCH_CHARS);
  });

  it('counts data exceptions (22) and program limits (54) as refused values, not lost connections', function () {
    for (const code of ['22P02', '22021', '54000', '54001'])
      assert.equal(isDataError({ code }), true);
    for (const code of ['08006', '57P01', '53300', '40001', undefined])
      assert.equal(isDataError({ code }), false);
    assert.equal(isDataError(null), false);
  });
});
