// What each node must know about the overlay networks (api/netview.ts NetView), computed from the
// store's objects. Pure: the manager calls it with one consistent read of the store and sends the
// result over the node's session when it changed (diffNetViews).
//
// A node sees:
//   * networks: every allocated network with at least one of its tasks holding an address on it, plus
//     the ingress network on every node (the routing mesh runs everywhere);
//   * endpoints: every attachment, cluster-wide, on those networks, of tasks that hold their addresses
//     (allocator.ts holdsAddresses: so an address the allocator may hand out again is never listed
//     twice) and run on a node with a known address (the VXLAN tunnel endpoint);
//   * services: those attached to those networks, and every service with published ports;
//   * ingressAddr: its own address on the ingress network.
// Everything is sorted, so equal states give equal JSON.
import { macForIp } from '../../api/netview.ts';
import type { Endpoint, NetInfo, NetView, SvcInfo } from '../../api/netview.ts';
import type { Frozen, Network, Node, PortConfig, Service, Task } from '../../api/objects.ts';
import { HOST_NETWORK, holdsAddresses, ingressNetwork, isAllocated, publishesIngress, resolveNetwork } from './allocator.ts';
import { addrOf, parseIp } from './ipam.ts';

export interface NetSnapshot {
  networks: readonly Frozen<Network>[];
  services: readonly Frozen<Service>[];
  tasks: readonly Frozen<Task>[];
  nodes: readonly Frozen<Node>[];
}

const IPV4 = /(?:^|[^\d.])(\d{1,3}(?:\.\d{1,3}){3})(?![\d.])/;

/** The host part of an address that may carry a port (`10.0.0.5:2377` → `10.0.0.5`, `[::1]:2377` → `::1`). */
export function hostPart(addr: string): string {
  const m = IPV4.exec(addr);
  if (m !== null) return m[1]!;
  const b = /^\[([^\]]+)\](?::\d+)?$/.exec(addr);
  if (b !== null) return b[1]!;
  const i = addr.indexOf(':');
  return i >= 0 && addr.indexOf(':', i + 1) < 0 ? addr.slice(0, i) : addr;
}

/** A node's underlay address (its VTEP): the address it advertised, else the one it was seen from. */
export function nodeVtep(n: Frozen<Node> | undefined): string {
  if (n === undefined) return '';
  return hostPart(n.description?.addr ?? '') || hostPart(n.status?.addr ?? '');
}

/**
 * Whether a node's update can change any node's NetView: what the views read of a node is its underlay
 * address, its network attachments and whether it is down. A hello (heartbeat time, description), a
 * certificate renewal or a label change cannot; recomputing every node's view for each of them cost
 * the leader O(nodes × view) per hello while thousands of nodes (re)connect.
 */
export function nodeChangeAffectsNetViews(old: Frozen<Node>, n: Frozen<Node>): boolean {
  return (
    nodeVtep(old) !== nodeVtep(n) ||
    (old.status.state === 'down') !== (n.status.state === 'down') ||
    JSON.stringify(old.attachments ?? null) !== JSON.stringify(n.attachments ?? null)
  );
}

function ipNum(ip: string): number {
  try {
    return parseIp(ip);
  } catch {
    return -1;
  }
}

const byId = <T extends { id: string }>(a: T, b: T) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);

function portOrder(a: PortConfig, b: PortConfig): number {
  return (a.publishedPort ?? 0) - (b.publishedPort ?? 0) || (a.protocol < b.protocol ? -1 : a.protocol > b.protocol ? 1 : 0) || a.targetPort - b.targetPort;
}

/**
 * Everything that does not depend on the node, computed once for all nodes: O(nodes + tasks). A view
 * from it costs only its own size, so a caller serving many nodes between store changes keeps one
 * (the dispatcher, for each hello: building one per hello was O(nodes) each, O(nodes²) for a reconnect
 * storm, and stalled a 5,000-node leader for seconds).
 */
export class NetIndex {
  readonly nodes: Map<string, Frozen<Node>>;
  readonly nets = new Map<string, NetInfo>();
  readonly ingressId: string | undefined;
  /** Endpoints by network id, sorted. */
  readonly endpoints = new Map<string, Endpoint[]>();
  /** Networks each node has a task on. */
  readonly nodeNets = new Map<string, Set<string>>();
  /** Service id → networks it is attached to (allocated ones). */
  readonly svcNets = new Map<string, Set<string>>();
  readonly services: Frozen<Service>[];
  /** Every node's underlay address (guards VXLAN and the manager port against tasks, overlay-net/filter.ts). */
  readonly nodeAddrs: string[];

