// `enqueue-dir DIR [--worker W] [--wait]`: the directory demo. Walks DIR and inserts one job per
// file (hash-file by default), in batches of 1,000 with one statement each, showing progress;
// with --wait it then follows the jobs until every one is finished.

import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import {
  CommandError,
  configFromFlags,
  connectClient,
  integerArgument,
  print,
  requireKnownWorker,
  UsageError,
} from './context.js';
import type { Command } from './main.js';
import type { InsertJob } from '../worker/define.js';
import type { Quern } from '../client.js';
import { isConnectionError } from '../db/breaker.js';
import { isAlive } from '../db/queries/nodes.js';
import { StatsQueries } from '../db/queries/stats.js';
import type { JobState } from '../jobs/types.js';
import { count, Progress, rate, seconds } from './progress.js';

/** `error`'s code and message without the stack: "ENOENT: no such file or directory, ...". */
function fsReason(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * The files under `dir`. A name that is not UTF-8 (Linux names are bytes) cannot be written in
 * a job's args: decoded, it became a path with U+FFFD in it, which named no file, and its job
 * failed every attempt with ENOENT. Such a file, or folder, is left out and added to `skipped`.
 */
async function* walk(dir: string, skipped: string[]): AsyncGenerator<string> {
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true, encoding: 'buffer' });
  } catch (error) {
    throw new CommandError(`enqueue-dir: cannot read folder ${dir}: ${fsReason(error)}`);
  }
  for (const entry of entries) {
    const raw = entry.name as unknown as Buffer;
    const name = raw.toString('utf8');
    const full = path.join(dir, name);
    if (!Buffer.from(name, 'utf8').equals(raw)) {
      if (entry.isDirectory() || entry.isFile())
        skipped.push(`${full}${entry.isDirectory() ? '/' : ''}`);
    } else if (entry.isDirectory()) yield* walk(full, skipped);
    else if (entry.isFile()) yield full;
  }
}

export const enqueueDir: Command = {
  options: {
    worker: { type: 'string' },
    batch: { type: 'string' },
    wait: { type: 'boolean' },
    'any-worker': { type: 'boolean' },
  },
  async run({ positionals, values }) {
    const [dir, ...extra] = positionals;
    if (!dir || extra.length > 0) throw new UsageError('enqueue-dir needs one DIR');
    const worker = (values.worker as string | undefined) ?? 'hash-file';
    const batchSize = values.batch === undefined ? 1000 : integerArgument(values.batch, '--batch');
    const root = path.resolve(dir);
    // A folder that is not there is a bad argument, found before anything is connected to.
    const found = await stat(root).catch((error: unknown) => {
      const code = (error as { code?: string }).code;
      throw new UsageError(
        code === 'ENOENT'
          ? `enqueue-dir: folder ${root} does not exist`
          : `enqueue-dir: cannot read folder ${root}: ${fsReason(error)}`,
      );
    });
    if (!found.isDirectory()) throw new UsageError(`enqueue-dir: ${root} is not a folder`);
    const config = configFromFlags(values);
    if (!values['any-worker']) await requireKnownWorker(config, worker);
    const connected = await connectClient(config);
    const started = Date.now();
    const ids: number[] = [];
    const skipped: string[] = [];
    let queueOf: string | null = null;
    try {
      let batch: InsertJob[] = [];
      const progress = new Progress(
        (ms) => `inserting: ${count(ids.length)} jobs in ${seconds(ms)} (${rate(ids.length, ms)})`,
      );
      const flush = async (): Promise<void> => {
        if (batch.length === 0) return;
        const inserted = await connected.client.insertMany(batch);
        for (const job of inserted) ids.push(job.id);
        queueOf ??= inserted[0]?.queue ?? null;
        batch = [];
        progress.update();
      };
      try {
        for await (const file of walk(root, skipped)) {
          batch.push({ worker, args: { path: file } });
          if (batch.length >= batchSize) await flush();
        }
        await flush();
      } finally {
        progress.finish();
      }
      print(
        `inserted ${ids.length} ${worker} jobs for files under ${root} in ${Date.now() - started} ms`,
      );
      // Said, and the exit code 1, even when the rest went well: those files got no job.
      if (skipped.length > 0)
        process.stderr.write(
          `enqueue-dir: left out ${skipped.length} ${skipped.length === 1 ? 'file or folder' : 'files or folders'} whose name is not UTF-8 (no job's args can name it; rename it): ${skipped.slice(0, 5).join(', ')}${skipped.length > 5 ? ` and ${skipped.length - 5} more` : ''}\n`,
        );
      const code =
        values.wait && ids.length > 0
          ? await follow(connected.client, ids, queueOf, connected.config.heartbeatTimeout)
          : 0;
      return skipped.length > 0 ? 1 : code;
    } finally {
      await connected.close();
    }
  },
};

