import assert from 'node:assert/strict';
import path from 'node:path';
import pino from 'pino';
import pg from 'pg';
import { configFromFlags } from '../../src/cli/context.js';
import { Quern } from '../../src/client.js';
import {
  MAX_INTERVAL_MS,
  MAX_POOL_SIZE,
  MAX_QUEUE_LIMIT,
  MAX_TIMER_MS,
} from '../../src/config/bounds.js';
import { loadConfig } from '../../src/config/load.js';
import { ConfigError } from '../../src/config/validate.js';
import { DatabaseConfigError, waitForDatabase } from '../../src/db/connect.js';
import { databaseUrl } from '../helpers/db.js';
import { startNode, writeConfig } from '../helpers/node.js';

// Every numeric key has an upper bound, and every name that reaches PostgreSQL or a JavaScript
// object key is checked, in loadConfig, with a message naming the key and what is allowed.
// (test/config/errors.test.ts checks that such errors stop `node cluster.js` with exit code 1.)
// Also: relative paths are resolved against the config file's folder.

/** Sets `value` at the dotted `key` of a fresh object. */
function at(key: string, value: unknown): Record<string, unknown> {
  const parts = key.split('.');
  const root: Record<string, unknown> = {};
  let object = root;
  for (const part of parts.slice(0, -1)) {
    const inner: Record<string, unknown> = {};
    object[part] = inner;
    object = inner;
  }
  object[parts.at(-1)!] = value;
  return root;
}

const load = (raw: unknown, env: NodeJS.ProcessEnv = {}) => loadConfig(raw, { env });

function refuses(raw: unknown, message: RegExp, env: NodeJS.ProcessEnv = {}): void {
  assert.throws(
    () => load(raw, env),
    (error: unknown) => error instanceof ConfigError && message.test(error.message),
  );
}

const escape = (text: string): string => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

