// The client's `workers` folder: a relative path is resolved against the current directory,
// `.ts` workers load from their dist/ copies as on a node, and a folder that cannot be loaded
// is an error of the first call that needs it, never an unhandled rejection.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { Quern } from '../../src/client.js';
import { ConfigError } from '../../src/config/validate.js';
import { WorkerLoadError } from '../../src/worker/registry.js';
import { defineWorker } from '../../src/worker/define.js';
import { ROOT } from '../helpers/node.js';

const CLIENT_JS = pathToFileURL(path.join(ROOT, 'dist', 'src', 'client.js')).href;

/** Runs an ES module script in its own process (an unhandled rejection would end it with 1). */
async function runScript(
  cwd: string,
  body: string,
): Promise<{ code: number | null; out: string; err: string }> {
  const script = `import { Quern } from ${JSON.stringify(CLIENT_JS)};\n${body}`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { cwd });
  let out = '';
  let err = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr.on('data', (c: Buffer) => (err += c.toString()));
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  return { code, out, err };
}

describe('client workers folder', function () {
  it('a relative folder is resolved against the current directory; .ts workers load from dist/', async function () {
    const { code, out, err } = await runScript(
      ROOT,
      `const quern = new Quern({ testing: 'inline', workers: 'workers' });
      const job = await quern.insert({ worker: 'echo', args: { message: 'hi' } });
      console.log(JSON.stringify({ names: await quern.workerNames(), state: job.state, result: job.result }));`,
    );
    assert.equal(code, 0, err);
    assert.deepEqual(JSON.parse(out), {
      names: ['echo', 'gzip-file', 'hash-file'],
      state: 'completed',
      result: 'hi',
    });
  });

  it('a folder that does not exist rejects the first call that needs it, naming the folder; the process lives on', async function () {
    const cwd = mkdtempSync(path.join(tmpdir(), 'quern-no-workers-'));
    const { code, out, err } = await runScript(
      cwd,
      `const quern = new Quern({ testing: 'inline', workers: 'workers' });
      // A second client on the same folder fails after the first: by the time its failure is
      // seen, the first client's load has failed too, with no call waiting on it yet.
      await new Quern({ testing: 'inline', workers: 'workers' }).ready().catch(() => undefined);
      await new Promise((resolve) => setImmediate(resolve));
      const seen = [];
      for (const call of [() => quern.insert({ worker: 'echo' }), () => quern.ready(), () => quern.workerDefinition('echo')]) {
        try { await call(); seen.push('resolved'); } catch (error) { seen.push(error.name + ': ' + error.message); }
      }
      console.log(JSON.stringify(seen));`,
    );
    assert.equal(code, 0, err);
    const seen = JSON.parse(out) as string[];
    assert.equal(seen.length, 3);
    for (const message of seen) {
      assert.match(message, /^WorkerLoadError: workers: /);
      assert.ok(message.includes(`${path.join(cwd, 'workers')}: no such folder`), message);
      assert.ok(message.includes('resolved against the current directory'), message);
    }
  });

  it('an absolute folder that does not exist is named without the remark on relative paths', async function () {
    const missing = path.join(tmpdir(), 'quern-no-such-workers-folder');
    const quern = new Quern({ testing: 'inline', workers: missing });
    await assert.rejects(quern.ready(), (error: unknown) => {
      assert.ok(error instanceof WorkerLoadError, String(error));
      assert.match(error.message, new RegExp(`^workers: ${missing}: no such folder \\(ENOENT`));
      assert.doesNotMatch(error.message, /relative path/);
      return true;
    });
  });

  it('a worker that cannot be loaded: insert and ready reject with its file; the constructor does not throw', async function () {
    const dir = mkdtempSync(path.join(tmpdir(), 'quern-bad-workers-'));
    writeFileSync(path.join(dir, 'broken.js'), "throw new Error('broken at import');\n");
    const quern = new Quern({ testing: 'inline', workers: dir });
    await assert.rejects(quern.insert({ worker: 'broken' }), (error: unknown) => {
      assert.ok(error instanceof WorkerLoadError, String(error));
      assert.equal(error.file, path.join(dir, 'broken.js'));
      assert.match(error.message, /broken\.js: cannot be loaded: broken at import/);
      return true;
    });
    await assert.rejects(quern.ready(), WorkerLoadError);
  });

  it('a CommonJS worker (.cjs) in the folder is loaded, not skipped unseen', async function () {
    const dir = mkdtempSync(path.join(tmpdir(), 'quern-cjs-workers-'));
    writeFileSync(
      path.join(dir, 'shout.cjs'),
      "module.exports = { name: 'shout', perform: (job) => ({ ok: job.args.text.toUpperCase() }) };\n",
    );
    const quern = new Quern({ testing: 'inline', workers: dir });
    const job = await quern.insert({ worker: 'shout', args: { text: 'hi' } });
    assert.equal(job.state, 'completed');
    assert.equal(job.result, 'HI');
  });

  it('two definitions of one name in a list are refused, as in a folder; one definition given twice is taken', async function () {
    const mail = defineWorker({ name: 'mail', queue: 'mailers', perform: () => undefined });
    const other = defineWorker({ name: 'mail', queue: 'bulk', perform: () => undefined });
    // The later replaced the earlier unseen: inserts of 'mail' went to queue bulk.
    assert.throws(
      () => new Quern({ testing: 'inline', workers: [mail, other] }),
      (error: unknown) =>
        error instanceof WorkerLoadError &&
        error.message === 'workers[1]: worker "mail" is already defined by workers[0]',
    );
    const quern = new Quern({ testing: 'inline', workers: [mail, mail] });
    assert.equal((await quern.insert({ worker: 'mail', args: {} })).queue, 'mailers');
  });

  it('a definition with a misspelt key or a timeout that is no number of ms is refused, naming both', async function () {
    const perform = () => undefined;
    const refused = (definition: Record<string, unknown>, message: RegExp) =>
      assert.throws(
        () => new Quern({ testing: 'inline', workers: [definition as never] }),
        (error: unknown) => error instanceof WorkerLoadError && message.test(error.message),
        JSON.stringify(definition),
      );
    refused(
      { name: 'mail', maxAttemps: 3, perform },
      /^workers\[0\]: worker "mail": unknown key "maxAttemps" \(did you mean "maxAttempts"\?\)$/,
    );
    refused(
      { name: 'mail', backof: () => 1, perform },
      /unknown key "backof" \(did you mean "backoff"\?\)/,
    );
    for (const [timeout, shown] of [
      [-5, '-5'],
      [Number.NaN, 'NaN'],
      [Infinity, 'Infinity'],
      ['100', '"100"'],
    ] as const)
      assert.throws(
        () =>
          new Quern({ testing: 'inline', workers: [{ name: 'mail', timeout, perform } as never] }),
        (error: unknown) =>
          error instanceof WorkerLoadError &&
          error.message ===
            `workers[0]: worker "mail": timeout must be a number of ms (0: none) or a function of the job, got ${shown}`,
        shown,
      );
    // What a definition may hold is still taken, in a folder as in a list.
    const dir = mkdtempSync(path.join(tmpdir(), 'quern-definition-keys-'));
    writeFileSync(
      path.join(dir, 'full.mjs'),
      `export default { name: 'full', queue: 'q', maxAttempts: 2, priority: 1, tags: ['t'], timeout: 0,
        backoff: () => 1, unique: { period: 5 }, validate: () => null, perform() {} };\n`,
    );
    const quern = new Quern({ testing: 'inline', workers: dir });
    await quern.ready();
    assert.equal((await quern.workerDefinition('full'))?.maxAttempts, 2);
  });

  it('a definition whose maxAttempts, unique or tags no insert could take is refused at load, not at every insert', function () {
    const perform = () => undefined;
    const refused = (definition: Record<string, unknown>, message: RegExp) =>
      assert.throws(
        () => new Quern({ testing: 'inline', workers: [definition as never] }),
        (error: unknown) => error instanceof WorkerLoadError && message.test(error.message),
        JSON.stringify(definition),
      );
    refused(
      { name: 'mail', maxAttempts: 1e10, perform },
      /^workers\[0\]: worker "mail": maxAttempts must be an integer from 1 to 2147483646, got 10000000000$/,
    );
    refused(
      { name: 'mail', unique: { period: -1 }, perform },
      /^workers\[0\]: worker "mail": unique\.period: expected a number of seconds above 0 and at most 3153600000 \(100 years\), or "infinity", got -1$/,
    );
    refused(
      { name: 'mail', unique: { states: ['done'] }, perform },
      /^workers\[0\]: worker "mail": unique\.states: "done" is not one of /,
    );
    refused(
      { name: 'mail', unique: true, perform },
      /^workers\[0\]: worker "mail": unique: expected/,
    );
    // Tags that no insert could store failed every insert of the worker, as the insert's own.
    refused(
      { name: 'mail', tags: 'urgent', perform },
      /^workers\[0\]: worker "mail": tags: must be an array/,
    );
    refused(
      { name: 'mail', tags: ['ok', ''], perform },
      /^workers\[0\]: worker "mail": tags: must be an array of non-empty strings, got "" at tags\[1\]$/,
    );
    // keys name args, which only an insert has: they are checked there.
    new Quern({
      testing: 'inline',
      workers: [{ name: 'mail', unique: { keys: ['to'] }, perform }],
    });
  });

  it('a path to a file, an empty string or a number as workers is refused', async function () {
    const dir = mkdtempSync(path.join(tmpdir(), 'quern-file-workers-'));
    const file = path.join(dir, 'not-a-folder.js');
    writeFileSync(file, 'export default {};\n');
    const quern = new Quern({ testing: 'inline', workers: file });
    await assert.rejects(quern.ready(), /workers: .*not-a-folder\.js: not a folder/);
    assert.throws(() => new Quern({ testing: 'inline', workers: '' }), ConfigError);
    assert.throws(
      () => new Quern({ testing: 'inline', workers: 7 as never }),
      /workers: expected a folder path or an array of worker definitions, got 7/,
    );
  });
});
