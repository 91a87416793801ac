// A manager: one Raft replica of the cluster store plus, on the leader, the control loops that own
// cluster membership and the workload. This file only wires the parts together and starts and stops
// them with leadership; each part lives in its own module:
//
//   members.ts               the manager set: addresses, leader, reachability
//   api/gate.ts              leader-only writes, linearizable reads, update-with-retry, quorum errors
//   dispatcher/dispatcher.ts node sessions: assignments, status, NetViews, heartbeats and Down detection
//   role-manager.ts          role changes (certificate nudges) and learner promotion
//   api/{join,cluster,nodes,services,networks,remote}.ts   the HTTP routes
//
// Every endpoint sits on the node's one secure port; the daemon routes requests here after
// authenticating the caller.
import { electionTimeoutFor, tasksToSizeFor } from './election-timing.ts';
import type { ElectionTimeout } from './election-timing.ts';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import type { Duplex } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { ApiError, Router, sendError } from './api/http.ts';
import { registerServiceRoutes } from './api/services.ts';
import { registerNetworkRoutes } from './api/networks.ts';
import { registerSecretRoutes } from './api/secrets.ts';
import type { KeyRing } from './keys/keyring.ts';
import type { RaftCipher } from './raft/encrypt.ts';
import { registerRemoteRoutes, type RemoteCalls } from './api/remote.ts';
import { registerClusterRoutes, readCluster } from './api/cluster.ts';
import { registerNodeRoutes } from './api/nodes.ts';
import { registerCaRoutes } from './api/ca.ts';
import { registerEventRoutes } from './api/events.ts';
import { EventFeed } from './events/feed.ts';
import { JoinApi } from './api/join.ts';
import { Gate } from './api/gate.ts';
import { SchedulerRunner } from './scheduler/runner.ts';
import { WriteBurst } from './store/write-burst.ts';
import { AllocatorRunner, readHostRoutes } from './allocator/runner.ts';
import { Orchestrator } from './orchestrator/runner.ts';
import { AutoscaleRunner } from './autoscale/runner.ts';
import { caDigest, verifyNodeCertificate } from './ca/pki.ts';
import { addAdmin, deniedFor } from './ca/revocation.ts';
import { acceptedRoots } from './ca/rotation.ts';
import { RotationRunner } from './ca/rotation-runner.ts';
import { LockedNodes } from './keys/locked.ts';
import { makeJoinToken } from './ca/tokens.ts';
import { Dispatcher } from './dispatcher/dispatcher.ts';
import type { ManagerAddr } from '../api/dispatcher.ts';
import { RoleManager } from './role-manager.ts';
import { Members, raftUrl } from './members.ts';
import { RaftNode, type StateMachine } from './raft/node.ts';
import type { UnsafeFlags } from './raft/core.ts';
import { SqliteRaftStorage } from './raft/storage-sqlite.ts';
import { WsRaftTransport } from './raft/transport-ws.ts';
import type { Entry } from './raft/types.ts';
import { newId } from './store/ids.ts';
import { CLUSTER_ID, defaultClusterSpec, type Cluster, type Node as NodeObj } from '../api/objects.ts';
import { Store } from './store/store.ts';
import type { DaemonMetrics } from '../metrics/daemon-metrics.ts';
import { managerClusterView } from './metrics-view.ts';

/** How often the election timeout is checked against the store's size (election-timing.ts). */
const ELECTION_TUNE_MS = 1000;

export interface ManagerTiming {
  electionMs?: number;
  electionJitterMs?: number;
  heartbeatMs?: number;
}

/** How long Raft links opened with a retired root's certificates may stay while new dials replace them. */
const ROOT_LINK_GRACE_MS = 5_000;

