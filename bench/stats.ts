// What historic metrics cost against a long retained history: seeds N finished jobs spread over
// a day (plus waiting ones) in a scratch schema, then times quern.stats(), its two statements,
// and the Prometheus depth query, with and without the finish-time indexes of migration 003.
//
//   npm run build && node dist/bench/stats.js [rows=1000000]
// Uses DATABASE_URL, else 127.0.0.1:5432/test. Seeding is raw SQL, as fixtures are in tests.

import pg from 'pg';
import { Quern } from '../src/client.js';
import { StatsQueries } from '../src/db/queries/stats.js';

const rows = Number(process.argv[2] ?? 1_000_000);
const url = process.env.DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/test';
const schema = `bench_stats_${process.pid}`;

async function median(runs: number, fn: () => Promise<unknown>): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const started = process.hrtime.bigint();
    await fn();
    times.push(Number(process.hrtime.bigint() - started) / 1e6);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)]!;
}

async function main(): Promise<void> {
  const pool = new pg.Pool({ connectionString: url, max: 4 });
  const quern = new Quern({ pool, schema });
  try {
    await quern.migrate();
    const t = `"${schema}".jobs`;
    const seeded = Date.now();
    // One job finishing every (86400 / rows) seconds over the last day: 20 workers, 5 queues,
    // 1 in 50 discarded; plus 1% waiting.
    await pool.query(
      `INSERT INTO ${t} (state, queue, worker, attempt, max_attempts, scheduled_at, attempted_at, completed_at, discarded_at)
       SELECT CASE WHEN i % 50 = 0 THEN 'discarded' ELSE 'completed' END::"${schema}".job_state,
              'q' || (i % 5), 'w' || (i % 20), 1, 1, at - interval '40 ms', at,
              CASE WHEN i % 50 = 0 THEN NULL ELSE at + random() * interval '200 ms' END,
              CASE WHEN i % 50 = 0 THEN at + interval '5 ms' END
       FROM (SELECT i, now() - i * (interval '1 day' / $1) AS at FROM generate_series(1, $1) i) s`,
      [rows],
    );
    await pool.query(
      `INSERT INTO ${t} (state, queue, worker) SELECT 'available', 'q' || (i % 5), 'w' || (i % 20)
       FROM generate_series(1, $1) i`,
      [Math.ceil(rows / 100)],
    );
    await pool.query(`VACUUM ANALYZE ${t}`);
    process.stdout.write(
      `seeded ${rows.toLocaleString('en-US')} finished jobs in ${Date.now() - seeded} ms\n`,
    );

    const queries = new StatsQueries(schema);
    const report = async (label: string): Promise<void> => {
      const recent = await median(5, () => queries.recent(pool));
      const counts = await median(5, () => queries.stateCounts(pool));
      const depth = await median(5, () => queries.depth(pool));
      const stats = await median(5, () => quern.stats());
      process.stdout.write(
        `${label}: recent (last minute/hour, p50/p95) ${recent.toFixed(1)} ms, ` +
          `counts by state ${counts.toFixed(1)} ms, stats() ${stats.toFixed(1)} ms, ` +
          `scrape depth ${depth.toFixed(1)} ms\n`,
      );
    };
    await report('with the 003 indexes');
    await pool.query(`DROP INDEX "${schema}".jobs_completed_at, "${schema}".jobs_discarded_at`);
    await report('without them       ');
  } finally {
    await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await pool.end();
  }
}

await main();
