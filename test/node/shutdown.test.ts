// Graceful shutdown of a real `node cluster.js` process: SIGTERM lets running jobs finish and
// exits 0; jobs still running when the grace period ends are listed in the log and put back;
// a second signal exits at once.

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { cleanup, createSchema, eventually, type TestSchema } from '../helpers/db.js';
import { nodeConfig, spawnCluster, writeConfig, type SpawnedNode } from '../helpers/node.js';

describe('shutdown of a cluster.js process', function () {
  let db: TestSchema;
  let spawned: SpawnedNode | undefined;
  beforeEach(async function () {
    db = await createSchema(this.currentTest!.title);
  });
  afterEach(async function () {
    if (spawned && spawned.child.exitCode === null && spawned.child.signalCode === null) {
      spawned.child.kill('SIGKILL');
      await spawned.exited;
    }
    spawned = undefined;
    await cleanup(this, db);
  });

  async function start(overrides: Record<string, unknown>): Promise<SpawnedNode> {
    const config = writeConfig(nodeConfig(db.schema, db.url, overrides));
    spawned = spawnCluster(['--config', config], { DATABASE_URL: db.url });
    await spawned.waitForLog(/node .* started/);
    return spawned;
  }

  async function executing(id: number): Promise<void> {
    await eventually(async () => {
      const [row] = await db.query<{ state: string }>('SELECT state FROM jobs WHERE id = $1', [id]);
      return row?.state === 'executing';
    });
  }

  async function row(id: number) {
    const [found] = await db.query<{ state: string; attempt: number; result: unknown }>(
      'SELECT state, attempt, result FROM jobs WHERE id = $1',
      [id],
    );
    return found!;
  }

  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    it(`${signal} lets a running job finish, records it and exits 0`, async function () {
      const node = await start({ shutdownGracePeriod: 10000 });
      const job = await db.client.insert({ worker: 'slow', args: { ms: 1500 } });
      await executing(job.id);
      node.child.kill(signal);
      const exit = await node.exited;
      assert.deepEqual(exit, { code: 0, signal: null }, node.output().slice(-2000));
      assert.deepEqual(await row(job.id), { state: 'completed', attempt: 1, result: 'slept' });
      assert.match(node.output(), /stopping gracefully/);
      assert.match(node.output(), /node stopped/);
    });
  }

  it('stops fetching on SIGTERM: a job inserted while draining is left for another node', async function () {
    const node = await start({ shutdownGracePeriod: 10000 });
    const running = await db.client.insert({ worker: 'slow', args: { ms: 1500 } });
    await executing(running.id);
    node.child.kill('SIGTERM');
    await node.waitForLog(/stopping gracefully/);
    const late = await db.client.insert({ worker: 'ok', args: {} });
    assert.equal((await node.exited).code, 0);
    assert.equal((await row(running.id)).state, 'completed');
    assert.deepEqual(await row(late.id), { state: 'available', attempt: 0, result: null });
  });

  it('lists jobs still running after the grace period and puts them back', async function () {
    const node = await start({ shutdownGracePeriod: 500, cancelGracePeriod: 200 });
    const job = await db.client.insert({ worker: 'stubborn', args: { ms: 60000 } });
    await executing(job.id);
    node.child.kill('SIGTERM');
    const exit = await node.exited;
    assert.equal(exit.code, 0, node.output().slice(-2000));
    const line = await node.waitForLog(/still running after the grace period/);
    const logged = JSON.parse(line) as { jobs: { id: number; worker: string }[] };
    assert.deepEqual(
      logged.jobs.map((j) => [j.id, j.worker]),
      [[job.id, 'stubborn']],
    );
    // Back to available with its attempt given back: it runs again on the next node.
    assert.deepEqual(await row(job.id), { state: 'available', attempt: 0, result: null });
  });

  it('a job stopped at the end of the grace period goes back only once its thread has exited', async function () {
    // Its thread is inside native code (execSync) when the grace period ends: terminating the
    // thread takes effect only when that returns. The job went back to available at once, and
    // another node ran it while the first run still went on.
    this.timeout(30000);
    const file = path.join(mkdtempSync(path.join(tmpdir(), 'quern-native-')), 'runs.txt');
    const first = await start({ node: `${db.schema}-a`, shutdownGracePeriod: 300 });
    const job = await db.client.insert({ worker: 'native', args: { file, seconds: 3 } });
    await executing(job.id);
    const config = writeConfig(nodeConfig(db.schema, db.url, { node: `${db.schema}-b` }));
    const second = spawnCluster(['--config', config], { DATABASE_URL: db.url });
    try {
      await second.waitForLog(/node .* started/);
      first.child.kill('SIGTERM');
      assert.equal((await first.exited).code, 0, first.output().slice(-2000));
      await eventually(async () => (await row(job.id)).state === 'completed', 20000);
      const pids = [first.child.pid, second.child.pid];
      const lines = readFileSync(file, 'utf8')
        .trim()
        .split('\n')
        .map((line) => line.replace(String(pids[0]), 'a').replace(String(pids[1]), 'b'));
      assert.deepEqual(lines, ['start a', 'end a', 'start b', 'end b']);
    } finally {
      second.child.kill('SIGKILL');
      await second.exited;
    }
  });

  it('a second signal exits at once', async function () {
    const node = await start({ shutdownGracePeriod: 60000 });
    const job = await db.client.insert({ worker: 'slow', args: { ms: 60000 } });
    await executing(job.id);
    node.child.kill('SIGTERM');
    await node.waitForLog(/stopping gracefully/);
    const before = Date.now();
    node.child.kill('SIGTERM');
    const exit = await node.exited;
    assert.notEqual(exit.code, 0);
    assert.ok(Date.now() - before < 5000, 'exited at once');
    assert.match(node.output(), /second signal: exiting at once/);
  });
});
