// `shoal daemon`: runs one node. Always the agent; plus, when the node's certificate says manager, a
// manager (Raft replica + control API) on the node's one secure port. Before the node belongs to a
// cluster it only serves its local control socket, where `shoal cluster init|join` reach it.
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, request as httpsRequest, type Server as HttpsServer } from 'node:https';
import { hostname as osHostname, networkInterfaces } from 'node:os';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { ApiError, badRequest, readJson, sendError, sendJson } from '../manager/api/http.ts';
import { CLOCK_SKEW_MS, createCsr, generateKeyPem, parseCertificate, renewalTime } from '../manager/ca/pki.ts';
import { parseJoinToken, pinCa } from '../manager/ca/tokens.ts';
// The manager's code (Raft, store, control loops, the Docker API) is loaded only when this node is or
// becomes a manager (startManager): a worker never pays its memory (docs/design/build.md).
import type { Manager, ManagerTiming } from '../manager/manager.ts';
import type { DockerApiServer } from '../manager/docker-api/server.ts';
import { DockerSocket } from '../manager/docker-api/socket.ts';
import { newId } from '../manager/store/ids.ts';
import type { RecoveryReport } from '../manager/recovery.ts';
import { Agent, type AgentTools } from '../worker/agent.ts';
import { NodeNetwork } from '../worker/network.ts';
import type { Executor } from '../worker/executor.ts';
import { FakeExecutor } from '../worker/fake-executor.ts';
import { EngineExecutor, type ImageResolver } from '../worker/engine/executor.ts';
import { ImageStore, mountRootfs, unmountRootfs } from '../worker/images/store.ts';
import { PullingExecutor } from '../worker/image-puller.ts';
import { httpsJson, httpsRaw, splitHostPort } from '../transport/https.ts';
import { ImageFetcher, namesRegistry, pinnedRef, resolveInCluster, serveImages } from './images.ts';
import { Admission, sniAdmission, type AdmissionStats } from './handshake-admission.ts';
import { DEFAULT_SERVER_LIMITS, guardServer, serverOptions, type GuardStats, type ServerLimits } from './server-guard.ts';
import { installProcessGuard } from './process-guard.ts';
import { managerTiering } from './node-flags.ts';
import { DISPATCHER_PATH } from '../api/dispatcher.ts';
import type { PullResult } from '../worker/images/registry.ts';
import { KeyRing } from '../manager/keys/keyring.ts';
import { RAFT_KEY_FILE, isKeyFileWrapped, loadKeyRing, removeKeyRing, saveKeyRing } from '../manager/keys/keyfile.ts';
import { WrongUnlockKeyError, parseUnlockKey } from '../manager/keys/autolock.ts';
import { RaftCipher } from '../manager/raft/encrypt.ts';
import { fetchKeyRing, serveKeys } from '../manager/keys/endpoint.ts';
import { readNodeKey, rewrapNodeKey, writeNodeKey } from '../manager/keys/node-key.ts';
import { announceLocked } from '../manager/keys/locked.ts';
import { atomicWrite } from '../manager/keys/atomic-write.ts';
import { NodeFiles } from '../worker/files.ts';
import type { DaemonMetrics } from '../metrics/daemon-metrics.ts';
import { parseMetricsAddr, serveMetrics, type MetricsServer } from '../metrics/server.ts';
import { SecretMounts } from '../worker/engine/secrets.ts';

export interface NodeState {
  nodeId: string;
  clusterId: string;
  role: 'manager' | 'worker';
  advertise: string; // host:port
  listen: string; // host:port
  managers: string[];
}

export interface DaemonOptions {
  stateDir: string;
  /**
   * What runs tasks: 'engine' (real containers: images, overlayfs, cgroups, shoal-shim) or 'test' (the
   * test executor, no processes, images taken as given). Default 'engine'.
   */
  executor?: 'engine' | 'test' | (() => Executor);
  hostname?: string;
  /** Registries (`host[:port]`) this node may reach over plain HTTP. */
  insecureRegistries?: string[];
  /** Prefix of every network namespace and link this node creates (default 'shoal-'; lab hosts pass their own). */
  netnsPrefix?: string;
  timing?: ManagerTiming;
  log?: (line: string) => void;
  /** Limits of the secure port (timeouts, connection caps); defaults in daemon/server-guard.ts. */
  serverLimits?: Partial<ServerLimits>;
  /**
   * Install the process-wide guard for uncaught errors (daemon/process-guard.ts). Default true; tests
   * that run daemons inside a test process pass false.
   */
  processGuard?: boolean;
  /** The Docker Engine API's TCP port on managers (default 2376); null: only `<state-dir>/docker.sock`. */
  dockerPort?: number | null;
  /** HOST:PORT to serve Prometheus metrics on over plain HTTP (metrics/); absent: no metrics at all. */
  metricsAddr?: string;
}

/** WebSocket paths served on the secure port (the dispatcher's and Raft's); any other upgrade is destroyed. */
const WEBSOCKET_PATHS = new Set([DISPATCHER_PATH, '/raft/v1']);

export const DEFAULT_PORT = 2377;

/**
 * Connections the kernel queues for the manager port before the daemon accepts them (capped by
 * net.core.somaxconn, 4096 by default). Node's default, 511, overflowed 11,429 times while 5,000 agents
 * reconnected to a new leader (bench:scale): each dropped SYN is retried by the client after 1, 3, 7 s,
 * which is how live nodes miss the takeover window. Queued, they wait only for the daemon to get to them.
 */
const LISTEN_BACKLOG = 4096;

export class Daemon {
  private local: HttpServer | null = null;
  private secure: HttpsServer | null = null;
  manager: Manager | null = null;
  /** The Docker Engine API (manager/docker-api), while this node runs a manager. */
  private docker: DockerApiServer | null = null;
  /** `<state-dir>/docker.sock` for the daemon's life: the Docker API, and `docker swarm init/join/leave`. */
  private dockerSocket: DockerSocket | null = null;
  agent: Agent | null = null;
  state: NodeState | null = null;
  private renewTimer: NodeJS.Timeout | null = null;
  private readonly log: (l: string) => void;
  /** The managers' data-encryption keys (manager/keys), while this node runs a manager that has them. */
  private keyRing: KeyRing | null = null;
  /** This manager's Raft key ring (keys/raft.json), kept to rewrap it when autolock changes. */
  private raftRing: KeyRing | null = null;
  /** Autolock: the unlock key in force (from `cluster unlock` or the store), and its text; null when off. */
  private unlockKey: Buffer | null = null;
  private unlockKeyText: string | null = null;
  /** Autolock: restarted with wrapped keys and not unlocked yet — nothing runs but the local socket. */
  private locked = false;
  /** While locked: stops telling the managers so (manager/keys/locked.ts). */
  private stopLockedNotice: (() => void) | null = null;
  /** Secret and config data for this node's tasks: memory only (worker/files.ts). */
  private readonly files = new NodeFiles();
  /** This daemon's metrics and their endpoint, with --metrics-addr (set by start()). */
  metrics: DaemonMetrics | null = null;
  private metricsServer: MetricsServer | null = null;