export interface ManagerOptions {
  nodeId: string;
  clusterId: string;
  raftDir: string;
  /** Seals the Raft log and snapshots at rest with this manager's own key (manager/raft/encrypt.ts). */
  raftCipher?: RaftCipher | null;
  tls: { key: string; cert: string; ca: string };
  /** host:port others use to reach this manager's secure port. */
  advertise: string;
  server: HttpsServer;
  /** A brand-new cluster: bootstrap Raft with this node as the only voter. */
  bootstrap?: boolean;
  timing?: ManagerTiming;
  log?: (line: string) => void;
  /** Pins service images to digests (see ServiceApiDeps.resolveImage). */
  resolveImage?: (ref: string) => Promise<string>;
  /** TEST ONLY: a deliberately broken Raft (SHOAL_UNSAFE_RAFT, see manager/raft/node.ts). */
  unsafeRaft?: UnsafeFlags;
  /** Raft snapshot cadence (RaftNodeOptions snapshotEvery / keepEntries); defaults when absent. */
  snapshotEvery?: number;
  keepEntries?: number;
  /** The data-encryption keys that seal secrets (manager/keys); null while this manager has none yet. */
  keys?: () => KeyRing | null;
  /** The daemon's metrics (--metrics-addr); absent: no observers are installed. */
  metrics?: DaemonMetrics;
}

/** How often the leader checks heartbeats, roles and learners. */
const LEADER_TICK_MS = 100;
/** A leader tick this much later than its interval is a stall of the leader, not of its nodes. */
const LEADER_STALL_MS = 250;

export class Manager {
  readonly raft: RaftNode;
  readonly store: Store;
  /** The cluster's events as this manager derives them from the applied log (manager/events). */
  readonly events: EventFeed;
  /** Leader-only control loops (orchestrator, scheduler, …) started and stopped with leadership. */
  readonly leaderHooks: { start(): void; stop(): void }[] = [];
  private readonly transport: WsRaftTransport;
  private readonly members: Members;
  private readonly gate: Gate;
  private readonly dispatcher: Dispatcher;
  private readonly roles: RoleManager;
  /** Root CA rotation: the leader's reconciler (manager/ca/rotation-runner.ts). */
  private readonly rotation: RotationRunner;
  /** Managers that say they are up and locked (autolock): shown as Locked by `node ls`. */
  private readonly lockedNodes = new LockedNodes();
  private readonly joinApi: JoinApi;
  private readonly log: (line: string) => void;
  private readonly router = new Router<{ cn: string }>();
  private readonly onUpgrade: (req: IncomingMessage, socket: Duplex, head: Buffer) => void;
  private leaderTimer: NodeJS.Timeout | null = null;
  private unwatchDeny: (() => void) | null = null;
  private lastDenyList: { deny: string; roots: string } | null = null;
  private leaderBusy = false;
  /** When the leader tick last fired (stall detection); null until the first tick of a leadership. */
  private lastLeaderTickAt: number | null = null;
  private isLeader = false;
  private stopped = false;
  /** Re-reads the task count and adjusts Raft's election timeout (election-timing.ts). */
  private electionTuner: NodeJS.Timeout | null = null;
  private readonly baseElection: ElectionTimeout;
  /** The autoscaler (a leader hook); its latest decisions are served by GET /v1/services/ID/autoscale. */
  private readonly autoscale: AutoscaleRunner;

