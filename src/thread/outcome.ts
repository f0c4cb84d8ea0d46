// Turns whatever perform returned or threw into one of the documented outcomes. Runs inside the
// worker thread, so that a value that cannot cross the thread boundary (a function, a cycle) is
// handled where it arises, and only plain data comes back to the main thread.

import { cleanString, promiseCatch, promiseThen, toStorableJson } from '../jobs/json.js';

export type ThreadOutcome =
  | { kind: 'completed'; result: unknown; warning: string | null }
  | { kind: 'failed'; error: string; warning: string | null }
  | { kind: 'cancelled'; reason: string; warning: string | null }
  | { kind: 'discarded'; reason: string; warning: string | null }
  | { kind: 'snoozed'; seconds: number; warning: string | null };

/** Longest text kept for an error or a reason (a stack trace fits; a megabyte of log does not). */
export const MAX_OUTCOME_TEXT = 20000;

/**
 * The longest snooze accepted: a year (365 days). Nothing a job waits for is further away, and
 * a longer one is almost surely a unit slip (a day in milliseconds, 86,400,000, is 2.7 years of
 * seconds) or a value computed wrong (1e12 s would be year 33,700); PostgreSQL cannot even store
 * a time past the year 294,276, so an unbounded snooze could leave an outcome that cannot be
 * written.
 */
export const MAX_SNOOZE_SECONDS = 365 * 24 * 60 * 60;

/**
 * The longest result kept, in characters of its JSON text: 64 MiB (67,108,864). A longer one
 * fails its job here, in the thread, so it never crosses to the main thread. PostgreSQL refuses
 * a jsonb string of 256 MB or more (SQLSTATE 54000), and the results of a batch of outcomes
 * travel as one array literal (each quote and backslash escaped, so up to twice as long), of at
 * most 256 Mi characters (MAX_OUTCOME_BATCH_CHARS in db/queries/jobs.ts; the writer splits a
 * longer batch); at 64 Mi characters (at most 3 UTF-8 bytes each) a result fits both.
 */
export const MAX_RESULT_LENGTH = 64 * 1024 * 1024;

/**
 * What perform threw, as text for the job's errors; never throws. A thrown value is user code:
 * an Error whose `message` or `stack` getter throws, or a Proxy whose traps throw, once escaped
 * from here (outside the job's context, after perform returned) and killed the thread, and
 * every neighbour job on it was charged a failed attempt.
 */
export function describeError(error: unknown): string {
  try {
    return describeErrorOrThrow(error);
  } catch (failure) {
    let why: string;
    try {
      why = describeErrorOrThrow(failure);
    } catch {
      why = 'reading it threw, and so did reading what that threw';
    }
    return cleanString(`could not read the error perform threw: ${why}`).slice(0, MAX_OUTCOME_TEXT);
  }
}

function describeErrorOrThrow(error: unknown): string {
  if (error instanceof Error) {
    // A stack that is not a string (set by hand or by a library) says nothing the name and the
    // message do not: it is left out rather than read as one.
    const stack = typeof error.stack === 'string' ? error.stack : '';
    const text = !stack
      ? `${error.name}: ${error.message}`
      : stack.includes(error.message)
        ? stack
        : `${error.name}: ${error.message}\n${stack}`;
    return cleanString(text).slice(0, MAX_OUTCOME_TEXT);
  }
  try {
    return cleanString(
      typeof error === 'string' ? error : (JSON.stringify(error) ?? String(error)),
    ).slice(0, MAX_OUTCOME_TEXT);
  } catch {
    // A cycle, or a toJSON that throws: an object says what it holds, as a returned { error }
    // does (String() of it is "[object Object]"); a BigInt its digits.
    return typeof error === 'object' && error !== null
      ? cleanString(`(${describeShape(error)}, which cannot be stored as JSON)`)
      : cleanString(String(error)).slice(0, MAX_OUTCOME_TEXT);
  }
}

/**
 * The text of a `{ error }`, `{ cancel }` or `{ discard }` value, and a warning if it had to be
 * changed to be stored. Strings are kept, Errors give their stack, other values their JSON;
 * a missing value (undefined, null, '') says so instead of storing "undefined".
 */
