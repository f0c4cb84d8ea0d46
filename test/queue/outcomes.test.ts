import assert from 'node:assert/strict';
import { toStorableJson } from '../../src/jobs/json.js';
import type { QuernNode } from '../../src/node/node.js';
import { interpretReturn, MAX_SNOOZE_SECONDS } from '../../src/thread/outcome.js';
import { cleanup, createSchema, eventually, type TestSchema } from '../helpers/db.js';
import { startNode } from '../helpers/node.js';

describe('job outcomes, run in worker threads', function () {
  let db: TestSchema;
  let node: QuernNode | undefined;
  beforeEach(async function () {
    db = await createSchema(this.currentTest!.title);
    node = await startNode(db.schema, db.url);
  });
  afterEach(async function () {
    await node?.stop();
    await cleanup(this, db);
  });

  async function finalRow(id: number, states: string[]) {
    return eventually(
      async () => {
        const [row] = await db.query('SELECT * FROM jobs WHERE id = $1', [id]);
        return row && states.includes(row.state as string) ? row : null;
      },
      20000,
      `job ${id} to reach ${states.join('/')}`,
    );
  }

  it('an Error returned instead of thrown fails the job with its message, and says so', async function () {
    // It completed the job with {} as its result (an Error has no own keys): the message was lost.
    const warned = node!.telemetry.waitFor('job:warning', (e) => e.worker === 'returns', 5000);
    const job = await db.client.insert({ worker: 'returns', args: { returnError: 'not found' } });
    const row = await finalRow(job.id, ['retryable']);
    const errors = row.errors as { attempt: number; error: string }[];
    assert.equal(errors.length, 1);
    assert.match(errors[0]!.error, /^Error: not found\n\s+at /);
    assert.equal(row.result, null);
    assert.equal(
      (await warned).warning,
      'perform returned an Error instead of throwing it: read as a failure',
    );
  });

  it('a timeout function returning junk warns, and the job runs with no timeout', async function () {
    const warned = node!.telemetry.waitFor('job:warning', (e) => e.worker === 'slow', 5000);
    const stopped = node!.telemetry.waitFor('job:stop', (e) => e.worker === 'slow', 5000);
    const job = await db.client.insert({ worker: 'slow', args: { ms: 20, timeout: 'abc' } });
    const warning = await warned;
    assert.equal(warning.id, job.id);
    assert.match(
      warning.warning,
      /^timeout: the worker's timeout function returned "abc", not a positive number of ms; the job runs with no timeout$/,
    );
    assert.equal((await stopped).state, 'completed');
    // 0 is how the function says "no timeout": no warning for it.
    const quiet: string[] = [];
    node!.telemetry.on('job:warning', (e) => quiet.push(e.warning));
    const second = node!.telemetry.waitFor('job:stop', (e) => e.worker === 'slow', 5000);
    await db.client.insert({ worker: 'slow', args: { ms: 20, timeout: 0 } });
    assert.equal((await second).state, 'completed');
    assert.deepEqual(quiet, []);
  });

  it('runs perform in a worker thread with the job and an abort signal', async function () {
    const job = await db.client.insert({
      worker: 'inspect',
      args: { a: 1 },
      tags: ['t'],
      meta: { m: 1 },
    });
    const row = await finalRow(job.id, ['completed']);
    const seen = row.result as {
      isMainThread: boolean;
      hasSignal: boolean;
      job: Record<string, unknown>;
    };
    assert.equal(seen.isMainThread, false);
    assert.equal(seen.hasSignal, true);
    assert.deepEqual(seen.job.args, { a: 1 });
    assert.equal(seen.job.attempt, 1);
    assert.equal(seen.job.maxAttempts, 20);
    assert.equal(seen.job.queue, 'default');
    assert.equal(seen.job.worker, 'inspect');
    assert.deepEqual(seen.job.tags, ['t']);
    assert.deepEqual(seen.job.meta, { m: 1 });
    assert.equal(seen.job.id, job.id);
    assert.ok(row.completed_at instanceof Date);
    assert.deepEqual(row.attempted_by && (row.attempted_by as string[])[0], node!.name);
  });

  const completions: [string, Record<string, unknown>, unknown][] = [
    ['nothing', { undefined: true }, null],
    ["'ok'", { return: 'ok' }, null],
    ['{ ok: value }', { return: { ok: { v: [1, 2] } } }, { v: [1, 2] }],
    // Outcomes travel to the database as array literals: quotes, backslashes, braces, commas,
    // newlines and the word NULL must come back as they were.
    [
      'a result of characters an array literal escapes',
      { return: { ok: { s: 'a"b\\c{d},e\nf', n: 'NULL', u: 'é✓' } } },
      { s: 'a"b\\c{d},e\nf', n: 'NULL', u: 'é✓' },
    ],
    ['a string result', { return: { ok: 'NULL' } }, 'NULL'],
    ['a false result', { return: { ok: false } }, false],
    ['a zero result', { return: { ok: 0 } }, 0],
  ];
  for (const [what, args, result] of completions) {
    it(`returning ${what} completes the job`, async function () {
      const job = await db.client.insert({ worker: 'returns', args });
      const row = await finalRow(job.id, ['completed']);
      assert.deepEqual(row.result, result);
      assert.deepEqual(row.errors, []);
    });
  }

  it('a thrown error makes the job retryable with an error entry, then discarded when attempts run out', async function () {
    const job = await db.client.insert({
      worker: 'returns',
      args: { throw: 'boom' },
      maxAttempts: 3,
    });
    const retryable = await finalRow(job.id, ['retryable', 'available', 'executing', 'discarded']);
    assert.notEqual(retryable.state, 'completed');
    // backoff is 0.2 s for this worker: the stager brings it back until maxAttempts (3) is used up.
    const discarded = await finalRow(job.id, ['discarded']);
    const errors = discarded.errors as { at: string; attempt: number; error: string }[];
    assert.deepEqual(
      errors.map((e) => e.attempt),
      [1, 2, 3],
    );
    assert.match(errors[0]!.error, /Error: boom/);
    assert.match(errors[0]!.error, /returns\.js/, 'the stack is stored');
    assert.ok(discarded.discarded_at instanceof Date);
    assert.equal(discarded.attempt, 3);
  });

  it('an error of characters an array literal escapes is stored as it was', async function () {
    const text = 'x"y\\z{1,2}\nNULL';
    const job = await db.client.insert({
      worker: 'returns',
      args: { return: { error: text } },
      maxAttempts: 1,
    });
    const row = await finalRow(job.id, ['discarded']);
    assert.equal((row.errors as { error: string }[])[0]!.error, text);
  });

  it('returning { error } is a failure like a throw', async function () {
    const job = await db.client.insert({
      worker: 'returns',
      args: { return: { error: 'nope' } },
      maxAttempts: 1,
    });
    const row = await finalRow(job.id, ['discarded']);
    assert.match((row.errors as { error: string }[])[0]!.error, /nope/);
  });

  it('{ cancel } cancels and { discard } discards, with the reason recorded', async function () {
    const a = await db.client.insert({
      worker: 'returns',
      args: { return: { cancel: 'not needed' } },
    });
    const b = await db.client.insert({
      worker: 'returns',
      args: { return: { discard: 'bad data' } },
    });
    const cancelled = await finalRow(a.id, ['cancelled']);
    const discarded = await finalRow(b.id, ['discarded']);
    assert.ok(cancelled.cancelled_at instanceof Date);
    assert.match(JSON.stringify(cancelled.errors), /not needed/);
    assert.match(JSON.stringify(discarded.errors), /bad data/);
    assert.equal(discarded.attempt, 1);
  });

  it('{ snooze } schedules the job again without using up an attempt', async function () {
    const job = await db.client.insert({ worker: 'returns', args: { return: { snooze: 3600 } } });
    const row = await finalRow(job.id, ['scheduled']);
    assert.equal(row.attempt, 0);
    assert.ok((row.scheduled_at as Date).getTime() - Date.now() > 3500_000);
  });

  it('an unknown worker is an error on that job, retried, never a crash', async function () {
    const job = await db.client.insert({ worker: 'no-such-worker', maxAttempts: 1 });
    const [hostile] = await db.query<{ id: number }>(
      `INSERT INTO jobs (worker, max_attempts) VALUES ('../../etc/passwd', 1) RETURNING id`,
    );
    const row = await finalRow(job.id, ['discarded']);
    assert.match(JSON.stringify(row.errors), /unknown worker/);
    const hostileRow = await finalRow(hostile!.id, ['discarded']);
    assert.match(JSON.stringify(hostileRow.errors), /unknown worker/);
    // the node still runs jobs
    const after = await db.client.insert({ worker: 'ok', args: { value: 'still' } });
    assert.equal((await finalRow(after.id, ['completed'])).result, 'still');
  });

  it('a backoff function that throws or returns junk warns, and the default backoff is used', async function () {
    for (const [backoff, said] of [
      ['abc', /returned "abc", not a number of seconds of 0 or more/],
      [-5, /returned -5, not a number of seconds of 0 or more/],
      ['throw', /threw \(Error: no backoff today\)/],
    ] as const) {
      const warned = node!.telemetry.waitFor('job:warning', (e) => e.worker === 'returns', 5000);
      const job = await db.client.insert({ worker: 'returns', args: { throw: 'x', backoff } });
      const warning = await warned;
      assert.equal(warning.id, job.id);
      assert.match(warning.warning, /^backoff: the worker's backoff function /);
      assert.match(warning.warning, said);
      assert.match(warning.warning, /; the default backoff \(15 \+ attempt\^4 seconds\) is used$/);
      const row = await finalRow(job.id, ['retryable']);
      const wait = ((row.scheduled_at as Date).getTime() - Date.now()) / 1000;
      assert.ok(wait > 10 && wait < 20, `the default backoff after attempt 1, got ${wait} s`);
    }
  });

  it('a backoff past what a timestamp holds waits 100 years instead of retrying after a second', async function () {
    // The default backoff at attempt 100001 is 15 + 1e20 seconds: past the year 294276.
    const job = await db.client.insert({
      worker: 'no-such-worker',
      maxAttempts: 200000,
      scheduleIn: 3600,
    });
    await db.query(
      `UPDATE jobs SET attempt = 100000, state = 'available', scheduled_at = now() WHERE id = $1`,
      [job.id],
    );
    const row = await finalRow(job.id, ['retryable']);
    assert.equal(row.attempt, 100001);
    const errors = row.errors as { error: string }[];
    assert.match(errors.at(-1)!.error, /unknown worker/);
    const years = ((row.scheduled_at as Date).getTime() - Date.now()) / (365 * 86400 * 1000);
    assert.ok(years > 99 && years < 101, `retry in ${years} years`);
  });

  it('a per-worker timeout stops the job and records a timeout error', async function () {
    const job = await db.client.insert({
      worker: 'slow',
      args: { ms: 60000, timeout: 200 },
      maxAttempts: 1,
    });
    const row = await finalRow(job.id, ['discarded']);
    assert.match(JSON.stringify(row.errors), /timed out after 200 ms/);
  });

  it('an unrecognised return value completes the job with a warning', async function () {
    const warnings: string[] = [];
    node!.telemetry.on('job:warning', (e) => warnings.push(e.warning));
    const job = await db.client.insert({ worker: 'returns', args: { return: { weird: 1 } } });
    const row = await finalRow(job.id, ['completed']);
    assert.deepEqual(row.result, { weird: 1 });
    await eventually(() => Promise.resolve(warnings.length > 0));
    assert.match(warnings[0]!, /not a documented outcome/);
  });

  it('an error beside other keys fails the job (it completed with a warning)', async function () {
    const warnings: string[] = [];
    node!.telemetry.on('job:warning', (e) => warnings.push(e.warning));
    const job = await db.client.insert({
      worker: 'returns',
      args: { return: { error: 'not found', status: 404 } },
      maxAttempts: 1,
    });
    const row = await finalRow(job.id, ['discarded']);
    const errors = row.errors as { error: string }[];
    assert.equal(errors.at(-1)!.error, 'not found');
    assert.equal(row.result, null);
    await eventually(() => Promise.resolve(warnings.length > 0));
    assert.match(warnings[0]!, /\{ error \} with other keys \(status\): read as a failure/);
    // { ok, error: null } is still a success, stored whole, as any other value.
    const fine = await db.client.insert({
      worker: 'returns',
      args: { return: { ok: true, error: null } },
    });
    assert.deepEqual((await finalRow(fine.id, ['completed'])).result, { ok: true, error: null });
  });
});

describe('return values that break the rules of their shape', function () {
  let db: TestSchema;
  let node: QuernNode | undefined;
  beforeEach(async function () {
    db = await createSchema(this.currentTest!.title);
    node = await startNode(db.schema, db.url);
  });
  afterEach(async function () {
    await node?.stop();
    await cleanup(this, db);
  });

  const finished = (id: number, states: string[]) =>
    eventually(
      async () => {
        const [row] = await db.query('SELECT * FROM jobs WHERE id = $1', [id]);
        return row && states.includes(row.state as string) ? row : null;
      },
      20000,
      `job ${id} to reach ${states.join('/')}`,
    );

  it('a snooze beyond a year, or of 0, fails the job with an error naming it; a year is accepted', async function () {
    const [far, zero, year] = await db.client.insertMany([
      { worker: 'returns', args: { return: { snooze: 1e12 } }, maxAttempts: 1 },
      { worker: 'returns', args: { return: { snooze: 0 } }, maxAttempts: 1 },
      { worker: 'returns', args: { return: { snooze: MAX_SNOOZE_SECONDS } } },
    ]);
    for (const [job, got] of [
      [far!, '1000000000000'],
      [zero!, '0'],
    ] as const) {
      const row = await finished(job.id, ['discarded', 'scheduled', 'completed']);
      assert.equal(row.state, 'discarded');
      const errors = row.errors as { error: string }[];
      assert.equal(
        errors[0]!.error,
        `invalid return value: { snooze } needs a number of seconds above 0 and at most 31536000 (a year), got ${got}`,
      );
    }
    const snoozed = await finished(year!.id, ['scheduled', 'discarded', 'retryable']);
    assert.equal(snoozed.state, 'scheduled');
    assert.equal(snoozed.attempt, 0);
    const inYear = (snoozed.scheduled_at as Date).getTime() - Date.now();
    assert.ok(Math.abs(inYear - MAX_SNOOZE_SECONDS * 1000) < 60_000, `a year from now: ${inYear}`);
  });

  it('{ cancel }, { discard } and { error } without a value say so instead of storing "null"', async function () {
    const [cancel, discard, error] = await db.client.insertMany([
      { worker: 'returns', args: { return: { cancel: null } } },
      { worker: 'returns', args: { return: { discard: '' } } },
      { worker: 'returns', args: { return: { error: null } }, maxAttempts: 1 },
    ]);
    const texts = async (id: number, state: string) =>
      ((await finished(id, [state])).errors as { error: string }[]).map((e) => e.error);
    assert.deepEqual(await texts(cancel!.id, 'cancelled'), [
      'cancelled: perform returned { cancel: null }, with no reason given',
    ]);
    assert.deepEqual(await texts(discard!.id, 'discarded'), [
      'discarded: perform returned { discard: "" }, with no reason given',
    ]);
    assert.deepEqual(await texts(error!.id, 'discarded'), [
      'perform returned { error: null }, with no error given',
    ]);
  });
});

describe('interpretReturn, for values JSON args cannot carry', function () {
  const cycle = (): Record<string, unknown> => {
    const a: Record<string, unknown> = { name: 'a' };
    a.self = a;
    return a;
  };
  const snoozes: [string, unknown, string][] = [
    ['NaN', NaN, 'NaN'],
    ['Infinity', Infinity, 'Infinity'],
    ['a negative number', -5, '-5'],
    ['a year and a second', MAX_SNOOZE_SECONDS + 1, '31536001'],
    ['a string', '60', 'the string "60"'],
    ['a boolean', true, 'true'],
    ['null', null, 'null'],
  ];
  for (const [what, seconds, shown] of snoozes) {
    it(`{ snooze: ${what} } fails the job, naming the value`, function () {
      assert.deepEqual(interpretReturn({ snooze: seconds }), {
        kind: 'failed',
        error: `invalid return value: { snooze } needs a number of seconds above 0 and at most 31536000 (a year), got ${shown}`,
        warning: null,
      });
    });
  }

  it('{ ok: undefined } completes with a null result and no warning, as a bare return does', function () {
    assert.deepEqual(interpretReturn({ ok: undefined }), {
      kind: 'completed',
      result: null,
      warning: null,
    });
  });

  it('fractions of a second are a valid snooze', function () {
    assert.deepEqual(interpretReturn({ snooze: 0.5 }), {
      kind: 'snoozed',
      seconds: 0.5,
      warning: null,
    });
  });

  it('a reason or error that is not a string is stored as its JSON; one JSON cannot hold, with a warning', function () {
    assert.deepEqual(interpretReturn({ discard: { code: 'gone', at: [1, 2] } }), {
      kind: 'discarded',
      reason: '{"code":"gone","at":[1,2]}',
      warning: null,
    });
    assert.deepEqual(interpretReturn({ error: 42 }), {
      kind: 'failed',
      error: '42',
      warning: null,
    });
    const cancelled = interpretReturn({ cancel: cycle() });
    assert.equal(cancelled.kind, 'cancelled');
    assert.match(
      (cancelled as { reason: string }).reason,
      /an object with keys name, self, which cannot be stored as JSON/,
    );
    assert.match(cancelled.warning!, /^cancel: the value cannot be stored as JSON: .*circular/);
    const failed = interpretReturn({ error: () => 1 });
    assert.equal(failed.kind, 'failed');
    assert.match((failed as { error: string }).error, /function, which cannot be stored as JSON/);
    assert.match(failed.warning!, /^error: /);
  });

  it('a reason longer than 20000 characters is cut, with a warning', function () {
    const outcome = interpretReturn({ cancel: 'x'.repeat(25000) });
    assert.equal((outcome as { reason: string }).reason.length, 20000);
    assert.equal(outcome.warning, 'cancel: 25000 characters, cut to 20000');
  });
});

describe('toStorableJson: what a job produced, as jsonb can hold it', function () {
  it('names the path of every value it changed, the first three of a kind and a count', function () {
    const stored = toStorableJson({
      samples: [NaN, 1, NaN, NaN, NaN, NaN],
      'odd key': { n: 10n },
      hooks: { onDone: () => 1, list: [Symbol('s')] },
      seen: new Set([1]),
    });
    assert.deepEqual(stored.value, {
      samples: [null, 1, null, null, null, null],
      'odd key': { n: '10' },
      hooks: { list: [null] },
      seen: {},
    });
    assert.equal(
      stored.problem,
      'changed to be stored as JSON: result.samples[0], result.samples[2], result.samples[3] and 2 more: NaN, stored as null; result.odd key.n: a BigInt, stored as a string; result.hooks.onDone: a function, dropped; result.hooks.list[0]: a symbol, stored as null; result.seen: a Set, stored as {}',
    );
  });

  it('a result that cannot be serialised at all fails the job instead of completing with no result', function () {
    // A cycle, a toJSON that throws, a Proxy whose traps throw: completed with a NULL result
    // (as it was) lost the job's output while the job looked successful.
    const cycle: Record<string, unknown> = { name: 'loop' };
    cycle.self = cycle;
    const refusing = {
      toJSON() {
        throw new Error('toJSON refuses');
      },
    };
    const trap = new Proxy(
      {},
      {
        ownKeys() {
          throw new Error('the ownKeys trap refuses');
        },
      },
    );
    const cases: [unknown, RegExp][] = [
      [{ ok: cycle }, /^could not read the value perform returned: result: .*circular/],
      [{ ok: { deep: refusing } }, /^could not read the value perform returned: .*toJSON refuses/],
      [{ ok: trap }, /^could not read the value perform returned: .*ownKeys trap refuses/],
      // Not a documented outcome, the same rule.
      [{ a: 1, b: cycle }, /^could not read the value perform returned: result: .*circular/],
    ];
    for (const [value, error] of cases) {
      const outcome = interpretReturn(value);
      assert.equal(outcome.kind, 'failed', JSON.stringify(outcome));
      assert.match((outcome as { error: string }).error, error);
    }
    // What can be kept still completes, with a warning for what was changed.
    assert.equal(interpretReturn({ ok: () => 1 }).kind, 'completed');
  });

  it('a Promise returned inside a result (a forgotten await) is named in the warning', function () {
    const pending = new Promise(() => undefined);
    assert.deepEqual(interpretReturn({ ok: { user: pending } }), {
      kind: 'completed',
      result: { user: {} },
      warning: 'changed to be stored as JSON: result.user: a Promise (not awaited), stored as {}',
    });
  });

  it('leaves what JSON holds alone: no warning for plain values, undefined or Dates', function () {
    const at = new Date('2026-12-03T00:00:00Z');
    const stored = toStorableJson({ a: [1, 'x', null, true], b: undefined, at });
    assert.deepEqual(stored, {
      value: { a: [1, 'x', null, true], at: '2026-12-03T00:00:00.000Z' },
      problem: null,
    });
  });

  it('a bare NaN result, and NaN inside a value that is not a documented outcome, are named too', function () {
    assert.deepEqual(interpretReturn({ ok: NaN }), {
      kind: 'completed',
      result: null,
      warning: 'changed to be stored as JSON: result: NaN, stored as null',
    });
    const odd = interpretReturn({ total: Infinity, n: 2 });
    assert.deepEqual(odd, {
      kind: 'completed',
      result: { total: null, n: 2 },
      warning:
        'perform returned a value that is not a documented outcome (an object with keys total, n); treated as completed; changed to be stored as JSON: result.total: Infinity, stored as null',
    });
  });
});