  constructor(private readonly opts: ManagerOptions) {
    this.log = opts.log ?? (() => {});
    this.store = new Store({ propose: (data) => this.raft.propose(data), proposer: opts.nodeId });
    const store = this.store;
    const sm: StateMachine = {
      apply: (e: Entry) => store.apply({ index: e.index, data: e.data, term: e.term }),
      snapshot: () => store.snapshot(),
      snapshotInSteps: () => store.snapshotInSteps(),
      restore: (d) => store.restore(d),
    };
    this.transport = new WsRaftTransport({
      id: opts.nodeId,
      tls: opts.tls,
      server: opts.server,
      // Only managers of this cluster whose certificate was not revoked may speak Raft.
      authorize: (_cn, cert) => this.certAllowed(cert.raw, 'manager'),
    });
    const t = opts.timing ?? {};
    this.baseElection = { electionMs: t.electionMs ?? 1000, jitterMs: t.electionJitterMs ?? 500 };
    this.raft = new RaftNode({
      id: opts.nodeId,
      storage: new SqliteRaftStorage(opts.raftDir, {
        cipher: opts.raftCipher ?? null,
        ...(opts.metrics ? { onSync: (s: number) => opts.metrics!.raft.fsync(s) } : {}),
      }),
      ...(opts.metrics ? { onProposal: (s: number, ok: boolean) => opts.metrics!.raft.proposal(s, ok) } : {}),
      transport: this.transport,
      stateMachine: sm,
      electionMs: t.electionMs ?? 1000,
      electionJitterMs: t.electionJitterMs ?? 500,
      heartbeatMs: t.heartbeatMs ?? 100,
      ...(opts.bootstrap ? { bootstrap: [{ id: opts.nodeId, url: raftUrl(opts.advertise) }] } : {}),
      log: (l) => this.log(`raft: ${l}`),
      ...(opts.unsafeRaft ? { unsafe: opts.unsafeRaft } : {}),
      ...(opts.snapshotEvery !== undefined ? { snapshotEvery: opts.snapshotEvery } : {}),
      ...(opts.keepEntries !== undefined ? { keepEntries: opts.keepEntries } : {}),
    });
    this.events = new EventFeed(this.store, this.raft, {}, (l) => this.log(l));
    this.members = new Members(opts.nodeId, this.raft, this.transport);
    this.gate = new Gate(this.raft, this.store, this.members, () => this.raft.electionTimeout.electionMs);
    this.dispatcher = new Dispatcher({
      store: this.store,
      raft: this.raft,
      gate: this.gate,
      members: this.members,
      clusterId: opts.clusterId,
      certProblem: (raw, roles) => this.certProblem(raw, roles),
      keys: opts.keys ?? (() => null),
      log: this.log,
    });
    this.rotation = new RotationRunner({
      store: this.store,
      update: (fn) => this.gate.update(fn),
      hasSession: (id) => this.dispatcher.hasSession(id),
      send: (id, m) => this.dispatcher.send(id, m),
      log: this.log,
    });
    this.roles = new RoleManager({ store: this.store, raft: this.raft, send: (id, m) => this.dispatcher.send(id, m), log: this.log });
    this.joinApi = new JoinApi({
      store: this.store,
      raft: this.raft,
      gate: this.gate,
      members: this.members,
      clusterId: opts.clusterId,
      caCertPem: opts.tls.ca,
      locked: { nodes: this.lockedNodes, reachable: (id) => this.members.isReachable(id) },
      log: this.log,
    });
    this.autoscale = new AutoscaleRunner(this.store, { usageOf: (id) => this.remote.usageOf(id), log: (l) => this.log(l) });
    // The orchestrator's passes write in bursts; the scheduler places each burst's tasks together.
    const burst = new WriteBurst();
    this.leaderHooks.push(
      new Orchestrator(this.store, {
        newId,
        burst,
        log: (l) => this.log(`orchestrator: ${l}`),
        ...(opts.metrics ? { onReconcile: (r) => opts.metrics!.cluster.orchestratorReconcile(r) } : {}),
      }),
      new AllocatorRunner(this.store, { newId, hostRoutes: readHostRoutes, log: (l) => this.log(l) }),
      new SchedulerRunner(this.store, {
        burst,
        log: (l) => this.log(`scheduler: ${l}`),
        ...(opts.metrics ? { onPass: (p) => opts.metrics!.cluster.schedulerPass(p) } : {}),
      }),
      this.autoscale,
    );
    this.routes();
    this.onUpgrade = (req, socket, head) => void this.dispatcher.handleUpgrade(req, socket, head);
    if (opts.metrics) {
      const m = opts.metrics;
      this.router.observe = (method, route, status, s) => m.api.request(method, route, status, s);
      m.raft.source(() => this.raft.status());
      m.cluster.source(managerClusterView({ store: this.store, raft: this.raft, dispatcherStats: () => this.dispatcher.stats(), remote: () => this.remote }));
    }
  }

  /** Logs / exec requests to nodes over their sessions, and the usage they report. */
  get remote(): RemoteCalls {
    return this.dispatcher.remote;
  }

