// Several real `node cluster.js` processes on one test schema: each with its own config file
// and node name, started and waited for, SIGKILLed or stopped, and all killed after the test.

import type { TestSchema } from './db.js';
import { nodeConfig, spawnCluster, writeConfig, type SpawnedNode } from './node.js';

export interface ClusterNode extends SpawnedNode {
  name: string;
  config: string;
  /** Resolves when the process has exited. */
  kill(signal?: NodeJS.Signals): Promise<void>;
}

export class TestCluster {
  readonly nodes: ClusterNode[] = [];

  constructor(
    private readonly schema: string,
    private readonly url: string,
    private readonly overrides: Record<string, unknown> = {},
  ) {}

  /** Node names carry the schema: they are unique on the shared server (application_name). */
  nameOf(short: string): string {
    return `${this.schema}-${short}`;
  }

  spawn(short: string, overrides: Record<string, unknown> = {}): ClusterNode {
    const name = this.nameOf(short);
    const config = writeConfig(
      nodeConfig(this.schema, this.url, { node: name, ...this.overrides, ...overrides }),
    );
    const spawned = spawnCluster(['--config', config]);
    const node: ClusterNode = {
      ...spawned,
      name,
      config,
      async kill(signal: NodeJS.Signals = 'SIGKILL') {
        if (spawned.child.exitCode === null && spawned.child.signalCode === null)
          spawned.child.kill(signal);
        await spawned.exited;
      },
    };
    this.nodes.push(node);
    return node;
  }

  async start(short: string, overrides: Record<string, unknown> = {}): Promise<ClusterNode> {
    const node = this.spawn(short, overrides);
    await node.waitForLog(new RegExp(`node ${node.name} started`));
    return node;
  }

  async killAll(): Promise<void> {
    await Promise.all(this.nodes.map((n) => n.kill('SIGKILL')));
  }
}

/**
 * The node holding the leadership lock right now, read from the server (the lock holder's
 * session is named quern-peer-NODE), or null.
 */
export async function lockHolder(db: TestSchema): Promise<string | null> {
  const { rows } = await db.pool.query<{ name: string }>(
    `SELECT substr(a.application_name, length('quern-peer-') + 1) AS name
     FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
     WHERE l.locktype = 'advisory' AND l.granted AND starts_with(a.application_name, $1)`,
    [`quern-peer-${db.schema}-`],
  );
  return rows[0]?.name ?? null;
}
