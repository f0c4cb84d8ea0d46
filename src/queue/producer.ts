// One per queue: fetches as many jobs as it has free slots (plus `prefetch` claimed ahead), hands
// each to the queue's thread pool, and turns what comes back into an outcome row for the node's
// OutcomeWriter. Wakes on insert notifications and falls back to a jittered poll.
//
// Look-ahead (`prefetch`): with only free slots to fill, each finished job costs a fetch round
// trip of one or two rows, and the queue idles while it is in flight (W2 drain: ~2.5k jobs/s at
// limit 20). Claiming up to limit + prefetch and refilling when half the look-ahead is used
// overlaps fetching with running, and one fetch claims a few hundred rows. Claimed jobs that
// never started (stop, pause, a crashed pool, a cancel) go back as `available` with their attempt
// refunded, through the same outcome writer, so shutdown flushes them too.
//
// Fenced (the node could not write its heartbeat, src/node/fence.ts): as paused, but apart from
// the user's pause, so lifting the fence brings back exactly the queues the user did not pause.

import type pg from 'pg';
import { MAX_TIMER_MS } from '../config/bounds.js';
import { describe } from '../config/validate.js';
import type { ClaimedJob, JobQueries, OutcomeRow } from '../db/queries/jobs.js';
import { MAX_SCHEDULE_IN } from '../jobs/insert.js';
import { jobOf, type Job, type JobRecord, type JobState } from '../jobs/types.js';
import type { JobEventBase, Telemetry } from '../telemetry/events.js';
import { defaultBackoff } from '../worker/define.js';
import type { RegisteredWorker } from '../worker/registry.js';
import { describeError } from '../thread/outcome.js';
import type { OutcomeWriter } from './outcomes.js';
import type { PoolEntry, RunResult, ThreadPool } from './threads.js';

export interface ProducerDeps {
  queue: string;
  node: string;
  /** Claims jobs (the node's fetch pool, see db/connect.ts createFetchPool). */
  pool: pg.Pool;
  queries: JobQueries;
  outcomes: OutcomeWriter;
  workers: Map<string, RegisteredWorker>;
  telemetry: Telemetry;
  /** Runs a database call through the breaker. */
  call: <T>(fn: () => Promise<T>) => Promise<T>;
  /** A token unique to this node process; attempt tokens are built from it. */
  runId: string;
  /** A fetch failed (its claim may still have committed). */
  onFetchFailed?: (token: string, error: unknown) => void;
}

interface RunningJob {
  record: JobRecord;
  startedAt: number;
}

let fetchSequence = 0;

/** Jobs shorter than this on average may be handed out in larger batches (see ahead()). */
const SHORT_JOB_MS = 1;

export class Producer {
  limit: number;
  private isPaused: boolean;
  private isFenced = false;
  /** Counts fences: a fetch sent before one does not run what it claimed. */
  private fenceEpoch = 0;
  private threads: ThreadPool | null = null;
  /**
   * Handed to the pool, by attempt token: a job cancelled and retried at once can be fetched
   * again while its cancelled attempt is still stopping, and the two must not be confused.
   */
  private readonly running = new Map<string, RunningJob>();
  /** Claimed (executing in the database) but not started yet, in fetch order. */
  private readonly waiting: ClaimedJob[] = [];
  private readonly prefetch: number;
  private refillQueued = false;
  private unwritten = 0;
  private fetching: Promise<void> | null = null;
  private again = false;
  private stopped = true;
  private pollTimer: NodeJS.Timeout | null = null;
  private idleWaiters: (() => void)[] = [];

  constructor(
    private readonly deps: ProducerDeps,
    options: { limit: number; paused: boolean; pollInterval: number; prefetch?: number },
  ) {
    this.limit = options.limit;
    this.isPaused = options.paused;
    this.pollInterval = options.pollInterval;
    this.prefetch = options.prefetch ?? 0;
  }

  get paused(): boolean {
    return this.isPaused;
  }

  /** Gives back every claimed job that has not started, here or waiting on a thread. */
  releaseWaiting(): void {
    this.release();
    this.threads?.releaseUnstarted();
  }

