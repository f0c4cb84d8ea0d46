// The entry point of every worker thread (a piscina task). It loads the registered workers of
// the configured folder once, runs the jobs of a task (one, or a batch sent in one message), and
// reports each outcome as plain data.
// Cancellation arrives on a BroadcastChannel shared by the pool's threads; the abort signal is
// the cooperative step, the main thread terminates the thread if the job ignores it.
// A thread about to die (process.exit in a job, an exception thrown outside perform) first names
// the job it died of: each perform runs in an AsyncLocalStorage context holding its job id.

import { AsyncLocalStorage } from 'node:async_hooks';
import { readlinkSync } from 'node:fs';
import { getPriority, setPriority } from 'node:os';
import { BroadcastChannel, parentPort, threadId, workerData } from 'node:worker_threads';
import { loadWorkers, type RegisteredWorker } from '../worker/registry.js';
import { promiseThen } from '../jobs/json.js';
import type { Job } from '../jobs/types.js';
import { monotonicMs, NUMBER_COLUMNS } from './columns.js';
import {
  describeError,
  describeThrownPromise,
  interpretReturn,
  type ThreadOutcome,
} from './outcome.js';

export interface ThreadData {
  workersDir: string;
  cancelChannel: string;
  /** Most jobs this thread runs at once (the queue's `concurrency`); absent: no cap. */
  concurrency?: number;
  /** Shared with the main thread: who runs what, written here, read there (see SharedSlots). */
  slots?: SharedSlots;
}

/**
 * Memory shared by a pool's threads and its main thread, instead of a "started" message per
 * batch: each job handed to the pool gets a slot, and the thread that begins its perform writes
 * its threadId and start time there. The main thread reads them only when it needs them (to
 * stop a job, to tell a thread's death apart from its neighbours', for a duration), so a batch
 * costs one message each way.
 */
export interface SharedSlots {
  threadIds: SharedArrayBuffer;
  /** When the job's perform began, on the monotonic clock (columns.ts monotonicMs). */
  startedAt: SharedArrayBuffer;
  /** 1 once the job's perform has ended (its outcome may still be on its way). */
  ended: SharedArrayBuffer;
  /**
   * How long the perform took (ms, fractional), written before `ended`: the producer tells
   * short jobs apart by it. Timed on the main thread instead, a job's time included its batch's
   * way back, several ms on a busy node for jobs that took microseconds.
   */
  performMs?: SharedArrayBuffer;
  /**
   * Bumped by the main thread each time it gives back the jobs waiting for a slot (pause, stop).
   * A job of a batch sent under an older value does not wait: the batch may reach its thread
   * after the broadcast that releases waiting jobs (the two travel on different channels).
   */
  generation: SharedArrayBuffer;
  /**
   * The thread's current cap on jobs at once (one Int32): `queue scale` changes it while the
   * threads run, and a thread started later reads it here rather than from its workerData.
   */
  concurrency?: SharedArrayBuffer;
}

/**
 * Several jobs in one message (see runBatch), by column: job i is `ids[i]`, `workers[i]`, and so
 * on. Structured cloning copies a string or a typed array in one piece but an object property by
 * property: the batch as an array of Job objects (args and meta parsed, two Dates each) cost the
 * main thread ~5 us per job to post (bench W2, piscina's postTask was its largest entry), as
 * columns well under one. The thread builds each Job (and parses its args) itself.
 * `numbers` holds NUMBER_COLUMNS per job (see columns.ts; times in epoch ms). `keys[i]` is the attempt token: jobs are told apart by attempt token, not id (a job
 * cancelled and retried at once may run twice here, and one given back keeps its attempt
 * number for its next run).
 */
export interface BatchTask {
  batch: number;
  queue: string;
  numbers: Float64Array;
  workers: string[];
  /** JSON text of each job's args. */
  args: string[];
  /** JSON text of each job's meta, null for {}. */
  meta: (string | null)[];
  /** null for no tags. */
  tags: (string[] | null)[];
  keys: string[];
  generation: number;
}

/** What the thread says of a job: an outcome, or that it gave the job back unstarted. */
export type RunnerOutcome = ThreadOutcome | { kind: 'unstarted' };

