// The benchmark's worker for quern nodes: runs in the queue's thread pool like any worker. For
// W3 it returns when it started, which the benchmark reads back from the `result` column.

import { defineWorker } from '../../src/worker/define.js';
import { perform, type BenchArgs } from '../lib/work.js';

export default defineWorker<BenchArgs>({
  name: 'bench',
  queue: 'bench',
  maxAttempts: 1,
  perform(job) {
    const started = perform(job.args);
    return job.args.mode === 'latency' ? { ok: started } : undefined;
  },
});
