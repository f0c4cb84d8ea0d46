// `queue scale` on a running node: a queue whose concurrency was not configured runs as many jobs
// at once as its new limit, on the threads it has; a configured concurrency stays as it is.

import assert from 'node:assert/strict';
import type { QuernNode } from '../../src/node/node.js';
import { cleanup, createSchema, eventually, type TestSchema } from '../helpers/db.js';
import { startNode } from '../helpers/node.js';

describe('scaling a running queue', function () {
  let db: TestSchema;
  let node: QuernNode | undefined;
  beforeEach(async function () {
    db = await createSchema(this.currentTest!.title);
    node = await startNode(db.schema, db.url, {
      queues: {
        // One thread each: the limit is what the thread may run at once.
        default: { limit: 2, threads: 1 },
        fixed: { limit: 2, threads: 1, concurrency: 2 },
      },
      shutdownGracePeriod: 1000,
    });
  });
  afterEach(async function () {
    await node?.stop();
    await cleanup(this, db);
  });

  async function runningAfterScale(queue: string, limit: number): Promise<number> {
    const scaled = node!.telemetry.waitFor('queue:scale', (e) => e.queue === queue, 5000);
    await db.client.scaleQueue(queue, limit);
    assert.equal((await scaled).limit, limit);
    await db.client.insertMany(
      Array.from({ length: 6 }, () => ({ worker: 'slow', queue, args: { ms: 60000 } })),
    );
    // Every job is claimed (the limit is 6); those the threads may run are in perform.
    await eventually(
      async () => {
        const [row] = await db.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM jobs WHERE queue = $1 AND state = 'executing'`,
          [queue],
        );
        return row!.n === 6;
      },
      10000,
      'all six claimed',
    );
    // Then the count of jobs inside perform settles: read it until two reads 200 ms apart agree.
    let running = -1;
    await eventually(
      async () => {
        const now = node!.queueHeartbeats()[queue]!.running;
        await new Promise((resolve) => setTimeout(resolve, 200));
        const settled = now === node!.queueHeartbeats()[queue]!.running && now === running;
        running = now;
        return settled;
      },
      10000,
      'the running count to settle',
    );
    return running;
  }

  it('a queue without a configured concurrency runs its new limit at once', async function () {
    this.timeout(20000);
    assert.equal(await runningAfterScale('default', 6), 6);
  });

  it('a configured concurrency holds after a scale', async function () {
    this.timeout(20000);
    assert.equal(await runningAfterScale('fixed', 6), 2);
  });
});