/**
 * Outcomes by the job's index in its batch. A bare index is the common outcome, completed with
 * no result and no warning: one number to clone instead of an object (bench W2).
 */
export type BatchOutcomes = (number | [number, RunnerOutcome])[];

/** On the pool's channel: stop one job, or give back every job still waiting for a slot. */
export type CancelMessage =
  | { key: string; reason: string }
  | { release: true }
  /** The cap in SharedSlots.concurrency changed: jobs waiting for a slot may start. */
  | { concurrency: true };

/** What a thread tells the main thread (through piscina's 'message' event). */
export type ThreadMessage =
  | { type: 'outcomes'; batch: number; outcomes: BatchOutcomes }
  | { type: 'crash'; job: number | null; threadId: number; error: string };

const data = workerData as ThreadData;
const shared = data.slots && {
  threadIds: new Int32Array(data.slots.threadIds),
  startedAt: new Float64Array(data.slots.startedAt),
  ended: new Int32Array(data.slots.ended),
  performMs: data.slots.performMs ? new Float64Array(data.slots.performMs) : null,
  generation: new Int32Array(data.slots.generation),
  concurrency: data.slots.concurrency ? new Int32Array(data.slots.concurrency) : null,
};

/** Whether the main thread gave back the waiting jobs since this batch was sent. */
function released(generation: number): boolean {
  return shared !== undefined && Atomics.load(shared.generation, 0) !== generation;
}

/**
 * Job code runs at a lower CPU priority (nice + 5) than the node's main thread. On Linux a
 * thread is a task with its own nice value, so this touches this thread only. When jobs keep
 * every core busy, the main thread (fetching, heartbeats, outcomes, leadership) still gets the
 * CPU when it needs it: bench W4 (2 threads hashing on 2 cores) had event-loop delay p99 16 ms,
 * max 33 ms at equal priority. When the machine is not saturated it changes nothing.
 */
export const THREAD_NICENESS = 5;
function lowerPriority(): void {
  if (process.platform !== 'linux') return;
  try {
    const tid = Number(readlinkSync('/proc/thread-self').split('/').pop());
    if (Number.isInteger(tid) && tid > 0)
      setPriority(tid, Math.min(19, getPriority(tid) + THREAD_NICENESS));
  } catch {
    // Not allowed or not available: run at the process's priority.
  }
}
lowerPriority();
// Loaded as soon as the thread starts (the pool starts its threads with the queue), not on the
// first job: importing the worker modules took ~100 ms per thread, paid by the first batch of
// every node (bench W5: three cold nodes on 2 cores waited ~220 ms for their first outcome). A
// failure is not an error here; each job then reports it.
let registry: Promise<Map<string, RegisteredWorker>> | null = loadWorkers(data.workersDir);
// The module is ready once its workers are loaded (or failed to). piscina reaches it through
// entry.cts, a CommonJS file that imports it: piscina require()s its entry file first, and Node
// 20's require() of an ES module aborted the whole process (see entry.cts).
await registry.then(
  () => undefined,
  () => undefined,
);
const running = new Map<string, AbortController>();

const cancels = new BroadcastChannel(data.cancelChannel);
/**
 * Stops asked for jobs that have not reached this thread: a batch may still sit in piscina's
 * queue when its job is cancelled, and whichever thread it lands on must not start it. Every
 * thread hears every stop, so the list is capped (oldest forgotten first).
 */
const stoppedEarly = new Set<string>();
const STOPPED_EARLY_CAP = 10000;

cancels.onmessage = (event: unknown) => {
  const message = (event as { data: CancelMessage }).data;
  if ('concurrency' in message) {
    fillSlots();
    return;
  }
  if ('release' in message) {
    // The queue paused or stopped: jobs still waiting for a slot go back, unstarted.
    for (const entry of slotQueue.splice(0)) entry(false);
    waitingForSlot.clear();
    return;
  }
  const { key } = message;
  const controller = running.get(key);
  controller?.abort(new Error(message.reason));
  // Stopped while still waiting for a slot on this thread: it ends now, without running.
  const waiting = waitingForSlot.get(key);
  if (waiting) {
    waitingForSlot.delete(key);
    slotQueue.splice(slotQueue.indexOf(waiting), 1);
    waiting(false);
  } else if (!controller) {
    stoppedEarly.add(key);
    if (stoppedEarly.size > STOPPED_EARLY_CAP)
      stoppedEarly.delete(stoppedEarly.values().next().value!);
  }
};

