// Reads cluster.config.json (or a given path), applies environment overrides (DATABASE_URL,
// NODE_NAME, LOG_LEVEL) and validates everything before any actor starts. Every error names the
// key it is about; the CLI turns a ConfigError into exit code 1.

import { readFileSync, existsSync, statSync } from 'node:fs';
import { hostname } from 'node:os';
import path from 'node:path';
import { queueNameProblem, schemaNameProblem } from '../db/identifiers.js';
import { MAX_ATTEMPTS_LIMIT } from '../jobs/insert.js';
import { checkTimezone, cronEntryIdentity, parseCronExpression } from '../plugins/cron-schedule.js';
import {
  MAX_BREAKER_FAILURES,
  MAX_CONCURRENCY,
  MAX_INTERVAL_MS,
  MAX_MEMORY_LIMIT_MB,
  MAX_POOL_SIZE,
  MAX_PRUNE_AGE_SECONDS,
  MAX_PRUNE_LIMIT,
  MAX_QUEUE_LIMIT,
  MAX_RESTART_WINDOW_SECONDS,
  MAX_RESTARTS,
  MAX_TIMER_MS,
} from './bounds.js';
import { assertFaithfulJson } from '../jobs/json.js';
import { databaseUrlProblem } from './database-url.js';
import { nodeNameProblem } from './node-name.js';
import type { CronEntryConfig, NodeConfig, PluginsConfig, QueueConfig } from './types.js';
import {
  ConfigError,
  describe,
  expectBoolean,
  expectInteger,
  expectObject,
  expectString,
  rejectUnknownKeys,
} from './validate.js';

const TOP_KEYS = [
  'node',
  'workers',
  'schema',
  'database',
  'queues',
  'shutdownGracePeriod',
  'cancelGracePeriod',
  'heartbeatInterval',
  'heartbeatTimeout',
  'logLevel',
  'logArgs',
  'testing',
  'restartBudget',
  'breaker',
  'metrics',
  'plugins',
] as const;
const QUEUE_KEYS = [
  'limit',
  'threads',
  'concurrency',
  'pollInterval',
  'prefetch',
  'paused',
  'memoryLimitMb',
];
const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

export const DEFAULT_SCHEMA = 'quern';
export { MAX_QUEUE_LIMIT } from './bounds.js';

/** Notes for the messages of millisecond keys: the unit, and why the cap. */
const TIMER_NOTE = 'ms, at most 24 days: Node timers cannot wait longer';
const INTERVAL_NOTE = 'ms, at most a day';

/** A millisecond key: an integer from `min` to `max`, or `fallback` when absent. */
function milliseconds(
  value: unknown,
  where: string,
  fallback: number,
  min: number,
  max: number = MAX_TIMER_MS,
): number {
  if (value === undefined) return fallback;
  const note = max === MAX_TIMER_MS ? TIMER_NOTE : INTERVAL_NOTE;
  return expectInteger(value, where, { min, max, note });
}

export interface LoadOptions {
  /** Where relative paths (workers, data folder) are resolved from. */
  baseDir?: string;
  env?: NodeJS.ProcessEnv;
}

export function readConfigFile(file: string): unknown {
  if (!existsSync(file)) throw new ConfigError(`config file not found: ${file}`);
  if (statSync(file).isDirectory())
    throw new ConfigError(`config file ${file} is a folder; name the JSON file in it`);
  // A byte order mark (some Windows editors write one) is not JSON, and not the user's mistake.
  const text = readFileSync(file, 'utf8').replace(/^\uFEFF/, '');
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new ConfigError(`config file ${file} is not valid JSON: ${(error as Error).message}`);
  }
  // A crontab entry's args of `{ "id": 12345678901234567890123 }` were rounded unseen.
  // Two "queues" (or two queues of one name) kept only the last, unseen.
  try {
    assertFaithfulJson(text, '');
  } catch (error) {
    throw new ConfigError(`config file ${file}: ${(error as Error).message}`);
  }
  return parsed;
}

