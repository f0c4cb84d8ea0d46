// The claim (JobQueries.fetch) under contention: several connections claiming one queue at once,
// while another transaction keeps rewriting the waiting rows, must hand out every job exactly
// once, to exactly one claimer, and lose none. The claim finds the rows it locked by ctid.

import assert from 'node:assert/strict';
import { JobQueries } from '../../src/db/queries/jobs.js';
import { cleanup, createSchema, type TestSchema } from '../helpers/db.js';

describe('claiming jobs', function () {
  let db: TestSchema;
  beforeEach(async function () {
    db = await createSchema(this.currentTest!.title);
  });
  afterEach(async function () {
    await cleanup(this, db);
  });

  it('concurrent claims, with the waiting rows rewritten meanwhile, hand out each job exactly once', async function () {
    this.timeout(60000);
    const total = 3000;
    await db.client.insertMany(
      Array.from({ length: total }, (_, i) => ({ worker: 'ok', args: { value: i } })),
    );
    const jobs = new JobQueries(db.schema);
    const claimedBy = new Map<number, string>();
    let duplicates = 0;
    // Another writer: new versions of waiting rows (same state), committed while claims run,
    // until most jobs are claimed; then the claimers take what is left. A row the writer holds
    // is skipped (SKIP LOCKED), and one it rewrote after a claim's snapshot is left for a later
    // claim, so claimers stop only once the writer has stopped and the queue answers empty.
    let churning = true;
    const churn = (async () => {
      while (claimedBy.size < total * 0.8) {
        await db.query(
          `UPDATE jobs SET meta = jsonb_build_object('touched', random())
           WHERE id IN (SELECT id FROM jobs WHERE state = 'available' ORDER BY random() LIMIT 20)`,
        );
      }
      churning = false;
    })();
    const claimer = async (n: number): Promise<void> => {
      let sequence = 0;
      let emptyInARow = 0;
      while (churning || emptyInARow < 3) {
        const token = `c${n}.${++sequence}`;
        const rows = await jobs.fetch(db.pool, 'default', 37, `node-${n}`, token);
        emptyInARow = rows.length === 0 ? emptyInARow + 1 : 0;
        for (const row of rows) {
          if (claimedBy.has(row.id)) duplicates++;
          claimedBy.set(row.id, `${token}.${row.id}`);
          assert.equal(row.attempt, 1);
        }
      }
    };
    await Promise.all([1, 2, 3, 4].map(claimer));
    await churn;
    assert.equal(duplicates, 0, 'no job claimed twice');
    assert.equal(claimedBy.size, total, 'every job claimed');
    const rows = await db.query<{ id: string; state: string; token: string; attempt: number }>(
      `SELECT id, state, attempted_by[2] AS token, attempt FROM jobs`,
    );
    for (const row of rows) {
      assert.equal(row.state, 'executing');
      assert.equal(row.attempt, 1);
      assert.equal(
        row.token,
        claimedBy.get(Number(row.id)),
        `job ${row.id} holds its claimer's token`,
      );
    }
  });
});
