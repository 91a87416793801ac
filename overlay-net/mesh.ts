// Published ports. Two modes, as in Docker:
//
// Ingress (the routing mesh): every node accepts a published port, whether or not it runs a task of the
// service, and forwards the connection to any running task of it on the ingress network.
//  - node namespace, table `ip shoal-mesh`: prerouting (and output, for requests the node makes to its own
//    addresses) DNAT `tcp|udp dport <published>` to the ingress namespace's end of the node ↔ ingress veth
//    (169.254.230.2), same port, plus a forward accept; net.ipv4.ip_forward=1.
//  - ingress namespace, table `ip shoal-ingress`: prerouting DNAT of that traffic to one of the service's
//    running endpoints on the ingress network, at targetPort (chosen as in lb.ts); postrouting SNAT of it to
//    the node's own ingress address (view.ingressAddr) as it leaves through br0, so that replies come back to
//    this node, wherever the backend runs; net.ipv4.ip_forward=1 there too. Nothing running: TCP reset /
//    ICMP port unreachable.
//  The ingress namespace needs a route back to clients: its default route is via 169.254.230.1 (the data
//  plane sets that up).
//
// Host: only nodes running a task of the service accept the port; table `ip shoal-hostport` in the node
// namespace DNATs it to that task's leg on the node-local gateway bridge (gw0), at targetPort, without SNAT:
// the task sees the client's real address and replies through its default route (the gateway bridge).
//
// Requests the node makes to 127.0.0.0/8 are left alone (a loopback source cannot leave the node namespace);
// SCTP ports are not handled (tcp and udp only).
import type { PortConfig } from '../api/objects.ts';
import { NODE_LOCAL, type NetView } from '../api/netview.ts';
import { pickRules } from './lb.ts';
import { StaleFlowSweeper, sweepOptions, type StaleFlowOptions } from './stale-flows.ts';
import {
  emptyTable,
  isIpv4,
  naturalCompare,
  NftApplier,
  planTableChanges,
  renderTable,
  TableProgrammer,
  type ApplyKind,
  type NftChain,
  type NftTable,
  type VerifyResult,
} from './nft.ts';

export const MESH_TABLE = 'shoal-mesh';
export const INGRESS_TABLE = 'shoal-ingress';
export const HOSTPORT_TABLE = 'shoal-hostport';
/** The interface of the ingress namespace that carries the ingress network (and view.ingressAddr). */
export const INGRESS_BRIDGE = 'br0';

type Proto = 'tcp' | 'udp';
const PROTOS: Proto[] = ['tcp', 'udp'];

/** One published port of one service, with the targets it is spread over. */
export interface PublishedPort {
  protocol: Proto;
  publishedPort: number;
  targetPort: number;
  serviceId: string;
  /** Ingress: running endpoints on the ingress network; host: gateway addresses of the local tasks. */
  backends: string[];
}

const validPort = (p: number | undefined): p is number => typeof p === 'number' && Number.isInteger(p) && p > 0 && p < 65536;

function portsOf(view: NetView, mode: PortConfig['publishMode']): { serviceId: string; p: PortConfig & { protocol: Proto; publishedPort: number } }[] {
  const out: { serviceId: string; p: PortConfig & { protocol: Proto; publishedPort: number } }[] = [];
  const services = [...view.services].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  for (const s of services) {
    for (const p of s.ports) {
      if (p.publishMode !== mode || (p.protocol !== 'tcp' && p.protocol !== 'udp')) continue;
      if (!validPort(p.publishedPort) || !validPort(p.targetPort)) continue;
      out.push({ serviceId: s.id, p: p as PortConfig & { protocol: Proto; publishedPort: number } });
    }
  }
  return out;
}

/** The ingress-mode ports of the view, each with the running endpoints of its service on the ingress network. */
export function ingressPorts(view: NetView): PublishedPort[] {
  const ingress = view.networks.find((n) => n.ingress);
  if (!ingress) return [];
  const running = new Map<string, Set<string>>();
  for (const e of view.endpoints) {
    if (e.networkId !== ingress.id || !e.running || !isIpv4(e.ip)) continue;
    let s = running.get(e.serviceId);
    if (!s) running.set(e.serviceId, (s = new Set()));
    s.add(e.ip);
  }
  const out: PublishedPort[] = [];
  const taken = new Set<string>();
  for (const { serviceId, p } of portsOf(view, 'ingress')) {
    const key = `${p.protocol}/${p.publishedPort}`;
    if (taken.has(key)) continue; // the allocator never hands out a port twice; first owner wins if it did
    taken.add(key);
    const backends = [...(running.get(serviceId) ?? [])].sort(naturalCompare);
    out.push({ protocol: p.protocol, publishedPort: p.publishedPort, targetPort: p.targetPort, serviceId, backends });
  }
  return out.sort((a, b) => a.protocol.localeCompare(b.protocol) || a.publishedPort - b.publishedPort);
}

