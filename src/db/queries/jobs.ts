// Every statement on the jobs table. Text is built once per schema (the quoted, validated schema
// is the only thing in it); values are always parameters. Hot statements are named, so each
// connection prepares them once.

import type pg from 'pg';
import { channelNames, quoteIdentifier } from '../identifiers.js';
import { rowToJob, type JobRecord, type JobState } from '../../jobs/types.js';
import {
  batchJson,
  completionColumns,
  insertLimitError,
  intervalMicros,
  notifyPayload,
  notifyQueues,
  onlyCompletions,
  outcomeColumns,
  toMillis,
  uniform,
} from './encode.js';

export type Queryable = Pick<pg.ClientBase, 'query'>;

/** A validated row to insert (see jobs/insert.ts). */
export interface InsertRow {
  queue: string;
  worker: string;
  args: Record<string, unknown>;
  meta: Record<string, unknown>;
  tags: string[];
  max_attempts: number;
  priority: number;
  /** ISO time, or null for now (or now + schedule_in). */
  scheduled_at: string | null;
  schedule_in: number | null;
}

/**
 * A claimed job as the producer holds it: the record, and its args and meta as the JSON text the
 * database sent. The text goes to the worker thread as it came (a string crosses to a thread as
 * one copy; the parsed object was cloned field by field, ~5 us of the main thread per job in
 * bench W2), and the thread parses it there.
 */
export interface ClaimedJob extends JobRecord {
  argsText: string;
  /** null for an empty meta ({}), the common case. */
  metaText: string | null;
}

/** A claimed row as the fetch reads it (rowMode 'array'); int8 comes as text. */
type FetchedRow = [
  id: string,
  worker: string,
  args: string,
  meta: string | null,
  tags: string[] | null,
  attempt: number,
  maxAttempts: number,
  priority: number,
  insertedMs: number,
  scheduledMs: number,
  attemptedMs: number,
];

/** One outcome to write. `state` is final here; retry-or-discard was decided by the caller. */
export interface OutcomeRow {
  id: number;
  token: string;
  state: JobState;
  /** Seconds from now for the next run (retryable, snoozed, requeued). */
  delay: number | null;
  /** Error text appended to `errors` as { at, attempt, error }. */
  error: string | null;
  result: unknown;
  /** 1 to give the attempt back (snooze, a job stopped because its thread was killed). */
  refund: number;
}

/**
 * Which row an outcome `o` may write: its job's, while still executing under the same attempt
 * token (so a runner whose job was rescued or cancelled meanwhile cannot overwrite it).
 */
const OUTCOME_MATCH = `FROM o
        WHERE j.id = o.id AND j.state::text = 'executing' AND j.attempted_by[2] = o.token`;

/** An outcome statement's one row: how many were written, their tokens only if some were not. */
function outcomeAnswer(countParam: string, extra = ''): string {
  return `SELECT count(*)::int AS written,
             CASE WHEN count(*) < ${countParam} THEN COALESCE(array_agg(token), '{}') END AS tokens${extra}
      FROM upd`;
}

export class JobQueries {
  private readonly t: string;
  private readonly channel: string;
  private readonly names: Record<string, string>;
  /** The text of the two statements every job goes through (the plan tests EXPLAIN them). */
  readonly sql: { fetch: string; outcome: string; complete: string };

  constructor(readonly schema: string) {
    this.t = `${quoteIdentifier(schema)}.jobs`;
    this.channel = channelNames(schema).insert;
    this.sql = { fetch: this.fetchSql(), outcome: this.outcomeSql(), complete: this.completeSql() };
    const prefix = `quern_${schema}_`;
    this.names = {
      fetch: `${prefix}fetch`,
      outcome: `${prefix}outcome`,
      complete: `${prefix}complete`,
      insert: `${prefix}insert`,
      insertUniform: `${prefix}insert_uniform`,
    };
  }