  constructor(snap: NetSnapshot) {
    this.nodes = new Map(snap.nodes.map((n) => [n.id, n]));
    this.nodeAddrs = [...new Set(snap.nodes.map((n) => nodeVtep(n)).filter((a) => ipNum(a) >= 0))].sort((a, b) => ipNum(a) - ipNum(b));
    for (const n of snap.networks) {
      if (!isAllocated(n)) continue;
      const s = n.allocation!.subnets![0]!;
      this.nets.set(n.id, {
        id: n.id,
        name: n.spec.name,
        vni: n.allocation!.vni!,
        subnet: s.subnet,
        gateway: s.gateway,
        internal: n.spec.internal === true,
        attachable: n.spec.attachable === true,
        ingress: n.spec.ingress === true,
      });
    }
    const ingress = ingressNetwork(snap.networks);
    this.ingressId = ingress !== undefined && this.nets.has(ingress.id) ? ingress.id : undefined;
    const svcName = new Map(snap.services.map((s) => [s.id, s.spec.name]));
    for (const t of snap.tasks) {
      if (t.networks.length === 0 || t.nodeId === undefined || !holdsAddresses(t, this.nodes)) continue;
      const vtep = nodeVtep(this.nodes.get(t.nodeId));
      let mine = this.nodeNets.get(t.nodeId);
      for (const att of t.networks) {
        if (!this.nets.has(att.networkId)) continue;
        if (mine === undefined) this.nodeNets.set(t.nodeId, (mine = new Set()));
        mine.add(att.networkId);
        const a = att.addresses[0];
        if (a === undefined || vtep === '') continue;
        const ip = addrOf(a);
        const serviceName = svcName.get(t.serviceId) ?? t.serviceAnnotations.name;
        const ep: Endpoint = {
          networkId: att.networkId,
          taskId: t.id,
          serviceId: t.serviceId,
          serviceName,
          taskName: `${serviceName}.${t.slot ?? t.nodeId}.${t.id}`,
          ip,
          mac: macForIp(ip),
          nodeId: t.nodeId,
          vtep,
          aliases: [...(att.aliases ?? [])],
          // A task told to stop leaves DNS and the load balancers at once, while it is still shutting down.
          running: t.status.state === 'running' && (t.desiredState === 'running' || t.desiredState === 'complete'),
        };
        let l = this.endpoints.get(att.networkId);
        if (l === undefined) this.endpoints.set(att.networkId, (l = []));
        l.push(ep);
      }
    }
    // Every node's own address on the ingress network is a peer too: routing-mesh traffic a node forwards
    // leaves with that source address, and the task's reply must find its way back to that node. These
    // endpoints belong to no service (never load-balancing backends, never in DNS).
    // (Only while some service publishes through the mesh: otherwise nobody needs them, and 200 nodes
    // × 200 endpoints would be recomputed and sent on every change for nothing.)
    if (this.ingressId !== undefined && snap.services.some((s) => publishesIngress(s))) {
      for (const n of snap.nodes) {
        const a = n.attachments?.find((x) => x.networkId === this.ingressId)?.addr;
        const vtep = nodeVtep(n);
        if (a === undefined || vtep === '' || n.status.state === 'down') continue;
        const ip = addrOf(a);
        let l = this.endpoints.get(this.ingressId);
        if (l === undefined) this.endpoints.set(this.ingressId, (l = []));
        l.push({
          networkId: this.ingressId,
          taskId: `node-${n.id}`,
          serviceId: '',
          serviceName: '',
          taskName: `ingress-endpoint.${n.description.hostname}`,
          ip,
          mac: macForIp(ip),
          nodeId: n.id,
          vtep,
          aliases: [],
          running: false,
        });
      }
    }
    for (const l of this.endpoints.values()) l.sort((a, b) => ipNum(a.ip) - ipNum(b.ip) || (a.taskId < b.taskId ? -1 : a.taskId > b.taskId ? 1 : 0));
    this.services = [...snap.services].sort(byId);
    for (const s of this.services) {
      const set = new Set<string>();
      for (const a of s.spec.networks ?? []) {
        if (a.target === HOST_NETWORK) continue;
        const n = resolveNetwork(snap.networks, a.target);
        if (n !== undefined && this.nets.has(n.id)) set.add(n.id);
      }
      if (publishesIngress(s) && this.ingressId !== undefined) set.add(this.ingressId);
      for (const v of s.status.endpoint?.virtualIps ?? []) if (this.nets.has(v.networkId)) set.add(v.networkId);
      this.svcNets.set(s.id, set);
    }
    this.aliasesOf = (s) => {
      const out: { networkId: string; aliases: string[] }[] = [];
      for (const a of s.spec.networks ?? []) {
        if (!a.aliases || a.aliases.length === 0) continue;
        const n = resolveNetwork(snap.networks, a.target);
        if (n !== undefined) out.push({ networkId: n.id, aliases: [...a.aliases] });
      }
      return out;
    };
  }

