// What a benchmark job does, the same code for every system: nothing (W2, W5), note when it
// started (W3), or hash 1 MB (W4). The 1 MB buffer is made once per thread; each job hashes it
// with its own index mixed in, so no result can be cached.

import { createHash } from 'node:crypto';
import { wallMs } from './util.js';

export type Mode = 'noop' | 'latency' | 'hash';

export type BenchArgs = {
  mode: Mode;
  /** Wall time (ms) just before the insert was sent, for W3. */
  t?: number;
  i?: number;
};

const MEGABYTE = 1024 * 1024;
let buffer: Buffer | null = null;

export function hashMegabyte(index: number): string {
  buffer ??= Buffer.alloc(MEGABYTE, 7);
  buffer.writeUInt32LE(index >>> 0, 0);
  return createHash('sha256').update(buffer).digest('hex');
}

/** Runs one job; returns the wall time it started (the end of the latency measured in W3). */
export function perform(args: BenchArgs): number {
  const started = wallMs();
  if (args.mode === 'hash') hashMegabyte(args.i ?? 0);
  return started;
}
