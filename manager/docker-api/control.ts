// The Docker API translates; it never reimplements. Every request becomes one or more calls of the
// control API's own route handlers (manager/api/*), run here in process through the control router,
// so validation, cluster limits, leader gating, Raft writes and their errors are exactly those of
// `shoal`. A call gets a minimal request (method, url, a JSON body as a stream) and a response that
// either captures the handler's return value or passes a streamed answer (logs) to a sink with
// back-pressure. Errors are the typed errors the handlers throw (mapped by errors.ts errorStatus).
import { EventEmitter } from 'node:events';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { ApiError, type Router } from '../api/http.ts';

export type ControlRouter = Router<{ cn: string }>;

/** Who the handlers see as the caller (ctx.cn): the control API records nothing by it today. */
const CALLER = { cn: 'docker-api' };

function request(method: string, url: string, body: unknown): IncomingMessage {
  const data = body === undefined ? [] : [Buffer.from(JSON.stringify(body))];
  const req = Readable.from(data) as unknown as IncomingMessage;
  Object.assign(req, { method, url, headers: {} });
  return req;
}

/**
 * A ServerResponse stand-in with the members the control handlers use (writeHead, write, end,
 * headersSent, 'drain', 'close'). Written bytes go to `sink`, which answers false while its
 * destination is full; `drained()` is then called by the owner when it is not.
 */
export class LocalResponse extends EventEmitter {
  statusCode = 200;
  headersSent = false;
  finished = false;
  readonly headers: Record<string, string> = {};
  private buffered: Buffer[] = [];

  constructor(
    private readonly sink?: (chunk: Buffer) => boolean,
    private readonly onEnd?: () => void,
  ) {
    super();
  }

  setHeader(name: string, value: string): void {
    this.headers[name.toLowerCase()] = value;
  }

  writeHead(status: number, headers: Record<string, string | number> = {}): this {
    this.statusCode = status;
    for (const [k, v] of Object.entries(headers)) this.headers[k.toLowerCase()] = String(v);
    this.headersSent = true;
    return this;
  }

  write(chunk: string | Buffer): boolean {
    this.headersSent = true;
    const b = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    if (this.sink && this.statusCode < 300) return this.sink(b);
    this.buffered.push(b);
    return true;
  }

  end(chunk?: string | Buffer): this {
    if (chunk !== undefined) this.write(chunk);
    this.finished = true;
    this.onEnd?.();
    return this;
  }

  destroy(): void {
    this.finished = true;
    this.emit('close');
  }

  /** The destination can take more again. */
  drained(): void {
    this.emit('drain');
  }

  /** The whole body written so far (for answers that were not passed to a sink). */
  body(): string {
    return Buffer.concat(this.buffered).toString('utf8');
  }
}

/** The error an answer the handler wrote itself (with sendError) stands for. */
function answerError(res: LocalResponse): ApiError {
  let msg = `control API answered ${res.statusCode}`;
  let code = 'EINTERNAL';
  try {
    const b = JSON.parse(res.body()) as { error?: { message?: string; code?: string } };
    msg = b.error?.message ?? msg;
    code = b.error?.code ?? code;
  } catch {
    // not JSON: keep the status line
  }
  return new ApiError(res.statusCode, code, msg);
}

/**
 * How long a read that could not be confirmed (the ReadIndex round timed out, or an election is on)
 * is retried before its 503 reaches the client. Docker clients never retry: one such 503 while the CLI
 * polls a rolling update (as seen on a loaded 2-core lab) ends `docker service update` with an error.
 */
const READ_RETRY_MS = 10_000;
const TRANSIENT_READ = new Set(['ERETRY', 'ENOLEADER']);

/** Calls one control route and returns its JSON answer; throws what the route throws. Reads are retried while unconfirmed. */
export async function callControl<T>(router: ControlRouter, method: string, url: string, body?: unknown): Promise<T> {
  if (method !== 'GET') return callOnce<T>(router, method, url, body);
  const deadline = Date.now() + READ_RETRY_MS;
  for (let wait = 50; ; wait = Math.min(wait * 2, 500)) {
    try {
      return await callOnce<T>(router, method, url, body);
    } catch (e) {
      if (!(e instanceof ApiError) || !TRANSIENT_READ.has(e.code) || Date.now() + wait > deadline) throw e;
      await sleep(wait);
    }
  }
}

async function callOnce<T>(router: ControlRouter, method: string, url: string, body?: unknown): Promise<T> {
  const m = router.match(method, url);
  if (!m) throw new ApiError(404, 'ENOTFOUND', `no control endpoint ${method} ${url}`);
  const res = new LocalResponse();
  const out = await m.handler(CALLER, m.params, request(method, url, body), res as unknown as ServerResponse);
  if (out !== undefined) return out as T;
  if (res.statusCode >= 300) throw answerError(res);
  return JSON.parse(res.body() || 'null') as T;
}

/**
 * Calls a control route that streams its answer (GET /v1/logs): every chunk goes to `sink`. Resolves
 * once the handler has started the answer (or throws before it did); `cancel()` ends the call as a
 * client that went away.
 */
export async function streamControl(
  router: ControlRouter,
  url: string,
  sink: (chunk: Buffer) => boolean,
  onEnd: () => void,
): Promise<{ res: LocalResponse; cancel: () => void }> {
  const m = router.match('GET', url);
  if (!m) throw new ApiError(404, 'ENOTFOUND', `no control endpoint GET ${url}`);
  const res = new LocalResponse(sink, onEnd);
  const req = request('GET', url, undefined);
  await m.handler(CALLER, m.params, req, res as unknown as ServerResponse);
  if (res.statusCode >= 300) throw answerError(res);
  return {
    res,
    cancel: () => {
      req.emit('close');
      res.destroy();
    },
  };
}
