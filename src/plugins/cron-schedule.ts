// Cron expressions as standard (Vixie) cron reads them: five fields, month and weekday names,
// nicknames and @reboot. The syntax is checked here, so messages name the field and value; the
// calendar arithmetic (timezones, daylight saving) is croner's, given the options and checks
// measured in shared/notes/cron.md. Always with an explicit zone: the host's never counts.

import { Cron } from 'croner';

export class CronExpressionError extends Error {
  override name = 'CronExpressionError';
}

export type CronSchedule =
  | { kind: 'reboot'; expression: string; timezone: string }
  | {
      kind: 'periodic';
      expression: string;
      timezone: string;
      /** The first slot strictly after `after`, or null when there is none (never for a valid one). */
      next(after: Date): Date | null;
    };

const NICKNAMES: Record<string, string> = {
  '@yearly': '0 0 1 1 *',
  '@annually': '0 0 1 1 *',
  '@monthly': '0 0 1 * *',
  '@weekly': '0 0 * * 0',
  '@daily': '0 0 * * *',
  '@midnight': '0 0 * * *',
  '@hourly': '0 * * * *',
};

interface Field {
  name: string;
  min: number;
  max: number;
  /** Names, the first meaning `min`. */
  names?: string[];
}

const FIELDS: Field[] = [
  { name: 'minute', min: 0, max: 59 },
  { name: 'hour', min: 0, max: 23 },
  { name: 'day of month', min: 1, max: 31 },
  {
    name: 'month',
    min: 1,
    max: 12,
    names: ['JAN', 'FEB', 'MAR', 'APR', 'MAY', 'JUN', 'JUL', 'AUG', 'SEP', 'OCT', 'NOV', 'DEC'],
  },
  // 0 and 7 are both Sunday.
  { name: 'day of week', min: 0, max: 7, names: ['SUN', 'MON', 'TUE', 'WED', 'THU', 'FRI', 'SAT'] },
];

const ITEM = /^(?:(\*)|([0-9A-Za-z]+)(?:-([0-9A-Za-z]+))?)(?:\/([0-9]+))?$/;

const NOT_STANDARD = ' (L, W, #, ? and H are not standard cron)';
const EXTENSION = /^(?:L|LW|H|[0-9]+[LW]|[A-Za-z]{3}L)$/i;

function value(text: string, field: Field, rangeEnd: boolean): number {
  if (EXTENSION.test(text))
    throw new CronExpressionError(`${field.name} field: "${text}" is not a value${NOT_STANDARD}`);
  if (/^[0-9]+$/.test(text)) {
    const n = Number(text);
    if (n < field.min || n > field.max)
      throw new CronExpressionError(
        `${field.name} field: ${text} is out of range ${field.min}-${field.max}`,
      );
    return n;
  }
  if (!field.names)
    throw new CronExpressionError(
      `${field.name} field: "${text}" is not a number (names are only allowed in the month and day of week fields)`,
    );
  const index = field.names.indexOf(text.toUpperCase());
  if (index < 0)
    throw new CronExpressionError(
      `${field.name} field: "${text}" is not a name (${field.names[0]}-${field.names.at(-1)})`,
    );
  // SAT-SUN: Sunday closing a range is 7.
  if (rangeEnd && field.name === 'day of week' && index === 0) return 7;
  return field.min + index;
}

/**
 * Checks one field and returns it with names written as numbers, as croner is given it: croner
 * reads a Sunday closing a range as 7 too, so `SUN-SUN` was 0-7 and fired every day, where
 * standard cron (and whoever wrote it) means Sunday alone.
 */
