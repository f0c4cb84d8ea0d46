// `npm run bench:reliability [-- --jobs N --nodes 3 --seed S]`: the reliability run. N jobs on
// real `node cluster.js` nodes sharing a private PostgreSQL, while nodes are SIGKILLed (and
// restarted) and the database is stopped and started again, at random moments. Each run of a job
// is logged by the worker (start and end, per process), so the script can tell: jobs inserted,
// completed, lost (not completed at the end), run twice at the same time (two runs of one job
// whose intervals overlap), and the longest recovery after a fault. A script, not a test: it
// prints figures and asserts nothing.

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { Quern } from '../src/client.js';
import { freePort, startEmbedded, type EmbeddedDatabase } from '../src/db/embedded.js';
import { migrateUp } from '../src/db/migrate.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CLUSTER_JS = path.join(ROOT, 'cluster.js');

const { values: flags } = parseArgs({
  options: {
    jobs: { type: 'string', default: '10000' },
    nodes: { type: 'string', default: '3' },
    seed: { type: 'string' },
    'max-seconds': { type: 'string', default: '300' },
  },
});
const JOBS = Number(flags.jobs);
const NODES = Number(flags.nodes);
const MAX_MS = Number(flags['max-seconds']) * 1000;

// A small seeded generator, so a run that found something can be replayed with --seed.
let seed = flags.seed ? Number(flags.seed) : Math.floor(Math.random() * 2 ** 31);
const SEED = seed;
function random(): number {
  seed = (seed * 1103515245 + 12345) % 2 ** 31;
  return seed / 2 ** 31;
}
const between = (low: number, high: number): number => low + (high - low) * random();
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

// Every TICK_MS while a run lasts, the worker logs that it is still running: a run stopped
// without an end line (its process SIGKILLed, or its thread terminated while the database was
// away, in a process that lives on) ended at its last tick. Read as running until the process
// died, such a run in a live process lasted until the end of the script, and the script counted
// its rescued rerun as "run twice at the same time" (1 in a run of 4,000 jobs) when the two never
// overlapped. The end of a run is logged also when its node stops it (the abort signal: a fence
// during a database restart, a shutdown): such runs once left no end either (7 and 14 of 5,000
// counted twice at the same time in two runs, none real).
const TICK_MS = 10;
const WORKER = `// Logs the start, a tick every ${TICK_MS} ms and the end of each run, per process.
import { appendFileSync } from 'node:fs';
export default {
  name: 'reliable',
  maxAttempts: 25,
  backoff: () => 1,
  async perform(job, signal) {
    const file = job.args.dir + '/runs-' + process.pid + '.log';
    appendFileSync(file, 'S ' + job.id + ' ' + Date.now() + '\\n');
    const tick = setInterval(() => appendFileSync(file, 'T ' + job.id + ' ' + Date.now() + '\\n'), ${TICK_MS});
    try {
      await new Promise((resolve, reject) => {
        const timer = setTimeout(resolve, job.args.ms);
        signal.addEventListener('abort', () => {
          clearTimeout(timer);
          reject(signal.reason);
        });
      });
    } finally {
      clearInterval(tick);
      appendFileSync(file, 'E ' + job.id + ' ' + Date.now() + '\\n');
    }
    return 'ok';
  },
};
`;

interface NodeProcess {
  name: string;
  child: ChildProcess | null;
}

const work = mkdtempSync(path.join(tmpdir(), 'quern-reliability-'));
const runsDir = path.join(work, 'runs');
const workersDir = path.join(work, 'workers');
const dataDir = path.join(work, 'pg');
mkdirSync(runsDir, { recursive: true });
mkdirSync(workersDir, { recursive: true });
writeFileSync(path.join(workersDir, 'reliable.js'), WORKER);

/** pid → when that process died (its unfinished runs ended then). */
const deaths = new Map<number, number>();
let database: EmbeddedDatabase | null = null;
const port = await freePort();

async function startDatabase(): Promise<void> {
  database = await startEmbedded(dataDir, { port });
}

