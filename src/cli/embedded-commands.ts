// The embedded PostgreSQL that a command run with no node starts for its own duration, shared by
// the commands run at once on one data folder: a lock file decides which of them starts it, an
// advisory lock which of them stops it, once the others are done.

import { createHash } from 'node:crypto';
import {
  existsSync,
  linkSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import type pino from 'pino';
import { DatabaseConfigError, redactUrl, waitForDatabase } from '../db/connect.js';
import { processAlive, startEmbedded, type EmbeddedDatabase } from '../db/embedded.js';
import { CommandError } from './errors.js';

/** The URL of an embedded server a running node left in its data folder, if it is alive. */
function runningEmbeddedUrl(dataDir: string): string | null {
  const urlFile = path.join(dataDir, 'quern-url');
  const pidFile = path.join(dataDir, 'postmaster.pid');
  if (!existsSync(urlFile) || !existsSync(pidFile)) return null;
  if (!processAlive(Number(readFileSync(pidFile, 'utf8').split('\n')[0]))) return null;
  return readFileSync(urlFile, 'utf8').trim();
}

/**
 * Commands that start the embedded server for their own duration (no node running) go through a
 * lock file named after the data folder (in the temporary folder: the data folder itself must
 * stay empty for initdb): one starts the server, the others wait until it answers and use it,
 * and the one that started it stops it only once no other command is connected. Run at once,
 * they raced: two initdb runs on one folder ("directory ... exists but is not empty"), two
 * servers on it ("lock file "postmaster.pid" already exists"), or a command using another's
 * server until that one stopped it under it (an unhandled "Connection terminated unexpectedly",
 * with a stack).
 */
export function commandLockFile(dataDir: string): string {
  const key = createHash('sha256').update(path.resolve(dataDir)).digest('hex').slice(0, 16);
  return path.join(tmpdir(), `quern-embedded-${key}.lock`);
}

/** How long a lock file with no pid in it is taken to be one another command is writing. */
const UNWRITTEN_LOCK_MS = 10_000;

/**
 * The lock file's text and the live process holding it (0: a command that has not written its
 * pid yet; null: a dead one's), or null when there is no lock file.
 */
function lockState(file: string): { text: string; holder: number | null } | null {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return null;
  }
  const pid = Number(text.trim());
  if (!/^\d+$/.test(text.trim()) || !Number.isInteger(pid) || pid <= 0) {
    // Empty or cut short: being written (a command of an earlier version created it and wrote
    // its pid after), unless it has been so for long. Read as stale, it was removed under the
    // command writing it, and two commands started two servers on one folder.
    try {
      return { text, holder: Date.now() - statSync(file).mtimeMs < UNWRITTEN_LOCK_MS ? 0 : null };
    } catch {
      return null;
    }
  }
  try {
    process.kill(pid, 0);
    return { text, holder: pid };
  } catch (error) {
    return { text, holder: (error as NodeJS.ErrnoException).code === 'EPERM' ? pid : null };
  }
}

/**
 * The live process holding the lock (0: a command that has not written its pid yet), or null.
 * Exported for tests.
 */
export function commandLockHolder(file: string): number | null {
  return lockState(file)?.holder ?? null;
}

/**
 * Removes a lock file a dead command left, read as `text`: moved aside first, and put back if
 * what was moved is not that file (another command cleared it and took the lock meanwhile).
 */
function clearStaleLock(file: string, text: string): void {
  const aside = `${file}.stale.${process.pid}`;
  try {
    renameSync(file, aside);
  } catch {
    return; // another command cleared it first
  }
  try {
    if (readFileSync(aside, 'utf8') !== text) linkSync(aside, file);
  } catch {
    // taken again meanwhile: that one stands
  } finally {
    rmSync(aside, { force: true });
  }
}

/**
 * Takes the lock (clearing one left by a dead process), or returns null when another holds it.
 * The file appears with the pid already in it (written aside, then linked), never empty. Only a
 * lock file read as a dead command's is cleared: the check was "no live holder" (no file at all
 * counted) followed by "the file exists", so a command that looked just before another took the
 * lock removed that lock, and both started a server on one folder.
 * Exported for tests.
 */
