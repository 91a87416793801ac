// IPv4 address management for overlay networks: parsing and checking addresses and CIDRs, carving
// subnets out of the cluster's default address pool, handing out addresses inside a subnet, and VXLAN
// network identifiers. Pure: no store, no I/O, no clock. The allocator (allocator.ts) rebuilds these
// structures from the store's objects on every pass, so what is "in use" is always what the objects say.
//
// Addresses are handled as unsigned 32-bit integers (plain numbers, 0 … 2^32-1); every error is an
// IpamError with a code a caller can branch on and a message that names the offending value.

export type IpamErrorCode =
  | 'EINVALIDADDR' // not a dotted IPv4 address
  | 'EINVALIDCIDR' // not a CIDR, or host bits set
  | 'ESUBNETSIZE' // prefix outside what an overlay supports
  | 'EOVERLAP' // overlaps another network's subnet
  | 'EGATEWAY' // gateway outside the subnet, or the network / broadcast address
  | 'EPOOL' // the default address pool itself is invalid
  | 'EPOOLEXHAUSTED'; // no free subnet left in the pool

export class IpamError extends Error {
  /** How the control API answers it (manager/api/errors.ts, which reads this instead of importing the class). */
  readonly wire = 'invalid';
  constructor(
    readonly code: IpamErrorCode,
    message: string,
    /** The input field at fault, when the caller told us (`ipam.configs[0].subnet`). */
    readonly field?: string,
  ) {
    super(message);
    this.name = 'IpamError';
  }
}

// ------------------------------------------------------------------------------------------ addresses

const DOTTED = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

/** Parses a dotted IPv4 address (`10.0.0.1`) into an unsigned 32-bit number. */
export function parseIp(s: string, what = 'address', field?: string): number {
  const m = typeof s === 'string' ? DOTTED.exec(s) : null;
  if (m === null)
    throw new IpamError('EINVALIDADDR', `${what} ${JSON.stringify(s)} is not an IPv4 address (expected four numbers 0-255 separated by dots)`, field);
  let n = 0;
  for (let i = 1; i <= 4; i++) {
    const part = m[i]!;
    if (part.length > 1 && part.startsWith('0')) throw new IpamError('EINVALIDADDR', `${what} ${s}: ${part} has a leading zero (write ${Number(part)})`, field);
    const v = Number(part);
    if (v > 255) throw new IpamError('EINVALIDADDR', `${what} ${s}: ${part} is above 255`, field);
    n = n * 256 + v;
  }
  return n;
}

export function formatIp(n: number): string {
  return `${Math.floor(n / 16777216) % 256}.${Math.floor(n / 65536) % 256}.${Math.floor(n / 256) % 256}.${n % 256}`;
}

/** The address part of `10.10.1.5/24` (or of a bare address). */
export function addrOf(cidrAddr: string): string {
  const i = cidrAddr.indexOf('/');
  return i < 0 ? cidrAddr : cidrAddr.slice(0, i);
}

// ---------------------------------------------------------------------------------------------- CIDRs

export interface Cidr {
  /** Network address. */
  readonly base: number;
  readonly prefix: number;
  /** Number of addresses, 2^(32-prefix). */
  readonly size: number;
  /** Last address (broadcast). */
  readonly last: number;
  /** Canonical text, e.g. 10.10.1.0/24. */
  readonly text: string;
}

function cidrOf(base: number, prefix: number): Cidr {
  const size = 2 ** (32 - prefix);
  return { base, prefix, size, last: base + size - 1, text: `${formatIp(base)}/${prefix}` };
}

/** Parses `a.b.c.d/n`. The host bits must be zero (as Docker requires): `10.0.0.1/24` is refused. */
export function parseCidr(s: string, what = 'subnet', field?: string): Cidr {
  if (typeof s !== 'string' || !s.includes('/'))
    throw new IpamError('EINVALIDCIDR', `${what} ${JSON.stringify(s)} is not a CIDR (expected e.g. 10.0.9.0/24)`, field);
  const [ip, len, extra] = s.split('/');
  if (extra !== undefined || len === undefined || !/^\d{1,2}$/.test(len) || Number(len) > 32) {
    throw new IpamError('EINVALIDCIDR', `${what} ${s}: the prefix length must be a number 0-32`, field);
  }
  let addr: number;
  try {
    addr = parseIp(ip!, what, field);
  } catch (e) {
    throw new IpamError('EINVALIDCIDR', `${what} ${s}: ${(e as Error).message.replace(`${what} `, '')}`, field);
  }
  const prefix = Number(len);
  const size = 2 ** (32 - prefix);
  const base = addr - (addr % size);
  if (base !== addr) throw new IpamError('EINVALIDCIDR', `${what} ${s} has host bits set (did you mean ${formatIp(base)}/${prefix}?)`, field);
  return cidrOf(base, prefix);
}