  /** Pausing also gives back the jobs claimed ahead, so other nodes can run them. */
  set paused(value: boolean) {
    this.isPaused = value;
    if (value) {
      this.releaseWaiting();
    }
  }

  private readonly pollInterval: number;

  get fenced(): boolean {
    return this.isFenced;
  }

  set fenced(value: boolean) {
    if (value === this.isFenced) return;
    this.isFenced = value;
    if (value) {
      this.fenceEpoch++;
      this.releaseWaiting();
    } else {
      this.wake();
    }
  }

  /**
   * Stops every running job for a fence: abort signal, thread terminated after `graceMs`. Their
   * outcome is `interrupted` (available again, attempt refunded) unless they complete meanwhile.
   * Returns how many were asked to stop.
   */
  stopRunning(message: string, graceMs: number): number {
    const threads = this.threads;
    if (!threads) return 0;
    let stopped = 0;
    for (const token of this.running.keys())
      if (threads.stop(token, 'fence', message, graceMs)) stopped++;
    return stopped;
  }

  /** Jobs inside perform (handed-out jobs may still wait for a slot on their thread). */
  get runningCount(): number {
    return this.threads ? this.threads.performingCount : this.running.size;
  }

  /**
   * How many claimed jobs beyond the limit may wait on the threads rather than here. With only
   * `limit` jobs handed out, each batch is as large as the slots that just freed (10 at limit 20),
   * and every batch costs a message each way; handing out up to three limits' worth of the
   * look-ahead makes batches of 40 (bench W2: main thread ~45 ms per 1,000 jobs at limit 200,
   * ~60 at limit 20). While the recent jobs of the queue take under a millisecond each, up to
   * fifteen limits' worth (batches of 160 at limit 20 on 2 threads): a message and the wake-up of
   * a thread cost ~200 us of CPU on 2 cores, several jobs' worth when jobs are that short (bench
   * W2, prefetch 1000: 35.6k jobs/s with three limits, 37.8k with seven, 38.2k with fifteen;
   * node CPU 26 -> 24 ms per 1,000 jobs). Jobs that short cannot hold a batch up behind them;
   * longer ones get three limits, as before.
   * The threads' own caps keep the limit, so this holds only when they
   * add up to no more than it (threads x concurrency <= limit); otherwise nothing waits there.
   * Jobs waiting on a thread are given back like those waiting here (pause, stop, cancel), and
   * their timeouts and durations count from the start of perform.
   */
  private ahead(): number {
    const threads = this.threads;
    if (!threads || this.prefetch === 0 || threads.performers > this.limit) return 0;
    const limits = this.recentMs < SHORT_JOB_MS ? 15 : 3;
    return Math.min(this.prefetch, limits * this.limit);
  }

  /**
   * Moving average of the queue's recent perform times (ms), as their threads timed them;
   * unknown (Infinity) at first. Timed here, from the start of perform to its outcome's arrival,
   * a no-op job took the 1-10 ms of its batch's way back on a busy node, and the queue flipped
   * between batches of 80 and 320 all through a drain (bench W2).
   */
  private recentMs = Infinity;

  private noteDuration(ms: number): void {
    this.recentMs = this.recentMs === Infinity ? ms : this.recentMs * 0.9 + ms * 0.1;
  }

  runningIds(): number[] {
    return [...this.running.values()].map((r) => r.record.id);
  }

  attach(threads: ThreadPool | null): void {
    this.threads = threads;
    if (threads) this.wake();
    else this.release();
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.schedulePoll();
    this.wake();
  }

  /** Stops fetching; running jobs carry on (the node waits for them). */
  stop(): void {
    this.stopped = true;
    if (this.pollTimer) clearTimeout(this.pollTimer);
    this.pollTimer = null;
    this.releaseWaiting();
  }

  private schedulePoll(): void {
    if (this.stopped) return;
    const jitter = this.pollInterval * 0.1 * Math.random();
    this.pollTimer = setTimeout(() => {
      this.wake();
      this.schedulePoll();
    }, this.pollInterval + jitter);
    this.pollTimer.unref();
  }

  private canRun(): boolean {
    return !this.stopped && !this.isPaused && !this.isFenced && this.threads !== null;
  }

