// SIGTERM while the database is away: the node must still exit 0, within its grace periods,
// without retrying forever on a pool it has ended (outcomes it could not write stay executing
// and are rescued later). Uses a private PostgreSQL; the shared server is never touched.

import assert from 'node:assert/strict';
import { FIXTURE_WORKERS, spawnCluster, writeConfig } from '../helpers/node.js';
import { PrivatePostgres } from '../helpers/private-pg.js';

describe('shutdown while the database is down', function () {
  this.timeout(120000);
  let server: PrivatePostgres;

  before(async function () {
    server = new PrivatePostgres();
    await server.start();
    await server.migrate('down_at_stop');
  });
  after(async function () {
    await server.destroy();
  });

  it('SIGTERM exits 0 although the database is gone', async function () {
    const config = writeConfig({
      schema: 'down_at_stop',
      workers: FIXTURE_WORKERS,
      queues: { default: 5 },
      heartbeatInterval: 200,
      shutdownGracePeriod: 2000,
      logLevel: 'info',
    });
    const node = spawnCluster(['--config', config], {
      DATABASE_URL: server.url,
      NODE_NAME: 'down-at-stop',
    });
    try {
      await node.waitForLog(/node down-at-stop up/);
      await server.stop();
      await node.waitForLog(/circuit database tripped|notification connection/, 30000);
      const sent = Date.now();
      node.child.kill('SIGTERM');
      const { code } = await node.exited;
      assert.equal(code, 0, node.output().slice(-3000));
      assert.ok(Date.now() - sent < 30000, 'it exits within its grace periods');
      assert.doesNotMatch(node.output(), /Cannot use a pool after calling end/);
    } finally {
      if (node.child.exitCode === null && node.child.signalCode === null)
        node.child.kill('SIGKILL');
    }
  });
});