/** Smallest and largest prefix an overlay subnet may have: /30 holds one task; /8 is 16M addresses. */
export const MIN_SUBNET_PREFIX = 8;
export const MAX_SUBNET_PREFIX = 30;

/** Parses a subnet for an overlay network: a CIDR between /8 and /30. */
export function parseSubnet(s: string, what = 'subnet', field?: string): Cidr {
  const c = parseCidr(s, what, field);
  if (c.prefix > MAX_SUBNET_PREFIX) {
    throw new IpamError(
      'ESUBNETSIZE',
      `${what} ${c.text} is too small: an overlay subnet needs at least a /${MAX_SUBNET_PREFIX} (network, gateway, one address, broadcast)`,
      field,
    );
  }
  if (c.prefix < MIN_SUBNET_PREFIX)
    throw new IpamError('ESUBNETSIZE', `${what} ${c.text} is too large: an overlay subnet can be at most a /${MIN_SUBNET_PREFIX}`, field);
  return c;
}

export function cidrContains(c: Cidr, ip: number): boolean {
  return ip >= c.base && ip <= c.last;
}

export function cidrsOverlap(a: Cidr, b: Cidr): boolean {
  return a.base <= b.last && b.base <= a.last;
}

/** The first of `others` whose subnet overlaps `subnet` (unparseable ones are skipped). */
export function findOverlap<T extends { subnet: string }>(subnet: Cidr, others: readonly T[]): T | undefined {
  for (const o of others) {
    let c: Cidr;
    try {
      c = parseCidr(o.subnet);
    } catch {
      continue;
    }
    if (cidrsOverlap(subnet, c)) return o;
  }
  return undefined;
}

/**
 * Checks a user-requested subnet: valid, between /8 and /30, overlapping none of `others` (each named
 * by `name`, for the error: `subnet 10.0.0.0/24 overlaps network front (10.0.0.0/16)`).
 */
export function checkSubnet(subnet: string, others: readonly { name: string; subnet: string }[], field?: string): Cidr {
  const c = parseSubnet(subnet, 'subnet', field);
  const o = findOverlap(c, others);
  if (o !== undefined) throw new IpamError('EOVERLAP', `subnet ${c.text} overlaps network ${o.name} (${o.subnet})`, field);
  return c;
}

/**
 * The gateway of `subnet`: `gateway` if given (it must be a host address inside the subnet), else the
 * first host address.
 */
export function gatewayFor(subnet: Cidr, gateway?: string, field?: string): string {
  if (gateway === undefined || gateway === '') return formatIp(subnet.base + 1);
  const g = parseIp(gateway, 'gateway', field);
  if (!cidrContains(subnet, g)) throw new IpamError('EGATEWAY', `gateway ${gateway} is not inside subnet ${subnet.text}`, field);
  if (g === subnet.base) throw new IpamError('EGATEWAY', `gateway ${gateway} is the network address of subnet ${subnet.text}`, field);
  if (g === subnet.last) throw new IpamError('EGATEWAY', `gateway ${gateway} is the broadcast address of subnet ${subnet.text}`, field);
  return gateway;
}

// ------------------------------------------------------------------------------------------- the pool

export interface AddressPoolSpec {
  cidr: string;
  /** Prefix length of each subnet carved from it. */
  size: number;
}

export const DEFAULT_ADDRESS_POOL: AddressPoolSpec = { cidr: '10.10.0.0/16', size: 24 };

