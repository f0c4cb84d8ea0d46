// Statements on the nodes (heartbeats) and queue_settings tables.

import { quoteIdentifier } from '../identifiers.js';
import type { Queryable } from './jobs.js';

export interface QueueHeartbeat {
  limit: number;
  threads: number;
  running: number;
  paused: boolean;
}

export interface NodeRow {
  name: string;
  queues: Record<string, QueueHeartbeat>;
  leader: boolean;
  startedAt: Date;
  updatedAt: Date;
}

export interface QueueSetting {
  node: string;
  queue: string;
  paused: boolean | null;
  limit: number | null;
  running: boolean | null;
}

export class NodeQueries {
  private readonly nodes: string;
  private readonly settings: string;

  constructor(readonly schema: string) {
    this.nodes = `${quoteIdentifier(schema)}.nodes`;
    this.settings = `${quoteIdentifier(schema)}.queue_settings`;
  }

  /**
   * `timeoutMs`: the node's heartbeatTimeout. Others judge it by the longer of that and their
   * own (see `aliveSince`), so a node that heartbeats less often is not taken for dead between
   * two of its heartbeats; null leaves the row's value as it is (a test writing a bare row).
   * `stopWithinMs`: the longest a run of this node goes on after its job is cancelled (see
   * stopWithin in node/control.ts); a cancel writes when the run will have ended by, and a retry
   * waits for it (JobQueries.cancel, retry).
   * `takeOver`: a row of this name written by another process (another `started_at`) is
   * overwritten, as when a node joins; false (a running node's heartbeat) leaves such a row
   * alone and returns false: another process took the name while this one was silent (see
   * QuernNode.heartbeat).
   */
  async heartbeat(
    db: Queryable,
    name: string,
    queues: Record<string, QueueHeartbeat>,
    leader: boolean,
    startedAt: Date,
    timeoutMs: number | null = null,
    stopWithinMs: number | null = null,
    takeOver = true,
  ): Promise<boolean> {
    const result = await db.query({
      name: `quern_${this.schema}_heartbeat${takeOver ? '' : '_own'}`,
      text: `INSERT INTO ${this.nodes} (name, queues, leader, started_at, updated_at, heartbeat_timeout_ms, stop_within_ms)
             VALUES ($1, $2::jsonb, $3, $4, now(), $5, $6)
             ON CONFLICT (name) DO UPDATE SET queues = EXCLUDED.queues, leader = EXCLUDED.leader,
               started_at = EXCLUDED.started_at, updated_at = now(),
               heartbeat_timeout_ms = COALESCE(EXCLUDED.heartbeat_timeout_ms, ${this.nodes}.heartbeat_timeout_ms),
               stop_within_ms = COALESCE(EXCLUDED.stop_within_ms, ${this.nodes}.stop_within_ms)
             ${takeOver ? '' : `WHERE ${this.nodes}.started_at = EXCLUDED.started_at`}`,
      values: [name, JSON.stringify(queues), leader, startedAt, timeoutMs, stopWithinMs],
      // Unanswered past heartbeatTimeout, it is given up (and its connection closed) so that the
      // next heartbeat goes out on another: on a connection that hangs for good it never ended,
      // and no heartbeat was sent again (see QUERY_TIMEOUT_MS in db/connect.ts).
      ...(timeoutMs === null ? {} : { query_timeout: timeoutMs }),
    });
    return (result.rowCount ?? 0) > 0;
  }

  /**
   * Serialises nodes joining the cluster until the end of the caller's transaction, so two
   * nodes starting at once cannot both find the cluster empty.
   */
  async lockMembership(db: Queryable): Promise<void> {
    await db.query('SELECT pg_advisory_xact_lock(hashtext($1))', [
      `quern:membership:${this.schema}`,
    ]);
  }

  /**
   * How many nodes other than `name` are alive: heartbeating within `timeoutMs` or their own
   * timeout, whichever is longer (by the database's clock).
   */
  async countLiveOthers(db: Queryable, name: string, timeoutMs: number): Promise<number> {
    const { rows } = await db.query<{ count: number }>(
      `SELECT count(*)::int AS count FROM ${this.nodes} n
       WHERE n.name <> $1 AND ${aliveSince('n', '$2')}`,
      [name, timeoutMs],
    );
    return rows[0]?.count ?? 0;
  }

