// performJob: runs one worker's perform in the caller's own thread, after the same checks an
// insert makes (args, options, the worker's validate hook), and reports what the runtime would
// do with the outcome. Also what `testing: 'inline'` and drainQueue run jobs with.

import { isPlainObject, suggest } from '../config/validate.js';
import { InsertError, normalizeInsert } from '../jobs/insert.js';
import { showValue } from '../jobs/json.js';
import type { Job, JobState } from '../jobs/types.js';
import {
  describeError,
  describeThrownPromise,
  interpretReturn,
  type ThreadOutcome,
} from '../thread/outcome.js';

/** What perform threw at once, kept apart from what its promise rejected with. */
class ThrownAtOnce extends Error {
  constructor(readonly thrown: unknown) {
    super('perform threw');
  }
}
import type { WorkerDefinition } from '../worker/define.js';
import { takesSignal, validateDefinition } from '../worker/registry.js';
import { quernFor, type WithQuern } from './context.js';

export interface PerformJobOptions extends WithQuern {
  /** The attempt perform sees (default 1); at most maxAttempts. */
  attempt?: number;
  maxAttempts?: number;
  queue?: string;
  priority?: number;
  tags?: string[];
  meta?: Record<string, unknown>;
  scheduledAt?: Date;
  /** The id perform sees (default 1: the job is not stored). */
  id?: number;
  insertedAt?: Date;
  /** An abort signal to hand to perform (default: one that fires on the worker's timeout). */
  signal?: AbortSignal;
}

const PERFORM_ONLY_KEYS = ['attempt', 'id', 'insertedAt', 'signal', 'quern'] as const;
const INSERT_KEYS = ['maxAttempts', 'queue', 'priority', 'tags', 'meta', 'scheduledAt'] as const;
const ALL_KEYS = [...PERFORM_ONLY_KEYS, ...INSERT_KEYS];

export interface PerformOutcome<Args = Record<string, unknown>> {
  /** completed, failed (threw or returned { error }), cancelled, discarded or snoozed. */
  kind: ThreadOutcome['kind'];
  /** The state the runtime would give the job (a failure is retryable until the last attempt). */
  state: JobState;
  /** What perform returned; undefined when it threw. */
  returned: unknown;
  /** What perform threw, as thrown (undefined when it returned). */
  thrown: unknown;
  /** The value stored as the job's result when completed. */
  result: unknown;
  /** The error text recorded for a failure. */
  error: string | null;
  /** The reason of a cancel or discard. */
  reason: string | null;
  /** Seconds of a snooze. */
  seconds: number | null;
  /** Set when perform returned something that is not a documented outcome. */
  warning: string | null;
  /** The job perform was given. */
  job: Job<Args>;
}

export class PerformJobError extends Error {
  override name = 'PerformJobError';
}

export function stateOf(outcome: ThreadOutcome, job: { attempt: number; maxAttempts: number }) {
  switch (outcome.kind) {
    case 'completed':
      return 'completed';
    case 'failed':
      return job.attempt >= job.maxAttempts ? 'discarded' : 'retryable';
    case 'cancelled':
      return 'cancelled';
    case 'discarded':
      return 'discarded';
    case 'snoozed':
      return 'scheduled';
  }
}

function timeoutOf(definition: WorkerDefinition<never>, job: Job): number | null {
  const timeout = definition.timeout as number | ((job: Job) => number) | undefined;
  if (timeout === undefined) return null;
  try {
    const ms = typeof timeout === 'function' ? timeout(job) : timeout;
    return typeof ms === 'number' && Number.isFinite(ms) && ms > 0 ? ms : null;
  } catch {
    return null;
  }
}

/**
 * Runs perform on `job` in this thread and interprets what it returned or threw. A worker past
 * its timeout gets its signal aborted and is recorded as a timeout failure.
 */