/** Parses and checks the cluster's default address pool. */
export function parsePool(pool: AddressPoolSpec): { cidr: Cidr; size: number } {
  let cidr: Cidr;
  try {
    cidr = parseCidr(pool.cidr, 'default address pool');
  } catch (e) {
    throw new IpamError('EPOOL', (e as Error).message);
  }
  const size = pool.size;
  if (!Number.isInteger(size) || size < cidr.prefix || size > MAX_SUBNET_PREFIX || size < MIN_SUBNET_PREFIX) {
    throw new IpamError(
      'EPOOL',
      `default address pool ${cidr.text}: subnet size /${size} must be between /${Math.max(cidr.prefix, MIN_SUBNET_PREFIX)} and /${MAX_SUBNET_PREFIX}`,
    );
  }
  return { cidr, size };
}

/**
 * The first subnet of the pool's size, in address order, that overlaps none of `taken` (subnets of
 * existing or requested networks) and none of the host's routes. Invalid entries in `hostRoutes` and
 * default routes (`/0`, which overlap everything) are ignored. Routes are compared both ways, as Docker
 * does: a route that covers the candidate blocks it as much as one inside it. Throws EPOOLEXHAUSTED.
 */
export function carveSubnet(pool: AddressPoolSpec, taken: readonly string[], hostRoutes: readonly string[] = []): string {
  const p = parsePool(pool);
  const obstacles: Cidr[] = [];
  for (const t of taken) {
    try {
      obstacles.push(parseCidr(t));
    } catch {
      // An unparseable subnet cannot be in use by an overlay.
    }
  }
  for (const r of hostRoutes) {
    try {
      const c = parseCidr(r, 'route');
      if (c.prefix > 0) obstacles.push(c);
    } catch {
      // Not a route we understand (IPv6, host bits set): it cannot overlap an IPv4 pool anyway.
    }
  }
  const step = 2 ** (32 - p.size);
  let cand = p.cidr.base;
  while (cand + step - 1 <= p.cidr.last) {
    const c = cidrOf(cand, p.size);
    let blocker: Cidr | undefined;
    for (const o of obstacles) {
      if (cidrsOverlap(c, o) && (blocker === undefined || o.last > blocker.last)) blocker = o;
    }
    if (blocker === undefined) return c.text;
    // Jump past the obstacle, to the next aligned candidate (every candidate in between overlaps it).
    const next = Math.ceil((blocker.last + 1) / step) * step;
    cand = Math.max(next, cand + step);
  }
  throw new IpamError('EPOOLEXHAUSTED', `the default address pool ${p.cidr.text} has no free /${p.size} subnet left`);
}

// ---------------------------------------------------------------------------------- address allocation

export type ClaimResult = 'ok' | 'outside' | 'reserved' | 'taken';

const FULL = 0xffffffff;

/**
 * The addresses of one subnet: which are used, and which to hand out next. The network address, the
 * gateway and the broadcast address are never handed out. `allocate()` returns the lowest free address
 * *after* the last one handed out (the cursor), wrapping around to the start of the subnet, so an
 * address released a moment ago is not reused at once (as Docker's IPAM does): a late packet or a stale
 * DNS answer for the old owner does not reach a new one.
 */
export class AddressPool {
  readonly subnet: Cidr;
  readonly gateway: number;
  private readonly bits: Uint32Array;
  private used = 0;
  /** Offset of the address handed out last (-1: none yet). */
  private cursor: number;

  constructor(subnet: string | Cidr, gateway: string, lastAddr?: string) {
    this.subnet = typeof subnet === 'string' ? parseSubnet(subnet) : subnet;
    const g = parseIp(gateway, 'gateway');
    if (!cidrContains(this.subnet, g)) throw new IpamError('EGATEWAY', `gateway ${gateway} is not inside subnet ${this.subnet.text}`);
    this.gateway = g;
    this.bits = new Uint32Array(Math.ceil(this.subnet.size / 32));
    this.set(0);
    this.set(this.subnet.size - 1);
    this.set(g - this.subnet.base);
    this.cursor = -1;
    if (lastAddr !== undefined) {
      try {
        const l = parseIp(lastAddr);
        if (cidrContains(this.subnet, l)) this.cursor = l - this.subnet.base;
      } catch {
        // A cursor we cannot read just means "start from the beginning".
      }
    }
  }

