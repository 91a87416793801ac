// One status line that follows a change until it converges (`service create|update|scale|rollback`).
// On a terminal the line is redrawn in place; without one (a CI log, a pipe) a line is printed only
// when its text changes, so a two-minute wait is a handful of lines, not one per poll. The stream is
// passed in, so tests drive it with a fake.
export interface StatusStream {
  isTTY?: boolean;
  columns?: number;
  write(s: string): unknown;
}

export class StatusLine {
  private last: string | null = null;
  private open = false;

  constructor(private readonly out: StatusStream) {}

  /** Shows `text` as the current status (`suffix`, e.g. the elapsed time, is only drawn on a terminal). */
  update(text: string, suffix = ''): void {
    if (this.out.isTTY) {
      const width = Math.max(20, (this.out.columns ?? 80) - 1);
      const full = suffix ? `${text} ${suffix}` : text;
      this.out.write(`\r\x1b[2K${full.length > width ? `${full.slice(0, width - 1)}…` : full}`);
      this.open = true;
    } else if (text !== this.last) {
      this.out.write(`${text}\n`);
    }
    this.last = text;
  }

  /** Ends the status line (on a terminal the last state stays visible) and prints `final`, if given. */
  done(final?: string): void {
    if (this.out.isTTY && this.open) this.out.write(`\r\x1b[2K${this.last ?? ''}\n`);
    this.open = false;
    if (final !== undefined) this.out.write(`${final}\n`);
  }
}
