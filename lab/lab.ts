// Lab hosts: N "hosts" on one machine, each a network namespace wired to one Linux bridge, for Shoal's
// cluster tests and for `shoal lab up/down/ls`. See docs/design/lab.md.
//
//   root ns ── sl-<name> (gateway .1) ═veth═ up0 ┐
//                                                ├ br0  (in namespace sl-<name>-sw, the "switch")
//   sl-<name>-h<i>: eth0 (.10+i) ════veth════ h<i> ┘
//
// Everything is named with the prefix `sl-<name>-` (the root-ns link is `sl-<name>`), every process this
// library starts carries SHOAL_LAB_ID=<name>/<instance>/<host> in its environment and is recorded (pid and
// start time) in the state file /run/shoal-lab/<name>.json, so a lab whose creator died can still be torn
// down completely by name (`Lab.downByName(name, { force: true })`).
//
// Processes run in a host with `nsenter --net=/run/netns/<ns>`, never `ip netns exec` (which remounts /sys
// for the command and hides /sys/fs/cgroup). Only the network namespace differs from the root's: the
// process sees the machine's filesystem, /sys (so /sys/class/net lists the ROOT namespace's links: use
// netlink/`ip`, or /proc/net, which do follow the namespace) and cgroups.
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess, StdioOptions } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

// ---------------------------------------------------------------------------------------------------------
// Constants and names

export const DEFAULT_LAB_NAME = 'shoal';
export const DEFAULT_STATE_ROOT = '/var/lib/shoal-lab';
/** Holds one state file per lab (a tmpfs on standard systems: it vanishes at reboot with the namespaces). */
export const RUN_DIR = '/run/shoal-lab';
export const NETNS_DIR = '/run/netns';
/** Environment variable carrying `<name>/<instance>/<host>` in every process the lab starts. */
export const LAB_ID_ENV = 'SHOAL_LAB_ID';
/** Hosts get .11 … .254 of the /24. */
export const MAX_HOST_INDEX = 244;
const HOST_IP_OFFSET = 10;
const NAME_RE = /^[a-z0-9]{1,8}$/;
const NS_RE = /^sl-([a-z0-9]{1,8})-(sw|h([1-9][0-9]{0,2}))$/;
const ROOT_LINK_RE = /^sl-([a-z0-9]{1,8})$/;
const SUBNET_RE = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.0\/24$/;
const IPV4_RE = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;
const SWITCH_UPLINK = 'up0';
const BRIDGE = 'br0';
const HOST_IF = 'eth0';
const DEFAULT_GRACE_MS = 2000;
const EXIT_HOOK_GRACE_MS = 500;
const DEFAULT_EXEC_TIMEOUT_MS = 10_000;
const STATE_VERSION = 1;

export class LabError extends Error {
  override name = 'LabError';
}

export function validateLabName(name: string): string {
  if (!NAME_RE.test(name)) throw new LabError(`invalid lab name ${JSON.stringify(name)}: use 1-8 of [a-z0-9]`);
  return name;
}

/** Every name a lab uses, derived from its name alone (so leftovers can be found without a state file). */
export function labNames(name: string, stateRoot = DEFAULT_STATE_ROOT) {
  validateLabName(name);
  return {
    prefix: `sl-${name}-`,
    switchNs: `sl-${name}-sw`,
    rootLink: `sl-${name}`,
    stateFile: path.join(RUN_DIR, `${name}.json`),
    labDir: path.join(stateRoot, name),
    hostNs: (i: number) => `sl-${name}-h${i}`,
  };
}

/** The default subnet of a lab: 10.213.<k>.0/24 with k = 1 + FNV-1a(name) mod 254. */
export function defaultSubnet(name: string): string {
  return `10.213.${subnetK(name)}.0/24`;
}

function subnetK(name: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) {
    h ^= name.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return 1 + (h % 254);
}

function parseSubnet(subnet: string): [number, number, number] {
  const m = SUBNET_RE.exec(subnet);
  const o = m ? [Number(m[1]), Number(m[2]), Number(m[3])] : [];
  if (!m || o.some((x) => x > 255)) throw new LabError(`invalid subnet ${JSON.stringify(subnet)}: want a.b.c.0/24`);
  return [o[0]!, o[1]!, o[2]!];
}

function ipToInt(ip: string): number {
  const m = IPV4_RE.exec(ip);
  if (!m) throw new LabError(`invalid IPv4 address ${JSON.stringify(ip)}`);
  const o = [Number(m[1]), Number(m[2]), Number(m[3]), Number(m[4])];
  if (o.some((x) => x > 255)) throw new LabError(`invalid IPv4 address ${JSON.stringify(ip)}`);
  return ((o[0]! << 24) | (o[1]! << 16) | (o[2]! << 8) | o[3]!) >>> 0;
}

// ---------------------------------------------------------------------------------------------------------
// State file

/** A process started by the lab: the start time (clock ticks since boot, /proc/<pid>/stat field 22) makes
 *  (pid, start) unique, so a recycled pid is never mistaken for ours. */
export interface ProcRecord {
  pid: number;
  start: number;
  host: string;
  cmd: string;
}

interface HostRecord {
  index: number;
  name: string;
  ns: string;
  ip: string;
  dir: string;
}

interface LabState {
  version: number;
  name: string;
  instance: string;
  status: 'creating' | 'up';
  subnet: string;
  gateway: string;
  stateRoot: string;
  creatorPid: number;
  creatorStart: number;
  createdAt: string;
  nextIndex: number;
  hosts: HostRecord[];
  procs: ProcRecord[];
}

function readState(file: string): LabState | null {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return null;
  }
  try {
    const s = JSON.parse(text) as LabState;
    if (s.version !== STATE_VERSION || typeof s.name !== 'string' || !Array.isArray(s.hosts)) return null;
    if (!Array.isArray(s.procs)) s.procs = [];
    return s;
  } catch {
    return null;
  }
}

/** Atomic: write a temp file in the same directory, fsync, rename over. */
function writeStateAtomic(file: string, state: LabState, exclusive = false): void {
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o755 });
  const text = JSON.stringify(state, null, 2) + '\n';
  if (exclusive) {
    // Claims the name: a second creator of the same lab fails here.
    const fd = fs.openSync(file, 'wx', 0o644);
    try {
      fs.writeSync(fd, text);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    return;
  }
  const tmp = `${file}.${process.pid}.tmp`;
  const fd = fs.openSync(tmp, 'w', 0o644);
  try {
    fs.writeSync(fd, text);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, file);
}

// ---------------------------------------------------------------------------------------------------------
// /proc

interface ProcInfo {
  pid: number;
  ppid: number;
  start: number;
  state: string;
  /** `dev:ino` of the process's network namespace, null if unreadable (zombie, kernel thread, gone). */
  netns: string | null;
  /** Value of SHOAL_LAB_ID in its initial environment, if any. */
  labId: string | null;
}

