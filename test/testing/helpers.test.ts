// quern/testing: performJob, assertEnqueued / refuteEnqueued / allEnqueued, drainQueue and the
// testing modes, used the way an application's suite would use them.

import assert, { AssertionError } from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { Quern } from '../../src/client.js';
import { ConfigError } from '../../src/config/validate.js';
import { InsertError } from '../../src/jobs/insert.js';
import type { QuernNode } from '../../src/node/node.js';
import {
  allEnqueued,
  assertEnqueued,
  drainQueue,
  performJob,
  refuteEnqueued,
  useQuern,
} from '../../src/testing/index.js';
import { defineWorker } from '../../src/worker/define.js';
import { cleanup, createSchema, eventually, type TestSchema } from '../helpers/db.js';
import { ROOT, startNode } from '../helpers/node.js';

const greet = defineWorker<{ name: string; polite?: boolean }>({
  name: 'greet',
  queue: 'mailers',
  maxAttempts: 3,
  validate: (args) =>
    typeof (args as { name?: unknown }).name === 'string' ? null : 'name must be a string',
  perform: (job) => ({ ok: `${job.args.polite ? 'Good day' : 'Hi'}, ${job.args.name}` }),
});

const outcomes = defineWorker<{ do: string }>({
  name: 'outcomes',
  maxAttempts: 2,
  backoff: () => 0,
  perform(job) {
    switch (job.args.do) {
      case 'throw':
        throw new Error('boom');
      case 'error':
        return { error: 'returned error' };
      case 'cancel':
        return { cancel: 'not needed' };
      case 'discard':
        return { discard: 'bad input' };
      case 'snooze':
        return { snooze: 30 };
      case 'weird':
        return 42 as never;
      default:
        return 'ok';
    }
  },
});

const ran: string[] = [];
const recorder = defineWorker<{ label: string; then?: string[] }>({
  name: 'recorder',
  async perform(job) {
    ran.push(job.args.label);
    // A job that enqueues more work: drained only withRecursion.
    for (const label of job.args.then ?? [])
      await testQuern.insert({ worker: recorder, args: { label } });
  },
});
let testQuern: Quern;

