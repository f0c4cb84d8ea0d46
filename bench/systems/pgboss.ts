// pg-boss under test: its own database, nodes as child processes (peers/pgboss-node), bulk
// inserts with insert() and single ones with send() on a queue created with `notify: true`.
// It keeps completed jobs (state 'completed'), like quern.

import path from 'node:path';
import { PgBoss } from 'pg-boss';
import type pg from 'pg';
import { backendPids, checkPool, recreateDatabase } from '../lib/databases.js';
import { DIST_BENCH } from '../lib/child.js';
import type { BenchArgs } from '../lib/work.js';
import { startPeerNodes } from './peer-nodes.js';
import type { NodeGroup, System } from './system.js';

const NODE = path.join(DIST_BENCH, 'peers', 'pgboss-node.js');

export class PgBossSystem implements System {
  readonly name = 'pg-boss';
  readonly settings =
    'pg-boss 12.38.0: work() localConcurrency 20, batchSize 100, burstWhenBatchFull, useListenNotify + queue notify, pool 25';
  private url = '';
  private boss!: PgBoss;
  private check!: pg.Pool;

  async prepare(): Promise<void> {
    this.url = await recreateDatabase('bench_pgboss');
    this.check = checkPool(this.url);
    this.boss = new PgBoss({
      connectionString: this.url,
      max: 20,
      schedule: false,
      supervise: false,
    });
    this.boss.on('error', () => undefined);
    await this.boss.start();
    await this.boss.createQueue('bench', { notify: true });
  }

  async reset(): Promise<void> {
    await this.check.query(`DELETE FROM pgboss.job WHERE name = 'bench'`);
  }

  async insertMany(jobs: BenchArgs[]): Promise<void> {
    await this.boss.insert(
      'bench',
      jobs.map((data) => ({ data })),
    );
  }

  async insertOne(job: BenchArgs): Promise<void> {
    await this.boss.send('bench', job);
  }

  startNodes(count: number, limit: number, _cpuBound: boolean): Promise<NodeGroup> {
    return startPeerNodes(NODE, count, this.url, limit);
  }

  serverPids(): Promise<number[]> {
    return backendPids(this.check, 'bench_pgboss');
  }

  async allFinished(): Promise<boolean> {
    const { rows } = await this.check.query<{ busy: boolean }>(
      `SELECT EXISTS (SELECT 1 FROM pgboss.job WHERE name = 'bench' AND state < 'completed') AS busy`,
    );
    return rows[0]?.busy === false;
  }

  async finishedCount(): Promise<number> {
    const { rows } = await this.check.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM pgboss.job WHERE name = 'bench' AND state = 'completed'`,
    );
    return rows[0]?.n ?? 0;
  }

  async close(): Promise<void> {
    await this.boss?.stop({ graceful: false }).catch(() => undefined);
    await this.check?.end().catch(() => undefined);
  }
}
