// Per-task cgroups for Shoal's container engine. Works on cgroup v1 (one hierarchy per controller, as on
// hybrid hosts) and cgroup v2 (one unified hierarchy); which one is in use is detected from
// /proc/self/mountinfo, never assumed. Layout, the v1/v2 file mapping and the failure cases are described
// in docs/design/cgroups.md.
import { readFileSync, type Dirent } from 'node:fs';
import { mkdir, readFile, readdir, rmdir, writeFile, access } from 'node:fs/promises';
import { join } from 'node:path';

export type CgroupVersion = 1 | 2;

export interface CgroupInfo {
  /** 1 when the core controllers (cpu, memory, pids, ...) are mounted as v1 hierarchies (also hybrid hosts), else 2. */
  version: CgroupVersion;
  /** Controller name → mount point of the hierarchy that carries it. */
  mounts: Record<string, string>;
  /** Mount point of the cgroup2 filesystem, if one is mounted (on hybrid hosts it may carry no controllers). */
  unified?: string;
}

export interface CgroupLimits {
  memoryBytes?: number;
  memoryReservationBytes?: number;
  /** CPU limit in 1e-9 CPUs (Docker's NanoCPUs): 2e8 = 0.2 CPU. */
  nanoCpus?: number;
  /** Relative weight, v1 semantics (2..262144, default 1024). Converted to cpu.weight on v2. */
  cpuShares?: number;
  pids?: number;
  /** cpuset list, e.g. "0-1,3". */
  cpuset?: string;
}

export interface CgroupUsage {
  cpuNanos: number;
  memoryBytes: number;
  memoryMaxBytes?: number;
  pids: number;
  oomKills?: number;
}

export interface TaskCgroupOptions {
  /** Relative path under each hierarchy, e.g. "shoal" or "shoal-<labhost>". Default "shoal". */
  parent?: string;
  id: string;
  limits?: CgroupLimits;
  /** Detection result to use (default: detectCgroups()). */
  cgroups?: CgroupInfo;
}

/** Error for a cgroup file that could not be written or a cgroup that could not be set up. */
export class CgroupError extends Error {
  readonly file: string;
  readonly value: string | undefined;
  readonly code: string | undefined;
  constructor(message: string, file: string, value?: string, code?: string) {
    super(message);
    this.name = 'CgroupError';
    this.file = file;
    this.value = value;
    this.code = code;
  }
}

/** v1 controllers a task joins. Others (blkio, freezer, ...) are left alone for now. `devices` confines
 * which device nodes a task may create and open (see DEFAULT_DEVICE_RULES); v2 has no such controller,
 * the shim attaches a BPF_CGROUP_DEVICE program there instead. */
export const V1_TASK_CONTROLLERS = ['cpu', 'cpuacct', 'cpuset', 'memory', 'pids', 'devices'] as const;
/** v2 controllers enabled for task cgroups when the hierarchy offers them. */
export const V2_TASK_CONTROLLERS = ['cpu', 'cpuset', 'memory', 'pids', 'io'] as const;

const KNOWN_V1 = new Set([
  'cpu',
  'cpuacct',
  'cpuset',
  'memory',
  'pids',
  'blkio',
  'devices',
  'freezer',
  'net_cls',
  'net_prio',
  'perf_event',
  'hugetlb',
  'rdma',
  'misc',
]);
const CORE = ['cpu', 'cpuacct', 'cpuset', 'memory', 'pids'];

export const DEFAULT_CGROUP_PARENT = 'shoal';

/** One device-cgroup rule: type (c char, b block, a all), major/minor ('*' any), access (r, w, m = mknod). */
export interface DeviceRule {
  type: 'a' | 'c' | 'b';
  major: number | '*';
  minor: number | '*';
  access: string;
}

/**
 * What a task may do with device nodes: nothing, except the entries below (the same set Docker allows,
 * each chosen for a reason). The shim creates its /dev from the char entries, so they must stay allowed.
 * The list is also compiled into the shim's v2 BPF program (keep both in step: shoal-shim.c
 * device_rules).
 */
