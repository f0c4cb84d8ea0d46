// A job's timeout beyond what a Node timer can hold (about 24.8 days) must not fire at once:
// setTimeout turns a larger delay into 1 ms. A job that outlives its timeout is recorded as a
// timeout naming it, whatever it returned.

import assert from 'node:assert/strict';
import sinon from 'sinon';
import type { QuernNode } from '../../src/node/node.js';
import { cleanup, createSchema, eventually, type TestSchema } from '../helpers/db.js';
import { startNode } from '../helpers/node.js';

describe('job timeouts', function () {
  let db: TestSchema;
  let node: QuernNode | undefined;
  let clock: sinon.SinonFakeTimers | undefined;
  beforeEach(async function () {
    db = await createSchema(this.currentTest!.title);
  });
  afterEach(async function () {
    clock?.restore();
    clock = undefined;
    await node?.stop();
    node = undefined;
    await cleanup(this, db);
  });

  it('a timeout longer than a timer can wait is held to the longest one, not fired at once', async function () {
    const warnings: string[] = [];
    const onWarning = (warning: Error): void => void warnings.push(warning.name);
    process.on('warning', onWarning);
    try {
      await runLongTimeoutJob();
    } finally {
      process.off('warning', onWarning);
    }
    assert.ok(!warnings.includes('TimeoutOverflowWarning'), 'no timer overflowed');
  });

  it('a job that ends on its own after its timeout fired is a timeout naming its limit, also with no result', async function () {
    // stubborn ignores its signal and returns 'ok' (completed, no result, no warning: the
    // outcome that comes back as a bare index) after 300 ms, inside the grace period (500 ms in
    // tests) that follows its 100 ms timeout.
    node = await startNode(db.schema, db.url);
    const job = await db.client.insert({
      worker: 'stubborn',
      args: { ms: 300, timeout: 100 },
      maxAttempts: 1,
    });
    const row = await eventually(async () => {
      const [found] = await db.query<{ state: string; errors: { error: string }[] }>(
        'SELECT state::text, errors FROM jobs WHERE id = $1',
        [job.id],
      );
      return found && found.state === 'discarded' ? found : null;
    }, 10000);
    assert.equal(row.errors.length, 1);
    assert.equal(row.errors[0]!.error, 'timeout: job timed out after 100 ms');
  });

  it('a wall clock set back while a job runs does not lengthen its timeout', async function () {
    // The job's start time was taken from the wall clock, and its timer, on firing, waited again
    // for what was "left": an hour more after the clock went back an hour (NTP stepping a clock
    // that ran ahead). slow honours its signal, so it ends as soon as the timeout stops it.
    node = await startNode(db.schema, db.url);
    const job = await db.client.insert({
      worker: 'slow',
      args: { ms: 8000, timeout: 300 },
      maxAttempts: 1,
    });
    await node.telemetry.waitFor('job:start', (e) => e.id === job.id);
    clock = sinon.useFakeTimers({
      now: Date.now() - 3_600_000,
      toFake: ['Date'],
      shouldAdvanceTime: true,
    });
    const stop = await node.telemetry.waitFor('job:stop', (e) => e.id === job.id);
    assert.equal(stop.state, 'discarded');
    const [row] = await db.query<{ errors: { error: string }[] }>(
      'SELECT errors FROM jobs WHERE id = $1',
      [job.id],
    );
    assert.equal(row!.errors[0]!.error, 'timeout: job timed out after 300 ms');
    assert.ok(stop.durationMs < 5000, `stopped after ${stop.durationMs} ms`);
  });

  async function runLongTimeoutJob(): Promise<void> {
    node = await startNode(db.schema, db.url);
    const job = await db.client.insert({ worker: 'slow', args: { ms: 200, timeout: 1e12 } });
    const row = await eventually(async () => {
      const [found] = await db.query<{ state: string; errors: unknown[] }>(
        'SELECT state::text, errors FROM jobs WHERE id = $1',
        [job.id],
      );
      return found && found.state !== 'available' && found.state !== 'executing' ? found : null;
    }, 10000);
    assert.equal(row.state, 'completed', JSON.stringify(row.errors));
  }
});