  constructor(private readonly opts: DaemonOptions) {
    this.log = opts.log ?? ((l) => console.log(`${new Date().toISOString()} ${l}`));
    if (opts.metricsAddr !== undefined) parseMetricsAddr(opts.metricsAddr);
  }

  get socketPath(): string {
    return join(this.opts.stateDir, 'shoal.sock');
  }

  private path(...p: string[]): string {
    return join(this.opts.stateDir, ...p);
  }

  /** Counters of the secure port's guards (refused connections, destroyed upgrades), while a manager runs. */
  guardStats: GuardStats | null = null;
  private stopAdmission: (() => void) | null = null;

  async start(): Promise<void> {
    if (this.opts.processGuard !== false) installProcessGuard((l) => this.log(l));
    // prom-client only with --metrics-addr (importing it adds ≈ 12 MB to a bare node; docs/design/build.md).
    if (this.opts.metricsAddr !== undefined) this.metrics = new (await import('../metrics/daemon-metrics.ts')).DaemonMetrics();
    mkdirSync(this.path('certs'), { recursive: true, mode: 0o700 });
    // The local socket first: `shoal` can reach the daemon (and see its state) while it starts.
    await this.serveLocal();
    this.dockerSocket = new DockerSocket(this.path('docker.sock'), () => this.docker, {
      state: () => (this.state ? { nodeId: this.state.nodeId, role: this.state.role, advertise: this.state.advertise } : null),
      // The same 423 gate as the local socket's: a locked manager neither inits, joins nor leaves.
      init: (r) => this.unlessLocked(() => this.init(r)),
      join: (r) => this.unlessLocked(() => this.join(r)),
      leave: (r) => this.unlessLocked(() => this.leave(r)),
    });
    await this.dockerSocket.start();
    if (this.metrics && this.opts.metricsAddr !== undefined) {
      this.metricsServer = await serveMetrics(this.metrics.registry, this.opts.metricsAddr);
      this.log(`metrics: serving Prometheus metrics on http://${this.opts.metricsAddr}/metrics`);
    }
    if (existsSync(this.path('node.json'))) {
      this.state = JSON.parse(readFileSync(this.path('node.json'), 'utf8')) as NodeState;
      if (this.state.role === 'manager' && isKeyFileWrapped(this.opts.stateDir, RAFT_KEY_FILE)) {
        // Autolock: no Raft, no secure port, no agent until an operator gives the unlock key.
        this.locked = true;
        const st = this.state;
        this.stopLockedNotice = announceLocked({
          nodeId: st.nodeId,
          managers: () => st.managers.filter((m) => m !== st.advertise),
          ca: readFileSync(this.path('certs', 'ca.crt'), 'utf8'),
        });
        this.log("locked: this manager's keys are wrapped (autolock); run `shoal cluster unlock` on this node");
      } else {
        await this.run(false);
      }
    }
    this.log(this.state ? `node ${this.state.nodeId} (${this.state.role}) resumed` : 'not part of a cluster yet: waiting for `shoal cluster init` or `join`');
  }

  async stop(): Promise<void> {
    if (this.renewTimer) clearTimeout(this.renewTimer);
    this.stopLockedNotice?.();
    this.agent?.stop();
    await this.net?.close();
    await this.docker?.stop();
    await this.dockerSocket?.stop();
    await this.manager?.stop();
    await new Promise<void>((r) => (this.secure ? this.secure.close(() => r()) : r()));
    this.secure?.closeAllConnections();
    await new Promise<void>((r) => (this.local ? this.local.close(() => r()) : r()));
    rmSync(this.socketPath, { force: true });
    await this.metricsServer?.close();
    this.metricsServer = null;
  }

  // ------------------------------------------------------------------ local control socket

  private async serveLocal(): Promise<void> {
    rmSync(this.socketPath, { force: true });
    this.local = createHttpServer({ requestTimeout: 60_000, headersTimeout: 15_000, keepAliveTimeout: 5_000 }, (req, res) => void this.onLocal(req, res));
    await new Promise<void>((resolve, reject) => {
      this.local!.once('error', reject);
      this.local!.listen(this.socketPath, () => resolve());
    });
    // Whoever can connect gets the admin key (/init) and loads images from any path: root only,
    // whatever the umask was (security review, finding 13).
    chmodSync(this.socketPath, 0o600);
  }

  /** Autolock: until `shoal cluster unlock`, nothing but /info and /unlock (on either socket). */
  private assertUnlocked(): void {
    if (this.locked) throw new ApiError(423, 'ELOCKED', 'this manager is locked (autolock): run `shoal cluster unlock` first');
  }

  private async unlessLocked<T>(fn: () => Promise<T>): Promise<T> {
    this.assertUnlocked();
    return fn();
  }

