// The node agent's session with the cluster: one mutual-TLS WebSocket to the leader's dispatcher,
// heartbeats every period, failover across the manager list it learns, and certificate renewal; over
// it the node receives its assignments and answers the leader's logs and exec requests.
//
// Everything the agent sends is bounded: task status changes are batched (and collapse to the
// executor's snapshot if they pile up), log lines are cut into 16 KiB chunks and sent in batches of at
// most 256 KiB, each task of a logs request at most a window ahead of the leader's acknowledgements,
// and exec output goes out in 64 KiB pieces under the same kind of window (worker/logs/).
import { hostname, cpus, totalmem } from 'node:os';
import type { PeerCertificate } from 'node:tls';
import { WebSocket, type ClientOptions } from 'ws';
import { jsonDecoder, ProtocolViolation, Session } from '../transport/session.ts';
import { applyAddrChange } from './netview-addrs.ts';
import {
  AGENT_FEATURES,
  AGENT_HANDSHAKE_TIMEOUT_MS,
  AGENT_SERVER_NAME,
  DISPATCHER_PATH,
  EXEC_WINDOW_BYTES,
  LOG_MIN_WINDOW_BYTES,
  LOG_WINDOW_BYTES,
  type AgentToManager,
  type ManagerAddr,
  type ManagerToAgent,
  type TaskUsage,
} from '../api/dispatcher.ts';
import type { NetView } from '../api/netview.ts';
import { expandTemplates } from '../api/templates.ts';
import type { Executor } from './executor.ts';
import type { TaskAssignment, TaskStatusUpdate } from '../api/task-status.ts';
import { chunkEntry, LogBatcher, logChunkCost, splitBuffer } from '../api/log-chunk.ts';
import { FlowWindow } from './logs/flow.ts';
import { MIN_BACKOFF_MS, handshakeTimeoutMs, reconnectDelay } from './reconnect.ts';
import { statusSendDelay } from './status-batch.ts';

/** Status updates kept while waiting to be sent; beyond this the executor's snapshot replaces them. */
const MAX_STATUS_BUFFER = 4096;
/** Status updates per 'status' message (keeps each message far below the session's size limit). */
const STATUS_PER_MESSAGE = 256;
/** Logs and exec requests a node serves at once (more are refused with an error). */
const MAX_LOG_REQUESTS = 64;
const MAX_EXEC_REQUESTS = 32;
/** Unsent bytes on the session above which usage reports (which the next report replaces) are skipped. */
const USAGE_SKIP_BUFFERED = 4 << 20;
/** How long a logs request may wait for the leader's acknowledgement before that task's part ends. */
const ACK_TIMEOUT_MS = 60_000;
// Reconnect delays: reconnect.ts. Node Down is decided by heartbeats the leader misses, not by them: a
// node reconnecting to a new leader gets a full grace window there (dispatcher startLeading).
/** Largest message accepted from a manager (an 'assignments' message lists every task of the node). */
const MAX_MANAGER_MESSAGE = 64 << 20;

/** Manager messages are trusted in content (the peer is a manager of our CA), but must be objects with a type. */
function decodeManagerMessage(v: unknown): ManagerToAgent {
  if (typeof v !== 'object' || v === null || typeof (v as { t?: unknown }).t !== 'string') throw new ProtocolViolation('bad-field', 'message without a type');
  return v as ManagerToAgent;
}

export interface AgentCredentials {
  key: string;
  cert: string;
  ca: string;
}

export interface AgentOptions {
  nodeId: string;
  managers: string[]; // host:port
  creds: () => AgentCredentials;
  advertiseAddr: string;
  hostname?: string;
  log?: (line: string) => void;
  /** A renewed certificate arrived (the daemon stores it and reloads its TLS contexts). */
  onCertificate?: (certPem: string, caCertPem: string, role: 'manager' | 'worker') => void;
  /** The managers told us our role changed. */
  onRole?: (role: 'manager' | 'worker') => void;
  /** The managers asked for a certificate renewal now. */
  onRenewRequest?: () => void;
  onManagers?: (managers: string[]) => void;
  /** When this node runs a manager: its secure address, announced after every session start. */
  managerAdvertise?: () => string | null;
  /** Runs the tasks the managers assign (absent: the node accepts no tasks). */
  executor?: Executor;
  /** Logs, exec and usage of the executor's containers (absent: requests are answered with an error). */
  tools?: AgentTools;
  /**
   * The overlay networks this node takes part in changed. A returned promise settles once the view is
   * programmed (the leader is told then; without one, at once).
   */
  onNetwork?: (view: NetView) => void | Promise<void>;
  /** Holds the secret and config data the leader sends, in memory only (worker/files.ts NodeFiles). */
  files?: { apply(m: { set: unknown; remove: unknown }): void; reset(): void };
  /** How often to report task usage (default 5 s). */
  usagePeriodMs?: number;
  random?: () => number;
  /**
   * How long a new connection may go without a welcome or a redirect before the agent gives up on it
   * (default WELCOME_TIMEOUT_MS).
   */
  welcomeTimeoutMs?: number;
}

