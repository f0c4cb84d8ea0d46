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
  [
    'a class method with a defaulted second',
    new (class {
      perform(job: unknown, signal: unknown = null) {
        return signal;
      }
    })().perform,
  ],
  [
    'an async generator with a defaulted second',
    async function* (job: unknown, signal: unknown = null) {
      yield await Promise.resolve(signal);
    },
  ],
];
/** Exactly this source text (no compiler or formatter between), as a function. */
const compiled = (source: string) =>
  new Function(`return (${source})`)() as (job: never) => unknown;
// Shapes whose source a search for the first `(`, `)` and `=>` misread: each can read its second
// argument, each declares fewer than two parameters.
const givenAsWritten: [string, string][] = [
  [
    'a comment with `)` in the parameters',
    'function (job /* 1) the job */, signal = null) { return signal; }',
  ],
  [
    'a line comment in the parameters',
    'function (job // the job :)\n, signal = null) { return signal; }',
  ],
  ['a `)` in a string default', "(job = ')', signal) => signal"],
  ['a `)` in a template default', '(job = `)`, signal) => signal'],
  ['a `)` in a regular expression default', 'function (job = /\\)/, signal) { return signal; }'],
  ['a `)` in a destructuring default', "({ a = ')' }, signal = 1) => signal"],
  [
    'a comment `()` before the parameters',
    'function /* () */ perform(job, signal = null) { return signal; }',
  ],
  [
    'a comment `=>` before the parameters',
    'function /* => */ perform(job, signal = null) { return signal; }',
  ],
  ['a comment `=>` in an async arrow', 'async /* => */ (job, signal = null) => signal'],
  [
    'a computed method name with a call',
    "({ [String('perform')](job, signal = null) { return signal; } })[String('perform')]",
  ],
  [
    'a method named with a string holding `=>`',
    "({ 'a=>b'(job, signal = null) { return signal; } })['a=>b']",
  ],
  ['`arguments` spelled with a unicode escape', 'function (job) { return argum\\u0065nts[1]; }'],
  // Compilers' output for an async perform or a defaulted second parameter, lowered.
  [
    'TypeScript, async lowered',
    'function (job) { return __awaiter(this, arguments, void 0, function* () { return job; }); }',
  ],
  [
    'esbuild, async lowered',
    'function perform(_0) { return __async(this, arguments, function* (job, signal = null) { return signal; }); }',
  ],
  [
    'esbuild, async arrow lowered',
    '(_0, ..._1) => __async(this, [_0, ..._1], function* (job, signal = null) { return signal; })',
  ],
  [
    'Babel, default lowered',
    'function perform(job) { var signal = arguments.length > 1 && arguments[1] !== undefined ? arguments[1] : null; return signal; }',
  ],
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
  ['an async arrow, no parentheses', compiled('async job => job')],
  ['a generator method', compiled('({ *perform(job) { yield job; } }).perform')],
  ['an async generator method', compiled('({ async *perform(job) { yield job; } }).perform')],
  ['an async generator function', compiled('async function* perform(job) { yield job; }')],
  ['a destructuring of names', compiled('({ args, id: key }) => key')],
  ['a static method', compiled('class { static perform(job) { return job; } }.perform')],
];
/* eslint-enable @typescript-eslint/no-unused-vars, prefer-rest-params, @typescript-eslint/unbound-method, @typescript-eslint/no-unsafe-return, @typescript-eslint/no-implied-eval, @typescript-eslint/no-unsafe-call */

describe('the abort signal is given to perform functions that can read it', () => {
  for (const [shape, fn] of given) {
    it(`given: ${shape}`, () => assert.equal(takesSignal({ perform: fn }), true));
  }
  for (const [shape, source] of givenAsWritten) {
    it(`given: ${shape}`, () =>
      assert.equal(takesSignal({ perform: compiled(source) }), true, source));
  }
  it('given: a Proxy whose length trap throws (no throw: its worker still loads)', () => {
    const hostile = new Proxy((job: unknown) => job, {
      get(target, key) {
        if (key === 'length') throw new Error('the length trap refuses');
        return Reflect.get(target, key) as unknown;
      },
    });
    assert.equal(takesSignal({ perform: hostile }), true);
  });
  it('reads the source as the runtime has it, even once Function.prototype.toString is replaced', () => {
    // eslint-disable-next-line @typescript-eslint/unbound-method -- only replaced and restored
    const original = Function.prototype.toString;
    Function.prototype.toString = () => 'function (job) {}';
    try {
      assert.equal(
        takesSignal({ perform: compiled('function (job) { return arguments[1]; }') }),
        true,
      );
    } finally {
      Function.prototype.toString = original;
    }
  });
  for (const [shape, fn] of notGiven) {
    it(`not made: ${shape}`, () => assert.equal(takesSignal({ perform: fn }), false));
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