function readStat(pid: number): { ppid: number; start: number; state: string } | null {
  let text: string;
  try {
    text = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  // comm (field 2) may contain spaces and parentheses: parse after the last ')'.
  const close = text.lastIndexOf(')');
  if (close < 0) return null;
  const f = text.slice(close + 2).split(' ');
  // f[0] is field 3 (state), f[1] field 4 (ppid), f[19] field 22 (starttime).
  const state = f[0] ?? '?';
  const ppid = Number(f[1]);
  const start = Number(f[19]);
  if (!Number.isFinite(ppid) || !Number.isFinite(start)) return null;
  return { ppid, start, state };
}

/** The process (pid, start) is alive (zombies count as dead: they hold no namespace and run nothing). */
export function procAlive(pid: number, start?: number): boolean {
  const s = readStat(pid);
  if (!s || s.state === 'Z' || s.state === 'X') return false;
  return start === undefined || s.start === start;
}

/** The start time of a live process (clock ticks since boot, /proc/<pid>/stat field 22); null if it is gone
 *  or a zombie. With the pid it names one process for good (see ProcRecord). */
export function procStartTime(pid: number): number | null {
  const s = readStat(pid);
  return !s || s.state === 'Z' || s.state === 'X' ? null : s.start;
}

function nsKeyOfPath(p: string): string | null {
  try {
    const st = fs.statSync(p);
    return `${st.dev}:${st.ino}`;
  } catch {
    return null;
  }
}

function readLabId(pid: number): string | null {
  let buf: Buffer;
  try {
    buf = fs.readFileSync(`/proc/${pid}/environ`);
  } catch {
    return null;
  }
  const key = `${LAB_ID_ENV}=`;
  const at = buf.indexOf(key);
  if (at < 0 || (at > 0 && buf[at - 1] !== 0)) return null;
  const end = buf.indexOf(0, at);
  return buf.subarray(at + key.length, end < 0 ? buf.length : end).toString('utf8');
}

function scanProcs(): Map<number, ProcInfo> {
  const out = new Map<number, ProcInfo>();
  let entries: string[];
  try {
    entries = fs.readdirSync('/proc');
  } catch {
    return out;
  }
  for (const e of entries) {
    if (!/^\d+$/.test(e)) continue;
    const pid = Number(e);
    const st = readStat(pid);
    if (!st) continue;
    // Kernel threads (pid 2 and its children) have no user environment and no namespace of ours.
    if (pid === 2 || st.ppid === 2) continue;
    out.set(pid, { pid, ...st, netns: nsKeyOfPath(`/proc/${pid}/ns/net`), labId: readLabId(pid) });
  }
  return out;
}

/** This process and its ancestors: never victims, whatever namespace they are in. */
function selfAndAncestors(procs: Map<number, ProcInfo>): Set<number> {
  const out = new Set<number>([0, 1, process.pid]);
  let p = procs.get(process.pid)?.ppid ?? process.ppid;
  for (let guard = 0; p > 1 && guard < 1000; guard++) {
    out.add(p);
    p = procs.get(p)?.ppid ?? 0;
  }
  return out;
}

interface VictimSpec {
  /** `dev:ino` of the lab namespaces in scope. */
  nsKeys: Set<string>;
  records: ProcRecord[];
  labIdMatch: (id: string) => boolean;
}

/** Live processes of the lab: recorded ones (pid + start time), those inside its namespaces, those carrying
 *  its SHOAL_LAB_ID, and every descendant of these (e.g. a container that moved to a namespace of its own). */
function findVictims(spec: VictimSpec, procs = scanProcs()): Map<number, string> {
  const exclude = selfAndAncestors(procs);
  const roots = new Map<number, string>();
  for (const r of spec.records) {
    const p = procs.get(r.pid);
    if (p && p.start === r.start && p.state !== 'Z') roots.set(r.pid, 'recorded');
  }
  for (const p of procs.values()) {
    if (p.state === 'Z' || roots.has(p.pid)) continue;
    if (p.netns !== null && spec.nsKeys.has(p.netns)) roots.set(p.pid, 'in-namespace');
    else if (p.labId !== null && spec.labIdMatch(p.labId)) roots.set(p.pid, 'lab-env');
  }
  const children = new Map<number, number[]>();
  for (const p of procs.values()) {
    const list = children.get(p.ppid);
    if (list) list.push(p.pid);
    else children.set(p.ppid, [p.pid]);
  }
  const out = new Map<number, string>();
  const queue = [...roots.keys()];
  for (const pid of queue) {
    if (exclude.has(pid) || out.has(pid)) continue;
    out.set(pid, roots.get(pid) ?? 'descendant');
    for (const c of children.get(pid) ?? []) {
      const info = procs.get(c);
      if (info && info.state !== 'Z') queue.push(c);
    }
  }
  return out;
}

function signal(pid: number, sig: NodeJS.Signals): boolean {
  try {
    process.kill(pid, sig);
    return true;
  } catch {
    return false;
  }
}

function mountsUnder(dir: string): string[] {
  let text: string;
  try {
    text = fs.readFileSync('/proc/self/mountinfo', 'utf8');
  } catch {
    return [];
  }
  const out: string[] = [];
  for (const line of text.split('\n')) {
    const raw = line.split(' ')[4];
    if (!raw) continue;
    const mp = raw.replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8)));
    if (mp === dir || mp.startsWith(dir + '/')) out.push(mp);
  }
  // Deepest first.
  return [...new Set(out)].sort((a, b) => b.length - a.length);
}

/** Where a node daemon mounts its tasks' secrets and configs (daemon/daemon.ts: /run/shoal/<node id>). */
const NODE_RUN_ROOT = '/run/shoal';

/**
 * The /run/shoal/<node id> directories of the daemons whose state lives under `dirs` (found by their
 * node.json, at most three levels down). A daemon killed with SIGKILL leaves its tasks' tmpfs mounted
 * there, outside the lab's own directories, so teardown must name them itself.
 */
function nodeRunDirs(dirs: string[]): string[] {
  const out: string[] = [];
  const visit = (dir: string, depth: number): void => {
    for (const e of listDir(dir)) {
      const p = path.join(dir, e);
      if (e === 'node.json') {
        try {
          const id = (JSON.parse(fs.readFileSync(p, 'utf8')) as { nodeId?: unknown }).nodeId;
          if (typeof id === 'string' && /^[a-z0-9]{1,64}$/.test(id)) out.push(path.join(NODE_RUN_ROOT, id));
        } catch {
          /* unreadable or half-written: nothing to name */
        }
      } else if (depth > 0) {
        try {
          if (fs.lstatSync(p).isDirectory()) visit(p, depth - 1);
        } catch {
          /* gone meanwhile */
        }
      }
    }
  };
  for (const d of dirs) visit(d, 2);
  return out;
}

function listDir(dir: string): string[] {
  try {
    return fs.readdirSync(dir);
  } catch {
    return [];
  }
}

function rmdirIfEmpty(dir: string): void {
  try {
    fs.rmdirSync(dir);
  } catch {
    /* not empty or gone */
  }
}

// ---------------------------------------------------------------------------------------------------------
// Commands: one effect description, two drivers (async for normal use, sync for exit hooks)

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
  error?: Error;
}

interface RunEffect {
  kind: 'run';
  cmd: string;
  args: string[];
  input?: string;
  timeoutMs: number;
}
interface SleepEffect {
  kind: 'sleep';
  ms: number;
}
type Effect = RunEffect | SleepEffect;
type Steps<T> = Generator<Effect, T, RunResult | undefined>;

const MAX_OUTPUT = 4 * 1024 * 1024;

