// The bridge between a queue and its piscina pool. It runs jobs as piscina tasks (a batch of jobs
// that became runnable together, in one message), knows which thread runs which job (the thread
// writes it into memory shared with this side when the job starts, see SharedSlots), and stops
// jobs: the cooperative abort signal first, then, after a grace period, the thread is terminated. When a thread dies, the
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
import { monotonicMs, NUMBER_COLUMNS } from '../thread/columns.js';
import type {
  BatchOutcomes,
  BatchTask,
  CancelMessage,
  RunnerOutcome,
  SharedSlots,
  ThreadData,
  ThreadMessage,
} from '../thread/runner.js';

// A CommonJS entry that imports the runner (see entry.cts for why).
const RUNNER = fileURLToPath(new URL('../thread/entry.cjs', import.meta.url));

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
  key: string;
  /** Its place in the shared slots (threadId and start time, written by the thread). */
  slot: number;
  stopping: {
    reason: StopReason;
    message: string;
    /** Date.now() by which the thread is terminated; set when the signal is sent, or for a fence at once. */
    terminateAt: number | null;
  } | null;
  graceTimer: NodeJS.Timeout | null;
  timeoutTimer: NodeJS.Timeout | null;
}

/** A job handed to the pool, and where its result goes (with when its perform began). */
export interface PoolEntry {
  job: Job;
  /** This attempt's token: a job cancelled and retried at once may have two attempts here. */
  key: string;
  timeoutMs: number | null;
  /** performMs: how long its perform took, timed in its thread (null if it never ended there). */
  done: (result: RunResult, startedAt: number | null, performMs: number | null) => void;
  /** The job's args and meta as JSON text, when the caller has it (a fetched row): sent as is. */
  argsText?: string;
  metaText?: string | null;
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
  /** Most jobs handed to the pool at once (running and waiting on threads); sizes the slots. */
  capacity: number;
  /** Called once per thread that died on its own (not for threads we terminated). */
  onThreadDeath?: (death: ThreadDeath) => void;
}

/** Whether a message from a thread is one the runner sends, not one posted by job code. */
function isThreadMessage(message: unknown): message is ThreadMessage {
  if (typeof message !== 'object' || message === null) return false;
  const m = message as Record<string, unknown>;
  return (
    (m.type === 'outcomes' && typeof m.batch === 'number' && Array.isArray(m.outcomes)) ||
    (m.type === 'crash' && typeof m.threadId === 'number' && typeof m.error === 'string')
  );
}

export class ThreadPool {
  private readonly piscina: Piscina;
  private readonly cancelChannel: BroadcastChannel;
  /** By attempt token (PoolEntry.key). */
  private readonly tasks = new Map<string, RunningTask>();
  /** Threads we terminated on purpose (a timeout or a cancel), with the job it was for. */
  private readonly terminated = new Map<number, number>();
  /** What a dying thread said about its death, by threadId. */
  private readonly crashReports = new Map<number, { job: number | null; error: string }>();
  private readonly deathsReported = new Set<number>();
  /**
   * Deaths (piscina rejects every task of a dead thread with one error object) that a job which
   * had started on the thread accounts for, and the jobs of deaths that none so far does.
   */
  private readonly explainedDeaths = new WeakSet<object>();
  private readonly unexplainedDeaths = new Map<object, number[]>();
  /** Batches whose outcomes are still due: how to settle one job of each, by its index. */
  private readonly batches = new Map<number, (outcomes: BatchOutcomes) => void>();
  private batchSequence = 0;
  private destroyed = false;
  /** Set by destroy: resolves once every thread of the pool has exited. */
  private exited: Promise<void> | null = null;
  private readonly threadIds: Int32Array;
  private readonly startedAt: Float64Array;
  private readonly ended: Int32Array;
  private readonly performMs: Float64Array;
  private readonly generation: Int32Array;
  /** SharedSlots.concurrency: the threads' current cap. */
  private readonly concurrencyCap: Int32Array;
  /** Slots no tracked job holds. Jobs finish out of order, so a slot is reused only once freed. */
  private readonly freeSlots: number[];
  /** Jobs past their timeout before they began (waiting for a slot), looked at together. */
  private readonly awaitingStart = new Map<RunningTask, number>();
  private startPoll: NodeJS.Timeout | null = null;