/**
 * `concurrency` is enforced here, per thread: piscina caps the tasks of a thread, but a task may
 * carry a batch of jobs, so the jobs beyond the cap wait on the thread for a slot (first come,
 * first served). They wait only when piscina put more batches on one thread than the others.
 */
function slotLimit(): number {
  return shared?.concurrency ? Atomics.load(shared.concurrency, 0) : (data.concurrency ?? Infinity);
}
let slotsUsed = 0;
const slotQueue: ((run: boolean) => void)[] = [];
const waitingForSlot = new Map<string, (run: boolean) => void>();

/** Resolves true when the job may run, false when it was stopped while waiting. */
function acquireSlot(key: string): Promise<boolean> | true {
  if (slotsUsed < slotLimit()) {
    slotsUsed++;
    return true;
  }
  return new Promise<boolean>((resolve) => {
    const entry = (run: boolean): void => {
      waitingForSlot.delete(key);
      resolve(run);
    };
    slotQueue.push(entry);
    waitingForSlot.set(key, entry);
  });
}

function releaseSlot(): void {
  // Over a lowered cap, a freed slot is not handed on.
  const next = slotsUsed > slotLimit() ? undefined : slotQueue.shift();
  if (next) next(true);
  else slotsUsed--;
}

/** A raised cap: waiting jobs take the new slots. */
function fillSlots(): void {
  while (slotsUsed < slotLimit() && slotQueue.length > 0) {
    slotsUsed++;
    slotQueue.shift()!(true);
  }
}
// The channel must not keep an idle thread alive.
(cancels as unknown as { unref(): void }).unref();

const currentJob = new AsyncLocalStorage<number>();
const exit = process.exit.bind(process);

/**
 * Per batch, what sends the outcomes its jobs reported that have not left the thread yet: they
 * wait for the end of the turn to go back together (runBatch), and the last ones until piscina
 * posts the task's result. A thread dying in that turn sends them first, so a job that finished
 * is not taken for one the death interrupted, run again, or charged for its neighbour's crash.
 */
const unsent = new Map<number, () => void>();

function dying(error: string): void {
  for (const send of [...unsent.values()]) send();
  const message: ThreadMessage = {
    type: 'crash',
    job: currentJob.getStore() ?? null,
    threadId,
    error,
  };
  // Messages posted before the thread exits reach the main thread before its 'exit' event.
  parentPort?.postMessage(message);
}

// process.exit in a worker thread ends the thread, not the process: say who called it first.
process.exit = (code?: number | string | null) => {
  dying(`process.exit(${code ?? ''}) was called in the job's worker thread`);
  return exit(code);
};

// A job that closes parentPort would silence the outcomes its thread sends early, so its
// neighbours would stay executing for as long as the node lives: once it is closed, outcomes wait
// for the batch's own result, which travels on piscina's port.
let portClosed = false;
if (parentPort) {
  const port = parentPort;
  const close = port.close.bind(port);
  port.close = () => {
    portClosed = true;
    close();
  };
}

// An exception thrown outside perform (a timer, an event handler, an unhandled rejection) leaves
// the thread in an unknown state: report it and let the thread die; the pool replaces it.
process.on('uncaughtException', (error) => {
  dying(`uncaught exception outside perform: ${describeError(error)}`);
  exit(1);
});

