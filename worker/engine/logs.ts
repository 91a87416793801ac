// Reading a container's log: the JSON lines shoal-shim writes (`{"t":ISO,"s":"stdout"|"stderr","l":line}`)
// to `container.log`, which it rotates to `container.log.1` when full. History comes from the rotated
// file and then the live one; `follow` then keeps reading the live file as it grows — through rotations —
// until aborted or until the container has exited and everything it wrote was read.
import { open, stat, type FileHandle } from 'node:fs/promises';
import { StringDecoder } from 'node:string_decoder';

export interface LogEntry {
  /** ISO-8601 with milliseconds, when the shim read the line */
  ts: string;
  stream: 'stdout' | 'stderr';
  line: string;
  /** the line goes on in the next entry of this stream (the shim cuts lines longer than 16 KiB) */
  partial?: boolean;
}

export interface ReadLogsOptions {
  /** only the last N lines of the history (new lines in follow mode all come) */
  tail?: number;
  /** only lines logged at or after this time */
  since?: Date;
  /** keep reading new lines */
  follow?: boolean;
  /** ends the iteration (without an error) */
  signal?: AbortSignal;
  /** follow mode: true once nothing will be written any more (the container exited); the iteration
   * then ends after reading what is left. Without it, follow ends only through `signal`. */
  done?: () => boolean;
  /** follow mode: how often the live file is checked for new lines (default 100 ms) */
  pollMs?: number;
}

const CHUNK = 64 * 1024;

/** An open log file read line by line from where the last read stopped. */
class LineCursor {
  private pos = 0;
  private partial = '';
  private readonly decoder = new StringDecoder('utf8');
  private readonly buf = Buffer.alloc(CHUNK);

  constructor(
    readonly fh: FileHandle,
    readonly ino: number,
  ) {}

  /** The complete lines written since the last call (a line still being written waits for the next). */
  async readLines(): Promise<string[]> {
    const lines: string[] = [];
    for (;;) {
      const { bytesRead } = await this.fh.read(this.buf, 0, CHUNK, this.pos);
      if (bytesRead === 0) return lines;
      this.pos += bytesRead;
      const parts = (this.partial + this.decoder.write(this.buf.subarray(0, bytesRead))).split('\n');
      this.partial = parts.pop()!;
      lines.push(...parts);
    }
  }

  close(): Promise<void> {
    return this.fh.close();
  }
}

async function openCursor(path: string): Promise<LineCursor | null> {
  let fh: FileHandle;
  try {
    fh = await open(path, 'r');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
  return new LineCursor(fh, (await fh.stat()).ino);
}

function parse(raw: string): LogEntry | null {
  try {
    const o = JSON.parse(raw) as { t?: unknown; s?: unknown; l?: unknown; p?: unknown };
    if (typeof o.t !== 'string' || (o.s !== 'stdout' && o.s !== 'stderr') || typeof o.l !== 'string') return null;
    return { ts: o.t, stream: o.s, line: o.l, ...(o.p === true ? { partial: true } : {}) };
  } catch {
    return null; // a torn or foreign line: skip it
  }
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}

/**
 * The entries of a log, oldest first. `logPath` is the live file (its rotated predecessor is
 * `<logPath>.1`), or a list of files, oldest first, whose last one is the live file.
 */
export async function* readLogs(logPath: string | readonly string[], opts: ReadLogsOptions = {}): AsyncGenerator<LogEntry> {
  const files = typeof logPath === 'string' ? [`${logPath}.1`, logPath] : [...logPath];
  const livePath = files[files.length - 1];
  if (livePath === undefined) throw new Error('readLogs: no log file given');
  const sinceMs = opts.since?.getTime();
  const keep = (e: LogEntry | null): e is LogEntry => e !== null && (sinceMs === undefined || Date.parse(e.ts) >= sinceMs);

  // The live file is opened first: if the shim rotates it meanwhile, the "rotated" file opened next is
  // the same file (same inode) and is skipped instead of being read twice.
  let live = await openCursor(livePath);
  const older: LineCursor[] = [];
  try {
    for (const p of files.slice(0, -1)) {
      const c = await openCursor(p);
      if (c && c.ino !== live?.ino) older.push(c);
      else await c?.close();
    }
    // history
    let history: LogEntry[] = [];
    for (const c of [...older, ...(live ? [live] : [])]) {
      for (const raw of await c.readLines()) {
        const e = parse(raw);
        if (!keep(e)) continue;
        history.push(e);
        // bounded memory for a tail of a large log
        if (opts.tail !== undefined && history.length > 2 * opts.tail + 1024) history = history.slice(-opts.tail);
      }
    }
    if (opts.tail !== undefined) history = opts.tail > 0 ? history.slice(-opts.tail) : [];
    for (const e of history) {
      if (opts.signal?.aborted) return;
      yield e;
    }
    if (!opts.follow) return;

    // follow: poll the live file; a new inode at its path means the shim rotated it
    const pollMs = opts.pollMs ?? 100;
    for (;;) {
      if (opts.signal?.aborted) return;
      // read `done` before draining: whatever was written before it turned true is read below
      const finished = opts.done?.() ?? false;
      for (;;) {
        if (live)
          for (const raw of await live.readLines()) {
            const e = parse(raw);
            if (keep(e)) yield e;
            if (opts.signal?.aborted) return;
          }
        const ino = await stat(livePath).then(
          (s) => s.ino,
          () => undefined,
        );
        if (ino === undefined || ino === live?.ino) break;
        // rotated (or created): the old file was drained above, continue with the new one
        await live?.close();
        live = await openCursor(livePath);
      }
      if (finished) return;
      await sleep(pollMs, opts.signal);
    }
  } finally {
    for (const c of older) await c.close();
    await live?.close();
  }
}
