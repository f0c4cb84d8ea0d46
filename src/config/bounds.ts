// The upper bounds of the numeric configuration keys, with the reason for each. Node's timers
// take at most 2^31 - 1 ms (about 24.8 days): a longer delay is replaced by 1 ms with only a
// TimeoutOverflowWarning, so a 1e300 ms shutdownGracePeriod killed jobs at once and a 1e12 ms
// pollInterval polled every millisecond. Every millisecond key that reaches a timer is therefore
// capped below that, leaving room for what the code adds to it.

/** 24 days: the cap of millisecond settings that are used as a timer's delay as they are. */
export const MAX_TIMER_MS = 24 * 24 * 3600 * 1000; // 2,073,600,000

/**
 * One day: pollInterval (a producer adds up to 10% jitter to it) and heartbeatInterval (the
 * default heartbeatTimeout is 5 of them, and the timeout needs at least 4).
 */
export const MAX_INTERVAL_MS = 24 * 3600 * 1000; // 86,400,000

/** The largest `limit` a queue may have, in the config or set at runtime. */
export const MAX_QUEUE_LIMIT = 10000;

/**
 * Jobs one thread runs at once. Capped at MAX_QUEUE_LIMIT rather than at the queue's own limit:
 * a configured concurrency stays as configured when `queue scale` raises the limit (up to
 * MAX_QUEUE_LIMIT), so a concurrency above the starting limit can be meant.
 */
export const MAX_CONCURRENCY = MAX_QUEUE_LIMIT;

/** 64 GiB of heap per worker thread: more than a thread can use, a typo past it. */
export const MAX_MEMORY_LIMIT_MB = 65536;

/** Connections of one node's pool; PostgreSQL's default max_connections is 100. */
export const MAX_POOL_SIZE = 1000;

/** Thread deaths counted by the restart budget, and its window in seconds (a day). */
export const MAX_RESTARTS = 1000;
export const MAX_RESTART_WINDOW_SECONDS = 24 * 3600;

/** Connection failures that trip the breaker (it keeps the time of each within its window). */
export const MAX_BREAKER_FAILURES = 10000;

/** Ten years, in seconds: beyond it, `"pruner": false` says "keep forever". */
export const MAX_PRUNE_AGE_SECONDS = 10 * 365 * 24 * 3600; // 315,360,000

/** Rows one prune statement deletes, each statement its own transaction: keep them short. */
export const MAX_PRUNE_LIMIT = 1_000_000;
