// Bad input found by trying the project as a newcomer: each case once broke a node or gave a
// raw error, and must now be refused at its edge with a message naming the problem.

import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pino from 'pino';
import sinon from 'sinon';
import { loadConfig } from '../../src/config/load.js';
import { ConfigError } from '../../src/config/validate.js';
import { startEmbedded } from '../../src/db/embedded.js';
import { migrateDown } from '../../src/db/migrate.js';
import { InsertError } from '../../src/jobs/insert.js';
import { QuernNode } from '../../src/node/node.js';
import { cleanup, createSchema, eventually, type TestSchema } from '../helpers/db.js';
import { nodeConfig, runCli, startNode, writeConfig } from '../helpers/node.js';

describe('edges that once broke a node', function () {
  let db: TestSchema;
  let node: QuernNode | undefined;
  beforeEach(async function () {
    db = await createSchema(this.currentTest!.title);
  });
  afterEach(async function () {
    await node?.stop();
    node = undefined;
    await cleanup(this, db);
  });

  it('refuses a runtime queue limit above the maximum, and a saved one never stops a node', async function () {
    await assert.rejects(db.client.startQueue('reports', { limit: 20000 }), ConfigError);
    await assert.rejects(db.client.scaleQueue('default', 1e9), /limit/);
    await assert.rejects(db.client.pauseQueue('default', { node: '' }), /node/);
    // A row written by hand (or by an older client) with an impossible limit.
    await db.query(
      `INSERT INTO queue_settings (node, queue, lim, running) VALUES ('*', 'reports', 20000, true)`,
    );
    node = await startNode(db.schema, db.url);
    assert.equal(node.supervisors.has('reports'), true, 'the queue starts with the default limit');
    assert.equal(node.supervisors.get('reports')!.producer.limit, 10);
    const job = await db.client.insert({ worker: 'ok', args: { value: 1 } });
    await eventually(async () => (await db.client.getJob(job.id))?.state === 'completed');
  });

  it('queue controls refuse an option they do not know, rather than act on every node', async function () {
    // { nod: 'web-1' } paused the queue on every node; { threads: 2 } was dropped unseen.
    await assert.rejects(
      db.client.pauseQueue('default', { nod: 'web-1' } as unknown as { node: string }),
      (error: unknown) =>
        error instanceof ConfigError &&
        error.message === 'options: unknown key "nod" (did you mean "node"?)',
    );
    await assert.rejects(
      db.client.stopQueue('default', { nodes: 'web-1' } as unknown as { node: string }),
      /options: unknown key "nodes"/,
    );
    await assert.rejects(
      db.client.scaleQueue('default', 5, { limit: 6 } as unknown as { node: string }),
      /options: unknown key "limit"/,
    );
    await assert.rejects(
      db.client.startQueue('reports', { limit: 2, threads: 2 } as { limit: number }),
      /options: unknown key "threads"/,
    );
    await assert.rejects(
      db.client.resumeQueue('default', 'web-1' as unknown as { node: string }),
      /options: expected an object such as \{ node \}, got/,
    );
    // '*' is the saved form of "every node": { node: '*' } paused the queue everywhere.
    await assert.rejects(
      db.client.pauseQueue('default', { node: '*' }),
      (error: unknown) =>
        error instanceof ConfigError &&
        error.message ===
          'node: must not be "*", which stands for every node in queue settings; leave node out to change the queue on every node',
    );
    await assert.rejects(
      db.client.scaleQueue('default', 5, { node: 'web\u00001' }),
      /node: must be printable/,
    );
    assert.deepEqual(await db.query('SELECT node FROM queue_settings'), [], 'nothing saved');
    await db.client.pauseQueue('default', null); // null is no options, as for insert
    assert.deepEqual(await db.query('SELECT node, paused FROM queue_settings'), [
      { node: '*', paused: true },
    ]);
  });

  it('rejects maxAttempts beyond the column and args nested too deeply, as InsertErrors', async function () {
    await assert.rejects(
      db.client.insert({ worker: 'ok', maxAttempts: 99999999999 }),
      (error: unknown) => {
        assert.ok(error instanceof InsertError);
        assert.equal(error.field, 'maxAttempts');
        return true;
      },
    );
    let deep: Record<string, unknown> = {};
    const args = deep;
    for (let i = 0; i < 5000; i++) {
      const next = {};
      deep.a = next;
      deep = next;
    }
    await assert.rejects(db.client.insert({ worker: 'ok', args }), /nested more than 1000 levels/);
  });

  it('refuses to roll back a schema migrated ahead of this code', async function () {
    await db.query(`INSERT INTO migrations (version, name) VALUES (99, 'from_the_future')`);
    const client = await db.pool.connect();
    try {
      await assert.rejects(migrateDown(client, db.schema, 1), /ahead of this code/);
    } finally {
      client.release();
    }
  });

  it('the CLI finds the command after --config, and refuses arguments start does not take', async function () {
    const file = writeConfig(nodeConfig(db.schema, db.url));
    const inserted = await runCli(['--config', file, 'insert', 'ok', '{"value":1}']);
    assert.equal(inserted.code, 0, inserted.stderr);
    assert.match(inserted.stdout.trim(), /^\d+$/);
    const rows = await db.query<{ id: number }>('SELECT id FROM jobs');
    assert.equal(rows.length, 1);
    const typo = await runCli(['--config', file, 'statsu']);
    assert.equal(typo.code, 2);
    assert.match(typo.stderr, /unknown command "statsu"/);
    const extra = await runCli(['start', 'now', '--config', file]);
    assert.equal(extra.code, 2);
    const badQueue = await runCli(['queue', 'pause', 'x;y', '--config', file]);
    assert.equal(badQueue.code, 2);
    assert.match(badQueue.stderr, /not a queue name/);
    const bigLimit = await runCli([
      'queue',
      'start',
      'reports',
      '--limit',
      '20000',
      '--config',
      file,
    ]);
    assert.equal(bigLimit.code, 2);
  });

  it('config: null, and more threads than the limit, are errors naming the key', function () {
    assert.throws(() => loadConfig(null, { env: {} }), /config: expected an object, got null/);
    assert.throws(
      () => loadConfig({ queues: { default: { limit: 4, threads: 8 } } }, { env: {} }),
      /queues\.default\.threads: must be at most 4/,
    );
  });

  it('a QuernNode given a raw configuration, or none, says to use loadConfig', function () {
    // From JavaScript, where no type stops it: it was pino's "default level:undefined must be
    // included in custom levels", or a TypeError reading logLevel.
    for (const raw of [{ queues: { default: 10 } }, undefined, null, 'cluster.config.json']) {
      assert.throws(
        () => new QuernNode(raw as never),
        (error: unknown) =>
          error instanceof ConfigError &&
          /^QuernNode: expected a configuration made by loadConfig/.test(error.message),
        JSON.stringify(raw),
      );
    }
    new QuernNode(loadConfig({ queues: { default: 10 } }, { env: {} }));
  });

  it('the embedded server refuses a data folder that holds something else, changing nothing', async function () {
    const dir = mkdtempSync(path.join(tmpdir(), 'quern-not-pg-'));
    writeFileSync(path.join(dir, 'important.txt'), 'keep me');
    const before = statSync(dir);
    await assert.rejects(startEmbedded(dir), /not empty and holds no PostgreSQL data folder/);
    const after = statSync(dir);
    assert.equal(after.uid, before.uid, 'owner unchanged');
    assert.equal(after.mode, before.mode, 'mode unchanged');
    assert.deepEqual(readdirSync(dir), ['important.txt']);
  });
});

