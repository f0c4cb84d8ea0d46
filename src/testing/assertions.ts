// assertEnqueued, refuteEnqueued and allEnqueued: look for waiting jobs matching a partial
// description. Failures are plain node:assert AssertionErrors, which mocha, jest and vitest all
// report with their message, so these helpers need no test-runner globals.

import { AssertionError } from 'node:assert';
import { isPlainObject, suggest } from '../config/validate.js';
import { isPlainIdentifier, MAX_QUEUE_LENGTH } from '../db/identifiers.js';
import { TestingQueries, type JobFilter } from '../db/queries/testing.js';
import { showValue } from '../jobs/json.js';
import { JOB_STATES, type JobRecord, type JobState } from '../jobs/types.js';
import type { WorkerDefinition } from '../worker/define.js';
import { quernFor, type WithQuern } from './context.js';

export interface EnqueuedFilter<Args = Record<string, unknown>> {
  /** A worker name or definition (a definition types `args`). */
  worker?: string | WorkerDefinition<Args>;
  queue?: string;
  /** Partial match: the job's args contain these (jsonb containment, at every depth). */
  args?: Partial<NoInfer<Args>>;
  /** Partial match on meta. */
  meta?: Record<string, unknown>;
  /** The job has at least these tags. */
  tags?: string[];
  priority?: number;
  /** Default: enqueued, i.e. available, scheduled or retryable. */
  state?: JobState | JobState[];
  /** Compared to within `delta` seconds (default 1). */
  scheduledAt?: Date;
  delta?: number;
}

export interface AssertOptions extends WithQuern {
  /** Milliseconds to keep looking: assertEnqueued waits for a match, refuteEnqueued for none. */
  timeout?: number;
}

const FILTER_KEYS = [
  'worker',
  'queue',
  'args',
  'meta',
  'tags',
  'priority',
  'state',
  'scheduledAt',
  'delta',
] as const;
const ENQUEUED: JobState[] = ['available', 'scheduled', 'retryable'];

function toFilter(helper: string, input: unknown): JobFilter {
  const fail = (why: string): never => {
    throw new TypeError(`${helper}: ${why}`);
  };
  if (!isPlainObject(input)) return fail('expected a filter object, e.g. { worker, args }');
  for (const key of Object.keys(input)) {
    if (!(FILTER_KEYS as readonly string[]).includes(key))
      fail(`unknown filter key "${key}"${suggest(key, FILTER_KEYS)}`);
  }
  const worker =
    input.worker === undefined
      ? null
      : typeof input.worker === 'string'
        ? input.worker
        : typeof (input.worker as { name?: unknown })?.name === 'string'
          ? (input.worker as { name: string }).name
          : fail('worker: expected a worker name or definition');
  const object = (key: 'args' | 'meta'): Record<string, unknown> | null => {
    const value = input[key];
    if (value === undefined) return null;
    return isPlainObject(value) ? value : fail(`${key}: expected a plain object`);
  };
  const states =
    input.state === undefined
      ? ENQUEUED
      : [input.state]
          .flat()
          .map((s) =>
            JOB_STATES.includes(s as JobState)
              ? (s as JobState)
              : fail(`state: ${showValue(s)} is not one of ${JOB_STATES.join(', ')}`),
          );
  const at = input.scheduledAt;
  if (at !== undefined && (!(at instanceof Date) || Number.isNaN(at.getTime())))
    fail('scheduledAt: expected a valid Date');
  const delta = input.delta ?? 1;
  if (typeof delta !== 'number' || !(delta >= 0)) fail('delta: expected seconds, 0 or more');
  const tags = input.tags;
  if (tags !== undefined && !(Array.isArray(tags) && tags.every((t) => typeof t === 'string')))
    fail('tags: expected an array of strings');
  const priority = input.priority;
  if (priority !== undefined && !Number.isInteger(priority)) fail('priority: expected 0 to 3');
  const queue = input.queue;
  // A name no job can have ('Mailers') matched nothing: refuteEnqueued passed whatever was there.
  if (
    queue !== undefined &&
    (typeof queue !== 'string' || !isPlainIdentifier(queue, MAX_QUEUE_LENGTH))
  )
    fail(
      `queue: expected a queue name (a plain lower-case identifier, [a-z_][a-z0-9_]*), got ${showValue(queue)}`,
    );
  return {
    worker,
    queue: (queue as string | undefined) ?? null,
    args: object('args'),
    meta: object('meta'),
    tags: (tags as string[] | undefined) ?? null,
    priority: (priority as number | undefined) ?? null,
    states,
    scheduledAt: (at as Date | undefined) ?? null,
    delta: delta as number,
  };
}

