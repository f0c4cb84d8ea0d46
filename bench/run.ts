// `npm run bench [-- --quick] [-- --only quern,graphile-worker]`: runs W1-W5 against quern,
// graphile-worker and pg-boss (each in its own database on the same server, one system at a time,
// interleaved per repetition so drift in the shared machine's load hits every system alike),
// measures the machine's limit with pgbench, prints one table with each figure and its ratio to
// the best peer, and writes everything to .bench-results/<timestamp>.json.

import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { killAll, ROOT } from './lib/child.js';
import { dropDatabase } from './lib/databases.js';
import { median } from './lib/util.js';
import { machineLimit, type Limit } from './pgbench.js';
import { GraphileSystem } from './systems/graphile.js';
import { PgBossSystem } from './systems/pgboss.js';
import { QuernSystem } from './systems/quern.js';
import type { System } from './systems/system.js';
import { FULL, QUICK, drainWorkload, insertWorkload, latencyWorkload } from './workloads.js';
import { buildFigures, renderTable, type Figure } from './table.js';

const { values: flags } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    only: { type: 'string' },
    workloads: { type: 'string' },
    repeat: { type: 'string' },
  },
});

const quick = flags.quick ?? false;
const sizes = quick ? QUICK : FULL;
const repeats = Number(flags.repeat ?? (quick ? 1 : 3));
const wanted = (flags.workloads ?? 'limit,w1,w2,w3,w4,w5').split(',');
const all: System[] = [new QuernSystem(), new GraphileSystem(), new PgBossSystem()];
const systems = flags.only ? all.filter((s) => flags.only!.split(',').includes(s.name)) : all;

type Samples = Record<string, Record<string, number[]>>;
const samples: Samples = {};
const record = (system: string, figure: string, value: number): void => {
  ((samples[system] ??= {})[figure] ??= []).push(value);
};
const log = (message: string): void =>
  console.error(`[bench ${new Date().toISOString().slice(11, 19)}] ${message}`);

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    killAll();
    void Promise.all(
      ['bench_quern', 'bench_graphile', 'bench_pgboss', 'bench_limit'].map(dropDatabase),
    ).finally(() => process.exit(130));
  });
}