const toolCache = new Map<string, string>(); // hits only: a tool installed later is found
/** Like `command -v`: the first executable `cmd` on PATH (plus the sbin directories), or null. */
export function which(cmd: string): string | null {
  const cached = toolCache.get(cmd);
  if (cached) return cached;
  const dirs = [...(process.env.PATH ?? '').split(':'), '/usr/local/sbin', '/usr/sbin', '/sbin', '/usr/bin', '/bin'];
  let found: string | null = null;
  for (const d of dirs) {
    if (!d) continue;
    const p = path.join(d, cmd);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      if (fs.statSync(p).isFile()) {
        found = p;
        break;
      }
    } catch {
      /* next */
    }
  }
  if (found) toolCache.set(cmd, found);
  return found;
}

function tool(cmd: string): string {
  const p = which(cmd);
  if (!p) throw new LabError(`${cmd} not found on PATH (the lab needs iproute2 and util-linux's nsenter)`);
  return p;
}

export function runAsync(cmd: string, args: string[], opts: { input?: string; timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<RunResult> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], env: opts.env ?? process.env });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    let settled = false;
    const finish = (r: Omit<RunResult, 'stdout' | 'stderr' | 'timedOut'>) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve({ ...r, stdout, stderr, timedOut });
    };
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, opts.timeoutMs ?? DEFAULT_EXEC_TIMEOUT_MS);
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      if (stdout.length < MAX_OUTPUT) stdout += d;
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      if (stderr.length < MAX_OUTPUT) stderr += d;
    });
    child.on('error', (error) => finish({ code: null, signal: null, error }));
    child.on('close', (code, sig) => finish({ code, signal: sig }));
    child.stdin.on('error', () => {}); // EPIPE when the command exits before reading its input
    child.stdin.end(opts.input ?? '');
  });
}

function runSync(e: RunEffect): RunResult {
  const r = spawnSync(e.cmd, e.args, {
    input: e.input ?? '',
    timeout: e.timeoutMs,
    killSignal: 'SIGKILL',
    encoding: 'utf8',
    maxBuffer: MAX_OUTPUT,
  });
  const timedOut = (r.error as NodeJS.ErrnoException | undefined)?.code === 'ETIMEDOUT';
  return {
    code: r.status,
    signal: r.signal,
    stdout: r.stdout ?? '',
    stderr: r.stderr ?? '',
    timedOut,
    ...(r.error && !timedOut ? { error: r.error } : {}),
  };
}

const sleepCell = new Int32Array(new SharedArrayBuffer(4));
function sleepSync(ms: number): void {
  Atomics.wait(sleepCell, 0, 0, ms);
}

function driveSync<T>(steps: Steps<T>): T {
  let next = steps.next();
  while (!next.done) {
    const e = next.value;
    if (e.kind === 'sleep') {
      sleepSync(e.ms);
      next = steps.next(undefined);
    } else {
      next = steps.next(runSync(e));
    }
  }
  return next.value;
}

async function driveAsync<T>(steps: Steps<T>): Promise<T> {
  let next = steps.next();
  while (!next.done) {
    const e = next.value;
    if (e.kind === 'sleep') {
      await new Promise((r) => setTimeout(r, e.ms));
      next = steps.next(undefined);
    } else {
      next = steps.next(await runAsync(e.cmd, e.args, { input: e.input ?? '', timeoutMs: e.timeoutMs }));
    }
  }
  return next.value;
}

function ipBatch(script: string[], ns?: string, force = false): RunEffect {
  const args = [...(ns ? ['-n', ns] : []), ...(force ? ['-force'] : []), '-batch', '-'];
  return { kind: 'run', cmd: tool('ip'), args, input: script.join('\n') + '\n', timeoutMs: 20_000 };
}

function describeFailure(what: string, r: RunResult, script?: string[]): string {
  const out = (r.stderr || r.stdout).trim() || r.error?.message || (r.timedOut ? 'timed out' : `exit ${r.code}`);
  let msg = `${what}: ${out}`;
  // ip -batch reports "Command failed -:N": show that line of the script.
  const m = /Command failed -:(\d+)/.exec(r.stderr);
  if (m && script) msg += ` [line ${m[1]}: ${script[Number(m[1]) - 1] ?? '?'}]`;
  return msg;
}

// ---------------------------------------------------------------------------------------------------------
// Teardown (shared by down, removeHost, downByName and the exit hooks)

export interface DownReport {
  name: string;
  /** Pids signalled (SIGTERM, then SIGKILL for those that outlived the grace period). */
  killed: number[];
  namespaces: string[];
  links: string[];
  dirs: string[];
  stateFile: boolean;
  /** Anything that could not be removed. Empty when the lab is completely gone. */
  errors: string[];
  ms: number;
}

interface TeardownSpec {
  name: string;
  namespaces: string[];
  rootLink: string | null;
  records: ProcRecord[];
  labIdMatch: (id: string) => boolean;
  dirs: string[];
  /** Parent directories to remove when they end up empty. */
  emptyParents: string[];
  stateFile: string | null;
  graceMs: number;
  log: (s: string) => void;
}

function* teardownSteps(t: TeardownSpec): Steps<DownReport> {
  const t0 = performance.now();
  const report: DownReport = {
    name: t.name,
    killed: [],
    namespaces: [],
    links: [],
    dirs: [],
    stateFile: false,
    errors: [],
    ms: 0,
  };
  const nsKeys = new Set<string>();
  for (const ns of t.namespaces) {
    const k = nsKeyOfPath(path.join(NETNS_DIR, ns));
    if (k) nsKeys.add(k);
  }
  const spec: VictimSpec = { nsKeys, records: t.records, labIdMatch: t.labIdMatch };

  // 1. Processes: SIGTERM, wait up to the grace period, then SIGKILL whatever is left (rescanning, since a
  //    supervisor may fork replacements while dying).
  let victims = findVictims(spec);
  if (victims.size > 0) {
    t.log(`lab ${t.name}: stopping ${victims.size} process(es): ${[...victims.keys()].join(' ')}`);
    const killed = new Set<number>();
    const starts = new Map<number, number>();
    for (const pid of victims.keys()) {
      const st = readStat(pid);
      if (st) starts.set(pid, st.start);
      if (signal(pid, 'SIGTERM')) killed.add(pid);
    }
    const deadline = performance.now() + t.graceMs;
    const anyAlive = () => [...starts].some(([pid, start]) => procAlive(pid, start));
    while (anyAlive() && performance.now() < deadline) yield { kind: 'sleep', ms: 20 };
    for (let round = 0; round < 50; round++) {
      victims = findVictims(spec);
      if (victims.size === 0) break;
      for (const pid of victims.keys()) if (signal(pid, 'SIGKILL')) killed.add(pid);
      yield { kind: 'sleep', ms: round < 10 ? 10 : 50 };
    }
    victims = findVictims(spec);
    for (const [pid, why] of victims) report.errors.push(`process ${pid} (${why}) survived SIGKILL`);
    report.killed = [...killed];
  }

  // 2. Network: the root-ns link first (synchronous; deleting the switch ns would remove it only later, from
  //    the kernel's cleanup work), then the namespaces. Deleting a namespace is just an unmount: the kernel
  //    destroys it, with its veth ends and the bridge, asynchronously once no process holds it.
  const links = t.rootLink && fs.existsSync(`/sys/class/net/${t.rootLink}`) ? [t.rootLink] : [];
  const namespaces = t.namespaces.filter((ns) => fs.existsSync(path.join(NETNS_DIR, ns)));
  if (links.length + namespaces.length > 0) {
    const script = [...links.map((l) => `link del ${l}`), ...namespaces.map((ns) => `netns del ${ns}`)];
    const r = (yield ipBatch(script, undefined, true)) as RunResult;
    if (r.code !== 0) t.log(describeFailure(`lab ${t.name}: teardown`, r, script));
  }
  for (const l of links) {
    if (fs.existsSync(`/sys/class/net/${l}`)) report.errors.push(`link ${l} still exists`);
    else report.links.push(l);
  }
  for (const ns of namespaces) {
    if (fs.existsSync(path.join(NETNS_DIR, ns))) report.errors.push(`namespace ${ns} still exists`);
    else report.namespaces.push(ns);
  }

  // 3. State directories: unmount anything mounted below them first (rm -r must never descend into a mount).
  for (const dir of t.dirs) {
    if (!fs.existsSync(dir)) continue;
    const mounts = mountsUnder(dir);
    if (mounts.length > 0) {
      const r = (yield { kind: 'run', cmd: tool('umount'), args: ['-l', ...mounts], timeoutMs: 20_000 }) as RunResult;
      if (r.code !== 0) t.log(describeFailure(`lab ${t.name}: umount`, r));
      const still = mountsUnder(dir);
      if (still.length > 0) {
        report.errors.push(`not removing ${dir}: still mounted: ${still.join(' ')}`);
        continue;
      }
    }
    try {
      fs.rmSync(dir, { recursive: true, force: true, maxRetries: 2 });
      report.dirs.push(dir);
    } catch (e) {
      report.errors.push(`cannot remove ${dir}: ${(e as Error).message}`);
    }
  }
  for (const p of t.emptyParents) rmdirIfEmpty(p);

  // 4. The state file goes last, so an interrupted teardown can be retried from it.
  if (t.stateFile && report.errors.length === 0) {
    try {
      fs.rmSync(t.stateFile, { force: true });
      report.stateFile = true;
    } catch (e) {
      report.errors.push(`cannot remove ${t.stateFile}: ${(e as Error).message}`);
    }
    for (const f of listDir(RUN_DIR)) {
      if (f.startsWith(`${t.name}.json.`) && f.endsWith('.tmp')) fs.rmSync(path.join(RUN_DIR, f), { force: true });
    }
    rmdirIfEmpty(RUN_DIR);
  }
  report.ms = Math.round(performance.now() - t0);
  for (const e of report.errors) t.log(`lab ${t.name}: ${e}`);
  return report;
}

