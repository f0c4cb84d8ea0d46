// `status [--watch]`: the nodes with their queues, the leader, and job counts by queue and state;
// with --watch, a live view redrawn each second (./watch.ts).

import type { Quern } from '../client.js';
import { isAlive } from '../db/queries/nodes.js';
import { configFromFlags, connectClient, print, table, UsageError } from './context.js';
import type { Command } from './main.js';
import { watchStatus } from './watch.js';

export type StateCounts = { queue: string; state: string; count: number }[];

/**
 * `heartbeatTimeout`: a node silent for longer is shown as dead (its jobs get rescued).
 * `counts`: the job counts to show (by default counted now, in one scan of the table).
 */
export async function renderStatus(
  client: Quern,
  heartbeatTimeout = 5000,
  counts?: StateCounts,
): Promise<string> {
  const nodes = await client.nodes.list(client.pool);
  counts ??= await client.jobs.countsByQueueAndState(client.pool);
  // Judged as the lifeline judges: by the longer of this timeout and the node's own.
  const alive = (n: { ageMs: number; heartbeatTimeout: number | null }) =>
    isAlive(n, heartbeatTimeout);
  // Just after a failover the dead leader's row still says leader: the fresher row wins.
  const leader =
    nodes.filter((n) => n.leader && alive(n)).sort((x, y) => x.ageMs - y.ageMs)[0]?.name ??
    '(none)';
  const seconds = (ms: number) => `${Math.round(ms / 1000)}s ago`;
  const memberRows = nodes.map((n) => [
    n.name,
    !alive(n) ? 'dead' : n.leader ? 'leader' : 'follower',
    seconds(Date.now() - n.startedAt.getTime()),
    seconds(n.ageMs),
    Object.keys(n.queues).join(',') || '(none)',
  ]);
  // A dead node's queues run nothing, whatever its last heartbeat said: their state is `dead`
  // and their running count unknown (`-`; the lifeline rescues what they held).
  const nodeRows = nodes.flatMap((n) =>
    Object.entries(n.queues).map(([queue, q]) => [
      n.name,
      queue,
      q.limit,
      q.threads,
      alive(n) ? q.running : '-',
      !alive(n) ? 'dead' : q.paused ? 'paused' : 'running',
      seconds(n.ageMs),
    ]),
  );
  const states = [
    'available',
    'scheduled',
    'executing',
    'retryable',
    'completed',
    'discarded',
    'cancelled',
  ];
  const queues = [...new Set(counts.map((c) => c.queue))];
  const countRows = queues.map((queue) => [
    queue,
    ...states.map((s) => counts.find((c) => c.queue === queue && c.state === s)?.count ?? 0),
  ]);
  return [
    `leader: ${leader}`,
    `nodes: ${nodes.filter(alive).length} alive of ${nodes.length}`,
    '',
    table(['NODE', 'ROLE', 'STARTED', 'HEARTBEAT', 'QUEUES'], memberRows),
    '',
    table(['NODE', 'QUEUE', 'LIMIT', 'THREADS', 'RUNNING', 'STATE', 'HEARTBEAT'], nodeRows),
    '',
    table(['QUEUE', ...states.map((s) => s.toUpperCase())], countRows),
  ].join('\n');
}

export const status: Command = {
  options: { watch: { type: 'boolean' } },
  async run({ values, positionals }) {
    if (positionals.length > 0)
      throw new UsageError(`status takes no arguments, got ${positionals.join(' ')}`);
    const connected = await connectClient(configFromFlags(values), { existing: true });
    try {
      if (!values.watch) {
        print(await renderStatus(connected.client, connected.config.heartbeatTimeout));
        return 0;
      }
      await watchStatus(connected.client, {
        heartbeatTimeout: connected.config.heartbeatTimeout,
      });
    } finally {
      await connected.close();
    }
    return 0;
  },
};
