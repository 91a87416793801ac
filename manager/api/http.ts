// Small HTTP plumbing shared by the manager's secure port and the daemon's local socket: typed API
// errors with a status and a code, bounded JSON bodies, and a tiny router. No framework: every route is
// visible here and in the files that register them.
import type { IncomingMessage, ServerResponse } from 'node:http';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

export const badRequest = (message: string, details?: Record<string, unknown>) => new ApiError(400, 'EINVAL', message, details);
export const forbidden = (message: string) => new ApiError(403, 'EFORBIDDEN', message);
export const unauthorized = (message: string) => new ApiError(401, 'EUNAUTHENTICATED', message);
export const notFound = (message: string) => new ApiError(404, 'ENOTFOUND', message);
export const conflict = (message: string) => new ApiError(409, 'ECONFLICT', message);

const MAX_BODY = 4 << 20;

export async function readJson(req: IncomingMessage, limit = MAX_BODY): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    const b = chunk as Buffer;
    size += b.length;
    if (size > limit) throw new ApiError(413, 'ETOOLARGE', `request body larger than ${limit} bytes`);
    chunks.push(b);
  }
  if (size === 0) return {};
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
  } catch {
    throw badRequest('request body is not valid JSON');
  }
}

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const data = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) });
  res.end(data);
}

export function sendError(res: ServerResponse, err: unknown): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  if (err instanceof ApiError) {
    sendJson(res, err.status, { error: { code: err.code, message: err.message, ...(err.details ?? {}) } });
    return;
  }
  const e = err as { code?: string; message?: string; name?: string };
  const message = e?.message ?? String(err);
  // Errors from lower layers that carry a code (NotLeaderError, ConflictError, …) keep it.
  const status = e?.name === 'ConflictError' ? 409 : e?.name === 'ValidationError' ? 400 : 500;
  sendJson(res, status, { error: { code: e?.code ?? (status === 500 ? 'EINTERNAL' : 'EINVAL'), message } });
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

  match(method: string, url: string): { handler: Handler<C>; params: Record<string, string> } | null {
    const path = url.split('?')[0] ?? '';
    const parts = path.split('/').filter(Boolean).map((p) => decodeURIComponent(p));
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
      return { handler: r.handler, params };
    }
    if (methodMismatch) throw new ApiError(405, 'EMETHOD', `${method} is not allowed on ${path}`);
    return null;
  }

  async dispatch(ctx: C, req: IncomingMessage, res: ServerResponse): Promise<boolean> {
    const m = this.match(req.method ?? 'GET', req.url ?? '/');
    if (!m) return false;
    const out = await m.handler(ctx, m.params, req, res);
    if (out !== undefined && !res.headersSent) sendJson(res, 200, out);
    return true;
  }
}

export function queryParam(req: IncomingMessage, name: string): string | null {
  const url = new URL(req.url ?? '/', 'http://x');
  return url.searchParams.get(name);
}
