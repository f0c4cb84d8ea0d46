// Leader-only: each second, scheduled and retryable jobs whose time has come become available,
// and one notification wakes their queues on every node.

import type { JobQueries } from '../db/queries/jobs.js';
import { PeriodicPlugin, type PluginContext, type PluginCounts } from './plugin.js';

export class Stager extends PeriodicPlugin {
  readonly name = 'stager';

  constructor(
    context: PluginContext,
    private readonly queries: JobQueries,
    interval: number,
  ) {
    super(context, interval);
  }

  protected async run(): Promise<PluginCounts> {
    let staged = 0;
    // Bounded batches; keep going while a batch comes back full.
    for (;;) {
      const { count } = await this.context.call(() => this.queries.stage(this.context.pool, 5000));
      staged += count;
      if (count < 5000) break;
    }
    return { staged };
  }
}