export function loadConfig(raw: unknown, options: LoadOptions = {}): NodeConfig {
  const env = options.env ?? process.env;
  const baseDir = options.baseDir ?? process.cwd();
  const input = expectObject(raw === undefined ? {} : raw, 'config');
  rejectUnknownKeys(input, TOP_KEYS, 'config');

  const schema = input.schema === undefined ? DEFAULT_SCHEMA : expectString(input.schema, 'schema');
  const schemaProblem = schemaNameProblem(schema);
  if (schemaProblem !== null) throw new ConfigError(`schema: ${schemaProblem}`);

  const database = input.database === undefined ? {} : expectObject(input.database, 'database');
  rejectUnknownKeys(database, ['url', 'poolSize', 'dataDir'], 'database');
  // The file's values are checked even where the environment overrides them (DATABASE_URL,
  // NODE_NAME, LOG_LEVEL): the same file must not pass here and stop a node started without them.
  const fileUrl = database.url === undefined ? null : expectString(database.url, 'database.url');
  // Named after where it came from; the URL itself is never printed (it may hold a password).
  const fileUrlProblem = fileUrl === null ? null : databaseUrlProblem(fileUrl);
  if (fileUrlProblem !== null) throw new ConfigError(`database.url: ${fileUrlProblem}`);
  const envUrl = env.DATABASE_URL && env.DATABASE_URL.length > 0 ? env.DATABASE_URL : null;
  const envUrlProblem = envUrl === null ? null : databaseUrlProblem(envUrl);
  if (envUrlProblem !== null) throw new ConfigError(`DATABASE_URL: ${envUrlProblem}`);
  const url = envUrl ?? fileUrl;
  const poolSize =
    database.poolSize === undefined
      ? 10
      : expectInteger(database.poolSize, 'database.poolSize', { min: 2, max: MAX_POOL_SIZE });
  const dataDir = path.resolve(
    baseDir,
    database.dataDir === undefined ? '.data' : expectString(database.dataDir, 'database.dataDir'),
  );

  const queuesInput =
    input.queues === undefined ? { default: 10 } : expectObject(input.queues, 'queues');
  // JSON.parse makes "__proto__" an own key, so Object.entries sees it; queueConfig refuses it
  // (and "constructor") before anything is assigned.
  const queues: Record<string, QueueConfig> = {};
  for (const [name, value] of Object.entries(queuesInput)) queues[name] = queueConfig(name, value);

  const fileNode = input.node === undefined ? null : expectString(input.node, 'node');
  const fileNodeProblem = fileNode === null ? null : nodeNameProblem(fileNode);
  if (fileNodeProblem !== null) throw new ConfigError(`node: ${fileNodeProblem}`);
  const envNode = env.NODE_NAME && env.NODE_NAME.length > 0 ? env.NODE_NAME : null;
  const envNodeProblem = envNode === null ? null : nodeNameProblem(envNode);
  if (envNodeProblem !== null) throw new ConfigError(`NODE_NAME: ${envNodeProblem}`);
  const nodeName = envNode ?? fileNode ?? `${hostname()}-${process.pid}`;

  // Named where the value came from: LOG_LEVEL overrides the file's logLevel.
  const checkLevel = (level: unknown, key: string): string => {
    if (typeof level !== 'string' || !LOG_LEVELS.includes(level))
      throw new ConfigError(
        `${key}: expected one of ${LOG_LEVELS.join(', ')}, got ${describe(level)}`,
      );
    return level;
  };
  const fileLogLevel =
    input.logLevel === undefined ? 'info' : checkLevel(input.logLevel, 'logLevel');
  const envLogLevel = env.LOG_LEVEL && env.LOG_LEVEL.length > 0 ? env.LOG_LEVEL : null;
  const logLevel = envLogLevel === null ? fileLogLevel : checkLevel(envLogLevel, 'LOG_LEVEL');

  const testing = input.testing ?? 'disabled';
  if (testing !== 'disabled' && testing !== 'inline' && testing !== 'manual') {
    throw new ConfigError(
      `testing: expected "disabled", "inline" or "manual", got ${describe(testing)}`,
    );
  }

  const positiveMs = (key: (typeof TOP_KEYS)[number], fallback: number, max?: number): number =>
    milliseconds(input[key], key, fallback, 1, max);
  const heartbeatInterval = positiveMs('heartbeatInterval', 1000, MAX_INTERVAL_MS);
  const heartbeatTimeout = positiveMs('heartbeatTimeout', Math.max(5000, heartbeatInterval * 5));
  // A timeout within reach of one late heartbeat would rescue the jobs of live nodes, and a
  // node cut off from the database stops its jobs before heartbeatTimeout (src/node/fence.ts):
  // it needs room for that after a late heartbeat, and before the lifeline may rescue them.
  if (heartbeatTimeout < heartbeatInterval * 4)
    throw new ConfigError(
      `heartbeatTimeout: must be at least four heartbeatIntervals (${heartbeatInterval * 4} ms), got ${heartbeatTimeout} with heartbeatInterval ${heartbeatInterval}: a node that cannot write its heartbeat stops its running jobs before heartbeatTimeout, and needs that room to tell a lost database from a late heartbeat`,
    );

  const workers = input.workers === undefined ? 'workers' : expectString(input.workers, 'workers');
  return {
    node: nodeName,
    workers: path.resolve(baseDir, workers),
    workersRelative: !path.isAbsolute(workers),
    schema,
    database: { url, poolSize, dataDir },
    queues,
    shutdownGracePeriod: positiveMs('shutdownGracePeriod', 15000),
    cancelGracePeriod: positiveMs('cancelGracePeriod', 5000),
    heartbeatInterval,
    heartbeatTimeout,
    logLevel,
    logArgs: input.logArgs === undefined ? false : expectBoolean(input.logArgs, 'logArgs'),
    testing,
    restartBudget: restartBudgetConfig(input.restartBudget),
    breaker: breakerConfig(input.breaker),
    metrics: metricsConfig(input.metrics),
    plugins: pluginsConfig(input.plugins),
  };
}

