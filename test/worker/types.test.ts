// Typed workers, checked by the compiler: this file is part of `tsc -p tsconfig.json` (run by
// `npm test` and `npm run check`), and every `@ts-expect-error` line must be an error, or the
// build fails. The mocha part runs the valid calls against a real database.

import assert from 'node:assert/strict';
import { Quern } from '../../src/client.js';
import { InsertError } from '../../src/jobs/insert.js';
import { assertEnqueued, performJob } from '../../src/testing/index.js';
import { defineWorker } from '../../src/worker/define.js';
import { cleanup, createSchema, type TestSchema } from '../helpers/db.js';

const sendEmail = defineWorker<{ to: string; subject: string; cc?: string[] }>({
  name: 'send-email',
  queue: 'mailers',
  unique: { keys: ['to', 'subject'], period: 300 },
  validate: (args) =>
    /@/.test(String((args as { to?: unknown }).to)) ? null : 'to: not an email address',
  async perform(job) {
    const _to: string = job.args.to;
    const _cc: string[] | undefined = job.args.cc;
    // @ts-expect-error perform sees typed args: there is no `from`
    const _from: unknown = job.args.from;
    // @ts-expect-error subject is a string
    const _n: number = job.args.subject;
    await Promise.resolve();
  },
});

const ping = defineWorker({ name: 'ping', perform: () => undefined });

/** Never called: only compiled. */
export function compileOnly(quern: Quern): void {
  void quern.insert({ worker: sendEmail, args: { to: 'a@b.c', subject: 'hi' } });
  void quern.insert({ worker: sendEmail, args: { to: 'a@b.c', subject: 'hi', cc: ['d@e.f'] } });
  // @ts-expect-error a required arg is missing
  void quern.insert({ worker: sendEmail, args: { to: 'a@b.c' } });
  // @ts-expect-error an arg of the wrong type
  void quern.insert({ worker: sendEmail, args: { to: 1, subject: 'hi' } });
  // @ts-expect-error an unknown arg
  void quern.insert({ worker: sendEmail, args: { to: 'a@b.c', subject: 'hi', bcc: 'x' } });
  void quern.insert({
    worker: sendEmail,
    args: { to: 'a@b.c', subject: 'hi' },
    // @ts-expect-error unique keys are keys of the args
    unique: { keys: ['body'] },
  });
  // By name, args are not known at compile time.
  void quern.insert({ worker: 'send-email', args: { anything: true } });
  void quern.insert({ worker: ping, args: { free: 'form' } });
  void quern.insertMany([
    { worker: sendEmail, args: { to: 'a@b.c', subject: '1' } },
    // @ts-expect-error every job of a batch is checked
    { worker: sendEmail, args: { to: 'a@b.c' } },
  ]);
  // @ts-expect-error priority is a number
  void quern.insert({ worker: sendEmail, args: { to: 'a@b.c', subject: 'hi' }, priority: 'high' });
  // @ts-expect-error performJob checks args against the worker too
  void performJob(sendEmail, { to: 'a@b.c' });
  // @ts-expect-error so does assertEnqueued (args are a partial match)
  void assertEnqueued({ worker: sendEmail, args: { to: 7 } });
  void assertEnqueued({ worker: sendEmail, args: { to: 'a@b.c' } });
  defineWorker<{ id: number }>({
    name: 'bad-unique',
    // @ts-expect-error the worker's unique keys are keys of its args
    unique: { keys: ['uid'] },
    perform: () => undefined,
  });
  defineWorker<{ id: number }>({
    name: 'bad-return',
    // @ts-expect-error perform returns one of the documented outcomes
    perform: () => ({ okay: true }),
  });
}

describe('typed workers', function () {
  let db: TestSchema;
  let quern: Quern;
  beforeEach(async function () {
    db = await createSchema(this.currentTest!.title);
    quern = new Quern({ pool: db.pool, schema: db.schema });
  });
  afterEach(async function () {
    await cleanup(this, db);
  });

  it('inserts through the definition with its defaults and unique options', async function () {
    const a = await quern.insert({ worker: sendEmail, args: { to: 'a@b.c', subject: 'hi' } });
    const b = await quern.insert({
      worker: sendEmail,
      args: { subject: 'hi', to: 'a@b.c', cc: ['x@y.z'] },
    });
    assert.equal(a.queue, 'mailers');
    assert.equal(b.conflict, true);
    assert.equal(b.id, a.id);
  });

  it('runs the validate hook at insert, before anything is written', async function () {
    await assert.rejects(
      quern.insertMany([
        { worker: sendEmail, args: { to: 'a@b.c', subject: 'ok' } },
        { worker: sendEmail, args: { to: 'nobody', subject: 'bad' } },
      ]),
      (error: unknown) =>
        error instanceof InsertError &&
        error.field === 'args' &&
        /jobs\[1\]\.args: rejected by worker "send-email": to: not an email address/.test(
          error.message,
        ),
    );
    const rows = await db.query('SELECT id FROM jobs');
    assert.equal(rows.length, 0);
  });

  it('a validate that throws anything, or returns a Promise or a boolean, rejects the args', async function () {
    const cases: [string, () => never | Promise<string>, RegExp][] = [
      // A thrown string was read as an Error's message (undefined): the args were accepted.
      [
        'a string',
        () => {
          // eslint-disable-next-line @typescript-eslint/only-throw-error -- what is tested
          throw 'to: missing';
        },
        /rejected by worker "v": to: missing$/,
      ],
      // A thrown null was a TypeError from reading its message.
      [
        'null',
        () => {
          // eslint-disable-next-line @typescript-eslint/only-throw-error -- what is tested
          throw null;
        },
        /rejected by worker "v": validate threw null$/,
      ],
      [
        'an Error with no message',
        () => {
          throw new Error();
        },
        /rejected by worker "v": Error$/,
      ],
      ['a Promise', () => Promise.resolve('bad'), /validate returned a Promise/],
      // A predicate's answer: true rejected with "true" and false accepted the args.
      ...[true, false].map((answer): [string, () => never, RegExp] => [
        String(answer),
        () => answer as never,
        new RegExp(
          `rejected by worker "v": validate returned ${String(answer)}; it must return null \\(or nothing\\) to accept the args, or a message`,
        ),
      ]),
    ];
    for (const [what, validate, message] of cases) {
      const worker = defineWorker({
        name: 'v',
        validate: validate as unknown as () => string,
        perform: () => undefined,
      });
      await assert.rejects(
        quern.insert({ worker, args: {} }),
        (error: unknown) =>
          error instanceof InsertError && error.field === 'args' && message.test(error.message),
        what,
      );
    }
    assert.equal((await db.query('SELECT id FROM jobs')).length, 0);
  });
});
