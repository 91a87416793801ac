// Cutting task output into pieces a dispatcher session can carry, on the node's side.
//
// A log line can be any length (the shim already cuts at 16 KiB and marks the pieces partial, but a
// line read from elsewhere need not be), and exec output is one blob. The session to the leader has a
// frame limit, and one frame over it used to end the session — and, before sessions handled errors,
// the leader. So: lines are cut into pieces of at most LOG_CHUNK_BYTES, every piece but a line's last
// marked `partial` (as Docker's partial-log metadata); pieces go out in messages of at most
// LOG_BATCH_BYTES; exec output goes out in pieces of at most EXEC_CHUNK_BYTES. Pure functions and one
// small accumulator; no clock, no socket.
import { EXEC_CHUNK_BYTES, LOG_BATCH_BYTES, LOG_CHUNK_BYTES, type LogLine } from './dispatcher.ts';

/** UTF-8 length of one UTF-16 code unit sequence element (a lone surrogate encodes as U+FFFD, 3 bytes). */
function unitBytes(s: string, i: number): { bytes: number; units: number } {
  const c = s.charCodeAt(i);
  if (c < 0x80) return { bytes: 1, units: 1 };
  if (c < 0x800) return { bytes: 2, units: 1 };
  if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
    const d = s.charCodeAt(i + 1);
    if (d >= 0xdc00 && d <= 0xdfff) return { bytes: 4, units: 2 };
  }
  return { bytes: 3, units: 1 };
}

/**
 * `line` cut into pieces of at most `maxBytes` UTF-8 bytes each, never inside a character (a surrogate
 * pair stays whole). An empty line is one empty piece. Joining the pieces gives `line` back.
 */
export function splitLine(line: string, maxBytes = LOG_CHUNK_BYTES): string[] {
  if (maxBytes < 4) throw new RangeError(`splitLine: maxBytes must be at least 4 (got ${maxBytes})`);
  // Fast path: even at 3 bytes per unit it fits.
  if (line.length * 3 <= maxBytes) return [line];
  const out: string[] = [];
  let start = 0;
  let bytes = 0;
  for (let i = 0; i < line.length; ) {
    const u = unitBytes(line, i);
    if (bytes + u.bytes > maxBytes) {
      out.push(line.slice(start, i));
      start = i;
      bytes = 0;
    }
    bytes += u.bytes;
    i += u.units;
  }
  out.push(line.slice(start));
  return out;
}

/**
 * The pieces of one log entry. `partial` says the entry itself is not the end of its line (the shim
 * cut it): then every piece is partial; otherwise every piece but the last.
 */
export function chunkEntry(
  taskId: string,
  e: { ts: string; stream: 'stdout' | 'stderr'; line: string; partial?: boolean },
  maxBytes = LOG_CHUNK_BYTES,
): LogLine[] {
  const pieces = splitLine(e.line, maxBytes);
  return pieces.map((line, i) => {
    const partial = e.partial === true || i < pieces.length - 1;
    return { taskId, ts: e.ts, stream: e.stream, line, ...(partial ? { partial: true as const } : {}) };
  });
}

/**
 * What a chunk counts against its task's flow window (protocol LOG_WINDOW_BYTES): its UTF-8 bytes plus a
 * fixed overhead, so that a flood of empty lines is bounded too. Node and leader count the same way.
 */
export function logChunkCost(l: Pick<LogLine, 'line'>): number {
  return Buffer.byteLength(l.line) + 64;
}

/** Bytes a chunk adds to a 'log' message (its JSON and a comma). */
export function chunkWireBytes(l: LogLine): number {
  return Buffer.byteLength(JSON.stringify(l)) + 1;
}

/** Room in a 'log' message for everything but its lines: {"t":"log","req":"…","lines":[]}. */
const BATCH_OVERHEAD = 128;

/**
 * Collects chunks into 'log' batches of at most `maxBytes` of JSON. `add` returns the batch that must
 * go out first when the new chunk would not fit; `take` empties what is collected.
 */
export class LogBatcher {
  private lines: LogLine[] = [];
  private bytes = BATCH_OVERHEAD;

  constructor(private readonly maxBytes = LOG_BATCH_BYTES) {}

  add(l: LogLine): LogLine[] | null {
    const b = chunkWireBytes(l);
    let full: LogLine[] | null = null;
    if (this.lines.length > 0 && this.bytes + b > this.maxBytes) full = this.take();
    this.lines.push(l);
    this.bytes += b;
    return full;
  }

  /** Whether a flush is due at once (the batch reached its size). */
  get full(): boolean {
    return this.bytes >= this.maxBytes;
  }

  get size(): number {
    return this.lines.length;
  }

  take(): LogLine[] {
    const out = this.lines;
    this.lines = [];
    this.bytes = BATCH_OVERHEAD;
    return out;
  }
}

/** `data` cut into pieces of at most `maxBytes` (views, not copies). An empty buffer gives no piece. */
export function splitBuffer(data: Buffer, maxBytes = EXEC_CHUNK_BYTES): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < data.length; i += maxBytes) out.push(data.subarray(i, Math.min(data.length, i + maxBytes)));
  return out;
}
