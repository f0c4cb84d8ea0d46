import assert from 'node:assert/strict';
import { cleanup, createSchema, eventually, type TestSchema } from '../helpers/db.js';
import { TestCluster } from '../helpers/cluster.js';

// A node frozen past heartbeatTimeout (SIGSTOP, a paused VM) is taken for dead; a supervisor
// starts a new process under the same name, which finds the name free and rescues its jobs. When
// the frozen one resumed, both ran under one name: each one's heartbeat kept the name alive, so
// when one of them died its jobs stayed executing for as long as the other lived.
describe('a frozen node resumed after another process took its name', function () {
  let db: TestSchema;
  let cluster: TestCluster;
  beforeEach(async function () {
    db = await createSchema(this.currentTest!.title);
    cluster = new TestCluster(db.schema, db.url, {
      logLevel: 'info',
      heartbeatInterval: 200,
      heartbeatTimeout: 1000,
      cancelGracePeriod: 200,
      plugins: { stager: { interval: 200 }, lifeline: { interval: 100 }, cron: false },
    });
  });
  afterEach(async function () {
    await cluster.killAll();
    await cleanup(this, db);
  });

  it('stops (exit 1) and leaves the name to its successor, whose jobs are rescued when it dies', async function () {
    this.timeout(60000);
    await cluster.start('lead', { queues: { spare: 1 } });
    const frozen = await cluster.start('twin', { queues: { default: 4 } });
    const jobs = await db.client.insertMany(
      Array.from({ length: 2 }, () => ({ worker: 'slow', args: { ms: 60000 } })),
    );
    const ids = jobs.map((j) => j.id);
    const rows = () =>
      db.query<{ id: number; state: string; attempt: number; token: string; errors: string }>(
        `SELECT id::int, state::text, attempt, attempted_by[2] AS token, errors::text FROM jobs
         WHERE id = ANY($1) ORDER BY id`,
        [ids],
      );
    await eventually(async () => (await rows()).every((r) => r.state === 'executing'));

    frozen.child.kill('SIGSTOP');
    await eventually(async () => (await rows()).every((r) => r.state === 'available'), 10000);
    const successor = await cluster.start('twin', { queues: { default: 4 } });
    await eventually(
      async () => (await rows()).every((r) => r.state === 'executing' && r.attempt === 2),
      10000,
      'the successor runs the rescued jobs',
    );
    frozen.child.kill('SIGCONT');

    const exit = await Promise.race([
      frozen.exited,
      new Promise<null>((resolve) => setTimeout(() => resolve(null), 8000)),
    ]);
    assert.deepEqual(exit, { code: 1, signal: null }, 'the resumed process stops, exit 1');
    assert.match(frozen.output(), /another process took the node name/);
    const [row] = await db.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM nodes WHERE name = $1`,
      [successor.name],
    );
    assert.equal(row!.n, 1, 'the successor keeps its row');
    assert.ok(
      (await rows()).every((r) => r.state === 'executing' && r.attempt === 2),
      'the old process wrote nothing over the successor',
    );

    await successor.kill('SIGKILL');
    await eventually(
      async () => (await rows()).every((r) => r.state === 'available' && r.attempt === 2),
      10000,
      "the dead successor's jobs rescued",
    );
    await Promise.all(ids.map((id) => db.client.cancel(id)));
  });
});
