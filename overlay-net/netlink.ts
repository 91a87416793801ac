// Typed wrappers over Shoal's native rtnetlink addon (native/netlink, built to
// native/build/shoal_netlink.node by scripts/build-native.sh). Raw rtnetlink, no `ip` processes: each call
// costs microseconds, except veth creation (~0.35 ms) and deletion (~17 ms, see deleteLinks()).
//
// Every call takes an optional `netns`: the path of a network namespace file (/run/netns/NAME, or
// /proc/PID/ns/net). The calling thread enters it, opens its netlink socket there, does the work and
// returns to its own namespace; undefined or '' means the caller's own namespace. Calls are synchronous,
// always request an acknowledgement and time out after 10 s, so none can block forever.
//
// Failures throw NetlinkError with `.errno` (positive) and `.code` ('EEXIST', 'ENODEV', ...) and a readable
// message: "link vx-1f4 exists", "no such link eth9", "no such namespace /run/netns/x".
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseCidr } from './ipnet.ts';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const ADDON_PATH = path.join(repoRoot, 'native', 'build', 'shoal_netlink.node');
const BUILD_SCRIPT = path.join(repoRoot, 'scripts', 'build-native.sh');
export const NETNS_DIR = '/run/netns';

// ------------------------------------------------------------------------------------------ the addon

interface Native {
  linkAdd(ns: string, spec: object): void;
  linkSet(ns: string, name: string, change: object): void;
  linkDel(ns: string, name: string): void;
  linkGet(ns: string, name: string): LinkInfo | null;
  linkList(ns: string): LinkInfo[];
  deleteLinksAsync(ns: string, names: string[]): Promise<{ name: string; errno?: number; code?: string; message?: string }[]>;
  ctDropAsync(ns: string, unreplied: string[], all: string[]): Promise<{ scanned: number; deleted: number }>;
  addrAdd(ns: string, dev: string, ip: string, prefixLen: number, replace: boolean): void;
  addrDel(ns: string, dev: string, ip: string, prefixLen: number): void;
  addrList(ns: string): { index: number; address: string; prefixLen: number; label: string; scope: number; secondary: boolean }[];
  routeAdd(ns: string, r: object): void;
  routeReplace(ns: string, r: object): void;
  routeDel(ns: string, r: object): void;
  routeList(ns: string): {
    dst: string;
    dstLen: number;
    gateway: string | null;
    oif: number | null;
    src: string | null;
    table: number;
    protocol: number;
    scope: number;
    type: number;
    metric: number | null;
  }[];
  neighSet(ns: string, n: object): void;
  neighDel(ns: string, n: object): void;
  neighBatch(ns: string, ops: object[]): ({ errno: number; code: string; message: string } | null)[];
  neighList(
    ns: string,
    family: 'inet' | 'bridge',
  ): {
    ifindex: number;
    ip?: string | null;
    dst?: string | null;
    mac: string | null;
    state: number;
    flags: number;
    masterIndex?: number | null;
    vni?: number | null;
  }[];
  fdbSet(ns: string, f: object): void;
  fdbDel(ns: string, f: object): void;
  netnsAdd(path: string): void;
  netnsDel(path: string): void;
  netnsId(path: string): string;
  sysctlWrite(ns: string, key: string, value: string): void;
  sysctlRead(ns: string, key: string): string;
  mountOverlay(options: string, target: string): void;
  umount(target: string, lazy: boolean): void;
}

let native: Native | null = null;

/** Loads the addon, building it first (scripts/build-native.sh) if it is missing. */
function addon(): Native {
  if (native) return native;
  if (!fs.existsSync(ADDON_PATH)) {
    const r = spawnSync('bash', [BUILD_SCRIPT], { encoding: 'utf8', timeout: 300_000 });
    if (r.status !== 0 || !fs.existsSync(ADDON_PATH)) {
      throw new Error(`netlink addon not built at ${ADDON_PATH} (scripts/build-native.sh: ${(r.stderr || r.error?.message || '').trim().slice(-500)})`);
    }
  }
  const require = createRequire(import.meta.url);
  native = require(ADDON_PATH) as Native;
  return native;
}

export class NetlinkError extends Error {
  override name = 'NetlinkError';
  constructor(
    message: string,
    readonly errno: number,
    readonly code: string,
  ) {
    super(message);
  }
}

/** True if e is a NetlinkError (optionally with one of the given codes). */
export function isNetlinkError(e: unknown, ...codes: string[]): e is NetlinkError {
  return e instanceof NetlinkError && (codes.length === 0 || codes.includes(e.code));
}

