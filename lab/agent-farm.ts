// Many simulated worker nodes in one process: each joins the cluster for real (token, CSR, signed
// certificate of its own) and runs a real Agent session (mutual-TLS WebSocket, the dispatcher protocol)
// with a FakeExecutor, so the real managers (orchestrators, scheduler, dispatcher, Raft) are driven at
// scale without containers. Used by `npm run bench:converge`, `npm run bench:scale` and the scale lab test.
//
// Keys: every simulated node has a key of its own, as a real node does (ECDSA P-256, the PKI's default:
// 0.26 ms to generate, bench:pki). `keys` can make nodes share a smaller pool round-robin, which an RSA pool once
// needed (50-100 ms of CPU a key); every node has its own certificate (CN = its node id) either way,
// signed at its own join. Joins are pipelined (`joinConcurrency` in flight) and the farm reports key
// generation and join throughput apart.
//
// Honesty about itself: a farm that cannot keep up would make the managers look slow, so it measures
// its own lag and reports it (see FarmLag): event-loop delay, how late each heartbeat went out compared
// with the period the manager asked for, and the status updates waiting to be sent.
//
// As a script (node lab/agent-farm.js <config-json>) it prints JSON lines on stdout:
//   {"ev":"keys","n":…,"ms":…}          the key pool is ready
//   {"ev":"joined","n":…,"ms":…,"rate":…} every node joined (rate: joins per second)
//   {"ev":"ready","n":…}                 the same, kept for older readers ("ready N" substring)
//   {"ev":"lag",…FarmLag}                 every `reportMs`
//   {"ev":"killed","i":…,"nodeId":…,"at":…} answer to the stdin command "kill <i>" (that agent stops
//                                        dead; `at`: when, ms since the epoch, this machine's clock)
//   {"ev":"error","message":…}           a join failed for good (the farm exits 1)
import { setPriority } from 'node:os';
import type { ChildProcess } from 'node:child_process';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import tls, { type SecureContext, type SecureContextOptions } from 'node:tls';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { createCsr, generateKeyPem } from '../manager/ca/pki.ts';
import { httpsJson } from '../transport/https.ts';
import { Agent } from '../worker/agent.ts';
import { FakeExecutor } from '../worker/fake-executor.ts';
import { compiledEntry } from './compiled.ts';
import type { LabHost } from './lab.ts';

export interface FarmOptions {
  managers: string[]; // host:port
  token: string;
  caPem: string;
  count: number;
  namePrefix?: string;
  /** Address the simulated nodes claim (they listen nowhere). */
  addr?: string;
  /** Keys generated up front and shared round-robin (default: one per node). */
  keys?: number;
  /** Joins in flight at once (default 8). */
  joinConcurrency?: number;
  /**
   * Scheduling niceness of the farm process when run as a script (default 0). The simulator shares the
   * machine with the managers it measures; on a real cluster the managers have cores of their own, so
   * bench:scale runs farms at a lower priority than the managers. A farm starved by this says so in its
   * lag report (heartbeat lateness), which is what the report is for.
   */
  nice?: number;
  /** Period of the lag reports when run as a script (default 1000 ms). */
  reportMs?: number;
  log?: (l: string) => void;
}

/** How far behind the simulator itself is (all times in ms). */
export interface FarmLag {
  agents: number;
  /** Agents with a ready session. */
  ready: number;
  /** Event-loop delay of this process since the last report: p99 and max. */
  loopP99: number;
  loopMax: number;
  /** Heartbeats sent since the last report, and how late they went out (interval minus period): p99, max. */
  hbSent: number;
  hbLateP99: number;
  hbLateMax: number;
  /** Status updates buffered in agents and not yet sent, plus bytes queued on their sockets. */
  statusBacklog: number;
  bufferedBytes: number;
  /** Resident memory of the farm process (MB). */
  rssMb: number;
  /** Sessions opened again since the last report (a manager closed one, or the leader changed). */
  reconnects: number;
  /** Connections that ended since the last report, by reason (close code and text, or the error). */
  ends: Record<string, number>;
  /**
   * Agents not ready now, by what they wait on: their state, then their socket (its state and the
   * manager it dials) or the retry timer. A few keys: states × socket states × managers.
   */
  notReady?: Record<string, number>;
}