describe('configuration bounds', function () {
  it('keeps every timer below what Node can wait (2^31 - 1 ms), with room for the jitter', function () {
    assert.ok(MAX_TIMER_MS <= 2 ** 31 - 1);
    // A producer waits pollInterval plus up to 10%.
    assert.ok(MAX_INTERVAL_MS * 1.1 <= 2 ** 31 - 1);
  });

  // [key, its minimum, its maximum, how the config carries it]
  const queue = (option: string) => `queues.default.${option}`;
  const numeric: [string, number, number][] = [
    ['shutdownGracePeriod', 1, MAX_TIMER_MS],
    ['cancelGracePeriod', 1, MAX_TIMER_MS],
    ['heartbeatInterval', 1, MAX_INTERVAL_MS],
    ['restartBudget.backoff', 1, MAX_TIMER_MS],
    ['restartBudget.restarts', 1, 1000],
    ['restartBudget.seconds', 1, 86400],
    ['breaker.failures', 1, 10000],
    ['breaker.windowMs', 1, MAX_TIMER_MS],
    ['breaker.openMs', 1, MAX_TIMER_MS],
    ['database.poolSize', 2, MAX_POOL_SIZE],
    ['plugins.stager.interval', 10, MAX_TIMER_MS],
    ['plugins.pruner.interval', 10, MAX_TIMER_MS],
    ['plugins.pruner.maxAge', 0, 315360000],
    ['plugins.pruner.limit', 1, 1000000],
    ['plugins.lifeline.interval', 10, MAX_TIMER_MS],
    ['metrics.port', 0, 65535],
  ];
  const queueNumeric: [string, number, number][] = [
    ['limit', 1, MAX_QUEUE_LIMIT],
    ['concurrency', 1, MAX_QUEUE_LIMIT],
    ['pollInterval', 10, MAX_INTERVAL_MS],
    ['prefetch', 0, 10000],
    ['memoryLimitMb', 16, 65536],
  ];
  const cases = [
    ...numeric.map(([key, min, max]) => ({
      key,
      min,
      max,
      config: (value: number) => at(key, value),
    })),
    ...queueNumeric.map(([option, min, max]) => ({
      key: queue(option),
      min,
      max,
      config: (value: number) => ({ queues: { default: { limit: 10, [option]: value } } }),
    })),
  ];
  // heartbeatTimeout must also cover four heartbeatIntervals; with the default interval:
  cases.push({
    key: 'heartbeatTimeout',
    min: 4000,
    max: MAX_TIMER_MS,
    config: (value) => ({ heartbeatTimeout: value }),
  });

  for (const { key, min, max, config } of cases) {
    it(`${key}: accepts ${min} to ${max}, refuses more, fractions and 1e300`, function () {
      const read = (value: number): unknown =>
        key
          .split('.')
          .reduce<unknown>(
            (object, part) => (object as Record<string, unknown>)[part],
            load(config(value)),
          );
      // metrics.port is the only one with no default: its object must have it.
      assert.equal(read(max), max);
      if (key !== 'heartbeatTimeout') assert.equal(read(min), min);
      const range = key === 'heartbeatTimeout' ? '' : escape(` (allowed: ${min} to ${max}`);
      refuses(
        config(max + 1),
        new RegExp(`^${escape(key)}: must be at most ${max}, got ${max + 1}${range}`),
      );
      refuses(config(1e300), new RegExp(`^${escape(key)}: must be at most ${max}, got 1e\\+300`));
      refuses(config(min + 0.5), new RegExp(`^${escape(key)}: expected an integer`));
    });
  }

  it('says why a millisecond key is capped: Node timers cannot wait longer', function () {
    refuses(
      { shutdownGracePeriod: 1e300 },
      /^shutdownGracePeriod: must be at most 2073600000, got 1e\+300 \(allowed: 1 to 2073600000; ms, at most 24 days: Node timers cannot wait longer\)$/,
    );
    refuses(
      { queues: { default: { limit: 5, pollInterval: 1e12 } } },
      /^queues\.default\.pollInterval: must be at most 86400000, got 1000000000000 \(allowed: 10 to 86400000; ms, at most a day\)$/,
    );
  });

  it('caps concurrency at the largest limit, not at the starting limit (queue scale may raise it)', function () {
    const config = load({ queues: { default: { limit: 5, concurrency: 50 } } });
    assert.equal(config.queues.default!.concurrency, 50);
    refuses(
      { queues: { default: { limit: 5, concurrency: 1000000 } } },
      /^queues\.default\.concurrency: must be at most 10000, got 1000000/,
    );
  });

  it('a node at the largest timer values starts and stops without a TimeoutOverflowWarning', async function () {
    const warnings: string[] = [];
    const onWarning = (warning: Error): void => void warnings.push(warning.name);
    process.on('warning', onWarning);
    try {
      const node = await startNode(`bounds_timers_${process.pid % 10000}`, databaseUrl(), {
        queues: { default: { limit: 2, pollInterval: MAX_INTERVAL_MS } },
        shutdownGracePeriod: MAX_TIMER_MS,
        cancelGracePeriod: MAX_TIMER_MS,
        heartbeatTimeout: MAX_TIMER_MS,
        restartBudget: { backoff: MAX_TIMER_MS },
        breaker: { windowMs: MAX_TIMER_MS, openMs: MAX_TIMER_MS },
        plugins: {
          stager: { interval: MAX_TIMER_MS },
          pruner: { interval: MAX_TIMER_MS },
          lifeline: { interval: MAX_TIMER_MS },
        },
      });
      await node.stop();
      // Warnings are emitted on the next tick.
      await new Promise((resolve) => setImmediate(resolve));
    } finally {
      process.off('warning', onWarning);
      const client = new Quern({ connectionString: databaseUrl() });
      await client.pool.query(`DROP SCHEMA IF EXISTS bounds_timers_${process.pid % 10000} CASCADE`);
      await client.close();
    }
    assert.deepEqual(
      warnings.filter((w) => w === 'TimeoutOverflowWarning'),
      [],
    );
  });
});

