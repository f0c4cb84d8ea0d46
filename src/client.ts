// The library API an application uses: insert jobs (inside its own transaction by passing its
// pg client), look them up, cancel and retry them, and control queues across the cluster. It
// needs no running node: everything goes through PostgreSQL.

import path from 'node:path';
import pg from 'pg';
import { DEFAULT_SCHEMA, MAX_QUEUE_LIMIT } from './config/load.js';
import { databaseUrlProblem } from './config/database-url.js';
import { nodeNameProblem } from './config/node-name.js';
import { ConfigError, isPlainObject, rejectUnknownKeys, suggest } from './config/validate.js';
import { isPlainIdentifier, MAX_QUEUE_LENGTH, schemaNameProblem } from './db/identifiers.js';
import { migrateUp, noTablesMessage } from './db/migrate.js';
import { JobQueries, type Queryable } from './db/queries/jobs.js';
import { NodeQueries } from './db/queries/nodes.js';
import { StatsQueries } from './db/queries/stats.js';
import { UniqueQueries } from './db/queries/unique.js';
import { InsertError, normalizeInsert, type NormalizedInsert } from './jobs/insert.js';
import { insertUniqueBatch } from './jobs/insert-unique.js';
import { showValue } from './jobs/json.js';
import { JOB_STATES, type Job, type JobRecord, type JobState } from './jobs/types.js';
import { runPerform, stateOf } from './testing/perform.js';
import { sendControl, type QueueAction } from './node/control.js';
import type { InsertJob, WorkerDefinition } from './worker/define.js';
import { loadWorkerFolder, validateDefinition, WorkerLoadError } from './worker/registry.js';
import { collectStats, type Stats } from './telemetry/stats.js';

export interface QuernOptions {
  /** A connection string; or pass `pool`. */
  connectionString?: string;
  pool?: pg.Pool;
  schema?: string;
  /**
   * Worker definitions, or a folder of them (a relative path is resolved against process.cwd()
   * when the client is made), whose defaults apply to inserts by name.
   */
  workers?: WorkerDefinition<never>[] | string;
  /**
   * `inline`: insert runs each job at once in this thread and stores nothing (no database
   * needed); `manual`: inserts are stored as usual, for quern/testing to assert on and drain.
   */
  testing?: 'disabled' | 'inline' | 'manual';
}

export interface InsertResult extends JobRecord {
  /** True when a unique job already existed and nothing was inserted. */
  conflict: boolean;
}

export interface CallOptions {
  /** The caller's client, so the call commits or rolls back with the caller's transaction. */
  client?: Queryable;
}

const CALL_OPTION_KEYS = ['client'] as const;

// A misspelt option was ignored: `{ schma: 'tenant_a' }` inserted into the default schema,
// another instance's, without a word.
const QUERN_OPTION_KEYS = ['connectionString', 'pool', 'schema', 'workers', 'testing'] as const;

export interface ChangeResult {
  id: number;
  before: JobState | null;
  after: JobState | null;
  changed: boolean;
  message: string;
}

export class Quern {
  readonly schema: string;
  private readonly connections: pg.Pool;
  private readonly ownsPool: boolean;
  readonly jobs: JobQueries;
  readonly nodes: NodeQueries;
  private readonly statsQueries: StatsQueries;
  readonly unique: UniqueQueries;
  readonly testing: 'disabled' | 'inline' | 'manual';
  private inlineIds = 0;
  private definitions = new Map<string, WorkerDefinition<never>>();
  private workersLoaded: Promise<void> | null = null;
  private closing: Promise<void> | null = null;

