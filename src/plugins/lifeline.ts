// Leader-only: rescues jobs left executing by a node whose heartbeat expired (or whose row is
// gone): back to available, or discarded when no attempt is left, with an error entry saying
// so. A job on a node that heartbeats is never touched, however long it runs. If the old runner
// comes back, its outcome is refused: outcome writes check the attempt token.

import type { MaintenanceQueries } from '../db/queries/maintenance.js';
import { PeriodicPlugin, type PluginContext, type PluginCounts } from './plugin.js';

export interface LifelineOptions {
  interval: number;
  /** ms of silence after which a node is dead (the leader's heartbeatTimeout). */
  heartbeatTimeout: number;
  limit?: number;
  /** This node's run (QuernNode.runId): its own jobs are never rescued (see rescueOrphans). */
  runId?: string;
}

export class Lifeline extends PeriodicPlugin {
  readonly name = 'lifeline';

  constructor(
    context: PluginContext,
    private readonly queries: MaintenanceQueries,
    private readonly options: LifelineOptions,
  ) {
    super(context, options.interval);
  }

  protected async run(): Promise<PluginCounts> {
    const { pool } = this.context;
    const limit = this.options.limit ?? 1000;
    let rescued = 0;
    let discarded = 0;
    for (;;) {
      if (!this.context.isLeader()) break;
      const counts = await this.context.call(() =>
        this.queries.rescueOrphans(
          pool,
          this.options.heartbeatTimeout,
          limit,
          this.options.runId === undefined
            ? null
            : { node: this.context.node, runId: this.options.runId },
        ),
      );
      rescued += counts.rescued;
      discarded += counts.discarded;
      if (counts.rescued + counts.discarded < limit) break;
    }
    // Rows of nodes long dead only clutter `status`; their jobs were rescued long ago.
    const forgetAfter = Math.max(3600, (this.options.heartbeatTimeout / 1000) * 100);
    if (this.context.isLeader())
      await this.context.call(() => this.queries.forgetDeadNodes(pool, forgetAfter));
    return { rescued, discarded };
  }
}