  /**
   * How many jobs to claim now: none while more than half the look-ahead is still waiting. From
   * a standstill (nothing running or waiting: a burst after a quiet spell, a resume, a start),
   * only what can start at once, so the first jobs run while the next claim fetches the rest:
   * a claim takes ~9 us per row on an idle machine and several times that on a busy one, and
   * claiming limit + prefetch in one went had the queue wait for all of it. Bench W2, prefetch
   * 1000: the first claim of 1,020 rows came back 41 ms after the resume; claimed as 80, then
   * 940, the first 80 were back after 8 ms and running while the 940 came. W2 over 6 alternating
   * pairs: medians 40.9k against 39.3k jobs/s.
   */
  private wanted(): number {
    if (!this.canRun()) return 0;
    if (this.prefetch > 0 && this.waiting.length > this.prefetch / 2) return 0;
    const wanted = this.limit + this.prefetch - this.running.size - this.waiting.length;
    if (this.running.size === 0 && this.waiting.length === 0)
      return Math.min(wanted, this.limit + this.ahead());
    return wanted;
  }

  private canFetch(): boolean {
    return this.wanted() > 0;
  }

  /**
   * The last claim came back with fewer rows than it asked for: the queue had nothing more
   * available then. A job finishing here does not change that, so it does not claim again (an
   * empty claim after every job: at 100 jobs/s, 100 empty claims a second); whatever makes jobs
   * available notifies (inserts, the stager, retries, rescues, jobs given back by an outcome),
   * and the poll finds what a lost notification did not say.
   */
  private exhausted = false;

  /** Something may have made jobs available (a notification, the poll, a resume): claim. */
  wake(): void {
    this.exhausted = false;
    this.fetchMore();
  }

  private fetchMore(): void {
    if (!this.canFetch()) return;
    if (this.fetching) {
      this.again = true;
      return;
    }
    this.fetching = this.fetchLoop().finally(() => {
      this.fetching = null;
    });
  }

  private async fetchLoop(): Promise<void> {
    do {
      this.again = false;
      while (this.canFetch()) {
        const want = this.wanted();
        const token = `${this.deps.runId}.${++fetchSequence}`;
        let rows: ClaimedJob[];
        const epoch = this.fenceEpoch;
        try {
          rows = await this.deps.call(() =>
            this.deps.queries.fetch(this.deps.pool, this.deps.queue, want, this.deps.node, token),
          );
        } catch (error) {
          // The breaker logs and reports database trouble; the next poll tries again. The
          // claim may have committed with its answer lost: the node puts such jobs back.
          this.deps.onFetchFailed?.(token, error);
          // A wake that came while it was in flight (an insert's notification, the breaker
          // closing, LISTEN connected again) claims again now: it was lost with the failed
          // claim, and its jobs waited for the poll. With no wake, the poll tries again.
          break;
        }
        if (epoch !== this.fenceEpoch) {
          // Sent before a fence and answered after it (a connection that stalled and came back):
          // the fence may have been lifted meanwhile, but the jobs may have been rescued too.
          // They go back, fenced by their token, without running.
          for (const record of rows) this.giveBack(record, { kind: 'interrupted' });
          break;
        }
        this.waiting.push(...rows);
        this.pump();
        if (rows.length < want) {
          // Not if a wake came while this claim was in flight (it set `again`): its jobs may
          // have committed after the claim's snapshot, and if the loop cannot claim again at once
          // (more than half the look-ahead waiting), the next finished job must.
          this.exhausted = !this.again;
          break;
        }
        this.exhausted = false;
      }
    } while (this.again && this.canFetch());
  }

  /** Starts waiting jobs while there are free slots; gives them back if the queue cannot run. */
  private pump(): void {
    if (!this.canRun()) {
      this.release();
      return;
    }
    const free = this.limit + this.ahead() - this.running.size;
    if (free > 0 && this.waiting.length > 0) this.dispatch(this.waiting.splice(0, free));
  }

  /**
   * Gives back claimed jobs that never started: `available` again, attempt refunded (the same
   * row as a job interrupted by its thread's death). No job events: they did not run.
   */
  private release(): void {
    const records = this.waiting.splice(0);
    for (const record of records) {
      this.giveBack(record, { kind: 'interrupted' });
    }
  }

