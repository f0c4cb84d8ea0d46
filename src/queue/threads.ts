// The bridge between a queue and its piscina pool. It runs one job per task, knows which thread
// runs which job (threads report it when a job starts), and stops jobs: the cooperative abort
// signal first, then, after a grace period, the thread is terminated. Jobs that shared a
// terminated thread are reported as `interrupted`, so they go back without losing an attempt.
// Tasks are given to piscina without an AbortSignal on purpose: piscina runs an abortable task
// alone on its thread, which would silently turn `concurrency` into 1. We terminate the thread
// ourselves instead.

import { Piscina } from 'piscina';
import { fileURLToPath } from 'node:url';
import { BroadcastChannel } from 'node:worker_threads';
import { randomUUID } from 'node:crypto';
import type { Job } from '../jobs/types.js';
import type { ThreadOutcome } from '../thread/outcome.js';
import type { CancelMessage, ThreadData } from '../thread/runner.js';

const RUNNER = fileURLToPath(new URL('../thread/runner.js', import.meta.url));

export type RunResult =
  | { kind: 'outcome'; outcome: ThreadOutcome }
  /** The job's own thread died (process.exit, memory limit, a crash outside perform). */
  | { kind: 'crashed'; error: string }
  /** Stopped for its timeout; the thread had to be terminated if it did not honour the signal. */
  | { kind: 'timeout'; timeoutMs: number; outcome: ThreadOutcome | null }
  /** Stopped because it was cancelled. */
  | { kind: 'cancelled'; reason: string }
  /** Another job's thread termination took this one down: run it again, attempt refunded. */
  | { kind: 'interrupted' };

interface RunningTask {
  job: Job;
  threadId: number | null;
  /** Terminate the thread as soon as it reports running this job (stopped before it began). */
  terminateOnStart: boolean;
  stopping: { reason: 'timeout' | 'cancel'; message: string } | null;
  interrupted: boolean;
  graceTimer: NodeJS.Timeout | null;
  timeoutTimer: NodeJS.Timeout | null;
}

export interface ThreadPoolOptions {
  queue: string;
  workersDir: string;
  threads: number;
  concurrency: number;
  memoryLimitMb: number | null;
  cancelGracePeriod: number;
}

export class ThreadPool {
  private readonly piscina: Piscina;
  private readonly cancelChannel: BroadcastChannel;
  private readonly tasks = new Map<number, RunningTask>();
  private destroyed = false;

  constructor(private readonly options: ThreadPoolOptions) {
    const channelName = `quern-cancel-${options.queue}-${randomUUID()}`;
    const workerData: ThreadData = { workersDir: options.workersDir, cancelChannel: channelName };
    this.cancelChannel = new BroadcastChannel(channelName);
    this.piscina = new Piscina({
      filename: RUNNER,
      minThreads: options.threads,
      maxThreads: options.threads,
      concurrentTasksPerWorker: options.concurrency,
      idleTimeout: Infinity,
      workerData,
      ...(options.memoryLimitMb
        ? { resourceLimits: { maxOldGenerationSizeMb: options.memoryLimitMb } }
        : {}),
    });
    this.piscina.on('message', (message: unknown) => {
      const started = message as { started?: number; threadId?: number };
      if (typeof started.started === 'number') {
        const task = this.tasks.get(started.started);
        if (task) {
          task.threadId = started.threadId ?? null;
          if (task.terminateOnStart) this.terminate(task);
        }
      }
    });
    // Errors of idle threads (no task to reject) surface here; the pool replaces the thread.
    this.piscina.on('error', () => undefined);
  }

  get size(): number {
    return this.tasks.size;
  }

  async run(job: Job, timeoutMs: number | null): Promise<RunResult> {
    const task: RunningTask = {
      job,
      threadId: null,
      terminateOnStart: false,
      stopping: null,
      interrupted: false,
      graceTimer: null,
      timeoutTimer: null,
    };
    this.tasks.set(job.id, task);
    if (timeoutMs !== null && timeoutMs > 0) {
      task.timeoutTimer = setTimeout(
        () => this.stop(job.id, 'timeout', `job timed out after ${timeoutMs} ms`),
        timeoutMs,
      );
    }
    try {
      const outcome = (await this.piscina.run({ job })) as ThreadOutcome;
      if (task.stopping?.reason === 'cancel')
        return { kind: 'cancelled', reason: task.stopping.message };
      if (task.stopping?.reason === 'timeout')
        return { kind: 'timeout', timeoutMs: timeoutMs ?? 0, outcome };
      return { kind: 'outcome', outcome };
    } catch (error) {
      if (task.stopping?.reason === 'cancel')
        return { kind: 'cancelled', reason: task.stopping.message };
      if (task.stopping?.reason === 'timeout')
        return { kind: 'timeout', timeoutMs: timeoutMs ?? 0, outcome: null };
      if (task.interrupted || this.destroyed) return { kind: 'interrupted' };
      return { kind: 'crashed', error: `worker thread died: ${(error as Error).message}` };
    } finally {
      if (task.timeoutTimer) clearTimeout(task.timeoutTimer);
      if (task.graceTimer) clearTimeout(task.graceTimer);
      this.tasks.delete(job.id);
    }
  }

  /** Signals the job to stop; terminates its thread if it is still running after the grace period. */
  stop(jobId: number, reason: 'timeout' | 'cancel', message: string): boolean {
    const task = this.tasks.get(jobId);
    if (!task || task.stopping) return Boolean(task);
    task.stopping = { reason, message };
    const cancel: CancelMessage = { jobId, reason: message };
    this.cancelChannel.postMessage(cancel);
    task.graceTimer = setTimeout(() => this.terminate(task), this.options.cancelGracePeriod);
    return true;
  }

  private terminate(task: RunningTask): void {
    if (!this.tasks.has(task.job.id)) return;
    // Everything else on that thread dies with it: mark those jobs so they are run again.
    for (const other of this.tasks.values()) {
      if (other !== task && other.threadId !== null && other.threadId === task.threadId)
        other.interrupted = true;
    }
    const thread =
      task.threadId === null
        ? undefined
        : this.piscina.threads.find((worker) => worker.threadId === task.threadId);
    if (!thread) {
      // Not on a thread yet: the cancel message found nothing to abort there; stop it on arrival.
      task.terminateOnStart = true;
      return;
    }
    // piscina rejects the thread's tasks and starts a replacement thread.
    void thread.terminate();
  }

  runningJobIds(): number[] {
    return [...this.tasks.keys()];
  }

  async destroy(): Promise<void> {
    if (this.destroyed) return;
    this.destroyed = true;
    this.cancelChannel.close();
    await this.piscina.destroy();
  }
}
