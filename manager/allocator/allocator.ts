// The allocator's core: a pure function from the store's objects to the allocations that are missing.
// See docs/design/allocator.md.
//
//   planAllocation({ networks, services, tasks, nodes, clusterSpec, hostRoutes }) → AllocationPlan
//
// It hands out, in this order:
//   1. networks: a subnet (the requested one, or one carved from the default address pool), a gateway
//      and a VXLAN id (VNI), for every network that has none yet;
//   2. services: status.endpoint, i.e. one virtual IP per attached network (ingress included when the
//      service publishes ingress ports; none in dnsrr mode) and the published ports, dynamic ones
//      filled from 30000-32767, conflicts between services detected;
//   3. nodes: each node's address on the ingress network;
//   4. tasks in state 'new': one address per network of their service, then 'pending'.
//
// Nothing is remembered between calls. What is in use is DERIVED from the live objects every time, so
// an allocation cannot leak: a task's addresses are in use until the task is terminal, or told to stop
// while its node is down or gone (holdsAddresses); a VIP until its service is deleted or detached from
// the network; a node's ingress address until the node is removed; a subnet and a VNI until the network
// is deleted. The only thing carried over is each network's cursor (allocation.lastAddr), so a released
// address is not handed out again at once.
//
// A task that cannot be allocated (its network does not exist, a pool is exhausted, its service's
// published port belongs to another service) stays 'new' with the reason in status.message; it never
// blocks the tasks of other services.
import { isTerminalTaskState, jsonEqual, taskStateRank } from '../../api/objects.ts';
import type {
  ClusterSpec,
  Frozen,
  Network,
  NetworkAllocation,
  NetworkAttachment,
  Node,
  NodeNetworkAttachment,
  PortConfig,
  Service,
  ServiceSpec,
  ServiceStatus,
  Task,
} from '../../api/objects.ts';
import {
  AddressPool,
  DEFAULT_ADDRESS_POOL,
  INGRESS_VNI,
  IpamError,
  VNI_MIN,
  allocateVni,
  carveSubnet,
  findOverlap,
  gatewayFor,
  isValidVni,
  parseCidr,
  parseSubnet,
} from './ipam.ts';
import type { Cidr } from './ipam.ts';

/** status.message of a task the allocator moved to 'pending' (the scheduler's turn). */
export const ALLOCATED_MESSAGE = 'pending task scheduling';
/** The network name that means "the host's own network stack": no overlay, nothing to allocate. */
export const HOST_NETWORK = 'host';
/** Dynamic range for published ports without a publishedPort (Docker's). */
export const DYNAMIC_PORT_MIN = 30000;
export const DYNAMIC_PORT_MAX = 32767;

export type ServiceEndpoint = NonNullable<ServiceStatus['endpoint']>;

export interface AllocationInput {
  networks: readonly Frozen<Network>[];
  services: readonly Frozen<Service>[];
  tasks: readonly Frozen<Task>[];
  nodes: readonly Frozen<Node>[];
  /** Only defaultAddressPool is read. Absent: 10.10.0.0/16 in /24s. */
  clusterSpec?: Pick<Frozen<ClusterSpec>, 'defaultAddressPool'>;
  /** Routes of the manager's host (CIDRs): subnets carved from the pool avoid them. */
  hostRoutes?: readonly string[];
}

/** A network write: the new allocation for the network read at `version`. */
export interface NetworkUpdate {
  id: string;
  version: number;
  allocation: NetworkAllocation;
}

/** A service write: its new status.endpoint. */
export interface ServiceUpdate {
  id: string;
  version: number;
  endpoint: ServiceEndpoint;
}

/** A node write: its new attachments. */
export interface NodeUpdate {
  id: string;
  version: number;
  attachments: NodeNetworkAttachment[];
}

/** A task write: allocated (→ pending, with its networks), or still 'new' with a new reason. */
export type TaskUpdate =
  | { id: string; version: number; serviceId: string; state: 'pending'; networks: NetworkAttachment[]; message: string }
  | { id: string; version: number; serviceId: string; state: 'new'; message: string };