export const DEFAULT_DEVICE_RULES: readonly DeviceRule[] = [
  // creating nodes is harmless when opening them is refused: images whose scripts mknod keep working
  { type: 'c', major: '*', minor: '*', access: 'm' },
  { type: 'b', major: '*', minor: '*', access: 'm' },
  // the pseudo devices every program expects: null, zero, full, random, urandom
  { type: 'c', major: 1, minor: 3, access: 'rwm' },
  { type: 'c', major: 1, minor: 5, access: 'rwm' },
  { type: 'c', major: 1, minor: 7, access: 'rwm' },
  { type: 'c', major: 1, minor: 8, access: 'rwm' },
  { type: 'c', major: 1, minor: 9, access: 'rwm' },
  // /dev/tty (the controlling terminal, whatever it is) and the container's own devpts instance
  { type: 'c', major: 5, minor: 0, access: 'rwm' },
  { type: 'c', major: 5, minor: 2, access: 'rwm' },
  { type: 'c', major: 136, minor: '*', access: 'rwm' },
  // /dev/net/tun: useful only with CAP_NET_ADMIN (a task that was given it, e.g. a VPN), inert without
  { type: 'c', major: 10, minor: 200, access: 'rwm' },
];

/** "c 1:3 rwm" as devices.allow / devices.deny take it. */
export function deviceRuleLine(r: DeviceRule): string {
  return r.type === 'a' ? 'a' : `${r.type} ${r.major}:${r.minor} ${r.access}`;
}
const CPU_PERIOD_US = 100_000;
const NAME_RE = /^[A-Za-z0-9_.@:-]+$/;

/** The parent to use on a node: "shoal", or "shoal-<labhost>" for a lab host so lab hosts don't collide. */
export function cgroupParentFor(labHost?: string): string {
  if (labHost === undefined || labHost === '') return DEFAULT_CGROUP_PARENT;
  if (!NAME_RE.test(labHost)) throw new Error(`invalid lab host label for cgroup parent: ${JSON.stringify(labHost)}`);
  return `${DEFAULT_CGROUP_PARENT}-${labHost}`;
}

function unescapeMountField(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/**
 * Parse /proc/self/mountinfo text. `readControllers(mountPoint)` returns the controllers a cgroup2 mount
 * offers (its cgroup.controllers). Controllers mounted as v1 win over the same controller on cgroup2
 * (they cannot be active on both).
 */
export function parseMountinfo(text: string, readControllers: (mountPoint: string) => string[]): CgroupInfo {
  const mounts: Record<string, string> = {};
  const v2Mounts: string[] = [];
  for (const line of text.split('\n')) {
    const f = line.trim().split(' ');
    const sep = f.indexOf('-');
    if (sep < 6 || f.length < sep + 4) continue;
    const fstype = f[sep + 1];
    const mountPoint = unescapeMountField(f[4] ?? '');
    const superOpts = f[sep + 3] ?? '';
    if (fstype === 'cgroup') {
      for (const opt of superOpts.split(',')) if (KNOWN_V1.has(opt) && mounts[opt] === undefined) mounts[opt] = mountPoint;
    } else if (fstype === 'cgroup2') {
      v2Mounts.push(mountPoint);
    }
  }
  const unified = v2Mounts[0];
  if (unified !== undefined) {
    for (const c of readControllers(unified)) if (mounts[c] === undefined) mounts[c] = unified;
  }
  const v1Core = CORE.some((c) => mounts[c] !== undefined && mounts[c] !== unified);
  if (!v1Core && unified === undefined) throw new Error('no cgroup filesystem (v1 or v2) is mounted; see /proc/self/mountinfo');
  const info: CgroupInfo = { version: v1Core ? 1 : 2, mounts };
  if (unified !== undefined) info.unified = unified;
  return info;
}

export function detectCgroups(): CgroupInfo {
  const text = readFileSync('/proc/self/mountinfo', 'utf8');
  return parseMountinfo(text, (mp) => {
    try {
      return readFileSync(join(mp, 'cgroup.controllers'), 'utf8').trim().split(/\s+/).filter(Boolean);
    } catch {
      return [];
    }
  });
}

// ---------------------------------------------------------------------------------------------- file I/O

function errCode(e: unknown): string | undefined {
  return (e as NodeJS.ErrnoException | undefined)?.code;
}

const WRITE_HINTS: Record<string, string> = {
  EINVAL: 'value rejected by the kernel (out of range or malformed)',
  EBUSY: 'resource busy (e.g. memory limit below current usage, or cpuset in use)',
  ENOENT: 'file missing: controller not available or not enabled for this cgroup',
  EACCES: 'permission denied (not root, or cgroup not delegated)',
  EPERM: 'operation not permitted (not root, or cgroup not delegated)',
  ENOSPC: 'no space: v1 cpuset without cpus/mems, or controller limit reached',
  ESRCH: 'no such process',
  EOPNOTSUPP: 'operation not supported (v2: controllers must be enabled in the parent and the parent must hold no processes)',
};

async function writeCg(file: string, value: string | number): Promise<void> {
  const v = String(value);
  try {
    await writeFile(file, v);
  } catch (e) {
    const code = errCode(e);
    const hint = (code && WRITE_HINTS[code]) ?? (e as Error).message;
    throw new CgroupError(`cgroup write failed: ${JSON.stringify(v)} > ${file}: ${code ?? 'error'} (${hint})`, file, v, code);
  }
}

async function readOpt(file: string): Promise<string | undefined> {
  try {
    return await readFile(file, 'utf8');
  } catch (e) {
    if (errCode(e) === 'ENOENT') return undefined;
    throw e;
  }
}

function readSyncOpt(file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8');
  } catch (e) {
    if (errCode(e) === 'ENOENT') return undefined;
    throw e;
  }
}