  constructor(options: QuernOptions = {}) {
    const given: unknown = options;
    if (!isPlainObject(given))
      throw new ConfigError(`options: expected an object, got ${describe(given)}`);
    rejectUnknownKeys(given, QUERN_OPTION_KEYS, 'options');
    const schema = options.schema ?? DEFAULT_SCHEMA;
    const schemaProblem = schemaNameProblem(schema);
    if (schemaProblem !== null) throw new ConfigError(`schema: ${schemaProblem}`);
    this.schema = schema;
    const testing = options.testing ?? 'disabled';
    if (testing !== 'disabled' && testing !== 'inline' && testing !== 'manual') {
      throw new ConfigError(
        `testing: expected "disabled", "inline" or "manual", got ${showValue(testing)}`,
      );
    }
    this.testing = testing;
    // Checked here: a wrong kind of value failed inside, as a TypeError naming neither option.
    if (options.pool !== undefined && options.pool !== null) {
      const pool: unknown = options.pool;
      if (
        typeof pool !== 'object' ||
        typeof (pool as { query?: unknown }).query !== 'function' ||
        typeof (pool as { connect?: unknown }).connect !== 'function'
      )
        throw new ConfigError(`pool: expected a pg Pool (new pg.Pool(...)), got ${describe(pool)}`);
      if (options.connectionString !== undefined)
        throw new ConfigError('options: give pool or connectionString, not both');
    }
    if (options.connectionString !== undefined && typeof options.connectionString !== 'string')
      throw new ConfigError(
        `connectionString: expected a postgres:// URL, got ${describe(options.connectionString)}`,
      );
    if (options.pool) {
      this.connections = options.pool;
      this.ownsPool = false;
    } else {
      const connectionString = options.connectionString ?? process.env.DATABASE_URL;
      if (!connectionString && testing !== 'inline')
        throw new ConfigError('connectionString: required (or set DATABASE_URL, or pass a pool)');
      // As a node's database.url: 'mysql://...' or a typo in sslmode would reach pg, which
      // reads them as some other host or as "use SSL", and fail every call with a network error.
      const urlProblem = connectionString ? databaseUrlProblem(connectionString) : null;
      if (urlProblem !== null)
        throw new ConfigError(
          `${options.connectionString === undefined ? 'DATABASE_URL' : 'connectionString'}: ${urlProblem}`,
        );
      this.connections = connectionString
        ? new pg.Pool({ connectionString, max: 10 })
        : noDatabase();
      this.connections.on('error', () => undefined);
      this.ownsPool = true;
    }
    this.jobs = new JobQueries(schema);
    this.nodes = new NodeQueries(schema);
    this.statsQueries = new StatsQueries(schema);
    this.unique = new UniqueQueries(schema);
    if (Array.isArray(options.workers)) {
      const indexOf = new Map<string, number>();
      options.workers.forEach((definition, index) => {
        validateDefinition(definition, `workers[${index}]`);
        // Two definitions of one name: the later replaced the earlier unseen, so inserts took
        // another queue and defaults than the first one named (a folder refuses the same).
        const earlier = indexOf.get(definition.name);
        if (earlier !== undefined && this.definitions.get(definition.name) !== definition) {
          throw new WorkerLoadError(
            `workers[${index}]: worker "${definition.name}" is already defined by workers[${earlier}]`,
            `workers[${index}]`,
          );
        }
        indexOf.set(definition.name, index);
        this.definitions.set(definition.name, definition);
      });
    } else if (typeof options.workers === 'string' && options.workers !== '') {
      const dir = path.resolve(options.workers);
      // How a relative path was resolved, only when one was given (the CLI passes the folder
      // already resolved against its configuration file's).
      const hint = path.isAbsolute(options.workers)
        ? null
        : `a relative path is resolved against the current directory, ${process.cwd()}`;
      this.workersLoaded = loadWorkerFolder(dir, hint).then((workers) => {
        for (const [name, registered] of workers) this.definitions.set(name, registered.definition);
      });
      // A failed load rejects the first call that needs the workers (insert, workerDefinition,
      // ready), and every one after. Without this handler it would also be an unhandled
      // rejection, which ends the process before any call could catch it.
      this.workersLoaded.catch(() => undefined);
    } else if (options.workers !== undefined) {
      throw new ConfigError(
        `workers: expected a folder path or an array of worker definitions, got ${showValue(options.workers)}`,
      );
    }
  }

