// The one long test of the suite: real minute boundaries, three real nodes; one leader
// SIGKILLed mid-run, as soon as its first job of a boundary is in (and restarted), the next one
// a second before the following boundary.

import assert from 'node:assert/strict';
import { lockHolder, TestCluster } from '../helpers/cluster.js';
import { cleanup, createSchema, eventually, type TestSchema } from '../helpers/db.js';

describe('cron across a cluster of three nodes', function () {
  let db: TestSchema;
  let cluster: TestCluster | undefined;
  beforeEach(async function () {
    db = await createSchema(this.currentTest!.title);
  });
  afterEach(async function () {
    await cluster?.killAll();
    await cleanup(this, db);
  });

  /** Local ms until the database's clock reaches `at`. */
  async function msUntil(at: number): Promise<number> {
    const [row] = await db.query<{ now: Date }>('SELECT clock_timestamp() AS now');
    return at - row!.now.getTime();
  }

  async function sleepUntil(at: number): Promise<void> {
    const ms = await msUntil(at);
    if (ms > 0) await new Promise((r) => setTimeout(r, ms));
  }

  async function cronJobs() {
    const rows = await db.query<{
      id: number;
      args: { entry: string };
      inserted_at: Date;
      meta: { cron: { slot: string; node: string } };
    }>("SELECT id, args, inserted_at, meta FROM jobs WHERE meta ? 'cron' ORDER BY id");
    return rows.map((r) => ({
      entry: r.args.entry,
      slot: r.meta.cron.slot,
      node: r.meta.cron.node,
      lateMs: r.inserted_at.getTime() - new Date(r.meta.cron.slot).getTime(),
    }));
  }

  it('leaders SIGKILLed around minute boundaries: exactly one job per entry per slot throughout', async function () {
    this.timeout(180000);
    cluster = new TestCluster(db.schema, db.url, {
      plugins: {
        pruner: { maxAge: 3600 },
        cron: {
          crontab: [
            ['* * * * *', 'ok', { entry: 'a' }],
            ['* * * * *', 'ok', { entry: 'b' }],
            { expression: '*/2 * * * *', worker: 'ok', args: { entry: 'c' }, priority: 1 },
          ],
        },
      },
    });
    await Promise.all(['a', 'b', 'c'].map((n) => cluster!.start(n)));
    const firstLeader = await eventually(() => lockHolder(db), 10000, 'a leader');

    // The first boundary at least 3 s away, so every node is up for it.
    const [row] = await db.query<{ now: Date }>('SELECT clock_timestamp() AS now');
    const now = row!.now.getTime();
    let first = Math.ceil(now / 60000) * 60000;
    if (first - now < 3000) first += 60000;
    const second = first + 60000;
    const iso = (ms: number) => new Date(ms).toISOString();

    const newLeader = async (not: string[]) =>
      eventually(
        async () => {
          const holder = await lockHolder(db);
          return holder && !not.includes(holder) ? holder : null;
        },
        5000,
        'a new leader',
      );
    const byName = (name: string) => cluster!.nodes.filter((n) => n.name === name).at(-1)!;

    // Entries a and b fire every minute, c on even minutes.
    const due = (ms: number) =>
      new Date(ms).getUTCMinutes() % 2 === 0 ? ['a', 'b', 'c'] : ['a', 'b'];
    const entriesAt = async (ms: number) =>
      (await cronJobs())
        .filter((j) => j.slot === iso(ms))
        .map((j) => j.entry)
        .sort();

    // The first leader is SIGKILLed as soon as its first job of the first boundary is in,
    // usually in the middle of its run: its successor, elected within the one-minute window,
    // inserts what it had not and nothing it had.
    await sleepUntil(first);
    await eventually(
      async () => (await entriesAt(first)).length >= 1,
      10000,
      'a job of the first boundary',
    );
    await byName(firstLeader).kill('SIGKILL');
    const secondLeader = await newLeader([firstLeader]);
    await eventually(
      async () => (await entriesAt(first)).join() === due(first).join(),
      10000,
      'every job of the first boundary',
    );
    // The killed node comes back under its name.
    const restarted = await cluster.start(firstLeader.slice(db.schema.length + 1));
    assert.equal(restarted.name, firstLeader);

    // The second leader dies one second before the next boundary: a third inserts it.
    await sleepUntil(second - 1000);
    await byName(secondLeader).kill('SIGKILL');
    const successor = await newLeader([secondLeader]);
    await sleepUntil(second);
    await eventually(
      async () => (await entriesAt(second)).join() === due(second).join(),
      10000,
      'the jobs of the second boundary',
    );
    await new Promise((r) => setTimeout(r, 1500));

    const jobs = await cronJobs();
    const slotsOf = (entry: string) => jobs.filter((j) => j.entry === entry).map((j) => j.slot);
    for (const entry of ['a', 'b']) {
      const slots = slotsOf(entry);
      assert.equal(
        new Set(slots).size,
        slots.length,
        `entry ${entry}: no slot twice (${slots.join(', ')})`,
      );
      assert.ok(
        slots.includes(iso(first)) && slots.includes(iso(second)),
        `entry ${entry} ran at both`,
      );
    }
    const c = slotsOf('c');
    assert.equal(new Set(c).size, c.length);
    assert.deepEqual(
      c.filter((s) => s === iso(first) || s === iso(second)).length,
      1,
      'the every-two-minutes entry fired at one of the two',
    );
    const [start] = await db.query<{ slot: Date }>(
      "SELECT slot FROM cron_slots WHERE entry = 'cluster:start'",
    );
    assert.ok(
      jobs.every((j) => new Date(j.slot) >= start!.slot),
      'no slot from before the cluster started',
    );
    const slotRows = await db.query<{ count: number }>(
      "SELECT count(*)::int AS count FROM cron_slots WHERE entry <> 'cluster:start'",
    );
    assert.equal(slotRows[0]!.count, jobs.length, 'one slot row per job');
    const atFirst = jobs.filter((j) => j.slot === iso(first));
    assert.ok(
      atFirst.every((j) => j.node === firstLeader || j.node === secondLeader),
      'the first boundary was inserted by the first leader and, for what it had not done, its successor',
    );
    assert.deepEqual(await entriesAt(first), due(first));
    assert.deepEqual(await entriesAt(second), due(second));
    const atSecond = jobs.filter((j) => j.slot === iso(second));
    assert.ok(
      atSecond.every((j) => j.node === successor),
      `the second boundary was inserted by the new leader ${successor}`,
    );
    assert.ok(
      atSecond.every((j) => j.lateMs < 5000),
      `inserted at most a few seconds late: ${atSecond.map((j) => j.lateMs).join(', ')} ms`,
    );
    process.stderr.write(
      `      first boundary inserted by ${atFirst.map((j) => (j.node === firstLeader ? 'the first leader' : 'its successor')).join(', ')}\n`,
    );
    process.stderr.write(
      `      lateness at the first boundary: ${jobs
        .filter((j) => j.slot === iso(first))
        .map((j) => j.lateMs)
        .join(', ')} ms; after the failover: ${atSecond.map((j) => j.lateMs).join(', ')} ms\n`,
    );
  });
});
