// A real Shoal cluster on lab hosts: one `shoal daemon` per host (network namespace), the first host
// initialises the cluster, the other managers and the workers join it with real tokens. Used by
// `shoal lab up` and by the cluster tests, so users and CI exercise the same code.
import { request as httpRequest } from 'node:http';
import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { TaskCgroup, detectCgroups } from '../worker/engine/cgroups.ts';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { control, loadContext, localCall, saveContext, type Context } from '../client/context.ts';
import { DAEMON_NODE_FLAGS } from '../daemon/node-flags.ts';
import { compiledEntry } from './compiled.ts';
import { type DownReport, Lab, type LabHost } from './lab.ts';
import { describeStatus, restartSupervised, startSupervised, supervisedStatus, type SupervisedStatus } from './supervisor.ts';

/** A daemon's local `/info` as far as the harness reads it. */
interface DaemonInfo {
  node: string | null;
  agent?: { state?: string };
  [k: string]: unknown;
}

/**
 * The control API's answer, as callers (tests, benchmarks, `shoal lab`) read it: each knows the route it
 * called and its shape, so the harness does not re-declare every route's type.
 */
// biome-ignore lint/suspicious/noExplicitAny: route-specific JSON, typed where it is read
type ControlJson = any;

const REPO = resolve(fileURLToPath(new URL('..', import.meta.url)));
/** The supervise label of a host's Shoal daemon (files daemon.supervise.json, daemon.pid, daemon.exit). */
export const DAEMON_LABEL = 'daemon';

export interface ClusterLabOptions {
  name?: string;
  managers: number;
  workers: number;
  log?: (line: string) => void;
  /** Where the admin context is written (default: <lab dir>/context.json). */
  contextPath?: string;
  electionMs?: number;
  /** 'engine' runs real containers in the lab hosts (images must be loaded per host). */
  executor?: 'engine' | 'test';
  /** Extra `shoal daemon` arguments per host (e.g. --metrics-addr on the host's own address). */
  daemonArgs?: (host: LabHost) => string[];
  /** Extra hosts after the workers that run no daemon (for simulators such as lab/agent-farm.ts). */
  spareHosts?: number;
  /** Node.js options for every daemon (e.g. --cpu-prof, which NODE_OPTIONS does not allow). */
  nodeArgs?: string[];
}

export interface DaemonHandle {
  host: LabHost;
  pid: number | null;
  role: 'manager' | 'worker';
  nodeId: string | null;
}

export class ClusterLab {
  readonly daemons = new Map<string, DaemonHandle>();
  ctx!: Context;
  readonly contextPath: string;
  private readonly log: (l: string) => void;

  private constructor(
    readonly lab: Lab,
    private readonly opts: ClusterLabOptions,
  ) {
    this.log = opts.log ?? (() => {});
    this.contextPath = opts.contextPath ?? join(lab.dir, 'context.json');
  }

  /** Creates the hosts and starts a daemon in each; no cluster yet. */
  static async create(opts: ClusterLabOptions): Promise<ClusterLab> {
    if (opts.managers < 1) throw new Error('a lab needs at least one manager');
    const log = opts.log ?? (() => {});
    const t0 = Date.now();
    log(`creating ${opts.managers + opts.workers} lab hosts`);
    const lab = await Lab.create({ name: opts.name ?? 'shoal', hosts: opts.managers + opts.workers + (opts.spareHosts ?? 0), log: () => {} });
    const c = new ClusterLab(lab, opts);
    try {
      lab.hosts.slice(0, opts.managers + opts.workers).forEach((h, i) => {
        c.daemons.set(h.name, { host: h, pid: null, role: i < opts.managers ? 'manager' : 'worker', nodeId: null });
      });
      log(`hosts ready in ${Date.now() - t0} ms: ${lab.hosts.map((h) => `${h.name}=${h.ip}`).join(' ')}`);
      await Promise.all([...c.daemons.keys()].map((h) => c.startDaemon(h)));
      log(`daemons started (${Date.now() - t0} ms)`);
      return c;
    } catch (e) {
      await c.down().catch(() => {});
      throw e;
    }
  }