/**
 * A manager answers a hello at once: the leader with a welcome, any other with a redirect and a close.
 * A connection that stays silent (a manager wedged, or one stopping) would otherwise hold the agent until
 * the session's liveness gives up (45 s), longer than the leader waits before it marks the node Down.
 */
export const WELCOME_TIMEOUT_MS = 5_000;

export interface AgentTools {
  /** `partial`: the entry is not the end of its line (the shim cut a long line). */
  logs?(
    taskId: string,
    opts: { tail?: number; since?: Date; follow?: boolean; signal: AbortSignal },
  ): AsyncIterable<{ ts: string; stream: 'stdout' | 'stderr'; line: string; partial?: boolean }>;
  exec?(taskId: string, args: string[], opts: { timeoutMs: number }): Promise<{ exitCode: number; stdout: Buffer; stderr: Buffer }>;
  usage?(): Record<string, TaskUsage>;
}

export type AgentState = 'connecting' | 'ready' | 'stopped';

export class Agent {
  private ws: WebSocket | null = null;
  /** The session around `ws`: owns its error, close, liveness and outbound-buffer limits. */
  private session: Session<ManagerToAgent> | null = null;
  private managers: string[];
  private next = 0;
  private hbTimer: NodeJS.Timeout | null = null;
  /** When this session last sent what the leader takes as a heartbeat (performance.now()). */
  private aliveSentAt = -Infinity;
  private retryTimer: NodeJS.Timeout | null = null;
  private backoff = MIN_BACKOFF_MS;
  private periodMs = 1000;
  /** The reconnect spread the leader announced (welcome, hb); 0: none. reconnectDelay bounds whatever came. */
  private spreadMs = 0;
  private preferred: string | null = null;
  state: AgentState = 'connecting';
  connectedTo: string | null = null;
  private readonly log: (l: string) => void;
  private pendingRenew: ((r: { certPem: string; caCertPem: string; role: 'manager' | 'worker' }) => void) | null = null;

  private statusBuf: TaskStatusUpdate[] = [];
  /**
   * This session's assignments (templates expanded), by task id: the full set the leader sent first,
   * with every 'assignment-changes' since applied. null until the session's full set came.
   */
  private assigned: Map<string, TaskAssignment> | null = null;
  /**
   * The node addresses of this session's last view, and their generation (worker/netview-addrs.ts): what the
   * leader's next change of them applies to. null until the session's first view came whole.
   */
  private netAddrs: { gen: number; list: readonly string[] } | null = null;
  private statusTimer: NodeJS.Timeout | null = null;
  /** When statusTimer fires, and when the last status message went (performance.now()). */
  private statusDue = 0;
  private statusSentAt = -Infinity;

  constructor(private readonly opts: AgentOptions) {
    this.managers = [...opts.managers];
    this.log = opts.log ?? (() => {});
    opts.executor?.onStatus((u) => this.queueStatus(u));
  }

  /** Task status changes go out in small batches: one message per 20 ms at most (status-batch.ts). */
  private queueStatus(u: TaskStatusUpdate): void {
    this.statusBuf.push(u);
    // Piled up (no session for a while, or a storm of changes): the latest state of every task says
    // everything the history would, in bounded space.
    if (this.statusBuf.length > MAX_STATUS_BUFFER) this.statusBuf = this.opts.executor?.snapshot() ?? this.statusBuf.slice(-MAX_STATUS_BUFFER);
    const now = performance.now();
    const due = now + statusSendDelay(u.state, now, this.statusSentAt);
    if (this.statusTimer !== null) {
      if (this.statusDue <= due) return;
      clearTimeout(this.statusTimer);
    }
    this.statusDue = due;
    this.statusTimer = setTimeout(() => {
      this.statusTimer = null;
      if (this.state !== 'ready') return; // re-sent from the executor's snapshot on the next session
      const updates = this.statusBuf;
      this.statusBuf = [];
      this.statusSentAt = performance.now();
      this.sendStatus(updates);
    }, due - now);
  }