  /**
   * Resolves once the workers folder is loaded (at once without one); rejects with the
   * WorkerLoadError naming the folder or file that failed. Inserts wait for it themselves.
   */
  async ready(): Promise<void> {
    await this.workersLoaded;
  }

  /** Applies migrations (nodes do this at start; useful for tests and scripts). */
  async migrate(): Promise<void> {
    const client = await this.pool.connect();
    try {
      await migrateUp(client, this.schema);
    } finally {
      client.release();
    }
  }

  private async prepare(jobs: unknown[]): Promise<NormalizedInsert[]> {
    await this.workersLoaded;
    // Array.from, not map: map skips the holes of a sparse array, which then reached the SQL.
    return Array.from(jobs, (job, index) =>
      normalizeInsert(
        job,
        (name) => this.definitions.get(name),
        jobs.length === 1 ? 'job' : `jobs[${index}]`,
      ),
    );
  }

  async insert<Args = Record<string, unknown>>(
    job: InsertJob<Args>,
    options?: CallOptions | null,
  ): Promise<InsertResult> {
    const [result] = await this.insertMany([job], options);
    return result!;
  }

  /** Inserts every job in one statement (and one notification), or none if any is invalid. */
  async insertMany<Args = Record<string, unknown>>(
    jobs: InsertJob<Args>[],
    options?: CallOptions | null,
  ): Promise<InsertResult[]> {
    const client = callerClient(options);
    if (!Array.isArray(jobs)) throw new InsertError('jobs: expected an array of jobs', 'jobs');
    const normalized = await this.prepare(jobs);
    if (this.testing === 'inline') return this.performInline(normalized);
    try {
      if (normalized.some((n) => n.unique)) {
        return await insertUniqueBatch(this.pool, client, this.unique, normalized);
      }
      const rows = await this.jobs.insert(
        client ?? this.pool,
        normalized.map((n) => n.row),
      );
      // The records are fresh objects: adding the flag is cheaper than copying each (bench W1).
      return rows.map((row) => Object.assign(row, { conflict: false }));
    } catch (error) {
      throw this.explainMissingSchema(error);
    }
  }

  /**
   * PostgreSQL's `relation "tenant_a.jobs" does not exist` (42P01) for a schema no node or
   * migrate has created yet (or a misspelt one) becomes a ConfigError saying what to do.
   */
  private explainMissingSchema(error: unknown): unknown {
    if ((error as { code?: unknown } | null)?.code !== '42P01') return error;
    return new ConfigError(
      noTablesMessage(
        this.schema,
        'the schema option',
        `await quern.migrate() or node cluster.js migrate creates them (${(error as Error).message})`,
      ),
    );
  }

  /** The definition of a worker known to this client (passed in `workers`, or loaded from its folder). */
  async workerDefinition(name: string): Promise<WorkerDefinition<never> | undefined> {
    await this.workersLoaded;
    return this.definitions.get(name);
  }

  /** The names of the workers known to this client, sorted. */
  async workerNames(): Promise<string[]> {
    await this.workersLoaded;
    return [...this.definitions.keys()].sort();
  }