  /*
   * Both statements are named, so after five runs PostgreSQL may keep one generic plan for them,
   * built from the table's statistics. Those are often stale in the way that hurts: taken while
   * the queue was idle (history only, nothing available or executing), then a burst arrives.
   * Any condition the plan could answer from a partial index (state = 'available', state =
   * 'executing') then looks like it matches one row, and the planner reads the whole partial
   * index and filters it, once per statement and, for the outcomes, once per outcome. Measured
   * on 20,000 finished jobs analysed while idle, then 20,000 inserted: a claim of 500 took 40-90
   * ms instead of 4, and from the sixth write on, an outcome batch of 500 took 45-90 ms instead
   * of 5 (its generic plan joined every executing row to every outcome). So the state checks
   * inside the UPDATEs are written as `state::text = ...`, which no index predicate matches:
   * the claim can only reach its rows by ctid (a Tid Scan) and the outcomes by primary key
   * (one lookup each), whatever the statistics say (test/db/plans.test.ts).
   */
  private fetchSql(): string {
    return `
      WITH picked AS (
        SELECT ctid FROM ${this.t}
        WHERE state = 'available' AND queue = $1 AND attempt <= max_attempts
        ORDER BY priority, scheduled_at, id
        LIMIT $2
        FOR UPDATE SKIP LOCKED
      )
      UPDATE ${this.t} j
      SET state = 'executing', attempt = j.attempt + 1, attempted_at = now(),
          attempted_by = ARRAY[$3::text, $4::text || '.' || j.id]
      WHERE j.ctid = ANY (ARRAY(SELECT ctid FROM picked)) AND j.state::text = 'available'
      RETURNING j.id, j.worker, j.args::text AS args, NULLIF(j.meta, '{}')::text AS meta,
                NULLIF(j.tags, '{}') AS tags, j.attempt,
                j.max_attempts, j.priority, trunc(date_part('epoch', j.inserted_at) * 1000) AS inserted_ms,
                trunc(date_part('epoch', j.scheduled_at) * 1000) AS scheduled_ms,
                trunc(date_part('epoch', j.attempted_at) * 1000) AS attempted_ms`;
  }

  private outcomeSql(): string {
    // A retry asked for a job that has no attempt left.
    const spent = `(o.state = 'retryable' AND j.attempt - o.refund >= j.max_attempts)`;
    return `
      WITH o AS (
        SELECT x.id, x.token, x.state, x.delay, x.error, x.result::jsonb AS result, x.refund
        FROM unnest($1::bigint[], $2::text[], $3::text[], $4::double precision[], $5::text[],
                    $6::text[], $7::integer[])
          AS x(id, token, state, delay, error, result, refund)
      ),
      upd AS (
        UPDATE ${this.t} j SET
        state = CASE WHEN ${spent} THEN 'discarded' ELSE o.state END::${quoteIdentifier(this.schema)}.job_state,
        completed_at = CASE WHEN o.state = 'completed' THEN now() ELSE j.completed_at END,
        cancelled_at = CASE WHEN o.state = 'cancelled' THEN now() ELSE j.cancelled_at END,
        discarded_at = CASE WHEN o.state = 'discarded' OR ${spent} THEN now() ELSE j.discarded_at END,
        scheduled_at = CASE WHEN o.delay IS NULL OR ${spent} THEN j.scheduled_at ELSE now() + make_interval(secs => o.delay) END,
        errors = CASE WHEN o.error IS NULL THEN j.errors
                      ELSE j.errors || jsonb_build_array(jsonb_build_object('at', now(), 'attempt', j.attempt, 'error', o.error)) END,
        result = CASE WHEN o.state = 'completed' THEN o.result ELSE j.result END,
        attempt = j.attempt - o.refund
      ${OUTCOME_MATCH}
        RETURNING o.token, j.state, j.queue
      ),
      notified AS (${notifyQueues('$9', `SELECT queue FROM upd WHERE state = 'available'`)})
      ${outcomeAnswer('$8', ', (SELECT count(*) FROM notified) AS notified')}`;
  }

