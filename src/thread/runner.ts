// The entry point of every worker thread (a piscina task). It loads the registered workers of
// the configured folder once, runs one job per task, and reports the outcome as plain data.
// Cancellation arrives on a BroadcastChannel shared by the pool's threads; the abort signal is
// the cooperative step, the main thread terminates the thread if the job ignores it.

import { BroadcastChannel, parentPort, threadId, workerData } from 'node:worker_threads';
import { loadWorkers, type RegisteredWorker } from '../worker/registry.js';
import type { Job } from '../jobs/types.js';
import { describeError, interpretReturn, type ThreadOutcome } from './outcome.js';

export interface ThreadData {
  workersDir: string;
  cancelChannel: string;
}

export interface ThreadTask {
  job: Job;
}

export interface CancelMessage {
  jobId: number;
  reason: string;
}

const data = workerData as ThreadData;
let registry: Promise<Map<string, RegisteredWorker>> | null = null;
const running = new Map<number, AbortController>();

const cancels = new BroadcastChannel(data.cancelChannel);
cancels.onmessage = (event: unknown) => {
  const message = (event as { data: CancelMessage }).data;
  running.get(message.jobId)?.abort(new Error(message.reason));
};
// The channel must not keep an idle thread alive.
(cancels as unknown as { unref(): void }).unref();

export default async function run(task: ThreadTask): Promise<ThreadOutcome> {
  const { job } = task;
  registry ??= loadWorkers(data.workersDir);
  const workers = await registry;
  const registered = workers.get(job.worker);
  if (!registered) {
    return {
      kind: 'failed',
      error: `unknown worker ${JSON.stringify(job.worker)}: no worker of that name is registered in ${data.workersDir}`,
      warning: null,
    };
  }
  const controller = new AbortController();
  running.set(job.id, controller);
  parentPort?.postMessage({ started: job.id, threadId });
  try {
    const value: unknown = await registered.definition.perform(job as never, controller.signal);
    return interpretReturn(value);
  } catch (error) {
    return { kind: 'failed', error: describeError(error), warning: null };
  } finally {
    running.delete(job.id);
  }
}
