import assert from 'node:assert/strict';
import pg from 'pg';
import { databaseUrl } from '../helpers/db.js';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { readConfigFile } from '../../src/config/load.js';
import { nodeConfig, runCli, spawnCluster, writeConfig } from '../helpers/node.js';

// Every configuration error stops `node cluster.js` before anything starts: a message naming
// the key, exit code 1, no schema created, no node row written.
describe('configuration errors stop cluster.js with exit code 1', function () {
  const schema = `quern_config_errors_${process.pid % 10000}`;
  const base = (): Record<string, unknown> =>
    nodeConfig(schema, databaseUrl(), { logLevel: 'info' });
  const withQueue = (queue: unknown): Record<string, unknown> => ({
    ...base(),
    queues: { default: queue },
  });

  const cases: [string, () => Record<string, unknown>, RegExp][] = [
    [
      'an unknown key, with the near one suggested',
      () => ({ ...base(), queus: { default: 1 } }),
      /config: unknown key "queus" \(did you mean "queues"\?\)/,
    ],
    [
      'an unknown queue key',
      () => withQueue({ limt: 5 }),
      /queues\.default: unknown key "limt" \(did you mean "limit"\?\)/,
    ],
    [
      'an unknown nested key',
      () => ({ ...base(), breaker: { failure: 3 } }),
      /breaker: unknown key "failure" \(did you mean "failures"\?\)/,
    ],
    [
      'a wrong type',
      () => withQueue({ limit: 'ten' }),
      /queues\.default\.limit: expected an integer, got "ten"/,
    ],
    [
      'a wrong type at the top',
      () => ({ ...base(), logArgs: 'yes' }),
      /logArgs: expected true or false, got "yes"/,
    ],
    ['a limit of 0', () => withQueue(0), /queues\.default\.limit: must be at least 1, got 0/],
    [
      'a negative thread count',
      () => withQueue({ limit: 2, threads: -1 }),
      /queues\.default\.threads: must be at least 1, got -1/,
    ],
    [
      'a zero grace period',
      () => ({ ...base(), shutdownGracePeriod: 0 }),
      /shutdownGracePeriod: must be at least 1, got 0/,
    ],
    [
      'a zero restart budget',
      () => ({ ...base(), restartBudget: { restarts: 0 } }),
      /restartBudget\.restarts: must be at least 1, got 0/,
    ],
    [
      'a zero breaker threshold',
      () => ({ ...base(), breaker: { failures: 0 } }),
      /breaker\.failures: must be at least 1, got 0/,
    ],
    [
      'a schema that is not a plain identifier',
      () => ({ ...base(), schema: 'quern"; drop schema public; --' }),
      /schema: .* must be a plain lower-case identifier/,
    ],
    [
      'a schema too long for its notification channels',
      () => ({ ...base(), schema: 's'.repeat(41) }),
      /schema: .* of at most 40 bytes/,
    ],
    [
      'a queue name that is not a plain identifier',
      () => ({ ...base(), queues: { 'Mail ers': 1 } }),
      /queues\.Mail ers: a queue name must be a plain lower-case identifier/,
    ],
    [
      'a queue name too long',
      () => ({ ...base(), queues: { ['q'.repeat(64)]: 1 } }),
      /queues\.q+: a queue name .* of at most 63 bytes/,
    ],
    [
      'a heartbeatTimeout too short for a cut-off node to stop its jobs before they are rescued',
      () => ({ ...base(), heartbeatInterval: 1000, heartbeatTimeout: 3500 }),
      /heartbeatTimeout: must be at least four heartbeatIntervals \(4000 ms\), got 3500 with heartbeatInterval 1000: a node that cannot write its heartbeat stops its running jobs before heartbeatTimeout/,
    ],
    [
      'a heartbeatTimeout under three heartbeatIntervals: the same rule, not a lower one',
      () => ({ ...base(), heartbeatInterval: 1000, heartbeatTimeout: 2000 }),
      /heartbeatTimeout: must be at least four heartbeatIntervals \(4000 ms\), got 2000 with heartbeatInterval 1000/,
    ],
    [
      'a grace period past what a Node timer can wait',
      () => ({ ...base(), shutdownGracePeriod: 1e300 }),
      /shutdownGracePeriod: must be at most 2073600000, got 1e\+300 \(allowed: 1 to 2073600000; ms, at most 24 days: Node timers cannot wait longer\)/,
    ],
    [
      'a poll interval of 1e12 ms',
      () => withQueue({ limit: 5, pollInterval: 1e12 }),
      /queues\.default\.pollInterval: must be at most 86400000, got 1000000000000 \(allowed: 10 to 86400000; ms, at most a day\)/,
    ],
    [
      'a concurrency of a million',
      () => withQueue({ limit: 5, concurrency: 1000000 }),
      /queues\.default\.concurrency: must be at most 10000, got 1000000 \(allowed: 1 to 10000/,
    ],
    [
      'a heap limit of 1e9 MiB',
      () => withQueue({ limit: 5, memoryLimitMb: 1e9 }),
      /queues\.default\.memoryLimitMb: must be at most 65536, got 1000000000 \(allowed: 16 to 65536/,
    ],
    [
      'a pool of 100000 connections',
      () => ({ ...base(), database: { url: databaseUrl(), poolSize: 100000 } }),
      /database\.poolSize: must be at most 1000, got 100000 \(allowed: 2 to 1000\)/,
    ],
    [
      'the information_schema as schema',
      () => ({ ...base(), schema: 'information_schema' }),
      /schema: "information_schema" is reserved by PostgreSQL/,
    ],
    [
      'pg_catalog as schema (PostgreSQL: "unacceptable schema name")',
      () => ({ ...base(), schema: 'pg_catalog' }),
      /schema: "pg_catalog" is reserved by PostgreSQL/,
    ],
    [
      'a queue named __proto__ (an own key after JSON.parse)',
      () => ({ ...base(), queues: { ['__proto__']: 5 } }),
      /queues\.__proto__: a queue name cannot be "__proto__"/,
    ],
    [
      'a node name with a NUL character',
      () => ({ ...base(), node: 'x\u0000y' }),
      /node: must be printable text without control characters, got U\+0000 at position 1/,
    ],
    [
      'a node named "*", which saved queue settings read as every node',
      () => ({ ...base(), node: '*' }),
      /node: must not be "\*", which stands for every node in queue settings/,
    ],
    [
      'a database.url that is not a postgres URL',
      () => ({ ...base(), database: { url: 'mysql://x:secret@y/z' } }),
      /database\.url: the protocol is "mysql:", expected postgres:\/\/ or postgresql:\/\//,
    ],
    [
      'a workers folder that does not exist (it started a node failing every job as unknown)',
      () => ({ ...base(), workers: 'no-such-workers' }),
      /workers: .*no-such-workers: no such folder .*; a relative "workers" is resolved against the folder of the configuration file/,
    ],
    [
      'a crontab entry with no worker (it said "got undefined undefined")',
      () => ({ ...base(), plugins: { cron: { crontab: [['* * * * *']] } } }),
      /plugins\.cron\.crontab\[0\]\.worker: expected a non-empty string, got nothing$/m,
    ],
    [
      'a crontab entry of four items (the fourth was dropped unseen)',
      () => ({
        ...base(),
        plugins: { cron: { crontab: [['* * * * *', 'ok', {}, { queue: 'reports' }]] } },
      }),
      /plugins\.cron\.crontab\[0\]: expected \[expression, worker\] or \[expression, worker, args\], got 4 items; give queue, priority, maxAttempts, tags or timezone in the object form/,
    ],
    ['a file that is not JSON', () => ({}), /is not valid JSON/],
  ];

  for (const [what, config, message] of cases) {
    it(what, async function () {
      const file = writeConfig(config());
      if (what === 'a file that is not JSON') {
        writeFileSync(file, '{ "queues": { "default": 10, } }');
      }
      const result = await runCli(['--config', file], { LOG_LEVEL: 'info' });
      assert.equal(result.code, 1, `exit code; stderr: ${result.stderr}`);
      assert.match(result.stderr, message);
      assert.doesNotMatch(result.stdout + result.stderr, /started|database ready|secret/);
    });
  }

  it("an integer beyond 2^53 - 1 in the file (a crontab entry's args) is named, not rounded", async function () {
    const file = writeConfig(base());
    const config = readFileSync(file, 'utf8').replace(
      /^\{/,
      '{ "plugins": { "cron": { "crontab": [["* * * * *", "ok", { "ids": [1, 12345678901234567890123] }]] } },',
    );
    writeFileSync(file, config);
    const result = await runCli(['--config', file], { LOG_LEVEL: 'info' });
    assert.equal(result.code, 1, `exit code; stderr: ${result.stderr}`);
    assert.equal(
      result.stderr.trim(),
      `error: config file ${file}: plugins.cron.crontab[0][2].ids[1]: the integer 12345678901234567890123 is beyond 9007199254740991 (2^53 - 1), the largest a JSON number keeps exactly here, and would be stored as 1.2345678901234568e+22; write it as a string ("12345678901234567890123")`,
    );
  });

  it('a key given twice in the file is named: JSON.parse kept the last, dropping the first unseen', async function () {
    const file = writeConfig(base());
    const config = readFileSync(file, 'utf8').replace(
      /^\{/,
      '{ "queues": { "default": 5, "mailers": 2, "default": 10 },',
    );
    writeFileSync(file, config);
    const result = await runCli(['--config', file], { LOG_LEVEL: 'info' });
    assert.equal(result.code, 1, `exit code; stderr: ${result.stderr}`);
    assert.equal(
      result.stderr.trim(),
      `error: config file ${file}: queues: the key "default" is given twice; JSON keeps only the last, so the first would be lost`,
    );
  });

  it('a missing absolute workers folder is named without the hint about relative paths', async function () {
    const file = writeConfig({ ...base(), workers: '/no/such/workers' });
    const result = await runCli(['--config', file], { LOG_LEVEL: 'info' });
    assert.equal(result.code, 1, `exit code; stderr: ${result.stderr}`);
    assert.match(result.stderr, /workers: \/no\/such\/workers: no such folder/);
    assert.doesNotMatch(result.stderr, /relative/);
  });

  // An unusable URL used to be retried forever, as if the server were down: it must stop the
  // node at once (before any retry would be logged), naming DATABASE_URL, without the password.
  for (const [url, message] of [
    ['not a url', /DATABASE_URL: cannot be parsed as a URL; expected postgres:\/\//],
    ['mysql://x:secret@y/z', /DATABASE_URL: the protocol is "mysql:", expected postgres:\/\//],
    [
      'postgres://postgres:secret@127.0.0.1/test?port=abc',
      /DATABASE_URL: the port parameter "abc" is not a port number \(1 to 65535\)/,
    ],
    [
      'postgres://postgres:secret%e9@127.0.0.1/test',
      /DATABASE_URL: the password holds a percent-encoding that is not UTF-8 text/,
    ],
  ] as const) {
    it(`DATABASE_URL=${JSON.stringify(url)} exits 1 at once`, async function () {
      const node = spawnCluster(['--config', writeConfig(base())], { DATABASE_URL: url });
      const { code } = await node.exited;
      assert.equal(code, 1, `exit code; output: ${node.output()}`);
      assert.match(node.output(), message);
      assert.doesNotMatch(node.output(), /retrying|not answering|secret/);
    });
  }

  it('migrate --prefix information_schema is refused before anything is created', async function () {
    const result = await runCli([
      'migrate',
      '--prefix',
      'information_schema',
      '--config',
      writeConfig(base()),
    ]);
    assert.equal(result.code, 2, `exit code; stderr: ${result.stderr}`);
    assert.match(result.stderr, /--prefix: "information_schema" is reserved by PostgreSQL/);
    const client = new pg.Client({ connectionString: databaseUrl() });
    await client.connect();
    try {
      const { rows } = await client.query(
        `SELECT 1 FROM pg_tables WHERE schemaname = 'information_schema' AND tablename = 'jobs'`,
      );
      assert.equal(rows.length, 0);
    } finally {
      await client.end();
    }
  });

  after(async function () {
    const client = new pg.Client({ connectionString: databaseUrl() });
    await client.connect();
    try {
      const { rows } = await client.query('SELECT 1 FROM pg_namespace WHERE nspname = $1', [
        schema,
      ]);
      assert.equal(rows.length, 0, 'no configuration error created the schema');
    } finally {
      await client.end();
    }
  });
});

describe('reading the configuration file', function () {
  it('a file that starts with a byte order mark is read (some Windows editors write one)', function () {
    const file = path.join(mkdtempSync(path.join(tmpdir(), 'quern-bom-')), 'cluster.config.json');
    writeFileSync(file, '\uFEFF{ "queues": { "default": 3 } }');
    assert.deepEqual(readConfigFile(file), { queues: { default: 3 } });
  });

  it('a folder given as the file is named as a folder, not as JSON that failed (EISDIR)', function () {
    const dir = mkdtempSync(path.join(tmpdir(), 'quern-folder-'));
    assert.throws(() => readConfigFile(dir), {
      name: 'ConfigError',
      message: `config file ${dir} is a folder; name the JSON file in it`,
    });
  });
});