  private async onLocal(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      const path = (req.url ?? '').split('?')[0];
      if (req.method === 'GET' && path === '/info') return sendJson(res, 200, this.info());
      if (req.method === 'POST' && path === '/unlock') return sendJson(res, 200, await this.unlock((await readJson(req)) as { key?: unknown }));
      this.assertUnlocked();
      if (req.method === 'POST' && path === '/init') {
        const body = (await readJson(req)) as InitRequest;
        return sendJson(res, 200, body.forceNewCluster ? await this.forceNewCluster() : await this.init(body));
      }
      if (req.method === 'POST' && path === '/join') return sendJson(res, 200, await this.join((await readJson(req)) as JoinRequest));
      if (req.method === 'POST' && path === '/leave') return sendJson(res, 200, await this.leave((await readJson(req)) as { force?: boolean }));
      if (req.method === 'POST' && path === '/images/load') {
        const b = (await readJson(req)) as { path?: unknown; tag?: unknown };
        if (typeof b.path !== 'string' || b.path === '') throw badRequest('image load needs the path of an archive');
        if (!existsSync(b.path)) throw badRequest(`image load: ${b.path} does not exist`);
        try {
          return sendJson(res, 200, await this.imageStore().load(b.path, typeof b.tag === 'string' ? { tag: b.tag } : {}));
        } catch (e) {
          throw badRequest(`image load: ${(e as Error).message}`);
        }
      }
      if (req.method === 'GET' && path === '/images') return sendJson(res, 200, this.imageStore().list());
      if (path?.startsWith('/volumes')) {
        const vols = this.engine?.volumes;
        if (!vols) throw new ApiError(409, 'ENOENGINE', 'this node runs the test executor: it has no volumes');
        if (req.method === 'GET' && path === '/volumes') return sendJson(res, 200, vols.list());
        if (req.method === 'POST' && path === '/volumes/prune') return sendJson(res, 200, { removed: vols.prune() });
        if (req.method === 'POST' && path === '/volumes/rm') {
          const b = (await readJson(req)) as { names?: unknown };
          if (!Array.isArray(b.names) || b.names.length === 0 || !b.names.every((n) => typeof n === 'string')) throw badRequest('volume rm needs volume names');
          for (const n of b.names as string[]) {
            try {
              vols.rm(n);
            } catch (e) {
              throw new ApiError(409, 'EVOLUME', (e as Error).message);
            }
          }
          return sendJson(res, 200, { removed: b.names });
        }
      }
      if (req.method === 'POST' && path === '/images/pull') {
        const b = (await readJson(req)) as { ref?: unknown; username?: unknown; password?: unknown };
        if (typeof b.ref !== 'string' || b.ref === '') throw badRequest('image pull needs an image reference');
        const auth = typeof b.username === 'string' && typeof b.password === 'string' ? { username: b.username, password: b.password } : undefined;
        try {
          return sendJson(res, 200, await this.pull(b.ref, auth));
        } catch (e) {
          throw badRequest(`image pull: ${(e as Error).message}`);
        }
      }
      if (req.method === 'POST' && (path === '/images/rm' || path === '/images/prune')) {
        const b = (await readJson(req)) as { refs?: unknown; all?: unknown };
        const inUse = this.puller?.imagesInUse() ?? new Set<string>();
        const store = this.imageStore();
        if (path === '/images/prune') return sendJson(res, 200, { removed: await store.prune(inUse) });
        if (!Array.isArray(b.refs) || b.refs.length === 0) throw badRequest('image rm needs at least one image');
        const removed: string[] = [];
        for (const ref of b.refs as unknown[]) {
          if (typeof ref !== 'string') throw badRequest('image references must be strings');
          const info = store.resolve(ref);
          if (!info) throw new ApiError(404, 'ENOTFOUND', `no such image: ${ref}`);
          const user = [...inUse].find((u) => store.resolve(u)?.digest === info.digest);
          if (user) throw new ApiError(409, 'EINUSE', `image ${ref} is in use by a task on this node (${user})`);
          await store.rm(ref);
          removed.push(ref);
        }
        return sendJson(res, 200, { removed });
      }
      throw new ApiError(404, 'ENOTFOUND', `no local endpoint ${req.method} ${path}`);
    } catch (e) {
      sendError(res, e);
    }
  }

  info() {
    return {
      state: this.locked ? 'locked' : this.state ? 'active' : 'inactive',
      node: this.state,
      agent: this.agent ? { state: this.agent.state, connectedTo: this.agent.connectedTo, managers: this.agent.knownManagers() } : null,
      raft: this.manager ? this.manager.raft.status() : null,
    };
  }

  // ------------------------------------------------------------------ init

  /** Makes this surviving manager a one-manager cluster that keeps all its state. */
  async forceNewCluster(): Promise<{ clusterId: string; nodeId: string; managers: string[]; recovered: RecoveryReport }> {
    const st = this.state;
    if (!st || st.role !== 'manager') throw new ApiError(409, 'ENOTMANAGER', '--force-new-cluster needs a manager that already belongs to a cluster');
    this.agent?.stop();
    this.agent = null;
    await this.stopManager();
    const { forceNewCluster: recover } = await import('../manager/recovery.ts');
    const recovered = await recover(this.path('raft'), { id: st.nodeId, url: `wss://${st.advertise}/raft/v1` }, this.raftCipher());
    this.state = { ...st, managers: [st.advertise] };
    this.saveState();
    await this.run(false);
    await this.manager!.waitLeader(10_000);
    this.log(`forced a new cluster from this manager's state (index ${recovered.index}, ${recovered.demoted.length} managers demoted)`);
    return { clusterId: st.clusterId, nodeId: st.nodeId, managers: [st.advertise], recovered };
  }

  async init(r: InitRequest): Promise<InitResult> {
    if (this.state) throw new ApiError(409, 'EEXISTS', `this node is already part of cluster ${this.state.clusterId}; leave it first`);
    const ip = resolveAdvertise(r.advertiseAddr);
    const port = r.listenPort ?? DEFAULT_PORT;
    const clusterId = newId();
    const nodeId = newId();
    const t0 = Date.now();
    // The CA's code only on the node that becomes a CA: a worker never loads it.
    const { createRootCa, signNodeCertificate } = await import('../manager/ca/issue.ts');
    // The three keys in parallel on the thread pool (bench:pki: ECDSA P-256 0.26 ms each, RSA-2048 170 ms).
    const [ca, nodeKey, adminKey] = await Promise.all([createRootCa({ clusterId }), generateKeyPem(), generateKeyPem()]);
    const nodeCert = signNodeCertificate({
      caCertPem: ca.certPem,
      caKeyPem: ca.keyPem,
      csrPem: createCsr({ keyPem: nodeKey, nodeId }),
      nodeId,
      role: 'manager',
      clusterId,
      sans: { ips: [ip] },
    });
    const adminId = `admin-${randomBytes(4).toString('hex')}`;
    const adminCert = signNodeCertificate({
      caCertPem: ca.certPem,
      caKeyPem: ca.keyPem,
      csrPem: createCsr({ keyPem: adminKey, nodeId: adminId }),
      nodeId: adminId,
      role: 'admin',
      clusterId,
      validityMs: 365 * 24 * 3600_000,
    });
    this.writeCerts(nodeKey, nodeCert.certPem, ca.certPem);
    // The cluster's first data-encryption key: beside the Raft data, never in it (docs/design/secrets.md).
    this.keyRing = KeyRing.generate(randomBytes, new Date());
    saveKeyRing(this.opts.stateDir, this.keyRing);
    const advertise = `${ip}:${port}`;
    this.state = { nodeId, clusterId, role: 'manager', advertise, listen: `0.0.0.0:${port}`, managers: [advertise] };
    this.saveState();
    await this.run(true);
    const host = this.opts.hostname ?? osHostname();
    await this.manager!.initialize({
      caCertPem: ca.certPem,
      caKeyPem: ca.keyPem,
      self: {
        id: nodeId,
        kind: 'node',
        spec: { labels: {}, availability: 'active', role: 'manager' },
        description: {
          hostname: host,
          platform: { os: process.platform, arch: process.arch },
          resources: { nanoCpus: 0, memoryBytes: 0 },
          engineVersion: '',
          addr: ip,
        },
        status: { state: 'ready', message: '', addr: ip },
        certificate: { serial: nodeCert.serial, notAfter: nodeCert.notAfter.toISOString(), role: 'manager' },
      } as never,
      admin: { name: adminId, serial: adminCert.serial, notAfter: adminCert.notAfter },
    });
    const c = this.manager!.cluster()!;
    this.log(`initialised cluster ${clusterId} as node ${nodeId} in ${Date.now() - t0} ms`);
    return {
      clusterId,
      nodeId,
      managers: [advertise],
      joinTokens: c.joinTokens,
      admin: { key: adminKey, cert: adminCert.certPem, ca: ca.certPem },
    };
  }

  // ------------------------------------------------------------------ join

  async join(r: JoinRequest): Promise<{ nodeId: string; role: string; clusterId: string }> {
    if (this.state) throw new ApiError(409, 'EEXISTS', `this node is already part of cluster ${this.state.clusterId}; leave it first`);
    if (typeof r.token !== 'string') throw badRequest('join needs --token');
    if (typeof r.remote !== 'string' || r.remote === '') throw badRequest('join needs the address of a manager (host:port)');
    try {
      parseJoinToken(r.token);
    } catch (e) {
      throw badRequest((e as Error).message);
    }
    const ip = resolveAdvertise(r.advertiseAddr);
    const port = r.listenPort ?? DEFAULT_PORT;
    let remote = r.remote.includes(':') ? r.remote : `${r.remote}:${DEFAULT_PORT}`;
    // 1. Fetch the CA without trusting it, and pin it against the digest in the token.
    const caPem = await fetchCa(remote);
    try {
      pinCa(caPem, r.token);
    } catch (e) {
      throw new ApiError(401, 'ECAPIN', (e as Error).message.replace('<where>', remote));
    }
    // 2. Send a CSR and the token; follow redirects to the leader.
    const key = await generateKeyPem();
    const csr = createCsr({ keyPem: key, nodeId: 'joining' });
    let resp: JoinResponse | null = null;
    for (let hop = 0; hop < 4 && !resp; hop++) {
      const out = await httpsJson(
        remote,
        'POST',
        '/v1/join',
        { token: r.token, csr, advertise: `${ip}:${port}`, hostname: this.opts.hostname ?? osHostname() },
        { ca: caPem },
      );
      if (out.status === 421 && typeof out.body?.error?.leader === 'string') {
        remote = out.body.error.leader;
        continue;
      }
      if (out.status !== 200)
        throw new ApiError(out.status, out.body?.error?.code ?? 'EJOIN', out.body?.error?.message ?? `join failed with HTTP ${out.status}`);
      resp = out.body as JoinResponse;
    }
    if (!resp) throw new ApiError(502, 'EJOIN', 'join: too many redirects');
    this.writeCerts(key, resp.certPem, resp.caCertPem);
    const advertise = `${ip}:${port}`;
    this.state = {
      nodeId: resp.nodeId,
      clusterId: resp.clusterId,
      role: resp.role,
      advertise,
      listen: `0.0.0.0:${port}`,
      managers: resp.managers.map((m) => m.addr),
    };
    this.saveState();
    await this.run(false);
    this.log(`joined cluster ${resp.clusterId} as ${resp.role} ${resp.nodeId}`);
    return { nodeId: resp.nodeId, role: resp.role, clusterId: resp.clusterId };
  }

  // ------------------------------------------------------------------ leave

  /**
   * Leaves the cluster: stops the agent (and manager), and forgets the node's identity and certificates.
   * A manager must be demoted first (or forced: the remaining managers may lose quorum). The node then
   * shows as Down on the managers until an admin runs `node rm`.
   */
  async leave(r: { force?: boolean }): Promise<{ left: string }> {
    const st = this.state;
    if (!st) throw new ApiError(409, 'ENOTMEMBER', 'this node is not part of a cluster');
    if (st.role === 'manager' && !r.force) {
      throw new ApiError(
        409,
        'EMANAGER',
        'this node is a manager: demote it first (`shoal node demote`), or use --force, which can make the remaining managers lose quorum',
      );
    }
    if (this.renewTimer) clearTimeout(this.renewTimer);
    this.agent?.stop();
    this.agent = null;
    await this.stopManager();
    rmSync(this.path('raft'), { recursive: true, force: true });
    removeKeyRing(this.opts.stateDir);
    this.keyRing = null;
    this.raftRing = null;
    this.unlockKey = null;
    this.unlockKeyText = null;
    this.locked = false;
    this.stopLockedNotice?.();
    this.stopLockedNotice = null;
    for (const f of ['node.key', 'node.crt', 'ca.crt']) rmSync(this.path('certs', f), { force: true });
    rmSync(this.path('node.json'), { force: true });
    this.state = null;
    this.log(`left cluster ${st.clusterId}`);
    return { left: st.clusterId };
  }

  // ------------------------------------------------------------------ running

  private creds() {
    return {
      key: readNodeKey(this.path('certs', 'node.key'), this.unlockKey),
      cert: readFileSync(this.path('certs', 'node.crt'), 'utf8'),
      ca: readFileSync(this.path('certs', 'ca.crt'), 'utf8'),
    };
  }

  private async run(bootstrap: boolean): Promise<void> {
    const st = this.state!;
    if (st.role === 'manager') await this.startManager(bootstrap);
    this.agent = new Agent({
      nodeId: st.nodeId,
      managers: st.role === 'manager' ? [st.advertise, ...st.managers.filter((m) => m !== st.advertise)] : st.managers,
      creds: () => this.creds(),
      advertiseAddr: st.advertise.split(':')[0]!,
      ...(this.opts.hostname ? { hostname: this.opts.hostname } : {}),
      log: (l) => this.log(l),
      onManagers: (m) => {
        this.state = { ...this.state!, managers: m };
        this.saveState();
      },
      // Certificates only arrive in answer to our own CSR; renewNow() installs them with their key.
      onRole: (role) => void this.changeRole(role).catch((e) => this.log(`role change to ${role} failed: ${(e as Error).message}`)),
      managerAdvertise: () => (this.manager ? this.state!.advertise : null),
      executor: this.makeExecutor(),
      onNetwork: (view) => this.net?.setView(view),
      files: this.files,
      ...(this.engine ? { tools: this.engineTools(this.engine) } : {}),
      onRenewRequest: () => void this.renewNow().catch((e) => this.log(`certificate renewal failed: ${(e as Error).message}`)),
    });
    this.agent.start();
    this.scheduleRenewal();
  }

  private images: ImageStore | null = null;

  /** What the agent offers the managers on top of running tasks: logs, exec, usage. */
  private engineTools(engine: EngineExecutor): AgentTools {
    return {
      logs: (taskId, o) => engine.logs(taskId, o),
      exec: (taskId, args, o) => engine.exec(taskId, args, { timeoutMs: o.timeoutMs }),
      usage: () => engine.usage(),
    };
  }

  /** Pulls an image from a registry into this node's store (the registry client is loaded for the first pull). */
  async pull(ref: string, auth?: { username: string; password: string }): Promise<PullResult> {
    const { pullImage } = await import('../worker/images/registry.ts');
    return pullImage(this.imageStore(), ref, {
      ...(auth ? { auth } : {}),
      insecureRegistries: this.opts.insecureRegistries ?? [],
      onProgress: (p) => {
        if (p.event === 'done') this.log(`image ${ref} pulled`);
      },
    });
  }
  /** The container engine, when this node runs real containers. */
  engine: EngineExecutor | null = null;
  /** Overlay networking (with the engine only). */
  net: NodeNetwork | null = null;
  private puller: PullingExecutor | null = null;

  /** The node's image store (created on first use under <state-dir>/images). */
  imageStore(): ImageStore {
    this.images ??= new ImageStore(this.path('images'));
    return this.images;
  }

  private makeExecutor(): Executor {
    const e = this.opts.executor;
    if (typeof e === 'function') return e();
    if (e === 'test') return new FakeExecutor();
    const store = this.imageStore();
    const resolver: ImageResolver = {
      resolve: (ref) => {
        let info: ReturnType<ImageStore['resolve']>;
        try {
          info = store.resolve(ref);
        } catch {
          return undefined;
        }
        if (!info) return undefined;
        const c = store.config(ref);
        return {
          layers: store.layersFor(ref),
          config: {
            Env: c.Env,
            ...(c.Cmd ? { Cmd: c.Cmd } : {}),
            ...(c.Entrypoint ? { Entrypoint: c.Entrypoint } : {}),
            ...(c.WorkingDir ? { WorkingDir: c.WorkingDir } : {}),
            ...(c.User ? { User: c.User } : {}),
            ...(c.Healthcheck ? { Healthcheck: c.Healthcheck } : {}),
          },
        };
      },
      mountRootfs: (layers, upper, work, target) => mountRootfs(layers, upper, work, target),
      unmountRootfs: (target) => unmountRootfs(target),
    };
    // Inside a lab host the cgroup parent carries the host's name, so labs never share a parent.
    const parent = process.env.SHOAL_LAB_HOST ? `shoal-${process.env.SHOAL_LAB_NAME ?? 'lab'}-${process.env.SHOAL_LAB_HOST}` : 'shoal';
    const wm = this.metrics?.worker;
    this.net = new NodeNetwork({
      prefix: this.opts.netnsPrefix ?? 'shoal-',
      log: (l) => this.log(l),
      ...(wm ? { onProgram: (s: number, ok: boolean) => wm.networkProgram(s, ok), onStaleFlows: (n: number) => wm.staleConnectionsDeleted(n) } : {}),
    });
    this.engine = new EngineExecutor({
      root: this.path('tasks'),
      images: resolver,
      cgroupParent: parent,
      network: this.net,
      // Outside the state directory, scoped by node (engine/secrets.ts says why).
      files: new SecretMounts(join('/run/shoal', this.state!.nodeId, 'files'), this.files, (l) => this.log(l)),
      nodeName: this.opts.hostname ?? osHostname(),
      pollMs: 100,
      log: (l) => this.log(l),
      ...(wm ? { onStart: (s: number, ok: boolean) => wm.engineStart(s, ok) } : {}),
    });
    const fetcher = new ImageFetcher(
      store,
      () => this.agent?.knownManagers() ?? this.state?.managers ?? [],
      () => this.creds(),
      (l) => this.log(l),
    );
    this.puller = new PullingExecutor(this.engine, fetcher);
    return this.puller;
  }

  private async startManager(bootstrap: boolean): Promise<void> {
    managerTiering(); // V8's default optimization budget for the manager's hot loops (daemon/node-flags.ts)
    // Loaded before the port opens, so no request ever finds the port open and the manager missing.
    const [{ Manager }, { raftSnapshotOption, unsafeRaftOption }] = await Promise.all([import('../manager/manager.ts'), import('../manager/raft/node.ts')]);
    const st = this.state!;
    const creds = this.creds();
    // Client certificates are asked for but not required: /v1/ca and /v1/join serve anonymous joiners.
    const limits = { ...DEFAULT_SERVER_LIMITS, ...this.opts.serverLimits };
    // Agents' handshakes wait their turn behind the control API, Raft and joins (a new leader takes every
    // node's reconnect at once).
    const admission = new Admission<TLSSocket>();
    const held = sniAdmission(admission);
    this.stopAdmission = this.logAdmission(admission.stats);
    this.secure = createHttpsServer(
      { ...creds, requestCert: true, rejectUnauthorized: false, ...serverOptions(limits), SNICallback: held.SNICallback },
      (req, res) => void this.onSecure(req, res),
    );
    this.guardStats = guardServer(this.secure, (p) => WEBSOCKET_PATHS.has(p), limits).stats;
    const [host, port] = splitHostPort(st.listen);
    // A restarted daemon may briefly find its port still held (the previous process is exiting).
    for (let attempt = 0; ; attempt++) {
      try {
        await new Promise<void>((resolve, reject) => {
          this.secure!.once('error', reject);
          this.secure!.listen({ port, host, backlog: LISTEN_BACKLOG }, () => {
            this.secure!.off('error', reject);
            resolve();
          });
        });
        break;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EADDRINUSE' || attempt >= 50) throw e;
        this.log(`port ${port} is in use; retrying`);
        await new Promise((r) => setTimeout(r, 200));
      }
    }
    this.keyRing = this.loadKeys();
    this.manager = new Manager({
      keys: () => this.keyRing,
      raftCipher: this.raftCipher(),
      nodeId: st.nodeId,
      clusterId: st.clusterId,
      raftDir: this.path('raft'),
      tls: creds,
      advertise: st.advertise,
      server: this.secure,
      bootstrap,
      ...(this.opts.timing ? { timing: this.opts.timing } : {}),
      ...(this.metrics ? { metrics: this.metrics } : {}),
      log: (l) => this.log(`manager: ${l}`),
      // TEST ONLY: SHOAL_UNSAFE_RAFT=localReads runs a deliberately broken Raft (linearizability control).
      ...unsafeRaftOption(process.env),
      // Snapshot cadence for benchmarks (bench:scale sets it to see snapshots at small sizes).
      ...raftSnapshotOption(process.env),
      // Real containers need real images: pin every service image to a digest some manager holds.
      ...(this.opts.executor !== 'test' && typeof this.opts.executor !== 'function'
        ? {
            resolveImage: (ref: string) => {
              const self = this.state!.advertise;
              const peers = (this.manager?.managerAddrs() ?? []).map((a) => a.addr).filter((a) => a !== self);
              const pull = async (r: string) => (namesRegistry(r) ? pinnedRef(this.imageStore(), (await this.pull(r)).name) : null);
              return resolveInCluster(ref, this.imageStore(), peers, this.creds(), 3_000, pull);
            },
          }
        : {}),
    });
    await this.manager.start();
    this.watchAutolock(this.manager);
    if (!this.keyRing) void this.fetchKeys(this.manager);
    await this.startDockerApi(this.manager, host);
  }

  /** The Docker Engine API beside the control API: TCP with mutual TLS, and a root-only socket. */
  private async startDockerApi(m: Manager, host: string): Promise<void> {
    const [{ DOCKER_PORT, DockerApiServer }, { dockerDeps }] = await Promise.all([
      import('../manager/docker-api/server.ts'),
      import('../manager/docker-api/from-manager.ts'),
    ]);
    const port = this.opts.dockerPort === undefined ? DOCKER_PORT : this.opts.dockerPort;
    this.docker = new DockerApiServer({
      deps: dockerDeps(m, this.opts.hostname),
      ...(port !== null ? { tcp: { host, port } } : {}),
      tls: () => this.creds(),
      certProblem: (raw, roles) => m.certProblem(raw, roles),
      leaderPort: port ?? DOCKER_PORT,
      log: (l) => this.log(l),
    });
    await this.docker.start();
  }

  /**
   * This manager's own key for its Raft log and snapshots (<state-dir>/keys/raft.json), made on first use.
   * Never shared: entries travel between managers decrypted inside mutual TLS (docs/design/security.md).
   */
  private raftCipher(): RaftCipher {
    let ring = loadKeyRing(this.opts.stateDir, { name: RAFT_KEY_FILE, unlockKey: this.unlockKey });
    if (!ring) {
      ring = KeyRing.generate(randomBytes, new Date());
      saveKeyRing(this.opts.stateDir, ring, { name: RAFT_KEY_FILE, unlockKey: this.unlockKey, random: randomBytes });
    }
    this.raftRing = ring;
    return new RaftCipher(ring, randomBytes);
  }

  /** `cluster unlock`: checks the key against this manager's wrapped Raft key file, then starts. */
  private unlocking = false;

  async unlock(b: { key?: unknown }): Promise<{ unlocked: true }> {
    if (!this.locked) throw new ApiError(409, 'ENOTLOCKED', 'this node is not locked');
    if (this.unlocking) throw new ApiError(409, 'EUNLOCKING', 'this node is being unlocked');
    if (typeof b.key !== 'string') throw badRequest('unlock needs the unlock key');
    let key: Buffer;
    try {
      key = parseUnlockKey(b.key);
    } catch (e) {
      throw badRequest((e as Error).message);
    }
    try {
      loadKeyRing(this.opts.stateDir, { name: RAFT_KEY_FILE, unlockKey: key });
    } catch (e) {
      if (e instanceof WrongUnlockKeyError) throw new ApiError(403, 'EWRONGUNLOCKKEY', e.message);
      throw e;
    }
    // Locked (and announced so) until the manager and agent run: a failed start leaves the node locked,
    // so unlock can be tried again, rather than neither locked nor running.
    this.unlocking = true;
    try {
      this.unlockKey = key;
      this.unlockKeyText = b.key.trim();
      rewrapNodeKey(this.path('certs', 'node.key'), key, key, randomBytes); // wrapped, also if written before autolock wrapped node keys
      this.log('unlocked: starting the manager');
      try {
        await this.run(false);
      } catch (e) {
        this.log(`unlock: the manager did not start, still locked: ${(e as Error).message}`);
        if (this.renewTimer) clearTimeout(this.renewTimer);
        this.agent?.stop();
        this.agent = null;
        await this.stopManager().catch(() => {});
        this.unlockKey = null;
        this.unlockKeyText = null;
        this.keyRing = null;
        this.raftRing = null;
        throw e;
      }
      this.locked = false;
      this.stopLockedNotice?.();
      this.stopLockedNotice = null;
    } finally {
      this.unlocking = false;
    }
    return { unlocked: true };
  }

  /**
   * Autolock follows the store: each manager rewraps its own key files when the cluster's unlock key
   * changes (turned on, rotated) and unwraps them when it is turned off. The KEK is never written down.
   */
  private watchAutolock(m: Manager): void {
    // Act only on a current view: a restarted manager's store may lag (commit is learned from the leader),
    // and acting on a stale cluster object would unwrap the files or wrap them with a rotated-out key.
    // So every check is a ReadIndex round first, retried while this manager runs; one at a time.
    let running = false;
    let again = false;
    const check = async (): Promise<void> => {
      if (running) {
        again = true;
        return;
      }
      running = true;
      try {
        do {
          again = false;
          for (;;) {
            if (this.manager !== m) return;
            try {
              await m.raft.read();
              break;
            } catch {
              await new Promise((r) => setTimeout(r, 500));
            }
          }
          if (this.manager !== m) return;
          const c = m.cluster() as { unlockKey?: string } | null;
          if (c) apply(c.unlockKey ?? null);
        } while (again);
      } finally {
        running = false;
      }
    };
    const apply = (text: string | null) => {
      if (text === this.unlockKeyText) return;
      try {
        const key = text === null ? null : parseUnlockKey(text);
        if (this.raftRing) saveKeyRing(this.opts.stateDir, this.raftRing, { name: RAFT_KEY_FILE, unlockKey: key, random: randomBytes });
        if (this.keyRing) saveKeyRing(this.opts.stateDir, this.keyRing, { unlockKey: key, random: randomBytes });
        // The node's TLS key too: a stolen disk must not yield the manager's identity (manager/keys/node-key.ts).
        rewrapNodeKey(this.path('certs', 'node.key'), this.unlockKey, key, randomBytes);
        this.unlockKey = key;
        this.unlockKeyText = text;
        this.log(text === null ? 'autolock off: key files unwrapped' : 'autolock: key files wrapped with the current unlock key');
      } catch (e) {
        this.log(`autolock: rewrapping the key files failed: ${(e as Error).message}`);
      }
    };
    const subscribe = () => {
      if (this.manager !== m) return;
      m.store.watch({ kinds: ['cluster'], onClose: () => setTimeout(subscribe, 100) }, () => void check());
      void check();
    };
    subscribe();
  }

  private loadKeys(): KeyRing | null {
    try {
      return loadKeyRing(this.opts.stateDir, { unlockKey: this.unlockKey });
    } catch (e) {
      this.log(`manager: key file: ${(e as Error).message}`);
      return null;
    }
  }

  /**
   * A manager without the data-encryption keys (it joined, or was promoted) fetches them from a peer
   * over mutual TLS (GET /keys/v1/dek, manager certificates only), retrying while it runs.
   */
  private async fetchKeys(m: Manager): Promise<void> {
    for (let attempt = 0; this.manager === m && !this.keyRing; attempt++) {
      const self = this.state!.advertise;
      const peers = [...new Set([...m.managerAddrs().map((a) => a.addr), ...this.state!.managers])].filter((a) => a !== self);
      try {
        const ring = await fetchKeyRing(peers, this.creds());
        if (this.manager !== m) return;
        saveKeyRing(this.opts.stateDir, ring, { unlockKey: this.unlockKey, random: randomBytes });
        this.keyRing = ring;
        this.log('manager: data-encryption key fetched from a peer');
        return;
      } catch (e) {
        if (attempt % 10 === 0) this.log(`manager: ${(e as Error).message}; retrying`);
      }
      await new Promise((r) => setTimeout(r, 1000));
    }
  }

  private async stopManager(): Promise<void> {
    const m = this.manager;
    this.manager = null;
    await this.docker?.stop();
    this.docker = null;
    await m?.stop();
    const srv = this.secure;
    this.secure = null;
    this.stopAdmission?.();
    this.stopAdmission = null;
    if (srv) {
      await new Promise<void>((r) => srv.close(() => r()));
      srv.closeAllConnections();
    }
  }

  /**
   * Logs, at most every 10 s, what the handshake admission did since the last line, when it shed any or a
   * wait grew longer than any before: a manager taking a reconnect storm says so. Returns a function that
   * stops it.
   */
  private logAdmission(st: AdmissionStats): () => void {
    let last = { admitted: 0, left: 0, shed: 0, longest: 0 };
    const timer = setInterval(() => {
      const now = { admitted: st.admitted, left: st.left, shed: st.shed, longest: st.longestWaitMs };
      if (now.shed === last.shed && now.left === last.left && now.longest === last.longest) return;
      this.log(
        `agent handshakes in the last 10 s: ${now.admitted - last.admitted} admitted (longest wait so far ${Math.round(st.longestWaitMs)} ms), ${now.left - last.left} left while waiting, ${now.shed - last.shed} shed; ${st.waiting} waiting now`,
      );
      last = now;
    }, 10_000);
    timer.unref();
    return () => clearInterval(timer);
  }

  private roleChanging = false;

  /**
   * The managers changed this node's role (promote/demote): get a certificate for the new role, then
   * start or stop the manager. A demoted manager's Raft data is discarded (it rejoins fresh if promoted
   * again); the cluster state lives on the other managers.
   */
  private async changeRole(role: 'manager' | 'worker'): Promise<void> {
    if (this.roleChanging) return;
    this.roleChanging = true;
    try {
      await this.renewNow();
      const certRole = parseCertificate(this.creds().cert).role;
      if (certRole === 'manager' && !this.manager) {
        this.state = { ...this.state!, role: 'manager' };
        this.saveState();
        rmSync(this.path('raft'), { recursive: true, force: true });
        await this.startManager(false);
        this.agent?.announceManager(this.state.advertise);
        this.log('promoted: manager started');
      } else if (certRole === 'worker' && this.manager) {
        await this.stopManager();
        rmSync(this.path('raft'), { recursive: true, force: true });
        // A worker holds no keys: they open every secret of the cluster.
        removeKeyRing(this.opts.stateDir);
        this.keyRing = null;
        this.raftRing = null;
        this.unlockKey = null;
        this.unlockKeyText = null;
        this.state = { ...this.state!, role: 'worker' };
        this.saveState();
        this.log('demoted: manager stopped');
      }
    } finally {
      this.roleChanging = false;
    }
  }

  private async onSecure(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const m = this.manager;
    try {
      if (!m) throw new ApiError(503, 'ENOTMANAGER', 'this node is not a manager');
      if (await m.handlePublic(req, res)) return;
      if (!(req.socket as TLSSocket).authorized) {
        // Anonymous clients reach /v1/ca and /v1/join only; nothing else is worth keeping their connection for.
        res.setHeader('connection', 'close');
        throw new ApiError(401, 'EUNAUTHENTICATED', tlsRefusal((req.socket as TLSSocket).authorizationError));
      }
      if (
        await serveImages(
          req,
          res,
          () => this.imageStore(),
          (raw, roles) => m.certProblem(raw, roles),
          (cn, role, ref) => mayExportImage(m, cn, role, ref),
        )
      )
        return;
      if (serveKeys(req, res, { ring: () => this.keyRing, certProblem: (raw, roles) => m.certProblem(raw, roles) })) return;
      const path = (req.url ?? '').split('?')[0] ?? '';
      if (!path.startsWith('/v1/')) throw new ApiError(404, 'ENOTFOUND', `no endpoint ${req.method} ${path}`);
      const tls = req.socket as TLSSocket;
      if (!tls.authorized) throw new ApiError(401, 'EUNAUTHENTICATED', tlsRefusal(tls.authorizationError));
      const cert = tls.getPeerCertificate();
      const problem = m.certProblem(cert.raw, ['admin']);
      if (problem) throw new ApiError(403, 'EFORBIDDEN', problem);
      // Clients keep their list of managers fresh from every answer (for failover).
      res.setHeader(
        'x-shoal-managers',
        m
          .managerAddrs()
          .map((a) => a.addr)
          .join(','),
      );
      if (!(await m.handleControl(req, res, String(cert.subject.CN)))) throw new ApiError(404, 'ENOTFOUND', `no endpoint ${req.method} ${path}`);
    } catch (e) {
      sendError(res, e);
    }
  }

  /** Renews this node's certificate at a random point between 50 % and 80 % of its life. */
  private scheduleRenewal(): void {
    if (this.renewTimer) clearTimeout(this.renewTimer);
    const info = parseCertificate(this.creds().cert);
    // notBefore is back-dated for clock skew; the certificate's life is counted from its issue.
    const issued = new Date(Math.min(info.notBefore.getTime() + CLOCK_SKEW_MS, info.notAfter.getTime()));
    const at = renewalTime(issued, info.notAfter, Math.random).getTime();
    const delay = Math.max(1000, Math.min(at - Date.now(), 2 ** 31 - 1));
    this.renewTimer = setTimeout(
      () =>
        void this.renewNow().catch((e) => {
          this.log(`certificate renewal failed: ${(e as Error).message}; retrying in 5 s`);
          this.renewTimer = setTimeout(() => this.scheduleRenewal(), 5000);
        }),
      delay,
    );
    this.renewTimer.unref();
  }

  /** The renewal in flight: one at a time, or a second CSR's certificate would be installed with the first key. */
  private renewing: Promise<void> | null = null;

  renewNow(): Promise<void> {
    this.renewing ??= this.renewOnce().finally(() => {
      this.renewing = null;
    });
    return this.renewing;
  }

  private async renewOnce(): Promise<void> {
    if (!this.agent) throw new Error('not running');
    const key = await generateKeyPem();
    const r = await this.agent.renew(createCsr({ keyPem: key, nodeId: this.state!.nodeId }));
    this.installCertificate(r.certPem, r.caCertPem, key);
  }

  private installCertificate(certPem: string, caPem: string, key: string): void {
    this.writeCerts(key, certPem, caPem);
    const creds = this.creds();
    this.secure?.setSecureContext({ ...creds });
    this.manager?.reloadTls(creds);
    this.docker?.refreshTls();
    // The dispatcher session moves to a connection made with the new certificate before the old one
    // closes: a root rotation completes only once the leader has seen it, and no session is lost then.
    this.agent?.handover();
    this.log(`certificate renewed (valid until ${parseCertificate(certPem).notAfter.toISOString()})`);
    this.scheduleRenewal();
  }

  private writeCerts(key: string, cert: string, ca: string): void {
    // Under autolock a manager's key is written wrapped; a worker's (demoted, or never a manager) plain.
    const wrapped = this.unlockKey && parseCertificate(cert).role === 'manager' ? this.unlockKey : null;
    writeNodeKey(this.path('certs', 'node.key'), key, wrapped, randomBytes);
    atomicWrite(this.path('certs', 'node.crt'), cert, 0o644);
    atomicWrite(this.path('certs', 'ca.crt'), ca, 0o644);
  }

  private saveState(): void {
    atomicWrite(this.path('node.json'), JSON.stringify(this.state, null, 2), 0o600);
  }
}