interface Sim {
  agent: Agent;
  nodeId: string;
  lastHb: number;
  sessions: number;
}

/**
 * Makes this process build one TLS SecureContext per (key, certificate, CA) and reuse it for every
 * connection with the same credentials. A real node builds its context on its own CPU; a farm running
 * thousands of nodes spent most of its time re-parsing the same PEMs for each connection (28 of 72 busy
 * seconds at 1,000 nodes, in createSecureContext), which delayed its heartbeats by seconds and made live
 * simulated nodes look dead. Only for farm processes (the script entry below): it patches node:tls.
 */
export function shareSecureContexts(): void {
  const build = tls.createSecureContext;
  // By certificate (one per node; the CA for joins, which carry no certificate): key and CA must match too.
  const cache = new Map<string, { key: unknown; ca: unknown; ctx: SecureContext }>();
  // Options that shape a context besides key, certificate and CA: a call with any of them is not cached.
  const other = [
    'pfx',
    'passphrase',
    'ciphers',
    'sigalgs',
    'crl',
    'dhparam',
    'ecdhCurve',
    'minVersion',
    'maxVersion',
    'secureOptions',
    'secureProtocol',
    'sessionIdContext',
    'ticketKeys',
    'privateKeyEngine',
    'privateKeyIdentifier',
    'clientCertEngine',
    'honorCipherOrder',
  ];
  tls.createSecureContext = (o?: SecureContextOptions) => {
    // tls.connect fills in the default cipher list itself: that one does not make a context different.
    if (!o || (typeof o.cert !== 'string' && typeof o.ca !== 'string')) return build(o);
    const differs = (k: string) => o[k as keyof SecureContextOptions] !== undefined && !(k === 'ciphers' && o.ciphers === tls.DEFAULT_CIPHERS);
    if (other.some(differs)) return build(o);
    const id = typeof o.cert === 'string' ? o.cert : `ca:${String(o.ca)}`;
    const hit = cache.get(id);
    if (hit && hit.key === o.key && hit.ca === o.ca) return hit.ctx;
    const ctx = build(o);
    cache.set(id, { key: o.key, ca: o.ca, ctx });
    return ctx;
  };
}

const pctl = (xs: number[], p: number) => {
  if (xs.length === 0) return 0;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(p * s.length))]!;
};

export class AgentFarm {
  readonly agents: Agent[] = [];
  private readonly sims: Sim[] = [];
  private hbLate: number[] = [];
  private reconnects = 0;
  private ends: Record<string, number> = {};
  private readonly loop = monitorEventLoopDelay({ resolution: 10 });
  /** Time spent generating the key pool and joining every node, and the join rate. */
  keysMs = 0;
  joinMs = 0;

