// A pg-boss 12 node for the benchmark, in its own process (probe preloaded), configured for
// throughput as its documentation says: `work()` with `localConcurrency` equal to our queue
// limit, a `batchSize` (100: it drains faster than 25), `burstWhenBatchFull`, and LISTEN/NOTIFY
// on (it is off by default, and then its latency is hundreds of milliseconds).

import { PgBoss } from 'pg-boss';
import { perform, type BenchArgs } from '../lib/work.js';
import { wallMs } from '../lib/util.js';

const url = process.env.BENCH_URL!;
const limit = Number(process.env.BENCH_LIMIT ?? 20);
export const BATCH_SIZE = 100;
const latencies: number[] = [];

const boss = new PgBoss({
  connectionString: url,
  max: limit + 5,
  useListenNotify: true,
  migrate: false,
  schedule: false,
});
boss.on('error', (error) => console.error(`[pg-boss error] ${String(error)}`));
await boss.start();

process.on('message', (message: { cmd?: string }) => {
  if (message?.cmd === 'go') {
    const at = wallMs();
    void boss
      .work<BenchArgs>(
        'bench',
        {
          localConcurrency: limit,
          batchSize: BATCH_SIZE,
          burstWhenBatchFull: true,
          pollingIntervalSeconds: 0.5,
        },
        (jobs) => {
          for (const job of jobs) {
            const started = perform(job.data);
            if (job.data.mode === 'latency' && job.data.t !== undefined)
              latencies.push(started - job.data.t);
          }
          return Promise.resolve();
        },
      )
      .then(() => process.send?.({ type: 'going', at }));
  } else if (message?.cmd === 'halt') {
    void boss.offWork('bench', { wait: true }).then(() => process.send?.({ type: 'halted' }));
  } else if (message?.cmd === 'latencies') {
    process.send?.({ type: 'latencies', values: latencies });
  }
});

process.on('SIGTERM', () => {
  void (async () => {
    await boss.stop({ graceful: true });
    clearInterval(keepAlive);
    process.exit(0);
  })();
});

// The probe leaves the IPC channel unreferenced; this process lives until SIGTERM.
const keepAlive = setInterval(() => undefined, 60_000);
process.send?.({ type: 'ready' });