async function main(): Promise<void> {
  const began = Date.now();
  log(
    `${quick ? 'quick' : 'full'} run, ${repeats} repetition(s), systems: ${systems.map((s) => s.name).join(', ')}`,
  );
  let limits: { single: Limit; batched: Limit } | null = null;
  if (wanted.includes('limit')) {
    limits = await machineLimit(quick ? 1 : 4);
    log(
      `pgbench: ${limits.single.jobsPerSecond.toFixed(0)} jobs/s one per statement, ${limits.batched.jobsPerSecond.toFixed(0)} jobs/s 100 per statement`,
    );
  }
  for (const system of systems) await system.prepare();
  try {
    for (let rep = 0; rep < repeats; rep++) {
      for (const system of systems) {
        const name = system.name;
        if (wanted.includes('w1') && rep === 0) {
          const w1 = await insertWorkload(system, sizes);
          record(name, 'w1.bulk', w1.bulk);
          record(name, 'w1.single', w1.single);
          log(`${name} W1: bulk ${w1.bulk.toFixed(0)}/s, single ${w1.single.toFixed(0)}/s`);
        }
        if (wanted.includes('w2')) {
          const { cold, warm: w2 } = await drainWorkload(system, sizes, {
            count: sizes.drainJobs,
            mode: 'noop',
            nodes: 1,
          });
          record(name, 'w2.cold', cold.jobsPerSecond);
          log(
            `${name} W2 first drain of a fresh node: ${cold.jobsPerSecond.toFixed(0)} jobs/s (${cold.seconds.toFixed(2)} s), CPU per 1k jobs: node ${cold.cpuPerThousand.node.toFixed(0)} ms, PostgreSQL ${cold.cpuPerThousand.server.toFixed(0)} ms`,
          );
          record(name, 'w2.rate', w2.jobsPerSecond);
          record(name, 'w2.rss', w2.peakRssMb);
          record(name, 'w5.1', w2.jobsPerSecond);
          log(
            `${name} W2: ${w2.jobsPerSecond.toFixed(0)} jobs/s (${w2.seconds.toFixed(2)} s, idle before ${(w2.idle * 100).toFixed(0)}%), RSS ${w2.peakRssMb.toFixed(0)} MB, CPU per 1k jobs: node ${w2.cpuPerThousand.node.toFixed(0)} ms (main thread busy ${w2.cpuPerThousand.main.toFixed(0)} ms), PostgreSQL ${w2.cpuPerThousand.server.toFixed(0)} ms`,
          );
          record(name, 'w2.cpu.node', w2.cpuPerThousand.node);
          record(name, 'w2.cpu.server', w2.cpuPerThousand.server);
          if (w2.machineBusy !== null) record(name, 'w2.busy', w2.machineBusy * 100);
        }
        if (wanted.includes('w3') && rep === 0) {
          const w3 = await latencyWorkload(system, sizes);
          record(name, 'w3.p50', w3.p50);
          record(name, 'w3.p95', w3.p95);
          record(name, 'w3.p99', w3.p99);
          record(name, 'w3.max', w3.max);
          record(name, 'w3.rss', w3.peakRssMb);
          log(
            `${name} W3: p50 ${w3.p50.toFixed(2)} p95 ${w3.p95.toFixed(2)} p99 ${w3.p99.toFixed(2)} max ${w3.max.toFixed(2)} ms`,
          );
        }
        if (wanted.includes('w4') && rep === 0) {
          const { warm: w4 } = await drainWorkload(system, sizes, {
            count: sizes.cpuJobs,
            mode: 'hash',
            nodes: 1,
          });
          record(name, 'w4.rate', w4.jobsPerSecond);
          record(name, 'w4.elp99', w4.eventLoop.p99);
          record(name, 'w4.elmax', w4.eventLoop.max);
          record(name, 'w4.rss', w4.peakRssMb);
          log(
            `${name} W4: ${w4.jobsPerSecond.toFixed(0)} jobs/s, event loop p99 ${w4.eventLoop.p99.toFixed(1)} max ${w4.eventLoop.max.toFixed(1)} ms`,
          );
        }
        if (wanted.includes('w5') && rep === 0) {
          for (const nodes of [2, 3]) {
            const { warm: w5 } = await drainWorkload(system, sizes, {
              count: sizes.drainJobs,
              mode: 'noop',
              nodes,
            });
            record(name, `w5.${nodes}`, w5.jobsPerSecond);
            record(name, 'w5.rss', w5.peakRssMb);
            if (w5.machineBusy !== null) record(name, `w5.${nodes}.busy`, w5.machineBusy * 100);
            log(
              `${name} W5 ${nodes} nodes: ${w5.jobsPerSecond.toFixed(0)} jobs/s, CPU per 1k jobs: nodes ${w5.cpuPerThousand.node.toFixed(0)} ms, PostgreSQL ${w5.cpuPerThousand.server.toFixed(0)} ms, machine ${((w5.machineBusy ?? 0) * 100).toFixed(0)}% busy`,
            );
            record(name, `w5.${nodes}.cpu.node`, w5.cpuPerThousand.node);
            record(name, `w5.${nodes}.cpu.server`, w5.cpuPerThousand.server);
          }
        }
      }
    }
  } finally {
    for (const system of systems) await system.close();
    for (const db of ['bench_quern', 'bench_graphile', 'bench_pgboss', 'bench_limit'])
      await dropDatabase(db);
  }

  const medians: Record<string, Record<string, number>> = {};
  for (const [system, figures] of Object.entries(samples)) {
    medians[system] = Object.fromEntries(Object.entries(figures).map(([k, v]) => [k, median(v)]));
  }
  const figures: Figure[] = buildFigures(medians, limits);
  const table = renderTable(
    figures,
    systems.map((s) => s.name),
    limits,
  );
  console.log(table);
  const seconds = (Date.now() - began) / 1000;
  console.log(
    `\n${quick ? 'quick' : 'full'} run in ${seconds.toFixed(0)} s on ${os.cpus().length} cores; W2 median of ${repeats}, the others one run each.`,
  );
  for (const system of systems) console.log(`- ${system.name}: ${system.settings}`);

  const dir = path.join(ROOT, '.bench-results');
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(
    file,
    JSON.stringify(
      {
        at: new Date().toISOString(),
        quick,
        repeats,
        seconds,
        machine: {
          cpus: os.cpus().length,
          model: os.cpus()[0]?.model,
          node: process.version,
          loadavg: os.loadavg(),
        },
        sizes,
        settings: Object.fromEntries(systems.map((s) => [s.name, s.settings])),
        limits,
        samples,
        medians,
        figures,
      },
      null,
      2,
    ),
  );
  console.log(`results: ${path.relative(ROOT, file)}`);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
