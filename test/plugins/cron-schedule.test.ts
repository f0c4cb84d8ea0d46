import assert from 'node:assert/strict';
import {
  CronExpressionError,
  isSlot,
  parseCronExpression,
  type CronSchedule,
} from '../../src/plugins/cron-schedule.js';

function periodic(
  expression: string,
  timezone = 'UTC',
): Extract<CronSchedule, { kind: 'periodic' }> {
  const schedule = parseCronExpression(expression, timezone);
  assert.equal(schedule.kind, 'periodic');
  return schedule;
}

/** The next `count` slots strictly after `from`, as ISO strings. */
function slots(expression: string, from: string, count: number, timezone = 'UTC'): string[] {
  const schedule = periodic(expression, timezone);
  const out: string[] = [];
  let at = new Date(from);
  for (let i = 0; i < count; i++) {
    const next = schedule.next(at);
    assert.ok(next, `${expression} has a next slot after ${at.toISOString()}`);
    out.push(next.toISOString());
    at = next;
  }
  return out;
}

const iso = (text: string): string => new Date(text).toISOString();

describe('cron expressions', function () {
  describe('the five standard fields', function () {
    it('literals, *, lists and ranges', function () {
      assert.deepEqual(slots('5 4 * * *', '2024-01-01T00:00:00Z', 2), [
        iso('2024-01-01T04:05Z'),
        iso('2024-01-02T04:05Z'),
      ]);
      assert.deepEqual(slots('0,30 9-10 * * *', '2024-01-01T00:00:00Z', 5), [
        iso('2024-01-01T09:00Z'),
        iso('2024-01-01T09:30Z'),
        iso('2024-01-01T10:00Z'),
        iso('2024-01-01T10:30Z'),
        iso('2024-01-02T09:00Z'),
      ]);
      assert.deepEqual(slots('* * * * *', '2024-01-01T00:00:30Z', 2), [
        iso('2024-01-01T00:01Z'),
        iso('2024-01-01T00:02Z'),
      ]);
    });

    it('steps on wildcards and on ranges', function () {
      assert.deepEqual(slots('*/20 * * * *', '2024-01-01T00:00:00Z', 3), [
        iso('2024-01-01T00:20Z'),
        iso('2024-01-01T00:40Z'),
        iso('2024-01-01T01:00Z'),
      ]);
      assert.deepEqual(slots('10-30/10 2 * * *', '2024-01-01T00:00:00Z', 4), [
        iso('2024-01-01T02:10Z'),
        iso('2024-01-01T02:20Z'),
        iso('2024-01-01T02:30Z'),
        iso('2024-01-02T02:10Z'),
      ]);
    });

    it('month and weekday names, in any case, and SAT-SUN', function () {
      assert.deepEqual(slots('0 0 1 jan,JUL *', '2024-01-01T00:00:00Z', 2), [
        iso('2024-07-01T00:00Z'),
        iso('2025-01-01T00:00Z'),
      ]);
      // 2024-01-06 is a Saturday.
      assert.deepEqual(slots('0 12 * * SAT-SUN', '2024-01-01T00:00:00Z', 3), [
        iso('2024-01-06T12:00Z'),
        iso('2024-01-07T12:00Z'),
        iso('2024-01-13T12:00Z'),
      ]);
      assert.deepEqual(slots('0 12 * * mon-fri', '2024-01-05T13:00:00Z', 1), [
        iso('2024-01-08T12:00Z'),
      ]);
    });

    it('0 and 7 are both Sunday', function () {
      const sundays = [iso('2024-01-07T00:00Z'), iso('2024-01-14T00:00Z')];
      assert.deepEqual(slots('0 0 * * 0', '2024-01-01T00:00:00Z', 2), sundays);
      assert.deepEqual(slots('0 0 * * 7', '2024-01-01T00:00:00Z', 2), sundays);
      assert.deepEqual(slots('0 0 * * SUN', '2024-01-01T00:00:00Z', 2), sundays);
    });

    it('SUN closing a range is 7: MON-SUN is every day, FRI-SUN Friday to Sunday; SUN-SUN is Sunday alone', function () {
      // 2024-01-01 is a Monday.
      const week = [1, 2, 3, 4, 5, 6, 7].map((d) => iso(`2024-01-0${d}T00:00Z`));
      assert.deepEqual(slots('0 0 * * MON-SUN', '2023-12-31T12:00:00Z', 7), week);
      assert.deepEqual(slots('0 0 * * SUN-SAT', '2023-12-31T12:00:00Z', 7), week);
      assert.deepEqual(slots('0 0 * * MON-SUN/2', '2023-12-31T12:00:00Z', 4), [
        iso('2024-01-01T00:00Z'),
        iso('2024-01-03T00:00Z'),
        iso('2024-01-05T00:00Z'),
        iso('2024-01-07T00:00Z'),
      ]);
      assert.deepEqual(slots('0 0 * * fri-sun', '2024-01-01T00:00:00Z', 4), [
        iso('2024-01-05T00:00Z'),
        iso('2024-01-06T00:00Z'),
        iso('2024-01-07T00:00Z'),
        iso('2024-01-12T00:00Z'),
      ]);
      // croner read it as 0-7 too, firing every day.
      const sundays = [iso('2024-01-07T00:00Z'), iso('2024-01-14T00:00Z')];
      assert.deepEqual(slots('0 0 * * SUN-SUN', '2024-01-01T00:00:00Z', 2), sundays);
      assert.deepEqual(slots('0 0 * * 0-SUN', '2024-01-01T00:00:00Z', 2), sundays);
      assert.deepEqual(slots('0 0 * * 7-7', '2024-01-01T00:00:00Z', 2), sundays);
    });

    it('February 29 fires in leap years only', function () {
      assert.deepEqual(slots('0 0 29 2 *', '2025-01-01T00:00:00Z', 2), [
        iso('2028-02-29T00:00Z'),
        iso('2032-02-29T00:00Z'),
      ]);
    });

    it('the nicknames', function () {
      const from = '2024-05-15T10:30:00Z';
      const same = (nickname: string, expression: string) =>
        assert.deepEqual(slots(nickname, from, 3), slots(expression, from, 3), nickname);
      same('@hourly', '0 * * * *');
      same('@daily', '0 0 * * *');
      same('@midnight', '0 0 * * *');
      same('@weekly', '0 0 * * 0');
      same('@monthly', '0 0 1 * *');
      same('@yearly', '0 0 1 1 *');
      same('@annually', '0 0 1 1 *');
      assert.deepEqual(parseCronExpression('@reboot', 'UTC'), {
        kind: 'reboot',
        expression: '@reboot',
        timezone: 'UTC',
      });
    });
  });

  describe('day of month and day of week', function () {
    it('both restricted: a day matching either fires', function () {
      // January 2024: Fridays 5, 12, 19, 26, and the 13th (a Saturday).
      assert.deepEqual(slots('0 0 13 * FRI', '2024-01-01T00:00:00Z', 5), [
        iso('2024-01-05T00:00Z'),
        iso('2024-01-12T00:00Z'),
        iso('2024-01-13T00:00Z'),
        iso('2024-01-19T00:00Z'),
        iso('2024-01-26T00:00Z'),
      ]);
      // A day of month no month has still fires on the weekday.
      assert.deepEqual(slots('0 0 31 2 MON', '2024-01-01T00:00:00Z', 1), [
        iso('2024-02-05T00:00Z'),
      ]);
    });

    it('one starting with * (even */2): both must match, as in standard cron', function () {
      assert.deepEqual(slots('0 0 * * MON', '2024-01-01T00:00:00Z', 2), [
        iso('2024-01-08T00:00Z'),
        iso('2024-01-15T00:00Z'),
      ]);
      // Odd days that are Mondays: Jan 1, 15, 29.
      assert.deepEqual(slots('0 0 */2 * MON', '2023-12-31T00:00:00Z', 3), [
        iso('2024-01-01T00:00Z'),
        iso('2024-01-15T00:00Z'),
        iso('2024-01-29T00:00Z'),
      ]);
      assert.deepEqual(slots('0 0 1 * *', '2024-01-01T00:00:00Z', 1), [iso('2024-02-01T00:00Z')]);
    });
  });

  describe('timezones', function () {
    it('reads the fields in the given IANA zone', function () {
      assert.deepEqual(slots('0 9 * * *', '2024-01-01T00:00:00Z', 1, 'America/New_York'), [
        iso('2024-01-01T14:00Z'),
      ]);
      assert.deepEqual(slots('0 9 * * *', '2024-07-01T00:00:00Z', 1, 'America/New_York'), [
        iso('2024-07-01T13:00Z'),
      ]);
      assert.deepEqual(slots('0 9 * * *', '2024-01-01T00:00:00Z', 1, 'Asia/Kolkata'), [
        iso('2024-01-01T03:30Z'),
      ]);
    });

    it('the host timezone never changes a schedule', function () {
      const before = process.env.TZ;
      const cases: [string, string][] = [
        ['0 9 * * *', 'UTC'],
        ['30 2 * * *', 'Europe/Berlin'],
        ['*/30 * * * *', 'America/New_York'],
      ];
      const compute = () => cases.map(([e, tz]) => slots(e, '2024-03-09T00:00:00Z', 6, tz));
      try {
        process.env.TZ = 'UTC';
        const reference = compute();
        for (const host of ['Pacific/Kiritimati', 'America/Los_Angeles', 'Asia/Kathmandu']) {
          process.env.TZ = host;
          assert.deepEqual(compute(), reference, `host zone ${host}`);
        }
      } finally {
        if (before === undefined) delete process.env.TZ;
        else process.env.TZ = before;
      }
    });
  });

  describe('daylight saving', function () {
    // Europe/Berlin: 2024-03-31 02:00 CET jumps to 03:00 CEST (01:00Z); 2024-10-27 03:00 CEST
    // falls back to 02:00 CET (01:00Z), so 02:00-02:59 happens twice.
    it('a fixed time inside the skipped hour runs at the first minute after the jump', function () {
      assert.deepEqual(slots('30 2 * * *', '2024-03-30T00:00:00Z', 3, 'Europe/Berlin'), [
        iso('2024-03-30T01:30Z'), // 02:30 CET
        iso('2024-03-31T01:00Z'), // 03:00 CEST, right after the jump
        iso('2024-04-01T00:30Z'), // 02:30 CEST
      ]);
      // A zone that jumps half an hour: Lord Howe, 2024-10-06 02:00 -> 02:30.
      assert.deepEqual(slots('15 2 * * *', '2024-10-05T00:00:00Z', 2, 'Australia/Lord_Howe'), [
        iso('2024-10-05T15:30Z'), // 02:30, right after the jump
        iso('2024-10-06T15:15Z'),
      ]);
      // New York, 2024-03-10 02:00 EST -> 03:00 EDT.
      assert.deepEqual(slots('30 2 * * *', '2024-03-09T12:00:00Z', 2, 'America/New_York'), [
        iso('2024-03-10T07:00Z'),
        iso('2024-03-11T06:30Z'),
      ]);
    });

    it('a fixed time inside the repeated hour runs once, lists and ranges too', function () {
      assert.deepEqual(slots('30 2 * * *', '2024-10-26T12:00:00Z', 2, 'Europe/Berlin'), [
        iso('2024-10-27T00:30Z'), // 02:30 CEST, first pass only
        iso('2024-10-28T01:30Z'),
      ]);
      // New York, 2024-11-03: 01:00-01:59 happens twice.
      assert.deepEqual(slots('30 1,2 * * *', '2024-11-03T04:00:00Z', 3, 'America/New_York'), [
        iso('2024-11-03T05:30Z'), // 01:30 EDT
        iso('2024-11-03T07:30Z'), // 02:30 EST
        iso('2024-11-04T06:30Z'),
      ]);
    });

    it('every-minute and step schedules keep firing through both changes', function () {
      assert.deepEqual(slots('* * * * *', '2024-03-31T00:58:00Z', 3, 'Europe/Berlin'), [
        iso('2024-03-31T00:59Z'), // 01:59 CET
        iso('2024-03-31T01:00Z'), // 03:00 CEST
        iso('2024-03-31T01:01Z'),
      ]);
      assert.deepEqual(slots('*/30 * * * *', '2024-10-26T23:45:00Z', 5, 'Europe/Berlin'), [
        iso('2024-10-27T00:00Z'), // 02:00 CEST
        iso('2024-10-27T00:30Z'), // 02:30 CEST
        iso('2024-10-27T01:00Z'), // 02:00 CET, the second pass
        iso('2024-10-27T01:30Z'), // 02:30 CET
        iso('2024-10-27T02:00Z'),
      ]);
      assert.deepEqual(slots('0-59/30 1 * * *', '2024-11-03T04:00:00Z', 4, 'America/New_York'), [
        iso('2024-11-03T05:00Z'),
        iso('2024-11-03T05:30Z'),
        iso('2024-11-03T06:00Z'),
        iso('2024-11-03T06:30Z'),
      ]);
      // Interval schedules skip the minutes that do not exist.
      assert.deepEqual(slots('*/15 * * * *', '2024-10-05T15:00:00Z', 2, 'Australia/Lord_Howe'), [
        iso('2024-10-05T15:15Z'),
        iso('2024-10-05T15:30Z'),
      ]);
    });

    it('isSlot asks the schedule, not the wall clock', function () {
      const schedule = parseCronExpression('30 2 * * *', 'Europe/Berlin');
      assert.equal(isSlot(schedule, new Date('2024-10-27T00:30:00Z')), true);
      // Also 02:30 on the wall clock, but the second pass: not a slot.
      assert.equal(isSlot(schedule, new Date('2024-10-27T01:30:00Z')), false);
      assert.equal(isSlot(schedule, new Date('2024-03-31T01:00:00Z')), true);
      assert.equal(isSlot(parseCronExpression('@reboot', 'UTC'), new Date()), false);
    });
  });

  describe('rejects, naming the problem', function () {
    const rejects: [string, RegExp][] = [
      ['* * * *', /expected five fields .* got 4/],
      ['0 * * * * *', /expected five fields .* got 6/],
      ['60 * * * *', /minute field: 60 is out of range 0-59/],
      ['* 24 * * *', /hour field: 24 is out of range 0-23/],
      ['0 0 0 * *', /day of month field: 0 is out of range 1-31/],
      ['0 0 * 13 *', /month field: 13 is out of range 1-12/],
      ['0 0 * * 8', /day of week field: 8 is out of range 0-7/],
      ['5-1 * * * *', /minute field: the range "5-1" runs backwards/],
      ['5/10 * * * *', /a step needs \* or a range before it/],
      ['*/0 * * * *', /the step must be from 1 to 60/],
      ['0,,5 * * * *', /minute field: "" is not a value/],
      ['0 0 L * *', /not standard cron/],
      ['0 0 ? * *', /not standard cron/],
      ['0 0 1W * *', /not standard cron/],
      ['0 0 * * 5#2', /not standard cron/],
      ['H * * * *', /not standard cron/],
      ['MON * * * *', /minute field: "MON" is not a number/],
      ['0 0 * FOO *', /month field: "FOO" is not a name/],
      ['@every 5m', /unknown nickname "@every 5m"/],
      ['0 0 31 2 *', /can never fire/],
      ['0 0 30 2 *', /can never fire/],
      ['0 0 31 4,6,9,11 *', /can never fire/],
    ];
    for (const [expression, message] of rejects) {
      it(`"${expression}"`, function () {
        assert.throws(
          () => parseCronExpression(expression, 'UTC'),
          (error: Error) => error instanceof CronExpressionError && message.test(error.message),
        );
      });
    }

    it('an unknown timezone, and an empty one', function () {
      assert.throws(
        () => parseCronExpression('* * * * *', 'Mars/Olympus'),
        /unknown timezone "Mars\/Olympus"/,
      );
      assert.throws(() => parseCronExpression('* * * * *', ''), /IANA name/);
    });
  });
});
