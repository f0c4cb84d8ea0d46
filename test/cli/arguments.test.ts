// CLI arguments checked at the edge: ids and counts are whole numbers a job id or count can be
// (a 20-digit id is a usage error, exit 2, not a database error), enqueue-dir names a folder that
// is missing, and --prefix picks the schema on every command that uses one.

import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { cleanup, createSchema, type TestSchema } from '../helpers/db.js';
import { nodeConfig, runCli, writeConfig } from '../helpers/node.js';

describe('CLI arguments', function () {
  let db: TestSchema;
  let config: string;
  beforeEach(async function () {
    db = await createSchema(this.currentTest!.title);
    config = writeConfig(nodeConfig(db.schema, db.url));
  });
  afterEach(async function () {
    await cleanup(this, db);
  });

  const huge = '99999999999999999999';
  const usageErrors: [string, string[], RegExp][] = [
    ['a job id beyond 2^53', ['job', 'show', huge], /job show ID: expected a whole number/],
    ['a job id of 0', ['job', 'cancel', '0'], /job cancel ID: expected a whole number from 1/],
    ['a job id with a fraction', ['job', 'retry', '1.5'], /job retry ID/],
    ['a --limit beyond 2^53', ['jobs', '--limit', huge], /--limit: expected a whole number/],
    ['a --down beyond 2^53', ['migrate', '--down', huge], /--down: expected a whole number/],
    ['a queue --limit of 0', ['queue', 'scale', 'default', '--limit', '0'], /--limit/],
    [
      'a --limit on queue pause',
      ['queue', 'pause', 'default', '--limit', '5'],
      /--limit: only queue scale and queue start take it, not queue pause/,
    ],
    [
      'a --node of "*", which saved settings read as every node',
      ['queue', 'pause', 'default', '--node', '*'],
      /--node: must not be "\*", which stands for every node in queue settings; leave --node out/,
    ],
    ['a --batch of 0', ['enqueue-dir', '.', '--batch', '0'], /--batch/],
    ['a --priority beyond 2^53', ['insert', 'ok', '--priority', huge], /--priority/],
    ['a --schedule-in past any date', ['insert', 'ok', '--schedule-in', huge], /--schedule-in/],
    ['a bad --prefix', ['status', '--prefix', 'Not-A-Schema'], /--prefix: "Not-A-Schema"/],
    [
      'an integer in ARGS_JSON beyond 2^53 - 1',
      ['insert', 'ok', '{"a":1.5,"b":[1e30,{"c":12345678901234567890123}]}'],
      /ARGS_JSON: args\.b\[1\]\.c: the integer 12345678901234567890123 is beyond 9007199254740991 \(2\^53 - 1\).*stored as 1\.2345678901234568e\+22; write it as a string \("12345678901234567890123"\)/,
    ],
    [
      'a negative integer in ARGS_JSON beyond -(2^53 - 1), beside a string of digits',
      ['insert', 'ok', '{"s":"99999999999999999999","n":-9007199254740993}'],
      /ARGS_JSON: args\.n: the integer -9007199254740993 is beyond/,
    ],
    [
      'a key given twice in ARGS_JSON',
      ['insert', 'ok', '{"to":"a@x","opts":[{"cc":"b","cc":"c"}]}'],
      /ARGS_JSON: args\.opts\[0\]: the key "cc" is given twice; JSON keeps only the last, so the first would be lost/,
    ],
    [
      'an option given twice',
      ['insert', 'ok', '--queue', 'a', '--queue', 'b'],
      /--queue: given more than once \(--queue a, --queue b\)/,
    ],
    [
      'an option given twice, once with =',
      ['jobs', '--limit=5', '--state', 'available', '--limit', '6'],
      /--limit: given more than once \(--limit 5, --limit 6\)/,
    ],
    [
      'a global option given twice',
      ['status', '--prefix', 'a', '--prefix', 'b'],
      /--prefix: given more than once/,
    ],
    [
      'a flag given twice',
      ['stats', '--json', '--json'],
      /--json: given more than once \(--json, --json\)/,
    ],
    [
      'an empty tag in --tags',
      ['insert', 'ok', '--tags', 'a,,b'],
      /--tags: .*none of them empty, got "a,,b"/,
    ],
    ['an empty --tags', ['insert', 'ok', '--tags', ''], /--tags: .*got ""/],
    ['a --tags ending in a comma', ['insert', 'ok', '--tags', 'a, '], /--tags: .*got "a, "/],
  ];
  for (const [what, args, message] of usageErrors) {
    it(`exits 2 with a message for ${what}`, async function () {
      const { code, stderr } = await runCli([...args, '--config', config]);
      assert.equal(code, 2, stderr);
      assert.match(stderr, message);
      assert.match(stderr, /Usage: node cluster\.js/);
      assert.doesNotMatch(stderr, /\n\s+at /, 'no stack trace');
    });
  }

  it('ARGS_JSON keeps integers up to 2^53 - 1, digits in strings and doubles written as such', async function () {
    const args =
      '{"max":9007199254740991,"min":-9007199254740991,"s":"12345678901234567890123","d":1e30}';
    const { code, stderr } = await runCli(['insert', 'ok', args, '--config', config]);
    assert.equal(code, 0, stderr);
    const [row] = await db.query<{ args: string }>('SELECT args::text FROM jobs');
    assert.equal(
      row!.args,
      '{"d": 1000000000000000000000000000000, "s": "12345678901234567890123", "max": 9007199254740991, "min": -9007199254740991}',
    );
  });

  it('enqueue-dir names a folder that does not exist or is a file, exit 2, nothing inserted', async function () {
    const dir = mkdtempSync(path.join(tmpdir(), 'quern-enqueue-dir-'));
    const missing = path.join(dir, 'nonexistent');
    const file = path.join(dir, 'a-file');
    writeFileSync(file, 'x');
    for (const [target, message] of [
      [missing, `error: enqueue-dir: folder ${missing} does not exist`],
      [file, `error: enqueue-dir: ${file} is not a folder`],
    ] as const) {
      const { code, stderr } = await runCli(['enqueue-dir', target, '--config', config]);
      assert.equal(code, 2, stderr);
      assert.equal(stderr.split('\n')[0], message);
      assert.doesNotMatch(stderr, /Error: ENOENT|\n\s+at /);
    }
    assert.deepEqual(await db.query('SELECT id FROM jobs'), []);
  });

  it('enqueue-dir leaves out a file or folder whose name is not UTF-8, says which, and exits 1', async function () {
    // Its job named a path with U+FFFD in it, no file, and failed every attempt with ENOENT.
    const dir = mkdtempSync(path.join(tmpdir(), 'quern-enqueue-dir-'));
    writeFileSync(path.join(dir, 'good'), 'x');
    writeFileSync(Buffer.from(`${dir}/bad\xffname`, 'latin1'), 'x');
    mkdirSync(Buffer.from(`${dir}/sub\xfe`, 'latin1'));
    writeFileSync(Buffer.from(`${dir}/sub\xfe/inside`, 'latin1'), 'x');
    const { code, stdout, stderr } = await runCli([
      'enqueue-dir',
      dir,
      '--worker',
      'ok',
      '--config',
      config,
    ]);
    assert.equal(code, 1, stderr);
    assert.match(stdout, /inserted 1 ok jobs/);
    assert.match(
      stderr,
      new RegExp(
        `enqueue-dir: left out 2 files or folders whose name is not UTF-8 \\(no job's args can name it; rename it\\): .*${dir}/bad\uFFFDname`,
      ),
    );
    assert.match(stderr, new RegExp(`${dir}/sub\uFFFD/`));
    assert.deepEqual(await db.query('SELECT args FROM jobs'), [
      { args: { path: path.join(dir, 'good') } },
    ]);
  });

  it('--prefix picks the schema for insert, jobs, job, status, stats and queue', async function () {
    // The config names db's schema; every command below is pointed at another one.
    const other = await createSchema(`${this.test!.title}-other`);
    try {
      const prefix = ['--prefix', other.schema, '--config', config];
      const inserted = await runCli(['insert', 'ok', '{"n":1}', ...prefix]);
      assert.equal(inserted.code, 0, inserted.stderr);
      const id = Number(inserted.stdout);
      assert.deepEqual(
        (await other.query<{ id: number }>('SELECT id FROM jobs')).map((r) => r.id),
        [id],
      );
      assert.deepEqual(await db.query('SELECT id FROM jobs'), [], 'nothing in the config schema');

      const listed = await runCli(['jobs', ...prefix]);
      assert.equal(listed.code, 0, listed.stderr);
      assert.match(listed.stdout, new RegExp(`^${id}\\s+available\\s+default\\s+ok`, 'm'));
      const shown = await runCli(['job', 'show', String(id), ...prefix]);
      assert.equal(shown.code, 0, shown.stderr);
      assert.equal((JSON.parse(shown.stdout) as { id: number }).id, id);
      const status = await runCli(['status', ...prefix]);
      assert.equal(status.code, 0, status.stderr);
      assert.match(status.stdout, /^default\s+1\s+0/m, 'the other schema counts its job');
      const stats = await runCli(['stats', '--json', ...prefix]);
      assert.equal(stats.code, 0, stats.stderr);
      assert.ok((JSON.parse(stats.stdout) as { queues: object }).queues, stats.stdout);
      const paused = await runCli(['queue', 'pause', 'default', ...prefix]);
      assert.equal(paused.code, 0, paused.stderr);
      const shownInConfigSchema = await runCli(['job', 'show', String(id), '--config', config]);
      assert.equal(shownInConfigSchema.code, 1, 'the job is not in the config schema');
    } finally {
      await other.drop();
    }
  });
});
