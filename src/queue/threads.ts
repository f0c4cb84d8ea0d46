// The bridge between a queue and its piscina pool. It runs jobs as piscina tasks (one job, or a
// batch of jobs that became runnable together, in one message), knows which thread
// runs which job (threads report it when a job starts), and stops jobs: the cooperative abort
// signal first, then, after a grace period, the thread is terminated. When a thread dies, the
// job that killed it (the thread names it when it can) is a failed attempt; the jobs that merely
// shared the thread are reported `interrupted`, so they go back without losing an attempt.
//
// Why no piscina abort signal: piscina's balancer never puts a second task on a thread that runs
// an abortable task, so passing a signal would silently turn `concurrency` into 1. We terminate
// the thread ourselves (Worker.terminate on the one whose threadId ran the job); piscina then
// rejects every task of that thread and starts a replacement.

import { Piscina } from 'piscina';
import { fileURLToPath } from 'node:url';
import { BroadcastChannel } from 'node:worker_threads';
import { randomUUID } from 'node:crypto';
import type { Job } from '../jobs/types.js';
import type { ThreadOutcome } from '../thread/outcome.js';
import type {
  BatchOutcomes,
  BatchTask,
  CancelMessage,
  ThreadData,
  ThreadMessage,
} from '../thread/runner.js';

const RUNNER = fileURLToPath(new URL('../thread/runner.js', import.meta.url));

export type RunResult =
  | { kind: 'outcome'; outcome: ThreadOutcome }
  /** The job's own thread died (process.exit, memory limit, a crash outside perform). */
  | { kind: 'crashed'; error: string }
  /** Stopped for its timeout; the thread had to be terminated if it did not honour the signal. */
  | { kind: 'timeout'; timeoutMs: number; outcome: ThreadOutcome | null }
  /** Stopped because it was cancelled. */
  | { kind: 'cancelled'; reason: string }
  /** Another job's thread death took this one down: run it again, attempt refunded. */
  | { kind: 'interrupted' };

/**
 * Why a job is being stopped. `fence`: its node could not write a heartbeat for long enough that
 * another node may soon rescue the job (src/node/fence.ts); it goes back, attempt refunded.
 */
export type StopReason = 'timeout' | 'cancel' | 'fence';

interface RunningTask {
  job: Job;
  threadId: number | null;
  stopping: {
    reason: StopReason;
    message: string;
    /** Date.now() by which the thread is terminated; set when the signal is sent, or for a fence at once. */
    terminateAt: number | null;
  } | null;
  graceTimer: NodeJS.Timeout | null;
  timeoutTimer: NodeJS.Timeout | null;
}

export interface ThreadDeath {
  threadId: number;
  error: string;
  /** Jobs that were running on the thread. */
  jobs: number[];
  /** The job the thread named as the cause, when it could tell. */
  culprit: number | null;
}

export interface ThreadPoolOptions {
  queue: string;
  workersDir: string;
  threads: number;
  concurrency: number;
  memoryLimitMb: number | null;
  cancelGracePeriod: number;
  /** Called once per thread that died on its own (not for threads we terminated). */
  onThreadDeath?: (death: ThreadDeath) => void;
}

export class ThreadPool {
  private readonly piscina: Piscina;
  private readonly cancelChannel: BroadcastChannel;
  private readonly tasks = new Map<number, RunningTask>();
  /** Threads we terminated on purpose (a timeout or a cancel), with the job it was for. */
  private readonly terminated = new Map<number, number>();
  /** What a dying thread said about its death, by threadId. */
  private readonly crashReports = new Map<number, { job: number | null; error: string }>();
  private readonly deathsReported = new Set<number>();
  /** Batches whose outcomes are still due: how to settle one job of each. */
  private readonly batches = new Map<number, (id: number, outcome: ThreadOutcome) => void>();
  private batchSequence = 0;
  private destroyed = false;

  constructor(private readonly options: ThreadPoolOptions) {
    const channelName = `quern-cancel-${options.queue}-${randomUUID()}`;
    const workerData: ThreadData = {
      workersDir: options.workersDir,
      cancelChannel: channelName,
      concurrency: options.concurrency,
    };
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
    this.piscina.on('message', (message: ThreadMessage) => this.onMessage(message));
    // Errors of idle threads (no task to reject) surface here; the pool replaces the thread.
    this.piscina.on('error', () => undefined);
  }

  private onMessage(message: ThreadMessage): void {
    if (message.type === 'started') {
      this.startedOn(message.job, message.threadId);
    } else if (message.type === 'batch-started') {
      for (const id of message.jobs) this.startedOn(id, message.threadId);
    } else if (message.type === 'outcomes') {
      const settle = this.batches.get(message.batch);
      if (settle) for (const [id, outcome] of message.outcomes) settle(id, outcome);
    } else if (message.type === 'crash') {
      this.crashReports.set(message.threadId, { job: message.job, error: message.error });
    }
  }

