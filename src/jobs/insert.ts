// The insert edge: turns what a caller passed to insert/insertMany into rows, or throws an
// InsertError naming the field before anything is written. Defaults come from the worker's
// definition when it is known (passed in, or registered from the workers folder).

import { isPlainIdentifier, MAX_QUEUE_LENGTH } from '../db/identifiers.js';
import { isPlainObject, suggest } from '../config/validate.js';
import type { InsertRow } from '../db/queries/jobs.js';
import type { InsertJob, WorkerDefinition } from '../worker/define.js';
import { assertJsonValue, hasLoneSurrogate, JsonValueError, showValue } from './json.js';
import { INSERT_OPTION_KEYS } from './types.js';
import { uniqueSpec, UniqueOptionError, type UniqueSpec } from './unique.js';

/** max_attempts is an integer column and attempt may reach max_attempts + 1. */
export const MAX_ATTEMPTS_LIMIT = 2147483646;

/**
 * The window of scheduledAt. PostgreSQL's timestamptz reaches far beyond it, but a JS Date past
 * year 9999 becomes an ISO string PostgreSQL cannot read ("+275760-..."), and a time before 1970
 * can only be a mistake (a past time runs the job at once, as now does).
 */
export const MIN_SCHEDULED_AT = Date.UTC(1970, 0, 1);
export const MAX_SCHEDULED_AT = Date.UTC(9999, 11, 31, 23, 59, 59, 999);
/** 100 years of 365 days, in seconds: far past any real delay, well inside an interval. */
export const MAX_SCHEDULE_IN = 100 * 365 * 86400;

export class InsertError extends Error {
  override name = 'InsertError';
  constructor(
    message: string,
    readonly field: string,
  ) {
    super(message);
  }
}

const JOB_KEYS = ['worker', 'args', 'unique', ...INSERT_OPTION_KEYS] as const;
const WORKER_NAME = /^[A-Za-z0-9_.:-]{1,255}$/;

export type WorkerLookup = (name: string) => WorkerDefinition<never> | undefined;

export interface NormalizedInsert {
  row: InsertRow;
  unique: UniqueSpec | null;
  definition: WorkerDefinition<never> | undefined;
}