export function queueConfig(name: string, value: unknown): QueueConfig {
  const nameProblem = queueNameProblem(name);
  if (nameProblem !== null) throw new ConfigError(`queues.${name}: ${nameProblem}`);
  const where = `queues.${name}`;
  const options = typeof value === 'number' ? { limit: value } : expectObject(value, where);
  rejectUnknownKeys(options, QUEUE_KEYS, where);
  const limit = expectInteger(options.limit, `${where}.limit`, { min: 1, max: MAX_QUEUE_LIMIT });
  const threads =
    options.threads === undefined
      ? Math.min(2, limit)
      : expectInteger(options.threads, `${where}.threads`, { min: 1, max: Math.min(256, limit) });
  const concurrency =
    options.concurrency === undefined
      ? Math.ceil(limit / threads)
      : expectInteger(options.concurrency, `${where}.concurrency`, {
          min: 1,
          max: MAX_CONCURRENCY,
          note: 'jobs one thread runs at once',
        });
  return {
    limit,
    threads,
    concurrency,
    concurrencyFixed: options.concurrency !== undefined,
    pollInterval: milliseconds(
      options.pollInterval,
      `${where}.pollInterval`,
      1000,
      10,
      MAX_INTERVAL_MS,
    ),
    prefetch:
      options.prefetch === undefined
        ? 0
        : expectInteger(options.prefetch, `${where}.prefetch`, { min: 0, max: 10000 }),
    paused: options.paused === undefined ? false : expectBoolean(options.paused, `${where}.paused`),
    memoryLimitMb:
      options.memoryLimitMb === undefined
        ? null
        : expectInteger(options.memoryLimitMb, `${where}.memoryLimitMb`, {
            min: 16,
            max: MAX_MEMORY_LIMIT_MB,
            note: 'MiB of heap per thread',
          }),
  };
}

