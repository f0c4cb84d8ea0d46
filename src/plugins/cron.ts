// Leader-only: inserts the crontab's jobs. Each due (entry, slot) is claimed in cron_slots in
// the same transaction as its job, so the database, not leadership, guarantees one job per
// entry per slot: two leaders at once, a restart or a leader with a wrong clock (slots are
// computed from the database's clock) cannot insert a second one.
//
// Lateness policy: a slot is inserted up to LATE_WINDOW_MS after its time (enough to cover a
// leader change), if the cluster was running then; older slots, and slots that passed while
// the whole cluster was stopped, are skipped: no burst of catch-up jobs after downtime.
// @reboot entries fire once per cluster start (see db/queries/cron.ts).

import { createHash } from 'node:crypto';
import type { CronEntryConfig, PluginsConfig } from '../config/types.js';
import { ConfigError } from '../config/validate.js';
import { CronQueries } from '../db/queries/cron.js';
import type { InsertRow, JobQueries } from '../db/queries/jobs.js';
import { withTransaction } from '../db/transaction.js';
import { InsertError, normalizeInsert } from '../jobs/insert.js';
import type { PluginFactory } from '../node/node.js';
import type { RegisteredWorker } from '../worker/registry.js';
import { cronEntryIdentity, parseCronExpression, type CronSchedule } from './cron-schedule.js';
import { PeriodicPlugin, type PluginContext, type PluginCounts } from './plugin.js';

/** How late a slot may still be inserted. */
export const LATE_WINDOW_MS = 60_000;
/** How long after a cluster start its @reboot jobs may still be inserted (by a later leader). */
export const REBOOT_WINDOW_MS = 5 * 60_000;

export interface CronEntry {
  /** The entry's name in cron_slots: readable, and stable across crontab reorderings. */
  key: string;
  /** Where it is in the configuration, for messages. */
  where: string;
  schedule: CronSchedule;
  row: InsertRow;
}

export function cronEntryKey(entry: CronEntryConfig, defaultTimezone: string): string {
  const expression = entry.expression.trim().split(/\s+/).join(' ');
  const hash = createHash('sha256')
    .update(cronEntryIdentity(entry, defaultTimezone))
    .digest('hex')
    .slice(0, 12);
  return `${expression.startsWith('@') ? expression.toLowerCase() : expression} ${entry.worker} ${hash}`;
}

/**
 * Turns the validated crontab into entries, checking what only a node knows: that each names a
 * registered worker and that its job options pass the insert checks. Throws a ConfigError naming
 * the entry, which stops the node before it runs anything.
 */
export function buildCronEntries(
  config: PluginsConfig['cron'],
  workers: Map<string, RegisteredWorker>,
): CronEntry[] {
  return config.crontab.map((entry, index) => {
    const where = `plugins.cron.crontab[${index}] ("${entry.expression}", worker "${entry.worker}")`;
    const registered = workers.get(entry.worker);
    if (!registered) {
      const known = [...workers.keys()].sort();
      throw new ConfigError(
        `${where}: unknown worker "${entry.worker}"; known workers: ${known.length > 0 ? known.join(', ') : '(none)'}`,
      );
    }
    const timezone = entry.timezone ?? config.timezone;
    let row: InsertRow;
    try {
      row = normalizeInsert(
        {
          worker: entry.worker,
          args: entry.args,
          ...(entry.queue !== null ? { queue: entry.queue } : {}),
          ...(entry.priority !== null ? { priority: entry.priority } : {}),
          ...(entry.maxAttempts !== null ? { maxAttempts: entry.maxAttempts } : {}),
          ...(entry.tags !== null ? { tags: entry.tags } : {}),
        },
        (name) => workers.get(name)?.definition,
        where,
      ).row;
    } catch (error) {
      if (error instanceof InsertError) throw new ConfigError(error.message);
      throw error;
    }
    const schedule = parseCronExpression(entry.expression, timezone);
    row.meta = { cron: { expression: schedule.expression, timezone } };
    return { key: cronEntryKey(entry, config.timezone), where, schedule, row };
  });
}

export interface CronOptions {
  /** Longest wait between runs, ms (runs are also aligned to the start of each minute). */
  interval?: number;
  /** Where "now" comes from; the database's clock by default. Tests inject their own. */
  clock?: () => Promise<Date>;
}

