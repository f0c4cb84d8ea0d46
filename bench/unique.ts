// What unique inserts cost next to plain ones: one insert at a time (new keys, and duplicates
// of one key), batches of 1000 with insertMany, 8 concurrent inserters of one key, and the size
// of the jobs_unique index per job. Prints figures; asserts nothing.
//
//   npm run build && node dist/bench/unique.js [singles=2000]
// Uses DATABASE_URL, else 127.0.0.1:5432/test, in a scratch schema it drops afterwards.

import pg from 'pg';
import { Quern } from '../src/client.js';

const singles = Number(process.argv[2] ?? 2000);
const url = process.env.DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/test';
const schema = `bench_unique_${process.pid}`;

async function timed(label: string, count: number, fn: () => Promise<unknown>): Promise<void> {
  const started = process.hrtime.bigint();
  await fn();
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  process.stdout.write(
    `${label.padEnd(52)} ${String(Math.round((count / ms) * 1000)).padStart(7)} jobs/s  ${(ms / count).toFixed(3).padStart(7)} ms/job\n`,
  );
}

async function main(): Promise<void> {
  const pool = new pg.Pool({ connectionString: url, max: 9 });
  const quern = new Quern({ pool, schema });
  try {
    await quern.migrate();
    const unique = { period: 'infinity' as const };
    let n = 0;
    await timed(`plain insert, one at a time (${singles})`, singles, async () => {
      for (let i = 0; i < singles; i++) await quern.insert({ worker: 'w', args: { i: n++ } });
    });
    await timed(`unique insert, new key each time (${singles})`, singles, async () => {
      for (let i = 0; i < singles; i++)
        await quern.insert({ worker: 'w', args: { i: n++ }, unique });
    });
    await timed(`unique insert, duplicate of one key (${singles})`, singles, async () => {
      for (let i = 0; i < singles; i++)
        await quern.insert({ worker: 'w', args: { i: 'same' }, unique });
    });
    const batch = (u: boolean) =>
      Array.from({ length: 1000 }, () => ({
        worker: 'w',
        args: { i: n++ },
        ...(u ? { unique } : {}),
      }));
    await timed('plain insertMany, 10 batches of 1000', 10_000, async () => {
      for (let b = 0; b < 10; b++) await quern.insertMany(batch(false));
    });
    await timed('unique insertMany, 10 batches of 1000 new keys', 10_000, async () => {
      for (let b = 0; b < 10; b++) await quern.insertMany(batch(true));
    });
    const perWorker = Math.ceil(singles / 8);
    await timed(`unique insert of one key, 8 concurrent (${perWorker * 8})`, perWorker * 8, () =>
      Promise.all(
        Array.from({ length: 8 }, async () => {
          for (let i = 0; i < perWorker; i++)
            await quern.insert({ worker: 'w', args: { i: 'contended' }, unique });
        }),
      ),
    );
    await pool.query(`VACUUM ANALYZE "${schema}".jobs`);
    const { rows } = await pool.query<{ jobs: number; unique_jobs: number; bytes: string }>(
      `SELECT (SELECT count(*)::int FROM "${schema}".jobs) AS jobs,
              (SELECT count(*)::int FROM "${schema}".jobs WHERE unique_key IS NOT NULL) AS unique_jobs,
              pg_relation_size('"${schema}".jobs_unique') AS bytes`,
    );
    const { jobs, unique_jobs: uniqueJobs, bytes } = rows[0]!;
    process.stdout.write(
      `jobs_unique: ${(Number(bytes) / 1024).toFixed(0)} kB for ${uniqueJobs} unique of ${jobs} jobs (${(Number(bytes) / uniqueJobs).toFixed(0)} bytes per unique job)\n`,
    );
  } finally {
    await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`).catch(() => undefined);
    await pool.end();
  }
}

await main();
