// A long-lived NDJSON stream from the managers' control API (GET /v1/events, GET /v1/logs), with the
// admin context's mutual TLS: tries the context's managers in order, follows a 421 to the leader, and
// hands each parsed line to the caller until the stream ends, fails, or the caller closes it. The
// one-shot JSON calls go through client/context.ts's control(); this is its streaming sibling for the
// dashboard, which must be able to stop a stream (a browser left the page) at any time.
import { request as httpsRequest } from 'node:https';
import type { ClientRequest, IncomingMessage } from 'node:http';
import type { Context } from '../../client/context.ts';
import { managerRequest } from '../../transport/https.ts';

/** A line longer than this is a broken stream, not something to buffer. */
const MAX_LINE = 8 << 20;
/** Without a byte for this long (the events stream sends a keepalive every 15 s) the stream is dead. */
const IDLE_MS = 40_000;

export interface NdjsonHandlers {
  /** The manager answered 200: the stream is open. */
  onOpen?: (manager: string) => void;
  onLine: (o: unknown) => void;
  /** Ended (error: why; undefined: the manager ended it cleanly). Called once, not after close(). */
  onEnd: (error?: string) => void;
}

export interface NdjsonStream {
  close(): void;
  /** Stops reading from the manager (TCP backpressure reaches it) until resume(): the caller's reader is slow. */
  pause(): void;
  resume(): void;
}

/** Error answers carry `{error: {message, leader?}}` (manager/api/http.ts). */
interface ErrorBody {
  error?: { message?: string; leader?: string; code?: string };
}

export function openNdjson(ctx: Context, path: string, h: NdjsonHandlers): NdjsonStream {
  let closed = false;
  let req: ClientRequest | null = null;
  /** The open stream's answer (what pause() stops reading), and whether the caller paused. */
  let body: IncomingMessage | null = null;
  let paused = false;
  const queue = [...ctx.managers];
  const tried = new Set<string>();
  let lastError = 'no managers in the context';
  const end = (error?: string) => {
    if (closed) return;
    closed = true;
    h.onEnd(error);
  };
  const next = () => {
    if (closed) return;
    const m = queue.shift();
    if (m === undefined) return end(lastError);
    if (tried.has(m)) return next();
    tried.add(m);
    let answered = false;
    const r = httpsRequest({ ...managerRequest(m, ctx.admin), method: 'GET', path, headers: { accept: 'application/x-ndjson' } }, (res) => {
      answered = true;
      let buf = '';
      res.setEncoding('utf8');
      if (res.statusCode !== 200) {
        res.on('data', (c: string) => {
          if (buf.length < 65536) buf += c;
        });
        res.on('end', () => {
          let body: ErrorBody = {};
          try {
            body = JSON.parse(buf) as ErrorBody;
          } catch {
            /* not JSON */
          }
          if (res.statusCode === 421 && body.error?.leader) {
            queue.unshift(body.error.leader);
            tried.delete(body.error.leader);
            return next();
          }
          lastError = `${m}: HTTP ${res.statusCode}: ${body.error?.message ?? buf.slice(0, 200)}`;
          // 4xx is the same answer everywhere (a bad request, a route this cluster lacks): stop asking.
          if ((res.statusCode ?? 500) < 500) return end(lastError);
          next();
        });
        return;
      }
      body = res;
      if (paused) res.pause();
      h.onOpen?.(m);
      res.on('data', (c: string) => {
        buf += c;
        if (buf.length > MAX_LINE) {
          r.destroy();
          return end(`${m}: a stream line over ${MAX_LINE} bytes`);
        }
        let nl: number;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          if (line.trim() === '' || closed) continue;
          let o: unknown;
          try {
            o = JSON.parse(line);
          } catch {
            r.destroy();
            return end(`${m}: a stream line that is not JSON`);
          }
          h.onLine(o);
        }
      });
      res.on('end', () => end());
      res.on('error', (e) => end(`${m}: ${e.message}`));
    });
    req = r;
    r.setTimeout(paused ? 0 : IDLE_MS);
    r.on('timeout', () => r.destroy(new Error(`no data for ${IDLE_MS / 1000} s`)));
    r.on('error', (e) => {
      if (closed) return;
      lastError = `${m}: ${e.message}`;
      // Before the answer: try the next manager. After it (the stream broke): the caller reconnects.
      if (answered) return end(lastError);
      next();
    });
    r.end();
  };
  next();
  return {
    close() {
      closed = true;
      req?.destroy();
    },
    // A paused stream is quiet because of the caller, not the manager: no idle timeout meanwhile.
    pause() {
      paused = true;
      req?.setTimeout(0);
      body?.pause();
    },
    resume() {
      paused = false;
      req?.setTimeout(IDLE_MS);
      body?.resume();
    },
  };
}
