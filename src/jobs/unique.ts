// Unique jobs at the insert edge: validates `unique` options (per insert or from the worker) and
// derives the job's unique key, a SHA-256 of the compared fields as canonical JSON (object keys
// sorted at every depth, so the key order inside args never matters).

import { createHash } from 'node:crypto';
import { isPlainObject, suggest } from '../config/validate.js';
import { showValue } from './json.js';
import { JOB_STATES, type JobState } from './types.js';

export const UNIQUE_FIELDS = ['args', 'queue', 'worker'] as const;
export type UniqueField = (typeof UNIQUE_FIELDS)[number];

export const REPLACE_FIELDS = [
  'args',
  'scheduledAt',
  'priority',
  'maxAttempts',
  'tags',
  'meta',
  'queue',
] as const;
export type ReplaceField = (typeof REPLACE_FIELDS)[number];

/** Every state but discarded and cancelled, as Oban: a job that was given up on is no duplicate. */
export const DEFAULT_UNIQUE_STATES: readonly JobState[] = [
  'scheduled',
  'available',
  'executing',
  'retryable',
  'completed',
];

/** Oban's default: a job inserted within the last minute is a duplicate. */
export const DEFAULT_UNIQUE_PERIOD = 60;
/**
 * The longest period, 100 years (an insert's longest scheduleIn): now() minus a period of ~1.5e11
 * seconds or more is before PostgreSQL's first timestamp, and the insert failed with a raw
 * DatabaseError (timestamp out of range). 'infinity' says "as long as jobs are kept".
 */
export const MAX_UNIQUE_PERIOD = 100 * 365 * 86400;

const UNIQUE_KEYS = ['period', 'fields', 'keys', 'states', 'replace'] as const;

export interface UniqueOptions<Args = Record<string, unknown>> {
  /** Seconds (default 60), or 'infinity' for as long as jobs are retained. */
  period?: number | 'infinity';
  /** What to compare (default all three). */
  fields?: UniqueField[];
  /** Compare only these keys of the args. */
  keys?: (keyof Args & string)[];
  /** States in which an existing job counts as a duplicate (default all but discarded, cancelled). */
  states?: JobState[];
  /** On conflict, copy these fields of the new job onto the existing one when it is waiting to run. */
  replace?: ReplaceField[];
}

export interface UniqueSpec {
  /** Hex SHA-256 of the compared fields; stored in jobs.unique_key. */
  key: string;
  states: JobState[];
  /** Seconds, or null for infinity. */
  period: number | null;
  replace: ReplaceField[];
}

export class UniqueOptionError extends Error {
  constructor(
    message: string,
    readonly field: string,
  ) {
    super(message);
  }
}

function listOf<T extends string>(
  value: unknown,
  allowed: readonly T[],
  field: string,
  options: { nonEmpty: boolean },
): T[] {
  if (!Array.isArray(value)) {
    throw new UniqueOptionError(
      `unique.${field}: expected an array of ${allowed.map((a) => `"${a}"`).join(', ')}`,
      field,
    );
  }
  if (options.nonEmpty && value.length === 0)
    throw new UniqueOptionError(`unique.${field}: must not be empty`, field);
  for (const item of value) {
    if (typeof item !== 'string' || !(allowed as readonly string[]).includes(item)) {
      throw new UniqueOptionError(
        `unique.${field}: ${showValue(item)} is not one of ${allowed.join(', ')}${typeof item === 'string' ? suggest(item, allowed) : ''}`,
        field,
      );
    }
  }
  return [...new Set(value as T[])];
}

/** Sorts object keys at every depth so equal values always serialise the same. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const record = value as Record<string, unknown>;
    const entries = Object.keys(record)
      .filter((k) => record[k] !== undefined)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonicalJson(record[k])}`);
    return `{${entries.join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

/**
 * Validates `unique` (already known to be present) and computes the key of this job. `false` or
 * `null` on an insert turns off the worker's uniqueness for that insert.
 */
