// Applies the versioned migrations in sql/migrations to one schema. Every run takes a
// transaction-level advisory lock keyed on the schema, so nodes starting together apply each
// version exactly once; a database migrated ahead of this code is refused.

import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import type pg from 'pg';
import { quoteIdentifier } from './identifiers.js';

export const MIGRATIONS_DIR = fileURLToPath(new URL('../../../sql/migrations', import.meta.url));

export interface Migration {
  version: number;
  name: string;
  up: string;
  down: string;
}

export class MigrationError extends Error {
  override name = 'MigrationError';
}

export function readMigrations(dir = MIGRATIONS_DIR): Migration[] {
  const byVersion = new Map<number, Partial<Migration>>();
  for (const file of readdirSync(dir)) {
    const match = /^(\d{3})_([a-z0-9_]+)\.(up|down)\.sql$/.exec(file);
    if (!match) continue;
    const version = Number(match[1]);
    const entry = byVersion.get(version) ?? { version, name: match[2]! };
    entry[match[3] as 'up' | 'down'] = readFileSync(path.join(dir, file), 'utf8');
    byVersion.set(version, entry);
  }
  const migrations = [...byVersion.values()].sort((a, b) => a.version! - b.version!);
  migrations.forEach((m, index) => {
    if (m.version !== index + 1)
      throw new MigrationError(`migration ${index + 1} is missing in ${dir}`);
    if (m.up === undefined || m.down === undefined) {
      throw new MigrationError(`migration ${m.version} needs both an .up.sql and a .down.sql file`);
    }
  });
  return migrations as Migration[];
}

export const LATEST_VERSION = (): number => readMigrations().length;

/**
 * What a command or a client says about a schema no node or migrate has created (or a misspelt
 * one): `misspelt` names the setting to check, `fix` how to create the tables.
 */
export function noTablesMessage(schema: string, misspelt: string, fix: string): string {
  return `schema "${schema}" holds no quern tables: no node or migrate has run against it (is ${misspelt} misspelt?); ${fix}`;
}

/** The tables and type the first migration creates, by their names in the schema. */
const OWN_RELATIONS = ['jobs', 'nodes', 'queue_settings', 'cron_slots'];
const OWN_TYPES = ['job_state'];

/**
 * Why `schema` cannot hold quern's tables, or null. A shared schema (`public` is allowed) may
 * already hold another tool's `migrations` table (TypeORM names its own so) or an application's
 * `jobs` table: the first failed as a raw "column "version" does not exist" with a stack, the
 * second as "relation "jobs" already exists"; neither named the schema or what to do.
 */
async function foreignObjectsProblem(
  client: pg.ClientBase,
  schema: string,
  version: number | null,
): Promise<string | null> {
  const advice = `give quern a schema of its own (the default, "quern"; "schema" in the configuration, --prefix, or new Quern({ schema }))`;
  const { rows: columns } = await client.query<{ column_name: string }>(
    `SELECT column_name FROM information_schema.columns WHERE table_schema = $1 AND table_name = 'migrations' ORDER BY ordinal_position`,
    [schema],
  );
  const names = new Set(columns.map((c) => c.column_name));
  if (names.size > 0 && !(names.has('version') && names.has('name'))) {
    return `schema "${schema}" holds a table "migrations" that is not quern's (its columns: ${[...names].join(', ')}; another tool's migrations?): ${advice}`;
  }
  if (version !== 0) return null;
  const { rows } = await client.query<{ name: string; kind: string }>(
    `SELECT c.relname AS name, 'table' AS kind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
       WHERE n.nspname = $1 AND c.relname = ANY($2)
     UNION ALL
     SELECT t.typname, 'type' FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
       WHERE n.nspname = $1 AND t.typname = ANY($3)
     ORDER BY 1`,
    [schema, OWN_RELATIONS, OWN_TYPES],
  );
  if (rows.length === 0) return null;
  const found = rows.map((r) => `${r.kind === 'type' ? 'a type' : 'a table'} "${r.name}"`);
  return `schema "${schema}" already holds ${found.join(' and ')} that no quern migration created: ${advice}`;
}