  private sendStatus(updates: TaskStatusUpdate[]): void {
    for (let i = 0; i < updates.length; i += STATUS_PER_MESSAGE) {
      // The leader takes a status message as a heartbeat too (dispatcher.ts status).
      if (this.send({ t: 'status', updates: updates.slice(i, i + STATUS_PER_MESSAGE) })) this.aliveSentAt = performance.now();
    }
  }

  start(): void {
    this.connect();
    if (this.opts.tools?.usage) {
      this.usageTimer = setInterval(() => this.reportUsage(), this.opts.usagePeriodMs ?? 5_000);
      this.usageTimer.unref();
    }
  }

  stop(): void {
    this.state = 'stopped';
    if (this.statusTimer) clearTimeout(this.statusTimer);
    if (this.usageTimer) clearInterval(this.usageTimer);
    this.abortRequests();
    void this.opts.executor?.close();
    if (this.hbTimer) clearTimeout(this.hbTimer);
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.ws?.terminate();
    this.ws = null;
    this.handingOver?.terminate();
    this.handingOver = null;
  }

  /** Announces that this node now runs a manager (after a promotion). */
  announceManager(advertise: string): void {
    this.send({ t: 'manager-up', advertise });
  }

  knownManagers(): string[] {
    return [...this.managers];
  }

  /** Sends a CSR over the session and resolves with the signed certificate. */
  renew(csr: string, timeoutMs = 10_000): Promise<{ certPem: string; caCertPem: string; role: 'manager' | 'worker' }> {
    return new Promise((resolve, reject) => {
      if (!this.ws || this.state !== 'ready') {
        reject(new Error('no session with a manager'));
        return;
      }
      const t = setTimeout(() => {
        this.pendingRenew = null;
        reject(new Error('certificate renewal timed out'));
      }, timeoutMs);
      this.pendingRenew = (r) => {
        clearTimeout(t);
        resolve(r);
      };
      this.send({ t: 'renew', csr });
    });
  }

  private pickManager(): string {
    if (this.preferred) {
      const p = this.preferred;
      this.preferred = null;
      return p;
    }
    const m = this.managers[this.next % this.managers.length]!;
    this.next++;
    return m;
  }

  /**
   * Moves the session onto a new connection made with the current credentials, and only then lets the
   * old one go (make before break). Called after a certificate renewal, so the leader sees the new
   * certificate (a root CA rotation waits for that) without the node ever being without a session:
   * assignments, status and running logs/exec requests carry on, because the leader treats the new
   * connection as the same node's session and closes the old one itself ('replaced'). If the new
   * connection fails before it opens, the old session stays as it was. Without a session this is a
   * no-op: the next connection uses the new credentials anyway.
   */
  handover(): void {
    if (this.state !== 'ready' || !this.ws || !this.connectedTo || this.handingOver) return;
    this.connect(this.connectedTo);
  }

  /** A handover connection not yet open (the current session is still `ws`). */
  private handingOver: WebSocket | null = null;