  /**
   * outcomeSql for a batch of plain completions only (no error, next run or refund; see
   * onlyCompletions), the usual batch: three columns to send and read instead of seven, and no
   * CASE per column. The same rows end up the same as through outcomeSql. Measured on a
   * 20,000-job drain in batches of 400: 8.7 against 10.1 us of PostgreSQL per outcome.
   */
  private completeSql(): string {
    return `
      WITH o AS (
        SELECT x.id, x.token, x.result::jsonb AS result
        FROM unnest($1::bigint[], $2::text[], $3::text[]) AS x(id, token, result)
      ),
      upd AS (
        UPDATE ${this.t} j SET state = 'completed', completed_at = now(), result = o.result
        ${OUTCOME_MATCH}
        RETURNING o.token
      )
      ${outcomeAnswer('$4')}`;
  }

  /**
   * One statement inserts the whole batch and sends one notification naming the queues that got
   * available jobs (a payload capped well below PostgreSQL's 8000 bytes: '*' wakes every queue).
   */
  async insert(db: Queryable, rows: InsertRow[]): Promise<JobRecord[]> {
    if (rows.length === 0) return [];
    const same = uniform(rows);
    const input = same
      ? `SELECT $4::text AS queue, $5::text AS worker, a.args, '{}'::jsonb AS meta,
                '{}'::text[] AS tags, $6::integer AS max_attempts, $7::smallint AS priority,
                NULL::timestamptz AS scheduled_at, NULL::double precision AS schedule_in, a.ord
         FROM jsonb_array_elements($1::jsonb) WITH ORDINALITY AS a(args, ord)`
      : `SELECT x.* FROM ROWS FROM (jsonb_to_recordset($1::jsonb) AS (
           queue text, worker text, args jsonb, meta jsonb, tags text[], max_attempts integer,
           priority smallint, scheduled_at timestamptz, schedule_in double precision))
           WITH ORDINALITY AS x(queue, worker, args, meta, tags, max_attempts, priority,
                                scheduled_at, schedule_in, ord)`;
    const json = same
      ? batchJson(
          rows.map((row) => row.args),
          rows.length,
        )
      : batchJson(rows, rows.length);
    const { rows: answer } = await db
      .query<{
        first: string;
        ids: string | null;
        states: string | null;
        now_us: string;
      }>({
        name: same ? this.names.insertUniform : this.names.insert,
        text: `
      WITH input AS (${input}),
      timed AS (
        SELECT input.*, COALESCE(input.scheduled_at, now() + make_interval(secs => COALESCE(schedule_in, 0))) AS at
        FROM input
      ),
      ins AS (
        INSERT INTO ${this.t} (state, queue, worker, args, meta, tags, max_attempts, priority, scheduled_at)
        SELECT CASE WHEN at > now() THEN 'scheduled'::${quoteIdentifier(this.schema)}.job_state ELSE 'available' END,
               queue, worker, args, meta, tags, max_attempts, priority, at
        FROM timed ORDER BY ord
        RETURNING id, state, queue
      ),
      notified AS (
        SELECT pg_notify($2, $3) WHERE EXISTS (SELECT 1 FROM ins WHERE state = 'available')
      ),
      summary AS (
        SELECT min(id) AS first, max(id) AS last, count(*) AS n,
               count(*) FILTER (WHERE state <> 'available') AS waiting
        FROM ins
      )
      SELECT first::text AS first,
             CASE WHEN last - first + 1 <> n
                  THEN (SELECT string_agg(id::text, ',' ORDER BY id) FROM ins) END AS ids,
             CASE WHEN waiting > 0
                  THEN (SELECT string_agg(CASE WHEN state = 'available' THEN 'a' ELSE 's' END, ''
                                          ORDER BY id) FROM ins) END AS states,
             (extract(epoch FROM now()) * 1000000)::bigint::text AS now_us,
             (SELECT count(*) FROM notified) AS notified
      FROM summary`,
        values: same
          ? [
              json,
              this.channel,
              notifyPayload(rows),
              same.queue,
              same.worker,
              same.max_attempts,
              same.priority,
            ]
          : [json, this.channel, notifyPayload(rows)],
      })
      .catch((error: unknown) => {
        throw insertLimitError(error, rows.length);
      });
    // One row whatever the batch: the first id (the ids in order only when another statement's
    // took numbers in between), a letter per state only when some job is scheduled, and the
    // statement's now() (inserted_at, and scheduled_at where none was given). Sorting and
    // joining 1,000 ids and states, and the queues for the notification, was ~0.5 ms of the
    // statement. `RETURNING *` made the CTE carry
    // every column of every row (29 -> 18.5 ms per 1,000 rows measured on the statement alone,
    // bench W1); a row per job back, with two timestamps for pg to parse into Dates, was another
    // ~1.5 ms of the client per 1,000 (parsing, objects, garbage). Rows were inserted in input
    // order (WITH ORDINALITY), so ids follow it; the rest of each record is what was sent.
    const first = answer[0]!;
    const ids = first.ids?.split(',') ?? null;
    const firstId = Number(first.first);
    const states = first.states;
    // now() in whole microseconds, as the database adds scheduleIn to it (see intervalMicros).
    const nowUs = Number(first.now_us);
    const insertedAt = toMillis(nowUs);
    return rows.map((row, index): JobRecord => {
      const scheduledAt =
        row.scheduled_at !== null
          ? new Date(row.scheduled_at)
          : row.schedule_in
            ? new Date(toMillis(nowUs + intervalMicros(row.schedule_in)))
            : new Date(insertedAt);
      return {
        id: ids ? Number(ids[index]) : firstId + index,
        state: states === null || states[index] === 'a' ? 'available' : 'scheduled',
        queue: row.queue,
        worker: row.worker,
        args: row.args,
        meta: row.meta,
        tags: row.tags,
        errors: [],
        result: null,
        attempt: 0,
        maxAttempts: row.max_attempts,
        priority: row.priority,
        insertedAt: new Date(insertedAt),
        scheduledAt,
        attemptedAt: null,
        attemptedBy: null,
        completedAt: null,
        cancelledAt: null,
        discardedAt: null,
      };
    });
  }

