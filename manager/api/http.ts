// Small HTTP plumbing shared by the manager's secure port and the daemon's local socket: errors sent
// with the status they map to (errors.ts), bounded JSON bodies, and a tiny router. No framework: every
// route is visible here and in the files that register them.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ApiError, badRequest, errorStatus, tooLarge } from './errors.ts';

// The error classes and their status mapping live in errors.ts; re-exported for the modules that
// register routes, which take their plumbing from here.
export { ApiError, badRequest, conflict, forbidden, notFound, tooLarge, unauthorized } from './errors.ts';

/**
 * Request body caps. Every route passes one explicitly: `small` for requests that carry a few fields,
 * `spec` for those that carry a service or network spec (env, labels and mounts up to the cluster's
 * object-size limit fit in it). Nothing the control API accepts needs more; image archives are streamed
 * by their own endpoints (daemon/images.ts) with their own caps.
 */
export const BODY_LIMITS = Object.freeze({ small: 64 << 10, spec: 1 << 20 });

/**
 * Bounds on discarding the rest of a request body that an error was answered before (sendError): up to
 * this many bytes, within this many milliseconds, then the connection is cut. 64 MiB is 64 times the
 * largest cap, so a client sending a spec somewhat too large still reads its 413.
 */
export const BODY_DRAIN = Object.freeze({ bytes: 64 << 20, ms: 5_000 });

function sizeText(n: number): string {
  return n % (1 << 20) === 0 ? `${n >> 20} MiB` : n % (1 << 10) === 0 ? `${n >> 10} KiB` : `${n} bytes`;
}

/**
 * Deepest nesting of objects and arrays accepted in a body. Nothing the API takes goes past 10; the bound
 * keeps recursive code downstream (validation, JSON.stringify in an error message, the store's checks)
 * from overflowing the stack on a body like `[[[[…]]]]`, which JSON.parse itself accepts.
 */
export const MAX_JSON_DEPTH = 64;

/** The deepest `[`/`{` nesting in JSON text (brackets inside strings do not count). Linear, no recursion. */
function nestingDepth(text: string): number {
  let depth = 0;
  let max = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c)
        i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x5b || c === 0x7b) {
      if (++depth > max) max = depth;
    } else if (c === 0x5d || c === 0x7d) depth--;
  }
  return max;
}

/**
 * The body of `req` if it is at most `limit` bytes, else null as soon as it goes past (the rest is left
 * unread, the stream paused: sendError discards it). Not `for await`: leaving that loop early destroys
 * the request, and with it the socket, before the error can be answered.
 */
function readCapped(req: IncomingMessage, limit: number): Promise<Buffer | null> {
  return new Promise((resolve, reject) => {
    if (req.readableEnded) return resolve(Buffer.alloc(0));
    if (req.destroyed) return reject(new ApiError(400, 'EABORTED', 'the request body ended before it was complete'));
    const chunks: Buffer[] = [];
    let size = 0;
    const done = () => {
      req.off('data', onData).off('end', onEnd).off('error', onError).off('close', onClose);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size <= limit) {
        chunks.push(chunk);
        return;
      }
      done();
      req.pause();
      resolve(null);
    };
    const onEnd = () => {
      done();
      resolve(Buffer.concat(chunks));
    };
    const onError = (e: Error) => {
      done();
      reject(e);
    };
    const onClose = () => {
      done();
      reject(new ApiError(400, 'EABORTED', 'the request body ended before it was complete'));
    };
    req.on('data', onData).on('end', onEnd).on('error', onError).on('close', onClose);
  });
}

/**
 * Reads and parses a JSON body of at most `limit` bytes: 413 as soon as the declared length or the bytes
 * received go past it (the rest is never buffered), 400 for anything that is not a JSON object or is
 * nested deeper than MAX_JSON_DEPTH. An empty body is {}.
 */
export async function readJson(req: IncomingMessage, limit: number = BODY_LIMITS.small): Promise<unknown> {
  const tooBig = () => tooLarge(`request body is larger than this endpoint's limit of ${sizeText(limit)}`, { limit });
  // (headers may be absent on a stream that stands in for a request, as in unit tests of route handlers)
  const declared = Number(req.headers?.['content-length']);
  if (Number.isFinite(declared) && declared > limit) throw tooBig();
  const raw = await readCapped(req, limit);
  if (raw === null) throw tooBig();
  if (raw.length === 0) return {};
  const text = raw.toString('utf8');
  const depth = nestingDepth(text);
  if (depth > MAX_JSON_DEPTH) throw badRequest(`request body is nested ${depth} levels deep; at most ${MAX_JSON_DEPTH} are accepted`);
  let body: unknown;
  try {
    body = JSON.parse(text) as unknown;
  } catch {
    throw badRequest('request body is not valid JSON');
  }
  // Every endpoint takes an object; `null` or `[]` would otherwise reach handlers that read fields of it.
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw badRequest(`request body must be a JSON object (got ${body === null ? 'null' : Array.isArray(body) ? 'an array' : typeof body})`);
  }
  return body;
}

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const data = JSON.stringify(body);
  res.writeHead(status, { ...headers, 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) });
  res.end(data);
}

/** The request `res` answers, while its body is still arriving (not for stand-in responses, which have none). */
function unreadRequest(res: ServerResponse): IncomingMessage | null {
  const req = (res as { req?: IncomingMessage }).req;
  return req && !req.complete && !req.readableEnded && !req.destroyed ? req : null;
}

