// The zero-setup start and the smoke subset on the embedded PostgreSQL (the newest supported
// version): with no DATABASE_URL and no database.url, `node cluster.js` starts its own server in
// database.dataDir, prints its URL, runs a job inserted through the CLI and stops the server on
// SIGTERM; migrations go down and up against it; a server orphaned by a SIGKILLed node is
// recovered by the next start. This file uses no shared server at all.

import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { eventually } from '../helpers/db.js';
import {
  FIXTURE_WORKERS,
  runCli,
  spawnCluster,
  writeConfig,
  type SpawnedNode,
} from '../helpers/node.js';
import { processAlive } from '../../src/db/embedded.js';

function postmasterPid(dataDir: string): number | null {
  const file = path.join(dataDir, 'postmaster.pid');
  if (!existsSync(file)) return null;
  return Number(readFileSync(file, 'utf8').split('\n')[0]);
}

describe('embedded PostgreSQL (no DATABASE_URL)', function () {
  this.timeout(120000);
  let dataDir: string;
  let config: string;
  const nodes: SpawnedNode[] = [];
  const env = { DATABASE_URL: '', NODE_NAME: 'embedded-smoke' };

  before(function () {
    dataDir = mkdtempSync(path.join(tmpdir(), 'quern-embedded-'));
    config = writeConfig({
      schema: 'smoke',
      database: { dataDir },
      workers: FIXTURE_WORKERS,
      queues: { default: 5 },
      heartbeatInterval: 200,
      shutdownGracePeriod: 5000,
      logLevel: 'info',
    });
  });
  after(async function () {
    for (const node of nodes) {
      if (node.child.exitCode === null && node.child.signalCode === null) {
        node.child.kill('SIGKILL');
        await node.exited;
      }
    }
    // A server a failed test left running must not outlive the suite.
    const pid = postmasterPid(dataDir);
    if (pid && processAlive(pid)) process.kill(pid, 'SIGINT');
    await eventually(
      () => Promise.resolve(!pid || !processAlive(pid)),
      15000,
      'the server to stop',
    );
    rmSync(dataDir, { recursive: true, force: true });
  });

  function start(): SpawnedNode {
    const node = spawnCluster(['--config', config], env);
    nodes.push(node);
    return node;
  }

  async function withDatabase<T>(url: string, body: (c: pg.Client) => Promise<T>): Promise<T> {
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      return await body(client);
    } finally {
      await client.end();
    }
  }

  async function insertAndWait(url: string, value: string): Promise<Record<string, unknown>> {
    const inserted = await runCli(
      ['insert', 'ok', JSON.stringify({ value }), '--config', config],
      env,
    );
    assert.equal(inserted.code, 0, inserted.stderr);
    const id = Number(inserted.stdout);
    return eventually(
      () =>
        withDatabase(url, async (c) => {
          const { rows } = await c.query('SELECT * FROM smoke.jobs WHERE id = $1', [id]);
          const row = rows[0] as Record<string, unknown> | undefined;
          return row?.state === 'completed' ? row : null;
        }),
      30000,
      `job ${id} to complete`,
    );
  }

  let url = '';

  it('starts an embedded server, prints its URL and runs a job inserted through the CLI', async function () {
    const node = start();
    const line = await node.waitForLog(/embedded PostgreSQL ready/, 60000);
    url = (JSON.parse(line) as { url: string }).url;
    assert.match(url, /^postgres:\/\/[^@]+@127\.0\.0\.1:\d+\/postgres$/);
    assert.equal(readFileSync(path.join(dataDir, 'quern-url'), 'utf8').trim(), url);
    await node.waitForLog(/node .* started/);
    const version = await withDatabase(url, async (c) => {
      const { rows } = await c.query<{ server_version_num: string }>('SHOW server_version_num');
      return Number(rows[0]!.server_version_num);
    });
    assert.ok(version >= 180000, `embedded server is PostgreSQL 18+, got ${version}`);

    const row = await insertAndWait(url, 'embedded');
    assert.equal(row.result, 'embedded');
    assert.deepEqual((row.attempted_by as string[])[0], 'embedded-smoke');

    // A job still running at SIGTERM finishes and is recorded: the server is stopped last.
    const slow = await runCli(['insert', 'slow', '{"ms":1000}', '--config', config], env);
    const slowId = Number(slow.stdout);
    await eventually(
      () =>
        withDatabase(url, async (c) => {
          const { rows } = await c.query('SELECT state FROM smoke.jobs WHERE id = $1', [slowId]);
          return (rows[0] as { state?: string } | undefined)?.state === 'executing';
        }),
      30000,
      'the slow job to run',
    );
    const pid = postmasterPid(dataDir)!;
    assert.ok(processAlive(pid));
    node.child.kill('SIGTERM');
    assert.deepEqual(await node.exited, { code: 0, signal: null }, node.output().slice(-2000));
    assert.equal(processAlive(pid), false, 'the embedded server was stopped with the node');
    assert.equal(postmasterPid(dataDir), null);
    const shown = await runCli(['job', 'show', String(slowId), '--config', config], env);
    assert.equal(shown.code, 0, shown.stderr);
    assert.equal((JSON.parse(shown.stdout) as { state: string }).state, 'completed');
  });

  it('migrates down and up against the embedded server (a CLI with no node running)', async function () {
    const down = await runCli(['migrate', '--down', '1', '--config', config], env);
    assert.equal(down.code, 0, down.stderr);
    assert.match(down.stdout, /schema smoke: version \d+ -> 1/);
    const up = await runCli(['migrate', '--config', config], env);
    assert.equal(up.code, 0, up.stderr);
    assert.match(up.stdout, /schema smoke: version 1 -> \d+/);
    // The CLI's temporary server is gone again.
    assert.equal(postmasterPid(dataDir), null);
  });

  it('recovers the server left running by a SIGKILLed node', async function () {
    const killed = start();
    const before = (
      JSON.parse(await killed.waitForLog(/embedded PostgreSQL ready/, 60000)) as { url: string }
    ).url;
    await killed.waitForLog(/node .* started/, 60000);
    const orphan = postmasterPid(dataDir)!;
    // While its node lives, the server is not an orphan: a second node refuses to touch it.
    const second = start();
    const refused = await second.exited;
    assert.equal(refused.code, 1, second.output().slice(-2000));
    assert.match(
      second.output(),
      /error: the embedded PostgreSQL in .* is in use by another process/,
    );
    // Said as a configuration error, not as a crash with a stack trace.
    assert.doesNotMatch(second.output(), /error: Error:|at recoverOrphan/);
    assert.ok(processAlive(orphan));
    killed.child.kill('SIGKILL');
    await killed.exited;
    assert.ok(processAlive(orphan), 'the server outlives a SIGKILLed node');

    const node = start();
    await node.waitForLog(/left running by an earlier node/, 60000);
    const line = await node.waitForLog(/embedded PostgreSQL ready/, 60000);
    url = (JSON.parse(line) as { url: string }).url;
    // On the port it had: a node or CLI sharing it through DATABASE_URL=$(cat quern-url) finds
    // it again instead of retrying the old port forever.
    assert.equal(url, before, 'the server is started again on the same port');
    await node.waitForLog(/node .* started/);
    await eventually(() => Promise.resolve(!processAlive(orphan)), 15000, 'the orphan to stop');
    // The jobs of the earlier runs are still there, and new ones run.
    const row = await insertAndWait(url, 'after recovery');
    assert.equal(row.result, 'after recovery');
    const count = await withDatabase(url, async (c) => {
      const { rows } = await c.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM smoke.jobs WHERE state = 'completed'`,
      );
      return rows[0]!.n;
    });
    assert.equal(count, 3);
    node.child.kill('SIGTERM');
    assert.equal((await node.exited).code, 0, node.output().slice(-2000));
    assert.equal(postmasterPid(dataDir), null);
  });
});