const counters = { writes: 0, reads: 0 };

/** Requests sent so far by this process: writes change kernel state, reads are gets and dumps. */
export function netlinkStats(): { writes: number; reads: number } {
  return { ...counters };
}

let tracer: ((op: string, netns: string, detail: string) => void) | null = null;

/** Calls fn for every write request (debugging: which writes does a reconcile make?). null: off. */
export function traceNetlinkWrites(fn: ((op: string, netns: string, detail: string) => void) | null): void {
  tracer = fn;
}

function call<T>(write: boolean, fn: (n: Native) => T, op = '', netns = '', detail = ''): T {
  const n = addon();
  if (write) {
    counters.writes++;
    tracer?.(op, netns, detail);
  } else counters.reads++;
  try {
    return fn(n);
  } catch (e) {
    throw asNetlinkError(e);
  }
}

/** An addon error (it carries `errno`) as a NetlinkError; anything else as it is. */
function asNetlinkError(e: unknown): unknown {
  const err = e as Error & { errno?: number; code?: string };
  return typeof err?.errno === 'number' ? new NetlinkError(err.message, err.errno, err.code ?? 'EUNKNOWN') : e;
}

const nsArg = (o?: NetnsOpt): string => o?.netns ?? '';

// ---------------------------------------------------------------------------------------------- types

export interface NetnsOpt {
  /** Path of the network namespace to act in (undefined/'' = the caller's own). */
  netns?: string | undefined;
}

export interface LinkInfo {
  index: number;
  name: string;
  /** 'veth', 'bridge', 'vxlan', ... (null for physical devices and loopback). */
  kind: string | null;
  /** 'bridge' for a bridge port. */
  slaveKind: string | null;
  master: string | null;
  masterIndex: number | null;
  mtu: number;
  /** Administratively up (IFF_UP). */
  up: boolean;
  lowerUp: boolean;
  operstate: string;
  mac: string;
  alias: string | null;
  /** For a veth: the peer's index (in the namespace linkNetnsId refers to, if set). */
  linkIndex: number | null;
  linkNetnsId: number | null;
  vxlan: { vni: number; local: string | null; port: number; learning: boolean; proxy: boolean } | null;
  /** Bridge ports: port isolation. */
  isolated: boolean | null;
}

export interface CommonLinkOpts extends NetnsOpt {
  mtu?: number;
  mac?: string;
  up?: boolean;
  /** Enslave to this bridge (in the namespace the request runs in; not with targetNetns). */
  master?: string;
  /** Create the link directly in this namespace (the request still runs in `netns`). */
  targetNetns?: string;
}

export interface VxlanOpts extends CommonLinkOpts {
  vni: number;
  /** Source address of the tunnel (the node's VTEP). */
  local?: string;
  /** UDP port, default 4789. */
  port?: number;
  /** Default false. */
  learning?: boolean;
  /** ARP proxy (answer ARP from the device's neighbour table), default true. */
  proxy?: boolean;
  ttl?: number;
}

export interface VethOpts extends CommonLinkOpts {
  /** Create the peer directly in this namespace. */
  peerNetns?: string;
  peerMac?: string;
  /** Default: mtu. */
  peerMtu?: number;
  peerUp?: boolean;
}

export interface LinkChange {
  /** Rename (older kernels want the link down; 6.x renames links that are up). */
  name?: string;
  mtu?: number;
  up?: boolean;
  mac?: string;
  /** Bridge to enslave to, or null to release. */
  master?: string | null;
  alias?: string;
  /** Move to this namespace (with `name`: renamed on the way). */
  targetNetns?: string;
  /** Bridge port isolation (the link must already be a bridge port; not combinable with master). */
  isolated?: boolean;
  /** Bridge port learning. */
  learning?: boolean;
}

// ---------------------------------------------------------------------------------------------- links

function linkSpec(name: string, kind: string, o: CommonLinkOpts): Record<string, unknown> {
  return { name, kind, mtu: o.mtu, mac: o.mac, up: o.up, master: o.master, targetNetns: o.targetNetns };
}

/** `ip link add NAME type vxlan id VNI local LOCAL dstport PORT nolearning proxy`. */
export function createVxlan(name: string, o: VxlanOpts): void {
  call(
    true,
    (n) =>
      n.linkAdd(nsArg(o), {
        ...linkSpec(name, 'vxlan', o),
        vxlan: { vni: o.vni, local: o.local, port: o.port ?? 4789, learning: o.learning ?? false, proxy: o.proxy ?? true, ttl: o.ttl },
      }),
    `create vxlan ${name}`,
    nsArg(o),
  );
}

