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

/**
 * A value as an error message about it shows it: its JSON, a BigInt as \`5n\`, NaN as NaN, and
 * what it is when JSON.stringify gives nothing or throws (a cycle, a toJSON that throws). Never
 * throws: the value is the caller's bad input, and a message that threw in its place (\`got
 * \${JSON.stringify(1n)}\`) was a bare TypeError naming no field.
 */
export function showValue(value: unknown): string {
  if (typeof value === 'bigint') return `${value}n`;
  if (typeof value === 'number') return String(value);
  try {
    const text = JSON.stringify(value);
    if (text !== undefined) return text;
  } catch {
    // a cycle, or a toJSON, getter or Proxy trap that throws: named by its kind below
  }
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'object' && value !== null) return 'an object';
  return typeof value;
}

/** Whether a string holds half of a surrogate pair alone (jsonb and JSON input refuse it). */
export function hasLoneSurrogate(value: string): boolean {
  return LONE_SURROGATE.test(value);
}

/** What a string holds that jsonb refuses, or null. */
function stringProblem(value: string): string | null {
  if (value.includes('\u0000'))
    return 'contains a NUL character (\\u0000), which PostgreSQL jsonb cannot store';
  if (LONE_SURROGATE.test(value))
    return 'contains a lone UTF-16 surrogate, which PostgreSQL jsonb cannot store';
  return null;
}

/** Deeper than this, a value is refused at insert (it would exhaust the stack of whoever walks it). */
export const MAX_JSON_DEPTH = 1000;

/** Where the walk is: the value's name and the keys down to the current one. */
interface Walk {
  where: string;
  path: (string | number)[];
  /** The objects and arrays being walked, outermost first: meeting one again is a cycle. */
  open: object[];
}

function at(walk: Walk): string {
  let text = walk.where;
  for (const step of walk.path) text += typeof step === 'number' ? `[${step}]` : `.${step}`;
  return text;
}

/**
 * Throws a JsonValueError naming the path of the first value jsonb cannot hold. The path is
 * kept as a stack of keys and written out only for the error: building `args.a.b` for every
 * value walked (and quoting every key) was a large part of validating an insert (bench W1).
 */
export function assertJsonValue(value: unknown, where: string): void {
  const walk: Walk = { where, path: [], open: [] };
  try {
    walkValue(value, 0, walk);
  } catch (error) {
    if (error instanceof JsonValueError) throw error;
    // A getter that throws (the path ends at its key): the insert's own error, not the getter's
    // bare Error that named no field.
    const message = error instanceof Error ? error.message : String(error);
    throw new JsonValueError(`${at(walk)}: reading it threw (${message})`);
  }
}

function walkValue(item: unknown, depth: number, walk: Walk): void {
  if (depth > MAX_JSON_DEPTH) {
    throw new JsonValueError(`${at(walk)}: nested more than ${MAX_JSON_DEPTH} levels deep`);
  }
  switch (typeof item) {
    case 'string': {
      const problem = stringProblem(item);
      if (problem) throw new JsonValueError(`${at(walk)}: ${problem}`);
      return;
    }
    case 'number':
      if (!Number.isFinite(item))
        throw new JsonValueError(`${at(walk)}: ${item} is not a JSON number`);
      return;
    case 'boolean':
      return;
    case 'bigint':
      throw new JsonValueError(
        `${at(walk)}: a BigInt cannot be stored as JSON (convert it to a string)`,
      );
    case 'function':
    case 'symbol':
      throw new JsonValueError(`${at(walk)}: a ${typeof item} cannot be stored as JSON`);
    case 'undefined':
      throw new JsonValueError(`${at(walk)}: undefined cannot be stored as JSON`);
    case 'object': {
      if (item === null) return;
      const { open, path } = walk;
      // A list, not a Set: it holds one entry per level (a Set per insert cost more than the
      // lookups in a list this short).
      if (open.includes(item)) throw new JsonValueError(`${at(walk)}: contains a cycle`);
      if (Array.isArray(item)) {
        open.push(item);
        for (let index = 0; index < item.length; index++) {
          // Holes of a sparse array are skipped, as before (JSON writes them as null).
          if (!(index in item)) continue;
          path.push(index);
          walkValue(item[index], depth + 1, walk);
          path.pop();
        }
        open.pop();
        return;
      }
      const proto = Object.getPrototypeOf(item) as unknown;
      if (item instanceof Date) {
        // Serialised as an ISO string; an invalid one (new Date('x')) as null, unseen.
        if (Number.isNaN(item.getTime()))
          throw new JsonValueError(`${at(walk)}: an invalid Date cannot be stored as JSON`);
        return;
      }
      if (proto !== Object.prototype && proto !== null) {
        const name = (item as { constructor?: { name?: string } }).constructor?.name ?? 'object';
        throw new JsonValueError(`${at(walk)}: a ${name} is not a plain JSON value`);
      }
      // JSON.stringify skips symbol keys, so `{ [Symbol('s')]: 1 }` was stored as {} unseen.
      const symbol = Object.getOwnPropertySymbols(item).find((key) =>
        Object.prototype.propertyIsEnumerable.call(item, key),
      );
      if (symbol !== undefined)
        throw new JsonValueError(
          `${at(walk)} key ${symbol.toString()}: a symbol key cannot be stored as JSON`,
        );
      open.push(item);
      const record = item as Record<string, unknown>;
      for (const key of Object.keys(record)) {
        const problem = stringProblem(key);
        if (problem)
          throw new JsonValueError(
            `${at(walk)} key ${JSON.stringify(key.slice(0, 20))}: ${problem}`,
          );
        path.push(key);
        const member = record[key];
        // undefined is dropped by JSON, as users expect.
        if (member !== undefined) walkValue(member, depth + 1, walk);
        path.pop();
      }
      open.pop();
      return;
    }
  }
}

