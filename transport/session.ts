// One WebSocket session's whole life in one place, so no endpoint can forget a part of it.
//
// A bare `ws` socket crashes the process on the first bad frame if nobody listens for `error`
// (security review, finding 2), buffers without bound towards a slow reader, never notices a peer
// that went silent, and lets one malformed message throw out of a handler into the event loop. Every
// endpoint that speaks WebSocket (dispatcher, Raft transport, agent) wraps its socket in a Session:
//
//   inbound:  frame → size cap → decode (caller's decoder; throws ProtocolViolation) → handler
//             A bad message is dropped and counted; it never costs another message. A handler that
//             throws is logged for that message only. Too many violations inside a window → close 1008.
//   outbound: send() refuses (returns false) or closes the session ("slow consumer") once the socket's
//             unsent bytes pass a limit: memory stays bounded whatever the peer does.
//   liveness: a peer not heard from for an interval is pinged; one not heard from (any frame, pong
//             included) for longer than the timeout is terminated. A peer that talks is not pinged:
//             the ping only makes a quiet peer answer, and 5,000 agents' pings and pongs were 3.4 s of
//             a leader's writes during a 92 s create (bench:scale --profile, December 7).
//   errors:   `error` and `close` are always listened to; a ws protocol error (oversized frame, invalid
//             UTF-8, unmasked frame) ends only this session, with the reason recorded.
//
// It works for server sockets (WebSocketServer.handleUpgrade) and client sockets (new WebSocket), open
// or still connecting. This file is a low layer: it imports nothing from manager/, worker/, overlay-net/.
import type { RawData, WebSocket } from 'ws';

/**
 * A peer broke the protocol with one message. `code` is a short, stable tag counted per kind
 * ("bad-json", "too-large", "bad-field"); `message` names the field or cause for the log.
 */
export class ProtocolViolation extends Error {
  override readonly name = 'ProtocolViolation';
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** Turns one inbound frame into a message, or throws ProtocolViolation. Must be pure. */
export type Decoder<In> = (data: Buffer, isBinary: boolean) => In;

export interface SessionLimits {
  /** Largest inbound message accepted (bytes); larger ones are dropped as violations. Pair with ws
   * `maxPayload` (a frame over maxPayload makes ws close the session with 1009). Default 1 MiB. */
  maxMessageBytes: number;
  /** More than `count` violations within `windowMs` closes the session with 1008. Default 20 / 10 s. */
  violations: { count: number; windowMs: number };
  /** Unsent bytes (ws.bufferedAmount) above which send() applies `slowConsumer`. Default 8 MiB. */
  maxBufferedBytes: number;
  /** What send() does when the buffer is over its limit: refuse the message, or close the session. */
  slowConsumer: 'drop' | 'close';
  /** Silence after which the peer is pinged (checked every interval) and after which it is terminated; null disables. Default 15 s / 45 s. */
  liveness: { pingIntervalMs: number; timeoutMs: number } | null;
  /** After close(), how long to wait for the closing handshake before terminating. Default 2 s. */
  closeTimeoutMs: number;
}

export const DEFAULT_LIMITS: SessionLimits = {
  maxMessageBytes: 1 << 20,
  violations: { count: 20, windowMs: 10_000 },
  maxBufferedBytes: 8 << 20,
  slowConsumer: 'drop',
  liveness: { pingIntervalMs: 15_000, timeoutMs: 45_000 },
  closeTimeoutMs: 2_000,
};

export interface SessionCounters {
  received: number;
  bytesIn: number;
  /** Inbound messages dropped (all reasons), and per ProtocolViolation code. */
  dropped: number;
  droppedByReason: Record<string, number>;
  violations: number;
  handlerErrors: number;
  sent: number;
  bytesOut: number;
  /** send() calls refused (socket not open, or over the buffer limit). */
  sendRefused: number;
  /** Set once the session ended. */
  closeCode: number | null;
  closeReason: string | null;
}

export interface SessionOptions<In> {
  /** Names the session in log lines ("dispatcher node abc", "raft m2"). */
  name: string;
  decode: Decoder<In>;
  /** Called once per valid message. May be async; a throw or rejection is logged for that message only,
   * and a thrown ProtocolViolation also counts as a violation. */
  onMessage: (msg: In, session: Session<In>) => void | Promise<void>;
  /** Called once when the session ends, whoever ended it. */
  onClose?: (code: number, reason: string, session: Session<In>) => void;
  /** Client sockets: called when the connection opens (liveness starts then). */
  onOpen?: (session: Session<In>) => void;
  log?: (line: string) => void;
  limits?: Partial<SessionLimits>;
  /** Clock for the violation window and liveness (tests pass their own). */
  now?: () => number;
}

/** Most distinct reason keys kept in droppedByReason; a peer cannot grow it by inventing codes. */
const MAX_REASON_KEYS = 32;
/** Violations logged one by one per session before the log only samples them. */
const LOGGED_VIOLATIONS = 3;

const OPEN = 1;
const CONNECTING = 0;

export class Session<In> {
  readonly counters: SessionCounters = {
    received: 0,
    bytesIn: 0,
    dropped: 0,
    droppedByReason: {},
    violations: 0,
    handlerErrors: 0,
    sent: 0,
    bytesOut: 0,
    sendRefused: 0,
    closeCode: null,
    closeReason: null,
  };
  readonly limits: SessionLimits;
  private readonly log: (line: string) => void;
  private readonly now: () => number;
  /** Times of recent violations (at most limits.violations.count + 1 kept). */
  private readonly recentViolations: number[] = [];
  private lastHeard: number;
  private pingTimer: NodeJS.Timeout | null = null;
  private killTimer: NodeJS.Timeout | null = null;
  /** Why we ended the session, when we did (the peer's close code/reason otherwise). */
  private ourReason: { code: number; reason: string } | null = null;
  private ended = false;