/** Every address the view has on the ingress network, running or not (stale-flows.ts: which backends are dead). */
function ingressAddresses(view: NetView): Set<string> {
  const ingress = view.networks.find((n) => n.ingress);
  return new Set(view.endpoints.filter((e) => e.networkId === ingress?.id).map((e) => e.ip));
}

const sortedPorts = (xs: Iterable<number>) => [...xs].sort((a, b) => a - b);

/** The node namespace's `ip shoal-mesh` table. */
export function meshNodeTable(view: NetView): NftTable {
  const ports = ingressPorts(view);
  const t = emptyTable(MESH_TABLE);
  const to = NODE_LOCAL.ingressNsAddr;
  for (const proto of PROTOS) {
    const els = new Map<string, string | null>();
    for (const p of sortedPorts(ports.filter((x) => x.protocol === proto).map((x) => x.publishedPort))) els.set(String(p), null);
    t.sets.set(`${proto}_ports`, { kind: 'set', decl: ['type inet_service'], elements: els });
  }
  t.chains.set('prerouting', {
    hook: 'type nat hook prerouting priority dstnat; policy accept;',
    rules: PROTOS.map((proto) => `fib daddr type local ${proto} dport @${proto}_ports dnat to ${to}`),
  });
  t.chains.set('output', {
    hook: 'type nat hook output priority -100; policy accept;',
    rules: PROTOS.map((proto) => `ip daddr != 127.0.0.0/8 fib daddr type local ${proto} dport @${proto}_ports dnat to ${to}`),
  });
  t.chains.set('forward', {
    hook: 'type filter hook forward priority filter; policy accept;',
    rules: [`ip daddr ${to} ct status dnat accept`, `ip saddr ${to} ct state established,related accept`],
  });
  return t;
}

export function ingressChainName(p: { protocol: string; publishedPort: number }): string {
  return `pub_${p.protocol}_${p.publishedPort}`;
}

/**
 * Adds to `t` one verdict map per protocol (`tcp_ports`, `udp_ports`: published port → its chain) and
 * returns the per-port chains, each picking one backend `address:targetPort` (or rejecting without any).
 */
function portChains(t: NftTable, ports: readonly PublishedPort[], chainName: (p: PublishedPort) => string): Map<string, NftChain> {
  const chains = new Map<string, NftChain>();
  for (const proto of PROTOS) {
    const els = new Map<string, string | null>();
    for (const p of ports.filter((x) => x.protocol === proto)) {
      const name = chainName(p);
      els.set(String(p.publishedPort), `goto ${name}`);
      const targets = p.backends.map((b) => `${b}:${p.targetPort}`);
      chains.set(name, { rules: pickRules(targets, { match: `meta l4proto ${proto}`, reject: proto }), terminal: true });
    }
    t.sets.set(`${proto}_ports`, { kind: 'map', decl: ['type inet_service : verdict'], elements: els });
  }
  return chains;
}

/** The ingress namespace's `ip shoal-ingress` table. */
export function meshIngressTable(view: NetView): NftTable {
  const ports = ingressPorts(view);
  const t = emptyTable(INGRESS_TABLE);
  const chains = portChains(t, ports, ingressChainName);
  t.chains.set('prerouting', {
    hook: 'type nat hook prerouting priority dstnat; policy accept;',
    rules: PROTOS.map((proto) => `ip daddr ${NODE_LOCAL.ingressNsAddr} ${proto} dport vmap @${proto}_ports`),
  });
  const snat = view.ingressAddr && isIpv4(view.ingressAddr) ? `snat to ${view.ingressAddr}` : 'masquerade';
  t.chains.set('postrouting', {
    hook: 'type nat hook postrouting priority srcnat; policy accept;',
    rules: [`oifname "${INGRESS_BRIDGE}" ct status dnat ${snat}`],
  });
  for (const [name, c] of chains) t.chains.set(name, c);
  return t;
}

/** Both routing-mesh tables as atomic `nft -f` scripts: `node` for the node namespace, `ingress` for the ingress one. */
export function renderMeshRuleset(view: NetView): { node: string; ingress: string } {
  return { node: renderTable(meshNodeTable(view)), ingress: renderTable(meshIngressTable(view)) };
}

/** The incremental scripts between the mesh tables of two views ('' where nothing changed). */
export function planMeshChanges(prevView: NetView, nextView: NetView): { node: string; ingress: string } {
  const plan = (a: NftTable, b: NftTable) => planTableChanges(a, b)?.script ?? renderTable(b);
  return {
    node: plan(meshNodeTable(prevView), meshNodeTable(nextView)),
    ingress: plan(meshIngressTable(prevView), meshIngressTable(nextView)),
  };
}

