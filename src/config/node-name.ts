// A node's name goes into its heartbeat row, attempted_by of every job it runs, log lines,
// `status`, and (cut to 63 bytes) the application_name of its connections. A NUL character
// broke the connection's startup packet ("invalid startup packet layout", as a raw stack);
// other control and format characters garble logs and tables. So: printable text, bounded.

export const MAX_NODE_NAME_LENGTH = 128;

/**
 * Control characters (C0, DEL, C1), format characters (zero-width, bidi overrides, BOM), line
 * and paragraph separators, and lone surrogates (pg would send them as U+FFFD).
 */
const UNPRINTABLE = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}]/u;

/** What is wrong with `name` as a node name, or null when it is usable. */
export function nodeNameProblem(name: string): string | null {
  // Saved queue settings use '*' for every node (`queue pause --node` and the client's node
  // option): a node of that name would take every node's settings as its own, and the reverse.
  if (name === '*') return `must not be "*", which stands for every node in queue settings`;
  // Characters as code points (an emoji is one, as the user sees it, mostly).
  const length = Array.from(name).length;
  if (length > MAX_NODE_NAME_LENGTH)
    return `must be at most ${MAX_NODE_NAME_LENGTH} characters, got ${length}`;
  const bad = UNPRINTABLE.exec(name);
  if (bad) {
    const code = bad[0].codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0');
    return `must be printable text without control characters, got U+${code} at position ${bad.index}`;
  }
  return null;
}