  constructor(
    readonly ws: WebSocket,
    private readonly opts: SessionOptions<In>,
  ) {
    this.limits = { ...DEFAULT_LIMITS, ...opts.limits };
    this.log = opts.log ?? (() => {});
    this.now = opts.now ?? Date.now;
    this.lastHeard = this.now();
    ws.on('error', (e: Error & { code?: string }) => this.onError(e));
    ws.on('close', (code: number, reason: Buffer) => this.onClosed(code, reason.toString()));
    ws.on('message', (data: RawData, isBinary: boolean) => this.onFrame(data, isBinary));
    ws.on('pong', () => this.heard());
    ws.on('ping', () => this.heard());
    if (ws.readyState === OPEN) this.opened();
    else if (ws.readyState === CONNECTING) ws.once('open', () => this.opened());
  }

  get name(): string {
    return this.opts.name;
  }

  get open(): boolean {
    return !this.ended && this.ws.readyState === OPEN;
  }

  /**
   * Sends one message. Returns false, without sending, if the socket is not open or the unsent buffer is
   * over its limit (then, with slowConsumer 'close', the session is also closed).
   */
  send(data: string | Buffer): boolean {
    if (!this.open) {
      this.counters.sendRefused++;
      return false;
    }
    const size = typeof data === 'string' ? Buffer.byteLength(data) : data.length;
    if (this.ws.bufferedAmount + size > this.limits.maxBufferedBytes) {
      this.counters.sendRefused++;
      if (this.limits.slowConsumer === 'close') {
        this.close(1008, `slow consumer: ${this.ws.bufferedAmount} bytes unsent`);
      }
      return false;
    }
    this.counters.sent++;
    this.counters.bytesOut += size;
    // The callback keeps a write error from surfacing anywhere but here; `error`/`close` follow it.
    this.ws.send(data, { binary: typeof data !== 'string' }, (err) => {
      if (err) this.log(`${this.name}: send failed: ${err.message}`);
    });
    return true;
  }

  /** JSON.stringify + send. */
  sendJson(msg: unknown): boolean {
    return this.send(JSON.stringify(msg));
  }