function restartBudgetConfig(value: unknown): NodeConfig['restartBudget'] {
  const input = value === undefined ? {} : expectObject(value, 'restartBudget');
  rejectUnknownKeys(input, ['restarts', 'seconds', 'backoff'], 'restartBudget');
  return {
    restarts:
      input.restarts === undefined
        ? 5
        : expectInteger(input.restarts, 'restartBudget.restarts', { min: 1, max: MAX_RESTARTS }),
    seconds:
      input.seconds === undefined
        ? 60
        : expectInteger(input.seconds, 'restartBudget.seconds', {
            min: 1,
            max: MAX_RESTART_WINDOW_SECONDS,
            note: 'seconds, at most a day',
          }),
    backoff: milliseconds(input.backoff, 'restartBudget.backoff', 30000, 1),
  };
}

function breakerConfig(value: unknown): NodeConfig['breaker'] {
  const input = value === undefined ? {} : expectObject(value, 'breaker');
  rejectUnknownKeys(input, ['failures', 'windowMs', 'openMs'], 'breaker');
  return {
    failures:
      input.failures === undefined
        ? 5
        : expectInteger(input.failures, 'breaker.failures', { min: 1, max: MAX_BREAKER_FAILURES }),
    windowMs: milliseconds(input.windowMs, 'breaker.windowMs', 10000, 1),
    openMs: milliseconds(input.openMs, 'breaker.openMs', 1000, 1),
  };
}

function metricsConfig(value: unknown): NodeConfig['metrics'] {
  if (value === undefined || value === null) return null;
  const input = expectObject(value, 'metrics');
  rejectUnknownKeys(input, ['port', 'host'], 'metrics');
  return {
    port: expectInteger(input.port, 'metrics.port', { min: 0, max: 65535 }),
    host: input.host === undefined ? '127.0.0.1' : expectString(input.host, 'metrics.host'),
  };
}

function pluginsConfig(value: unknown): PluginsConfig {
  const input = value === undefined ? {} : expectObject(value, 'plugins');
  rejectUnknownKeys(input, ['stager', 'pruner', 'lifeline', 'cron'], 'plugins');

  const stager = input.stager === undefined ? {} : expectObject(input.stager, 'plugins.stager');
  rejectUnknownKeys(stager, ['interval'], 'plugins.stager');

  const pruner = pluginToggle(input.pruner, 'plugins.pruner', [
    'enabled',
    'maxAge',
    'interval',
    'limit',
  ]);
  const lifeline = pluginToggle(input.lifeline, 'plugins.lifeline', ['enabled', 'interval']);
  const cron = pluginToggle(input.cron, 'plugins.cron', ['enabled', 'timezone', 'crontab']);
  const crontab = cron.crontab === undefined ? [] : cron.crontab;
  if (!Array.isArray(crontab))
    throw new ConfigError(`plugins.cron.crontab: expected an array, got ${describe(crontab)}`);

  return {
    stager: {
      interval: milliseconds(stager.interval, 'plugins.stager.interval', 1000, 10),
    },
    pruner: {
      enabled:
        pruner.enabled === undefined
          ? true
          : expectBoolean(pruner.enabled, 'plugins.pruner.enabled'),
      maxAge:
        pruner.maxAge === undefined
          ? 60
          : expectInteger(pruner.maxAge, 'plugins.pruner.maxAge', {
              min: 0,
              max: MAX_PRUNE_AGE_SECONDS,
              note: 'seconds, at most 10 years; "pruner": false keeps jobs forever',
            }),
      interval: milliseconds(pruner.interval, 'plugins.pruner.interval', 30000, 10),
      limit:
        pruner.limit === undefined
          ? 10000
          : expectInteger(pruner.limit, 'plugins.pruner.limit', {
              min: 1,
              max: MAX_PRUNE_LIMIT,
              note: 'rows per delete statement',
            }),
    },
    lifeline: {
      enabled:
        lifeline.enabled === undefined
          ? true
          : expectBoolean(lifeline.enabled, 'plugins.lifeline.enabled'),
      interval: milliseconds(lifeline.interval, 'plugins.lifeline.interval', 5000, 10),
    },
    cron: cronConfig(cron, crontab),
  };
}