  private connect(handoverTo?: string): void {
    if (this.state === 'stopped') return;
    if (this.managers.length === 0) {
      this.log('agent: no managers known');
      return;
    }
    const target = handoverTo ?? this.pickManager();
    const creds = this.opts.creds();
    if (!handoverTo) this.state = 'connecting';
    const options = {
      key: creds.key,
      cert: creds.cert,
      ca: creds.ca,
      rejectUnauthorized: true,
      perMessageDeflate: false,
      handshakeTimeout: handshakeTimeoutMs(this.spreadMs, AGENT_HANDSHAKE_TIMEOUT_MS),
      // Names this connection an agent's, so a manager taking many reconnects lets the control API and
      // Raft go first (daemon/handshake-admission.ts). Identity is checked below, not by this name.
      servername: AGENT_SERVER_NAME,
      maxPayload: MAX_MANAGER_MESSAGE,
      // Identity is the certificate's role, not a host name: any manager of our CA may serve us.
      checkServerIdentity: (_host: string, cert: PeerCertificate) => (String(cert.subject?.OU) === 'manager' ? undefined : new Error('peer is not a manager')),
    };
    const ws = new WebSocket(`wss://${target}${DISPATCHER_PATH}`, options as unknown as ClientOptions);
    if (handoverTo) this.handingOver = ws;
    else this.ws = ws;
    const retry = (why: string, code = 1006) => {
      if (this.handingOver === ws) {
        // The handover connection failed before it opened: the current session, if any, carries on.
        this.handingOver = null;
        if (this.ws) {
          this.log(`agent: moving the session to a new connection failed (${why}); keeping the current one`);
          return;
        }
      } else if (this.ws !== ws) {
        return; // a session that was handed over, or replaced
      }
      const wasReady = this.state === 'ready';
      this.ws = null;
      this.session = null;
      if (this.hbTimer) clearTimeout(this.hbTimer);
      this.hbTimer = null;
      this.abortRequests(); // the manager that asked is gone
      if (this.state === 'stopped') return;
      this.state = 'connecting';
      this.connectedTo = null;
      // The session ended while a handover connection is on its way: that one becomes the session.
      if (this.handingOver) {
        this.log(`agent: session to ${target} ended (${why}); continuing on the new connection`);
        return;
      }
      const next = reconnectDelay({
        wasReady,
        code,
        redirected: this.preferred !== null,
        backoff: this.backoff,
        periodMs: this.periodMs,
        spreadMs: this.spreadMs,
        random: (this.opts.random ?? Math.random)(),
      });
      const delay = next.delay;
      this.backoff = next.backoff;
      this.log(`agent: session to ${target} ended (${why}); retrying in ${Math.round(delay)} ms`);
      this.retryTimer = setTimeout(() => this.connect(), delay);
    };
    let welcomeTimer: NodeJS.Timeout | null = null;
    // Errors, close, liveness and the outbound buffer are the session's: a leader that stops reading
    // (8 MiB unsent) gets the session closed, its requests end, and the agent reconnects.
    const session = new Session<ManagerToAgent>(ws, {
      name: `agent session to ${target}`,
      decode: jsonDecoder(decodeManagerMessage),
      onOpen: () => {
        if (this.handingOver === ws) {
          // Open: this connection becomes the session; the old one goes (the leader closes it too).
          this.handingOver = null;
          const old = this.session;
          this.ws = ws;
          this.session = session;
          old?.close(1000, 'session moved to a new connection');
          this.log(`agent: session moved to a new connection to ${target} (renewed certificate)`);
        }
        this.connectedTo = target;
        // The backoff is reset by a welcome, not here: a follower that knows no leader accepts the
        // connection and redirects at once, and resetting on every open made each agent of a cluster
        // without a leader redial every 50 ms, starving the managers' election of CPU.
        this.send({ t: 'hello', description: this.describe(), features: [...AGENT_FEATURES] });
        if (this.state !== 'ready') {
          welcomeTimer = setTimeout(() => {
            if (this.session === session && this.state !== 'ready') session.close(4000, 'no welcome');
          }, this.opts.welcomeTimeoutMs ?? WELCOME_TIMEOUT_MS);
          welcomeTimer.unref?.();
        }
      },
      onMessage: (m) => this.onMessage(m),
      onClose: (code, reason) => {
        if (welcomeTimer) clearTimeout(welcomeTimer);
        retry(`${code} ${reason}`, code);
      },
      log: (l) => this.log(l),
      limits: { maxMessageBytes: MAX_MANAGER_MESSAGE, slowConsumer: 'close' },
    });
    if (!handoverTo) this.session = session;
  }

