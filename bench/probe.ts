// Preloaded (`node --import`) into every process the benchmark measures, ours and the peers':
// it records the main thread's event-loop delay and answers the parent over IPC with that and
// the process's peak RSS. It keeps neither the process nor the IPC channel alive.

import { monitorEventLoopDelay } from 'node:perf_hooks';

// A 1 ms timer: fine enough for a 10 ms target; the histogram holds the timer's lateness plus
// its own period, which `read` subtracts.
const RESOLUTION_MS = 1;
const histogram = monitorEventLoopDelay({ resolution: RESOLUTION_MS });
histogram.enable();

export interface ProbeReading {
  type: 'probe';
  eventLoop: { p50: number; p99: number; max: number };
  /** Peak resident set size of the process so far, in MB. */
  peakRssMb: number;
  rssMb: number;
  /** CPU time of the whole process (main thread and worker threads) since the last reset, ms. */
  cpuMs: number;
  /** Time the main thread was busy since the last reset, ms (event-loop utilisation). */
  mainBusyMs: number;
}

let cpuAtReset = process.cpuUsage();
let eluAtReset = performance.eventLoopUtilization();

function ms(ns: number): number {
  return Math.max(0, ns / 1e6 - RESOLUTION_MS);
}

function read(): ProbeReading {
  return {
    type: 'probe',
    eventLoop: {
      p50: ms(histogram.percentile(50)),
      p99: ms(histogram.percentile(99)),
      max: ms(histogram.max),
    },
    peakRssMb: process.resourceUsage().maxRSS / 1024,
    rssMb: process.memoryUsage.rss() / 2 ** 20,
    mainBusyMs: performance.eventLoopUtilization(eluAtReset).active,
    cpuMs: (() => {
      const used = process.cpuUsage(cpuAtReset);
      return (used.user + used.system) / 1000;
    })(),
  };
}

if (process.send) {
  process.on('message', (message: { probe?: 'reset' | 'read' }) => {
    if (message?.probe === 'reset') {
      histogram.reset();
      cpuAtReset = process.cpuUsage();
      eluAtReset = performance.eventLoopUtilization();
      process.send?.({ type: 'probe-reset' });
    } else if (message?.probe === 'read') {
      process.send?.(read());
    }
  });
  process.channel?.unref();
}
