// Starting nodes in tests: in-process (QuernNode, to listen to its telemetry) or as real
// `node cluster.js` processes (for multi-node behaviour, signals and exit codes).

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { loadConfig } from '../../src/config/load.js';
import { QuernNode, type NodeOptions } from '../../src/node/node.js';
import { standardPlugins } from '../../src/plugins/standard.js';

export const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const FIXTURE_WORKERS = path.join(ROOT, 'test', 'fixtures', 'workers');
export const CLUSTER_JS = path.join(ROOT, 'cluster.js');

export function nodeConfig(schema: string, url: string, overrides: Record<string, unknown> = {}) {
  return {
    schema,
    database: { url },
    workers: FIXTURE_WORKERS,
    queues: { default: 10 },
    heartbeatInterval: 200,
    shutdownGracePeriod: 5000,
    cancelGracePeriod: 500,
    logLevel: 'silent',
    ...overrides,
  };
}

export async function startNode(
  schema: string,
  url: string,
  overrides: Record<string, unknown> = {},
  options: NodeOptions = {},
): Promise<QuernNode> {
  const config = loadConfig(nodeConfig(schema, url, overrides), { env: {} });
  const node = new QuernNode(config, {
    log: pino({ level: 'silent' }),
    plugins: standardPlugins,
    ...options,
  });
  await node.start();
  return node;
}

export interface SpawnedNode {
  child: ChildProcess;
  output: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Resolves when a log line matching `pattern` appears. */
  waitForLog: (pattern: RegExp, timeoutMs?: number) => Promise<string>;
}

export function writeConfig(config: Record<string, unknown>): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'quern-config-'));
  const file = path.join(dir, 'cluster.config.json');
  writeFileSync(file, JSON.stringify(config, null, 2));
  return file;
}

export function spawnCluster(
  args: string[],
  env: Record<string, string | undefined> = {},
): SpawnedNode {
  const child = spawn(process.execPath, [CLUSTER_JS, ...args], {
    cwd: ROOT,
    env: { ...process.env, DATABASE_URL: '', LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const waiters: { pattern: RegExp; resolve: (line: string) => void }[] = [];
  const onData = (chunk: Buffer): void => {
    output += chunk.toString();
    for (const waiter of [...waiters]) {
      const match = output.split('\n').find((line) => waiter.pattern.test(line));
      if (match) {
        waiters.splice(waiters.indexOf(waiter), 1);
        waiter.resolve(match);
      }
    }
  };
  child.stdout.on('data', onData);
  child.stderr.on('data', onData);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal })),
  );
  return {
    child,
    output: () => output,
    exited,
    waitForLog(pattern, timeoutMs = 30000) {
      const existing = output.split('\n').find((line) => pattern.test(line));
      if (existing) return Promise.resolve(existing);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(
          () =>
            reject(
              new Error(
                `no log line matching ${String(pattern)} within ${timeoutMs} ms; output:\n${output.slice(-3000)}`,
              ),
            ),
          timeoutMs,
        );
        waiters.push({
          pattern,
          resolve: (line) => {
            clearTimeout(timer);
            resolve(line);
          },
        });
        void exited.then(() => {
          clearTimeout(timer);
          reject(
            new Error(
              `process exited before logging ${String(pattern)}; output:\n${output.slice(-3000)}`,
            ),
          );
        });
      });
    },
  };
}

/** Runs a CLI command to completion; returns its exit code and output. */
export async function runCli(
  args: string[],
  env: Record<string, string | undefined> = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [CLUSTER_JS, ...args], {
    cwd: ROOT,
    env: { ...process.env, DATABASE_URL: '', LOG_LEVEL: 'silent', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
  return { code, stdout, stderr };
}