function outcomeText(value: unknown, field: string): { text: string; warning: string | null } {
  if (value === undefined || value === null || value === '') {
    const shown = value === '' ? '""' : String(value);
    return {
      text: `perform returned { ${field}: ${shown} }, with no ${field === 'error' ? 'error' : 'reason'} given`,
      warning: null,
    };
  }
  let text: string;
  let warning: string | null = null;
  if (typeof value === 'string') text = cleanString(value);
  else if (value instanceof Error) text = describeError(value);
  else if (value instanceof Promise) {
    // `{ error: fetchReason() }` with the await forgotten: stored as {}, it said nothing.
    // toStorableJson handles its rejection, which left unhandled would kill the thread.
    toStorableJson(value, field);
    text = `perform returned { ${field}: a promise } instead of its value (a missing await?)`;
  } else {
    const stored = toStorableJson(value, field);
    text =
      stored.value === null
        ? `(${describeShape(value)}, which cannot be stored as JSON)`
        : cleanString(JSON.stringify(stored.value));
    warning = stored.problem;
  }
  if (text.length > MAX_OUTCOME_TEXT) {
    warning ??= `${field}: ${text.length} characters, cut to ${MAX_OUTCOME_TEXT}`;
    text = text.slice(0, MAX_OUTCOME_TEXT);
  }
  return { text, warning };
}

function single(value: object, key: string): boolean {
  return key in value && Object.keys(value).length === 1;
}

function invalid(message: string): ThreadOutcome {
  return { kind: 'failed', error: `invalid return value: ${message}`, warning: null };
}

/**
 * What perform returned, as an outcome. The rule for odd values inside a documented shape: a
 * value that cannot be carried out (a snooze that is not a sane number of seconds) fails the job
 * with an error naming it, as no other outcome would be what was asked; a value that can be
 * carried out but had to be changed to be stored (a result holding NaN, a reason holding a
 * cycle) is carried out, with a warning naming what was changed.
 */
export function interpretReturn(value: unknown): ThreadOutcome {
  // Reading the value runs user code (getters, Proxy traps): if that throws, the job fails with
  // the reason, rather than the thread (see describeError).
  try {
    return interpretReturnOrThrow(value);
  } catch (error) {
    return {
      kind: 'failed',
      error: cleanString(
        `could not read the value perform returned: ${describeError(error)}`,
      ).slice(0, MAX_OUTCOME_TEXT),
      warning: null,
    };
  }
}

/**
 * A result whose serialisation threw (a cycle, a toJSON or getter that throws, a Proxy trap)
 * fails the job: completed with a NULL result, as it was, lost the job's output while the job
 * looked successful.
 */
function unstorable(problem: string | null): ThreadOutcome {
  return {
    kind: 'failed',
    error: cleanString(`could not read the value perform returned: ${problem ?? ''}`).slice(
      0,
      MAX_OUTCOME_TEXT,
    ),
    warning: null,
  };
}

/** A result over MAX_RESULT_LENGTH fails the job, naming its size and the limit. */
function tooLarge(length: number): ThreadOutcome {
  return {
    kind: 'failed',
    error: `the result is too large to store: its JSON is ${length} characters, more than the limit of ${MAX_RESULT_LENGTH} (64 MiB)`,
    warning: null,
  };
}

function interpretReturnOrThrow(value: unknown): ThreadOutcome {
  if (value === undefined || value === null || value === 'ok') {
    return { kind: 'completed', result: null, warning: null };
  }
  if (typeof value === 'object' && !Array.isArray(value)) {
    const record = value as Record<string, unknown>;
    if (single(record, 'ok')) {
      // `{ ok: undefined }` (an optional value that was not there) is `{ ok: null }`, quietly.
      if (record.ok === undefined) return { kind: 'completed', result: null, warning: null };
      const stored = toStorableJson(record.ok, 'result', MAX_RESULT_LENGTH);
      if (stored.tooLong !== undefined) return tooLarge(stored.tooLong);
      if (stored.threw) return unstorable(stored.problem);
      return { kind: 'completed', result: stored.value, warning: stored.problem };
    }
    if (single(record, 'error')) {
      const { text, warning } = outcomeText(record.error, 'error');
      return { kind: 'failed', error: text, warning };
    }
    // An error beside other keys (`{ error: 'not found', status: 404 }`, `{ ok: false, error }`)
    // is a failure: read as "any other value", it completed the job, with only a warning.
    if ('error' in record && record.error !== undefined && record.error !== null) {
      const { text, warning } = outcomeText(record.error, 'error');
      const others = Object.keys(record).filter((key) => key !== 'error');
      const note = `perform returned { error } with other keys (${others.slice(0, 5).join(', ')}): read as a failure; only the error is recorded`;
      return { kind: 'failed', error: text, warning: warning ? `${note}; ${warning}` : note };
    }
    if (single(record, 'cancel')) {
      const { text, warning } = outcomeText(record.cancel, 'cancel');
      return { kind: 'cancelled', reason: text, warning };
    }
    if (single(record, 'discard')) {
      const { text, warning } = outcomeText(record.discard, 'discard');
      return { kind: 'discarded', reason: text, warning };
    }
    if (single(record, 'snooze')) {
      const seconds = record.snooze;
      // Above 0: a snooze of 0 runs the job again at once without using up an attempt, a loop
      // that nothing ends. At most MAX_SNOOZE_SECONDS (a year): see there.
      if (
        typeof seconds === 'number' &&
        Number.isFinite(seconds) &&
        seconds > 0 &&
        seconds <= MAX_SNOOZE_SECONDS
      ) {
        return { kind: 'snoozed', seconds, warning: null };
      }
      return invalid(
        `{ snooze } needs a number of seconds above 0 and at most ${MAX_SNOOZE_SECONDS} (a year), got ${describeNumber(seconds)}`,
      );
    }
  }
  // An Error returned instead of thrown (`return error` in a catch) is a failure: read as "any
  // other value", it completed the job with {} as its result (an Error's own keys are none), and
  // its message was lost.
  if (value instanceof Error) {
    return {
      kind: 'failed',
      error: describeError(value),
      warning: 'perform returned an Error instead of throwing it: read as a failure',
    };
  }
  // Documented rule (as Oban): any other value means success; it is stored if it can be, and a
  // warning says the return value was not one of the documented outcomes.
  const stored = toStorableJson(value, 'result', MAX_RESULT_LENGTH);
  if (stored.tooLong !== undefined) return tooLarge(stored.tooLong);
  if (stored.threw) return unstorable(stored.problem);
  return {
    kind: 'completed',
    result: stored.value,
    warning: `perform returned a value that is not a documented outcome (${describeShape(value)}); treated as completed${stored.problem ? `; ${stored.problem}` : ''}`,
  };
}

