// The workloads W1-W5, written once against the System interface. Each returns plain figures;
// run.ts repeats them, takes medians and prints the table.

import type { ProbeReading } from './probe.js';
import type { NodeGroup, System } from './systems/system.js';
import {
  busyShare,
  distribution,
  machineCpu,
  cpuByProcess,
  cpuSince,
  sleep,
  until,
  waitQuiet,
  wallMs,
  type Distribution,
} from './lib/util.js';
import type { BenchArgs, Mode } from './lib/work.js';
import { checkpoint } from './lib/databases.js';

export interface Sizes {
  bulkJobs: number;
  bulkBatch: number;
  singleJobs: number;
  singleInFlight: number;
  drainJobs: number;
  limit: number;
  latencyRate: number;
  latencySeconds: number;
  cpuJobs: number;
  quietMs: number;
}

export const FULL: Sizes = {
  bulkJobs: 20000,
  bulkBatch: 1000,
  singleJobs: 5000,
  singleInFlight: 20,
  drainJobs: 20000,
  limit: 20,
  latencyRate: 100,
  latencySeconds: 15,
  cpuJobs: 2000,
  quietMs: 1000,
};

export const QUICK: Sizes = {
  ...FULL,
  bulkJobs: 5000,
  singleJobs: 500,
  drainJobs: 3000,
  latencySeconds: 3,
  cpuJobs: 300,
  quietMs: 250,
};

function jobs(count: number, mode: Mode): BenchArgs[] {
  return Array.from({ length: count }, (_, i) => ({ mode, i }));
}

async function insertAll(system: System, all: BenchArgs[], batch: number): Promise<void> {
  for (let i = 0; i < all.length; i += batch) await system.insertMany(all.slice(i, i + batch));
}

/** Empties the system's tables and takes a checkpoint (see checkpoint()) before a timed section. */
async function fresh(system: System): Promise<void> {
  await system.reset();
  await checkpoint();
}

function peakRss(readings: ProbeReading[]): number {
  return Math.max(...readings.map((r) => r.peakRssMb));
}

/** W1: bulk inserts in batches, then single inserts with a fixed number in flight (jobs/s). */
export async function insertWorkload(
  system: System,
  sizes: Sizes,
): Promise<{ bulk: number; single: number; idle: number }> {
  // Warm the client (connections, prepared statements, JIT) for every system alike, with one
  // batch of the measured size and a few single inserts, then start from an empty table.
  await system.insertMany(jobs(sizes.bulkBatch, 'noop'));
  for (let i = 0; i < 20; i++) await system.insertOne({ mode: 'noop' });
  await fresh(system);
  const all = jobs(sizes.bulkJobs, 'noop');
  const idle = await waitQuiet(sizes.quietMs);
  let started = wallMs();
  await insertAll(system, all, sizes.bulkBatch);
  const bulk = (sizes.bulkJobs / (wallMs() - started)) * 1000;

  await fresh(system);
  await waitQuiet(sizes.quietMs);
  let next = 0;
  started = wallMs();
  await Promise.all(
    Array.from({ length: sizes.singleInFlight }, async () => {
      while (next < sizes.singleJobs) {
        next++;
        await system.insertOne({ mode: 'noop', i: next });
      }
    }),
  );
  const single = (sizes.singleJobs / (wallMs() - started)) * 1000;
  return { bulk, single, idle };
}

export interface DrainResult {
  jobsPerSecond: number;
  seconds: number;
  peakRssMb: number;
  eventLoop: { p99: number; max: number };
  idle: number;
  /** CPU time per 1,000 jobs: the node processes, and the PostgreSQL backends serving them. */
  cpuPerThousand: { node: number; main: number; server: number };
  /**
   * How busy the whole machine was during the drain (0-1 of all cores): near 1, nothing can go
   * faster on this machine, whichever process is shown the largest share.
   */
  machineBusy: number | null;
}

/**
 * W2, W4, W5: insert first, then start processing and time until the last is recorded finished.
 *
 * Timed twice through the same node processes: first as they come (`cold`: a node's first
 * drain, its hot code still being compiled), then, after the nodes have stopped taking jobs and
 * the table was emptied, again with a fresh set of jobs (`warm`). A node runs for days, so the
 * warm drain is the rate a user's queue sees; the cold one shows what the first second of a
 * fresh process costs. Every system goes through the same two drains with the same processes
 * (the peers keep their connection pools across them). Both drains have `count` jobs; W2
 * reports both, W4 and W5 only the warm one.
 */