  static async start(o: FarmOptions, onStarted?: (farm: AgentFarm) => void): Promise<AgentFarm> {
    const farm = new AgentFarm();
    onStarted?.(farm);
    farm.loop.enable();
    const prefix = o.namePrefix ?? 'sim';
    let t = performance.now();
    const keys = await Promise.all(Array.from({ length: Math.max(1, Math.min(o.count, o.keys ?? o.count)) }, () => generateKeyPem()));
    // A join's request names no node (the manager picks the id), so one request per key serves all the
    // nodes that share it.
    const csrs = keys.map((keyPem) => createCsr({ keyPem, nodeId: 'joining' }));
    farm.keysMs = performance.now() - t;
    t = performance.now();
    const join = async (i: number) => {
      let remote = o.managers[0]!;
      const key = keys[i % keys.length]!;
      const csr = csrs[i % keys.length]!;
      // Redirects to the leader and rate-limit answers (429) are retried; anything else is an error.
      let hostname = `${prefix}${i}`;
      // A join that got no answer (or a 503) may still have been committed, taking the hostname: the
      // retry then answers 409, and joins again under a new name (the first node stays, never Ready).
      let ambiguous = false;
      for (let attempt = 0; attempt < 1000; attempt++) {
        const r = await httpsJson(
          remote,
          'POST',
          '/v1/join',
          { token: o.token, csr, advertise: `${o.addr ?? '127.0.0.1'}:2377`, hostname },
          { ca: o.caPem },
        ).catch((e: Error) => ({ status: 0, body: { error: { message: e.message } } }));
        if (r.status === 409 && ambiguous) {
          hostname = `${prefix}${i}r${attempt}`;
          ambiguous = false;
          continue;
        }
        ambiguous = r.status === 0 || r.status === 503;
        if (r.status === 421 && r.body?.error?.leader) {
          remote = r.body.error.leader;
          continue;
        }
        // Rate limited, or a manager busy or unreachable for a moment: back off and retry.
        if (r.status === 429 || r.status === 503 || r.status === 0) {
          await new Promise((res) => setTimeout(res, 100 + Math.random() * 200));
          continue;
        }
        if (r.status !== 200) throw new Error(`join ${hostname}: HTTP ${r.status} ${r.body?.error?.message ?? ''}`);
        const creds = { key, cert: r.body.certPem as string, ca: r.body.caCertPem as string };
        // The manager that answered the join is the leader: tried first, a session costs one TLS
        // connection instead of two (a follower's redirect, then the leader).
        const addrs = (r.body.managers as { addr: string }[]).map((m) => m.addr);
        const agent = new Agent({
          nodeId: r.body.nodeId,
          managers: [...addrs.filter((a) => a === remote), ...addrs.filter((a) => a !== remote)],
          creds: () => creds,
          advertiseAddr: o.addr ?? '127.0.0.1',
          hostname,
          executor: new FakeExecutor(),
          log: (l) => farm.agentLog(l),
        });
        farm.watch(agent, r.body.nodeId as string);
        agent.start();
        farm.agents.push(agent);
        return;
      }
      throw new Error(`join ${prefix}${i}: gave up after 1000 attempts (redirects, rate limiting or no answer)`);
    };
    const queue = Array.from({ length: o.count }, (_, i) => i + 1);
    await Promise.all(
      Array.from({ length: o.joinConcurrency ?? 8 }, async () => {
        for (let i = queue.shift(); i !== undefined; i = queue.shift()) await join(i);
      }),
    );
    farm.joinMs = performance.now() - t;
    return farm;
  }

  /** Records when each heartbeat goes out (wrapping the agent's send), to report lateness. */
  private watch(agent: Agent, nodeId: string): void {
    const sim: Sim = { agent, nodeId, lastHb: 0, sessions: 0 };
    // The node's description is the same at every hello: computed once (os.cpus() per hello cost the
    // farm 1.4 s of CPU at 1,000 nodes).
    const describe = agent['describe'].bind(agent);
    let description: ReturnType<typeof describe> | undefined;
    agent['describe'] = () => (description ??= describe());
    const send = agent['send'].bind(agent);
    agent['send'] = (m) => {
      if (m.t === 'hb') {
        const now = performance.now();
        if (sim.lastHb > 0 && this.hbLate.length < 200_000) this.hbLate.push(now - sim.lastHb - agent['periodMs']);
        sim.lastHb = now;
      }
      return send(m);
    };
    // A new session (welcome) restarts the heartbeat clock; sessions beyond the first are reconnects.
    const onMessage = agent['onMessage'].bind(agent);
    agent['onMessage'] = (m) => {
      if (m.t === 'welcome') {
        if (sim.sessions++ > 0) this.reconnects++;
        sim.lastHb = 0;
      }
      onMessage(m);
    };
    this.sims.push(sim);
  }

  /** Counts why agents' connections end (`agent: session to ADDR ended (WHY); retrying…`). */
  agentLog(line: string): void {
    const m = /session to \S+ ended \((.*)\); /.exec(line);
    if (!m) return;
    const why = m[1]!.replace(/[0-9a-z]{25}/g, 'ID').slice(0, 80);
    this.ends[why] = (this.ends[why] ?? 0) + 1;
  }