  /** Creates the hosts, initialises the cluster on the first, joins the other managers and the workers. */
  static async up(opts: ClusterLabOptions): Promise<ClusterLab> {
    const log = opts.log ?? (() => {});
    const t0 = Date.now();
    const c = await ClusterLab.create(opts);
    const lab = c.lab;
    try {
      const first = lab.hosts[0]!;
      const init = await c.init(first.name);
      log(`${first.name}: cluster initialised (${Date.now() - t0} ms)`);
      const managers = lab.hosts.slice(1, opts.managers);
      const workers = lab.hosts.slice(opts.managers, opts.managers + opts.workers);
      // Managers join one at a time (one membership change at a time); workers in parallel.
      for (const h of managers) {
        await c.join(h.name, init.joinTokens.manager);
        log(`${h.name}: joined as manager`);
      }
      await Promise.all(
        workers.map(async (h) => {
          await c.join(h.name, init.joinTokens.worker);
          log(`${h.name}: joined as worker`);
        }),
      );
      await c.waitReady(opts.managers + opts.workers, 15_000);
      log(`all ${lab.hosts.length} nodes ready in ${Date.now() - t0} ms`);
      return c;
    } catch (e) {
      await c.down().catch(() => {});
      throw e;
    }
  }

  host(name: string): LabHost {
    const d = this.daemons.get(name);
    if (!d) throw new Error(`no lab host ${name}`);
    return d.host;
  }

  /** Starts (or restarts) the daemon of a host and waits for its local socket. */
  async startDaemon(name: string): Promise<void> {
    const d = this.daemons.get(name)!;
    const h = d.host;
    mkdirSync(join(h.dir, 'state'), { recursive: true });
    // With the node options bin/shoal gives a daemon (V8 reads them only at start; daemon/node-flags.ts).
    const args = [
      ...DAEMON_NODE_FLAGS,
      ...(this.opts.nodeArgs ?? []),
      compiledEntry('cli/shoal'),
      'daemon',
      '--state-dir',
      join(h.dir, 'state'),
      '--hostname',
      h.name,
    ];
    if (this.opts.electionMs) args.push('--election-ms', String(this.opts.electionMs));
    // Tests default to the test executor (no processes); `shoal lab up` and engine tests ask for 'engine'.
    args.push('--executor', this.opts.executor ?? 'test');
    // Everything the node's networking creates is named after its lab host, so lab teardown finds it.
    args.push('--netns-prefix', `${h.ns}-`);
    if (this.opts.daemonArgs) args.push(...this.opts.daemonArgs(h));
    // Under a supervisor that records how it ends and how it was started (`shoal lab ls`, `lab restart`).
    const rec = await startSupervised(h, DAEMON_LABEL, { cmd: process.execPath, args, cwd: REPO, env: {}, logFile: 'daemon.log' });
    d.pid = rec.pid;
    await this.waitLocal(name);
  }

  /**
   * Starts the daemon of a host again with the state directory and arguments it was started with (also
   * when another process started it, e.g. `shoal lab up`). Refuses (StillRunningError) while it runs,
   * unless `force`: then it is stopped by its recorded pid first (SIGTERM, SIGKILL after the grace period).
   */
  async restartDaemon(name: string, opts: { force?: boolean; graceMs?: number } = {}): Promise<void> {
    const d = this.daemons.get(name);
    if (!d) throw new Error(`no lab host ${name}`);
    const rec = await restartSupervised(d.host, DAEMON_LABEL, opts);
    d.pid = rec.pid;
    await this.waitLocal(name);
  }

  /** Whether the daemon of a host runs, how it died, or that it was never started (refreshes `pid`). */
  daemonStatus(name: string): SupervisedStatus {
    const d = this.daemons.get(name);
    if (!d) throw new Error(`no lab host ${name}`);
    const st = supervisedStatus(d.host.dir, DAEMON_LABEL);
    d.pid = st.state === 'running' ? st.pid : null;
    return st;
  }

