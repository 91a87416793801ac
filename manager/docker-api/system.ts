// System endpoints: `/_ping` (with the headers the CLI negotiates by: Api-Version, Ostype, Swarm),
// `/version`, `/info` with its Swarm section (`stack deploy` refuses to run unless ControlAvailable),
// `/swarm` (the cluster as Docker's Swarm object, join tokens included) and the per-node engine
// endpoints a Shoal manager has no equivalent for: containers, images, volumes, `system df` and
// plugins answer empty lists, and single objects a clean 404, so tools that probe them keep working.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ApiError, BODY_LIMITS, notFound, readJson, type Router } from '../api/http.ts';
import type { Cluster } from '../../api/objects.ts';
import { callControl } from './control.ts';
import { API_VERSION, ENGINE_VERSION, MIN_API_VERSION, type DockerDeps } from './deps.ts';
import { outOfSequence, query, requiredVersion, sendDocker, type DockerCtx } from './http.ts';
import type { PresentedNode } from './convert-node.ts';
import { dockerArch, dockerTime, goArch, msToNs, nsToMs, queryBool } from './wire.ts';

/** GET /v1/cluster: the cluster without its secrets; `autolock` says whether an unlock key exists. */
type ClusterView = Omit<Cluster, 'rootCa' | 'joinTokens'> & { autolock?: boolean };

/** The headers of every `/_ping` answer (the CLI hides swarm commands unless Swarm is active/manager). */
export function pingHeaders(): Record<string, string> {
  return {
    'api-version': API_VERSION,
    ostype: 'linux',
    'docker-experimental': 'false',
    swarm: 'active/manager',
    'cache-control': 'no-cache, no-store, must-revalidate',
    pragma: 'no-cache',
  };
}

function ping(req: IncomingMessage, res: ServerResponse): undefined {
  res.writeHead(200, { ...pingHeaders(), 'content-type': 'text/plain; charset=utf-8', 'content-length': '2' });
  res.end(req.method === 'HEAD' ? undefined : 'OK');
  return undefined;
}

/** The cluster as Docker's Swarm object (ClusterInfo; `/swarm` adds JoinTokens). */
export function swarmOut(c: ClusterView, clusterId: string): Record<string, unknown> {
  const s = c.spec;
  return {
    ID: clusterId,
    Version: { Index: c.version },
    CreatedAt: dockerTime(c.createdAt),
    UpdatedAt: dockerTime(c.updatedAt),
    Spec: {
      Name: 'default',
      Labels: {},
      Orchestration: { TaskHistoryRetentionLimit: s.taskHistoryLimit },
      Raft: { SnapshotInterval: s.raft.snapshotEvery, KeepOldSnapshots: 0, LogEntriesForSlowFollowers: s.raft.keepEntries, ElectionTick: 10, HeartbeatTick: 1 },
      Dispatcher: { HeartbeatPeriod: msToNs(s.dispatcher.heartbeatPeriodMs) },
      CAConfig: { NodeCertExpiry: msToNs(s.caConfig.nodeCertValidityMs) },
      TaskDefaults: {},
      EncryptionConfig: { AutoLockManagers: c.autolock === true },
    },
    TLSInfo: {},
    RootRotationInProgress: false,
    DefaultAddrPool: [s.defaultAddressPool.cidr],
    SubnetSize: s.defaultAddressPool.size,
    DataPathPort: 4789,
  };
}

