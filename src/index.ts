// The public library API.

export {
  Quern,
  type QuernOptions,
  type InsertResult,
  type CallOptions,
  type ChangeResult,
} from './client.js';
export { QuernNode, type NodeOptions } from './node/node.js';
export {
  defineWorker,
  defaultBackoff,
  type WorkerDefinition,
  type InsertJob,
  type UniqueOptions,
} from './worker/define.js';
export type {
  Job,
  JobRecord,
  JobState,
  JobError,
  InsertOptions,
  PerformResult,
} from './jobs/types.js';
export { InsertError } from './jobs/insert.js';
export { ClientClosedError } from './client.js';
export { WorkerLoadError } from './worker/registry.js';
export { ConfigError } from './config/validate.js';
export { loadConfig, readConfigFile } from './config/load.js';
export type { NodeConfig, QueueConfig } from './config/types.js';
export { Telemetry, type TelemetryEvents, type TelemetryEventName } from './telemetry/events.js';
export { attachLogger, createLogger, type LoggerOptions } from './telemetry/logger.js';
export type { Stats, GroupStats, Percentiles } from './telemetry/stats.js';
export { MetricsServer } from './telemetry/metrics.js';
export { migrateUp, migrateDown, currentVersion } from './db/migrate.js';
export { BreakerOpenError } from './db/breaker.js';
