import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { loadConfig } from '../../src/config/load.js';
import { CronQueries } from '../../src/db/queries/cron.js';
import { JobQueries } from '../../src/db/queries/jobs.js';
import type { QuernNode } from '../../src/node/node.js';
import { buildCronEntries, CronPlugin } from '../../src/plugins/cron.js';
import type { PluginContext } from '../../src/plugins/plugin.js';
import { Telemetry } from '../../src/telemetry/events.js';
import { loadWorkers } from '../../src/worker/registry.js';
import { cleanup, createSchema, databaseUrl, eventually, type TestSchema } from '../helpers/db.js';
import { FIXTURE_WORKERS, ROOT, runCli, startNode, writeConfig } from '../helpers/node.js';

type Crontab = unknown[];

describe('the cron plugin', function () {
  let db: TestSchema;
  const nodes: QuernNode[] = [];
  beforeEach(async function () {
    db = await createSchema(this.currentTest!.title);
  });
  afterEach(async function () {
    for (const node of nodes.splice(0)) await node.stop();
    await cleanup(this, db);
  });

  /** A cron plugin on the test schema, as a leader would run it, with a clock of our choosing. */
  async function cron(crontab: Crontab, name = 'leader', timezone = 'UTC'): Promise<CronPlugin> {
    const config = loadConfig({ plugins: { cron: { timezone, crontab } } }, { env: {} });
    const entries = buildCronEntries(config.plugins.cron, await loadWorkers(FIXTURE_WORKERS));
    const context: PluginContext = {
      pool: db.pool,
      node: name,
      telemetry: new Telemetry(),
      call: (fn) => fn(),
      isLeader: () => true,
    };
    return new CronPlugin(context, entries, new JobQueries(db.schema), new CronQueries(db.schema));
  }

  async function cronJobs(): Promise<{ id: number; args: unknown; slot: string; node: string }[]> {
    const rows = await db.query<{
      id: number;
      args: unknown;
      meta: { cron: { slot: string; node: string } };
    }>('SELECT id, args, meta FROM jobs ORDER BY id');
    return rows.map((r) => ({
      id: r.id,
      args: r.args,
      slot: r.meta.cron.slot,
      node: r.meta.cron.node,
    }));
  }

  const at = (text: string): Date => new Date(text);

  it('inserts one job per entry per slot, with the slot recorded beside it', async function () {
    const plugin = await cron([
      { expression: '* * * * *', worker: 'ok', args: { value: 'a' }, priority: 2, tags: ['cron'] },
      ['*/2 * * * *', 'ok', { value: 'b' }],
    ]);
    assert.equal(await plugin.insertDue(at('2024-05-01T12:00:05Z')), 2);
    assert.equal(await plugin.insertDue(at('2024-05-01T12:00:40Z')), 0, 'same slot again');
    assert.equal(
      await plugin.insertDue(at('2024-05-01T12:01:01Z')),
      1,
      'only the every-minute one',
    );
    const jobs = await db.query('SELECT * FROM jobs ORDER BY id');
    assert.equal(jobs.length, 3);
    assert.equal(jobs[0]!.worker, 'ok');
    assert.equal(jobs[0]!.priority, 2);
    assert.deepEqual(jobs[0]!.tags, ['cron']);
    assert.equal(jobs[0]!.state, 'available');
    assert.deepEqual((jobs[0]!.scheduled_at as Date).toISOString(), '2024-05-01T12:00:00.000Z');
    assert.deepEqual(jobs[0]!.meta, {
      cron: {
        expression: '* * * * *',
        timezone: 'UTC',
        slot: '2024-05-01T12:00:00.000Z',
        node: 'leader',
      },
    });
    const slots = await db.query<{ entry: string; slot: Date; job_id: number }>(
      'SELECT entry, slot, job_id FROM cron_slots ORDER BY job_id',
    );
    assert.deepEqual(
      slots.map((s) => s.job_id),
      jobs.map((j) => j.id),
      'each slot row names its job',
    );
    assert.match(slots[0]!.entry, /^\* \* \* \* \* ok [0-9a-f]{12}$/);
  });

  it('two leaders at once, with clocks 20 s apart, still insert exactly one job per slot', async function () {
    this.timeout(30000);
    const crontab = [
      ['* * * * *', 'ok', { value: 'every' }],
      ['*/5 * * * *', 'ok', { value: 'five' }],
    ];
    const a = await cron(crontab, 'a');
    const b = await cron(crontab, 'b');
    const start = at('2024-05-01T12:00:00Z').getTime();
    // Ten minutes, checked every 7 s by both; b's clock runs 20 s ahead of a's.
    for (let t = start; t < start + 10 * 60_000; t += 7000) {
      await Promise.all([a.insertDue(new Date(t)), b.insertDue(new Date(t + 20_000))]);
    }
    const jobs = await cronJobs();
    const every = jobs
      .filter((j) => (j.args as { value: string }).value === 'every')
      .map((j) => j.slot);
    const five = jobs
      .filter((j) => (j.args as { value: string }).value === 'five')
      .map((j) => j.slot);
    assert.equal(new Set(every).size, every.length, 'no slot twice');
    assert.equal(new Set(five).size, five.length, 'no slot twice');
    const minute = (m: number) => new Date(start + m * 60_000).toISOString();
    // a's last check is 12:09:55, b's 12:10:15: slots 12:00 to 12:10.
    assert.deepEqual(
      every.sort(),
      Array.from({ length: 11 }, (_, m) => minute(m)),
    );
    assert.deepEqual(five.sort(), [0, 5, 10].map(minute));
    // b's clock runs ahead, so b reaches every slot after the first one before a does; which
    // of the two takes the first slot is a race, so only b's share is certain.
    assert.ok(
      jobs.some((j) => j.node === 'b'),
      'the leader whose clock runs ahead inserted slots',
    );
  });

  it('no burst of catch-up jobs after downtime; a slot is inserted up to a minute late', async function () {
    const plugin = await cron([
      ['* * * * *', 'ok', {}],
      ['0 * * * *', 'ok', { hourly: true }],
    ]);
    await plugin.insertDue(at('2024-05-01T11:59:58Z'));
    // The cluster was down from 11:59:58 to 12:30:20: only the slot of the last minute goes in.
    await plugin.insertDue(at('2024-05-01T12:30:20Z'));
    let slots = (await cronJobs()).map((j) => j.slot);
    assert.deepEqual(slots, ['2024-05-01T11:59:00.000Z', '2024-05-01T12:30:00.000Z']);

    // A leader change around 13:00: the new leader's first run, 59 s late, still inserts 13:00.
    await plugin.insertDue(at('2024-05-01T13:00:59Z'));
    slots = (await cronJobs()).map((j) => j.slot);
    assert.equal(slots.filter((s) => s === '2024-05-01T13:00:00.000Z').length, 2, 'both entries');
    // One run 61 s after 14:00: the hourly slot is skipped, not run late.
    await plugin.insertDue(at('2024-05-01T14:01:01Z'));
    const hourly = (await cronJobs()).filter((j) => (j.args as { hourly?: boolean }).hourly);
    assert.deepEqual(
      hourly.map((j) => j.slot),
      ['2024-05-01T13:00:00.000Z'],
    );
  });

  it('slots that passed while the whole cluster was stopped are skipped, even within the minute', async function () {
    const plugin = await cron([['* * * * *', 'ok', {}]]);
    const started = at('2024-05-01T12:00:30Z');
    assert.equal(await plugin.insertDue(at('2024-05-01T12:00:40Z'), started), 0);
    assert.equal(await plugin.insertDue(at('2024-05-01T12:01:02Z'), started), 1);
    assert.equal(await plugin.insertDue(at('2024-05-01T13:00:10Z'), at('2024-05-01T13:00:00Z')), 1);
    assert.deepEqual(
      (await cronJobs()).map((j) => j.slot),
      ['2024-05-01T12:01:00.000Z', '2024-05-01T13:00:00.000Z'],
    );
  });

  it('daylight saving: the repeated hour runs a fixed time once and a step schedule twice', async function () {
    const plugin = await cron(
      [
        ['30 2 * * *', 'ok', { fixed: true }],
        ['*/30 * * * *', 'ok', { step: true }],
        {
          expression: '30 2 * * *',
          worker: 'ok',
          args: { ny: true },
          timezone: 'America/New_York',
        },
      ],
      'leader',
      'Europe/Berlin',
    );
    // Berlin's fall-back night, checked every 20 s from 00:00Z to 02:10Z (02:00 CEST to 03:10 CET).
    const start = at('2024-10-26T23:59:50Z').getTime();
    for (let t = start; t <= start + 130 * 60_000; t += 20_000) await plugin.insertDue(new Date(t));
    const jobs = await cronJobs();
    const of = (key: string) =>
      jobs.filter((j) => (j.args as Record<string, unknown>)[key]).map((j) => j.slot);
    assert.deepEqual(of('fixed'), ['2024-10-27T00:30:00.000Z']);
    assert.deepEqual(of('step'), [
      '2024-10-27T00:00:00.000Z',
      '2024-10-27T00:30:00.000Z',
      '2024-10-27T01:00:00.000Z',
      '2024-10-27T01:30:00.000Z',
      '2024-10-27T02:00:00.000Z',
    ]);
    assert.deepEqual(of('ny'), [], 'an entry in its own zone: 02:30 in New York is 06:30Z');
  });

  it('@reboot fires once per cluster start, not once per node or leader', async function () {
    this.timeout(30000);
    const overrides = {
      node: `${db.schema}-a`,
      plugins: { cron: { crontab: [['@reboot', 'ok', { boot: true }]] } },
    };
    const rebootJobs = () => db.query('SELECT id FROM jobs WHERE worker = $1', ['ok']);
    const a = await startNode(db.schema, db.url, overrides);
    nodes.push(a);
    await eventually(async () => (await rebootJobs()).length === 1, 10000, 'the @reboot job');
    const b = await startNode(db.schema, db.url, { ...overrides, node: `${db.schema}-b` });
    nodes.push(b);
    await a.stop();
    await eventually(() => Promise.resolve(b.isLeader), 10000, 'b to lead');
    await b.telemetry.waitFor('plugin:stop', (e) => e.plugin === 'cron');
    assert.equal((await rebootJobs()).length, 1, 'a second node and a new leader: not a start');
    await b.stop();
    // Every node stopped: the next node to start starts the cluster again.
    const c = await startNode(db.schema, db.url, { ...overrides, node: `${db.schema}-c` });
    nodes.push(c);
    await eventually(async () => (await rebootJobs()).length === 2, 10000, 'a second @reboot job');
    const starts = await db.query("SELECT slot FROM cron_slots WHERE entry = 'cluster:start'");
    assert.equal(starts.length, 2);
  });

  it('the README examples of cron and pruner configuration load', function () {
    const readme = readFileSync(path.join(ROOT, 'README.md'), 'utf8');
    const section = (title: string) => {
      const start = readme.indexOf(`## ${title}`);
      const block = /```json\n([\s\S]*?)```/.exec(readme.slice(start))!;
      return JSON.parse(block[1]!) as Record<string, unknown>;
    };
    const cron = loadConfig(section('Periodic jobs (cron)'), { env: {} }).plugins.cron;
    assert.equal(cron.timezone, 'Europe/Paris');
    assert.deepEqual(
      cron.crontab.map((e) => [e.expression, e.worker, e.timezone]),
      [
        ['*/15 * * * *', 'refresh-feeds', null],
        ['0 3 * * MON-FRI', 'nightly-report', null],
        ['@daily', 'cleanup', 'UTC'],
        ['@reboot', 'warm-caches', null],
      ],
    );
    const pruner = loadConfig(section('Pruning'), { env: {} }).plugins.pruner;
    assert.deepEqual(pruner, { enabled: true, maxAge: 604800, interval: 60000, limit: 5000 });
  });

  it('refuses two identical entries, and a heartbeatTimeout within reach of a late heartbeat', function () {
    assert.throws(
      () =>
        loadConfig(
          {
            plugins: {
              cron: {
                crontab: [
                  ['@hourly', 'ok', { a: 1 }],
                  ['0 * * * *', 'ok'],
                  ['@hourly', 'ok', { a: 1 }],
                ],
              },
            },
          },
          { env: {} },
        ),
      /plugins\.cron\.crontab\[2\] \("@hourly", worker "ok"\): the same entry as plugins\.cron\.crontab\[0\]/,
    );
    assert.throws(
      () => loadConfig({ heartbeatInterval: 1000, heartbeatTimeout: 2000 }, { env: {} }),
      /heartbeatTimeout: must be at least four heartbeatIntervals \(4000 ms\), got 2000 with heartbeatInterval 1000/,
    );
  });

  it('a node with a crontab entry naming an unknown worker does not start', async function () {
    await assert.rejects(
      startNode(db.schema, db.url, {
        plugins: {
          cron: {
            crontab: [
              ['* * * * *', 'ok', {}],
              ['0 * * * *', 'nope', {}],
            ],
          },
        },
      }),
      /plugins\.cron\.crontab\[1\] \("0 \* \* \* \*", worker "nope"\): unknown worker "nope"; known workers: .*ok/,
    );
  });

  describe('at start, `node cluster.js` refuses a bad entry with exit code 1, naming it', function () {
    const cases: [string, Record<string, unknown>, RegExp][] = [
      [
        'an invalid expression',
        {
          crontab: [
            ['* * * * *', 'ok'],
            ['61 * * * *', 'ok'],
          ],
        },
        /plugins\.cron\.crontab\[1\] \("61 \* \* \* \*", worker "ok"\)\.expression: minute field: 61 is out of range 0-59/,
      ],
      [
        'a date that can never come',
        { crontab: [['0 0 31 2 *', 'ok']] },
        /plugins\.cron\.crontab\[0\] \("0 0 31 2 \*", worker "ok"\)\.expression: "0 0 31 2 \*" can never fire/,
      ],
      [
        'an unknown timezone',
        { crontab: [{ expression: '@daily', worker: 'ok', timezone: 'Europe/Atlantis' }] },
        /plugins\.cron\.crontab\[0\] \("@daily", worker "ok"\)\.timezone: unknown timezone "Europe\/Atlantis"/,
      ],
      [
        'an unknown worker',
        { crontab: [['@hourly', 'no-such-worker']] },
        /plugins\.cron\.crontab\[0\] \("@hourly", worker "no-such-worker"\): unknown worker/,
      ],
    ];
    for (const [what, cronConfig, message] of cases) {
      it(what, async function () {
        const file = writeConfig({
          schema: db.schema,
          database: { url: databaseUrl() },
          workers: FIXTURE_WORKERS,
          plugins: { cron: cronConfig },
        });
        const result = await runCli(['--config', file]);
        assert.equal(result.code, 1, result.stderr);
        assert.match(result.stderr, message);
        const jobs = await db.query('SELECT id FROM jobs');
        assert.equal(jobs.length, 0);
      });
    }
  });
});
