// The node agent's session with the cluster: one mutual-TLS WebSocket to the leader's dispatcher,
// heartbeats every period, failover across the manager list it learns, and certificate renewal.
// Tasks arrive over this session in a later issue.
import { hostname, cpus, totalmem } from 'node:os';
import type { PeerCertificate } from 'node:tls';
import { WebSocket, type ClientOptions } from 'ws';
import { DISPATCHER_PATH, type AgentToManager, type LogLine, type ManagerAddr, type ManagerToAgent, type TaskUsage } from '../manager/dispatcher/protocol.ts';
import type { NetView } from '../overlay-net/types.ts';
import { expandTemplates } from '../manager/service/templates.ts';
import type { Executor, TaskAssignment, TaskStatusUpdate } from './executor.ts';

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
  /** The overlay networks this node takes part in changed. */
  onNetwork?: (view: NetView) => void;
  /** How often to report task usage (default 5 s). */
  usagePeriodMs?: number;
  random?: () => number;
}

export interface AgentTools {
  logs?(taskId: string, opts: { tail?: number; since?: Date; follow?: boolean; signal: AbortSignal }): AsyncIterable<{ ts: string; stream: 'stdout' | 'stderr'; line: string }>;
  exec?(taskId: string, args: string[], opts: { timeoutMs: number }): Promise<{ exitCode: number; stdout: Buffer; stderr: Buffer }>;
  usage?(): Record<string, TaskUsage>;
}

export type AgentState = 'connecting' | 'ready' | 'stopped';

export class Agent {
  private ws: WebSocket | null = null;
  private managers: string[];
  private next = 0;
  private hbTimer: NodeJS.Timeout | null = null;
  private retryTimer: NodeJS.Timeout | null = null;
  private backoff = 50;
  private periodMs = 1000;
  private preferred: string | null = null;
  state: AgentState = 'connecting';
  connectedTo: string | null = null;
  private readonly log: (l: string) => void;
  private pendingRenew: ((r: { certPem: string; caCertPem: string; role: 'manager' | 'worker' }) => void) | null = null;

  private statusBuf: TaskStatusUpdate[] = [];
  private statusTimer: NodeJS.Timeout | null = null;

  constructor(private readonly opts: AgentOptions) {
    this.managers = [...opts.managers];
    this.log = opts.log ?? (() => {});
    opts.executor?.onStatus((u) => this.queueStatus(u));
  }

