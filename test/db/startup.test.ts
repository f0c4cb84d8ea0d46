import assert from 'node:assert/strict';
import { freePort } from '../../src/db/embedded.js';
import { databaseUrl } from '../helpers/db.js';
import { nodeConfig, runCli, spawnCluster, writeConfig } from '../helpers/node.js';
import { PrivatePostgres } from '../helpers/private-pg.js';

// `node cluster.js` against a database that is not there, refuses us, or does not exist.
describe('start-up against a bad database', function () {
  let server: PrivatePostgres | undefined;
  after(async function () {
    this.timeout(30000);
    await server?.destroy();
  });

  function config(url: string): string {
    return writeConfig({ ...nodeConfig('quern_startup', url), logLevel: 'info' });
  }

  it('unreachable: retries with backoff and a clear message, no crash loop, and starts once the server is up', async function () {
    this.timeout(60000);
    server = new PrivatePostgres();
    server.port = await freePort();
    const url = `postgres://postgres:postgres@127.0.0.1:${server.port}/postgres`;
    const node = spawnCluster(['--config', config(url)], { NODE_NAME: 'patient' });
    try {
      await node.waitForLog(/is not answering; retrying/);
      await node.waitForLog(/"attempt":3.*is not answering; retrying/, 20000);
      const delays = [...node.output().matchAll(/"retryInMs":(\d+)/g)].map((m) => Number(m[1]));
      assert.ok(delays.length >= 3);
      assert.ok(delays[2]! > delays[0]!, `backoff grows: ${delays.join(', ')}`);
      assert.match(node.output(), /127\.0\.0\.1:\d+\/postgres is not answering/);
      assert.doesNotMatch(node.output(), /postgres:postgres@/, 'the password is not logged');
      assert.equal(node.child.exitCode, null, 'still waiting, not exited');
      await server.start();
      await node.waitForLog(/node patient started/, 30000);
    } finally {
      node.child.kill('SIGTERM');
      await node.exited;
    }
  });

  it('wrong credentials: a clear error and exit code 1', async function () {
    this.timeout(60000);
    if (!server) {
      server = new PrivatePostgres();
      await server.start();
    }
    const url = `postgres://postgres:not-the-password@127.0.0.1:${server.port}/postgres`;
    const result = await runCli(['--config', config(url)]);
    assert.equal(result.code, 1, result.stderr);
    assert.match(
      result.stderr,
      /cannot use postgres:\/\/postgres:\*\*\*@127\.0\.0\.1:\d+\/postgres: wrong password/,
    );
    assert.doesNotMatch(result.stderr, /not-the-password/);
  });

  it('a database that does not exist: a clear error and exit code 1', async function () {
    const url = new URL(databaseUrl());
    url.pathname = '/quern_no_such_database';
    const result = await runCli(['--config', config(url.toString())]);
    assert.equal(result.code, 1, result.stderr);
    assert.match(result.stderr, /quern_no_such_database: database does not exist/);
  });
});