  /** Addresses that can be handed out at all (size minus network, gateway and broadcast). */
  get capacity(): number {
    return this.subnet.size - 3;
  }

  /** Addresses currently free. */
  get free(): number {
    return this.capacity - this.used;
  }

  /** The address handed out last (dotted), if any: persist it and pass it back to the constructor. */
  get lastAddr(): string | undefined {
    return this.cursor < 0 ? undefined : formatIp(this.subnet.base + this.cursor);
  }

  /** `10.10.1.5/24` for an address of this subnet. */
  withPrefix(ip: string): string {
    return `${ip}/${this.subnet.prefix}`;
  }

  private isSet(off: number): boolean {
    return (this.bits[off >>> 5]! & (1 << (off & 31))) !== 0;
  }

  private set(off: number): void {
    this.bits[off >>> 5]! |= 1 << (off & 31);
  }

  private clear(off: number): void {
    this.bits[off >>> 5]! &= ~(1 << (off & 31));
  }

  private offsetOf(ip: string | number): number | null {
    let n: number;
    if (typeof ip === 'number') n = ip;
    else {
      try {
        n = parseIp(addrOf(ip));
      } catch {
        return null;
      }
    }
    return cidrContains(this.subnet, n) ? n - this.subnet.base : null;
  }

  private reservedOffset(off: number): boolean {
    return off === 0 || off === this.subnet.size - 1 || off === this.gateway - this.subnet.base;
  }

  /** Is the address (dotted or CIDR form) in use (or reserved)? */
  has(ip: string | number): boolean {
    const off = this.offsetOf(ip);
    return off !== null && this.isSet(off);
  }

  /** Marks an address (dotted or CIDR form) as used. Anything but 'ok' leaves the pool unchanged. */
  claim(ip: string | number): ClaimResult {
    const off = this.offsetOf(ip);
    if (off === null) return 'outside';
    if (this.reservedOffset(off)) return 'reserved';
    if (this.isSet(off)) return 'taken';
    this.set(off);
    this.used++;
    return 'ok';
  }

  /** Frees an address handed out or claimed before. The cursor does not move back. */
  release(ip: string | number): boolean {
    const off = this.offsetOf(ip);
    if (off === null || this.reservedOffset(off) || !this.isSet(off)) return false;
    this.clear(off);
    this.used--;
    return true;
  }

  /** The next free address after the cursor (wrapping around), dotted; null when the subnet is full. */
  allocate(): string | null {
    if (this.free <= 0) return null;
    const start = this.cursor + 1;
    let off = this.findFree(start, this.subnet.size - 1);
    if (off < 0) off = this.findFree(1, Math.min(start, this.subnet.size - 1));
    if (off < 0) return null;
    this.set(off);
    this.used++;
    this.cursor = off;
    return formatIp(this.subnet.base + off);
  }

  /** First clear bit in [from, to), skipping full 32-bit words; -1 if none. */
  private findFree(from: number, to: number): number {
    let off = Math.max(0, from);
    while (off < to) {
      const w = off >>> 5;
      if ((off & 31) === 0 && this.bits[w] === FULL) {
        off += 32;
        continue;
      }
      if (!this.isSet(off)) return off;
      off++;
    }
    return -1;
  }
}

// ------------------------------------------------------------------------------------------------ VNIs

/** VXLAN network identifiers: 4096 and up (below is the 802.1Q VLAN range), 24 bits. */
export const VNI_MIN = 4096;
export const VNI_MAX = 2 ** 24 - 1;
/** The ingress network's VNI (the first one). */
export const INGRESS_VNI = VNI_MIN;

export function isValidVni(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= VNI_MIN && v <= VNI_MAX;
}

/**
 * The lowest VNI ≥ `from` not in `used`, wrapping around to VNI_MIN; null when all are used. Ordinary
 * networks search from VNI_MIN + 1 so that the ingress network finds 4096 free when it is (re)created.
 */
export function allocateVni(used: ReadonlySet<number>, from = VNI_MIN + 1): number | null {
  const start = Math.min(Math.max(from, VNI_MIN), VNI_MAX);
  for (let v = start; v <= VNI_MAX; v++) if (!used.has(v)) return v;
  for (let v = VNI_MIN; v < start; v++) if (!used.has(v)) return v;
  return null;
}
