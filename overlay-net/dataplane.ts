// The node's overlay data plane: a reconciler converging the kernel (namespaces, bridges, VXLAN devices,
// veths, static ARP/FDB entries, one nft NAT table) on the control plane's NetView plus the tasks attached
// locally. See docs/design/networking.md ("Data plane") for the layout; in short, with prefix P (link
// prefixes LP/SP are P or a shortened form that fits 15 characters):
//
//   node ns (hostNetns)               network ns <P>n-<id8>             task ns <P>t-<task12>
//   <underlay dev> VTEP addr          br0 gateway/len
//     ▲ UDP 4789 (vxlan0's socket) ── ├─ vxlan0 (vni, local VTEP, nolearning, proxy)
//                                     └─ <SP>v<h8> ════ veth ════     eth<i> ip/len, mac
//   <LP>gwbr 172.31.0.1/16 (+ nft masquerade)
//     └─ <SP>g<h8> (isolated port) ═════════ veth ═════════════      gw0 172.31.x.y/16, default route
//   <LP>ing 169.254.230.1/30 ═ veth ═ ing0 .2/30 in the ingress network's namespace
//
// Peers come only from the view: every remote endpoint of a network gets a permanent ARP entry and a
// `self` FDB entry (dst = its node's VTEP) on that network's vxlan0, so nothing is flooded or learned.
// apply() is synchronous (a few dumps and only the writes that differ) and idempotent; adopt() rebuilds
// the in-memory state from the kernel after a restart; gc(liveTaskIds) removes what the agent no longer
// wants; destroy() removes everything this data plane made.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import * as nl from './netlink.ts';
import { hostRange, intToIp, ipToInt, isIpv4, parseCidr } from './ipnet.ts';
import { NODE_LOCAL, macForIp } from '../api/netview.ts';
import type { NetInfo, NetView } from '../api/netview.ts';
import type { GwLeg, NetLeg } from './filter.ts';

export const VXLAN_PORT = 4789;
/** Outer IPv4 + UDP + VXLAN + inner Ethernet headers. */
export const VXLAN_OVERHEAD = 50;
/** Device names inside the namespaces this data plane owns. */
export const BRIDGE_IF = 'br0';
export const VXLAN_IF = 'vxlan0';
export const GW_IF = 'gw0';
export const INGRESS_NS_IF = 'ing0';
/** nft table (in the node's namespace) masquerading the gateway bridge's traffic. */
export const NAT_TABLE = 'shoal-gw';
/** Every task's /etc/resolv.conf: the node's DNS resolver listens on the gateway bridge address. */
export const RESOLV_CONF = `nameserver ${NODE_LOCAL.gwBridgeAddr}\noptions ndots:0\n`;
const NAT_RECHECK_MS = 30_000;
const VNI_BUSY_RETRY_MS = 250;

// ------------------------------------------------------------------------------------------------ names

/** 32-bit FNV-1a, hex. */
function fnv(s: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h.toString(16).padStart(8, '0');
}

/**
 * The gateway bridge's MAC, set when it is made. A bridge made without one takes the lowest MAC among its
 * ports and changes it whenever a port with a lower one comes or that port goes. Every task caches the
 * bridge's MAC for its default gateway (DNS, egress), so when a stopped task's leg took the bridge's MAC
 * with it, the node's other tasks sent their frames to a MAC nothing answered to any more until their ARP
 * entries expired (15–45 s of lost DNS queries and egress, seen in CI after a scale-down). A MAC given
 * explicitly stays. Node-local (the ports are isolated and egress is routed), so every node can use the
 * same one: Docker's convention for the bridge's address.
 */
export const GW_BRIDGE_MAC = macForIp(NODE_LOCAL.gwBridgeAddr);

/**
 * An overlay network's br0 MAC on this node (the ingress network's is derived from the node's ingress
 * address instead): set explicitly for the reason above, unique per node and network because br0's own
 * frames can cross vxlan0 to other nodes' bridges, locally administered, and the same after a restart.
 */
export function bridgeMac(vtep: string, vni: number): string {
  const h = createHash('sha1').update(`${vtep}/${vni}`).digest();
  return ['02', ...[...h.subarray(0, 5)].map((b) => b.toString(16).padStart(2, '0'))].join(':');
}

function hash8(s: string): string {
  return createHash('sha1').update(s).digest('hex').slice(0, 8);
}

/** Every name a data plane with this prefix uses (pure: the DNS/LB helpers derive the same names). */
export function dataPlaneNames(prefix: string) {
  // Link names have 15 characters: veth peers are <short><g|v><8 hex>, so the short prefix has ≤ 6.
  const short = prefix.length <= 6 ? prefix : `s${fnv(prefix).slice(0, 4)}-`;
  const linkPrefix = prefix.length <= 11 ? prefix : short;
  return {
    prefix,
    shortPrefix: short,
    networkNs: (networkId: string) => `${prefix}n-${networkId.slice(0, 8)}`,
    taskNs: (taskId: string) => `${prefix}t-${taskId.slice(0, 12)}`,
    /** The node's gateway bridge (node namespace). */
    gwBridge: `${linkPrefix}gwbr`,
    /** Node side of the veth to the ingress network's namespace. */
    ingressLink: `${linkPrefix}ing`,
    /** Node side of a task's gw0 leg. */
    gwPeer: (taskId: string) => `${short}g${hash8(taskId)}`,
    /** Network-namespace side of a task's eth<i>. */
    netPeer: (taskId: string) => `${short}v${hash8(taskId)}`,
  };
}

// ------------------------------------------------------------------------------------------------ types

export interface DataPlaneOptions {
  /** Prefix of every namespace and link this node's data plane creates. Default 'shoal-'. */
  prefix?: string;
  /** Path of the namespace that plays the node's own (default: the calling thread's namespace). */
  hostNetns?: string;
  /** MTU of the underlay; default: detected from the device holding the VTEP address. */
  underlayMtu?: number;
  /** Where named namespaces live (default /run/netns). */
  netnsDir?: string;
  log?: (msg: string) => void;
}

export interface TaskAttachment {
  networkId: string;
  /** CIDR (a bare address gets the network's prefix length). */
  ip: string;
  /** Default: macForIp(ip), Docker's convention (the control plane computes the same). */
  mac?: string;
  /** The network, if the view applied last does not list it yet. */
  network?: NetInfo;
}

