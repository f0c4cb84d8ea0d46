// Finds the database a node uses (DATABASE_URL, database.url, else an embedded server) and
// waits for it to answer. An unreachable server is retried with backoff and a clear message;
// wrong credentials or a missing database are final (the CLI exits 1).

import pg from 'pg';
import type { Logger } from 'pino';
import { databaseUrlProblem } from '../config/database-url.js';
import { startEmbedded, type EmbeddedDatabase } from './embedded.js';

// Return bigint ids and counts as JavaScript numbers: ids stay far below 2^53 in practice, and
// callers should not have to juggle strings. (int8 = 20)
pg.types.setTypeParser(pg.types.builtins.INT8, (value) => Number(value));

export class DatabaseConfigError extends Error {
  override name = 'DatabaseConfigError';
}

/** SQLSTATE classes that retrying cannot fix. */
const FINAL_CODES: Record<string, string> = {
  '28P01': 'wrong password',
  '28000': 'authentication rejected',
  '3D000': 'database does not exist',
  '42501': 'permission denied',
};

export function isFinalConnectError(error: unknown): string | null {
  const code = (error as { code?: string } | null)?.code;
  if (code !== undefined && code in FINAL_CODES) return FINAL_CODES[code]!;
  // Said by pg itself (no SQLSTATE) when the URL asks for SSL and the server has none.
  if ((error as Error | null)?.message === 'The server does not support SSL connections')
    return 'the URL asks for SSL (sslmode), which this server does not offer';
  return null;
}

export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return '(unparseable url)';
  }
}

/**
 * Connects until the server answers. `signal` ends the wait at once (a node told to stop while
 * its database is still down): the attempt in flight is cut, no retry follows, and the signal's
 * reason is thrown.
 */
export async function waitForDatabase(
  url: string,
  log: Logger,
  options: { attempts?: number; signal?: AbortSignal } = {},
): Promise<void> {
  // loadConfig refuses such URLs already; this keeps any other caller from retrying one forever.
  const urlProblem = databaseUrlProblem(url);
  if (urlProblem !== null) throw new DatabaseConfigError(`database URL: ${urlProblem}`);
  const { signal } = options;
  const attempts = options.attempts ?? Infinity;
  let delay = 250;
  for (let attempt = 1; ; attempt++) {
    signal?.throwIfAborted();
    const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5000 });
    // A server that closes the connection between the statements (an embedded server another
    // CLI command is stopping: 'terminating connection due to administrator command') emits it
    // as an 'error' event, which with no listener ended the process; the calls reject anyway.
    client.on('error', () => undefined);
    // A connect to a server that accepts and never answers waits for its 5 s timeout, and
    // client.end() does not interrupt it (it half-closes a socket the server leaves open):
    // the socket itself is destroyed, as pg's own connect timeout does.
    const cut = (): void => {
      const stream = (client as unknown as { connection?: { stream?: { destroy(): void } } })
        .connection?.stream;
      if (stream) stream.destroy();
      else void client.end().catch(() => undefined);
    };
    signal?.addEventListener('abort', cut, { once: true });
    try {
      await client.connect();
      await client.query('SELECT 1');
      await client.end();
      return;
    } catch (error) {
      await client.end().catch(() => undefined);
      signal?.throwIfAborted();
      const final = isFinalConnectError(error);
      if (final) {
        throw new DatabaseConfigError(
          `cannot use ${redactUrl(url)}: ${final} (${(error as Error).message})`,
        );
      }
      if (attempt >= attempts) throw error;
      log.warn(
        { attempt, retryInMs: delay, error: (error as Error).message },
        `database ${redactUrl(url)} is not answering; retrying`,
      );
      await sleep(delay, signal);
      delay = Math.min(delay * 2, 10000);
    } finally {
      signal?.removeEventListener('abort', cut);
    }
  }
}

/** Waits `ms`, or less if `signal` aborts (the caller checks it). */
function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}

export interface DatabaseHandle {
  url: string;
  embedded: EmbeddedDatabase | null;
}