export interface InitRequest {
  forceNewCluster?: boolean;
  advertiseAddr?: string;
  listenPort?: number;
}

export interface InitResult {
  clusterId: string;
  nodeId: string;
  managers: string[];
  joinTokens: { worker: string; manager: string };
  admin: { key: string; cert: string; ca: string };
}

export interface JoinRequest {
  token: string;
  remote: string;
  advertiseAddr?: string;
  listenPort?: number;
}

interface JoinResponse {
  nodeId: string;
  role: 'manager' | 'worker';
  certPem: string;
  caCertPem: string;
  clusterId: string;
  managers: { id: string; addr: string }[];
}

// -------------------------------------------------------------------- helpers

/**
 * Turns --advertise-addr (an IPv4 address or an interface name) into an address. When it is omitted
 * and the host has more than one candidate, refuse to guess and list them (a classic Swarm pitfall).
 */
export function resolveAdvertise(given: string | undefined): string {
  const ifaces = networkInterfaces();
  const candidates: { iface: string; address: string }[] = [];
  for (const [name, addrs] of Object.entries(ifaces)) {
    for (const a of addrs ?? []) if (a.family === 'IPv4' && !a.internal) candidates.push({ iface: name, address: a.address });
  }
  if (given) {
    if (/^\d+\.\d+\.\d+\.\d+$/.test(given)) {
      if (!candidates.some((c) => c.address === given) && given !== '127.0.0.1') {
        throw badRequest(
          `--advertise-addr ${given} is not an address of this host (candidates: ${candidates.map((c) => `${c.address} on ${c.iface}`).join(', ') || 'none'})`,
        );
      }
      return given;
    }
    const byName = candidates.filter((c) => c.iface === given);
    if (byName.length === 0)
      throw badRequest(
        `--advertise-addr ${given}: no such interface with an IPv4 address (candidates: ${candidates.map((c) => `${c.address} on ${c.iface}`).join(', ') || 'none'})`,
      );
    return byName[0]!.address;
  }
  if (candidates.length === 1) return candidates[0]!.address;
  if (candidates.length === 0) throw badRequest('no non-loopback IPv4 address found: pass --advertise-addr');
  throw badRequest(`this host has several addresses; choose one with --advertise-addr: ${candidates.map((c) => `${c.address} (${c.iface})`).join(', ')}`);
}

