// Network confinement: what a task may reach besides its own overlay networks (security review, finding 4).
// Without these tables a task reached every port of its node through the gateway bridge (the manager's
// 2377, ssh, …), every other node's 2377 and VXLAN port through the egress masquerade (and so could inject
// frames into any overlay by VNI), left "internal" networks with raw packets, and could send with another
// task's source address. Three kinds of nft tables close that, rendered here from the view and the local
// tasks (pure: text in, text out) and kept converged by GuardProgrammer:
//
//   node ns,  table ip shoal-guard      input:   from the gateway bridge only DNS at 172.31.0.1 (and replies);
//                                                from the ingress link only replies; VXLAN only from nodes
//                                       forward: from the gateway bridge: sealed (internal-only) tasks
//                                                nothing; no cluster node's 2377/tcp or 4789/udp; no hairpin
//                                                to another task's leg; into the ingress link only DNATed
//                                                (mesh) traffic; from the ingress link only replies
//   node ns,  table bridge shoal-guard  each task's gateway leg carries only its own source address
//   network ns, table bridge shoal-guard  each local task's port carries only its own MAC + address
//
// Published ports keep working because the mesh and host-port tables DNAT in prerouting, before these
// hooks: such traffic is forwarded with `ct status dnat` and is never "input". Every table is a filter with
// policy accept that only drops, so it never lets through what another table (mesh, host ports) refuses.
import { NODE_LOCAL, type NetView } from '../api/netview.ts';
import { emptyTable, isIpv4, NftApplier, TableProgrammer, type NftTable, type VerifyResult } from './nft.ts';

export const GUARD_TABLE = 'shoal-guard';
/** The manager's port (daemon/daemon.ts) and VXLAN's: what a task must never reach on any node. */
export const MANAGER_PORT = 2377;
export const VXLAN_UDP_PORT = 4789;

/** A local task's leg on the node's gateway bridge. */
export interface GwLeg {
  /** Node-side veth name (a port of the gateway bridge). */
  port: string;
  ip: string;
  /** The task is on internal networks only: no way out through the gateway at all (DNS excepted). */
  sealed: boolean;
}

/** A local task's port on one network's bridge (in the network's namespace). */
export interface NetLeg {
  port: string;
  mac: string;
  ip: string;
}

export interface NodeGuardInput {
  /** `<LP>gwbr` */
  gwBridge: string;
  /** `<LP>ing` */
  ingressLink: string;
  /** Every cluster node's underlay address (managers' 2377 listen there, VXLAN comes from there). */
  nodeAddrs: readonly string[];
}

export class GuardError extends Error {
  override name = 'GuardError';
}

const q = (s: string) => `"${s}"`;

function checkIfname(s: string, what: string): void {
  if (!/^[A-Za-z0-9_.-]{1,15}$/.test(s)) throw new GuardError(`${what}: invalid interface name ${JSON.stringify(s)}`);
}

function checkIp(s: string, what: string): void {
  if (!isIpv4(s)) throw new GuardError(`${what}: invalid IPv4 address ${JSON.stringify(s)}`);
}

/**
 * The cluster's node addresses a view tells of: the explicit list (view.nodeAddrs), every endpoint's VTEP
 * and the node's own. Sorted, unique.
 */
export function clusterAddrs(view: NetView): string[] {
  const s = new Set<string>();
  for (const a of view.nodeAddrs ?? []) if (isIpv4(a)) s.add(a);
  for (const e of view.endpoints) if (isIpv4(e.vtep)) s.add(e.vtep);
  if (isIpv4(view.vtep)) s.add(view.vtep);
  return [...s].sort();
}