function readNumSync(file: string): number | undefined {
  const s = readSyncOpt(file);
  if (s === undefined) return undefined;
  const n = Number(s.trim());
  return Number.isFinite(n) ? n : undefined;
}

async function readNum(file: string): Promise<number | undefined> {
  const s = await readOpt(file);
  if (s === undefined) return undefined;
  const n = Number(s.trim());
  return Number.isFinite(n) ? n : undefined;
}

/** "key value" lines (cpu.stat, memory.events, memory.oom_control, pids.events) */
async function readKeyed(file: string): Promise<Map<string, number> | undefined> {
  const s = await readOpt(file);
  if (s === undefined) return undefined;
  const m = new Map<string, number>();
  for (const line of s.split('\n')) {
    const [k, v] = line.trim().split(/\s+/);
    if (k && v !== undefined && /^\d+$/.test(v)) m.set(k, Number(v));
  }
  return m;
}

async function readPids(dir: string): Promise<number[]> {
  const s = await readOpt(join(dir, 'cgroup.procs'));
  if (s === undefined) return [];
  return s
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map(Number);
}

async function exists(p: string): Promise<boolean> {
  try {
    await access(p);
    return true;
  } catch {
    return false;
  }
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function validateRelPath(what: string, p: string): string[] {
  const parts = p.split('/').filter((s) => s !== '');
  if (p.startsWith('/') || parts.length === 0 || parts.some((s) => s === '.' || s === '..' || !NAME_RE.test(s))) {
    throw new Error(`invalid cgroup ${what} ${JSON.stringify(p)}: relative path of [A-Za-z0-9_.@:-] components`);
  }
  return parts;
}

function killPid(pid: number): void {
  if (pid === process.pid) throw new Error(`refusing to SIGKILL own process ${pid} found in a task cgroup`);
  try {
    process.kill(pid, 'SIGKILL');
  } catch (e) {
    if (errCode(e) !== 'ESRCH') throw e;
  }
}

/** Kill everything in the given dirs (and, on v2, their subtrees via cgroup.kill) until they are empty. */
async function killAndWait(dirs: string[], v2: boolean, deadline: number): Promise<void> {
  if (v2) {
    for (const d of dirs) {
      const f = join(d, 'cgroup.kill');
      if (await exists(f)) await writeCg(f, 1).catch(() => {});
    }
  }
  for (;;) {
    const pids = new Set<number>();
    for (const d of dirs) for (const p of await readPids(d)) pids.add(p);
    if (pids.size === 0) return;
    if (Date.now() > deadline) {
      throw new Error(`cgroup not empty after SIGKILL: pids ${[...pids].join(',')} still in ${dirs.join(', ')}`);
    }
    for (const p of pids) killPid(p);
    await sleep(20);
  }
}

/** rmdir, retrying EBUSY (exited but unreaped tasks keep a cgroup populated briefly). ENOENT is success. */
async function rmdirRetry(dir: string, deadline: number): Promise<void> {
  for (;;) {
    try {
      await rmdir(dir);
      return;
    } catch (e) {
      const code = errCode(e);
      if (code === 'ENOENT') return;
      if (code !== 'EBUSY' || Date.now() > deadline) {
        throw new CgroupError(`cannot remove cgroup ${dir}: ${code ?? (e as Error).message}`, dir, undefined, code);
      }
      await sleep(20);
    }
  }
}

// ---------------------------------------------------------------------------------------------- TaskCgroup

interface Hierarchy {
  mount: string;
  /** Controllers handled through this hierarchy (v1: the co-mounted ones we use; v2: the enabled ones). */
  controllers: string[];
  dir: string;
}

/** Hierarchies used for task cgroups: one per distinct v1 mount of the task controllers, or the v2 mount. */
function hierarchiesOf(info: CgroupInfo): { mount: string; controllers: string[] }[] {
  if (info.version === 2) {
    const mount = info.unified ?? Object.values(info.mounts)[0];
    if (mount === undefined) throw new Error('cgroup v2 detected but no unified mount found');
    return [{ mount, controllers: V2_TASK_CONTROLLERS.filter((c) => info.mounts[c] === mount) }];
  }
  const byMount = new Map<string, string[]>();
  for (const c of V1_TASK_CONTROLLERS) {
    const m = info.mounts[c];
    if (m === undefined || m === info.unified) continue;
    const list = byMount.get(m) ?? [];
    list.push(c);
    byMount.set(m, list);
  }
  return [...byMount].map(([mount, controllers]) => ({ mount, controllers }));
}

function cpuSharesToWeight(shares: number): number {
  // Linear map of v1's [2, 262144] onto v2's [1, 10000].
  return Math.max(1, Math.min(10000, Math.round(1 + ((shares - 2) * 9999) / 262142)));
}

export class TaskCgroup {
  readonly version: CgroupVersion;
  readonly parent: string;
  readonly id: string;
  private readonly hier: Hierarchy[];
  /** Parent dirs this instance created, in creation order (removed, if empty, by destroy()). */
  private readonly createdParents: string[] = [];

  private constructor(version: CgroupVersion, parent: string, id: string, hier: Hierarchy[]) {
    this.version = version;
    this.parent = parent;
    this.id = id;
    this.hier = hier;
  }

  static async create(opts: TaskCgroupOptions): Promise<TaskCgroup> {
    const limits = opts.limits ?? {};
    validateLimits(limits);
    const cg = TaskCgroup.open(opts);
    const parentParts = validateRelPath('parent', cg.parent);
    const made: string[] = [];
    try {
      for (const h of cg.hier) await cg.makeDirs(h, parentParts, made);
      await cg.applyLimits(limits);
    } catch (e) {
      await cg.removeDirs(made, Date.now() + 2000).catch(() => {});
      throw e;
    }
    return cg;
  }

  /**
   * The task cgroup of `opts.parent`/`opts.id` without creating or changing anything: for a task whose
   * cgroups a previous agent created (re-adoption), to read its usage and destroy it later.
   */
  static open(opts: Omit<TaskCgroupOptions, 'limits'>): TaskCgroup {
    const parent = opts.parent ?? DEFAULT_CGROUP_PARENT;
    const parentParts = validateRelPath('parent', parent);
    validateRelPath('id', opts.id);
    if (opts.id.includes('/')) throw new Error(`invalid cgroup id ${JSON.stringify(opts.id)}: must be one path component`);
    const info = opts.cgroups ?? detectCgroups();
    const hs = hierarchiesOf(info);
    if (hs.length === 0) throw new Error('no usable cgroup hierarchy for task controllers');
    return new TaskCgroup(
      info.version,
      parent,
      opts.id,
      hs.map((h) => ({ ...h, dir: join(h.mount, ...parentParts, opts.id) })),
    );
  }

  private async makeDirs(h: Hierarchy, parentParts: string[], made: string[]): Promise<void> {
    let cur = h.mount;
    const levels = [...parentParts, this.id];
    for (let i = 0; i < levels.length; i++) {
      const isTask = i === levels.length - 1;
      if (this.version === 2) await enableSubtree(cur, h.controllers);
      const next = join(cur, levels[i]!);
      let created = false;
      for (let attempt = 0; ; attempt++) {
        try {
          await mkdir(next);
          created = true;
          break;
        } catch (e) {
          const code = errCode(e);
          if (code === 'EEXIST') break;
          // A concurrent destroy() may have removed a shared parent between our steps: retry a few times.
          if (code === 'ENOENT' && attempt < 5) {
            await mkdir(cur, { recursive: true }).catch(() => {});
            continue;
          }
          throw new CgroupError(`cannot create cgroup ${next}: ${code ?? (e as Error).message}`, next, undefined, code);
        }
      }
      if (created) {
        made.push(next);
        if (!isTask) this.createdParents.push(next);
      } else if (isTask && (await readPids(next)).length > 0) {
        throw new CgroupError(`cgroup ${next} already exists and holds processes`, next, undefined, 'EEXIST');
      }
      // v1 cpuset: a new cgroup starts with empty cpus/mems and accepts no tasks until they are set.
      if (this.version === 1 && h.controllers.includes('cpuset')) await inheritCpuset(cur, next);
      cur = next;
    }
  }

  private dirFor(controller: string): string | undefined {
    return this.hier.find((h) => h.controllers.includes(controller))?.dir;
  }

  private need(controller: string, what: string): string {
    const d = this.dirFor(controller);
    if (d === undefined) {
      throw new CgroupError(`cannot apply ${what}: cgroup controller "${controller}" is not available (v${this.version})`, controller);
    }
    return d;
  }

  private async applyLimits(l: CgroupLimits): Promise<void> {
    if (this.version === 1) {
      if (l.cpuset !== undefined) await writeCg(join(this.need('cpuset', 'cpuset'), 'cpuset.cpus'), l.cpuset);
      if (l.memoryBytes !== undefined) await writeCg(join(this.need('memory', 'memory limit'), 'memory.limit_in_bytes'), l.memoryBytes);
      if (l.memoryReservationBytes !== undefined) {
        await writeCg(join(this.need('memory', 'memory reservation'), 'memory.soft_limit_in_bytes'), l.memoryReservationBytes);
      }
      if (l.nanoCpus !== undefined) {
        const d = this.need('cpu', 'cpu limit');
        await writeCg(join(d, 'cpu.cfs_period_us'), CPU_PERIOD_US);
        await writeCg(join(d, 'cpu.cfs_quota_us'), quotaUs(l.nanoCpus));
      }
      if (l.cpuShares !== undefined) await writeCg(join(this.need('cpu', 'cpu shares'), 'cpu.shares'), l.cpuShares);
      if (l.pids !== undefined) await writeCg(join(this.need('pids', 'pids limit'), 'pids.max'), l.pids);
      await this.applyDeviceRules();
    } else {
      if (l.cpuset !== undefined) await writeCg(join(this.need('cpuset', 'cpuset'), 'cpuset.cpus'), l.cpuset);
      if (l.memoryBytes !== undefined) await writeCg(join(this.need('memory', 'memory limit'), 'memory.max'), l.memoryBytes);
      if (l.memoryReservationBytes !== undefined) {
        await writeCg(join(this.need('memory', 'memory reservation'), 'memory.low'), l.memoryReservationBytes);
      }
      if (l.nanoCpus !== undefined) {
        await writeCg(join(this.need('cpu', 'cpu limit'), 'cpu.max'), `${quotaUs(l.nanoCpus)} ${CPU_PERIOD_US}`);
      }
      if (l.cpuShares !== undefined) {
        await writeCg(join(this.need('cpu', 'cpu shares'), 'cpu.weight'), cpuSharesToWeight(l.cpuShares));
      }
      if (l.pids !== undefined) await writeCg(join(this.need('pids', 'pids limit'), 'pids.max'), l.pids);
    }
  }

  /**
   * v1: deny every device, then allow DEFAULT_DEVICE_RULES (a fresh child inherits its parent's list,
   * which is "a *:* rwm" under the root). Without a devices hierarchy the task would run unconfined:
   * refuse rather than start it.
   */
  private async applyDeviceRules(): Promise<void> {
    const d = this.need('devices', 'the device allowlist');
    await writeCg(join(d, 'devices.deny'), 'a');
    for (const r of DEFAULT_DEVICE_RULES) await writeCg(join(d, 'devices.allow'), deviceRuleLine(r));
  }

  /** v2: the directory the shim attaches its device BPF program to (v1 uses the devices controller). */
  deviceBpfDir(): string | undefined {
    return this.version === 2 ? this.hier[0]?.dir : undefined;
  }

  /** The cgroup directories a task process must join: one per v1 hierarchy, or the single v2 dir. */
  paths(): string[] {
    return this.hier.map((h) => h.dir);
  }

  procsFiles(): string[] {
    return this.hier.map((h) => join(h.dir, 'cgroup.procs'));
  }

  async addProcess(pid: number): Promise<void> {
    if (!Number.isInteger(pid) || pid <= 0) throw new Error(`invalid pid ${pid}`);
    for (const f of this.procsFiles()) await writeCg(f, pid);
  }

  async pids(): Promise<number[]> {
    const all = new Set<number>();
    for (const h of this.hier) for (const p of await readPids(h.dir)) all.add(p);
    return [...all].sort((a, b) => a - b);
  }

  /**
   * CPU time used so far and memory in use, read synchronously: two small files, for periodic stats over
   * every task of a node. v1: cpuacct.usage, memory.usage_in_bytes; v2: cpu.stat usage_usec,
   * memory.current. Missing files (cgroup gone, controller absent) read as 0.
   */
  cpuMemory(): { cpuNanos: number; memoryBytes: number } {
    const mem = this.dirFor('memory');
    if (this.version === 1) {
      const acct = this.dirFor('cpuacct');
      return {
        cpuNanos: acct ? (readNumSync(join(acct, 'cpuacct.usage')) ?? 0) : 0,
        memoryBytes: mem ? (readNumSync(join(mem, 'memory.usage_in_bytes')) ?? 0) : 0,
      };
    }
    // cpu.stat's usage_usec exists even without the cpu controller
    const usec = /^usage_usec (\d+)$/m.exec(readSyncOpt(join(this.hier[0]!.dir, 'cpu.stat')) ?? '')?.[1];
    return {
      cpuNanos: usec !== undefined ? Number(usec) * 1000 : 0,
      memoryBytes: mem ? (readNumSync(join(mem, 'memory.current')) ?? 0) : 0,
    };
  }

  async usage(): Promise<CgroupUsage> {
    const u: CgroupUsage = { ...this.cpuMemory(), pids: 0 };
    const mem = this.dirFor('memory');
    const pidsDir = this.dirFor('pids');
    if (this.version === 1) {
      if (mem) {
        const max = await readNum(join(mem, 'memory.max_usage_in_bytes'));
        if (max !== undefined) u.memoryMaxBytes = max;
        const oom = (await readKeyed(join(mem, 'memory.oom_control')))?.get('oom_kill');
        if (oom !== undefined) u.oomKills = oom;
      }
    } else {
      if (mem) {
        const peak = await readNum(join(mem, 'memory.peak'));
        if (peak !== undefined) u.memoryMaxBytes = peak;
        const oom = (await readKeyed(join(mem, 'memory.events')))?.get('oom_kill');
        if (oom !== undefined) u.oomKills = oom;
      }
    }
    if (pidsDir) u.pids = (await readNum(join(pidsDir, 'pids.current'))) ?? 0;
    return u;
  }

  /** True once the kernel OOM killer has killed a process in this cgroup. */
  async oomKilled(): Promise<boolean> {
    return ((await this.usage()).oomKills ?? 0) > 0;
  }

  /**
   * SIGKILL everything left (cgroup.kill on v2 when present, else via cgroup.procs), wait until empty,
   * remove the task dirs (the shared parent stays; see cleanupParent). Idempotent.
   */
  async destroy(opts: { timeoutMs?: number } = {}): Promise<void> {
    const deadline = Date.now() + (opts.timeoutMs ?? 5000);
    const present: string[] = [];
    for (const h of this.hier) if (await exists(h.dir)) present.push(h.dir);
    await killAndWait(present, this.version === 2, deadline);
    await this.removeDirs(present, deadline);
  }

  private async removeDirs(taskDirs: string[], deadline: number): Promise<void> {
    let firstErr: unknown;
    for (const d of taskDirs.filter((d) => !this.createdParents.includes(d))) {
      await rmdirRetry(d, deadline).catch((e: unknown) => (firstErr ??= e));
    }
    // The parent is shared by every task of the node and stays: removing it here raced with a task being
    // created under it at the same moment (a recreated v1 parent has an empty cpuset and refuses
    // processes). cleanupParent() removes it when the node goes away.
    if (firstErr !== undefined) throw firstErr;
  }

  /**
   * Remove everything under `parent` in every hierarchy (leftovers of a crashed agent or `lab down --force`):
   * kill processes, remove child cgroups depth-first, then the parent and its now-empty ancestors.
   * Returns the directories removed.
   */
  static async cleanupParent(parent: string, opts: { cgroups?: CgroupInfo; timeoutMs?: number } = {}): Promise<string[]> {
    const parts = validateRelPath('parent', parent);
    const info = opts.cgroups ?? detectCgroups();
    const deadline = Date.now() + (opts.timeoutMs ?? 10000);
    const mounts = new Set(Object.values(info.mounts));
    if (info.unified !== undefined) mounts.add(info.unified);
    const removed: string[] = [];
    for (const mount of mounts) {
      const v2 = mount === info.unified;
      const root = join(mount, ...parts);
      if (!(await exists(root))) continue;
      await removeTree(root, v2, deadline, removed);
      for (let i = parts.length - 1; i >= 1; i--) {
        const anc = join(mount, ...parts.slice(0, i));
        try {
          await rmdir(anc);
          removed.push(anc);
        } catch {
          break;
        }
      }
    }
    return removed;
  }
}

async function removeTree(dir: string, v2: boolean, deadline: number, removed: string[]): Promise<void> {
  let entries: Dirent[];
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch (e) {
    if (errCode(e) === 'ENOENT') return;
    throw e;
  }
  if (v2) await killAndWait([dir], true, deadline); // cgroup.kill covers the whole subtree
  for (const e of entries) if (e.isDirectory()) await removeTree(join(dir, e.name), v2, deadline, removed);
  await killAndWait([dir], v2, deadline);
  await rmdirRetry(dir, deadline);
  removed.push(dir);
}

function quotaUs(nanoCpus: number): number {
  return Math.max(1000, Math.round((nanoCpus * CPU_PERIOD_US) / 1e9));
}

function validateLimits(l: CgroupLimits): void {
  const posInt = (name: string, v: number | undefined, min = 1) => {
    if (v !== undefined && (!Number.isSafeInteger(v) || v < min)) throw new Error(`invalid cgroup limit ${name}=${v}: integer >= ${min}`);
  };
  posInt('memoryBytes', l.memoryBytes);
  posInt('memoryReservationBytes', l.memoryReservationBytes, 0);
  posInt('nanoCpus', l.nanoCpus);
  posInt('cpuShares', l.cpuShares, 2);
  posInt('pids', l.pids);
  if (l.cpuShares !== undefined && l.cpuShares > 262144) throw new Error(`invalid cgroup limit cpuShares=${l.cpuShares}: at most 262144`);
  if (l.memoryBytes !== undefined && l.memoryReservationBytes !== undefined && l.memoryReservationBytes > l.memoryBytes) {
    throw new Error(`invalid cgroup limits: memoryReservationBytes ${l.memoryReservationBytes} > memoryBytes ${l.memoryBytes}`);
  }
  if (l.cpuset !== undefined && !/^\d+(-\d+)?(,\d+(-\d+)?)*$/.test(l.cpuset)) throw new Error(`invalid cpuset ${JSON.stringify(l.cpuset)}`);
}

/** v2: enable the wanted controllers for dir's children, as far as dir offers them. */
async function enableSubtree(dir: string, controllers: string[]): Promise<void> {
  const avail = new Set(((await readOpt(join(dir, 'cgroup.controllers'))) ?? '').trim().split(/\s+/));
  const enabled = new Set(((await readOpt(join(dir, 'cgroup.subtree_control'))) ?? '').trim().split(/\s+/));
  for (const c of controllers) {
    if (!avail.has(c) || enabled.has(c)) continue;
    await writeCg(join(dir, 'cgroup.subtree_control'), `+${c}`);
  }
}

/** v1 cpuset: copy cpus/mems from the parent when the child's are empty. */
async function inheritCpuset(parentDir: string, dir: string): Promise<void> {
  for (const f of ['cpuset.cpus', 'cpuset.mems']) {
    const mine = ((await readOpt(join(dir, f))) ?? '').trim();
    if (mine !== '') continue;
    const theirs = ((await readOpt(join(parentDir, f))) ?? '').trim();
    if (theirs !== '') await writeCg(join(dir, f), theirs);
  }
}