  /**
   * Claims up to `limit` available jobs of one queue, in priority, scheduled time, id order.
   * SKIP LOCKED lets every node fetch at once without waiting on each other; the ORDER BY
   * matches the partial index jobs_fetch, so finished history is never scanned.
   * `attempt <= max_attempts`: a row the claim's `attempt + 1` would push past the attempt_range
   * CHECK (attempt <= max_attempts + 1) is never claimed. Such a row should not exist (outcomes
   * and rescues discard it), but one that did (an older version's fallback, a hand edit) failed
   * the whole statement: the queue stopped on every node, on every fetch, across restarts. A row
   * at attempt == max_attempts (a unique replace that lowered max_attempts) is still claimed,
   * runs once more and is discarded if it fails. The condition is a filter on the rows
   * jobs_fetch yields; the plan is unchanged (checked with EXPLAIN).
   * The update finds the locked rows by ctid (a Tid Scan), not by joining on id: for the join the
   * planner chose a hash join over a sequential scan of the whole table (EXPLAIN ANALYZE of a
   * 500-row claim on 20,000 rows: 7-8 ms; by ctid 3.2 ms; by a nested loop on the primary key
   * 3.8 ms), and a queue's table keeps its history. A row locked by this statement cannot move,
   * so its ctid holds until the update; should the version it points to be newer than the
   * statement's snapshot (another transaction changed the row and committed in between), the
   * update skips it and the row stays available, claimed by a later fetch (bench W2: PostgreSQL
   * CPU per 1,000 jobs 24 -> 21.5 ms, drain +8%, medians of 6 interleaved runs).
   */
  async fetch(
    db: Queryable,
    queue: string,
    limit: number,
    node: string,
    token: string,
  ): Promise<ClaimedJob[]> {
    const { rows } = await db.query<FetchedRow>({
      name: this.names.fetch,
      rowMode: 'array',
      text: this.sql.fetch,
      values: [queue, limit, node, token],
    });
    // Only what running a job needs, in the cheapest form to read: the history columns (errors,
    // result, finish times) are not read back, times come as whole epoch milliseconds rather
    // than text for pg to parse into Dates (truncated as a Date truncates: the fraction of a
    // millisecond made every number 17 digits to print and parse), the queue and attempted_by
    // are known here, and an empty tags array is not parsed (bench W2: parsing three timestamps
    // and two arrays per row was ~6 µs of the main thread per job, 120 ms of a 20,000-job drain).
    // Rows as arrays (no object with named fields per row), sorted by their numbers before any
    // Date is made.
    rows.sort((a, b) => a[7] - b[7] || a[9] - b[9] || Number(a[0]) - Number(b[0]));
    return rows.map(
      ([
        id,
        worker,
        args,
        meta,
        tags,
        attempt,
        maxAttempts,
        priority,
        inserted,
        scheduled,
        attempted,
      ]): ClaimedJob => ({
        id: Number(id),
        state: 'executing',
        queue,
        worker,
        args: JSON.parse(args) as Record<string, unknown>,
        meta: meta === null ? {} : (JSON.parse(meta) as Record<string, unknown>),
        argsText: args,
        metaText: meta,
        tags: tags ?? [],
        errors: [],
        result: null,
        attempt,
        maxAttempts,
        priority,
        insertedAt: new Date(inserted),
        scheduledAt: new Date(scheduled),
        attemptedAt: new Date(attempted),
        attemptedBy: [node, `${token}.${id}`],
        completedAt: null,
        cancelledAt: null,
        discardedAt: null,
      }),
    );
  }

