// A node's own embedded PostgreSQL that dies under it (here: SIGKILL) is started again on the
// same port by the node, which carries on: jobs inserted afterwards run, and SIGTERM still
// exits 0. This file uses no shared server.

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { eventually } from '../helpers/db.js';
import { FIXTURE_WORKERS, runCli, spawnCluster, writeConfig } from '../helpers/node.js';
import { processAlive } from '../../src/db/embedded.js';

describe('embedded PostgreSQL killed under a running node', function () {
  this.timeout(120000);
  let dataDir: string;

  before(function () {
    dataDir = mkdtempSync(path.join(tmpdir(), 'quern-embedded-restart-'));
  });
  after(function () {
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('is started again by the node, which keeps running jobs and exits 0 on SIGTERM', async function () {
    const config = writeConfig({
      schema: 'restart',
      database: { dataDir },
      workers: FIXTURE_WORKERS,
      queues: { default: 5 },
      heartbeatInterval: 200,
      logLevel: 'info',
    });
    const env = { DATABASE_URL: '', NODE_NAME: 'embedded-restart' };
    const node = spawnCluster(['--config', config], env);
    try {
      await node.waitForLog(/node embedded-restart up/);
      const url = readFileSync(path.join(dataDir, 'quern-url'), 'utf8').trim();
      const pid = Number(readFileSync(path.join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
      process.kill(pid, 'SIGKILL');
      await eventually(() => Promise.resolve(!processAlive(pid)), 10000, 'the server to die');
      await node.waitForLog(/embedded PostgreSQL running again/, 30000);
      assert.equal(readFileSync(path.join(dataDir, 'quern-url'), 'utf8').trim(), url, 'same URL');

      const inserted = await runCli(['insert', 'ok', '{"value":"after"}', '--config', config], env);
      assert.equal(inserted.code, 0, inserted.stderr);
      const id = inserted.stdout.trim();
      await eventually(
        async () => {
          const shown = await runCli(['job', 'show', id, '--config', config], env);
          return shown.code === 0 && /"state": "completed"/.test(shown.stdout);
        },
        30000,
        `job ${id} to complete after the restart`,
      );
      node.child.kill('SIGTERM');
      const { code } = await node.exited;
      assert.equal(code, 0, node.output().slice(-2000));
    } finally {
      if (node.child.exitCode === null && node.child.signalCode === null)
        node.child.kill('SIGKILL');
      const pidFile = path.join(dataDir, 'postmaster.pid');
      try {
        const pid = Number(readFileSync(pidFile, 'utf8').split('\n')[0]);
        if (processAlive(pid)) process.kill(pid, 'SIGINT');
      } catch {
        // no server left
      }
    }
  });
});