  private onMessage(m: ManagerToAgent): void {
    switch (m.t) {
      case 'welcome': {
        this.state = 'ready';
        this.backoff = MIN_BACKOFF_MS;
        this.setManagers(m.managers);
        this.setPeriod(m.heartbeatPeriodMs);
        this.spreadMs = m.reconnectSpreadMs ?? 0;
        this.log(`agent: session established with ${this.connectedTo}`);
        // The leader resends the secrets and configs our tasks need on this session, and a full set.
        this.opts.files?.reset();
        this.assigned = null;
        this.netAddrs = null;
        const adv = this.opts.managerAdvertise?.();
        if (adv) this.send({ t: 'manager-up', advertise: adv });
        // A new session: tell the leader the true state of everything we run.
        const snap = this.opts.executor?.snapshot() ?? [];
        this.statusBuf = [];
        this.sendStatus(snap);
        return;
      }
      case 'assignments':
        this.assigned = new Map(m.tasks.map((t) => [t.id, this.expand(t)]));
        this.opts.executor?.reconcile([...this.assigned.values()]);
        return;
      case 'assignment-changes': {
        if (!Array.isArray(m.set) || !Array.isArray(m.remove)) {
          this.log('agent: assignment changes without set and remove lists: ignored');
          return;
        }
        if (this.assigned === null) {
          // The leader sends these only after a full set on the same session: a manager bug. The next
          // full set (a new session) repairs it; acting on a part would stop every task not named.
          this.log('agent: assignment changes before a full set on this session: ignored');
          return;
        }
        for (const id of m.remove) this.assigned.delete(id);
        for (const t of m.set) this.assigned.set(t.id, this.expand(t));
        this.opts.executor?.reconcile([...this.assigned.values()]);
        return;
      }
      case 'hb':
        this.setManagers(m.managers);
        if (m.heartbeatPeriodMs !== this.periodMs) this.setPeriod(m.heartbeatPeriodMs);
        this.spreadMs = m.reconnectSpreadMs ?? 0;
        return;
      case 'redirect':
        if (m.leader) this.preferred = m.leader.addr;
        return; // the manager closes the socket; we reconnect to the leader
      case 'role':
        this.opts.onRole?.(m.role);
        return;
      case 'renew-cert':
        this.opts.onRenewRequest?.();
        return;
      case 'cert':
        this.opts.onCertificate?.(m.certPem, m.caCertPem, m.role);
        this.pendingRenew?.({ certPem: m.certPem, caCertPem: m.caCertPem, role: m.role });
        this.pendingRenew = null;
        return;
      case 'error':
        this.log(`agent: manager says: ${m.message}`);
        return;
      case 'network': {
        let view = m.view;
        if (m.addrs !== undefined) {
          // What changed in the node addresses since the generation this session has.
          try {
            this.netAddrs = applyAddrChange(this.netAddrs, m.addrs);
          } catch (e) {
            // Not applicable to what we have (a manager bug): a new session starts with a whole view.
            this.log(`agent: network view: ${(e as Error).message}; starting a new session`);
            this.session?.close(4000, 'network view out of step');
            return;
          }
          view = { ...view, nodeAddrs: [...this.netAddrs.list] };
        } else if (Array.isArray(view?.nodeAddrs) && Number.isInteger(m.addrsGen)) this.netAddrs = { gen: m.addrsGen!, list: view.nodeAddrs };
        const applied = this.opts.onNetwork?.(view);
        // The leader holds stops of tasks until nodes have taken them out of their tables (drain.ts).
        const v = m.v;
        if (typeof v === 'number') {
          const ack = () => void this.send({ t: 'network-applied', v });
          void Promise.resolve(applied).then(ack, ack);
        }
        return;
      }
      case 'files':
        try {
          this.opts.files?.apply(m);
        } catch (e) {
          this.log(`agent: ${(e as Error).message}`);
        }
        return;
      case 'logs':
        void this.serveLogs(m);
        return;
      case 'logs-cancel':
        this.logReqs.get(m.req)?.ac.abort();
        return;
      case 'logs-ack':
        this.logReqs.get(m.req)?.windows.get(m.taskId)?.release(m.bytes);
        return;
      case 'exec':
        void this.serveExec(m);
        return;
      case 'exec-ack':
        this.execReqs.get(m.req)?.window.release(m.bytes);
        return;
    }
  }

  private logReqs = new Map<string, { ac: AbortController; windows: Map<string, FlowWindow> }>();
  private execReqs = new Map<string, { ac: AbortController; window: FlowWindow }>();

  /** The session ended or the agent stops: every logs and exec request being served ends too. */
  private abortRequests(): void {
    for (const r of this.logReqs.values()) r.ac.abort();
    for (const r of this.execReqs.values()) r.ac.abort();
  }

