// The statements of a unique insert (see jobs/insert-unique.ts for the protocol around them):
// take the advisory locks of the batch's keys, then in one statement find each key's existing
// job, insert the jobs that have none, apply `replace` to the ones that do, and notify once.

import { channelNames, quoteIdentifier } from '../identifiers.js';
import { rowToJob, type JobRecord } from '../../jobs/types.js';
import { batchJson, insertLimitError, notifyQueues } from './encode.js';
import type { InsertRow, Queryable } from './jobs.js';

/** A row to insert; the unique_* fields are null for a job inserted without `unique`. */
export interface UniqueInsertRow extends InsertRow {
  unique_key: string | null;
  unique_states: string[] | null;
  /** Seconds, or null for infinity. */
  unique_period: number | null;
  replace: string[];
}

export interface UniqueInsertResult {
  job: JobRecord;
  /** inserted: a new row; existing: the duplicate found; replaced: the duplicate, updated. */
  kind: 'inserted' | 'existing' | 'replaced';
  /** Index of the input row for existing and replaced; inserted rows are matched by key. */
  ord: number | null;
  uniqueKey: string | null;
}

export class UniqueQueries {
  private readonly t: string;
  private readonly state: string;
  private readonly channel: string;
  private readonly name: string;

  constructor(readonly schema: string) {
    this.t = `${quoteIdentifier(schema)}.jobs`;
    this.state = `${quoteIdentifier(schema)}.job_state`;
    this.channel = channelNames(schema).insert;
    this.name = `quern_${schema}_insert_unique`;
  }

  /**
   * Takes the transaction-level advisory locks, in the order given (callers sort them, so two
   * batches never wait on each other in a cycle), and reports the isolation level: the check
   * that follows must see rows committed while we waited, which READ COMMITTED guarantees.
   */
  async lock(db: Queryable, lockKeys: string[]): Promise<string> {
    const { rows } = await db.query<{ isolation: string }>(
      `SELECT current_setting('transaction_isolation') AS isolation,
              (SELECT count(pg_advisory_xact_lock(k)) FROM unnest($1::bigint[]) AS k) AS locked`,
      [lockKeys],
    );
    return rows[0]?.isolation ?? 'read committed';
  }

  /**
   * Inserts the rows without a duplicate and returns, for the others, the duplicate (updated by
   * `replace` when it is still waiting to run). Must run after `lock`, in the same transaction,
   * as its own statement, so its snapshot includes every job committed while the locks were
   * awaited. In-batch duplicates are removed by the caller.
   */
  async insert(db: Queryable, rows: UniqueInsertRow[]): Promise<UniqueInsertResult[]> {
    if (rows.length === 0) return [];
    const { rows: out } = await db
      .query<Record<string, unknown>>({
        name: this.name,
        text: `
      WITH input AS (
        SELECT x.* FROM jsonb_to_recordset($1::jsonb) AS x(
          queue text, worker text, args jsonb, meta jsonb, tags text[], max_attempts integer,
          priority smallint, scheduled_at timestamptz, schedule_in double precision, ord bigint,
          unique_key text, unique_states text[], unique_period double precision, replace text[])
      ),
      timed AS (
        SELECT input.*, COALESCE(input.scheduled_at, now() + make_interval(secs => COALESCE(schedule_in, 0))) AS at
        FROM input
      ),
      existing AS (
        SELECT DISTINCT ON (t.ord) t.ord, j.id
        FROM timed t
        JOIN ${this.t} j ON j.unique_key = t.unique_key
          AND j.state::text = ANY (t.unique_states)
          AND (t.unique_period IS NULL OR j.inserted_at >= now() - make_interval(secs => t.unique_period))
        WHERE t.unique_key IS NOT NULL
        ORDER BY t.ord, j.id DESC
      ),
      ins AS (
        INSERT INTO ${this.t} (state, queue, worker, args, meta, tags, max_attempts, priority, scheduled_at, unique_key)
        SELECT CASE WHEN at > now() THEN 'scheduled'::${this.state} ELSE 'available' END,
               queue, worker, args, meta, tags, max_attempts, priority, at, unique_key
        FROM timed t
        WHERE NOT EXISTS (SELECT 1 FROM existing e WHERE e.ord = t.ord)
        ORDER BY ord
        RETURNING *
      ),
      upd AS (
        UPDATE ${this.t} j SET
          args = CASE WHEN 'args' = ANY (t.replace) THEN t.args ELSE j.args END,
          meta = CASE WHEN 'meta' = ANY (t.replace) THEN t.meta ELSE j.meta END,
          tags = CASE WHEN 'tags' = ANY (t.replace) THEN t.tags ELSE j.tags END,
          priority = CASE WHEN 'priority' = ANY (t.replace) THEN t.priority ELSE j.priority END,
          queue = CASE WHEN 'queue' = ANY (t.replace) THEN t.queue ELSE j.queue END,
          max_attempts = CASE WHEN 'maxAttempts' = ANY (t.replace)
                              THEN GREATEST(t.max_attempts, j.attempt) ELSE j.max_attempts END,
          scheduled_at = CASE WHEN 'scheduledAt' = ANY (t.replace) THEN t.at ELSE j.scheduled_at END,
          state = CASE WHEN 'scheduledAt' = ANY (t.replace) AND j.state IN ('scheduled', 'available')
                       THEN (CASE WHEN t.at > now() THEN 'scheduled' ELSE 'available' END)::${this.state}
                       ELSE j.state END
        FROM existing e JOIN timed t ON t.ord = e.ord
        WHERE j.id = e.id AND cardinality(t.replace) > 0
          AND j.state IN ('scheduled', 'available', 'retryable')
        RETURNING 'replaced'::text AS kind, e.ord, j.*
      ),
      notified AS (${notifyQueues(
        '$2',
        `SELECT queue FROM ins WHERE state = 'available'
         UNION ALL SELECT queue FROM upd WHERE state = 'available'`,
      )}),
      result AS (
        SELECT 'inserted'::text AS kind, NULL::bigint AS ord, ins.* FROM ins
        UNION ALL SELECT * FROM upd
        UNION ALL
        SELECT 'existing'::text, e.ord, j.*
        FROM existing e JOIN ${this.t} j ON j.id = e.id
        WHERE NOT EXISTS (SELECT 1 FROM upd WHERE upd.id = e.id)
      )
      SELECT result.*, (SELECT count(*) FROM notified) AS notified FROM result ORDER BY id`,
        values: [
          batchJson(
            rows.map((row, ord) => ({ ...row, ord })),
            rows.length,
          ),
          this.channel,
        ],
      })
      .catch((error: unknown) => {
        throw insertLimitError(error, rows.length);
      });
    return out.map((row) => ({
      job: rowToJob(row),
      kind: row.kind as UniqueInsertResult['kind'],
      ord: row.ord === null ? null : Number(row.ord),
      uniqueKey: (row.unique_key as string | null) ?? null,
    }));
  }
}
