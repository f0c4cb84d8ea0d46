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

/**
 * Turns any value into something jsonb can store, or reports why not. Strings are cleaned;
 * values JSON cannot carry are reported so the caller can warn.
 */
export function toStorableJson(value: unknown): { value: unknown; problem: string | null } {
  let problem: string | null = null;
  const note = (message: string): void => {
    problem ??= message;
  };
  try {
    const text = JSON.stringify(value, (_key, item: unknown) => {
      if (typeof item === 'bigint') {
        note('a BigInt was converted to a string');
        return item.toString();
      }
      if (typeof item === 'string') {
        const cleaned = cleanString(item);
        if (cleaned !== item) note('NUL characters or lone surrogates were replaced');
        return cleaned;
      }
      if (item !== null && typeof item === 'object' && !Array.isArray(item)) {
        const keys = Object.keys(item);
        if (keys.some((key) => cleanString(key) !== key)) {
          note('NUL characters or lone surrogates were replaced');
          return Object.fromEntries(
            keys.map((key) => [cleanString(key), (item as Record<string, unknown>)[key]]),
          );
        }
      }
      return item;
    });
    if (text === undefined)
      return { value: null, problem: 'the value cannot be represented as JSON' };
    return { value: JSON.parse(text) as unknown, problem };
  } catch (error) {
    return {
      value: null,
      problem: `the value cannot be stored as JSON: ${(error as Error).message}`,
    };
  }
}
