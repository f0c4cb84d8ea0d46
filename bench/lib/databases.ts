// The benchmark's own databases on the shared server: one per system (bench_quern,
// bench_graphile, bench_pgboss, bench_limit), created fresh and dropped at the end. Only names
// starting with bench_ are ever created or dropped here.

import pg from 'pg';

export const BASE_URL =
  process.env.BENCH_DATABASE_URL ??
  process.env.DATABASE_URL ??
  'postgres://postgres@127.0.0.1:5432/test';

export function databaseUrl(name: string): string {
  const url = new URL(BASE_URL);
  url.pathname = `/${name}`;
  return url.toString();
}

function checkName(name: string): void {
  if (!/^bench_[a-z0-9_]+$/.test(name)) throw new Error(`refusing to touch database ${name}`);
}

async function admin<T>(fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: databaseUrl('postgres') });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

export async function recreateDatabase(name: string): Promise<string> {
  checkName(name);
  await admin(async (client) => {
    await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await client.query(`CREATE DATABASE ${name}`);
  });
  return databaseUrl(name);
}

export async function dropDatabase(name: string): Promise<void> {
  checkName(name);
  await admin((client) => client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)).catch(
    () => undefined,
  );
}

/** A small pool for the benchmark's own checks (counting finished rows), never the systems'. */
export function checkPool(url: string): pg.Pool {
  const pool = new pg.Pool({ connectionString: url, max: 2, application_name: 'bench-check' });
  pool.on('error', () => undefined);
  return pool;
}

/** Server processes serving `database` now (to charge their CPU time to the system measured). */
export async function backendPids(pool: pg.Pool, database: string): Promise<number[]> {
  const { rows } = await pool.query<{ pid: number }>(
    `SELECT pid FROM pg_stat_activity WHERE datname = $1 AND application_name <> 'bench-check'`,
    [database],
  );
  return rows.map((r) => r.pid);
}

let checkpointRefused = false;

/**
 * Runs a CHECKPOINT on the server, so that the timed section that follows does not share the
 * disk with one. The benchmark writes gigabytes of WAL, and PostgreSQL starts a checkpoint each
 * time max_wal_size fills (66 in an hour of runs here); a checkpoint spreads its writes over
 * minutes, and every commit's WAL flush (fdatasync) meanwhile waits behind them, which moved W3's
 * median by half a millisecond from run to run. Taken after a table is emptied and before its
 * jobs are inserted, so the timed section's pages are new ones (no full-page images to log).
 * Needs a superuser or pg_checkpoint; refused, the run goes on without it and says so once.
 */
export async function checkpoint(): Promise<void> {
  if (checkpointRefused) return;
  await admin((client) => client.query('CHECKPOINT')).catch((error: unknown) => {
    checkpointRefused = true;
    console.error(`[bench] CHECKPOINT refused (${String(error)}); timed sections may overlap one`);
  });
}
