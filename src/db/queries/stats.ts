// Read-only statements behind historic metrics (`quern.stats()`, `node cluster.js stats`) and the
// Prometheus queue-depth gauge. They read the retained job rows: nothing is kept elsewhere, so
// the figures are the same whichever node or client asks.

import { quoteIdentifier } from '../identifiers.js';
import type { JobState } from '../../jobs/types.js';
import type { Queryable } from './jobs.js';

export interface StateCountRow {
  queue: string;
  worker: string;
  state: JobState;
  count: number;
}

/** One group (a queue or a worker) of the recent-activity query. Times in milliseconds. */
export interface RecentRow {
  /** 'queue' or 'worker': which grouping set the row belongs to. */
  by: 'queue' | 'worker';
  name: string;
  completedLastMinute: number;
  completedLastHour: number;
  failedLastMinute: number;
  failedLastHour: number;
  queueTimeP50: number | null;
  queueTimeP95: number | null;
  runTimeP50: number | null;
  runTimeP95: number | null;
}

export class StatsQueries {
  private readonly t: string;

  constructor(readonly schema: string) {
    this.t = `${quoteIdentifier(schema)}.jobs`;
  }

  /** Counts by queue, worker and state over every retained row (one scan). */
  async stateCounts(db: Queryable): Promise<StateCountRow[]> {
    const { rows } = await db.query<StateCountRow>(
      `SELECT queue, worker, state, count(*)::int AS count FROM ${this.t}
       GROUP BY queue, worker, state ORDER BY queue, worker, state`,
    );
    return rows;
  }

  /**
   * Jobs of waiting states by queue and state, cheap enough for every Prometheus scrape: each
   * branch matches the predicate of a partial index (jobs_fetch, jobs_staging, jobs_executing),
   * so the finished history is never read.
   */
  async depth(db: Queryable): Promise<{ queue: string; state: JobState; count: number }[]> {
    const { rows } = await db.query<{ queue: string; state: JobState; count: number }>(
      `SELECT queue, 'available' AS state, count(*)::int AS count FROM ${this.t}
       WHERE state = 'available' GROUP BY queue
       UNION ALL
       SELECT queue, state::text, count(*)::int FROM ${this.t}
       WHERE state IN ('scheduled', 'retryable') GROUP BY queue, state
       UNION ALL
       SELECT queue, 'executing', count(*)::int FROM ${this.t}
       WHERE state = 'executing' GROUP BY queue
       ORDER BY queue, state`,
    );
    return rows;
  }

  /**
   * Finished jobs (completed, discarded, cancelled) by queue and state: the retained history,
   * read whole (`status --watch` refreshes these less often than the waiting states, see
   * cli/watch.ts).
   */
  async finished(db: Queryable): Promise<{ queue: string; state: JobState; count: number }[]> {
    const { rows } = await db.query<{ queue: string; state: JobState; count: number }>(
      `SELECT queue, state::text AS state, count(*)::int AS count FROM ${this.t}
       WHERE state IN ('completed', 'discarded', 'cancelled') GROUP BY queue, state
       ORDER BY queue, state`,
    );
    return rows;
  }

  /** Counts by state of the given jobs (a CLI following the batch it inserted). */
  async statesOf(db: Queryable, ids: number[]): Promise<Partial<Record<JobState, number>>> {
    const { rows } = await db.query<{ state: JobState; count: number }>(
      `SELECT state, count(*)::int AS count FROM ${this.t} WHERE id = ANY($1::bigint[]) GROUP BY state`,
      [ids],
    );
    return Object.fromEntries(rows.map((r) => [r.state, r.count]));
  }

  /**
   * Attempts that ended within the last hour, grouped per queue and per worker in one pass:
   * completed jobs (by completed_at), and failed ones: discarded (by discarded_at) or waiting to
   * retry after an error (by the time of their last error). Queue time is attempted_at minus
   * scheduled_at, run time the end minus attempted_at; a retryable job's scheduled_at already
   * points at its next run, so it counts as a failure but not in the percentiles.
   */
  async recent(db: Queryable): Promise<RecentRow[]> {
    const { rows } = await db.query<{
      queue: string | null;
      worker: string | null;
      completed_minute: number;
      completed_hour: number;
      failed_minute: number;
      failed_hour: number;
      queue_ms: (number | null)[] | null;
      run_ms: (number | null)[] | null;
    }>(
      `WITH ended AS (
         SELECT queue, worker, true AS ok, completed_at AS ended_at, attempted_at, scheduled_at
         FROM ${this.t} WHERE state = 'completed' AND completed_at >= now() - interval '1 hour'
         UNION ALL
         SELECT queue, worker, false, discarded_at, attempted_at, scheduled_at
         FROM ${this.t} WHERE state = 'discarded' AND discarded_at >= now() - interval '1 hour'
         UNION ALL
         SELECT queue, worker, false, (errors -> -1 ->> 'at')::timestamptz, attempted_at, NULL
         FROM ${this.t} WHERE state = 'retryable'
           AND (errors -> -1 ->> 'at')::timestamptz >= now() - interval '1 hour'
       )
       SELECT queue, worker,
         count(*) FILTER (WHERE ok AND ended_at >= now() - interval '1 minute')::int AS completed_minute,
         count(*) FILTER (WHERE ok)::int AS completed_hour,
         count(*) FILTER (WHERE NOT ok AND ended_at >= now() - interval '1 minute')::int AS failed_minute,
         count(*) FILTER (WHERE NOT ok)::int AS failed_hour,
         percentile_cont(ARRAY[0.5, 0.95]::float8[]) WITHIN GROUP (
           ORDER BY extract(epoch FROM attempted_at - scheduled_at) * 1000)
           FILTER (WHERE scheduled_at IS NOT NULL AND attempted_at IS NOT NULL) AS queue_ms,
         percentile_cont(ARRAY[0.5, 0.95]::float8[]) WITHIN GROUP (
           ORDER BY extract(epoch FROM ended_at - attempted_at) * 1000)
           FILTER (WHERE scheduled_at IS NOT NULL AND attempted_at IS NOT NULL) AS run_ms
       FROM ended
       GROUP BY GROUPING SETS ((queue), (worker))`,
    );
    const ms = (value: number | null | undefined): number | null =>
      value === null || value === undefined ? null : Math.max(0, Math.round(value * 10) / 10);
    return rows.map((r) => ({
      by: r.queue !== null ? 'queue' : 'worker',
      name: (r.queue ?? r.worker)!,
      completedLastMinute: r.completed_minute,
      completedLastHour: r.completed_hour,
      failedLastMinute: r.failed_minute,
      failedLastHour: r.failed_hour,
      queueTimeP50: ms(r.queue_ms?.[0]),
      queueTimeP95: ms(r.queue_ms?.[1]),
      runTimeP50: ms(r.run_ms?.[0]),
      runTimeP95: ms(r.run_ms?.[1]),
    }));
  }
}
