// quern under test: real `node cluster.js` processes (the probe preloaded), configured as a user
// would for throughput, inserting through the library API. Nodes start with the queue paused so
// their start-up is not timed; `go` resumes it on every node with one control message.

import { writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { Quern } from '../../src/client.js';
import { backendPids, checkPool, recreateDatabase } from '../lib/databases.js';
import { DIST_BENCH, ROOT, spawnMeasured, type Measured } from '../lib/child.js';
import { sleep, wallMs } from '../lib/util.js';
import type { BenchArgs } from '../lib/work.js';
import type { NodeGroup, System } from './system.js';

const QUEUE = 'bench';
const CLUSTER_JS = path.join(ROOT, 'cluster.js');

export class QuernSystem implements System {
  readonly name = 'quern';
  readonly settings =
    'node cluster.js per node; queue limit 20, prefetch 1000, 1 thread (2 for W4), poolSize 10, logLevel warn';
  private url = '';
  private client!: Quern;
  private pool!: pg.Pool;
  private check!: pg.Pool;

  async prepare(): Promise<void> {
    this.url = await recreateDatabase('bench_quern');
    this.pool = new pg.Pool({ connectionString: this.url, max: 20 });
    this.pool.on('error', () => undefined);
    this.client = new Quern({ pool: this.pool, schema: 'quern' });
    this.check = checkPool(this.url);
    await this.client.migrate();
  }

  async reset(): Promise<void> {
    // Truncate rather than drop: the client's connections keep their prepared statements.
    const { rows } = await this.check.query<{ name: string }>(
      `SELECT format('%I.%I', schemaname, tablename) AS name FROM pg_tables
       WHERE schemaname = 'quern' AND tablename <> 'migrations'`,
    );
    await this.check.query(`TRUNCATE ${rows.map((r) => r.name).join(', ')} RESTART IDENTITY`);
    // BENCH_HISTORY=N: the table first holds N finished (discarded) jobs, analysed while nothing
    // waits, as a long-running queue's table is between bursts (statistics that say nothing is
    // available or executing; see JobQueries.fetchSql). quern only: the peers delete or archive
    // finished jobs.
    const history = Number(process.env.BENCH_HISTORY ?? 0);
    if (history > 0) {
      await this.check.query(
        `INSERT INTO quern.jobs (state, queue, worker, args, max_attempts, attempt, scheduled_at, attempted_at, discarded_at)
         SELECT 'discarded', $1, 'bench', '{}', 20, 1, now(), now(), now() FROM generate_series(1, $2)`,
        [QUEUE, history],
      );
      await this.check.query('ANALYZE quern.jobs');
    }
  }

  async insertMany(jobs: BenchArgs[]): Promise<void> {
    await this.client.insertMany(jobs.map((args) => ({ worker: 'bench', queue: QUEUE, args })));
  }

  async insertOne(job: BenchArgs): Promise<void> {
    await this.client.insert({ worker: 'bench', queue: QUEUE, args: job });
  }

  async startNodes(count: number, limit: number, cpuBound: boolean): Promise<NodeGroup> {
    // One worker thread where jobs take no CPU (W2, W3, W5), two where they hash (W4), as the
    // README advises: each thread has its own V8 heap, compiler and wake-ups, and a second
    // thread buys nothing for jobs that return at once (W2: 38.7k jobs/s with two threads, 41k
    // with one; W5 three nodes: 23.8k with two, 30.1k with one).
    const threads = Number(process.env.BENCH_THREADS ?? (cpuBound ? 2 : 1));
    const nodes: Measured[] = [];
    for (let n = 1; n <= count; n++) {
      const dir = mkdtempSync(path.join(tmpdir(), 'quern-bench-'));
      const config = path.join(dir, 'cluster.config.json');
      writeFileSync(
        config,
        JSON.stringify({
          node: `bench-${n}`,
          schema: 'quern',
          database: { poolSize: 10 },
          workers: path.join(DIST_BENCH, 'workers'),
          queues: {
            [QUEUE]: {
              limit,
              // 1000: fetches of ~500 rows, each taking ~5 ms on a busy machine, stay ahead of the
              // threads (W2: 34k jobs/s at 480, 36.6k at 1000, 36.9k at 2000).
              prefetch: Number(process.env.BENCH_PREFETCH ?? 1000),
              threads,
              paused: true,
            },
          },
          logLevel: 'warn',
        }),
      );
      nodes.push(
        spawnMeasured(CLUSTER_JS, ['--config', config], {
          DATABASE_URL: this.url,
          LOG_LEVEL: 'warn',
        }),
      );
    }
    // A node is ready once its heartbeat row exists (written at the end of its start).
    const deadline = Date.now() + 60000;
    for (;;) {
      const { rows } = await this.check.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM quern.nodes WHERE queues ? $1`,
        [QUEUE],
      );
      if ((rows[0]?.n ?? 0) >= count) break;
      for (const node of nodes) {
        if (node.child.exitCode !== null)
          throw new Error(`a quern node exited at start:\n${node.output()}`);
      }
      if (Date.now() > deadline) throw new Error(`quern nodes not ready:\n${nodes[0]?.output()}`);
      await sleep(50);
    }
    return {
      go: async () => {
        const at = wallMs();
        await this.client.resumeQueue(QUEUE);
        return at;
      },
      halt: async () => {
        // Paused on every node once each heartbeat says so (written every second).
        await this.client.pauseQueue(QUEUE);
        const deadline = Date.now() + 10000;
        for (;;) {
          const { rows } = await this.check.query<{ n: number }>(
            `SELECT count(*)::int AS n FROM quern.nodes WHERE (queues->$1->>'paused')::boolean`,
            [QUEUE],
          );
          if ((rows[0]?.n ?? 0) >= count) return;
          if (Date.now() > deadline) throw new Error('quern nodes did not pause within 10 s');
          await sleep(50);
        }
      },
      latencies: async () => {
        const { rows } = await this.check.query<{ ms: number }>(
          `SELECT (result::text)::float8 - (args->>'t')::float8 AS ms FROM quern.jobs
           WHERE state = 'completed' AND args->>'mode' = 'latency'`,
        );
        return rows.map((r) => r.ms);
      },
      resetProbes: async () => {
        await Promise.all(nodes.map((n) => n.resetProbe()));
      },
      probes: () => Promise.all(nodes.map((n) => n.probe())),
      stop: async () => {
        const readings = await Promise.all(nodes.map((n) => n.probe()));
        const codes = await Promise.all(nodes.map((n) => n.stop()));
        if (codes.some((c) => c !== 0))
          throw new Error(`a quern node exited with ${codes.join(',')}:\n${nodes[0]?.output()}`);
        return readings;
      },
    };
  }

  serverPids(): Promise<number[]> {
    return backendPids(this.check, 'bench_quern');
  }

  async allFinished(): Promise<boolean> {
    // Two EXISTS probes, each served by a partial index (jobs_fetch, jobs_executing): cheap
    // enough to poll every few milliseconds without loading the database being measured.
    const { rows } = await this.check.query<{ busy: boolean }>(
      `SELECT EXISTS (SELECT 1 FROM quern.jobs WHERE state = 'available')
           OR EXISTS (SELECT 1 FROM quern.jobs WHERE state = 'executing') AS busy`,
    );
    return rows[0]?.busy === false;
  }

  async finishedCount(): Promise<number> {
    const { rows } = await this.check.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM quern.jobs WHERE state = 'completed'`,
    );
    return rows[0]?.n ?? 0;
  }

  async close(): Promise<void> {
    await this.client.close().catch(() => undefined);
    await this.pool.end().catch(() => undefined);
    await this.check.end().catch(() => undefined);
  }
}
