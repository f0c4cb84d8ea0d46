// Which client the testing helpers use: the one passed as `{ quern }`, else the one registered
// with useQuern (for a whole test file, as Oban's `use Oban.Testing, repo: ...`).

import type { Quern } from '../client.js';

let current: Quern | null = null;

/** Registers the client that assertEnqueued, refuteEnqueued, allEnqueued and drainQueue use. */
export function useQuern(quern: Quern | null): void {
  current = quern;
}

export interface WithQuern {
  /** The client to use instead of the one registered with useQuern. */
  quern?: Quern;
}

export function quernFor(options: WithQuern | undefined, helper: string): Quern {
  const quern = options?.quern ?? current;
  if (!quern) {
    throw new Error(
      `${helper}: no quern client; call useQuern(quern) first (e.g. in a before hook), or pass { quern }`,
    );
  }
  return quern;
}
