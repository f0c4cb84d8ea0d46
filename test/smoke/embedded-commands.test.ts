// Commands run at once with no node running, on one embedded data folder: one starts the server,
// the others wait for it and use it, and it is stopped once the last of them is done. They raced:
// two initdb runs on the folder, two servers on it, or a command using another's server until
// that one stopped it under it.

import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { eventually } from '../helpers/db.js';
import { FIXTURE_WORKERS, runCli, writeConfig } from '../helpers/node.js';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('CLI commands at once on the embedded PostgreSQL', function () {
  this.timeout(120000);
  let dataDir: string;

  afterEach(function () {
    const pidFile = path.join(dataDir, 'postmaster.pid');
    if (existsSync(pidFile)) {
      const pid = Number(readFileSync(pidFile, 'utf8').split('\n')[0]);
      if (alive(pid)) process.kill(pid, 'SIGKILL');
    }
    rmSync(dataDir, { recursive: true, force: true });
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
          !existsSync(pidFile) || !alive(Number(readFileSync(pidFile, 'utf8').split('\n')[0])),
        );
      },
      15000,
      'the server to stop',
    );
  });
});