/** Something that could not be allocated, for logs. */
export interface AllocationProblem {
  kind: 'network' | 'service' | 'node' | 'task';
  id: string;
  name: string;
  message: string;
}

export interface AllocationPlan {
  /** Only objects whose allocation changes; in this order they must be written (networks first). */
  networks: NetworkUpdate[];
  services: ServiceUpdate[];
  nodes: NodeUpdate[];
  tasks: TaskUpdate[];
  /** Everything that could not be allocated (including tasks whose message did not change). */
  problems: AllocationProblem[];
  /** Tasks in state 'new' that want to run and were not allocated by this plan. */
  blocked: number;
}

// ------------------------------------------------------------------------------------------ predicates

/**
 * Does a task of this service get nothing from the allocator? True when it wants no overlay network
 * (none, or only the host's) and publishes no port: planAllocation would move it to 'pending' with no
 * attachment and write nothing else for it. The orchestrator then creates such tasks 'pending' itself,
 * which saves each of them a Raft commit and an allocator pass over every task (in a rolling update of
 * 10,000 tasks: 100 passes, and a commit's wait on the way to running for every slot).
 */
export function allocatesNothingFor(spec: Frozen<ServiceSpec>): boolean {
  return (spec.networks ?? []).every((a) => a.target === HOST_NETWORK) && (spec.endpoint?.ports ?? []).length === 0;
}

const R_COMPLETE = taskStateRank('complete');
const R_SHUTDOWN = taskStateRank('shutdown');

/** A task the allocator should allocate: 'new', and desired to run (or complete, for jobs). */
export function needsAllocation(t: Frozen<Task>): boolean {
  return t.status.state === 'new' && taskStateRank(t.desiredState) <= R_COMPLETE;
}

/**
 * Does this task still hold its network addresses? Yes until it is terminal, or until it was told to
 * stop while its node is down or gone: then nobody will ever report it stopped, and keeping its
 * addresses would leak them (moby/moby#31694); a node that comes back stops the task anyway.
 */
export function holdsAddresses(t: Frozen<Task>, nodes: ReadonlyMap<string, { readonly status: { readonly state: string } }>): boolean {
  if (isTerminalTaskState(t.status.state)) return false;
  if (taskStateRank(t.desiredState) >= R_SHUTDOWN && t.nodeId !== undefined) {
    const n = nodes.get(t.nodeId);
    if (n === undefined || n.status.state === 'down') return false;
  }
  return true;
}

/** A published port that goes through the routing mesh (ingress mode). */
export function isIngressPort(p: Frozen<PortConfig>): boolean {
  return p.publishMode !== 'host';
}

/** Does the service publish ports through the routing mesh (so its tasks join the ingress network)? */
export function publishesIngress(s: Frozen<Service>): boolean {
  return (s.spec.endpoint?.ports ?? []).some(isIngressPort);
}

/** Is the network allocated (a VNI and a subnet)? */
export function isAllocated(n: Frozen<Network>): boolean {
  return isValidVni(n.allocation?.vni) && (n.allocation?.subnets?.length ?? 0) > 0;
}

/** The routing-mesh network: the first network (in creation order) flagged ingress. */
export function ingressNetwork(networks: readonly Frozen<Network>[]): Frozen<Network> | undefined {
  return sortByCreation(networks).find((n) => n.spec.ingress === true);
}

/** Network by id, else by name (case-insensitive, like the store's name index). */
export function resolveNetwork(networks: readonly Frozen<Network>[], target: string): Frozen<Network> | undefined {
  return networks.find((n) => n.id === target) ?? networks.find((n) => n.spec.name.toLowerCase() === target.toLowerCase());
}

