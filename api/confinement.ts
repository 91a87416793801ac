// The container options that widen or narrow a task's confinement, as Docker spells them: capability
// names for --cap-add/--cap-drop, namespaced sysctls, ulimit names. Pure rules shared by the managers'
// spec validation (a bad value is refused at `service create`, naming the field) and the worker (which
// turns them into shoal-shim arguments). See docs/design/security.md, "Container confinement".

/** Linux capability numbers by name (without CAP_), as in linux/capability.h. */
export const CAPABILITIES: Readonly<Record<string, number>> = {
  CHOWN: 0,
  DAC_OVERRIDE: 1,
  DAC_READ_SEARCH: 2,
  FOWNER: 3,
  FSETID: 4,
  KILL: 5,
  SETGID: 6,
  SETUID: 7,
  SETPCAP: 8,
  LINUX_IMMUTABLE: 9,
  NET_BIND_SERVICE: 10,
  NET_BROADCAST: 11,
  NET_ADMIN: 12,
  NET_RAW: 13,
  IPC_LOCK: 14,
  IPC_OWNER: 15,
  SYS_MODULE: 16,
  SYS_RAWIO: 17,
  SYS_CHROOT: 18,
  SYS_PTRACE: 19,
  SYS_PACCT: 20,
  SYS_ADMIN: 21,
  SYS_BOOT: 22,
  SYS_NICE: 23,
  SYS_RESOURCE: 24,
  SYS_TIME: 25,
  SYS_TTY_CONFIG: 26,
  MKNOD: 27,
  LEASE: 28,
  AUDIT_WRITE: 29,
  AUDIT_CONTROL: 30,
  SETFCAP: 31,
  MAC_OVERRIDE: 32,
  MAC_ADMIN: 33,
  SYSLOG: 34,
  WAKE_ALARM: 35,
  BLOCK_SUSPEND: 36,
  AUDIT_READ: 37,
  PERFMON: 38,
  BPF: 39,
  CHECKPOINT_RESTORE: 40,
};

/** Docker's default set for a container's root user (the shim's default_caps). */
export const DEFAULT_CAPABILITIES = [
  'CHOWN',
  'DAC_OVERRIDE',
  'FSETID',
  'FOWNER',
  'MKNOD',
  'NET_RAW',
  'SETGID',
  'SETUID',
  'SETFCAP',
  'SETPCAP',
  'NET_BIND_SERVICE',
  'SYS_CHROOT',
  'KILL',
  'AUDIT_WRITE',
] as const;

/** A value that is not a valid confinement option; `field` names the option. */
export class ConfinementError extends Error {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(message);
    this.name = 'ConfinementError';
  }
}

/** `net_admin`, `NET_ADMIN`, `CAP_NET_ADMIN` → `CAP_NET_ADMIN`; `all` → `ALL` (Docker's spellings). */
export function normalizeCapability(name: string, field: string): string {
  const up = name.trim().toUpperCase();
  if (up === 'ALL') return 'ALL';
  const bare = up.startsWith('CAP_') ? up.slice(4) : up;
  if (CAPABILITIES[bare] === undefined)
    throw new ConfinementError(field, `${field}: unknown capability ${JSON.stringify(name)} (e.g. NET_ADMIN, CAP_SYS_TIME or ALL)`);
  return `CAP_${bare}`;
}

/**
 * The capability numbers a container gets: Docker's rules. `drop` holding ALL starts from nothing,
 * `add` holding ALL starts from everything; otherwise the default set; then adds, then drops (an
 * explicit add survives a drop of ALL).
 */