/** Lab-wide teardown spec by name: every `sl-<name>-*` namespace that exists, the root link, all records. */
function labTeardownSpec(name: string, state: LabState | null, opts: { stateRoot?: string; graceMs?: number; log?: (s: string) => void }): TeardownSpec {
  const n = labNames(name);
  // The lab's own state root (from its state file), else the given or default one.
  const roots = new Set<string>([state?.stateRoot ?? opts.stateRoot ?? DEFAULT_STATE_ROOT]);
  if (opts.stateRoot) roots.add(path.resolve(opts.stateRoot));
  const namespaces = new Set(listDir(NETNS_DIR).filter((ns) => ns.startsWith(n.prefix)));
  for (const h of state?.hosts ?? []) namespaces.add(h.ns);
  namespaces.add(n.switchNs);
  return {
    name,
    namespaces: [...namespaces],
    rootLink: n.rootLink,
    records: state?.procs ?? [],
    labIdMatch: (id) => id.startsWith(`${name}/`),
    dirs: (() => {
      const labDirs = [...roots].map((r) => path.join(r, name));
      return [...nodeRunDirs(labDirs), ...labDirs];
    })(),
    // Only the default root is ours to remove when empty; a caller's stateRoot stays.
    emptyParents: [...(roots.has(DEFAULT_STATE_ROOT) ? [DEFAULT_STATE_ROOT] : []), NODE_RUN_ROOT],
    stateFile: n.stateFile,
    graceMs: opts.graceMs ?? DEFAULT_GRACE_MS,
    log: opts.log ?? (() => {}),
  };
}

// ---------------------------------------------------------------------------------------------------------
// Subnet choice

/** IPv4 networks in use in the root namespace: interface subnets and (non-default) routes. */
function rootNetworks(): { net: number; mask: number; what: string }[] {
  const out: { net: number; mask: number; what: string }[] = [];
  for (const [ifname, addrs] of Object.entries(os.networkInterfaces())) {
    for (const a of addrs ?? []) {
      if (a.family !== 'IPv4' || !a.cidr) continue;
      const bits = Number(a.cidr.split('/')[1]);
      const mask = bits === 0 ? 0 : (~0 << (32 - bits)) >>> 0;
      out.push({ net: (ipToInt(a.address) & mask) >>> 0, mask, what: `${a.cidr} on ${ifname}` });
    }
  }
  let routes = '';
  try {
    routes = fs.readFileSync('/proc/net/route', 'utf8');
  } catch {
    /* none */
  }
  for (const line of routes.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 8) continue;
    // Little-endian hex.
    const le = (h: string) => {
      const v = parseInt(h, 16);
      return (((v & 0xff) << 24) | ((v & 0xff00) << 8) | ((v >>> 8) & 0xff00) | (v >>> 24)) >>> 0;
    };
    const mask = le(f[7]!);
    if (mask === 0) continue; // the default route overlaps everything
    out.push({ net: le(f[1]!) & mask, mask, what: `route via ${f[0]}` });
  }
  return out;
}

function subnetConflict(subnet: string, exceptLab?: string): string | null {
  const [a, b, c] = parseSubnet(subnet);
  const net = ((a << 24) | (b << 16) | (c << 8)) >>> 0;
  const mask = 0xffffff00;
  for (const r of rootNetworks()) {
    const m = (mask & r.mask) >>> 0; // overlap iff equal under the shorter mask
    if ((net & m) >>> 0 === (r.net & m) >>> 0) return r.what;
  }
  for (const f of listDir(RUN_DIR)) {
    if (!f.endsWith('.json')) continue;
    const s = readState(path.join(RUN_DIR, f));
    if (s && s.name !== exceptLab && s.subnet === subnet) return `lab ${s.name}`;
  }
  return null;
}

function chooseSubnet(name: string, explicit?: string): string {
  if (explicit) {
    parseSubnet(explicit);
    const c = subnetConflict(explicit, name);
    if (c) throw new LabError(`subnet ${explicit} overlaps ${c}`);
    return explicit;
  }
  const k0 = subnetK(name);
  for (let d = 0; d < 254; d++) {
    const subnet = `10.213.${1 + ((k0 - 1 + d) % 254)}.0/24`;
    if (!subnetConflict(subnet, name)) return subnet;
  }
  throw new LabError('no free 10.213.x.0/24 subnet for the lab');
}

// ---------------------------------------------------------------------------------------------------------
// Exit hooks

const exitLabs = new Set<Lab | string>();
let hooksInstalled = false;
const HOOK_SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

function onExitHook(): void {
  for (const lab of [...exitLabs]) {
    const name = typeof lab === 'string' ? lab : lab.name;
    try {
      if (typeof lab === 'string') {
        driveSync(teardownSteps(labTeardownSpec(lab, readState(labNames(lab).stateFile), { graceMs: EXIT_HOOK_GRACE_MS })));
        exitLabs.delete(lab);
      } else if (!lab.closedDown) {
        lab.downSync(EXIT_HOOK_GRACE_MS);
      }
    } catch (e) {
      process.stderr.write(`lab ${name}: cleanup on exit failed: ${(e as Error).message}\n`);
    }
  }
}

