// The job as stored, as inserted and as a worker's perform sees it.

export type JobState =
  'scheduled' | 'available' | 'executing' | 'retryable' | 'completed' | 'discarded' | 'cancelled';

export const JOB_STATES: readonly JobState[] = [
  'scheduled',
  'available',
  'executing',
  'retryable',
  'completed',
  'discarded',
  'cancelled',
];

export interface JobError {
  at: string;
  attempt: number;
  error: string;
}

/** A row of the jobs table, camel-cased. */
export interface JobRecord {
  id: number;
  state: JobState;
  queue: string;
  worker: string;
  args: Record<string, unknown>;
  meta: Record<string, unknown>;
  tags: string[];
  errors: JobError[];
  result: unknown;
  attempt: number;
  maxAttempts: number;
  priority: number;
  insertedAt: Date;
  scheduledAt: Date;
  attemptedAt: Date | null;
  attemptedBy: string[] | null;
  completedAt: Date | null;
  cancelledAt: Date | null;
  discardedAt: Date | null;
}

/** What perform receives: structured-clonable, sent to the worker thread. */
export interface Job<Args = Record<string, unknown>> {
  id: number;
  args: Args;
  attempt: number;
  maxAttempts: number;
  queue: string;
  worker: string;
  tags: string[];
  meta: Record<string, unknown>;
  insertedAt: Date;
  scheduledAt: Date;
}

export interface InsertOptions {
  queue?: string;
  priority?: number;
  maxAttempts?: number;
  scheduledAt?: Date;
  /** Seconds from now. */
  scheduleIn?: number;
  tags?: string[];
  meta?: Record<string, unknown>;
}

export const INSERT_OPTION_KEYS = [
  'queue',
  'priority',
  'maxAttempts',
  'scheduledAt',
  'scheduleIn',
  'tags',
  'meta',
] as const;

/** What `perform` may return; anything else is treated as success with a warning. */
export type PerformResult =
  // void: an async perform that returns nothing is typed Promise<void>.
  // eslint-disable-next-line @typescript-eslint/no-invalid-void-type
  | void
  | undefined
  | 'ok'
  | { ok: unknown }
  | { error: unknown }
  | { cancel: unknown }
  | { discard: unknown }
  | { snooze: number };

export function rowToJob(row: Record<string, unknown>): JobRecord {
  return {
    id: Number(row.id), // bigserial: pg returns int8 as a string
    state: row.state as JobState,
    queue: row.queue as string,
    worker: row.worker as string,
    args: row.args as Record<string, unknown>,
    meta: row.meta as Record<string, unknown>,
    tags: row.tags as string[],
    errors: row.errors as JobError[],
    result: row.result,
    attempt: row.attempt as number,
    maxAttempts: row.max_attempts as number,
    priority: row.priority as number,
    insertedAt: row.inserted_at as Date,
    scheduledAt: row.scheduled_at as Date,
    attemptedAt: row.attempted_at as Date | null,
    attemptedBy: row.attempted_by as string[] | null,
    completedAt: row.completed_at as Date | null,
    cancelledAt: row.cancelled_at as Date | null,
    discardedAt: row.discarded_at as Date | null,
  };
}

/** What perform receives, taken from a fetched row. */
export function jobOf(record: JobRecord): Job {
  return {
    id: record.id,
    args: record.args,
    attempt: record.attempt,
    maxAttempts: record.maxAttempts,
    queue: record.queue,
    worker: record.worker,
    tags: record.tags,
    meta: record.meta,
    insertedAt: record.insertedAt,
    scheduledAt: record.scheduledAt,
  };
}