export async function runPerform(
  definition: WorkerDefinition<never>,
  job: Job,
  signal?: AbortSignal,
): Promise<{
  outcome: ThreadOutcome;
  returned: unknown;
  thrown: unknown;
  timedOut: number | null;
}> {
  const controller = new AbortController();
  const onAbort = (): void => controller.abort(signal?.reason);
  signal?.addEventListener('abort', onAbort, { once: true });
  const timeoutMs = timeoutOf(definition, job);
  let timer: NodeJS.Timeout | null = null;
  const timedOut = new Promise<'timeout'>((resolve) => {
    if (timeoutMs === null) return;
    timer = setTimeout(() => {
      controller.abort(new Error(`job timed out after ${timeoutMs} ms`));
      resolve('timeout');
    }, timeoutMs);
  });
  try {
    const settled = await Promise.race([
      Promise.resolve()
        // As on a node: no signal for a perform that cannot read one (takesSignal).
        .then(() => {
          try {
            return definition.perform(
              job as never,
              (takesSignal(definition) ? controller.signal : undefined) as AbortSignal,
            );
          } catch (error) {
            // Told apart from a rejection only to word a thrown promise as a node does.
            throw new ThrownAtOnce(error);
          }
        })
        .then(
          (returned: unknown) => ({ returned, thrown: undefined, threw: false, how: '' }),
          (error: unknown) =>
            error instanceof ThrownAtOnce
              ? { returned: undefined, thrown: error.thrown, threw: true, how: 'threw' }
              : { returned: undefined, thrown: error, threw: true, how: 'rejected with' },
        ),
      timedOut,
    ]);
    if (settled === 'timeout') {
      return {
        outcome: {
          kind: 'failed',
          error: `timeout: job timed out after ${timeoutMs} ms`,
          warning: null,
        },
        returned: undefined,
        thrown: undefined,
        timedOut: timeoutMs,
      };
    }
    // A promise thrown in place of an error is handled and named as on a node (its rejection,
    // left unhandled, ended the test process).
    const promised = settled.threw
      ? await new Promise<string | null>((resolve) => {
          if (!describeThrownPromise(settled.thrown, settled.how, resolve)) resolve(null);
        })
      : null;
    const outcome = settled.threw
      ? ({
          kind: 'failed',
          error: promised ?? describeError(settled.thrown),
          warning: null,
        } as const)
      : interpretReturn(settled.returned);
    return { outcome, returned: settled.returned, thrown: settled.thrown, timedOut: null };
  } finally {
    if (timer) clearTimeout(timer);
    signal?.removeEventListener('abort', onAbort);
  }
}

/**
 * Runs `worker`'s perform inline with `args`, after validating them (JSON, the worker's
 * validate hook) and the options, and returns the outcome. `worker` is a definition, or the
 * name of a worker the quern client knows (its `workers`; the client of useQuern, or
 * `{ quern }`). Nothing is read or written in the database; works under any test runner.
 */