  /** The lag since the last call (and resets the interval figures). */
  lag(): FarmLag {
    let ready = 0;
    let backlog = 0;
    let buffered = 0;
    const notReady: Record<string, number> = {};
    for (const s of this.sims) {
      if (s.agent.state === 'ready') ready++;
      else {
        const ws = s.agent['ws'] as { readyState: number; url: string } | null;
        const on = ws ? `socket ${['connecting', 'open', 'closing', 'closed'][ws.readyState]} to ${new URL(ws.url).host}` : 'retry timer';
        const key = `${s.agent.state}, ${on}`;
        notReady[key] = (notReady[key] ?? 0) + 1;
      }
      backlog += s.agent['statusBuf'].length;
      buffered += s.agent['ws']?.bufferedAmount ?? 0;
    }
    const late = this.hbLate;
    this.hbLate = [];
    const out: FarmLag = {
      agents: this.sims.length,
      ready,
      loopP99: this.loop.percentile(99) / 1e6,
      loopMax: this.loop.max / 1e6,
      hbSent: late.length,
      hbLateP99: Math.max(0, pctl(late, 0.99)),
      hbLateMax: Math.max(0, ...late.slice(0, 100_000)),
      statusBacklog: backlog,
      bufferedBytes: buffered,
      rssMb: Math.round(process.memoryUsage.rss() / 1e6),
      reconnects: this.reconnects,
      ends: this.ends,
      notReady,
    };
    this.reconnects = 0;
    this.ends = {};
    this.loop.reset();
    return out;
  }

  /** Stops agent `i` (1-based, in join order) dead, as a killed daemon: no goodbye, its session drops. */
  kill(i: number): string | null {
    const s = this.sims[i - 1];
    if (!s) return null;
    s.agent.stop();
    return s.nodeId;
  }

  stop(): void {
    for (const a of this.agents) a.stop();
    this.loop.disable();
  }
}

/** A farm running as its own process in a lab host (bench:scale, the scale lab test): its reports, parsed. */
export class FarmProcess {
  readonly lag: FarmLag[] = [];
  keys?: { n: number; ms: number };
  joined?: { n: number; ms: number; rate: number };
  error?: string;
  private readonly killed = new Map<number, { nodeId: string | null; at: number }>();

