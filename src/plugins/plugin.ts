// The common shape of leader-only plugins: a periodic `run` started when this node becomes the
// leader and stopped when it stops leading. Each run is reported as plugin:start / plugin:stop
// (with its counts) or plugin:exception; a failing run never stops the plugin.

import type pg from 'pg';
import type { Telemetry } from '../telemetry/events.js';

export interface PluginContext {
  pool: pg.Pool;
  node: string;
  telemetry: Telemetry;
  call: <T>(fn: () => Promise<T>) => Promise<T>;
  /** True while this node holds leadership; checked before each run. */
  isLeader: () => boolean;
}

export type PluginCounts = Partial<
  Record<'staged' | 'pruned' | 'rescued' | 'discarded' | 'inserted', number>
>;

export abstract class PeriodicPlugin {
  abstract readonly name: string;
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private active = false;

  constructor(
    protected readonly context: PluginContext,
    private readonly interval: number,
  ) {}

  protected abstract run(): Promise<PluginCounts>;

  /** How long to wait before the next run (a plugin may align its runs, as cron does). */
  protected nextDelay(): number {
    return this.interval;
  }

  start(): void {
    if (this.active) return;
    this.active = true;
    this.trigger();
  }

  /** Runs now (if not already running), then every interval. */
  trigger(): void {
    if (!this.active) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (this.running) return;
    this.running = this.runOnce().finally(() => {
      this.running = null;
      if (this.active) {
        this.timer = setTimeout(() => this.trigger(), this.nextDelay());
        this.timer.unref();
      }
    });
  }

  private async runOnce(): Promise<void> {
    if (!this.context.isLeader()) return;
    const { telemetry, node } = this.context;
    const started = Date.now();
    telemetry.emit('plugin:start', { plugin: this.name, node });
    try {
      const counts = await this.run();
      telemetry.emit('plugin:stop', {
        plugin: this.name,
        node,
        durationMs: Date.now() - started,
        ...counts,
      });
    } catch (error) {
      telemetry.emit('plugin:exception', {
        plugin: this.name,
        node,
        error: (error as Error).message,
      });
    }
  }

  async stop(): Promise<void> {
    this.active = false;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.running;
  }
}