/**
 * Runs several jobs at once, sent in one message: moving a job to a thread and back costs tens
 * of microseconds per message, which capped the node near 6-10k jobs/s (notes/piscina.md: one
 * job per message, 65k/s with no database; 20 per message, 338k/s). The jobs interleave as
 * separately started ones would. Outcomes of jobs that finish in the same turn of the event
 * loop go back in one message; the last ones are the task's result. Each job keeps its own
 * abort signal, timeout and crash attribution.
 * Each job is run with callbacks, not async functions: the AsyncLocalStorage that names a dying
 * thread's job makes every promise of the thread pay async-hook calls, and the async wrappers
 * (start, perform, catch, then: five promises a job) cost ~6 us per job (bench W2, node CPU per
 * 1,000 jobs 34 -> 28 ms with no hooks at all); a job now makes its own promises and one more.
 */
export default async function runBatch(task: BatchTask): Promise<BatchOutcomes> {
  registry ??= loadWorkers(data.workersDir);
  let workers: Map<string, RegisteredWorker>;
  try {
    workers = await registry;
  } catch (error) {
    // The folder loaded on the main thread but not here (a module that throws only in a worker
    // thread, or changed since the node started): each job fails with why. A rejected batch
    // would read as jobs that never started, given back and fetched again at once, forever.
    const failed: RunnerOutcome = {
      kind: 'failed',
      error: `the worker thread could not load the workers: ${describeError(error)}`,
      warning: null,
    };
    return task.keys.map((_, index) => [index, failed]);
  }
  let left = task.keys.length;
  let ready: BatchOutcomes = [];
  let flushQueued = false;
  const send = (): void => {
    unsent.delete(task.batch);
    if (ready.length === 0 || portClosed) return;
    const message: ThreadMessage = { type: 'outcomes', batch: task.batch, outcomes: ready };
    ready = [];
    parentPort?.postMessage(message);
  };
  const flush = (): void => {
    flushQueued = false;
    // The last outcomes go back as the task's result.
    if (left > 0) send();
  };
  return new Promise((resolve) => {
    for (let index = 0; index < task.keys.length; index++) {
      let reported = false;
      const finish = (outcome: RunnerOutcome): void => {
        if (reported) return;
        reported = true;
        ready.push(
          outcome.kind === 'completed' && outcome.result === null && outcome.warning === null
            ? index
            : [index, outcome],
        );
        if (--left === 0) {
          resolve(ready);
          // Posted by piscina after this turn's microtasks; until then a death sends them.
          unsent.set(task.batch, send);
          setImmediate(() => unsent.delete(task.batch));
          return;
        }
        if (!flushQueued) {
          flushQueued = true;
          unsent.set(task.batch, send);
          setImmediate(flush);
        }
      };
      // start never throws; the catch is the last guard that a job's outcome always comes back,
      // as this job's failure, rather than as an exception killing the thread.
      try {
        start(workers, task, index, finish);
      } catch (error) {
        finish({ kind: 'failed', error: describeError(error), warning: null });
      }
    }
  });
}

type Finish = (outcome: RunnerOutcome) => void;

/** Job `index` of the batch, built here from its columns, then run. */
function start(
  workers: Map<string, RegisteredWorker>,
  task: BatchTask,
  index: number,
  finish: Finish,
): void {
  const at = index * NUMBER_COLUMNS;
  const numbers = task.numbers;
  const meta = task.meta[index];
  let job: Job;
  try {
    job = {
      id: numbers[at]!,
      args: JSON.parse(task.args[index]!) as Record<string, unknown>,
      attempt: numbers[at + 1]!,
      maxAttempts: numbers[at + 2]!,
      queue: task.queue,
      worker: task.workers[index]!,
      tags: task.tags[index] ?? [],
      meta: meta == null ? {} : (JSON.parse(meta) as Record<string, unknown>),
      insertedAt: new Date(numbers[at + 3]!),
      scheduledAt: new Date(numbers[at + 4]!),
    };
  } catch (error) {
    // The text came from a jsonb column; it parses. Should it not, the job fails alone.
    finish({
      kind: 'failed',
      error: `could not read the job: ${describeError(error)}`,
      warning: null,
    });
    return;
  }
  runJob(workers, job, task.keys[index]!, numbers[at + 5]!, task.generation, finish);
}

