// The command line, run as a user runs it (`node cluster.js ...` in a child process): help,
// usage errors (exit 2), configuration errors (exit 1), insert, jobs, migrate up and down.

import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { cleanup, createSchema, type TestSchema } from '../helpers/db.js';
import { nodeConfig, runCli, startNode, writeConfig } from '../helpers/node.js';

describe('the CLI', function () {
  let db: TestSchema;
  let config: string;
  beforeEach(async function () {
    db = await createSchema(this.currentTest!.title);
    config = writeConfig(nodeConfig(db.schema, db.url));
  });
  afterEach(async function () {
    await cleanup(this, db);
  });

  it('--help prints the usage and exits 0', async function () {
    const { code, stdout } = await runCli(['--help']);
    assert.equal(code, 0);
    assert.match(stdout, /^Usage: node cluster\.js/);
    for (const command of ['migrate', 'insert WORKER', 'jobs', '--config PATH'])
      assert.ok(stdout.includes(command), `usage mentions ${command}`);
    assert.equal((await runCli(['insert', '--help'])).code, 0);
  });

  const usageErrors: [string, string[], RegExp][] = [
    ['an unknown command', ['frobnicate'], /unknown command "frobnicate"/],
    ['an unknown flag', ['jobs', '--bogus'], /bogus/],
    ['a flag without its value', ['jobs', '--state'], /state/],
    ['a bad state', ['jobs', '--state', 'done'], /--state: expected one of/],
    ['a priority out of range', ['insert', 'ok', '--priority', '7'], /priority/],
    ['a priority that is not a number', ['insert', 'ok', '--priority', 'high'], /--priority/],
    // A negative number after an option is its value (parseArgs called it ambiguous).
    ['a negative priority', ['insert', 'ok', '--priority', '-1'], /priority: .* got -1/],
    ['a negative limit', ['jobs', '--limit', '-3'], /--limit: expected a whole number/],
    ['args that are not JSON', ['insert', 'ok', '{nope'], /ARGS_JSON is not valid JSON/],
    ['a missing worker', ['insert'], /insert needs a WORKER/],
    ['a bad --down', ['migrate', '--down', 'x'], /--down/],
    [
      'a queue name no job can have',
      ['jobs', '--queue', 'Bad Q'],
      /--queue: expected a queue name/,
    ],
    [
      'a worker name no job can have',
      ['jobs', '--worker', 'a/b'],
      /--worker: expected a worker name/,
    ],
  ];
  for (const [what, args, message] of usageErrors) {
    it(`exits 2 with the usage for ${what}`, async function () {
      const { code, stderr } = await runCli([...args, '--config', config]);
      assert.equal(code, 2, stderr);
      assert.match(stderr, message);
      assert.match(stderr, /Usage: node cluster\.js/);
    });
  }

  it('a usage error writes nothing', async function () {
    await runCli(['insert', 'ok', '--priority', '7', '--config', config]);
    const rows = await db.query('SELECT id FROM jobs');
    assert.deepEqual(rows, []);
  });

  it('insert and enqueue-dir refuse a worker the workers folder does not define, writing nothing', async function () {
    // Such a job would fail every attempt as an unknown worker, over days of backoff.
    const inserted = await runCli(['insert', 'okk', '{}', '--config', config]);
    assert.equal(inserted.code, 2, inserted.stderr);
    assert.match(
      inserted.stderr,
      /^error: worker: no worker "okk" is defined in .*fixtures.workers \(did you mean "ok"\?\); its workers: .*\bok\b/,
    );
    const dir = mkdtempSync(path.join(tmpdir(), 'quern-cli-dir-'));
    writeFileSync(path.join(dir, 'a.txt'), 'a');
    const enqueued = await runCli(['enqueue-dir', dir, '--worker', 'nosuch', '--config', config]);
    assert.equal(enqueued.code, 2, enqueued.stderr);
    assert.match(enqueued.stderr, /^error: worker: no worker "nosuch" is defined in /);
    assert.deepEqual(await db.query('SELECT id FROM jobs'), []);
    // --any-worker: a worker that only other hosts' folders define.
    const forced = await runCli(['insert', 'elsewhere', '{}', '--any-worker', '--config', config]);
    assert.equal(forced.code, 0, forced.stderr);
    assert.deepEqual(await db.query('SELECT worker FROM jobs'), [{ worker: 'elsewhere' }]);
  });

  it('a command ends even when a worker module keeps a timer open', async function () {
    this.timeout(20000);
    // insert imports the workers folder (for the worker's defaults and to check its name); a
    // module that starts a timer at import kept the CLI process alive after it was done.
    const dir = mkdtempSync(path.join(tmpdir(), 'quern-cli-ticking-'));
    writeFileSync(
      path.join(dir, 'ticking.js'),
      "setInterval(() => {}, 1000);\nexport default { name: 'ticking', perform() {} };\n",
    );
    const ticking = writeConfig({ ...nodeConfig(db.schema, db.url), workers: dir });
    const inserted = await runCli(['insert', 'ticking', '{}', '--config', ticking]);
    assert.equal(inserted.code, 0, inserted.stderr);
    assert.deepEqual(await db.query('SELECT worker FROM jobs'), [{ worker: 'ticking' }]);
  });

  it('a worker module whose top-level await never settles ends a node or a command with exit 1, not 0', async function () {
    this.timeout(20000);
    // The event loop ran dry while the import waited: Node exited 0 without a word, so a node
    // that never started looked like one stopped cleanly.
    const dir = mkdtempSync(path.join(tmpdir(), 'quern-cli-stuck-'));
    writeFileSync(
      path.join(dir, 'stuck.js'),
      "await new Promise(() => {});\nexport default { name: 'stuck', perform() {} };\n",
    );
    const stuck = writeConfig({ ...nodeConfig(db.schema, db.url), workers: dir });
    for (const args of [[], ['insert', 'stuck', '{}']]) {
      const { code, stderr } = await runCli([...args, '--config', stuck]);
      assert.equal(code, 1, `${args.join(' ') || 'start'}: ${stderr}`);
      assert.match(stderr, /error: the command stopped before it finished: .*top-level await/);
    }
    assert.deepEqual(await db.query('SELECT worker FROM jobs'), []);
  });

  it("insert --tags 'a, b,a' stores tags a and b: spaces around a tag and repeats are dropped", async function () {
    const { code, stdout, stderr } = await runCli([
      'insert',
      'ok',
      '{}',
      '--tags',
      ' a, b,a ',
      '--config',
      config,
    ]);
    assert.equal(code, 0, stderr);
    const [row] = await db.query('SELECT tags FROM jobs WHERE id = $1', [Number(stdout)]);
    assert.deepEqual(row?.tags, ['a', 'b']);
  });

  it('insert prints the new job id and stores every flag', async function () {
    const { code, stdout, stderr } = await runCli([
      'insert',
      'ok',
      '{"value":"hi"}',
      '--queue',
      'mailers',
      '--priority',
      '2',
      '--schedule-in',
      '60',
      '--max-attempts',
      '4',
      '--tags',
      'a,b',
      '--config',
      config,
    ]);
    assert.equal(code, 0, stderr);
    assert.match(stdout, /^\d+\n$/);
    const [row] = await db.query('SELECT * FROM jobs WHERE id = $1', [Number(stdout)]);
    assert.ok(row, 'the printed id is the row');
    assert.equal(row.worker, 'ok');
    assert.deepEqual(row.args, { value: 'hi' });
    assert.equal(row.queue, 'mailers');
    assert.equal(row.priority, 2);
    assert.equal(row.max_attempts, 4);
    assert.deepEqual(row.tags, ['a', 'b']);
    assert.equal(row.state, 'scheduled');
  });

  it('jobs prints a table of the jobs, filtered', async function () {
    const a = await db.client.insert({ worker: 'ok', args: {} });
    await db.client.insert({ worker: 'slow', queue: 'other', args: {} });
    const all = await runCli(['jobs', '--config', config]);
    assert.equal(all.code, 0, all.stderr);
    const lines = all.stdout.trimEnd().split('\n');
    assert.match(lines[0]!, /^ID\s+STATE\s+QUEUE\s+WORKER\s+ATTEMPT\s+PRIORITY/);
    assert.equal(lines.length, 4, all.stdout);
    assert.equal(lines.at(-1), '2 jobs');
    const filtered = await runCli([
      'jobs',
      '--worker',
      'ok',
      '--state',
      'available',
      '--config',
      config,
    ]);
    assert.equal(filtered.code, 0);
    const rows = filtered.stdout.trimEnd().split('\n').slice(1, -1);
    assert.equal(rows.length, 1);
    assert.match(rows[0]!, new RegExp(`^${a.id}\\s+available\\s+default\\s+ok\\s+0/20\\s+0`));
  });

  it('migrate applies every migration; --down 0 removes them; migrate again restores them', async function () {
    const fresh = await createSchema(`${this.test!.title}-fresh`, { migrate: false });
    try {
      const freshConfig = writeConfig(nodeConfig(fresh.schema, fresh.url));
      const versions = async () =>
        (
          await fresh.query<{ version: number }>('SELECT version FROM migrations ORDER BY version')
        ).map((r) => r.version);
      const up = await runCli(['migrate', '--config', freshConfig]);
      assert.equal(up.code, 0, up.stderr);
      assert.match(up.stdout, /applying 001_jobs/);
      const all = await versions();
      assert.ok(all.length >= 2);
      assert.match(up.stdout, new RegExp(`version 0 -> ${all.length}`));
      const again = await runCli(['migrate', '--config', freshConfig]);
      assert.match(again.stdout, new RegExp(`version ${all.length} -> ${all.length}`));

      const down = await runCli(['migrate', '--down', '0', '--config', freshConfig]);
      assert.equal(down.code, 0, down.stderr);
      assert.match(down.stdout, /rolling back 001_jobs/);
      assert.deepEqual(await versions(), []);
      const [table] = await fresh.query<{ jobs: string | null }>(
        `SELECT to_regclass('jobs')::text AS jobs`,
      );
      assert.equal(table!.jobs, null, 'the jobs table is gone');

      const restored = await runCli(['migrate', '--config', freshConfig]);
      assert.equal(restored.code, 0, restored.stderr);
      assert.deepEqual(await versions(), all);
      await fresh.client.insert({ worker: 'ok', args: {} });
    } finally {
      await fresh.drop();
    }
  });

  it('commands that read or change existing jobs refuse a schema with no quern tables and create nothing', async function () {
    const typo = `${db.schema}_typo`;
    const commands = [
      ['status'],
      ['stats'],
      ['jobs'],
      ['job', 'show', '1'],
      ['job', 'retry', '1'],
      ['queue', 'pause', 'default'],
    ];
    for (const args of commands) {
      const { code, stderr } = await runCli([...args, '--config', config, '--prefix', typo]);
      assert.equal(code, 1, `${args.join(' ')}: ${stderr}`);
      assert.match(
        stderr,
        new RegExp(`schema "${typo}" holds no quern tables: .*misspelt.*node cluster\\.js migrate`),
        args.join(' '),
      );
    }
    const [created] = await db.query<{ n: number }>(
      'SELECT count(*)::int AS n FROM pg_namespace WHERE nspname = $1',
      [typo],
    );
    assert.equal(created!.n, 0, 'no schema was created');
    // A schema behind this version's migrations is named too, with the way out.
    await db.query('DELETE FROM migrations WHERE version = (SELECT max(version) FROM migrations)');
    const behind = await runCli(['status', '--config', config]);
    assert.equal(behind.code, 1, behind.stderr);
    assert.match(behind.stderr, /is at migration \d+ of \d+: run node cluster\.js migrate/);
  });

  it('queue pause|scale warns when no live node runs the queue or has the name, and still saves it', async function () {
    const typo = await runCli(['queue', 'pause', 'defualt', '--config', config]);
    assert.equal(typo.code, 0, typo.stderr);
    assert.match(typo.stdout, /queue defualt: pause sent to all nodes/);
    assert.match(typo.stderr, /warning: no live node runs queue defualt; the setting is saved/);
    const node = await startNode(db.schema, db.url);
    try {
      const ghost = await runCli([
        'queue',
        'pause',
        'default',
        '--node',
        'ghost',
        '--config',
        config,
      ]);
      assert.equal(ghost.code, 0, ghost.stderr);
      assert.match(ghost.stderr, /warning: no live node is named "ghost"; the setting is saved/);
      const real = await runCli(['queue', 'scale', 'default', '--limit', '3', '--config', config]);
      assert.equal(real.code, 0, real.stderr);
      assert.doesNotMatch(real.stderr, /warning/);
    } finally {
      await node.stop();
    }
    const saved = await db.query<{ queue: string; node: string }>(
      `SELECT queue, node FROM queue_settings ORDER BY queue, node`,
    );
    assert.deepEqual(
      saved.map((r) => `${r.queue}@${r.node}`),
      ['default@*', 'default@ghost', 'defualt@*'],
    );
  });

  it('--config PATH is the configuration used (its schema receives the insert)', async function () {
    const { code, stdout } = await runCli(['insert', 'ok', '--config', config]);
    assert.equal(code, 0);
    const rows = await db.query<{ id: number }>('SELECT id FROM jobs');
    assert.deepEqual(
      rows.map((r) => r.id),
      [Number(stdout)],
    );
  });

  it('exits 1 naming the problem for configuration errors', async function () {
    const dir = mkdtempSync(path.join(tmpdir(), 'quern-cli-'));
    const badKey = path.join(dir, 'bad-key.json');
    writeFileSync(badKey, JSON.stringify({ ...nodeConfig(db.schema, db.url), queus: {} }));
    const badJson = path.join(dir, 'bad.json');
    writeFileSync(badJson, '{ "queues": ');
    const badValue = path.join(dir, 'bad-value.json');
    writeFileSync(
      badValue,
      JSON.stringify({ ...nodeConfig(db.schema, db.url), queues: { default: { limit: 0 } } }),
    );
    const cases: [string[], RegExp][] = [
      [['jobs', '--config', badKey], /queus/],
      [['jobs', '--config', badJson], /not valid JSON/],
      [['jobs', '--config', badValue], /queues\.default\.limit/],
      [['jobs', '--config', path.join(dir, 'missing.json')], /config file not found/],
      [['--config', badKey], /queus/],
    ];
    for (const [args, message] of cases) {
      const { code, stderr } = await runCli(args);
      assert.equal(code, 1, `${args.join(' ')}: ${stderr}`);
      assert.match(stderr, message);
      assert.doesNotMatch(stderr, /Usage:/);
    }
  });

  it('a database that does not answer ends a command with exit 1 and one line naming it, not a stack trace', async function () {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    await new Promise<void>((resolve) => server.close(() => resolve()));
    const url = `postgres://someone:secret@127.0.0.1:${port}/test`;
    for (const args of [['status'], ['jobs'], ['migrate'], ['queue', 'pause', 'default']]) {
      const { code, stderr } = await runCli([...args, '--config', config], { DATABASE_URL: url });
      assert.equal(code, 1, `${args.join(' ')}: ${stderr}`);
      assert.match(
        stderr,
        new RegExp(
          `^error: database postgres://someone:\\*\\*\\*@127\\.0\\.0\\.1:${port}/test is not answering: connect ECONNREFUSED .*\n$`,
        ),
      );
      assert.doesNotMatch(stderr, /secret|\n\s+at /);
    }
  });
});