  /** testing: 'inline': each job runs now, in order, in this thread; nothing is stored. */
  private async performInline(normalized: NormalizedInsert[]): Promise<InsertResult[]> {
    const results: InsertResult[] = [];
    for (const { row, definition } of normalized) {
      if (!definition) {
        throw new InsertError(
          `worker: testing is "inline" but no worker "${row.worker}" is known to this client (pass the definition, or workers)`,
          'worker',
        );
      }
      const now = new Date();
      const job: Job = {
        id: ++this.inlineIds,
        args: JSON.parse(JSON.stringify(row.args)) as Record<string, unknown>,
        attempt: 1,
        maxAttempts: row.max_attempts,
        queue: row.queue,
        worker: row.worker,
        tags: row.tags,
        meta: row.meta,
        insertedAt: now,
        scheduledAt: now,
      };
      const { outcome } = await runPerform(definition, job);
      const state = stateOf(outcome, job);
      const done = new Date();
      results.push({
        id: job.id,
        state,
        queue: job.queue,
        worker: job.worker,
        args: job.args,
        meta: job.meta,
        tags: job.tags,
        errors:
          outcome.kind === 'failed'
            ? [{ at: done.toISOString(), attempt: 1, error: outcome.error }]
            : [],
        result: outcome.kind === 'completed' ? outcome.result : null,
        attempt: 1,
        maxAttempts: job.maxAttempts,
        priority: row.priority,
        insertedAt: now,
        scheduledAt: outcome.kind === 'snoozed' ? new Date(+done + outcome.seconds * 1000) : now,
        attemptedAt: now,
        attemptedBy: ['inline', String(job.id)],
        completedAt: state === 'completed' ? done : null,
        cancelledAt: state === 'cancelled' ? done : null,
        discardedAt: state === 'discarded' ? done : null,
        conflict: false,
      });
    }
    return results;
  }

  async getJob(id: number, options?: CallOptions | null): Promise<JobRecord | null> {
    const client = callerClient(options);
    return this.jobs.get(client ?? this.pool, checkId(id)).catch((error: unknown) => {
      throw this.explainMissingSchema(error);
    });
  }

  async listJobs(
    filter: { state?: string; queue?: string; worker?: string; limit?: number } = {},
  ): Promise<JobRecord[]> {
    checkListFilter(filter);
    return this.jobs
      .list(this.pool, { ...filter, limit: filter.limit ?? 50 })
      .catch((error: unknown) => {
        throw this.explainMissingSchema(error);
      });
  }

  /**
   * Cancels a job at once. A running job also gets its abort signal on whichever node runs it,
   * and its thread is terminated after that node's cancel grace period if it does not stop.
   */
  async cancel(id: number): Promise<ChangeResult> {
    const { before, after, attemptedBy } = await this.jobs.cancel(this.pool, checkId(id));
    if (before === null)
      return { id, before, after, changed: false, message: `job ${id} does not exist` };
    if (before === 'executing') {
      await sendControl(this.pool, this.schema, {
        action: 'cancel',
        id,
        node: attemptedBy?.[0] ?? null,
        // Only the attempt that was cancelled: a retry may run the job again before this lands.
        token: attemptedBy?.[1] ?? null,
      });
      return {
        id,
        before,
        after,
        changed: true,
        message: `job ${id} cancelled; node ${attemptedBy?.[0] ?? '?'} running it was told to stop it`,
      };
    }
    if (after === 'cancelled' && before !== 'cancelled')
      return { id, before, after, changed: true, message: `job ${id} cancelled` };
    return {
      id,
      before,
      after,
      changed: false,
      message: `job ${id} is ${before}; nothing changed`,
    };
  }

  /** Makes a discarded, cancelled, retryable or scheduled job available now. */
  async retry(id: number): Promise<ChangeResult> {
    const { before, after, scheduledAt } = await this.jobs.retry(this.pool, checkId(id));
    if (before === null)
      return { id, before, after, changed: false, message: `job ${id} does not exist` };
    if (after === 'available' && before !== 'available')
      return { id, before, after, changed: true, message: `job ${id} is available again` };
    if (after === 'scheduled' && before !== 'available' && scheduledAt)
      return {
        id,
        before,
        after,
        changed: true,
        message: `job ${id} runs again at ${scheduledAt.toISOString()} at the latest, once its cancelled run has ended`,
      };
    return {
      id,
      before,
      after,
      changed: false,
      message: `job ${id} is ${before}; nothing changed`,
    };
  }

