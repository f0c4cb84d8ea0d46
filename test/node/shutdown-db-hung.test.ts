// SIGTERM while the database hangs (connections open, nothing answered): the node cannot write
// anything, and database calls without a timeout would keep it alive forever. The whole
// shutdown is bounded by shutdownGracePeriod + cancelGracePeriod + SHUTDOWN_MARGIN_MS (10 s):
// past that the node logs what was still pending and exits 1. The hang is a TCP proxy to the shared server that stops
// forwarding (the server itself is never touched); a refused connection (the database simply
// away) still exits 0, see shutdown-db-down.test.ts.

import assert from 'node:assert/strict';
import { cleanup, createSchema, eventually, type TestSchema } from '../helpers/db.js';
import { nodeConfig, spawnCluster, writeConfig, type SpawnedNode } from '../helpers/node.js';
import { TcpProxy } from '../helpers/tcp-proxy.js';
import { SHUTDOWN_MARGIN_MS } from '../../src/node/node.js';

describe('shutdown while the database hangs', function () {
  this.timeout(60000);
  let db: TestSchema;
  let proxy: TcpProxy;
  let node: SpawnedNode | undefined;

  beforeEach(async function () {
    db = await createSchema(this.currentTest!.title);
    proxy = new TcpProxy(db.url);
    await proxy.start();
  });
  afterEach(async function () {
    if (node && node.child.exitCode === null && node.child.signalCode === null) {
      node.child.kill('SIGKILL');
      await node.exited;
    }
    node = undefined;
    await proxy.stop();
    await cleanup(this, db);
  });

  it('SIGTERM exits 1 after the hard bound, listing what was still pending', async function () {
    const grace = 1000;
    const cancelGrace = 500;
    const config = writeConfig(
      nodeConfig(db.schema, proxy.url, {
        shutdownGracePeriod: grace,
        cancelGracePeriod: cancelGrace,
        logLevel: 'info',
      }),
    );
    node = spawnCluster(['--config', config], { DATABASE_URL: proxy.url, NODE_NAME: 'hung' });
    await node.waitForLog(/node hung started/);
    const job = await db.client.insert({ worker: 'slow', args: { ms: 60000 } });
    await eventually(async () => {
      const [row] = await db.query<{ state: string }>('SELECT state FROM jobs WHERE id = $1', [
        job.id,
      ]);
      return row?.state === 'executing';
    });
    proxy.freeze();
    const sent = Date.now();
    node.child.kill('SIGTERM');
    const exit = await node.exited;
    const took = Date.now() - sent;
    const output = node.output();
    assert.deepEqual(exit, { code: 1, signal: null }, output.slice(-3000));
    const bound = grace + cancelGrace + SHUTDOWN_MARGIN_MS;
    assert.ok(took >= bound - 100, `it waits for the bound (${bound} ms), took ${took} ms`);
    assert.ok(took < bound + 5000, `it exits soon after the bound (${bound} ms), took ${took} ms`);
    const line = output.split('\n').find((l) => l.includes('shutdown did not finish'));
    assert.ok(line, output.slice(-3000));
    const logged = JSON.parse(line) as { level: number; pending: string[]; boundMs: number };
    assert.equal(logged.level, 50, 'an error');
    assert.equal(logged.boundMs, bound);
    assert.ok(logged.pending.length > 0, line);
    assert.ok(
      !logged.pending.some((p) => p.includes('running')),
      `the job's thread was stopped although the database hangs: ${line}`,
    );
  });
});