  /** Removes the row of the process that started at `startedAt`, not a successor's. */
  async remove(db: Queryable, name: string, startedAt: Date): Promise<void> {
    await db.query(`DELETE FROM ${this.nodes} WHERE name = $1 AND started_at = $2`, [
      name,
      startedAt,
    ]);
  }

  /** `heartbeatTimeout`: the node's own, null for a node of a version that did not write it. */
  async list(
    db: Queryable,
  ): Promise<(NodeRow & { ageMs: number; heartbeatTimeout: number | null })[]> {
    const { rows } = await db.query<{
      name: string;
      queues: Record<string, QueueHeartbeat>;
      leader: boolean;
      started_at: Date;
      updated_at: Date;
      heartbeat_timeout_ms: number | null;
      age_ms: number;
    }>(
      `SELECT name, queues, leader, started_at, updated_at, heartbeat_timeout_ms,
              (extract(epoch FROM now() - updated_at) * 1000)::float8 AS age_ms
       FROM ${this.nodes} ORDER BY name`,
    );
    return rows.map((r) => ({
      name: r.name,
      queues: r.queues,
      leader: r.leader,
      startedAt: r.started_at,
      updatedAt: r.updated_at,
      ageMs: r.age_ms,
      heartbeatTimeout: r.heartbeat_timeout_ms,
    }));
  }

  /** Records a runtime queue change for one node (or '*', all), so it survives restarts. */
  async saveSetting(db: Queryable, setting: QueueSetting): Promise<void> {
    await db.query(
      `INSERT INTO ${this.settings} (node, queue, paused, lim, running, updated_at)
       VALUES ($1, $2, $3, $4, $5, now())
       ON CONFLICT (node, queue) DO UPDATE SET
         paused = COALESCE(EXCLUDED.paused, ${this.settings}.paused),
         lim = COALESCE(EXCLUDED.lim, ${this.settings}.lim),
         running = COALESCE(EXCLUDED.running, ${this.settings}.running),
         updated_at = now()`,
      [setting.node, setting.queue, setting.paused, setting.limit, setting.running],
    );
    if (setting.node === '*') {
      // A cluster-wide change overrides what was set per node before it.
      const columns = [
        setting.paused !== null ? 'paused = NULL' : null,
        setting.limit !== null ? 'lim = NULL' : null,
        setting.running !== null ? 'running = NULL' : null,
      ].filter(Boolean);
      if (columns.length > 0) {
        await db.query(
          `UPDATE ${this.settings} SET ${columns.join(', ')} WHERE queue = $1 AND node <> '*'`,
          [setting.queue],
        );
      }
    }
  }

  /** Settings that apply to `node`: its own override the cluster-wide ones. */
  async settingsFor(db: Queryable, node: string): Promise<QueueSetting[]> {
    const { rows } = await db.query<{
      node: string;
      queue: string;
      paused: boolean | null;
      lim: number | null;
      running: boolean | null;
    }>(
      `SELECT node, queue, paused, lim, running FROM ${this.settings} WHERE node IN ('*', $1) ORDER BY (node = '*') DESC`,
      [node],
    );
    const merged = new Map<string, QueueSetting>();
    for (const r of rows) {
      const previous = merged.get(r.queue);
      merged.set(r.queue, {
        node,
        queue: r.queue,
        paused: r.paused ?? previous?.paused ?? null,
        limit: r.lim ?? previous?.limit ?? null,
        running: r.running ?? previous?.running ?? null,
      });
    }
    return [...merged.values()];
  }
}

/**
 * SQL: the node row `alias` heartbeated within `timeoutMs` (an SQL expression in ms) or within
 * its own heartbeatTimeout, whichever is longer. A node fences itself (stops its jobs) before its
 * own timeout runs out (src/node/fence.ts), so judged by the longer one it has always stopped
 * before anyone takes its jobs, whatever the two configurations say.
 */
export function aliveSince(alias: string, timeoutMs: string): string {
  return `${alias}.updated_at >= now() - make_interval(secs => GREATEST(${timeoutMs}, COALESCE(${alias}.heartbeat_timeout_ms, 0)) / 1000.0)`;
}

/**
 * Whether a row of `NodeQueries.list` is alive as the lifeline judges it (aliveSince): a
 * heartbeat within `heartbeatTimeout` or the node's own, whichever is longer.
 */
export function isAlive(
  node: { ageMs: number; heartbeatTimeout: number | null },
  heartbeatTimeout: number,
): boolean {
  return node.ageMs < Math.max(heartbeatTimeout, node.heartbeatTimeout ?? 0);
}
