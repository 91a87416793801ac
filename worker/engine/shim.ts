// TypeScript side of shoal-shim (native/shim/shoal-shim.c): the per-container monitor. The agent starts
// one shim per container; the shim daemonizes, creates the container, pumps its logs and records its
// life in <stateDir>/state.json. Everything here talks to the shim only through that directory and
// signals, so an agent restart can pick up running containers again (see docs/design/engine.md).
import { type ChildProcess, type SpawnOptions, spawn } from 'node:child_process';
import {
  type FSWatcher,
  closeSync,
  copyFileSync,
  chmodSync,
  existsSync,
  mkdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  watch,
  writeFileSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { constants as osConstants } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const DEFAULT_SHIM_PATH = join(repoRoot, 'native', 'build', 'shoal-shim');
export const BUILD_SCRIPT = join(repoRoot, 'scripts', 'build-native.sh');
/** The native addon (native/netlink) that makes the sealed copy: Node cannot call memfd_create. */
const ADDON_PATH = join(repoRoot, 'native', 'build', 'shoal_netlink.node');

export interface StartOptions {
  stateDir: string;
  rootfs: string;
  args: string[];
  hostname?: string;
  workdir?: string;
  /** numeric uid and gid (names must be resolved against the image's /etc/passwd by the caller) */
  user?: { uid: number; gid: number };
  env?: Record<string, string>;
  /** absolute cgroup directories (one per v1 controller) the container joins before exec */
  cgroups?: string[];
  /** defaults to <stateDir>/container.log */
  logPath?: string;
  logMaxBytes?: number;
  stopGraceMs?: number;
  stopSignal?: string;
  /** install a seccomp filter (the shim's default allowlist unless seccompProfilePath); default true */
  seccomp?: boolean;
  /** a profile compiled by seccomp-profile.ts (`default ACTION`, then `NAME ACTION` lines) */
  seccompProfilePath?: string;
  /** the container's capability numbers (default: Docker's default set); see capabilities.ts */
  caps?: number[];
  /** resource limits, e.g. { nofile: { soft: 1024, hard: 2048 } } (-1: unlimited) */
  ulimits?: Record<string, { soft: number; hard: number }>;
  /** namespaced sysctls written inside the container before it starts */
  sysctls?: Record<string, string>;
  /** the root filesystem is mounted read-only (mounts placed into it keep their own mode) */
  readOnly?: boolean;
  /** a small reaper runs as PID 1 and the command as its child (Docker's --init) */
  init?: boolean;
  /** cgroup v2 directory to attach the device allowlist program to (v1 uses the devices controller) */
  devicesBpfDir?: string;
  /** join this existing network namespace (e.g. /run/netns/x) instead of creating a fresh one */
  netnsPath?: string;
  /** stay in the host's network namespace */
  hostNetwork?: boolean;
  /** placed into the rootfs in this order (parents before children) before the container starts */
  mounts?: ShimMount[];
  shimPath?: string;
  /** spawn the shim from the daemon's one sealed copy (default true; see sealedShimFd) */
  sealOnce?: boolean;
  startTimeoutMs?: number;
}

/** A mount as the shim takes it: a bind of a host file or directory, or a tmpfs. */
export interface ShimMount {
  type: 'bind' | 'tmpfs';
  /** bind: absolute host path */
  source?: string;
  /** absolute path in the container */
  target: string;
  readOnly?: boolean;
  /** tmpfs only (its root gets mode 1777, as with Docker) */
  sizeBytes?: number;
}

export interface ShimState {
  status: 'starting' | 'running' | 'exited' | 'failed';
  shimPid: number;
  shimStartTime: number;
  pid?: number;
  startedAt?: string;
  exitCode?: number;
  signal?: number | null;
  oomKilled?: boolean;
  finishedAt?: string;
  error?: string;
}

export interface Started {
  shimPid: number;
  statePath: string;
  /** the container's PID 1 as seen from the host */
  pid?: number;
  state: ShimState;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export function statePath(dir: string): string {
  return join(dir, 'state.json');
}

/** The current state, or null when the shim has not written one yet. */
export function readState(dir: string): ShimState | null {
  let text: string;
  try {
    text = readFileSync(statePath(dir), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
  return JSON.parse(text) as ShimState;
}

function shimLog(dir: string): string {
  try {
    return readFileSync(join(dir, 'shim.log'), 'utf8').trim();
  } catch {
    return '';
  }
}

export function buildArgs(o: StartOptions): string[] {
  const a = ['--state-dir', o.stateDir, '--rootfs', o.rootfs];
  if (o.hostname !== undefined) a.push('--hostname', o.hostname);
  if (o.workdir !== undefined) a.push('--workdir', o.workdir);
  if (o.user) a.push('--user', `${o.user.uid}:${o.user.gid}`);
  for (const [k, v] of Object.entries(o.env ?? {})) {
    if (!k || k.includes('=')) throw new Error(`invalid env name ${JSON.stringify(k)}`);
    a.push('--env', `${k}=${v}`);
  }
  for (const cg of o.cgroups ?? []) a.push('--cgroup', cg);
  if (o.logPath !== undefined) a.push('--log', o.logPath);
  if (o.logMaxBytes !== undefined) a.push('--log-max-bytes', String(o.logMaxBytes));
  if (o.stopGraceMs !== undefined) a.push('--stop-grace-ms', String(o.stopGraceMs));
  if (o.stopSignal !== undefined) a.push('--stop-signal', o.stopSignal);
  if (o.seccomp === false) a.push('--no-seccomp');
  else if (o.seccompProfilePath !== undefined) a.push('--seccomp-profile', o.seccompProfilePath);
  if (o.caps !== undefined) {
    if (o.caps.some((c) => !Number.isInteger(c) || c < 0 || c > 63)) throw new Error(`invalid capability numbers ${JSON.stringify(o.caps)}`);
    a.push('--caps', o.caps.length ? [...new Set(o.caps)].sort((x, y) => x - y).join(',') : 'none');
  }
  for (const [name, l] of Object.entries(o.ulimits ?? {})) {
    const v = (n: number) => (n < 0 ? 'unlimited' : String(n));
    a.push('--ulimit', `${name}=${v(l.soft)}:${v(l.hard)}`);
  }
  for (const [k, v] of Object.entries(o.sysctls ?? {})) a.push('--sysctl', `${k}=${v}`);
  if (o.readOnly) a.push('--read-only');
  if (o.init) a.push('--init');
  if (o.devicesBpfDir !== undefined) a.push('--devices-bpf', o.devicesBpfDir);
  if (o.netnsPath !== undefined && o.hostNetwork) throw new Error('netnsPath and hostNetwork exclude each other');
  if (o.netnsPath !== undefined) a.push('--netns', o.netnsPath);
  if (o.hostNetwork) a.push('--net', 'host');
  for (const m of o.mounts ?? []) a.push('--mount', mountArg(m));
  if (o.args.length === 0) throw new Error('no command');
  a.push('--', ...o.args);
  return a;
}

/** `TYPE,SRC,DST[,OPT]...` (see the shim's parse_mount); the syntax has no escaping, so no commas in paths. */
export function mountArg(m: ShimMount): string {
  for (const p of [m.source ?? '', m.target]) if (p.includes(',')) throw new Error(`mount path ${JSON.stringify(p)}: commas are not supported`);
  if (m.type === 'bind' && m.source === undefined) throw new Error(`bind mount on ${m.target} needs a source`);
  const f = [m.type, m.type === 'bind' ? m.source! : '', m.target];
  if (m.readOnly) f.push('ro');
  if (m.type === 'tmpfs' && m.sizeBytes !== undefined) f.push(`size=${m.sizeBytes}`);
  return f.join(',');
}

/**
 * Starts a container under a new shim. Resolves once state.json says running (or the command already
 * exited); rejects with the shim's own error when it could not create the container.
 */
export async function startContainer(o: StartOptions): Promise<Started> {
  const shim = o.shimPath ?? DEFAULT_SHIM_PATH;
  if (!existsSync(shim)) throw new Error(`shoal-shim not built at ${shim} (run scripts/build-native.sh)`);
  mkdirSync(o.stateDir, { recursive: true, mode: 0o700 });
  const timeoutMs = o.startTimeoutMs ?? 10_000;
  const args = buildArgs(o);

  // The shim double-forks: the process we spawn exits as soon as the daemon is detached, with a
  // non-zero status and a message on stderr if the arguments are unusable (e.g. missing rootfs).
  const { code, stderr } = await new Promise<{ code: number | null; stderr: string }>((res, rej) => {
    const child = spawnShim(shim, args, { detached: true, stdio: ['ignore', 'ignore', 'pipe'] }, o.sealOnce);
    let err = '';
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (d: string) => (err += d));
    child.on('error', rej);
    child.on('close', (c) => res({ code: c, stderr: err.trim() }));
  });
  if (code !== 0) throw new Error(stderr || `shoal-shim exited with status ${code}`);

  const deadline = Date.now() + timeoutMs;
  const changes = new DirChanges(o.stateDir);
  try {
    for (;;) {
      const st = readState(o.stateDir);
      if (st && st.status === 'failed') throw new Error(`container failed to start: ${st.error ?? 'unknown error'}`);
      if (st && (st.status === 'running' || st.status === 'exited')) {
        const r: Started = { shimPid: st.shimPid, statePath: statePath(o.stateDir), state: st };
        if (st.pid !== undefined) r.pid = st.pid;
        return r;
      }
      if (st && st.status === 'starting' && !isAlive(o.stateDir)) {
        throw new Error(`shoal-shim died while starting the container${shimLog(o.stateDir) ? `: ${shimLog(o.stateDir)}` : ''}`);
      }
      if (Date.now() > deadline) {
        const log = shimLog(o.stateDir);
        throw new Error(`timed out after ${timeoutMs}ms waiting for the container to start (state: ${st?.status ?? 'none'})${log ? `: ${log}` : ''}`);
      }
      // The shim replaces state.json when the container runs: the watch wakes us at once. Without one, a
      // container usually starts within tens of ms, so look often at first (a state-file read is cheap).
      await changes.next(changes.watching ? 50 : Date.now() - (deadline - timeoutMs) < 200 ? 2 : 15);
    }
  } finally {
    changes.close();
  }
}

/**
 * Changes in a directory, through inotify (fs.watch): `next(ms)` resolves at the next change or after ms.
 * Polling every 2 ms found the shim's "running" state ~1 ms late on average, on every container start.
 * When no watch can be had (inotify limits), `watching` is false and next() is a plain sleep.
 */
class DirChanges {
  private w: FSWatcher | undefined;
  private wake: (() => void) | undefined;
  private pending = false;

  constructor(dir: string) {
    try {
      this.w = watch(dir, () => this.fire());
      this.w.on('error', () => this.close());
    } catch {
      this.w = undefined;
    }
  }

  get watching(): boolean {
    return this.w !== undefined;
  }

  private fire(): void {
    if (this.wake) this.wake();
    else this.pending = true;
  }

  next(ms: number): Promise<void> {
    if (this.pending) {
      this.pending = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.wake = undefined;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.wake = done;
    });
  }

  close(): void {
    this.w?.close();
    this.w = undefined;
  }
}

// ---------------------------------------------------------------------------------- the sealed copy

/**
 * The shim must never run from its file (CVE-2019-5736: a container could reach it through /proc/PID/exe
 * and, as root, write it). Run from its file, the shim copies itself into a sealed memfd and re-executes
 * that copy at every start: about 2.5 ms (a 1 MB copy and a second exec of a static binary). Instead the
 * engine makes that sealed copy once per daemon (per version of the binary: a rebuilt or upgraded shim is
 * copied again) with the native addon, and spawns the shim as /proc/self/fd/3 with the copy's read-only
 * descriptor in the child's fd 3. The shim sees that /proc/self/exe already carries the seals, closes the
 * inherited descriptor and goes on; the container never holds it. When the copy cannot be made (addon not
 * built, a kernel without memfd, memfd exec refused), the shim is spawned from its file and seals itself.
 */
interface SealedCopy {
  /** read-only, close-on-exec descriptor of the sealed memfd, or null when the copy failed */
  fd: number | null;
  error?: string;
  dev: number;
  ino: number;
  size: number;
  mtimeMs: number;
}

const sealed = new Map<string, SealedCopy>();
let addonCopy: ((path: string, name: string) => number) | null | undefined;

function sealedCopyFn(): ((path: string, name: string) => number) | null {
  if (addonCopy !== undefined) return addonCopy;
  addonCopy = null;
  if (!existsSync(ADDON_PATH)) return null;
  const mod = createRequire(import.meta.url)(ADDON_PATH) as { sealedCopy?: (path: string, name: string) => number };
  if (typeof mod.sealedCopy === 'function') addonCopy = mod.sealedCopy;
  return addonCopy;
}

/**
 * The descriptor of this daemon's sealed copy of the shim at shimPath (made on first use, and again when
 * the file changed), or undefined when none can be made; sealedShimError() then says why.
 */
export function sealedShimFd(shimPath: string): number | undefined {
  const st = statSync(shimPath);
  const have = sealed.get(shimPath);
  if (have && have.dev === st.dev && have.ino === st.ino && have.size === st.size && have.mtimeMs === st.mtimeMs) return have.fd ?? undefined;
  if (have?.fd != null) closeSync(have.fd);
  const next: SealedCopy = { fd: null, dev: st.dev, ino: st.ino, size: st.size, mtimeMs: st.mtimeMs };
  try {
    const copy = sealedCopyFn();
    if (copy) next.fd = copy(shimPath, 'shoal-shim');
    else next.error = `the native addon with sealedCopy is not built at ${ADDON_PATH}`;
  } catch (e) {
    next.error = (e as Error).message;
  }
  sealed.set(shimPath, next);
  return next.fd ?? undefined;
}

/** Why the shim at shimPath runs without a per-daemon sealed copy (it then seals itself per start). */
export function sealedShimError(shimPath: string): string | undefined {
  return sealed.get(shimPath)?.error;
}

/** Marks the copy of shimPath unusable (its exec failed), so later spawns use the file. */
function dropSealed(shimPath: string, why: string): void {
  const have = sealed.get(shimPath);
  if (!have) return;
  if (have.fd !== null) closeSync(have.fd);
  have.fd = null;
  have.error = why;
}

/**
 * Spawns the shim: from the sealed copy (fd 3 of the child) unless sealOnce is false or no copy can be
 * made; from the file otherwise. An exec of the copy that fails (e.g. memfd exec refused by
 * vm.memfd_noexec) drops the copy and retries from the file once, synchronously: libuv reports a failed
 * exec from spawn() itself, before any of the caller's listeners could have seen output.
 */
function spawnShim(shim: string, args: string[], opts: SpawnOptions & { stdio: ('ignore' | 'pipe')[] }, sealOnce = true): ChildProcess {
  const fd = sealOnce ? sealedShimFd(shim) : undefined;
  if (fd === undefined) return spawn(shim, args, opts);
  const child = spawn('/proc/self/fd/3', args, { ...opts, argv0: shim, stdio: [...opts.stdio, fd] });
  if (child.pid !== undefined) return child;
  child.on('error', () => {}); // reported below by the retry
  dropSealed(shim, `spawning the sealed copy of ${shim} failed`);
  return spawn(shim, args, opts);
}

/** /proc/<pid>/stat field 22 (start time in clock ticks since boot), or null if the process is gone. */
export function procStartTime(pid: number): number | null {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const v = rest[19]; // fields start at 3 after the comm
  return v === undefined ? null : Number(v);
}

function readShimPid(dir: string): number | null {
  try {
    const n = Number(readFileSync(join(dir, 'shim.pid'), 'utf8').trim());
    return Number.isInteger(n) && n > 0 ? n : null;
  } catch {
    return null;
  }
}

/** True when the shim recorded in dir is still running (pid alive and the same process, by start time). */
export function isAlive(dir: string): boolean {
  const pid = readShimPid(dir);
  if (pid === null) return false;
  const start = procStartTime(pid);
  if (start === null) return false;
  let st: ShimState | null = null;
  try {
    st = readState(dir);
  } catch {
    st = null;
  }
  if (st && st.shimPid === pid && st.shimStartTime > 0) return st.shimStartTime === start;
  // no state yet: fall back to the process name
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'shoal-shim';
  } catch {
    return false;
  }
}

/**
 * Stops the container: SIGTERM to the shim, which sends the stop signal and SIGKILL after graceMs.
 * Resolves with the final state. If the shim is gone, the container died with it (PDEATHSIG).
 */
export async function stopContainer(dir: string, graceMs: number, timeoutMs = graceMs + 10_000): Promise<ShimState> {
  let st = readState(dir);
  if (st && (st.status === 'exited' || st.status === 'failed')) return st;
  const pid = readShimPid(dir);
  if (pid === null || !isAlive(dir)) {
    if (st) return st;
    throw new Error(`no shim running for ${dir}`);
  }
  writeFileSync(join(dir, 'stop-grace-ms.tmp'), String(Math.max(0, Math.floor(graceMs))));
  // rename for atomicity: the shim reads this file when it receives SIGTERM
  renameSync(join(dir, 'stop-grace-ms.tmp'), join(dir, 'stop-grace-ms'));
  process.kill(pid, 'SIGTERM');
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    st = readState(dir);
    if (st && (st.status === 'exited' || st.status === 'failed')) return st;
    if (!isAlive(dir)) {
      st = readState(dir);
      if (st && (st.status === 'exited' || st.status === 'failed')) return st;
      throw new Error(`shoal-shim ${pid} died without recording the container's exit`);
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs}ms waiting for the container in ${dir} to stop`);
    await sleep(20);
  }
}

/** Waits until the container has exited (e.g. a command that terminates on its own). */
export async function waitExited(dir: string, timeoutMs = 10_000): Promise<ShimState> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const st = readState(dir);
    if (st && (st.status === 'exited' || st.status === 'failed')) return st;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs}ms waiting for the container in ${dir} to exit`);
    await sleep(15);
  }
}