  constructor(private readonly options: ThreadPoolOptions) {
    const channelName = `quern-cancel-${options.queue}-${randomUUID()}`;
    // One slot per job the pool may hold (the producer hands out at most `capacity`), and some
    // to spare; a slot goes back to the free list when its job is settled.
    const size = options.capacity + 64;
    const slots: SharedSlots = {
      threadIds: new SharedArrayBuffer(size * 4),
      startedAt: new SharedArrayBuffer(size * 8),
      ended: new SharedArrayBuffer(size * 4),
      performMs: new SharedArrayBuffer(size * 8),
      generation: new SharedArrayBuffer(4),
      concurrency: new SharedArrayBuffer(4),
    };
    this.concurrencyCap = new Int32Array(slots.concurrency!);
    Atomics.store(this.concurrencyCap, 0, options.concurrency);
    this.threadIds = new Int32Array(slots.threadIds);
    this.startedAt = new Float64Array(slots.startedAt);
    this.ended = new Int32Array(slots.ended);
    this.performMs = new Float64Array(slots.performMs!);
    this.generation = new Int32Array(slots.generation);
    this.freeSlots = Array.from({ length: size }, (_, i) => size - 1 - i);
    const workerData: ThreadData = {
      workersDir: options.workersDir,
      cancelChannel: channelName,
      concurrency: options.concurrency,
      slots,
    };
    this.cancelChannel = new BroadcastChannel(channelName);
    this.piscina = new Piscina({
      filename: RUNNER,
      minThreads: options.threads,
      maxThreads: options.threads,
      // Every task goes to a thread at once, never into piscina's own queue, where a pause or a
      // stop could not reach it: the runner itself holds a thread to `concurrency` jobs.
      concurrentTasksPerWorker: options.capacity,
      idleTimeout: Infinity,
      // piscina's default ('sync') parks a thread with no task in Atomics.wait, which freezes its
      // event loop: a timer, a request or a log flush a job left running stopped until the next
      // job came, and a timer that throws after its job returned never killed the thread.
      atomics: 'disabled',
      workerData,
      ...(options.memoryLimitMb
        ? { resourceLimits: { maxOldGenerationSizeMb: options.memoryLimitMb } }
        : {}),
    });
    this.piscina.on('message', (message: unknown) => {
      // Job code shares the thread's parentPort: what it posts there (progress for a UI, a
      // stray postMessage(null)) arrives here too. A null read as a ThreadMessage threw in this
      // listener and took the node's whole process down; anything not ours is ignored.
      if (isThreadMessage(message)) this.onMessage(message);
    });
    // Errors of idle threads (no task to reject) surface here; the pool replaces the thread.
    this.piscina.on('error', () => undefined);
  }

  private onMessage(message: ThreadMessage): void {
    if (message.type === 'outcomes') {
      this.batches.get(message.batch)?.(message.outcomes);
    } else if (message.type === 'crash') {
      this.crashReports.set(message.threadId, { job: message.job, error: message.error });
      // Reported now: a thread that dies with no task on it (a timer that throws after its job
      // returned) rejects nothing, so `failed` would never hear of it.
      if (!this.destroyed)
        this.reportDeath(message.threadId, `worker thread died: ${message.error}`, message.job);
    }
  }

  get size(): number {
    return this.tasks.size;
  }

  /** Live threads of the pool (piscina replaces dead ones). */
  get threadCount(): number {
    return this.piscina.threads.length;
  }

  get configuredThreads(): number {
    return this.options.threads;
  }

  /** Jobs the threads run at once at most: past it, handed-out jobs wait on their thread. */
  get performers(): number {
    return this.options.threads * this.options.concurrency;
  }

  /**
   * Changes how many jobs each thread runs at once, while they run (`queue scale` of a queue whose
   * concurrency follows its limit). Jobs waiting on a thread for a slot take the new ones; over a
   * lowered cap, running jobs finish and no new one starts until the thread is under it.
   */
  setConcurrency(concurrency: number): void {
    if (this.destroyed || concurrency === this.options.concurrency) return;
    this.options.concurrency = concurrency;
    Atomics.store(this.concurrencyCap, 0, concurrency);
    const raised: CancelMessage = { concurrency: true };
    this.cancelChannel.postMessage(raised);
  }

  /**
   * Jobs of this pool inside their perform (handed-out jobs may still wait for a slot). Counted
   * here over the tracked jobs, not by the threads: a thread that dies in the middle of a job
   * could not take it off a shared counter, while its jobs stop being tracked when settled.
   */
  get performingCount(): number {
    let count = 0;
    for (const task of this.tasks.values())
      if (this.threadOf(task) !== null && Atomics.load(this.ended, task.slot) === 0) count++;
    return count;
  }