function onSignalHook(sig: NodeJS.Signals): void {
  onExitHook();
  uninstallHooks();
  // Die of the signal as we would have without the hook, unless someone else handles it.
  if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
}

function installHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on('exit', onExitHook);
  for (const s of HOOK_SIGNALS) process.on(s, onSignalHook);
}

function uninstallHooks(): void {
  if (!hooksInstalled) return;
  hooksInstalled = false;
  process.off('exit', onExitHook);
  for (const s of HOOK_SIGNALS) process.off(s, onSignalHook);
}

/**
 * Tears `lab` down (synchronously) when this process exits or gets SIGINT/SIGTERM/SIGHUP, so a failing or
 * interrupted test leaves nothing behind. Given a lab name instead, removes whatever exists under that name
 * (like downByName with force). Nothing can run on SIGKILL: `Lab.downByName(name, {force:true})`
 * (`shoal lab down --force`) cleans up after that. Returns a function that unregisters the lab.
 */
export function cleanupOnExit(lab: Lab | string): () => void {
  if (typeof lab === 'string') validateLabName(lab);
  exitLabs.add(lab);
  installHooks();
  return () => {
    exitLabs.delete(lab);
    if (exitLabs.size === 0) uninstallHooks();
  };
}

// ---------------------------------------------------------------------------------------------------------
// Lab

export interface LabCreateOptions {
  /** [a-z0-9]{1,8}; default 'shoal'. */
  name?: string;
  /** Number of hosts, 0..244. */
  hosts: number;
  /** 'a.b.c.0/24'; default 10.213.<k>.0/24, k derived from the name (the next free one on a clash). */
  subnet?: string;
  /** Parent of the per-lab state directories; default /var/lib/shoal-lab. */
  stateRoot?: string;
  log?: (s: string) => void;
  /** Grace period between SIGTERM and SIGKILL on teardown; default 2000 ms. */
  graceMs?: number;
  /** Partition helpers' tool; default nft if on PATH, else iptables. */
  firewall?: 'nft' | 'iptables';
}

export interface LabSummary {
  name: string;
  subnet: string | null;
  gateway: string | null;
  /** From the state file, plus namespaces found without one. `up`: its namespace exists. */
  hosts: { name: string; ns: string; ip: string | null; up: boolean /** Its state directory (null: known only from a namespace). */; dir?: string | null }[];
  /** Live processes belonging to the lab. */
  pids: number[];
  creatorPid: number | null;
  creatorAlive: boolean;
  createdAt: string | null;
  /** Whether the state file exists (false: only leftovers were found). */
  stateFile: boolean;
  switchUp: boolean;
  rootLink: boolean;
}

export class Lab {
  readonly name: string;
  readonly instance: string;
  /** 'a.b.c.0/24' */
  readonly subnet: string;
  /** The root namespace's address on the lab network (a.b.c.1). */
  readonly gateway: string;
  readonly switchNs: string;
  readonly rootLink: string;
  readonly stateRoot: string;
  /** `<stateRoot>/<name>`: parent of the hosts' directories. */
  readonly dir: string;
  readonly stateFile: string;
  readonly graceMs: number;
  hosts: LabHost[] = [];

  private state: LabState;
  private closed = false;
  private queue: Promise<unknown> = Promise.resolve();
  private readonly logFn: (s: string) => void;
  /** Partition helpers' tool; undefined: nft if on PATH, else iptables. */
  firewall: 'nft' | 'iptables' | undefined;

  private constructor(state: LabState, opts: { log?: (s: string) => void; graceMs?: number; firewall?: 'nft' | 'iptables' }) {
    const n = labNames(state.name, state.stateRoot);
    this.state = state;
    this.name = state.name;
    this.instance = state.instance;
    this.subnet = state.subnet;
    this.gateway = state.gateway;
    this.switchNs = n.switchNs;
    this.rootLink = n.rootLink;
    this.stateRoot = state.stateRoot;
    this.dir = n.labDir;
    this.stateFile = n.stateFile;
    this.graceMs = opts.graceMs ?? DEFAULT_GRACE_MS;
    this.logFn = opts.log ?? (() => {});
    this.firewall = opts.firewall;
    this.hosts = state.hosts.map((h) => new LabHost(this, h));
  }

  /** Creates the lab: switch, root link, `hosts` hosts. Fails if anything named `sl-<name>-*` exists. */
  static async create(opts: LabCreateOptions): Promise<Lab> {
    const t0 = performance.now();
    const name = validateLabName(opts.name ?? DEFAULT_LAB_NAME);
    if (!Number.isInteger(opts.hosts) || opts.hosts < 0 || opts.hosts > MAX_HOST_INDEX) {
      throw new LabError(`hosts must be an integer in 0..${MAX_HOST_INDEX}`);
    }
    const stateRoot = path.resolve(opts.stateRoot ?? DEFAULT_STATE_ROOT);
    if (stateRoot === '/') throw new LabError('stateRoot must not be /');
    tool('ip');
    tool('nsenter');
    const n = labNames(name, stateRoot);
    const leftovers = [
      ...listDir(NETNS_DIR).filter((ns) => ns.startsWith(n.prefix)),
      ...(fs.existsSync(`/sys/class/net/${n.rootLink}`) ? [`link ${n.rootLink}`] : []),
      ...(fs.existsSync(n.stateFile) ? [n.stateFile] : []),
      // Stale host directories would hand old data (Raft logs, certificates) to the new lab's daemons.
      ...(fs.existsSync(n.labDir) ? [n.labDir] : []),
    ];
    if (leftovers.length > 0) {
      throw new LabError(
        `lab ${name} already exists or left leftovers (${leftovers.join(', ')}): ` + `run \`shoal lab down ${name} --force\` (Lab.downByName) first`,
      );
    }
    const subnet = chooseSubnet(name, opts.subnet);
    const [a, b, c] = parseSubnet(subnet);
    const self = readStat(process.pid);
    const state: LabState = {
      version: STATE_VERSION,
      name,
      instance: randomBytes(4).toString('hex'),
      status: 'creating',
      subnet,
      gateway: `${a}.${b}.${c}.1`,
      stateRoot,
      creatorPid: process.pid,
      creatorStart: self?.start ?? 0,
      createdAt: new Date().toISOString(),
      nextIndex: opts.hosts + 1,
      hosts: [],
      procs: [],
    };
    for (let i = 1; i <= opts.hosts; i++) state.hosts.push(hostRecord(state, i));
    try {
      writeStateAtomic(n.stateFile, state, true);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') throw new LabError(`lab ${name} is being created by someone else`);
      throw e;
    }
    const lab = new Lab(state, opts);
    try {
      await lab.bringUp(state.hosts, true);
      lab.state.status = 'up';
      lab.save();
    } catch (e) {
      lab.log(`lab ${name}: creation failed, tearing down: ${(e as Error).message}`);
      await lab.down().catch(() => {});
      throw e;
    }
    lab.log(`lab ${name}: ${opts.hosts} host(s) on ${subnet} up in ${(performance.now() - t0).toFixed(1)} ms`);
    return lab;
  }

  /** Attaches to a lab created by another process (e.g. `shoal lab up`), from its state file. */
  static async open(name: string, opts: { log?: (s: string) => void; graceMs?: number; firewall?: 'nft' | 'iptables' } = {}): Promise<Lab> {
    const n = labNames(name);
    const state = readState(n.stateFile);
    if (!state) throw new LabError(`lab ${name} not found (no readable ${n.stateFile})`);
    if (state.status !== 'up') throw new LabError(`lab ${name} was not completely created`);
    return new Lab(state, opts);
  }