  private constructor(
    readonly host: LabHost,
    readonly proc: ChildProcess,
  ) {
    let buf = '';
    proc.stdout!.on('data', (d: Buffer) => {
      buf += String(d);
      for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        let m: { ev?: string; [k: string]: unknown };
        try {
          m = JSON.parse(line);
        } catch {
          continue;
        }
        if (m.ev === 'lag') this.lag.push(m as unknown as FarmLag);
        else if (m.ev === 'joined') this.joined = m as unknown as FarmProcess['joined'];
        else if (m.ev === 'keys') this.keys = m as unknown as FarmProcess['keys'];
        else if (m.ev === 'error') this.error = String(m['message']);
        else if (m.ev === 'killed') this.killed.set(Number(m['i']), { nodeId: (m['nodeId'] as string | null) ?? null, at: Number(m['at']) || Date.now() });
      }
    });
    proc.once('exit', (code, sig) => (this.error ??= `farm exited (${code ?? sig})`));
  }

  /** Starts a farm in `host` (its own address, so the per-address join limit applies per farm). */
  static spawn(host: LabHost, cfg: FarmOptions, nodeArgs: string[] = []): FarmProcess {
    const proc = host.spawn(process.execPath, [...nodeArgs, compiledEntry('lab/agent-farm'), JSON.stringify(cfg)], {
      stdio: ['pipe', 'pipe', 'inherit'],
      cwd: fileURLToPath(new URL('..', import.meta.url)),
    });
    return new FarmProcess(host, proc);
  }

  /** Stops agent `i` dead (as a killed daemon) and resolves with its node id. */
  async kill(i: number, timeoutMs = 10_000): Promise<string> {
    this.proc.stdin!.write(`kill ${i}\n`);
    const deadline = Date.now() + timeoutMs;
    while (!this.killed.has(i)) {
      if (Date.now() > deadline) throw new Error(`farm in ${this.host.name} did not kill agent ${i} within ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 5));
    }
    const id = this.killed.get(i)?.nodeId;
    if (!id) throw new Error(`farm in ${this.host.name} has no agent ${i}`);
    return id;
  }

  /**
   * When the farm stopped agent `i` (ms since the epoch), as it reported: a farm behind on its event loop
   * acts on the request late, and that delay is the harness's, not the managers'.
   */
  killedAt(i: number): number | undefined {
    return this.killed.get(i)?.at;
  }

  /** One line: the worst the farm lagged over its life (see FarmLag). */
  summary(): string {
    const xs = (k: keyof FarmLag) => this.lag.map((l) => Number(l[k])).sort((a, b) => a - b);
    const worst = (k: keyof FarmLag) => Math.max(0, ...xs(k));
    const p99 = (k: keyof FarmLag) => {
      const v = xs(k);
      return v.length ? v[Math.floor(0.99 * (v.length - 1))]! : 0;
    };
    return (
      `harness lag, farm ${this.host.name} (${this.lag.at(-1)?.agents ?? 0} agents, ${this.lag.length} reports): ` +
      `event-loop delay p99 ${p99('loopP99').toFixed(0)} ms (worst ${worst('loopMax').toFixed(0)} ms), ` +
      `heartbeat lateness p99 ${p99('hbLateP99').toFixed(0)} ms (worst ${worst('hbLateMax').toFixed(0)} ms), ` +
      `status backlog max ${worst('statusBacklog')}, reconnects ${this.lag.reduce((a, l) => a + l.reconnects, 0)}, ` +
      `socket backlog max ${(worst('bufferedBytes') / 1e6).toFixed(1)} MB, farm RSS max ${worst('rssMb')} MB` +
      this.endsSummary() +
      this.notReadySummary()
    );
  }

  /** What the agents that were not ready at the last report waited on (empty when all were ready). */
  private notReadySummary(): string {
    const last = Object.entries(this.lag.at(-1)?.notReady ?? {}).sort((a, b) => b[1] - a[1]);
    return last.length === 0 ? '' : `; not ready at the last report: ${last.map(([k, v]) => `${v} × ${k}`).join('; ')}`;
  }

  /** Why connections ended over the farm's life, most frequent first (empty when none did). */
  private endsSummary(): string {
    const all: Record<string, number> = {};
    for (const l of this.lag) for (const [k, v] of Object.entries(l.ends ?? {})) all[k] = (all[k] ?? 0) + v;
    const top = Object.entries(all).sort((a, b) => b[1] - a[1]);
    if (top.length === 0) return '';
    return `, connections ended: ${top
      .slice(0, 4)
      .map(([k, v]) => `${v} × ${k}`)
      .join('; ')}`;
  }

  stop(): void {
    if (this.proc.pid && this.proc.exitCode === null) this.host.kill(this.proc.pid, 'SIGTERM');
  }

  /** Stops the farm and waits (at most `timeoutMs`) for it to exit, so a CPU profile it writes is complete. */
  async stopAndWait(timeoutMs = 15_000): Promise<void> {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    const exited = new Promise<void>((r) => this.proc.once('exit', () => r()));
    this.stop();
    await Promise.race([exited, new Promise<void>((r) => setTimeout(r, timeoutMs).unref())]);
  }
}

// As a script: node lab/agent-farm.js <config-json>
if (/agent-farm\.[jt]s$/.test(process.argv[1] ?? '') && process.argv[2]) {
  const cfg = JSON.parse(process.argv[2]) as FarmOptions;
  if (cfg.nice) setPriority(cfg.nice);
  shareSecureContexts();
  const out = (o: object) => process.stdout.write(`${JSON.stringify(o)}\n`);
  // Lag is reported from the start: a farm too slow to join its nodes must say so too.
  AgentFarm.start(cfg, (f) => setInterval(() => out({ ev: 'lag', ...f.lag() }), cfg.reportMs ?? 1000)).then(
    (f) => {
      out({ ev: 'keys', n: Math.min(cfg.count, cfg.keys ?? cfg.count), ms: Math.round(f.keysMs) });
      out({ ev: 'joined', n: f.agents.length, ms: Math.round(f.joinMs), rate: Math.round((f.agents.length / f.joinMs) * 1000) });
      out({ ev: 'ready', n: f.agents.length, text: `ready ${f.agents.length}` });
      createInterface({ input: process.stdin }).on('line', (line) => {
        const m = /^kill (\d+)$/.exec(line.trim());
        if (m) out({ ev: 'killed', i: Number(m[1]), nodeId: f.kill(Number(m[1])), at: Date.now() });
      });
      process.on('SIGTERM', () => {
        f.stop();
        process.exit(0);
      });
    },
    (e) => {
      out({ ev: 'error', message: (e as Error).message });
      console.error(`agent farm: ${(e as Error).message}`);
      process.exit(1);
    },
  );
}
