// What PostgreSQL jsonb can store. JSON.stringify is lenient (it drops functions, turns NaN into
// null) and jsonb is stricter than JSON (no \u0000, no lone surrogates), so values entering the
// database are checked here: strictly at the insert edge, leniently (cleaned) for what jobs
// produce, so that a bad value fails its own job and nothing else.

export class JsonValueError extends Error {
  override name = 'JsonValueError';
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const LONE_SURROGATE_GLOBAL =
  /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

function checkString(value: string, where: string): void {
  if (value.includes('\u0000'))
    throw new JsonValueError(
      `${where}: contains a NUL character (\\u0000), which PostgreSQL jsonb cannot store`,
    );
  if (LONE_SURROGATE.test(value))
    throw new JsonValueError(
      `${where}: contains a lone UTF-16 surrogate, which PostgreSQL jsonb cannot store`,
    );
}

/** Throws a JsonValueError naming the path of the first value jsonb cannot hold. */
/** Deeper than this, a value is refused at insert (it would exhaust the stack of whoever walks it). */
export const MAX_JSON_DEPTH = 1000;

export function assertJsonValue(
  value: unknown,
  where: string,
  seen = new Set<object>(),
  depth = 0,
): void {
  if (depth > MAX_JSON_DEPTH) {
    throw new JsonValueError(`${where}: nested more than ${MAX_JSON_DEPTH} levels deep`);
  }
  switch (typeof value) {
    case 'string':
      checkString(value, where);
      return;
    case 'number':
      if (!Number.isFinite(value))
        throw new JsonValueError(`${where}: ${value} is not a JSON number`);
      return;
    case 'boolean':
      return;
    case 'bigint':
      throw new JsonValueError(
        `${where}: a BigInt cannot be stored as JSON (convert it to a string)`,
      );
    case 'function':
    case 'symbol':
      throw new JsonValueError(`${where}: a ${typeof value} cannot be stored as JSON`);
    case 'undefined':
      throw new JsonValueError(`${where}: undefined cannot be stored as JSON`);
    case 'object': {
      if (value === null) return;
      if (seen.has(value)) throw new JsonValueError(`${where}: contains a cycle`);
      if (Array.isArray(value)) {
        seen.add(value);
        value.forEach((item, index) =>
          assertJsonValue(item, `${where}[${index}]`, seen, depth + 1),
        );
        seen.delete(value);
        return;
      }
      const proto = Object.getPrototypeOf(value) as unknown;
      if (value instanceof Date) return; // serialised as an ISO string
      if (proto !== Object.prototype && proto !== null) {
        const name = (value as { constructor?: { name?: string } }).constructor?.name ?? 'object';
        throw new JsonValueError(`${where}: a ${name} is not a plain JSON value`);
      }
      seen.add(value);
      for (const [key, item] of Object.entries(value)) {
        checkString(key, `${where} key ${JSON.stringify(key.slice(0, 20))}`);
        if (item === undefined) continue; // dropped by JSON, as users expect
        assertJsonValue(item, `${where}.${key}`, seen, depth + 1);
      }
      seen.delete(value);
      return;
    }
  }
}

/** Removes what jsonb cannot store from a string (used for errors and results of jobs). */
export function cleanString(value: string): string {
  // eslint-disable-next-line no-control-regex -- NUL is exactly what jsonb refuses
  return value.replace(/\u0000/g, '\uFFFD').replace(LONE_SURROGATE_GLOBAL, '\uFFFD');
}

/** How many changed values a warning names before it says "and N more". */
const NAMED_CHANGES = 3;

/**
 * Turns any value into something jsonb can store, or reports why not. Strings are cleaned;
 * what JSON cannot carry is changed as JSON.stringify would (NaN and Infinity become null, a
 * function is dropped) or kept another way (a BigInt as a string), and `problem` names the path
 * of each value changed (`result.stats.mean`, `result.items[2]`), so the caller can warn.
 * `root` names the value itself in those paths.
 */
export function toStorableJson(
  value: unknown,
  root = 'result',
  maxLength = Infinity,
): { value: unknown; problem: string | null; tooLong?: number } {
  // What happened -> the first paths it happened at, and how often (a result of a million NaNs
  // must not make a warning of a million paths).
  const changes = new Map<string, { at: string[]; count: number }>();
  const note = (what: string, where: string): void => {
    const change = changes.get(what) ?? { at: [], count: 0 };
    if (change.count++ < NAMED_CHANGES) change.at.push(where);
    changes.set(what, change);
  };
  // The path of each object being serialised: the replacer is called with the holder as `this`,
  // and every holder passed through the replacer (as a value) before its members are visited.
  const paths = new WeakMap<object, string>();
  const pathOf = (holder: unknown, key: string): string => {
    const base = typeof holder === 'object' && holder !== null ? paths.get(holder) : undefined;
    if (base === undefined) return root; // the wrapper { '': value } JSON.stringify starts from
    return Array.isArray(holder) ? `${base}[${key}]` : `${base}.${key}`;
  };
  function replacer(this: unknown, key: string, item: unknown): unknown {
    const where = pathOf(this, key);
    switch (typeof item) {
      case 'number':
        if (!Number.isFinite(item)) note(`${String(item)}, stored as null`, where);
        return item;
      case 'bigint':
        note('a BigInt, stored as a string', where);
        return item.toString();
      case 'string': {
        const cleaned = cleanString(item);
        if (cleaned !== item) note('NUL characters or lone surrogates replaced', where);
        return cleaned;
      }
      case 'function':
      case 'symbol':
        note(`a ${typeof item}, ${Array.isArray(this) ? 'stored as null' : 'dropped'}`, where);
        return item;
      case 'object': {
        if (item === null) return item;
        if (item instanceof Map || item instanceof Set) {
          note(`a ${item instanceof Map ? 'Map' : 'Set'}, stored as {}`, where);
        } else if (item instanceof Promise) {
          // Usually a forgotten await: what it would resolve to is not stored.
          note('a Promise (not awaited), stored as {}', where);
        }
        let out = item;
        if (!Array.isArray(item)) {
          const keys = Object.keys(item);
          if (keys.some((k) => cleanString(k) !== k)) {
            note('NUL characters or lone surrogates replaced in keys', where);
            out = Object.fromEntries(
              keys.map((k) => [cleanString(k), (item as Record<string, unknown>)[k]]),
            );
          }
        }
        paths.set(out, where);
        return out;
      }
      default:
        return item;
    }
  }
  const describe = (): string | null => {
    if (changes.size === 0) return null;
    const parts = [...changes].map(([what, { at, count }]) => {
      const more = count > at.length ? ` and ${count - at.length} more` : '';
      return `${at.join(', ')}${more}: ${what}`;
    });
    return `changed to be stored as JSON: ${parts.join('; ')}`;
  };
  try {
    const text = JSON.stringify(value, replacer);
    if (text === undefined)
      return { value: null, problem: `${root}: the value cannot be represented as JSON` };
    // Checked before parsing it back: a value that will be refused costs no second copy.
    if (text.length > maxLength) return { value: null, problem: null, tooLong: text.length };
    return { value: JSON.parse(text) as unknown, problem: describe() };
  } catch (error) {
    return {
      value: null,
      problem: `${root}: the value cannot be stored as JSON: ${(error as Error).message}`,
    };
  }
}