describe('configuration names', function () {
  for (const schema of ['information_schema', 'pg_catalog', 'pg_toast', 'pg_temp_3', 'pg_quern']) {
    it(`refuses the reserved schema ${schema}, in the config and in new Quern()`, function () {
      const message = new RegExp(
        `^schema: "${schema}" is reserved by PostgreSQL \\(pg_\\* and information_schema are system schemas\\)`,
      );
      refuses({ schema }, message);
      assert.throws(
        () => new Quern({ connectionString: databaseUrl(), schema }),
        (error: unknown) => error instanceof ConfigError && message.test(error.message),
      );
    });
  }

  it('accepts public (Oban default prefix) and names that merely contain pg', function () {
    assert.equal(load({ schema: 'public' }).schema, 'public');
    assert.equal(load({ schema: 'my_pg_jobs' }).schema, 'my_pg_jobs');
    assert.equal(load({ schema: 'pgjobs' }).schema, 'pgjobs');
  });

  it('refuses "__proto__" and "constructor" as queue names, as JSON.parse hands them over', function () {
    // JSON.parse makes "__proto__" an own key (an object literal would set the prototype).
    refuses(
      JSON.parse('{ "queues": { "__proto__": 5 } }'),
      /^queues\.__proto__: a queue name cannot be "__proto__": every JavaScript object has a property of that name/,
    );
    refuses(
      JSON.parse('{ "queues": { "default": 1, "constructor": 5 } }'),
      /^queues\.constructor: a queue name cannot be "constructor"/,
    );
    refuses(
      JSON.parse('{ "queues": { "toString": 5 } }'),
      /^queues\.toString: a queue name must be a plain lower-case identifier/,
    );
    refuses(
      {
        plugins: { cron: { crontab: [{ expression: '@daily', worker: 'w', queue: '__proto__' }] } },
      },
      /\.queue: "__proto__": a queue name cannot be "__proto__"/,
    );
    const config = load(JSON.parse('{ "queues": { "default": 1, "mailers": 2 } }'));
    assert.deepEqual(Object.keys(config.queues), ['default', 'mailers']);
    assert.equal(Object.getPrototypeOf(config.queues), Object.prototype);
  });

  const badNodeNames: [string, string, RegExp][] = [
    ['a NUL', 'x\u0000y', /got U\+0000 at position 1/],
    ['a newline', 'web\n1', /got U\+000A at position 3/],
    ['a tab', '\tweb', /got U\+0009 at position 0/],
    ['DEL', 'web\u007f', /got U\+007F/],
    ['a C1 control', 'web\u0085', /got U\+0085/],
    ['a bidi override', 'web\u202e1', /got U\+202E/],
    ['a zero-width space', 'web\u200b1', /got U\+200B/],
    ['a lone surrogate', 'web\ud800', /got U\+D800/],
  ];
  for (const [what, name, detail] of badNodeNames) {
    it(`refuses a node name with ${what}, from the config and from NODE_NAME`, function () {
      refuses(
        { node: name },
        new RegExp(`^node: must be printable text without control characters, ${detail.source}`),
      );
      refuses({}, new RegExp(`^NODE_NAME: must be printable text`), { NODE_NAME: name });
    });
  }

  it('takes node names of printable text up to 128 characters', function () {
    assert.equal(load({ node: 'é'.repeat(128) }).node, 'é'.repeat(128));
    assert.equal(load({ node: 'web 1 (eu-west) 🚀' }).node, 'web 1 (eu-west) 🚀');
    refuses({ node: 'n'.repeat(129) }, /^node: must be at most 128 characters, got 129$/);
    refuses({}, /^NODE_NAME: must be at most 128 characters/, { NODE_NAME: 'n'.repeat(200) });
  });

  it('names LOG_LEVEL, not logLevel, for a bad level that came from the environment', function () {
    refuses({ logLevel: 'loud' }, /^logLevel: expected one of fatal, .*, got "loud"$/);
    refuses({ logLevel: 'info' }, /^LOG_LEVEL: expected one of fatal, .*, got "verbose"$/, {
      LOG_LEVEL: 'verbose',
    });
  });

  it('shows NaN and Infinity as themselves, not as "number null"', function () {
    refuses({ heartbeatInterval: NaN }, /^heartbeatInterval: expected an integer, got number NaN /);
    refuses({ queues: { default: Infinity } }, /^queues\.default\.limit: .*got number Infinity /);
    refuses({ shutdownGracePeriod: -Infinity }, /got number -Infinity /);
  });

  it("checks the file's node, logLevel and database.url when the environment overrides them", function () {
    // Accepted while NODE_NAME, LOG_LEVEL or DATABASE_URL was set, the same file stopped a
    // node started without them.
    refuses({ node: 5 }, /^node: expected a non-empty string, got number 5$/, { NODE_NAME: 'w' });
    refuses({ node: '*' }, /^node: must not be "\*"/, { NODE_NAME: 'w' });
    refuses({ logLevel: 'loud' }, /^logLevel: expected one of fatal, .*, got "loud"$/, {
      LOG_LEVEL: 'info',
    });
    const env = { DATABASE_URL: 'postgres://u@db/app' };
    refuses({ database: { url: 5 } }, /^database\.url: expected a non-empty string/, env);
    refuses(
      { database: { url: 'mysql://x@y/z' } },
      /^database\.url: the protocol is "mysql:"/,
      env,
    );
    assert.equal(
      load({ database: { url: 'postgres://u@file/app' } }, env).database.url,
      env.DATABASE_URL,
    );
  });
});