async function withSchemaLock<T>(
  client: pg.ClientBase,
  schema: string,
  body: () => Promise<T>,
): Promise<T> {
  await client.query('BEGIN');
  try {
    await client.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`quern:migrate:${schema}`]);
    await client.query(`CREATE SCHEMA IF NOT EXISTS ${quoteIdentifier(schema)}`);
    await client.query(`SET LOCAL search_path TO ${quoteIdentifier(schema)}`);
    const foreign = await foreignObjectsProblem(client, schema, null);
    if (foreign) throw new MigrationError(foreign);
    await client.query(`CREATE TABLE IF NOT EXISTS migrations (
      version integer PRIMARY KEY,
      name text NOT NULL,
      applied_at timestamptz NOT NULL DEFAULT now())`);
    const result = await body();
    await client.query('COMMIT');
    return result;
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  }
}

async function appliedVersion(client: pg.ClientBase): Promise<number> {
  const { rows } = await client.query<{ version: number | null }>(
    'SELECT max(version) AS version FROM migrations',
  );
  return rows[0]?.version ?? 0;
}

export interface MigrateResult {
  from: number;
  to: number;
  applied: number[];
}

/** Brings `schema` up to the latest version (or `target`), applying missing versions in order. */
export async function migrateUp(
  client: pg.ClientBase,
  schema: string,
  options: { target?: number; onStep?: (m: Migration) => void } = {},
): Promise<MigrateResult> {
  const migrations = readMigrations();
  const target = options.target ?? migrations.length;
  return withSchemaLock(client, schema, async () => {
    const from = await appliedVersion(client);
    if (from > migrations.length) {
      throw new MigrationError(
        `schema "${schema}" is at migration ${from}, ahead of this code (latest ${migrations.length}); upgrade quern`,
      );
    }
    const foreign = from === 0 ? await foreignObjectsProblem(client, schema, 0) : null;
    if (foreign) throw new MigrationError(foreign);
    const applied: number[] = [];
    for (const migration of migrations) {
      if (migration.version <= from || migration.version > target) continue;
      options.onStep?.(migration);
      await client.query(migration.up);
      await client.query('INSERT INTO migrations (version, name) VALUES ($1, $2)', [
        migration.version,
        migration.name,
      ]);
      applied.push(migration.version);
    }
    return { from, to: Math.max(from, ...applied), applied };
  });
}

/** Rolls `schema` back to version `target` (0 removes everything but the schema itself). */
export async function migrateDown(
  client: pg.ClientBase,
  schema: string,
  target: number,
  options: { onStep?: (m: Migration) => void } = {},
): Promise<MigrateResult> {
  const migrations = readMigrations();
  return withSchemaLock(client, schema, async () => {
    const from = await appliedVersion(client);
    if (target < 0 || target > from) {
      throw new MigrationError(
        `cannot roll back to ${target}: schema "${schema}" is at migration ${from}`,
      );
    }
    if (from > migrations.length) {
      // This code does not have the down steps of versions it does not know.
      throw new MigrationError(
        `schema "${schema}" is at migration ${from}, ahead of this code (latest ${migrations.length}); roll it back with the version that applied it`,
      );
    }
    const applied: number[] = [];
    for (const migration of [...migrations].reverse()) {
      if (migration.version > from || migration.version <= target) continue;
      options.onStep?.(migration);
      await client.query(migration.down);
      await client.query('DELETE FROM migrations WHERE version = $1', [migration.version]);
      applied.push(migration.version);
    }
    return { from, to: target, applied };
  });
}

export async function currentVersion(client: pg.ClientBase, schema: string): Promise<number> {
  const { rows } = await client.query<{ exists: boolean }>(
    `SELECT to_regclass($1) IS NOT NULL AS exists`,
    [`${quoteIdentifier(schema)}.migrations`],
  );
  if (!rows[0]?.exists) return 0;
  const foreign = await foreignObjectsProblem(client, schema, null);
  if (foreign) throw new MigrationError(foreign);
  const result = await client.query<{ version: number | null }>(
    `SELECT max(version) AS version FROM ${quoteIdentifier(schema)}.migrations`,
  );
  return result.rows[0]?.version ?? 0;
}