  /**
   * Records a violation found by the caller outside decode/onMessage (for example one bad entry of a
   * batch whose other entries are kept). May close the session.
   */
  violation(v: ProtocolViolation): void {
    this.counters.violations++;
    this.countDrop(v.code);
    const n = this.counters.violations;
    if (n <= LOGGED_VIOLATIONS || n % 100 === 0) this.log(`${this.name}: protocol violation #${n} (${v.code}): ${v.message}`);
    const { count, windowMs } = this.limits.violations;
    const t = this.now();
    this.recentViolations.push(t);
    while (this.recentViolations.length > 0 && t - this.recentViolations[0]! > windowMs) this.recentViolations.shift();
    if (this.recentViolations.length > count) {
      this.recentViolations.length = 0;
      this.close(1008, `too many protocol violations (${count + 1} in ${windowMs} ms; last: ${v.code})`);
    }
  }

  /** Ends the session with a close frame; terminates if the peer does not finish the handshake in time. */
  close(code: number, reason: string): void {
    if (this.ended || this.ourReason) return;
    this.ourReason = { code, reason };
    this.log(`${this.name}: closing (${code}): ${reason}`);
    this.stopPing();
    try {
      // A close reason is limited to 123 bytes by the protocol.
      this.ws.close(code, truncateUtf8(reason, 123));
    } catch {
      this.ws.terminate();
    }
    this.killTimer = setTimeout(() => this.ws.terminate(), this.limits.closeTimeoutMs);
    this.killTimer.unref?.();
  }

  /** Ends the session at once, without a handshake. */
  terminate(reason: string): void {
    if (this.ended) return;
    this.ourReason ??= { code: 1006, reason };
    this.log(`${this.name}: terminated: ${reason}`);
    this.ws.terminate();
  }

  // ------------------------------------------------------------------ inbound

  private onFrame(data: RawData, isBinary: boolean): void {
    if (this.ended) return;
    this.heard();
    const buf = toBuffer(data);
    this.counters.received++;
    this.counters.bytesIn += buf.length;
    if (this.ourReason) return; // closing: nothing more is processed
    if (buf.length > this.limits.maxMessageBytes) {
      this.violation(new ProtocolViolation('too-large', `message of ${buf.length} bytes (limit ${this.limits.maxMessageBytes})`));
      return;
    }
    let msg: In;
    try {
      msg = this.opts.decode(buf, isBinary);
    } catch (e) {
      this.violation(e instanceof ProtocolViolation ? e : new ProtocolViolation('undecodable', (e as Error).message));
      return;
    }
    try {
      const r = this.opts.onMessage(msg, this);
      if (r && typeof (r as Promise<void>).then === 'function') (r as Promise<void>).catch((e: unknown) => this.handlerFailed(e));
    } catch (e) {
      this.handlerFailed(e);
    }
  }

  private handlerFailed(e: unknown): void {
    if (e instanceof ProtocolViolation) {
      this.violation(e);
      return;
    }
    this.counters.handlerErrors++;
    this.log(`${this.name}: handler failed: ${e instanceof Error ? e.message : String(e)}`);
  }

  private countDrop(code: string): void {
    this.counters.dropped++;
    const m = this.counters.droppedByReason;
    const key = code in m || Object.keys(m).length < MAX_REASON_KEYS ? code : 'other';
    m[key] = (m[key] ?? 0) + 1;
  }

  // ------------------------------------------------------------------ life

  private opened(): void {
    if (this.ended) return;
    this.lastHeard = this.now();
    const l = this.limits.liveness;
    if (l) {
      this.pingTimer = setInterval(() => this.checkLiveness(), l.pingIntervalMs);
      this.pingTimer.unref?.();
    }
    this.opts.onOpen?.(this);
  }

  private heard(): void {
    this.lastHeard = this.now();
  }

  private checkLiveness(): void {
    const l = this.limits.liveness;
    if (!l || !this.open) return;
    const silent = this.now() - this.lastHeard;
    if (silent > l.timeoutMs) {
      this.ourReason ??= { code: 1006, reason: `idle: nothing heard for ${silent} ms` };
      this.log(`${this.name}: terminated: idle (nothing heard for ${silent} ms)`);
      this.ws.terminate();
      return;
    }
    if (silent < l.pingIntervalMs) return;
    try {
      this.ws.ping();
    } catch {
      // The socket is going away; `close` follows.
    }
  }