  readonly aliasesOf: (s: Frozen<Service>) => { networkId: string; aliases: string[] }[];

  private addrsJson: string | undefined;

  /**
   * JSON of nodeAddrs, made once per index: it is the same in every node's view and, at 5,000 nodes, most
   * of each view's bytes (see Dispatcher.sendNetViews).
   */
  get nodeAddrsJson(): string {
    this.addrsJson ??= JSON.stringify(this.nodeAddrs);
    return this.addrsJson;
  }

  /** The node's view; without `nodeAddrs` when `withNodeAddrs` is false (the caller adds nodeAddrsJson). */
  view(nodeId: string, withNodeAddrs = true): NetView {
    const node = this.nodes.get(nodeId);
    const netIds = new Set(this.nodeNets.get(nodeId) ?? []);
    if (this.ingressId !== undefined) netIds.add(this.ingressId);
    const networks = [...netIds].map((id) => this.nets.get(id)!).sort(byId);
    const endpoints: Endpoint[] = [];
    for (const n of networks) endpoints.push(...(this.endpoints.get(n.id) ?? []));
    const services: SvcInfo[] = [];
    for (const s of this.services) {
      const on = [...(this.svcNets.get(s.id) ?? [])].filter((id) => netIds.has(id));
      const ports = (s.status.endpoint?.ports ?? [])
        .filter((p) => p.publishedPort !== undefined)
        .map((p) => structuredClone(p) as PortConfig)
        .sort(portOrder);
      if (on.length === 0 && ports.length === 0) continue;
      const endpointMode = s.spec.endpoint?.mode ?? 'vip';
      const vips =
        endpointMode === 'dnsrr'
          ? []
          : (s.status.endpoint?.virtualIps ?? [])
              .filter((v) => netIds.has(v.networkId))
              .map((v) => ({ networkId: v.networkId, ip: addrOf(v.addr) }))
              .sort((a, b) => (a.networkId < b.networkId ? -1 : a.networkId > b.networkId ? 1 : 0));
      const aliases = this.aliasesOf(s)
        .filter((a) => netIds.has(a.networkId))
        .sort((a, b) => (a.networkId < b.networkId ? -1 : a.networkId > b.networkId ? 1 : 0));
      services.push({ id: s.id, name: s.spec.name, endpointMode, vips, ports, aliases });
    }
    const view: NetView = { nodeId, vtep: nodeVtep(node), networks, endpoints, services };
    if (withNodeAddrs) view.nodeAddrs = [...this.nodeAddrs];
    const ingressAddr = node?.attachments?.find((a) => a.networkId === this.ingressId)?.addr;
    if (ingressAddr !== undefined && this.ingressId !== undefined) view.ingressAddr = addrOf(ingressAddr);
    return view;
  }
}

/** The NetView of one node. */
export function nodeNetView(nodeId: string, snap: NetSnapshot): NetView {
  return new NetIndex(snap).view(nodeId);
}

/** The NetViews of several nodes (default: every node), sharing the work that does not depend on the node. */
export function nodeNetViews(snap: NetSnapshot, nodeIds: readonly string[] = snap.nodes.map((n) => n.id)): Map<string, NetView> {
  const idx = new NetIndex(snap);
  return new Map(nodeIds.map((id) => [id, idx.view(id)]));
}

/** JSON with object keys sorted: equal data, equal text. */
export function canonicalJson(v: unknown): string {
  return JSON.stringify(v, (_k, x: unknown) =>
    x !== null && typeof x === 'object' && !Array.isArray(x)
      ? Object.fromEntries(Object.entries(x as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : x,
  );
}

/** Did anything change between two views (either may be absent)? */
export function diffNetViews(a: NetView | undefined | null, b: NetView | undefined | null): boolean {
  if (a === b) return false;
  if (a === undefined || a === null || b === undefined || b === null) return true;
  return canonicalJson(a) !== canonicalJson(b);
}
