// Historic metrics computed from the retained job rows: counts by state per queue and per
// worker, completions and failures over the last minute and hour, and p50/p95 queue and run
// times. What `quern.stats()` returns and `node cluster.js stats` prints.

import type { Queryable } from '../db/queries/jobs.js';
import type { RecentRow, StatsQueries } from '../db/queries/stats.js';
import { JOB_STATES, type JobState } from '../jobs/types.js';

export interface Percentiles {
  /** Milliseconds, or null when no attempt ended in the last hour. */
  p50: number | null;
  p95: number | null;
}

export interface GroupStats {
  /** Jobs of each state among the retained rows. */
  counts: Record<JobState, number>;
  completed: { lastMinute: number; lastHour: number };
  /** Attempts that ended in an error: jobs discarded, or waiting to retry, in the window. */
  failed: { lastMinute: number; lastHour: number };
  /** From scheduled (due) to attempted, over jobs completed or discarded in the last hour. */
  queueTime: Percentiles;
  /** From attempted to completed or discarded, over the same jobs. */
  runTime: Percentiles;
}

export interface Stats {
  at: Date;
  queues: Record<string, GroupStats>;
  workers: Record<string, GroupStats>;
}

function emptyGroup(): GroupStats {
  return {
    counts: Object.fromEntries(JOB_STATES.map((s) => [s, 0])) as Record<JobState, number>,
    completed: { lastMinute: 0, lastHour: 0 },
    failed: { lastMinute: 0, lastHour: 0 },
    queueTime: { p50: null, p95: null },
    runTime: { p50: null, p95: null },
  };
}

function applyRecent(group: GroupStats, row: RecentRow): void {
  group.completed = { lastMinute: row.completedLastMinute, lastHour: row.completedLastHour };
  group.failed = { lastMinute: row.failedLastMinute, lastHour: row.failedLastHour };
  group.queueTime = { p50: row.queueTimeP50, p95: row.queueTimeP95 };
  group.runTime = { p50: row.runTimeP50, p95: row.runTimeP95 };
}

export async function collectStats(db: Queryable, queries: StatsQueries): Promise<Stats> {
  const [counts, recent] = await Promise.all([queries.stateCounts(db), queries.recent(db)]);
  const queues: Record<string, GroupStats> = {};
  const workers: Record<string, GroupStats> = {};
  for (const row of counts) {
    (queues[row.queue] ??= emptyGroup()).counts[row.state] += row.count;
    (workers[row.worker] ??= emptyGroup()).counts[row.state] += row.count;
  }
  for (const row of recent) {
    const groups = row.by === 'queue' ? queues : workers;
    applyRecent((groups[row.name] ??= emptyGroup()), row);
  }
  return { at: new Date(), queues: sorted(queues), workers: sorted(workers) };
}

function sorted<T>(record: Record<string, T>): Record<string, T> {
  return Object.fromEntries(Object.entries(record).sort(([a], [b]) => a.localeCompare(b)));
}