  /**
   * Streams the requested tasks' logs: chunks of at most 16 KiB in batches of at most 256 KiB (one
   * message per 50 ms at most while lines trickle in), each task at most LOG_WINDOW_BYTES ahead of the
   * leader's 'logs-ack'. Each task's end is announced ('log-end' with taskId), then the request's.
   */
  private async serveLogs(m: Extract<ManagerToAgent, { t: 'logs' }>): Promise<void> {
    const logs = this.opts.tools?.logs;
    if (!logs) {
      this.send({ t: 'log-end', req: m.req, error: 'this node keeps no container logs (test executor)' });
      return;
    }
    if (this.logReqs.size >= MAX_LOG_REQUESTS || this.logReqs.has(m.req)) {
      this.send({ t: 'log-end', req: m.req, error: `this node is serving ${this.logReqs.size} logs requests already; try again later` });
      return;
    }
    const ac = new AbortController();
    // The leader's window, never larger than the protocol's (a node never buffers more than that per task).
    const size =
      typeof m.window === 'number' && Number.isFinite(m.window) ? Math.max(LOG_MIN_WINDOW_BYTES, Math.min(m.window, LOG_WINDOW_BYTES)) : LOG_WINDOW_BYTES;
    const windows = new Map(m.taskIds.map((id) => [id, new FlowWindow(size)]));
    this.logReqs.set(m.req, { ac, windows });
    const batcher = new LogBatcher();
    let timer: NodeJS.Timeout | null = null;
    const flush = () => {
      if (timer) clearTimeout(timer);
      timer = null;
      if (batcher.size > 0) this.send({ t: 'log', req: m.req, lines: batcher.take() });
    };
    const errors: string[] = [];
    await Promise.all(
      [...windows].map(async ([taskId, window]) => {
        let error: string | undefined;
        let chunks = 0;
        try {
          const opts = {
            ...(m.tail !== undefined ? { tail: m.tail } : {}),
            ...(m.since ? { since: new Date(m.since) } : {}),
            follow: m.follow === true,
            signal: ac.signal,
          };
          read: for await (const e of logs(taskId, opts)) {
            for (const c of chunkEntry(taskId, e)) {
              const cost = logChunkCost(c);
              if (!window.tryTake(cost)) {
                flush(); // what waits in the batch must reach the leader before it can acknowledge it
                // A leader that stops acknowledging (its client stalled, or a message was lost) ends
                // this task's part after a while instead of holding the request forever.
                if (!(await window.take(cost, AbortSignal.any([ac.signal, AbortSignal.timeout(ACK_TIMEOUT_MS)])))) {
                  if (!ac.signal.aborted) error = `task ${taskId}: the leader stopped acknowledging log output for ${ACK_TIMEOUT_MS / 1000} s`;
                  break read;
                }
              }
              if (ac.signal.aborted) break read;
              chunks++;
              const full = batcher.add(c);
              if (full) this.send({ t: 'log', req: m.req, lines: full });
              if (batcher.full) flush();
              else timer ??= setTimeout(flush, 50);
            }
          }
        } catch (e) {
          if (!ac.signal.aborted) error = `task ${taskId}: ${(e as Error).message}`;
        }
        if (ac.signal.aborted) return;
        flush(); // the task's last chunks go before its end
        if (error) errors.push(error);
        this.send({ t: 'log-end', req: m.req, taskId, chunks, ...(error ? { error } : {}) });
      }),
    );
    if (timer) clearTimeout(timer);
    this.logReqs.delete(m.req);
    if (!ac.signal.aborted) flush();
    this.send({ t: 'log-end', req: m.req, ...(errors.length ? { error: errors.join('; ') } : {}) });
  }

