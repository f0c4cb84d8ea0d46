// `enqueue-dir DIR [--worker W]`: the directory demo. Walks DIR and inserts one job per file
// (hash-file by default), in batches of 1,000 with one statement each, printing progress.

import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { configFromFlags, connectClient, print, UsageError } from './context.js';
import type { Command } from './main.js';
import type { InsertJob } from '../worker/define.js';

async function* walk(dir: string): AsyncGenerator<string> {
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) yield* walk(full);
    else if (entry.isFile()) yield full;
  }
}

export const enqueueDir: Command = {
  options: { worker: { type: 'string' }, batch: { type: 'string' } },
  async run({ positionals, values }) {
    const [dir, ...extra] = positionals;
    if (!dir || extra.length > 0) throw new UsageError('enqueue-dir needs one DIR');
    const worker = (values.worker as string | undefined) ?? 'hash-file';
    const batchSize = Number(values.batch ?? 1000);
    if (!Number.isInteger(batchSize) || batchSize < 1)
      throw new UsageError('--batch: expected a positive integer');
    const root = path.resolve(dir);
    const connected = await connectClient(configFromFlags(values.config as string | undefined));
    const started = Date.now();
    let total = 0;
    try {
      let batch: InsertJob[] = [];
      const flush = async (): Promise<void> => {
        if (batch.length === 0) return;
        await connected.client.insertMany(batch);
        total += batch.length;
        batch = [];
        process.stderr.write(`\rinserted ${total} jobs`);
      };
      for await (const file of walk(root)) {
        batch.push({ worker, args: { path: file } });
        if (batch.length >= batchSize) await flush();
      }
      await flush();
      process.stderr.write('\n');
      print(
        `inserted ${total} ${worker} jobs for files under ${root} in ${Date.now() - started} ms`,
      );
    } finally {
      await connected.close();
    }
    return 0;
  },
};
