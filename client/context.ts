// What every `shoal` command shares: the error a user's mistake becomes (CliError: one line, exit 1),
// the cluster context file that `cluster init` writes (managers + admin certificate), and the two ways
// to reach Shoal: control() for the managers' control API over mutual TLS, localCall() for the local
// daemon's unix socket. No command logic lives here, and nothing here imports a command module.
import { chmodSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';

/**
 * A user-facing failure: printed as `shoal: <message>` with exit code 1, never with a stack. When a
 * Shoal API refused the request, `status` and `code` are its HTTP status and error code (a caller such
 * as the dashboard maps them); a failure with no answer (no manager reachable) has neither.
 */
export class CliError extends Error {
  override name = 'CliError';
  constructor(
    message: string,
    readonly status?: number,
    readonly code?: string,
  ) {
    super(message);
  }
}

export interface Context {
  /** Where this context was loaded from (not stored). */
  path?: string;
  clusterId: string;
  managers: string[];
  admin: { key: string; cert: string; ca: string };
}

export const DEFAULT_STATE_DIR = '/var/lib/shoal';

/** The context file: --context, else $SHOAL_CONTEXT, else ~/.shoal/context.json. */
export function contextPath(flag?: string): string {
  return flag ?? process.env.SHOAL_CONTEXT ?? join(homedir(), '.shoal', 'context.json');
}

export function loadContext(path: string): Context {
  if (!existsSync(path)) throw new CliError(`no cluster context at ${path}: run \`shoal cluster init\` (or set SHOAL_CONTEXT / --context)`);
  let parsed: Context;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8')) as Context;
  } catch (e) {
    throw new CliError(`cluster context ${path} is not valid JSON (${(e as Error).message})`);
  }
  return { ...parsed, path };
}

export function saveContext(path: string, ctx: Context): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const { path: _p, ...rest } = ctx;
  writeFileSync(path, JSON.stringify(rest, null, 2), { mode: 0o600 });
  chmodSync(path, 0o600); // `mode` applies only when the file is created; it holds the admin key
}

/** The error body every Shoal API answers with (manager/api/http.ts). */
interface ApiErrorBody {
  error?: { code?: string; message?: string; leader?: string };
}

const errorOf = (body: unknown): ApiErrorBody['error'] | undefined => (body !== null && typeof body === 'object' ? (body as ApiErrorBody).error : undefined);

/**
 * Calls the control API on some manager, following leader redirects and skipping dead managers. The
 * context's manager list is refreshed from every answer so the CLI fails over like the agents do. The
 * caller names the response type it expects (the API's JSON, unchecked: the managers are trusted).
 */