  /**
   * Writes a batch of outcomes in one statement. A row is written only while the job is still
   * executing under the same attempt token, so a runner whose job was rescued or cancelled
   * meanwhile cannot overwrite it. Returns the attempt tokens of the outcomes that were written:
   * tokens, not ids, because one batch may hold two attempts of one job (a cancel's late outcome
   * beside the outcome of the retry that followed at once), and only one of them is written.
   * A 'retryable' outcome for a job with no attempt left (attempt - refund >= max_attempts) is
   * written as 'discarded' (discarded_at set, scheduled_at kept): callers decide retry or discard,
   * but not all of them know the attempt (the writer's fallback for an outcome the database
   * refused does not). Left retryable, such a job ran again past its attempts, and a second
   * refusal left it at max_attempts + 1, where the fetch's attempt + 1 broke attempt_range.
   */
  async recordOutcomes(db: Queryable, outcomes: OutcomeRow[]): Promise<Set<string>> {
    if (outcomes.length === 0) return new Set();
    const completions = onlyCompletions(outcomes);
    const { rows } = await db.query<{ written: number; tokens: string[] | null }>(
      completions
        ? {
            name: this.names.complete,
            text: this.sql.complete,
            values: completionColumns(outcomes),
          }
        : {
            name: this.names.outcome,
            text: this.sql.outcome,
            values: [...outcomeColumns(outcomes), this.channel],
          },
    );
    // One row back, not one per job: the tokens are listed only when some outcome was refused
    // (fenced out by a rescue or a cancel), which is rare (bench W2: a row per job was ~1 us of
    // the main thread's parsing per job).
    const answer = rows[0];
    if (answer && answer.tokens === null) return new Set(outcomes.map((o) => o.token));
    return new Set(answer?.tokens ?? []);
  }

