// quern/testing: helpers for an application's own test suite (mocha, jest, vitest alike: no
// runner globals, failures are node:assert AssertionErrors).

export { useQuern, type WithQuern } from './context.js';
export {
  performJob,
  PerformJobError,
  type PerformJobOptions,
  type PerformOutcome,
} from './perform.js';
export {
  assertEnqueued,
  refuteEnqueued,
  allEnqueued,
  type EnqueuedFilter,
  type AssertOptions,
} from './assertions.js';
export { drainQueue, type DrainOptions, type DrainResult } from './drain.js';
