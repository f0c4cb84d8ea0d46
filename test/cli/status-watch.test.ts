import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cleanup, createSchema, eventually, type TestSchema } from '../helpers/db.js';
import { CLUSTER_JS, ROOT, runCli, spawnCluster, writeConfig } from '../helpers/node.js';
import { PrivatePostgres } from '../helpers/private-pg.js';
import { watchStatus } from '../../src/cli/watch.js';

/** The frames of a --watch output: each starts with its header line. */
function frames(output: string): { at: number; frame: number; text: string }[] {
  return output
    .split(/(?=quern t_\S+ {2}\d{4}-)/)
    .map((text) => {
      const match = /^quern \S+ {2}(\S+) {2}frame (\d+)/.exec(text);
      return match ? { at: Date.parse(match[1]!), frame: Number(match[2]), text } : null;
    })
    .filter((f): f is { at: number; frame: number; text: string } => f !== null);
}

describe('status --watch', function () {
  let db: TestSchema;
  beforeEach(async function () {
    db = await createSchema(this.currentTest!.title);
  });
  afterEach(async function () {
    await cleanup(this, db);
  });

  it('prints a fresh frame each second, showing new jobs, until SIGINT (piped)', async function () {
    const config = writeConfig({ schema: db.schema, database: { url: db.url } });
    const watch = spawnCluster(['status', '--watch', '--config', config]);
    try {
      await watch.waitForLog(/frame 1 /);
      await db.client.insertMany([
        { worker: 'ok', queue: 'watched' },
        { worker: 'ok', queue: 'watched' },
        { worker: 'ok', queue: 'watched' },
      ]);
      await eventually(
        () => Promise.resolve(frames(watch.output()).some((f) => /^watched\s+3\s/m.test(f.text))),
        10000,
        'a frame with the three new jobs',
      );
      await watch.waitForLog(/frame 3 /);
    } finally {
      watch.child.kill('SIGINT');
    }
    assert.equal((await watch.exited).code, 0);
    const seen = frames(watch.output());
    assert.ok(seen.length >= 3, `at least three frames, got ${seen.length}`);
    assert.deepEqual(
      seen.map((f) => f.frame),
      seen.map((_, i) => i + 1),
    );
    assert.ok(!/^watched/m.test(seen[0]!.text), 'the first frame came before the insert');
    for (let i = 1; i < seen.length; i++) {
      const gap = seen[i]!.at - seen[i - 1]!.at;
      assert.ok(gap >= 500 && gap < 5000, `frames about a second apart, got ${gap} ms`);
    }
    assert.match(seen.at(-1)!.text, /QUEUE\s+AVAILABLE\s+SCHEDULED/);
    assert.ok(!watch.output().includes('\x1b['), 'no terminal codes when piped');
  });

  it('counts waiting jobs every frame, finished ones again only after finishedEveryMs', async function () {
    this.timeout(30000);
    await db.client.insertMany([
      { worker: 'ok', queue: 'mixed' },
      { worker: 'ok', queue: 'mixed' },
    ]);
    await db.query(
      `UPDATE jobs SET state = 'completed', completed_at = now() WHERE id = (SELECT min(id) FROM jobs)`,
    );
    let text = '';
    const out = { isTTY: false, write: (chunk: string) => ((text += chunk), true), on: () => out };
    let stop: () => void = () => undefined;
    const until = new Promise<void>((resolve) => (stop = resolve));
    const frameCount = () => frames(text).length;
    const watching = watchStatus(db.client, {
      intervalMs: 100,
      finishedEveryMs: 60000,
      out: out as unknown as NodeJS.WriteStream,
      until,
    });
    try {
      await eventually(() => Promise.resolve(frameCount() >= 1), 10000, 'a first frame');
      // Two more available, and the waiting one finished: the new available count shows at
      // once, the finished one waits for the next count of the finished jobs, a minute away.
      await db.client.insertMany([
        { worker: 'ok', queue: 'mixed' },
        { worker: 'ok', queue: 'mixed' },
      ]);
      await db.query(
        `UPDATE jobs SET state = 'completed', completed_at = now() WHERE id = (SELECT min(id) + 1 FROM jobs)`,
      );
      const seen = frameCount();
      await eventually(() => Promise.resolve(frameCount() >= seen + 12), 10000, 'frames after it');
    } finally {
      stop();
      await watching;
    }
    // QUEUE AVAILABLE SCHEDULED EXECUTING RETRYABLE COMPLETED DISCARDED CANCELLED
    const rowOf = (frame: string) => /^mixed\s+(\d+)\s+\d+\s+\d+\s+\d+\s+(\d+)/m.exec(frame);
    const all = frames(text);
    assert.deepEqual(rowOf(all[0]!.text)?.slice(1), ['1', '1']);
    assert.deepEqual(rowOf(all.at(-1)!.text)?.slice(1), ['2', '1']);
    const [completed] = await db.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM jobs WHERE state = 'completed'`,
    );
    assert.equal(completed?.n, 2, 'the frame shows the earlier count, not the table as it is');
    assert.match(all.at(-1)!.text, /COMPLETED, DISCARDED and CANCELLED as counted \d+s ago/);
  });

  it('ends quietly, exit 0, when the reader of its output goes away (status --watch | head)', async function () {
    const config = writeConfig({ schema: db.schema, database: { url: db.url } });
    const child = spawn(process.execPath, [CLUSTER_JS, 'status', '--watch', '--config', config], {
      cwd: ROOT,
      env: { ...process.env, DATABASE_URL: '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
    // Like head: read the first frame, then close the pipe.
    await new Promise<void>((resolve) => child.stdout.once('data', () => resolve()));
    child.stdout.destroy();
    const timer = setTimeout(() => child.kill('SIGKILL'), 10000);
    const code = await exited;
    clearTimeout(timer);
    assert.equal(code, 0, stderr);
    assert.ok(!/EPIPE|Unhandled 'error' event/.test(stderr), stderr);
  });

  it('keeps running while the database is away, and shows it coming back', async function () {
    const server = new PrivatePostgres();
    await server.start();
    const config = writeConfig({ schema: 't_watch_outage', database: { url: server.url } });
    // status reads an existing schema only (a node, or migrate, creates it).
    const migrated = await runCli(['migrate', '--config', config]);
    assert.equal(migrated.code, 0, migrated.stderr);
    const watch = spawnCluster(['status', '--watch', '--config', config]);
    try {
      await watch.waitForLog(/frame 1 /);
      await server.stop();
      await watch.waitForLog(/database not answering: .*; retrying each second/, 15000);
      await server.start();
      const mark = watch.output().length;
      await eventually(
        () => Promise.resolve(/QUEUE\s+AVAILABLE/.test(watch.output().slice(mark))),
        20000,
        'a full frame after the database is back',
      );
    } finally {
      watch.child.kill('SIGINT');
      await server.destroy();
    }
    assert.equal((await watch.exited).code, 0);
  });

  it('redraws in place on a terminal and restores it on Ctrl-C', async function () {
    if (!existsSync('/usr/bin/script')) this.skip();
    const config = writeConfig({ schema: db.schema, database: { url: db.url } });
    // script(1) runs the command on a pseudo-terminal, as a user's shell would. It starts the
    // command through a shell (here /bin/sh); `exec` makes the view the terminal's only process, as
    // dash, left waiting in between, would itself die of the Ctrl-C (exit 130).
    const command = `exec ${process.execPath} ${CLUSTER_JS} status --watch --config ${config}`;
    const child = spawn('/usr/bin/script', ['-qfec', command, '/dev/null'], {
      cwd: ROOT,
      env: { ...process.env, SHELL: '/bin/sh', DATABASE_URL: '', COLUMNS: '100', LINES: '40' },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (c: Buffer) => (output += c.toString()));
    child.stderr.on('data', (c: Buffer) => (output += c.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
    try {
      await eventually(() => Promise.resolve(/frame 2 /.test(output)), 15000, 'two frames');
    } finally {
      child.stdin.write('\x03'); // Ctrl-C through the terminal: SIGINT to the view
    }
    assert.equal(await exited, 0, output);
    assert.ok(output.includes('\x1b[?1049h'), 'switches to the alternate screen');
    assert.ok(output.includes('\x1b[H'), 'redraws from the top');
    assert.ok(output.includes('\x1b[?25h\x1b[?1049l'), 'restores the cursor and the screen');
  });
});