/** The node namespace's `ip shoal-guard` table. */
export function nodeGuardTable(o: NodeGuardInput, legs: readonly GwLeg[]): NftTable {
  checkIfname(o.gwBridge, 'gateway bridge');
  checkIfname(o.ingressLink, 'ingress link');
  const t = emptyTable(GUARD_TABLE, 'ip');
  const nodes = new Map<string, null>();
  for (const a of o.nodeAddrs) {
    checkIp(a, 'node address');
    nodes.set(a, null);
  }
  const sealed = new Map<string, null>();
  for (const l of legs) {
    checkIp(l.ip, `gateway leg ${l.port}`);
    if (l.sealed) sealed.set(l.ip, null);
  }
  t.sets.set('nodes', { kind: 'set', decl: ['type ipv4_addr'], elements: nodes });
  t.sets.set('sealed', { kind: 'set', decl: ['type ipv4_addr'], elements: sealed });
  const gw = q(o.gwBridge);
  const ing = q(o.ingressLink);
  t.chains.set('input', {
    hook: 'type filter hook input priority filter; policy accept;',
    rules: [
      `iifname ${gw} ip daddr ${NODE_LOCAL.gwBridgeAddr} meta l4proto { tcp, udp } th dport 53 accept`,
      `iifname ${gw} ct state established,related accept`,
      `iifname ${gw} ct status dnat accept`,
      `iifname ${gw} reject with tcp reset`,
      `iifname ${gw} reject with icmp admin-prohibited`,
      `iifname ${ing} ct state established,related accept`,
      `iifname ${ing} drop`,
      // The kernel's VXLAN sockets accept any sender: only cluster nodes may put frames into an overlay.
      `udp dport ${VXLAN_UDP_PORT} ip saddr != @nodes drop`,
    ],
  });
  t.chains.set('forward', {
    hook: 'type filter hook forward priority filter; policy accept;',
    rules: [
      `iifname ${gw} ct state established,related accept`,
      `iifname ${gw} ip saddr @sealed drop`,
      `iifname ${gw} ip daddr @nodes tcp dport ${MANAGER_PORT} reject with tcp reset`,
      `iifname ${gw} ip daddr @nodes udp dport ${VXLAN_UDP_PORT} drop`,
      `iifname ${gw} oifname ${gw} ct status dnat accept`,
      `iifname ${gw} oifname ${gw} drop`,
      `iifname ${gw} oifname ${ing} ct status dnat accept`,
      `iifname ${gw} oifname ${ing} drop`,
      `iifname ${ing} ct state established,related accept`,
      `iifname ${ing} drop`,
    ],
  });
  return t;
}

/** The node namespace's `bridge shoal-guard` table: a gateway leg sends only with its task's address. */
export function gwBridgeGuardTable(legs: readonly GwLeg[]): NftTable {
  const t = emptyTable(GUARD_TABLE, 'bridge');
  const pairs = new Map<string, null>();
  const ports = new Map<string, null>();
  for (const l of legs) {
    checkIfname(l.port, 'gateway leg');
    checkIp(l.ip, `gateway leg ${l.port}`);
    pairs.set(`${q(l.port)} . ${l.ip}`, null);
    ports.set(q(l.port), null);
  }
  t.sets.set('legs', { kind: 'set', decl: ['type ifname . ipv4_addr'], elements: pairs });
  t.sets.set('ports', { kind: 'set', decl: ['type ifname'], elements: ports });
  t.chains.set('prerouting', {
    hook: 'type filter hook prerouting priority filter; policy accept;',
    rules: ['iifname . ip saddr @legs accept', 'iifname . arp saddr ip @legs accept', 'iifname @ports drop'],
  });
  return t;
}

/**
 * A network namespace's `bridge shoal-guard` table: frames from a local task's port carry that task's MAC
 * and address (so it can neither spoof a peer nor poison br0's forwarding database); frames from vxlan0
 * were checked by the sending node.
 */
export function netBridgeGuardTable(legs: readonly NetLeg[], vxlanIf = 'vxlan0'): NftTable {
  checkIfname(vxlanIf, 'vxlan device');
  const t = emptyTable(GUARD_TABLE, 'bridge');
  const triples = new Map<string, null>();
  for (const l of legs) {
    checkIfname(l.port, 'network leg');
    checkIp(l.ip, `network leg ${l.port}`);
    if (!/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/.test(l.mac)) throw new GuardError(`network leg ${l.port}: invalid MAC ${JSON.stringify(l.mac)}`);
    triples.set(`${q(l.port)} . ${l.mac} . ${l.ip}`, null);
  }
  t.sets.set('legs', { kind: 'set', decl: ['type ifname . ether_addr . ipv4_addr'], elements: triples });
  t.chains.set('prerouting', {
    hook: 'type filter hook prerouting priority filter; policy accept;',
    rules: [`iifname ${q(vxlanIf)} accept`, 'iifname . ether saddr . ip saddr @legs accept', 'iifname . ether saddr . arp saddr ip @legs accept', 'drop'],
  });
  return t;
}