  private giveBack(record: JobRecord, result: RunResult): void {
    const token = tokenOf(record);
    const row = outcomeRow(record, jobOf(record), undefined, result, token);
    this.unwritten++;
    this.deps.outcomes.push({
      row,
      done: (written) => {
        this.unwritten--;
        if (!written && result.kind === 'cancelled') this.releaseCancelled(record.id, token);
        this.checkIdle();
      },
    });
  }

  /**
   * A run cancelled from elsewhere has ended here (or never started): a retry held back until
   * it would surely have ended runs now (JobQueries.releaseCancelledRun). Should this fail, the
   * retry runs when the hold ends.
   */
  private releaseCancelled(id: number, token: string): void {
    void this.deps
      .call(() => this.deps.queries.releaseCancelledRun(this.deps.pool, id, token))
      .catch(() => undefined);
  }

  /** Starts jobs; those bound for the thread pool go together (one message per thread). */
  private dispatch(records: ClaimedJob[]): void {
    const threads = this.threads;
    const pooled: PoolEntry[] = [];
    for (const record of records) {
      const handedAt = Date.now();
      const token = tokenOf(record);
      this.running.set(token, { record, startedAt: handedAt });
      this.unwritten++;
      const job = jobOf(record);
      const queueTimeMs = Math.max(
        0,
        (record.attemptedAt ?? new Date()).getTime() - record.scheduledAt.getTime(),
      );
      // Payloads are built field by field, not spread from base(): these two events are on the
      // per-job path, and the spreads were a visible share of the main thread (bench W2).
      this.deps.telemetry.emit('job:start', {
        id: record.id,
        worker: record.worker,
        queue: record.queue,
        attempt: record.attempt,
        node: this.deps.node,
        args: record.args,
        queueTimeMs,
      });
      const registered = this.deps.workers.get(record.worker);
      const done = (result: RunResult, startedAt: number | null, performMs: number | null): void =>
        this.finish(record, job, registered, result, startedAt ?? handedAt, queueTimeMs, performMs);
      if (!registered || !threads) {
        void Promise.resolve().then(() =>
          done(
            {
              kind: 'outcome',
              outcome: {
                kind: 'failed',
                error: `unknown worker ${JSON.stringify(record.worker)}: no worker of that name is registered on node ${this.deps.node}`,
                warning: null,
              },
            },
            null,
            null,
          ),
        );
        continue;
      }
      pooled.push({
        job,
        key: token,
        timeoutMs: timeoutFor(registered, job, record, this.warnAbout),
        done,
        argsText: record.argsText,
        metaText: record.metaText,
      });
    }
    if (!threads || pooled.length === 0) return;
    const ahead = this.ahead();
    // Handed out ahead, a batch is a thread's share of everything that may wait on the threads.
    const batchSize =
      ahead > 0 ? Math.ceil((this.limit + ahead) / threads.configuredThreads) : undefined;
    threads.runMany(pooled, batchSize);
  }

  private finish(
    record: JobRecord,
    job: Job,
    registered: RegisteredWorker | undefined,
    result: RunResult,
    startedAt: number,
    queueTimeMs: number,
    performMs: number | null,
  ): void {
    this.running.delete(tokenOf(record));
    const durationMs = Date.now() - startedAt;
    if (result.kind === 'outcome') this.noteDuration(performMs ?? durationMs);
    const token = tokenOf(record);
    const row = outcomeRow(record, job, registered, result, token, this.warnAbout);
    const warning = result.kind === 'outcome' ? result.outcome.warning : null;
    const isFailure =
      result.kind === 'crashed' ||
      result.kind === 'timeout' ||
      (result.kind === 'outcome' && result.outcome.kind === 'failed');
    if (warning) this.deps.telemetry.emit('job:warning', { ...this.base(record), warning });

    this.deps.outcomes.push({
      row,
      done: (written) => {
        this.unwritten--;
        // A job cancelled from elsewhere is cancelled in its row before its runner stops, so the
        // runner's outcome is refused; the attempt still ended here, as cancelled.
        if (!written && result.kind === 'cancelled') this.releaseCancelled(record.id, token);
        if (written || result.kind === 'cancelled') {
          if (isFailure) {
            this.deps.telemetry.emit('job:exception', {
              ...this.base(record),
              error: firstLine(row.error ?? ''),
              stack: row.error ?? '',
              willRetry: row.state === 'retryable',
              state: row.state,
            });
          }
          this.deps.telemetry.emit('job:stop', {
            id: record.id,
            worker: record.worker,
            queue: record.queue,
            attempt: record.attempt,
            node: this.deps.node,
            args: record.args,
            state: row.state,
            durationMs,
            queueTimeMs,
            result: row.result,
          });
        }
        this.checkIdle();
      },
    });
    this.refill();
  }

