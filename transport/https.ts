// HTTPS to Shoal managers with the cluster's credentials (CLI, daemons, tests). Kept apart from the
// daemon so the CLI can talk to a cluster without loading the whole manager and engine.
import { request as httpsRequest, type RequestOptions } from 'node:https';
import { ApiError } from '../api/errors.ts';

export function splitHostPort(hp: string): [string, number] {
  const i = hp.lastIndexOf(':');
  return [hp.slice(0, i), Number(hp.slice(i + 1))];
}

export interface ManagerTls {
  ca?: string;
  key?: string;
  cert?: string;
  /** Accept any certificate (only to fetch the CA, which the join token then pins). */
  insecure?: boolean;
}

/**
 * Request options for talking to a manager at `host:port` with the cluster's credentials: any manager
 * certified by the pinned CA may answer, so the role in its certificate is checked, not a host name.
 */
export function managerRequest(remote: string, tls: ManagerTls): RequestOptions {
  const [host, port] = splitHostPort(remote);
  return {
    host,
    port,
    ...(tls.ca ? { ca: tls.ca } : {}),
    ...(tls.key ? { key: tls.key, cert: tls.cert } : {}),
    rejectUnauthorized: !tls.insecure,
    checkServerIdentity: (_h, cert) => (tls.insecure || String(cert.subject?.OU) === 'manager' ? undefined : new Error('the server is not a Shoal manager')),
  };
}

/** Whatever JSON a peer answered: callers check the status and read the fields they know. */
// biome-ignore lint/suspicious/noExplicitAny: untyped on purpose; typed callers use httpsRaw and their own response types.
type PeerJson = any;

export async function httpsJson(
  remote: string,
  method: string,
  path: string,
  body: unknown,
  tls: ManagerTls,
): Promise<{ status: number; body: PeerJson; managers: string[] | null }> {
  const out = await httpsRaw(remote, method, path, body, tls);
  let parsed: unknown = null;
  try {
    parsed = out.text ? JSON.parse(out.text) : null;
  } catch {
    parsed = { error: { message: out.text } };
  }
  return { status: out.status, body: parsed, managers: out.managers };
}

export function httpsRaw(
  remote: string,
  method: string,
  path: string,
  body: unknown,
  tls: ManagerTls,
  timeoutMs = 10_000,
): Promise<{ status: number; text: string; managers: string[] | null }> {
  const data = body === undefined ? undefined : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      {
        ...managerRequest(remote, tls),
        method,
        path,
        headers: data ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) } : {},
        timeout: timeoutMs,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        const mh = res.headers['x-shoal-managers'];
        const managers = typeof mh === 'string' && mh !== '' ? mh.split(',') : null;
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8'), managers }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${remote}: no answer within ${timeoutMs} ms`)));
    req.on('error', (e: NodeJS.ErrnoException) => {
      const why =
        e.code === 'ECONNREFUSED'
          ? `connection refused by ${remote} (is a Shoal manager running there?)`
          : e.code === 'EHOSTUNREACH' || e.code === 'ENETUNREACH'
            ? `${remote} is unreachable`
            : e.message;
      reject(new ApiError(503, e.code ?? 'ECONN', why));
    });
    if (data) req.write(data);
    req.end();
  });
}