export async function resolveDatabase(
  configuredUrl: string | null,
  dataDir: string,
  log: Logger,
  signal?: AbortSignal,
): Promise<DatabaseHandle> {
  if (configuredUrl) {
    await waitForDatabase(configuredUrl, log, signal ? { signal } : {});
    return { url: configuredUrl, embedded: null };
  }
  log.info({ dataDir }, 'no database configured: starting an embedded PostgreSQL');
  const embedded = await startEmbedded(dataDir, { log, restartOnExit: true });
  log.info({ url: embedded.url }, `embedded PostgreSQL ready: psql ${embedded.url}`);
  return { url: embedded.url, embedded };
}

/**
 * The longest a statement of a node's pool may go unanswered before its connection is given up.
 * A connection can hang for good with the server up (a firewall or NAT that lost its state drops
 * its packets without a word, and the kernel gives up only after about 15 minutes): the heartbeat,
 * claim or outcome write in flight on it never ended, and the node stayed fenced, or a queue
 * stopped fetching, long after new connections got through. A statement given up fails as a
 * connection error (the breaker counts it, a claim's jobs go back as a lost fetch), and its
 * connection is closed (withTransaction's too, without a ROLLBACK). Heartbeats get their node's
 * heartbeatTimeout (NodeQueries.heartbeat), claims the same (see createFetchPool); the rest,
 * this. Migrations use a client of their own.
 */
export const QUERY_TIMEOUT_MS = 60_000;
/** Starts a statement that StatementWatch leaves to run as long as it takes (the pruner's). */
export const NO_TIME_LIMIT = '/* quern: no time limit */';
/** A connection a pool opens must be ready within this (a server that accepts and never answers). */
const CONNECT_TIMEOUT_MS = 5000;

/**
 * Watches the statements of a pool's connections: one in flight for longer than `limitMs` has its
 * connection closed, and fails with 'Query read timeout'. One timer for the pool, looking every
 * quarter of the limit, rather than pg's query_timeout: that arms and clears a timer per
 * statement, and cost the node 1.5-2 ms of CPU per 1,000 jobs in bench W2 (9.0 -> 10.6-11.6 ms,
 * warm drains 64k -> 60k jobs/s, three runs each way) for a firewall that rarely loses a
 * connection. It reads pg's statement in flight (`_getActiveQuery`, pg 8, pinned in
 * package.json); the network-split tests fail if that goes.
 */
class StatementWatch {
  private readonly clients = new Set<WatchedClient>();
  /** The statement each connection had in flight at the last look, and since when. */
  private readonly seen = new Map<WatchedClient, { statement: object; since: number }>();
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly limitMs: number) {}

  add(client: WatchedClient): void {
    this.clients.add(client);
    this.timer ??= setInterval(() => this.look(), Math.max(10, this.limitMs / 4));
    this.timer.unref();
  }

  remove(client: WatchedClient): void {
    this.clients.delete(client);
    this.seen.delete(client);
    if (this.clients.size === 0 && this.timer) {
      clearInterval(this.timer);
      this.timer = null;
    }
  }

  private look(): void {
    const now = performance.now();
    for (const client of this.clients) {
      const statement = client.statementInFlight();
      if (statement !== null && statement.text?.startsWith(NO_TIME_LIMIT)) continue;
      const last = this.seen.get(client);
      if (statement === null) this.seen.delete(client);
      else if (last === undefined || last.statement !== statement)
        this.seen.set(client, { statement, since: now });
      else if (now - last.since >= this.limitMs) {
        this.remove(client);
        client.giveUp(
          new Error(`Query read timeout: no answer within ${this.limitMs} ms, connection closed`),
        );
      }
    }
  }
}

/**
 * The node's pools' connections: a connect is given up after CONNECT_TIMEOUT_MS, and a statement
 * after the pool's limit (StatementWatch). The connect bound is on the client, not the pool:
 * pg-pool applies its own connectionTimeoutMillis also to a statement waiting for a busy
 * connection of a full pool, which then failed after 5 s as 'timeout exceeded when trying to
 * connect', a lost connection for the breaker, while the database answered (a small poolSize
 * beside the pruner's long deletes, say). Waiting for a busy connection is not bounded.
 */
