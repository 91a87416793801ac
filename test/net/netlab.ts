// A hand-built network lab for the nftables tests: network namespaces named `shoal-nft-<pid>-<name>`, veth
// pairs and bridges made with `ip`, and small servers/clients (a Node script run inside a namespace with
// nsenter) that say who answered and which source address they saw. Traffic stays inside these namespaces.
// Everything is removed by close(); namespaces left by a run that died (its pid is gone) are removed by the
// next Lab.
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { Endpoint, NetInfo, NetView, SvcInfo } from '../../api/netview.ts';

export const PREFIX = 'shoal-nft-';

/** Why the kernel tests cannot run here, or false. */
export function kernelSkip(): string | false {
  if (process.getuid?.() !== 0) return 'needs root (network namespaces, nftables)';
  for (const bin of ['nft', 'ip', 'nsenter']) {
    if (spawnSync('sh', ['-c', `command -v ${bin}`], { stdio: 'ignore' }).status !== 0) return `${bin} is not installed`;
  }
  return false;
}

function run(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new Error(`${cmd} ${args.join(' ')}: ${err.stderr?.trim() || err.message}`);
  }
}

export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Removes namespaces named `<prefix><pid>-…` whose creating process is gone (a run killed before its
 * cleanup): test labs use `shoal-nft-`, the overlay benchmark `shoal-bov-`.
 */
export function sweepStale(prefix = PREFIX): void {
  let names: string[] = [];
  try {
    names = readdirSync('/run/netns');
  } catch {
    return;
  }
  const re = new RegExp(`^${prefix}(\\d+)-`);
  for (const n of names) {
    const m = re.exec(n);
    if (m && Number(m[1]) !== process.pid && !pidAlive(Number(m[1]))) spawnSync('ip', ['netns', 'del', n], { stdio: 'ignore', timeout: 5000 });
  }
}

// The Node script run inside namespaces. server NAME PORT: TCP (greets with "NAME SRC", then echoes) and UDP
// (answers "NAME SRC") on PORT. tcp HOST PORT COUNT TIMEOUT [LOCALPORT] / udp HOST PORT COUNT TIMEOUT
// [LOCALPORT]: COUNT sequential attempts (each from LOCALPORT if given), one JSON array of results. hold HOST PORT: one connection; prints the greeting, sends stdin lines
// and prints what comes back.
const AGENT = String.raw`
import net from 'node:net';
import dgram from 'node:dgram';
import readline from 'node:readline';
const [mode, ...a] = process.argv.slice(2);
const now = () => Number(process.hrtime.bigint() / 1000n) / 1000;
function tcpOnce(host, port, timeout, localPort) {
  return new Promise((resolve) => {
    const t0 = now();
    const s = net.connect({ host, port, ...(localPort ? { localPort } : {}) });
    let buf = '';
    const done = (r) => { clearTimeout(timer); s.destroy(); resolve({ ...r, ms: now() - t0 }); };
    const timer = setTimeout(() => done({ err: 'TIMEOUT' }), timeout);
    s.on('data', (d) => { buf += d; const i = buf.indexOf('\n'); if (i >= 0) done({ line: buf.slice(0, i) }); });
    s.on('error', (e) => done({ err: e.code || e.message }));
    s.on('close', () => done({ err: 'CLOSED' }));
  });
}
function udpOnce(host, port, timeout, localPort) {
  return new Promise((resolve) => {
    const t0 = now();
    const s = dgram.createSocket('udp4');
    const done = (r) => { clearTimeout(timer); try { s.close(); } catch {} resolve({ ...r, ms: now() - t0 }); };
    const timer = setTimeout(() => done({ err: 'TIMEOUT' }), timeout);
    s.on('message', (m) => done({ line: String(m).trim() }));
    s.on('error', (e) => done({ err: e.code || e.message }));
    const go = () => s.connect(port, host, () => s.send('hi\n'));
    if (localPort) s.bind(localPort, go);
    else go();
  });
}
if (mode === 'server') {
  const [name, port] = a;
  const srv = net.createServer((c) => { c.on('error', () => {}); c.write(name + ' ' + c.remoteAddress + '\n'); c.pipe(c); });
  const u = dgram.createSocket('udp4');
  u.on('message', (m, r) => u.send(name + ' ' + r.address + '\n', r.port, r.address));
  await new Promise((r) => srv.listen(Number(port), '0.0.0.0', r));
  await new Promise((r) => u.bind(Number(port), '0.0.0.0', r));
  process.stdout.write('ready\n');
} else if (mode === 'tcp' || mode === 'udp') {
  const [host, port, count, timeout, localPort] = a;
  const out = [];
  for (let i = 0; i < Number(count); i++) out.push(await (mode === 'tcp' ? tcpOnce : udpOnce)(host, Number(port), Number(timeout), Number(localPort ?? 0)));
  process.stdout.write(JSON.stringify(out) + '\n');
} else if (mode === 'hold') {
  const [host, port] = a;
  const s = net.connect({ host, port: Number(port) });
  s.setEncoding('utf8');
  s.on('data', (d) => process.stdout.write(d));
  s.on('error', (e) => { process.stdout.write('ERROR ' + (e.code || e.message) + '\n'); process.exit(1); });
  s.on('close', () => { process.stdout.write('CLOSED\n'); process.exit(0); });
  readline.createInterface({ input: process.stdin }).on('line', (l) => s.write(l + '\n'));
} else {
  process.stderr.write('unknown mode ' + mode + '\n');
  process.exit(2);
}
`;

