// The shape of a node's configuration after validation: every field present, defaults applied.
// What users write (cluster.config.json) is validated into this by ./load.ts.

export interface QueueConfig {
  /** Most jobs of this queue running at once on this node. */
  limit: number;
  /** Worker threads in the queue's pool. */
  threads: number;
  /** Jobs one thread runs at once (async jobs interleave on a thread). */
  concurrency: number;
  /**
   * Whether the configuration set `concurrency`. When it did not, concurrency follows the limit
   * (ceil(limit / threads)), also when `queue scale` changes the limit.
   */
  concurrencyFixed?: boolean;
  /** Fallback poll in ms when no notification arrives. */
  pollInterval: number;
  /** Jobs claimed ahead of free slots, waiting on this node to start (0: claim only what runs). */
  prefetch: number;
  paused: boolean;
  /** Per-thread heap limit (piscina resourceLimits.maxOldGenerationSizeMb), or null for Node's default. */
  memoryLimitMb: number | null;
}

export interface CronEntryConfig {
  expression: string;
  worker: string;
  args: Record<string, unknown>;
  queue: string | null;
  priority: number | null;
  maxAttempts: number | null;
  tags: string[] | null;
  timezone: string | null;
}

export interface PluginsConfig {
  stager: { interval: number };
  pruner: { enabled: boolean; maxAge: number; interval: number; limit: number };
  lifeline: { enabled: boolean; interval: number };
  cron: { enabled: boolean; timezone: string; crontab: CronEntryConfig[] };
}

export interface NodeConfig {
  /** This node's name in heartbeats and attempted_by. */
  node: string;
  /** The folder holding worker modules. Absolute after loading. */
  workers: string;
  /** Whether `workers` was given relative (resolved against the config file's folder). */
  workersRelative?: boolean;
  schema: string;
  database: { url: string | null; poolSize: number; dataDir: string };
  queues: Record<string, QueueConfig>;
  shutdownGracePeriod: number;
  /** How long a cancelled or timed-out job may take to honour its signal before its thread dies. */
  cancelGracePeriod: number;
  heartbeatInterval: number;
  /** A node whose heartbeat is older than this is considered dead by the lifeline. */
  heartbeatTimeout: number;
  logLevel: string;
  logArgs: boolean;
  testing: 'disabled' | 'inline' | 'manual';
  restartBudget: { restarts: number; seconds: number; backoff: number };
  breaker: { failures: number; windowMs: number; openMs: number };
  metrics: { port: number; host: string } | null;
  plugins: PluginsConfig;
}
