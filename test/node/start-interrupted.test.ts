// SIGTERM or SIGINT while a node is still starting: it stops waiting for its database at once
// (no retry after the signal), releases what it had started (an embedded PostgreSQL included)
// and exits 0, as a supervisor expects of a first signal.

import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { freePort } from '../../src/db/embedded.js';
import { cleanup, createSchema } from '../helpers/db.js';
import { FIXTURE_WORKERS, spawnCluster, writeConfig, type SpawnedNode } from '../helpers/node.js';

describe('a signal while the node is starting', function () {
  this.timeout(60000);
  let node: SpawnedNode | undefined;
  const config = (extra: Record<string, unknown> = {}): string =>
    writeConfig({ workers: FIXTURE_WORKERS, logLevel: 'info', ...extra });

  afterEach(async function () {
    if (node && node.child.exitCode === null && node.child.signalCode === null) {
      node.child.kill('SIGKILL');
      await node.exited;
    }
    node = undefined;
  });

  /** Exit status and ms from the signal to the exit. */
  async function signalAndWait(
    spawned: SpawnedNode,
    signal: NodeJS.Signals,
  ): Promise<{ code: number | null; took: number; after: string }> {
    const sent = Date.now();
    spawned.child.kill(signal);
    const { code } = await spawned.exited;
    const output = spawned.output();
    const at = output.indexOf('signal received');
    assert.ok(at >= 0, output.slice(-3000));
    return { code, took: Date.now() - sent, after: output.slice(at) };
  }

  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    it(`${signal} stops the retries of a database refusing connections and exits 0`, async function () {
      const url = `postgres://postgres@127.0.0.1:${await freePort()}/x`;
      node = spawnCluster(['--config', config()], { DATABASE_URL: url });
      await node.waitForLog(/is not answering; retrying/);
      const { code, took, after } = await signalAndWait(node, signal);
      assert.equal(code, 0, node.output().slice(-3000));
      assert.ok(took < 3000, `exits promptly, took ${took} ms`);
      assert.doesNotMatch(after, /retrying/, 'no retry after the signal');
      assert.match(after, /stopping while starting/);
      assert.match(after, /node stopped/);
    });
  }

  it('SIGTERM cuts a connection attempt a silent server never answers', async function () {
    // Accepts connections and never says a word: the connect would wait for its 5 s timeout.
    const sockets = new Set<net.Socket>();
    let accepted: () => void = () => undefined;
    const connected = new Promise<void>((resolve) => (accepted = resolve));
    const server = net.createServer((socket) => {
      sockets.add(socket);
      socket.on('error', () => undefined);
      accepted();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as net.AddressInfo;
    try {
      node = spawnCluster(['--config', config()], {
        DATABASE_URL: `postgres://postgres@127.0.0.1:${port}/x`,
      });
      await connected;
      const { code, took } = await signalAndWait(node, 'SIGTERM');
      assert.equal(code, 0, node.output().slice(-3000));
      assert.ok(took < 3000, `exits without waiting for the connect timeout, took ${took} ms`);
    } finally {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('SIGTERM while the embedded PostgreSQL starts stops that server too and exits 0', async function () {
    const dataDir = mkdtempSync(path.join(tmpdir(), 'quern-start-interrupted-'));
    try {
      node = spawnCluster(['--config', config({ database: { dataDir } })], {
        DATABASE_URL: '',
        NODE_NAME: 'interrupted',
      });
      await node.waitForLog(/starting an embedded PostgreSQL/);
      const { code, after } = await signalAndWait(node, 'SIGTERM');
      const output = node.output();
      assert.equal(code, 0, output.slice(-3000));
      assert.match(output, /embedded PostgreSQL ready/, 'the server was started');
      assert.doesNotMatch(output, /node interrupted started/, 'the node itself never started');
      assert.match(after, /node stopped/);
      // Stopped: its pid file is gone and its port refuses connections.
      assert.ok(existsSync(path.join(dataDir, 'PG_VERSION')), 'the data folder was created');
      assert.ok(!existsSync(path.join(dataDir, 'postmaster.pid')), 'the server is stopped');
      const url = readFileSync(path.join(dataDir, 'quern-url'), 'utf8').trim();
      const client = new pg.Client({ connectionString: url });
      await assert.rejects(client.connect(), /ECONNREFUSED/);
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('SIGTERM ends the wait for a node of the same name to go quiet', async function () {
    const db = await createSchema(this.test!.title);
    try {
      // A fresh heartbeat row under the name this node will use: it waits up to heartbeatTimeout
      // (60 s here) to see whether that node is alive.
      await db.client.nodes.heartbeat(db.pool, 'twin', {}, false, new Date());
      const file = config({ schema: db.schema, node: 'twin', heartbeatTimeout: 60000 });
      node = spawnCluster(['--config', file], { DATABASE_URL: db.url });
      await node.waitForLog(/sent a heartbeat recently: waiting/);
      const { code, took, after } = await signalAndWait(node, 'SIGTERM');
      assert.equal(code, 0, node.output().slice(-3000));
      assert.ok(took < 3000, `exits promptly, took ${took} ms`);
      assert.match(after, /node stopped/);
    } finally {
      await cleanup(this, db);
    }
  });
});