  /**
   * Fills the freed slots once the current turn's outcomes are all in: outcomes of a batch arrive
   * together, and starting each freed slot alone would send one job per message again.
   */
  private refill(): void {
    if (this.refillQueued) return;
    this.refillQueued = true;
    setImmediate(() => {
      this.refillQueued = false;
      this.pump();
      if (!this.exhausted) this.fetchMore();
    });
  }

  /** A warning about a job before it runs (made once: dispatch runs per job). */
  private readonly warnAbout = (record: JobRecord, warning: string): void => {
    this.deps.telemetry.emit('job:warning', { ...this.base(record), warning });
  };

  private base(record: JobRecord): JobEventBase {
    return {
      id: record.id,
      worker: record.worker,
      queue: record.queue,
      attempt: record.attempt,
      node: this.deps.node,
      args: record.args,
    };
  }

  /**
   * Asks the thread pool to stop a running job (cancel from anywhere). With `token`, only that
   * attempt: a cancel that arrives after the job was retried and fetched again must not stop
   * the new attempt.
   */
  cancelRunning(id: number, reason: string, token?: string | null): boolean {
    const matches = (record: JobRecord): boolean =>
      record.id === id && (token == null || tokenOf(record) === token);
    const index = this.waiting.findIndex(matches);
    if (index >= 0) {
      // Claimed ahead but not started: it is cancelled without running.
      this.giveBack(this.waiting.splice(index, 1)[0]!, { kind: 'cancelled', reason });
      return true;
    }
    const threads = this.threads;
    if (!threads) return false;
    let stopped = false;
    for (const [key, run] of this.running)
      if (matches(run.record) && threads.stop(key, 'cancel', reason)) stopped = true;
    return stopped;
  }

  private checkIdle(): void {
    if (this.running.size === 0 && this.unwritten === 0 && this.waiting.length === 0) {
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      waiters.forEach((resolve) => resolve());
    }
  }