const FINAL: JobState[] = ['completed', 'discarded', 'cancelled'];

/**
 * `--wait`: shows the batch being worked through until every job is finished; 1 if any failed.
 * Says so (on stderr, once until it changes) when no live node runs `queue`: otherwise the view
 * showed "0/73 finished" forever without a hint why.
 */
async function follow(
  client: Quern,
  ids: number[],
  queue: string | null,
  heartbeatTimeout: number,
): Promise<number> {
  let warned: 'none' | 'paused' | null = null;
  const checkRunners = async (): Promise<void> => {
    if (queue === null) return;
    const nodes = await client.nodes.list(client.pool);
    const runners = nodes.filter(
      (n) => isAlive(n, heartbeatTimeout) && Object.hasOwn(n.queues, queue),
    );
    // A queue paused everywhere left the view at "0/73 finished" as silently as no node at all.
    const why =
      runners.length === 0
        ? 'none'
        : runners.every((n) => n.queues[queue]!.paused)
          ? 'paused'
          : null;
    if (why !== null && why !== warned)
      process.stderr.write(
        why === 'none'
          ? `\nno live node runs queue "${queue}": its jobs wait until a node with that queue in its configuration starts (or node cluster.js queue start ${queue} --limit N)\n`
          : `\nqueue "${queue}" is paused on every live node that runs it: its jobs wait until it is resumed (node cluster.js queue resume ${queue})\n`,
      );
    warned = why;
  };
  const queries = new StatsQueries(client.schema);
  let states: Partial<Record<JobState, number>> = {};
  const finished = (): number => FINAL.reduce((sum, s) => sum + (states[s] ?? 0), 0);
  const progress = new Progress((ms) => {
    const done = finished();
    const percent = Math.floor((done / ids.length) * 100);
    const failed = (states.discarded ?? 0) + (states.retryable ?? 0);
    return `working: ${count(done)}/${count(ids.length)} finished (${percent}%), ${count(states.executing ?? 0)} running, ${count(failed)} failed or retrying, ${rate(done, ms)}`;
  });
  let rounds = 0;
  try {
    let unreachableSince: number | null = null;
    for (;;) {
      try {
        states = await queries.statesOf(client.pool, ids);
        unreachableSince = null;
      } catch (error) {
        // The jobs are safe in the database; a node restart or a database blip only pauses
        // the view. Give up after a minute without an answer.
        if (!isConnectionError(error)) throw error;
        unreachableSince ??= Date.now();
        if (Date.now() - unreachableSince > 60000) throw error;
        process.stderr.write(
          `\rdatabase not answering (${(error as Error).message}); still waiting`,
        );
        await new Promise((resolve) => setTimeout(resolve, 1000));
        continue;
      }
      progress.update(true);
      if (finished() >= ids.length) break;
      if (++rounds % 5 === 1) await checkRunners().catch(() => undefined);
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  } finally {
    progress.finish();
  }
  print(
    `finished: ${count(states.completed ?? 0)} completed, ${count(states.discarded ?? 0)} discarded, ${count(states.cancelled ?? 0)} cancelled`,
  );
  return (states.discarded ?? 0) > 0 ? 1 : 0;
}