function describeShape(value: unknown): string {
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'object' && value !== null)
    return `an object with keys ${Object.keys(value).slice(0, 5).join(', ') || '(none)'}`;
  return typeof value;
}

/** A snooze value as the error shows it: JSON.stringify would print NaN and Infinity as null. */
function describeNumber(value: unknown): string {
  if (typeof value === 'number' || typeof value === 'boolean' || value === null)
    return String(value);
  if (typeof value === 'string') return `the string ${JSON.stringify(value.slice(0, 40))}`;
  return describeShape(value);
}

/** How long a job that threw a promise waits for it to settle, to name what it rejected with. */
const THROWN_PROMISE_WAIT_MS = 100;

/**
 * `value` as a promise when it is a native promise (`native`) or another thenable, else null.
 * Never throws: `instanceof` on a Proxy and a `then` getter may, and such a value is then
 * described as any other.
 */
function asThenable(value: unknown): { promise: PromiseLike<unknown>; native: boolean } | null {
  if (value === null || (typeof value !== 'object' && typeof value !== 'function')) return null;
  try {
    if (value instanceof Promise) return { promise: value, native: true };
    return typeof (value as { then?: unknown }).then === 'function'
      ? { promise: value as PromiseLike<unknown>, native: false }
      : null;
  } catch {
    return null;
  }
}

/**
 * When perform threw (`how`: 'threw') or rejected with ('rejected with') a promise rather than an
 * error, usually `throw somethingAsync()` with the `await` forgotten: handles it and calls
 * `done` with the job's error text once it settles, or after THROWN_PROMISE_WAIT_MS, and
 * returns true; returns false for any other value. Stored as it was, it read `{}`, and a
 * rejected one, left unhandled, killed the thread and charged every job on it. A thenable is
 * settled as `await` would, through `inContext` (the job's context on a thread).
 */
export function describeThrownPromise(
  value: unknown,
  how: string,
  done: (error: string) => void,
  inContext: (run: () => Promise<unknown>) => Promise<unknown> = (run) => run(),
): boolean {
  const thrown = asThenable(value);
  if (thrown === null) return false;
  const prefix = `perform ${how} a promise instead of an error (a missing await?)`;
  let settled = false;
  const settle = (text: string): void => {
    if (settled) return;
    settled = true;
    clearTimeout(timer);
    done(text);
  };
  const timer = setTimeout(
    () => settle(`${prefix}; it had not settled ${THROWN_PROMISE_WAIT_MS} ms later`),
    THROWN_PROMISE_WAIT_MS,
  );
  try {
    // Promise.resolve calls a thenable's `then` only in a later microtask, and never throws.
    const promise = thrown.native
      ? (thrown.promise as Promise<unknown>)
      : inContext(() => Promise.resolve(thrown.promise));
    promiseThen(
      promise,
      (result) => settle(`${prefix}; it resolved to ${describeSettled(result)}`),
      (reason) => settle(`${prefix}; it rejected with ${describeSettled(reason)}`),
    );
  } catch (error) {
    // A native promise whose `constructor` getter throws (`then` reads it).
    settle(`${prefix}; reading it threw: ${describeError(error)}`);
  }
  return true;
}

/** What a thrown promise settled to; a promise in turn is handled, not described. */
function describeSettled(value: unknown): string {
  const thenable = asThenable(value);
  if (thenable === null) return describeError(value);
  if (thenable.native) promiseCatch(thenable.promise as Promise<unknown>);
  return 'another promise';
}
