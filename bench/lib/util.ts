// Small helpers of the benchmark: a wall clock with sub-millisecond resolution that agrees across
// processes, percentiles and medians, and a wait for the machine to be quiet before timing.

import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

export { sleep };

/** Milliseconds since the epoch with microsecond resolution; comparable between processes. */
export function wallMs(): number {
  return performance.timeOrigin + performance.now();
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[index]!;
}

export function median(values: number[]): number {
  const finite = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  if (finite.length === 0) return NaN;
  const middle = Math.floor(finite.length / 2);
  return finite.length % 2 ? finite[middle]! : (finite[middle - 1]! + finite[middle]!) / 2;
}

export interface Distribution {
  p50: number;
  p95: number;
  p99: number;
  max: number;
  count: number;
}

export function distribution(values: number[]): Distribution {
  const sorted = [...values].sort((a, b) => a - b);
  return {
    p50: percentile(sorted, 50),
    p95: percentile(sorted, 95),
    p99: percentile(sorted, 99),
    max: sorted[sorted.length - 1] ?? NaN,
    count: sorted.length,
  };
}

function cpuTimes(): { idle: number; total: number } {
  const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0] ?? '';
  const fields = line.trim().split(/\s+/).slice(1).map(Number);
  const idle = (fields[3] ?? 0) + (fields[4] ?? 0);
  return { idle, total: fields.reduce((a, b) => a + b, 0) };
}

/** Share of the machine's CPU time that was idle over `ms`. */
export async function idleShare(ms: number): Promise<number> {
  const before = cpuTimes();
  await sleep(ms);
  const after = cpuTimes();
  const total = after.total - before.total;
  return total > 0 ? (after.idle - before.idle) / total : 1;
}

/**
 * Waits until the machine is mostly idle (other processes share it), at most `maxMs`.
 * Returns the idle share last seen, which the results record beside each figure.
 */
export async function waitQuiet(maxMs: number, threshold = 0.85): Promise<number> {
  const deadline = Date.now() + maxMs;
  let idle = 0;
  do {
    idle = await idleShare(250);
    if (idle >= threshold) break;
  } while (Date.now() < deadline);
  return idle;
}

/**
 * Polls `check` every `intervalMs` until it is true; returns the wall time at which the successful
 * check started (its snapshot is taken then, so that is when the condition was seen true).
 */
export async function until(
  check: () => Promise<boolean>,
  timeoutMs: number,
  intervalMs = 5,
  what = 'condition',
): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const at = wallMs();
    if (await check()) return at;
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(intervalMs);
  }
}

/** CPU time (ms) used so far by each of the given processes that is still running. */
export function cpuByProcess(pids: number[]): Map<number, number> {
  const tick = 10; // USER_HZ is 100 on Linux
  const used = new Map<number, number>();
  for (const pid of pids) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      used.set(pid, (Number(fields[11]) + Number(fields[12])) * tick);
    } catch {
      // the backend ended
    }
  }
  return used;
}

/**
 * CPU time (ms) the processes used since `before` (cpuByProcess then): per process, so that one
 * that ended meanwhile counts nothing rather than subtracting what it had used before (pg-boss's
 * W5 once read -55 ms per 1,000 jobs); what it used after `before` is lost with it.
 */
export function cpuSince(before: Map<number, number>, pids: number[]): number {
  let total = 0;
  for (const [pid, ms] of cpuByProcess(pids)) total += ms - (before.get(pid) ?? 0);
  return total;
}

/** The machine's CPU counters (jiffies, all cores): busy and total, from /proc/stat. */
export function machineCpu(): { busy: number; total: number } {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!;
    const f = line.trim().split(/\s+/).slice(1).map(Number);
    // user nice system idle iowait irq softirq steal
    const at = (i: number): number => f[i] ?? 0;
    const busy = at(0) + at(1) + at(2) + at(5) + at(6) + at(7);
    return { busy, total: busy + at(3) + at(4) };
  } catch {
    return { busy: 0, total: 0 };
  }
}

/** The share of the machine's CPU (0-1, all cores) busy between two readings. */
export function busyShare(
  before: { busy: number; total: number },
  after: { busy: number; total: number },
): number | null {
  const total = after.total - before.total;
  return total > 0 ? (after.busy - before.busy) / total : null;
}