  /**
   * Runs the command, then streams its output as 'exec-output' pieces of at most 64 KiB (stdout, then
   * stderr), at most EXEC_WINDOW_BYTES ahead of the leader's 'exec-ack', then the 'exec-result'. A
   * leader that stops acknowledging (its client went away) releases the output after the timeout.
   */
  private async serveExec(m: Extract<ManagerToAgent, { t: 'exec' }>): Promise<void> {
    const exec = this.opts.tools?.exec;
    if (!exec) {
      this.send({ t: 'exec-result', req: m.req, error: 'this node cannot exec into tasks (test executor)' });
      return;
    }
    if (this.execReqs.size >= MAX_EXEC_REQUESTS || this.execReqs.has(m.req)) {
      this.send({ t: 'exec-result', req: m.req, error: `this node is running ${this.execReqs.size} exec requests already; try again later` });
      return;
    }
    const ac = new AbortController();
    const window = new FlowWindow(EXEC_WINDOW_BYTES);
    this.execReqs.set(m.req, { ac, window });
    try {
      const r = await exec(m.taskId, m.args, { timeoutMs: m.timeoutMs });
      // The leader gives up on an exec timeoutMs + 5 s after asking; never hold its output longer than that.
      const signal = AbortSignal.any([ac.signal, AbortSignal.timeout(m.timeoutMs + 10_000)]);
      let seq = 0;
      for (const [stream, data] of [
        ['stdout', r.stdout],
        ['stderr', r.stderr],
      ] as const) {
        for (const piece of splitBuffer(data)) {
          if (!window.tryTake(piece.length) && !(await window.take(piece.length, signal))) return;
          this.send({ t: 'exec-output', req: m.req, stream, data: piece.toString('base64'), seq: seq++ });
        }
      }
      this.send({ t: 'exec-result', req: m.req, exitCode: r.exitCode, pieces: seq });
    } catch (e) {
      this.send({ t: 'exec-result', req: m.req, error: (e as Error).message });
    } finally {
      this.execReqs.delete(m.req);
    }
  }

  private usageTimer: NodeJS.Timeout | null = null;

  private reportUsage(): void {
    const usage = this.opts.tools?.usage;
    if (!usage || this.state !== 'ready') return;
    try {
      const tasks = usage();
      // The next report replaces this one: skip it rather than queue behind a slow session.
      if (Object.keys(tasks).length > 0 && (this.ws?.bufferedAmount ?? 0) < USAGE_SKIP_BUFFERED) this.send({ t: 'usage', at: Date.now(), tasks });
    } catch (e) {
      this.log(`agent: usage: ${(e as Error).message}`);
    }
  }

  /** Expands {{.Node.Hostname}}, {{.Task.Slot}}, … in the task's env, hostname and mounts, on this node. */
  private expand(t: TaskAssignment): TaskAssignment {
    const name = `${t.serviceName}.${t.slot ?? this.opts.nodeId}.${t.id}`;
    try {
      const spec = expandTemplates(t.spec, {
        node: { id: this.opts.nodeId, hostname: this.opts.hostname ?? hostname() },
        task: { id: t.id, name, ...(t.slot !== undefined ? { slot: t.slot } : {}) },
        service: { id: t.serviceId, name: t.serviceName },
      });
      return { ...t, spec };
    } catch (e) {
      this.log(`agent: task ${t.id}: template expansion failed: ${(e as Error).message}`);
      return t;
    }
  }

  private setManagers(list: ManagerAddr[]): void {
    const addrs = list.map((m) => m.addr).filter(Boolean);
    if (addrs.length === 0) return;
    const changed = addrs.join(',') !== this.managers.join(',');
    this.managers = addrs;
    if (changed) this.opts.onManagers?.(addrs);
  }

  private setPeriod(ms: number): void {
    this.periodMs = ms;
    this.armHeartbeat(ms);
  }

  private armHeartbeat(delayMs: number): void {
    if (this.hbTimer) clearTimeout(this.hbTimer);
    this.hbTimer = setTimeout(() => this.heartbeat(), delayMs);
  }

  /**
   * A heartbeat one period after the last message the leader takes as one (a heartbeat or a status
   * message), not on a fixed beat: a node reporting its tasks' states is heard from anyway. While
   * 150,000 replicas started on 5,000 nodes, each node sent a status message every few seconds and a
   * heartbeat every 2.5 s beside it, about half of the ≈ 300,000 messages the leader read. The leader
   * hears from a node at most a period apart either way.
   */
  private heartbeat(): void {
    this.hbTimer = null;
    if (this.session === null) return;
    const since = performance.now() - this.aliveSentAt;
    if (since < this.periodMs) {
      this.armHeartbeat(this.periodMs - since);
      return;
    }
    if (this.send({ t: 'hb' })) this.aliveSentAt = performance.now();
    this.armHeartbeat(this.periodMs);
  }

  private send(m: AgentToManager): boolean {
    return this.session?.sendJson(m) ?? false;
  }

  private describe() {
    return {
      hostname: this.opts.hostname ?? hostname(),
      platform: { os: process.platform, arch: process.arch },
      resources: { nanoCpus: cpus().length * 1e9, memoryBytes: totalmem() },
      engineVersion: `shoal-${process.env.npm_package_version ?? '0.1.0'}`,
      addr: this.opts.advertiseAddr,
    };
  }
}
