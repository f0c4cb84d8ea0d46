import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import sinon from 'sinon';
import { Progress } from '../../src/cli/progress.js';
import type { QuernNode } from '../../src/node/node.js';
import { cleanup, createSchema, eventually, type TestSchema } from '../helpers/db.js';
import {
  FIXTURE_WORKERS,
  runCli,
  spawnCluster,
  startNode,
  writeConfig,
  type SpawnedNode,
} from '../helpers/node.js';

function fakeStream(isTTY: boolean) {
  const writes: string[] = [];
  const out = { isTTY, write: (s: string) => writes.push(s) } as unknown as NodeJS.WriteStream;
  return { out, writes };
}

describe('progress of long CLI operations', function () {
  describe('Progress', function () {
    let clock: sinon.SinonFakeTimers;
    beforeEach(() => (clock = sinon.useFakeTimers({ now: 1_000_000 })));
    afterEach(() => clock.restore());

    it('piped: a plain line at most once a second, and the final state', function () {
      const { out, writes } = fakeStream(false);
      let done = 0;
      const progress = new Progress((ms) => `${done} done after ${ms} ms`, { out });
      progress.update();
      done = 5;
      clock.tick(300);
      progress.update(); // too soon
      clock.tick(800);
      progress.update(); // 100 ms after the interval's own redraw at 1 s: too soon
      done = 9;
      progress.finish();
      assert.deepEqual(writes, [
        '0 done after 0 ms\n',
        '5 done after 1000 ms\n',
        '9 done after 1100 ms\n',
      ]);
    });

    it('on a terminal: one line rewritten in place, ended by a newline', function () {
      const { out, writes } = fakeStream(true);
      let done = 0;
      const progress = new Progress(() => `${done} done`, { out });
      progress.update();
      done = 3;
      clock.tick(250);
      progress.finish();
      assert.deepEqual(writes, ['\r0 done\x1b[K', '\r3 done\x1b[K', '\r3 done\x1b[K\n']);
    });

    it('shows nothing for a quick step that renders nothing yet', function () {
      const { out, writes } = fakeStream(false);
      const progress = new Progress((ms) => (ms < 1000 ? '' : `slow: ${ms} ms`), { out });
      clock.tick(500);
      progress.finish();
      assert.deepEqual(writes, []);
      const slow = new Progress((ms) => (ms < 1000 ? '' : `slow: ${ms} ms`), { out });
      clock.tick(2000);
      slow.finish();
      assert.deepEqual(writes, ['slow: 1000 ms\n', 'slow: 2000 ms\n']);
    });
  });

  describe('commands', function () {
    let db: TestSchema;
    let node: QuernNode | undefined;
    beforeEach(async function () {
      db = await createSchema(this.currentTest!.title, { migrate: false });
    });
    afterEach(async function () {
      await node?.stop();
      node = undefined;
      await cleanup(this, db);
    });

    it('migrate lists each step and the versions', async function () {
      const config = writeConfig({ schema: db.schema, database: { url: db.url } });
      const result = await runCli(['migrate', '--config', config]);
      assert.equal(result.code, 0, result.stderr);
      assert.match(result.stdout, /^applying 001_jobs\napplying 002_nodes\napplying 003_\w+\n/);
      assert.match(result.stdout, /version 0 -> \d+/);
    });

    it('enqueue-dir shows inserts, then with --wait the jobs being worked through', async function () {
      const dir = mkdtempSync(path.join(tmpdir(), 'quern-enqueue-'));
      mkdirSync(path.join(dir, 'sub'));
      for (let i = 0; i < 25; i++)
        writeFileSync(path.join(dir, i % 2 ? 'sub' : '', `f${i}.txt`), String(i));
      const config = writeConfig({
        schema: db.schema,
        database: { url: db.url },
        workers: FIXTURE_WORKERS,
      });
      node = await startNode(db.schema, db.url);
      const result = await runCli([
        'enqueue-dir',
        dir,
        '--worker',
        'ok',
        '--batch',
        '10',
        '--wait',
        '--config',
        config,
      ]);
      assert.equal(result.code, 0, result.stderr);
      assert.match(result.stdout, /inserted 25 ok jobs for files under/);
      assert.match(result.stdout, /finished: 25 completed, 0 discarded, 0 cancelled/);
      assert.match(result.stderr, /inserting: 25 jobs in \d+\.\ds/);
      assert.match(result.stderr, /working: 25\/25 finished \(100%\), 0 running/);
      assert.doesNotMatch(result.stderr, /no live node runs/);
      const [row] = await db.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM jobs WHERE state = 'completed'`,
      );
      assert.equal(row!.n, 25);
    });

    /**
     * A folder of three files and a config file for this test's schema; `enqueue` starts
     * `enqueue-dir --wait` on them.
     */
    function threeFiles(): { config: string; enqueue: () => SpawnedNode } {
      const dir = mkdtempSync(path.join(tmpdir(), 'quern-enqueue-'));
      for (let i = 0; i < 3; i++) writeFileSync(path.join(dir, `f${i}.txt`), String(i));
      const config = writeConfig({
        schema: db.schema,
        database: { url: db.url },
        workers: FIXTURE_WORKERS,
      });
      const enqueue = (): SpawnedNode =>
        spawnCluster(['enqueue-dir', dir, '--worker', 'ok', '--wait', '--config', config]);
      return { config, enqueue };
    }

    it('enqueue-dir --wait says when no live node runs the queue, and ends once one does', async function () {
      this.timeout(60000);
      const { config, enqueue } = threeFiles();
      const migrated = await runCli(['migrate', '--config', config]);
      assert.equal(migrated.code, 0, migrated.stderr);
      const cli = enqueue();
      await cli.waitForLog(/no live node runs queue "default": its jobs wait until a node/, 20000);
      node = await startNode(db.schema, db.url);
      const exited = await cli.exited;
      assert.equal(exited.code, 0, cli.output());
      assert.match(cli.output(), /finished: 3 completed, 0 discarded, 0 cancelled/);
    });

    it('enqueue-dir --wait says when the queue is paused on every live node, and ends once resumed', async function () {
      this.timeout(60000);
      const { enqueue } = threeFiles();
      node = await startNode(db.schema, db.url);
      await db.client.pauseQueue('default');
      await eventually(async () => {
        const [row] = await db.query<{ paused: boolean }>(
          `SELECT (queues->'default'->>'paused')::boolean AS paused FROM nodes`,
        );
        return row?.paused === true;
      });
      const cli = enqueue();
      // Before, it waited at 0/3 finished with no word of why.
      await cli.waitForLog(/queue "default" is paused on every live node that runs it/, 20000);
      await db.client.resumeQueue('default');
      const exited = await cli.exited;
      assert.equal(exited.code, 0, cli.output());
      assert.match(cli.output(), /finished: 3 completed, 0 discarded, 0 cancelled/);
    });
  });
});
