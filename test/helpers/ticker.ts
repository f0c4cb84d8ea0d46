// Reading what the `ticker` fixture worker wrote: every moment of each run of a job, one line
// each, in a file several nodes may share. An overlap of two runs of one job shows as a line of
// the older run after the newer began.

import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';

export interface Line {
  job: number;
  run: string;
  what: string;
  at: number;
}

export function readLines(file: string): Line[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((text) => {
      const [job, run, what, at] = text.split(' ');
      return { job: Number(job), run: run!, what: what!, at: Number(at) };
    });
}

/** The runs of one job in the order they started; fails if one was alive after the next began. */
export function runsWithoutOverlap(lines: Line[], job: number): { run: string; lines: Line[] }[] {
  const runs: { run: string; lines: Line[] }[] = [];
  for (const line of lines.filter((l) => l.job === job)) {
    let index = runs.findIndex((r) => r.run === line.run);
    if (index < 0) {
      runs.push({ run: line.run, lines: [] });
      index = runs.length - 1;
    }
    const newest = runs.at(-1)!;
    if (index !== runs.length - 1)
      assert.fail(
        `job ${job}: run ${line.run} was still alive (${line.what} at ${line.at}) after run ${newest.run} started at ${newest.lines[0]!.at}`,
      );
    runs[index]!.lines.push(line);
  }
  return runs;
}
