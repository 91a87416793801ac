// The dashboard's HTTP server, on the admin's machine: static files (the page web/ compiled into
// dist/web), a small JSON + Server-Sent Events API for the page, and four actions. Every request passes
// auth.ts first (Host header, one-time token → cookie, CSRF on POST); nothing is served without it.
//
//   GET  /?token=T                   the printed URL: sets the session cookie, 303 to /
//   GET  /, /app.js, /style.css      the page (static, from dist/web)
//   GET  /api/session                {csrf, context}
//   GET  /api/stream                 SSE: `snapshot` (Snapshot), then `delta` (Delta) as the cluster changes
//   GET  /api/logs?service=ID|task=ID  SSE: `line` (LogLineOut), `warning`, `end` (GET /v1/logs, follow)
//   GET  /api/usage?service=ID|node=ID|all=1   SSE: `usage` (UsageSample) every 5 s (usage.ts)
//   POST /api/services/:id/scale     {replicas}                  → POST /v1/services/:id/scale
//   POST /api/services/:id/image     {image}                     → POST /v1/services/:id/update (version-checked)
//   POST /api/services/:id/rollback  {}                          → POST /v1/services/:id/rollback
//   POST /api/nodes/:id/availability {availability}             → POST /v1/nodes/:id/update
//
// Every answer carries a strict Content-Security-Policy (same-origin script, style and connections only,
// no frames) and no-referrer, so the page can neither load foreign code nor leak its URL.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { readFileSync } from 'node:fs';
import { extname, join, normalize, sep } from 'node:path';
import type { AvailabilityBody, ImageBody, LogLineOut, ScaleBody, SessionInfo } from '../../web/protocol.ts';
import { DashboardAuth, allowedHosts } from './auth.ts';
import type { NdjsonStream } from '../../client/ndjson.ts';
import type { StreamHandlers } from './source.ts';
import type { LiveSource } from './source.ts';
import type { UsageFeed } from './usage.ts';

/** What the actions need from the cluster, beyond the source's reads. */
export interface ActionApi {
  get<T>(path: string): Promise<T>;
  /** Rejects with an Error; `status` on it when the cluster answered with one (get too). */
  post<T>(path: string, body: unknown): Promise<T>;
  stream(path: string, h: StreamHandlers): NdjsonStream;
}

export interface DashboardOptions {
  host: string;
  port: number;
  /** Where index.html, app.js and style.css are (dist/web). */
  staticDir: string;
  source: LiveSource;
  usage: UsageFeed;
  api: ActionApi;
  /** Shown on the page (which cluster this is). */
  contextName: string;
  /** Addresses of this machine (a wildcard listen address accepts them in Host). */
  localAddrs?: string[];
  log?: (line: string) => void;
}

export interface Dashboard {
  server: Server;
  /** The URL to print: origin plus the one-time token. */
  url: string;
  origin: string;
  auth: DashboardAuth;
  close(): Promise<void>;
}

const SSE_KEEPALIVE_MS = 15_000;
const MAX_BODY = 16 * 1024;
/** Browsers showing live logs at once (the leader serves 32 logs streams in all: leave it most). */
const MAX_LOG_STREAMS = 8;
const MAX_IMAGE_REF = 512;
/** A log line joined from partial pieces is sent, marked cut, once it reaches this many characters. */
export const MAX_LOG_LINE = 64 * 1024;
export const LOG_CUT_MARK = ' [… line cut]';
/** A browser that has this much of /api/stream unread is dropped (its EventSource reconnects and resyncs). */
const MAX_SSE_BACKLOG = 8 << 20;

const SECURITY_HEADERS: Record<string, string> = {
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
  'cache-control': 'no-store',
};

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.png': 'image/png',
  '.svg': 'image/svg+xml',
  '.map': 'application/json',
};

