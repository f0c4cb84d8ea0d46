import assert from 'node:assert/strict';
import sinon from 'sinon';
import { MaintenanceQueries } from '../../src/db/queries/maintenance.js';
import type { QuernNode } from '../../src/node/node.js';
import { cleanup, createSchema, eventually, type TestSchema } from '../helpers/db.js';
import { startNode } from '../helpers/node.js';

// A fetch whose claim committed but whose answer was lost with the connection (fault injection:
// the real statement runs, then the call fails as if the connection dropped). Without a remedy
// the jobs would stay executing for ever: their node is alive, so the lifeline leaves them alone.
describe('a fetch whose answer is lost', function () {
  let db: TestSchema;
  let node: QuernNode | undefined;
  beforeEach(async function () {
    db = await createSchema(this.currentTest!.title);
  });
  afterEach(async function () {
    sinon.restore();
    await node?.stop();
    node = undefined;
    await cleanup(this, db);
  });

  it('puts the jobs it claimed back, attempt refunded, and they run', async function () {
    node = await startNode(db.schema, db.url, {
      queues: { default: { limit: 5, pollInterval: 200 } },
    });
    const fetch = node.jobs.fetch.bind(node.jobs);
    let claimed: number[] = [];
    const stub = sinon.stub(node.jobs, 'fetch').callsFake(async (...args) => {
      const rows = await fetch(...args);
      if (rows.length === 0 || claimed.length > 0) return rows;
      claimed = rows.map((r) => r.id);
      throw Object.assign(new Error('Connection terminated unexpectedly'), { code: 'ECONNRESET' });
    });
    const jobs = await db.client.insertMany(
      Array.from({ length: 3 }, (_, i) => ({ worker: 'ok', args: { value: i } })),
    );
    await eventually(() => Promise.resolve(claimed.length > 0), 10000, 'the lost fetch');
    await eventually(
      async () => {
        const rows = await db.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM jobs WHERE id = ANY($1) AND state = 'completed'`,
          [jobs.map((j) => j.id)],
        );
        return rows[0]!.n === 3;
      },
      15000,
      'every job completed',
    );
    const rows = await db.query<{ id: number; attempt: number; errors: unknown[] }>(
      'SELECT id, attempt, errors FROM jobs WHERE id = ANY($1)',
      [claimed],
    );
    for (const row of rows) assert.deepEqual([row.attempt, row.errors], [1, []], `job ${row.id}`);
    assert.ok(stub.callCount >= 2);
  });

  it('a slow put-back does not hold up the heartbeats', async function () {
    // The heartbeat awaited the put-back, and the next heartbeat waited for it: a put-back on a
    // connection that hangs (up to the pool's 60 s query timeout), or slow for any reason, and
    // repeated at every heartbeat for two minutes after a lost fetch, left the node without
    // heartbeats past heartbeatTimeout, so it fenced itself and stopped its jobs.
    let unblock = (): void => undefined;
    const hung = new Promise<void>((resolve) => (unblock = resolve));
    let putBackBegan = false;
    sinon.stub(MaintenanceQueries.prototype, 'releaseLostFetches').callsFake(async () => {
      putBackBegan = true;
      await hung;
      return 0;
    });
    try {
      node = await startNode(db.schema, db.url, {
        node: 'beating',
        heartbeatInterval: 250,
        heartbeatTimeout: 1000,
        queues: { default: { limit: 5, pollInterval: 200 } },
      });
      const fetch = node.jobs.fetch.bind(node.jobs);
      let lost = false;
      sinon.stub(node.jobs, 'fetch').callsFake(async (...args) => {
        const rows = await fetch(...args);
        if (rows.length === 0 || lost) return rows;
        lost = true;
        throw Object.assign(new Error('Connection terminated unexpectedly'), {
          code: 'ECONNRESET',
        });
      });
      await db.client.insert({ worker: 'ok', args: { value: 1 } });
      await eventually(() => Promise.resolve(putBackBegan), 10000, 'the put-back to begin');
      const [row] = await db.query<{ at: Date }>(
        `SELECT updated_at AS at FROM nodes WHERE name = 'beating'`,
      );
      await eventually(
        async () => {
          const [moved] = await db.query<{ ok: boolean }>(
            `SELECT updated_at > $1::timestamptz + interval '750 ms' AS ok FROM nodes WHERE name = 'beating'`,
            [row!.at],
          );
          return moved?.ok;
        },
        5000,
        'heartbeats while the put-back hangs',
      );
    } finally {
      unblock();
    }
  });
});
