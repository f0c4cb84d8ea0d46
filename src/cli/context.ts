// What every CLI command shares: reading --config and --prefix, checking numeric arguments,
// finding the database (the configured one, the embedded server a running node started, or a
// temporary embedded server: embedded-commands.ts), and the error types that map to exit codes
// (errors.ts: 2 for usage, 1 for everything else).

import { existsSync } from 'node:fs';
import path from 'node:path';
import pino from 'pino';
import { loadConfig, readConfigFile } from '../config/load.js';
import { schemaNameProblem } from '../db/identifiers.js';
import type { NodeConfig } from '../config/types.js';
import { DatabaseConfigError, redactUrl, waitForDatabase } from '../db/connect.js';
import { currentVersion, LATEST_VERSION, noTablesMessage } from '../db/migrate.js';
import type { EmbeddedDatabase } from '../db/embedded.js';
import { embeddedForCommand, stopWhenOthersGone } from './embedded-commands.js';
import { CommandError, UsageError } from './errors.js';
import { Quern } from '../client.js';
import { suggest } from '../config/validate.js';
import { loadWorkers } from '../worker/registry.js';

export { CommandError, UsageError } from './errors.js';

/**
 * The configuration of `--config PATH` (default ./cluster.config.json, optional), with
 * `--prefix SCHEMA` in place of its `schema`: every command takes both.
 */
export function configFromFlags(values: Record<string, string | boolean | undefined>): NodeConfig {
  const configPath = values.config as string | undefined;
  const prefix = values.prefix as string | undefined;
  const problem = prefix === undefined ? null : schemaNameProblem(prefix);
  if (problem !== null) throw new UsageError(`--prefix: ${problem}`);
  const file = configPath ?? 'cluster.config.json';
  const resolved = path.resolve(file);
  const config =
    configPath === undefined && !existsSync(resolved)
      ? loadConfig({})
      : loadConfig(readConfigFile(resolved), { baseDir: path.dirname(resolved) });
  return prefix === undefined ? config : { ...config, schema: prefix };
}

/**
 * A whole number written in decimal digits, from `min` to `max` (at most 2^53 - 1, the largest
 * a JavaScript number holds exactly: a bigger id cannot exist, and a bigger count is a typo).
 */
export function integerArgument(
  text: unknown,
  what: string,
  { min = 1, max = Number.MAX_SAFE_INTEGER }: { min?: number; max?: number } = {},
): number {
  const value = typeof text === 'string' && /^\d+$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(value) || value < min || value > max)
    throw new UsageError(
      `${what}: expected a whole number from ${min} to ${max}, got ${JSON.stringify(text)}`,
    );
  return value;
}

/**
 * Refuses a worker name that no file of the configuration's workers folder defines, before
 * anything is written: no node of this configuration could run the job, which would fail every
 * attempt as an unknown worker (over days of backoff, with `enqueue-dir --wait` following it).
 * A folder that is not there is left to connectClient, which says so.
 */
export async function requireKnownWorker(config: NodeConfig, worker: string): Promise<void> {
  if (!existsSync(config.workers)) return;
  const names = [...(await loadWorkers(config.workers)).keys()].sort();
  if (names.includes(worker)) return;
  throw new UsageError(
    `worker: no worker "${worker}" is defined in ${config.workers}${suggest(worker, names)}; its workers: ${names.join(', ') || 'none'}`,
  );
}

export interface Connected {
  client: Quern;
  config: NodeConfig;
  close(): Promise<void>;
}

/**
 * Connects a command to the database. `migrate` (the default for commands that insert) brings
 * the schema up to date first, as a node does. `existing` is for the commands that read or
 * change jobs already there (status, stats, jobs, job, queue): the schema must exist at this
 * version's migration, or the command stops with an error naming it. Migrating for them made a
 * mistyped `--prefix` create an empty schema and answer from it (`status`: nothing running,
 * `queue pause`: paused a queue no node reads) instead of saying so.
 */
export async function connectClient(
  config: NodeConfig,
  options: { migrate?: boolean; existing?: boolean } = {},
): Promise<Connected> {
  const log = pino({ level: 'silent' });
  let embedded: EmbeddedDatabase | null = null;
  let release = (): Promise<void> => Promise.resolve();
  let url = config.database.url;
  if (url) {
    try {
      await waitForDatabase(url, log, { attempts: 3 });
    } catch (error) {
      if (error instanceof DatabaseConfigError) throw error;
      // A server that is down: say which, in one line (not a stack trace of pg's socket).
      throw new CommandError(
        `database ${redactUrl(url)} is not answering: ${(error as Error).message}`,
      );
    }
  } else {
    ({ url, embedded, release } = await embeddedForCommand(config.database.dataDir, log));
  }
  const client = new Quern({
    connectionString: url,
    schema: config.schema,
    workers: config.workers,
  });
  const connected: Connected = {
    client,
    config,
    async close() {
      try {
        await client.close();
        if (embedded) await stopWhenOthersGone(embedded);
      } finally {
        await release();
      }
    },
  };
  try {
    if (options.existing) await requireSchema(client, config.schema);
    else if (options.migrate !== false) await client.migrate();
  } catch (error) {
    await connected.close().catch(() => undefined);
    throw error;
  }
  return connected;
}

async function requireSchema(client: Quern, schema: string): Promise<void> {
  const db = await client.pool.connect();
  let version: number;
  try {
    version = await currentVersion(db, schema);
  } finally {
    db.release();
  }
  const latest = LATEST_VERSION();
  if (version === 0) {
    throw new CommandError(
      noTablesMessage(
        schema,
        `--prefix or the configuration's "schema"`,
        'node cluster.js migrate creates it',
      ),
    );
  }
  if (version < latest) {
    throw new CommandError(
      `schema "${schema}" is at migration ${version} of ${latest}: run node cluster.js migrate (or start a node of this version) first`,
    );
  }
}

export function print(line = ''): void {
  process.stdout.write(line + '\n');
}

/** Renders rows as an aligned text table. */
export function table(headers: string[], rows: (string | number | null | undefined)[][]): string {
  const cells = [
    headers,
    ...rows.map((r) => r.map((c) => (c === null || c === undefined ? '' : String(c)))),
  ];
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  return cells
    .map((r) =>
      r
        .map((c, i) => (c ?? '').padEnd(widths[i]!))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}
