// Small helpers for validating untrusted input (config files, CLI flags, insert options) with
// messages that name the offending key and, for typos, suggest the nearest known one.

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (value === null || typeof value !== 'object') return false;
  const proto = Object.getPrototypeOf(value) as unknown;
  return proto === Object.prototype || proto === null;
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let previous = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const current = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, previous + (a[i - 1] === b[j - 1] ? 0 : 1));
      previous = current;
    }
  }
  return row[b.length]!;
}

export function suggest(key: string, known: readonly string[]): string {
  let best: string | null = null;
  let bestDistance = Infinity;
  for (const candidate of known) {
    const distance = editDistance(key.toLowerCase(), candidate.toLowerCase());
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return best !== null && bestDistance <= Math.max(2, Math.floor(key.length / 3))
    ? ` (did you mean "${best}"?)`
    : '';
}

/** Throws when `object` has a key outside `known`, naming it and suggesting the near one. */
export function rejectUnknownKeys(
  object: Record<string, unknown>,
  known: readonly string[],
  where: string,
  makeError: (message: string) => Error = (m) => new ConfigError(m),
): void {
  for (const key of Object.keys(object)) {
    if (!known.includes(key)) {
      throw makeError(`${where}: unknown key "${key}"${suggest(key, known)}`);
    }
  }
}

/**
 * An integer within [min, max]. Every message names the key and, when given, the allowed range
 * (and `note`: the unit or the reason for the bound), so a user can fix the value from it alone.
 */
export function expectInteger(
  value: unknown,
  where: string,
  { min, max, note }: { min?: number; max?: number; note?: string } = {},
): number {
  const range =
    min !== undefined && max !== undefined
      ? `${min} to ${max}`
      : min !== undefined
        ? `${min} or more`
        : max !== undefined
          ? `at most ${max}`
          : null;
  const allowed =
    range === null && note === undefined
      ? ''
      : ` (allowed: ${[range, note].filter((p) => p !== null && p !== undefined).join('; ')})`;
  if (typeof value !== 'number' || !Number.isInteger(value)) {
    throw new ConfigError(`${where}: expected an integer, got ${describe(value)}${allowed}`);
  }
  if (min !== undefined && value < min) {
    throw new ConfigError(`${where}: must be at least ${min}, got ${value}${allowed}`);
  }
  if (max !== undefined && value > max) {
    throw new ConfigError(`${where}: must be at most ${max}, got ${value}${allowed}`);
  }
  return value;
}

export function expectString(value: unknown, where: string): string {
  if (typeof value !== 'string' || value.length === 0) {
    throw new ConfigError(`${where}: expected a non-empty string, got ${describe(value)}`);
  }
  return value;
}

export function expectBoolean(value: unknown, where: string): boolean {
  if (typeof value !== 'boolean') {
    throw new ConfigError(`${where}: expected true or false, got ${describe(value)}`);
  }
  return value;
}

export function expectObject(value: unknown, where: string): Record<string, unknown> {
  if (!isPlainObject(value)) {
    throw new ConfigError(`${where}: expected an object, got ${describe(value)}`);
  }
  return value;
}

export function describe(value: unknown): string {
  if (value === null) return 'null';
  if (value === undefined) return 'nothing';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'string')
    return JSON.stringify(value.length > 40 ? value.slice(0, 40) + '…' : value);
  if (typeof value === 'object') return 'an object';
  if (typeof value === 'function' || typeof value === 'symbol') return `a ${typeof value}`;
  if (typeof value === 'bigint') return `bigint ${value.toString()}`;
  // String, not JSON: JSON.stringify shows NaN and Infinity as null ("got number null").
  if (typeof value === 'number') return `number ${String(value)}`;
  return `${typeof value} ${JSON.stringify(value) ?? 'undefined'}`;
}
