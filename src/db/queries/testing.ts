// The statements behind quern/testing: finding enqueued jobs by a partial description, and the
// claim and staging steps of drainQueue (which runs jobs in the test's own thread).

import { quoteIdentifier } from '../identifiers.js';
import { rowToJob, type JobRecord } from '../../jobs/types.js';
import type { Queryable } from './jobs.js';

export interface JobFilter {
  worker: string | null;
  queue: string | null;
  /** Partial match: jsonb containment (args @> filter). */
  args: Record<string, unknown> | null;
  meta: Record<string, unknown> | null;
  /** The job has at least these tags. */
  tags: string[] | null;
  priority: number | null;
  states: string[];
  scheduledAt: Date | null;
  /** Seconds of tolerance on scheduledAt. */
  delta: number;
}

export class TestingQueries {
  private readonly t: string;
  private readonly state: string;

  constructor(readonly schema: string) {
    this.t = `${quoteIdentifier(schema)}.jobs`;
    this.state = `${quoteIdentifier(schema)}.job_state`;
  }

  async find(db: Queryable, filter: JobFilter, limit = 1000): Promise<JobRecord[]> {
    const { rows } = await db.query(
      `SELECT * FROM ${this.t}
       WHERE ($1::text IS NULL OR worker = $1)
         AND ($2::text IS NULL OR queue = $2)
         AND ($3::jsonb IS NULL OR args @> $3::jsonb)
         AND ($4::jsonb IS NULL OR meta @> $4::jsonb)
         AND ($5::text[] IS NULL OR tags @> $5::text[])
         AND ($6::smallint IS NULL OR priority = $6)
         AND state::text = ANY ($7::text[])
         AND ($8::timestamptz IS NULL
              OR abs(extract(epoch FROM scheduled_at - $8::timestamptz)) <= $9::double precision)
       ORDER BY id LIMIT $10`,
      [
        filter.worker,
        filter.queue,
        filter.args === null ? null : JSON.stringify(filter.args),
        filter.meta === null ? null : JSON.stringify(filter.meta),
        filter.tags,
        filter.priority,
        filter.states,
        filter.scheduledAt,
        filter.delta,
        limit,
      ],
    );
    return rows.map((row) => rowToJob(row as Record<string, unknown>));
  }

  /** Makes the queue's scheduled and retryable jobs available now (drainQueue withScheduled). */
  async stage(db: Queryable, queue: string, except: number[]): Promise<number> {
    const { rowCount } = await db.query(
      `UPDATE ${this.t} SET state = 'available'::${this.state}
       WHERE queue = $1 AND state IN ('scheduled', 'retryable') AND NOT (id = ANY ($2::bigint[]))`,
      [queue, except],
    );
    return rowCount ?? 0;
  }

  async availableIds(db: Queryable, queue: string): Promise<number[]> {
    const { rows } = await db.query<{ id: string }>(
      `SELECT id FROM ${this.t} WHERE state = 'available' AND queue = $1
       ORDER BY priority, scheduled_at, id`,
      [queue],
    );
    return rows.map((r) => Number(r.id));
  }

  /**
   * Claims the next available job of the queue in fetch order (priority, scheduled time, id),
   * among `ids` when given, as the producer's fetch does: executing, attempt + 1.
   */
  async claimNext(
    db: Queryable,
    queue: string,
    ids: number[] | null,
    node: string,
    token: string,
  ): Promise<JobRecord | null> {
    const { rows } = await db.query(
      `WITH picked AS (
         SELECT id FROM ${this.t}
         WHERE state = 'available' AND queue = $1 AND ($2::bigint[] IS NULL OR id = ANY ($2::bigint[]))
           AND attempt <= max_attempts -- as the node's fetch: a row past its attempts never stops it
         ORDER BY priority, scheduled_at, id
         LIMIT 1
         FOR UPDATE SKIP LOCKED
       )
       UPDATE ${this.t} j
       SET state = 'executing', attempt = j.attempt + 1, attempted_at = now(),
           attempted_by = ARRAY[$3::text, $4::text || '.' || j.id]
       FROM picked WHERE j.id = picked.id
       RETURNING j.*`,
      [queue, ids, node, token],
    );
    return rows[0] ? rowToJob(rows[0] as Record<string, unknown>) : null;
  }
}
