// Identifiers that reach SQL text (the schema, channel names) are validated here and quoted;
// everything else travels as a parameter. A name must be a plain lower-case identifier short
// enough that the longest channel we derive from it still fits PostgreSQL's 63-byte limit.
// The rules for schema and queue names live here, so that the config, the CLI, the client and
// inserts refuse the same names with the same words.

export const MAX_SCHEMA_LENGTH = 40;
export const MAX_QUEUE_LENGTH = 63;
const PLAIN = /^[a-z_][a-z0-9_]*$/;

/**
 * Names of properties every JavaScript object inherits that are also plain identifiers. Queue
 * names (and schema names, in stats and settings) become keys of plain objects and of jsonb:
 * `__proto__` would set an object's prototype instead of adding a key (a config with
 * `"queues": { "__proto__": 5 }` ran no queue at all), and a lookup of `constructor` finds an
 * inherited function where no such key was set. (`toString`, `valueOf` and the like are not
 * lower-case, so PLAIN refuses them already.)
 */
const OBJECT_PROPERTY_NAMES = new Set(
  Object.getOwnPropertyNames(Object.prototype).filter((n) => PLAIN.test(n)),
);

export function isPlainIdentifier(name: string, maxLength: number): boolean {
  return (
    PLAIN.test(name) && Buffer.byteLength(name) <= maxLength && !OBJECT_PROPERTY_NAMES.has(name)
  );
}

const OBJECT_PROPERTY_WHY =
  'every JavaScript object has a property of that name, so it would not be a key of its own';
const plainRule = (maxLength: number): string =>
  `must be a plain lower-case identifier ([a-z_][a-z0-9_]*) of at most ${maxLength} bytes`;

/**
 * What is wrong with `name` as the schema of a quern instance, or null when it is usable.
 * PostgreSQL refuses to create schemas named pg_* ("unacceptable schema name") and keeps
 * pg_catalog, pg_toast and pg_temp_* for itself; information_schema holds the SQL standard's
 * catalog views, where quern's tables have no business. `public` is fine (Oban's default prefix).
 */
export function schemaNameProblem(name: unknown): string | null {
  if (typeof name !== 'string') return `expected a schema name, got ${typeof name}`;
  const quoted = JSON.stringify(name);
  if (name.startsWith('pg_') || name === 'information_schema')
    return `${quoted} is reserved by PostgreSQL (pg_* and information_schema are system schemas); choose another name, such as "quern"`;
  if (OBJECT_PROPERTY_NAMES.has(name))
    return `${quoted} cannot be a schema name: ${OBJECT_PROPERTY_WHY}`;
  if (!isPlainIdentifier(name, MAX_SCHEMA_LENGTH))
    return `${quoted} ${plainRule(MAX_SCHEMA_LENGTH)}`;
  return null;
}

/** What is wrong with `name` as a queue name ("a queue name ..."), or null when it is usable. */
export function queueNameProblem(name: string): string | null {
  if (OBJECT_PROPERTY_NAMES.has(name))
    return `a queue name cannot be ${JSON.stringify(name)}: ${OBJECT_PROPERTY_WHY}`;
  if (!isPlainIdentifier(name, MAX_QUEUE_LENGTH))
    return `a queue name ${plainRule(MAX_QUEUE_LENGTH)}`;
  return null;
}

/** PostgreSQL truncates longer identifiers silently, so two long names could meet. */
const MAX_IDENTIFIER_BYTES = 63;

export function quoteIdentifier(name: string): string {
  if (!isPlainIdentifier(name, MAX_IDENTIFIER_BYTES))
    throw new Error(`not a plain identifier of at most 63 bytes: ${JSON.stringify(name)}`);
  return `"${name}"`;
}

/** Notification channels derived from the schema, so that instances never hear each other. */
export function channelNames(schema: string): { insert: string; control: string } {
  return { insert: `${schema}_insert`, control: `${schema}_control` };
}
