// A Docker API server over a control router that answers fixed objects and, for GET /v1/logs, what
// remote.ts answers (its NDJSON): how the log tests (docker CLI, dockerode) get real log streams
// through the real facade although nodes of the test executor keep no logs.
import type { ServerResponse } from 'node:http';
import { notFound, Router } from '../../manager/api/http.ts';
import { DockerApiServer } from '../../manager/docker-api/server.ts';
import type { DockerDeps } from '../../manager/docker-api/deps.ts';

export const NODE = {
  id: 'node000000000000000000001',
  version: 3,
  createdAt: '2026-12-06T05:00:00Z',
  updatedAt: '2026-12-06T05:00:00Z',
  spec: { labels: {}, availability: 'active', role: 'manager' },
  description: {
    hostname: 'host-a',
    platform: { os: 'linux', arch: 'x64' },
    resources: { nanoCpus: 1e9, memoryBytes: 1 << 30 },
    engineVersion: 'shoal-0.1.0',
    addr: '10.0.0.1',
  },
  status: { state: 'ready', message: '', addr: '10.0.0.1' },
  managerStatus: { leader: true, reachability: 'reachable', voter: true, addr: '10.0.0.1:2377' },
};
export const SERVICE = {
  id: 'svc000000000000000000000001',
  version: 9,
  createdAt: '2026-12-06T05:00:00Z',
  updatedAt: '2026-12-06T05:00:00Z',
  specVersion: 1,
  status: {},
  spec: { name: 'web', labels: {}, mode: { replicated: { replicas: 2 } }, task: { image: 'busybox:1.36' }, networks: [], endpoint: { ports: [] } },
};
const task = (id: string, slot: number) => ({
  id,
  version: 5,
  createdAt: '2026-12-06T05:00:00Z',
  updatedAt: '2026-12-06T05:00:00Z',
  serviceId: SERVICE.id,
  slot,
  nodeId: NODE.id,
  spec: { image: 'busybox:1.36' },
  specVersion: 1,
  desiredState: 'running',
  status: { state: 'running', timestamp: '2026-12-06T05:00:00Z', message: 'started' },
  serviceAnnotations: { name: 'web', labels: {} },
  networks: [],
});
export const TASKS = [task('task00000000000000000000a1', 1), task('task00000000000000000000b2', 2)];

/** What GET /v1/logs answers (remote.ts): one JSON line per chunk, plus warnings the facade logs. */
function controlLogs(res: ServerResponse, url: string): undefined {
  const q = new URL(url, 'http://x').searchParams;
  const only = q.get('task');
  const lines = [
    { taskId: TASKS[0]!.id, ts: '2026-12-06T05:00:01.000000001Z', stream: 'stdout', line: 'hello from 1' },
    { warning: 'node host-b is down: logs of 1 task(s) unavailable' },
    { taskId: TASKS[1]!.id, ts: '2026-12-06T05:00:02.000000002Z', stream: 'stderr', line: 'oops from 2' },
    { taskId: TASKS[1]!.id, ts: '2026-12-06T05:00:03.000000003Z', stream: 'stdout', line: `tail=${q.get('tail') ?? 'all'} since=${q.get('since') ?? '-'}` },
  ].filter((l) => !only || !('taskId' in l) || l.taskId === only);
  res.writeHead(200, { 'content-type': 'application/x-ndjson' });
  for (const l of lines) res.write(`${JSON.stringify(l)}\n`);
  res.end();
  return undefined;
}

export function logsServer(socket: string, log: (l: string) => void): DockerApiServer {
  const control = new Router<{ cn: string }>();
  control.add('GET', '/v1/services/:id', (_c, p) => {
    if (p.id === 'web' || p.id === SERVICE.id) return SERVICE;
    throw notFound(`service ${p.id} not found`);
  });
  control.add('GET', '/v1/services', () => [SERVICE]);
  control.add('GET', '/v1/tasks', () => TASKS);
  control.add('GET', '/v1/nodes', () => [NODE]);
  control.add('GET', '/v1/nodes/:id', () => NODE);
  control.add('GET', '/v1/logs', (_c, _p, req, res) => controlLogs(res, req.url ?? '/'));
  const deps: DockerDeps = {
    control,
    nodeId: NODE.id,
    clusterId: 'c1',
    host: { name: 'host-a', ncpu: 1, memTotal: 1 << 30, arch: 'x64', kernel: '6.0' },
    isLeader: () => true,
    leader: () => ({ id: NODE.id, addr: '10.0.0.1:2377' }),
    managers: () => [{ id: NODE.id, addr: '10.0.0.1:2377' }],
  };
  return new DockerApiServer({ deps, socketPath: socket, log });
}
