// Commands run at once with no node running, on one embedded data folder: one starts the server,
// the others wait for it and use it, and it is stopped once the last of them is done. They raced:
// two initdb runs on the folder, two servers on it, or a command using another's server until
// that one stopped it under it.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { commandLockFile, takeCommandLock } from '../../src/cli/embedded-commands.js';
import { eventually } from '../helpers/db.js';
import { CLUSTER_JS, FIXTURE_WORKERS, ROOT, runCli, writeConfig } from '../helpers/node.js';
import { processAlive } from '../../src/db/embedded.js';

describe('CLI commands at once on the embedded PostgreSQL', function () {
  this.timeout(120000);
  let dataDir: string;

  afterEach(function () {
    const pidFile = path.join(dataDir, 'postmaster.pid');
    if (existsSync(pidFile)) {
      const pid = Number(readFileSync(pidFile, 'utf8').split('\n')[0]);
      if (processAlive(pid)) process.kill(pid, 'SIGKILL');
    }
    // The folder mkdtemp made, with the data folder in it.
    rmSync(path.dirname(dataDir), { recursive: true, force: true });
  });

  it('four inserts at once on a new data folder, then four more: each inserts its job, and no server is left', async function () {
    dataDir = path.join(mkdtempSync(path.join(tmpdir(), 'quern-commands-')), 'data');
    const config = writeConfig({
      schema: 'commands',
      database: { dataDir },
      workers: FIXTURE_WORKERS,
    });
    const ids: number[] = [];
    for (const round of ['new folder', 'initialised folder']) {
      const runs = await Promise.all(
        [1, 2, 3, 4].map((n) =>
          runCli(['insert', 'ok', JSON.stringify({ value: n }), '--config', config], {
            DATABASE_URL: '',
          }),
        ),
      );
      for (const run of runs) {
        assert.equal(run.code, 0, `${round}: ${run.stderr}`);
        ids.push(Number(run.stdout.trim()));
      }
    }
    assert.deepEqual(
      [...ids].sort((a, b) => a - b),
      [1, 2, 3, 4, 5, 6, 7, 8],
    );
    // The command that started the server stopped it once the others were done.
    await eventually(
      () => {
        const pidFile = path.join(dataDir, 'postmaster.pid');
        return Promise.resolve(
          !existsSync(pidFile) ||
            !processAlive(Number(readFileSync(pidFile, 'utf8').split('\n')[0])),
        );
      },
      15000,
      'the server to stop',
    );
  });

  it("a user's psql session on the server does not hold the command that started it", async function () {
    // The command waited at its end, up to a minute, while any other client was connected (a
    // psql session of the user's): it now waits only for other commands' connections.
    dataDir = path.join(mkdtempSync(path.join(tmpdir(), 'quern-commands-')), 'data');
    const config = writeConfig({
      schema: 'commands',
      database: { dataDir },
      workers: FIXTURE_WORKERS,
    });
    const migrated = await runCli(['migrate', '--config', config], { DATABASE_URL: '' });
    assert.equal(migrated.code, 0, migrated.stderr);
    const watch = spawn(process.execPath, [CLUSTER_JS, 'status', '--watch', '--config', config], {
      cwd: ROOT,
      env: { ...process.env, DATABASE_URL: '', LOG_LEVEL: 'silent' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const exited = once(watch, 'exit');
    let stdout = '';
    watch.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    await eventually(() => Promise.resolve(stdout.includes('frame 1')), 30000, 'the first frame');
    const psql = new pg.Client({
      connectionString: readFileSync(path.join(dataDir, 'quern-url'), 'utf8').trim(),
      application_name: 'psql',
    });
    psql.on('error', () => undefined);
    await psql.connect();
    try {
      const started = Date.now();
      watch.kill('SIGINT');
      const [code] = (await exited) as [number | null];
      const tookMs = Date.now() - started;
      assert.equal(code, 0);
      assert.ok(tookMs < 20000, `the command took ${tookMs} ms to exit`);
    } finally {
      await psql.end().catch(() => undefined);
    }
  });

  it('a lock file another command has created but not yet written its pid in is not taken', function () {
    // The lock file was created empty and its pid written after: a command that read it in
    // between took it for a dead command's, removed it and took the lock, and two commands
    // started two servers on one folder ('Is another postmaster ... running').
    dataDir = path.join(mkdtempSync(path.join(tmpdir(), 'quern-commands-')), 'data');
    const file = commandLockFile(dataDir);
    writeFileSync(file, '');
    try {
      assert.equal(takeCommandLock(file), null, 'the lock being written is left to its writer');
      assert.equal(readFileSync(file, 'utf8'), '', 'and its file is untouched');
      // One left empty for long (its writer died in between) is stale, and taken.
      const old = new Date(Date.now() - 60_000);
      utimesSync(file, old, old);
      const release = takeCommandLock(file);
      assert.ok(release, 'an empty lock file a minute old is taken');
      assert.equal(readFileSync(file, 'utf8').trim(), String(process.pid));
      release();
      assert.equal(existsSync(file), false);
    } finally {
      rmSync(file, { force: true });
    }
  });
});
