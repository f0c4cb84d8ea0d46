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