export function uniqueSpec(
  options: unknown,
  job: { worker: string; queue: string; args: Record<string, unknown> },
): UniqueSpec | null {
  if (options === false || options === null || options === undefined) return null;
  if (!isPlainObject(options))
    throw new UniqueOptionError(
      'unique: expected { period, fields, keys, states, replace }, or false',
      'unique',
    );
  for (const key of Object.keys(options)) {
    if (!(UNIQUE_KEYS as readonly string[]).includes(key)) {
      throw new UniqueOptionError(
        `unique: unknown option "${key}"${suggest(key, UNIQUE_KEYS)}`,
        key,
      );
    }
  }
  let period: number | null = DEFAULT_UNIQUE_PERIOD;
  if (options.period === 'infinity') period = null;
  else if (options.period !== undefined) {
    const p = options.period;
    if (typeof p !== 'number' || !Number.isFinite(p) || p <= 0 || p > MAX_UNIQUE_PERIOD) {
      throw new UniqueOptionError(
        `unique.period: expected a number of seconds above 0 and at most ${MAX_UNIQUE_PERIOD} (100 years), or "infinity", got ${showValue(p)}`,
        'period',
      );
    }
    period = p;
  }
  const fields =
    options.fields === undefined
      ? [...UNIQUE_FIELDS]
      : listOf(options.fields, UNIQUE_FIELDS, 'fields', { nonEmpty: true });
  let keys: string[] | null = null;
  if (options.keys !== undefined) {
    if (
      !Array.isArray(options.keys) ||
      !options.keys.every((k) => typeof k === 'string' && k.length > 0)
    ) {
      throw new UniqueOptionError('unique.keys: expected an array of non-empty arg names', 'keys');
    }
    // An empty list compared none of the args, so every job of the worker and queue was a
    // duplicate of every other (Oban reads it as all args); neither is what it says.
    if (options.keys.length === 0)
      throw new UniqueOptionError(
        'unique.keys: an empty list would compare none of the args; leave keys out to compare all args, or leave "args" out of fields to ignore them',
        'keys',
      );
    if (!fields.includes('args')) {
      throw new UniqueOptionError(
        'unique.keys: names keys of the args, so fields must include "args"',
        'keys',
      );
    }
    keys = [...new Set(options.keys as string[])];
    // Oban compares the listed keys that the args have (Map.take) and never checks the list.
    // We refuse a key the args object does not have at all: a misspelt key ('acount') would
    // otherwise leave the job compared on the other keys only (on none, if it was the only
    // one), so unrelated jobs would count as duplicates and their inserts be dropped without a
    // word. An optional arg still works: the caller gives it with null (or undefined) as its
    // value, which says "no value" on purpose rather than by a typo.
    const missing = keys.filter((k) => !Object.hasOwn(job.args, k));
    if (missing.length > 0) {
      const have = Object.keys(job.args);
      const [one, them] = missing.length === 1 ? ['is not a key', 'it'] : ['are not keys', 'them'];
      throw new UniqueOptionError(
        `unique.keys: ${missing.map((k) => JSON.stringify(k)).join(', ')} ${one} of this job's args${suggest(missing[0]!, have)}; its args have ${have.length === 0 ? 'no keys' : have.slice(0, 10).join(', ')}. Give ${them} in the args (null when there is no value) or leave ${them} out of keys`,
        'keys',
      );
    }
  }
  const states =
    options.states === undefined
      ? [...DEFAULT_UNIQUE_STATES]
      : listOf(options.states, JOB_STATES, 'states', { nonEmpty: true });
  const replace =
    options.replace === undefined
      ? []
      : listOf(options.replace, REPLACE_FIELDS, 'replace', { nonEmpty: false });

  const compared: Record<string, unknown> = {};
  if (fields.includes('worker')) compared.worker = job.worker;
  if (fields.includes('queue')) compared.queue = job.queue;
  if (fields.includes('args')) {
    compared.args =
      keys === null ? job.args : Object.fromEntries(keys.map((k) => [k, job.args[k]]));
  }
  const key = createHash('sha256').update(canonicalJson(compared)).digest('hex');
  return { key, states, period, replace };
}

/**
 * The advisory lock key for a unique key in one schema: the first 8 bytes of a SHA-256, as the
 * signed bigint pg_advisory_xact_lock takes. A collision only makes two keys wait for each other.
 */
export function uniqueLockKey(schema: string, key: string): string {
  return createHash('sha256')
    .update(`quern:unique:${schema}:${key}`)
    .digest()
    .readBigInt64BE(0)
    .toString();
}
