// Records job outcomes in batches, one node-wide writer. At most one write is in flight; every
// outcome that arrives meanwhile goes into the next one, so batches grow with load and add no
// delay when idle (group commit). A write that fails is kept and retried: outcomes of jobs that
// finished while the database was away are written when it returns, never lost, never re-run.
// A job is reported finished only after its row says so.

import type pg from 'pg';
import type { JobQueries, OutcomeRow } from '../db/queries/jobs.js';
import { cleanString } from '../jobs/json.js';

export interface PendingOutcome {
  row: OutcomeRow;
  /** Called once the row is written (true) or was fenced out by a rescue or cancel (false). */
  done: (written: boolean) => void;
  /** Set when the original outcome was refused and an error is written instead. */
  fallback?: boolean;
}

export interface OutcomeWriterOptions {
  /** Called to run a database call (the breaker wraps it). */
  call?: <T>(fn: () => Promise<T>) => Promise<T>;
  onError?: (error: Error, pending: number) => void;
  maxBatch?: number;
}

export class OutcomeWriter {
  private queue: PendingOutcome[] = [];
  private flushing: Promise<void> | null = null;
  private retryTimer: NodeJS.Timeout | null = null;
  private retryDelay = 100;
  private flushQueued = false;
  /**
   * While a batch is split to find a refused value: the outcomes of it already written (or
   * refused), by their `done` (a fallback row is a copy with the same one). Null otherwise, so
   * that the outcomes of a batch written whole cost nothing more per job.
   */
  private splitSettled: Set<PendingOutcome['done']> | null = null;
  private readonly call: <T>(fn: () => Promise<T>) => Promise<T>;

  constructor(
    private readonly pool: pg.Pool,
    private readonly queries: JobQueries,
    private readonly options: OutcomeWriterOptions = {},
  ) {
    this.call = options.call ?? ((fn) => fn());
  }

  get pending(): number {
    return this.queue.length;
  }

  push(outcome: PendingOutcome): void {
    this.queue.push(outcome);
    if (this.flushing || this.retryTimer || this.flushQueued) return;
    // Start the write at the end of this turn, not at the first push: the outcomes of a batch
    // of jobs arrive in one turn, and starting at once wrote the first of them alone and the
    // rest in a second statement (twice the writes in bench W2).
    this.flushQueued = true;
    setImmediate(() => {
      this.flushQueued = false;
      if (!this.flushing && !this.retryTimer && this.queue.length > 0)
        this.flushing = this.flushLoop();
    });
  }

  private async flushLoop(): Promise<void> {
    try {
      while (this.queue.length > 0) {
        const batch = this.queue.splice(0, this.options.maxBatch ?? 1000);
        this.splitSettled = null;
        try {
          await this.write(batch);
          this.retryDelay = 100;
        } catch (error) {
          // A batch split to find a refused value may have been written in part before the
          // connection failed: only what is not settled goes back (settling twice counted the
          // jobs' outcomes down twice, and a node stopping waited for an idle it never reached).
          const settled = this.splitSettled as Set<PendingOutcome['done']> | null;
          this.queue.unshift(...(settled ? batch.filter((p) => !settled.has(p.done)) : batch));
          this.options.onError?.(error as Error, this.queue.length);
          this.scheduleRetry();
          return;
        }
      }
    } finally {
      this.flushing = null;
    }
  }

  private async write(batch: PendingOutcome[]): Promise<void> {
    let written: Set<string>;
    try {
      written = await this.call(() =>
        this.queries.recordOutcomes(
          this.pool,
          batch.map((p) => p.row),
        ),
      );
    } catch (error) {
      // A value the database refuses (it should not happen: outcomes are cleaned in the thread)
      // must fail its own job only. Split the batch to find it; connection errors rethrow.
      // A batch too long for one statement (several results near the thread's limit: over
      // MAX_OUTCOME_BATCH_CHARS of results and errors, or past V8's ~512 MB string length,
      // both RangeError) is split the same way; before, it was retried whole, forever, and held
      // every outcome of the node behind it.
      if (isDataError(error) || error instanceof RangeError) {
        if (batch.length > 1) {
          this.splitSettled ??= new Set();
          const middle = Math.ceil(batch.length / 2);
          await this.write(batch.slice(0, middle));
          await this.write(batch.slice(middle));
          return;
        }
        const only = batch[0]!;
        // Written as retryable whatever the attempt: recordOutcomes discards it instead when the
        // job has no attempt left (a job on its last attempt must not run again).
        if (!only.fallback) {
          const message = cleanString((error as Error).message);
          const row: OutcomeRow = {
            ...only.row,
            state: 'retryable',
            result: null,
            refund: 0,
            delay: 1,
            error: `the outcome could not be stored: ${message}`,
          };
          return this.write([{ ...only, row, fallback: true }]);
        }
      }
      throw error;
    }
    // By attempt token: two attempts of one job may share a batch, and only one is written.
    const settled = this.splitSettled;
    for (const pending of batch) {
      settled?.add(pending.done);
      pending.done(written.has(pending.row.token));
    }
  }

  private scheduleRetry(): void {
    if (this.retryTimer || this.closed) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      if (!this.flushing) this.flushing = this.flushLoop();
    }, this.retryDelay);
    this.retryDelay = Math.min(this.retryDelay * 2, 2000);
  }

  private closed = false;

  /**
   * Stops retrying (the node is going away and its pool with it). What is still pending stays
   * executing in the database, and the lifeline rescues it.
   */
  close(): void {
    this.closed = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
  }

  /** Writes everything pending; retries until `deadline` (epoch ms). Returns what is left. */
  async drain(deadline: number): Promise<number> {
    while (this.queue.length > 0 || this.flushing || this.retryTimer) {
      if (Date.now() > deadline) break;
      if (this.flushing) {
        await this.flushing;
        continue;
      }
      if (this.retryTimer) {
        clearTimeout(this.retryTimer);
        this.retryTimer = null;
      }
      this.flushing = this.flushLoop();
      await this.flushing;
      if (this.queue.length > 0)
        await new Promise((r) => setTimeout(r, Math.min(500, this.retryDelay)));
    }
    return this.queue.length;
  }
}

/** Whether the database refused the values of the batch, rather than being unreachable. */
export function isDataError(error: unknown): boolean {
  const code = (error as { code?: string } | null)?.code;
  // 22xxx data exceptions (invalid text representation, untranslatable character, ...), and
  // 54xxx program limits (a string too long for jsonb, 54000; nesting too deep, 54001): both
  // are about a value, not the connection. A 54 treated as a connection problem held every
  // outcome of the node behind the one too large, retried forever, memory growing.
  return typeof code === 'string' && (code.startsWith('22') || code.startsWith('54'));
}
