import assert from 'node:assert/strict';
import { CronQueries } from '../../src/db/queries/cron.js';
import { JobQueries } from '../../src/db/queries/jobs.js';
import { MaintenanceQueries } from '../../src/db/queries/maintenance.js';
import type { QuernNode } from '../../src/node/node.js';
import { Lifeline } from '../../src/plugins/lifeline.js';
import type { PeriodicPlugin, PluginContext } from '../../src/plugins/plugin.js';
import { Pruner } from '../../src/plugins/pruner.js';
import { Telemetry, type TelemetryEvents } from '../../src/telemetry/events.js';
import { cleanup, createSchema, eventually, type TestSchema } from '../helpers/db.js';
import { startNode } from '../helpers/node.js';

const STATES = [
  'scheduled',
  'available',
  'executing',
  'retryable',
  'completed',
  'discarded',
  'cancelled',
];

describe('the pruner and the lifeline', function () {
  let db: TestSchema;
  let node: QuernNode | undefined;
  beforeEach(async function () {
    db = await createSchema(this.currentTest!.title);
  });
  afterEach(async function () {
    await node?.stop();
    node = undefined;
    await cleanup(this, db);
  });

  function context(telemetry: Telemetry): PluginContext {
    return {
      pool: db.pool,
      node: 'leader',
      telemetry,
      call: (fn) => fn(),
      isLeader: () => true,
    };
  }

  /** Starts a plugin, waits for its first run to finish, stops it. */
  async function runOnce(
    plugin: PeriodicPlugin,
    telemetry: Telemetry,
  ): Promise<TelemetryEvents['plugin:stop']> {
    const done = telemetry.waitFor('plugin:stop', (e) => e.plugin === plugin.name, 10000);
    plugin.start();
    const counts = await done;
    await plugin.stop();
    return counts;
  }

  /** Inserts a job row directly, in any state, with its times `ageSeconds` in the past. */
  async function row(state: string, ageSeconds: number, extra: Record<string, unknown> = {}) {
    const [inserted] = await db.query<{ id: number }>(
      `INSERT INTO jobs (state, worker, scheduled_at, attempted_at, completed_at, cancelled_at, discarded_at,
                         attempt, max_attempts, attempted_by)
       VALUES ($1::text::job_state, 'ok', now() - make_interval(secs => $2), now() - make_interval(secs => $2),
               CASE WHEN $1::text = 'completed' THEN now() - make_interval(secs => $2) END,
               CASE WHEN $1::text = 'cancelled' THEN now() - make_interval(secs => $2) END,
               CASE WHEN $1::text = 'discarded' THEN now() - make_interval(secs => $2) END,
               $3, $4, $5)
       RETURNING id`,
      [
        state,
        ageSeconds,
        extra.attempt ?? (state === 'executing' ? 1 : 0),
        extra.maxAttempts ?? 20,
        extra.attemptedBy ?? (state === 'executing' ? ['somewhere', 'run.1.1'] : null),
      ],
    );
    return inserted!.id;
  }

  it('prunes finished jobs older than maxAge in bounded batches, and nothing else', async function () {
    const keep: number[] = [];
    for (const state of STATES) {
      // Old rows of every state: the final ones go, the others stay whatever their age.
      for (let i = 0; i < 7; i++) {
        const id = await row(state, 3600);
        if (!['completed', 'discarded', 'cancelled'].includes(state)) keep.push(id);
      }
      keep.push(await row(state, 10)); // younger than maxAge: stays
    }
    const sizes: number[] = [];
    class Counting extends MaintenanceQueries {
      override async prune(...args: Parameters<MaintenanceQueries['prune']>): Promise<number> {
        const count = await super.prune(...args);
        sizes.push(count);
        return count;
      }
    }
    const telemetry = new Telemetry();
    const pruner = new Pruner(
      context(telemetry),
      new Counting(db.schema),
      new CronQueries(db.schema),
      {
        maxAge: 60,
        limit: 4,
        interval: 60000,
      },
    );
    const counts = await runOnce(pruner, telemetry);
    assert.equal(counts.pruned, 21);
    assert.deepEqual(sizes, [4, 4, 4, 4, 4, 1], 'statements of at most `limit` rows');
    const left = await db.query<{ id: number }>('SELECT id FROM jobs ORDER BY id');
    assert.deepEqual(
      left.map((r) => r.id),
      keep.sort((a, b) => a - b),
    );
  });

  it('forgets cron slots older than a day, but not the latest cluster start and its @reboot jobs', async function () {
    await db.query(
      `INSERT INTO cron_slots (entry, slot) VALUES
         ('cluster:start', now() - interval '5 days'),
         ('@reboot ok aaaa', now() - interval '5 days'),
         ('cluster:start', now() - interval '3 days'),
         ('@reboot ok aaaa', now() - interval '3 days'),
         ('* * * * * ok bbbb', now() - interval '2 days'),
         ('* * * * * ok bbbb', now() - interval '1 minute')`,
    );
    const telemetry = new Telemetry();
    const pruner = new Pruner(
      context(telemetry),
      new MaintenanceQueries(db.schema),
      new CronQueries(db.schema),
      { maxAge: 60, limit: 100, interval: 60000 },
    );
    await runOnce(pruner, telemetry);
    const left = await db.query<{ entry: string; days: number }>(
      `SELECT entry, round(extract(epoch FROM now() - slot) / 86400)::int AS days FROM cron_slots ORDER BY slot`,
    );
    assert.deepEqual(left, [
      { entry: 'cluster:start', days: 3 },
      { entry: '@reboot ok aaaa', days: 3 },
      { entry: '* * * * * ok bbbb', days: 0 },
    ]);
  });

  it('rescues jobs of dead or vanished nodes, discards those out of attempts, never touches a live node', async function () {
    await db.query(
      `INSERT INTO nodes (name, updated_at) VALUES ('alive', now()), ('dead', now() - interval '1 hour')`,
    );
    const onAlive = await row('executing', 3600, { attemptedBy: ['alive', 'r.1.1'] });
    const onDead = await row('executing', 3600, { attemptedBy: ['dead', 'r.1.2'] });
    const onDeadLast = await row('executing', 3600, {
      attemptedBy: ['dead', 'r.1.3'],
      attempt: 3,
      maxAttempts: 3,
    });
    const onGone = await row('executing', 3600, { attemptedBy: ['gone', 'r.1.4'] });
    const justFetched = await row('executing', 0, { attemptedBy: ['starting', 'r.1.5'] });
    const telemetry = new Telemetry();
    const lifeline = new Lifeline(context(telemetry), new MaintenanceQueries(db.schema), {
      interval: 60000,
      heartbeatTimeout: 5000,
    });
    const counts = await runOnce(lifeline, telemetry);
    assert.equal(counts.rescued, 2);
    assert.equal(counts.discarded, 1);
    const rows = await db.query<{
      id: number;
      state: string;
      attempt: number;
      errors: { attempt: number; error: string }[];
    }>('SELECT id, state, attempt, errors FROM jobs');
    const get = (id: number) => rows.find((r) => r.id === id)!;
    assert.equal(get(onAlive).state, 'executing', 'a live node runs its job as long as it likes');
    assert.equal(get(justFetched).state, 'executing', 'younger than the timeout: not yet');
    assert.equal(get(onDead).state, 'available');
    assert.equal(get(onDead).attempt, 1, 'the attempt counts');
    assert.deepEqual(
      get(onDead).errors.map((e) => [e.attempt, e.error]),
      [[1, 'rescued: node dead stopped sending heartbeats while the job was executing']],
    );
    assert.equal(get(onGone).state, 'available');
    assert.match(get(onGone).errors[0]!.error, /node gone stopped sending heartbeats/);
    assert.equal(get(onDeadLast).state, 'discarded');
    assert.match(get(onDeadLast).errors[0]!.error, /; no attempts left$/);
  });

  it('a stale runner cannot overwrite the job after it was rescued and run again', async function () {
    this.timeout(20000);
    node = await startNode(db.schema, db.url, {
      node: `${db.schema}-live`,
      heartbeatTimeout: 1000,
      plugins: { lifeline: { interval: 100 } },
    });
    const jobs = new JobQueries(db.schema);
    const inserted = await db.client.insert({ worker: 'slow', args: { ms: 1500 }, queue: 'held' });
    // The old runner: fetched by a node that then went silent (it has no heartbeat row).
    const [stale] = await jobs.fetch(db.pool, 'held', 1, 'ghost', 'ghostrun.1');
    assert.equal(stale!.id, inserted.id);
    const staleToken = stale!.attemptedBy![1]!;
    await db.query(`UPDATE jobs SET queue = 'default', attempted_at = now() - interval '1 minute'`);

    // The lifeline rescues it and the live node runs it as attempt 2.
    const second = await eventually(
      async () => {
        const [r] = await db.query<{ state: string; attempted_by: string[] }>(
          'SELECT state, attempted_by FROM jobs WHERE id = $1',
          [inserted.id],
        );
        return r?.state === 'executing' && r.attempted_by[0] === node!.name ? r : null;
      },
      10000,
      'the rescued job to run on the live node',
    );
    assert.notEqual(second.attempted_by[1], staleToken);

    // The old runner comes back and writes its outcome: refused.
    const written = await jobs.recordOutcomes(db.pool, [
      {
        id: inserted.id,
        token: staleToken,
        state: 'discarded',
        delay: null,
        error: 'stale',
        result: null,
        refund: 0,
      },
    ]);
    assert.equal(written.size, 0);
    const final = await eventually(
      async () => {
        const [r] = await db.query('SELECT * FROM jobs WHERE id = $1', [inserted.id]);
        return r?.state === 'completed' ? r : null;
      },
      10000,
      'the second attempt to complete',
    );
    assert.equal(final.attempt, 2);
    assert.deepEqual(final.result, 'slept');
    const errors = final.errors as { error: string }[];
    assert.deepEqual(
      errors.map((e) => e.error),
      ['rescued: node ghost stopped sending heartbeats while the job was executing'],
    );
    // And once completed, a stale write still changes nothing.
    const late = await jobs.recordOutcomes(db.pool, [
      {
        id: inserted.id,
        token: staleToken,
        state: 'retryable',
        delay: 1,
        error: 'late',
        result: null,
        refund: 0,
      },
    ]);
    assert.equal(late.size, 0);
  });
});