  /** Pauses, resumes, scales, starts or stops a queue on one node (`node`) or on all. */
  async controlQueue(
    action: QueueAction,
    queue: string,
    given: { node?: string; limit?: number } | null = {},
  ): Promise<void> {
    if (!isPlainIdentifier(queue, MAX_QUEUE_LENGTH))
      throw new ConfigError(`queue: ${showValue(queue)} is not a plain queue name`);
    const options = controlOptions(
      given,
      action === 'start' || action === 'scale' ? ['node', 'limit'] : ['node'],
    );
    if (
      (action === 'scale' || options.limit !== undefined) &&
      !(Number.isInteger(options.limit) && options.limit! >= 1 && options.limit! <= MAX_QUEUE_LIMIT)
    ) {
      throw new ConfigError(
        `limit: must be an integer from 1 to ${MAX_QUEUE_LIMIT}, got ${showValue(options.limit)}`,
      );
    }
    if (
      options.node !== undefined &&
      (typeof options.node !== 'string' || options.node.trim() === '')
    ) {
      throw new ConfigError(`node: must be a non-empty node name, got ${showValue(options.node)}`);
    }
    // '*' is how a setting for every node is saved: { node: '*' } changed the queue on every
    // node, while the CLI warned that no node of that name was live.
    const nodeProblem = options.node === undefined ? null : nodeNameProblem(options.node);
    if (nodeProblem !== null) {
      throw new ConfigError(
        `node: ${nodeProblem}; leave node out to change the queue on every node`,
      );
    }
    const node = options.node ?? '*';
    await this.nodes.saveSetting(this.pool, {
      node,
      queue,
      paused: action === 'pause' ? true : action === 'resume' ? false : null,
      limit: action === 'scale' || action === 'start' ? (options.limit ?? null) : null,
      running: action === 'start' ? true : action === 'stop' ? false : null,
    });
    await sendControl(this.pool, this.schema, {
      action,
      queue,
      node: options.node ?? null,
      ...(options.limit !== undefined ? { limit: options.limit } : {}),
    });
  }

  pauseQueue(queue: string, options: { node?: string } | null = {}): Promise<void> {
    return this.controlQueue('pause', queue, options);
  }

  resumeQueue(queue: string, options: { node?: string } | null = {}): Promise<void> {
    return this.controlQueue('resume', queue, options);
  }

  async scaleQueue(
    queue: string,
    limit: number,
    options: { node?: string } | null = {},
  ): Promise<void> {
    return this.controlQueue('scale', queue, { ...controlOptions(options, ['node']), limit });
  }

  startQueue(queue: string, options: { node?: string; limit?: number } | null = {}): Promise<void> {
    return this.controlQueue('start', queue, options);
  }

  stopQueue(queue: string, options: { node?: string } | null = {}): Promise<void> {
    return this.controlQueue('stop', queue, options);
  }

  /**
   * Historic metrics from the retained rows: counts by state per queue and per worker,
   * completed and failed over the last minute and hour, p50/p95 queue and run times.
   */
  async stats(): Promise<Stats> {
    return collectStats(this.pool, this.statsQueries);
  }

  async close(): Promise<void> {
    // A second close (an afterEach and a finally both closing, say) waits for the first;
    // pg's own end() throws "Called end on pool more than once".
    if (this.ownsPool) await (this.closing ??= this.connections.end());
  }

  /**
   * The client's pool, while it has not been closed. After close() its own pool is ended, and pg
   * refused each call with "Cannot use a pool after calling end on the pool", which named
   * neither quern nor the client: every use of the pool goes through here.
   */
  get pool(): pg.Pool {
    if (this.closing !== null)
      throw new ClientClosedError(
        `this Quern client (schema "${this.schema}") was closed: close() ended its connection pool; create a new Quern to use the database again`,
      );
    return this.connections;
  }
}

/** A call on a Quern client after its close(). */
export class ClientClosedError extends Error {
  override name = 'ClientClosedError';
}

/**
 * The options of the queue controls: nothing (undefined or null), or an object of `allowed` keys.
 * A misspelt key ({ nod: 'web-1' }) changed the queue on every node instead of the one named.
 */
