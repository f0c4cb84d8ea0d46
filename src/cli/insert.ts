// `insert WORKER [ARGS_JSON] [--queue --priority --schedule-in --max-attempts --tags]`: inserts
// one job and prints its id.

import type { InsertJob } from '../worker/define.js';
import { InsertError } from '../jobs/insert.js';
import { assertFaithfulJson } from '../jobs/json.js';
import {
  configFromFlags,
  connectClient,
  print,
  requireKnownWorker,
  UsageError,
} from './context.js';
import type { Command } from './main.js';

/** An integer flag; its range is the insert API's to check (priority 0 to 3, ...). */
function integerFlag(value: unknown, flag: string): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || !/^-?\d+$/.test(value) || !Number.isSafeInteger(Number(value)))
    throw new UsageError(`${flag}: expected an integer, got ${JSON.stringify(value)}`);
  return Number(value);
}

export const insert: Command = {
  options: {
    queue: { type: 'string' },
    priority: { type: 'string' },
    'schedule-in': { type: 'string' },
    'max-attempts': { type: 'string' },
    tags: { type: 'string' },
    'any-worker': { type: 'boolean' },
  },
  async run({ positionals, values }) {
    const [worker, argsJson, ...extra] = positionals;
    if (!worker) throw new UsageError('insert needs a WORKER name');
    if (extra.length > 0) throw new UsageError(`unexpected arguments: ${extra.join(' ')}`);
    let args: unknown = {};
    if (argsJson !== undefined) {
      try {
        args = JSON.parse(argsJson);
      } catch (error) {
        throw new UsageError(`ARGS_JSON is not valid JSON: ${(error as Error).message}`);
      }
      try {
        assertFaithfulJson(argsJson, 'args');
      } catch (error) {
        throw new UsageError(`ARGS_JSON: ${(error as Error).message}`);
      }
    }
    const scheduleIn = values['schedule-in'];
    // So far ahead that no date holds it (past the year 275760) is a typo, not a schedule.
    if (
      scheduleIn !== undefined &&
      (!/^\d+(\.\d+)?$/.test(String(scheduleIn)) ||
        Number.isNaN(new Date(Date.now() + Number(scheduleIn) * 1000).getTime()))
    ) {
      throw new UsageError(`--schedule-in: expected seconds from now, got ${String(scheduleIn)}`);
    }
    const job: InsertJob = { worker, args: args as Record<string, unknown> };
    if (values.queue !== undefined) job.queue = values.queue as string;
    const priority = integerFlag(values.priority, '--priority');
    if (priority !== undefined) job.priority = priority;
    const maxAttempts = integerFlag(values['max-attempts'], '--max-attempts');
    if (maxAttempts !== undefined) job.maxAttempts = maxAttempts;
    if (scheduleIn !== undefined) job.scheduleIn = Number(scheduleIn);
    // `--tags 'a, b'` is tags a and b: the space was kept (" b", which no filter on b finds).
    // An empty tag (`--tags ''`, `a,,b`, `a,`) is refused, as the insert API refuses one: it was
    // dropped without a word.
    if (values.tags !== undefined) {
      const tags = String(values.tags)
        .split(',')
        .map((tag) => tag.trim());
      if (tags.includes(''))
        throw new UsageError(
          `--tags: expected tags separated by commas, none of them empty, got ${JSON.stringify(values.tags)}`,
        );
      job.tags = [...new Set(tags)];
    }

    const config = configFromFlags(values);
    if (!values['any-worker']) await requireKnownWorker(config, worker);
    const connected = await connectClient(config);
    try {
      const inserted = await connected.client.insert(job).catch((error: unknown) => {
        // A flag or argument the insert API refuses is a usage error of this command.
        throw error instanceof InsertError ? new UsageError(error.message) : error;
      });
      print(String(inserted.id));
    } finally {
      await connected.close();
    }
    return 0;
  },
};
