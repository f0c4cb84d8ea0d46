// How values travel to the statements of jobs.ts, apart from the SQL: the shape of an insert
// batch, the notification it sends, times as PostgreSQL computes them, and outcomes as array
// literals. Pure functions, each measured against the form it replaced (see each).

import { InsertError } from '../../jobs/insert.js';
import type { InsertRow, OutcomeRow } from './jobs.js';

/**
 * The row every row of the batch is but for its args (same queue, worker, attempts, priority; no
 * meta, tags or schedule), or null. Such a batch, the usual bulk insert, sends only its args per
 * row and the rest once (bench W1: 9.2 -> 6 ms per batch of 1,000 in a loop, 105k -> 150k
 * jobs/s; jsonb_to_recordset converted every field of every row through its text form).
 */
export function uniform(rows: InsertRow[]): InsertRow | null {
  const first = rows[0]!;
  for (const row of rows) {
    if (
      row.queue !== first.queue ||
      row.worker !== first.worker ||
      row.max_attempts !== first.max_attempts ||
      row.priority !== first.priority ||
      row.scheduled_at !== null ||
      row.schedule_in !== null ||
      row.tags.length > 0
    )
      return null;
    for (const _ in row.meta) return null;
  }
  return first;
}

/**
 * The outcomes as one array per column, and their count. Arrays rather than one JSON document
 * (jsonb_to_recordset): the statement's share of PostgreSQL CPU per job halved (bench W2 drain,
 * measured on the backend: ~9 -> ~4.5 us per outcome), as arrays of base types are read without
 * a JSON parse and a conversion per field. A result goes as its JSON text, cast in the statement.
 */
export function outcomeColumns(
  outcomes: OutcomeRow[],
  maxChars = MAX_OUTCOME_BATCH_CHARS,
): unknown[] {
  const n = outcomes.length;
  const ids = new Array<number>(n);
  const tokens = new Array<string>(n);
  const states = new Array<string>(n);
  const delays = new Array<number | null>(n);
  const errors = new Array<string | null>(n);
  const results = new Array<string | null>(n);
  const refunds = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    const o = outcomes[i]!;
    ids[i] = o.id;
    tokens[i] = o.token;
    states[i] = o.state;
    delays[i] = o.delay;
    errors[i] = o.error;
    results[i] = resultText(o);
    refunds[i] = o.refund;
  }
  // Written as array literals here rather than by pg (which quotes and escapes every element
  // through a generic path: ~1.2 us of the main thread per outcome in bench W2).
  const errorsLiteral = textArray(errors);
  const resultsLiteral = textArray(results);
  checkBatchSize(n, errorsLiteral.length + resultsLiteral.length, maxChars);
  return [
    numberArray(ids),
    textArray(tokens),
    textArray(states),
    numberArray(delays),
    errorsLiteral,
    resultsLiteral,
    numberArray(refunds),
    n,
  ];
}

/**
 * Whether every outcome of the batch is a plain completion: no error, no next run, no attempt
 * given back. Such a batch, the usual one, goes through the statement that only completes
 * (JobQueries, completeSql), with three columns instead of seven.
 */
export function onlyCompletions(outcomes: OutcomeRow[]): boolean {
  for (const o of outcomes)
    if (o.state !== 'completed' || o.error !== null || o.delay !== null || o.refund !== 0)
      return false;
  return true;
}

/** The columns of a batch of plain completions (see onlyCompletions): ids, tokens, results. */
export function completionColumns(
  outcomes: OutcomeRow[],
  maxChars = MAX_OUTCOME_BATCH_CHARS,
): unknown[] {
  const n = outcomes.length;
  const ids = new Array<number>(n);
  const tokens = new Array<string>(n);
  const results = new Array<string | null>(n);
  for (let i = 0; i < n; i++) {
    const o = outcomes[i]!;
    ids[i] = o.id;
    tokens[i] = o.token;
    results[i] = resultText(o);
  }
  const resultsLiteral = textArray(results);
  checkBatchSize(n, resultsLiteral.length, maxChars);
  return [numberArray(ids), textArray(tokens), resultsLiteral, n];
}

function resultText(o: OutcomeRow): string | null {
  return o.result === null || o.result === undefined ? null : JSON.stringify(o.result);
}

function checkBatchSize(n: number, chars: number, maxChars: number): void {
  // The writer splits a batch on RangeError (see OutcomeWriter.write), as for a string too
  // long for V8: a statement near PostgreSQL's 1 GB message limit would be refused with a
  // broken connection, retried whole, and hold every outcome of the node behind it.
  if (chars > maxChars)
    throw new RangeError(
      `outcome batch of ${n} jobs is ${chars} characters of results and errors, more than ${maxChars}`,
    );
}

/**
 * The most characters of results and errors one outcome statement carries: 256 Mi, at most
 * 768 MB of UTF-8, under PostgreSQL's 1 GB limit on a message. One result of the thread's
 * largest (64 Mi characters, twice that once escaped) always fits.
 */
export const MAX_OUTCOME_BATCH_CHARS = 256 * 1024 * 1024;

