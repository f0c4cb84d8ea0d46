// drainQueue: runs a queue's available jobs to the end, one at a time in fetch order (priority,
// scheduled time, id), in the test's own thread, and records each outcome exactly as a node
// would (same rules, same columns). For suites that insert with `testing: 'manual'`.

import { randomUUID } from 'node:crypto';
import { isPlainObject, suggest } from '../config/validate.js';
import { isPlainIdentifier, MAX_QUEUE_LENGTH } from '../db/identifiers.js';
import { TestingQueries } from '../db/queries/testing.js';
import { showValue } from '../jobs/json.js';
import { jobOf } from '../jobs/types.js';
import { outcomeRow } from '../queue/producer.js';
import type { RunResult } from '../queue/threads.js';
import { quernFor, type WithQuern } from './context.js';
import { takesSignal } from '../worker/registry.js';
import { runPerform } from './perform.js';

export interface DrainOptions extends WithQuern {
  queue: string;
  /** First make the queue's scheduled and retryable jobs available, whatever their time. */
  withScheduled?: boolean;
  /** Keep going until the queue is empty, running jobs inserted by the drained jobs too. */
  withRecursion?: boolean;
  /** Run at most this many jobs. */
  withLimit?: number;
  /** false: rethrow what a job threw (after recording it), to see its stack in the test. */
  withSafety?: boolean;
}

export interface DrainResult {
  completed: number;
  /** Failed attempts that will be retried (the job is retryable). */
  failed: number;
  cancelled: number;
  /** Discarded: by returning { discard }, or by failing its last attempt. */
  discarded: number;
  snoozed: number;
}

const KEYS = ['queue', 'withScheduled', 'withRecursion', 'withLimit', 'withSafety', 'quern'];

/**
 * Runs the queue's available jobs. Without `withRecursion`, only the jobs available when it
 * starts; with it, until none is left. A job snoozed during the drain is not run again by
 * the same drain (it would loop forever).
 */
export async function drainQueue(options: DrainOptions): Promise<DrainResult> {
  const given: unknown = options;
  if (!isPlainObject(given)) throw new TypeError('drainQueue: expected { queue }');
  for (const key of Object.keys(options)) {
    if (!KEYS.includes(key))
      throw new TypeError(`drainQueue: unknown option "${key}"${suggest(key, KEYS)}`);
  }
  if (typeof options.queue !== 'string' || options.queue.length === 0)
    throw new TypeError('drainQueue: queue is required');
  // A name no job can have ('Mailers', 'mail ers') drained nothing and returned zero counts.
  if (!isPlainIdentifier(options.queue, MAX_QUEUE_LENGTH))
    throw new TypeError(
      `drainQueue: queue: ${showValue(options.queue)} is not a queue name (a plain lower-case identifier, [a-z_][a-z0-9_]*, at most ${MAX_QUEUE_LENGTH} bytes)`,
    );
  const limit = options.withLimit ?? Infinity;
  if (limit !== Infinity && !(Number.isInteger(limit) && limit >= 1))
    throw new TypeError(`drainQueue: withLimit must be an integer of at least 1, got ${limit}`);
  const quern = quernFor(options, 'drainQueue');
  const queries = new TestingQueries(quern.schema);
  const { queue } = options;
  const token = `drain-${randomUUID().slice(0, 8)}`;
  const counts: DrainResult = { completed: 0, failed: 0, cancelled: 0, discarded: 0, snoozed: 0 };
  const snoozed: number[] = [];
  let ran = 0;
  let sequence = 0;

  let only: number[] | null = null;
  if (options.withScheduled) await queries.stage(quern.pool, queue, snoozed);
  if (!options.withRecursion) only = await queries.availableIds(quern.pool, queue);

  while (ran < limit) {
    let record = await queries.claimNext(
      quern.pool,
      queue,
      only,
      'drain',
      `${token}.${++sequence}`,
    );
    if (!record && options.withRecursion && options.withScheduled) {
      // Retries (and jobs scheduled by the drained jobs) run too, until the queue is empty.
      if ((await queries.stage(quern.pool, queue, snoozed)) > 0)
        record = await queries.claimNext(
          quern.pool,
          queue,
          null,
          'drain',
          `${token}.${++sequence}`,
        );
    }
    if (!record) break;
    ran++;
    const definition = await quern.workerDefinition(record.worker);
    const job = jobOf(record);
    let result: RunResult;
    let thrown: unknown;
    if (!definition) {
      result = {
        kind: 'outcome',
        outcome: {
          kind: 'failed',
          error: `unknown worker ${JSON.stringify(record.worker)}: no worker of that name is known to this client (pass workers to the Quern client)`,
          warning: null,
        },
      };
    } else {
      const run = await runPerform(definition, job);
      thrown = run.thrown;
      result =
        run.timedOut !== null
          ? { kind: 'timeout', timeoutMs: run.timedOut, outcome: null }
          : { kind: 'outcome', outcome: run.outcome };
    }
    const registered = definition
      ? { definition, file: '(drainQueue)', takesSignal: takesSignal(definition) }
      : undefined;
    const row = outcomeRow(record, job, registered, result, record.attemptedBy?.[1] ?? '');
    await quern.jobs.recordOutcomes(quern.pool, [row]);
    switch (row.state) {
      case 'completed':
        counts.completed++;
        break;
      case 'retryable':
        counts.failed++;
        break;
      case 'discarded':
        counts.discarded++;
        break;
      case 'cancelled':
        counts.cancelled++;
        break;
      case 'scheduled':
        counts.snoozed++;
        snoozed.push(record.id);
        break;
      default:
        break;
    }
    // Rethrown as thrown: the test wants the job's own error and stack.
    // eslint-disable-next-line @typescript-eslint/only-throw-error
    if (options.withSafety === false && thrown !== undefined) throw thrown;
  }
  return counts;
}
