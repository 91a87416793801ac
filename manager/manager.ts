// A manager: one Raft replica of the cluster store plus, on the leader, the control loops that own
// cluster membership (join, heartbeats and Down detection, learner promotion). Every endpoint sits on
// the node's one secure port; the daemon routes requests here after authenticating the caller.
import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import type { TLSSocket } from 'node:tls';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import { ApiError, Router, badRequest, conflict, notFound, readJson, sendError, sendJson, queryParam } from './api/http.ts';
import { registerServiceRoutes } from './api/services.ts';
import { SchedulerRunner } from './scheduler/runner.ts';
import { RemoteCalls, registerRemoteRoutes } from './api/remote.ts';
import { AllocatorRunner, readHostRoutes } from './allocator/runner.ts';
import { registerNetworkRoutes } from './api/networks.ts';
import { canonicalJson, nodeNetViews, type NetSnapshot } from './allocator/netview.ts';
import { Orchestrator } from './orchestrator/runner.ts';
import { caDigest, signNodeCertificate, verifyNodeCertificate } from './ca/pki.ts';
import { formatJoinToken, makeJoinToken, parseJoinToken, tokenMatches, RateLimiter } from './ca/tokens.ts';
import { NodeLiveness } from './dispatcher/liveness.ts';
import { DISPATCHER_PATH, type AgentToManager, type ManagerAddr, type ManagerToAgent } from './dispatcher/protocol.ts';
import { NotLeaderError, RaftNode, type StateMachine } from './raft/node.ts';
import type { UnsafeFlags } from './raft/core.ts';
import { SqliteRaftStorage } from './raft/storage-sqlite.ts';
import { WsRaftTransport } from './raft/transport-ws.ts';
import type { Entry } from './raft/types.ts';
import { CLUSTER_ID, defaultClusterSpec, isTerminalTaskState, taskStateRank, type Cluster, type Node as NodeObj, type Task } from './store/objects.ts';
import type { TaskAssignment, TaskStatusUpdate } from '../worker/executor.ts';
import { Store } from './store/store.ts';

export interface ManagerTiming {
  electionMs?: number;
  electionJitterMs?: number;
  heartbeatMs?: number;
}

export interface ManagerOptions {
  nodeId: string;
  clusterId: string;
  raftDir: string;
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
}

export function newId(): string {
  // 25 characters of base36, like Swarm's ids (~128 bits).
  const b = randomBytes(17);
  let n = 0n;
  for (const x of b) n = (n << 8n) | BigInt(x);
  return n.toString(36).padStart(25, '0').slice(-25);
}

const raftUrl = (advertise: string) => `wss://${advertise}/raft/v1`;
const addrFromRaftUrl = (url: string) => {
  try {
    return new URL(url).host;
  } catch {
    return url;
  }
};

interface Session {
  nodeId: string;
  ws: WebSocket;
}