  /**
   * Tears down a lab by name, also when its creator died (kill -9): stops its processes (recorded ones,
   * those in its namespaces or carrying its SHOAL_LAB_ID, and their descendants), deletes every
   * `sl-<name>-*` namespace and the `sl-<name>` link, its state directories and state file. Without
   * `force` it needs the state file and refuses while the creating process still runs.
   */
  static async downByName(name: string, opts: { force?: boolean; stateRoot?: string; graceMs?: number; log?: (s: string) => void } = {}): Promise<DownReport> {
    validateLabName(name);
    const state = readState(labNames(name).stateFile);
    if (!opts.force) {
      if (!state) throw new LabError(`lab ${name}: no state file; use force to remove leftovers by name`);
      if (state.creatorPid !== process.pid && procAlive(state.creatorPid, state.creatorStart)) {
        throw new LabError(`lab ${name} is in use by its creator (pid ${state.creatorPid}); use force`);
      }
    }
    return driveAsync(teardownSteps(labTeardownSpec(name, state, opts)));
  }

  /** Every lab on this machine, found from state files and from leftovers (namespaces, links, dirs). */
  static async list(): Promise<LabSummary[]> {
    const names = new Set<string>();
    for (const ns of listDir(NETNS_DIR)) {
      const m = NS_RE.exec(ns);
      if (m) names.add(m[1]!);
    }
    for (const l of listDir('/sys/class/net')) {
      const m = ROOT_LINK_RE.exec(l);
      if (m) names.add(m[1]!);
    }
    for (const f of listDir(RUN_DIR)) {
      const m = /^([a-z0-9]{1,8})\.json$/.exec(f);
      if (m) names.add(m[1]!);
    }
    for (const d of listDir(DEFAULT_STATE_ROOT)) if (NAME_RE.test(d)) names.add(d);
    const procs = scanProcs();
    const out: LabSummary[] = [];
    for (const name of [...names].sort()) {
      const n = labNames(name);
      const state = readState(n.stateFile);
      const nsList = listDir(NETNS_DIR).filter((ns) => ns.startsWith(n.prefix));
      const hosts: LabSummary['hosts'] = (state?.hosts ?? []).map((h) => ({
        name: h.name,
        ns: h.ns,
        ip: h.ip,
        up: nsList.includes(h.ns),
        dir: h.dir,
      }));
      for (const ns of nsList) {
        const m = NS_RE.exec(ns);
        if (m?.[3] && !hosts.some((h) => h.ns === ns)) hosts.push({ name: `h${m[3]}`, ns, ip: null, up: true, dir: null });
      }
      const spec = labTeardownSpec(name, state, {});
      const nsKeys = new Set<string>();
      for (const ns of spec.namespaces) {
        const k = nsKeyOfPath(path.join(NETNS_DIR, ns));
        if (k) nsKeys.add(k);
      }
      const victims = findVictims({ nsKeys, records: spec.records, labIdMatch: spec.labIdMatch }, procs);
      out.push({
        name,
        subnet: state?.subnet ?? null,
        gateway: state?.gateway ?? null,
        hosts,
        pids: [...victims.keys()].sort((x, y) => x - y),
        creatorPid: state?.creatorPid ?? null,
        creatorAlive: state ? procAlive(state.creatorPid, state.creatorStart) : false,
        createdAt: state?.createdAt ?? null,
        stateFile: state !== null,
        switchUp: nsList.includes(n.switchNs),
        rootLink: fs.existsSync(`/sys/class/net/${n.rootLink}`),
      });
    }
    return out;
  }

  /** The host named 'h<i>' or with index i. */
  host(which: string | number): LabHost {
    const h = this.hosts.find((x) => x.name === which || x.index === which);
    if (!h) throw new LabError(`lab ${this.name} has no host ${which}`);
    return h;
  }

  /** Adds a host with the next unused index (indices are never reused within a lab instance). */
  addHost(): Promise<LabHost> {
    return this.serial(async () => {
      this.assertOpen();
      const index = this.state.nextIndex;
      if (index > MAX_HOST_INDEX) throw new LabError(`lab ${this.name}: no host index left (max ${MAX_HOST_INDEX})`);
      const rec = hostRecord(this.state, index);
      this.state.nextIndex = index + 1;
      this.state.hosts.push(rec);
      this.save();
      const host = new LabHost(this, rec);
      try {
        await this.bringUp([rec], false);
      } catch (e) {
        await this.teardownHost(host).catch(() => {});
        throw e;
      }
      this.hosts.push(host);
      return host;
    });
  }

  /** Stops the host's processes, deletes its namespace (and so its veth pair) and its directory. */
  removeHost(which: LabHost | string | number): Promise<void> {
    return this.serial(async () => {
      this.assertOpen();
      const host = which instanceof LabHost ? which : this.host(which);
      if (host.lab !== this || !this.hosts.includes(host)) throw new LabError(`${host.name} is not a host of lab ${this.name}`);
      const r = await this.teardownHost(host);
      if (r.errors.length > 0) throw new LabError(`removing ${host.name}: ${r.errors.join('; ')}`);
    });
  }

  /** Tears the whole lab down. Idempotent; tolerates partial state; never throws for leftovers (see
   *  `errors` in the report). */
  down(): Promise<DownReport> {
    return this.serial(async () => {
      const r = await driveAsync(teardownSteps(this.teardownSpec(this.graceMs)));
      this.afterDown(r);
      return r;
    });
  }

  /** Synchronous teardown, for exit hooks (blocks the event loop for up to the grace period). */
  downSync(graceMs = this.graceMs): DownReport {
    const r = driveSync(teardownSteps(this.teardownSpec(graceMs)));
    this.afterDown(r);
    return r;
  }

  /** Cuts every host of `a` off from every host of `b` (both directions, see LabHost.blockFrom). */
  async partition(a: LabHost[], b: LabHost[]): Promise<void> {
    await Promise.all([...a.map((x) => x.blockFrom(...b)), ...b.map((y) => y.blockFrom(...a))]);
  }

  /** Removes every partition rule from every host. */
  async heal(): Promise<void> {
    await Promise.all(this.hosts.map((h) => h.unblockAll()));
  }

  get closedDown(): boolean {
    return this.closed;
  }

  // --- internals (used by LabHost) ---

  /** @internal */
  log(s: string): void {
    this.logFn(s);
  }

  /** @internal */
  firewallTool(): { kind: 'nft' | 'iptables'; path: string } {
    const order: ('nft' | 'iptables')[] = this.firewall ? [this.firewall] : ['nft', 'iptables'];
    for (const kind of order) {
      const p = which(kind);
      if (p) return { kind, path: p };
    }
    throw new LabError(`partition helpers need ${order.join(' or ')} on PATH (Debian: apt-get install nftables); none found`);
  }

  /** @internal Records a started process (pid, start time) in the state file. */
  recordProc(rec: ProcRecord): void {
    if (this.closed) return;
    this.state.procs.push(rec);
    this.save();
  }

  /** @internal */
  forgetProc(pid: number): void {
    if (this.closed) return;
    const before = this.state.procs.length;
    this.state.procs = this.state.procs.filter((p) => p.pid !== pid);
    if (this.state.procs.length !== before) this.save();
  }

