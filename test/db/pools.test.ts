import assert from 'node:assert/strict';
import net from 'node:net';
import type pg from 'pg';
import sinon from 'sinon';
import { isConnectionError } from '../../src/db/breaker.js';
import { createFetchPool, createPool, NO_TIME_LIMIT } from '../../src/db/connect.js';
import { withTransaction } from '../../src/db/transaction.js';
import { databaseUrl } from '../helpers/db.js';
import { TcpProxy } from '../helpers/tcp-proxy.js';

// The node's pools: a new connection is given up after 5 s, a statement waiting for a busy
// connection of a full pool is not.
describe("the node's pools", function () {
  let pool: pg.Pool | undefined;
  let clock: sinon.SinonFakeTimers | undefined;
  afterEach(async function () {
    clock?.restore();
    clock = undefined;
    await pool?.end().catch(() => undefined);
    pool = undefined;
  });

  for (const [kind, create] of [
    ['node pool', createPool],
    ['fetch pool', createFetchPool],
  ] as const) {
    it(`a statement waiting for a busy connection of a full ${kind} waits for it, and does not fail as a lost connection`, async function () {
      // pg-pool's connectionTimeoutMillis (5 s, set in 4288ccb for new connections) also bounds
      // the wait for a busy connection: the statement failed with 'timeout exceeded when trying
      // to connect', counted by the breaker as a lost connection, while the database answered.
      pool = create(databaseUrl(), 1, 'quern-pools-test');
      const busy = await pool.connect();
      // Only pg-pool's timer of the wait is faked: the connection is already open.
      clock = sinon.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
      const waiting = pool.query<{ one: number }>('SELECT 1 AS one').then(
        (result) => result.rows[0]!.one,
        (error: unknown) => error,
      );
      clock.tick(60_000);
      clock.restore();
      clock = undefined;
      busy.release();
      const outcome = await waiting;
      assert.equal(
        outcome,
        1,
        `the waiting statement ran once the connection was free (got ${String(outcome)})`,
      );
    });
  }

  it('a new connection to a server that accepts and never answers is given up, as a lost connection', async function () {
    const sockets: net.Socket[] = [];
    const silent = net.createServer((socket) => sockets.push(socket));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const { port } = silent.address() as net.AddressInfo;
    try {
      pool = createPool(`postgres://postgres@127.0.0.1:${port}/none`, 1, 'quern-pools-test');
      const started = Date.now();
      const error = await pool.query('SELECT 1').then(
        () => null,
        (e: unknown) => e as Error,
      );
      assert.ok(error, 'the connect failed');
      assert.ok(isConnectionError(error), `a connection error: ${error.message}`);
      assert.ok(Date.now() - started < 15_000, 'within its bound');
    } finally {
      for (const socket of sockets) socket.destroy();
      silent.close();
    }
  });

  it('a statement unanswered past the limit fails as a lost connection and its connection is closed; one marked NO_TIME_LIMIT runs on', async function () {
    // The limit is watched by one timer per pool, not pg's query_timeout (a timer per statement,
    // which cost the node 1.5-2 ms of CPU per 1,000 jobs): a slow statement stands in for a hung
    // connection here. The pruner's deletes carry NO_TIME_LIMIT.
    pool = createPool(databaseUrl(), 2, 'quern-pools-test', 300);
    const error = await pool.query('SELECT pg_sleep(2)').then(
      () => null,
      (e: unknown) => e as Error,
    );
    assert.match(String(error), /Query read timeout/);
    assert.ok(isConnectionError(error), 'counted as a lost connection');
    const slow = await pool.query<{ done: boolean }>(
      `${NO_TIME_LIMIT} SELECT true AS done FROM pg_sleep(1)`,
    );
    assert.equal(slow.rows[0]!.done, true);
    const after = await pool.query<{ one: number }>('SELECT 1 AS one');
    assert.equal(after.rows[0]!.one, 1, 'the pool goes on with a new connection');
  });

  it('a transaction whose statement is given up on a hung connection gives up at once, without a ROLLBACK behind it', async function () {
    // The ROLLBACK was queued behind the statement given up, on the same hung connection, and
    // waited its own query_timeout before the connection was closed: twice the bound (two
    // minutes for a node joining or the cron's insert on a connection that hangs for good).
    const proxy = new TcpProxy(databaseUrl());
    await proxy.start();
    try {
      pool = createPool(proxy.url, 1, 'quern-pools-test', 3000);
      await pool.query('SELECT 1');
      proxy.freeze();
      const started = Date.now();
      const error = await withTransaction(pool, (client) => client.query('SELECT 1')).then(
        () => null,
        (e: unknown) => e as Error,
      );
      const tookMs = Date.now() - started;
      assert.match(String(error), /Query read timeout/);
      assert.ok(tookMs < 5000, `gave up after ${tookMs} ms (the bound is 3000)`);
    } finally {
      await pool?.end().catch(() => undefined);
      pool = undefined;
      await proxy.stop();
    }
  });
});