  /** The thread running the job's perform, or null while it has not started. */
  private threadOf(task: RunningTask): number | null {
    return Atomics.load(this.threadIds, task.slot) || null;
  }

  private track(job: Job, key: string, timeoutMs: number | null): RunningTask {
    const slot = this.freeSlots.pop();
    if (slot === undefined) throw new Error(`thread pool ${this.options.queue}: no free job slot`);
    Atomics.store(this.threadIds, slot, 0);
    Atomics.store(this.ended, slot, 0);
    const task: RunningTask = {
      job,
      key,
      slot,
      stopping: null,
      graceTimer: null,
      timeoutTimer: null,
    };
    this.tasks.set(key, task);
    if (timeoutMs !== null && timeoutMs > 0) this.armTimeout(task, timeoutMs, timeoutMs);
    return task;
  }

  /**
   * A job's timeout counts from the start of its perform, not from when it was handed to the
   * pool (it may wait on its thread for a slot). A job not begun when its timer fires joins the
   * ones the pool looks at together every 50 ms until they begin (one timer, not one per job).
   */
  private armTimeout(task: RunningTask, timeoutMs: number, inMs: number): void {
    task.timeoutTimer = setTimeout(() => {
      task.timeoutTimer = null;
      if (!this.tasks.has(task.key)) return;
      if (this.threadOf(task) === null) {
        this.awaitingStart.set(task, timeoutMs);
        this.startPoll ??= setInterval(() => this.checkStarted(), 50);
        return;
      }
      const left = this.startedAt[task.slot]! + timeoutMs - monotonicMs();
      if (left > 0) this.armTimeout(task, timeoutMs, left);
      else this.stop(task.key, 'timeout', `job timed out after ${timeoutMs} ms`);
    }, inMs);
  }

  private checkStarted(): void {
    for (const [task, timeoutMs] of this.awaitingStart) {
      if (!this.tasks.has(task.key)) this.awaitingStart.delete(task);
      else if (this.threadOf(task) !== null) {
        this.awaitingStart.delete(task);
        this.armTimeout(task, timeoutMs, 0);
      }
    }
    if (this.awaitingStart.size === 0 && this.startPoll) {
      clearInterval(this.startPoll);
      this.startPoll = null;
    }
  }

  private untrack(task: RunningTask): void {
    if (task.timeoutTimer) clearTimeout(task.timeoutTimer);
    if (task.graceTimer) clearTimeout(task.graceTimer);
    this.awaitingStart.delete(task);
    this.tasks.delete(task.key);
    this.freeSlots.push(task.slot);
  }

  /** What a job's outcome means once it is back: a stop asked for meanwhile wins. */
  private completed(
    task: RunningTask,
    outcome: RunnerOutcome,
    timeoutMs: number | null,
  ): RunResult {
    if (task.stopping?.reason === 'cancel')
      return { kind: 'cancelled', reason: task.stopping.message };
    // Given back before it started (the queue paused or stopped): it runs again, attempt refunded.
    if (outcome.kind === 'unstarted') return { kind: 'interrupted' };
    if (task.stopping?.reason === 'timeout')
      return { kind: 'timeout', timeoutMs: timeoutMs ?? 0, outcome };
    // Fenced: a job that completed within its grace is recorded as such; anything else (most
    // often the abort it was given) says nothing about the job, so it goes back to run again.
    if (task.stopping?.reason === 'fence' && outcome.kind !== 'completed')
      return { kind: 'interrupted' };
    return { kind: 'outcome', outcome };
  }

  /** Gives back every handed-out job that has not started yet (see CancelMessage). */
  releaseUnstarted(): void {
    if (this.destroyed) return;
    Atomics.add(this.generation, 0, 1);
    const release: CancelMessage = { release: true };
    this.cancelChannel.postMessage(release);
  }

  /**
   * Runs jobs that became runnable together in batches of at most `concurrency` jobs, each
   * batch one piscina task: one message to the thread instead of
   * one per job. Every job keeps its own result, timeout, stop and death handling. A thread
   * never runs more than `concurrency` jobs at once: the runner holds the rest of a batch that
   * piscina placed on an already busy thread until a slot frees.
   */
  runMany(entries: PoolEntry[], batchSize = this.options.concurrency): void {
    // Batches as large as a thread may run at once, or larger when jobs are handed out ahead:
    // each message costs the main thread tens of microseconds (more when waking a thread on a
    // busy machine), so splitting 10 freed slots into one batch per thread doubled them (bench
    // W2: ~4,000 tasks for 20,000 jobs with batches of ceil(n / threads)).
    const size = Math.max(1, batchSize);
    for (let i = 0; i < entries.length; i += size) this.runBatch(entries.slice(i, i + size));
  }

