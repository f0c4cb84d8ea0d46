// performJob by worker name: looked up in the workers of the quern client (useQuern, or
// { quern }); anything that is neither a definition nor a known name is a clear error.

import assert from 'node:assert/strict';
import path from 'node:path';
import { Quern } from '../../src/client.js';
import { InsertError } from '../../src/jobs/insert.js';
import { performJob, PerformJobError, useQuern } from '../../src/testing/index.js';
import { defineWorker } from '../../src/worker/define.js';
import { ROOT } from '../helpers/node.js';

const sendEmail = defineWorker<{ to: string }>({
  name: 'send-email',
  queue: 'mailers',
  perform: (job) => ({ ok: `sent to ${job.args.to}` }),
});

describe('performJob by worker name', function () {
  afterEach(function () {
    useQuern(null);
  });

  it('runs a worker the client registered with useQuern knows, with its defaults', async function () {
    useQuern(new Quern({ testing: 'inline', workers: [sendEmail] }));
    const outcome = await performJob('send-email', { to: 'ada@example.com' });
    assert.equal(outcome.state, 'completed');
    assert.equal(outcome.result, 'sent to ada@example.com');
    assert.equal(outcome.job.queue, 'mailers');
  });

  it('looks the name up in a workers folder of the client passed as { quern }', async function () {
    const quern = new Quern({ testing: 'inline', workers: path.join(ROOT, 'workers') });
    const outcome = await performJob('echo', { message: 'hi' }, { quern });
    assert.equal(outcome.state, 'completed');
    assert.equal(outcome.result, 'hi');
  });

  it('an unknown name says what the client knows and suggests the near one', async function () {
    useQuern(new Quern({ testing: 'inline', workers: [sendEmail] }));
    await assert.rejects(performJob('send-emial', { to: 'x' }), (error: unknown) => {
      assert.ok(error instanceof PerformJobError, String(error));
      assert.match(
        error.message,
        /performJob\("send-emial"\): no worker of that name is known to the quern client \(did you mean "send-email"\?\) \(it knows "send-email"\); or pass the worker definition itself/,
      );
      return true;
    });
  });

  it('a name with no client says to call useQuern or pass the definition', async function () {
    await assert.rejects(
      performJob('send-email', { to: 'x' }),
      /performJob\("send-email"\): a worker name is looked up in the workers of a quern client .*useQuern\(quern\) or pass \{ quern \}; or pass the worker definition itself/,
    );
  });

  it('neither a definition nor a name: says what is expected', async function () {
    for (const worker of [42, undefined, null]) {
      await assert.rejects(
        performJob(worker as never, {}),
        /performJob: expected a worker definition \(defineWorker\(\{ name, perform \}\)\) or the name of a worker known to the quern client, got/,
      );
    }
  });

  it('checks scheduledAt as an insert does', async function () {
    await assert.rejects(
      performJob(sendEmail, { to: 'x' }, { scheduledAt: new Date(8.64e15) }),
      (error: unknown) => error instanceof InsertError && error.field === 'scheduledAt',
    );
  });
});
