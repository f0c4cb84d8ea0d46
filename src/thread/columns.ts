// Shared by the main thread and the worker threads without side effects (the runner module
// itself must not load on the main thread): the layout of a batch's number column.

/** Numbers per job in BatchTask.numbers: id, attempt, maxAttempts, insertedAt, scheduledAt, slot. */
export const NUMBER_COLUMNS = 6;

/**
 * Milliseconds on the process's monotonic clock: the same clock in every thread, and never moved
 * by a change of the wall clock (NTP stepping it back, a VM resuming). A job's start time is
 * taken from it in its thread and compared with it on the main thread (its timeout).
 */
export function monotonicMs(): number {
  const [seconds, nanoseconds] = process.hrtime();
  return seconds * 1000 + nanoseconds / 1e6;
}