  get size(): number {
    return this.tasks.size;
  }

  /** Live threads of the pool (piscina replaces dead ones). */
  get threadCount(): number {
    return this.piscina.threads.length;
  }

  private startedOn(jobId: number, threadId: number): void {
    const task = this.tasks.get(jobId);
    if (!task) return;
    task.threadId = threadId;
    // A stop asked for before the job started: signal it now, and give it its grace period (a
    // fence's deadline stays where it was: past it, the thread is terminated at once).
    if (task.stopping) this.signalStop(task);
  }

  private track(job: Job, timeoutMs: number | null): RunningTask {
    const task: RunningTask = {
      job,
      threadId: null,
      stopping: null,
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
    return task;
  }

  private untrack(task: RunningTask): void {
    if (task.timeoutTimer) clearTimeout(task.timeoutTimer);
    if (task.graceTimer) clearTimeout(task.graceTimer);
    this.tasks.delete(task.job.id);
  }

  /** What a job's outcome means once it is back: a stop asked for meanwhile wins. */
  private completed(
    task: RunningTask,
    outcome: ThreadOutcome,
    timeoutMs: number | null,
  ): RunResult {
    if (task.stopping?.reason === 'cancel')
      return { kind: 'cancelled', reason: task.stopping.message };
    if (task.stopping?.reason === 'timeout')
      return { kind: 'timeout', timeoutMs: timeoutMs ?? 0, outcome };
    // Fenced: a job that completed within its grace is recorded as such; anything else (most
    // often the abort it was given) says nothing about the job, so it goes back to run again.
    if (task.stopping?.reason === 'fence' && outcome.kind !== 'completed')
      return { kind: 'interrupted' };
    return { kind: 'outcome', outcome };
  }

  async run(job: Job, timeoutMs: number | null): Promise<RunResult> {
    const task = this.track(job, timeoutMs);
    try {
      const outcome = (await this.piscina.run({ job })) as ThreadOutcome;
      return this.completed(task, outcome, timeoutMs);
    } catch (error) {
      return this.failed(task, error as Error, timeoutMs);
    } finally {
      this.untrack(task);
    }
  }

  /**
   * Runs jobs that became runnable together in batches of at most `concurrency` jobs, each
   * batch one piscina task: one message to the thread instead of
   * one per job. Every job keeps its own result, timeout, stop and death handling. A thread
   * never runs more than `concurrency` jobs at once: the runner holds the rest of a batch that
   * piscina placed on an already busy thread until a slot frees.
   */
  runMany(entries: { job: Job; timeoutMs: number | null }[]): Promise<RunResult>[] {
    if (entries.length === 1) return [this.run(entries[0]!.job, entries[0]!.timeoutMs)];
    // Batches as large as a thread may run at once: each message costs the main thread tens
    // of microseconds, so splitting 10 freed slots into one batch per thread doubled them (bench
    // W2: ~4,000 tasks for 20,000 jobs with batches of ceil(n / threads)).
    const size = Math.max(1, this.options.concurrency);
    const results: Promise<RunResult>[] = [];
    for (let i = 0; i < entries.length; i += size) {
      results.push(...this.runBatch(entries.slice(i, i + size)));
    }
    return results;
  }

  private runBatch(entries: { job: Job; timeoutMs: number | null }[]): Promise<RunResult>[] {
    if (entries.length === 1) return [this.run(entries[0]!.job, entries[0]!.timeoutMs)];
    const batch = ++this.batchSequence;
    const due = new Map<
      number,
      { task: RunningTask; timeoutMs: number | null; resolve: (r: RunResult) => void }
    >();
    const results = entries.map(
      ({ job, timeoutMs }) =>
        new Promise<RunResult>((resolve) => {
          due.set(job.id, { task: this.track(job, timeoutMs), timeoutMs, resolve });
        }),
    );
    const settle = (id: number, result: (task: RunningTask, ms: number | null) => RunResult) => {
      const entry = due.get(id);
      if (!entry) return;
      due.delete(id);
      const value = result(entry.task, entry.timeoutMs);
      this.untrack(entry.task);
      entry.resolve(value);
      if (due.size === 0) this.batches.delete(batch);
    };
    this.batches.set(batch, (id, outcome) =>
      settle(id, (task, ms) => this.completed(task, outcome, ms)),
    );
    const message: BatchTask = { batch, jobs: entries.map((e) => e.job) };
    this.piscina.run(message, { name: 'runBatch' }).then(
      (outcomes: BatchOutcomes) => {
        for (const [id, outcome] of outcomes)
          settle(id, (task, ms) => this.completed(task, outcome, ms));
        // Outcomes sent earlier in their own message are settled when it arrives.
      },
      (error: unknown) => {
        for (const id of [...due.keys()])
          settle(id, (task, ms) => this.failed(task, error as Error, ms));
      },
    );
    return results;
  }

  /** Why a task's promise was rejected: its thread died, or the pool is going away. */
  private failed(task: RunningTask, error: Error, timeoutMs: number | null): RunResult {
    if (task.stopping?.reason === 'cancel')
      return { kind: 'cancelled', reason: task.stopping.message };
    if (task.stopping?.reason === 'timeout')
      return { kind: 'timeout', timeoutMs: timeoutMs ?? 0, outcome: null };
    if (task.stopping?.reason === 'fence') return { kind: 'interrupted' };
    // perform never started (the task was queued on the thread): nothing ran, nothing is owed.
    if (this.destroyed || task.threadId === null) return { kind: 'interrupted' };
    const threadId = task.threadId;
    if (this.terminated.has(threadId)) return { kind: 'interrupted' };
    const report = this.crashReports.get(threadId);
    const reason = `worker thread died: ${report?.error ?? describeDeath(error, this.options.memoryLimitMb)}`;
    this.reportDeath(threadId, reason, report?.job ?? null);
    // The thread named its culprit: only that job pays an attempt. When it could not tell (the
    // memory limit, a native crash), every job on the thread does, so a killer job cannot go
    // on being refunded forever.
    if (report?.job != null && report.job !== task.job.id) return { kind: 'interrupted' };
    return { kind: 'crashed', error: reason };
  }

  private reportDeath(threadId: number, error: string, culprit: number | null): void {
    if (this.deathsReported.has(threadId)) return;
    this.deathsReported.add(threadId);
    // Collected on the next tick: every task of the dead thread is rejected in the same turn.
    const jobs = [...this.tasks.values()]
      .filter((t) => t.threadId === threadId)
      .map((t) => t.job.id);
    setImmediate(() => this.options.onThreadDeath?.({ threadId, error, jobs, culprit }));
  }

  /**
   * Signals the job to stop; terminates its thread if it is still running after the grace period
   * (`cancelGracePeriod` unless given). A fence's grace runs from now, even for a job that has not
   * reached its thread yet, and shortens the grace of a job already being stopped: its deadline
   * is one the thread must not outlive.
   */
  stop(jobId: number, reason: StopReason, message: string, graceMs?: number): boolean {
    const task = this.tasks.get(jobId);
    if (!task) return false;
    if (task.stopping) {
      if (reason === 'fence' && graceMs !== undefined) this.terminateBy(task, Date.now() + graceMs);
      return true;
    }
    task.stopping = {
      reason,
      message,
      terminateAt:
        reason === 'fence' ? Date.now() + (graceMs ?? this.options.cancelGracePeriod) : null,
    };
    if (task.threadId !== null) this.signalStop(task);
    else if (task.stopping.terminateAt !== null) this.terminateBy(task, task.stopping.terminateAt);
    return true;
  }

  private signalStop(task: RunningTask): void {
    const cancel: CancelMessage = { jobId: task.job.id, reason: task.stopping?.message ?? '' };
    this.cancelChannel.postMessage(cancel);
    this.terminateBy(
      task,
      task.stopping?.terminateAt ?? Date.now() + this.options.cancelGracePeriod,
    );
  }

  /** (Re)sets the termination timer to `at`, never later than a deadline already set. */
  private terminateBy(task: RunningTask, at: number): void {
    if (!task.stopping) return;
    if (task.stopping.terminateAt !== null && task.graceTimer && task.stopping.terminateAt <= at)
      return;
    task.stopping.terminateAt = at;
    if (task.graceTimer) clearTimeout(task.graceTimer);
    task.graceTimer = setTimeout(() => this.terminate(task), Math.max(0, at - Date.now()));
  }

  private terminate(task: RunningTask): void {
    task.graceTimer = null; // fired: a job reaching its thread after this is terminated at once
    if (!this.tasks.has(task.job.id) || task.threadId === null) return;
    const worker = this.piscina.threads.find((t) => t.threadId === task.threadId);
    if (!worker) return;
    // Everything else on that thread dies with it; `failed` reports those jobs as interrupted.
    this.terminated.set(task.threadId, task.job.id);
    void worker.terminate();
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

function describeDeath(error: Error, memoryLimitMb: number | null): string {
  const code = (error as { code?: string }).code;
  if (code === 'ERR_WORKER_OUT_OF_MEMORY') {
    return `${error.message} (memoryLimitMb ${memoryLimitMb ?? 'default'})`;
  }
  return error.message;
}
