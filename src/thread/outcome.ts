// Turns whatever perform returned or threw into one of the documented outcomes. Runs inside the
// worker thread, so that a value that cannot cross the thread boundary (a function, a cycle) is
// handled where it arises, and only plain data comes back to the main thread.

import { cleanString, toStorableJson } from '../jobs/json.js';

export type ThreadOutcome =
  | { kind: 'completed'; result: unknown; warning: string | null }
  | { kind: 'failed'; error: string; warning: string | null }
  | { kind: 'cancelled'; reason: string; warning: string | null }
  | { kind: 'discarded'; reason: string; warning: string | null }
  | { kind: 'snoozed'; seconds: number; warning: string | null };

export function describeError(error: unknown): string {
  if (error instanceof Error) {
    const text =
      error.stack && error.stack.includes(error.message)
        ? error.stack
        : `${error.name}: ${error.message}\n${error.stack ?? ''}`;
    return cleanString(text).slice(0, 20000);
  }
  try {
    return cleanString(
      typeof error === 'string' ? error : (JSON.stringify(error) ?? String(error)),
    ).slice(0, 20000);
  } catch {
    return cleanString(String(error)).slice(0, 20000);
  }
}

function reasonText(value: unknown): string {
  if (typeof value === 'string') return cleanString(value);
  if (value instanceof Error) return describeError(value);
  const { value: json } = toStorableJson(value);
  return cleanString(JSON.stringify(json) ?? String(value));
}

function single(value: object, key: string): boolean {
  return key in value && Object.keys(value).length === 1;
}

export function interpretReturn(value: unknown): ThreadOutcome {
  if (value === undefined || value === null || value === 'ok') {
    return { kind: 'completed', result: null, warning: null };
  }
  if (typeof value === 'object' && !Array.isArray(value)) {
    const record = value as Record<string, unknown>;
    if (single(record, 'ok')) {
      const stored = toStorableJson(record.ok);
      return {
        kind: 'completed',
        result: stored.value,
        warning: stored.problem && `result: ${stored.problem}`,
      };
    }
    if (single(record, 'error'))
      return { kind: 'failed', error: describeError(record.error), warning: null };
    if (single(record, 'cancel'))
      return { kind: 'cancelled', reason: reasonText(record.cancel), warning: null };
    if (single(record, 'discard'))
      return { kind: 'discarded', reason: reasonText(record.discard), warning: null };
    if (single(record, 'snooze')) {
      const seconds = record.snooze;
      if (typeof seconds === 'number' && Number.isFinite(seconds) && seconds >= 0) {
        return { kind: 'snoozed', seconds, warning: null };
      }
      return {
        kind: 'failed',
        error: `invalid return value: { snooze } needs a number of seconds of 0 or more, got ${JSON.stringify(seconds) ?? String(seconds)}`,
        warning: null,
      };
    }
  }
  // Documented rule (as Oban): any other value means success; it is stored if it can be, and a
  // warning says the return value was not one of the documented outcomes.
  const stored = toStorableJson(value);
  return {
    kind: 'completed',
    result: stored.value,
    warning: `perform returned a value that is not a documented outcome (${describeShape(value)}); treated as completed${stored.problem ? `, and ${stored.problem}` : ''}`,
  };
}

function describeShape(value: unknown): string {
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'object' && value !== null)
    return `an object with keys ${Object.keys(value).slice(0, 5).join(', ') || '(none)'}`;
  return typeof value;
}