  /** One piscina task; each job is settled once, by its outcome or by the task's failure. */
  private runBatch(entries: PoolEntry[]): void {
    const batch = ++this.batchSequence;
    const count = entries.length;
    const tasks: (RunningTask | null)[] = new Array<RunningTask | null>(count);
    const numbers = new Float64Array(count * NUMBER_COLUMNS);
    const message: BatchTask = {
      batch,
      queue: this.options.queue,
      numbers,
      workers: new Array<string>(count),
      args: new Array<string>(count),
      meta: new Array<string | null>(count),
      tags: new Array<string[] | null>(count),
      keys: new Array<string>(count),
      generation: Atomics.load(this.generation, 0),
    };
    for (let i = 0; i < count; i++) {
      const entry = entries[i]!;
      const job = entry.job;
      const task = this.track(job, entry.key, entry.timeoutMs);
      tasks[i] = task;
      const at = i * NUMBER_COLUMNS;
      numbers[at] = job.id;
      numbers[at + 1] = job.attempt;
      numbers[at + 2] = job.maxAttempts;
      numbers[at + 3] = job.insertedAt.getTime();
      numbers[at + 4] = job.scheduledAt.getTime();
      numbers[at + 5] = task.slot;
      message.workers[i] = job.worker;
      message.args[i] = entry.argsText ?? JSON.stringify(job.args);
      message.meta[i] =
        entry.metaText !== undefined
          ? entry.metaText
          : Object.keys(job.meta).length === 0
            ? null
            : JSON.stringify(job.meta);
      message.tags[i] = job.tags.length === 0 ? null : job.tags;
      message.keys[i] = entry.key;
    }
    let due = count;
    const settle = (index: number, result: (task: RunningTask, ms: number | null) => RunResult) => {
      const task = tasks[index];
      if (!task) return;
      tasks[index] = null;
      const entry = entries[index]!;
      const value = result(task, entry.timeoutMs);
      const started = this.threadOf(task) !== null;
      // The thread's start time is on the monotonic clock; the producer wants the wall clock's.
      // Whole milliseconds, as Date.now() gives: durations and log lines are read as integers.
      const startedAt = started
        ? Math.round(Date.now() - (monotonicMs() - this.startedAt[task.slot]!))
        : null;
      const performMs =
        started && Atomics.load(this.ended, task.slot) === 1 ? this.performMs[task.slot]! : null;
      this.untrack(task);
      if (--due === 0) this.batches.delete(batch);
      entry.done(value, startedAt, performMs);
    };
    const settleAll = (outcomes: BatchOutcomes): void => {
      for (const item of outcomes) {
        if (typeof item === 'number')
          settle(item, (task, ms) => this.completed(task, COMPLETED, ms));
        else settle(item[0], (task, ms) => this.completed(task, item[1], ms));
      }
    };
    this.batches.set(batch, settleAll);
    this.piscina.run(message).then(
      // Outcomes sent earlier in their own message were settled when it arrived.
      (outcomes: BatchOutcomes) => settleAll(outcomes),
      (error: unknown) => {
        const fail = (): void => {
          for (let i = 0; i < count; i++)
            settle(i, (task, ms) => this.failed(task, error as Error, ms));
        };
        // piscina's destroy rejects every task at once, while their threads are still being
        // terminated: a thread inside native code (a child process run with execSync, a sync
        // hash of a large file) runs on until that call returns. Settled only once every thread
        // has exited, so a job given back is not fetched by another node while it still runs.
        if (this.exited) void this.exited.then(fail);
        else fail();
      },
    );
  }

