// The outcome writer tells each attempt whether its outcome was written, by attempt token: one
// batch may hold two attempts of one job (a cancelled attempt's late outcome beside the outcome
// of the retry that was fetched at once), and only the attempt that holds the row is written.
// Told by id, the refused attempt was reported written too, and its node emitted job:stop for it.

import assert from 'node:assert/strict';
import { JobQueries, type OutcomeRow } from '../../src/db/queries/jobs.js';
import { OutcomeWriter } from '../../src/queue/outcomes.js';
import { cleanup, createSchema, type TestSchema } from '../helpers/db.js';

describe('outcome writes are told apart by attempt', function () {
  let db: TestSchema;
  beforeEach(async function () {
    db = await createSchema(this.currentTest!.title);
  });
  afterEach(async function () {
    await cleanup(this, db);
  });

  const outcome = (id: number, token: string, state: OutcomeRow['state']): OutcomeRow => ({
    id,
    token,
    state,
    delay: null,
    error: state === 'cancelled' ? 'cancelled' : null,
    result: null,
    refund: 0,
  });

  it('two attempts of one job in one batch: only the one holding the row is written and reported', async function () {
    const jobs = new JobQueries(db.schema);
    const job = await db.client.insert({ worker: 'ok', args: { value: 1 } });
    // The first attempt was claimed and then cancelled and retried: the row now belongs to a
    // second claim, whose token is the one that counts.
    const [claimed] = await jobs.fetch(db.pool, 'default', 1, 'node-a', 'run1.2');
    assert.equal(claimed?.id, job.id);
    const current = claimed.attemptedBy![1]!;
    const stale = 'run1.1.' + String(job.id);
    assert.notEqual(stale, current);

    const writer = new OutcomeWriter(db.pool, jobs);
    const reported = new Map<string, boolean>();
    const done = new Promise<void>((resolve) => {
      const note = (token: string) => (written: boolean) => {
        reported.set(token, written);
        if (reported.size === 2) resolve();
      };
      // Pushed in one turn: the writer sends them in one statement.
      writer.push({ row: outcome(job.id, stale, 'cancelled'), done: note(stale) });
      writer.push({ row: outcome(job.id, current, 'completed'), done: note(current) });
    });
    await done;
    assert.deepEqual(Object.fromEntries(reported), { [stale]: false, [current]: true });
    const [row] = await db.query<{ state: string; errors: unknown[] }>(
      'SELECT state, errors FROM jobs WHERE id = $1',
      [job.id],
    );
    assert.equal(row!.state, 'completed');
    assert.deepEqual(row!.errors, []);
  });

  it('a batch where every outcome is written reports each attempt written', async function () {
    const jobs = new JobQueries(db.schema);
    await db.client.insertMany([1, 2, 3].map((value) => ({ worker: 'ok', args: { value } })));
    const claimed = await jobs.fetch(db.pool, 'default', 3, 'node-a', 'run2.1');
    const written = await jobs.recordOutcomes(
      db.pool,
      claimed.map((c) => outcome(c.id, c.attemptedBy![1]!, 'completed')),
    );
    assert.deepEqual([...written].sort(), claimed.map((c) => c.attemptedBy![1]).sort());
  });

  it('a batch of completions only leaves its rows as the general statement does, and reports a refused one', async function () {
    const jobs = new JobQueries(db.schema);
    await db.client.insertMany([1, 2, 3, 4].map((value) => ({ worker: 'ok', args: { value } })));
    const [a, b, c, d] = await jobs.fetch(db.pool, 'default', 4, 'node-a', 'run3.1');
    const token = (job: typeof a) => job!.attemptedBy![1]!;
    // a and d through the completions' statement (d with a stale token: refused); b and c
    // through the general one, which the failure of c selects.
    const first = await jobs.recordOutcomes(db.pool, [
      { ...outcome(a!.id, token(a), 'completed'), result: { n: 1 } },
      outcome(d!.id, 'run0.0.' + String(d!.id), 'completed'),
    ]);
    assert.deepEqual([...first], [token(a)]);
    const second = await jobs.recordOutcomes(db.pool, [
      { ...outcome(b!.id, token(b), 'completed'), result: { n: 1 } },
      { ...outcome(c!.id, token(c), 'retryable'), error: 'boom', delay: 5 },
    ]);
    assert.deepEqual([...second].sort(), [token(b), token(c)].sort());
    const rows = await db.query(
      `SELECT id, state, result, errors, attempt, completed_at IS NOT NULL AS completed,
              cancelled_at, discarded_at, scheduled_at = inserted_at AS kept_schedule
       FROM jobs WHERE id = ANY($1::bigint[]) ORDER BY id`,
      [[a!.id, b!.id, d!.id]],
    );
    const shape = (row: Record<string, unknown>) => ({ ...row, id: undefined });
    assert.deepEqual(shape(rows[0]!), shape(rows[1]!));
    assert.deepEqual(shape(rows[0]!), {
      id: undefined,
      state: 'completed',
      result: { n: 1 },
      errors: [],
      attempt: 1,
      completed: true,
      cancelled_at: null,
      discarded_at: null,
      kept_schedule: true,
    });
    assert.equal(rows[2]!.state, 'executing');
  });
});
