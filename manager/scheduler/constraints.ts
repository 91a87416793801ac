// Placement constraints: `key==value` / `key!=value`, ANDed. Keys follow `docker service create
// --constraint`: node.id, node.hostname, node.role, node.platform.os, node.platform.arch,
// node.labels.<k>, node.ip (an address or a CIDR). Parsing happens when a service is created or
// updated (so a bad constraint is refused before anything is stored); matching is a pure function.

export type ConstraintKey = 'node.id' | 'node.hostname' | 'node.role' | 'node.platform.os' | 'node.platform.arch' | 'node.ip' | `node.labels.${string}`;

export interface Constraint {
  /** The text as written, for messages. */
  text: string;
  key: ConstraintKey;
  op: '==' | '!=';
  value: string;
  /** For node.ip with a CIDR: network and mask as 32-bit numbers. */
  cidr?: { net: number; mask: number };
}

/** The node facts constraints look at. */
export interface ConstraintNode {
  id: string;
  hostname: string;
  role: string;
  os: string;
  arch: string;
  ip: string;
  labels: Readonly<Record<string, string>>;
}

export class ConstraintError extends Error {
  readonly code = 'EINVALIDCONSTRAINT';
  /** How the control API answers it (manager/api/errors.ts, which reads this instead of importing the class). */
  readonly wire = 'invalid';
  constructor(message: string) {
    super(message);
    this.name = 'ConstraintError';
  }
}

const FIXED_KEYS = new Set(['node.id', 'node.hostname', 'node.role', 'node.platform.os', 'node.platform.arch', 'node.ip']);

export function parseConstraint(text: string): Constraint {
  const t = text.trim();
  const m = /^([^=!\s]+)\s*(==|!=)\s*(.+)$/.exec(t);
  if (!m) throw new ConstraintError(`invalid constraint ${JSON.stringify(text)}: expected key==value or key!=value`);
  const key = m[1]!;
  const op = m[2] as '==' | '!=';
  const value = m[3]!.trim();
  if (!FIXED_KEYS.has(key) && !/^node\.labels\.[A-Za-z0-9_.\-/]+$/.test(key)) {
    throw new ConstraintError(
      `invalid constraint ${JSON.stringify(text)}: unknown key ${JSON.stringify(key)} (use node.id, node.hostname, node.role, node.platform.os, node.platform.arch, node.ip or node.labels.<name>)`,
    );
  }
  if (value === '') throw new ConstraintError(`invalid constraint ${JSON.stringify(text)}: empty value`);
  const c: Constraint = { text: t, key: key as ConstraintKey, op, value };
  if (key === 'node.role' && value !== 'manager' && value !== 'worker') {
    throw new ConstraintError(`invalid constraint ${JSON.stringify(text)}: node.role is manager or worker`);
  }
  if (key === 'node.ip') {
    const cm = /^(\d+\.\d+\.\d+\.\d+)(?:\/(\d+))?$/.exec(value);
    const ip = cm ? ipToInt(cm[1]!) : null;
    const bits = cm?.[2] !== undefined ? Number(cm[2]) : 32;
    if (ip === null || bits > 32) throw new ConstraintError(`invalid constraint ${JSON.stringify(text)}: node.ip needs an IPv4 address or CIDR`);
    const mask = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
    c.cidr = { net: (ip & mask) >>> 0, mask };
  }
  return c;
}

export function parseConstraints(texts: readonly string[] | undefined): Constraint[] {
  return (texts ?? []).map(parseConstraint);
}

function nodeValue(c: Constraint, n: ConstraintNode): string | undefined {
  switch (c.key) {
    case 'node.id':
      return n.id;
    case 'node.hostname':
      return n.hostname;
    case 'node.role':
      return n.role;
    case 'node.platform.os':
      return n.os;
    case 'node.platform.arch':
      return n.arch;
    case 'node.ip':
      return n.ip;
    default:
      return n.labels[c.key.slice('node.labels.'.length)];
  }
}

/** An architecture's Go name (`amd64`, `arm64`, `386`) whichever spelling it came in. */
/** One architecture, three spellings (Docker's amd64, uname's x86_64, Node's x64): Go's name. */
export function archName(a: string): string {
  const x = a.toLowerCase();
  if (x === 'x64' || x === 'x86_64' || x === 'x86-64') return 'amd64';
  if (x === 'aarch64' || x === 'arm64/v8') return 'arm64';
  if (x === 'ia32' || x === 'i386' || x === 'i686' || x === 'x86') return '386';
  return x;
}

/**
 * Does a node of this os/arch run an image for one of `platforms` (Docker's Placement.Platforms)?
 * Empty = any; a platform without os or arch leaves that part open; names compare as archName does.
 */
export function supportsPlatform(
  platforms: readonly { readonly os?: string | undefined; readonly arch?: string | undefined }[],
  os: string,
  arch: string,
): boolean {
  if (platforms.length === 0) return true;
  const o = os.toLowerCase();
  const a = archName(arch);
  return platforms.some((p) => (!p.os || p.os.toLowerCase() === o) && (!p.arch || archName(p.arch) === a));
}

/** Does the node satisfy this one constraint? (A missing label never equals a value.) */
export function matches(c: Constraint, n: ConstraintNode): boolean {
  const v = nodeValue(c, n);
  let eq: boolean;
  if (c.key === 'node.ip' && c.cidr) {
    const ip = v ? ipToInt(v) : null;
    eq = ip !== null && (ip & c.cidr.mask) >>> 0 === c.cidr.net;
  } else if (c.key === 'node.id' && v !== undefined) {
    eq = v === c.value || (c.value.length >= 6 && v.startsWith(c.value));
  } else if (c.key === 'node.platform.arch' && v !== undefined) {
    // One architecture has three spellings (Docker's amd64, uname's x86_64, Node's x64): any matches.
    eq = archName(v) === archName(c.value);
  } else {
    // Docker compares hostnames, roles and platforms case-insensitively; labels exactly.
    eq = v !== undefined && (c.key.startsWith('node.labels.') ? v === c.value : v.toLowerCase() === c.value.toLowerCase());
  }
  return c.op === '==' ? eq : !eq;
}

/** The first constraint the node fails, or null when it satisfies all. */
export function firstFailing(cs: readonly Constraint[], n: ConstraintNode): Constraint | null {
  for (const c of cs) if (!matches(c, n)) return c;
  return null;
}

export function ipToInt(ip: string): number | null {
  const p = ip.split('.');
  if (p.length !== 4) return null;
  let x = 0;
  for (const s of p) {
    if (!/^\d{1,3}$/.test(s)) return null;
    const b = Number(s);
    if (b > 255) return null;
    x = x * 256 + b;
  }
  return x >>> 0;
}
