import assert from 'node:assert/strict';
import { Breaker, BreakerOpenError } from '../../src/db/breaker.js';
import { Telemetry } from '../../src/telemetry/events.js';

// The breaker's state machine on an injected clock (no database, no sleeping).
describe('circuit breaker', function () {
  let now = 0;
  let telemetry: Telemetry;
  let events: string[];
  const refused = (): Promise<never> =>
    Promise.reject(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }));
  const answers = (): Promise<string> => Promise.resolve('answer');

  function breaker(): Breaker {
    return new Breaker({
      name: 'database',
      failures: 3,
      windowMs: 1000,
      openMs: 500,
      telemetry,
      now: () => now,
    });
  }

  beforeEach(function () {
    now = 10_000;
    telemetry = new Telemetry();
    events = [];
    for (const name of ['circuit:trip', 'circuit:open', 'circuit:close'] as const)
      telemetry.on(name, () => events.push(name));
  });

  it('trips after `failures` connection errors within the window, then fails fast', async function () {
    const b = breaker();
    for (let i = 0; i < 3; i++) await assert.rejects(b.call(refused), /ECONNREFUSED/);
    assert.equal(b.state, 'open');
    assert.deepEqual(events, ['circuit:trip', 'circuit:open']);
    let called = false;
    await assert.rejects(
      b.call(() => {
        called = true;
        return answers();
      }),
      BreakerOpenError,
    );
    assert.equal(called, false);
  });

  it('failures spread wider than the window, and query errors, do not trip it', async function () {
    const b = breaker();
    for (let i = 0; i < 5; i++) {
      await assert.rejects(b.call(refused));
      now += 600;
    }
    const badQuery = (): Promise<never> =>
      Promise.reject(Object.assign(new Error('duplicate key'), { code: '23505' }));
    for (let i = 0; i < 5; i++) await assert.rejects(b.call(badQuery), /duplicate key/);
    assert.equal(b.state, 'closed');
    assert.deepEqual(events, []);
  });

  it('after openMs one probe goes through: others fail fast meanwhile; a failed probe reopens, a good one closes', async function () {
    const b = breaker();
    for (let i = 0; i < 3; i++) await assert.rejects(b.call(refused));
    now += 500;
    let release: (value: string) => void = () => undefined;
    const probe = b.call(() => new Promise<string>((resolve) => (release = resolve)));
    await assert.rejects(b.call(answers), BreakerOpenError, 'only one probe at a time');
    release('ok');
    assert.equal(await probe, 'ok');
    assert.equal(b.state, 'closed');
    assert.deepEqual(events, ['circuit:trip', 'circuit:open', 'circuit:close']);

    for (let i = 0; i < 3; i++) await assert.rejects(b.call(refused));
    now += 500;
    await assert.rejects(b.call(refused), /ECONNREFUSED/, 'the probe fails');
    assert.equal(b.state, 'open');
    await assert.rejects(b.call(answers), BreakerOpenError, 'open again for openMs');
    now += 500;
    assert.equal(await b.call(answers), 'answer');
    assert.equal(b.state, 'closed');
  });

  it('probe() goes through while open (heartbeats are the probes) and closes it on success', async function () {
    const b = breaker();
    for (let i = 0; i < 3; i++) await assert.rejects(b.call(refused));
    await assert.rejects(b.call(answers), BreakerOpenError);
    await assert.rejects(b.probe(refused), /ECONNREFUSED/, 'a failed probe keeps it open');
    assert.equal(b.state, 'open');
    assert.equal(await b.probe(answers), 'answer', 'no need to wait openMs');
    assert.equal(b.state, 'closed');
    assert.equal(await b.call(answers), 'answer');
  });
});