export function effectiveCapabilities(add: readonly string[] = [], drop: readonly string[] = []): number[] {
  const a = add.map((c) => normalizeCapability(c, 'capabilityAdd'));
  const d = drop.map((c) => normalizeCapability(c, 'capabilityDrop'));
  const set = new Set<string>();
  if (a.includes('ALL')) for (const n of Object.keys(CAPABILITIES)) set.add(n);
  else if (!d.includes('ALL')) for (const n of DEFAULT_CAPABILITIES) set.add(n);
  if (!d.includes('ALL')) for (const c of d) set.delete(c.slice(4));
  for (const c of a) if (c !== 'ALL') set.add(c.slice(4));
  return [...set].map((n) => CAPABILITIES[n]!).sort((x, y) => x - y);
}

/** Kernel settings that belong to a namespace the container has its own copy of (Docker's list). */
const SYSCTL_EXACT = new Set([
  'kernel.msgmax',
  'kernel.msgmnb',
  'kernel.msgmni',
  'kernel.sem',
  'kernel.shmall',
  'kernel.shmmax',
  'kernel.shmmni',
  'kernel.shm_rmid_forced',
]);
const SYSCTL_PREFIXES = ['fs.mqueue.', 'net.'];

/** Refuses a sysctl that would change the host (not namespaced) or is malformed. */
export function checkSysctl(key: string, value: string, field: string): void {
  if (!/^[a-z0-9_-]+(\.[A-Za-z0-9_-]+)+$/.test(key))
    throw new ConfinementError(field, `${field}: ${JSON.stringify(key)} is not a sysctl name (e.g. net.ipv4.ip_forward)`);
  if (!SYSCTL_EXACT.has(key) && !SYSCTL_PREFIXES.some((p) => key.startsWith(p))) {
    throw new ConfinementError(
      field,
      `${field}: sysctl ${key} is not namespaced: it would change the host (allowed: net.*, fs.mqueue.*, kernel.shm*, kernel.msg*, kernel.sem)`,
    );
  }
  if (/[\n\r\0]/.test(value) || value.length > 256)
    throw new ConfinementError(field, `${field}: sysctl ${key}: the value must be one line of at most 256 characters`);
}

/** True for the sysctls that live in the network namespace (refused with the host network). */
export const isNetSysctl = (key: string) => key.startsWith('net.');

/** Resource limit names Docker's --ulimit takes. */
export const ULIMIT_NAMES = [
  'core',
  'cpu',
  'data',
  'fsize',
  'locks',
  'memlock',
  'msgqueue',
  'nice',
  'nofile',
  'nproc',
  'rss',
  'rtprio',
  'rttime',
  'sigpending',
  'stack',
  'as',
] as const;

export interface Ulimit {
  name: string;
  /** -1: unlimited */
  soft: number;
  hard: number;
}

export function checkUlimit(u: Ulimit, field: string): void {
  if (!(ULIMIT_NAMES as readonly string[]).includes(u.name))
    throw new ConfinementError(field, `${field}: unknown ulimit ${JSON.stringify(u.name)} (one of ${ULIMIT_NAMES.join(', ')})`);
  for (const v of [u.soft, u.hard])
    if (!Number.isSafeInteger(v) || v < -1) throw new ConfinementError(field, `${field}: ${u.name} limits must be integers >= 0, or -1 for unlimited`);
  const inf = (n: number) => (n === -1 ? Infinity : n);
  if (inf(u.soft) > inf(u.hard)) throw new ConfinementError(field, `${field}: ${u.name} soft limit ${u.soft} is above its hard limit ${u.hard}`);
}

/** `nofile=1024:2048` or `nofile=1024` (Docker's --ulimit syntax). */
export function parseUlimit(s: string, field: string): Ulimit {
  const m = /^([a-z]+)=(-?\d+)(?::(-?\d+))?$/.exec(s.trim());
  if (!m) throw new ConfinementError(field, `${field}: expected NAME=SOFT[:HARD], e.g. nofile=1024:2048 (got ${JSON.stringify(s)})`);
  const u: Ulimit = { name: m[1]!, soft: Number(m[2]), hard: Number(m[3] ?? m[2]) };
  checkUlimit(u, field);
  return u;
}
