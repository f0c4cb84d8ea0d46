// The table of CLI commands. Each command lives in its own file.

import type { Command } from './main.js';
import { start } from './start.js';
import { migrate } from './migrate.js';
import { insert } from './insert.js';
import { jobs, job } from './jobs.js';
import { enqueueDir } from './enqueue-dir.js';
import { queue } from './queue.js';
import { status } from './status.js';
import { stats } from './stats.js';

export const COMMANDS: Record<string, Command> = {
  start,
  migrate,
  insert,
  jobs,
  job,
  'enqueue-dir': enqueueDir,
  queue,
  status,
  stats,
};