async function stopDatabase(): Promise<void> {
  await database?.stop();
  database = null;
}

await startDatabase();
const url = database!.url;
{
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  await migrateUp(client, 'quern');
  await client.end();
}

const configFile = path.join(work, 'cluster.config.json');
writeFileSync(
  configFile,
  JSON.stringify({
    database: { url },
    workers: workersDir,
    queues: { default: 10 },
    heartbeatInterval: 250,
    heartbeatTimeout: 2000,
    shutdownGracePeriod: 2000,
    logLevel: 'warn',
    breaker: { failures: 3, windowMs: 5000, openMs: 250 },
    // No pruning: the run counts completed rows at the end.
    plugins: { stager: { interval: 250 }, lifeline: { interval: 250 }, pruner: false },
  }),
);

const nodes: NodeProcess[] = Array.from({ length: NODES }, (_, i) => ({
  name: `node-${i + 1}`,
  child: null,
}));

function startNode(node: NodeProcess): void {
  const child = spawn(process.execPath, [CLUSTER_JS, '--config', configFile], {
    cwd: ROOT,
    env: { ...process.env, DATABASE_URL: '', NODE_NAME: node.name, LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'ignore', 'ignore'],
  });
  child.on('exit', () => {
    if (child.pid) deaths.set(child.pid, Date.now());
  });
  node.child = child;
}

