// A small worker on the default queue: returns its args, or fails when asked (handy to try the
// retry rules from the CLI: `node cluster.js insert echo '{"fail":true}'`).

import { defineWorker } from '../src/worker/define.js';

export default defineWorker<{ message?: string; fail?: boolean }>({
  name: 'echo',
  perform(job) {
    if (job.args.fail) throw new Error(`asked to fail on attempt ${job.attempt}`);
    return { ok: job.args.message ?? null };
  },
});