  /** @internal */
  ownsProc(pid: number): ProcRecord | undefined {
    const mine = this.state.procs.find((p) => p.pid === pid && procAlive(p.pid, p.start));
    if (mine) return mine;
    // Another process attached with Lab.open (e.g. `shoal lab restart`) may have started it: its record is
    // in the state file, under the same lab instance.
    const onDisk = readState(this.stateFile);
    if (onDisk?.instance !== this.instance) return undefined;
    return onDisk.procs.find((p) => p.pid === pid && procAlive(p.pid, p.start));
  }

  /** @internal */
  assertOpen(): void {
    if (this.closed) throw new LabError(`lab ${this.name} is down`);
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => {});
    return run;
  }

  /** Writes the state file: our hosts, and the union of our and the file's process records that still
   *  live (another process attached with Lab.open may have added some). Not locked. */
  private save(): void {
    if (this.closed) return;
    const onDisk = readState(this.stateFile);
    const procs = new Map<string, ProcRecord>();
    for (const p of [...(onDisk?.instance === this.instance ? onDisk.procs : []), ...this.state.procs]) {
      if (procAlive(p.pid, p.start)) procs.set(`${p.pid}:${p.start}`, p);
    }
    this.state.procs = [...procs.values()];
    writeStateAtomic(this.stateFile, this.state);
  }

  private async bringUp(hosts: HostRecord[], withSwitch: boolean): Promise<void> {
    const t0 = performance.now();
    const sw = this.switchNs;
    const prefixLen = 24;
    const root: string[] = [];
    if (withSwitch) root.push(`netns add ${sw}`);
    for (const h of hosts) root.push(`netns add ${h.ns}`);
    if (withSwitch) {
      root.push(
        `link add ${this.rootLink} type veth peer name ${SWITCH_UPLINK} netns ${sw}`,
        `link set ${this.rootLink} alias shoal-lab:${this.name}`,
        `addr add ${this.gateway}/${prefixLen} dev ${this.rootLink}`,
        `link set ${this.rootLink} up`,
      );
    }
    for (const h of hosts) root.push(`link add ${HOST_IF} netns ${h.ns} type veth peer name ${h.name} netns ${sw}`);
    for (const h of hosts) fs.mkdirSync(h.dir, { recursive: true, mode: 0o755 });
    await runChecked(`lab ${this.name}: create namespaces and links`, root);

    const swScript: string[] = [];
    if (withSwitch) {
      swScript.push(
        'link set lo up',
        `link add ${BRIDGE} type bridge stp_state 0 forward_delay 0 mcast_snooping 0`,
        `link set ${BRIDGE} up`,
        `link set ${SWITCH_UPLINK} master ${BRIDGE} up`,
      );
    }
    for (const h of hosts) swScript.push(`link set ${h.name} master ${BRIDGE} up`);
    const jobs = [runChecked(`lab ${this.name}: switch`, swScript, sw)];
    for (const h of hosts) {
      jobs.push(
        runChecked(
          `lab ${this.name}: host ${h.name}`,
          [
            'link set lo up',
            `addr add ${h.ip}/${prefixLen} dev ${HOST_IF}`,
            `link set ${HOST_IF} up`,
            `route add default via ${this.gateway} dev ${HOST_IF} onlink`,
          ],
          h.ns,
        ),
      );
    }
    const results = await Promise.allSettled(jobs);
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
    this.log(`lab ${this.name}: ${withSwitch ? 'switch + ' : ''}${hosts.length} host(s) wired in ${(performance.now() - t0).toFixed(1)} ms`);
  }

  private async teardownHost(host: LabHost): Promise<DownReport> {
    const labId = host.labId;
    const r = await driveAsync(
      teardownSteps({
        name: `${this.name}/${host.name}`,
        namespaces: [host.ns],
        rootLink: null,
        records: this.state.procs.filter((p) => p.host === host.name),
        labIdMatch: (id) => id === labId,
        dirs: [...nodeRunDirs([host.dir]), host.dir],
        emptyParents: [],
        stateFile: null,
        graceMs: this.graceMs,
        log: this.logFn,
      }),
    );
    this.hosts = this.hosts.filter((h) => h !== host);
    this.state.hosts = this.state.hosts.filter((h) => h.index !== host.index);
    this.state.procs = this.state.procs.filter((p) => p.host !== host.name);
    this.save();
    return r;
  }

  private teardownSpec(graceMs: number): TeardownSpec {
    return labTeardownSpec(
      this.name,
      { ...this.state, procs: [...this.state.procs, ...(readState(this.stateFile)?.procs ?? [])] },
      {
        stateRoot: this.stateRoot,
        graceMs,
        log: this.logFn,
      },
    );
  }

  private afterDown(r: DownReport): void {
    if (r.errors.length === 0) {
      this.closed = true;
      exitLabs.delete(this);
      if (exitLabs.size === 0) uninstallHooks();
    }
    this.log(
      `lab ${this.name}: down in ${r.ms} ms (${r.killed.length} process(es), ${r.namespaces.length} namespace(s))` +
        (r.errors.length ? `, ${r.errors.length} error(s)` : ''),
    );
  }
}

function hostRecord(state: LabState, index: number): HostRecord {
  const [a, b, c] = parseSubnet(state.subnet);
  const name = `h${index}`;
  return {
    index,
    name,
    ns: labNames(state.name).hostNs(index),
    ip: `${a}.${b}.${c}.${HOST_IP_OFFSET + index}`,
    dir: path.join(state.stateRoot, state.name, name),
  };
}

async function runChecked(what: string, script: string[], ns?: string): Promise<void> {
  if (script.length === 0) return;
  const e = ipBatch(script, ns);
  const r = await runAsync(e.cmd, e.args, { input: e.input ?? '', timeoutMs: e.timeoutMs });
  if (r.code !== 0) throw new LabError(describeFailure(what, r, script));
}

// ---------------------------------------------------------------------------------------------------------
// LabHost

export interface SpawnOptions {
  /** Added to process.env (plus SHOAL_LAB_NAME/HOST/IP/DIR and the SHOAL_LAB_ID marker). */
  env?: NodeJS.ProcessEnv;
  /** Default: Node's ('pipe'). Ignored when logFile is set. */
  stdio?: StdioOptions;
  /** Appends stdout and stderr to this file (relative paths: in the host's directory); stdin is ignored. */
  logFile?: string;
  /** Default: the host's directory. */
  cwd?: string;
  /** Own process group/session (survives the parent's terminal; needed by `shoal lab up` daemons). */
  detached?: boolean;
}

export interface ExecResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

export class LabHost {
  /** 'h<i>' */
  readonly name: string;
  readonly index: number;
  /** 'sl-<lab>-h<i>' */
  readonly ns: string;
  readonly nsPath: string;
  readonly ip: string;
  /** '<stateRoot>/<lab>/h<i>' */
  readonly dir: string;
  /** '<lab>/<instance>/h<i>': the SHOAL_LAB_ID of its processes. */
  readonly labId: string;

  /** @internal */
  constructor(
    readonly lab: Lab,
    rec: HostRecord,
  ) {
    this.name = rec.name;
    this.index = rec.index;
    this.ns = rec.ns;
    this.nsPath = path.join(NETNS_DIR, rec.ns);
    this.ip = rec.ip;
    this.dir = rec.dir;
    this.labId = `${lab.name}/${lab.instance}/${rec.name}`;
  }