async function killNode(node: NodeProcess): Promise<void> {
  const child = node.child;
  if (!child || child.exitCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGKILL');
  await exited;
  node.child = null;
}

nodes.forEach(startNode);

const pool = new pg.Pool({ connectionString: url, max: 3 });
pool.on('error', () => undefined);
const quern = new Quern({ pool, schema: 'quern' });

async function withRetry<T>(fn: () => Promise<T>): Promise<T> {
  for (;;) {
    try {
      return await fn();
    } catch {
      await sleep(200);
    }
  }
}

async function counts(): Promise<Record<string, number>> {
  const { rows } = await pool.query<{ state: string; n: number }>(
    'SELECT state::text, count(*)::int AS n FROM quern.jobs GROUP BY state',
  );
  return Object.fromEntries(rows.map((r) => [r.state, r.n]));
}

// Insert in batches; the database may be restarted meanwhile, so each batch is retried (one
// statement each: a batch is in, or not at all).
const started = Date.now();
let inserted = 0;
const inserting = (async () => {
  while (inserted < JOBS) {
    const size = Math.min(500, JOBS - inserted);
    const batch = Array.from({ length: size }, () => ({
      worker: 'reliable',
      // Mostly short jobs, and a few long ones that live through faults.
      args: { dir: runsDir, ms: Math.round(random() < 0.03 ? between(500, 3000) : between(5, 40)) },
    }));
    await withRetry(() => quern.insertMany(batch));
    inserted += size;
    await sleep(50);
  }
})();

// Faults at random moments until every job is done (or the time is up).
const recoveries: { fault: string; ms: number }[] = [];
const faults: string[] = [];
let done = false;

async function completedCount(): Promise<number> {
  return withRetry(async () => (await counts()).completed ?? 0);
}

/** Time until the cluster completes jobs again after a fault ends. */
async function timeToProgress(since: number): Promise<number> {
  const before = await completedCount();
  for (;;) {
    if ((await completedCount()) > before || done) return Date.now() - since;
    await sleep(25);
  }
}

/** Time until no job is left executing under a process that died. */
async function timeToRescue(node: string, since: number): Promise<number> {
  for (;;) {
    const { rows } = await withRetry(() =>
      pool.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM quern.jobs
         WHERE state = 'executing' AND attempted_by[1] = $1 AND attempted_at < to_timestamp($2 / 1000.0)`,
        [node, since],
      ),
    );
    if (rows[0]!.n === 0 || done) return Date.now() - since;
    await sleep(50);
  }
}

const chaos = (async () => {
  await sleep(1500);
  while (!done && Date.now() - started < MAX_MS) {
    await sleep(between(1000, 3500));
    if (done) break;
    if (random() < 0.35) {
      const down = between(300, 2500);
      faults.push(`database down ${Math.round(down)} ms`);
      await stopDatabase();
      await sleep(down);
      await startDatabase();
      recoveries.push({ fault: 'database restart', ms: await timeToProgress(Date.now()) });
    } else {
      const node = nodes[Math.floor(random() * nodes.length)]!;
      const at = Date.now();
      await killNode(node);
      const restartIn = between(200, 3000);
      faults.push(`SIGKILL ${node.name}, restarted after ${Math.round(restartIn)} ms`);
      const rescue = timeToRescue(node.name, at);
      await sleep(restartIn);
      startNode(node);
      recoveries.push({ fault: `SIGKILL ${node.name}`, ms: await rescue });
    }
  }
})();

// Wait for the end: everything inserted and nothing left to run.
for (;;) {
  await sleep(250);
  if (inserted < JOBS) continue;
  const c = await withRetry(counts);
  const finished = (c.completed ?? 0) + (c.discarded ?? 0) + (c.cancelled ?? 0);
  if (finished >= JOBS || Date.now() - started > MAX_MS) break;
}
done = true;
await inserting;
await chaos;
const elapsed = Date.now() - started;
const final = await withRetry(counts);

// Runs per job from the logs; an unfinished run ended within a tick of its last sign of life,
// and no later than its process's death.
const runs = new Map<number, { start: number; end: number; pid: number }[]>();
for (const file of readdirSync(runsDir)) {
  const pid = Number(/runs-(\d+)\.log/.exec(file)?.[1]);
  const open = new Map<number, { start: number; alive: number }>();
  for (const line of readFileSync(path.join(runsDir, file), 'utf8').split('\n')) {
    const [kind, id, at] = line.split(' ');
    if (!kind || !id || !at) continue;
    const run = open.get(Number(id));
    if (kind === 'S') open.set(Number(id), { start: Number(at), alive: Number(at) });
    else if (kind === 'T') {
      if (run) run.alive = Number(at);
    } else {
      open.delete(Number(id));
      if (run) push(Number(id), { start: run.start, end: Number(at), pid });
    }
  }
  for (const [id, run] of open) {
    const end = Math.min(run.alive + TICK_MS, deaths.get(pid) ?? Infinity);
    push(id, { start: run.start, end, pid });
  }
}
function push(id: number, run: { start: number; end: number; pid: number }): void {
  const list = runs.get(id) ?? [];
  list.push(run);
  runs.set(id, list);
}
let concurrent = 0;
let reruns = 0;
for (const list of runs.values()) {
  if (list.length > 1) reruns++;
  list.sort((a, b) => a.start - b.start);
  for (let i = 1; i < list.length; i++) {
    if (list[i]!.start < list[i - 1]!.end) {
      concurrent++;
      break;
    }
  }
}

for (const node of nodes) await killNode(node);
await pool.end();
await stopDatabase();

const longest = recoveries.reduce((a, b) => (b.ms > a.ms ? b : a), { fault: 'none', ms: 0 });
const lines = [
  `reliability run: ${NODES} nodes, seed ${SEED}, ${Math.round(elapsed / 1000)} s`,
  `faults: ${faults.length} (${faults.filter((f) => f.startsWith('SIGKILL')).length} node kills, ${faults.filter((f) => f.startsWith('database')).length} database restarts)`,
  `jobs inserted:                 ${inserted}`,
  `jobs completed:                ${final.completed ?? 0}`,
  `jobs lost:                     ${inserted - (final.completed ?? 0)}  (final states: ${JSON.stringify(final)})`,
  `jobs run again (at least once): ${reruns}`,
  `jobs run twice at the same time: ${concurrent}`,
  `longest recovery:              ${longest.ms} ms (${longest.fault})`,
  `recoveries (ms):               ${recoveries.map((r) => `${r.fault}=${r.ms}`).join(', ')}`,
];
process.stdout.write(lines.join('\n') + '\n');
process.exit(0);
