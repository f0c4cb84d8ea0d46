// Statements of the cluster's upkeep on the jobs table: pruning finished history, rescuing jobs
// left executing by nodes that died, and checking that jobs a node runs are still its own. All
// work in bounded batches and use the database's clock only, so node clocks never matter.

import type pg from 'pg';
import { NO_TIME_LIMIT } from '../connect.js';
import { channelNames, quoteIdentifier } from '../identifiers.js';
import { notifyQueues } from './encode.js';
import type { Queryable } from './jobs.js';
import { aliveSince } from './nodes.js';

export interface RescueCounts {
  rescued: number;
  discarded: number;
}

export class MaintenanceQueries {
  private readonly t: string;
  private readonly nodes: string;
  private readonly state: string;
  private readonly channel: string;

  constructor(readonly schema: string) {
    const s = quoteIdentifier(schema);
    this.t = `${s}.jobs`;
    this.nodes = `${s}.nodes`;
    this.state = `${s}.job_state`;
    this.channel = channelNames(schema).insert;
  }

  /**
   * Deletes up to `limit` completed, cancelled and discarded jobs that finished more than
   * `maxAge` seconds ago. One branch per state, so each reads its own finish-time index. Other
   * states are never touched: the DELETE re-checks the state of a row changed meanwhile.
   */
  async prune(db: Queryable, maxAge: number, limit: number): Promise<number> {
    // Not given up after the node pool's QUERY_TIMEOUT_MS (db/connect.ts): a `limit` of up to a
    // million rows of large results may take longer, and a delete given up each time would never
    // make progress. A hung prune holds up only the pruner.
    const query: pg.QueryConfig = {
      text: `${NO_TIME_LIMIT}
       WITH cutoff AS (SELECT now() - make_interval(secs => $1) AS at),
       doomed AS (
         (SELECT id FROM ${this.t}, cutoff WHERE state = 'completed' AND completed_at < cutoff.at LIMIT $2)
         UNION ALL
         (SELECT id FROM ${this.t}, cutoff WHERE state = 'discarded' AND discarded_at < cutoff.at LIMIT $2)
         UNION ALL
         (SELECT id FROM ${this.t}, cutoff WHERE state = 'cancelled' AND cancelled_at < cutoff.at LIMIT $2)
         LIMIT $2
       )
       DELETE FROM ${this.t} j USING doomed
       WHERE j.id = doomed.id AND j.state IN ('completed', 'discarded', 'cancelled')`,
      values: [maxAge, limit],
    };
    const { rowCount } = await db.query(query);
    return rowCount ?? 0;
  }

  /**
   * Rescues up to `limit` jobs left executing by a node whose heartbeat is older than
   * `timeoutMs` and than its own heartbeatTimeout (see aliveSince), or that has no heartbeat
   * row: back to available, or discarded when no attempt is left, with an error entry saying
   * why. A job of a node that heartbeats is never touched. The job itself must also be older
   * than the timeout (a safety margin for a node between its first fetch and its first
   * heartbeat), and so must the server's uptime: after a database restart every heartbeat is
   * old, and live nodes need a heartbeat interval to be heard again. Queues that got jobs back
   * are woken on every node.
   * `own`: the leader's own node and run, whose jobs are never its lifeline's to rescue: they run
   * in this very process. A leader that was paused (SIGSTOP, a frozen VM) finds its own heartbeat
   * stale when it resumes; rescuing its jobs then let it fetch and run one again while the old run
   * was still going (its fence stops that one, and gives it back when it has ended).
   */
  async rescueOrphans(
    db: Queryable,
    timeoutMs: number,
    limit: number,
    own: { node: string; runId: string } | null = null,
  ): Promise<RescueCounts> {
    return this.rescue(
      db,
      `j.attempted_at < now() - make_interval(secs => $1 / 1000.0)
       AND pg_postmaster_start_time() < now() - make_interval(secs => $1 / 1000.0)
       AND NOT (j.attempted_by[1] IS NOT DISTINCT FROM $3::text
                AND starts_with(j.attempted_by[2], $4::text || '.'))
       AND NOT EXISTS (
         SELECT 1 FROM ${this.nodes} n WHERE n.name = j.attempted_by[1] AND ${aliveSince('n', '$1')})`,
      `'rescued: node ' || j.attempted_by[1] || ' stopped sending heartbeats while the job was executing'`,
      [timeoutMs, limit, own?.node ?? null, own?.runId ?? ''],
    );
  }

