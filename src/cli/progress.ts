// Progress lines for long CLI operations (bulk inserts, migrations, following a batch of jobs),
// written to stderr so stdout stays the command's result. On a terminal the line is rewritten in
// place a few times a second; piped (CI, logs), a plain line is printed at most once a second.

export interface ProgressOptions {
  out?: NodeJS.WriteStream;
  /** Least time between two lines when not on a terminal. */
  intervalMs?: number;
}

export class Progress {
  private readonly out: NodeJS.WriteStream;
  private readonly tty: boolean;
  private readonly intervalMs: number;
  private readonly started = Date.now();
  private lastWrite = 0;
  private lastText = '';
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly render: (elapsedMs: number) => string,
    options: ProgressOptions = {},
  ) {
    this.out = options.out ?? process.stderr;
    this.tty = this.out.isTTY;
    this.intervalMs = options.intervalMs ?? 1000;
    // Redraw even when nothing calls update (a slow statement still shows its time going up).
    this.timer = setInterval(() => this.update(), this.tty ? 250 : this.intervalMs);
    this.timer.unref();
  }

  /** Shows the current state if enough time has passed since the last line. */
  update(force = false): void {
    const now = Date.now();
    if (!force && now - this.lastWrite < (this.tty ? 100 : this.intervalMs)) return;
    const text = this.render(now - this.started);
    if (text === '' || (!this.tty && text === this.lastText && !force)) return;
    this.lastWrite = now;
    this.lastText = text;
    this.out.write(this.tty ? `\r${text}\x1b[K` : `${text}\n`);
  }

  /** Stops redrawing and leaves the final state on its own line (render '' to show nothing). */
  finish(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    // A line that never showed stays hidden (a step that was quick has nothing to report).
    if (this.lastText === '') return;
    const text = this.render(Date.now() - this.started);
    if (this.tty) this.out.write(`\r${text}\x1b[K\n`);
    else if (text !== this.lastText) this.out.write(`${text}\n`);
  }
}

/** 1234567 -> "1,234,567". */
export function count(n: number): string {
  return n.toLocaleString('en-US');
}

/** A rate per second, e.g. "4,810/s". */
export function rate(n: number, elapsedMs: number): string {
  return `${count(Math.round(n / Math.max(elapsedMs / 1000, 0.001)))}/s`;
}

export function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)}s`;
}