  /**
   * Waits until a restarted daemon is back in its cluster: its agent has a session with a manager again
   * (the manager then reports the node Ready). Returns its local /info.
   */
  async waitRejoined(name: string, timeoutMs: number): Promise<ControlJson> {
    let info: DaemonInfo | null = null;
    await waitFor(
      async () => {
        info = (await localCall(this.stateDir(name), 'GET', '/info', undefined, 2000).catch(() => null)) as DaemonInfo | null;
        return info !== null && (info.node === null || info.agent?.state === 'ready');
      },
      timeoutMs,
      `${name} back in its cluster (agent session ready)`,
      100,
    );
    return info;
  }

  /**
   * Attaches to a lab another process brought up (`shoal lab up`): its hosts, their daemons' pids, roles
   * and node ids from the state directories, and the admin context in the lab directory if there is one.
   */
  static async open(name: string, opts: { log?: (line: string) => void; contextPath?: string } = {}): Promise<ClusterLab> {
    const lab = await Lab.open(name);
    const c = new ClusterLab(lab, { name, managers: 0, workers: 0, ...opts });
    for (const h of lab.hosts) {
      let node: { nodeId?: string; role?: 'manager' | 'worker' } = {};
      try {
        node = JSON.parse(readFileSync(join(h.dir, 'state', 'node.json'), 'utf8'));
      } catch {
        /* not part of a cluster (yet) */
      }
      const st = supervisedStatus(h.dir, DAEMON_LABEL);
      c.daemons.set(h.name, { host: h, pid: st.state === 'running' ? st.pid : null, role: node.role ?? 'worker', nodeId: node.nodeId ?? null });
    }
    if (existsSync(c.contextPath)) c.ctx = loadContext(c.contextPath);
    return c;
  }

  /** Waits until the daemon of a host answers on its local socket (20 s), else throws with its log's tail. */
  private async waitLocal(name: string): Promise<void> {
    const h = this.host(name);
    const sock = join(h.dir, 'state', 'shoal.sock');
    const deadline = Date.now() + 20_000;
    for (;;) {
      if (existsSync(sock)) {
        try {
          await localCall(join(h.dir, 'state'), 'GET', '/info', undefined, 2000);
          return;
        } catch {
          /* not listening yet */
        }
      }
      // A daemon that died while starting fails at once, saying how, rather than after the deadline.
      const st = supervisedStatus(h.dir, DAEMON_LABEL);
      if (st.state === 'dead' || Date.now() > deadline) {
        let tail = '';
        try {
          tail = readFileSync(join(h.dir, 'daemon.log'), 'utf8').split('\n').slice(-15).join('\n');
        } catch {
          /* no log */
        }
        const what = st.state === 'dead' ? describeStatus(st, Date.now()) : 'did not start within 20 s';
        throw new Error(`${name}: daemon ${what}; last lines of ${join(h.dir, 'daemon.log')}:\n${tail}`);
      }
      await sleep(25);
    }
  }

  /** kill -9 (or another signal) the daemon of a host. */
  killDaemon(name: string, sig: NodeJS.Signals = 'SIGKILL'): void {
    const d = this.daemons.get(name)!;
    if (d.pid !== null) d.host.kill(d.pid, sig);
    d.pid = null;
  }

  stateDir(name: string): string {
    return join(this.host(name).dir, 'state');
  }

  async init(name: string) {
    const h = this.host(name);
    const r = await localCall<{
      clusterId: string;
      managers: string[];
      admin: Context['admin'];
      nodeId: string;
      joinTokens: { worker: string; manager: string };
    }>(this.stateDir(name), 'POST', '/init', { advertiseAddr: h.ip });
    this.ctx = { clusterId: r.clusterId, managers: r.managers, admin: r.admin, path: this.contextPath };
    saveContext(this.contextPath, this.ctx);
    this.daemons.get(name)!.nodeId = r.nodeId;
    return r as { nodeId: string; joinTokens: { worker: string; manager: string } };
  }