  /** Environment every process in this host gets (besides the caller's). */
  env(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
    return {
      ...process.env,
      SHOAL_LAB_NAME: this.lab.name,
      SHOAL_LAB_HOST: this.name,
      SHOAL_LAB_IP: this.ip,
      SHOAL_LAB_DIR: this.dir,
      ...extra,
      [LAB_ID_ENV]: this.labId,
    };
  }

  /** Command line that runs `cmd args` in this host: `nsenter --net=<ns> -- cmd args`. */
  command(cmd: string, args: string[]): [string, string[]] {
    return [tool('nsenter'), [`--net=${this.nsPath}`, '--', cmd, ...args]];
  }

  /**
   * Starts a (long-running) process in this host and records its pid in the lab's state file. nsenter
   * execs the command, so `child.pid` is the command's pid.
   */
  spawn(cmd: string, args: string[], opts: SpawnOptions = {}): ChildProcess {
    this.lab.assertOpen();
    if (!fs.existsSync(this.nsPath)) throw new LabError(`${this.name}: namespace ${this.ns} is gone`);
    let stdio: StdioOptions | undefined = opts.stdio;
    let fd: number | undefined;
    if (opts.logFile) {
      fd = fs.openSync(path.resolve(this.dir, opts.logFile), 'a', 0o644);
      stdio = ['ignore', fd, fd];
    }
    const [bin, argv] = this.command(cmd, args);
    let child: ChildProcess;
    try {
      child = spawn(bin, argv, {
        env: this.env(opts.env),
        cwd: opts.cwd ?? this.dir,
        detached: opts.detached ?? false,
        ...(stdio !== undefined ? { stdio } : {}),
      });
    } finally {
      if (fd !== undefined) fs.closeSync(fd);
    }
    const pid = child.pid;
    if (pid !== undefined) {
      const st = readStat(pid);
      if (st) {
        this.lab.recordProc({ pid, start: st.start, host: this.name, cmd: [cmd, ...args].join(' ').slice(0, 200) });
        child.once('exit', () => this.lab.forgetProc(pid));
      }
    }
    return child;
  }

  /** Runs a short command in this host and collects its output; killed (SIGKILL) after timeoutMs. */
  exec(cmd: string, args: string[] = [], opts: { timeoutMs?: number; input?: string; env?: NodeJS.ProcessEnv } = {}): Promise<ExecResult> {
    this.lab.assertOpen();
    const [bin, argv] = this.command(cmd, args);
    return runAsync(bin, argv, {
      env: this.env(opts.env),
      timeoutMs: opts.timeoutMs ?? DEFAULT_EXEC_TIMEOUT_MS,
      input: opts.input ?? '',
    }).then((r) => {
      if (r.error) throw new LabError(`${this.name}: cannot run ${cmd}: ${r.error.message}`);
      return { code: r.code, signal: r.signal, stdout: r.stdout, stderr: r.stderr, timedOut: r.timedOut };
    });
  }

  /** Signals a process this lab started (refuses any other pid). Returns false if it is already gone. */
  kill(pid: number, sig: NodeJS.Signals = 'SIGTERM'): boolean {
    const rec = this.lab.ownsProc(pid);
    if (!rec) {
      const s = readStat(pid);
      if (!s || s.state === 'Z') return false;
      throw new LabError(`pid ${pid} was not started by lab ${this.lab.name}`);
    }
    return signal(pid, sig);
  }

  /**
   * Drops every packet arriving at this host from `others` (hosts, or IPv4 addresses such as the
   * gateway). TCP is then cut both ways (replies are dropped too); UDP from this host still leaves.
   * Uses nft (table inet shoal_lab) or else iptables (chain SHOAL-LAB) inside the host's namespace.
   */
  async blockFrom(...others: (LabHost | string)[]): Promise<void> {
    const ips = others.map((o) => (typeof o === 'string' ? o : o.ip));
    for (const ip of ips) ipToInt(ip);
    if (ips.length === 0) return;
    const fw = this.lab.firewallTool();
    if (fw.kind === 'nft') {
      await this.firewall(
        fw.path,
        ['-f', '-'],
        [
          'add table inet shoal_lab',
          'add set inet shoal_lab blocked { type ipv4_addr ; }',
          'add chain inet shoal_lab input { type filter hook input priority -10 ; policy accept ; }',
          'flush chain inet shoal_lab input',
          'add rule inet shoal_lab input ip saddr @blocked counter drop',
          `add element inet shoal_lab blocked { ${ips.join(', ')} }`,
        ].join('\n') + '\n',
      );
    } else {
      const ipt = fw.path;
      const lines = [
        `${ipt} -w -N SHOAL-LAB 2>/dev/null || true`,
        `${ipt} -w -C INPUT -j SHOAL-LAB 2>/dev/null || ${ipt} -w -I INPUT -j SHOAL-LAB || exit 1`,
        ...ips.map((ip) => `${ipt} -w -C SHOAL-LAB -s ${ip} -j DROP 2>/dev/null || ${ipt} -w -A SHOAL-LAB -s ${ip} -j DROP || exit 1`),
      ];
      await this.firewall(tool('sh'), ['-c', lines.join('\n')]);
    }
  }

  /** Lifts blockFrom for `others`. */
  async unblockFrom(...others: (LabHost | string)[]): Promise<void> {
    const ips = others.map((o) => (typeof o === 'string' ? o : o.ip));
    for (const ip of ips) ipToInt(ip);
    if (ips.length === 0) return;
    const fw = this.lab.firewallTool();
    if (fw.kind === 'nft') {
      // 'delete element' fails for an absent element: add first so the batch always applies.
      await this.firewall(
        fw.path,
        ['-f', '-'],
        [
          'add table inet shoal_lab',
          'add set inet shoal_lab blocked { type ipv4_addr ; }',
          `add element inet shoal_lab blocked { ${ips.join(', ')} }`,
          `delete element inet shoal_lab blocked { ${ips.join(', ')} }`,
        ].join('\n') + '\n',
      );
    } else {
      const ipt = fw.path;
      const lines = ips.map((ip) => `while ${ipt} -w -D SHOAL-LAB -s ${ip} -j DROP 2>/dev/null; do :; done`);
      await this.firewall(tool('sh'), ['-c', lines.join('\n') + '\ntrue']);
    }
  }

  /** Removes every partition rule from this host. */
  async unblockAll(): Promise<void> {
    const fw = this.lab.firewallTool();
    if (fw.kind === 'nft') {
      // 'add' then 'delete' so it succeeds whether or not the table exists.
      await this.firewall(fw.path, ['-f', '-'], 'add table inet shoal_lab\ndelete table inet shoal_lab\n');
    } else {
      const ipt = fw.path;
      await this.firewall(tool('sh'), [
        '-c',
        `while ${ipt} -w -D INPUT -j SHOAL-LAB 2>/dev/null; do :; done\n` + `${ipt} -w -F SHOAL-LAB 2>/dev/null\n${ipt} -w -X SHOAL-LAB 2>/dev/null\ntrue`,
      ]);
    }
  }

  private async firewall(cmd: string, args: string[], input?: string): Promise<void> {
    const r = await this.exec(cmd, args, { timeoutMs: 10_000, ...(input !== undefined ? { input } : {}) });
    if (r.code !== 0) {
      throw new LabError(`${this.name}: ${path.basename(cmd)} failed: ${(r.stderr || r.stdout).trim() || `exit ${r.code}`}`);
    }
  }
}
