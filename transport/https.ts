// HTTPS to Shoal managers with the cluster's credentials (CLI, daemons, tests). Kept apart from the
// daemon so the CLI can talk to a cluster without loading the whole manager and engine.
import { request as httpsRequest, type RequestOptions } from 'node:https';
import type { TLSSocket } from 'node:tls';
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
  return { status: out.status, body: parsePeerJson(out.text), managers: out.managers };
}

/** A peer's answer as JSON; text that is not JSON becomes an error body carrying it. */
export function parsePeerJson(text: string): PeerJson {
  try {
    return text ? JSON.parse(text) : null;
  } catch {
    return { error: { message: text } };
  }
}

/**
 * TLS session resumption for one call (the CLI's session cache, client/context.ts): with a ticket the
 * CA list is emptied, so only a resumed handshake can succeed (and Node parses no root store); a
 * manager that does not resume then fails the handshake with ResumeFailed, and the caller retries with
 * a full one. `onSession` receives the session of a verified connection that answered.
 */
export interface Resumption {
  ticket?: Buffer;
  onSession?: (session: Buffer) => void;
}

/** The handshake of a resumption attempt failed: retry the call with a full handshake. */
export class ResumeFailed extends Error {}

export function httpsRaw(
  remote: string,
  method: string,
  path: string,
  body: unknown,
  tls: ManagerTls,
  timeoutMs = 10_000,
  resume?: Resumption,
): Promise<{ status: number; text: string; managers: string[] | null }> {
  const data = body === undefined ? undefined : JSON.stringify(body);
  const ticket = resume?.ticket;
  return new Promise((resolve, reject) => {
    let socket: TLSSocket | undefined;
    let connected = false; // TCP is up: a failure from here on is the handshake's (or later)
    let secured = false;
    let timedOut = false;
    let session: Buffer | null = null;
    const req = httpsRequest(
      {
        ...managerRequest(remote, tls),
        ...(ticket ? { ca: [], session: ticket } : {}),
        ...(resume ? { agent: false } : {}),
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
        res.on('end', () => {
          if (session && socket?.authorized) resume?.onSession?.(session);
          resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8'), managers });
        });
        res.on('error', reject);
      },
    );
    if (resume) {
      req.on('socket', (s) => {
        socket = s as TLSSocket;
        socket.once('connect', () => {
          connected = true;
        });
        socket.once('secureConnect', () => {
          secured = true;
        });
        socket.on('session', (sess: Buffer) => {
          session = sess;
        });
      });
    }
    req.on('timeout', () => {
      timedOut = true;
      req.destroy(new Error(`${remote}: no answer within ${timeoutMs} ms`));
    });
    req.on('error', (e: NodeJS.ErrnoException) => {
      // The manager did not resume (it then sends its certificate, which the empty CA list refuses).
      // A refused connection or a timeout is not a resumption failure.
      if (ticket && connected && !secured && !timedOut) {
        reject(new ResumeFailed(e.message));
        return;
      }
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
