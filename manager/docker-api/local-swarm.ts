// The node-local part of the Engine API, served on `<state-dir>/docker.sock` for the daemon's whole
// life (socket.ts): `swarm init`, `swarm join` and `swarm leave` act on THIS node, so they exist only
// on the root-only socket, never on TCP — before `init` there is no certificate to check anyway.
// While the node runs no manager, the socket answers these plus `_ping`, `version` and `info` (swarm
// state inactive, or active without control), and everything else the engine's "not a swarm
// manager" 503; once a manager runs, the full API (server.ts) answers instead.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ApiError, BODY_LIMITS, badRequest, readJson } from '../api/http.ts';
import { API_VERSION, ENGINE_VERSION, MIN_API_VERSION } from './deps.ts';
import { sendDocker, sendDockerError, splitVersion } from './http.ts';
import { pingHeaders } from './system.ts';
import { queryBool } from './wire.ts';

/** What the daemon does for these endpoints (daemon.ts init/join/leave). */
export interface LocalSwarmOps {
  /** The node's cluster membership, or null before init/join. */
  state(): { nodeId: string; role: 'manager' | 'worker'; advertise: string } | null;
  init(r: { advertiseAddr?: string; listenPort?: number }): Promise<{ nodeId: string }>;
  join(r: { token: string; remote: string; advertiseAddr?: string; listenPort?: number }): Promise<unknown>;
  leave(r: { force: boolean }): Promise<unknown>;
}

const NOT_MANAGER = 'This node is not a swarm manager. Use "docker swarm init" or "docker swarm join" to connect this node to swarm and try again.';

/** Docker's `ip:port` / `iface:port` / `0.0.0.0:2377` listen and advertise forms: the address and port. */
function addrPort(v: unknown): { addr?: string; port?: number } {
  if (typeof v !== 'string' || v === '') return {};
  const m = /^(.*?)(?::(\d+))?$/.exec(v)!;
  const port = m[2] ? Number(m[2]) : undefined;
  const addr = m[1] && m[1] !== '0.0.0.0' ? m[1] : undefined;
  return { ...(addr ? { addr } : {}), ...(port ? { port } : {}) };
}

/** Handles one of the node-local endpoints; false when the path is not one of them. */
export async function handleLocalSwarm(ops: LocalSwarmOps, path: string, req: IncomingMessage, res: ServerResponse): Promise<boolean> {
  if (req.method !== 'POST') return false;
  if (path === '/swarm/init') {
    const b = (await readJson(req, BODY_LIMITS.small)) as Record<string, unknown>;
    if (ops.state())
      throw new ApiError(503, 'EEXISTS', 'This node is already part of a swarm. Use "docker swarm leave" to leave this swarm and join another one.');
    const adv = addrPort(b.AdvertiseAddr);
    const listen = addrPort(b.ListenAddr);
    const out = await ops.init({
      ...(adv.addr ? { advertiseAddr: adv.addr } : {}),
      ...((listen.port ?? adv.port) ? { listenPort: listen.port ?? adv.port } : {}),
    });
    sendDocker(res, 200, out.nodeId);
    return true;
  }
  if (path === '/swarm/join') {
    const b = (await readJson(req, BODY_LIMITS.small)) as Record<string, unknown>;
    if (ops.state())
      throw new ApiError(503, 'EEXISTS', 'This node is already part of a swarm. Use "docker swarm leave" to leave this swarm and join another one.');
    const remotes = Array.isArray(b.RemoteAddrs) ? b.RemoteAddrs.filter((x): x is string => typeof x === 'string') : [];
    if (remotes.length === 0 || typeof b.JoinToken !== 'string') throw badRequest('join needs RemoteAddrs and a JoinToken');
    const adv = addrPort(b.AdvertiseAddr);
    const listen = addrPort(b.ListenAddr);
    await ops.join({
      token: b.JoinToken,
      remote: remotes[0]!,
      ...(adv.addr ? { advertiseAddr: adv.addr } : {}),
      ...(listen.port ? { listenPort: listen.port } : {}),
    });
    sendDocker(res, 200, undefined);
    return true;
  }
  if (path === '/swarm/leave') {
    if (!ops.state()) throw new ApiError(503, 'ENOTMEMBER', 'This node is not part of a swarm');
    await ops.leave({ force: queryBool(new URL(req.url ?? '/', 'http://x').searchParams.get('force')) });
    sendDocker(res, 200, undefined);
    return true;
  }
  return false;
}

/** The socket's answers while no manager runs on this node. */
export async function handleWithoutManager(ops: LocalSwarmOps, req: IncomingMessage, res: ServerResponse): Promise<void> {
  try {
    const { url } = splitVersion(req.url ?? '/');
    const path = url.split('?')[0] ?? '/';
    req.url = url;
    const st = ops.state();
    if (path === '/_ping' && (req.method === 'GET' || req.method === 'HEAD')) {
      res.writeHead(200, { ...pingHeaders(), swarm: st ? 'active/worker' : 'inactive', 'content-type': 'text/plain; charset=utf-8', 'content-length': '2' });
      res.end(req.method === 'HEAD' ? undefined : 'OK');
      return;
    }
    if (req.method === 'GET' && path === '/version') {
      sendDocker(res, 200, {
        Platform: { Name: 'Shoal' },
        Version: ENGINE_VERSION,
        ApiVersion: API_VERSION,
        MinAPIVersion: MIN_API_VERSION,
        Os: 'linux',
        Components: [],
      });
      return;
    }
    if (req.method === 'GET' && path === '/info') {
      sendDocker(res, 200, {
        ID: st?.nodeId ?? '',
        ServerVersion: ENGINE_VERSION,
        OSType: 'linux',
        Swarm: {
          NodeID: st?.nodeId ?? '',
          NodeAddr: st?.advertise.replace(/:\d+$/, '') ?? '',
          LocalNodeState: st ? 'active' : 'inactive',
          ControlAvailable: false,
          Error: '',
          RemoteManagers: null,
        },
        Warnings: [],
      });
      return;
    }
    if (await handleLocalSwarm(ops, path, req, res)) return;
    throw new ApiError(503, 'ENOTMANAGER', NOT_MANAGER);
  } catch (e) {
    sendDockerError(res, e);
  }
}