describe('quern/testing', function () {
  describe('performJob', function () {
    it('runs perform inline and returns the outcome', async function () {
      const outcome = await performJob(greet, { name: 'Ada', polite: true });
      assert.equal(outcome.kind, 'completed');
      assert.equal(outcome.state, 'completed');
      assert.equal(outcome.result, 'Good day, Ada');
      assert.deepEqual(outcome.returned, { ok: 'Good day, Ada' });
      assert.equal(outcome.job.queue, 'mailers', 'defaults come from the definition');
      assert.equal(outcome.job.attempt, 1);
    });

    it('reports every documented outcome with the state the job would get', async function () {
      const cases: [string, number, string, string][] = [
        ['ok', 1, 'completed', 'completed'],
        ['throw', 1, 'failed', 'retryable'],
        ['throw', 2, 'failed', 'discarded'],
        ['error', 1, 'failed', 'retryable'],
        ['cancel', 1, 'cancelled', 'cancelled'],
        ['discard', 1, 'discarded', 'discarded'],
        ['snooze', 1, 'snoozed', 'scheduled'],
        ['weird', 1, 'completed', 'completed'],
      ];
      for (const [what, attempt, kind, state] of cases) {
        const outcome = await performJob(outcomes, { do: what }, { attempt });
        assert.deepEqual([what, outcome.kind, outcome.state], [what, kind, state]);
      }
      const thrown = await performJob(outcomes, { do: 'throw' });
      assert.ok(thrown.thrown instanceof Error);
      assert.match(thrown.error!, /boom/);
      assert.equal((await performJob(outcomes, { do: 'cancel' })).reason, 'not needed');
      assert.equal((await performJob(outcomes, { do: 'snooze' })).seconds, 30);
      assert.match((await performJob(outcomes, { do: 'weird' })).warning!, /not a documented/);
    });

    it('a promise thrown or rejected with in place of an error fails the job, named as on a node, and is handled', async function () {
      const unhandled: unknown[] = [];
      const record = (reason: unknown): void => void unhandled.push(reason);
      process.on('unhandledRejection', record);
      try {
        const throws = defineWorker({
          name: 'throws-promise',
          perform(): never {
            // eslint-disable-next-line @typescript-eslint/only-throw-error -- the case under test
            throw Promise.reject(new Error('the thrown promise rejects'));
          },
        });
        const rejects = defineWorker({
          name: 'rejects-with-promise',
          perform: () =>
            // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors -- the case under test
            Promise.reject(Promise.reject(new Error('the inner promise rejects'))),
        });
        const thrown = await performJob(throws, {});
        assert.equal(thrown.kind, 'failed');
        assert.match(
          thrown.error!,
          /^perform threw a promise instead of an error \(a missing await\?\); it rejected with Error: the thrown promise rejects/,
        );
        const rejected = await performJob(rejects, {});
        assert.match(
          rejected.error!,
          /^perform rejected with a promise instead of an error \(a missing await\?\); it rejected with Error: the inner promise rejects/,
        );
        // Unhandled rejections are reported once the microtasks of a turn have run.
        await new Promise((resolve) => setImmediate(resolve));
        assert.deepEqual(unhandled, []);
      } finally {
        process.off('unhandledRejection', record);
      }
    });

    it('validates args and options first, naming the problem', async function () {
      await assert.rejects(
        performJob(greet, { name: 1 } as never),
        (e: unknown) =>
          e instanceof InsertError && e.field === 'args' && /name must be a string/.test(e.message),
      );
      await assert.rejects(
        performJob(greet, { name: 'x', big: 1n } as never),
        (e: unknown) => e instanceof InsertError && e.field === 'args',
      );
      await assert.rejects(
        performJob(greet, { name: 'x' }, { atempt: 2 } as never),
        /unknown option "atempt" \(did you mean "attempt"\?\)/,
      );
      await assert.rejects(
        performJob(greet, { name: 'x' }, { attempt: 4 }),
        /attempt: must be an integer from 1 to maxAttempts \(3\)/,
      );
      await assert.rejects(performJob(greet, { name: 'x' }, { priority: 9 }), /priority/);
      await assert.rejects(performJob({ name: 'nothing' } as never, {}), /has no perform function/);
    });

    it('hands perform the args as stored (JSON) and aborts it at its timeout', async function () {
      const seen = defineWorker<{ at: unknown }>({
        name: 'seen',
        perform: (job) => ({ ok: typeof job.args.at }),
      });
      const outcome = await performJob(seen, { at: new Date(0) });
      assert.equal(outcome.result, 'string');
      let aborted = false;
      const slow = defineWorker({
        name: 'slow',
        timeout: 50,
        perform: (_job, signal) =>
          new Promise(() => signal.addEventListener('abort', () => (aborted = true))),
      });
      const timedOut = await performJob(slow, {});
      assert.equal(timedOut.kind, 'failed');
      assert.match(timedOut.error!, /timed out after 50 ms/);
      assert.equal(aborted, true);
    });
  });

  describe('with a database', function () {
    let db: TestSchema;
    let node: QuernNode | undefined;
    beforeEach(async function () {
      db = await createSchema(this.currentTest!.title);
      testQuern = new Quern({
        pool: db.pool,
        schema: db.schema,
        workers: [greet, outcomes, recorder] as never[],
        testing: 'manual',
      });
      useQuern(testQuern);
      ran.length = 0;
      node = undefined;
    });
    afterEach(async function () {
      useQuern(null);
      await node?.stop();
      await cleanup(this, db);
    });

    it('assertEnqueued finds a job by worker, queue and partial args', async function () {
      await testQuern.insert({
        worker: greet,
        args: { name: 'Ada', polite: true },
        tags: ['welcome', 'en'],
        priority: 2,
      });
      const job = await assertEnqueued({ worker: greet, args: { name: 'Ada' } });
      assert.equal(job.queue, 'mailers');
      await assertEnqueued({ worker: 'greet', queue: 'mailers', tags: ['en'], priority: 2 });
      await assertEnqueued({ queue: 'mailers', args: { polite: true } });
      await refuteEnqueued({ worker: greet, args: { name: 'Bob' } });
      await refuteEnqueued({ worker: greet, queue: 'default' });
      assert.equal((await allEnqueued({ worker: greet })).length, 1);
      assert.equal((await allEnqueued()).length, 1);
    });

    it('fails with a plain AssertionError that lists what is enqueued', async function () {
      await testQuern.insert({ worker: greet, args: { name: 'Ada' } });
      await assert.rejects(
        assertEnqueued({ worker: greet, args: { name: 'Bob' } }),
        (error: unknown) => {
          assert.ok(error instanceof AssertionError);
          assert.match(error.message, /Expected a job matching .*"Bob".* to be enqueued/);
          assert.match(error.message, /greet queue=mailers state=available .*"Ada"/);
          return true;
        },
      );
      await assert.rejects(
        refuteEnqueued({ worker: greet }),
        (error: unknown) => error instanceof AssertionError && /"Ada"/.test(error.message),
      );
      await assert.rejects(assertEnqueued({ wroker: 'greet' } as never), /did you mean "worker"/);
      for (const timeout of [-1, Number.NaN, '100'])
        await assert.rejects(
          assertEnqueued({ worker: 'greet' }, { timeout: timeout as number }),
          /assertEnqueued: timeout must be a number of ms of 0 or more, got /,
        );
    });

    it('counts waiting jobs only, unless a state is given; scheduledAt within a delta', async function () {
      const at = new Date(Date.now() + 3600_000);
      await testQuern.insert({ worker: greet, args: { name: 'Later' }, scheduledAt: at });
      await assertEnqueued({ worker: greet, scheduledAt: new Date(+at + 500) });
      await refuteEnqueued({ worker: greet, scheduledAt: new Date(+at + 5000) });
      await assertEnqueued({ worker: greet, scheduledAt: new Date(+at + 5000), delta: 10 });
      await db.query(`UPDATE jobs SET state = 'completed'`);
      await refuteEnqueued({ worker: greet });
      await assertEnqueued({ worker: greet, state: 'completed' });
    });

    it('assertEnqueued with a timeout waits for a job inserted later', async function () {
      const late = new Promise((resolve) => setTimeout(resolve, 100)).then(() =>
        testQuern.insert({ worker: greet, args: { name: 'Late' } }),
      );
      await assertEnqueued({ worker: greet, args: { name: 'Late' } }, { timeout: 5000 });
      await late;
    });

    it('drainQueue runs jobs in order and counts their outcomes', async function () {
      await testQuern.insertMany([
        { worker: recorder, args: { label: 'low' }, priority: 3 },
        { worker: recorder, args: { label: 'first' } },
        { worker: recorder, args: { label: 'second' } },
        { worker: recorder, args: { label: 'urgent' }, priority: 0 },
      ]);
      await testQuern.insertMany(
        ['ok', 'throw', 'cancel', 'discard', 'snooze'].map((what) => ({
          worker: outcomes,
          args: { do: what },
        })),
      );
      const counts = await drainQueue({ queue: 'default' });
      assert.deepEqual(counts, { completed: 5, failed: 1, cancelled: 1, discarded: 1, snoozed: 1 });
      assert.deepEqual(ran, ['first', 'second', 'urgent', 'low']);
      const rows = await db.query<{ state: string; n: number }>(
        `SELECT state::text AS state, count(*)::int AS n FROM jobs GROUP BY 1 ORDER BY 1`,
      );
      assert.deepEqual(
        rows.map((r) => [r.state, r.n]),
        [
          ['cancelled', 1],
          ['completed', 5],
          ['discarded', 1],
          ['retryable', 1],
          ['scheduled', 1],
        ],
      );
      const [failed] = await db.query<{ errors: { error: string }[]; attempt: number }>(
        `SELECT errors, attempt FROM jobs WHERE state = 'retryable'`,
      );
      assert.equal(failed!.attempt, 1);
      assert.match(failed!.errors[0]!.error, /boom/);
      assert.deepEqual(await drainQueue({ queue: 'default' }), {
        completed: 0,
        failed: 0,
        cancelled: 0,
        discarded: 0,
        snoozed: 0,
      });
    });

    it('drainQueue withRecursion runs the jobs drained jobs insert; withLimit stops early', async function () {
      await testQuern.insert({ worker: recorder, args: { label: 'a', then: ['b', 'c'] } });
      assert.equal((await drainQueue({ queue: 'default' })).completed, 1);
      assert.deepEqual(ran, ['a']);
      assert.equal((await drainQueue({ queue: 'default', withLimit: 1 })).completed, 1);
      assert.deepEqual(ran, ['a', 'b']);
      await testQuern.insert({ worker: recorder, args: { label: 'd', then: ['e'] } });
      assert.equal((await drainQueue({ queue: 'default', withRecursion: true })).completed, 3);
      assert.deepEqual(ran, ['a', 'b', 'c', 'd', 'e']);
    });

    it('drainQueue withScheduled runs scheduled jobs and retries until the job is done', async function () {
      await testQuern.insert({ worker: recorder, args: { label: 'later' }, scheduleIn: 3600 });
      await testQuern.insert({ worker: outcomes, args: { do: 'throw' } });
      await testQuern.insert({ worker: outcomes, args: { do: 'snooze' } });
      const first = await drainQueue({ queue: 'default' });
      assert.deepEqual(first, { completed: 0, failed: 1, cancelled: 0, discarded: 0, snoozed: 1 });
      const counts = await drainQueue({
        queue: 'default',
        withScheduled: true,
        withRecursion: true,
      });
      // The scheduled job runs; the failed one is retried until its last attempt discards it;
      // the snoozed one runs once more and snoozes again (a drain never re-runs its own snoozes).
      assert.deepEqual(counts, { completed: 1, failed: 0, cancelled: 0, discarded: 1, snoozed: 1 });
      assert.deepEqual(ran, ['later']);
    });

    it('drainQueue withSafety: false rethrows what the job threw, after recording it', async function () {
      await testQuern.insert({ worker: outcomes, args: { do: 'throw' } });
      await assert.rejects(drainQueue({ queue: 'default', withSafety: false }), /boom/);
      await assertEnqueued({ worker: outcomes, state: 'retryable' });
      await assert.rejects(drainQueue({ queue: 'default', wihtLimit: 1 } as never), /withLimit/);
    });

    it('testing: manual: a node fetches and schedules nothing; the suite drains', async function () {
      node = await startNode(db.schema, db.url, {
        testing: 'manual',
        plugins: { stager: { interval: 20 } },
      });
      await testQuern.insert({ worker: 'ok', args: { value: 1 } });
      await testQuern.insert({ worker: 'ok', args: { value: 2 }, scheduleIn: 0.1 });
      await testQuern.startQueue('other');
      await eventually(() => Promise.resolve(node!.isLeader), 10000, 'leadership');
      // Nothing to wait for: the node must stay idle. The job is due, and twenty stager
      // intervals pass.
      await new Promise((resolve) => setTimeout(resolve, 400));
      assert.equal(node.supervisors.size, 0);
      const rows = await db.query<{ state: string }>('SELECT state::text FROM jobs ORDER BY id');
      assert.deepEqual(
        rows.map((r) => r.state),
        ['available', 'scheduled'],
      );
    });

    it('a queue name no job can have is refused, not matched against nothing', async function () {
      await testQuern.insert({ worker: outcomes, args: { do: 'complete' }, queue: 'mailers' });
      // 'Mailers' drained nothing (zero counts) and refuteEnqueued passed with the job waiting.
      await assert.rejects(
        drainQueue({ queue: 'Mailers' }),
        (error: unknown) =>
          error instanceof TypeError &&
          error.message ===
            'drainQueue: queue: "Mailers" is not a queue name (a plain lower-case identifier, [a-z_][a-z0-9_]*, at most 63 bytes)',
      );
      await assert.rejects(
        refuteEnqueued({ queue: 'Mailers' }),
        /refuteEnqueued: queue: expected a queue name \(a plain lower-case identifier, \[a-z_\]\[a-z0-9_\]\*\), got "Mailers"/,
      );
      await assertEnqueued({ queue: 'mailers' });
    });

    it('helpers need a client: a clear error without useQuern', async function () {
      useQuern(null);
      await assert.rejects(allEnqueued({}), /call useQuern\(quern\) first/);
      assert.equal((await allEnqueued({}, { quern: testQuern })).length, 0);
    });
  });

  describe('testing: inline', function () {
    it('insert runs the job at once, with no database, and stores nothing', async function () {
      const quern = new Quern({ testing: 'inline', workers: [greet, outcomes] as never[] });
      const done = await quern.insert({ worker: greet, args: { name: 'Ada' } });
      assert.equal(done.state, 'completed');
      assert.equal(done.result, 'Hi, Ada');
      const [failed, snoozed] = await quern.insertMany([
        { worker: 'outcomes', args: { do: 'throw' } },
        { worker: 'outcomes', args: { do: 'snooze' } },
      ]);
      assert.equal(failed!.state, 'retryable');
      assert.match(failed!.errors[0]!.error, /boom/);
      assert.equal(snoozed!.state, 'scheduled');
      await assert.rejects(
        quern.insert({ worker: 'nobody' }),
        (e: unknown) => e instanceof InsertError && /testing is "inline"/.test(e.message),
      );
      await assert.rejects(quern.insert({ worker: greet, args: { name: 7 } as never }), /name/);
      await quern.close();
    });

    it('with no database, a call that reads or changes stored jobs says there is none', async function () {
      const saved = process.env.DATABASE_URL;
      delete process.env.DATABASE_URL;
      try {
        const quern = new Quern({ testing: 'inline', workers: [greet] as never[] });
        const noDatabase = (e: unknown) =>
          e instanceof ConfigError &&
          /runs jobs inline \(testing: "inline"\) and was given no database/.test(e.message);
        await assert.rejects(quern.listJobs(), noDatabase);
        await assert.rejects(quern.getJob(1), noDatabase);
        await assert.rejects(quern.cancel(1), noDatabase);
        assert.equal(
          (await quern.insert({ worker: greet, args: { name: 'Ada' } })).state,
          'completed',
        );
        await quern.close();
      } finally {
        if (saved !== undefined) process.env.DATABASE_URL = saved;
      }
    });
  });

  it('works outside mocha: a plain node script importing quern/testing', async function () {
    const script = `
      import { performJob } from 'quern/testing';
      import { defineWorker } from 'quern';
      import { AssertionError } from 'node:assert';
      const w = defineWorker({ name: 'w', perform: (job) => ({ ok: job.args.n * 2 }) });
      const outcome = await performJob(w, { n: 21 });
      console.log(JSON.stringify({ result: outcome.result, mocha: typeof describe }));`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { cwd: ROOT });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (out += c.toString()));
    const code = await new Promise((resolve) => child.on('exit', resolve));
    assert.equal(code, 0, out);
    assert.deepEqual(JSON.parse(out), { result: 42, mocha: 'undefined' });
  });
});
