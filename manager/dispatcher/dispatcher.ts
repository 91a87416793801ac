// The leader's side of every node session (the dispatcher, as in SwarmKit): one mutual-TLS WebSocket
// per node at DISPATCHER_PATH. It tells each node its tasks (assignments) and overlay networks
// (NetViews), writes the task states nodes report, keeps node heartbeats and marks silent nodes Down.
//
// Nothing a node sends can take the manager down or cost other nodes anything (security review,
// findings 2, 3, 8, 9): each session is a transport/session.ts Session (error/close always handled,
// size caps, liveness, bounded output); each message is validated (validate.ts) and one bad message,
// or one bad entry of a batch, is dropped and counted alone; a node may report only its own tasks,
// and only forward; hello writes and certificate renewals are rate-limited per node; status reports
// wait in a bounded per-node queue; a node that keeps misbehaving is disconnected with a logged
// reason. Counters are served at GET /v1/dispatcher/stats.
import type { IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import { ProtocolViolation, Session, jsonDecoder, type SessionCounters } from '../../transport/session.ts';
import { DRAIN_MAX_MS, StopDrain } from './drain.ts';
import { NetIndex, nodeChangeAffectsNetViews, type NetSnapshot } from '../allocator/netview.ts';
import { issuingRootDigest, PkiError } from '../ca/pki.ts';
import { signNodeCertificate } from '../ca/issue.ts';
import { RateLimiter } from '../ca/tokens.ts';
import { recordIssued, revokeOnRoleChange } from '../ca/revocation.ts';
import { acceptedRoots, issuerOf, withChain } from '../ca/rotation.ts';
import type { RaftNode } from '../raft/node.ts';
import { CLUSTER_ID, isTerminalTaskState, taskStateRank, type Cluster, type Node as NodeObj, type Task } from '../../api/objects.ts';
import type { Store } from '../store/store.ts';
import { RemoteCalls } from '../api/remote.ts';
import type { Gate } from '../api/gate.ts';
import { raftUrl, type Members } from '../members.ts';
import { NodeLiveness, downDecision, heartbeatPeriodFor, reconnectSpreadMs, takeoverGraceMs } from './liveness.ts';
import { DISPATCHER_PATH, type ManagerAddr, type ManagerToAgent } from '../../api/dispatcher.ts';
import { StatusQueue } from './status-queue.ts';
import { DispatcherCounters, type DispatcherStats } from './stats.ts';
import { planFileMessages } from './secret-delivery.ts';
import { AddrGenerations } from './netview-addrs.ts';
import { assignmentChanged, liveOnNode, onlyEnded, planAssignments, type SentTask } from './assignments.ts';
import type { KeyRing } from '../keys/keyring.ts';
import { NodeBatch } from './node-batch.ts';
import { validateAgentMessage, type InboundMessage, type StatusMessage, type UsageMessage } from './validate.ts';
import type { RemoteMessage } from '../api/remote-validate.ts';

/** How soon a NetView a node's session refused (its outbound buffer full) is offered again. */
const NET_VIEW_RETRY_MS = 500;
/** Rounds of every node's view (markNetViews): after a change, at least this long, */
const NET_ROUND_MS = 100;
/** or this many times the last round's own time, */
const NET_ROUND_PACE = 5;
/** but never longer than this. */
const NET_ROUND_MAX_MS = 2000;
/** The longest a node waits to hear that tasks it reported ended left its set (markAssignmentsLater). */
const ENDED_ASSIGNMENT_MS = 1_000;
/** At most one round of assignment messages per this many ms (markAssignments). */
const ASSIGNMENT_ROUND_MS = 10;

/** Message kinds that answer a manager's logs/exec request (flow-controlled by the request's window). */
const REMOTE_REPLIES: ReadonlySet<string> = new Set(['log', 'log-end', 'exec-output', 'exec-result']);

/** Limits of the dispatcher; each says what it protects. */
export const DISPATCHER_LIMITS = {
  /** Largest frame ws accepts and reassembles (a bigger one closes the session with 1009). */
  maxPayload: 2 << 20,
  /** Largest message processed; bigger ones (under maxPayload) are dropped unparsed, as violations,
   * without a disconnect (a reconnect costs the leader a TLS handshake). Logs batches are 256 KiB. */
  maxMessageBytes: 1 << 20,
  /** Deepest JSON nesting accepted (node messages nest 3 levels; deep nesting costs JSON.parse dearly). */
  maxJsonDepth: 16,
  /** Unsent bytes towards one node before it is closed as a slow consumer (assignments can be large;
   * dropping one would leave the node without its tasks, a reconnect resends everything). */
  maxBufferedBytes: 16 << 20,
  /** More violations than this within the window disconnects the node. */
  violations: { count: 20, windowMs: 10_000 },
  /** Session pings; the node's own heartbeats decide Down, these only catch dead connections. */
  liveness: { pingIntervalMs: 10_000, timeoutMs: 30_000 },
  /** Messages per node: sustained rate and burst (heartbeats, status, logs chunks all count). */
  messagesPerSec: 500,
  messageBurst: 2000,
  /** Answers to logs/exec requests per node (≤ 256 KiB each, paced by the request windows): 1 GiB/s of
   * answers passes; a flood of answers to requests nobody made does not. */
  repliesPerSec: 4000,
  repliesBurst: 8000,
  /** A `hello` (which writes the node object) at most this often per session. */
  helloIntervalMs: 5_000,
  /**
   * Hellos per node across sessions: a burst (reconnects after a leader change, a handover after a
   * renewal, restarts), then one per 5 s. Without it a node could open sessions in a loop, each hello a
   * Raft write; beyond it the session is closed (4029) and the agent retries with backoff.
   */
  helloBurst: 10,
  hellosPerSec: 0.2,
  /** Certificate renewals (an RSA signature and a Raft write each) per node: burst, then one per 10 s. */
  renewBurst: 5,
  renewPerSec: 0.1,
  /** Status reports waiting per node (coalesced by task). */
  statusQueuePerNode: 5_000,
  /** Status updates written per Raft transaction. */
  statusChunk: 500,
  /** Revoked serials kept in the cluster object (the oldest, most likely expired, go first). */
  revokedSerials: 2000,
} as const;

export interface DispatcherDeps {
  store: Store;
  raft: RaftNode;
  gate: Gate;
  members: Members;
  clusterId: string;
  /** Why a (DER) client certificate may not open a session, or null. */
  certProblem: (raw: Buffer | undefined, roles: string[]) => string | null;
  /** The key ring that opens secrets for delivery (null: this manager has none yet). */
  keys?: () => KeyRing | null;
  log: (line: string) => void;
}

interface NodeSession {
  nodeId: string;
  session: Session<InboundMessage>;
  /** When this session's last hello was processed (-Infinity: none yet). */
  helloAt: number;
  /** The address the connection came from (IPv4-mapped IPv6 unwrapped), or '' if unknown. */
  remoteAddr: string;
  /** The client certificate (DER) the session was opened with: re-checked when the deny list changes. */
  certRaw?: Buffer;
  /**
   * Renewals between their commit and sending the new certificate (a count: the rate limit allows a few
   * at once): a revocation seen meanwhile closes the session only once the certificate was sent (else a
   * demoted node would never receive it).
   */
  renewing?: number;
  /** The deny list refused this session while `renewing`: closed as soon as the renewal is done. */
  closeAfterRenew?: string;
  /** Digest of the root whose key issued `certRaw` (computed at the first hello; null: none accepted). */
  presented?: string | null;
  /** The heartbeat period and manager list this node was last told (hbNews), '' before its welcome. */
  told: string;
  /** Its agent takes 'assignment-changes' (named in its last hello). */
  takesChanges: boolean;
  /** Its agent takes 'netview-addr-changes' (named in its last hello). */
  takesAddrChanges?: boolean;
  /** What this session was told of each task (assignments.ts); null: the next send is a full set. */
  assigned: Map<string, SentTask> | null;
}

export class Dispatcher {
  /** Logs / exec requests to nodes over their sessions, and the usage they report. */
  readonly remote = new RemoteCalls((nodeId, m) => this.send(nodeId, m));
  private readonly wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: DISPATCHER_LIMITS.maxPayload });
  private readonly sessions = new Map<string, NodeSession>();
  private readonly liveness = new NodeLiveness(1000, 3);
  /** A mass silence is held until then before its nodes are marked Down (downDecision); null: none. */
  private massHoldUntil: number | null = null;
  /** When that mass silence was first held, or last held for reconnects (downDecision's heldSince). */
  private massHoldSince = 0;
  /** When that mass silence was first held, whatever came after (downDecision's firstHeldAt). */
  private massFirstHeldAt = 0;
  /** When a node last started a session (hello) with this leader (-Infinity: none yet). */
  private lastSessionAt = Number.NEGATIVE_INFINITY;
  /** netIndex(): undefined when it must be rebuilt, null when there is no network. */
  private netIdx: NetIndex | null | undefined = undefined;
  private readonly msgLimiter = new RateLimiter({ capacity: DISPATCHER_LIMITS.messageBurst, refillPerSec: DISPATCHER_LIMITS.messagesPerSec });
  private readonly replyLimiter = new RateLimiter({ capacity: DISPATCHER_LIMITS.repliesBurst, refillPerSec: DISPATCHER_LIMITS.repliesPerSec });
  private readonly renewLimiter = new RateLimiter({ capacity: DISPATCHER_LIMITS.renewBurst, refillPerSec: DISPATCHER_LIMITS.renewPerSec });
  private readonly helloLimiter = new RateLimiter({ capacity: DISPATCHER_LIMITS.helloBurst, refillPerSec: DISPATCHER_LIMITS.hellosPerSec });
  private readonly statusQueue = new StatusQueue(DISPATCHER_LIMITS.statusQueuePerNode);
  private statusTimer: NodeJS.Timeout | null = null;
  /** Nodes whose ended tasks are still to be taken out of their set (markAssignmentsLater). */
  private readonly laterNodes = new NodeBatch(ENDED_ASSIGNMENT_MS, (ids) => {
    if (this.leading) for (const id of ids) this.markAssignments(id);
  });
  /** When the last round of assignment messages went out (markAssignments). */
  private lastAssignRound = -Infinity;
  /** A status write is in flight (scheduleStatusFlush). */
  private statusFlushing = false;
  private leading = false;
  private unwatchTasks: (() => void) | null = null;
  private unwatchNet: (() => void) | null = null;
  private dirtyNodes = new Set<string>();
  private assignTimer: NodeJS.Timeout | null = null;
  private netTimer: NodeJS.Timeout | null = null;
  /** How long the last round of every node's view took (markNetViews paces by it). */
  private lastNetRoundMs = 0;
  /**
   * Nodes whose last NetView their session refused (outbound buffer full): sent again on a timer. A
   * refused view is not lost: without a retry the node would keep its old view (a removed task still in
   * its DNS answers) until the next change anywhere in the cluster.
   */
  private readonly netRetry = new NodeBatch(NET_VIEW_RETRY_MS, (ids) => {
    if (this.leading) this.sendNetViews(ids.filter((id) => this.sessions.has(id)));
  });
  /** Nodes whose last assignments their session refused: sent again, in full, once the session drains. */
  private readonly assignRetry = new NodeBatch(NET_VIEW_RETRY_MS, (ids) => {
    if (this.leading) for (const id of ids) this.markAssignments(id);
  });
  /** Per node, the view last sent on its session: its JSON without nodeAddrs, and the generation of those. */
  private sentViews = new Map<string, { rest: string; gen: number }>();
  /** The node address lists of this leader's views, by generation (netview-addrs.ts). */
  private addrGens = new AddrGenerations();
  /** Per node: the version of the last NetView sent, and the highest one it says it has applied. */
  private readonly viewSent = new Map<string, number>();
  private readonly viewApplied = new Map<string, number>();
  /** Stops of networked tasks wait until every node has programmed a view without them (drain.ts). */
  private readonly drain = new StopDrain();
  private drainTimer: NodeJS.Timeout | null = null;
  /** Secrets and configs (`kind:id`) each session has been sent (secret-delivery.ts). */
  private sentFiles = new WeakMap<NodeSession, Set<string>>();
  private readonly counters = new DispatcherCounters();
  /** Nodes whose manager-up is being added to Raft right now. */
  private readonly joining = new Set<string>();

  constructor(private readonly d: DispatcherDeps) {}

  // ------------------------------------------------------------------ sessions

  /** Takes the upgrade if it is for the dispatcher (true), after checking the node's certificate. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): boolean {
    const path = (req.url ?? '').split('?')[0];
    if (path !== DISPATCHER_PATH) return false;
    const tls = socket as TLSSocket;
    const cert = tls.authorized ? tls.getPeerCertificate() : undefined;
    const problem = tls.authorized ? this.d.certProblem(cert?.raw, ['worker', 'manager']) : `TLS: ${String(tls.authorizationError ?? 'no client certificate')}`;
    if (problem) {
      socket.end(`HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n${problem}\n`);
      return true;
    }
    const nodeId = String(cert!.subject.CN);
    const remoteAddr = observedAddr(req.socket.remoteAddress);
    this.wss.handleUpgrade(req, socket, head, (ws) => this.open(nodeId, ws, remoteAddr, cert?.raw));
    return true;
  }

  private open(nodeId: string, ws: WebSocket, remoteAddr: string, certRaw?: Buffer): void {
    // (The callbacks run only after the constructor returns, when `ns` exists.)
    const session = new Session<InboundMessage>(ws, {
      name: `dispatcher: node ${nodeId}`,
      decode: jsonDecoder(validateAgentMessage, { maxDepth: DISPATCHER_LIMITS.maxJsonDepth }),
      onMessage: (m) => this.onMessage(ns, m),
      onClose: (code, reason, s) => this.closed(ns, code, reason, s.counters),
      log: this.d.log,
      limits: {
        maxMessageBytes: DISPATCHER_LIMITS.maxMessageBytes,
        maxBufferedBytes: DISPATCHER_LIMITS.maxBufferedBytes,
        slowConsumer: 'close',
        violations: DISPATCHER_LIMITS.violations,
        liveness: DISPATCHER_LIMITS.liveness,
      },
    });
    const ns: NodeSession = { nodeId, helloAt: -Infinity, remoteAddr, session, told: '', takesChanges: false, assigned: null, ...(certRaw ? { certRaw } : {}) };
    this.counters.sessionOpened();
    if (!this.leading) {
      ns.session.sendJson({ t: 'redirect', leader: this.d.members.leaderAddr(), message: 'this manager is not the leader' } satisfies ManagerToAgent);
      ns.session.close(4001, 'not leader');
      return;
    }
    this.sessions.get(nodeId)?.session.close(4002, 'replaced by a new session');
    this.sessions.set(nodeId, ns);
  }

  private closed(ns: NodeSession, code: number, reason: string, c: SessionCounters): void {
    if (this.sessions.get(ns.nodeId) === ns) {
      this.sessions.delete(ns.nodeId);
      this.remote.nodeGone(ns.nodeId);
      this.releaseStops(this.drain.nodeGone(ns.nodeId, Date.now()));
    }
    const why = this.counters.sessionClosed(code, reason, c);
    if (why !== 'peer-closed' && why !== 'not-leader' && why !== 'replaced')
      this.d.log(`dispatcher: node ${ns.nodeId} disconnected (${why}): ${code} ${reason}`);
  }

  /** Sends a message to a node's session; false if it has none (or it is not accepting more). */
  send(nodeId: string, m: ManagerToAgent): boolean {
    const ns = this.sessions.get(nodeId);
    return ns ? ns.session.sendJson(m) : false;
  }

  /** Sends a message to every node with a session; returns how many. */
  broadcast(m: ManagerToAgent): number {
    let n = 0;
    for (const ns of this.sessions.values()) if (ns.session.sendJson(m)) n++;
    return n;
  }

  hasSession(nodeId: string): boolean {
    return this.sessions.has(nodeId);
  }

  closeSession(nodeId: string, code: number, reason: string): void {
    this.sessions.get(nodeId)?.session.close(code, reason);
  }

  /** The deny list changed: sessions whose certificate is now refused are closed (4003). */
  recheckCertificates(): number {
    let closed = 0;
    for (const ns of this.sessions.values()) {
      const problem = this.d.certProblem(ns.certRaw, ['worker', 'manager']);
      if (problem === null) continue;
      closed++;
      if (ns.renewing) {
        ns.closeAfterRenew = problem;
        continue;
      }
      this.closeRevoked(ns, problem);
    }
    return closed;
  }

  private closeRevoked(ns: NodeSession, problem: string): void {
    this.d.log(`closing the session of node ${ns.nodeId}: ${problem}`);
    ns.session.close(4003, 'certificate revoked');
  }

  /**
   * The period nodes are told to heartbeat at: the configured one, longer in a large cluster so the
   * leader answers at most ≈ 2,000 heartbeats a second (liveness.ts heartbeatPeriodFor; Down stays
   * within the announced period + 2 configured ones). Sized by nodesToHear: sized by its sessions
   * alone, a new leader told the first 2,000 of 5,000 reconnecting nodes 1 s, took their heartbeats at
   * 2.5 times the rate during the reconnect storm, and marked those a farm's lag made 3 s late Down
   * (bench:scale, December 7).
   */
  heartbeatPeriod(nodes = this.nodesToHear()): number {
    return heartbeatPeriodFor(this.configuredPeriod(), nodes);
  }

  /**
   * The nodes this leader answers for: those with a session, or tracked without one yet. Right after a
   * change of leader it has few sessions and every node to take back.
   */
  private nodesToHear(): number {
    return Math.max(this.sessions.size, this.liveness.trackedCount);
  }

  private configuredPeriod(): number {
    return this.cluster()?.spec.dispatcher?.heartbeatPeriodMs ?? 1000;
  }

  private cluster(): Cluster | null {
    return this.d.store.view((tx) => (tx.get('cluster', CLUSTER_ID) as Cluster | undefined) ?? null);
  }

  // ------------------------------------------------------------------ messages

  private async onMessage(ns: NodeSession, m: InboundMessage): Promise<void> {
    const now = Date.now();
    // Replies to logs/exec requests are paced by the request's own flow window (acks), so they have their
    // own, much larger budget: counting them with heartbeats and status dropped pieces of a user's output
    // (and a dropped end message left the request waiting). The budget still bounds a node that floods
    // answers to requests nobody made (those are ignored by RemoteCalls, so only a rate can stop them).
    const limiter = REMOTE_REPLIES.has(m.t) ? this.replyLimiter : this.msgLimiter;
    if (!limiter.allow(ns.nodeId, now)) {
      throw new ProtocolViolation(
        'rate',
        `more than ${REMOTE_REPLIES.has(m.t) ? DISPATCHER_LIMITS.repliesPerSec : DISPATCHER_LIMITS.messagesPerSec} ${REMOTE_REPLIES.has(m.t) ? 'logs/exec answers' : 'messages'} per second`,
      );
    }
    this.counters.message(m.t);
    const nodeId = ns.nodeId;
    const send = (x: ManagerToAgent) => ns.session.sendJson(x);
    try {
      switch (m.t) {
        case 'hello':
          return await this.hello(ns, m.description, now, m.features ?? []);
        case 'manager-up': {
          const n = this.node(nodeId);
          const st = this.d.raft.status();
          if (!n || n.spec.role !== 'manager' || st.voters.includes(nodeId) || st.learners.includes(nodeId)) return;
          // One membership change per node at a time: repeats while one waits are ignored, not queued.
          if (this.joining.has(nodeId)) return;
          this.joining.add(nodeId);
          try {
            await this.d.gate.retryConf(() => this.d.raft.addMember(nodeId, raftUrl(m.advertise), { learner: true }));
          } finally {
            this.joining.delete(nodeId);
          }
          this.d.log(`node ${nodeId} promoted: joining Raft as a learner at ${m.advertise}`);
          return;
        }
        case 'status':
          return this.status(ns, m, now);
        case 'usage':
          return this.usage(ns, m);
        case 'hb': {
          this.liveness.heartbeat(nodeId, now);
          // Answered only with news: a new period or manager list. The answer to every heartbeat was half
          // of the leader's writes at 1,000 nodes (bench:scale --profile); an agent needs no answer to
          // stay alive (the session's pings do that), only the news.
          const news = this.hbNews();
          if (news.key !== ns.told) {
            ns.told = news.key;
            send({
              t: 'hb',
              heartbeatPeriodMs: news.heartbeatPeriodMs,
              managers: news.managers,
              ...(news.reconnectSpreadMs > 0 ? { reconnectSpreadMs: news.reconnectSpreadMs } : {}),
            });
          }
          return;
        }
        case 'renew':
          return await this.renew(ns, m.csr, now);
        case 'network-applied': {
          // Only versions this node was sent count: a node cannot release stops with a future version.
          const v = Math.min(m.v, this.viewSent.get(nodeId) ?? 0);
          if (v > (this.viewApplied.get(nodeId) ?? 0)) this.viewApplied.set(nodeId, v);
          this.releaseStops(this.drain.applied(nodeId, v, now));
          return;
        }
        default:
          routeRemote(this.remote, nodeId, m);
          return;
      }
    } catch (e) {
      // The node hears why (as before); the session counts and logs it.
      send({ t: 'error', message: (e as Error).message });
      throw e;
    }
  }

  private node(id: string): NodeObj | undefined {
    return this.d.store.view((tx) => tx.get('node', id)) as NodeObj | undefined;
  }

  /** What a heartbeat answer carries, and a key that changes when it does. */
  private hbNews(): { heartbeatPeriodMs: number; managers: ManagerAddr[]; reconnectSpreadMs: number; key: string } {
    const heartbeatPeriodMs = this.heartbeatPeriod();
    const managers = this.d.members.managerAddrs();
    const spread = reconnectSpreadMs(this.nodesToHear());
    return { heartbeatPeriodMs, managers, reconnectSpreadMs: spread, key: `${heartbeatPeriodMs} ${spread} ${JSON.stringify(managers)}` };
  }

  private async hello(ns: NodeSession, description: NodeObj['description'], now: number, features: readonly string[]): Promise<void> {
    if (now - ns.helloAt < DISPATCHER_LIMITS.helloIntervalMs)
      throw new ProtocolViolation('hello-rate', `hello again within ${DISPATCHER_LIMITS.helloIntervalMs} ms`);
    ns.helloAt = now;
    const nodeId = ns.nodeId;
    if (!this.helloLimiter.allow(nodeId, now)) {
      this.counters.drop('hello-rate');
      ns.session.close(4029, `sessions started too often; retry in ${Math.ceil(this.helloLimiter.retryAfterMs(nodeId, now) / 1000)} s`);
      return;
    }
    this.liveness.heartbeat(nodeId, now);
    this.lastSessionAt = now;
    const n = this.node(nodeId);
    if (!n) {
      ns.session.sendJson({ t: 'error', message: 'unknown node (removed?)' } satisfies ManagerToAgent);
      ns.session.close(4003, 'unknown node');
      return;
    }
    const news = this.hbNews();
    ns.told = news.key;
    ns.session.sendJson({
      t: 'welcome',
      nodeId,
      heartbeatPeriodMs: news.heartbeatPeriodMs,
      managers: news.managers,
      role: n.spec.role,
      ...(news.reconnectSpreadMs > 0 ? { reconnectSpreadMs: news.reconnectSpreadMs } : {}),
    } satisfies ManagerToAgent);
    this.sentViews.delete(nodeId);
    ns.takesAddrChanges = features.includes('netview-addr-changes');
    // A node with no task on a network (one that just joined) gets its view with the next round: the
    // network index is O(cluster) to build, every join drops it, and building it for each hello while
    // 5,000 nodes joined was 3.7 of the leader's 95 busy seconds. A node whose tasks need a view gets it
    // now, before their assignments; so does every node while the index stands (after a change of leader).
    if (this.netIdx !== undefined || this.hasNetworkedTasks(nodeId)) this.sendNetViews([nodeId]);
    else this.markNetViews();
    this.sentFiles.delete(ns); // a welcome makes the agent forget its secrets and configs
    // and its assignments: the first set after a welcome is a full one.
    ns.takesChanges = features.includes('assignment-changes');
    ns.assigned = null;
    this.sendAssignments(nodeId);
    if (ns.presented === undefined && ns.certRaw) {
      const c = this.cluster();
      ns.presented = c ? issuingRootDigest(ns.certRaw, acceptedRoots(c.rootCa)) : null;
    }
    const presented = ns.presented ?? undefined;
    // The node as this hello leaves it. A node that is already ready, as described and seen from the same
    // address, is not written again: after a change of leader every node says hello to the new one, and
    // 1,000 writes that change only lastHeartbeat queued the cluster's first real write behind them for
    // seconds (bench:scale, leader kill). lastHeartbeat is when the node was last written ready.
    const next = (cur: NodeObj): NodeObj | null => {
      const certificate = cur.certificate && presented && cur.certificate.presented !== presented ? { ...cur.certificate, presented } : cur.certificate;
      // The hostname is the one the node joined with, unique among nodes (api/join.ts): a hello cannot
      // take another node's name, which `node rm/promote <hostname>` and constraints would then match.
      const desc = { ...cur.description, ...description, hostname: cur.description.hostname || description.hostname };
      // The address the node was seen from, as in Swarm, not the one it claims (security review,
      // finding 8): node.ip constraints and renewed certificates' IP SANs use it. The node's own
      // address (description.addr) stays its overlay endpoint.
      const addr = ns.remoteAddr || description.addr;
      const same =
        certificate === cur.certificate &&
        cur.status.state === 'ready' &&
        cur.status.message === '' &&
        cur.status.addr === addr &&
        JSON.stringify(desc) === JSON.stringify(cur.description);
      if (same) return null;
      return {
        ...cur,
        ...(certificate !== cur.certificate ? { certificate } : {}),
        description: desc,
        status: { ...cur.status, state: 'ready', message: '', addr, lastHeartbeat: new Date().toISOString() },
      } as NodeObj;
    };
    if (next(n) === null) {
      this.counters.helloUnchanged();
      return;
    }
    let wrote = false;
    await this.d.gate.update((tx) => {
      const cur = tx.get('node', nodeId) as NodeObj | undefined;
      const upd = cur ? next(cur) : null;
      if (upd !== null) tx.update(upd);
      wrote = upd !== null;
    });
    if (wrote) this.counters.helloWrote();
    else this.counters.helloUnchanged();
  }

  /** Queues a batch's updates one by one: a bad or foreign entry costs only itself. */
  private status(ns: NodeSession, m: StatusMessage, now: number): void {
    this.liveness.heartbeat(ns.nodeId, now);
    for (const v of m.rejected) ns.session.violation(v);
    let foreign = 0;
    // Each task's assigned node ('' unassigned, null no such task), read in one view for the whole batch.
    const owners = this.d.store.view((tx) =>
      m.updates.map((u) => {
        const t = tx.get('task', u.taskId) as Task | undefined;
        return t ? (t.nodeId ?? '') : null;
      }),
    );
    for (let i = 0; i < m.updates.length; i++) {
      const u = m.updates[i]!;
      const owner = owners[i];
      if (owner === null) {
        this.counters.drop('unknown-task');
        continue;
      }
      if (owner !== ns.nodeId) {
        foreign++;
        continue;
      }
      const r = this.statusQueue.push(ns.nodeId, u);
      if (r === 'stale') this.counters.drop('stale-state');
      else if (r === 'full') this.counters.drop('status-queue-full');
      else if (r === 'queued') this.counters.statusQueuedOne();
    }
    // One violation per batch for foreign tasks: a node that lost a task to rescheduling may still
    // report it once; a node that reports others' tasks keeps doing so and is disconnected.
    if (foreign > 0) ns.session.violation(new ProtocolViolation('not-owner', `${foreign} status update(s) for tasks not assigned to this node`));
    this.scheduleStatusFlush();
  }

  /** Usage of the sender's own tasks only (others' would spoof their numbers). */
  private usage(ns: NodeSession, m: UsageMessage): void {
    for (const v of m.rejected) ns.session.violation(v);
    const own: UsageMessage['tasks'] = {};
    let foreign = 0;
    this.d.store.view((tx) => {
      for (const [id, u] of Object.entries(m.tasks)) {
        const t = tx.get('task', id) as Task | undefined;
        if (!t) continue; // removed meanwhile
        if (t.nodeId !== ns.nodeId) foreign++;
        else own[id] = u;
      }
    });
    if (foreign > 0) ns.session.violation(new ProtocolViolation('not-owner', `usage for ${foreign} task(s) not assigned to this node`));
    this.remote.onUsage(Date.now(), own);
  }

  private async renew(ns: NodeSession, csr: string, now: number): Promise<void> {
    const nodeId = ns.nodeId;
    if (!this.renewLimiter.allow(nodeId, now)) {
      throw new ProtocolViolation(
        'renew-rate',
        `certificate renewals are limited; retry in ${Math.ceil(this.renewLimiter.retryAfterMs(nodeId, now) / 1000)} s`,
      );
    }
    const c = this.cluster()!;
    const n = this.node(nodeId);
    if (!n) throw new Error('unknown node');
    let issued: ReturnType<typeof signNodeCertificate>;
    // During a root rotation the new root's key issues (manager/ca/rotation.ts).
    const ca = issuerOf(c.rootCa);
    try {
      issued = signNodeCertificate({
        caCertPem: ca.certPem,
        caKeyPem: ca.keyPem,
        csrPem: csr,
        nodeId,
        role: n.spec.role,
        clusterId: this.d.clusterId,
        sans: { ips: [n.status.addr || n.description.addr].filter((x) => /^\d+\.\d+\.\d+\.\d+$/.test(x)) },
        validityMs: c.spec.caConfig?.nodeCertValidityMs ?? 90 * 24 * 3600_000,
      });
    } catch (e) {
      if (e instanceof PkiError) throw new ProtocolViolation('bad-csr', `certificate request refused: ${e.message}`);
      throw e;
    }
    // The new certificate's record and, for a renewal into another role (demotion), the revocation of the
    // old role's certificates (security review, finding 12: they could otherwise still speak Raft for the
    // rest of their life) are one transaction, committed before the certificate is sent: either both
    // happen or neither, so no issued demotion leaves the manager certificate valid. Other renewals keep
    // the old certificate valid, because a running manager's Raft transport still dials with it
    // (manager/ca/revocation.ts). The revocation refuses the certificate this session was opened with:
    // recheckCertificates holds that close until the new certificate was sent (`renewing`).
    ns.renewing = (ns.renewing ?? 0) + 1;
    try {
      let committed = false;
      await this.d.gate.update((tx) => {
        const cur = tx.get('node', nodeId) as NodeObj | undefined;
        committed = cur !== undefined;
        if (!cur) return;
        tx.update({ ...cur, certificate: recordIssued(cur.certificate, issued, n.spec.role, new Date(now), { issuer: ca.digest, anchor: ca.anchorDigest }) });
        const cl = tx.get('cluster', CLUSTER_ID) as Cluster;
        const deny = revokeOnRoleChange(cl.denyList, cur.certificate, n.spec.role);
        if (deny !== cl.denyList) tx.update({ ...cl, denyList: deny } as Cluster);
      });
      if (committed)
        ns.session.sendJson({ t: 'cert', certPem: withChain(issued.certPem, ca), caCertPem: ca.anchorPem, role: n.spec.role } satisfies ManagerToAgent);
    } finally {
      ns.renewing = (ns.renewing ?? 1) - 1;
      const problem = ns.renewing === 0 ? ns.closeAfterRenew : undefined;
      if (problem !== undefined) ns.closeAfterRenew = undefined;
      if (problem !== undefined) this.closeRevoked(ns, problem);
    }
  }

  // ------------------------------------------------------------------ leadership

  /** This manager became leader: nodes believed alive get a full grace window; pushes start. */
  startLeading(): void {
    this.leading = true;
    const nodes = this.d.store.view((tx) => tx.list('node')) as NodeObj[];
    const alive = nodes.filter((n) => n.status.state === 'ready' || n.status.state === 'unknown').map((n) => n.id);
    // Sized by the nodes this leader takes back, and set before they are tracked: no node can be on an
    // earlier, longer period yet (NodeLiveness.setPeriod would hold that one).
    this.liveness.setPeriod(this.heartbeatPeriod(Math.max(this.sessions.size, alive.length)), this.configuredPeriod(), Date.now());
    const grace = takeoverGraceMs(alive.length);
    this.liveness.startTracking(alive, Date.now(), grace);
    this.massHoldUntil = null;
    this.lastSessionAt = Number.NEGATIVE_INFINITY;
    if (alive.length > 0)
      this.d.log(
        `tracking ${alive.length} node(s): Down after ${this.liveness.deadlineMs + grace} ms without a heartbeat, then ${this.liveness.deadlineMs} ms`,
      );
    // Any change to a node's tasks is pushed to that node's session (debounced per node).
    this.unwatchTasks = this.d.store.watch(
      {
        kinds: ['task'],
        onClose: () => {
          // Store reset (snapshot installed): resend everything.
          this.drain.clear();
          for (const id of this.sessions.keys()) this.markAssignments(id);
        },
      },
      (ev) => {
        const t = ev.object as Task;
        const old = ev.old as Task | undefined;
        if (ev.type === 'delete' || isTerminalTaskState(t.status.state)) this.drain.forget(t.id);
        // A state the node itself reported (accepted → … → running) changes nothing the node is told:
        // echoing its whole set back for each one was most of the leader's outbound traffic at scale.
        if (ev.type === 'update' && old && !assignmentChanged(old, t)) return;
        // The node's own report that the task ended: it needs to hear that the task left its set, but
        // not soon (one message of three per task replaced in a rolling update).
        if (ev.type === 'update' && old && t.nodeId && onlyEnded(old, t)) {
          this.markAssignmentsLater(t.nodeId);
          return;
        }
        if (t.nodeId) this.markAssignments(t.nodeId);
        if (old?.nodeId && old.nodeId !== t.nodeId) this.markAssignments(old.nodeId);
      },
    );
    // Network views depend on services, networks, nodes and the tasks attached to networks anywhere:
    // recompute them (debounced). Tasks on no network are in no view.
    this.unwatchNet = this.d.store.watch(
      {
        kinds: ['task', 'service', 'network', 'node'],
        predicate: (ev) => {
          if (ev.kind === 'node') return ev.type !== 'update' || !ev.old || nodeChangeAffectsNetViews(ev.old as NodeObj, ev.object as NodeObj);
          return ev.kind !== 'task' || (ev.object as Task).networks?.length > 0 || ((ev.old as Task | undefined)?.networks?.length ?? 0) > 0;
        },
        onClose: () => {
          this.netIdx = undefined;
          this.markNetViews();
        },
      },
      (ev) => {
        this.netIdx = undefined;
        // A removed node's view versions go with it (the maps stay bounded by the nodes that exist).
        if (ev.kind === 'node' && ev.type === 'delete') {
          this.viewSent.delete(ev.object.id);
          this.viewApplied.delete(ev.object.id);
        }
        this.markNetViews();
      },
    );
  }

  /** Leadership lost: stop pushing; agents reconnect to the new leader. */
  stopLeading(closeSessions: boolean): void {
    this.leading = false;
    this.unwatchTasks?.();
    this.unwatchTasks = null;
    this.unwatchNet?.();
    this.unwatchNet = null;
    this.netIdx = undefined;
    if (this.netTimer) clearTimeout(this.netTimer);
    this.netTimer = null;
    this.netRetry.clear();
    this.assignRetry.clear();
    this.laterNodes.clear();
    this.sentViews.clear();
    this.viewSent.clear();
    this.viewApplied.clear();
    this.drain.clear();
    if (this.drainTimer) clearTimeout(this.drainTimer);
    this.drainTimer = null;
    if (closeSessions) {
      for (const ns of this.sessions.values()) ns.session.close(4001, 'leadership lost');
      this.sessions.clear();
    }
  }

  /** Manager shutdown: every session ends at once. */
  stop(): void {
    this.stopLeading(false);
    for (const ns of this.sessions.values()) ns.session.terminate('manager stopping');
    this.sessions.clear();
    if (this.statusTimer) clearTimeout(this.statusTimer);
    this.statusTimer = null;
    if (this.assignTimer) clearTimeout(this.assignTimer);
    this.assignTimer = null;
    this.wss.close();
  }

  /**
   * The leader did not run from `fromMs` to `toMs` (a blocked event loop or a starved process): that
   * time is not counted against the nodes' heartbeats (NodeLiveness.leaderStalled).
   */
  leaderStalled(fromMs: number, toMs: number): void {
    this.liveness.leaderStalled(fromMs, toMs);
    // Short stalls are routine on a busy leader; a long one is worth a line.
    if (toMs - fromMs >= 1000) this.d.log(`leader stalled for ${toMs - fromMs} ms: heartbeat deadlines moved by as much`);
  }

  /** Down detection (leader tick): nodes silent past the deadline are marked down (see downDecision). */
  async detectDown(now: number): Promise<void> {
    this.liveness.setPeriod(this.heartbeatPeriod(), this.configuredPeriod(), now);
    const overdue = this.liveness.overdue(now);
    const decision = downDecision({
      overdue: overdue.length,
      tracked: this.liveness.trackedCount,
      now,
      deadlineMs: this.liveness.deadlineMs,
      heldUntil: this.massHoldUntil,
      heldSince: this.massHoldSince,
      firstHeldAt: this.massFirstHeldAt,
      lastSessionAt: this.lastSessionAt,
    });
    if (decision.mark === 'all') this.massHoldUntil = null;
    else {
      // A new mass, or one held again for reconnects, starts the count to its bound; each is logged once.
      const fresh = this.massHoldUntil === null;
      const reconnecting = decision.mark === 'none' && decision.reconnecting === true;
      if (fresh) this.massFirstHeldAt = now;
      if (fresh || reconnecting) this.massHoldSince = now;
      if (fresh || reconnecting || decision.mark === 'some') this.d.log(decision.reason);
      this.massHoldUntil = decision.holdUntil;
    }
    const expired = decision.mark === 'all' ? this.liveness.expired(now) : decision.mark === 'some' ? this.liveness.expired(now, decision.max) : [];
    if (expired.length > 0) {
      // In as many transactions as the nodes need: after a mass hold, 2,000 nodes in one were 2 MB,
      // above the store's limit, and the write failed on every tick (bench:scale, leader kill).
      await this.d.store.batch(expired, (tx, id) => {
        const n = tx.get('node', id) as NodeObj | undefined;
        if (!n || n.status.state === 'down') return;
        tx.update({ ...n, status: { ...n.status, state: 'down', message: 'heartbeat failure' } });
      });
      for (const id of expired) this.d.log(`node ${id} marked down (no heartbeat for ${this.liveness.deadlineMs} ms)`);
    }
    // Track nodes that (re)appear without a session yet. A node marked down that heartbeats again on
    // its session (it was only late: a busy node or network) is ready again: its session never ended,
    // so no hello will say so, and it would otherwise stay down for good.
    const revived: string[] = [];
    for (const n of this.d.store.view((tx) => tx.list('node')) as NodeObj[]) {
      if (n.status.state === 'ready' && !this.liveness.isTracked(n.id)) this.liveness.heartbeat(n.id, now);
      else if (n.status.state === 'down' && this.liveness.isTracked(n.id) && this.sessions.has(n.id)) revived.push(n.id);
    }
    if (revived.length > 0) {
      await this.d.store.batch(revived, (tx, id) => {
        const n = tx.get('node', id) as NodeObj | undefined;
        if (n?.status.state !== 'down') return;
        tx.update({ ...n, status: { ...n.status, state: 'ready', message: '', lastHeartbeat: new Date(now).toISOString() } });
      });
      this.d.log(`${revived.length} node(s) marked down heartbeat again: ready (${revived.slice(0, 5).join(', ')}${revived.length > 5 ? ', …' : ''})`);
    }
  }

  // ------------------------------------------------------------------ assignments and network views

  /**
   * A round of every node's view follows a change after NET_ROUND_MS, or after NET_ROUND_PACE times the
   * last round's own time when that is longer (at most NET_ROUND_MAX_MS): a round is O(nodes) views of
   * O(nodes) addresses each, and while 5,000 nodes joined, rounds every 100 ms took 32 of the leader's 127
   * busy seconds (bench:scale --profile, December 7). Paced, they take at most about a fifth of it.
   */
  private markNetViews(): void {
    const delay = Math.max(NET_ROUND_MS, Math.min(NET_ROUND_MAX_MS, NET_ROUND_PACE * this.lastNetRoundMs));
    this.netTimer ??= setTimeout(() => {
      this.netTimer = null;
      const t0 = performance.now();
      this.sendNetViews([...this.sessions.keys()]);
      this.lastNetRoundMs = performance.now() - t0;
    }, delay);
  }

  /** Has the node a task on a network that is not finished (whose start or traffic needs its view)? */
  private hasNetworkedTasks(nodeId: string): boolean {
    return this.d.store.view((tx) => tx.tasksByNode(nodeId).some((t) => t.networks?.length > 0 && !isTerminalTaskState(t.status.state)));
  }

  /**
   * The network index of the store as it is now, built at most once between changes that can alter a
   * view (the watch in startLeading drops it): a hello asks for one node's view, and thousands arrive
   * together after a change of leader.
   */
  private netIndex(): NetIndex | null {
    if (this.netIdx !== undefined) return this.netIdx;
    const snap = this.d.store.view((tx) => ({
      networks: tx.list('network'),
      services: tx.list('service'),
      tasks: tx.list('task'),
      nodes: tx.list('node'),
    })) as NetSnapshot;
    const idx = snap.networks.length === 0 ? null : new NetIndex(snap);
    // Kept only while the watch that drops it runs (leading); otherwise nothing would.
    if (this.leading && this.unwatchNet !== null) this.netIdx = idx;
    return idx;
  }

  /** Sends each node its NetView if it changed since the last one sent over its session. */
  private sendNetViews(nodeIds: string[]): void {
    if (nodeIds.length === 0) return;
    // No network at all (the common case for a cluster without overlays): nothing to compute.
    if (this.d.store.view((tx) => tx.count('network')) === 0) return;
    const idx = this.netIndex();
    if (idx === null) return;
    // Every view carries every node's address (nodeAddrs): at 5,000 nodes ≈ 70 KB of each view, the same
    // in all. It is serialised once per index and spliced into each message; what is compared (and kept,
    // per node) is the rest of the view and the generation of the addresses (netview-addrs.ts). An agent
    // that takes changes gets the whole list once per session, then what changed since its generation. A
    // view is built in a fixed key order (NetIndex.view), so its JSON.stringify is canonical:
    // canonicalJson's sorting replacer over every value of 5,000 views was 19 of those 32 seconds.
    const addrs = idx.nodeAddrsJson;
    const gen = this.addrGens.note(idx.nodeAddrs, addrs);
    for (const id of nodeIds) {
      const ns = this.sessions.get(id);
      if (!ns) continue;
      const rest = JSON.stringify(idx.view(id, false));
      const sent = this.sentViews.get(id);
      if (sent !== undefined && sent.rest === rest && sent.gen === gen) continue;
      // Versions grow per node across its sessions: an acknowledgement always names one view.
      const v = (this.viewSent.get(id) ?? 0) + 1;
      const change = ns.takesAddrChanges && sent !== undefined ? this.addrGens.changeFrom(sent.gen) : null;
      const text =
        change !== null
          ? `{"t":"network","view":${rest},"addrs":${change},"v":${v}}`
          : `{"t":"network","view":${rest.slice(0, -1)},"nodeAddrs":${addrs}},"addrsGen":${gen},"v":${v}}`;
      if (ns.session.send(text)) {
        this.sentViews.set(id, { rest, gen });
        this.viewSent.set(id, v);
      } else this.netRetry.add(id);
    }
  }

  /**
   * Nodes whose assignments changed are sent them together: at once (next turn) after a quiet spell, so
   * the events of one committed entry go out in one round, then at most one round per
   * ASSIGNMENT_ROUND_MS, so a node whose tasks change in every entry of a burst gets one message for
   * several of them. (A 10 ms debounce before every round was a fixed wait in each task's start and stop.)
   * Pacing rounds by their own time (four times a round of more than 50 ms) was tried for the
   * 150,000-replica create, where every message carried one task: the rounds grew to ≈ 2,100 messages
   * but still one task each (the tasks came at ≈ 2,100 a second, spread over 5,000 nodes), so it is not
   * kept.
   */
  private markAssignments(nodeId: string): void {
    if (!this.sessions.has(nodeId)) return;
    this.dirtyNodes.add(nodeId);
    this.assignTimer ??= setTimeout(
      () => {
        this.assignTimer = null;
        const t0 = performance.now();
        this.lastAssignRound = t0;
        const nodes = [...this.dirtyNodes];
        this.dirtyNodes.clear();
        for (const id of nodes) this.sendAssignments(id);
        this.counters.assignmentRound(performance.now() - t0);
      },
      Math.max(0, this.lastAssignRound + ASSIGNMENT_ROUND_MS - performance.now()),
    );
  }

  /**
   * A node whose only news is that tasks it reported ended left its set: sent with its next round, or
   * after ENDED_ASSIGNMENT_MS at the latest (one timer for all such nodes).
   */
  private markAssignmentsLater(nodeId: string): void {
    if (this.sessions.has(nodeId)) this.laterNodes.add(nodeId);
  }

  /**
   * Tells a node its tasks that are assigned and not finished: the full set first on a session, then what
   * changed (assignments.ts) if its agent takes that. A refused send starts over with a full set.
   */
  private sendAssignments(nodeId: string): void {
    const ns = this.sessions.get(nodeId);
    if (!ns) return;
    this.laterNodes.delete(nodeId); // this message carries the removals too
    // The secrets and configs these tasks reference go first, on the same (ordered) session.
    const sent = this.sentFiles.get(ns) ?? new Set<string>();
    this.sentFiles.set(ns, sent);
    const { tasks, files } = this.d.store.view((tx) => {
      const tasks = (tx.tasksByNode(nodeId) as Task[]).filter((t) => liveOnNode(t.status.state));
      return { tasks, files: planFileMessages(tx, tasks, sent, this.d.keys?.() ?? null, this.d.log) };
    });
    for (const m of files) ns.session.sendJson(m satisfies ManagerToAgent);
    const now = Date.now();
    const live = tasks.map((t) => ({ task: t, desired: this.stopHeld(t, nodeId, now) ? ('running' as const) : t.desiredState }));
    const { message, next } = planAssignments(ns.takesChanges ? ns.assigned : null, live);
    if (message === null) return;
    this.counters.assignments(message.t === 'assignments' ? 'full' : 'changes', message.t === 'assignments' ? message.tasks.length : message.set.length);
    if (ns.session.sendJson(message)) ns.assigned = next;
    else {
      ns.assigned = null;
      this.assignRetry.add(nodeId);
    }
  }

  /**
   * Is the stop of this task held until the nodes have applied views without it (drain.ts)? Only
   * running tasks on a network are backends anywhere; any other stop goes at once.
   */
  private stopHeld(t: Task, nodeId: string, now: number): boolean {
    if ((t.desiredState !== 'shutdown' && t.desiredState !== 'remove') || t.status.state !== 'running' || !t.networks?.length) return false;
    if (this.drain.mayStop(t.id, nodeId, () => this.drainNeed(), now)) return false;
    this.armDrainTimer();
    return true;
  }

  /**
   * The view version each node must apply before a stop that starts now may go. The views without the
   * task go out at once (not after the 100 ms debounce); a node whose last view was refused needs the
   * next one.
   */
  private drainNeed(): Map<string, number> {
    if (this.netTimer) {
      clearTimeout(this.netTimer);
      this.netTimer = null;
      this.sendNetViews([...this.sessions.keys()]);
    }
    const need = new Map<string, number>();
    for (const id of this.sessions.keys()) {
      const required = (this.viewSent.get(id) ?? 0) + (this.netRetry.has(id) ? 1 : 0);
      if ((this.viewApplied.get(id) ?? 0) < required) need.set(id, required);
    }
    return need;
  }

  /** One timer for the earliest drain deadline; released stops are sent with the nodes' assignments. */
  private armDrainTimer(): void {
    if (this.drainTimer) return;
    const at = this.drain.nextDeadline();
    if (at === null) return;
    this.drainTimer = setTimeout(
      () => {
        this.drainTimer = null;
        const now = Date.now();
        const late = this.drain.overdue(now);
        if (late.length > 0)
          this.d.log(`stop drain: no acknowledgement within ${DRAIN_MAX_MS} ms from ${late.length} node(s) (${late.slice(0, 5).join(', ')}); stopping anyway`);
        this.releaseStops(this.drain.expire(now));
        this.armDrainTimer();
      },
      Math.max(0, at - Date.now()),
    );
  }

  private releaseStops(nodeIds: string[]): void {
    for (const id of nodeIds) this.markAssignments(id);
  }

  // ------------------------------------------------------------------ status writes

  /**
   * Status writes are group commits: the first report after a quiet spell is written on the next turn of
   * the event loop, and the reports that arrive while a write is in flight go together in one more write
   * right after it (the queue keeps only each task's furthest state). So a report waits at most one
   * commit, not a fixed window on top of it (a 20 ms timer, once: every slot of a rolling update paid it
   * twice), and the busier the leader, the larger each write. One write in flight at a time also keeps
   * the writes in the order the reports came.
   */
  private scheduleStatusFlush(): void {
    if (this.statusFlushing) return; // the write in flight flushes again when it ends
    this.statusTimer ??= setTimeout(() => {
      this.statusTimer = null;
      this.statusFlushing = true;
      void this.flushStatus()
        .catch((e) => this.d.log(`task status: ${(e as Error).message}`))
        .finally(() => {
          this.statusFlushing = false;
          if (this.statusQueue.size > 0 && this.leading) this.scheduleStatusFlush();
        });
    }, 0);
  }

  /**
   * Writes queued task states: only by the node the task is assigned to, and only forward. A chunk
   * whose transaction fails for a reason of its own (not a lost leadership) is retried one update at a
   * time, so one bad entry cannot lose the other nodes' updates.
   */
  private async flushStatus(): Promise<void> {
    const items = this.statusQueue.drain();
    if (items.length === 0 || !this.leading) return;
    for (let i = 0; i < items.length; i += DISPATCHER_LIMITS.statusChunk) {
      const chunk = items.slice(i, i + DISPATCHER_LIMITS.statusChunk);
      try {
        this.counters.statusWrote(await this.writeStatus(chunk));
      } catch (e) {
        if (!this.leading || chunk.length === 1) throw e;
        this.d.log(`task status: a batch of ${chunk.length} failed (${(e as Error).message}); writing them one by one`);
        for (const one of chunk) {
          try {
            this.counters.statusWrote(await this.writeStatus([one]));
          } catch (e1) {
            if (!this.leading) throw e1;
            this.counters.drop('write-failed');
            this.d.log(`task status: update of task ${one.u.taskId} from node ${one.nodeId} dropped: ${(e1 as Error).message}`);
          }
        }
      }
    }
  }

  /** One transaction of status updates; returns how many changed a task. */
  private async writeStatus(chunk: { nodeId: string; u: TaskStatusUpdateOf }[]): Promise<number> {
    let written = 0;
    let stale = 0;
    await this.d.gate.update((tx) => {
      written = 0;
      stale = 0;
      for (const { nodeId, u } of chunk) {
        const t = tx.get('task', u.taskId) as Task | undefined;
        if (!t || t.nodeId !== nodeId) continue;
        const rank = taskStateRank(u.state);
        const cur = taskStateRank(t.status.state);
        if (rank <= cur) {
          if (rank < cur) stale++;
          continue;
        }
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
        written++;
      }
    });
    if (stale > 0) this.counters.drop('stale-state', stale);
    return written;
  }

  // ------------------------------------------------------------------ stats

  stats(): DispatcherStats {
    return {
      ...this.counters.snapshot(
        [...this.sessions.values()].map((ns) => ns.session.counters),
        this.sessions.size,
      ),
      drain: this.drain.stats(),
    };
  }
}

type TaskStatusUpdateOf = StatusMessage['updates'][number];

/** Hands a node's answer to a logs/exec request to RemoteCalls, which checks it against its request. */
export function routeRemote(remote: RemoteCalls, nodeId: string, m: RemoteMessage): void {
  remote.onNodeMessage(nodeId, m);
}

/** A socket's remote address as a node address: IPv4-mapped IPv6 unwrapped; '' if unknown. */
export function observedAddr(a: string | undefined): string {
  if (!a) return '';
  return a.startsWith('::ffff:') && a.includes('.') ? a.slice(7) : a;
}
