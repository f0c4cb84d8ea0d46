// A database URL that cannot be used is a configuration error, found before any connection is
// tried. pg parses a connection string against a dummy base ('postgres://base'), so 'not a url'
// became host "base" and `mysql://x@y/z` host "y": both were retried forever as if the server
// were down. Messages never repeat the URL, which may hold a password.

const EXAMPLE = 'postgres://user:password@host:5432/database';
const PROTOCOLS = ['postgres:', 'postgresql:'];

/** Parses `url` as an absolute URL the way pg-connection-string does, or returns null. */
function parseAbsolute(url: string): URL | null {
  // pg encodes spaces and stray % signs first, and allows an empty host ('postgres://u@/db').
  const text = / |%[^a-f0-9]|%[a-f0-9][^a-f0-9]/i.test(url)
    ? encodeURI(url).replace(/%25(\d\d)/g, '%$1')
    : url;
  for (const candidate of [text, text.replace('@/', '@___DUMMY___/')]) {
    try {
      return new URL(candidate);
    } catch {
      // try the next form
    }
  }
  return null;
}

/**
 * What is wrong with `url` as a PostgreSQL connection URL, or null when it is usable. A unix
 * socket is reached with a query parameter: postgres:///database?host=/var/run/postgresql.
 */
export function databaseUrlProblem(url: string): string | null {
  const parsed = parseAbsolute(url);
  if (parsed === null) return `cannot be parsed as a URL; expected ${EXAMPLE}`;
  if (!PROTOCOLS.includes(parsed.protocol))
    return `the protocol is ${JSON.stringify(parsed.protocol.slice(0, 20))}, expected postgres:// or postgresql:// (${EXAMPLE})`;
  // 'postgres:db' parses too, as a path without a host, which pg reads as database "b".
  if (!/^\s*postgres(ql)?:\/\//i.test(url))
    return `expected postgres:// or postgresql:// followed by the host (${EXAMPLE})`;
  // pg decodes these with decodeURIComponent when it connects, so a %XX that is not UTF-8
  // (`%e9`, a `%` at the end) threw "URIError: URI malformed" there: a stack trace from a node,
  // "not answering" from a command, naming neither the URL nor the part. A % not followed by
  // two hex digits (`%zz`, `100%`) pg reads as itself, and so it stays allowed.
  for (const [part, value] of [
    ['user name', parsed.username],
    ['password', parsed.password],
    ['host', parsed.hostname],
    ['database name', parsed.pathname.slice(1)],
  ] as const) {
    try {
      decodeURIComponent(value);
    } catch {
      return `the ${part} holds a percent-encoding that is not UTF-8 text (each %XX must encode UTF-8 bytes; write a literal % as %25)`;
    }
  }
  // pg takes a port from the query too, unchecked: `?port=abc` or `?port=99999` made its
  // connect throw where nothing listened, so a node or command ended with "something it was
  // waiting for can never happen", naming neither the port nor the URL.
  // Port 0 (the URL's own, which URL allows) was retried forever as a server that is down.
  const port = parsed.searchParams.get('port');
  if (port !== null && !(/^[0-9]{1,5}$/.test(port) && Number(port) >= 1 && Number(port) <= 65535))
    return `the port parameter ${JSON.stringify(port.slice(0, 20))} is not a port number (1 to 65535)`;
  if (parsed.port !== '' && Number(parsed.port) === 0)
    return 'the port is 0, which no server listens on (1 to 65535)';
  // pg reads any other value as "use SSL", so a typo failed every connection as a server that
  // does not support SSL, retried forever.
  const sslmode = parsed.searchParams.get('sslmode');
  if (sslmode !== null && !SSL_MODES.includes(sslmode))
    return `sslmode ${JSON.stringify(sslmode.slice(0, 40))} is not one of ${SSL_MODES.join(', ')}`;
  return null;
}

/** The sslmode values pg understands (libpq's, and its own no-verify). */
const SSL_MODES = [
  'disable',
  'allow',
  'prefer',
  'require',
  'verify-ca',
  'verify-full',
  'no-verify',
];
