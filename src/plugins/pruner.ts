// Leader-only: deletes completed, cancelled and discarded jobs that finished more than `maxAge`
// seconds ago, `limit` rows per statement, each statement its own short transaction, so a
// backlog of millions is worked off without long locks. Also forgets cron slots older than a day.

import type { CronQueries } from '../db/queries/cron.js';
import type { MaintenanceQueries } from '../db/queries/maintenance.js';
import { PeriodicPlugin, type PluginContext, type PluginCounts } from './plugin.js';

/** Cron slots are kept this long (far beyond the cron plugin's one-minute look-back). */
const SLOT_RETENTION_SECONDS = 24 * 3600;

export interface PrunerOptions {
  maxAge: number;
  limit: number;
  interval: number;
  /** Most batches per run, so one run never monopolises the leader; the next run goes on. */
  maxBatches?: number;
}

export class Pruner extends PeriodicPlugin {
  readonly name = 'pruner';

  constructor(
    context: PluginContext,
    private readonly queries: MaintenanceQueries,
    private readonly slots: CronQueries,
    private readonly options: PrunerOptions,
  ) {
    super(context, options.interval);
  }

  protected async run(): Promise<PluginCounts> {
    const { pool } = this.context;
    const { maxAge, limit } = this.options;
    let pruned = 0;
    for (let batch = 0; batch < (this.options.maxBatches ?? 100); batch++) {
      // Leadership can go between batches: stop at once when it does.
      if (!this.context.isLeader()) break;
      const count = await this.context.call(() => this.queries.prune(pool, maxAge, limit));
      pruned += count;
      if (count < limit) break;
    }
    if (this.context.isLeader())
      await this.context.call(() => this.slots.prune(pool, SLOT_RETENTION_SECONDS, limit));
    return { pruned };
  }
}