// ------------------------------------------------------------------------------------------ host mode

/**
 * Host-mode ports of the services that have a task on this node. `gwIps`: local task id → that task's
 * address on the gateway bridge (the caller passes the tasks that run). A task's service comes from
 * `taskServices` (task id → service id) or else from its endpoints in the view.
 */
export function hostPorts(view: NetView, gwIps: ReadonlyMap<string, string>, taskServices?: ReadonlyMap<string, string>): PublishedPort[] {
  const svcOfTask = new Map<string, string>();
  for (const e of view.endpoints) svcOfTask.set(e.taskId, e.serviceId);
  const gwsOfService = new Map<string, Set<string>>();
  for (const [taskId, gw] of gwIps) {
    const svc = taskServices?.get(taskId) ?? svcOfTask.get(taskId);
    if (!svc || !isIpv4(gw)) continue;
    let s = gwsOfService.get(svc);
    if (!s) gwsOfService.set(svc, (s = new Set()));
    s.add(gw);
  }
  const out: PublishedPort[] = [];
  const taken = new Set<string>();
  for (const { serviceId, p } of portsOf(view, 'host')) {
    const gws = gwsOfService.get(serviceId);
    if (!gws || gws.size === 0) continue;
    const key = `${p.protocol}/${p.publishedPort}`;
    if (taken.has(key)) continue;
    taken.add(key);
    out.push({ protocol: p.protocol, publishedPort: p.publishedPort, targetPort: p.targetPort, serviceId, backends: [...gws].sort(naturalCompare) });
  }
  return out.sort((a, b) => a.protocol.localeCompare(b.protocol) || a.publishedPort - b.publishedPort);
}

export function hostChainName(p: { protocol: string; publishedPort: number }): string {
  return `host_${p.protocol}_${p.publishedPort}`;
}

/** The node namespace's `ip shoal-hostport` table. */
export function hostPortTable(view: NetView, gwIps: ReadonlyMap<string, string>, taskServices?: ReadonlyMap<string, string>): NftTable {
  const ports = hostPorts(view, gwIps, taskServices);
  const t = emptyTable(HOSTPORT_TABLE);
  const chains = portChains(t, ports, hostChainName);
  t.chains.set('prerouting', {
    hook: 'type nat hook prerouting priority dstnat; policy accept;',
    rules: PROTOS.map((proto) => `fib daddr type local ${proto} dport vmap @${proto}_ports`),
  });
  t.chains.set('output', {
    hook: 'type nat hook output priority -100; policy accept;',
    rules: PROTOS.map((proto) => `ip daddr != 127.0.0.0/8 fib daddr type local ${proto} dport vmap @${proto}_ports`),
  });
  t.chains.set('forward', {
    hook: 'type filter hook forward priority filter; policy accept;',
    rules: [`ip daddr ${NODE_LOCAL.gwBridgeCidr} ct status dnat accept`],
  });
  for (const [name, c] of chains) t.chains.set(name, c);
  return t;
}

export function renderHostPortRuleset(view: NetView, gwIps: ReadonlyMap<string, string>, taskServices?: ReadonlyMap<string, string>): string {
  return renderTable(hostPortTable(view, gwIps, taskServices));
}

// ----------------------------------------------------------------------------------------- programmers

export interface MeshProgrammerOptions {
  /** The node's namespace (null: the one Shoal runs in). */
  nodeNetns: string | null;
  /** The ingress network's namespace. */
  ingressNetns: string;
  applier?: NftApplier;
  compactAfterMs?: number;
  /** A full reload replaced an incremental update, or a sweep of stale connections failed (logged). */
  onFallback?: (err: Error) => void;
  /** How connections to dropped backends are swept (stale-flows.ts); tests replace the kernel call. */
  staleFlows?: StaleFlowOptions;
}

const progOpts = (o: { applier?: NftApplier; compactAfterMs?: number; onFallback?: (err: Error) => void }) => ({
  ...(o.compactAfterMs !== undefined ? { compactAfterMs: o.compactAfterMs } : {}),
  ...(o.onFallback ? { onFallback: o.onFallback } : {}),
});

async function ensureForwarding(applier: NftApplier, netns: string | null): Promise<boolean> {
  const key = 'net.ipv4.ip_forward';
  if ((await applier.readSysctl(netns, key)) === '1') return true;
  await applier.writeSysctl(netns, key, '1');
  return false;
}

