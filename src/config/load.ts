// Reads cluster.config.json (or a given path), applies environment overrides (DATABASE_URL,
// NODE_NAME, LOG_LEVEL) and validates everything before any actor starts. Every error names the
// key it is about; the CLI turns a ConfigError into exit code 1.

import { readFileSync, existsSync } from 'node:fs';
import { hostname } from 'node:os';
import path from 'node:path';
import { isPlainIdentifier, MAX_QUEUE_LENGTH, MAX_SCHEMA_LENGTH } from '../db/identifiers.js';
import { checkTimezone, cronEntryIdentity, parseCronExpression } from '../plugins/cron-schedule.js';
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

export interface LoadOptions {
  /** Where relative paths (workers, data folder) are resolved from. */
  baseDir?: string;
  env?: NodeJS.ProcessEnv;
}

export function readConfigFile(file: string): unknown {
  if (!existsSync(file)) throw new ConfigError(`config file not found: ${file}`);
  try {
    return JSON.parse(readFileSync(file, 'utf8'));
  } catch (error) {
    throw new ConfigError(`config file ${file} is not valid JSON: ${(error as Error).message}`);
  }
}

export function loadConfig(raw: unknown, options: LoadOptions = {}): NodeConfig {
  const env = options.env ?? process.env;
  const baseDir = options.baseDir ?? process.cwd();
  const input = expectObject(raw === undefined ? {} : raw, 'config');
  rejectUnknownKeys(input, TOP_KEYS, 'config');

  const schema = input.schema === undefined ? DEFAULT_SCHEMA : expectString(input.schema, 'schema');
  if (!isPlainIdentifier(schema, MAX_SCHEMA_LENGTH)) {
    throw new ConfigError(
      `schema: ${JSON.stringify(schema)} must be a plain lower-case identifier ([a-z_][a-z0-9_]*) of at most ${MAX_SCHEMA_LENGTH} bytes`,
    );
  }

  const database = input.database === undefined ? {} : expectObject(input.database, 'database');
  rejectUnknownKeys(database, ['url', 'poolSize', 'dataDir'], 'database');
  const envUrl = env.DATABASE_URL && env.DATABASE_URL.length > 0 ? env.DATABASE_URL : null;
  const url =
    envUrl ?? (database.url === undefined ? null : expectString(database.url, 'database.url'));
  const poolSize =
    database.poolSize === undefined
      ? 10
      : expectInteger(database.poolSize, 'database.poolSize', { min: 2 });
  const dataDir = path.resolve(
    baseDir,
    database.dataDir === undefined ? '.data' : expectString(database.dataDir, 'database.dataDir'),
  );

  const queuesInput =
    input.queues === undefined ? { default: 10 } : expectObject(input.queues, 'queues');
  const queues: Record<string, QueueConfig> = {};
  for (const [name, value] of Object.entries(queuesInput)) queues[name] = queueConfig(name, value);

  const nodeName =
    env.NODE_NAME && env.NODE_NAME.length > 0
      ? env.NODE_NAME
      : input.node === undefined
        ? `${hostname()}-${process.pid}`
        : expectString(input.node, 'node');

  const logLevel =
    env.LOG_LEVEL && env.LOG_LEVEL.length > 0 ? env.LOG_LEVEL : (input.logLevel ?? 'info');
  if (typeof logLevel !== 'string' || !LOG_LEVELS.includes(logLevel)) {
    throw new ConfigError(
      `logLevel: expected one of ${LOG_LEVELS.join(', ')}, got ${describe(logLevel)}`,
    );
  }

  const testing = input.testing ?? 'disabled';
  if (testing !== 'disabled' && testing !== 'inline' && testing !== 'manual') {
    throw new ConfigError(
      `testing: expected "disabled", "inline" or "manual", got ${describe(testing)}`,
    );
  }

  const positiveMs = (key: (typeof TOP_KEYS)[number], fallback: number): number =>
    input[key] === undefined ? fallback : expectInteger(input[key], key, { min: 1 });
  const heartbeatInterval = positiveMs('heartbeatInterval', 1000);
  const heartbeatTimeout = positiveMs('heartbeatTimeout', Math.max(5000, heartbeatInterval * 5));
  // A timeout within reach of one late heartbeat would rescue the jobs of live nodes.
  if (heartbeatTimeout < heartbeatInterval * 3)
    throw new ConfigError(
      `heartbeatTimeout: must be at least three heartbeatIntervals (${heartbeatInterval * 3} ms), got ${heartbeatTimeout}`,
    );
  // A node cut off from the database stops its jobs before heartbeatTimeout (src/node/fence.ts):
  // it needs room for that after a late heartbeat, and before the lifeline may rescue them.
  if (heartbeatTimeout < heartbeatInterval * 4)
    throw new ConfigError(
      `heartbeatTimeout: must be at least four heartbeatIntervals (${heartbeatInterval * 4} ms), got ${heartbeatTimeout} with heartbeatInterval ${heartbeatInterval}: a node that cannot write its heartbeat stops its running jobs before heartbeatTimeout, and needs that room to tell a lost database from a late heartbeat`,
    );

  return {
    node: nodeName,
    workers: path.resolve(
      baseDir,
      input.workers === undefined ? 'workers' : expectString(input.workers, 'workers'),
    ),
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

/** The largest `limit` a queue may have, in the config or set at runtime. */
export const MAX_QUEUE_LIMIT = 10000;

export function queueConfig(name: string, value: unknown): QueueConfig {
  if (!isPlainIdentifier(name, MAX_QUEUE_LENGTH)) {
    throw new ConfigError(
      `queues.${name}: a queue name must be a plain lower-case identifier ([a-z_][a-z0-9_]*) of at most ${MAX_QUEUE_LENGTH} bytes`,
    );
  }
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
      : expectInteger(options.concurrency, `${where}.concurrency`, { min: 1 });
  return {
    limit,
    threads,
    concurrency,
    pollInterval:
      options.pollInterval === undefined
        ? 1000
        : expectInteger(options.pollInterval, `${where}.pollInterval`, { min: 10 }),
    prefetch:
      options.prefetch === undefined
        ? 0
        : expectInteger(options.prefetch, `${where}.prefetch`, { min: 0, max: 10000 }),
    paused: options.paused === undefined ? false : expectBoolean(options.paused, `${where}.paused`),
    memoryLimitMb:
      options.memoryLimitMb === undefined
        ? null
        : expectInteger(options.memoryLimitMb, `${where}.memoryLimitMb`, { min: 16 }),
  };
}

function restartBudgetConfig(value: unknown): NodeConfig['restartBudget'] {
  const input = value === undefined ? {} : expectObject(value, 'restartBudget');
  rejectUnknownKeys(input, ['restarts', 'seconds', 'backoff'], 'restartBudget');
  return {
    restarts:
      input.restarts === undefined
        ? 5
        : expectInteger(input.restarts, 'restartBudget.restarts', { min: 1 }),
    seconds:
      input.seconds === undefined
        ? 60
        : expectInteger(input.seconds, 'restartBudget.seconds', { min: 1 }),
    backoff:
      input.backoff === undefined
        ? 30000
        : expectInteger(input.backoff, 'restartBudget.backoff', { min: 1 }),
  };
}

function breakerConfig(value: unknown): NodeConfig['breaker'] {
  const input = value === undefined ? {} : expectObject(value, 'breaker');
  rejectUnknownKeys(input, ['failures', 'windowMs', 'openMs'], 'breaker');
  return {
    failures:
      input.failures === undefined
        ? 5
        : expectInteger(input.failures, 'breaker.failures', { min: 1 }),
    windowMs:
      input.windowMs === undefined
        ? 10000
        : expectInteger(input.windowMs, 'breaker.windowMs', { min: 1 }),
    openMs:
      input.openMs === undefined ? 1000 : expectInteger(input.openMs, 'breaker.openMs', { min: 1 }),
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
      interval:
        stager.interval === undefined
          ? 1000
          : expectInteger(stager.interval, 'plugins.stager.interval', { min: 10 }),
    },
    pruner: {
      enabled:
        pruner.enabled === undefined
          ? true
          : expectBoolean(pruner.enabled, 'plugins.pruner.enabled'),
      maxAge:
        pruner.maxAge === undefined
          ? 60
          : expectInteger(pruner.maxAge, 'plugins.pruner.maxAge', { min: 0 }),
      interval:
        pruner.interval === undefined
          ? 30000
          : expectInteger(pruner.interval, 'plugins.pruner.interval', { min: 10 }),
      limit:
        pruner.limit === undefined
          ? 10000
          : expectInteger(pruner.limit, 'plugins.pruner.limit', { min: 1 }),
    },
    lifeline: {
      enabled:
        lifeline.enabled === undefined
          ? true
          : expectBoolean(lifeline.enabled, 'plugins.lifeline.enabled'),
      interval:
        lifeline.interval === undefined
          ? 5000
          : expectInteger(lifeline.interval, 'plugins.lifeline.interval', { min: 10 }),
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
    if (entry.queue !== null && !isPlainIdentifier(entry.queue, MAX_QUEUE_LENGTH))
      throw new ConfigError(
        `${label}.queue: ${JSON.stringify(entry.queue)} must be a plain lower-case identifier ([a-z_][a-z0-9_]*)`,
      );
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
  // Accept the compact form ["* * * * *", "worker", {args}] as well as an object.
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
        : expectInteger(input.maxAttempts, `${where}.maxAttempts`, { min: 1 }),
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
