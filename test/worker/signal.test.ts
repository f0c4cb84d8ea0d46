// Which perform functions get the abort signal. Making one costs ~3 us in Node 20, so a perform
// that cannot read a second argument gets none; every shape that could read one must get it, or
// its cancellation would break (signal.aborted on undefined).

import assert from 'node:assert/strict';
import { performJob } from '../../src/testing/index.js';
import { defineWorker } from '../../src/worker/define.js';
import { takesSignal } from '../../src/worker/registry.js';

/* eslint-disable @typescript-eslint/no-unused-vars, prefer-rest-params, @typescript-eslint/unbound-method, @typescript-eslint/no-unsafe-return, @typescript-eslint/no-implied-eval, @typescript-eslint/no-unsafe-call */
const given: [string, (...args: never[]) => unknown][] = [
  ['two parameters', (job: unknown, signal: unknown) => signal],
  ['a method with two', { perform(job: unknown, signal: unknown) {} }.perform],
  [
    'a function reading arguments',
    function (job: unknown) {
      return arguments[1];
    },
  ],
  ['rest parameters', (...rest: unknown[]) => rest[1]],
  ['rest after the job', (job: unknown, ...rest: unknown[]) => rest[0]],
  ['a defaulted second parameter', (job: unknown, signal: unknown = null) => signal],
  [
    'a destructuring default, then a defaulted second',
    ({ a = String(1) }: { a?: string }, s: unknown = 1) => s,
  ],
  ['a bound function', function (this: unknown, job: unknown) {}.bind(null)],
  ['eval', (job: unknown) => eval('1')],
];
const notGiven: [string, (...args: never[]) => unknown][] = [
  ['one parameter', (job: unknown) => job],
  [
    'one parameter, no parentheses',
    new Function('return job => job.args.x === 1 ? f(1, 2) : 0')() as (job: never) => unknown,
  ],
  ['a method with one', { async perform(job: unknown) {} }.perform],
  [
    'a function with one',
    function perform(job: unknown) {
      return job;
    },
  ],
  ['none', () => 1],
  ['a destructured job', ({ args }: { args: unknown }) => args],
];
/* eslint-enable @typescript-eslint/no-unused-vars, prefer-rest-params, @typescript-eslint/unbound-method, @typescript-eslint/no-unsafe-return, @typescript-eslint/no-implied-eval, @typescript-eslint/no-unsafe-call */

describe('the abort signal is given to perform functions that can read it', () => {
  for (const [shape, fn] of given) {
    it(`given: ${shape}`, () => assert.equal(takesSignal(fn), true));
  }
  for (const [shape, fn] of notGiven) {
    it(`not made: ${shape}`, () => assert.equal(takesSignal(fn), false));
  }

  it('performJob follows the same rule as a node', async () => {
    const seen: unknown[] = [];
    const two = defineWorker({
      name: 'two',
      perform(job, signal) {
        seen.push(signal instanceof AbortSignal);
      },
    });
    const viaArguments = defineWorker({
      name: 'via-arguments',
      perform: function (this: unknown) {
        // eslint-disable-next-line prefer-rest-params
        seen.push(arguments[1] instanceof AbortSignal);
      },
    });
    const one = defineWorker({
      name: 'one',
      perform(job) {
        seen.push(job.args);
      },
    });
    for (const worker of [two, viaArguments, one]) {
      const run = await performJob(worker, { n: 1 });
      assert.equal(run.kind, 'completed');
    }
    assert.deepEqual(seen, [true, true, { n: 1 }]);
  });
});
