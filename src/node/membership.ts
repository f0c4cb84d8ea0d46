// A node joining the cluster: its first heartbeat, written under a transaction-level advisory
// lock so that nodes starting together see each other. A node that finds no other live node
// starts the cluster, marked in cron_slots for @reboot entries. Jobs an earlier process of the
// same node name left executing (it was killed) are rescued here, before this one fetches.

import type pg from 'pg';
import { CronQueries } from '../db/queries/cron.js';
import { MaintenanceQueries, type RescueCounts } from '../db/queries/maintenance.js';
import type { NodeQueries, QueueHeartbeat } from '../db/queries/nodes.js';
import { withTransaction } from '../db/transaction.js';

export interface JoinOptions {
  pool: pg.Pool;
  schema: string;
  nodes: NodeQueries;
  name: string;
  runId: string;
  startedAt: Date;
  heartbeatTimeout: number;
  queues: Record<string, QueueHeartbeat>;
}

export interface Joined {
  /** True when this node found the cluster stopped and started it. */
  startedCluster: boolean;
  rescued: RescueCounts;
}

export function joinCluster(options: JoinOptions): Promise<Joined> {
  const { pool, nodes, name } = options;
  return withTransaction(pool, async (client) => {
    await nodes.lockMembership(client);
    const others = await nodes.countLiveOthers(client, name, options.heartbeatTimeout);
    if (others === 0) await new CronQueries(options.schema).markClusterStart(client);
    await nodes.heartbeat(client, name, options.queues, false, options.startedAt);
    const rescued = await new MaintenanceQueries(options.schema).rescuePreviousRuns(
      client,
      name,
      options.runId,
    );
    return { startedCluster: others === 0, rescued };
  });
}