/** Whether the body of the request `res` answers is still arriving (an answer now should be sendJsonAndClose's). */
export function requestBodyUnread(res: ServerResponse): boolean {
  return unreadRequest(res) !== null;
}

/**
 * Sends an answer that ends the connection: at once, so a client still sending can read it (curl with
 * `Expect: 100-continue` stops sending), but the connection is closed only once the rest of the request
 * body has been read and discarded. Closing while the client still sends makes the kernel answer its
 * next bytes with a reset, and the client's write fails (EPIPE, "broken pipe") before it reads the
 * answer: over TLS, with a body of a few MB, most of the time. The discarding is bounded (BODY_DRAIN):
 * past its bytes or time the connection is cut. Nothing is kept.
 */
export function sendJsonAndClose(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const req = unreadRequest(res);
  if (!req) {
    sendJson(res, status, body, { ...headers, connection: 'close' });
    return;
  }
  const data = JSON.stringify(body);
  res.writeHead(status, { ...headers, 'content-type': 'application/json', 'content-length': Buffer.byteLength(data), connection: 'close' });
  // Written now; ending the response is what makes Node close the connection, so that waits.
  res.write(data);
  let seen = 0;
  const stop = () => {
    clearTimeout(timer);
    req.off('data', onData).off('end', onEnd).off('error', stop);
    res.off('close', stop);
  };
  const cut = () => {
    stop();
    res.destroy();
  };
  const onData = (chunk: Buffer) => {
    seen += chunk.length;
    if (seen > BODY_DRAIN.bytes) cut();
  };
  const onEnd = () => {
    stop();
    res.end();
  };
  const timer = setTimeout(cut, BODY_DRAIN.ms);
  timer.unref();
  req.on('data', onData).once('end', onEnd).once('error', stop);
  res.once('close', stop);
  req.resume();
}

/**
 * Sends the response an error maps to (errors.ts errorStatus). A 413, or any error answered while the
 * request body is still arriving, closes the connection once the body is discarded (sendJsonAndClose).
 */
export function sendError(res: ServerResponse, err: unknown): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const e = errorStatus(err);
  const body = { error: { code: e.code, message: e.message, ...(e.details ?? {}) } };
  if (e.status === 413 || unreadRequest(res)) sendJsonAndClose(res, e.status, body);
  else sendJson(res, e.status, body);
}

export type Handler<C> = (ctx: C, params: Record<string, string>, req: IncomingMessage, res: ServerResponse) => Promise<unknown> | unknown;

interface Route<C> {
  method: string;
  parts: string[];
  handler: Handler<C>;
}

/** Routes like `GET /v1/nodes/:id`. A handler's return value (if not undefined) is sent as JSON 200. */
export class Router<C> {
  private routes: Route<C>[] = [];

  add(method: string, path: string, handler: Handler<C>): this {
    this.routes.push({ method, parts: path.split('/').filter(Boolean), handler });
    return this;
  }

  /** Observer (metrics) of each matched request: method, route pattern (never the raw path), status, seconds. */
  observe: ((method: string, route: string, status: number, seconds: number) => void) | null = null;

  match(method: string, url: string): { handler: Handler<C>; params: Record<string, string>; route: string } | null {
    const path = url.split('?')[0] ?? '';
    let parts: string[];
    try {
      parts = path
        .split('/')
        .filter(Boolean)
        .map((p) => decodeURIComponent(p));
    } catch {
      throw badRequest(`the path ${JSON.stringify(path.slice(0, 200))} is not validly percent-encoded`);
    }
    let methodMismatch = false;
    for (const r of this.routes) {
      if (r.parts.length !== parts.length) continue;
      const params: Record<string, string> = {};
      let ok = true;
      for (let i = 0; i < parts.length; i++) {
        const rp = r.parts[i]!;
        if (rp.startsWith(':')) params[rp.slice(1)] = parts[i]!;
        else if (rp !== parts[i]) {
          ok = false;
          break;
        }
      }
      if (!ok) continue;
      if (r.method !== method) {
        methodMismatch = true;
        continue;
      }
      return { handler: r.handler, params, route: `/${r.parts.join('/')}` };
    }
    if (methodMismatch) throw new ApiError(405, 'EMETHOD', `${method} is not allowed on ${path}`);
    return null;
  }

  async dispatch(ctx: C, req: IncomingMessage, res: ServerResponse): Promise<boolean> {
    const m = this.match(req.method ?? 'GET', req.url ?? '/');
    if (!m) return false;
    const observe = this.observe;
    if (!observe) {
      const out = await m.handler(ctx, m.params, req, res);
      if (out !== undefined && !res.headersSent) sendJson(res, 200, out);
      return true;
    }
    const t0 = performance.now();
    try {
      const out = await m.handler(ctx, m.params, req, res);
      if (out !== undefined && !res.headersSent) sendJson(res, 200, out);
      observe(req.method ?? 'GET', m.route, res.statusCode, (performance.now() - t0) / 1000);
      return true;
    } catch (e) {
      observe(req.method ?? 'GET', m.route, errorStatus(e).status, (performance.now() - t0) / 1000);
      throw e;
    }
  }
}

export function queryParam(req: IncomingMessage, name: string): string | null {
  const url = new URL(req.url ?? '/', 'http://x');
  return url.searchParams.get(name);
}
