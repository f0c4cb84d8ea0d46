// The migration runner: safe when several nodes start at once on a fresh schema, reversible,
// and refusing to run code older than the database it finds.

import assert from 'node:assert/strict';
import pg from 'pg';
import { migrateDown, migrateUp, MigrationError, readMigrations } from '../../src/db/migrate.js';
import { cleanup, createSchema, type TestSchema } from '../helpers/db.js';
import { nodeConfig, runCli, spawnCluster, writeConfig } from '../helpers/node.js';

describe('migrations', function () {
  let db: TestSchema;
  const latest = readMigrations().length;
  beforeEach(async function () {
    db = await createSchema(this.currentTest!.title, { migrate: false });
  });
  afterEach(async function () {
    await cleanup(this, db);
  });

  async function versions(): Promise<number[]> {
    const rows = await db.query<{ version: number }>(
      'SELECT version FROM migrations ORDER BY version',
    );
    return rows.map((r) => r.version);
  }

  it('three runners starting at once on a fresh schema apply each version once', async function () {
    const clients = [0, 1, 2].map(() => new pg.Client({ connectionString: db.url }));
    await Promise.all(clients.map((c) => c.connect()));
    try {
      const results = await Promise.all(clients.map((c) => migrateUp(c, db.schema)));
      assert.deepEqual(
        results.map((r) => r.to),
        [latest, latest, latest],
      );
      // Exactly one of them applied everything; the others found it done.
      const applied = results.map((r) => r.applied.length).sort();
      assert.deepEqual(applied, [0, 0, latest]);
      assert.deepEqual(
        await versions(),
        Array.from({ length: latest }, (_, i) => i + 1),
      );
    } finally {
      await Promise.all(clients.map((c) => c.end()));
    }
  });

  it('three cluster.js processes started at once share one set of migrations', async function () {
    const config = writeConfig(nodeConfig(db.schema, db.url));
    const runs = await Promise.all([0, 1, 2].map(() => runCli(['migrate', '--config', config])));
    for (const run of runs) assert.equal(run.code, 0, run.stderr);
    assert.deepEqual(
      await versions(),
      Array.from({ length: latest }, (_, i) => i + 1),
    );
    assert.equal(runs.filter((r) => r.stdout.includes('applying 001_jobs')).length, 1);
  });

  it('rolls back to a version and up again', async function () {
    const client = await db.pool.connect();
    try {
      await migrateUp(client, db.schema);
      const down = await migrateDown(client, db.schema, 1);
      assert.deepEqual(
        down.applied,
        Array.from({ length: latest - 1 }, (_, i) => latest - i),
      );
      assert.deepEqual(await versions(), [1]);
      await assert.rejects(migrateDown(client, db.schema, 5), MigrationError);
      const up = await migrateUp(client, db.schema);
      assert.equal(up.from, 1);
      assert.equal(up.to, latest);
    } finally {
      client.release();
    }
  });

  it("refuses a schema holding another tool's migrations table or an application's jobs table, naming it, and changes nothing", async function () {
    // A shared schema (public is allowed) with TypeORM's migrations table: migrate failed with a
    // raw "column "version" does not exist" and a stack; with an application's jobs table, with
    // "relation "jobs" already exists".
    await db.pool.query(`CREATE SCHEMA "${db.schema}"`);
    await db.query(
      `CREATE TABLE migrations (id serial PRIMARY KEY, timestamp bigint NOT NULL, name varchar NOT NULL)`,
    );
    const config = writeConfig(nodeConfig(db.schema, db.url));
    const foreign = await runCli(['migrate', '--config', config]);
    assert.equal(foreign.code, 1, foreign.stderr);
    assert.equal(
      foreign.stderr.trim(),
      `error: schema "${db.schema}" holds a table "migrations" that is not quern's (its columns: id, timestamp, name; another tool's migrations?): give quern a schema of its own (the default, "quern"; "schema" in the configuration, --prefix, or new Quern({ schema }))`,
    );
    const status = await runCli(['status', '--config', config]);
    assert.equal(status.code, 1, status.stderr);
    assert.match(status.stderr, /holds a table "migrations" that is not quern's/);
    await db.query('DROP TABLE migrations');
    await db.query('CREATE TABLE jobs (id serial PRIMARY KEY, title text)');
    const client = await db.pool.connect();
    try {
      await assert.rejects(
        migrateUp(client, db.schema),
        (error: unknown) =>
          error instanceof MigrationError &&
          error.message.startsWith(
            `schema "${db.schema}" already holds a table "jobs" that no quern migration created: give quern a schema of its own`,
          ),
      );
    } finally {
      client.release();
    }
    const node = spawnCluster(['--config', config], { DATABASE_URL: db.url });
    assert.equal((await node.exited).code, 1, node.output().slice(-2000));
    assert.match(node.output(), /already holds a table "jobs" that no quern migration created/);
    const tables = await db.query<{ name: string }>(
      `SELECT table_name AS name FROM information_schema.tables WHERE table_schema = $1`,
      [db.schema],
    );
    assert.deepEqual(
      tables.map((t) => t.name),
      ['jobs'],
      'nothing of quern was left behind',
    );
  });

  it('refuses a database migrated ahead of this code, in the API, the CLI and a node', async function () {
    const client = await db.pool.connect();
    try {
      await migrateUp(client, db.schema);
      await client.query(
        `INSERT INTO "${db.schema}".migrations (version, name) VALUES ($1, 'from_the_future')`,
        [latest + 1],
      );
      await assert.rejects(migrateUp(client, db.schema), (error: Error) => {
        assert.ok(error instanceof MigrationError);
        assert.match(error.message, new RegExp(`at migration ${latest + 1}, ahead of this code`));
        return true;
      });
    } finally {
      client.release();
    }
    const config = writeConfig(nodeConfig(db.schema, db.url));
    const cli = await runCli(['migrate', '--config', config]);
    assert.equal(cli.code, 1);
    assert.match(cli.stderr, /ahead of this code/);
    const node = spawnCluster(['--config', config], { DATABASE_URL: db.url });
    const exit = await node.exited;
    assert.equal(exit.code, 1, node.output().slice(-2000));
    assert.match(node.output(), /ahead of this code/);
    // Nothing was changed by the refused runs.
    assert.deepEqual(await versions(), [
      ...Array.from({ length: latest }, (_, i) => i + 1),
      latest + 1,
    ]);
  });
});