/** `ip link add NAME type bridge` (STP off, forward delay 0). */
export function createBridge(name: string, o: CommonLinkOpts & { mcastSnooping?: boolean } = {}): void {
  call(true, (n) => n.linkAdd(nsArg(o), { ...linkSpec(name, 'bridge', o), bridge: { mcastSnooping: o.mcastSnooping } }), `create bridge ${name}`, nsArg(o));
}

/** `ip link add NAME type veth peer name PEER [netns PEERNS]`: both ends in one request (plus one to bring
 *  the peer up when peerUp). */
export function createVeth(name: string, peer: string, o: VethOpts = {}): void {
  call(
    true,
    (n) =>
      n.linkAdd(nsArg(o), {
        ...linkSpec(name, 'veth', o),
        veth: { peer, peerNetns: o.peerNetns, peerMac: o.peerMac, peerMtu: o.peerMtu },
      }),
    `create veth ${name} peer ${peer}`,
    nsArg(o),
  );
  // The kernel cannot bring the peer up within the creating request (ENOTCONN): a second one does.
  if (o.peerUp) setLink(peer, { up: true }, { netns: o.peerNetns ?? o.netns });
}

export function deleteLink(name: string, o?: NetnsOpt): void {
  call(true, (n) => n.linkDel(nsArg(o), name), `delete link ${name}`, nsArg(o));
}

/**
 * Deletes links on a libuv worker thread (a veth deletion waits ~17 ms for the kernel). Links already gone
 * (or a namespace already gone) count as deleted; other failures are reported per link, never thrown.
 */
export async function deleteLinks(names: string[], o?: NetnsOpt): Promise<{ name: string; error?: NetlinkError }[]> {
  if (names.length === 0) return [];
  const n = addon();
  counters.writes += names.length;
  if (tracer) for (const name of names) tracer(`delete link ${name} (worker thread)`, nsArg(o), '');
  const res = await n.deleteLinksAsync(nsArg(o), names);
  return res.map((r) => {
    if (r.errno === undefined || r.errno === 2 /* ENOENT: namespace gone */) return { name: r.name };
    return { name: r.name, error: new NetlinkError(r.message ?? 'delete failed', r.errno, r.code ?? 'EUNKNOWN') };
  });
}

/** Backends whose connections to delete: `unreplied` only those that saw no reply, `all` every one. */
export interface FlowTargets {
  unreplied: readonly string[];
  all: readonly string[];
}

/**
 * Deletes the namespace's IPv4 conntrack entries whose reply would come from one of the targets
 * (overlay-net/stale-flows.ts: backends a load balancer dropped). On a libuv worker thread; the table is
 * streamed, never held, and not read at all when the namespace has no entry. Resolves with how many
 * entries were read and deleted.
 */
export async function dropStaleFlows(t: FlowTargets, o?: NetnsOpt): Promise<{ scanned: number; deleted: number }> {
  if (t.unreplied.length === 0 && t.all.length === 0) return { scanned: 0, deleted: 0 };
  const what = `delete conntrack entries to ${[...t.unreplied, ...t.all].join(', ')} (worker thread)`;
  const done = call(true, (n) => n.ctDropAsync(nsArg(o), [...t.unreplied], [...t.all]), what, nsArg(o));
  try {
    return await done;
  } catch (e) {
    throw asNetlinkError(e);
  }
}

export function setLink(name: string, change: LinkChange, o?: NetnsOpt): void {
  call(true, (n) => n.linkSet(nsArg(o), name, change), `set link ${name}`, nsArg(o), tracer ? JSON.stringify(change) : '');
}
export const setMaster = (name: string, master: string | null, o?: NetnsOpt): void => setLink(name, { master }, o);
export const setUp = (name: string, up: boolean, o?: NetnsOpt): void => setLink(name, { up }, o);
export const setMtu = (name: string, mtu: number, o?: NetnsOpt): void => setLink(name, { mtu }, o);
export const setMac = (name: string, mac: string, o?: NetnsOpt): void => setLink(name, { mac }, o);
export const renameLink = (name: string, newName: string, o?: NetnsOpt): void => setLink(name, { name: newName }, o);
/**
 * Moves a link to the namespace at targetNetns (optionally renaming it on the way). The kernel moves first
 * and renames after, so a name already taken there is checked beforehand (a move that would fail half-way
 * is refused up front).
 */
