import assert from 'node:assert/strict';
import pg from 'pg';
import { databaseUrl } from '../helpers/db.js';
import { nodeConfig, runCli, writeConfig } from '../helpers/node.js';

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
    ['a file that is not JSON', () => ({}), /is not valid JSON/],
  ];

  for (const [what, config, message] of cases) {
    it(what, async function () {
      const file = writeConfig(config());
      if (what === 'a file that is not JSON') {
        const { writeFileSync } = await import('node:fs');
        writeFileSync(file, '{ "queues": { "default": 10, } }');
      }
      const result = await runCli(['--config', file], { LOG_LEVEL: 'info' });
      assert.equal(result.code, 1, `exit code; stderr: ${result.stderr}`);
      assert.match(result.stderr, message);
      assert.doesNotMatch(result.stdout + result.stderr, /started|database ready/);
    });
  }

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