/** A refused request: the status and a message for the page. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly field?: string,
  ) {
    super(message);
  }
}

/** decodeURIComponent, with a malformed %-escape a 400 (not a 500 with a stack). */
function decodePart(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    throw new HttpError(400, `malformed %-escape in ${JSON.stringify(s.slice(0, 100))}`);
  }
}

function send(res: ServerResponse, status: number, body: unknown, extra: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { ...SECURITY_HEADERS, 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(text)), ...extra });
  res.end(text);
}

function sendError(res: ServerResponse, e: HttpError): void {
  send(res, e.status, { error: { message: e.message, ...(e.field ? { field: e.field } : {}) } });
}

async function readBody(req: IncomingMessage): Promise<unknown> {
  const type = req.headers['content-type'] ?? '';
  if (!/^application\/json\b/.test(type)) throw new HttpError(415, 'the body must be application/json');
  let size = 0;
  const chunks: Buffer[] = [];
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size > MAX_BODY) throw new HttpError(413, `the body is over ${MAX_BODY} bytes`);
    chunks.push(c as Buffer);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  if (text === '') return {};
  try {
    return JSON.parse(text);
  } catch {
    throw new HttpError(400, 'the body is not valid JSON');
  }
}

const obj = (b: unknown): Record<string, unknown> =>
  typeof b === 'object' && b !== null && !Array.isArray(b)
    ? (b as Record<string, unknown>)
    : (() => {
        throw new HttpError(400, 'the body must be a JSON object');
      })();

export function parseScale(b: unknown): ScaleBody {
  const r = obj(b).replicas;
  if (typeof r !== 'number' || !Number.isSafeInteger(r) || r < 0)
    throw new HttpError(400, `replicas must be a non-negative integer (got ${JSON.stringify(r)})`, 'replicas');
  return { replicas: r };
}

export function parseImage(b: unknown): ImageBody {
  const i = obj(b).image;
  if (typeof i !== 'string' || i.trim() === '' || i.length > MAX_IMAGE_REF || /\s/.test(i))
    throw new HttpError(400, `image must be an image reference without spaces, 1..${MAX_IMAGE_REF} characters`, 'image');
  return { image: i };
}

export function parseAvailability(b: unknown): AvailabilityBody {
  const a = obj(b).availability;
  if (a !== 'active' && a !== 'pause' && a !== 'drain')
    throw new HttpError(400, `availability must be active, pause or drain (got ${JSON.stringify(a)})`, 'availability');
  return { availability: a };
}

/** A cluster's refusal keeps its status (a 409 stays a 409); an unreachable cluster is a 502. */
function clusterError(e: unknown): HttpError {
  if (e instanceof HttpError) return e;
  const status = (e as { status?: number }).status;
  return new HttpError(status !== undefined && status >= 400 && status < 500 ? status : 502, (e as Error).message);
}

