// `status --watch`: a live terminal view of nodes, queues and counts, redrawn in place each
// second (on a terminal: alternate screen, cursor hidden, lines cut to the width so nothing
// wraps). Piped, it prints one plain frame per second instead. A database that stops answering
// shows as a line in the frame; the view keeps trying and never exits on its own.

import type { Quern } from '../client.js';
import { StatsQueries } from '../db/queries/stats.js';
import { table } from './context.js';
import { formatMs } from './stats.js';
import { renderStatus, type StateCounts } from './status.js';

export interface WatchOptions {
  intervalMs?: number;
  /**
   * The least ms between two counts of the finished jobs (default 10000; at least ten times as
   * long as the last count took).
   */
  finishedEveryMs?: number;
  /** ms after which a silent node is shown as dead: the config's `heartbeatTimeout`. */
  heartbeatTimeout?: number;
  out?: NodeJS.WriteStream;
  /** Resolves when the view should stop (SIGINT/SIGTERM by default). */
  until?: Promise<unknown>;
}

/**
 * The counts a frame shows. The waiting and running states are counted every frame, through
 * their partial indexes, whatever the history. The finished ones can only be counted by reading
 * the whole retained history (120 ms per million rows), which each second would keep a core of
 * the database busy on a long retention: they are counted again only after `everyMs`, or ten
 * times as long as their last count took, and the frame says when they were counted.
 */
export class FrameCounts {
  private finished: StateCounts = [];
  private finishedAt = 0;
  private finishedTookMs = 0;

  constructor(
    private readonly client: Quern,
    private readonly queries: StatsQueries,
    readonly everyMs = 10000,
  ) {}

  async read(): Promise<{ counts: StateCounts; finishedAt: number }> {
    const due = Date.now() - this.finishedAt >= Math.max(this.everyMs, 10 * this.finishedTookMs);
    const [live] = await Promise.all([
      this.queries.depth(this.client.pool),
      due ? this.countFinished() : undefined,
    ]);
    return { counts: [...live, ...this.finished], finishedAt: this.finishedAt };
  }

  private async countFinished(): Promise<void> {
    const started = Date.now();
    this.finished = await this.queries.finished(this.client.pool);
    this.finishedAt = started;
    this.finishedTookMs = Date.now() - started;
  }
}

export async function renderFrame(
  client: Quern,
  queries: StatsQueries,
  heartbeatTimeout?: number,
  counts: FrameCounts = new FrameCounts(client, queries),
): Promise<string> {
  const { counts: current, finishedAt } = await counts.read();
  const [status, recent] = await Promise.all([
    renderStatus(client, heartbeatTimeout, current),
    queries.recent(client.pool),
  ]);
  const age = Math.round((Date.now() - finishedAt) / 1000);
  const finishedNote =
    age >= 1
      ? `\nCOMPLETED, DISCARDED and CANCELLED as counted ${age}s ago (recounted every ${Math.round(counts.everyMs / 1000)}s or more); the other states now`
      : '';
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
  return `${status}${finishedNote}\n\n${activity}`;
}

export async function watchStatus(client: Quern, options: WatchOptions = {}): Promise<void> {
  const out = options.out ?? process.stdout;
  const interval = options.intervalMs ?? 1000;
  const queries = new StatsQueries(client.schema);
  const counts = new FrameCounts(client, queries, options.finishedEveryMs);
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
  // A reader that goes away (`status --watch | head`) fails the next write with EPIPE, emitted
  // as an 'error' event: unhandled, it ended the process with a stack trace. It ends the view
  // instead, as Ctrl-C does; the listener stays, for the writes still in flight.
  let writeError: NodeJS.ErrnoException | null = null;
  out.on('error', (error: NodeJS.ErrnoException) => {
    writeError ??= error;
    onSignal();
  });
  if (tty) out.write('\x1b[?1049h\x1b[?25l');
  try {
    let frame = 0;
    while (!stop) {
      const started = Date.now();
      let body: string;
      try {
        body = await renderFrame(client, queries, options.heartbeatTimeout, counts);
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
    if (tty && writeError === null) out.write('\x1b[?25h\x1b[?1049l');
  }
  const failed = writeError as NodeJS.ErrnoException | null;
  if (failed !== null && failed.code !== 'EPIPE') throw failed;
}
