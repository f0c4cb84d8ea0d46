// Test database helpers: a schema per test (named from the test, dropped when it passes, kept
// when it fails so the rows can be inspected), and waiting on rows instead of sleeping.

import pg from 'pg';
import { Quern } from '../../src/client.js';
import { migrateUp } from '../../src/db/migrate.js';

let counter = 0;

export function databaseUrl(): string {
  const url = process.env.TEST_DATABASE_URL;
  if (!url)
    throw new Error('TEST_DATABASE_URL is not set: the mocha root hook (test/setup) did not run');
  return url;
}

export function schemaName(title: string): string {
  const slug = title
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '_')
    .replace(/^_+|_+$/g, '')
    .slice(0, 24);
  return `t_${slug}_${process.pid % 10000}_${++counter}`.slice(0, 40);
}

export interface TestSchema {
  schema: string;
  url: string;
  pool: pg.Pool;
  client: Quern;
  /** Runs SQL with search_path set to the test schema. */
  query<T extends pg.QueryResultRow = Record<string, unknown>>(
    text: string,
    values?: unknown[],
  ): Promise<T[]>;
  drop(): Promise<void>;
}

export async function createSchema(
  title: string,
  options: { migrate?: boolean } = {},
): Promise<TestSchema> {
  const url = databaseUrl();
  const schema = schemaName(title);
  const pool = new pg.Pool({ connectionString: url, max: 5 });
  pool.on('error', () => undefined);
  await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  if (options.migrate !== false) {
    const c = await pool.connect();
    try {
      await migrateUp(c, schema);
    } finally {
      c.release();
    }
  }
  const client = new Quern({ pool, schema });
  return {
    schema,
    url,
    pool,
    client,
    async query<T extends pg.QueryResultRow>(text: string, values: unknown[] = []) {
      const c = await pool.connect();
      try {
        await c.query(`SET search_path TO "${schema}"`);
        const result = await c.query<T>(text, values);
        return result.rows;
      } finally {
        await c.query('RESET search_path').catch(() => undefined);
        c.release();
      }
    },
    async drop() {
      await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`).catch(() => undefined);
      await pool.end();
    },
  };
}

/** Drops the schema when the current test passed; keeps it (and says so) when it failed. */
export async function cleanup(context: Mocha.Context, db: TestSchema | undefined): Promise<void> {
  if (!db) return;
  if (context.currentTest?.state === 'failed') {
    process.stderr.write(`kept schema ${db.schema} of the failed test for inspection\n`);
    await db.pool.end();
    return;
  }
  await db.drop();
}

/** Polls `check` until it returns a truthy value (database rows change without events). */
export async function eventually<T>(
  check: () => Promise<T | null | undefined | false>,
  timeoutMs = 20000,
  what = 'condition',
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value) return value;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline)
      throw new Error(
        `timed out waiting for ${what}${last instanceof Error ? `: ${last.message}` : ''}`,
      );
    await new Promise((r) => setTimeout(r, 25));
  }
}
