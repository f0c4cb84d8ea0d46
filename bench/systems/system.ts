// What the benchmark needs from each system under test. Everything a workload does goes through
// this, so the workloads are written once and run the same way against every system.

import type { BenchArgs } from '../lib/work.js';
import type { ProbeReading } from '../probe.js';

export interface NodeGroup {
  /** Starts processing on every node (resume a paused queue, or start the peer's workers). */
  go(): Promise<number>;
  /**
   * Stops taking new jobs (after the warm-up drain) and resolves once every node has; the
   * processes, their connections and their compiled code stay for the next `go`.
   */
  halt(): Promise<void>;
  /** Start times (wall ms) that the nodes recorded for W3 jobs, keyed by the insert time. */
  latencies(): Promise<number[]>;
  /** Stops the nodes gracefully; returns each one's probe reading taken just before. */
  stop(): Promise<ProbeReading[]>;
  resetProbes(): Promise<void>;
  probes(): Promise<ProbeReading[]>;
}

export interface System {
  readonly name: string;
  /** How it is configured, printed beside the results. */
  readonly settings: string;
  /** Creates its database and schema. */
  prepare(): Promise<void>;
  /** Empties its tables between workloads. */
  reset(): Promise<void>;
  insertMany(jobs: BenchArgs[]): Promise<void>;
  insertOne(job: BenchArgs): Promise<void>;
  /**
   * Starts `count` node processes, ready but not processing, with the given concurrency limit.
   * `cpuBound`: the jobs hash (W4) rather than return at once; a system may configure for it.
   */
  startNodes(count: number, limit: number, cpuBound: boolean): Promise<NodeGroup>;
  /** PostgreSQL backends serving its database now (their CPU time is charged to it). */
  serverPids(): Promise<number[]>;
  /** True once no inserted job is waiting or running, as the database says. */
  allFinished(): Promise<boolean>;
  /** How many jobs the database records as finished successfully (or gone, for graphile). */
  finishedCount(inserted: number): Promise<number>;
  close(): Promise<void>;
}