export async function performJob<Args extends object>(
  worker: WorkerDefinition<Args>,
  args: NoInfer<Args>,
  options?: PerformJobOptions,
): Promise<PerformOutcome<Args>>;
export async function performJob(
  worker: string,
  args: Record<string, unknown>,
  options?: PerformJobOptions,
): Promise<PerformOutcome>;
export async function performJob(
  worker: WorkerDefinition<never> | string,
  args: object,
  options: PerformJobOptions = {},
): Promise<PerformOutcome> {
  const given: unknown = options;
  if (!isPlainObject(given)) throw new PerformJobError('performJob options: expected an object');
  const definition = await definitionOf(worker, options);
  for (const key of Object.keys(options)) {
    if (!ALL_KEYS.includes(key as (typeof ALL_KEYS)[number])) {
      throw new InsertError(
        `performJob options: unknown option "${key}"${suggest(key, ALL_KEYS)}`,
        key,
      );
    }
  }
  const insertOptions = Object.fromEntries(
    INSERT_KEYS.filter((k) => options[k] !== undefined).map((k) => [k, options[k]]),
  );
  const { row } = normalizeInsert(
    { worker: definition, args, ...insertOptions },
    () => undefined,
    'performJob',
  );
  const attempt = options.attempt ?? 1;
  if (!Number.isInteger(attempt) || attempt < 1 || attempt > row.max_attempts) {
    throw new InsertError(
      `performJob.attempt: must be an integer from 1 to maxAttempts (${row.max_attempts}), got ${showValue(attempt)}`,
      'attempt',
    );
  }
  const id = options.id ?? 1;
  if (!Number.isSafeInteger(id) || id < 1)
    throw new InsertError(`performJob.id: must be a positive integer, got ${String(id)}`, 'id');
  for (const key of ['insertedAt', 'scheduledAt'] as const) {
    const at = options[key];
    if (at !== undefined && (!(at instanceof Date) || Number.isNaN(at.getTime())))
      throw new InsertError(`performJob.${key}: must be a valid Date`, key);
  }
  if (options.signal !== undefined && !(options.signal instanceof AbortSignal))
    throw new InsertError('performJob.signal: must be an AbortSignal', 'signal');

  const now = new Date();
  const job: Job = {
    id,
    // As stored: a JSON round trip, so perform sees what it would see after an insert.
    args: JSON.parse(JSON.stringify(row.args)) as Record<string, unknown>,
    attempt,
    maxAttempts: row.max_attempts,
    queue: row.queue,
    worker: row.worker,
    tags: row.tags,
    meta: JSON.parse(JSON.stringify(row.meta)) as Record<string, unknown>,
    insertedAt: options.insertedAt ?? now,
    scheduledAt: options.scheduledAt ?? now,
  };
  const run = await runPerform(definition, job, options.signal);
  return toPerformOutcome(run, job);
}

/** A definition as given, or looked up by name in the workers of the quern client. */
async function definitionOf(
  worker: unknown,
  options: PerformJobOptions,
): Promise<WorkerDefinition<never>> {
  if (typeof worker === 'string') {
    let quern;
    try {
      quern = quernFor(options, 'performJob');
    } catch {
      throw new PerformJobError(
        `performJob(${JSON.stringify(worker)}): a worker name is looked up in the workers of a quern client (new Quern({ workers: 'workers' })), and there is none: call useQuern(quern) or pass { quern }; or pass the worker definition itself`,
      );
    }
    const definition = await quern.workerDefinition(worker);
    if (!definition) {
      const known = await quern.workerNames();
      throw new PerformJobError(
        `performJob(${JSON.stringify(worker)}): no worker of that name is known to the quern client${suggest(worker, known)} (it knows ${known.length === 0 ? 'none: give it workers' : known.map((n) => JSON.stringify(n)).join(', ')}); or pass the worker definition itself`,
      );
    }
    return definition;
  }
  if (worker === null || typeof worker !== 'object') {
    throw new PerformJobError(
      `performJob: expected a worker definition (defineWorker({ name, perform })) or the name of a worker known to the quern client, got ${showValue(worker)}`,
    );
  }
  return validateDefinition(worker, 'performJob(worker)');
}

export function toPerformOutcome(
  run: { outcome: ThreadOutcome; returned: unknown; thrown: unknown },
  job: Job,
): PerformOutcome {
  const { outcome } = run;
  return {
    kind: outcome.kind,
    state: stateOf(outcome, job),
    returned: run.returned,
    thrown: run.thrown,
    result: outcome.kind === 'completed' ? outcome.result : null,
    error: outcome.kind === 'failed' ? outcome.error : null,
    reason: outcome.kind === 'cancelled' || outcome.kind === 'discarded' ? outcome.reason : null,
    seconds: outcome.kind === 'snoozed' ? outcome.seconds : null,
    warning: outcome.warning,
    job,
  };
}