  async start(): Promise<void> {
    await this.transport.start();
    this.opts.server.on('upgrade', this.onUpgrade);
    this.raft.onLeaderChange(() => this.leadershipChanged());
    if (this.opts.metrics) this.raft.onLeaderChange(() => this.opts.metrics!.raft.leaderChanged());
    this.watchDenyList();
    this.raft.start();
    this.tuneElectionTimeout();
    this.electionTuner = setInterval(() => this.tuneElectionTimeout(), ELECTION_TUNE_MS);
    this.electionTuner.unref();
    this.leadershipChanged();
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.electionTuner !== null) clearInterval(this.electionTuner);
    this.electionTuner = null;
    this.stopLeaderLoops();
    this.unwatchDeny?.();
    this.events.stop();
    this.opts.server.off('upgrade', this.onUpgrade);
    this.dispatcher.stop();
    await this.raft.stop();
    this.opts.metrics?.raft.source(null);
    this.opts.metrics?.cluster.source(null);
  }

  /** Lengthens (or shortens again) the election timeout with the tasks in the store or asked for. */
  private tuneElectionTimeout(): void {
    if (this.stopped) return;
    const want = electionTimeoutFor(
      this.store.view((tx) => tasksToSizeFor(tx.count('task'), tx.list('service'), tx.count('node'))),
      this.baseElection,
    );
    const cur = this.raft.electionTimeout;
    if (want.electionMs === cur.electionMs && want.jitterMs === cur.jitterMs) return;
    try {
      this.raft.setElectionTimeout(want.electionMs, want.jitterMs);
    } catch (e) {
      // A timer callback: an error here must not end the daemon; the timeout in force stays.
      this.log(`election timeout not changed: ${(e as Error).message}`);
    }
  }

  // ------------------------------------------------------------------ cluster bootstrap

  /** Writes the initial cluster objects of a brand-new cluster (called once, on the first leader). */
  async initialize(init: {
    caCertPem: string;
    caKeyPem: string;
    self: Omit<NodeObj, 'version' | 'createdAt' | 'updatedAt'>;
    name?: string;
    admin?: { name: string; serial: string; notAfter: Date };
  }): Promise<void> {
    await this.waitLeader(10_000);
    const digest = caDigest(init.caCertPem);
    await this.store.update((tx) => {
      if (tx.get('cluster', CLUSTER_ID)) return;
      const cluster = {
        id: CLUSTER_ID,
        kind: 'cluster',
        spec: defaultClusterSpec(init.name ?? 'default'),
        status: {},
        clusterId: this.opts.clusterId,
        rootCa: { caCertPem: init.caCertPem, caKeyPem: init.caKeyPem },
        joinTokens: { worker: makeJoinToken(digest), manager: makeJoinToken(digest) },
        denyList: { removedNodes: [], revokedSerials: [] },
        // The first admin certificate (cluster init's context file), so it can be listed and revoked.
        ...(init.admin ? { admins: addAdmin([], init.admin, new Date()) } : {}),
      } as unknown as Cluster;
      tx.create(cluster);
      tx.create(init.self as unknown as NodeObj);
    });
  }

  async waitLeader(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (this.raft.status().leader) return;
      await sleep(10);
    }
    throw new ApiError(503, 'ENOLEADER', 'no leader elected');
  }

  cluster(): Cluster | null {
    return readCluster(this.store);
  }

  // ------------------------------------------------------------------ authorization

  /** Is this DER certificate a valid, unrevoked certificate of this cluster with one of `roles`? */
  certAllowed(raw: Buffer | undefined, ...roles: string[]): boolean {
    return this.certProblem(raw, roles) === null;
  }

  /** The reason a (DER) certificate is refused, or null. */
  certProblem(raw: Buffer | undefined, roles: string[]): string | null {
    if (!raw) return 'a client certificate is required';
    const c = this.cluster();
    // Demoted managers' certificates still open a worker session (to renew), nothing manager-only.
    const denied = deniedFor(c?.denyList, roles);
    // The roots in the store, not this node's ca.crt: during a root rotation leaves of both are accepted,
    // and once it completes the old root is refused at once on every manager.
    const roots = c ? acceptedRoots(c.rootCa) : this.opts.tls.ca;
    const res = verifyNodeCertificate(raw, { caCertPem: roots, clusterId: this.opts.clusterId, denied });
    if (!res.ok) return res.reason;
    if (!roles.includes(res.info.role)) return `a ${res.info.role} certificate may not call this endpoint (needs ${roles.join(' or ')})`;
    return null;
  }

  /**
   * Revocation takes effect on open connections too: whenever the replicated deny list changes, Raft
   * links and dispatcher sessions whose certificate is now refused are closed (the control API checks
   * every request anyway). Resubscribes after a store reset (snapshot installed), which closes watches.
   */
  private watchDenyList(): void {
    if (this.stopped) return;
    // Keyed on the deny list and the accepted roots. A revocation closes what it refuses at once. A
    // completed root rotation retires the old root: node sessions have moved to renewed certificates
    // already (agent handover), so only those that did not are closed; Raft links opened with old-root
    // certificates are replaced by new dials before they close (make before break, within 5 s).
    const key = (): { deny: string; roots: string } => {
      const c = this.cluster();
      return { deny: JSON.stringify(c?.denyList ?? null), roots: JSON.stringify(c ? acceptedRoots(c.rootCa) : null) };
    };
    const recheck = (): void => {
      const k = key();
      const was = this.lastDenyList;
      if (was !== null && k.deny === was.deny && k.roots === was.roots) return;
      this.lastDenyList = k;
      const revoked = was === null || k.deny !== was.deny;
      const links = revoked ? this.transport.recheckPeers() : 0;
      const replacing = revoked ? 0 : this.transport.replaceRefusedPeers(ROOT_LINK_GRACE_MS);
      const sessions = this.dispatcher.recheckCertificates();
      if (links + sessions > 0) this.log(`deny list or roots changed: closed ${links} Raft links and ${sessions} node sessions`);
      if (replacing > 0) this.log(`root retired: replacing ${replacing} Raft links opened with its certificates`);
    };
    this.lastDenyList = key();
    this.unwatchDeny = this.store.watch(
      {
        kinds: ['cluster'],
        onClose: () => {
          recheck();
          this.watchDenyList();
        },
      },
      () => recheck(),
    );
  }

  // ------------------------------------------------------------------ HTTP entry points (from the daemon)

  /** Unauthenticated endpoints: CA certificate and join. */
  handlePublic(req: IncomingMessage, res: ServerResponse): Promise<boolean> {
    return this.joinApi.handle(req, res);
  }

  /** Admin control API (`/v1/...`). The caller's certificate was already checked to be an admin one. */
  async handleControl(req: IncomingMessage, res: ServerResponse, cn: string): Promise<boolean> {
    try {
      return await this.router.dispatch({ cn }, req, res);
    } catch (e) {
      sendError(res, e);
      return true;
    }
  }

  private routes(): void {
    const r = this.router;
    const gate = this.gate;
    const leaderOnly = {
      requireLeader: () => gate.requireLeader(),
      linearizable: () => gate.linearizable(),
      write: (fn: Parameters<Gate['write']>[0]) => gate.write(fn),
    };
    registerServiceRoutes(r, {
      store: this.store,
      newId,
      ...leaderOnly,
      ...(this.opts.resolveImage ? { resolveImage: this.opts.resolveImage } : {}),
      usageOf: (id) => this.remote.usageOf(id),
      autoscaleOf: (id) => this.autoscale.lastDecision(id),
    });
    registerNetworkRoutes(r, { store: this.store, newId, ...leaderOnly });
    registerSecretRoutes(r, { store: this.store, newId, ...leaderOnly, keys: this.opts.keys ?? (() => null) });
    registerRemoteRoutes(r, { store: this.store, calls: this.remote, requireLeader: leaderOnly.requireLeader, linearizable: leaderOnly.linearizable });
    registerClusterRoutes(r, {
      store: this.store,
      raft: this.raft,
      gate,
      members: this.members,
      clusterId: this.opts.clusterId,
      broadcast: (m) => this.dispatcher.broadcast(m),
      dispatcherStats: () => this.dispatcher.stats(),
    });
    registerEventRoutes(r, { events: this.events.log });
    registerCaRoutes(r, { store: this.store, gate, clusterId: this.opts.clusterId, managers: () => this.members.managerAddrs().map((a) => a.addr) });
    registerNodeRoutes(r, {
      store: this.store,
      raft: this.raft,
      gate,
      members: this.members,
      selfId: this.opts.nodeId,
      closeSession: (id, code, reason) => this.dispatcher.closeSession(id, code, reason),
      locked: (id) => !this.members.isReachable(id) && this.lockedNodes.isLocked(id, Date.now()),
    });
  }

  // ------------------------------------------------------------------ leader loops

  private leadershipChanged(): void {
    const leader = this.raft.status().role === 'leader';
    if (leader === this.isLeader) return;
    this.isLeader = leader;
    if (leader) this.startLeaderLoops();
    else this.stopLeaderLoops(true);
  }

  private startLeaderLoops(): void {
    this.log('became leader: starting dispatcher and membership loops');
    this.dispatcher.startLeading();
    this.lastLeaderTickAt = null;
    this.leaderTimer = setInterval(() => void this.leaderTick().catch((e) => this.log(`leader loop: ${(e as Error).message}`)), LEADER_TICK_MS);
    for (const hook of this.leaderHooks) hook.start();
  }

  /** Stops the leader's loops; on a lost leadership, agents are sent off to reconnect to the new leader. */
  private stopLeaderLoops(closeSessions = false): void {
    if (this.leaderTimer) clearInterval(this.leaderTimer);
    this.leaderTimer = null;
    for (const hook of this.leaderHooks) hook.stop();
    this.dispatcher.stopLeading(closeSessions);
    this.rotation.reset();
  }

  /** The node's certificate or trust anchor changed (renewal, root rotation): Raft dials use the new ones. */
  reloadTls(tls: { key: string; cert: string; ca: string }): void {
    this.transport.setTls(tls);
  }

  private async leaderTick(): Promise<void> {
    // A tick far later than its interval means this process did not run meanwhile; the dispatcher must
    // not count that time against the nodes' heartbeats (they wait unread in socket buffers).
    const at = Date.now();
    const last = this.lastLeaderTickAt;
    this.lastLeaderTickAt = at;
    if (this.isLeader && last !== null && at - last > LEADER_TICK_MS + LEADER_STALL_MS) this.dispatcher.leaderStalled(last + LEADER_TICK_MS, at);
    if (!this.isLeader || this.leaderBusy) return;
    this.leaderBusy = true;
    try {
      const now = Date.now();
      await this.dispatcher.detectDown(now);
      await this.roles.tick(now);
      await this.rotation.tick(now);
    } finally {
      this.leaderBusy = false;
    }
  }

  // ------------------------------------------------------------------ for the daemon

  managerAddrs(): ManagerAddr[] {
    return this.members.managerAddrs();
  }

  leaderAddr(): ManagerAddr | null {
    return this.members.leaderAddr();
  }

  /** Voters we currently have an open connection to, plus ourselves. */
  reachableManagers(): { reachable: number; total: number } {
    return this.members.reachableManagers();
  }

  /** Throws the error a write must get on a non-leader: a redirect, or no quorum. */
  requireLeader(): void {
    this.gate.requireLeader();
  }

  // ------------------------------------------------------------------ for the Docker API (manager/docker-api)

  /** The control API's routes: the Docker API translates into them in process, never around them. */
  get controlRouter(): Router<{ cn: string }> {
    return this.router;
  }

  get nodeId(): string {
    return this.opts.nodeId;
  }

  get clusterId(): string {
    return this.opts.clusterId;
  }

  /** The image resolver service create pins with (absent with the test executor). */
  get imageResolver(): ((ref: string) => Promise<string>) | undefined {
    return this.opts.resolveImage;
  }
}
