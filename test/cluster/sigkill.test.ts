import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { cleanup, createSchema, eventually, type TestSchema } from '../helpers/db.js';
import { nodeConfig, spawnCluster, writeConfig, type SpawnedNode } from '../helpers/node.js';

// Three real `node cluster.js` processes share 5,000 jobs; one is SIGKILLed in the middle. The
// lifeline of whichever node leads rescues its jobs, and every job completes.
describe('SIGKILL of one of three nodes in the middle of 5,000 jobs', function () {
  let db: TestSchema;
  const nodes: SpawnedNode[] = [];
  beforeEach(async function () {
    db = await createSchema(this.currentTest!.title);
  });
  afterEach(async function () {
    for (const node of nodes) node.child.kill('SIGKILL');
    await Promise.all(nodes.map((n) => n.exited));
    await cleanup(this, db);
  });

  it('after rescue: 5,000 completed, 0 executing, no job with more attempts than failures + 1', async function () {
    this.timeout(120000);
    const total = 5000;
    const file = path.join(mkdtempSync(path.join(tmpdir(), 'quern-sigkill-')), 'runs.txt');
    const config = writeConfig({
      ...nodeConfig(db.schema, db.url),
      logLevel: 'info',
      queues: { default: 10 },
      heartbeatInterval: 200,
      heartbeatTimeout: 1500,
      plugins: { stager: { interval: 200 }, lifeline: { interval: 250 } },
    });
    for (const name of ['node-a', 'node-b', 'node-c']) {
      nodes.push(spawnCluster(['--config', config], { NODE_NAME: name }));
    }
    await Promise.all(
      nodes.map((n, i) => n.waitForLog(new RegExp(`node node-${'abc'[i]} started`))),
    );
    await db.client.insertMany(
      Array.from({ length: total }, () => ({ worker: 'tally', args: { file, ms: 15 } })),
    );
    const states = async (): Promise<Record<string, number>> => {
      const rows = await db.query<{ state: string; n: number }>(
        'SELECT state::text, count(*)::int AS n FROM jobs GROUP BY state',
      );
      return Object.fromEntries(rows.map((r) => [r.state, r.n]));
    };
    await eventually(
      async () => ((await states()).completed ?? 0) >= total / 3,
      60000,
      'a third done',
    );
    const victim = nodes[1]!;
    const [held] = await db.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM jobs WHERE state = 'executing' AND attempted_by[1] = 'node-b'`,
    );
    victim.child.kill('SIGKILL');
    const killed = await victim.exited;
    assert.equal(killed.signal, 'SIGKILL');

    await eventually(
      async () => ((await states()).completed ?? 0) === total,
      90000,
      'all completed',
    );
    const final = await states();
    assert.deepEqual(final, { completed: total });
    const [overcharged] = await db.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM jobs WHERE attempt > jsonb_array_length(errors) + 1`,
    );
    assert.equal(overcharged!.n, 0, 'no job has more attempts than its failures plus one');
    const [rescued] = await db.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM jobs WHERE errors::text LIKE '%rescued: node node-b%'`,
    );
    // node-b always holds jobs under this load: those it held when it died were rescued.
    assert.ok(held!.n > 0, 'node-b was running jobs');
    assert.ok(rescued!.n > 0, `rescued ${rescued!.n} jobs of node-b`);
    const runs = new Map<string, number>();
    for (const line of readFileSync(file, 'utf8').trim().split('\n')) {
      const id = line.split(' ')[0]!;
      runs.set(id, (runs.get(id) ?? 0) + 1);
    }
    assert.equal(runs.size, total);
    const twice = [...runs.values()].filter((n) => n > 1).length;
    assert.ok(twice <= rescued!.n, `only rescued jobs ran again (${twice} of ${rescued!.n})`);
    for (const node of [nodes[0]!, nodes[2]!]) assert.equal(node.child.exitCode, null);
  });
});
