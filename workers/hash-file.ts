// SHA-256 of a file, streamed so large files use little memory. Runs on the `hashing` queue.

import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { defineWorker } from '../src/worker/define.js';

export default defineWorker<{ path: string }>({
  name: 'hash-file',
  queue: 'hashing',
  maxAttempts: 3,
  timeout: 60_000,
  validate: (args) =>
    typeof (args as { path?: unknown }).path === 'string'
      ? null
      : 'args.path must be a file path string',
  async perform(job, signal) {
    const { path } = job.args;
    const info = await stat(path);
    const hash = createHash('sha256');
    for await (const chunk of createReadStream(path, { signal })) hash.update(chunk as Buffer);
    return { ok: { path, bytes: info.size, sha256: hash.digest('hex') } };
  },
});