export interface TaskInterface {
  /** 'eth<i>' in the task namespace. */
  name: string;
  networkId: string;
  /** CIDR */
  ip: string;
  mac: string;
}

export interface AttachResult {
  netnsPath: string;
  resolvConf: string;
  /** The task's address on the gateway bridge (host-mode published ports DNAT to it). */
  gwIp: string;
  interfaces: TaskInterface[];
}

export interface ApplyReport {
  /** Netlink requests that changed something (0 when already converged). */
  writes: number;
  /** nft invocations that changed something. */
  natWrites: number;
  ms: number;
}

export interface AdoptReport {
  networks: string[];
  tasks: string[];
  /** Veths of tasks whose namespace is gone; gc() removes them. */
  orphans: number;
}

interface NetState {
  /** First 8 characters of the id (the namespace name's suffix). */
  key: string;
  id: string;
  nsPath: string;
  info: NetInfo | null;
}

interface AttState {
  networkId: string;
  ip: string;
  mac: string;
  ifname: string;
  peer: string;
}

interface TaskState {
  id: string;
  nsPath: string;
  gwIp: string;
  gwPeer: string;
  /** Whether the task has a default route via the gateway bridge (no: only internal networks). */
  egress: boolean;
  atts: AttState[];
}

export class DataPlaneError extends Error {
  override name = 'DataPlaneError';
}

const netKey = (id: string): string => id.slice(0, 8);
const isCode = (e: unknown, ...codes: string[]): boolean => nl.isNetlinkError(e, ...codes);