function controlOptions(
  given: unknown,
  allowed: readonly string[],
): { node?: string; limit?: number } {
  if (given === undefined || given === null) return {};
  if (!isPlainObject(given))
    throw new ConfigError(`options: expected an object such as { node }, got ${describe(given)}`);
  rejectUnknownKeys(given, allowed, 'options');
  return given;
}

/**
 * The second argument of insert, insertMany and getJob: nothing (undefined or null), or
 * `{ client }`. A misspelt key would silently run the call outside the caller's transaction.
 */
function callerClient(options: unknown): Queryable | undefined {
  if (options === undefined || options === null) return undefined;
  if (!isPlainObject(options)) {
    throw new InsertError(
      `options: expected an object such as { client }, got ${describe(options)}`,
      'options',
    );
  }
  for (const key of Object.keys(options)) {
    if (!(CALL_OPTION_KEYS as readonly string[]).includes(key)) {
      throw new InsertError(
        `options.${key}: unknown option "${key}"${suggest(key, CALL_OPTION_KEYS)}; the only option is client`,
        key,
      );
    }
  }
  const client = options.client;
  if (client === undefined) return undefined;
  if (
    client === null ||
    typeof client !== 'object' ||
    typeof (client as { query?: unknown }).query !== 'function'
  ) {
    throw new InsertError(
      `options.client: expected a pg client (a PoolClient, Client or Pool: something with a query function), got ${describe(client)}`,
      'client',
    );
  }
  return client as Queryable;
}

function describe(value: unknown): string {
  if (value === null || typeof value !== 'object') return showValue(value);
  return Array.isArray(value)
    ? 'an array'
    : `an object (${value.constructor?.name ?? 'no prototype'})`;
}

const LIST_FILTER_KEYS = ['state', 'queue', 'worker', 'limit'];

/** A misspelt key or a state that does not exist would list every job, or none, unnoticed. */
function checkListFilter(filter: unknown): void {
  const fail = (field: string, why: string): never => {
    throw new InsertError(`filter${field === 'filter' ? '' : `.${field}`}: ${why}`, field);
  };
  if (!isPlainObject(filter)) fail('filter', 'expected an object of state, queue, worker, limit');
  const { state, queue, worker, limit } = filter as Record<string, unknown>;
  rejectUnknownKeys(
    filter as Record<string, unknown>,
    LIST_FILTER_KEYS,
    'filter',
    (m) => new InsertError(m, 'filter'),
  );
  if (state !== undefined && !JOB_STATES.includes(state as JobState))
    fail('state', `expected one of ${JOB_STATES.join(', ')}, got ${showValue(state)}`);
  for (const [field, value] of [
    ['queue', queue],
    ['worker', worker],
  ] as const)
    if (value !== undefined && typeof value !== 'string')
      fail(field, `expected a string, got ${showValue(value)}`);
  if (
    limit !== undefined &&
    (typeof limit !== 'number' || !Number.isSafeInteger(limit) || limit < 1)
  )
    fail(
      'limit',
      `expected a whole number from 1 to ${Number.MAX_SAFE_INTEGER}, got ${showValue(limit)}`,
    );
}

function checkId(id: unknown): number {
  if (typeof id !== 'number' || !Number.isSafeInteger(id) || id < 1) {
    throw new InsertError(`id: expected a positive integer job id, got ${showValue(id)}`, 'id');
  }
  return id;
}

/**
 * The pool of an inline client given no database: every call that needs one (listJobs, getJob,
 * cancel, stats...) fails with this, rather than pg's "no PostgreSQL user name specified in
 * startup packet" from a pool with no connection string.
 */
function noDatabase(): pg.Pool {
  const refuse = (): Promise<never> =>
    Promise.reject(
      new ConfigError(
        'connectionString: this client runs jobs inline (testing: "inline") and was given no database (connectionString, DATABASE_URL or pool), so it stores no job to read or change',
      ),
    );
  const pool = { query: refuse, connect: refuse, end: () => Promise.resolve(), on: () => pool };
  return pool as unknown as pg.Pool;
}
