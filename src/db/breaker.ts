// A circuit breaker around database calls. Connection-level failures (not query errors such as
// a constraint violation) count; `failures` of them within `windowMs` trip it. While open,
// calls fail fast with BreakerOpenError; after `openMs` one probe call is let through, and a
// success closes it. The clock is injectable for tests.

import type { Telemetry } from '../telemetry/events.js';

export class BreakerOpenError extends Error {
  override name = 'BreakerOpenError';
  constructor(readonly breaker: string) {
    super(`circuit ${breaker} is open: the database is not answering`);
  }
}

export type BreakerState = 'closed' | 'open' | 'half-open';

export interface BreakerOptions {
  name: string;
  failures: number;
  windowMs: number;
  openMs: number;
  telemetry?: Telemetry;
  now?: () => number;
}

/** Errors that say the database is unreachable or went away, rather than that a query was bad. */
export function isConnectionError(error: unknown): boolean {
  const e = error as { code?: string; message?: string } | null;
  const code = e?.code ?? '';
  if (
    [
      'ECONNREFUSED',
      'ECONNRESET',
      'ETIMEDOUT',
      'EPIPE',
      'ENOTFOUND',
      'EHOSTUNREACH',
      '57P01',
      '57P02',
      '57P03',
      '08000',
      '08003',
      '08006',
      '08001',
      '08004',
      '53300',
    ].includes(code)
  ) {
    return true;
  }
  const message = e?.message ?? '';
  // 'Query read timeout': pg gave up waiting for an answer (the pools' query_timeout, see
  // db/connect.ts); the connection is closed, and the statement may have run. 'timeout expired':
  // pg gave up a connect (a client's connectionTimeoutMillis, as the node's pools set it).
  return /^timeout expired$|Connection terminated|connection timeout|Query read timeout|timeout exceeded when trying to connect|Client has encountered a connection error|not queryable|ECONNREFUSED|the database system is (starting up|shutting down)/i.test(
    message,
  );
}

export class Breaker {
  private failureTimes: number[] = [];
  private openedAt = 0;
  private probing = false;
  state: BreakerState = 'closed';
  private readonly now: () => number;

  constructor(private readonly options: BreakerOptions) {
    this.now = options.now ?? Date.now;
  }

  async call<T>(fn: () => Promise<T>): Promise<T> {
    // While a probe is out, every other call fails fast too: one call tests the database.
    if (this.state === 'half-open' && this.probing) throw new BreakerOpenError(this.options.name);
    if (this.state === 'open') {
      if (this.now() - this.openedAt < this.options.openMs) {
        throw new BreakerOpenError(this.options.name);
      }
      this.state = 'half-open';
    }
    return this.attempt(fn, this.state === 'half-open');
  }

  /** Runs `fn`, counting a connection error against the circuit and anything else as an answer. */
  private async attempt<T>(fn: () => Promise<T>, probe: boolean): Promise<T> {
    if (probe) this.probing = true;
    try {
      const result = await fn();
      this.succeeded();
      return result;
    } catch (error) {
      if (isConnectionError(error)) this.failed(error as Error);
      else this.succeeded();
      throw error;
    } finally {
      if (probe) this.probing = false;
    }
  }

  /**
   * Runs `fn` even while the circuit is open (one probe at a time). Node heartbeats go through
   * here: they are the breaker's probes, so a node heartbeats again as soon as the database is
   * back, never `openMs` later, and the lifeline does not take a live node for a dead one.
   */
  async probe<T>(fn: () => Promise<T>): Promise<T> {
    if (this.state === 'closed') return this.call(fn);
    if (this.probing) throw new BreakerOpenError(this.options.name);
    this.state = 'half-open';
    return this.attempt(fn, true);
  }

  private succeeded(): void {
    this.failureTimes = [];
    if (this.state !== 'closed') {
      this.state = 'closed';
      this.options.telemetry?.emit('circuit:close', { name: this.options.name });
    }
  }

  private failed(error: Error): void {
    const now = this.now();
    if (this.state === 'half-open') {
      this.state = 'open';
      this.openedAt = now;
      return;
    }
    this.failureTimes = this.failureTimes.filter((t) => now - t < this.options.windowMs);
    this.failureTimes.push(now);
    if (this.state === 'closed' && this.failureTimes.length >= this.options.failures) {
      this.state = 'open';
      this.openedAt = now;
      this.options.telemetry?.emit('circuit:trip', {
        name: this.options.name,
        error: error.message,
        failures: this.failureTimes.length,
      });
      this.options.telemetry?.emit('circuit:open', { name: this.options.name });
    }
  }
}