  /**
   * Rescues the jobs an earlier process of this node left executing (it was killed): this
   * process, of the same name, has a new run id, so they cannot be its own.
   */
  async rescuePreviousRuns(db: Queryable, node: string, runId: string): Promise<RescueCounts> {
    return this.rescue(
      db,
      `j.attempted_by[1] = $1 AND NOT starts_with(j.attempted_by[2], $3 || '.')`,
      `'rescued: node ' || j.attempted_by[1] || ' restarted while the job was executing'`,
      [node, 100000, runId],
    );
  }

  /*
   * The orphans are taken in no particular order: with `ORDER BY id` the planner could walk the
   * primary key of the whole table, history included, filtering for executing rows whenever
   * the statistics had been taken at a busy moment (measured: 35 ms on 140,000 rows with none to
   * rescue, growing with the history; through jobs_executing, 0.1 ms). The update reaches the
   * rows it locked by ctid, as the claim does (JobQueries.fetchSql): joined on id, the same
   * statistics made it hash-join a sequential scan of the whole table.
   */
  private async rescue(
    db: Queryable,
    condition: string,
    message: string,
    values: unknown[],
  ): Promise<RescueCounts> {
    const { rows } = await db.query<{ state: string; count: number }>(
      `WITH orphans AS (
         SELECT j.ctid FROM ${this.t} j
         WHERE j.state = 'executing' AND ${condition}
         LIMIT $2 FOR UPDATE SKIP LOCKED
       ),
       moved AS (
         UPDATE ${this.t} j SET
           state = CASE WHEN j.attempt >= j.max_attempts THEN 'discarded'::${this.state} ELSE 'available'::${this.state} END,
           discarded_at = CASE WHEN j.attempt >= j.max_attempts THEN now() ELSE j.discarded_at END,
           errors = j.errors || jsonb_build_array(jsonb_build_object(
             'at', now(), 'attempt', j.attempt,
             'error', ${message} || CASE WHEN j.attempt >= j.max_attempts THEN '; no attempts left' ELSE '' END))
         WHERE j.ctid = ANY (ARRAY(SELECT ctid FROM orphans)) AND j.state::text = 'executing'
         RETURNING j.queue, j.state
       ),
       counted AS (SELECT state::text AS state, count(*)::int AS count FROM moved GROUP BY state),
       notified AS (${notifyQueues(`'${this.channel}'`, `SELECT queue FROM moved WHERE state = 'available'`)})
       SELECT state, count, (SELECT count(*) FROM notified) AS notified FROM counted`,
      values,
    );
    return {
      rescued: rows.find((r) => r.state === 'available')?.count ?? 0,
      discarded: rows.find((r) => r.state === 'discarded')?.count ?? 0,
    };
  }

  /** Of the attempts given (job id and token), those whose row is no longer executing under that token. */
  async notMine(
    db: Queryable,
    attempts: { id: number; token: string }[],
  ): Promise<{ id: number; token: string }[]> {
    if (attempts.length === 0) return [];
    const { rows } = await db.query<{ id: number; token: string }>(
      `SELECT a.id, a.token FROM jsonb_to_recordset($1::jsonb) AS a(id bigint, token text)
       LEFT JOIN ${this.t} j ON j.id = a.id
       WHERE j.id IS NULL OR j.state <> 'executing' OR j.attempted_by[2] IS DISTINCT FROM a.token`,
      [JSON.stringify(attempts)],
    );
    return rows;
  }

  /**
   * Puts back, attempt refunded, the jobs claimed by fetches whose answer was lost (see
   * queue/lost-fetches.ts): attempt tokens are `<fetch token>.<job id>`. Wakes their queues.
   */
  async releaseLostFetches(db: Queryable, tokens: string[]): Promise<number> {
    if (tokens.length === 0) return 0;
    const { rows } = await db.query<{ count: number }>(
      `WITH moved AS (
         UPDATE ${this.t} j SET state = 'available', attempt = j.attempt - 1
         WHERE j.state = 'executing'
           AND EXISTS (SELECT 1 FROM unnest($1::text[]) t WHERE starts_with(j.attempted_by[2], t || '.'))
         RETURNING j.queue
       ),
       notified AS (${notifyQueues('$2', 'SELECT queue FROM moved')})
       SELECT count(*)::int AS count, (SELECT count(*) FROM notified) AS notified FROM moved`,
      [tokens, this.channel],
    );
    return rows[0]?.count ?? 0;
  }

  /** Forgets nodes silent for longer than `seconds` (their jobs were rescued long before). */
  async forgetDeadNodes(db: Queryable, seconds: number): Promise<number> {
    const { rowCount } = await db.query(
      `DELETE FROM ${this.nodes} WHERE updated_at < now() - make_interval(secs => $1)`,
      [seconds],
    );
    return rowCount ?? 0;
  }
}
