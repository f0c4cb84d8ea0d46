// graphile-worker under test: its own database, nodes as child processes (peers/graphile-node),
// bulk inserts with addJobs and single ones with addJob through its WorkerUtils. It deletes a job
// when it completes, so "finished" is "no row left".

import path from 'node:path';
import { Logger, makeWorkerUtils, runMigrations, type WorkerUtils } from 'graphile-worker';
import type pg from 'pg';
import { backendPids, checkPool, recreateDatabase } from '../lib/databases.js';
import { DIST_BENCH } from '../lib/child.js';
import type { BenchArgs } from '../lib/work.js';
import { startPeerNodes } from './peer-nodes.js';
import type { NodeGroup, System } from './system.js';

const NODE = path.join(DIST_BENCH, 'peers', 'graphile-node.js');
const logger = new Logger(() => () => undefined);

export class GraphileSystem implements System {
  readonly name = 'graphile-worker';
  readonly settings =
    'graphile-worker 0.18.0: concurrency 20, maxPoolSize 25, localQueue 500, completeJobBatchDelay 0, failJobBatchDelay 0';
  private url = '';
  private utils!: WorkerUtils;
  private check!: pg.Pool;

  async prepare(): Promise<void> {
    this.url = await recreateDatabase('bench_graphile');
    this.check = checkPool(this.url);
    await runMigrations({ connectionString: this.url, logger });
    this.utils = await makeWorkerUtils({ connectionString: this.url, maxPoolSize: 20, logger });
  }

  async reset(): Promise<void> {
    await this.check.query(
      'TRUNCATE graphile_worker._private_jobs, graphile_worker._private_job_queues CASCADE',
    );
  }

  async insertMany(jobs: BenchArgs[]): Promise<void> {
    await this.utils.addJobs(jobs.map((payload) => ({ identifier: 'bench', payload })));
  }

  async insertOne(job: BenchArgs): Promise<void> {
    await this.utils.addJob('bench', job);
  }

  startNodes(count: number, limit: number, _cpuBound: boolean): Promise<NodeGroup> {
    return startPeerNodes(NODE, count, this.url, limit);
  }

  serverPids(): Promise<number[]> {
    return backendPids(this.check, 'bench_graphile');
  }

  async allFinished(): Promise<boolean> {
    const { rows } = await this.check.query<{ busy: boolean }>(
      'SELECT EXISTS (SELECT 1 FROM graphile_worker._private_jobs) AS busy',
    );
    return rows[0]?.busy === false;
  }

  async finishedCount(inserted: number): Promise<number> {
    const { rows } = await this.check.query<{ n: number }>(
      'SELECT count(*)::int AS n FROM graphile_worker._private_jobs',
    );
    return inserted - (rows[0]?.n ?? 0);
  }

  async close(): Promise<void> {
    await Promise.resolve(this.utils?.release()).catch(() => undefined);
    await this.check?.end().catch(() => undefined);
  }
}
