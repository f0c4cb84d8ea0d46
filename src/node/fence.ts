// The heartbeat fence: a node that cannot write its heartbeat stops its own jobs before any other
// node may rescue them, so a network split (this node cut off, PostgreSQL up for everyone else)
// never runs one job twice at the same time.
//
// Why the node must act on its own: the leader's lifeline rescues the `executing` jobs of a node
// whose heartbeat row is older than `heartbeatTimeout`, and another node then runs them. A node
// cut off from the database cannot be told; the only thing it knows is how long ago it last wrote
// a heartbeat. So it counts from the moment that heartbeat was SENT (its row's `updated_at` is the
// database's now() of that statement, never earlier), on a monotonic clock, and:
//
//   deadline = heartbeatTimeout - heartbeatInterval   every job's thread is terminated by then
//   grace    = min(cancelGracePeriod, deadline / 4)   what a job gets between its abort signal and
//                                                     its thread being terminated
//   stopAt   = deadline - grace                       fetching stops and every running job gets
//                                                     its abort signal
//
// With the defaults (5000, 1000, 5000): abort at 3 s without a heartbeat, threads terminated at
// 4 s, rescue possible from 5 s. The heartbeatInterval left before the rescue covers a timer
// that fires late, the thread's termination, and clocks that tick at slightly different rates.
// The grace is capped (not cancelGracePeriod as a cancel gets) because stopAt must stay well
// clear of an ordinary late heartbeat: config requires heartbeatTimeout >= 4 heartbeatIntervals,
// which puts stopAt at 2.25 heartbeatIntervals or more, so one failed heartbeat never fences.
//
// The node cannot tell a split from a database outage, so an outage fences too (the lifeline
// would not rescue then, it waits for the server to be up for heartbeatTimeout, but the node
// cannot know that): a long job loses its progress and runs again, in exchange for the guarantee.
// The first heartbeat written afterwards lifts the fence and the queues fetch again. This holds
// whatever the other nodes' settings: the lifeline waits for the longer of this node's
// heartbeatTimeout (written with each heartbeat) and the leader's (see aliveSince in
// db/queries/nodes.ts).

export interface FenceTimings {
  /** ms without a written heartbeat after which fetching stops and running jobs are aborted. */
  stopAfterMs: number;
  /** ms between a job's abort signal and its thread being terminated. */
  graceMs: number;
  /** ms without a written heartbeat by which every fenced job's thread is terminated. */
  deadlineMs: number;
}

export function fenceTimings(config: {
  heartbeatInterval: number;
  heartbeatTimeout: number;
  cancelGracePeriod: number;
}): FenceTimings {
  const deadlineMs = config.heartbeatTimeout - config.heartbeatInterval;
  const graceMs = Math.min(config.cancelGracePeriod, Math.floor(deadlineMs / 4));
  return { stopAfterMs: deadlineMs - graceMs, graceMs, deadlineMs };
}

export interface FenceHandlers {
  /** No heartbeat was written for `silentMs`: stop fetching and stop every running job. */
  fence: (silentMs: number) => void;
  /** A heartbeat was written again after `fencedMs` fenced: fetch again. */
  lift: (fencedMs: number) => void;
}

export class HeartbeatFence {
  /** performance.now() when the latest heartbeat that was written had been sent. */
  private lastSent: number | null = null;
  private fencedAt: number | null = null;
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;

  constructor(
    readonly timings: FenceTimings,
    private readonly handlers: FenceHandlers,
  ) {}

  get fenced(): boolean {
    return this.fencedAt !== null;
  }

  /** The time to pass as `sentAt` to `written`: take it before the heartbeat is sent. */
  static now(): number {
    return performance.now();
  }

  /** A heartbeat sent at `sentAt` (see `now`) was written. */
  written(sentAt: number): void {
    if (this.stopped) return;
    if (this.lastSent === null || sentAt > this.lastSent) this.lastSent = sentAt;
    const silent = performance.now() - this.lastSent;
    // A heartbeat that was sent long ago and answered only now does not lift the fence.
    if (this.fencedAt !== null && silent < this.timings.stopAfterMs) {
      const fencedMs = performance.now() - this.fencedAt;
      this.fencedAt = null;
      this.handlers.lift(fencedMs);
    }
    this.arm();
  }

  private arm(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (this.stopped || this.lastSent === null || this.fencedAt !== null) return;
    const wait = this.lastSent + this.timings.stopAfterMs - performance.now();
    this.timer = setTimeout(() => this.check(), Math.max(0, wait));
    this.timer.unref();
  }

  private check(): void {
    this.timer = null;
    if (this.stopped || this.lastSent === null || this.fencedAt !== null) return;
    const silent = performance.now() - this.lastSent;
    if (silent < this.timings.stopAfterMs) {
      this.arm();
      return;
    }
    this.fencedAt = performance.now();
    this.handlers.fence(silent);
  }

  /** Fences now, if not fenced yet: this node's heartbeats no longer count (its name was taken). */
  fenceNow(): void {
    if (this.stopped || this.fencedAt !== null) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.fencedAt = performance.now();
    this.handlers.fence(this.lastSent === null ? 0 : performance.now() - this.lastSent);
  }

  /** The node is going away: no fence from now on. */
  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }
}
