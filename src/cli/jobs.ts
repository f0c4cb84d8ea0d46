// `jobs [--state --queue --worker --limit]` lists jobs as a table; `job show|cancel|retry ID`.

import { isPlainIdentifier, MAX_QUEUE_LENGTH } from '../db/identifiers.js';
import { JOB_STATES } from '../jobs/types.js';
import {
  configFromFlags,
  connectClient,
  integerArgument,
  print,
  table,
  UsageError,
} from './context.js';
import type { Command } from './main.js';

function ago(date: Date | null): string {
  if (!date) return '';
  const seconds = Math.round((Date.now() - date.getTime()) / 1000);
  return seconds >= 0 ? `${seconds}s ago` : `in ${-seconds}s`;
}

export const jobs: Command = {
  options: {
    state: { type: 'string' },
    queue: { type: 'string' },
    worker: { type: 'string' },
    limit: { type: 'string' },
  },
  async run({ values, positionals }) {
    if (positionals.length > 0)
      throw new UsageError(`jobs takes no arguments, got ${positionals.join(' ')}`);
    const state = values.state as string | undefined;
    if (state !== undefined && !(JOB_STATES as readonly string[]).includes(state)) {
      throw new UsageError(`--state: expected one of ${JOB_STATES.join(', ')}, got ${state}`);
    }
    // A name no job can have (a typo, a worker's file path) listed "0 jobs" as if there were none.
    const queue = values.queue as string | undefined;
    if (queue !== undefined && !isPlainIdentifier(queue, MAX_QUEUE_LENGTH))
      throw new UsageError(
        `--queue: expected a queue name ([a-z_][a-z0-9_]*, at most ${MAX_QUEUE_LENGTH} bytes), got ${JSON.stringify(queue)}`,
      );
    const worker = values.worker as string | undefined;
    if (worker !== undefined && !/^[A-Za-z0-9_.:-]{1,255}$/.test(worker))
      throw new UsageError(
        `--worker: expected a worker name (1-255 characters of A-Z a-z 0-9 _ . : -), got ${JSON.stringify(worker)}`,
      );
    const limit = values.limit === undefined ? 50 : integerArgument(values.limit, '--limit');
    const connected = await connectClient(configFromFlags(values), { existing: true });
    try {
      const rows = await connected.client.listJobs({
        ...(state ? { state } : {}),
        ...(queue ? { queue } : {}),
        ...(worker ? { worker } : {}),
        limit,
      });
      print(
        table(
          ['ID', 'STATE', 'QUEUE', 'WORKER', 'ATTEMPT', 'PRIORITY', 'SCHEDULED', 'LAST ERROR'],
          rows.map((j) => [
            j.id,
            j.state,
            j.queue,
            j.worker,
            `${j.attempt}/${j.maxAttempts}`,
            j.priority,
            ago(j.scheduledAt),
            (j.errors.at(-1)?.error ?? '').split('\n', 1)[0]?.slice(0, 60),
          ]),
        ),
      );
      print(`${rows.length} jobs`);
    } finally {
      await connected.close();
    }
    return 0;
  },
};

export const job: Command = {
  options: {},
  async run({ positionals, values }) {
    const [action, idText, ...extra] = positionals;
    if (!action || !['show', 'cancel', 'retry'].includes(action))
      throw new UsageError(
        action
          ? `job: unknown action "${action}" (show, cancel or retry)`
          : 'job needs an action: show, cancel or retry',
      );
    if (!idText || extra.length > 0) throw new UsageError(`job ${action} needs one job ID`);
    const id = integerArgument(idText, `job ${action} ID`);
    const connected = await connectClient(configFromFlags(values), { existing: true });
    try {
      if (action === 'show') {
        const found = await connected.client.getJob(id);
        if (!found) {
          process.stderr.write(`job ${id} does not exist\n`);
          return 1;
        }
        print(JSON.stringify(found, null, 2));
        return 0;
      }
      const result =
        action === 'cancel' ? await connected.client.cancel(id) : await connected.client.retry(id);
      print(result.message);
      return result.before === null ? 1 : 0;
    } finally {
      await connected.close();
    }
  },
};