  async join(name: string, token: string): Promise<void> {
    const h = this.host(name);
    const r = await localCall<{ nodeId: string; role: string }>(this.stateDir(name), 'POST', '/join', {
      token,
      remote: this.ctx.managers[0],
      advertiseAddr: h.ip,
    });
    this.daemons.get(name)!.nodeId = r.nodeId;
    if (r.role === 'manager' && !this.ctx.managers.includes(`${h.ip}:2377`)) {
      this.ctx.managers.push(`${h.ip}:2377`);
      saveContext(this.contextPath, this.ctx);
    }
  }

  control(method: string, path: string, body?: unknown): Promise<ControlJson> {
    return control(this.ctx, method, path, body);
  }

  async nodes(): Promise<ControlJson[]> {
    return this.control('GET', '/v1/nodes');
  }

  async waitReady(n: number, timeoutMs: number): Promise<void> {
    await waitFor(
      async () => {
        const nodes = await this.nodes().catch(() => []);
        return nodes.filter((x) => x.status?.state === 'ready').length >= n;
      },
      timeoutMs,
      `${n} nodes ready`,
    );
  }

  async down(): Promise<DownReport> {
    const r = await this.lab.down();
    await cleanupLabCgroups(this.lab.name);
    return r;
  }
}

/**
 * Removes the cgroup parents the lab's daemons created for their tasks (`shoal-<lab>-<host>`): containers
 * outlive their agent by design, so the lab, not the agent, removes what is left when it goes.
 */
export async function cleanupLabCgroups(labName: string): Promise<void> {
  const seen = new Set<string>();
  for (const dir of Object.values(detectCgroups().mounts)) {
    if (!dir || !existsSync(dir)) continue;
    for (const d of readdirSync(dir)) if (d.startsWith(`shoal-${labName}-`)) seen.add(d);
  }
  for (const parent of seen) await TaskCgroup.cleanupParent(parent).catch(() => {});
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Polls `cond` until it holds; throws naming `what` after `timeoutMs`. */
export async function waitFor(cond: () => Promise<boolean> | boolean, timeoutMs: number, what: string, everyMs = 50): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await cond()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

/** One HTTP GET of `/` with a short timeout: the body of a 200 answer, or null (no answer, error, other status). */
export async function httpGet(host: string, port: number, timeoutMs = 2000): Promise<string | null> {
  const r = await httpProbe(host, port, timeoutMs);
  return r.status === 200 ? r.body : null;
}

/** What one HTTP GET of `/` got: a status and body, or why it got none. */
export type HttpProbe =
  | { status: number; body: string }
  /** `sourcePort`: set once the socket had one. */
  | { status: null; why: string; sourcePort?: number };

/**
 * One HTTP GET of `/` that says why it failed: the error code, or a timeout and whether the handshake
 * completed, with the connection's source port (to find its conntrack entries on the nodes).
 */
export function httpProbe(host: string, port: number, timeoutMs = 2000): Promise<HttpProbe> {
  return new Promise((res) => {
    let sourcePort: number | undefined;
    const failed = (why: string): HttpProbe => ({ status: null, why, ...(sourcePort ? { sourcePort } : {}) });
    const req = httpRequest({ host, port, path: '/', timeout: timeoutMs, agent: false }, (r) => {
      let body = '';
      r.setEncoding('utf8');
      r.on('data', (c: string) => (body += c));
      r.on('end', () => res({ status: r.statusCode ?? 0, body }));
      r.on('error', (e: NodeJS.ErrnoException) => res(failed(`response: ${e.code ?? e.message}`)));
    });
    req.on('socket', (sock) => sock.on('connect', () => (sourcePort = sock.localPort)));
    req.on('timeout', () => {
      const sock = req.socket;
      sourcePort ??= sock?.localPort;
      req.destroy(new Error(`no answer in ${timeoutMs} ms (${sock && !sock.connecting ? 'connected' : 'no handshake'})`));
    });
    req.on('error', (e: NodeJS.ErrnoException) => res(failed(e.code ?? e.message)));
    req.end();
  });
}
