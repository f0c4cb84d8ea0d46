// Gzips a file into an output folder (args.out, default .data/gzip). Runs on the `compress` queue.

import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import { defineWorker } from '../src/worker/define.js';

export default defineWorker<{ path: string; out?: string }>({
  name: 'gzip-file',
  queue: 'compress',
  maxAttempts: 3,
  timeout: 120_000,
  validate: (args) =>
    typeof (args as { path?: unknown }).path === 'string'
      ? null
      : 'args.path must be a file path string',
  async perform(job, signal) {
    const source = job.args.path;
    const outDir = path.resolve(job.args.out ?? '.data/gzip');
    await mkdir(outDir, { recursive: true });
    const target = path.join(outDir, `${job.id}-${path.basename(source)}.gz`);
    await pipeline(createReadStream(source), createGzip(), createWriteStream(target), { signal });
    const [before, after] = await Promise.all([stat(source), stat(target)]);
    return { ok: { source, target, bytes: before.size, gzipped: after.size } };
  },
});