/**
 * Managers may fetch any image (they pin images for the whole cluster); a worker only the image of a
 * task assigned to it (security review, finding 9). Compared by digest, the part that identifies it.
 */
function mayExportImage(m: Manager, cn: string, role: string, ref: string): boolean {
  if (role === 'manager') return true;
  const digest = ref.slice(ref.indexOf('@') + 1);
  if (!digest.startsWith('sha256:')) return false;
  const tasks = m.store.view((tx) => tx.list('task')) as { nodeId?: string; spec: { image: string } }[];
  return tasks.some((t) => t.nodeId === cn && t.spec.image.slice(t.spec.image.indexOf('@') + 1) === digest);
}

/** A TLS verification failure in words a user can act on. */
function tlsRefusal(code: unknown): string {
  const c = String(code ?? '');
  if (c === 'CERT_HAS_EXPIRED') return 'the client certificate has expired';
  if (c === 'CERT_NOT_YET_VALID') return 'the client certificate is not valid yet (check the clocks)';
  if (c === '' || c === 'null') return "a client certificate signed by this cluster's CA is required (none was presented)";
  return `a client certificate signed by this cluster's CA is required (${c})`;
}

async function fetchCa(remote: string): Promise<string> {
  const out = await httpsRaw(remote, 'GET', '/v1/ca', undefined, { insecure: true });
  if (out.status !== 200) throw new ApiError(502, 'ECAFETCH', `could not fetch the CA certificate from ${remote}: HTTP ${out.status}`);
  return out.text;
}