export class CronPlugin extends PeriodicPlugin {
  readonly name = 'cron';
  private readonly maxDelay: number;
  private delay: number;
  private rebootDoneFor: number | null = null;

  constructor(
    context: PluginContext,
    readonly entries: CronEntry[],
    private readonly jobs: JobQueries,
    private readonly slots: CronQueries,
    private readonly options: CronOptions = {},
  ) {
    super(context, options.interval ?? 1000);
    this.maxDelay = options.interval ?? 1000;
    this.delay = this.maxDelay;
  }

  protected override nextDelay(): number {
    return this.delay;
  }

  protected async run(): Promise<PluginCounts> {
    const clock = await this.context.call(() => this.slots.clock(this.context.pool));
    const now = this.options.clock ? await this.options.clock() : clock.now;
    const inserted = await this.insertDue(now, clock.clusterStart, clock.now);
    // Wake just after the next minute starts by the database's clock, so jobs go in on time.
    const toNextMinute = 60_000 - (now.getTime() % 60_000);
    this.delay = Math.max(10, Math.min(this.maxDelay, toNextMinute + 20));
    return { inserted };
  }

  /**
   * Inserts every slot due at `now` and not yet inserted, leaving out slots before
   * `clusterStart`; @reboot entries are inserted for `clusterStart` if it is recent by the
   * database's clock (`databaseNow`). Returns how many jobs went in.
   */
  async insertDue(
    now: Date,
    clusterStart: Date | null = null,
    databaseNow: Date = now,
  ): Promise<number> {
    let inserted = 0;
    let failure: unknown = null;
    // next() is exclusive: start just before the window (and at the cluster's start at the latest).
    const after = Math.max(now.getTime() - LATE_WINDOW_MS, (clusterStart?.getTime() ?? 0) - 1);
    for (const entry of this.entries) {
      // Leadership can go mid-run; the slots would stop a second copy anyway.
      if (!this.context.isLeader()) break;
      if (entry.schedule.kind !== 'periodic') continue;
      let slot = entry.schedule.next(new Date(after));
      while (slot && slot.getTime() <= now.getTime()) {
        try {
          if (await this.insertSlot(entry, slot, slot)) inserted++;
        } catch (error) {
          // One entry failing must not hold back the others; the next run retries it.
          failure ??= error;
        }
        slot = entry.schedule.next(slot);
      }
    }
    try {
      if (clusterStart) inserted += await this.insertReboots(clusterStart, databaseNow);
    } catch (error) {
      failure ??= error;
    }
    if (failure instanceof Error) throw failure;
    if (failure !== null) throw new Error('cron insert failed');
    return inserted;
  }

  private async insertReboots(start: Date, databaseNow: Date): Promise<number> {
    const reboots = this.entries.filter((e) => e.schedule.kind === 'reboot');
    if (reboots.length === 0 || this.rebootDoneFor === start.getTime()) return 0;
    // A later leader still inserts them (its predecessor may have died first), but an entry
    // added long after the start, by a rolling restart, does not fire.
    if (databaseNow.getTime() - start.getTime() > REBOOT_WINDOW_MS) return 0;
    let inserted = 0;
    for (const entry of reboots) if (await this.insertSlot(entry, start, null)) inserted++;
    this.rebootDoneFor = start.getTime();
    return inserted;
  }

  /** The slot and its job, together or not at all; false when the slot was already taken. */
  private insertSlot(entry: CronEntry, slot: Date, scheduledAt: Date | null): Promise<boolean> {
    const { pool, node } = this.context;
    return this.context.call(() =>
      withTransaction(pool, async (client) => {
        if (!(await this.slots.claim(client, entry.key, slot))) return false;
        const meta = entry.row.meta.cron as Record<string, unknown>;
        const [job] = await this.jobs.insert(client, [
          {
            ...entry.row,
            meta: { ...entry.row.meta, cron: { ...meta, slot: slot.toISOString(), node } },
            scheduled_at: scheduledAt ? scheduledAt.toISOString() : null,
          },
        ]);
        await this.slots.setJob(client, entry.key, slot, job!.id);
        return true;
      }),
    );
  }
}

export const cronPlugins: PluginFactory = (context, node) => {
  const config = node.config.plugins.cron;
  if (!config.enabled || config.crontab.length === 0) return [];
  const entries = buildCronEntries(config, node.workers);
  return [new CronPlugin(context, entries, node.jobs, new CronQueries(node.config.schema))];
};
