// Shared by the main thread and the worker threads without side effects (the runner module
// itself must not load on the main thread): the layout of a batch's number column.

/** Numbers per job in BatchTask.numbers: id, attempt, maxAttempts, insertedAt, scheduledAt, slot. */
export const NUMBER_COLUMNS = 6;
