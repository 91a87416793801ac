// `<state-dir>/docker.sock` (0600, root only) for the daemon's whole life: the full Engine API while
// the node runs a manager (server.ts), plus `swarm init/join/leave` on this node (local-swarm.ts),
// which only the local socket may ask for. One listener that outlives manager restarts, so a
// `docker swarm init` answered by the request that started the manager is not cut off by it.
import { chmodSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { DockerApiServer } from './server.ts';
import { handleLocalSwarm, handleWithoutManager, type LocalSwarmOps } from './local-swarm.ts';
import { sendDockerError, splitVersion } from './http.ts';

export class DockerSocket {
  private server: Server | null = null;

  constructor(
    private readonly path: string,
    private readonly current: () => DockerApiServer | null,
    private readonly ops: LocalSwarmOps,
  ) {}

  async start(): Promise<void> {
    rmSync(this.path, { force: true });
    this.server = createServer({ requestTimeout: 0, headersTimeout: 15_000, keepAliveTimeout: 5_000 }, (req, res) => void this.handle(req, res));
    await new Promise<void>((resolve, reject) => {
      this.server!.once('error', reject);
      this.server!.listen(this.path, () => {
        this.server!.off('error', reject);
        resolve();
      });
    });
    chmodSync(this.path, 0o600);
  }

  async stop(): Promise<void> {
    const s = this.server;
    this.server = null;
    if (s) {
      await new Promise<void>((r) => s.close(() => r()));
      s.closeAllConnections();
    }
    rmSync(this.path, { force: true });
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const api = this.current();
    if (!api) return handleWithoutManager(this.ops, req, res);
    try {
      const path = splitVersion(req.url ?? '/').url.split('?')[0] ?? '/';
      if (path.startsWith('/swarm/') && req.method === 'POST' && path !== '/swarm/update') {
        const url = req.url;
        req.url = splitVersion(url ?? '/').url;
        if (await handleLocalSwarm(this.ops, path, req, res)) return;
        req.url = url;
      }
    } catch (e) {
      sendDockerError(res, e);
      return;
    }
    await api.handleRequest(req, res, false);
  }
}