class WatchedClient extends pg.Client {
  constructor(config: pg.ClientConfig & { statementWatch: StatementWatch }) {
    super({ ...config, connectionTimeoutMillis: CONNECT_TIMEOUT_MS });
    const watch = config.statementWatch;
    watch.add(this);
    this.once('end', () => watch.remove(this));
    // A checked-out connection has no listener of pg-pool's: closed under a transaction (given
    // up, or lost), its 'error' would end the process. The statement fails with it anyway.
    this.on('error', () => undefined);
  }

  statementInFlight(): { text?: string } | null {
    return (
      (this as unknown as { _getActiveQuery(): { text?: string } | null })._getActiveQuery() ?? null
    );
  }

  /** Closes the connection: the statement in flight fails with `error`, as a lost connection. */
  giveUp(error: Error): void {
    (
      this as unknown as { connection: { stream: { destroy(error: Error): void } } }
    ).connection.stream.destroy(error);
  }
}

/** A pool of the node: its statements are watched (StatementWatch), its connects bounded. */
export function createPool(
  url: string,
  size: number,
  applicationName: string,
  queryTimeoutMs = QUERY_TIMEOUT_MS,
): pg.Pool {
  const pool = new pg.Pool({
    connectionString: url,
    max: size,
    application_name: applicationName,
    onConnect: genericPlansHook,
    Client: WatchedClient,
    statementWatch: new StatementWatch(queryTimeoutMs),
  } as unknown as pg.PoolConfig);
  // An idle client's connection dying must not crash the process; the next query reconnects.
  pool.on('error', () => undefined);
  return pool;
}

/**
 * The connections claiming jobs, apart from the main pool so that claims never queue behind
 * inserts and outcome writes.
 *
 * Claims keep synchronous commits on purpose. With `synchronous_commit = off` (tried: bench W3
 * fetch-to-perform p50 4.5 -> 0.7 ms on a loaded machine) a server crash in the next few hundred
 * ms loses the claim while its thread already runs the job: the row is `available` again and
 * another node may start the same job while the first run goes on. That breaks "never run twice
 * at the same time", which is not ours to trade for latency.
 *
 * A claim takes milliseconds (it never waits on a lock: SKIP LOCKED); the node gives it
 * `queryTimeoutMs` (its heartbeatTimeout), after which the queue's fetching would otherwise wait
 * on a hung connection for good (see QUERY_TIMEOUT_MS).
 */
export function createFetchPool(
  url: string,
  size: number,
  applicationName: string,
  queryTimeoutMs = QUERY_TIMEOUT_MS,
): pg.Pool {
  return createPool(url, size, applicationName, queryTimeoutMs);
}

/**
 * The node's named statements (claim, outcome write) run their generic plan from the first
 * execution. Left to itself, PostgreSQL plans the first five executions on each connection for
 * their values, and for those it knows the batch's length: an outcome write of 500 rows on a
 * table of 20,000 fresh, unanalysed jobs then seq-scanned the whole table and hash-joined it
 * (15-20 ms, against 7 ms through the primary key; the planner cannot know that the
 * `state::text` check costs a text conversion on every row it scans). Bench W2 read 80,000-
 * 120,000 rows in such scans per drain of 20,000 jobs, a node's fresh connections taking their
 * five custom plans each; none with this. The generic plans are the ones test/db/plans.test.ts
 * checks. Unnamed statements are planned once for their values, as before. Set on each new
 * connection before the pool hands it out (a startup `options` parameter would do it without
 * the round trip, but PgBouncer refuses connections that send one). A failure is ignored: a
 * connection already gone reports itself on its next query.
 */
async function genericPlans(client: pg.ClientBase): Promise<void> {
  await client.query('SET plan_cache_mode = force_generic_plan').catch(() => undefined);
}

// pg-pool waits for the promise an onConnect hook returns; @types/pg types the hook as void.
const genericPlansHook = genericPlans as (client: pg.ClientBase) => void;
