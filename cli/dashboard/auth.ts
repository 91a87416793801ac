// Who may use a `shoal dashboard`: whoever opened the URL it printed, once. The dashboard acts with the
// admin's certificate, so anything that reaches it is an admin; the checks, all in this file:
//
//   1. Host header: must name the listen address (or, on loopback, localhost). A DNS-rebinding page
//      (evil.example resolving to 127.0.0.1) sends Host: evil.example and is refused before anything else.
//   2. One-time token: 32 random bytes in the printed URL. The first request carrying it gets a session
//      cookie (HttpOnly: no script reads it; SameSite=Strict: no other site's page sends it) and the
//      token is spent, so a URL copied from a shell history or a screen share later opens nothing.
//   3. Session cookie: every other request needs it (static files too), else 401.
//   4. CSRF: a POST also needs the session's CSRF token in the x-shoal-csrf header (the page reads it
//      from /api/session, which another origin cannot read) and, if the browser sends Origin, the
//      dashboard's own origin. SameSite=Strict already stops cross-site POSTs in current browsers; this
//      is the second lock for older ones and for same-site attackers (another port on localhost).
//
// Tokens are compared in constant time. Nothing here does I/O: the server (server.ts) feeds it headers.
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { isIP } from 'node:net';
import { SESSION_COOKIE } from '../../web/protocol.ts';

const token = (): string => randomBytes(32).toString('base64url');

function sameSecret(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** `a=1; b=2` → {a: '1', b: '2'} (first value of a name wins, as browsers send the most specific first). */
export function parseCookies(header: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of (header ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq <= 0) continue;
    const k = part.slice(0, eq).trim();
    if (!(k in out)) out[k] = part.slice(eq + 1).trim();
  }
  return out;
}

/**
 * The Host header values a request may carry for a server listening on `host:port`: that address, and
 * for loopback also `localhost` (and the other loopback spelling). A wildcard listen address (0.0.0.0,
 * ::) accepts the addresses given in `localAddrs` (the machine's interfaces).
 */
export function allowedHosts(host: string, port: number, localAddrs: string[] = []): Set<string> {
  const fmt = (h: string) => (isIP(h) === 6 ? `[${h}]:${port}` : `${h}:${port}`);
  const names = new Set<string>();
  const wildcard = host === '0.0.0.0' || host === '::';
  const hosts = wildcard ? [...localAddrs, '127.0.0.1', '::1', 'localhost'] : [host];
  if (host === '127.0.0.1' || host === '::1' || host === 'localhost') hosts.push('127.0.0.1', '::1', 'localhost');
  for (const h of hosts) names.add(fmt(h).toLowerCase());
  return names;
}

export type AuthResult = { ok: true; session: string } | { ok: false; status: 400 | 401 | 403 | 421; reason: string } | { ok: 'exchange'; cookie: string };

export interface AuthRequest {
  method: string;
  /** Path and query, as in the request line. */
  url: string;
  headers: Record<string, string | string[] | undefined>;
}

const header = (h: AuthRequest['headers'], name: string): string | undefined => {
  const v = h[name];
  return Array.isArray(v) ? v[0] : v;
};

export class DashboardAuth {
  /** The one-time login token (null once spent). */
  private loginToken: string | null = token();
  /** The one session: the token is spent on its first exchange, so no second browser can get another. */
  private session: { id: string; csrf: string } | null = null;

  constructor(
    private readonly hosts: Set<string>,
    /** The dashboard's own origin, e.g. http://127.0.0.1:7373 (Origin headers must match it). */
    private readonly origins: Set<string>,
  ) {}

  /** The token for the printed URL. */
  get token(): string | null {
    return this.loginToken;
  }

  csrfOf(session: string): string | undefined {
    return this.session && sameSecret(session, this.session.id) ? this.session.csrf : undefined;
  }

  /**
   * Decides a request: refused (with the status and why), a token exchange (set this cookie and redirect
   * to the page), or allowed for a session.
   */
  check(req: AuthRequest): AuthResult {
    const host = (header(req.headers, 'host') ?? '').toLowerCase();
    if (!this.hosts.has(host)) return { ok: false, status: 421, reason: `Host ${JSON.stringify(host.slice(0, 100))} is not this dashboard's address` };
    const url = new URL(req.url, 'http://dashboard.invalid');
    const offered = url.searchParams.get('token');
    if (offered !== null && url.pathname === '/') {
      if (req.method !== 'GET') return { ok: false, status: 400, reason: 'the token is exchanged with a GET' };
      if (this.loginToken === null || !sameSecret(offered, this.loginToken)) {
        return { ok: false, status: 401, reason: 'this dashboard URL was already used or is wrong: start `shoal dashboard` again for a new one' };
      }
      this.loginToken = null;
      this.session = { id: token(), csrf: token() };
      return { ok: 'exchange', cookie: `${SESSION_COOKIE}=${this.session.id}; HttpOnly; SameSite=Strict; Path=/` };
    }
    const session = parseCookies(header(req.headers, 'cookie'))[SESSION_COOKIE];
    const csrf = session !== undefined ? this.csrfOf(session) : undefined;
    if (session === undefined || csrf === undefined) return { ok: false, status: 401, reason: 'no dashboard session: open the URL `shoal dashboard` printed' };
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      const origin = header(req.headers, 'origin');
      if (origin !== undefined && !this.origins.has(origin.toLowerCase()))
        return { ok: false, status: 403, reason: `Origin ${origin.slice(0, 100)} is not this dashboard` };
      const sent = header(req.headers, 'x-shoal-csrf');
      if (sent === undefined || !sameSecret(sent, csrf)) return { ok: false, status: 403, reason: 'missing or wrong x-shoal-csrf header' };
    }
    return { ok: true, session };
  }
}