  /** Task status changes go out in small batches (one message per 20 ms at most). */
  private queueStatus(u: TaskStatusUpdate): void {
    this.statusBuf.push(u);
    this.statusTimer ??= setTimeout(() => {
      this.statusTimer = null;
      if (this.state !== 'ready') return; // re-sent from the executor's snapshot on the next session
      const updates = this.statusBuf;
      this.statusBuf = [];
      if (updates.length > 0) this.send({ t: 'status', updates });
    }, 20);
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
    for (const ac of this.logReqs.values()) ac.abort();
    void this.opts.executor?.close();
    if (this.hbTimer) clearInterval(this.hbTimer);
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.ws?.terminate();
    this.ws = null;
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

  private connect(): void {
    if (this.state === 'stopped') return;
    if (this.managers.length === 0) {
      this.log('agent: no managers known');
      return;
    }
    const target = this.pickManager();
    const creds = this.opts.creds();
    this.state = 'connecting';
    const options = {
      key: creds.key,
      cert: creds.cert,
      ca: creds.ca,
      rejectUnauthorized: true,
      perMessageDeflate: false,
      handshakeTimeout: 3000,
      // Identity is the certificate's role, not a host name: any manager of our CA may serve us.
      checkServerIdentity: (_host: string, cert: PeerCertificate) => (String(cert.subject?.OU) === 'manager' ? undefined : new Error('peer is not a manager')),
    };
    const ws = new WebSocket(`wss://${target}${DISPATCHER_PATH}`, options as unknown as ClientOptions);
    this.ws = ws;
    ws.on('open', () => {
      this.connectedTo = target;
      this.backoff = 50;
      this.send({ t: 'hello', description: this.describe() });
    });
    ws.on('message', (data) => {
      let m: ManagerToAgent;
      try {
        m = JSON.parse(String(data)) as ManagerToAgent;
      } catch {
        return;
      }
      this.onMessage(m);
    });
    const retry = (why: string) => {
      if (this.ws !== ws) return;
      this.ws = null;
      if (this.hbTimer) clearInterval(this.hbTimer);
      this.hbTimer = null;
      for (const ac of this.logReqs.values()) ac.abort(); // the manager that asked is gone
      if (this.state === 'stopped') return;
      this.state = 'connecting';
      this.connectedTo = null;
      const delay = this.preferred ? 0 : this.backoff * (0.5 + (this.opts.random ?? Math.random)() / 2);
      this.backoff = Math.min(this.backoff * 2, 1000);
      this.log(`agent: session to ${target} ended (${why}); retrying in ${Math.round(delay)} ms`);
      this.retryTimer = setTimeout(() => this.connect(), delay);
    };
    ws.on('close', (code, reason) => retry(`${code} ${String(reason)}`));
    ws.on('error', (e) => retry(e.message));
  }

  private onMessage(m: ManagerToAgent): void {
    switch (m.t) {
      case 'welcome': {
        this.state = 'ready';
        this.setManagers(m.managers);
        this.setPeriod(m.heartbeatPeriodMs);
        this.log(`agent: session established with ${this.connectedTo}`);
        const adv = this.opts.managerAdvertise?.();
        if (adv) this.send({ t: 'manager-up', advertise: adv });
        // A new session: tell the leader the true state of everything we run.
        const snap = this.opts.executor?.snapshot() ?? [];
        this.statusBuf = [];
        if (snap.length > 0) this.send({ t: 'status', updates: snap });
        return;
      }
      case 'assignments':
        this.opts.executor?.reconcile(m.tasks.map((t) => this.expand(t)));
        return;
      case 'hb':
        this.setManagers(m.managers);
        if (m.heartbeatPeriodMs !== this.periodMs) this.setPeriod(m.heartbeatPeriodMs);
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
      case 'network':
        this.opts.onNetwork?.(m.view);
        return;
      case 'logs':
        void this.serveLogs(m);
        return;
      case 'logs-cancel':
        this.logReqs.get(m.req)?.abort();
        return;
      case 'exec':
        void this.serveExec(m);
        return;
    }
  }

  private logReqs = new Map<string, AbortController>();

  /** Streams the requested tasks' logs in batches (at most one message per 50 ms per request). */
  private async serveLogs(m: Extract<ManagerToAgent, { t: 'logs' }>): Promise<void> {
    const logs = this.opts.tools?.logs;
    if (!logs) {
      this.send({ t: 'log-end', req: m.req, error: 'this node keeps no container logs (test executor)' });
      return;
    }
    const ac = new AbortController();
    this.logReqs.set(m.req, ac);
    let batch: LogLine[] = [];
    let timer: NodeJS.Timeout | null = null;
    const flush = () => {
      if (timer) clearTimeout(timer);
      timer = null;
      if (batch.length > 0) this.send({ t: 'log', req: m.req, lines: batch });
      batch = [];
    };
    const errors: string[] = [];
    await Promise.all(
      m.taskIds.map(async (taskId) => {
        try {
          const opts = { ...(m.tail !== undefined ? { tail: m.tail } : {}), ...(m.since ? { since: new Date(m.since) } : {}), follow: m.follow === true, signal: ac.signal };
          for await (const l of logs(taskId, opts)) {
            if (ac.signal.aborted) break;
            batch.push({ taskId, ts: l.ts, stream: l.stream, line: l.line });
            if (batch.length >= 500) flush();
            else timer ??= setTimeout(flush, 50);
          }
        } catch (e) {
          if (!ac.signal.aborted) errors.push(`task ${taskId}: ${(e as Error).message}`);
        }
      }),
    );
    flush();
    this.logReqs.delete(m.req);
    this.send({ t: 'log-end', req: m.req, ...(errors.length ? { error: errors.join('; ') } : {}) });
  }

  private async serveExec(m: Extract<ManagerToAgent, { t: 'exec' }>): Promise<void> {
    const exec = this.opts.tools?.exec;
    if (!exec) {
      this.send({ t: 'exec-result', req: m.req, error: 'this node cannot exec into tasks (test executor)' });
      return;
    }
    try {
      const r = await exec(m.taskId, m.args, { timeoutMs: m.timeoutMs });
      this.send({ t: 'exec-result', req: m.req, exitCode: r.exitCode, stdout: r.stdout.toString('base64'), stderr: r.stderr.toString('base64') });
    } catch (e) {
      this.send({ t: 'exec-result', req: m.req, error: (e as Error).message });
    }
  }

  private usageTimer: NodeJS.Timeout | null = null;

  private reportUsage(): void {
    const usage = this.opts.tools?.usage;
    if (!usage || this.state !== 'ready') return;
    try {
      const tasks = usage();
      if (Object.keys(tasks).length > 0) this.send({ t: 'usage', at: Date.now(), tasks });
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
    if (this.hbTimer) clearInterval(this.hbTimer);
    this.hbTimer = setInterval(() => this.send({ t: 'hb' }), ms);
  }

  private send(m: AgentToManager): void {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(m));
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