  /** Why a task's promise was rejected: its thread died, or the pool is going away. */
  private failed(task: RunningTask, error: Error, timeoutMs: number | null): RunResult {
    this.noteDeath(task, error);
    if (task.stopping?.reason === 'cancel')
      return { kind: 'cancelled', reason: task.stopping.message };
    if (task.stopping?.reason === 'timeout')
      return { kind: 'timeout', timeoutMs: timeoutMs ?? 0, outcome: null };
    if (task.stopping?.reason === 'fence') return { kind: 'interrupted' };
    // perform never started (the job waited in the queue or on the thread): nothing ran, nothing
    // is owed.
    const threadId = this.threadOf(task);
    if (this.destroyed || threadId === null) return { kind: 'interrupted' };
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

  /**
   * A thread that died with no job started on it (out of memory while importing the workers, say)
   * is reported too: its jobs go back unstarted, and unreported they were fetched and given back
   * again at once, forever, in silence. A death with a started job is that job's to explain (a
   * crash below, or the timeout, cancel or fence that terminated the thread).
   */
  private noteDeath(task: RunningTask, error: unknown): void {
    if (typeof error !== 'object' || error === null || this.destroyed) return;
    if (this.threadOf(task) !== null) {
      this.explainedDeaths.add(error);
      return;
    }
    const jobs = this.unexplainedDeaths.get(error);
    if (jobs) {
      jobs.push(task.job.id);
      return;
    }
    this.unexplainedDeaths.set(error, [task.job.id]);
    // Every task of the dead thread is rejected in the same turn.
    setImmediate(() => {
      const ids = this.unexplainedDeaths.get(error) ?? [];
      this.unexplainedDeaths.delete(error);
      if (this.destroyed || this.explainedDeaths.has(error)) return;
      const reason = `worker thread died before running a job: ${describeDeath(error as Error, this.options.memoryLimitMb)}`;
      this.options.onThreadDeath?.({ threadId: -1, error: reason, jobs: ids, culprit: null });
    });
  }

  private reportDeath(threadId: number, error: string, culprit: number | null): void {
    if (this.deathsReported.has(threadId)) return;
    this.deathsReported.add(threadId);
    // Collected on the next tick: every task of the dead thread is rejected in the same turn.
    const jobs = [...this.tasks.values()]
      .filter((t) => this.threadOf(t) === threadId)
      .map((t) => t.job.id);
    setImmediate(() => this.options.onThreadDeath?.({ threadId, error, jobs, culprit }));
  }

  /**
   * Signals the job to stop; terminates its thread if it is still running after the grace period
   * (`cancelGracePeriod` unless given). A fence's grace runs from now, even for a job that has not
   * reached its thread yet, and shortens the grace of a job already being stopped: its deadline
   * is one the thread must not outlive.
   */
  stop(key: string, reason: StopReason, message: string, graceMs?: number): boolean {
    const task = this.tasks.get(key);
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
    // Told to every thread even before it started: the one holding it (or receiving it later)
    // gives it back unstarted, and the grace period only ends a job that is in its perform.
    this.signalStop(task);
    return true;
  }

  private signalStop(task: RunningTask): void {
    const cancel: CancelMessage = { key: task.key, reason: task.stopping?.message ?? '' };
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
    task.graceTimer = null;
    if (!this.tasks.has(task.key)) return;
    const threadId = this.threadOf(task);
    if (threadId === null) {
      // Not started: the stop reaches it on its thread, which gives it back unstarted. Look again
      // in case it began just before the stop arrived (soon, for a fence's deadline).
      const again = task.stopping?.reason === 'fence' ? 20 : this.options.cancelGracePeriod;
      task.graceTimer = setTimeout(() => this.terminate(task), again);
      return;
    }
    const worker = this.piscina.threads.find((t) => t.threadId === threadId);
    if (!worker) return;
    // Everything else on that thread dies with it; `failed` reports those jobs as interrupted.
    this.terminated.set(threadId, task.job.id);
    void worker.terminate();
  }

  async destroy(): Promise<void> {
    if (this.destroyed) return;
    this.destroyed = true;
    if (this.startPoll) clearInterval(this.startPoll);
    this.startPoll = null;
    this.cancelChannel.close();
    // Resolves when every thread has exited (piscina waits for their 'exit' events).
    this.exited = this.piscina.destroy().catch(() => undefined);
    await this.exited;
  }
}

/** The outcome a bare index stands for (see BatchOutcomes). */
const COMPLETED: RunnerOutcome = { kind: 'completed', result: null, warning: null };

function describeDeath(error: Error, memoryLimitMb: number | null): string {
  const code = (error as { code?: string }).code;
  if (code === 'ERR_WORKER_OUT_OF_MEMORY') {
    return `${error.message} (memoryLimitMb ${memoryLimitMb ?? 'default'})`;
  }
  return error.message;
}
