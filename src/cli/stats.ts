// `stats [--json]`: historic metrics from the retained rows, per queue and per worker: counts by
// state, completed and failed over the last minute and hour, p50/p95 queue and run times.

import type { GroupStats, Stats } from '../telemetry/stats.js';
import { configFromFlags, connectClient, print, table, UsageError } from './context.js';
import type { Command } from './main.js';

/** 850 -> "850ms", 12_300 -> "12.3s", 192_000 -> "3.2m"; null -> "-". */
export function formatMs(ms: number | null): string {
  if (ms === null) return '-';
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)}s`;
  if (ms < 3_600_000) return `${(ms / 60_000).toFixed(1)}m`;
  return `${(ms / 3_600_000).toFixed(1)}h`;
}

const COUNT_HEADERS = ['AVAIL', 'SCHED', 'EXEC', 'RETRY', 'DONE', 'DISCARD', 'CANCEL'];
const RECENT_HEADERS = [
  'OK/1M',
  'OK/1H',
  'FAIL/1M',
  'FAIL/1H',
  'WAIT P50',
  'P95',
  'RUN P50',
  'P95',
];

function groupRow(name: string, g: GroupStats): (string | number)[] {
  const c = g.counts;
  return [
    name,
    c.available,
    c.scheduled,
    c.executing,
    c.retryable,
    c.completed,
    c.discarded,
    c.cancelled,
    g.completed.lastMinute,
    g.completed.lastHour,
    g.failed.lastMinute,
    g.failed.lastHour,
    formatMs(g.queueTime.p50),
    formatMs(g.queueTime.p95),
    formatMs(g.runTime.p50),
    formatMs(g.runTime.p95),
  ];
}

export function renderStats(stats: Stats): string {
  const section = (title: string, groups: Record<string, GroupStats>): string =>
    table(
      [title, ...COUNT_HEADERS, ...RECENT_HEADERS],
      Object.entries(groups).map(([name, g]) => groupRow(name, g)),
    );
  return [section('QUEUE', stats.queues), '', section('WORKER', stats.workers)].join('\n');
}

export const stats: Command = {
  options: { json: { type: 'boolean' } },
  async run({ values, positionals }) {
    if (positionals.length > 0)
      throw new UsageError(`stats takes no arguments, got ${positionals.join(' ')}`);
    const connected = await connectClient(configFromFlags(values), { existing: true });
    try {
      const result = await connected.client.stats();
      print(values.json ? JSON.stringify(result, null, 2) : renderStats(result));
    } finally {
      await connected.close();
    }
    return 0;
  },
};