function sortByCreation<T extends { readonly createdAt: string; readonly id: string }>(xs: readonly T[]): T[] {
  return [...xs].sort((a, b) => (a.createdAt < b.createdAt ? -1 : a.createdAt > b.createdAt ? 1 : a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

// ------------------------------------------------------------------------------------------ the planner

interface NetState {
  net: Frozen<Network>;
  /** Present once allocated (before this plan or by it). */
  pool?: AddressPool;
  /** Why it is not allocated. */
  error?: string;
  /** Cursor when the plan started: the network is written back if it moved. */
  lastAddrBefore?: string;
}

interface WantedNetworks {
  resolved: NetState[];
  /** Aliases per network id. */
  aliases: Map<string, string[]>;
  /** Why the service's networks cannot all be resolved. */
  missing?: string;
}

/** What a service's tasks attach to, once its endpoint is allocated. */
interface ServicePlan {
  /** Overlay networks in attachment order (the ingress network last), with the aliases for each. */
  attach: { net: NetState; aliases?: string[] }[];
  error?: string;
}

export function planAllocation(input: AllocationInput): AllocationPlan {
  const plan: AllocationPlan = { networks: [], services: [], nodes: [], tasks: [], problems: [], blocked: 0 };
  const nodesById = new Map(input.nodes.map((n) => [n.id, n]));
  const networks = sortByCreation(input.networks);
  const nets = new Map<string, NetState>();
  const ingress = ingressNetwork(networks);

  // ---- 1. networks: existing allocations first (they are fixed), then the missing ones.
  const usedVnis = new Set<number>();
  const usedSubnets: { name: string; subnet: string; cidr: Cidr }[] = [];
  for (const net of networks) {
    const st: NetState = { net };
    nets.set(net.id, st);
    if (!isAllocated(net)) continue;
    const a = net.allocation!;
    const s0 = a.subnets![0]!;
    try {
      const cidr = parseSubnet(s0.subnet);
      st.pool = new AddressPool(cidr, s0.gateway, a.lastAddr);
      st.lastAddrBefore = a.lastAddr;
      usedSubnets.push({ name: net.spec.name, subnet: cidr.text, cidr });
      usedVnis.add(a.vni!);
    } catch (e) {
      // A stored allocation we cannot use (should not happen): report it, leave the object alone.
      st.error = `stored allocation is invalid: ${(e as Error).message}`;
      plan.problems.push({ kind: 'network', id: net.id, name: net.spec.name, message: st.error });
    }
  }
  // Subnets users asked for explicitly are never carved for another network, allocated or not.
  const requested = (n: Frozen<Network>): string | undefined => n.spec.ipam?.configs?.[0]?.subnet || undefined;
  const pool = input.clusterSpec?.defaultAddressPool ?? DEFAULT_ADDRESS_POOL;
  const toAllocate = networks.filter((n) => !isAllocated(n));
  // The ingress network goes first, so it gets its VNI (4096) and its subnet before anyone else.
  toAllocate.sort((a, b) => Number(b.spec.ingress === true) - Number(a.spec.ingress === true));
  for (const net of toAllocate) {
    const st = nets.get(net.id)!;
    const result = allocateNetwork(net, pool, usedSubnets, usedVnis, networks, requested, input.hostRoutes ?? []);
    if ('error' in result) {
      st.error = result.error;
      plan.problems.push({ kind: 'network', id: net.id, name: net.spec.name, message: result.error });
      if (net.allocation?.error !== result.error) plan.networks.push({ id: net.id, version: net.version, allocation: { error: result.error } });
      continue;
    }
    const cidr = parseCidr(result.subnet);
    st.pool = new AddressPool(cidr, result.gateway);
    usedSubnets.push({ name: net.spec.name, subnet: cidr.text, cidr });
    usedVnis.add(result.vni);
    plan.networks.push({ id: net.id, version: net.version, allocation: { vni: result.vni, subnets: [{ subnet: cidr.text, gateway: result.gateway }] } });
  }

  // ---- 2. what is in use: tasks (fixed: a running container keeps its address), then VIPs, then nodes.
  for (const t of input.tasks) {
    if (t.networks.length === 0 || !holdsAddresses(t, nodesById)) continue;
    for (const att of t.networks) {
      const p = nets.get(att.networkId)?.pool;
      if (p === undefined) continue;
      for (const a of att.addresses) {
        const r = p.claim(a);
        if (r === 'taken') plan.problems.push({ kind: 'task', id: t.id, name: t.serviceAnnotations.name, message: `address ${a} is held by another task too` });
      }
    }
  }
  const services = sortByCreation(input.services);
  // Every VIP a stored endpoint lists stays in use during this pass, even one its service no longer
  // wants: the endpoint that gives it up may fail to be written. It is free on the pass after.
  /** VIPs each service keeps (still attached to that network, not in dnsrr mode). */
  const keptVips = new Map<string, Map<string, string>>();
  const svcNets = new Map<string, WantedNetworks>();
  for (const s of services) {
    const want = wantedNetworks(s, networks, nets, ingress);
    svcNets.set(s.id, want);
    const keep = new Map<string, string>();
    const wantIds = new Set(s.spec.endpoint?.mode === 'dnsrr' ? [] : want.resolved.map((w) => w.net.id));
    for (const v of s.status.endpoint?.virtualIps ?? []) {
      const p = nets.get(v.networkId)?.pool;
      if (p === undefined || p.claim(v.addr) !== 'ok') continue;
      if (wantIds.has(v.networkId) && !keep.has(v.networkId)) keep.set(v.networkId, v.addr);
    }
    keptVips.set(s.id, keep);
  }
  const ingressState = ingress !== undefined ? nets.get(ingress.id) : undefined;
  const keptNodeAddr = new Map<string, string>();
  // Sorted once for steps 2 and 5 (a pass per round of joins sorts every node).
  const nodesInOrder = ingressState?.pool !== undefined ? sortByCreation(input.nodes) : [];
  if (ingressState?.pool !== undefined) {
    for (const n of nodesInOrder) {
      const a = (n.attachments ?? []).find((x) => x.networkId === ingressState.net.id);
      if (a !== undefined && ingressState.pool.claim(a.addr) === 'ok') keptNodeAddr.set(n.id, a.addr);
    }
  }

  // ---- 3. published ports: every ingress port a service's endpoint already holds stays its own.
  const portOwner = new Map<string, Frozen<Service>>();
  for (const s of services) {
    for (const p of s.status.endpoint?.ports ?? []) {
      if (!isIngressPort(p) || p.publishedPort === undefined) continue;
      const k = portKey(p.publishedPort, p.protocol);
      if (!portOwner.has(k)) portOwner.set(k, s);
    }
  }

  const explicit = new Set<string>();
  for (const s of services) {
    for (const p of s.spec.endpoint?.ports ?? []) if (isIngressPort(p) && p.publishedPort !== undefined) explicit.add(portKey(p.publishedPort, p.protocol));
  }

  // ---- 4. service endpoints.
  const svcPlans = new Map<string, ServicePlan>();
  for (const s of services) {
    const sp = planService(s, svcNets.get(s.id)!, keptVips.get(s.id)!, portOwner, explicit);
    svcPlans.set(s.id, sp);
    if (sp.error !== undefined) {
      plan.problems.push({ kind: 'service', id: s.id, name: s.spec.name, message: sp.error });
      continue;
    }
    const endpoint = (sp as ServicePlan & { endpoint: ServiceEndpoint }).endpoint;
    if (!jsonEqual(s.status.endpoint, endpoint)) plan.services.push({ id: s.id, version: s.version, endpoint });
  }

  // ---- 5. node addresses on the ingress network.
  if (ingressState?.pool !== undefined) {
    for (const n of nodesInOrder) {
      let addr = keptNodeAddr.get(n.id);
      if (addr === undefined) {
        const ip = ingressState.pool.allocate();
        if (ip === null) {
          plan.problems.push({ kind: 'node', id: n.id, name: n.description.hostname, message: noFreeAddress(ingressState) });
          continue;
        }
        addr = ingressState.pool.withPrefix(ip);
      }
      const att = n.attachments;
      // The one attachment it should have, and nothing else (what jsonEqual of the two lists would say).
      const same =
        att !== undefined && att.length === 1 && att[0]!.networkId === ingressState.net.id && att[0]!.addr === addr && Object.keys(att[0]!).length === 2;
      if (!same) plan.nodes.push({ id: n.id, version: n.version, attachments: [{ networkId: ingressState.net.id, addr }] });
    }
  } else {
    // No usable ingress network: addresses on a deleted one are stale.
    for (const n of input.nodes) {
      const stale = (n.attachments ?? []).filter((a) => nets.get(a.networkId)?.pool === undefined);
      if (stale.length > 0) plan.nodes.push({ id: n.id, version: n.version, attachments: (n.attachments ?? []).filter((a) => !stale.includes(a)) });
    }
  }

  // ---- 6. tasks.
  const servicesById = new Map(input.services.map((s) => [s.id, s]));
  const waiting = sortByCreation(input.tasks.filter(needsAllocation));
  for (const t of waiting) {
    const s = servicesById.get(t.serviceId);
    if (s === undefined) continue; // the orchestrator shuts it down
    const sp = svcPlans.get(s.id)!;
    let error = sp.error;
    let networksOut: NetworkAttachment[] = [];
    if (error === undefined) {
      const r = allocateTask(sp);
      if ('error' in r) error = r.error;
      else networksOut = r.networks;
    }
    if (error !== undefined) {
      plan.blocked++;
      if (sp.error === undefined) plan.problems.push({ kind: 'task', id: t.id, name: s.spec.name, message: error });
      if (t.status.message !== error) plan.tasks.push({ id: t.id, version: t.version, serviceId: t.serviceId, state: 'new', message: error });
      continue;
    }
    plan.tasks.push({ id: t.id, version: t.version, serviceId: t.serviceId, state: 'pending', networks: networksOut, message: ALLOCATED_MESSAGE });
  }

  // ---- 7. cursors that moved (the network objects carry them).
  const netUpdates = new Map(plan.networks.map((u) => [u.id, u]));
  for (const st of nets.values()) {
    if (st.pool === undefined) continue;
    const last = st.pool.lastAddr;
    const u = netUpdates.get(st.net.id);
    if (u !== undefined) {
      if (last !== undefined) u.allocation.lastAddr = last;
    } else if (last !== st.lastAddrBefore) {
      plan.networks.push({
        id: st.net.id,
        version: st.net.version,
        allocation: { ...(structuredClone(st.net.allocation) as NetworkAllocation), lastAddr: last! },
      });
    }
  }
  return plan;
}

function portKey(port: number, protocol: string): string {
  return `${port}/${protocol}`;
}

function noFreeAddress(st: NetState): string {
  return `network ${st.net.spec.name} (${st.pool!.subnet.text}) has no free address`;
}

/** Subnet, gateway and VNI for one network, or why not. */
function allocateNetwork(
  net: Frozen<Network>,
  pool: { cidr: string; size: number },
  usedSubnets: readonly { name: string; subnet: string; cidr: Cidr }[],
  usedVnis: ReadonlySet<number>,
  all: readonly Frozen<Network>[],
  requested: (n: Frozen<Network>) => string | undefined,
  hostRoutes: readonly string[],
): { subnet: string; gateway: string; vni: number } | { error: string } {
  if (net.spec.driver !== 'overlay') return { error: `driver ${net.spec.driver} is not supported (only overlay)` };
  const cfg = net.spec.ipam?.configs?.[0];
  try {
    let subnet: Cidr;
    if (cfg?.subnet) {
      subnet = parseSubnet(cfg.subnet);
      const o = findOverlap(subnet, usedSubnets);
      if (o !== undefined) return { error: `subnet ${subnet.text} overlaps network ${o.name} (${o.subnet})` };
    } else {
      // Subnets other networks asked for are kept free too, unless the request cannot succeed anyway.
      const asked = all.filter((n) => n.id !== net.id && !isAllocated(n)).flatMap((n) => requested(n) ?? []);
      const viable = asked.filter((a) => {
        try {
          return findOverlap(parseSubnet(a), usedSubnets) === undefined;
        } catch {
          return false;
        }
      });
      const taken = [...usedSubnets.map((u) => u.subnet), ...viable];
      subnet = parseCidr(carveSubnet(pool, taken, hostRoutes));
    }
    const gateway = gatewayFor(subnet, cfg?.gateway);
    const vni = allocateVni(usedVnis, net.spec.ingress === true ? INGRESS_VNI : VNI_MIN + 1);
    if (vni === null) return { error: 'no free VXLAN id (VNI) left' };
    return { subnet: subnet.text, gateway, vni };
  } catch (e) {
    if (e instanceof IpamError) return { error: e.message };
    throw e;
  }
}

/** The overlay networks a service's tasks attach to (resolved), or the first one that does not resolve. */
function wantedNetworks(
  s: Frozen<Service>,
  networks: readonly Frozen<Network>[],
  nets: ReadonlyMap<string, NetState>,
  ingress: Frozen<Network> | undefined,
): WantedNetworks {
  const resolved: NetState[] = [];
  const aliases = new Map<string, string[]>();
  let missing: string | undefined;
  for (const a of s.spec.networks ?? []) {
    if (a.target === HOST_NETWORK) continue;
    const n = resolveNetwork(networks, a.target);
    if (n === undefined) {
      missing ??= `network ${a.target} not found`;
      continue;
    }
    if (resolved.some((r) => r.net.id === n.id)) continue;
    resolved.push(nets.get(n.id)!);
    if (a.aliases && a.aliases.length > 0) aliases.set(n.id, [...a.aliases]);
  }
  if (publishesIngress(s)) {
    if (ingress === undefined) missing ??= 'the ingress network does not exist (it is needed to publish ports)';
    else if (!resolved.some((r) => r.net.id === ingress.id)) resolved.push(nets.get(ingress.id)!);
  }
  return { resolved, aliases, ...(missing !== undefined ? { missing } : {}) };
}

/**
 * A service's endpoint: VIPs (kept or new) and ports (kept, requested or dynamic). All or nothing: on
 * any error the VIPs handed out here are released again, the port claims are not made, and the
 * service keeps the endpoint it had.
 */
function planService(
  s: Frozen<Service>,
  want: WantedNetworks,
  kept: ReadonlyMap<string, string>,
  portOwner: Map<string, Frozen<Service>>,
  explicit: ReadonlySet<string>,
): ServicePlan & { endpoint?: ServiceEndpoint } {
  const attach = want.resolved.map((net) => ({ net, ...(want.aliases.has(net.net.id) ? { aliases: want.aliases.get(net.net.id)! } : {}) }));
  if (want.missing !== undefined) return { attach, error: want.missing };
  for (const w of want.resolved) {
    if (w.pool === undefined) return { attach, error: `network ${w.net.spec.name} is not allocated${w.error !== undefined ? `: ${w.error}` : ''}` };
  }
  // Ports first (no side effects until the end). Phase 1: host ports as they are, explicit ports, and
  // dynamic ports this service already holds for the same target; phase 2: new dynamic ports.
  const prevDynamic = (s.status.endpoint?.ports ?? []).filter(
    (p) => isIngressPort(p) && p.publishedPort !== undefined && p.publishedPort >= DYNAMIC_PORT_MIN && p.publishedPort <= DYNAMIC_PORT_MAX,
  );
  const claimedNow = new Set<string>();
  const free = (k: string) => !claimedNow.has(k) && (!portOwner.has(k) || portOwner.get(k)!.id === s.id);
  const specPorts = s.spec.endpoint?.ports ?? [];
  const published: (number | undefined)[] = specPorts.map(() => undefined);
  specPorts.forEach((p, i) => {
    if (isIngressPort(p) && p.publishedPort !== undefined) {
      published[i] = p.publishedPort;
      claimedNow.add(portKey(p.publishedPort, p.protocol));
    }
  });
  for (let i = 0; i < specPorts.length; i++) {
    const p = specPorts[i]!;
    if (!isIngressPort(p) || p.publishedPort === undefined) continue;
    const k = portKey(p.publishedPort, p.protocol);
    const owner = portOwner.get(k);
    if (owner !== undefined && owner.id !== s.id) return { attach, error: `port ${k} is already published by service ${owner.spec.name}` };
  }
  const used = new Set<number>();
  specPorts.forEach((p, i) => {
    if (!isIngressPort(p) || p.publishedPort !== undefined) return;
    const j = prevDynamic.findIndex(
      (q, jj) => !used.has(jj) && q.protocol === p.protocol && q.targetPort === p.targetPort && free(portKey(q.publishedPort!, q.protocol)),
    );
    if (j < 0) return;
    used.add(j);
    published[i] = prevDynamic[j]!.publishedPort!;
    claimedNow.add(portKey(published[i]!, p.protocol));
  });
  for (let i = 0; i < specPorts.length; i++) {
    const p = specPorts[i]!;
    if (!isIngressPort(p) || published[i] !== undefined) continue;
    for (let c = DYNAMIC_PORT_MIN; c <= DYNAMIC_PORT_MAX; c++) {
      const k = portKey(c, p.protocol);
      // Ports this service held before and no longer uses are free for it; others' are not, and neither
      // are ports some service asks for explicitly (it may not have them yet).
      if (free(k) && !explicit.has(k)) {
        published[i] = c;
        claimedNow.add(k);
        break;
      }
    }
    if (published[i] === undefined)
      return { attach, error: `no free port left in the dynamic range ${DYNAMIC_PORT_MIN}-${DYNAMIC_PORT_MAX} for ${p.protocol}` };
  }
  const ports: PortConfig[] = specPorts.map((p, i) =>
    isIngressPort(p)
      ? {
          ...(p.name !== undefined ? { name: p.name } : {}),
          protocol: p.protocol,
          targetPort: p.targetPort,
          publishedPort: published[i]!,
          publishMode: p.publishMode,
        }
      : (structuredClone(p) as PortConfig),
  );
  // VIPs.
  const virtualIps: ServiceEndpoint['virtualIps'] = [];
  if (s.spec.endpoint?.mode !== 'dnsrr') {
    const fresh: { pool: AddressPool; ip: string }[] = [];
    for (const w of want.resolved) {
      const k = kept.get(w.net.id);
      if (k !== undefined) {
        virtualIps.push({ networkId: w.net.id, addr: k });
        continue;
      }
      const ip = w.pool!.allocate();
      if (ip === null) {
        for (const f of fresh) f.pool.release(f.ip);
        return { attach, error: noFreeAddress(w) };
      }
      fresh.push({ pool: w.pool!, ip });
      virtualIps.push({ networkId: w.net.id, addr: w.pool!.withPrefix(ip) });
    }
  }
  for (const k of claimedNow) if (!portOwner.has(k)) portOwner.set(k, s);
  return { attach, endpoint: { virtualIps, ports } };
}

/** One address per network of the service, or why not (releasing what it took). */
function allocateTask(sp: ServicePlan): { networks: NetworkAttachment[] } | { error: string } {
  const out: NetworkAttachment[] = [];
  const taken: { pool: AddressPool; ip: string }[] = [];
  for (const a of sp.attach) {
    const p = a.net.pool!;
    const ip = p.allocate();
    if (ip === null) {
      for (const x of taken) x.pool.release(x.ip);
      return { error: noFreeAddress(a.net) };
    }
    taken.push({ pool: p, ip });
    out.push({ networkId: a.net.net.id, addresses: [p.withPrefix(ip)], ...(a.aliases !== undefined ? { aliases: [...a.aliases] } : {}) });
  }
  return { networks: out };
}
