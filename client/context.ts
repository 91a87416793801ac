// What every `shoal` command shares: the error a user's mistake becomes (CliError: one line, exit 1),
// the cluster context file that `cluster init` writes (managers + admin certificate), and the two ways
// to reach Shoal: control() for the managers' control API over mutual TLS, localCall() for the local
// daemon's unix socket. No command logic lives here, and nothing here imports a command module.
import { chmodSync, mkdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';

/** A user-facing failure: printed as `shoal: <message>` with exit code 1, never with a stack. */
export class CliError extends Error {
  override name = 'CliError';
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
    const { createCsr, generateKeyPem } = await import('../manager/ca/pki.ts');
    const key = await generateKeyPem();
    const out = await control<{ certPem: string; caCertPem: string; notAfter: string }>(ctx, 'POST', '/v1/ca/admins/renew', {
      csr: createCsr({ keyPem: key, nodeId: 'admin' }),
    });
    ctx.admin = { key, cert: out.certPem, ca: out.caCertPem };
    saveContext(ctx.path, ctx);
    process.stderr.write(`shoal: renewed the admin certificate in ${ctx.path} (valid until ${out.notAfter})\n`);
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
      // Imported here: node:https (TLS, crypto) costs a cold start tens of ms, and --help, completion
      // or a local-socket command never needs it.
      const { httpsJson } = await import('../transport/https.ts');
      out = await httpsJson(m, method, path, body, { ca: ctx.admin.ca, key: ctx.admin.key, cert: ctx.admin.cert });
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
    if (out.status >= 400) throw new CliError(err?.message ?? `HTTP ${out.status}`);
    return out.body;
  }
  if (retryable) throw new RetryableError(retryable);
  throw new CliError(`no manager reachable (${[...tried].join(', ')}): ${lastErr ?? 'no managers in context'}`);
}

/** Calls the local daemon's API on its unix socket (state-dir/shoal.sock). */
export function localCall<T = unknown>(stateDir: string, method: string, path: string, body?: unknown, timeoutMs = 60_000): Promise<T> {
  const socketPath = join(stateDir, 'shoal.sock');
  const data = body === undefined ? undefined : JSON.stringify(body);
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
