// quern/testing under jest and vitest, for real: the same scenario (test/fixtures/runners) run
// by each runner in its own process; a failing assertEnqueued must fail that runner's test with
// the helper's message.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { cleanup, createSchema, type TestSchema } from '../helpers/db.js';
import { ROOT } from '../helpers/node.js';

const RUNNERS = path.join(ROOT, 'test', 'fixtures', 'runners');
const commands: Record<string, string[]> = {
  vitest: [path.join(ROOT, 'node_modules', 'vitest', 'vitest.mjs'), 'run', '--root', RUNNERS],
  jest: [
    '--experimental-vm-modules',
    path.join(ROOT, 'node_modules', 'jest', 'bin', 'jest.js'),
    '--config',
    path.join(RUNNERS, 'jest.config.json'),
    '--rootDir',
    RUNNERS,
  ],
};

function run(
  runner: string,
  env: Record<string, string>,
): Promise<{ code: number | null; output: string }> {
  const child = spawn(process.execPath, commands[runner]!, {
    cwd: ROOT,
    env: { ...process.env, NO_COLOR: '1', FORCE_COLOR: '0', CI: 'true', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr.on('data', (c: Buffer) => (output += c.toString()));
  return new Promise((resolve) => child.on('exit', (code) => resolve({ code, output })));
}

describe('quern/testing under other runners', function () {
  this.timeout(60000);
  let db: TestSchema;
  beforeEach(async function () {
    db = await createSchema(this.currentTest!.title);
  });
  afterEach(async function () {
    await cleanup(this, db);
  });

  for (const runner of Object.keys(commands)) {
    it(`${runner}: the helpers pass, and a failed assertEnqueued fails the test with its message`, async function () {
      const env = { QUERN_TEST_URL: db.url, QUERN_TEST_SCHEMA: db.schema };
      const passing = await run(runner, env);
      assert.equal(passing.code, 0, passing.output);
      assert.match(passing.output, /2 passed/);
      await db.query('DELETE FROM jobs');
      const failing = await run(runner, { ...env, QUERN_EXPECT_FAIL: '1' });
      assert.equal(failing.code, 1, failing.output);
      assert.match(
        failing.output,
        /Expected a job matching \{"worker":"greet","args":\{"name":"Nobody"\}\}/,
      );
      assert.match(failing.output, /1 failed/);
    });
  }
});