/** Last resort cleanup: SIGKILL the shim (its container follows via PDEATHSIG). Safe to call twice. */
export function killShim(dir: string): void {
  const pid = readShimPid(dir);
  if (pid !== null && isAlive(dir)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
}

export interface ExecOptions {
  /** added to (or replacing) the container's environment (that of its PID 1) */
  env?: Record<string, string>;
  /** default: PID 1's working directory */
  workdir?: string;
  /** numeric; default: PID 1's user */
  user?: { uid: number; gid: number };
  /** the command (and everything it started) is killed after this long */
  timeoutMs?: number;
  /** written to the command's stdin, which is then closed (default: stdin closed at once) */
  input?: string | Buffer;
  /** output kept per stream (stdout, stderr); what comes after is read and dropped. Default 4 MiB */
  maxOutputBytes?: number;
  shimPath?: string;
  /** spawn the shim from the daemon's one sealed copy (default true; see sealedShimFd) */
  sealOnce?: boolean;
}

export interface ExecResult {
  /** the command's exit status, 128+signal when killed; 125 when the exec itself failed (e.g. the
   * container is not running), 126 when the command cannot be invoked, 127 when it is not found */
  exitCode: number;
  stdout: Buffer;
  stderr: Buffer;
  /** killed because timeoutMs passed */
  timedOut: boolean;
  /** some output was dropped: a stream went past maxOutputBytes */
  truncated?: boolean;
}

/** Output an exec keeps per stream by default: a runaway `cat` cannot fill the agent's memory. */
export const EXEC_MAX_OUTPUT_BYTES = 4 * 1024 * 1024;

/** How long after a timeout's kill request the exec shim itself is SIGKILLed if it has not exited. */
const EXEC_KILL_GRACE_MS = 2000;

/**
 * Runs a command inside the running container of stateDir (`shoal-shim exec`: its namespaces, cgroups,
 * capabilities and seccomp filter) and collects its output. Failures of the exec itself come back as
 * exit status 125–127 with the reason on stderr, like `docker exec`; only a shim that cannot be
 * spawned rejects.
 */
export function execInContainer(stateDir: string, args: string[], opts: ExecOptions = {}): Promise<ExecResult> {
  const shim = opts.shimPath ?? DEFAULT_SHIM_PATH;
  if (args.length === 0) return Promise.reject(new Error('exec: no command'));
  const a = ['exec', '--state-dir', stateDir];
  for (const [k, v] of Object.entries(opts.env ?? {})) {
    if (!k || k.includes('=')) return Promise.reject(new Error(`invalid env name ${JSON.stringify(k)}`));
    a.push('--env', `${k}=${v}`);
  }
  if (opts.workdir !== undefined) a.push('--workdir', opts.workdir);
  if (opts.user) a.push('--user', `${opts.user.uid}:${opts.user.gid}`);
  a.push('--', ...args);
  return new Promise((res, rej) => {
    const child = spawnShim(shim, a, { stdio: ['pipe', 'pipe', 'pipe'] }, opts.sealOnce);
    const limit = opts.maxOutputBytes ?? EXEC_MAX_OUTPUT_BYTES;
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    const kept = { out: 0, err: 0 };
    let truncated = false;
    // Keeps at most `limit` bytes of a stream; the rest is drained (the command must not block on a full pipe).
    const keep = (list: Buffer[], which: 'out' | 'err', d: Buffer) => {
      const room = limit - kept[which];
      if (room <= 0) return void (truncated = true);
      const piece = d.length > room ? d.subarray(0, room) : d;
      if (piece.length < d.length) truncated = true;
      list.push(piece);
      kept[which] += piece.length;
    };
    let timedOut = false;
    let killTimer: NodeJS.Timeout | undefined;
    const timer =
      opts.timeoutMs === undefined
        ? undefined
        : setTimeout(() => {
            timedOut = true;
            // SIGTERM asks the exec shim to SIGKILL the command's whole process group
            child.kill('SIGTERM');
            killTimer = setTimeout(() => child.kill('SIGKILL'), EXEC_KILL_GRACE_MS);
          }, opts.timeoutMs);
    child.stdout!.on('data', (d: Buffer) => keep(out, 'out', d));
    child.stderr!.on('data', (d: Buffer) => keep(err, 'err', d));
    child.stdin!.on('error', () => {}); // the command may exit without reading its input
    child.stdin!.end(opts.input ?? '');
    child.on('error', (e) => {
      clearTimeout(timer);
      clearTimeout(killTimer);
      rej(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      clearTimeout(killTimer);
      const exitCode = code ?? 128 + (signal ? osConstants.signals[signal] : 0);
      res({ exitCode, stdout: Buffer.concat(out), stderr: Buffer.concat(err), timedOut, ...(truncated ? { truncated } : {}) });
    });
  });
}

export const BUSYBOX_APPLETS = [
  'sh',
  'ls',
  'cat',
  'echo',
  'sleep',
  'id',
  'hostname',
  'ps',
  'mount',
  'true',
  'false',
  'env',
  'pwd',
  'grep',
  'head',
  'tail',
  'touch',
  'mkdir',
  'rm',
  'kill',
  'ip',
  'seq',
  'wc',
  'tr',
  'printf',
  'unshare',
  'dd',
  'test',
];

/** A minimal rootfs for tests: a static busybox with applet symlinks, /etc/passwd and /etc/group. */
export function makeBusyboxRootfs(dir: string, busybox = '/bin/busybox'): void {
  rmSync(dir, { recursive: true, force: true });
  for (const d of ['bin', 'etc', 'proc', 'sys', 'dev', 'tmp', 'root']) mkdirSync(join(dir, d), { recursive: true });
  chmodSync(join(dir, 'tmp'), 0o1777);
  copyFileSync(busybox, join(dir, 'bin', 'busybox'));
  chmodSync(join(dir, 'bin', 'busybox'), 0o755);
  for (const a of BUSYBOX_APPLETS) symlinkSync('busybox', join(dir, 'bin', a));
  writeFileSync(join(dir, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n');
  writeFileSync(join(dir, 'etc', 'group'), 'root:x:0:\nnogroup:x:65534:\n');
}
