// The node processes of a peer under test (bench/peers/*-node.ts): each is started with its
// database URL and limit, reports `ready`, starts working on `go`, stops taking jobs on `halt`
// (keeping its connections for the next `go`), and answers `latencies`.
// Both peers speak this one protocol, so the group is built here once.

import { spawnMeasured, type Measured } from '../lib/child.js';
import type { NodeGroup } from './system.js';

export async function startPeerNodes(
  script: string,
  count: number,
  url: string,
  limit: number,
): Promise<NodeGroup> {
  const nodes: Measured[] = [];
  for (let n = 0; n < count; n++) {
    nodes.push(spawnMeasured(script, [], { BENCH_URL: url, BENCH_LIMIT: String(limit) }));
  }
  await Promise.all(nodes.map((n) => n.next('ready')));
  return {
    go: async () => {
      const going = nodes.map((n) => n.next<{ at: number }>('going'));
      nodes.forEach((n) => n.send({ cmd: 'go' }));
      const times = await Promise.all(going);
      return Math.min(...times.map((t) => t.at));
    },
    halt: async () => {
      const halted = nodes.map((n) => n.next('halted'));
      nodes.forEach((n) => n.send({ cmd: 'halt' }));
      await Promise.all(halted);
    },
    latencies: async () => {
      const all = await Promise.all(
        nodes.map((n) => {
          const reply = n.next<{ values: number[] }>('latencies');
          n.send({ cmd: 'latencies' });
          return reply;
        }),
      );
      return all.flatMap((r) => r.values);
    },
    resetProbes: async () => {
      await Promise.all(nodes.map((n) => n.resetProbe()));
    },
    probes: () => Promise.all(nodes.map((n) => n.probe())),
    stop: async () => {
      const readings = await Promise.all(nodes.map((n) => n.probe()));
      await Promise.all(nodes.map((n) => n.stop()));
      return readings;
    },
  };
}
