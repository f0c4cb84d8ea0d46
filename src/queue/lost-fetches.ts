// Fetches whose answer never came back. A fetch is one UPDATE that claims jobs; when the
// connection dies after PostgreSQL committed it but before the rows reached us, those jobs are
// `executing` under this live node, which does not know them, and the lifeline never rescues a
// node that heartbeats. So the token of every fetch that failed on a connection error is kept,
// and the jobs claimed under it (if any) are put back, attempt refunded, by every heartbeat that
// reaches the database for KEEP_MS after the failure (a claim given up may commit later). Exact
// and race-free: a failed fetch's rows can never be dispatched any more.

import type pg from 'pg';
import { isConnectionError } from '../db/breaker.js';
import { QUERY_TIMEOUT_MS } from '../db/connect.js';
import type { MaintenanceQueries } from '../db/queries/maintenance.js';

/**
 * How long the token of a failed fetch is kept, its jobs put back at every heartbeat meanwhile.
 * A fetch given up for its time (QUERY_TIMEOUT_MS, db/connect.ts) may still be running on the
 * server, and commit after the first release looked for its jobs: released once, they stayed
 * executing under this live node, never rescued.
 */
const KEEP_MS = 2 * QUERY_TIMEOUT_MS;

export class LostFetches {
  /** Token → when its fetch failed (performance.now()). */
  private readonly tokens = new Map<string, number>();
  private releasing: Promise<number> | null = null;

  constructor(
    private readonly pool: pg.Pool,
    private readonly queries: MaintenanceQueries,
    private readonly call: <T>(fn: () => Promise<T>) => Promise<T>,
  ) {}

  get pending(): number {
    return this.tokens.size;
  }

  /** A fetch failed: keep its token if the statement may have run (not a fail-fast refusal). */
  failed(token: string, error: unknown): void {
    if (isConnectionError(error)) this.tokens.set(token, performance.now());
  }

  /**
   * Puts back the jobs claimed by failed fetches; returns how many. Keeps every token for KEEP_MS
   * after its fetch failed, and those it could not check (the put-back failed) until one succeeds.
   */
  release(): Promise<number> {
    if (this.tokens.size === 0) return Promise.resolve(0);
    this.releasing ??= this.releaseNow().finally(() => {
      this.releasing = null;
    });
    return this.releasing;
  }

  private async releaseNow(): Promise<number> {
    const tokens = [...this.tokens];
    const releasedAt = performance.now();
    const released = await this.call(() =>
      this.queries.releaseLostFetches(
        this.pool,
        tokens.map(([token]) => token),
      ),
    );
    for (const [token, failedAt] of tokens)
      if (releasedAt - failedAt > KEEP_MS) this.tokens.delete(token);
    return released;
  }
}