export function moveLink(name: string, targetNetns: string, o?: NetnsOpt & { newName?: string }): void {
  const finalName = o?.newName ?? name;
  if (getLink(finalName, { netns: targetNetns })) {
    throw new NetlinkError(`link ${finalName} exists in ${targetNetns}`, 17, 'EEXIST');
  }
  setLink(name, o?.newName ? { targetNetns, name: o.newName } : { targetNetns }, o);
}

export function getLink(name: string, o?: NetnsOpt): LinkInfo | null {
  return call(false, (n) => n.linkGet(nsArg(o), name));
}

export function listLinks(o?: NetnsOpt): LinkInfo[] {
  return call(false, (n) => n.linkList(nsArg(o)));
}

// ------------------------------------------------------------------------------------------ addresses

export interface AddrInfo {
  index: number;
  /** Name of the link (resolved from index). */
  dev: string;
  address: string;
  prefixLen: number;
  /** 'a.b.c.d/n' */
  cidr: string;
  secondary: boolean;
  scope: number;
}

/** `ip addr add CIDR dev DEV` (replace: no error if it exists). */
export function addAddress(dev: string, cidr: string, o?: NetnsOpt & { replace?: boolean }): void {
  const c = parseCidr(cidr, 32);
  call(true, (n) => n.addrAdd(nsArg(o), dev, c.ip, c.prefixLen, o?.replace ?? false), `add address ${cidr} dev ${dev}`, nsArg(o));
}

export function deleteAddress(dev: string, cidr: string, o?: NetnsOpt): void {
  const c = parseCidr(cidr, 32);
  call(true, (n) => n.addrDel(nsArg(o), dev, c.ip, c.prefixLen), `delete address ${cidr} dev ${dev}`, nsArg(o));
}

/** IPv4 addresses in the namespace (optionally of one link). */
export function listAddresses(o?: NetnsOpt & { dev?: string; links?: LinkInfo[] }): AddrInfo[] {
  const raw = call(false, (n) => n.addrList(nsArg(o)));
  const links = o?.links ?? listLinks(o);
  const names = new Map(links.map((l) => [l.index, l.name]));
  return raw
    .map((a) => ({ ...a, dev: names.get(a.index) ?? `if${a.index}`, cidr: `${a.address}/${a.prefixLen}` }))
    .filter((a) => o?.dev === undefined || a.dev === o.dev);
}

// --------------------------------------------------------------------------------------------- routes

export interface RouteSpec {
  /** 'default' or 'a.b.c.d/n'. */
  dst: string;
  via?: string;
  dev?: string;
  metric?: number;
  onlink?: boolean;
  src?: string;
  table?: number;
}

export interface RouteInfo {
  /** 'default' or 'a.b.c.d/n'. */
  dst: string;
  via: string | null;
  dev: string | null;
  src: string | null;
  metric: number | null;
  table: number;
  protocol: number;
  scope: number;
  type: number;
}

function routeArg(r: RouteSpec): Record<string, unknown> {
  const d = r.dst === 'default' ? { ip: '0.0.0.0', prefixLen: 0 } : parseCidr(r.dst, 32);
  return { dst: d.ip, dstLen: d.prefixLen, gateway: r.via, dev: r.dev, metric: r.metric, onlink: r.onlink, src: r.src, table: r.table };
}

/** `ip route add DST [via GW] [dev DEV]`. */
export function addRoute(r: RouteSpec, o?: NetnsOpt): void {
  call(true, (n) => n.routeAdd(nsArg(o), routeArg(r)), `add route ${r.dst}`, nsArg(o), tracer ? JSON.stringify(r) : '');
}
export function replaceRoute(r: RouteSpec, o?: NetnsOpt): void {
  call(true, (n) => n.routeReplace(nsArg(o), routeArg(r)), `replace route ${r.dst}`, nsArg(o), tracer ? JSON.stringify(r) : '');
}
export function deleteRoute(r: RouteSpec, o?: NetnsOpt): void {
  call(true, (n) => n.routeDel(nsArg(o), routeArg(r)), `delete route ${r.dst}`, nsArg(o), tracer ? JSON.stringify(r) : '');
}