function cronConfig(cron: Record<string, unknown>, crontab: unknown[]): PluginsConfig['cron'] {
  const timezone =
    cron.timezone === undefined ? 'UTC' : expectString(cron.timezone, 'plugins.cron.timezone');
  try {
    checkTimezone(timezone);
  } catch (error) {
    throw new ConfigError(`plugins.cron.timezone: ${(error as Error).message}`);
  }
  const entries = crontab.map((entry, index) => cronEntry(entry, `plugins.cron.crontab[${index}]`));
  const seen = new Map<string, number>();
  entries.forEach((entry, index) => {
    const where = `plugins.cron.crontab[${index}]`;
    const label = `${where} ("${entry.expression}", worker "${entry.worker}")`;
    if (entry.timezone !== null) {
      try {
        checkTimezone(entry.timezone);
      } catch (error) {
        throw new ConfigError(`${label}.timezone: ${(error as Error).message}`);
      }
    }
    try {
      parseCronExpression(entry.expression, entry.timezone ?? timezone);
    } catch (error) {
      throw new ConfigError(`${label}.expression: ${(error as Error).message}`);
    }
    const queueProblem = entry.queue === null ? null : queueNameProblem(entry.queue);
    if (queueProblem !== null)
      throw new ConfigError(`${label}.queue: ${JSON.stringify(entry.queue)}: ${queueProblem}`);
    // Two identical entries would share their slots: one of them would never fire.
    const identity = cronEntryIdentity(entry, timezone);
    const earlier = seen.get(identity);
    if (earlier !== undefined)
      throw new ConfigError(
        `${label}: the same entry as plugins.cron.crontab[${earlier}] (expression, worker, args and timezone)`,
      );
    seen.set(identity, index);
  });
  return {
    enabled:
      cron.enabled === undefined ? true : expectBoolean(cron.enabled, 'plugins.cron.enabled'),
    timezone,
    crontab: entries,
  };
}

function pluginToggle(value: unknown, where: string, keys: string[]): Record<string, unknown> {
  if (value === undefined) return {};
  if (value === false) return { enabled: false };
  const input = expectObject(value, where);
  rejectUnknownKeys(input, keys, where);
  return input;
}

function cronEntry(value: unknown, where: string): CronEntryConfig {
  // Accept the compact form ["* * * * *", "worker", {args}] as well as an object. A longer
  // array is refused: its extra items (options, as Oban's {expr, worker, opts}) were dropped.
  if (Array.isArray(value) && value.length > 3) {
    throw new ConfigError(
      `${where}: expected [expression, worker] or [expression, worker, args], got ${value.length} items; give queue, priority, maxAttempts, tags or timezone in the object form`,
    );
  }
  const input: Record<string, unknown> = Array.isArray(value)
    ? {
        expression: value[0],
        worker: value[1],
        ...(value[2] === undefined ? {} : { args: value[2] }),
      }
    : expectObject(value, where);
  rejectUnknownKeys(
    input,
    ['expression', 'worker', 'args', 'queue', 'priority', 'maxAttempts', 'tags', 'timezone'],
    where,
  );
  return {
    expression: expectString(input.expression, `${where}.expression`),
    worker: expectString(input.worker, `${where}.worker`),
    args: input.args === undefined ? {} : expectObject(input.args, `${where}.args`),
    queue: input.queue === undefined ? null : expectString(input.queue, `${where}.queue`),
    priority:
      input.priority === undefined
        ? null
        : expectInteger(input.priority, `${where}.priority`, { min: 0, max: 3 }),
    maxAttempts:
      input.maxAttempts === undefined
        ? null
        : expectInteger(input.maxAttempts, `${where}.maxAttempts`, {
            min: 1,
            max: MAX_ATTEMPTS_LIMIT,
          }),
    tags:
      input.tags === undefined
        ? null
        : Array.isArray(input.tags) && input.tags.every((t) => typeof t === 'string')
          ? input.tags
          : (() => {
              throw new ConfigError(`${where}.tags: expected an array of strings`);
            })(),
    timezone:
      input.timezone === undefined ? null : expectString(input.timezone, `${where}.timezone`),
  };
}