export interface GuardState {
  node: NodeGuardInput;
  gwLegs: GwLeg[];
  /** Network namespace path → the local tasks' legs there. */
  netLegs: Map<string, NetLeg[]>;
}

export interface GuardProgrammerOptions {
  /** The node's namespace (null: the one Shoal runs in). */
  netns: string | null;
  applier?: NftApplier;
  onFallback?: (err: Error) => void;
}

/**
 * Keeps every guard table converged: set elements change incrementally (one nft transaction), verify()
 * reloads a table that was flushed or edited. Network namespaces that are gone are forgotten.
 */
export class GuardProgrammer {
  private readonly applier: NftApplier;
  private readonly nodeIp: TableProgrammer;
  private readonly nodeBridge: TableProgrammer;
  private readonly nets = new Map<string, TableProgrammer>();

  constructor(readonly opts: GuardProgrammerOptions) {
    this.applier = opts.applier ?? new NftApplier();
    const o = { applier: this.applier, netns: opts.netns, compactAfterMs: 0, ...(opts.onFallback ? { onFallback: opts.onFallback } : {}) };
    this.nodeIp = new TableProgrammer(o);
    this.nodeBridge = new TableProgrammer(o);
  }

  private netProgrammer(ns: string): TableProgrammer {
    let p = this.nets.get(ns);
    if (!p) {
      p = new TableProgrammer({ applier: this.applier, netns: ns, compactAfterMs: 0, ...(this.opts.onFallback ? { onFallback: this.opts.onFallback } : {}) });
      this.nets.set(ns, p);
    }
    return p;
  }

  /** Converges every table on the state (the anti-spoofing tables first: they guard the new legs). */
  async update(s: GuardState): Promise<void> {
    const errors: string[] = [];
    for (const [ns, legs] of s.netLegs) {
      await this.netProgrammer(ns)
        .set(netBridgeGuardTable(legs))
        .catch((e: Error) => errors.push(`${ns}: ${e.message}`));
    }
    for (const [ns, p] of this.nets) {
      if (s.netLegs.has(ns)) continue;
      p.dispose();
      this.nets.delete(ns);
    }
    await this.nodeBridge.set(gwBridgeGuardTable(s.gwLegs)).catch((e: Error) => errors.push(`bridge ${GUARD_TABLE}: ${e.message}`));
    await this.nodeIp.set(nodeGuardTable(s.node, s.gwLegs)).catch((e: Error) => errors.push(`ip ${GUARD_TABLE}: ${e.message}`));
    if (errors.length) throw new GuardError(`guard tables: ${errors.join('; ')}`);
  }

  /** Re-asserts every table (reloaded whole when missing or different); lists what had to be repaired. */
  async verify(): Promise<string[]> {
    const out: string[] = [];
    const note = (what: string, r: VerifyResult) => {
      if (!r.ok) out.push(`${what}: ${r.reason ?? 'differed'}`);
    };
    note(`ip ${GUARD_TABLE}`, await this.nodeIp.verify());
    note(`bridge ${GUARD_TABLE}`, await this.nodeBridge.verify());
    for (const [ns, p] of this.nets) {
      try {
        note(`${ns} bridge ${GUARD_TABLE}`, await p.verify());
      } catch (e) {
        out.push(`${ns}: ${(e as Error).message}`);
      }
    }
    return out;
  }

  /** Deletes the node's guard tables (network namespaces take theirs with them). */
  async remove(): Promise<void> {
    await this.nodeIp.remove('ip', GUARD_TABLE);
    await this.nodeBridge.remove('bridge', GUARD_TABLE);
    for (const p of this.nets.values()) p.dispose();
    this.nets.clear();
  }

  dispose(): void {
    this.nodeIp.dispose();
    this.nodeBridge.dispose();
    for (const p of this.nets.values()) p.dispose();
  }
}
