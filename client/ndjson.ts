// Streaming answers of the managers' control API (NDJSON: GET /v1/events, GET /v1/logs, POST
// /v1/tasks/ID/exec), with the admin context's mutual TLS. The one-shot JSON calls go through
// context.ts's control(); this is its streaming sibling, shared by `shoal events`, `shoal logs`,
// `shoal task exec` and the dashboard.
//
//   try the context's managers in order ──▶ 421 with a leader: ask it next
//        │                                   other 4xx: the same answer everywhere, end with it
//        │                                   5xx, or no answer (refused, TLS, reset): the next manager
//        ▼
//   200: open ──▶ each line parsed and handed over ──▶ end (clean, or why)
//
// Once the answer has started, a failure ends the stream: the request may have had effects (an exec ran)
// and what was already handed over cannot be taken back, so retrying is the caller's decision.
// Bounded: a line longer than `maxLine` ends the stream; an error body is read up to 64 KiB.
import type { ClientRequest, IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { managerRequest } from '../transport/https.ts';
import type { Context } from './context.ts';

/** Default longest line: a line longer than this is a broken stream, not something to buffer. */
export const NDJSON_MAX_LINE = 8 << 20;
const MAX_ERROR_BODY = 64 << 10;

export interface NdjsonRequest {
  method?: 'GET' | 'POST';
  path: string;
  /** Sent as JSON (POST). */
  body?: unknown;
  /**
   * End the stream after this long without a byte (a stream whose server sends keepalives, as
   * /v1/events does every 15 s). Absent: no idle limit (`logs --follow` of a quiet service is silent).
   */
  idleMs?: number;
  maxLine?: number;
}

/** Why a stream ended. `status`: the HTTP status of a refusal; `started`: whether the 200 had come. */
export interface NdjsonEnd {
  message: string;
  status?: number;
  started: boolean;
}

export interface NdjsonHandlers {
  /** The manager answered 200: the stream is open. */
  onOpen?: (manager: string) => void;
  /** One parsed line. A throw ends the stream with the thrown error's message. */
  onLine: (o: unknown) => void;
  /** Ended: `error` says why; undefined when the manager ended it cleanly. Called once, never after close(). */
  onEnd: (error?: NdjsonEnd) => void;
}

export interface NdjsonStream {
  close(): void;
  /** Stops reading (TCP backpressure reaches the manager, and through it the nodes) until resume(). */
  pause(): void;
  resume(): void;
}

/** Error answers carry `{error: {message, leader?}}` (manager/api/http.ts). */
interface ErrorBody {
  error?: { message?: string; leader?: string; code?: string };
}

export function openNdjson(ctx: Context, rq: NdjsonRequest, h: NdjsonHandlers): NdjsonStream {
  const maxLine = rq.maxLine ?? NDJSON_MAX_LINE;
  const data = rq.body === undefined ? undefined : JSON.stringify(rq.body);
  let closed = false;
  let req: ClientRequest | null = null;
  /** The open stream's answer (what pause() stops reading), and whether the caller paused. */
  let body: IncomingMessage | null = null;
  let paused = false;
  const queue = [...ctx.managers];
  const tried = new Set<string>();
  let lastError: NdjsonEnd = { message: 'no managers in the context', started: false };
  const end = (error?: NdjsonEnd) => {
    if (closed) return;
    closed = true;
    req?.destroy();
    h.onEnd(error);
  };
  const next = () => {
    if (closed) return;
    const m = queue.shift();
    if (m === undefined) return end(lastError);
    if (tried.has(m)) return next();
    tried.add(m);
    let answered = false;
    const headers: Record<string, string | number> = { accept: 'application/x-ndjson' };
    if (data !== undefined) Object.assign(headers, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) });
    const r = httpsRequest({ ...managerRequest(m, ctx.admin), method: rq.method ?? 'GET', path: rq.path, headers }, (res) => {
      answered = true;
      let buf = '';
      res.setEncoding('utf8');
      const status = res.statusCode ?? 0;
      if (status !== 200) {
        res.on('data', (c: string) => {
          if (buf.length < MAX_ERROR_BODY) buf += c;
        });
        res.on('end', () => {
          let eb: ErrorBody = {};
          try {
            eb = JSON.parse(buf) as ErrorBody;
          } catch {
            /* not JSON */
          }
          if (status === 421 && eb.error?.leader) {
            queue.unshift(eb.error.leader);
            tried.delete(eb.error.leader);
            return next();
          }
          lastError = { message: eb.error?.message ?? `${m}: HTTP ${status}${buf ? `: ${buf.slice(0, 200)}` : ''}`, status, started: false };
          // 4xx is the same answer everywhere (a bad request, a route this cluster lacks): stop asking.
          if (status < 500) return end(lastError);
          next();
        });
        return;
      }
      body = res;
      if (paused) res.pause();
      h.onOpen?.(m);
      res.on('data', (c: string) => {
        buf += c;
        let nl: number;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          if (closed) return;
          if (line.trim() === '') continue;
          let o: unknown;
          try {
            o = JSON.parse(line);
          } catch {
            return end({ message: `bad answer from ${m}: a stream line that is not JSON`, started: true });
          }
          try {
            h.onLine(o);
          } catch (e) {
            return end({ message: (e as Error).message, started: true });
          }
        }
        if (buf.length > maxLine) end({ message: `${m} sent a line longer than ${maxLine} bytes`, started: true });
      });
      res.on('end', () => end());
      res.on('error', (e) => end({ message: `connection to ${m} lost: ${e.message}`, started: true }));
    });
    req = r;
    if (rq.idleMs !== undefined) {
      r.setTimeout(paused ? 0 : rq.idleMs);
      r.on('timeout', () => r.destroy(new Error(`no data for ${rq.idleMs! / 1000} s`)));
    }
    r.on('error', (e) => {
      if (closed) return;
      // Before the answer: try the next manager. After it (the stream broke): it ends here.
      if (answered) return end({ message: `connection to ${m} lost: ${e.message}`, started: true });
      lastError = { message: `no manager reachable (${m}: ${e.message})`, started: false };
      next();
    });
    r.end(data);
  };
  next();
  return {
    close() {
      closed = true;
      req?.destroy();
    },
    // A paused stream is quiet because of the caller, not the manager: no idle limit meanwhile.
    pause() {
      paused = true;
      if (rq.idleMs !== undefined) req?.setTimeout(0);
      body?.pause();
    },
    resume() {
      paused = false;
      if (rq.idleMs !== undefined) req?.setTimeout(rq.idleMs);
      body?.resume();
    },
  };
}

/**
 * The stream as a promise, for commands that read one stream to its end: resolves when the manager ends
 * it, rejects with the reason otherwise. `onLine` may return a stream whose buffer is full: reading
 * pauses until it drains (backpressure from the terminal to the nodes).
 */
export function readNdjson(ctx: Context, rq: NdjsonRequest, onLine: (o: unknown) => NodeJS.WritableStream | undefined | void): Promise<void> {
  return new Promise((resolve, reject) => {
    const s = openNdjson(ctx, rq, {
      onLine: (o) => {
        const full = onLine(o);
        if (full) {
          s.pause();
          full.once('drain', () => s.resume());
        }
      },
      onEnd: (e) => (e ? reject(new NdjsonError(e)) : resolve()),
    });
  });
}

export class NdjsonError extends Error {
  override readonly name = 'NdjsonError';
  readonly status: number | undefined;
  readonly started: boolean;
  constructor(e: NdjsonEnd) {
    super(e.message);
    this.status = e.status;
    this.started = e.started;
  }
}