  /**
   * Moves scheduled and retryable jobs whose time has come to available; returns their queues.
   * The update reaches the rows it locked by ctid, as the claim does (see fetchSql): joined on
   * id, statistics taken while many jobs were scheduled let the planner merge-join the whole
   * primary key, history included, every time the stager ran.
   */
  async stage(db: Queryable, limit = 5000): Promise<{ count: number; queues: string[] }> {
    const { rows } = await db.query<{ queue: string; count: number }>(
      `WITH due AS (
         SELECT ctid FROM ${this.t}
         WHERE state IN ('scheduled', 'retryable') AND scheduled_at <= now()
         ORDER BY scheduled_at LIMIT $1 FOR UPDATE SKIP LOCKED
       ),
       moved AS (
         UPDATE ${this.t} j SET state = 'available'
         WHERE j.ctid = ANY (ARRAY(SELECT ctid FROM due)) AND j.state::text IN ('scheduled', 'retryable')
         RETURNING j.queue
       ),
       counted AS (SELECT queue, count(*)::int AS count FROM moved GROUP BY queue),
       notified AS (${notifyQueues('$2', 'SELECT queue FROM counted')})
       SELECT queue, count, (SELECT count(*) FROM notified) AS notified FROM counted`,
      [limit, this.channel],
    );
    return { count: rows.reduce((sum, r) => sum + r.count, 0), queues: rows.map((r) => r.queue) };
  }

  async get(db: Queryable, id: number): Promise<JobRecord | null> {
    const { rows } = await db.query(`SELECT * FROM ${this.t} WHERE id = $1`, [id]);
    return rows[0] ? rowToJob(rows[0] as Record<string, unknown>) : null;
  }

  async list(
    db: Queryable,
    filter: {
      state?: string | undefined;
      queue?: string | undefined;
      worker?: string | undefined;
      limit: number;
    },
  ): Promise<JobRecord[]> {
    const { rows } = await db.query(
      `SELECT * FROM ${this.t}
       WHERE ($1::text IS NULL OR state::text = $1) AND ($2::text IS NULL OR queue = $2) AND ($3::text IS NULL OR worker = $3)
       ORDER BY id DESC LIMIT $4`,
      [filter.state ?? null, filter.queue ?? null, filter.worker ?? null, filter.limit],
    );
    return rows.map(rowToJob);
  }

  async countsByQueueAndState(
    db: Queryable,
  ): Promise<{ queue: string; state: JobState; count: number }[]> {
    const { rows } = await db.query<{ queue: string; state: JobState; count: number }>(
      `SELECT queue, state, count(*)::int AS count FROM ${this.t} GROUP BY queue, state ORDER BY queue, state`,
    );
    return rows;
  }

  /**
   * Cancels a job. A running one is cancelled in its row at once, with an error entry naming
   * its node; that node is then told to stop it, and its old runner cannot write an outcome
   * over the cancel (the state is no longer executing).
   */
  async cancel(
    db: Queryable,
    id: number,
  ): Promise<{ before: JobState | null; after: JobState | null; attemptedBy: string[] | null }> {
    const { rows } = await db.query<{
      before: JobState;
      after: JobState;
      attempted_by: string[] | null;
    }>(
      `WITH old AS (SELECT id, state, attempted_by FROM ${this.t} WHERE id = $1 FOR UPDATE),
       upd AS (
         UPDATE ${this.t} j SET state = 'cancelled', cancelled_at = now(),
           errors = CASE WHEN old.state = 'executing' THEN j.errors || jsonb_build_array(jsonb_build_object(
             'at', now(), 'attempt', j.attempt,
             'error', 'cancelled: cancelled by request while running on node ' || COALESCE(j.attempted_by[1], '?')))
             ELSE j.errors END,
           cancelled_run_until = CASE WHEN old.state = 'executing' THEN (${this.runEndsBy('j')})
             ELSE j.cancelled_run_until END
         FROM old WHERE j.id = old.id AND old.state IN ('available', 'scheduled', 'retryable', 'executing')
         RETURNING j.id
       )
       SELECT old.state AS before,
              CASE WHEN EXISTS (SELECT 1 FROM upd) THEN 'cancelled' ELSE old.state::text END AS after,
              old.attempted_by
       FROM old`,
      [id],
    );
    const row = rows[0];
    return row
      ? { before: row.before, after: row.after, attemptedBy: row.attempted_by }
      : { before: null, after: null, attemptedBy: null };
  }

