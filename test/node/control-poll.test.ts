import assert from 'node:assert/strict';
import { JobQueries } from '../../src/db/queries/jobs.js';
import { sendControl } from '../../src/node/control.js';
import type { QuernNode } from '../../src/node/node.js';
import { cleanup, createSchema, eventually, type TestSchema } from '../helpers/db.js';
import { startNode } from '../helpers/node.js';

// What the control poll recovers when a notification is lost (sent while a node's listening
// connection was down): here the changes are written without any NOTIFY at all.
describe('control without notifications (the poll)', function () {
  let db: TestSchema;
  let node: QuernNode | undefined;
  beforeEach(async function () {
    db = await createSchema(this.currentTest!.title);
    node = await startNode(db.schema, db.url, { heartbeatInterval: 200 });
  });
  afterEach(async function () {
    await node?.stop();
    await cleanup(this, db);
  });

  it('a running job cancelled in its row is stopped at the next poll', async function () {
    // Listening before inserting: the job can start before insert() returns.
    const starting = node!.telemetry.waitFor('job:start', (e) => e.worker === 'slow', 5000);
    const job = await db.client.insert({ worker: 'slow', args: { ms: 60000 } });
    assert.equal((await starting).id, job.id);
    const stopped = node!.telemetry.waitFor('job:stop', (e) => e.id === job.id, 3000);
    const result = await new JobQueries(db.schema).cancel(db.pool, job.id);
    assert.equal(result.after, 'cancelled');
    assert.equal((await stopped).state, 'cancelled');
    const [row] = await db.query<{ state: string }>('SELECT state FROM jobs WHERE id = $1', [
      job.id,
    ]);
    assert.equal(row!.state, 'cancelled');
  });

  it('a job cancelled and retried at once: a late stop reaches only the cancelled attempt', async function () {
    const first = node!.telemetry.waitFor('job:start', (e) => e.worker === 'slow', 5000);
    const job = await db.client.insert({ worker: 'slow', args: { ms: 60000 } });
    await first;
    const [before] = await db.query<{ attempted_by: string[] }>(
      'SELECT attempted_by FROM jobs WHERE id = $1',
      [job.id],
    );
    const oldToken = before!.attempted_by[1]!;
    // Cancelled in its row (no message: the node learns it from its poll), then retried at once:
    // the node may fetch the second attempt while the first is still running here.
    const firstStopped = node!.telemetry.waitFor(
      'job:stop',
      (e) => e.id === job.id && e.attempt === 1,
      5000,
    );
    const second = node!.telemetry.waitFor(
      'job:start',
      (e) => e.id === job.id && e.attempt === 2,
      5000,
    );
    await new JobQueries(db.schema).cancel(db.pool, job.id);
    await db.client.retry(job.id);
    assert.equal((await firstStopped).state, 'cancelled');
    await second;
    // The cancel message of the first attempt arrives late, naming its token.
    const told = node!.telemetry.waitFor('job:cancel', (e) => e.id === job.id, 5000);
    await sendControl(db.pool, db.schema, {
      action: 'cancel',
      id: job.id,
      node: node!.name,
      token: oldToken,
    });
    await told; // (running: true, as the poll stopped that attempt here)
    // The second attempt's perform begins just after its job:start (on its thread): wait for it.
    const producer = node!.supervisors.get('default')!.producer;
    await eventually(
      () => Promise.resolve(producer.runningCount === 1),
      5000,
      'the second attempt in its perform',
    );
    const [row] = await db.query<{ state: string; attempt: number; errors: unknown[] }>(
      'SELECT state::text, attempt, errors FROM jobs WHERE id = $1',
      [job.id],
    );
    assert.equal(row!.state, 'executing');
    assert.equal(row!.attempt, 2);
    assert.equal(row!.errors.length, 1, 'only the cancel of the first attempt is recorded');
  });

  it('a saved queue change is applied at the next poll', async function () {
    const paused = node!.telemetry.waitFor('queue:pause', (e) => e.queue === 'default', 3000);
    await db.client.nodes.saveSetting(db.pool, {
      node: '*',
      queue: 'default',
      paused: true,
      limit: 4,
      running: null,
    });
    await paused;
    await eventually(
      () => Promise.resolve(node!.supervisors.get('default')?.producer.limit === 4),
      3000,
      'the new limit',
    );
  });

  it('only a change of the saved settings is acted on: a queue paused for another reason stays paused', async function () {
    const supervisor = node!.supervisors.get('default')!;
    supervisor.pause();
    // Several polls go by.
    await new Promise((r) => setTimeout(r, 1000));
    assert.equal(supervisor.producer.paused, true);
  });
});

describe('README example: controlling queues and jobs', function () {
  let db: TestSchema;
  let node: QuernNode | undefined;
  afterEach(async function () {
    await node?.stop();
    await cleanup(this, db);
  });

  it('pauses, resumes, scales, starts and stops queues, cancels and retries a job', async function () {
    db = await createSchema(this.test!.title);
    node = await startNode(db.schema, db.url, { node: 'web-1' });
    const quern = db.client;
    const starting = node.telemetry.waitFor('job:start', (e) => e.worker === 'slow', 5000);
    const job = await quern.insert({ worker: 'slow', args: { ms: 60000 } });
    assert.equal((await starting).id, job.id);
    const events: string[] = [];
    for (const event of [
      'queue:pause',
      'queue:resume',
      'queue:scale',
      'queue:start',
      'queue:stop',
    ] as const)
      node.telemetry.on(event, (e) => events.push(`${event} ${e.queue}`));
    // Each change waits for the node to apply it: changes made faster than that are applied
    // together, and only the end state counts (a pause then a resume may show no event at all).
    const applied = (count: number) =>
      eventually(() => Promise.resolve(events.length === count), 5000, `${count} changes applied`);

    // README example: control
    await quern.pauseQueue('default', { node: 'web-1' }); // or every node: no `node`
    // end README example
    await applied(1);
    // README example: control
    await quern.resumeQueue('default');
    // end README example
    await applied(2);
    // README example: control
    await quern.scaleQueue('default', 20);
    // end README example
    await applied(3);
    // README example: control
    await quern.startQueue('reports', { limit: 5 });
    // end README example
    await applied(4);
    // README example: control
    await quern.stopQueue('reports');

    const { changed, message } = await quern.cancel(job.id); // 'job 7 cancelled; node web-1 running it was told to stop it'
    await quern.retry(job.id); // available again, now
    // end README example
    await applied(5);
    assert.deepEqual(events, [
      'queue:pause default',
      'queue:resume default',
      'queue:scale default',
      'queue:start reports',
      'queue:stop reports',
    ]);
    assert.equal(node.supervisors.get('default')!.producer.limit, 20);
    assert.equal(changed, true);
    assert.equal(message, `job ${job.id} cancelled; node web-1 running it was told to stop it`);
    await eventually(
      async () => {
        const [row] = await db.query<{ state: string; attempt: number }>(
          'SELECT state, attempt FROM jobs WHERE id = $1',
          [job.id],
        );
        return row?.state === 'executing' && row.attempt === 2;
      },
      10000,
      'the retried job to run again',
    );
  });
});