export interface Result {
  line?: string;
  err?: string;
  ms: number;
}

/** A long-lived connection from inside a namespace. */
export class Held {
  private readonly lines: string[] = [];
  private waiter: (() => void) | undefined;
  constructor(readonly proc: ChildProcess) {
    createInterface({ input: proc.stdout! }).on('line', (l) => {
      this.lines.push(l);
      this.waiter?.();
    });
  }
  /** The next line; the bound is generous (a process started under load can take seconds to greet). */
  async next(timeoutMs = 20_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    while (this.lines.length === 0) {
      if (Date.now() > deadline) throw new Error('no line from the held connection');
      await new Promise<void>((r) => {
        this.waiter = r;
        setTimeout(r, 50);
      });
    }
    return this.lines.shift()!;
  }
  send(line: string): void {
    this.proc.stdin!.write(line + '\n');
  }
}

export class Lab {
  readonly id = `${PREFIX}${process.pid}-`;
  private readonly namespaces: string[] = [];
  private readonly procs: ChildProcess[] = [];
  private readonly dir = mkdtempSync(join(tmpdir(), 'shoal-nft-lab-'));
  private readonly agent = join(this.dir, 'agent.mjs');

  constructor() {
    sweepStale();
    writeFileSync(this.agent, AGENT);
  }

  /** Full name of a lab namespace. */
  ns(name: string): string {
    return this.id + name;
  }

  /** Path of a lab namespace, as the appliers take it. */
  path(name: string): string {
    return `/run/netns/${this.ns(name)}`;
  }

  addNs(name: string): string {
    const full = this.ns(name);
    spawnSync('ip', ['netns', 'del', full], { stdio: 'ignore' });
    run('ip', ['netns', 'add', full]);
    this.namespaces.push(full);
    this.ip(name, 'link', 'set', 'lo', 'up');
    return this.path(name);
  }

  /** `ip -n <ns> …` */
  ip(name: string, ...args: string[]): string {
    return run('ip', ['-n', this.ns(name), ...args]);
  }

  /** Runs a command inside a namespace and returns its output. */
  exec(name: string, cmd: string, ...args: string[]): string {
    return run('nsenter', [`--net=${this.path(name)}`, cmd, ...args]);
  }

  /** A veth pair between two namespaces, each end optionally addressed (CIDR) and brought up. */
  veth(a: { ns: string; dev: string; addr?: string; master?: string }, b: { ns: string; dev: string; addr?: string; master?: string }): void {
    this.ip(a.ns, 'link', 'add', a.dev, 'type', 'veth', 'peer', 'name', b.dev, 'netns', this.ns(b.ns));
    for (const end of [a, b]) {
      if (end.master) this.ip(end.ns, 'link', 'set', end.dev, 'master', end.master);
      if (end.addr) this.ip(end.ns, 'addr', 'add', end.addr, 'dev', end.dev);
      this.ip(end.ns, 'link', 'set', end.dev, 'up');
    }
  }

  bridge(ns: string, dev: string, addr?: string): void {
    this.ip(ns, 'link', 'add', dev, 'type', 'bridge');
    if (addr) this.ip(ns, 'addr', 'add', addr, 'dev', dev);
    this.ip(ns, 'link', 'set', dev, 'up');
  }