  /**
   * When a running job's run will have ended at the latest, once its job is cancelled in its row
   * (`alias` the job's row): the node running it hears of the cancel and stops the run within
   * its stop_within_ms (7 s with the defaults for a node that did not write one), unless it can
   * no longer reach the database, and then it stops its jobs within its heartbeat timeout of its
   * last heartbeat (its fence, as the lifeline counts on). NULL for a node with no row.
   */
  private runEndsBy(alias: string): string {
    return `SELECT GREATEST(now() + make_interval(secs => COALESCE(n.stop_within_ms, 7000) / 1000.0),
                   n.updated_at + make_interval(secs => COALESCE(n.heartbeat_timeout_ms, 5000) / 1000.0))
            FROM ${quoteIdentifier(this.schema)}.nodes n WHERE n.name = ${alias}.attempted_by[1]`;
  }

  /**
   * Makes a discarded, cancelled, retryable or scheduled job available now, or, for a job
   * cancelled while it ran whose run may still be going (cancelled_run_until, see cancel),
   * scheduled for when it will have ended: before, the retried job could run beside its old run.
   * The node of that run makes the job available as soon as the run has ended
   * (releaseCancelledRun).
   */
  async retry(
    db: Queryable,
    id: number,
  ): Promise<{ before: JobState | null; after: JobState | null; scheduledAt: Date | null }> {
    const { rows } = await db.query<{
      before: JobState;
      after: JobState;
      scheduled_at: Date | null;
    }>(
      `WITH old AS (SELECT id, state, queue FROM ${this.t} WHERE id = $1 FOR UPDATE),
       upd AS (
         UPDATE ${this.t} j SET
           state = CASE WHEN j.cancelled_run_until > now() THEN 'scheduled' ELSE 'available' END::${quoteIdentifier(this.schema)}.job_state,
           scheduled_at = GREATEST(now(), j.cancelled_run_until),
           cancelled_run_until = CASE WHEN j.cancelled_run_until > now() THEN j.cancelled_run_until END,
           completed_at = NULL, cancelled_at = NULL, discarded_at = NULL,
           max_attempts = GREATEST(j.max_attempts, j.attempt + 1)
         FROM old WHERE j.id = old.id AND old.state IN ('discarded', 'cancelled', 'retryable', 'scheduled')
         RETURNING j.queue, j.state, j.scheduled_at
       ),
       notified AS (SELECT pg_notify($2, queue) FROM upd WHERE state = 'available')
       SELECT old.state AS before, COALESCE((SELECT state::text FROM upd), old.state::text) AS after,
              (SELECT scheduled_at FROM upd) AS scheduled_at, (SELECT count(*) FROM notified) AS n
       FROM old`,
      [id, this.channel],
    );
    const row = rows[0];
    return row
      ? { before: row.before, after: row.after, scheduledAt: row.scheduled_at }
      : { before: null, after: null, scheduledAt: null };
  }

  /**
   * A cancelled run (attempt token `token`) has ended on this node: a retry held back for it
   * (scheduled for its cancelled_run_until) is made available now, and the hold is cleared.
   * Returns whether the job was made available.
   */
  async releaseCancelledRun(db: Queryable, id: number, token: string): Promise<boolean> {
    const { rows } = await db.query<{ n: number }>(
      `WITH upd AS (
         UPDATE ${this.t} j SET cancelled_run_until = NULL,
           state = CASE WHEN j.state = 'scheduled' AND j.scheduled_at = j.cancelled_run_until
                        THEN 'available' ELSE j.state END,
           scheduled_at = CASE WHEN j.state = 'scheduled' AND j.scheduled_at = j.cancelled_run_until
                               THEN now() ELSE j.scheduled_at END
         WHERE j.id = $1 AND j.cancelled_run_until IS NOT NULL AND j.attempted_by[2] = $2
         RETURNING j.queue, j.state
       ),
       notified AS (SELECT pg_notify($3, queue) FROM upd WHERE state = 'available')
       SELECT (SELECT count(*) FROM notified)::int AS n`,
      [id, token, this.channel],
    );
    return (rows[0]?.n ?? 0) > 0;
  }
}