  private onError(e: Error & { code?: string }): void {
    // ws emits `error` for protocol errors (frame over maxPayload, invalid UTF-8, unmasked frame, …)
    // and for socket errors; it closes the socket itself afterwards. Record why; never rethrow.
    if (!this.ourReason) this.ourReason = { code: closeCodeOf(e), reason: `${e.code ?? 'error'}: ${e.message}` };
    this.log(`${this.name}: ${e.code ?? 'error'}: ${e.message}`);
  }

  private onClosed(code: number, reason: string): void {
    if (this.ended) return;
    this.ended = true;
    this.stopPing();
    if (this.killTimer) clearTimeout(this.killTimer);
    this.killTimer = null;
    const final = this.ourReason ?? { code, reason: reason || 'closed by peer' };
    this.counters.closeCode = final.code;
    this.counters.closeReason = final.reason;
    try {
      this.opts.onClose?.(final.code, final.reason, this);
    } catch (e) {
      this.log(`${this.name}: close handler failed: ${(e as Error).message}`);
    }
  }

  private stopPing(): void {
    if (this.pingTimer) clearInterval(this.pingTimer);
    this.pingTimer = null;
  }
}

/** Wraps a socket in a session (the usual entry point). */
export function openSession<In>(ws: WebSocket, opts: SessionOptions<In>): Session<In> {
  return new Session(ws, opts);
}

/** Deepest `[`/`{` nesting a JSON message may have by default; protocol messages need far less. */
export const DEFAULT_MAX_JSON_DEPTH = 64;
/** Messages shorter than this cannot nest deep enough to cost anything; they skip the depth scan. */
const DEPTH_SCAN_FROM_BYTES = 1024;

/**
 * A decoder for JSON text frames: binary frames, invalid JSON and JSON nested deeper than `maxDepth`
 * are violations; `validate` checks the parsed value (and throws ProtocolViolation naming the field).
 * The depth is checked before parsing: JSON.parse of a megabyte of `[[[[…` takes the event loop for
 * over half a second (measured), a linear scan of the bytes a few milliseconds.
 */
export function jsonDecoder<In>(validate: (value: unknown) => In, opts: { maxDepth?: number } = {}): Decoder<In> {
  const maxDepth = opts.maxDepth ?? DEFAULT_MAX_JSON_DEPTH;
  return (data, isBinary) => {
    if (isBinary) throw new ProtocolViolation('binary', 'binary frame where JSON text was expected');
    if (data.length >= DEPTH_SCAN_FROM_BYTES && jsonDepthExceeds(data, maxDepth)) {
      throw new ProtocolViolation('too-deep', `JSON nested more than ${maxDepth} levels deep`);
    }
    let value: unknown;
    try {
      value = JSON.parse(data.toString('utf8'));
    } catch (e) {
      throw new ProtocolViolation('bad-json', `invalid JSON: ${(e as Error).message.slice(0, 100)}`);
    }
    return validate(value);
  };
}

/** Does JSON text nest `[`/`{` deeper than `max`? Brackets inside strings do not count. Linear, stops early. */
export function jsonDepthExceeds(buf: Buffer, max: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < buf.length; i++) {
    const c = buf[i]!;
    if (inString) {
      if (c === 0x5c)
        i++; // backslash: skip the escaped byte
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x5b || c === 0x7b) {
      if (++depth > max) return true;
    } else if (c === 0x5d || c === 0x7d) depth--;
  }
  return false;
}

function toBuffer(data: RawData): Buffer {
  if (Buffer.isBuffer(data)) return data;
  if (Array.isArray(data)) return Buffer.concat(data);
  return Buffer.from(data);
}

/** The close code ws itself sends for its protocol errors (it stores it on the error). */
function closeCodeOf(e: Error & { code?: string }): number {
  const key = Object.getOwnPropertySymbols(e).find((k) => k.description === 'status-code');
  const c = key ? (e as unknown as Record<symbol, unknown>)[key] : undefined;
  if (typeof c === 'number') return c;
  if (e.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH') return 1009;
  if (e.code === 'WS_ERR_INVALID_UTF8') return 1007;
  return 1006;
}

function truncateUtf8(s: string, maxBytes: number): string {
  if (Buffer.byteLength(s) <= maxBytes) return s;
  let out = s.slice(0, maxBytes);
  while (Buffer.byteLength(out) > maxBytes) out = out.slice(0, -1);
  return out;
}