/** Waits for a slot on this thread if it must, then runs the job. */
function runJob(
  workers: Map<string, RegisteredWorker>,
  job: Job,
  key: string,
  slot: number,
  generation: number,
  finish: Finish,
): void {
  const registered = workers.get(job.worker);
  if (!registered) {
    finish({
      kind: 'failed',
      error: `unknown worker ${JSON.stringify(job.worker)}: no worker of that name is registered in ${data.workersDir}`,
      warning: null,
    });
    return;
  }
  if (stoppedEarly.delete(key)) {
    finish({ kind: 'unstarted' });
    return;
  }
  // A job that would wait for a slot after its batch was released goes back at once; one that
  // finds a free slot runs, as a job handed to the pool always did.
  if (slotsUsed >= slotLimit() && released(generation)) {
    finish({ kind: 'unstarted' });
    return;
  }
  const free = acquireSlot(key);
  if (free === true) {
    perform(registered, job, key, slot, finish);
    return;
  }
  // Stopped (cancelled, or given back by a pause) while it waited: the main thread decides.
  free.then(
    (run) => (run ? perform(registered, job, key, slot, finish) : finish({ kind: 'unstarted' })),
    (error: unknown) => finish({ kind: 'failed', error: describeError(error), warning: null }),
  );
}

/** One job's perform, holding a slot; whatever happens becomes its outcome, reported once. */
function perform(
  registered: RegisteredWorker,
  job: Job,
  key: string,
  slot: number,
  finish: Finish,
): void {
  const controller = new AbortController();
  running.set(key, controller);
  if (shared) {
    // The start time first: the main thread reads it once it sees the thread id. Monotonic: a
    // wall clock set back meanwhile lengthened the job's timeout by as much.
    shared.startedAt[slot] = monotonicMs();
    Atomics.store(shared.threadIds, slot, threadId);
  }
  const began = performance.now();
  let ended = false;
  const end = (outcome: RunnerOutcome): void => {
    if (ended) return;
    ended = true;
    running.delete(key);
    if (shared) {
      if (shared.performMs) shared.performMs[slot] = performance.now() - began;
      Atomics.store(shared.ended, slot, 1);
    }
    releaseSlot();
    finish(outcome);
  };
  // describeError and interpretReturn never throw (what perform threw or returned may be
  // hostile: a throwing getter, a Proxy); they run outside the job's context, where a throw
  // killed the thread and charged every job on it.
  const fail = (error: string): void => end({ kind: 'failed', error, warning: null });
  const threw = (error: unknown, how = 'threw'): void => {
    // A promise in place of an error: its text comes once it settles (see describeThrownPromise),
    // and a thenable's `then` runs in the job's context, so a thread it kills names this job.
    if (!describeThrownPromise(error, how, fail, (run) => currentJob.run(job.id, run)))
      fail(describeError(error));
  };
  let value: unknown;
  try {
    value = currentJob.run(job.id, () => {
      const returned = registered.definition.perform(
        job as never,
        // Only for a perform that can read it: the signal is built on first read (~3 us).
        (registered.takesSignal ? controller.signal : undefined) as AbortSignal,
      );
      // A primitive is the outcome now; anything else may be a thenable, settled as `await`
      // would, by a promise made in the job's context: its thenable's `then` runs there, so a
      // thread it kills (process.exit, a timer that throws) names this job, not all on the thread.
      return returned === null || (typeof returned !== 'object' && typeof returned !== 'function')
        ? returned
        : Promise.resolve(returned);
    });
  } catch (error) {
    threw(error);
    return;
  }
  // What the job's context returned: a primitive, or the promise that settles the value.
  if (value === null || (typeof value !== 'object' && typeof value !== 'function')) {
    end(interpretReturn(value));
    return;
  }
  const settled = value as Promise<unknown>;
  // Promise.prototype.then as it was when the thread started, not `settled.then`: perform may
  // return a native promise with a `then` of its own (or on a prototype it swapped in), which
  // Promise.resolve hands back as it is and `await` never calls; called here, one that throws
  // left the job's slot taken for good, one that never calls back hung the job.
  promiseThen(
    settled,
    (result) => end(interpretReturn(result)),
    (error) => threw(error, 'rejected with'),
  );
}