/** IPv4 routes of the main table (unicast, local and broadcast routes of the local table excluded). */
export function listRoutes(o?: NetnsOpt & { links?: LinkInfo[] }): RouteInfo[] {
  const raw = call(false, (n) => n.routeList(nsArg(o)));
  const links = o?.links ?? listLinks(o);
  const names = new Map(links.map((l) => [l.index, l.name]));
  return raw
    .filter((r) => r.table === 254)
    .map((r) => ({
      dst: r.dstLen === 0 ? 'default' : `${r.dst}/${r.dstLen}`,
      via: r.gateway,
      dev: r.oif === null ? null : (names.get(r.oif) ?? `if${r.oif}`),
      src: r.src,
      metric: r.metric,
      table: r.table,
      protocol: r.protocol,
      scope: r.scope,
      type: r.type,
    }));
}

// ---------------------------------------------------------------------------------- neighbours and FDB

/** NUD_PERMANENT */
export const NUD_PERMANENT = 0x80;
export const NTF_SELF = 0x02;

export interface NeighInfo {
  dev: string;
  ip: string;
  mac: string | null;
  state: number;
  permanent: boolean;
}

export interface FdbInfo {
  dev: string;
  mac: string;
  /** Remote VTEP (vxlan entries). */
  dst: string | null;
  state: number;
  permanent: boolean;
  /** The device's own table (`self`), as opposed to its bridge's (`master`). */
  self: boolean;
  master: string | null;
  vni: number | null;
}

/** `ip neigh replace IP lladdr MAC dev DEV nud permanent`. */
export function setNeighbour(dev: string, ip: string, mac: string, o?: NetnsOpt): void {
  call(true, (n) => n.neighSet(nsArg(o), { dev, ip, mac, replace: true }), `set neighbour ${ip} ${mac} dev ${dev}`, nsArg(o));
}

export function deleteNeighbour(dev: string, ip: string, o?: NetnsOpt): void {
  call(true, (n) => n.neighDel(nsArg(o), { dev, ip }), `delete neighbour ${ip} dev ${dev}`, nsArg(o));
}

export type NeighOpSpec =
  | { op: 'neighSet'; dev: string; ip: string; mac: string }
  | { op: 'neighDel'; dev: string; ip: string }
  | { op: 'fdbSet'; dev: string; mac: string; dst?: string; append?: boolean; self?: boolean; master?: boolean }
  | { op: 'fdbDel'; dev: string; mac: string; dst?: string; self?: boolean; master?: boolean };

/**
 * Many neighbour/FDB changes (setNeighbour, deleteNeighbour, setFdb, deleteFdb semantics) with one
 * namespace switch and one socket: a few µs each instead of ~50. Failures are returned per op (null = done),
 * never thrown, so one bad entry does not stop the others.
 */
export function neighBatch(ops: NeighOpSpec[], o?: NetnsOpt): (NetlinkError | null)[] {
  if (ops.length === 0) return [];
  const res = call(false, (n) => n.neighBatch(nsArg(o), ops));
  counters.reads--;
  counters.writes += ops.length;
  if (tracer) for (const op of ops) tracer(`${op.op} ${'ip' in op ? op.ip : op.mac} dev ${op.dev}`, nsArg(o), JSON.stringify(op));
  return res.map((r) => (r ? new NetlinkError(r.message, r.errno, r.code) : null));
}

export function listNeighbours(o?: NetnsOpt & { dev?: string; links?: LinkInfo[] }): NeighInfo[] {
  const raw = call(false, (n) => n.neighList(nsArg(o), 'inet'));
  const links = o?.links ?? listLinks(o);
  const names = new Map(links.map((l) => [l.index, l.name]));
  return raw
    .filter((r) => r.ip)
    .map((r) => ({ dev: names.get(r.ifindex) ?? `if${r.ifindex}`, ip: r.ip!, mac: r.mac, state: r.state, permanent: (r.state & NUD_PERMANENT) !== 0 }))
    .filter((r) => o?.dev === undefined || r.dev === o.dev);
}

/**
 * `bridge fdb replace MAC dev DEV dst DST self permanent` (append: `bridge fdb append`, another
 * destination for the same MAC; the kernel allows that only for the all-zeros and multicast entries, which
 * it also refuses to replace: create those with append).
 */
export function setFdb(dev: string, mac: string, o?: NetnsOpt & { dst?: string; self?: boolean; master?: boolean; append?: boolean }): void {
  call(
    true,
    (n) => n.fdbSet(nsArg(o), { dev, mac, dst: o?.dst, self: o?.self ?? true, master: o?.master ?? false, append: o?.append ?? false, replace: true }),
    `set fdb ${mac} dev ${dev}${o?.dst ? ` dst ${o.dst}` : ''}`,
    nsArg(o),
  );
}

