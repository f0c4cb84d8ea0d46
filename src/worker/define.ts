// A worker definition: the name a job row refers to, its defaults, and perform. Modules in the
// workers folder export one (default export, or an export named `worker`).

import type { InsertOptions, Job, PerformResult } from '../jobs/types.js';
import type { UniqueOptions } from '../jobs/unique.js';

export type { UniqueOptions };

export interface WorkerDefinition<Args = Record<string, unknown>> {
  name: string;
  queue?: string;
  maxAttempts?: number;
  priority?: number;
  tags?: string[];
  /** Milliseconds a job may run; a number, or a function of the job. */
  timeout?: number | ((job: Job<Args>) => number);
  /** Seconds to wait before the next attempt after a failure. */
  backoff?: (job: Job<Args>) => number;
  /** Makes inserts of this worker unique (see the README, Unique jobs); an insert may override it. */
  unique?: UniqueOptions<Args>;
  /** Checks args at insert, before anything is written: return or throw an error message. */
  validate?: (args: unknown) => string | null | undefined;
  perform(job: Job<Args>, signal: AbortSignal): PerformResult | Promise<PerformResult>;
}

/**
 * Declares a worker with typed args: `perform` sees `Args`, and inserting through the returned
 * definition checks args at compile time.
 */
export function defineWorker<Args extends object = Record<string, unknown>>(
  definition: WorkerDefinition<Args>,
): WorkerDefinition<Args> {
  return definition;
}

/** The insert shape accepted by `insert`: by worker name, or by definition for typed args. */
export type InsertJob<Args = Record<string, unknown>> = InsertOptions & {
  worker: string | WorkerDefinition<Args>;
  /** Checked against the definition's Args at compile time (inferred from `worker` only). */
  args?: NoInfer<Args>;
  /** Overrides the worker's unique options for this insert; `false` turns them off. */
  unique?: UniqueOptions<NoInfer<Args>> | false;
};

/** Default backoff, Oban's shape: 15 + attempt^4 seconds, with up to 10% jitter. */
export function defaultBackoff(attempt: number, random: () => number = Math.random): number {
  const base = 15 + Math.pow(attempt, 4);
  return base + base * 0.1 * random();
}
