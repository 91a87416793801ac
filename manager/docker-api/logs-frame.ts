// The Engine API's multiplexed stream (stdcopy): each frame is an 8-byte header — stream (1 stdout,
// 2 stderr), three zero bytes, the payload length as big-endian uint32 — then the payload. Swarm log
// payloads are `[<RFC3339Nano> ]<details> <line>`, where details (with `details=1`) are
// `com.docker.swarm.node.id=…,com.docker.swarm.service.id=…,com.docker.swarm.task.id=…`; the CLI
// builds its line prefixes from them and fails without them. Pure.

export interface LogFrameInput {
  stream: 'stdout' | 'stderr';
  ts: string;
  line: string;
  /** More of the same line follows (Shoal cuts long lines at 16 KiB): no newline after this piece. */
  partial?: boolean;
  nodeId: string;
  serviceId: string;
  taskId: string;
}

export interface FrameOptions {
  timestamps: boolean;
  details: boolean;
}

export function frame(stream: 1 | 2, payload: Buffer): Buffer {
  const h = Buffer.alloc(8);
  h[0] = stream;
  h.writeUInt32BE(payload.length, 4);
  return Buffer.concat([h, payload]);
}

export function logFrame(l: LogFrameInput, o: FrameOptions): Buffer {
  let text = '';
  if (o.timestamps) text += `${l.ts} `;
  if (o.details) text += `com.docker.swarm.node.id=${l.nodeId},com.docker.swarm.service.id=${l.serviceId},com.docker.swarm.task.id=${l.taskId} `;
  text += l.line;
  if (!l.partial) text += '\n';
  return frame(l.stream === 'stderr' ? 2 : 1, Buffer.from(text, 'utf8'));
}

/** Splits a multiplexed stream back into frames (tests, and anything reading a forwarded stream). */
export function parseFrames(buf: Buffer): { frames: { stream: number; payload: string }[]; rest: Buffer } {
  const frames: { stream: number; payload: string }[] = [];
  let off = 0;
  while (buf.length - off >= 8) {
    const len = buf.readUInt32BE(off + 4);
    if (buf.length - off - 8 < len) break;
    frames.push({ stream: buf[off]!, payload: buf.subarray(off + 8, off + 8 + len).toString('utf8') });
    off += 8 + len;
  }
  return { frames, rest: buf.subarray(off) };
}

/** Docker's `since`: unix seconds with an optional fraction ("1700000000.123456789"); 0 or empty = none. */
export function sinceToIso(raw: string | null): string | undefined {
  if (raw === null || raw === '' || raw === '0') return undefined;
  const n = Number(raw);
  if (Number.isFinite(n)) return n <= 0 ? undefined : new Date(n * 1000).toISOString();
  const t = Date.parse(raw);
  return Number.isNaN(t) ? undefined : new Date(t).toISOString();
}
