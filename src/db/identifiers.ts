// Identifiers that reach SQL text (the schema, channel names) are validated here and quoted;
// everything else travels as a parameter. A name must be a plain lower-case identifier short
// enough that the longest channel we derive from it still fits PostgreSQL's 63-byte limit.

export const MAX_SCHEMA_LENGTH = 40;
export const MAX_QUEUE_LENGTH = 63;
const PLAIN = /^[a-z_][a-z0-9_]*$/;

export function isPlainIdentifier(name: string, maxLength: number): boolean {
  return PLAIN.test(name) && Buffer.byteLength(name) <= maxLength;
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
