// A node joining the cluster: its first heartbeat, written under a transaction-level advisory
// lock so that nodes starting together see each other. A node that finds no other live node
// starts the cluster, marked in cron_slots for @reboot entries. Jobs an earlier process of the
// same node name left executing (it was killed) are rescued here, before this one fetches.

import type pg from 'pg';
import { CronQueries } from '../db/queries/cron.js';
import { MaintenanceQueries, type RescueCounts } from '../db/queries/maintenance.js';
import { isAlive, type NodeQueries, type QueueHeartbeat } from '../db/queries/nodes.js';
import { withTransaction } from '../db/transaction.js';
import { ConfigError } from '../config/validate.js';

export interface JoinOptions {
  pool: pg.Pool;
  schema: string;
  nodes: NodeQueries;
  name: string;
  runId: string;
  startedAt: Date;
  heartbeatTimeout: number;
  /** See stopWithin in control.ts. */
  stopWithin: number;
  queues: Record<string, QueueHeartbeat>;
  /**
   * When the heartbeat of this name that waitForNameToBeFree last saw was written (null: it saw
   * none). Another process of this name that joined since is refused (see joinCluster).
   */
  seen: Date | null;
}

export interface Joined {
  /** True when this node found the cluster stopped and started it. */
  startedCluster: boolean;
  rescued: RescueCounts;
}

/**
 * Two live processes with one node name would rescue each other's running jobs. A row of this
 * name whose heartbeat is fresh is either a process that just died (its heartbeat goes stale
 * within heartbeatTimeout) or a live duplicate (its heartbeat keeps moving): wait to see which.
 * The row is judged by its own heartbeatTimeout when that is longer than this process's: a live
 * node configured to heartbeat less often than this one would check is not dead for it.
 * Returns when the heartbeat it last saw was written (null: there was none), for joinCluster.
 */
export async function waitForNameToBeFree(
  options: Pick<JoinOptions, 'pool' | 'nodes' | 'name' | 'heartbeatTimeout'> & {
    heartbeatInterval: number;
    onWait: (ageMs: number) => void;
    /** Ends the wait at once (the node was told to stop while starting); throws its reason. */
    signal?: AbortSignal;
  },
): Promise<Date | null> {
  const { signal } = options;
  const { pool, nodes, name, heartbeatTimeout } = options;
  const row = async () => (await nodes.list(pool)).find((n) => n.name === name);
  const first = await row();
  if (!first) return null;
  if (!isAlive(first, heartbeatTimeout)) return first.updatedAt;
  options.onWait(first.ageMs);
  // On the monotonic clock: a wall clock stepped forward while waiting ended the wait at the
  // next look, before a live process of this name had heartbeated, and its name was taken.
  const timeout = Math.max(heartbeatTimeout, first.heartbeatTimeout ?? 0);
  const deadline = performance.now() + timeout - first.ageMs + options.heartbeatInterval;
  for (;;) {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, Math.min(250, options.heartbeatInterval));
      function done(): void {
        clearTimeout(timer);
        signal?.removeEventListener('abort', done);
        resolve();
      }
      signal?.addEventListener('abort', done);
    });
    signal?.throwIfAborted();
    const now = await row();
    if (!now) return null;
    if (!isAlive(now, heartbeatTimeout)) return now.updatedAt;
    if (now.updatedAt.getTime() !== first.updatedAt.getTime()) {
      throw new ConfigError(
        `node: a live node named "${name}" is already running (its heartbeat moved ${Math.round(now.ageMs)} ms ago); give each node its own name (config "node" or NODE_NAME)`,
      );
    }
    if (performance.now() > deadline) return now.updatedAt;
  }
}

export function joinCluster(options: JoinOptions): Promise<Joined> {
  const { pool, nodes, name } = options;
  return withTransaction(pool, async (client) => {
    await nodes.lockMembership(client);
    // Two processes of one name started together both found the name free: the first to join
    // wrote its heartbeat since, and the second must not run beside it (neither's jobs would be
    // rescued while the other heartbeats under the name, and a restart would rescue the other's).
    const row = (await nodes.list(client)).find((n) => n.name === name);
    if (
      row &&
      isAlive(row, options.heartbeatTimeout) &&
      row.updatedAt.getTime() !== options.seen?.getTime()
    )
      throw new ConfigError(
        `node: a live node named "${name}" is already running (it started at the same time as this one); give each node its own name (config "node" or NODE_NAME)`,
      );
    const others = await nodes.countLiveOthers(client, name, options.heartbeatTimeout);
    if (others === 0) await new CronQueries(options.schema).markClusterStart(client);
    await nodes.heartbeat(
      client,
      name,
      options.queues,
      false,
      options.startedAt,
      options.heartbeatTimeout,
      options.stopWithin,
    );
    const rescued = await new MaintenanceQueries(options.schema).rescuePreviousRuns(
      client,
      name,
      options.runId,
    );
    return { startedCluster: others === 0, rescued };
  });
}