export function normalizeInsert(
  job: unknown,
  lookup: WorkerLookup,
  where = 'job',
): NormalizedInsert {
  const fail = (field: string, why: string): never => {
    throw new InsertError(`${where}.${field}: ${why}`, field);
  };
  if (!isPlainObject(job))
    throw new InsertError(`${where}: expected an object with a worker and args`, 'job');
  for (const key of Object.keys(job)) {
    if (!(JOB_KEYS as readonly string[]).includes(key)) {
      fail(key, `unknown option "${key}"${suggest(key, JOB_KEYS)}`);
    }
  }

  let definition: WorkerDefinition<never> | undefined;
  let worker: string;
  if (typeof job.worker === 'string') {
    worker = job.worker;
    definition = lookup(worker);
  } else if (isPlainObject(job.worker) || (typeof job.worker === 'object' && job.worker !== null)) {
    definition = job.worker as WorkerDefinition<never>;
    worker = (definition as { name?: unknown }).name as string;
  } else {
    return fail('worker', 'required: a worker name or a worker definition');
  }
  if (typeof worker !== 'string' || !WORKER_NAME.test(worker)) {
    fail('worker', `must be 1-255 characters of A-Z a-z 0-9 _ . : -, got ${showValue(worker)}`);
  }

  const args = job.args === undefined ? {} : job.args;
  if (!isPlainObject(args)) fail('args', 'must be a plain JSON object');
  try {
    assertJsonValue(args, `${where}.args`);
  } catch (error) {
    if (error instanceof JsonValueError) throw new InsertError(error.message, 'args');
    throw error;
  }
  if (definition?.validate) {
    let problem: unknown;
    try {
      problem = definition.validate(args) ?? null;
      // An async validate cannot be waited for here: its promise would read as a message.
      if (typeof (problem as { then?: unknown } | null)?.then === 'function')
        problem = 'validate returned a Promise; it must return its message (or null) synchronously';
      // A predicate (ajv's compiled validators, `return typeof args.to === 'string'`) returns
      // true for good args: read as a message, true rejected every insert and false let bad
      // args through.
      if (typeof problem === 'boolean')
        problem = `validate returned ${String(problem)}; it must return null (or nothing) to accept the args, or a message saying what is wrong with them`;
    } catch (error) {
      // A throw always rejects, whatever was thrown (a string, null, an Error with no message).
      problem =
        error instanceof Error
          ? error.message || String(error)
          : (typeof error === 'string' && error) || `validate threw ${String(error)}`;
    }
    if (problem)
      fail(
        'args',
        `rejected by worker "${worker}": ${typeof problem === 'string' ? problem : describeValue(problem)}`,
      );
  }

  const queue = job.queue ?? definition?.queue ?? 'default';
  if (typeof queue !== 'string' || !isPlainIdentifier(queue, MAX_QUEUE_LENGTH)) {
    fail(
      'queue',
      `must be a plain lower-case identifier ([a-z_][a-z0-9_]*, at most ${MAX_QUEUE_LENGTH} bytes), got ${showValue(queue)}`,
    );
  }
  const priority = job.priority ?? definition?.priority ?? 0;
  if (typeof priority !== 'number' || !Number.isInteger(priority) || priority < 0 || priority > 3) {
    fail(
      'priority',
      `must be an integer from 0 to 3 (0 runs first), got ${describeValue(priority)}`,
    );
  }
  const maxAttempts = job.maxAttempts ?? definition?.maxAttempts ?? 20;
  if (
    typeof maxAttempts !== 'number' ||
    !Number.isInteger(maxAttempts) ||
    maxAttempts < 1 ||
    maxAttempts > MAX_ATTEMPTS_LIMIT
  ) {
    fail(
      'maxAttempts',
      `must be an integer from 1 to ${MAX_ATTEMPTS_LIMIT}, got ${describeValue(maxAttempts)}`,
    );
  }
  const tags = job.tags ?? definition?.tags ?? [];
  const tagsWrong = tagsProblem(tags);
  if (tagsWrong !== null) fail('tags', tagsWrong);
  const meta = job.meta ?? {};
  if (!isPlainObject(meta)) fail('meta', 'must be a plain JSON object');
  try {
    assertJsonValue(meta, `${where}.meta`);
  } catch (error) {
    if (error instanceof JsonValueError) throw new InsertError(error.message, 'meta');
    throw error;
  }

  let scheduledAt: string | null = null;
  let scheduleIn: number | null = null;
  if (job.scheduledAt !== undefined && job.scheduleIn !== undefined) {
    fail('scheduleIn', 'give either scheduledAt or scheduleIn, not both');
  }
  if (job.scheduledAt !== undefined) {
    const at = job.scheduledAt;
    if (!(at instanceof Date) || Number.isNaN(at.getTime()))
      fail('scheduledAt', `must be a valid Date, got ${describeValue(at)}`);
    const time = (at as Date).getTime();
    if (time < MIN_SCHEDULED_AT || time > MAX_SCHEDULED_AT) {
      fail(
        'scheduledAt',
        `must be from 1970-01-01 to 9999-12-31 (UTC), got ${(at as Date).toISOString()}`,
      );
    }
    scheduledAt = (at as Date).toISOString();
  }
  if (job.scheduleIn !== undefined) {
    const seconds = job.scheduleIn;
    if (
      typeof seconds !== 'number' ||
      !Number.isFinite(seconds) ||
      seconds < 0 ||
      seconds > MAX_SCHEDULE_IN
    ) {
      fail(
        'scheduleIn',
        `must be a number of seconds from 0 to ${MAX_SCHEDULE_IN} (100 years), got ${describeValue(seconds)}`,
      );
    }
    scheduleIn = seconds as number;
  }

  let unique: UniqueSpec | null;
  try {
    unique = uniqueSpec(job.unique === undefined ? definition?.unique : job.unique, {
      worker,
      queue: queue as string,
      args: args as Record<string, unknown>,
    });
  } catch (error) {
    if (error instanceof UniqueOptionError)
      throw new InsertError(`${where}.${error.message}`, 'unique');
    throw error;
  }
  return {
    row: {
      queue: queue as string,
      worker,
      args: args as Record<string, unknown>,
      meta: meta as Record<string, unknown>,
      tags: tags as string[],
      max_attempts: maxAttempts as number,
      priority: priority as number,
      scheduled_at: scheduledAt,
      schedule_in: scheduleIn,
    },
    unique,
    definition,
  };
}

/** What is wrong with a list of tags, or null: a worker's load checks its tags as an insert does. */
export function tagsProblem(tags: unknown): string | null {
  if (!Array.isArray(tags)) return 'must be an array of non-empty strings';
  // Indexed, not every/findIndex: those skip the holes of a sparse array ([, 'a']).
  for (let i = 0; i < tags.length; i++) {
    const tag: unknown = tags[i];
    if (typeof tag !== 'string' || tag.length === 0)
      return `must be an array of non-empty strings, got ${describeValue(tag)} at tags[${i}]`;
    if (tag.includes('\u0000'))
      return `tags[${i}] contains a NUL character (\\u0000), which PostgreSQL cannot store`;
    // Tags travel to the server as JSON, which refuses half of a surrogate pair.
    if (hasLoneSurrogate(tag))
      return `tags[${i}] contains a lone UTF-16 surrogate, which PostgreSQL cannot store`;
  }
  return null;
}

function describeValue(value: unknown): string {
  if (value instanceof Date) return 'an invalid Date';
  return showValue(value);
}

export type { InsertJob };
