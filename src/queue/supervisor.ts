// One per queue: owns the queue's Producer and its thread pool as one unit. A thread that dies
// on its own (not one we terminated for a timeout or cancel) is counted against a restart budget
// (N restarts in M seconds); within it piscina's replacement thread is the restart. Past it the
// queue is marked crashed: the pool is torn down, the producer stops fetching, and after a
// backoff a fresh pool is started. Other queues and the node carry on throughout.

import type { QueueConfig } from '../config/types.js';
import { MAX_QUEUE_LIMIT } from '../config/load.js';
import type { Telemetry } from '../telemetry/events.js';
import { Producer, type ProducerDeps } from './producer.js';
import { ThreadPool, type ThreadDeath } from './threads.js';

export interface SupervisorOptions {
  queue: string;
  node: string;
  config: QueueConfig;
  workersDir: string;
  cancelGracePeriod: number;
  restartBudget: { restarts: number; seconds: number; backoff: number };
  telemetry: Telemetry;
  producer: Omit<ProducerDeps, 'queue'>;
}

export class QueueSupervisor {
  readonly producer: Producer;
  private threads: ThreadPool | null = null;
  private crashTimes: number[] = [];
  private restartTimer: NodeJS.Timeout | null = null;
  private restarts = 0;
  crashed = false;

  constructor(private readonly options: SupervisorOptions) {
    this.producer = new Producer(
      { ...options.producer, queue: options.queue },
      {
        limit: options.config.limit,
        paused: options.config.paused,
        pollInterval: options.config.pollInterval,
        prefetch: options.config.prefetch,
      },
    );
  }

  get queue(): string {
    return this.options.queue;
  }

  get threadCount(): number {
    return this.options.config.threads;
  }

  start(): void {
    this.threads = this.createPool();
    this.producer.attach(this.threads);
    this.producer.start();
  }

  private createPool(): ThreadPool {
    const { config } = this.options;
    const pool: ThreadPool = new ThreadPool({
      queue: this.options.queue,
      workersDir: this.options.workersDir,
      threads: config.threads,
      concurrency: this.concurrency(),
      memoryLimitMb: config.memoryLimitMb,
      cancelGracePeriod: this.options.cancelGracePeriod,
      // The most the producer hands out: its limit (scalable up to the maximum) and look-ahead.
      capacity: MAX_QUEUE_LIMIT + config.prefetch,
      // A death reported by a pool we already replaced is not this pool's.
      onThreadDeath: (death) => {
        if (this.threads === pool) this.onThreadDeath(death);
      },
    });
    return pool;
  }

  private onThreadDeath(death: ThreadDeath): void {
    const { telemetry, queue, node, restartBudget } = this.options;
    telemetry.emit('pool:crash', {
      queue,
      node,
      error: death.error,
      jobs: death.jobs,
      culprit: death.culprit,
    });
    // On the monotonic clock: with Date.now(), a wall clock set back kept earlier deaths "recent"
    // for as long as it went back, and deaths far apart marked the queue crashed.
    const now = performance.now();
    this.crashTimes = this.crashTimes.filter((t) => now - t < restartBudget.seconds * 1000);
    this.crashTimes.push(now);
    this.restarts++;
    if (this.crashTimes.length <= restartBudget.restarts) {
      // piscina has already replaced the dead thread: the pool restarted that thread.
      telemetry.emit('pool:restart', { queue, node, restarts: this.restarts });
      return;
    }
    if (this.crashed) return;
    this.crashed = true;
    this.crashTimes = [];
    telemetry.emit('queue:crashed', {
      queue,
      node,
      restarts: this.restarts,
      retryInMs: restartBudget.backoff,
    });
    const old = this.threads;
    this.threads = null;
    this.producer.attach(null);
    // Jobs still running on the old pool end as interrupted and go back without losing an attempt.
    void old?.destroy();
    this.restartTimer = setTimeout(() => {
      this.restartTimer = null;
      this.crashed = false;
      this.threads = this.createPool();
      telemetry.emit('pool:restart', { queue, node, restarts: this.restarts });
      this.producer.attach(this.threads);
    }, restartBudget.backoff);
    this.restartTimer.unref();
  }

  pause(): void {
    this.producer.paused = true;
  }

  resume(): void {
    this.producer.paused = false;
    this.producer.wake();
  }

  /**
   * Jobs one thread runs at once: the configured concurrency, or, when none was configured, the
   * current limit shared out over the threads (a scaled-up queue ran only its starting limit's
   * worth at once, while it claimed the new limit's worth and held the rest as executing).
   */
  private concurrency(): number {
    const { config } = this.options;
    if (config.concurrencyFixed ?? true) return config.concurrency;
    return Math.ceil(this.producer.limit / config.threads);
  }

  scale(limit: number): void {
    const lower = limit < this.producer.limit;
    this.producer.limit = limit;
    this.threads?.setConcurrency(this.concurrency());
    // Jobs handed out ahead under the old limit would still start as slots free: give them back.
    if (lower) this.producer.releaseWaiting();
    this.producer.wake();
  }

  /** The node lost its heartbeats: no fetching, every running job stopped; returns how many. */
  fence(message: string, graceMs: number): number {
    this.producer.fenced = true;
    return this.producer.stopRunning(message, graceMs);
  }

  /** Heartbeats are written again: fetch again, unless the queue is paused. */
  lift(): void {
    this.producer.fenced = false;
  }

  stopFetching(): void {
    this.producer.stop();
  }

  async stop(): Promise<void> {
    this.producer.stop();
    if (this.restartTimer) clearTimeout(this.restartTimer);
    const threads = this.threads;
    this.threads = null;
    await threads?.destroy();
  }
}
