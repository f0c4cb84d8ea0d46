import assert from 'node:assert/strict';
import { JobQueries } from '../../src/db/queries/jobs.js';
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
    const job = await db.client.insert({ worker: 'slow', args: { ms: 60000 } });
    await node!.telemetry.waitFor('job:start', (e) => e.id === job.id, 5000);
    const stopped = node!.telemetry.waitFor('job:stop', (e) => e.id === job.id, 3000);
    const result = await new JobQueries(db.schema).cancel(db.pool, job.id);
    assert.equal(result.after, 'cancelled');
    assert.equal((await stopped).state, 'cancelled');
    const [row] = await db.query<{ state: string }>('SELECT state FROM jobs WHERE id = $1', [
      job.id,
    ]);
    assert.equal(row!.state, 'cancelled');
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