export function takeCommandLock(file: string): (() => void) | null {
  const state = lockState(file);
  if (state !== null && state.holder === null) clearStaleLock(file, state.text);
  const aside = `${file}.${process.pid}`;
  writeFileSync(aside, `${process.pid}\n`);
  try {
    linkSync(aside, file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return null;
    throw error;
  } finally {
    try {
      unlinkSync(aside);
    } catch {
      // already gone
    }
  }
  return () => {
    try {
      if (readFileSync(file, 'utf8').trim() === String(process.pid)) unlinkSync(file);
    } catch {
      // already gone
    }
  };
}

/** How long a command waits for another one's server to answer, or for its users to leave. */
const SHARED_SERVER_WAIT_MS = 60_000;

/** The application_name of every connection a command opens to the database. */
export const CLI_APPLICATION_NAME = 'quern-cli';

/**
 * The advisory lock (two int4 keys: "quer", "ncli") by which commands using a server another
 * command started hold it: each holds it shared for as long as it runs, and the command that
 * started the server takes it exclusive at its end, so it stops the server only once no other
 * command uses it, and a command that comes meanwhile waits for the stop and starts its own.
 */
const COMMANDS_LOCK = '1903520114, 1852009577';

/**
 * Joins a running embedded server (a node's, or another command's): a connection of its own
 * that holds COMMANDS_LOCK shared until the returned function ends it. Fails while the command
 * that started the server is stopping it.
 */
async function joinServer(url: string, log: pino.Logger): Promise<() => Promise<void>> {
  await waitForDatabase(url, log, { attempts: 3 });
  const holder = new pg.Client({
    connectionString: url,
    application_name: CLI_APPLICATION_NAME,
    connectionTimeoutMillis: 5000,
  });
  holder.on('error', () => undefined);
  try {
    await holder.connect();
    await holder.query(`SELECT pg_advisory_lock_shared(${COMMANDS_LOCK})`);
  } catch (error) {
    await holder.end().catch(() => undefined);
    throw error;
  }
  return () => holder.end().catch(() => undefined);
}

/** The embedded server to use: a running one (a node's, or another command's), or its own. */
export async function embeddedForCommand(
  dataDir: string,
  log: pino.Logger,
): Promise<{ url: string; embedded: EmbeddedDatabase | null; release: () => Promise<void> }> {
  const file = commandLockFile(dataDir);
  const deadline = Date.now() + SHARED_SERVER_WAIT_MS;
  for (;;) {
    const running = runningEmbeddedUrl(dataDir);
    if (running) {
      try {
        return { url: running, embedded: null, release: await joinServer(running, log) };
      } catch (error) {
        if (error instanceof DatabaseConfigError) throw error;
        // Still starting or already stopping (another command's): look again. A server that
        // stays there and does not answer is down: say which, in one line.
        if (runningEmbeddedUrl(dataDir) === running && commandLockHolder(file) === null)
          throw new CommandError(
            `database ${redactUrl(running)} is not answering: ${(error as Error).message}`,
          );
        if (Date.now() > deadline) throw error;
        await new Promise((resolve) => setTimeout(resolve, 100));
        continue;
      }
    }
    const holder = commandLockHolder(file);
    if (holder === null) {
      const unlock = takeCommandLock(file);
      if (unlock) {
        // Started by another since the look above: join it as any other running server.
        if (runningEmbeddedUrl(dataDir)) {
          unlock();
          continue;
        }
        try {
          const embedded = await startEmbedded(dataDir);
          return { url: embedded.url, embedded, release: () => Promise.resolve(unlock()) };
        } catch (error) {
          unlock();
          throw error;
        }
      }
    } else if (Date.now() > deadline) {
      throw new CommandError(
        `the embedded PostgreSQL in ${dataDir} did not come up: another command (${holder ? `pid ${holder}` : 'its pid not written yet'}) is starting it`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/**
 * Stops a server this command started once no other command uses it (waiting at most
 * SHARED_SERVER_WAIT_MS): it takes COMMANDS_LOCK exclusive and keeps it through the stop, so a
 * command that joins meanwhile waits and then starts its own. Only commands hold the lock: a
 * user's psql session on the server does not hold the command (it held it, and the user's
 * terminal, for the whole minute), and is closed by the stop.
 */
export async function stopWhenOthersGone(embedded: EmbeddedDatabase): Promise<void> {
  const db = new pg.Client({
    connectionString: embedded.url,
    application_name: CLI_APPLICATION_NAME,
  });
  db.on('error', () => undefined);
  try {
    await db.connect();
    await db.query(`SET lock_timeout = ${SHARED_SERVER_WAIT_MS}`);
    await db.query(`SELECT pg_advisory_lock(${COMMANDS_LOCK})`);
  } catch {
    // waited the whole minute, or the server is going or gone: stop it
  }
  try {
    await embedded.stop();
  } finally {
    await db.end().catch(() => undefined);
  }
}