export function registerSystemRoutes(r: Router<DockerCtx>, d: DockerDeps): void {
  r.add('GET', '/_ping', (_c, _p, req, res) => ping(req, res));
  r.add('HEAD', '/_ping', (_c, _p, req, res) => ping(req, res));

  r.add('GET', '/version', () => {
    const details = {
      ApiVersion: API_VERSION,
      MinAPIVersion: MIN_API_VERSION,
      Os: 'linux',
      Arch: goArch(d.host.arch),
      KernelVersion: d.host.kernel,
      GitCommit: 'shoal',
      GoVersion: `node ${process.version}`,
      BuildTime: '',
      Experimental: 'false',
    };
    return {
      Platform: { Name: 'Shoal' },
      Components: [{ Name: 'Engine', Version: ENGINE_VERSION, Details: details }],
      Version: ENGINE_VERSION,
      ApiVersion: API_VERSION,
      MinAPIVersion: MIN_API_VERSION,
      GitCommit: 'shoal',
      GoVersion: `node ${process.version}`,
      Os: 'linux',
      Arch: goArch(d.host.arch),
      KernelVersion: d.host.kernel,
      BuildTime: '',
    };
  });

  r.add('GET', '/info', async () => {
    const [nodes, cluster] = await Promise.all([
      callControl<PresentedNode[]>(d.control, 'GET', '/v1/nodes'),
      callControl<ClusterView>(d.control, 'GET', '/v1/cluster'),
    ]);
    const managers = nodes.filter((n) => n.managerStatus);
    const self = nodes.find((n) => n.id === d.nodeId);
    return {
      ID: d.nodeId,
      Containers: 0,
      ContainersRunning: 0,
      ContainersPaused: 0,
      ContainersStopped: 0,
      Images: 0,
      Driver: 'shoal',
      DriverStatus: [],
      Plugins: { Volume: ['local'], Network: ['overlay'], Authorization: null, Log: [] },
      MemoryLimit: true,
      SwapLimit: false,
      CpuCfsPeriod: true,
      CpuCfsQuota: true,
      IPv4Forwarding: true,
      Debug: false,
      NFd: 0,
      NGoroutines: 0,
      SystemTime: new Date().toISOString(),
      LoggingDriver: 'shoal',
      CgroupDriver: 'cgroupfs',
      CgroupVersion: '2',
      NEventsListener: 0,
      KernelVersion: d.host.kernel,
      OperatingSystem: 'Shoal',
      OSVersion: '',
      OSType: 'linux',
      Architecture: dockerArch(d.host.arch),
      IndexServerAddress: 'https://index.docker.io/v1/',
      RegistryConfig: { IndexConfigs: {}, InsecureRegistryCIDRs: [], Mirrors: [] },
      NCPU: d.host.ncpu,
      MemTotal: d.host.memTotal,
      GenericResources: null,
      DockerRootDir: '',
      Name: d.host.name,
      Labels: [],
      ExperimentalBuild: false,
      ServerVersion: ENGINE_VERSION,
      Runtimes: {},
      DefaultRuntime: 'shoal-shim',
      Swarm: {
        NodeID: d.nodeId,
        NodeAddr: self?.managerStatus?.addr.split(':')[0] ?? self?.status.addr ?? '',
        LocalNodeState: 'active',
        ControlAvailable: true,
        Error: '',
        RemoteManagers: managers.map((n) => ({ NodeID: n.id, Addr: n.managerStatus!.addr })),
        Nodes: nodes.length,
        Managers: managers.length,
        Cluster: swarmOut(cluster, d.clusterId),
      },
      LiveRestoreEnabled: false,
      Isolation: '',
      InitBinary: '',
      SecurityOptions: [],
      Warnings: [],
    };
  });

  r.add('GET', '/swarm', async () => {
    const [cluster, tokens] = await Promise.all([
      callControl<ClusterView>(d.control, 'GET', '/v1/cluster'),
      callControl<{ worker: string; manager: string }>(d.control, 'GET', '/v1/join-tokens'),
    ]);
    return { ...swarmOut(cluster, d.clusterId), JoinTokens: { Worker: tokens.worker, Manager: tokens.manager } };
  });
  // `swarm update` and `swarm join-token --rotate`: the version read is required; token rotation and the
  // two settings Shoal can change (heartbeat period, certificate expiry) are applied; nothing else is.
  r.add('POST', '/swarm/update', async (_c, _p, req, res) => {
    const version = requiredVersion(req);
    const q = query(req);
    const b = (await readJson(req, BODY_LIMITS.small)) as {
      Dispatcher?: { HeartbeatPeriod?: number };
      CAConfig?: { NodeCertExpiry?: number };
      EncryptionConfig?: { AutoLockManagers?: boolean };
    };
    const cur = await callControl<ClusterView>(d.control, 'GET', '/v1/cluster');
    if (cur.version !== version) throw outOfSequence('swarm', d.clusterId, version, cur.version);
    const hb = nsToMs(b.Dispatcher?.HeartbeatPeriod);
    const expiry = nsToMs(b.CAConfig?.NodeCertExpiry);
    const change = {
      ...(hb !== undefined && hb > 0 && hb !== cur.spec.dispatcher.heartbeatPeriodMs ? { heartbeatPeriodMs: hb } : {}),
      ...(expiry !== undefined && expiry > 0 && expiry !== cur.spec.caConfig.nodeCertValidityMs ? { nodeCertValidityMs: expiry } : {}),
      ...(typeof b.EncryptionConfig?.AutoLockManagers === 'boolean' && b.EncryptionConfig.AutoLockManagers !== (cur.autolock === true)
        ? { autolock: b.EncryptionConfig.AutoLockManagers }
        : {}),
    };
    if (Object.keys(change).length) await callControl(d.control, 'POST', '/v1/cluster/update', change);
    for (const role of ['worker', 'manager'] as const) {
      if (queryBool(q.get(`rotate${role === 'worker' ? 'Worker' : 'Manager'}Token`))) await callControl(d.control, 'POST', '/v1/join-tokens/rotate', { role });
    }
    if (queryBool(q.get('rotateManagerUnlockKey'))) await callControl(d.control, 'POST', '/v1/cluster/unlock-key/rotate');
    sendDocker(res, 200, undefined);
    return undefined;
  });
  // Autolock off: an empty key, which the CLI reports as "no unlock key is set" (as dockerd answers).
  r.add('GET', '/swarm/unlockkey', async () => {
    const k = await callControl<{ unlockKey: string | null }>(d.control, 'GET', '/v1/cluster/unlock-key');
    return { UnlockKey: k.unlockKey ?? '' };
  });

  // On TCP (the node-local socket answers these itself, local-swarm.ts): this manager is in a swarm,
  // as the engine says to a second `init`/`join`; leaving acts on the node, so only its socket may.
  for (const op of ['init', 'join']) {
    r.add('POST', `/swarm/${op}`, () => {
      throw new ApiError(503, 'EEXISTS', 'This node is already part of a swarm. Use "docker swarm leave" to leave this swarm and join another one.');
    });
  }
  r.add('POST', '/swarm/leave', () => {
    throw new ApiError(
      503,
      'ELOCALONLY',
      'swarm leave acts on the node that runs it: run it on that node against its local socket (DOCKER_HOST=unix://<state-dir>/docker.sock)',
    );
  });

  // Per-node engine objects: a Shoal manager runs none of them itself.
  r.add('GET', '/containers/json', () => []);
  r.add('GET', '/containers/:id/json', (_c, p) => {
    throw notFound(`No such container: ${p.id}`);
  });
  r.add('GET', '/images/json', () => []);
  r.add('GET', '/images/:name/json', (_c, p) => {
    throw notFound(`No such image: ${p.name}`);
  });
  r.add('GET', '/volumes', () => ({ Volumes: [], Warnings: [] }));
  r.add('GET', '/volumes/:name', (_c, p) => {
    throw notFound(`get ${p.name}: no such volume`);
  });
  r.add('GET', '/system/df', () => ({ LayersSize: 0, Images: [], Containers: [], Volumes: [], BuildCache: [] }));
  r.add('GET', '/plugins', () => []);
}
