// The Docker Engine API's listeners on a manager: TCP 2376 with mutual TLS (the cluster's admin
// certificate, as for the control API; other roles refused) and a root-only unix socket
// `<state-dir>/docker.sock`. Requests are routed with or without the `/vX.Y` prefix; anything not
// served is a clean 404 `{"message"}`.
//
// Any manager answers (forward.ts): reads are served here (the control API makes them linearizable),
// and so are events (events.ts: derived from the entries every manager applies); writes and logs go
// to the leader when this manager is not it.
import { chmodSync, rmSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import { Readable } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import { ApiError, notFound, Router } from '../api/http.ts';
import type { DockerDeps } from './deps.ts';
import { sendDocker, sendDockerError, splitVersion, type DockerCtx } from './http.ts';
import { registerSystemRoutes } from './system.ts';
import { distributionAnswer, registerServiceRoutes } from './services.ts';
import { registerNetworkRoutes, registerNodeRoutes } from './nodes.ts';
import { registerLogRoutes } from './logs.ts';
import { registerSecretRoutes } from './secrets.ts';
import { registerEventRoutes } from './events.ts';
import { FORWARD_HEADER, forwardToLeader, mustForward, type ForwardTls } from './forward.ts';

export const DOCKER_PORT = 2376;

export interface DockerApiOptions {
  deps: DockerDeps;
  /** A unix socket of its own (0600: whoever connects is the cluster's admin). The daemon instead
   * passes requests from its long-lived docker.sock (socket.ts) to handleRequest. */
  socketPath?: string;
  /** The TCP listener (absent: unix socket only, as in-process tests run it). */
  tcp?: { host: string; port: number };
  /** This manager's TLS identity (current: certificates are renewed): served on TCP, presented when forwarding. */
  tls?: () => ForwardTls;
  /** Why a DER client certificate is refused for these roles, or null (Manager.certProblem). */
  certProblem?: (raw: Buffer | undefined, roles: string[]) => string | null;
  /** The leader's Docker API port (every manager listens on the same one). */
  leaderPort?: number;
  log?: (line: string) => void;
}

/** Extra checks the router cannot express: distribution refs hold slashes. */
async function dispatch(router: Router<DockerCtx>, d: DockerDeps, ctx: DockerCtx, path: string, req: IncomingMessage, res: ServerResponse): Promise<boolean> {
  if (req.method === 'GET' && path.startsWith('/distribution/') && path.endsWith('/json')) {
    sendDocker(res, 200, await distributionAnswer(d, path));
    return true;
  }
  // Image names hold slashes too (`shoal/box:1`): a manager keeps no engine images.
  if (req.method === 'GET' && path.startsWith('/images/') && path.endsWith('/json') && path !== '/images/json') {
    const name = path.slice('/images/'.length, -'/json'.length);
    let shown = name;
    try {
      shown = decodeURIComponent(name);
    } catch {
      // shown as sent
    }
    throw notFound(`No such image: ${shown}`);
  }
  return router.dispatch(ctx, req, res);
}

export class DockerApiServer {
  private readonly router = new Router<DockerCtx>();
  private unix: HttpServer | null = null;
  private tcp: HttpsServer | null = null;
  private readonly log: (l: string) => void;

  constructor(private readonly o: DockerApiOptions) {
    this.log = o.log ?? (() => {});
    registerSystemRoutes(this.router, o.deps);
    registerServiceRoutes(this.router, o.deps);
    registerNodeRoutes(this.router, o.deps);
    registerNetworkRoutes(this.router, o.deps);
    registerLogRoutes(this.router, o.deps, this.log);
    registerSecretRoutes(this.router, o.deps);
    registerEventRoutes(this.router, o.deps.events, () => Date.now());
  }

  async start(): Promise<void> {
    const sock = this.o.socketPath;
    if (sock) {
      rmSync(sock, { force: true });
      this.unix = createHttpServer(
        { requestTimeout: 0, headersTimeout: 15_000, keepAliveTimeout: 5_000 },
        (req, res) => void this.handleRequest(req, res, false),
      );
      await listen(this.unix, (s, cb) => s.listen(sock, cb));
      chmodSync(sock, 0o600);
    }
    if (this.o.tcp && this.o.tls) {
      const { host, port } = this.o.tcp;
      // The CA verifies at the handshake (no certificate: "tls: certificate required", as dockerd);
      // the role is checked per request, so a refused role gets a readable 403.
      const tcp = createHttpsServer(
        { ...this.o.tls(), requestCert: true, rejectUnauthorized: true, requestTimeout: 0, headersTimeout: 15_000, keepAliveTimeout: 5_000 },
        (req, res) => void this.handleRequest(req, res, true),
      );
      // A port held by something else (a dockerd on the same host) must not stop the manager: the
      // Docker API is then served on the socket only, and the log says why.
      try {
        await listen(tcp, (s, cb) => s.listen(port, host, cb));
        this.tcp = tcp;
      } catch (e) {
        this.log(`docker-api: cannot listen on ${host}:${port} (${(e as Error).message}); the Docker API is served on the local socket only`);
      }
    }
  }

  /** The node's certificate was renewed: serve the new one. */
  refreshTls(): void {
    if (this.tcp && this.o.tls) this.tcp.setSecureContext({ ...this.o.tls() });
  }

  async stop(): Promise<void> {
    for (const s of [this.unix, this.tcp]) {
      if (!s) continue;
      await new Promise<void>((r) => s.close(() => r()));
      s.closeAllConnections();
    }
    this.unix = this.tcp = null;
    if (this.o.socketPath) rmSync(this.o.socketPath, { force: true });
  }

  /** The caller may use the API: the unix socket's owner, an admin, or a manager forwarding to its leader. */
  private authorize(req: IncomingMessage, overTls: boolean): { forwarded: boolean } {
    if (!overTls) return { forwarded: false };
    const cert = (req.socket as TLSSocket).getPeerCertificate();
    const check = this.o.certProblem ?? (() => 'no certificate check configured');
    const forwarded = req.headers[FORWARD_HEADER] !== undefined;
    // A manager's certificate already lets it write to the Raft log; accepting it for requests it
    // forwards on an admin's behalf grants nothing more (docs/docker-api.md, "Any manager answers").
    const problem = check(cert.raw, forwarded ? ['manager'] : ['admin']);
    if (problem) throw new ApiError(403, 'EFORBIDDEN', problem);
    return { forwarded };
  }

  /** One request, from TCP (overTls) or a unix socket. */
  async handleRequest(req: IncomingMessage, res: ServerResponse, overTls: boolean): Promise<void> {
    try {
      const { forwarded } = this.authorize(req, overTls);
      const { version, url } = splitVersion(req.url ?? '/');
      const path = url.split('?')[0] ?? '/';
      let request = req;
      if (!forwarded && mustForward(req.method ?? 'GET', path) && !this.o.deps.isLeader() && this.o.tls) {
        const f = await forwardToLeader(req, res, { deps: this.o.deps, tls: this.o.tls(), port: this.o.leaderPort ?? DOCKER_PORT });
        if (f.done) return;
        // This manager became the leader while waiting: serve the request here, with the body read.
        request = Object.assign(Readable.from([f.body]), {
          method: req.method,
          url: req.url,
          headers: req.headers,
          socket: req.socket,
        }) as unknown as IncomingMessage;
        res.once('close', () => request.emit('close'));
      }
      request.url = url;
      if (!(await dispatch(this.router, this.o.deps, { version }, path, request, res))) {
        throw new ApiError(404, 'ENOTFOUND', `page not found: ${req.method} ${path}`);
      }
    } catch (e) {
      if (!(e instanceof ApiError) || e.status >= 500) this.log(`docker-api: ${req.method} ${req.url}: ${(e as Error).message}`);
      sendDockerError(res, e);
    }
  }
}

function listen<S extends HttpServer | HttpsServer>(s: S, start: (s: S, cb: () => void) => void): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    s.once('error', reject);
    start(s, () => {
      s.off('error', reject);
      resolve();
    });
  });
}