  /** Resolves when no job is running and every outcome is written. */
  idle(): Promise<void> {
    if (this.running.size === 0 && this.unwritten === 0 && this.waiting.length === 0)
      return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  runningJobs(): { id: number; worker: string; startedAt: number; token: string }[] {
    return [...this.running.values()].map((r) => ({
      id: r.record.id,
      worker: r.record.worker,
      startedAt: r.startedAt,
      token: tokenOf(r.record),
    }));
  }
}

/** The attempt token of a claimed job (attempted_by[2]). */
function tokenOf(record: JobRecord): string {
  return record.attemptedBy?.[1] ?? '';
}

function firstLine(text: string): string {
  return text.split('\n', 1)[0] ?? '';
}

/**
 * The job's timeout in ms, or null for none. A `timeout` function that throws or returns
 * something other than a positive number gives none, and says so on `job:warning` (it ran with
 * no timeout without a word).
 */
function timeoutFor(
  registered: RegisteredWorker,
  job: Job,
  record: JobRecord,
  warnAbout: (record: JobRecord, warning: string) => void,
): number | null {
  const timeout = registered.definition.timeout as number | ((job: Job) => number) | undefined;
  if (timeout === undefined) return null;
  let ms: unknown;
  try {
    ms = typeof timeout === 'function' ? timeout(job) : timeout;
  } catch (error) {
    warnAbout(
      record,
      `timeout: the worker's timeout function threw (${describeError(error).split('\n', 1)[0]}); the job runs with no timeout`,
    );
    return null;
  }
  if (typeof ms !== 'number' || !Number.isFinite(ms) || ms <= 0) {
    // 0 (or nothing) is how a function says "no timeout for this one": no warning for those.
    if (ms !== 0 && ms !== undefined && ms !== null)
      warnAbout(
        record,
        `timeout: the worker's timeout function returned ${describe(ms)}, not a positive number of ms; the job runs with no timeout`,
      );
    return null;
  }
  // Node's timers cannot wait longer (a larger delay fires after 1 ms): a longer timeout is
  // as good as none, and is held to the longest one a timer keeps.
  return Math.min(ms, MAX_TIMER_MS);
}

/**
 * Seconds until the retry, at most 100 years (an insert's longest scheduleIn). Beyond PostgreSQL's
 * timestamps (2 ** attempt from attempt 43, or the default 15 + attempt^4 past attempt ~1700)
 * the outcome was refused and the job retried after a second instead, every second.
 */
function backoffFor(
  registered: RegisteredWorker | undefined,
  job: Job,
  warn?: (warning: string) => void,
): number {
  const custom = registered?.definition.backoff as ((job: Job) => number) | undefined;
  if (custom) {
    // A backoff that throws or returns no number of seconds falls back to the default, and
    // says so on job:warning (it did so without a word, as a timeout function once did).
    const fallback = 'the default backoff (15 + attempt^4 seconds) is used';
    try {
      const seconds = custom(job);
      if (typeof seconds === 'number' && Number.isFinite(seconds) && seconds >= 0)
        return Math.min(seconds, MAX_SCHEDULE_IN);
      warn?.(
        `backoff: the worker's backoff function returned ${typeof seconds === 'number' ? String(seconds) : describe(seconds)}, not a number of seconds of 0 or more; ${fallback}`,
      );
    } catch (error) {
      warn?.(
        `backoff: the worker's backoff function threw (${describeError(error).split('\n', 1)[0]}); ${fallback}`,
      );
    }
  }
  return Math.min(defaultBackoff(job.attempt), MAX_SCHEDULE_IN);
}

/**
 * One outcome row, written out whole rather than spread from a base object: this runs once per
 * job on the main thread, and the spreads were ~0.8 us of it (bench W2).
 */
function row(
  id: number,
  token: string,
  state: JobState,
  error: string | null,
  delay: number | null = null,
  refund = 0,
  result: unknown = null,
): OutcomeRow {
  return { id, token, state, delay, error, result, refund };
}

/** The documented outcome rules, as one row for the writer. */
export function outcomeRow(
  record: JobRecord,
  job: Job,
  registered: RegisteredWorker | undefined,
  result: RunResult,
  token: string,
  warn?: (record: JobRecord, warning: string) => void,
): OutcomeRow {
  const id = record.id;
  const failure = (error: string): OutcomeRow => {
    const state: JobState = record.attempt >= record.maxAttempts ? 'discarded' : 'retryable';
    return row(
      id,
      token,
      state,
      error,
      state === 'retryable'
        ? backoffFor(registered, job, warn && ((warning) => warn(record, warning)))
        : null,
    );
  };
  switch (result.kind) {
    case 'interrupted':
      return row(id, token, 'available', null, null, 1);
    case 'crashed':
      return failure(result.error);
    case 'timeout':
      return failure(
        `timeout: ${result.timeoutMs ? `job timed out after ${result.timeoutMs} ms` : 'job timed out'}`,
      );
    case 'cancelled':
      return row(id, token, 'cancelled', `cancelled: ${result.reason}`);
    case 'outcome': {
      const outcome = result.outcome;
      switch (outcome.kind) {
        case 'completed':
          return row(id, token, 'completed', null, null, 0, outcome.result);
        case 'failed':
          return failure(outcome.error);
        case 'cancelled':
          return row(id, token, 'cancelled', `cancelled: ${outcome.reason}`);
        case 'discarded':
          return row(id, token, 'discarded', `discarded: ${outcome.reason}`);
        case 'snoozed':
          return row(id, token, 'scheduled', null, outcome.seconds, 1);
      }
    }
  }
}