function sse(res: ServerResponse): { send: (event: string, data: unknown) => boolean; closed: () => boolean } {
  res.writeHead(200, { ...SECURITY_HEADERS, 'content-type': 'text/event-stream; charset=utf-8', connection: 'keep-alive' });
  res.write(': shoal dashboard\n\n');
  const keep = setInterval(() => res.write(': keepalive\n\n'), SSE_KEEPALIVE_MS);
  let closed = false;
  res.once('close', () => {
    closed = true;
    clearInterval(keep);
  });
  return {
    send: (event, data) => (closed ? false : res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`)),
    closed: () => closed,
  };
}

export async function startDashboard(o: DashboardOptions): Promise<Dashboard> {
  const log = o.log ?? (() => {});
  let logStreams = 0;
  let auth: DashboardAuth | null = null;

  const serveStatic = (res: ServerResponse, path: string): void => {
    const rel = path === '/' ? 'index.html' : normalize(decodePart(path)).replace(/^[/\\]+/, '');
    const file = join(o.staticDir, rel);
    if (rel.startsWith('..') || !file.startsWith(o.staticDir + sep) || !TYPES[extname(file)]) throw new HttpError(404, `no such page: ${path.slice(0, 100)}`);
    let body: Buffer;
    try {
      body = readFileSync(file);
    } catch {
      throw new HttpError(404, `no such page: ${path.slice(0, 100)}`);
    }
    res.writeHead(200, { ...SECURITY_HEADERS, 'content-type': TYPES[extname(file)]!, 'content-length': String(body.length) });
    res.end(body);
  };

  const stream = async (res: ServerResponse): Promise<void> => {
    await o.source.ready;
    if (res.destroyed) return; // the browser left while the first resync ran: subscribing now would leak
    const out = sse(res);
    out.send('snapshot', o.source.snapshot());
    const off = o.source.subscribe((d) => {
      // The source cannot wait for one browser: one that stopped reading is dropped, and resyncs.
      if (!out.send('delta', d) && res.writableLength > MAX_SSE_BACKLOG) res.destroy();
    });
    res.once('close', off);
  };

  const logs = (res: ServerResponse, q: URLSearchParams): void => {
    const service = q.get('service');
    const task = q.get('task');
    if (!service === !task) throw new HttpError(400, 'logs needs service= or task=', 'service');
    if (logStreams >= MAX_LOG_STREAMS) throw new HttpError(503, `${MAX_LOG_STREAMS} log streams are open already; close a service page`);
    logStreams++;
    const out = sse(res);
    const open = new Map<string, LogLineOut>(); // partial lines being joined, by task
    const params = new URLSearchParams({ ...(service ? { service } : { task: task! }), follow: '1', tail: '200' });
    // A browser that reads slower than the cluster logs: stop reading the manager until it drains.
    let waiting = false;
    const put = (event: string, data: unknown) => {
      if (out.send(event, data) || waiting || out.closed()) return;
      waiting = true;
      up.pause();
      res.once('drain', () => {
        waiting = false;
        up.resume();
      });
    };
    const up: NdjsonStream = o.api.stream(`/v1/logs?${params}`, {
      onLine: (raw) => {
        const l = raw as { warning?: string; task?: string; node?: string; ts?: string; stream?: string; line?: string; partial?: boolean };
        if (typeof l.warning === 'string') return put('warning', { message: l.warning });
        if (typeof l.line !== 'string' || typeof l.task !== 'string') return;
        const prev = open.get(l.task);
        const line: LogLineOut = prev
          ? { ...prev, line: prev.line + l.line }
          : { task: l.task, node: String(l.node ?? ''), ts: String(l.ts ?? ''), stream: String(l.stream ?? ''), line: l.line };
        // A line that never ends (no newline in megabytes) is sent in MAX_LOG_LINE pieces, each marked cut.
        while (line.line.length >= MAX_LOG_LINE && (l.partial === true || line.line.length > MAX_LOG_LINE)) {
          put('line', { ...line, line: line.line.slice(0, MAX_LOG_LINE) + LOG_CUT_MARK });
          line.line = line.line.slice(MAX_LOG_LINE);
        }
        if (l.partial === true) open.set(l.task, line);
        else {
          open.delete(l.task);
          put('line', line);
        }
      },
      onEnd: (error) => {
        out.send('end', { message: error ?? 'the log stream ended' });
        res.end();
      },
    });
    res.once('close', () => {
      logStreams--;
      up.close();
    });
  };

  const usage = (res: ServerResponse, q: URLSearchParams): void => {
    const service = q.get('service');
    const node = q.get('node');
    const scope = service ? `service=${encodeURIComponent(service)}` : node ? `node=${encodeURIComponent(node)}` : q.get('all') === '1' ? 'all' : null;
    if (scope === null) throw new HttpError(400, 'usage needs service=, node= or all=1', 'service');
    const out = sse(res);
    const off = o.usage.subscribe(scope, (s) => out.send('usage', s));
    res.once('close', off);
  };

  const action = async (req: IncomingMessage, res: ServerResponse, path: string): Promise<void> => {
    const m = /^\/api\/(services|nodes)\/([^/]+)\/(scale|image|rollback|availability)$/.exec(path);
    if (!m) throw new HttpError(404, `no such action: ${path.slice(0, 100)}`);
    const [, kind, rawId, verb] = m as unknown as [string, string, string, string];
    const id = encodeURIComponent(decodePart(rawId));
    const body = await readBody(req);
    let result: unknown;
    try {
      if (kind === 'services' && verb === 'scale') {
        result = await o.api.post(`/v1/services/${id}/scale`, parseScale(body));
      } else if (kind === 'services' && verb === 'image') {
        const { image } = parseImage(body);
        // The whole spec goes back with only the image changed, and the version read: a concurrent change
        // makes this a 409 (the page says so) instead of undoing someone else's update.
        const s = await o.api.get<{ version: number; spec: { task: Record<string, unknown> } }>(`/v1/services/${id}`);
        result = await o.api.post(`/v1/services/${id}/update`, { spec: { ...s.spec, task: { ...s.spec.task, image } }, version: s.version });
      } else if (kind === 'services' && verb === 'rollback') {
        result = await o.api.post(`/v1/services/${id}/rollback`, {});
      } else if (kind === 'nodes' && verb === 'availability') {
        result = await o.api.post(`/v1/nodes/${id}/update`, parseAvailability(body));
      } else throw new HttpError(404, `no such action: ${path.slice(0, 100)}`);
    } catch (e) {
      throw clusterError(e);
    }
    log(`dashboard: ${verb} ${kind} ${decodePart(rawId)}`);
    send(res, 200, { ok: true, result });
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const a = auth!.check({ method: req.method ?? 'GET', url: req.url ?? '/', headers: req.headers });
    if (a.ok === 'exchange') {
      res.writeHead(303, { ...SECURITY_HEADERS, 'set-cookie': a.cookie, location: '/' });
      return void res.end();
    }
    if (a.ok === false) {
      const text = `${a.reason}\n`;
      res.writeHead(a.status, { ...SECURITY_HEADERS, 'content-type': 'text/plain; charset=utf-8', 'content-length': String(Buffer.byteLength(text)) });
      return void res.end(text);
    }
    const url = new URL(req.url ?? '/', 'http://dashboard.invalid');
    const path = url.pathname;
    if (req.method === 'POST') return action(req, res, path);
    if (req.method !== 'GET' && req.method !== 'HEAD') throw new HttpError(405, `${req.method} is not allowed here`);
    if (path === '/api/session') return send(res, 200, { csrf: auth!.csrfOf(a.session)!, context: o.contextName } satisfies SessionInfo);
    if (path === '/api/stream') return stream(res);
    if (path === '/api/logs') return logs(res, url.searchParams);
    if (path === '/api/usage') return usage(res, url.searchParams);
    if (path.startsWith('/api/')) throw new HttpError(404, `no such API route: ${path.slice(0, 100)}`);
    serveStatic(res, path);
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((e: unknown) => {
      const err = e instanceof HttpError ? e : new HttpError(500, (e as Error).message);
      if (err.status === 500) log(`dashboard: ${req.method} ${req.url}: ${(e as Error).stack ?? err.message}`);
      if (res.headersSent) res.end();
      else sendError(res, err);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port, o.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : o.port;
  const hosts = allowedHosts(o.host, port, o.localAddrs ?? []);
  const origins = new Set([...hosts].map((h) => `http://${h}`));
  auth = new DashboardAuth(hosts, origins);
  const shown = o.host === '0.0.0.0' || o.host === '::' ? '127.0.0.1' : o.host.includes(':') ? `[${o.host}]` : o.host;
  const origin = `http://${shown}:${port}`;
  return {
    server,
    url: `${origin}/?token=${auth.token}`,
    origin,
    auth,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
