// Any manager answers. Docker clients hold one address and never follow Shoal's 421 redirect, so a
// follower passes writes, logs and event streams to the leader itself: the original request, as it
// came (method, path, headers, body streamed), to the leader's Docker API port over mutual TLS with
// this manager's own node certificate, marked with FORWARD_HEADER. The leader accepts a manager
// certificate only on such requests (server.ts authorize), and never forwards them again.
//
// Why the Docker port and not the control API: the control API wants an admin certificate, which
// managers do not hold; a manager certificate already carries the right to propose to the Raft log,
// so accepting it for forwarded requests grants nothing new, and the leader then runs exactly the
// code path a direct request would. Reads stay local: the control API makes them linearizable
// (ReadIndex), so a follower answers them without the leader's help.
//
// While there is no leader (it just died), a forwarded request waits for one (bounded), so a write
// sent right after the leader is killed succeeds once a new leader exists instead of failing at once.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { setTimeout as sleep } from 'node:timers/promises';
import { ApiError, BODY_LIMITS, tooLarge } from '../api/http.ts';
import type { DockerDeps } from './deps.ts';

export const FORWARD_HEADER = 'x-shoal-forwarded-by';

export interface ForwardTls {
  key: string;
  cert: string;
  ca: string;
}

/** How long a request waits for a leader to exist before it gets a 503. */
const LEADER_WAIT_MS = 15_000;

/** Requests the leader must serve: writes and log streams (the node sessions live on the leader). */
export function mustForward(method: string, path: string): boolean {
  if (method !== 'GET' && method !== 'HEAD') return !path.startsWith('/swarm/init') && !path.startsWith('/swarm/join') && !path.startsWith('/swarm/leave');
  // Events are not forwarded: every manager derives the same ones from the entries it applies (events.ts).
  return path.endsWith('/logs');
}

/** Connection errors that prove the request never reached the leader (safe to send again). */
const NOT_DELIVERED = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'ECONNABORTED']);

class NotDelivered extends Error {}

/** Reads the request body (bounded: the largest body the API takes, a service spec) so it can be re-sent. */
async function bodyOf(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size > BODY_LIMITS.spec) throw tooLarge(`request body is larger than ${BODY_LIMITS.spec >> 20} MiB`);
    chunks.push(c as Buffer);
  }
  return Buffer.concat(chunks);
}

/**
 * Proxies the request to the leader. Returns false when this manager became the leader meanwhile
 * (the caller serves it, with the body given back), true once an answer was sent. A leader that
 * refuses the connection (it just died) is tried again as the new leader becomes known.
 */
export async function forwardToLeader(
  req: IncomingMessage,
  res: ServerResponse,
  o: { deps: DockerDeps; tls: ForwardTls; port: number },
): Promise<{ done: true } | { done: false; body: Buffer }> {
  const body = await bodyOf(req);
  const deadline = Date.now() + LEADER_WAIT_MS;
  let lastError = 'no leader: the managers are electing one or have lost quorum';
  for (;;) {
    if (o.deps.isLeader()) return { done: false, body };
    const l = o.deps.leader();
    if (l) {
      const host = l.addr.replace(/:\d+$/, '').replace(/^\[|\]$/g, '');
      try {
        await proxy(req, body, res, host, o.port, o.tls, o.deps.nodeId);
        return { done: true };
      } catch (e) {
        if (!(e instanceof NotDelivered)) throw e;
        lastError = `the leader at ${host}:${o.port} could not be reached (${e.message})`;
      }
    }
    if (Date.now() > deadline) throw new ApiError(503, 'ENOLEADER', `${lastError}; retry`);
    await sleep(100);
  }
}

function proxy(req: IncomingMessage, body: Buffer, res: ServerResponse, host: string, port: number, tls: ForwardTls, self: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const headers: Record<string, string | string[] | undefined> = { ...req.headers, [FORWARD_HEADER]: self, 'content-length': String(body.length) };
    delete headers.host;
    delete headers['transfer-encoding'];
    let answered = false;
    const out = httpsRequest({ host, port, method: req.method, path: req.url, headers, key: tls.key, cert: tls.cert, ca: tls.ca, timeout: 5_000 }, (up) => {
      answered = true;
      res.writeHead(up.statusCode ?? 502, up.headers);
      up.pipe(res);
      up.on('end', () => resolve());
      up.on('error', () => {
        res.destroy();
        resolve();
      });
    });
    // Only the connection attempt is timed: an answer (a followed log stream) may take any time.
    out.on('socket', (s) => s.once('connect', () => out.setTimeout(0)).once('secureConnect', () => out.setTimeout(0)));
    out.on('timeout', () => out.destroy(Object.assign(new Error('connect timeout'), { code: 'ECONNABORTED' })));
    // The client went away: so does the forwarded request (a followed log stream, an event stream).
    res.on('close', () => {
      out.destroy();
      resolve();
    });
    out.on('error', (e: NodeJS.ErrnoException) => {
      if (!answered && NOT_DELIVERED.has(e.code ?? '')) reject(new NotDelivered(e.message));
      else if (!answered)
        reject(
          new ApiError(
            503,
            'ELEADERUNREACHABLE',
            `the leader at ${host}:${port} failed to answer (${e.message}); check whether the change was applied, then retry`,
          ),
        );
      else res.destroy();
    });
    out.end(body);
  });
}