/** Keeps the routing mesh (`ip shoal-mesh` in the node namespace, `ip shoal-ingress` in the ingress one) converged. */
export class MeshProgrammer {
  private readonly applier: NftApplier;
  private readonly node: TableProgrammer;
  private readonly ingress: TableProgrammer;
  /** The ingress namespace's connections to backends the mesh dropped (the node table only points at it). */
  private readonly ingressFlows: StaleFlowSweeper;
  private forwardingOn = false;

  constructor(readonly opts: MeshProgrammerOptions) {
    this.applier = opts.applier ?? new NftApplier();
    this.node = new TableProgrammer({ applier: this.applier, netns: opts.nodeNetns, ...progOpts(opts) });
    this.ingress = new TableProgrammer({ applier: this.applier, netns: opts.ingressNetns, ...progOpts(opts) });
    this.ingressFlows = new StaleFlowSweeper(opts.ingressNetns, sweepOptions(opts));
  }

  private async forwarding(): Promise<boolean> {
    const a = await ensureForwarding(this.applier, this.opts.nodeNetns);
    const b = await ensureForwarding(this.applier, this.opts.ingressNetns);
    return a && b;
  }

  /** Applies the view to both namespaces (the ingress side first, so the node never forwards into nothing). */
  async update(view: NetView): Promise<{ node: ApplyKind; ingress: ApplyKind }> {
    if (!this.forwardingOn) {
      await this.forwarding();
      this.forwardingOn = true;
    }
    const table = meshIngressTable(view);
    const ingress = await this.ingress.set(table);
    this.ingressFlows.applied(table, ingressAddresses(view));
    const node = await this.node.set(meshNodeTable(view));
    return { node, ingress };
  }

  /** Resolves once the sweeps of connections to dropped backends asked for so far have run (stale-flows.ts). */
  settled(): Promise<void> {
    return this.ingressFlows.settled();
  }

  /** Re-asserts both tables and ip_forward in both namespaces. */
  async verify(): Promise<{ node: VerifyResult; ingress: VerifyResult; forwarding: boolean }> {
    const forwarding = this.forwardingOn ? await this.forwarding() : true;
    return { ingress: await this.ingress.verify(), node: await this.node.verify(), forwarding };
  }

  async compact(): Promise<number> {
    return (await this.ingress.compact()) + (await this.node.compact());
  }

  async remove(): Promise<void> {
    await this.node.remove('ip', MESH_TABLE);
    await this.ingress.remove('ip', INGRESS_TABLE);
    this.ingressFlows.reset();
  }

  dispose(): void {
    this.node.dispose();
    this.ingress.dispose();
  }
}

export interface HostPortProgrammerOptions {
  /** The node's namespace (null: the one Shoal runs in). */
  netns: string | null;
  applier?: NftApplier;
  compactAfterMs?: number;
  /** A full reload replaced an incremental update, or a sweep of stale connections failed (logged). */
  onFallback?: (err: Error) => void;
  staleFlows?: StaleFlowOptions;
}

/** Keeps the node's `ip shoal-hostport` table converged. */
export class HostPortProgrammer {
  private readonly applier: NftApplier;
  private readonly tp: TableProgrammer;
  private readonly flows: StaleFlowSweeper;
  private forwardingOn = false;

  constructor(readonly opts: HostPortProgrammerOptions) {
    this.applier = opts.applier ?? new NftApplier();
    this.tp = new TableProgrammer({ applier: this.applier, netns: opts.netns, ...progOpts(opts) });
    this.flows = new StaleFlowSweeper(opts.netns, sweepOptions(opts));
  }

  async update(view: NetView, gwIps: ReadonlyMap<string, string>, taskServices?: ReadonlyMap<string, string>): Promise<ApplyKind> {
    if (!this.forwardingOn) {
      await ensureForwarding(this.applier, this.opts.netns);
      this.forwardingOn = true;
    }
    const table = hostPortTable(view, gwIps, taskServices);
    const kind = await this.tp.set(table);
    this.flows.applied(table, new Set(gwIps.values())); // a task gone from the node is gone for good
    return kind;
  }

  /** Resolves once the sweeps of connections to dropped backends asked for so far have run (stale-flows.ts). */
  settled(): Promise<void> {
    return this.flows.settled();
  }

  async verify(): Promise<VerifyResult & { forwarding: boolean }> {
    const forwarding = this.forwardingOn ? await ensureForwarding(this.applier, this.opts.netns) : true;
    return { ...(await this.tp.verify()), forwarding };
  }

  compact(): Promise<number> {
    return this.tp.compact();
  }

  async remove(): Promise<void> {
    await this.tp.remove('ip', HOSTPORT_TABLE);
    this.flows.reset();
  }

  dispose(): void {
    this.tp.dispose();
  }
}
