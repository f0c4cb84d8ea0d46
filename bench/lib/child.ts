// Processes the benchmark measures: each is started with the probe preloaded and an IPC channel,
// so it can be asked for its event-loop delay and peak memory, and stopped with SIGTERM.

import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ProbeReading } from '../probe.js';

export const DIST_BENCH = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
export const ROOT = path.resolve(DIST_BENCH, '..', '..');
const PROBE = path.join(DIST_BENCH, 'probe.js');

export interface Measured {
  child: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
  send: (message: Record<string, unknown>) => void;
  /** The next IPC message of `type`. */
  next: <T = Record<string, unknown>>(type: string, timeoutMs?: number) => Promise<T>;
  probe: () => Promise<ProbeReading>;
  resetProbe: () => Promise<void>;
  stop: (timeoutMs?: number) => Promise<number | null>;
}

const live = new Set<ChildProcess>();
/** Ends every measured process still running (the benchmark was interrupted). */
export function killAll(): void {
  for (const child of live) child.kill('SIGKILL');
}

export function spawnMeasured(
  script: string,
  args: string[],
  env: Record<string, string>,
): Measured {
  // BENCH_NODE_FLAGS (e.g. --cpu-prof) reaches only the measured processes.
  const flags = (process.env.BENCH_NODE_FLAGS ?? '').split(' ').filter(Boolean);
  const child = spawn(process.execPath, [...flags, '--import', PROBE, script, ...args], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
  });
  live.add(child);
  child.on('exit', () => live.delete(child));
  let output = '';
  const keep = (chunk: Buffer): void => {
    output = (output + chunk.toString()).slice(-20000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const waiters: { type: string; resolve: (m: unknown) => void }[] = [];
  child.on('message', (message: { type?: string }) => {
    const index = waiters.findIndex((w) => w.type === message?.type);
    if (index >= 0) waiters.splice(index, 1)[0]!.resolve(message);
  });
  const next = <T>(type: string, timeoutMs = 60000): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(
          new Error(
            `no ${type} message from ${path.basename(script)} in ${timeoutMs} ms:\n${output.slice(-3000)}`,
          ),
        );
      }, timeoutMs);
      waiters.push({
        type,
        resolve: (m) => {
          clearTimeout(timer);
          resolve(m as T);
        },
      });
      void exited.then((code) => {
        clearTimeout(timer);
        reject(
          new Error(
            `${path.basename(script)} exited (${code}) before sending ${type}:\n${output.slice(-3000)}`,
          ),
        );
      });
    });
  const send = (message: Record<string, unknown>): void => {
    if (child.connected) child.send(message);
  };
  return {
    child,
    output: () => output,
    exited,
    send,
    next,
    probe: () => {
      const reading = next<ProbeReading>('probe', 10000);
      send({ probe: 'read' });
      return reading;
    },
    resetProbe: async () => {
      const done = next('probe-reset', 10000);
      send({ probe: 'reset' });
      await done;
    },
    stop: async (timeoutMs = 30000) => {
      if (child.exitCode !== null) return child.exitCode;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
}
