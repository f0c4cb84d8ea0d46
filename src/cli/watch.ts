// `status --watch`: a live terminal view of nodes, queues and counts, redrawn in place each
// second (on a terminal: alternate screen, cursor hidden, lines cut to the width so nothing
// wraps). Piped, it prints one plain frame per second instead. A database that stops answering
// shows as a line in the frame; the view keeps trying and never exits on its own.

import type { Quern } from '../client.js';
import { StatsQueries } from '../db/queries/stats.js';
import { table } from './context.js';
import { formatMs } from './stats.js';
import { renderStatus } from './status.js';

export interface WatchOptions {
  intervalMs?: number;
  /** ms after which a silent node is shown as dead: the config's `heartbeatTimeout`. */
  heartbeatTimeout?: number;
  out?: NodeJS.WriteStream;
  /** Resolves when the view should stop (SIGINT/SIGTERM by default). */
  until?: Promise<unknown>;
}

export async function renderFrame(
  client: Quern,
  queries: StatsQueries,
  heartbeatTimeout?: number,
): Promise<string> {
  const [status, recent] = await Promise.all([
    renderStatus(client, heartbeatTimeout),
    queries.recent(client.pool),
  ]);
  const queues = recent.filter((r) => r.by === 'queue');
  const activity =
    queues.length === 0
      ? 'no job finished in the last hour'
      : table(
          ['QUEUE', 'OK/1M', 'FAIL/1M', 'OK/1H', 'FAIL/1H', 'JOBS/S', 'WAIT P95', 'RUN P95'],
          queues.map((r) => [
            r.name,
            r.completedLastMinute,
            r.failedLastMinute,
            r.completedLastHour,
            r.failedLastHour,
            (r.completedLastMinute / 60).toFixed(1),
            formatMs(r.queueTimeP95),
            formatMs(r.runTimeP95),
          ]),
        );
  return `${status}\n\n${activity}`;
}

export async function watchStatus(client: Quern, options: WatchOptions = {}): Promise<void> {
  const out = options.out ?? process.stdout;
  const interval = options.intervalMs ?? 1000;
  const queries = new StatsQueries(client.schema);
  const tty = out.isTTY;
  let stop = false;
  let wake: () => void = () => undefined;
  const onSignal = (): void => {
    stop = true;
    wake();
  };
  const until =
    options.until ??
    new Promise<void>((resolve) => {
      process.once('SIGINT', resolve);
      process.once('SIGTERM', resolve);
    });
  void until.then(onSignal);
  if (tty) out.write('\x1b[?1049h\x1b[?25l');
  try {
    let frame = 0;
    while (!stop) {
      const started = Date.now();
      let body: string;
      try {
        body = await renderFrame(client, queries, options.heartbeatTimeout);
      } catch (error) {
        body = `database not answering: ${(error as Error).message}; retrying each second`;
      }
      frame++;
      const header = `quern ${client.schema}  ${new Date().toISOString()}  frame ${frame}  (Ctrl-C to quit)`;
      const text = `${header}\n\n${body}\n`;
      if (tty) {
        const width = out.columns || 200;
        const lines = text.split('\n').map((l) => l.slice(0, width) + '\x1b[K');
        out.write('\x1b[H' + lines.join('\n') + '\x1b[J');
      } else {
        out.write(text + '\n');
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.max(0, interval - (Date.now() - started)));
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  } finally {
    if (tty) out.write('\x1b[?25h\x1b[?1049l');
  }
}