function checkField(text: string, field: Field): string {
  const items: string[] = [];
  for (const item of text.split(',')) {
    const match = ITEM.exec(item);
    if (!match) {
      throw new CronExpressionError(
        `${field.name} field: "${item}" is not a value, a range, a step or *` +
          (/[LW#?H]/.test(item) ? NOT_STANDARD : ''),
      );
    }
    const [, star, low, high, step] = match;
    if (step !== undefined) {
      if (!star && high === undefined)
        throw new CronExpressionError(
          `${field.name} field: "${item}": a step needs * or a range before it, as in */${step} or ${low}-${field.max}/${step}`,
        );
      const n = Number(step);
      if (n < 1 || n > field.max - field.min + 1)
        throw new CronExpressionError(
          `${field.name} field: "${item}": the step must be from 1 to ${field.max - field.min + 1}`,
        );
    }
    const every = step === undefined ? '' : `/${step}`;
    if (star) {
      items.push(`*${every}`);
      continue;
    }
    const from = value(low!, field, false);
    if (high === undefined) {
      items.push(`${from}${every}`);
      continue;
    }
    let to = value(high, field, true);
    // SUN closing a range is 7 (MON-SUN, SAT-SUN), but SUN-SUN is Sunday, not 0-7.
    if (from === 0 && to === 7 && !/^[0-9]+$/.test(high)) to = 0;
    if (from > to)
      throw new CronExpressionError(
        `${field.name} field: the range "${item}" runs backwards (${from} > ${to})`,
      );
    items.push(`${from}-${to}${every}`);
  }
  return items.join(',');
}

export function checkTimezone(timezone: string): void {
  if (typeof timezone !== 'string' || timezone.length === 0)
    throw new CronExpressionError('the timezone must be an IANA name such as "Europe/Paris"');
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: timezone });
  } catch {
    throw new CronExpressionError(
      `unknown timezone "${timezone}" (expected an IANA name such as "Europe/Paris" or "UTC")`,
    );
  }
}

// Every five-field expression repeats within 28 years, so a scan from here finds any that can
// match; one that finds nothing names an impossible date.
const SCAN_FROM = new Date('2000-01-01T00:00:00Z');

export function parseCronExpression(expression: string, timezone: string): CronSchedule {
  checkTimezone(timezone);
  const trimmed = expression.trim();
  if (trimmed.toLowerCase() === '@reboot') return { kind: 'reboot', expression: trimmed, timezone };
  let text = trimmed;
  if (text.startsWith('@')) {
    const expanded = NICKNAMES[text.toLowerCase()];
    if (!expanded)
      throw new CronExpressionError(
        `unknown nickname "${text}" (expected @reboot, ${Object.keys(NICKNAMES).join(', ')})`,
      );
    text = expanded;
  }
  const parts = text.split(/\s+/);
  if (parts.length !== 5)
    throw new CronExpressionError(
      `expected five fields (minute hour day-of-month month day-of-week), got ${parts.length}`,
    );
  const fields = parts.map((part, i) => checkField(part, FIELDS[i]!));

  // Standard cron: when both day fields are restricted a day matching either fires; a day field
  // starting with * (even */2) counts as unrestricted and the two are combined with AND.
  const domAndDow = parts[2]!.startsWith('*') || parts[4]!.startsWith('*');
  let cron: Cron;
  try {
    cron = new Cron(fields.join(' '), {
      timezone,
      mode: '5-part',
      // Lists and ranges of hours or minutes are fixed times across daylight-saving changes.
      fixedTimeRule: 'no-wildcard',
      domAndDow,
    });
  } catch (error) {
    throw new CronExpressionError((error as Error).message);
  }
  if (cron.nextRun(SCAN_FROM) === null)
    throw new CronExpressionError(`"${trimmed}" can never fire: no date matches it`);
  return {
    kind: 'periodic',
    expression: trimmed,
    timezone,
    next: (after) => cron.nextRun(after),
  };
}

/** True when `instant` is a slot of the schedule (`match` compares wall-clock time, wrong around DST). */
export function isSlot(schedule: CronSchedule, instant: Date): boolean {
  if (schedule.kind !== 'periodic') return false;
  return schedule.next(new Date(instant.getTime() - 1))?.getTime() === instant.getTime();
}

/**
 * What makes two crontab entries the same: its slots in cron_slots are keyed by this, so
 * reordering the crontab or changing a job option (priority, queue) keeps an entry's history.
 */
export function cronEntryIdentity(
  entry: {
    expression: string;
    worker: string;
    args: Record<string, unknown>;
    timezone: string | null;
  },
  defaultTimezone: string,
): string {
  return JSON.stringify([
    entry.expression.trim().split(/\s+/).join(' '),
    entry.worker,
    canonical(entry.args),
    entry.timezone ?? defaultTimezone,
  ]);
}

function canonical(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(canonical);
  if (value !== null && typeof value === 'object')
    return Object.fromEntries(
      Object.keys(value)
        .sort()
        .map((k) => [k, canonical((value as Record<string, unknown>)[k])]),
    );
  return value;
}
