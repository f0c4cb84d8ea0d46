// A graphile-worker node for the benchmark, in its own process (probe preloaded), configured as
// its performance guide says: a local queue of 500 jobs, completion and failure batching with
// a delay of 0, `concurrency` equal to our queue limit and a pool a little larger than that.
// Only warnings and errors are logged, as for every system measured. The pool is made here and
// handed to each runner, so a runner started after `halt` finds its connections already open,
// as quern's paused and resumed node does.

import { Logger, run, type Runner } from 'graphile-worker';
import pg from 'pg';
import { perform, type BenchArgs } from '../lib/work.js';
import { wallMs } from '../lib/util.js';

const url = process.env.BENCH_URL!;
const limit = Number(process.env.BENCH_LIMIT ?? 20);
const latencies: number[] = [];
let runner: Runner | null = null;

const logger = new Logger(() => (level, message) => {
  if (level === 'error' || level === 'warning') console.error(`[graphile ${level}] ${message}`);
});

const pgPool = new pg.Pool({ connectionString: url, max: limit + 5 });
pgPool.on('error', (error) => console.error(`[graphile pool] ${error.message}`));
pgPool.on('connect', (client) =>
  client.on('error', (error) => console.error(`[graphile client] ${error.message}`)),
);

process.on('message', (message: { cmd?: string }) => {
  if (message?.cmd === 'go') {
    void (async () => {
      runner = await run({
        pgPool,
        concurrency: limit,
        noHandleSignals: true,
        pollInterval: 1000,
        logger,
        taskList: {
          bench: (payload) => {
            const args = payload as BenchArgs;
            const started = perform(args);
            if (args.mode === 'latency' && args.t !== undefined) latencies.push(started - args.t);
            return Promise.resolve();
          },
        },
        preset: {
          worker: { localQueue: { size: 500 }, completeJobBatchDelay: 0, failJobBatchDelay: 0 },
        },
      });
      // Timed from here, after its start-up (the generous choice for the peer).
      process.send?.({ type: 'going', at: wallMs() });
    })();
  } else if (message?.cmd === 'halt') {
    void (async () => {
      await runner?.stop();
      runner = null;
      process.send?.({ type: 'halted' });
    })();
  } else if (message?.cmd === 'latencies') {
    process.send?.({ type: 'latencies', values: latencies });
  }
});

process.on('SIGTERM', () => {
  void (async () => {
    await runner?.stop();
    await pgPool.end();
    clearInterval(keepAlive);
    process.exit(0);
  })();
});

// The probe leaves the IPC channel unreferenced; this process lives until SIGTERM.
const keepAlive = setInterval(() => undefined, 60_000);
process.send?.({ type: 'ready' });