export async function drainWorkload(
  system: System,
  sizes: Sizes,
  options: { count: number; mode: Mode; nodes: number },
): Promise<{ cold: DrainResult; warm: DrainResult }> {
  await fresh(system);
  const group = await system.startNodes(options.nodes, sizes.limit, options.mode === 'hash');
  try {
    await insertAll(system, jobs(options.count, options.mode), sizes.bulkBatch);
    const cold = await timedDrain(system, sizes, group, options.count);
    await group.halt();
    await fresh(system);
    await insertAll(system, jobs(options.count, options.mode), sizes.bulkBatch);
    const warm = await timedDrain(system, sizes, group, options.count);
    return { cold, warm };
  } finally {
    await group.stop().catch(() => undefined);
  }
}

/** Starts processing the jobs already inserted and times until the database shows them done. */
async function timedDrain(
  system: System,
  sizes: Sizes,
  group: NodeGroup,
  count: number,
): Promise<DrainResult> {
  const idle = await waitQuiet(sizes.quietMs);
  await group.resetProbes();
  const before = await system.serverPids();
  const serverBefore = cpuByProcess(before);
  const machineBefore = machineCpu();
  const started = await group.go();
  const ended = await until(() => system.allFinished(), 120000, 5, `${system.name} to drain`);
  const machineBusy = busyShare(machineBefore, machineCpu());
  const readings = await group.probes();
  const after = [...new Set([...before, ...(await system.serverPids())])];
  const serverMs = cpuSince(serverBefore, after);
  const nodeMs = readings.reduce((sum, r) => sum + r.cpuMs, 0);
  const finished = await system.finishedCount(count);
  if (finished !== count) {
    throw new Error(`${system.name}: ${finished} of ${count} jobs recorded finished`);
  }
  const seconds = (ended - started) / 1000;
  return {
    jobsPerSecond: count / seconds,
    seconds,
    peakRssMb: peakRss(readings),
    eventLoop: {
      p99: Math.max(...readings.map((r) => r.eventLoop.p99)),
      max: Math.max(...readings.map((r) => r.eventLoop.max)),
    },
    idle,
    cpuPerThousand: {
      node: (nodeMs / count) * 1000,
      main: (readings.reduce((sum, r) => sum + r.mainBusyMs, 0) / count) * 1000,
      server: (serverMs / count) * 1000,
    },
    machineBusy,
  };
}

export interface LatencyResult extends Distribution {
  peakRssMb: number;
  idle: number;
}

/** W3: single inserts at a steady rate while the queue runs; insert to start of perform. */
export async function latencyWorkload(system: System, sizes: Sizes): Promise<LatencyResult> {
  await fresh(system);
  const group = await system.startNodes(1, sizes.limit, false);
  try {
    await group.go();
    const idle = await waitQuiet(sizes.quietMs);
    const interval = 1000 / sizes.latencyRate;
    // Half a second of warm-up jobs (not measured), then the measured ones, on a fixed schedule
    // so a slow insert does not delay the ones after it.
    const warmups = Math.round(sizes.latencyRate / 2);
    const total = warmups + sizes.latencyRate * sizes.latencySeconds;
    const start = wallMs();
    const pending: Promise<void>[] = [];
    for (let i = 0; i < total; i++) {
      const due = start + i * interval;
      const wait = due - wallMs();
      if (wait > 0) await sleep(wait);
      const args: BenchArgs =
        i < warmups ? { mode: 'noop', i } : { mode: 'latency', i, t: wallMs() };
      pending.push(system.insertOne(args));
    }
    await Promise.all(pending);
    await until(() => system.allFinished(), 60000, 20, `${system.name} to finish W3`);
    const readings = await group.probes();
    const values = await group.latencies();
    const expected = total - warmups;
    if (values.length !== expected) {
      throw new Error(`${system.name}: ${values.length} of ${expected} latency jobs reported`);
    }
    return { ...distribution(values), peakRssMb: peakRss(readings), idle };
  } finally {
    await group.stop().catch(() => undefined);
  }
}
