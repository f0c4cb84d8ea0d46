// The plans of the two statements every job goes through, when PostgreSQL's statistics are stale
// in the usual way: taken while the queue held only history, before a burst of new jobs. The
// statements are named, so PostgreSQL may switch to a generic plan built from those statistics;
// the tests force that plan and check that it reaches the rows by ctid (claim) and by primary
// key (outcomes), never by reading a whole partial index (see JobQueries, fetchSql).

import assert from 'node:assert/strict';
import type pg from 'pg';
import { JobQueries, type OutcomeRow, type Queryable } from '../../src/db/queries/jobs.js';
import { createFetchPool, createPool } from '../../src/db/connect.js';
import { MaintenanceQueries } from '../../src/db/queries/maintenance.js';
import { cleanup, createSchema, type TestSchema } from '../helpers/db.js';

interface PlanNode {
  'Node Type': string;
  'Relation Name'?: string;
  'Index Name'?: string;
  Plans?: PlanNode[];
}

/** Every node of a plan that reads the jobs table. */
function jobScans(node: PlanNode, found: PlanNode[] = []): PlanNode[] {
  if (node['Relation Name'] === 'jobs' && node['Node Type'] !== 'ModifyTable') found.push(node);
  for (const child of node.Plans ?? []) jobScans(child, found);
  return found;
}

function describeScan(node: PlanNode): string {
  return `${node['Node Type']}${node['Index Name'] ? ` using ${node['Index Name']}` : ''}`;
}

/** The text of the one statement `run` sends. */
async function textOf(run: (db: Queryable) => Promise<unknown>): Promise<string> {
  let sent = '';
  const capture = {
    query: (text: string) => {
      sent = text;
      return Promise.resolve({ rows: [] });
    },
  } as unknown as Queryable;
  await run(capture);
  return sent;
}

async function genericScans(
  db: TestSchema,
  types: string,
  text: string,
  args: string,
): Promise<string[]> {
  const client = await db.pool.connect();
  try {
    await client.query(`SET search_path TO "${db.schema}"`);
    await client.query('SET plan_cache_mode = force_generic_plan');
    await client.query(`PREPARE statement(${types}) AS ${text}`);
    const { rows } = await client.query<{ 'QUERY PLAN': [{ Plan: PlanNode }] }>(
      `EXPLAIN (FORMAT JSON) EXECUTE statement(${args})`,
    );
    return jobScans(rows[0]!['QUERY PLAN'][0].Plan).map(describeScan).sort();
  } finally {
    client.release(true);
  }
}

/**
 * History, plus the jobs `busy` inserts, analysed together; then the busy jobs all finish, so
 * the statistics describe a moment that is over (a third of the table in one state).
 */
async function busyMoment(db: TestSchema, busy: string): Promise<void> {
  await db.query(
    `INSERT INTO jobs (state, queue, worker, args, max_attempts, attempt, scheduled_at, attempted_at, completed_at)
     SELECT 'completed', 'default', 'ok', '{}', 20, 1, now(), now(), now() FROM generate_series(1, 6000)`,
  );
  await db.query(busy);
  await db.query('ANALYZE jobs');
  await db.query(
    `UPDATE jobs SET state = 'completed', completed_at = now() WHERE state <> 'completed'`,
  );
}