describe('configuration database URL', function () {
  const bad: [string, RegExp][] = [
    [
      'not a url',
      /cannot be parsed as a URL; expected postgres:\/\/user:password@host:5432\/database/,
    ],
    ['mysql://x:secret@y/z', /the protocol is "mysql:", expected postgres:\/\/ or postgresql:\/\//],
    ['http://secret@example.com/db', /the protocol is "http:"/],
    ['postgres://u:secret@host:port/db', /cannot be parsed as a URL/],
    ['postgres:db', /expected postgres:\/\/ or postgresql:\/\/ followed by the host/],
    ['/var/run/postgresql db', /cannot be parsed as a URL/],
    // pg read any other sslmode as "use SSL": every connection failed, retried forever.
    ['postgres://u:secret@host/db?sslmode=bogus', /sslmode "bogus" is not one of disable, allow/],
    // pg took these as they were: its connect threw where nothing listened, naming nothing.
    ['postgres://u:secret@host/db?port=abc', /the port parameter "abc" is not a port number/],
    ['postgres://u@host/db?port=99999', /the port parameter "99999" is not a port number \(1 to/],
    ['postgres://u@host/db?port=0', /the port parameter "0" is not a port number/],
    ['postgres://u:secret@host:0/db', /the port is 0, which no server listens on/],
    // pg decodes these when it connects: "URIError: URI malformed", naming nothing.
    ['postgres://%e9@host/db', /the user name holds a percent-encoding that is not UTF-8 text/],
    ['postgres://u:secret%e9@host/db', /the password holds a percent-encoding that is not UTF-8/],
    ['postgres://u@%c3%28/db', /the host holds a percent-encoding that is not UTF-8 text/],
    [
      'postgres://u@host/db%',
      /the database name holds a percent-encoding .*write a literal % as %25/,
    ],
  ];
  for (const [url, message] of bad) {
    it(`refuses ${JSON.stringify(url)}, naming where it came from and never the password`, function () {
      for (const [raw, env, key] of [
        [{}, { DATABASE_URL: url }, 'DATABASE_URL'],
        [{ database: { url } }, {}, 'database.url'],
      ] as const) {
        assert.throws(
          () => load(raw, env),
          (error: unknown) =>
            error instanceof ConfigError &&
            error.message.startsWith(`${key}: `) &&
            message.test(error.message) &&
            !error.message.includes('secret'),
        );
      }
    });
  }

  it('accepts the forms pg takes: host, port, socket folder, empty host, IPv6, spaces', function () {
    for (const url of [
      'postgres://user:pass@db.example.com:5432/app',
      'postgresql://user@localhost/app?sslmode=require',
      'postgres:///app?host=/var/run/postgresql',
      'postgres://user@/app',
      'postgres://[::1]:5432/app',
      'postgres://user:pa ss@localhost/app',
      'POSTGRES://localhost/app',
      // pg reads a % not followed by two hex digits as itself
      'postgres://%zz@localhost/app',
      'postgres:///app?host=/var/run/postgresql&port=5433',
      'postgres://user:100%@localhost/app',
    ])
      assert.equal(load({ database: { url } }).database.url, url);
  });

  it('waitForDatabase stops at once when the URL asks for SSL and the server has none', async function () {
    const url = new URL(databaseUrl());
    url.searchParams.set('sslmode', 'no-verify');
    const probe = new pg.Client({ connectionString: url.toString() });
    const offered = await probe.connect().then(
      () => true,
      () => false,
    );
    await probe.end().catch(() => undefined);
    if (offered) this.skip(); // this server speaks SSL: nothing to refuse
    await assert.rejects(
      waitForDatabase(url.toString(), pino({ level: 'silent' })),
      (error: unknown) =>
        error instanceof DatabaseConfigError &&
        /asks for SSL \(sslmode\), which this server does not offer/.test(error.message),
    );
  });

  it('new Quern() refuses the same URLs, naming connectionString or DATABASE_URL, never the password', function () {
    for (const [url, message] of bad) {
      assert.throws(
        () => new Quern({ connectionString: url }),
        (error: unknown) =>
          error instanceof ConfigError &&
          error.message.startsWith('connectionString: ') &&
          message.test(error.message) &&
          !error.message.includes('secret'),
        url,
      );
    }
    const saved = process.env.DATABASE_URL;
    process.env.DATABASE_URL = 'mysql://x:secret@y/z';
    try {
      assert.throws(
        () => new Quern({}),
        (error: unknown) =>
          error instanceof ConfigError &&
          /^DATABASE_URL: the protocol is "mysql:"/.test(error.message) &&
          !error.message.includes('secret'),
      );
    } finally {
      if (saved === undefined) delete process.env.DATABASE_URL;
      else process.env.DATABASE_URL = saved;
    }
  });

  it('new Quern() refuses an unknown option instead of ignoring it (a misspelt schema used the default one)', async function () {
    assert.throws(
      () => new Quern({ connectionString: databaseUrl(), schma: 'tenant_a' } as never),
      (error: unknown) =>
        error instanceof ConfigError &&
        error.message === 'options: unknown key "schma" (did you mean "schema"?)',
    );
    assert.throws(
      () => new Quern('postgres://localhost/app' as never),
      /options: expected an object, got "postgres:\/\/localhost\/app"/,
    );
    const client = new Quern({ connectionString: databaseUrl(), schema: 'tenant_a' });
    await client.close();
  });

  it('new Quern() refuses a connectionString that is not a string and a pool that cannot query, naming them', async function () {
    // They were a TypeError from inside ("text.replace is not a function" at once, "db.query
    // is not a function" at the first insert), naming neither option.
    const refused = (options: Record<string, unknown>, message: RegExp) =>
      assert.throws(
        () => new Quern(options),
        (error: unknown) => error instanceof ConfigError && message.test(error.message),
        String(Object.keys(options)),
      );
    refused({ connectionString: 5 }, /^connectionString: expected a postgres:\/\/ URL, got 5$/);
    refused({ pool: {} }, /^pool: expected a pg Pool \(new pg\.Pool\(\.\.\.\)\), got an object/);
    refused({ pool: 'postgres://x' }, /^pool: expected a pg Pool/);
    const pool = new pg.Pool({ connectionString: databaseUrl() });
    try {
      // Both: the connectionString was ignored without a word.
      refused(
        { pool, connectionString: databaseUrl() },
        /^options: give pool or connectionString, not both$/,
      );
      await new Quern({ pool }).close();
    } finally {
      await pool.end();
    }
  });

  it('new Quern().close() may be called twice, at once or one after the other', async function () {
    const client = new Quern({ connectionString: databaseUrl() });
    await client.pool.query('SELECT 1');
    await Promise.all([client.close(), client.close()]);
    await client.close();
  });

  it('waitForDatabase refuses an unusable URL at once instead of retrying it', async function () {
    await assert.rejects(
      waitForDatabase('mysql://x:secret@y/z', pino({ level: 'silent' })),
      (error: unknown) =>
        error instanceof DatabaseConfigError &&
        /^database URL: the protocol is "mysql:"/.test(error.message) &&
        !error.message.includes('secret'),
    );
  });
});

describe('configuration paths', function () {
  it('resolves relative workers and dataDir against the config file folder, not the working directory', function () {
    const file = writeConfig({ workers: 'my-workers', database: { dataDir: '../data' } });
    const config = configFromFlags({ config: file });
    assert.notEqual(path.dirname(file), process.cwd());
    assert.equal(config.workers, path.join(path.dirname(file), 'my-workers'));
    assert.equal(config.database.dataDir, path.resolve(path.dirname(file), '../data'));
  });
});
