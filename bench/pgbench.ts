// The machine's limit: the minimal SQL one kept job needs (claim it with FOR UPDATE SKIP LOCKED
// through a partial index, then mark it finished, both by UPDATE), run by pgbench on the same
// server, one job per statement and 100 per statement. It is what PostgreSQL alone can do here,
// so the table can say how far each system is from it.

import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { recreateDatabase } from './lib/databases.js';

const run = promisify(execFile);

function pgbenchPath(): string {
  const debian = '/usr/lib/postgresql/15/bin/pgbench';
  return existsSync(debian) ? debian : 'pgbench';
}

const SETUP = (rows: number): string => `
  CREATE TABLE jobs (
    id bigserial PRIMARY KEY,
    state text NOT NULL DEFAULT 'available',
    queue text NOT NULL DEFAULT 'q',
    priority smallint NOT NULL DEFAULT 0,
    scheduled_at timestamptz NOT NULL DEFAULT now(),
    attempt integer NOT NULL DEFAULT 0,
    claimed_by integer,
    args jsonb NOT NULL DEFAULT '{}'
  );
  CREATE INDEX jobs_fetch ON jobs (queue, priority, scheduled_at, id) WHERE state = 'available';
  CREATE INDEX jobs_claimed ON jobs (claimed_by) WHERE state = 'executing';
  INSERT INTO jobs (args) SELECT '{"mode":"noop"}' FROM generate_series(1, ${rows});`;

const SCRIPT = (batch: number): string => `
WITH picked AS (
  SELECT id FROM jobs WHERE state = 'available' AND queue = 'q'
  ORDER BY priority, scheduled_at, id LIMIT ${batch} FOR UPDATE SKIP LOCKED
)
UPDATE jobs j SET state = 'executing', attempt = j.attempt + 1, claimed_by = :client_id
FROM picked WHERE j.id = picked.id;
UPDATE jobs SET state = 'completed' WHERE state = 'executing' AND claimed_by = :client_id;
`;

export interface Limit {
  batch: number;
  clients: number;
  jobsPerSecond: number;
  /** The table ran out of available rows before the end: the limit is at least this. */
  ranDry: boolean;
}

async function once(batch: number, clients: number, seconds: number, rows: number): Promise<Limit> {
  const url = await recreateDatabase('bench_limit');
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(SETUP(rows));
    await client.query('VACUUM ANALYZE jobs');
  } finally {
    await client.end();
  }
  const dir = mkdtempSync(path.join(tmpdir(), 'quern-pgbench-'));
  const script = path.join(dir, `claim-finish-${batch}.sql`);
  writeFileSync(script, SCRIPT(batch));
  const { stdout } = await run(pgbenchPath(), [
    '-n',
    '-M',
    'prepared',
    '-c',
    String(clients),
    '-j',
    '2',
    '-T',
    String(seconds),
    '-f',
    script,
    url,
  ]);
  const duration = /duration: ([\d.]+) s/.exec(stdout);
  if (!duration) throw new Error(`could not read pgbench output:\n${stdout}`);
  // Jobs finished, counted in the table: pgbench's tps x batch counted a transaction that found
  // the table empty as a batch of jobs (--quick read 436k jobs/s once its 60,000 rows were gone).
  const counter = new pg.Client({ connectionString: url });
  await counter.connect();
  try {
    const { rows: counts } = await counter.query<{ done: number; left: number }>(
      `SELECT count(*) FILTER (WHERE state = 'completed')::int AS done,
              count(*) FILTER (WHERE state = 'available')::int AS left FROM jobs`,
    );
    const { done, left } = counts[0]!;
    return { batch, clients, jobsPerSecond: done / Number(duration[1]), ranDry: left === 0 };
  } finally {
    await counter.end();
  }
}

/** One job per statement with 20 clients (our queue limit), and 100 per statement with 4. */
export async function machineLimit(seconds: number): Promise<{ single: Limit; batched: Limit }> {
  const single = await once(1, 20, seconds, 10000 * seconds);
  const batched = await once(100, 4, seconds, 100000 * seconds);
  return { single, batched };
}