describe('node names', function () {
  let db: TestSchema;
  let first: QuernNode | undefined;
  let clock: sinon.SinonFakeTimers | undefined;
  beforeEach(async function () {
    db = await createSchema(this.currentTest!.title);
  });
  afterEach(async function () {
    clock?.restore();
    clock = undefined;
    await first?.stop();
    await cleanup(this, db);
  });

  it('a second live process with the same node name is refused and leaves the first untouched', async function () {
    first = await startNode(db.schema, db.url, { node: 'same' });
    const running = await db.client.insert({ worker: 'slow', args: { ms: 4000 } });
    await eventually(async () => (await db.client.getJob(running.id))?.state === 'executing');
    await assert.rejects(
      startNode(db.schema, db.url, { node: 'same' }),
      /a live node named "same" is already running/,
    );
    const rows = await db.query<{ name: string }>('SELECT name FROM nodes');
    assert.deepEqual(
      rows.map((r) => r.name),
      ['same'],
      'the first node keeps its heartbeat row',
    );
    const done = await eventually(async () => {
      const job = await db.client.getJob(running.id);
      return job?.state === 'completed' ? job : null;
    });
    assert.equal(done.attempt, 1, 'the running job was neither rescued nor run again');
  });

  it('a wall clock stepped forward while a second process waits on a live name does not let it in', async function () {
    // The wait for the name's heartbeat to move or go stale ended at a wall-clock deadline: a
    // clock stepped forward meanwhile (NTP, a VM resuming) ended it at the next look, before the
    // live process heartbeated, and the second one took its name and rescued its running jobs.
    const settings = { node: 'stepped', heartbeatInterval: 4000, heartbeatTimeout: 20000 };
    first = await startNode(db.schema, db.url, settings);
    clock = sinon.useFakeTimers({ now: Date.now(), toFake: ['Date'], shouldAdvanceTime: true });
    const fake = clock;
    // An hour forward, just after the second process began to wait (it logs that it waits).
    const log = pino(
      { level: 'warn' },
      {
        write(line: string) {
          if (line.includes('waiting to see whether it is still alive'))
            setTimeout(() => fake.tick(3_600_000), 50);
        },
      },
    );
    const [second] = await Promise.allSettled([startNode(db.schema, db.url, settings, { log })]);
    if (second.status === 'fulfilled') await second.value.stop();
    assert.equal(second.status, 'rejected', 'the second process was refused');
    assert.match(String(second.reason), /a live node named "stepped" is already running/);
  });

  it("a second process waits out the live name's own heartbeatTimeout when it is longer than its own", async function () {
    // The wait judged the row by the new process's heartbeatTimeout only: a live node that
    // heartbeats every 4 s (timeout 20 s) looked dead to a process with a 1 s timeout, which
    // took its name and rescued its running jobs.
    first = await startNode(db.schema, db.url, {
      node: 'patient',
      heartbeatInterval: 4000,
      heartbeatTimeout: 20000,
    });
    const running = await db.client.insert({ worker: 'slow', args: { ms: 6000 } });
    await eventually(async () => (await db.client.getJob(running.id))?.state === 'executing');
    // The live row is older than the second process's whole timeout, still fresh by its own.
    await eventually(async () => {
      const [row] = await db.query<{ age: number }>(
        `SELECT (extract(epoch FROM now() - updated_at) * 1000)::float8 AS age FROM nodes WHERE name = 'patient'`,
      );
      return row !== undefined && row.age > 1500 && row.age < 3000;
    });
    const [second] = await Promise.allSettled([
      startNode(db.schema, db.url, {
        node: 'patient',
        heartbeatInterval: 250,
        heartbeatTimeout: 1000,
      }),
    ]);
    if (second.status === 'fulfilled') await second.value.stop();
    assert.equal(second.status, 'rejected', 'the second process was refused');
    assert.match(String(second.reason), /a live node named "patient" is already running/);
    const done = await eventually(async () => {
      const job = await db.client.getJob(running.id);
      return job?.state === 'completed' ? job : null;
    });
    assert.equal(done.attempt, 1, 'the running job was neither rescued nor run again');
  });

  it('two processes of one name started at the same moment: one is refused', async function () {
    // Both found the name free before either had joined; both ran under it, so when one was
    // killed its running jobs were never rescued while the other heartbeated for the name.
    const starts = await Promise.allSettled([
      startNode(db.schema, db.url, { node: 'twin' }),
      startNode(db.schema, db.url, { node: 'twin' }),
    ]);
    const started = starts.filter((s) => s.status === 'fulfilled');
    const refused = starts.filter((s) => s.status === 'rejected');
    first = started[0]?.value;
    for (const extra of started.slice(1)) await extra.value.stop();
    assert.equal(started.length, 1, 'exactly one of the two runs');
    assert.match(String(refused[0]!.reason), /a live node named "twin" is already running/);
    const rows = await db.query<{ name: string }>('SELECT name FROM nodes');
    assert.deepEqual(
      rows.map((r) => r.name),
      ['twin'],
      'the running one keeps its row',
    );
  });
});