/** A JSON text's tokens: strings, punctuation, and the rest (numbers, true, false, null). */
const JSON_TOKENS = /"(?:[^"\\]|\\.)*"|[{}[\]:,]|[^\s{}[\]:,"]+/g;

/**
 * Throws a JsonValueError naming the path of the first thing in a JSON text (one that parses)
 * that JSON.parse would change without a word: a key given twice in one object (it keeps the
 * last: two "queues" in a configuration file, say), or an integer beyond 2^53 - 1 (it rounds it:
 * `12345678901234567890123` would be stored as 12345678901234568000000). A number written with a
 * fraction or an exponent is a double by choice and is left alone. `where` names the root in the
 * path ('args'; '' for none, as for a configuration file's keys).
 */
export function assertFaithfulJson(text: string, where: string): void {
  const tokens = text.match(JSON_TOKENS) ?? [];
  // Per open object or array: its path, its keys so far or its index, and the key being read.
  const open: { path: string; keys: Set<string> | null; index: number; key: string }[] = [];
  const childPath = (): string => {
    const top = open.at(-1);
    if (!top) return where;
    if (top.keys === null) return `${top.path}[${top.index}]`;
    return top.path === '' ? top.key : `${top.path}.${top.key}`;
  };
  for (let i = 0; i < tokens.length; i++) {
    const token = tokens[i]!;
    const top = open.at(-1);
    if (token === '{' || token === '[') {
      open.push({ path: childPath(), keys: token === '{' ? new Set() : null, index: 0, key: '' });
    } else if (token === '}' || token === ']') {
      open.pop();
    } else if (token === ',') {
      if (top) top.index++;
    } else if (top?.keys && token.startsWith('"') && tokens[i + 1] === ':') {
      const key = JSON.parse(token) as string;
      if (top.keys.has(key)) {
        throw new JsonValueError(
          `${top.path === '' ? '' : `${top.path}: `}the key ${JSON.stringify(key)} is given twice; JSON keeps only the last, so the first would be lost`,
        );
      }
      top.keys.add(key);
      top.key = key;
    } else if (/^-?\d+$/.test(token) && !Number.isSafeInteger(Number(token))) {
      throw new JsonValueError(
        `${childPath()}: the integer ${token} is beyond ${Number.MAX_SAFE_INTEGER} (2^53 - 1), the ` +
          `largest a JSON number keeps exactly here, and would be stored as ${Number(token)}; ` +
          `write it as a string ("${token}")`,
      );
    }
  }
}

/** Removes what jsonb cannot store from a string (used for errors and results of jobs). */
export function cleanString(value: string): string {
  // eslint-disable-next-line no-control-regex -- NUL is exactly what jsonb refuses
  return value.replace(/\u0000/g, '\uFFFD').replace(LONE_SURROGATE_GLOBAL, '\uFFFD');
}

/**
 * `then` of a native promise, as `await` settles one, not the promise's own (which job code may
 * have replaced by one that throws or never calls back). Used wherever a job's promise is read.
 */
// eslint-disable-next-line @typescript-eslint/unbound-method -- bound to each promise by call
export const promiseThen = Function.prototype.call.bind(Promise.prototype.then) as <T>(
  promise: Promise<T>,
  fulfilled: ((value: T) => void) | undefined,
  rejected: (error: unknown) => void,
) => void;

/** Handles a promise's rejection (see promiseThen), so that it never goes unhandled. Never throws. */
export function promiseCatch(promise: Promise<unknown>): void {
  try {
    promiseThen(promise, undefined, () => undefined);
  } catch {
    // its `constructor` getter throws (`then` reads it): nothing more to do
  }
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
): {
  value: unknown;
  problem: string | null;
  tooLong?: number;
  /** Serialising it threw (a cycle, a toJSON or getter that throws, a Proxy trap): nothing kept. */
  threw?: true;
} {
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
    // The value before its toJSON: an invalid Date's gives null. Read without calling a getter
    // again; a holder that refuses (a Proxy) is left as it was.
    if (item === null) {
      try {
        const original: unknown = Object.getOwnPropertyDescriptor(this, key)?.value;
        if (original instanceof Date) note('an invalid Date, stored as null', where);
      } catch {
        // nothing to say about it
      }
      return item;
    }
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
          // Usually a forgotten await: what it would resolve to is not stored. A rejected one is
          // handled here: left unhandled, its rejection killed the job's thread and charged
          // every job on it.
          note('a Promise (not awaited), stored as {}', where);
          promiseCatch(item);
        }
        let out = item;
        if (!Array.isArray(item)) {
          if (
            Object.getOwnPropertySymbols(item).some((k) =>
              Object.prototype.propertyIsEnumerable.call(item, k),
            )
          )
            note('symbol keys, dropped', where);
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
    let message: string;
    try {
      const text = (error as { message?: unknown } | null)?.message;
      message = typeof text === 'string' ? text : String(error);
    } catch {
      message = 'reading what it threw threw too';
    }
    return {
      value: null,
      problem: `${root}: the value cannot be stored as JSON: ${message}`,
      threw: true,
    };
  }
}