export function deleteFdb(dev: string, mac: string, o?: NetnsOpt & { dst?: string; self?: boolean; master?: boolean }): void {
  call(
    true,
    (n) => n.fdbDel(nsArg(o), { dev, mac, dst: o?.dst, self: o?.self ?? true, master: o?.master ?? false }),
    `delete fdb ${mac} dev ${dev}${o?.dst ? ` dst ${o.dst}` : ''}`,
    nsArg(o),
  );
}

export function listFdb(o?: NetnsOpt & { dev?: string; links?: LinkInfo[] }): FdbInfo[] {
  const raw = call(false, (n) => n.neighList(nsArg(o), 'bridge'));
  const links = o?.links ?? listLinks(o);
  const names = new Map(links.map((l) => [l.index, l.name]));
  return raw
    .filter((r) => r.mac)
    .map((r) => ({
      dev: names.get(r.ifindex) ?? `if${r.ifindex}`,
      mac: r.mac!,
      dst: r.dst ?? null,
      state: r.state,
      permanent: (r.state & NUD_PERMANENT) !== 0,
      self: (r.flags & NTF_SELF) !== 0,
      master: r.masterIndex ? (names.get(r.masterIndex) ?? `if${r.masterIndex}`) : null,
      vni: r.vni ?? null,
    }))
    .filter((r) => o?.dev === undefined || r.dev === o.dev);
}

// ------------------------------------------------------------------------------------------ namespaces

/** '/run/netns/NAME' for a bare name; a path is returned unchanged. */
export function netnsPath(nameOrPath: string): string {
  if (nameOrPath.includes('/')) return nameOrPath;
  if (!/^[A-Za-z0-9_.-]{1,200}$/.test(nameOrPath) || nameOrPath === '.' || nameOrPath === '..') {
    throw new NetlinkError(`invalid namespace name ${JSON.stringify(nameOrPath)}`, 22, 'EINVAL');
  }
  return path.join(NETNS_DIR, nameOrPath);
}

/** `ip netns add NAME`: returns the namespace's path. */
export function createNetns(nameOrPath: string): string {
  const p = netnsPath(nameOrPath);
  call(true, (n) => n.netnsAdd(p), `create namespace ${p}`);
  return p;
}

/** `ip netns delete NAME`: unmount and unlink (the kernel frees it once nothing else holds it). */
export function deleteNetns(nameOrPath: string): void {
  const p = netnsPath(nameOrPath);
  call(true, (n) => n.netnsDel(p), `delete namespace ${p}`);
}

/** Names in /run/netns (or dir), optionally only those starting with prefix. */
export function listNetns(prefix = '', dir = NETNS_DIR): string[] {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return [];
  }
  return names.filter((n) => n.startsWith(prefix)).sort();
}

/** Identity ('dev:ino') of a namespace ('' = the calling thread's). Two paths name the same one iff equal. */
export function netnsId(nameOrPath = ''): string {
  return call(false, (n) => n.netnsId(nameOrPath === '' ? '' : netnsPath(nameOrPath)));
}

// --------------------------------------------------------------------------------------------- sysctl

/** Writes /proc/sys/KEY as seen from the namespace ('net.ipv4.ip_forward' or 'net/ipv4/conf/x.y/forwarding'). */
export function sysctlWrite(key: string, value: string | number, o?: NetnsOpt): void {
  call(true, (n) => n.sysctlWrite(nsArg(o), key, String(value)), `sysctl ${key}=${value}`, nsArg(o));
}

export function sysctlRead(key: string, o?: NetnsOpt): string {
  return call(false, (n) => n.sysctlRead(nsArg(o), key));
}

/** Writes only if the value differs; returns true if it wrote. */
export function sysctlEnsure(key: string, value: string | number, o?: NetnsOpt): boolean {
  if (sysctlRead(key, o) === String(value)) return false;
  sysctlWrite(key, value, o);
  return true;
}

// -------------------------------------------------------------------------------------------- mounts

/** mount(2) of an overlay filesystem (used for container roots: no mount(8) process per start). */
export function mountOverlay(options: string, target: string): void {
  call(true, (n) => n.mountOverlay(options, target), 'mount overlay', '', target);
}

/** umount2(2); `lazy` detaches a busy mount. */
export function unmount(target: string, lazy = false): void {
  call(true, (n) => n.umount(target, lazy), 'umount', '', target);
}