export async function control<T = unknown>(ctx: Context, method: string, path: string, body?: unknown, explicit?: string): Promise<T> {
  await renewAdminIfDue(ctx);
  // During a leader election managers answer "no leader yet": wait a little and ask again.
  const deadline = Date.now() + 5000;
  for (;;) {
    try {
      return (await controlOnce(ctx, method, path, body, explicit)) as T;
    } catch (e) {
      if (!(e instanceof RetryableError) || Date.now() > deadline) throw e instanceof RetryableError ? new CliError(e.message) : e;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

class RetryableError extends Error {}

/** Contexts whose admin certificate this process has already checked (or is renewing). */
const adminChecked = new Set<Context>();

/**
 * Renews the context's admin certificate now (POST /v1/ca/admins/renew: a fresh key made here, only its
 * CSR travels) and rewrites the context file (0600) when it has one.
 */
export async function renewAdmin(ctx: Context): Promise<{ notAfter: string }> {
  const { createCsr, generateKeyPem } = await import('../manager/ca/pki.ts');
  const key = await generateKeyPem();
  const out = await control<{ certPem: string; caCertPem: string; notAfter: string }>(ctx, 'POST', '/v1/ca/admins/renew', {
    csr: createCsr({ keyPem: key, nodeId: 'admin' }),
  });
  ctx.admin = { key, cert: out.certPem, ca: out.caCertPem };
  if (ctx.path) saveContext(ctx.path, ctx);
  return { notAfter: out.notAfter };
}

/**
 * Renews the context's admin certificate through the control API once it is past 2/3 of its life
 * (POST /v1/ca/admins/renew: a fresh key made here, only its CSR travels), then rewrites the context
 * file (0600). A failed renewal is a warning: the old certificate still works until it expires.
 */
export async function renewAdminIfDue(ctx: Context, now = Date.now()): Promise<void> {
  if (adminChecked.has(ctx) || !ctx.path || !ctx.admin?.cert) return;
  adminChecked.add(ctx);
  const { X509Certificate } = await import('node:crypto');
  let from: number;
  let to: number;
  try {
    const x = new X509Certificate(ctx.admin.cert);
    from = Date.parse(x.validFrom);
    to = Date.parse(x.validTo);
  } catch {
    return; // an unreadable certificate fails the request itself, with the TLS error
  }
  if (!(to > from) || now < from + ((to - from) * 2) / 3 || now >= to) return;
  try {
    const { notAfter } = await renewAdmin(ctx);
    process.stderr.write(`shoal: renewed the admin certificate in ${ctx.path} (valid until ${notAfter})\n`);
  } catch (e) {
    process.stderr.write(`shoal: warning: could not renew the admin certificate (${(e as Error).message}); it expires ${new Date(to).toISOString()}\n`);
  }
}

/**
 * One pass over the managers. A manager that redirects to the leader is followed; one that says "no
 * leader yet" or "no quorum", or redirects to a leader that does not answer (it just died; an election
 * is under way), makes the pass retryable, but the other managers are still asked first — a manager cut
 * off from the majority must not hide a majority that has a leader.
 */
async function controlOnce(ctx: Context, method: string, path: string, body?: unknown, explicit?: string): Promise<unknown> {
  const queue = explicit ? [explicit] : [...ctx.managers];
  const tried = new Set<string>();
  let lastErr: string | null = null;
  let retryable: string | null = null;
  const redirectedTo = new Set<string>();
  while (queue.length > 0) {
    const m = queue.shift()!;
    if (tried.has(m)) continue;
    tried.add(m);
    let out: { status: number; body: unknown; managers: string[] | null };
    try {
      out = await managerCall(ctx, m, method, path, body);
    } catch (e) {
      lastErr = (e as Error).message;
      if (redirectedTo.has(m)) retryable = `the leader ${m} does not answer (${lastErr}); a new one is being elected`;
      continue;
    }
    const err = errorOf(out.body);
    if (out.status === 421 && err?.leader) {
      const leader = String(err.leader);
      if (tried.has(leader)) retryable ??= `the managers still name ${leader} as leader; a new one is being elected`;
      else {
        redirectedTo.add(leader);
        queue.unshift(leader);
      }
      continue;
    }
    if (out.managers && out.managers.join(',') !== ctx.managers.join(',') && ctx.path) {
      ctx.managers = [...new Set([...out.managers, ...ctx.managers])];
      saveContext(ctx.path, ctx);
    }
    const code = err?.code;
    if (out.status === 503 && (code === 'ENOLEADER' || code === 'ERETRY' || code === 'ENOQUORUM')) {
      retryable = err?.message ?? code;
      continue;
    }
    if (out.status >= 400) throw new CliError(err?.message ?? `HTTP ${out.status}`, out.status, code);
    return out.body;
  }
  if (retryable) throw new RetryableError(retryable);
  throw new CliError(`no manager reachable (${[...tried].join(', ')}): ${lastErr ?? 'no managers in context'}`);
}

// ------------------------------------------------------------------------------ TLS session cache
//
// Every `shoal` command is a new process, so every control call used to be a full mutual-TLS handshake,
// and the first TLS context a Node 20 process builds with a `ca` option also parses Node's ~140 bundled
// root certificates (OpenSSL's SecureContext::SetCACert compares the context's store with the lazily
// built root store, building it): 25 ms on a quiet machine, over 100 ms on a busy one — more than the
// rest of `shoal node ls` together. The CLI therefore keeps the TLS sessions the managers hand out
// (TLS 1.3 tickets, valid 2 h: OpenSSL's default) in a file beside the context, 0600 like the context
// (a ticket resumes an admin session). A resumed handshake checks no certificate — the session carries
// the result of the full, verified handshake that created it — so it runs with an empty CA list and the
// root store is never built; it also skips the RSA signatures of a full handshake. When a manager does
// not resume (ticket expired, daemon restarted, certificate renewed), the handshake against the empty
// CA list fails before anything is sent, and the call is made again with the context's CA, exactly as
// before. Sessions are bound to the context's CA and admin certificate: a changed one ignores them all.

/** Cache file format version; a file with another version is ignored. */
const SESSION_CACHE_VERSION = 1;
/** Tickets older than this are not offered (managers issue them for 7200 s, OpenSSL's default). */
export const SESSION_MAX_AGE_MS = 7_000_000;

interface SessionCache {
  v: number;
  /** sha256 of the CA and admin certificate the sessions were made with. */
  id: string;
  /** Manager address → when the ticket was received (ms) and the ticket (base64 of Node's session). */
  sessions: Record<string, { at: number; ticket: string }>;
}

/** Where the sessions of the context at `ctxPath` are kept. */
export const sessionCachePath = (ctxPath: string): string => `${ctxPath}.tls-sessions`;

/** Per context (by path): the cache as read from disk, and whether this process changed it. */
const caches = new Map<string, { cache: SessionCache; dirty: boolean }>();

/** The sessions of one context: the cache file as read, keyed by the credentials it was made with. */
interface Sessions {
  /** A ticket for `addr` young enough to offer, or undefined. */
  ticket(addr: string, now?: number): Buffer | undefined;
  /** Keeps `ticket` for `addr` (null forgets it); written when the process exits. */
  save(addr: string, ticket: Buffer | null): void;
}

const NO_SESSIONS: Sessions = { ticket: () => undefined, save: () => {} };

/**
 * The session cache of `ctx`: empty when the file is missing, unreadable, malformed or made with other
 * credentials (sha256 of the CA and admin certificate). `createHash` comes from the caller, which has
 * just loaded node:crypto for TLS anyway (a static import would cost every command, --help included).
 */
function sessionsOf(ctx: Context, createHash: typeof import('node:crypto').createHash): Sessions {
  const ctxPath = ctx.path;
  if (!ctxPath || process.env.SHOAL_TLS_SESSIONS === '0') return NO_SESSIONS;
  const id = createHash('sha256')
    .update(ctx.admin.ca ?? '')
    .update('\0')
    .update(ctx.admin.cert ?? '')
    .digest('hex')
    .slice(0, 32);
  let entry = caches.get(ctxPath);
  if (!entry || entry.cache.id !== id) {
    const cache: SessionCache = { v: SESSION_CACHE_VERSION, id, sessions: {} };
    try {
      const parsed = JSON.parse(readFileSync(sessionCachePath(ctxPath), 'utf8')) as Partial<SessionCache>;
      if (parsed?.v === SESSION_CACHE_VERSION && parsed.id === id && parsed.sessions !== null && typeof parsed.sessions === 'object') {
        for (const [addr, s] of Object.entries(parsed.sessions)) {
          if (typeof s?.at === 'number' && typeof s.ticket === 'string' && s.ticket.length > 0) cache.sessions[addr] = { at: s.at, ticket: s.ticket };
        }
      }
    } catch {
      // No cache yet, or a bad one: full handshakes, and the next good session replaces the file.
    }
    entry = { cache, dirty: false };
    caches.set(ctxPath, entry);
  }
  const e = entry;
  return {
    ticket(addr, now = Date.now()) {
      const s = e.cache.sessions[addr];
      if (!s || now - s.at > SESSION_MAX_AGE_MS || now < s.at) return undefined;
      return Buffer.from(s.ticket, 'base64');
    },
    save(addr, ticket) {
      if (ticket) e.cache.sessions[addr] = { at: Date.now(), ticket: ticket.toString('base64') };
      else if (e.cache.sessions[addr]) delete e.cache.sessions[addr];
      else return;
      e.dirty = true;
      if (!flushOnExit) {
        flushOnExit = true;
        process.on('exit', flushSessionCaches);
      }
    },
  };
}

/** Writes every changed cache (0600, atomically); runs once, when the process exits. */
function flushSessionCaches(): void {
  for (const [path, e] of caches) {
    if (!e.dirty) continue;
    const file = sessionCachePath(path);
    const tmp = `${file}.${process.pid}.tmp`;
    try {
      writeFileSync(tmp, JSON.stringify(e.cache), { mode: 0o600 });
      chmodSync(tmp, 0o600);
      renameSync(tmp, file);
      e.dirty = false;
    } catch {
      rmSync(tmp, { force: true }); // a read-only directory only costs the next command a full handshake
    }
  }
}
let flushOnExit = false;

/**
 * One HTTPS call to manager `addr` with the context's admin credentials: resumed from a cached session
 * when there is one (no CA list, so no root store; see above), else a full handshake against the
 * context's CA. The request itself is transport/https.ts httpsRaw, as for every other caller.
 */
async function managerCall(
  ctx: Context,
  addr: string,
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; body: unknown; managers: string[] | null }> {
  // Imported here: node:https (TLS, crypto) costs a cold start milliseconds, and --help, completion
  // or a local-socket command never needs it.
  const [{ httpsRaw, parsePeerJson, ResumeFailed }, { createHash }] = await Promise.all([import('../transport/https.ts'), import('node:crypto')]);
  const sessions = sessionsOf(ctx, createHash);
  const tls = { ca: ctx.admin.ca, key: ctx.admin.key, cert: ctx.admin.cert };
  const call = async (ticket: Buffer | undefined) => {
    const out = await httpsRaw(addr, method, path, body, tls, 10_000, { ...(ticket ? { ticket } : {}), onSession: (s) => sessions.save(addr, s) });
    return { status: out.status, body: parsePeerJson(out.text) as unknown, managers: out.managers };
  };
  const ticket = sessions.ticket(addr);
  if (ticket) {
    try {
      return await call(ticket);
    } catch (e) {
      if (!(e instanceof ResumeFailed)) throw e;
      sessions.save(addr, null);
    }
  }
  return call(undefined);
}

/** Calls the local daemon's API on its unix socket (state-dir/shoal.sock). */
export async function localCall<T = unknown>(stateDir: string, method: string, path: string, body?: unknown, timeoutMs = 60_000): Promise<T> {
  const socketPath = join(stateDir, 'shoal.sock');
  const data = body === undefined ? undefined : JSON.stringify(body);
  const { request: httpRequest } = await import('node:http'); // only the local-socket commands need it
  return new Promise((resolvePromise, reject) => {
    const req = httpRequest(
      { socketPath, method, path, timeout: timeoutMs, headers: data ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) } : {} },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let parsed: unknown = null;
          try {
            parsed = JSON.parse(text);
          } catch {
            parsed = { error: { message: text } };
          }
          if ((res.statusCode ?? 500) >= 400) reject(new CliError(errorOf(parsed)?.message ?? `HTTP ${res.statusCode}`));
          else resolvePromise(parsed as T);
        });
      },
    );
    req.on('timeout', () => req.destroy(new CliError(`the local daemon did not answer within ${timeoutMs} ms`)));
    req.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT' || e.code === 'ECONNREFUSED')
        reject(new CliError(`no Shoal daemon is running for ${stateDir} (start one with \`shoal daemon --state-dir ${stateDir}\`)`));
      else reject(e instanceof CliError ? e : new CliError(e.message));
    });
    if (data) req.write(data);
    req.end();
  });
}

/** '500ms', '1s', '5m', '2h', '90d' → milliseconds. */
export function parseDuration(s: string, what: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/.exec(s.trim());
  if (!m) throw new CliError(`${what}: invalid duration ${JSON.stringify(s)} (use e.g. 500ms, 10s, 5m, 2h, 90d)`);
  const mult = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as 'ms'];
  return Math.round(Number(m[1]) * mult);
}