function describeFilter(filter: Record<string, unknown>): string {
  const worker = filter.worker as { name?: unknown } | string | undefined;
  const shown =
    worker !== undefined && typeof worker !== 'string'
      ? { ...filter, worker: typeof worker.name === 'string' ? worker.name : worker }
      : filter;
  return JSON.stringify(shown, (_key, value: unknown) =>
    isPlainObject(value) || Array.isArray(value) || typeof value !== 'object' || value === null
      ? value
      : value instanceof Date
        ? value.toISOString()
        : Object.prototype.toString.call(value),
  );
}

function describeJobs(jobs: JobRecord[]): string {
  if (jobs.length === 0) return '  (none)';
  return jobs
    .slice(0, 20)
    .map(
      (j) =>
        `  #${j.id} ${j.worker} queue=${j.queue} state=${j.state} priority=${j.priority} args=${JSON.stringify(j.args)}`,
    )
    .join('\n');
}

function find(helper: string, filterInput: unknown, options?: AssertOptions) {
  const filter = toFilter(helper, filterInput);
  // A negative or non-numeric timeout looked once and passed as if it meant "no waiting".
  const timeout: unknown = options?.timeout;
  if (
    timeout !== undefined &&
    !(typeof timeout === 'number' && Number.isFinite(timeout) && timeout >= 0)
  )
    throw new TypeError(
      `${helper}: timeout must be a number of ms of 0 or more, got ${showValue(timeout)}`,
    );
  const quern = quernFor(options, helper);
  const queries = new TestingQueries(quern.schema);
  return {
    filter,
    run: () => queries.find(quern.pool, filter),
    /** What is there for the same worker/queue, to make a failure readable. */
    nearby: () =>
      queries.find(quern.pool, {
        worker: filter.worker,
        queue: filter.worker === null ? filter.queue : null,
        args: null,
        meta: null,
        tags: null,
        priority: null,
        states: [...JOB_STATES],
        scheduledAt: null,
        delta: 0,
      }),
  };
}

const pause = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** The jobs matching the filter (by default: waiting to run), oldest first. */
export async function allEnqueued<Args = Record<string, unknown>>(
  filter: EnqueuedFilter<Args> = {},
  options?: WithQuern,
): Promise<JobRecord[]> {
  const { run } = find('allEnqueued', filter, options);
  return run();
}

/** Fails unless a job matching the filter is enqueued (within `timeout` ms); returns it. */
export async function assertEnqueued<Args = Record<string, unknown>>(
  filter: EnqueuedFilter<Args>,
  options?: AssertOptions,
): Promise<JobRecord> {
  const { run, nearby } = find('assertEnqueued', filter, options);
  const deadline = Date.now() + (options?.timeout ?? 0);
  for (;;) {
    const [match] = await run();
    if (match) return match;
    if (Date.now() >= deadline) break;
    await pause(20);
  }
  throw new AssertionError({
    message: `Expected a job matching ${describeFilter(filter as Record<string, unknown>)} to be enqueued${options?.timeout ? ` within ${options.timeout} ms` : ''}. Jobs of the same ${filter.worker !== undefined ? 'worker' : 'queue'}:\n${describeJobs(await nearby())}`,
    operator: 'fail', // as assert.fail: jest then prints just the message
    stackStartFn: assertEnqueued,
  });
}

/** Fails if a job matching the filter is enqueued (or appears within `timeout` ms). */
export async function refuteEnqueued<Args = Record<string, unknown>>(
  filter: EnqueuedFilter<Args>,
  options?: AssertOptions,
): Promise<void> {
  const { run } = find('refuteEnqueued', filter, options);
  const deadline = Date.now() + (options?.timeout ?? 0);
  for (;;) {
    const found = await run();
    if (found.length > 0) {
      throw new AssertionError({
        message: `Expected no job matching ${describeFilter(filter as Record<string, unknown>)} to be enqueued, found:\n${describeJobs(found)}`,
        operator: 'fail',
        stackStartFn: refuteEnqueued,
      });
    }
    if (Date.now() >= deadline) return;
    await pause(20);
  }
}