/** Deletes a link; one already gone is fine. */
function dropLink(name: string, o: nl.NetnsOpt): void {
  try {
    nl.deleteLink(name, o);
  } catch (e) {
    if (!isCode(e, 'ENODEV')) throw e;
  }
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

// -------------------------------------------------------------------------------------------- DataPlane

export class DataPlane {
  readonly prefix: string;
  /** '' = the calling thread's own namespace. */
  readonly hostNetns: string;
  readonly netnsDir: string;
  readonly names: ReturnType<typeof dataPlaneNames>;
  private readonly log: (msg: string) => void;
  private underlay: number | undefined;
  private readonly fixedUnderlay: boolean;
  private underlayFor: string | undefined;
  private view: NetView | null = null;
  private readonly nets = new Map<string, NetState>();
  private readonly tasks = new Map<string, TaskState>();
  /** Gateway-bridge addresses in use (as integers), including those whose veth is still being deleted. */
  private readonly gwUsed = new Set<number>();
  private gwCursor: number;
  private readonly gwRange: { first: number; last: number };
  private natCheckedAt = 0;
  private natWrites = 0;
  private lastNetRemoval = 0;
  private orphans: { ns: string; name: string }[] = [];
  private readonly delQueue = new Map<string, { names: string[]; promise: Promise<void>; resolve: () => void }>();
  private readonly inflight = new Set<Promise<unknown>>();
  private totalWrites = 0;

  constructor(opts: DataPlaneOptions = {}) {
    this.prefix = opts.prefix ?? 'shoal-';
    if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$/.test(this.prefix)) throw new DataPlaneError(`invalid prefix ${JSON.stringify(this.prefix)}`);
    this.hostNetns = opts.hostNetns ?? '';
    this.netnsDir = opts.netnsDir ?? nl.NETNS_DIR;
    this.underlay = opts.underlayMtu;
    this.fixedUnderlay = opts.underlayMtu !== undefined;
    this.names = dataPlaneNames(this.prefix);
    this.log = opts.log ?? (() => {});
    this.gwRange = hostRange(NODE_LOCAL.gwBridgeCidr);
    this.gwCursor = this.gwRange.first;
  }

  // ------------------------------------------------------------------------------------------- queries

  get overlayMtu(): number {
    if (this.underlay === undefined) throw new DataPlaneError('underlay MTU unknown: apply a view first (or pass underlayMtu)');
    return this.underlay - VXLAN_OVERHEAD;
  }

  get underlayMtu(): number | undefined {
    return this.underlay;
  }

  /** Netlink writes made by this data plane so far. */
  get writes(): number {
    return this.totalWrites;
  }

  /** Path of the namespace of a network this node has (undefined if none). */
  networkNetns(networkId: string): string | undefined {
    return this.nets.get(netKey(networkId))?.nsPath;
  }

  /** Path of the ingress network's namespace, when this node has one. */
  ingressNetns(): string | undefined {
    const ing = this.view?.networks.find((n) => n.ingress);
    return ing ? this.networkNetns(ing.id) : undefined;
  }

  taskNetns(taskId: string): string | undefined {
    return this.tasks.get(taskId)?.nsPath;
  }

  /** What attachTask returned for a task attached now (or adopted). */
  task(taskId: string): AttachResult | undefined {
    const t = this.tasks.get(taskId);
    return t ? this.result(t) : undefined;
  }

  taskIds(): string[] {
    return [...this.tasks.keys()];
  }

  networkIds(): string[] {
    return [...this.nets.values()].map((n) => n.id);
  }

  /**
   * The local tasks' legs, for the confinement tables (overlay-net/filter.ts): each gateway leg with its
   * address (sealed: only internal networks, no egress), and per network namespace each port with the MAC
   * and address its task may send with.
   */
  guardLegs(): { gw: GwLeg[]; nets: Map<string, NetLeg[]> } {
    const gw: GwLeg[] = [];
    const nets = new Map<string, NetLeg[]>();
    for (const st of this.nets.values()) nets.set(st.nsPath, []);
    for (const t of this.tasks.values()) {
      if (t.gwIp) gw.push({ port: t.gwPeer, ip: t.gwIp, sealed: !t.egress });
      for (const a of t.atts) {
        const st = this.nets.get(netKey(a.networkId));
        if (st) nets.get(st.nsPath)?.push({ port: a.peer, mac: a.mac.toLowerCase(), ip: a.ip.split('/')[0]! });
      }
    }
    return { gw, nets };
  }

  // ------------------------------------------------------------------------------------------- apply

  /**
   * Converges on a view: the node namespace's gateway bridge and NAT, one namespace per network with its
   * bridge and VXLAN device, the remote endpoints' ARP/FDB entries, the ingress link. Networks that left
   * the view and have no local task are removed. Synchronous; writes only what differs. Throws (after
   * converging everything else) if some part failed.
   */
  apply(view: NetView): ApplyReport {
    const t0 = performance.now();
    const w0 = nl.netlinkStats().writes;
    const nat0 = this.natWrites;
    if (!isIpv4(view.vtep)) throw new DataPlaneError(`invalid VTEP address ${JSON.stringify(view.vtep)}`);
    this.view = view;
    const errors: string[] = [];
    try {
      this.ensureHost(view);
    } catch (e) {
      // Without the node side nothing else can be right (MTU unknown, no gateway bridge).
      this.totalWrites += nl.netlinkStats().writes - w0;
      throw e;
    }
    for (const net of view.networks) {
      try {
        this.ensureNetwork(net, view);
      } catch (e) {
        errors.push(`network ${net.name || net.id}: ${(e as Error).message}`);
      }
    }
    try {
      this.ensureIngress(view);
    } catch (e) {
      errors.push(`ingress: ${(e as Error).message}`);
    }
    try {
      this.pruneNetworks();
    } catch (e) {
      errors.push(`prune: ${(e as Error).message}`);
    }
    const writes = nl.netlinkStats().writes - w0;
    this.totalWrites += writes;
    const report = { writes, natWrites: this.natWrites - nat0, ms: performance.now() - t0 };
    if (errors.length) throw new DataPlaneError(`data plane apply: ${errors.join('; ')}`);
    return report;
  }

  private get host(): nl.NetnsOpt {
    return { netns: this.hostNetns };
  }

  private nsPathOf(name: string): string {
    return path.join(this.netnsDir, name);
  }

  private ensureHost(view: NetView): void {
    const host = this.host;
    let links = nl.listLinks(host);
    if (this.underlayFor !== view.vtep) {
      const addr = nl.listAddresses({ ...host, links }).find((a) => a.address === view.vtep);
      const dev = addr && links.find((l) => l.index === addr.index);
      if (dev && !this.fixedUnderlay) this.underlay = dev.mtu;
      if (this.underlay === undefined) {
        throw new DataPlaneError(`VTEP ${view.vtep} is not an address of ${this.hostNetns || 'this namespace'} (cannot detect the underlay MTU)`);
      }
      this.underlayFor = view.vtep;
    }
    const mtu = this.overlayMtu;
    nl.sysctlEnsure('net.ipv4.ip_forward', 1, host);

    // The gateway bridge, its address, and every task's leg on it.
    const gwbr = this.names.gwBridge;
    let br = links.find((l) => l.name === gwbr);
    let created = false;
    if (br && br.kind !== 'bridge') {
      dropLink(gwbr, host);
      br = undefined;
    }
    if (!br) {
      nl.createBridge(gwbr, { ...host, mtu, up: true, mac: GW_BRIDGE_MAC });
      created = true;
      links = nl.listLinks(host);
    } else {
      if (br.mtu !== mtu) nl.setMtu(gwbr, mtu, host);
      if (!br.up) nl.setUp(gwbr, true, host);
      if (br.mac !== GW_BRIDGE_MAC) nl.setMac(gwbr, GW_BRIDGE_MAC, host); // made by an earlier version: pinned now
    }
    const want = `${NODE_LOCAL.gwBridgeAddr}/${parseCidr(NODE_LOCAL.gwBridgeCidr).prefixLen}`;
    if (!nl.listAddresses({ ...host, dev: gwbr, links }).some((a) => a.cidr === want)) nl.addAddress(gwbr, want, { ...host, replace: true });
    for (const t of this.tasks.values()) this.ensureTaskGw(t, links);
    this.ensureNat(created);
  }

  /** The task's gw0 leg: the node-side veth enslaved (isolated) to the gateway bridge; recreated if lost. */
  private ensureTaskGw(t: TaskState, hostLinks: nl.LinkInfo[]): void {
    const host = this.host;
    const peer = hostLinks.find((l) => l.name === t.gwPeer);
    if (!peer) {
      if (!fs.existsSync(t.nsPath)) return; // the task namespace is gone: gc() will drop it
      this.log(`dataplane: restoring the gateway leg of task ${t.id}`);
      try {
        this.createGwLeg(t);
      } catch (e) {
        this.log(`dataplane: cannot restore the gateway leg of task ${t.id}: ${(e as Error).message}`);
      }
      return;
    }
    if (peer.master !== this.names.gwBridge) nl.setMaster(t.gwPeer, this.names.gwBridge, host);
    if (peer.master !== this.names.gwBridge || peer.isolated !== true) nl.setLink(t.gwPeer, { isolated: true }, host);
    if (!peer.up) nl.setUp(t.gwPeer, true, host);
  }

  private nft(args: string[], input?: string): { ok: boolean; out: string; err: string } {
    const [cmd, argv] = this.hostNetns ? ['nsenter', [`--net=${this.hostNetns}`, '--', 'nft', ...args]] : ['nft', args];
    const r = spawnSync(cmd, argv, { input: input ?? '', encoding: 'utf8', timeout: 10_000 });
    return { ok: r.status === 0, out: r.stdout ?? '', err: (r.stderr || r.error?.message || '').trim() };
  }

  private natScript(): string {
    return [
      `table ip ${NAT_TABLE} {}`,
      `flush table ip ${NAT_TABLE}`,
      `table ip ${NAT_TABLE} {`,
      `  chain postrouting {`,
      `    type nat hook postrouting priority srcnat; policy accept;`,
      `    ip saddr ${NODE_LOCAL.gwBridgeCidr} oifname != "${this.names.gwBridge}" masquerade`,
      `  }`,
      `}`,
      '',
    ].join('\n');
  }

  /** Egress NAT for the gateway bridge (checked at most every 30 s, or when the bridge was recreated). */
  private ensureNat(force: boolean): void {
    if (!force && performance.now() - this.natCheckedAt < NAT_RECHECK_MS && this.natCheckedAt > 0) return;
    const cur = this.nft(['list', 'table', 'ip', NAT_TABLE]);
    const rule = `ip saddr ${NODE_LOCAL.gwBridgeCidr} oifname != "${this.names.gwBridge}" masquerade`;
    if (!cur.ok || !cur.out.includes(rule)) {
      const r = this.nft(['-f', '-'], this.natScript());
      if (!r.ok) throw new DataPlaneError(`cannot install the egress NAT table ip ${NAT_TABLE}: ${r.err}`);
      this.natWrites++;
    }
    this.natCheckedAt = performance.now();
  }

  private netState(net: NetInfo): NetState {
    const key = netKey(net.id);
    let st = this.nets.get(key);
    if (st?.info && st.info.id !== net.id) {
      throw new DataPlaneError(`network ${net.id}: namespace ${st.nsPath} belongs to network ${st.info.id} (ids share their first 8 characters)`);
    }
    if (!st) {
      st = { key, id: net.id, nsPath: this.nsPathOf(this.names.networkNs(net.id)), info: net };
      this.nets.set(key, st);
    }
    st.id = net.id;
    st.info = net;
    return st;
  }

  private ensureNetwork(net: NetInfo, view: NetView): void {
    const st = this.netState(net);
    const ns = { netns: st.nsPath };
    const mtu = this.overlayMtu;
    const subnet = parseCidr(net.subnet);
    const fresh = !fs.existsSync(st.nsPath);
    if (fresh) {
      nl.createNetns(st.nsPath);
      nl.setUp('lo', true, ns);
    }
    let links = nl.listLinks(ns);
    const find = (n: string) => links.find((l) => l.name === n);
    let changed = false;
    const lo = find('lo');
    if (lo && !lo.up) nl.setUp('lo', true, ns);

    // br0
    const ingressHere = net.ingress && !!view.ingressAddr;
    let br = find(BRIDGE_IF);
    if (br && br.kind !== 'bridge') {
      dropLink(BRIDGE_IF, ns);
      br = undefined;
    }
    const brMac = ingressHere ? macForIp(view.ingressAddr!) : bridgeMac(view.vtep, net.vni);
    if (!br) {
      nl.createBridge(BRIDGE_IF, { ...ns, mtu, up: true, mac: brMac });
      nl.setLink(BRIDGE_IF, { alias: net.id }, ns);
      // Frames switched by br0 need no netfilter pass (nothing here filters bridged traffic; the mesh's
      // rules see routed packets): skipping it saves a conntrack lookup per frame on the overlay path.
      for (const k of ['iptables', 'ip6tables', 'arptables']) {
        try {
          nl.sysctlEnsure(`net.bridge.bridge-nf-call-${k}`, 0, ns);
        } catch {
          /* a kernel without br_netfilter has nothing to switch off */
        }
      }
      changed = true;
    } else {
      if (br.mtu !== mtu) nl.setMtu(BRIDGE_IF, mtu, ns);
      if (!br.up) nl.setUp(BRIDGE_IF, true, ns);
      if (br.alias !== net.id) nl.setLink(BRIDGE_IF, { alias: net.id }, ns);
      // The ingress bridge answers for this node's own ingress address: its MAC is the one the other
      // nodes derive from that address. Any other br0 gets back the MAC bridgeMac gives it if it lost it.
      if (br.mac !== brMac) nl.setMac(BRIDGE_IF, brMac, ns);
    }

    // vxlan0: its UDP socket must live in the node namespace, so it is created from there, directly into
    // the network namespace.
    let vx = find(VXLAN_IF);
    const vxOk = (l: nl.LinkInfo) =>
      l.kind === 'vxlan' &&
      !!l.vxlan &&
      l.vxlan.vni === net.vni &&
      l.vxlan.local === view.vtep &&
      l.vxlan.port === VXLAN_PORT &&
      !l.vxlan.learning &&
      l.vxlan.proxy;
    if (vx && !vxOk(vx)) {
      this.log(`dataplane: network ${net.id}: replacing ${VXLAN_IF} (configuration changed)`);
      dropLink(VXLAN_IF, ns);
      vx = undefined;
    }
    if (!vx) {
      this.createVxlan(st, net, view.vtep, mtu, fresh);
      nl.setLink(VXLAN_IF, { master: BRIDGE_IF, up: true }, ns);
      changed = true;
    } else {
      if (vx.mtu !== mtu) nl.setMtu(VXLAN_IF, mtu, ns);
      if (vx.master !== BRIDGE_IF) nl.setMaster(VXLAN_IF, BRIDGE_IF, ns);
      if (!vx.up) nl.setUp(VXLAN_IF, true, ns);
    }

    // Local tasks' ports on br0 (restored if someone removed the bridge or a veth).
    for (const t of this.tasks.values()) {
      for (const a of t.atts) {
        if (netKey(a.networkId) !== st.key) continue;
        const p = find(a.peer);
        if (!p) {
          if (!fs.existsSync(t.nsPath)) continue;
          this.log(`dataplane: restoring ${a.ifname} of task ${t.id}`);
          try {
            this.createAttachment(t, a, st, mtu);
            changed = true;
          } catch (e) {
            this.log(`dataplane: cannot restore ${a.ifname} of task ${t.id}: ${(e as Error).message}`);
          }
          continue;
        }
        if (p.master !== BRIDGE_IF) nl.setMaster(a.peer, BRIDGE_IF, ns);
        if (!p.up) nl.setUp(a.peer, true, ns);
      }
    }
    if (changed) links = nl.listLinks(ns);

    // br0's addresses: the gateway (the same on every node: it never leaves the bridge); on the ingress
    // network this node's own ingress address comes first, with the subnet's prefix, so it is the primary
    // address (the source the kernel picks for traffic into the subnet), and the gateway is a /32.
    const want = ingressHere ? [`${view.ingressAddr}/${subnet.prefixLen}`, `${net.gateway}/32`] : [`${net.gateway}/${subnet.prefixLen}`];
    const have = nl.listAddresses({ ...ns, dev: BRIDGE_IF, links });
    // Deleting a primary address also deletes its secondaries: remove before adding.
    for (const a of have) if (!want.includes(a.cidr)) nl.deleteAddress(BRIDGE_IF, a.cidr, ns);
    const kept = new Set(have.filter((a) => want.includes(a.cidr)).map((a) => a.cidr));
    for (const w of want) if (!kept.has(w)) nl.addAddress(BRIDGE_IF, w, { ...ns, replace: true });

    this.syncPeers(st, net, view, links);
  }

  /**
   * Creates vxlan0. The VNI may still be held for a moment by the device of a namespace that is being
   * destroyed (a network we just removed, or a namespace deleted under us): then it retries for up to
   * 250 ms; otherwise a conflict fails at once.
   */
  private createVxlan(st: NetState, net: NetInfo, vtep: string, mtu: number, fresh: boolean): void {
    const opts: nl.VxlanOpts = { ...this.host, targetNetns: st.nsPath, vni: net.vni, local: vtep, port: VXLAN_PORT, learning: false, proxy: true, mtu };
    const deadline = performance.now() + VNI_BUSY_RETRY_MS;
    for (let attempt = 0; ; attempt++) {
      try {
        nl.createVxlan(VXLAN_IF, opts);
        return;
      } catch (e) {
        if (!isCode(e, 'EEXIST') || !/VNI/i.test((e as Error).message)) throw e;
        // The VNI is held by another VXLAN device of the node namespace: one of ours for a network that
        // is no longer wanted, or one in a namespace we removed that the kernel is still tearing down.
        if (attempt === 0 && this.freeVni(net.vni, st.key)) continue;
        const recent = fresh || performance.now() - this.lastNetRemoval < 5_000;
        if (!recent || performance.now() > deadline) throw e;
        sleepSync(5);
      }
    }
  }

  /** Deletes the VXLAN device using vni in one of our other network namespaces (not wanted by the view). */
  private freeVni(vni: number, exceptKey: string): boolean {
    const wanted = new Set(this.view?.networks.map((n) => netKey(n.id)) ?? []);
    for (const st of this.nets.values()) {
      if (st.key === exceptKey || wanted.has(st.key)) continue;
      const l = nl.getLink(VXLAN_IF, { netns: st.nsPath });
      if (l?.vxlan?.vni === vni) {
        dropLink(VXLAN_IF, { netns: st.nsPath });
        return true;
      }
    }
    return false;
  }

  /** Static ARP and FDB entries on vxlan0 for every remote endpoint of the network; nothing else. */
  private syncPeers(st: NetState, net: NetInfo, view: NetView, links: nl.LinkInfo[]): void {
    const ns = { netns: st.nsPath };
    const wantNeigh = new Map<string, string>();
    const wantFdb = new Map<string, string>();
    for (const ep of view.endpoints) {
      if (ep.networkId !== net.id || ep.nodeId === view.nodeId || ep.vtep === view.vtep) continue;
      const ip = ep.ip.split('/')[0]!;
      wantNeigh.set(ip, ep.mac);
      wantFdb.set(ep.mac, ep.vtep);
    }
    const ops: nl.NeighOpSpec[] = [];
    const neigh = nl.listNeighbours({ ...ns, dev: VXLAN_IF, links });
    const haveNeigh = new Map(neigh.map((n) => [n.ip, n]));
    for (const [ip, mac] of wantNeigh) {
      const h = haveNeigh.get(ip);
      if (!h || h.mac !== mac || !h.permanent) ops.push({ op: 'neighSet', dev: VXLAN_IF, ip, mac });
    }
    for (const n of neigh) if (!wantNeigh.has(n.ip)) ops.push({ op: 'neighDel', dev: VXLAN_IF, ip: n.ip });

    const fdb = nl.listFdb({ ...ns, dev: VXLAN_IF, links }).filter((f) => f.self);
    const haveFdb = new Map<string, nl.FdbInfo[]>();
    for (const f of fdb) {
      const list = haveFdb.get(f.mac);
      if (list) list.push(f);
      else haveFdb.set(f.mac, [f]);
    }
    const delFdb = (mac: string, dst: string | null) => ops.push({ op: 'fdbDel', dev: VXLAN_IF, mac, ...(dst ? { dst } : {}) });
    for (const [mac, vtep] of wantFdb) {
      const entries = haveFdb.get(mac) ?? [];
      for (const e of entries) if (e.dst !== vtep) delFdb(mac, e.dst);
      if (!entries.some((e) => e.dst === vtep && e.permanent)) ops.push({ op: 'fdbSet', dev: VXLAN_IF, mac, dst: vtep });
    }
    for (const [mac, entries] of haveFdb) {
      if (wantFdb.has(mac)) continue;
      for (const e of entries) delFdb(mac, e.dst);
    }
    // One namespace switch for all of them (a view change can touch thousands of entries).
    const res = nl.neighBatch(ops, ns);
    const failed = res.map((e, i) => ({ e, op: ops[i]! })).filter((r) => r.e && !(r.op.op.endsWith('Del') && r.e.code === 'ENOENT'));
    if (failed.length) {
      throw new DataPlaneError(`${failed.length} of ${ops.length} ARP/FDB updates failed, first: ${failed[0]!.e!.message}`);
    }
  }

  /** The veth between the node and the ingress network's namespace (only while view.ingressAddr is set). */
  private ensureIngress(view: NetView): void {
    const host = this.host;
    const hostIf = this.names.ingressLink;
    const ing = view.networks.find((n) => n.ingress);
    const hl = nl.getLink(hostIf, host);
    if (!ing || !view.ingressAddr) {
      if (hl) dropLink(hostIf, host);
      return;
    }
    const st = this.nets.get(netKey(ing.id));
    if (!st || !fs.existsSync(st.nsPath)) return; // ensureNetwork failed (reported already)
    const ns = { netns: st.nsPath };
    let nsl = nl.getLink(INGRESS_NS_IF, ns);
    let hostSide = hl;
    if (hostSide && (hostSide.kind !== 'veth' || !nsl)) {
      dropLink(hostIf, host);
      hostSide = null;
      nsl = nl.getLink(INGRESS_NS_IF, ns);
    }
    if (nsl && !hostSide) {
      dropLink(INGRESS_NS_IF, ns);
      nsl = null;
    }
    const mtu = this.overlayMtu;
    if (!hostSide) {
      nl.createVeth(hostIf, INGRESS_NS_IF, { ...host, peerNetns: st.nsPath, mtu, up: true, peerUp: true });
    } else {
      if (!hostSide.up) nl.setUp(hostIf, true, host);
      if (nsl && !nsl.up) nl.setUp(INGRESS_NS_IF, true, ns);
    }
    const len = NODE_LOCAL.ingressLinkPrefix;
    const hostAddr = `${NODE_LOCAL.ingressHostAddr}/${len}`;
    const nsAddr = `${NODE_LOCAL.ingressNsAddr}/${len}`;
    const hostLinks = nl.listLinks(host);
    if (!nl.listAddresses({ ...host, dev: hostIf, links: hostLinks }).some((a) => a.cidr === hostAddr))
      nl.addAddress(hostIf, hostAddr, { ...host, replace: true });
    const nsLinks = nl.listLinks(ns);
    if (!nl.listAddresses({ ...ns, dev: INGRESS_NS_IF, links: nsLinks }).some((a) => a.cidr === nsAddr))
      nl.addAddress(INGRESS_NS_IF, nsAddr, { ...ns, replace: true });
    const def = nl.listRoutes({ ...ns, links: nsLinks }).find((r) => r.dst === 'default');
    if (!def || def.via !== NODE_LOCAL.ingressHostAddr || def.dev !== INGRESS_NS_IF) {
      nl.replaceRoute({ dst: 'default', via: NODE_LOCAL.ingressHostAddr, dev: INGRESS_NS_IF }, ns);
    }
    nl.sysctlEnsure('net.ipv4.ip_forward', 1, ns);
  }

  /** Removes networks the view no longer lists that no local task uses. */
  private pruneNetworks(): void {
    if (!this.view) return;
    const wanted = new Set(this.view.networks.map((n) => netKey(n.id)));
    const used = new Set<string>();
    for (const t of this.tasks.values()) for (const a of t.atts) used.add(netKey(a.networkId));
    for (const st of [...this.nets.values()]) {
      if (wanted.has(st.key) || used.has(st.key)) continue;
      this.removeNetwork(st);
    }
  }

  /** Unmounts the namespace: the kernel then destroys it and its devices in the background. */
  private removeNetwork(st: NetState): void {
    this.log(`dataplane: removing network ${st.id}`);
    try {
      nl.deleteNetns(st.nsPath);
    } catch (e) {
      if (!isCode(e, 'ENOENT')) throw e;
    }
    this.nets.delete(st.key);
    this.lastNetRemoval = performance.now();
  }

  // ------------------------------------------------------------------------------------------- tasks

  /**
   * Creates the task's namespace with one veth per attachment (eth<i>, on the network's bridge) and a leg
   * on the node's gateway bridge (gw0, default route, egress NAT, the DNS resolver). Synchronous (about a
   * millisecond per interface). Idempotent for the same attachments.
   */
  attachTask(taskId: string, attachments: TaskAttachment[]): AttachResult {
    if (!/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(taskId)) throw new DataPlaneError(`invalid task id ${JSON.stringify(taskId)}`);
    const w0 = nl.netlinkStats().writes;
    try {
      return this.attach(taskId, attachments);
    } finally {
      this.totalWrites += nl.netlinkStats().writes - w0;
    }
  }

  private attach(taskId: string, attachments: TaskAttachment[]): AttachResult {
    const view = this.view;
    const nets: NetInfo[] = attachments.map((a) => {
      const info = view?.networks.find((n) => n.id === a.networkId) ?? a.network;
      if (!info) throw new DataPlaneError(`task ${taskId}: network ${a.networkId} is not in the view`);
      return info;
    });
    const atts: AttState[] = attachments.map((a, i) => {
      const ip = a.ip.includes('/') ? a.ip : `${a.ip}/${parseCidr(nets[i]!.subnet).prefixLen}`;
      const c = parseCidr(ip);
      return { networkId: a.networkId, ip, mac: a.mac ?? macForIp(c.ip), ifname: `eth${i}`, peer: this.names.netPeer(taskId) };
    });
    if (new Set(atts.map((a) => netKey(a.networkId))).size !== atts.length) {
      throw new DataPlaneError(`task ${taskId}: attached twice to one network`);
    }
    const existing = this.tasks.get(taskId);
    if (existing) {
      const same =
        existing.atts.length === atts.length &&
        existing.atts.every((a, i) => a.networkId === atts[i]!.networkId && a.ip === atts[i]!.ip && a.mac === atts[i]!.mac);
      if (same) return this.result(existing);
      throw new DataPlaneError(`task ${taskId} is already attached with other networks (detach it first)`);
    }
    if (!view) throw new DataPlaneError('attachTask before the first apply(view)');
    const nsPath = this.nsPathOf(this.names.taskNs(taskId));
    const clash = [...this.tasks.values()].find((o) => o.nsPath === nsPath);
    if (clash) throw new DataPlaneError(`task ${taskId}: namespace ${nsPath} belongs to task ${clash.id} (ids share their first 12 characters)`);
    const mtu = this.overlayMtu;
    for (const net of nets) {
      const st = this.nets.get(netKey(net.id));
      if (!st || !fs.existsSync(st.nsPath)) this.ensureNetwork(net, view);
    }
    const t: TaskState = {
      id: taskId,
      nsPath,
      gwIp: this.allocGw(),
      gwPeer: this.names.gwPeer(taskId),
      egress: nets.length === 0 || nets.some((n) => !n.internal),
      atts: [],
    };
    try {
      if (fs.existsSync(t.nsPath)) nl.deleteNetns(t.nsPath); // a leftover of this task's earlier incarnation
      nl.createNetns(t.nsPath);
      nl.setUp('lo', true, { netns: t.nsPath });
      for (const a of atts) {
        this.createAttachment(t, a, this.nets.get(netKey(a.networkId))!, mtu);
        t.atts.push(a);
      }
      this.createGwLeg(t);
    } catch (e) {
      this.undoAttach(t);
      throw e;
    }
    this.tasks.set(taskId, t);
    return this.result(t);
  }

  private createAttachment(t: TaskState, a: AttState, st: NetState, mtu: number): void {
    const ns = { netns: st.nsPath };
    const opts: nl.VethOpts = { ...ns, peerNetns: t.nsPath, mtu, peerMac: a.mac, master: BRIDGE_IF, up: true };
    try {
      nl.createVeth(a.peer, a.ifname, opts);
    } catch (e) {
      if (!isCode(e, 'EEXIST')) throw e;
      // A stale half of an earlier pair (its other end's namespace is still being destroyed).
      dropLink(a.peer, ns);
      dropLink(a.ifname, { netns: t.nsPath });
      nl.createVeth(a.peer, a.ifname, opts);
    }
    nl.setLink(a.peer, { alias: t.id }, ns);
    nl.setLink(a.ifname, { up: true, alias: a.networkId }, { netns: t.nsPath });
    nl.addAddress(a.ifname, a.ip, { netns: t.nsPath });
  }

  private createGwLeg(t: TaskState): void {
    const host = this.host;
    const task = { netns: t.nsPath };
    const opts: nl.VethOpts = { ...host, peerNetns: t.nsPath, mtu: this.overlayMtu, master: this.names.gwBridge, up: true };
    try {
      nl.createVeth(t.gwPeer, GW_IF, opts);
    } catch (e) {
      if (!isCode(e, 'EEXIST')) throw e;
      dropLink(t.gwPeer, host);
      dropLink(GW_IF, task);
      nl.createVeth(t.gwPeer, GW_IF, opts);
    }
    // Port isolation: tasks reach the node (DNS, NAT) through the gateway bridge, never each other.
    nl.setLink(t.gwPeer, { isolated: true, alias: t.id }, host);
    nl.setLink(GW_IF, { up: true, alias: t.id }, task);
    nl.addAddress(GW_IF, `${t.gwIp}/${parseCidr(NODE_LOCAL.gwBridgeCidr).prefixLen}`, task);
    if (t.egress) nl.addRoute({ dst: 'default', via: NODE_LOCAL.gwBridgeAddr, dev: GW_IF }, task);
  }

  private undoAttach(t: TaskState): void {
    try {
      if (fs.existsSync(t.nsPath)) nl.deleteNetns(t.nsPath);
    } catch {
      /* best effort */
    }
    const byNs = new Map<string, string[]>([[this.hostNetns, [t.gwPeer]]]);
    for (const a of t.atts) {
      const st = this.nets.get(netKey(a.networkId));
      if (st) byNs.set(st.nsPath, [...(byNs.get(st.nsPath) ?? []), a.peer]);
    }
    const jobs = [...byNs].map(([ns, names]) => this.queueDelete(ns, names));
    this.track(Promise.all(jobs).then(() => this.releaseGw(t.gwIp)));
  }

  private result(t: TaskState): AttachResult {
    return {
      netnsPath: t.nsPath,
      resolvConf: RESOLV_CONF,
      gwIp: t.gwIp,
      interfaces: t.atts.map((a) => ({ name: a.ifname, networkId: a.networkId, ip: a.ip, mac: a.mac })),
    };
  }

  /**
   * Removes the task's namespace (at once) and its veths (asynchronously, batched: the kernel takes ~17 ms
   * per veth). Resolves when the veths are gone; networks left unused and unwanted are removed then.
   */
  async detachTask(taskId: string): Promise<void> {
    // A task adopted after a restart is known by the 12 characters its namespace name carries.
    const key = this.tasks.has(taskId) ? taskId : taskId.slice(0, 12);
    const t = this.tasks.get(key);
    const nsPath = t?.nsPath ?? this.nsPathOf(this.names.taskNs(taskId));
    if (t) this.tasks.delete(key);
    try {
      if (fs.existsSync(nsPath)) nl.deleteNetns(nsPath);
    } catch (e) {
      if (!isCode(e, 'ENOENT')) throw e;
    }
    if (!t) return;
    const byNs = new Map<string, string[]>([[this.hostNetns, [t.gwPeer]]]);
    for (const a of t.atts) {
      const st = this.nets.get(netKey(a.networkId));
      if (st) byNs.set(st.nsPath, [...(byNs.get(st.nsPath) ?? []), a.peer]);
    }
    const done = Promise.all([...byNs].map(([ns, names]) => this.queueDelete(ns, names))).then(() => {
      this.releaseGw(t.gwIp);
      this.pruneNetworks();
    });
    this.track(done);
    await done;
  }

  private track<T>(p: Promise<T>): void {
    const q: Promise<void> = p.then(
      () => void this.inflight.delete(q),
      (e: unknown) => {
        this.inflight.delete(q);
        this.log(`dataplane: background cleanup failed: ${(e as Error).message}`);
      },
    );
    this.inflight.add(q);
  }

  /** Deletes links on a worker thread; requests for one namespace made in the same tick share one job. */
  private queueDelete(ns: string, names: string[]): Promise<void> {
    let q = this.delQueue.get(ns);
    if (!q) {
      let resolve!: () => void;
      const promise = new Promise<void>((r) => (resolve = r));
      const entry = { names: [] as string[], promise, resolve };
      this.delQueue.set(ns, entry);
      setImmediate(() => {
        this.delQueue.delete(ns);
        const w0 = nl.netlinkStats().writes;
        nl.deleteLinks(entry.names, { netns: ns })
          .then((res) => {
            for (const r of res) if (r.error) this.log(`dataplane: ${r.error.message}`);
          })
          .catch((e: unknown) => this.log(`dataplane: deleting ${entry.names.join(', ')}: ${(e as Error).message}`))
          .finally(() => entry.resolve());
        this.totalWrites += nl.netlinkStats().writes - w0;
      });
      q = entry;
    }
    q.names.push(...names);
    return q.promise;
  }

  private allocGw(): string {
    const { first, last } = this.gwRange;
    const bridge = ipToInt(NODE_LOCAL.gwBridgeAddr);
    const size = last - first + 1;
    for (let i = 0; i < size; i++) {
      const c = this.gwCursor;
      this.gwCursor = c >= last ? first : c + 1;
      if (c === bridge || this.gwUsed.has(c)) continue;
      this.gwUsed.add(c);
      return intToIp(c);
    }
    throw new DataPlaneError(`gateway bridge addresses exhausted (${NODE_LOCAL.gwBridgeCidr})`);
  }

  private releaseGw(ip: string): void {
    this.gwUsed.delete(ipToInt(ip));
  }

  // ------------------------------------------------------------------------------------ restart, gc

  /**
   * Rebuilds the in-memory state from the kernel after a restart: this prefix's network and task
   * namespaces, the tasks' attachments and gateway addresses (the allocator resumes from them). Changes
   * nothing; the next apply() converges, gc() removes what is no longer wanted.
   */
  adopt(): AdoptReport {
    const netPrefix = `${this.prefix}n-`;
    const taskPrefix = `${this.prefix}t-`;
    for (const name of nl.listNetns(this.prefix, this.netnsDir)) {
      const nsPath = this.nsPathOf(name);
      try {
        if (name.startsWith(netPrefix)) {
          const key = name.slice(netPrefix.length);
          if (this.nets.has(key)) continue;
          const br = nl.getLink(BRIDGE_IF, { netns: nsPath });
          this.nets.set(key, { key, id: br?.alias ?? key, nsPath, info: null });
        } else if (name.startsWith(taskPrefix)) {
          this.adoptTask(nsPath, name.slice(taskPrefix.length));
        }
      } catch (e) {
        this.log(`dataplane: cannot adopt ${name}: ${(e as Error).message}`);
      }
    }
    // Veths whose task is unknown (their namespace vanished while a process held it, or never adopted).
    const known = new Set(this.tasks.keys());
    this.orphans = [];
    const sp = this.names.shortPrefix;
    const scan = (ns: string, kind: string) => {
      for (const l of nl.listLinks({ netns: ns })) {
        if (l.kind !== 'veth' || !l.name.startsWith(sp + kind) || l.name.length !== sp.length + 9) continue;
        if (!l.alias || !known.has(l.alias)) this.orphans.push({ ns, name: l.name });
      }
    };
    try {
      scan(this.hostNetns, 'g');
      for (const st of this.nets.values()) scan(st.nsPath, 'v');
    } catch (e) {
      this.log(`dataplane: orphan scan: ${(e as Error).message}`);
    }
    return { networks: this.networkIds(), tasks: this.taskIds(), orphans: this.orphans.length };
  }

  private adoptTask(nsPath: string, short: string): void {
    const ns = { netns: nsPath };
    const links = nl.listLinks(ns);
    const addrs = nl.listAddresses({ ...ns, links });
    const gw = links.find((l) => l.name === GW_IF);
    const id = gw?.alias ?? short;
    if (this.tasks.has(id)) return;
    const gwAddr = addrs.find((a) => a.dev === GW_IF);
    const routes = nl.listRoutes({ ...ns, links });
    const atts: AttState[] = links
      .filter((l) => /^eth\d+$/.test(l.name))
      .sort((a, b) => Number(a.name.slice(3)) - Number(b.name.slice(3)))
      .map((l) => ({
        networkId: l.alias ?? '',
        ip: addrs.find((a) => a.dev === l.name)?.cidr ?? '',
        mac: l.mac,
        ifname: l.name,
        peer: this.names.netPeer(id),
      }))
      .filter((a) => a.networkId && a.ip);
    const t: TaskState = {
      id,
      nsPath,
      gwIp: gwAddr?.address ?? '',
      gwPeer: this.names.gwPeer(id),
      egress: routes.some((r) => r.dst === 'default' && r.dev === GW_IF),
      atts,
    };
    if (t.gwIp) this.gwUsed.add(ipToInt(t.gwIp));
    this.tasks.set(id, t);
  }

  /**
   * Adopts whatever of ours it does not know yet, then detaches every task not in liveTaskIds (a task
   * adopted without its full id matches by prefix), deletes orphaned veths and leftover task namespaces,
   * and removes networks neither wanted by the last view nor used.
   */
  async gc(liveTaskIds: Iterable<string>): Promise<{ detached: string[]; orphans: number }> {
    this.adopt();
    const live = [...liveTaskIds];
    const liveSet = new Set(live);
    const isLive = (id: string) => liveSet.has(id) || (id.length === 12 && live.some((l) => l.startsWith(id)));
    const dead = [...this.tasks.keys()].filter((id) => !isLive(id));
    const jobs: Promise<unknown>[] = dead.map((id) => this.detachTask(id));
    // Task namespaces of ours that no task state covers.
    const covered = new Set([...this.tasks.values()].map((t) => path.basename(t.nsPath)));
    for (const name of nl.listNetns(`${this.prefix}t-`, this.netnsDir)) {
      if (covered.has(name)) continue;
      try {
        nl.deleteNetns(this.nsPathOf(name));
      } catch (e) {
        if (!isCode(e, 'ENOENT')) throw e;
      }
    }
    const orphans = this.orphans;
    this.orphans = [];
    const byNs = new Map<string, string[]>();
    for (const o of orphans) byNs.set(o.ns, [...(byNs.get(o.ns) ?? []), o.name]);
    for (const [ns, names] of byNs) jobs.push(this.queueDelete(ns, names));
    await Promise.all(jobs);
    this.pruneNetworks();
    return { detached: dead, orphans: orphans.length };
  }

  /** Removes everything this data plane made: tasks, networks, the ingress link, the gateway bridge and NAT. */
  async destroy(): Promise<void> {
    const jobs: Promise<unknown>[] = [...this.tasks.keys()].map((id) => this.detachTask(id));
    await Promise.all(jobs);
    while (this.inflight.size) await Promise.all([...this.inflight]);
    for (const st of [...this.nets.values()]) this.removeNetwork(st);
    for (const name of nl.listNetns(this.prefix, this.netnsDir)) {
      if (name.startsWith(`${this.prefix}n-`) || name.startsWith(`${this.prefix}t-`)) {
        try {
          nl.deleteNetns(this.nsPathOf(name));
        } catch (e) {
          if (!isCode(e, 'ENOENT')) throw e;
        }
      }
    }
    const sp = this.names.shortPrefix;
    const hostLinks = nl.listLinks(this.host);
    const mine = hostLinks
      .filter(
        (l) =>
          l.name === this.names.ingressLink ||
          l.name === this.names.gwBridge ||
          (l.kind === 'veth' && l.name.startsWith(`${sp}g`) && l.name.length === sp.length + 9),
      )
      .map((l) => l.name);
    await this.queueDelete(this.hostNetns, mine);
    const r = this.nft(['delete', 'table', 'ip', NAT_TABLE]);
    if (!r.ok && !/No such file|does not exist/i.test(r.err)) this.log(`dataplane: nft delete table: ${r.err}`);
    this.natCheckedAt = 0;
    this.orphans = [];
    this.gwUsed.clear();
    this.view = null;
  }
}