export class Manager {
  readonly raft: RaftNode;
  readonly store: Store;
  private readonly transport: WsRaftTransport;
  private readonly log: (line: string) => void;
  private readonly router = new Router<{ cn: string }>();
  private readonly wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: 4 << 20 });
  private readonly sessions = new Map<string, Session>();
  private readonly liveness: NodeLiveness;
  private leaderTimer: NodeJS.Timeout | null = null;
  private isLeader = false;
  private readonly joinLimiter = new RateLimiter({ capacity: 100, refillPerSec: 20 });
  private readonly onUpgrade: (req: IncomingMessage, socket: Duplex, head: Buffer) => void;
  private stopped = false;

  constructor(private readonly opts: ManagerOptions) {
    this.log = opts.log ?? (() => {});
    this.store = new Store({ propose: (data) => this.raft.propose(data) });
    const store = this.store;
    const sm: StateMachine = {
      apply: (e: Entry) => store.apply({ index: e.index, data: e.data }),
      snapshot: () => store.snapshot(),
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
    this.raft = new RaftNode({
      id: opts.nodeId,
      storage: new SqliteRaftStorage(opts.raftDir),
      transport: this.transport,
      stateMachine: sm,
      electionMs: t.electionMs ?? 1000,
      electionJitterMs: t.electionJitterMs ?? 500,
      heartbeatMs: t.heartbeatMs ?? 100,
      ...(opts.bootstrap ? { bootstrap: [{ id: opts.nodeId, url: raftUrl(opts.advertise) }] } : {}),
      log: (l) => this.log(`raft: ${l}`),
      ...(opts.unsafeRaft ? { unsafe: opts.unsafeRaft } : {}),
    });
    this.liveness = new NodeLiveness(1000, 3);
    // Leader-only control loops.
    this.leaderHooks.push(
      new Orchestrator(this.store, { newId, log: (l) => this.log(`orchestrator: ${l}`) }),
      new AllocatorRunner(this.store, { newId, hostRoutes: readHostRoutes, log: (l) => this.log(l) }),
      new SchedulerRunner(this.store, { log: (l) => this.log(`scheduler: ${l}`) }),
    );
    this.routes();
    this.onUpgrade = (req, socket, head) => this.handleUpgrade(req, socket, head);
  }

  async start(): Promise<void> {
    await this.transport.start();
    this.opts.server.on('upgrade', this.onUpgrade);
    this.raft.onLeaderChange(() => this.leadershipChanged());
    this.raft.start();
    this.leadershipChanged();
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.stopLeaderLoops();
    this.opts.server.off('upgrade', this.onUpgrade);
    for (const s of this.sessions.values()) s.ws.terminate();
    this.sessions.clear();
    this.wss.close();
    await this.raft.stop();
  }

  // ------------------------------------------------------------------ cluster bootstrap

  /** Writes the initial cluster objects of a brand-new cluster (called once, on the first leader). */
  async initialize(init: { caCertPem: string; caKeyPem: string; self: Omit<NodeObj, 'version' | 'createdAt' | 'updatedAt'> ; name?: string }): Promise<void> {
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
      } as unknown as Cluster;
      tx.create(cluster);
      tx.create(init.self as unknown as NodeObj);
    });
  }

  async waitLeader(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (this.raft.status().leader) return;
      await new Promise((r) => setTimeout(r, 10));
    }
    throw new ApiError(503, 'ENOLEADER', 'no leader elected');
  }

  cluster(): Cluster | null {
    return this.store.view((tx) => (tx.get('cluster', CLUSTER_ID) as Cluster | undefined) ?? null);
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
    const denied = new Set<string>([...(c?.denyList?.removedNodes ?? []), ...(c?.denyList?.revokedSerials ?? [])]);
    const res = verifyNodeCertificate(raw, { caCertPem: this.opts.tls.ca, clusterId: this.opts.clusterId, denied });
    if (!res.ok) return res.reason;
    if (!roles.includes(res.info.role)) return `a ${res.info.role} certificate may not call this endpoint (needs ${roles.join(' or ')})`;
    return null;
  }

  // ------------------------------------------------------------------ HTTP entry points (from the daemon)

  /** Unauthenticated endpoints: CA certificate and join. */
  async handlePublic(req: IncomingMessage, res: ServerResponse): Promise<boolean> {
    const path = (req.url ?? '').split('?')[0];
    if (req.method === 'GET' && path === '/v1/ca') {
      res.writeHead(200, { 'content-type': 'application/x-pem-file' });
      res.end(this.opts.tls.ca);
      return true;
    }
    if (req.method === 'POST' && path === '/v1/join') {
      try {
        const remote = req.socket.remoteAddress ?? '?';
        if (!this.joinLimiter.allow(remote, Date.now())) throw new ApiError(429, 'ERATELIMIT', 'too many join attempts; slow down');
        sendJson(res, 200, await this.join(await readJson(req, 64 << 10)));
      } catch (e) {
        sendError(res, e);
      }
      return true;
    }
    return false;
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
    registerServiceRoutes(r, {
      store: this.store,
      newId,
      requireLeader: () => this.requireLeader(),
      linearizable: () => this.linearizable(),
      write: (fn) => this.write(fn),
      ...(this.opts.resolveImage ? { resolveImage: this.opts.resolveImage } : {}),
      usageOf: (id) => this.remote.usageOf(id),
    });
    registerNetworkRoutes(r, { store: this.store, newId, requireLeader: () => this.requireLeader(), linearizable: () => this.linearizable(), write: (fn) => this.write(fn) });
    registerRemoteRoutes(r, {
      store: this.store,
      calls: this.remote,
      requireLeader: () => this.requireLeader(),
      linearizable: () => this.linearizable(),
    });
    r.add('GET', '/v1/info', async () => ({ ...this.raftInfo(), clusterId: this.opts.clusterId }));
    r.add('GET', '/v1/cluster', async () => {
      await this.linearizable();
      const c = this.cluster();
      if (!c) throw notFound('cluster not initialised');
      const { rootCa: _ca, joinTokens: _t, ...rest } = c as unknown as Record<string, unknown>;
      return { ...rest, raft: this.raftInfo() };
    });
    r.add('POST', '/v1/cluster/update', async (_c, _p, req) => {
      const b = (await readJson(req)) as { heartbeatPeriodMs?: unknown; nodeCertValidityMs?: unknown };
      const hb = b.heartbeatPeriodMs;
      const validity = b.nodeCertValidityMs;
      if (hb !== undefined && (typeof hb !== 'number' || !Number.isInteger(hb) || hb < 100 || hb > 60_000)) {
        throw badRequest('dispatcher heartbeat period must be between 100ms and 60s');
      }
      if (validity !== undefined && (typeof validity !== 'number' || !Number.isInteger(validity) || validity < 5_000 || validity > 10 * 365 * 24 * 3600_000)) {
        throw badRequest('node certificate expiry must be between 5s and 10 years');
      }
      this.requireLeader();
      await this.write((tx) => {
        const c = tx.get('cluster', CLUSTER_ID) as Cluster;
        tx.update({
          ...c,
          spec: {
            ...c.spec,
            ...(hb !== undefined ? { dispatcher: { ...c.spec.dispatcher, heartbeatPeriodMs: hb as number } } : {}),
            ...(validity !== undefined ? { caConfig: { ...c.spec.caConfig, nodeCertValidityMs: validity as number } } : {}),
          },
        } as Cluster);
      });
      return this.cluster()!.spec;
    });
    r.add('POST', '/v1/cluster/rotate-node-certs', async () => {
      this.requireLeader();
      let n = 0;
      for (const s of this.sessions.values()) {
        s.ws.send(JSON.stringify({ t: 'renew-cert' } satisfies ManagerToAgent));
        n++;
      }
      return { notified: n };
    });
    r.add('GET', '/v1/join-tokens', async () => {
      await this.linearizable();
      const c = this.cluster();
      if (!c) throw notFound('cluster not initialised');
      return { ...c.joinTokens, managers: this.managerAddrs().map((m) => m.addr) };
    });
    r.add('POST', '/v1/join-tokens/rotate', async (_ctx, _p, req) => {
      const body = (await readJson(req)) as { role?: string };
      if (body.role !== 'worker' && body.role !== 'manager') throw badRequest('role must be worker or manager');
      this.requireLeader();
      await this.write((tx) => {
        const c = tx.get('cluster', CLUSTER_ID) as Cluster;
        const digest = parseJoinToken(c.joinTokens[body.role as 'worker']).caDigest;
        tx.update({ ...c, joinTokens: { ...c.joinTokens, [body.role as string]: makeJoinToken(digest) } } as Cluster);
      });
      const c = this.cluster()!;
      return { [body.role]: c.joinTokens[body.role as 'worker'] };
    });
    r.add('GET', '/v1/nodes', async () => {
      await this.linearizable();
      return this.store.view((tx) => tx.list('node')).map((n) => this.presentNode(n as NodeObj));
    });
    r.add('GET', '/v1/nodes/:id', async (_c, p) => {
      await this.linearizable();
      return this.presentNode(this.resolveNode(p.id!));
    });
    r.add('POST', '/v1/nodes/:id/update', async (_c, p, req) => {
      const body = (await readJson(req)) as { labelAdd?: Record<string, string>; labelRm?: string[]; availability?: string };
      if (body.availability !== undefined && !['active', 'pause', 'drain'].includes(body.availability)) {
        throw badRequest(`availability must be active, pause or drain (got ${JSON.stringify(body.availability)})`);
      }
      for (const k of Object.keys(body.labelAdd ?? {})) if (!/^[A-Za-z0-9_.\-/]{1,128}$/.test(k)) throw badRequest(`invalid label key ${JSON.stringify(k)}`);
      this.requireLeader();
      const id = this.resolveNode(p.id!).id;
      await this.write((tx) => {
        const n = tx.get('node', id) as NodeObj | undefined;
        if (!n) throw notFound(`node ${p.id} not found`);
        const labels = { ...n.spec.labels, ...(body.labelAdd ?? {}) };
        for (const k of body.labelRm ?? []) {
          if (!(k in labels)) throw badRequest(`node ${n.description?.hostname ?? id} has no label ${k}`);
          delete labels[k];
        }
        tx.update({ ...n, spec: { ...n.spec, labels, ...(body.availability ? { availability: body.availability as NodeObj['spec']['availability'] } : {}) } });
      });
      return this.presentNode(this.resolveNode(id));
    });
    r.add('POST', '/v1/nodes/:id/promote', async (_c, p) => {
      this.requireLeader();
      const n = this.resolveNode(p.id!);
      if (n.spec.role === 'manager') throw conflict(`node ${n.description?.hostname ?? n.id} is already a manager`);
      await this.write((tx) => {
        const cur = tx.get('node', n.id) as NodeObj;
        tx.update({ ...cur, spec: { ...cur.spec, role: 'manager' } });
      });
      return this.presentNode(this.resolveNode(n.id));
    });
    r.add('POST', '/v1/nodes/:id/demote', async (_c, p) => {
      this.requireLeader();
      const n = this.resolveNode(p.id!);
      const name = n.description?.hostname ?? n.id;
      if (n.spec.role !== 'manager') throw conflict(`node ${name} is not a manager`);
      const st = this.raft.status();
      if (st.voters.includes(n.id)) {
        const after = st.voters.length - 1;
        if (after === 0) throw conflict(`cannot demote ${name}: it is the last manager`);
        const r = this.reachableManagers();
        const targetReachable = n.id === this.opts.nodeId || this.transport.connections(n.id).some((x) => x.state === 'open');
        const reachableAfter = r.reachable - (targetReachable ? 1 : 0);
        const need = Math.floor(after / 2) + 1;
        if (reachableAfter < need) {
          throw conflict(`demoting ${name} would lose quorum: ${reachableAfter} of the remaining ${after} managers are reachable, and ${need} are needed`);
        }
        if (n.id === this.opts.nodeId) {
          // The leader cannot remove itself cleanly while leading: hand over first, then the client retries there.
          const target = st.voters.filter((v) => v !== n.id).find((v) => this.transport.connections(v).some((x) => x.state === 'open'));
          if (!target) throw conflict(`cannot demote ${name}: no other reachable manager to hand leadership to`);
          await this.raft.transferLeadership(target);
          const l = this.leaderAddr();
          throw new ApiError(421, 'ENOTLEADER', `leadership handed to ${l?.addr ?? target}; retry there`, { leader: l?.addr ?? '' });
        }
        await this.retryConf(() => this.raft.removeMember(n.id, { demote: true }));
      } else if (st.learners.includes(n.id)) {
        await this.retryConf(() => this.raft.removeMember(n.id, { demote: true }));
      }
      await this.write((tx) => {
        const cur = tx.get('node', n.id) as NodeObj;
        tx.update({ ...cur, spec: { ...cur.spec, role: 'worker' } });
      });
      return this.presentNode(this.resolveNode(n.id));
    });
    r.add('DELETE', '/v1/nodes/:id', async (_c, p, req) => {
      const force = queryParam(req, 'force') === '1';
      this.requireLeader();
      const n = this.resolveNode(p.id!);
      if (n.spec.role === 'manager' || this.raft.status().voters.includes(n.id)) {
        throw conflict(`node ${n.description?.hostname ?? n.id} is a manager: demote it before removing it`);
      }
      if (n.status.state === 'ready' && !force) {
        throw conflict(`node ${n.description?.hostname ?? n.id} is ready: stop it first, or use --force`);
      }
      await this.write((tx) => {
        const c = tx.get('cluster', CLUSTER_ID) as Cluster;
        tx.delete('node', n.id);
        tx.update({ ...c, denyList: { ...c.denyList, removedNodes: [...c.denyList.removedNodes, n.id] } } as Cluster);
      });
      this.sessions.get(n.id)?.ws.close(4003, 'node removed');
      return { removed: n.id };
    });
  }

  // ------------------------------------------------------------------ join

  private async join(body: unknown): Promise<unknown> {
    const b = body as { token?: unknown; csr?: unknown; advertise?: unknown; hostname?: unknown };
    if (typeof b.token !== 'string') throw badRequest('join needs a token');
    if (typeof b.csr !== 'string') throw badRequest('join needs a certificate signing request');
    if (typeof b.advertise !== 'string' || !/^[^\s:]+:\d+$/.test(b.advertise)) throw badRequest('join needs advertise as host:port');
    let parsed;
    try {
      parsed = parseJoinToken(b.token);
    } catch (e) {
      throw new ApiError(401, 'EBADTOKEN', (e as Error).message);
    }
    this.requireLeader();
    const c = this.cluster();
    if (!c) throw new ApiError(503, 'ENOTREADY', 'cluster not initialised yet');
    let role: 'worker' | 'manager';
    const presented = formatJoinToken(parsed); // canonical form: stray whitespace or case do not matter
    if (tokenMatches(presented, c.joinTokens.manager)) role = 'manager';
    else if (tokenMatches(presented, c.joinTokens.worker)) role = 'worker';
    else throw new ApiError(401, 'EBADTOKEN', parsed.caDigest === parseJoinToken(c.joinTokens.worker).caDigest ? 'invalid join token (wrong secret, or it was rotated)' : 'invalid join token: it belongs to another cluster');
    const nodeId = newId();
    const host = b.advertise.split(':')[0]!;
    const issued = signOrBadRequest({
      caCertPem: c.rootCa.caCertPem,
      caKeyPem: c.rootCa.caKeyPem,
      csrPem: b.csr,
      nodeId,
      role,
      clusterId: this.opts.clusterId,
      sans: /^\d+\.\d+\.\d+\.\d+$/.test(host) ? { ips: [host] } : { dns: [host] },
      validityMs: c.spec.caConfig?.nodeCertValidityMs ?? 90 * 24 * 3600_000,
    });
    const now = new Date().toISOString();
    await this.write((tx) => {
      tx.create({
        id: nodeId,
        kind: 'node',
        spec: { labels: {}, availability: 'active', role },
        description: { hostname: typeof b.hostname === 'string' ? b.hostname : host, platform: { os: 'linux', arch: process.arch }, resources: { nanoCpus: 0, memoryBytes: 0 }, engineVersion: '', addr: host },
        status: { state: 'unknown', message: 'joined', addr: host, lastHeartbeat: now },
        certificate: { serial: issued.serial, notAfter: issued.notAfter.toISOString(), role },
      } as unknown as NodeObj);
    });
    if (role === 'manager') {
      // Joins Raft as a learner; the leader promotes it once it has caught up.
      await this.retryConf(() => this.raft.addMember(nodeId, raftUrl(b.advertise as string), { learner: true }));
    }
    this.log(`node ${nodeId} joined as ${role} from ${b.advertise}`);
    return { nodeId, role, certPem: issued.certPem, caCertPem: c.rootCa.caCertPem, clusterId: this.opts.clusterId, managers: this.managerAddrs() };
  }

  private async retryConf(fn: () => Promise<void>): Promise<void> {
    const deadline = Date.now() + 10_000;
    for (;;) {
      try {
        await fn();
        return;
      } catch (e) {
        if ((e as Error).name !== 'ProposalRejectedError' || Date.now() > deadline) throw e;
        if (!/in progress/.test((e as Error).message)) throw e;
        await new Promise((r) => setTimeout(r, 20));
      }
    }
  }

  // ------------------------------------------------------------------ dispatcher (worker sessions)

  private handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const path = (req.url ?? '').split('?')[0];
    if (path !== DISPATCHER_PATH) return;
    const tls = socket as TLSSocket;
    const cert = tls.authorized ? tls.getPeerCertificate() : undefined;
    const problem = tls.authorized ? this.certProblem(cert?.raw, ['worker', 'manager']) : `TLS: ${String(tls.authorizationError ?? 'no client certificate')}`;
    if (problem) {
      socket.end(`HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n${problem}\n`);
      return;
    }
    const nodeId = String(cert!.subject.CN);
    this.wss.handleUpgrade(req, socket, head, (ws) => this.session(nodeId, ws));
  }

  private session(nodeId: string, ws: WebSocket): void {
    const send = (m: ManagerToAgent) => ws.readyState === ws.OPEN && ws.send(JSON.stringify(m));
    if (!this.isLeader) {
      send({ t: 'redirect', leader: this.leaderAddr(), message: 'this manager is not the leader' });
      ws.close(4001, 'not leader');
      return;
    }
    this.sessions.get(nodeId)?.ws.close(4002, 'replaced by a new session');
    const s: Session = { nodeId, ws };
    this.sessions.set(nodeId, s);
    ws.on('message', (data) => {
      let m: AgentToManager;
      try {
        m = JSON.parse(String(data)) as AgentToManager;
      } catch {
        ws.close(4000, 'malformed message');
        return;
      }
      void this.onAgentMessage(s, m, send).catch((e) => send({ t: 'error', message: (e as Error).message }));
    });
    ws.on('close', () => {
      if (this.sessions.get(nodeId) === s) {
        this.sessions.delete(nodeId);
        this.remote.nodeGone(nodeId);
      }
    });
  }

  private async onAgentMessage(s: Session, m: AgentToManager, send: (m: ManagerToAgent) => void): Promise<void> {
    const period = this.heartbeatPeriod();
    switch (m.t) {
      case 'hello': {
        this.liveness.heartbeat(s.nodeId, Date.now());
        const n = this.store.view((tx) => tx.get('node', s.nodeId)) as NodeObj | undefined;
        if (!n) {
          send({ t: 'error', message: 'unknown node (removed?)' });
          s.ws.close(4003, 'unknown node');
          return;
        }
        send({ t: 'welcome', nodeId: s.nodeId, heartbeatPeriodMs: period, managers: this.managerAddrs(), role: n.spec.role });
        this.sentViews.delete(s.nodeId);
        this.sendNetViews([s.nodeId]);
        this.sendAssignments(s.nodeId);
        await this.update((tx) => {
          const cur = tx.get('node', s.nodeId) as NodeObj | undefined;
          if (!cur) return;
          tx.update({
            ...cur,
            description: { ...cur.description, ...m.description },
            status: { ...cur.status, state: 'ready', message: '', addr: m.description.addr, lastHeartbeat: new Date().toISOString() },
          });
        });
        return;
      }
      case 'manager-up': {
        const n = this.store.view((tx) => tx.get('node', s.nodeId)) as NodeObj | undefined;
        const st = this.raft.status();
        if (!n || n.spec.role !== 'manager' || st.voters.includes(s.nodeId) || st.learners.includes(s.nodeId)) return;
        if (!/^[^\s:]+:\d+$/.test(m.advertise)) throw new Error('manager-up needs advertise host:port');
        await this.retryConf(() => this.raft.addMember(s.nodeId, raftUrl(m.advertise), { learner: true }));
        this.log(`node ${s.nodeId} promoted: joining Raft as a learner at ${m.advertise}`);
        return;
      }
      case 'log':
        this.remote.onLog(s.nodeId, m.req, m.lines);
        return;
      case 'log-end':
        this.remote.onLogEnd(s.nodeId, m.req, m.error);
        return;
      case 'exec-result':
        this.remote.onExecResult(s.nodeId, m);
        return;
      case 'usage':
        this.remote.onUsage(Date.now(), m.tasks);
        return;
      case 'status':
        this.liveness.heartbeat(s.nodeId, Date.now());
        for (const u of m.updates) this.statusQueue.push({ nodeId: s.nodeId, u });
        this.scheduleStatusFlush();
        return;
      case 'hb':
        this.liveness.heartbeat(s.nodeId, Date.now());
        send({ t: 'hb', heartbeatPeriodMs: period, managers: this.managerAddrs() });
        return;
      case 'renew': {
        const c = this.cluster()!;
        const n = this.store.view((tx) => tx.get('node', s.nodeId)) as NodeObj | undefined;
        if (!n) throw new Error('unknown node');
        const issued = signNodeCertificate({
          caCertPem: c.rootCa.caCertPem,
          caKeyPem: c.rootCa.caKeyPem,
          csrPem: m.csr,
          nodeId: s.nodeId,
          role: n.spec.role,
          clusterId: this.opts.clusterId,
          sans: { ips: [n.status.addr || n.description.addr].filter((x) => /^\d+\.\d+\.\d+\.\d+$/.test(x)) },
          validityMs: c.spec.caConfig?.nodeCertValidityMs ?? 90 * 24 * 3600_000,
        });
        await this.update((tx) => {
          const cur = tx.get('node', s.nodeId) as NodeObj | undefined;
          if (cur) tx.update({ ...cur, certificate: { serial: issued.serial, notAfter: issued.notAfter.toISOString(), role: n.spec.role } });
        });
        send({ t: 'cert', certPem: issued.certPem, caCertPem: c.rootCa.caCertPem, role: n.spec.role });
        return;
      }
    }
  }

  private heartbeatPeriod(): number {
    return this.cluster()?.spec.dispatcher?.heartbeatPeriodMs ?? 1000;
  }

  // ------------------------------------------------------------------ leader loops

  private leadershipChanged(): void {
    const leader = this.raft.status().role === 'leader';
    if (leader === this.isLeader) return;
    this.isLeader = leader;
    if (leader) this.startLeaderLoops();
    else {
      this.stopLeaderLoops();
      // Agents reconnect to the new leader.
      for (const s of this.sessions.values()) s.ws.close(4001, 'leadership lost');
      this.sessions.clear();
    }
  }

  private startLeaderLoops(): void {
    this.log('became leader: starting dispatcher and membership loops');
    // Nodes believed alive get a full grace window from now: we have heard from nobody yet.
    const nodes = this.store.view((tx) => tx.list('node')) as NodeObj[];
    this.liveness.setPeriod(this.heartbeatPeriod());
    this.liveness.startTracking(nodes.filter((n) => n.status.state === 'ready' || n.status.state === 'unknown').map((n) => n.id), Date.now());
    this.leaderTimer = setInterval(() => void this.leaderTick().catch((e) => this.log(`leader loop: ${(e as Error).message}`)), 100);
    // Any change to a node's tasks is pushed to that node's session (debounced per node).
    this.unwatchTasks = this.store.watch(
      {
        kinds: ['task'],
        onClose: () => {
          // Store reset (snapshot installed): resend everything.
          for (const id of this.sessions.keys()) this.markAssignments(id);
        },
      },
      (ev) => {
        const t = ev.object as Task;
        if (t.nodeId) this.markAssignments(t.nodeId);
        const old = ev.old as Task | undefined;
        if (old?.nodeId && old.nodeId !== t.nodeId) this.markAssignments(old.nodeId);
      },
    );
    // Network views depend on tasks, services, networks and nodes anywhere: recompute them (debounced).
    this.unwatchNet = this.store.watch({ kinds: ['task', 'service', 'network', 'node'], onClose: () => this.markNetViews() }, () => this.markNetViews());
    for (const hook of this.leaderHooks) hook.start();
  }

  private unwatchNet: (() => void) | null = null;
  private netTimer: NodeJS.Timeout | null = null;
  /** Last NetView (canonical JSON) sent to each session. */
  private sentViews = new Map<string, string>();

  private markNetViews(): void {
    this.netTimer ??= setTimeout(() => {
      this.netTimer = null;
      this.sendNetViews([...this.sessions.keys()]);
    }, 100);
  }

  /** Sends each node its NetView if it changed since the last one sent over its session. */
  private sendNetViews(nodeIds: string[]): void {
    if (nodeIds.length === 0) return;
    const snap = this.store.view((tx) => ({ networks: tx.list('network'), services: tx.list('service'), tasks: tx.list('task'), nodes: tx.list('node') })) as NetSnapshot;
    if (snap.networks.length === 0) return;
    const views = nodeNetViews(snap, nodeIds);
    for (const [id, view] of views) {
      const s = this.sessions.get(id);
      if (!s) continue;
      const text = canonicalJson(view);
      if (this.sentViews.get(id) === text) continue;
      this.sentViews.set(id, text);
      s.ws.send(JSON.stringify({ t: 'network', view } satisfies ManagerToAgent));
    }
  }

  private stopLeaderLoops(): void {
    if (this.leaderTimer) clearInterval(this.leaderTimer);
    this.leaderTimer = null;
    this.unwatchTasks?.();
    this.unwatchTasks = null;
    this.unwatchNet?.();
    this.unwatchNet = null;
    if (this.netTimer) clearTimeout(this.netTimer);
    this.netTimer = null;
    this.sentViews.clear();
    for (const hook of this.leaderHooks) hook.stop();
  }

  // ------------------------------------------------------------------ task assignment and status

  private unwatchTasks: (() => void) | null = null;
  private dirtyNodes = new Set<string>();
  private assignTimer: NodeJS.Timeout | null = null;
  private statusQueue: { nodeId: string; u: TaskStatusUpdate }[] = [];
  private statusTimer: NodeJS.Timeout | null = null;
  /** Leader-only control loops (orchestrator, scheduler, …) started and stopped with leadership. */
  readonly leaderHooks: { start(): void; stop(): void }[] = [];
  /** Logs / exec requests to nodes over their sessions, and the usage they report. */
  readonly remote = new RemoteCalls((nodeId, m) => {
    const s = this.sessions.get(nodeId);
    if (!s || s.ws.readyState !== s.ws.OPEN) return false;
    s.ws.send(JSON.stringify(m));
    return true;
  });

  private markAssignments(nodeId: string): void {
    if (!this.sessions.has(nodeId)) return;
    this.dirtyNodes.add(nodeId);
    this.assignTimer ??= setTimeout(() => {
      this.assignTimer = null;
      const nodes = [...this.dirtyNodes];
      this.dirtyNodes.clear();
      for (const id of nodes) this.sendAssignments(id);
    }, 10);
  }

  /** Sends a node the full set of its tasks that are assigned and not finished. */
  private sendAssignments(nodeId: string): void {
    const s = this.sessions.get(nodeId);
    if (!s) return;
    const assignedRank = taskStateRank('assigned');
    const tasks: TaskAssignment[] = [];
    for (const t of this.store.view((tx) => tx.tasksByNode(nodeId)) as Task[]) {
      if (taskStateRank(t.status.state) < assignedRank || isTerminalTaskState(t.status.state)) continue;
      tasks.push({
        id: t.id,
        serviceId: t.serviceId,
        serviceName: t.serviceAnnotations?.name ?? '',
        ...(t.slot !== undefined ? { slot: t.slot } : {}),
        spec: t.spec,
        desiredState: t.desiredState,
        state: t.status.state,
        ...(t.networks?.length ? { networks: t.networks } : {}),
      });
    }
    s.ws.send(JSON.stringify({ t: 'assignments', tasks } satisfies ManagerToAgent));
  }

  private scheduleStatusFlush(): void {
    this.statusTimer ??= setTimeout(() => {
      this.statusTimer = null;
      void this.flushStatus().catch((e) => this.log(`task status: ${(e as Error).message}`));
    }, 20);
  }

  /** Writes reported task states: only by the node the task is assigned to, and only forward. */
  private async flushStatus(): Promise<void> {
    const batch = this.statusQueue;
    this.statusQueue = [];
    if (batch.length === 0 || !this.isLeader) return;
    // Last report per task wins within a batch (states only move forward anyway).
    const latest = new Map<string, { nodeId: string; u: TaskStatusUpdate }>();
    for (const b of batch) {
      const prev = latest.get(b.u.taskId);
      if (!prev || taskStateRank(b.u.state) >= taskStateRank(prev.u.state)) latest.set(b.u.taskId, b);
    }
    const items = [...latest.values()];
    for (let i = 0; i < items.length; i += 500) {
      const chunk = items.slice(i, i + 500);
      await this.update((tx) => {
        for (const { nodeId, u } of chunk) {
          const t = tx.get('task', u.taskId) as Task | undefined;
          if (!t || t.nodeId !== nodeId) continue;
          if (taskStateRank(u.state) <= taskStateRank(t.status.state)) continue;
          tx.update({
            ...t,
            status: {
              state: u.state,
              timestamp: u.timestamp,
              message: u.message,
              ...(u.err !== undefined ? { err: u.err } : {}),
              ...(u.exitCode !== undefined ? { exitCode: u.exitCode } : {}),
            },
          } as Task);
        }
      });
    }
  }

  private leaderBusy = false;
  private async leaderTick(): Promise<void> {
    if (!this.isLeader || this.leaderBusy) return;
    this.leaderBusy = true;
    try {
      this.liveness.setPeriod(this.heartbeatPeriod());
      const now = Date.now();
      const expired = this.liveness.expired(now);
      if (expired.length > 0) {
        await this.update((tx) => {
          for (const id of expired) {
            const n = tx.get('node', id) as NodeObj | undefined;
            if (!n || n.status.state === 'down') continue;
            tx.update({ ...n, status: { ...n.status, state: 'down', message: 'heartbeat failure' } });
          }
        });
        for (const id of expired) this.log(`node ${id} marked down (no heartbeat for ${this.liveness.deadlineMs} ms)`);
      }
      // Track nodes that (re)appear without a session yet.
      for (const n of this.store.view((tx) => tx.list('node')) as NodeObj[]) {
        if (n.status.state === 'ready' && !this.liveness.isTracked(n.id)) this.liveness.heartbeat(n.id, now);
      }
      this.reconcileRoles(now);
      await this.promoteLearners();
    } finally {
      this.leaderBusy = false;
    }
  }

  private roleNudged = new Map<string, number>();

  /** Tells nodes whose desired role differs from their certificate's role to renew (promote/demote). */
  private reconcileRoles(now: number): void {
    for (const n of this.store.view((tx) => tx.list('node')) as NodeObj[]) {
      if (!n.certificate || n.certificate.role === n.spec.role) continue;
      const s = this.sessions.get(n.id);
      if (!s) continue;
      if (now - (this.roleNudged.get(n.id) ?? 0) < 2000) continue;
      this.roleNudged.set(n.id, now);
      s.ws.send(JSON.stringify({ t: 'role', role: n.spec.role } satisfies ManagerToAgent));
    }
  }

  private async promoteLearners(): Promise<void> {
    const st = this.raft.status();
    for (const id of st.learners) {
      const pr = this.raft.progress(id);
      if (pr && pr.match >= st.commit - 1 && pr.match > 0) {
        try {
          await this.raft.promote(id);
          this.log(`promoted ${id} to voter`);
        } catch (e) {
          this.log(`promote ${id}: ${(e as Error).message}`);
        }
        return; // one membership change at a time
      }
    }
  }

  // ------------------------------------------------------------------ helpers

  private raftInfo() {
    const st = this.raft.status();
    return {
      nodeId: st.id,
      role: st.role,
      leader: st.leader,
      term: st.term,
      commit: st.commit,
      applied: st.applied,
      voters: st.voters,
      learners: st.learners,
      reachable: this.reachableManagers(),
    };
  }

  managerAddrs(): ManagerAddr[] {
    const st = this.raft.status();
    return [...st.voters, ...st.learners].map((id) => ({ id, addr: addrFromRaftUrl(st.members[id] ?? '') })).filter((m) => m.addr !== '');
  }

  leaderAddr(): ManagerAddr | null {
    const st = this.raft.status();
    if (!st.leader) return null;
    const url = st.members[st.leader];
    return url ? { id: st.leader, addr: addrFromRaftUrl(url) } : null;
  }

  /** Voters we currently have an open connection to, plus ourselves. */
  reachableManagers(): { reachable: number; total: number } {
    const st = this.raft.status();
    let n = 0;
    for (const v of st.voters) {
      if (v === this.opts.nodeId) n++;
      else if (this.transport.connections(v).some((c) => c.state === 'open')) n++;
    }
    return { reachable: n, total: st.voters.length };
  }

  /** Throws the error a write must get on a non-leader: a redirect, or no quorum. */
  requireLeader(): void {
    const st = this.raft.status();
    if (st.role === 'leader') return;
    const l = this.leaderAddr();
    if (l) throw new ApiError(421, 'ENOTLEADER', `this manager is not the leader; the leader is ${l.addr}`, { leader: l.addr });
    const r = this.reachableManagers();
    const need = Math.floor(r.total / 2) + 1;
    if (r.reachable >= need) throw new ApiError(503, 'ENOLEADER', 'no leader yet: an election is in progress; retry in a moment');
    throw new ApiError(503, 'ENOQUORUM', `no quorum: ${r.reachable} of ${r.total} managers reachable (need ${need})`);
  }

  /**
   * A store write on behalf of an API call: bounded in time, and with the errors a caller can act on
   * (no quorum, lost leadership) instead of a hang when the cluster cannot commit.
   */
  private async write(fn: Parameters<Store['update']>[0]): Promise<void> {
    this.requireLeader();
    const limit = 3 * (this.opts.timing?.electionMs ?? 1000) + 1000;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new ApiError(503, 'ETIMEOUT', 'the change was not committed in time')), limit);
    });
    try {
      await Promise.race([this.update(fn), timeout]);
    } catch (e) {
      const name = (e as Error).name;
      if (e instanceof ApiError && e.code !== 'ETIMEOUT') throw e;
      if (e instanceof ApiError || e instanceof NotLeaderError || name === 'ProposalOutcomeUnknownError' || name === 'ProposalDroppedError' || name === 'RaftStoppedError') {
        const r = this.reachableManagers();
        const q = Math.floor(r.total / 2) + 1;
        if (r.reachable < q) throw new ApiError(503, 'ENOQUORUM', `no quorum: ${r.reachable} of ${r.total} managers reachable (need ${q}); the change may not have been applied`);
        throw new ApiError(503, 'EUNKNOWN', `leadership changed while committing (${(e as Error).message}); the change may or may not have been applied: check and retry`);
      }
      throw e;
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * store.update, re-run on a version conflict: transactions read their objects inside `fn`, so a retry
   * applies the change to whatever another writer (a heartbeat, a renewal) committed meanwhile.
   */
  private async update(fn: Parameters<Store['update']>[0]): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      try {
        await this.store.update(fn);
        return;
      } catch (e) {
        if ((e as Error).name !== 'ConflictError' || attempt >= 8) throw e;
      }
    }
  }

  private async linearizable(): Promise<void> {
    try {
      await this.raft.read();
    } catch (e) {
      if (e instanceof NotLeaderError || (e as Error).name === 'ReadFailedError') {
        const r = this.reachableManagers();
        if (r.reachable < Math.floor(r.total / 2) + 1 || !this.raft.status().leader) {
          throw new ApiError(503, 'ENOQUORUM', `no quorum: ${r.reachable} of ${r.total} managers reachable (need ${Math.floor(r.total / 2) + 1})`);
        }
        throw new ApiError(503, 'ERETRY', `read could not be confirmed (${(e as Error).message}); retry`);
      }
      throw e;
    }
  }

  private resolveNode(ref: string): NodeObj {
    const nodes = this.store.view((tx) => tx.list('node')) as NodeObj[];
    const exact = nodes.find((n) => n.id === ref) ?? nodes.find((n) => n.description?.hostname === ref);
    if (exact) return exact;
    const prefix = nodes.filter((n) => n.id.startsWith(ref));
    if (prefix.length === 1) return prefix[0]!;
    if (prefix.length > 1) throw badRequest(`node reference ${ref} is ambiguous (${prefix.length} nodes match)`);
    throw notFound(`node ${ref} not found`);
  }

  private presentNode(n: NodeObj) {
    const st = this.raft.status();
    const isVoter = st.voters.includes(n.id);
    const isLearner = st.learners.includes(n.id);
    let managerStatus: Record<string, unknown> | null = null;
    if (isVoter || isLearner) {
      const reachable = n.id === this.opts.nodeId || this.transport.connections(n.id).some((c) => c.state === 'open');
      managerStatus = {
        leader: st.leader === n.id,
        reachability: reachable ? 'reachable' : 'unreachable',
        voter: isVoter,
        addr: addrFromRaftUrl(st.members[n.id] ?? ''),
      };
    }
    return { ...n, managerStatus, self: n.id === this.opts.nodeId };
  }
}

/** Signs a CSR; a bad CSR (signature, weak key, malformed) is the caller's fault: 400, not 500. */
function signOrBadRequest(o: Parameters<typeof signNodeCertificate>[0]) {
  try {
    return signNodeCertificate(o);
  } catch (e) {
    if ((e as Error).name === 'PkiError') throw badRequest(`certificate request refused: ${(e as Error).message}`);
    throw e;
  }
}