describe('statement plans with stale statistics', function () {
  let db: TestSchema;
  let client: pg.PoolClient;
  const history = 3000;
  const burst = 3000;

  beforeEach(async function () {
    this.timeout(60000);
    db = await createSchema(this.currentTest!.title);
    // History only, analysed: the statistics say nothing is available or executing.
    await db.query(
      `INSERT INTO jobs (state, queue, worker, args, max_attempts, attempt, scheduled_at, attempted_at, completed_at)
       SELECT 'completed', 'default', 'ok', jsonb_build_object('value', g), 20, 1, now(), now(), now()
       FROM generate_series(1, $1) g`,
      [history],
    );
    await db.query('ANALYZE jobs');
    // Then a burst, with no new statistics.
    await db.query(
      `INSERT INTO jobs (state, queue, worker, args, max_attempts, scheduled_at)
       SELECT 'available', 'default', 'ok', jsonb_build_object('value', g), 20, now()
       FROM generate_series(1, $1) g`,
      [burst],
    );
    client = await db.pool.connect();
    await client.query(`SET search_path TO "${db.schema}"`);
    await client.query('SET plan_cache_mode = force_generic_plan');
  });
  afterEach(async function () {
    client?.release(true);
    await cleanup(this, db);
  });

  it('the claim reaches the rows it locked by ctid', async function () {
    const text = new JobQueries(db.schema).sql.fetch;
    const scans = await genericScans(
      db,
      'text, integer, text, text',
      text,
      `'default', 500, 'n', 't'`,
    );
    // The CTE picks through jobs_fetch; the update itself reads only the rows picked.
    assert.deepEqual(scans, ['Index Scan using jobs_fetch', 'Tid Scan']);
  });

  it('outcomes reach their rows by primary key', async function () {
    const text = new JobQueries(db.schema).sql.outcome;
    const scans = await genericScans(
      db,
      'bigint[], text[], text[], double precision[], text[], text[], integer[], integer, text',
      text,
      `'{1}', '{t.1}', '{completed}', '{NULL}', '{NULL}', '{NULL}', '{0}', 1, 'channel'`,
    );
    assert.deepEqual(scans, ['Index Scan using jobs_pkey']);
  });

  it('completions reach their rows by primary key', async function () {
    const text = new JobQueries(db.schema).sql.complete;
    const scans = await genericScans(
      db,
      'bigint[], text[], text[], integer',
      text,
      `'{1}', '{t.1}', '{NULL}', 1`,
    );
    assert.deepEqual(scans, ['Index Scan using jobs_pkey']);
  });

  it('with the generic plans, a burst is claimed and finished exactly once', async function () {
    this.timeout(60000);
    const queries = new JobQueries(db.schema);
    const claimed = new Set<number>();
    let written = 0;
    for (let round = 0; ; round++) {
      const jobs = await queries.fetch(client, 'default', 250, 'node', `run.${round}`);
      if (jobs.length === 0) break;
      for (const job of jobs) {
        assert.ok(!claimed.has(job.id), `job ${job.id} claimed twice`);
        claimed.add(job.id);
      }
      const outcomes: OutcomeRow[] = jobs.map((job) => ({
        id: job.id,
        token: job.attemptedBy![1]!,
        state: 'completed',
        delay: null,
        error: null,
        result: { round },
        refund: 0,
      }));
      const tokens = await queries.recordOutcomes(client, outcomes);
      assert.equal(tokens.size, jobs.length, 'every outcome written');
      written += tokens.size;
    }
    assert.equal(claimed.size, burst);
    assert.equal(written, burst);
    const rows = await db.query<{ state: string; n: number }>(
      `SELECT state::text, count(*)::int AS n FROM jobs GROUP BY state ORDER BY state`,
    );
    assert.deepEqual(rows, [{ state: 'completed', n: history + burst }]);
    const stale = await db.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM jobs WHERE attempt <> 1 OR result IS NULL AND id > $1`,
      [history],
    );
    assert.equal(stale[0]!.n, 0);
  });
});

describe('upkeep plans with statistics from a busy moment', function () {
  let db: TestSchema;
  beforeEach(async function () {
    db = await createSchema(this.currentTest!.title);
  });
  afterEach(async function () {
    await cleanup(this, db);
  });

  it('looks for orphans through jobs_executing, not through the whole table', async function () {
    this.timeout(60000);
    await busyMoment(
      db,
      `INSERT INTO jobs (state, queue, worker, args, max_attempts, attempt, scheduled_at, attempted_at, attempted_by)
       SELECT 'executing', 'default', 'ok', '{}', 20, 1, now(), now(), ARRAY['gone', 'run.' || g]
       FROM generate_series(1, 3000) g`,
    );
    const text = await textOf((q) =>
      new MaintenanceQueries(db.schema).rescueOrphans(q, 30000, 1000, { node: 'n', runId: 'r' }),
    );
    const scans = await genericScans(
      db,
      'integer, integer, text, text',
      text,
      `30000, 1000, 'n', 'r'`,
    );
    assert.deepEqual(scans, ['Index Scan using jobs_executing', 'Tid Scan']);
  });

  it('stages due jobs through jobs_staging, not through the whole table', async function () {
    this.timeout(60000);
    await busyMoment(
      db,
      `INSERT INTO jobs (state, queue, worker, args, max_attempts, scheduled_at)
       SELECT 'scheduled', 'default', 'ok', '{}', 20, now() - interval '1 minute'
       FROM generate_series(1, 3000)`,
    );
    const text = await textOf((q) => new JobQueries(db.schema).stage(q));
    const scans = await genericScans(db, 'integer, text', text, `5000, 'channel'`);
    assert.deepEqual(scans, ['Index Scan using jobs_staging', 'Tid Scan']);
  });
});

describe("a node's connections", function () {
  let db: TestSchema;
  const pools: pg.Pool[] = [];
  beforeEach(async function () {
    db = await createSchema(this.currentTest!.title);
  });
  afterEach(async function () {
    await Promise.all(pools.splice(0).map((pool) => pool.end()));
    await cleanup(this, db);
  });

  it('write a batch of outcomes through the primary key from the first write on', async function () {
    this.timeout(60000);
    // A fresh table, never analysed, as a node finds it after a burst: the plan made for a
    // batch of 500 known values seq-scanned all 20,000 rows and hash-joined them.
    await db.query(
      `INSERT INTO jobs (state, queue, worker, args, max_attempts, attempt, scheduled_at, attempted_at, attempted_by)
       SELECT 'executing', 'default', 'ok', '{}', 20, 1, now(), now(), ARRAY['node', 'run.' || g]
       FROM generate_series(1, 20000) g`,
    );
    const pool = createPool(db.url, 2, 'quern-test');
    const fetchPool = createFetchPool(db.url, 1, 'quern-test');
    pools.push(pool, fetchPool);
    for (const each of [pool, fetchPool]) {
      const { rows } = await each.query<{ plan_cache_mode: string }>('SHOW plan_cache_mode');
      assert.equal(rows[0]!.plan_cache_mode, 'force_generic_plan');
    }
    const queries = new JobQueries(db.schema);
    const outcomes: OutcomeRow[] = Array.from({ length: 500 }, (_, i) => ({
      id: i + 1,
      token: `run.${i + 1}`,
      state: 'completed',
      delay: null,
      error: null,
      result: null,
      refund: 0,
    }));
    const client = await pool.connect();
    try {
      await client.query(`SET search_path TO "${db.schema}"`);
      await client.query('BEGIN');
      const written = await queries.recordOutcomes(client, outcomes);
      const { rows } = await client.query<{ seq_scan: string }>(
        `SELECT seq_scan FROM pg_stat_xact_user_tables WHERE relid = 'jobs'::regclass`,
      );
      await client.query('COMMIT');
      assert.equal(written.size, 500);
      assert.equal(Number(rows[0]!.seq_scan), 0, 'the outcome write scanned the whole table');
    } finally {
      client.release();
    }
  });
});