  private spawnAgent(ns: string, args: string[], stdin: 'pipe' | 'ignore' = 'ignore'): ChildProcess {
    const p = spawn('nsenter', [`--net=${this.path(ns)}`, process.execPath, this.agent, ...args], { stdio: [stdin, 'pipe', 'pipe'] });
    this.procs.push(p);
    return p;
  }

  /** Starts a TCP+UDP server answering "NAME SRC" on `port` inside `ns`; resolves once it listens. */
  async server(ns: string, name: string, port: number): Promise<void> {
    const p = this.spawnAgent(ns, ['server', name, String(port)]);
    let err = '';
    p.stderr!.on('data', (d) => (err += d));
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`server ${name} in ${ns} did not start: ${err}`)), 10_000);
      p.stdout!.once('data', () => {
        clearTimeout(t);
        resolve();
      });
      p.once('exit', (c) => {
        clearTimeout(t);
        reject(new Error(`server ${name} in ${ns} exited ${c}: ${err}`));
      });
    });
  }

  /**
   * `count` sequential TCP connections (or UDP exchanges, each from a new socket) from inside `ns`, each
   * from `localPort` when given.
   */
  async probe(ns: string, proto: 'tcp' | 'udp', host: string, port: number, count: number, timeoutMs = 2000, localPort?: number): Promise<Result[]> {
    const p = this.spawnAgent(ns, [proto, host, String(port), String(count), String(timeoutMs), ...(localPort ? [String(localPort)] : [])]);
    let out = '';
    let err = '';
    p.stdout!.on('data', (d) => (out += d));
    p.stderr!.on('data', (d) => (err += d));
    const code = await new Promise<number | null>((r) => p.once('close', r));
    if (code !== 0) throw new Error(`probe in ${ns} exited ${code}: ${err}`);
    return JSON.parse(out) as Result[];
  }

  /** Opens a connection from inside `ns` and keeps it. */
  hold(ns: string, host: string, port: number): Held {
    return new Held(this.spawnAgent(ns, ['hold', host, String(port)], 'pipe'));
  }

  /** Stops every process the lab started (by pid) and deletes its namespaces (with their interfaces). */
  async close(): Promise<void> {
    for (const p of this.procs) {
      if (p.exitCode === null && p.signalCode === null && p.pid) {
        try {
          process.kill(p.pid, 'SIGKILL');
        } catch {
          /* gone */
        }
      }
    }
    await Promise.all(this.procs.map((p) => (p.exitCode === null && p.signalCode === null ? new Promise((r) => p.once('close', r)) : null)));
    for (const n of this.namespaces.splice(0)) spawnSync('ip', ['netns', 'del', n], { stdio: 'ignore' });
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Counts answers per backend name ("NAME SRC" lines); errors under their code. */
export function tally(rs: Result[]): Map<string, number> {
  const m = new Map<string, number>();
  for (const r of rs) {
    const k = r.line ? r.line.split(' ')[0]! : `error:${r.err}`;
    m.set(k, (m.get(k) ?? 0) + 1);
  }
  return m;
}

// ---------------------------------------------------------------------------------------- view builders

export function net(id: string, subnet: string, opts: Partial<NetInfo> = {}): NetInfo {
  const gw = subnet.replace(/\.\d+\/\d+$/, '.1');
  return { id, name: id, vni: 4096, subnet, gateway: gw, internal: false, attachable: true, ingress: false, ...opts };
}

export function endpoint(serviceId: string, networkId: string, taskId: string, ip: string, running = true): Endpoint {
  return {
    networkId,
    taskId,
    serviceId,
    serviceName: serviceId,
    taskName: `${serviceId}.1.${taskId}`,
    ip,
    mac: '',
    nodeId: 'node1',
    vtep: '192.0.2.1',
    aliases: [],
    running,
  };
}

export function service(id: string, vips: Record<string, string>, ports: SvcInfo['ports'] = []): SvcInfo {
  return { id, name: id, endpointMode: 'vip', vips: Object.entries(vips).map(([networkId, ip]) => ({ networkId, ip })), ports, aliases: [] };
}

export function view(networks: NetInfo[], services: SvcInfo[], endpoints: Endpoint[], ingressAddr?: string): NetView {
  return { nodeId: 'node1', vtep: '192.0.2.1', networks, services, endpoints, ...(ingressAddr ? { ingressAddr } : {}) };
}
