// Small IPv4 helpers for the overlay data plane: dotted quads, CIDRs, and subnets.

const IPV4_RE = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

export function isIpv4(ip: string): boolean {
  const m = IPV4_RE.exec(ip);
  return !!m && [m[1], m[2], m[3], m[4]].every((x) => Number(x) <= 255 && String(Number(x)) === x);
}

/** Dotted quad → unsigned 32-bit integer; throws on anything else. */
export function ipToInt(ip: string): number {
  if (!isIpv4(ip)) throw new Error(`invalid IPv4 address ${JSON.stringify(ip)}`);
  const o = ip.split('.').map(Number);
  return ((o[0]! << 24) | (o[1]! << 16) | (o[2]! << 8) | o[3]!) >>> 0;
}

export function intToIp(n: number): string {
  return [(n >>> 24) & 255, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

export interface Cidr {
  /** The address as written (host bits kept). */
  ip: string;
  prefixLen: number;
}

/** 'a.b.c.d/n' (or a bare address with defaultLen) → { ip, prefixLen }. */
export function parseCidr(cidr: string, defaultLen?: number): Cidr {
  const slash = cidr.indexOf('/');
  const ip = slash < 0 ? cidr : cidr.slice(0, slash);
  const lenText = slash < 0 ? undefined : cidr.slice(slash + 1);
  if (!isIpv4(ip)) throw new Error(`invalid IPv4 CIDR ${JSON.stringify(cidr)}`);
  if (lenText === undefined) {
    if (defaultLen === undefined) throw new Error(`CIDR ${JSON.stringify(cidr)} has no prefix length`);
    return { ip, prefixLen: defaultLen };
  }
  const prefixLen = Number(lenText);
  if (!/^\d{1,2}$/.test(lenText) || prefixLen > 32) throw new Error(`invalid IPv4 CIDR ${JSON.stringify(cidr)}`);
  return { ip, prefixLen };
}

export function maskOf(prefixLen: number): number {
  return prefixLen === 0 ? 0 : (0xffffffff << (32 - prefixLen)) >>> 0;
}

export function inSubnet(ip: string, cidr: string): boolean {
  const c = parseCidr(cidr);
  const m = maskOf(c.prefixLen);
  return (ipToInt(ip) & m) >>> 0 === (ipToInt(c.ip) & m) >>> 0;
}

/** First and last usable host addresses of a subnet (network and broadcast excluded when len < 31). */
export function hostRange(cidr: string): { first: number; last: number } {
  const c = parseCidr(cidr);
  const m = maskOf(c.prefixLen);
  const net = (ipToInt(c.ip) & m) >>> 0;
  const bcast = (net | (~m >>> 0)) >>> 0;
  if (c.prefixLen >= 31) return { first: net, last: bcast };
  return { first: net + 1, last: bcast - 1 };
}