const ARRAY_ESCAPE = /[\\"]/;

/** A PostgreSQL array literal of texts: each element quoted (so NULL is only a null). */
export function textArray(values: (string | null)[]): string {
  let out = '{';
  for (let i = 0; i < values.length; i++) {
    if (i > 0) out += ',';
    const value = values[i];
    if (value === null || value === undefined) out += 'NULL';
    else out += `"${ARRAY_ESCAPE.test(value) ? value.replace(/[\\"]/g, '\\$&') : value}"`;
  }
  return `${out}}`;
}

/** A PostgreSQL array literal of finite numbers (NULL for null). */
export function numberArray(values: (number | null)[]): string {
  let out = '{';
  for (let i = 0; i < values.length; i++) {
    if (i > 0) out += ',';
    const value = values[i];
    out += value === null || value === undefined ? 'NULL' : String(value);
  }
  return `${out}}`;
}

/**
 * The microseconds make_interval(secs => seconds) holds: PostgreSQL rounds seconds x 1e6 to the
 * nearest integer, halves to even (rint). Adding seconds to now() in floating-point milliseconds
 * instead put the returned scheduledAt a millisecond off the stored one near a millisecond's edge.
 */
export function intervalMicros(seconds: number): number {
  const micros = seconds * 1e6;
  const rounded = Math.round(micros);
  return rounded - micros === 0.5 && rounded % 2 !== 0 ? rounded - 1 : rounded;
}

/** Epoch microseconds to the milliseconds pg reads from such a timestamp (truncated). */
export function toMillis(micros: number): number {
  return (micros - (((micros % 1000) + 1000) % 1000)) / 1000;
}

/**
 * The notification of an insert: the queues of the batch ('*' for every queue when the list is
 * too long for a payload). Sent only if some job is available at once. A job with `scheduleIn`
 * is left out (now() + a positive interval is later than now() on the server, whatever the
 * clocks say). One with `scheduledAt` is not: by this machine's clock it may be due or not, and
 * the server decides; a queue that got only such future jobs in a batch with available ones is
 * woken for nothing, which costs it one empty fetch (the database no longer sorts the queues of
 * every batch, see insert).
 */
export function notifyPayload(rows: InsertRow[]): string {
  const queues = new Set<string>();
  for (const row of rows)
    if (!(row.schedule_in !== null && row.schedule_in > 0)) queues.add(row.queue);
  const list = [...queues].join(',');
  return list.length > MAX_NOTIFIED_QUEUES_LENGTH ? '*' : list;
}

/**
 * The longest list of queues a notification names; a longer one is sent as '*' (every queue),
 * well below PostgreSQL's 8000-byte payload limit.
 */
const MAX_NOTIFIED_QUEUES_LENGTH = 4000;

/**
 * The body of a CTE that sends one notification on `channel` (an SQL expression) naming the
 * queues `queues` (a SELECT with a `queue` column) yields, each once; none when it yields none.
 * Every statement that makes jobs available on the server (staging, rescue, a unique replace,
 * an outcome giving a job back) wakes their queues with it.
 */
export function notifyQueues(channel: string, queues: string): string {
  return `SELECT pg_notify(${channel},
                 CASE WHEN length(q.queues) > ${MAX_NOTIFIED_QUEUES_LENGTH} THEN '*' ELSE q.queues END)
        FROM (SELECT string_agg(DISTINCT queue, ',') AS queues FROM (${queues}) a) q
        WHERE q.queues IS NOT NULL`;
}

/**
 * The most bytes PostgreSQL keeps in one jsonb value (2^28 - 1). An insert sends its whole batch
 * as one jsonb array, so this bounds the batch, not each job.
 */
export const MAX_JSONB_BYTES = 2 ** 28 - 1;

/**
 * The JSON text of an insert batch, refused before it is sent when it cannot fit in one jsonb
 * value: a text that long, or one past V8's string length (a RangeError). Before, the first came
 * back as PostgreSQL's "total size of jsonb array elements exceeds the maximum", the second as a
 * bare "Invalid string length", neither naming the insert's args.
 */
export function batchJson(value: unknown, count: number): string {
  let text: string;
  try {
    text = JSON.stringify(value);
  } catch (error) {
    if (error instanceof RangeError) throw tooLarge(count, 'more JSON than a string holds');
    throw error;
  }
  // Each character is at least one byte of UTF-8.
  if (text.length > MAX_JSONB_BYTES)
    throw tooLarge(count, `${Math.round(text.length / 2 ** 20)} MiB of JSON`);
  return text;
}

/** The insert error for a batch PostgreSQL cannot hold in one jsonb value. */
function tooLarge(count: number, size: string): InsertError {
  return count === 1
    ? new InsertError(
        `args: ${size} with its meta, more than PostgreSQL keeps in one jsonb value (256 MiB)`,
        'args',
      )
    : new InsertError(
        `jobs: the ${count} jobs' args and meta come to ${size}, more than one insert carries (PostgreSQL keeps 256 MiB in one jsonb value); insert fewer jobs at a time`,
        'jobs',
      );
}

/** PostgreSQL's "program limit exceeded" (a jsonb too large, near the limit in UTF-8) as such. */
export function insertLimitError(error: unknown, count: number): unknown {
  const e = error as { code?: string; message?: string } | null;
  return e?.code === '54000'
    ? tooLarge(count, `more JSON than PostgreSQL took (${e.message})`)
    : error;
}
