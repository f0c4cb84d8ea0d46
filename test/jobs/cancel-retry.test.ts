// A job cancelled while it runs, then retried at once. The cancel is in its row at once, but the
// run goes on until its node has stopped it (the abort signal, then the thread terminated after
// cancelGracePeriod). The retry must not start the job again beside that run: it is scheduled
// for when the run will have ended at the latest, and made available as soon as it has.

import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { QuernNode } from '../../src/node/node.js';
import { cleanup, createSchema, eventually, type TestSchema } from '../helpers/db.js';
import { startNode } from '../helpers/node.js';
import { readLines, runsWithoutOverlap } from '../helpers/ticker.js';

describe('cancel, then retry at once', function () {
  let db: TestSchema;
  let node: QuernNode | undefined;
  let file: string;
  beforeEach(async function () {
    db = await createSchema(this.currentTest!.title);
    file = path.join(mkdtempSync(path.join(tmpdir(), 'quern-cancel-retry-')), 'runs.log');
    // heartbeatInterval 200 and cancelGracePeriod 500 (the test defaults): a cancelled run ends
    // within 200 + 500 + 1000 ms.
    node = await startNode(db.schema, db.url, {
      queues: { default: { limit: 2, threads: 1 } },
      shutdownGracePeriod: 300,
    });
  });
  afterEach(async function () {
    await node?.stop();
    node = undefined;
    await cleanup(this, db);
  });

  const started = (id: number, runs: number) =>
    eventually(
      () =>
        Promise.resolve(
          new Set(
            readLines(file)
              .filter((l) => l.job === id && l.what === 'start')
              .map((l) => l.run),
          ).size >= runs,
        ),
      15000,
      `job ${id} started ${runs} time(s)`,
    );

  it('a run that ignores its abort signal: the retried job starts only once it was terminated', async function () {
    const [row] = await db.query<{ stop_within_ms: number }>(
      'SELECT stop_within_ms FROM nodes WHERE name = $1',
      [node!.name],
    );
    assert.equal(row!.stop_within_ms, 1700, 'the node wrote how long its cancelled runs may go on');
    const job = await db.client.insert({
      worker: 'ticker',
      args: { file, ms: 30000, tick: 20, honour: false },
    });
    await started(job.id, 1);
    assert.equal((await db.client.cancel(job.id)).after, 'cancelled');
    const retried = await db.client.retry(job.id);
    assert.equal(retried.after, 'scheduled');
    assert.equal(retried.changed, true);
    assert.match(
      retried.message,
      /runs again at .+ at the latest, once its cancelled run has ended/,
    );
    await started(job.id, 2);
    // Fails if a line of the first run came after the second run began.
    const runs = runsWithoutOverlap(readLines(file), job.id);
    assert.equal(runs.length, 2);
    assert.ok(
      runs[0]!.lines.some((l) => l.what === 'tick'),
      'the first run went on after the cancel',
    );
    const [after] = await db.query<{ state: string; attempt: number }>(
      'SELECT state::text, attempt FROM jobs WHERE id = $1',
      [job.id],
    );
    assert.deepEqual(after, { state: 'executing', attempt: 2 });
  });

  it('a run that honours its abort signal: the retried job is available again once it ended, before the hold is over', async function () {
    const job = await db.client.insert({ worker: 'ticker', args: { file, ms: 30000 } });
    await started(job.id, 1);
    await db.client.cancel(job.id);
    const retried = await db.client.retry(job.id);
    assert.equal(retried.after, 'scheduled');
    const [held] = await db.query<{ until: Date }>(
      'SELECT scheduled_at AS until FROM jobs WHERE id = $1',
      [job.id],
    );
    await started(job.id, 2);
    const runs = runsWithoutOverlap(readLines(file), job.id);
    assert.equal(runs[0]!.lines.at(-1)!.what, 'abort');
    // The node that stopped the first run released the job when that run ended, ahead of the
    // 1.7 s hold the retry set.
    assert.ok(
      runs[1]!.lines[0]!.at < held!.until.getTime(),
      `second run began at ${runs[1]!.lines[0]!.at}, the hold ended at ${held!.until.getTime()}`,
    );
    const [row] = await db.query<{ cancelled_run_until: Date | null; attempt: number }>(
      'SELECT cancelled_run_until, attempt FROM jobs WHERE id = $1',
      [job.id],
    );
    assert.deepEqual(row, { cancelled_run_until: null, attempt: 2 });
  });

  it('a job cancelled before it ran, or long after its run ended, is available again at once', async function () {
    await db.client.pauseQueue('default');
    const waiting = await db.client.insert({ worker: 'ok', args: {} });
    await db.client.cancel(waiting.id);
    const retried = await db.client.retry(waiting.id);
    assert.equal(retried.after, 'available');
    assert.equal(retried.message, `job ${waiting.id} is available again`);
  });
});
