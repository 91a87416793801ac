// The control plane's description of the overlay networks a node takes part in. The managers compute one
// NetView per node (manager/allocator/netview.ts) from the replicated store and send it over the node's
// dispatcher session whenever it changes; the node's data plane (overlay-net/dataplane.ts), load balancer
// (overlay-net/nft.ts) and DNS resolver (overlay-net/dns.ts) converge on it. Peers come from here, never
// from gossip. Addresses are dotted IPv4 strings without a prefix length unless the field says CIDR.
import type { PortConfig } from './objects.ts';

export interface NetInfo {
  id: string;
  name: string;
  /** VXLAN network identifier. */
  vni: number;
  /** CIDR, e.g. 10.10.1.0/24. */
  subnet: string;
  gateway: string;
  internal: boolean;
  attachable: boolean;
  /** The routing-mesh network. */
  ingress: boolean;
}

/** One task's attachment to one network, anywhere in the cluster. */
export interface Endpoint {
  networkId: string;
  taskId: string;
  serviceId: string;
  serviceName: string;
  /** `<service>.<slot or node>.<task id>` as in Docker. */
  taskName: string;
  ip: string;
  /** 02:42 + the four bytes of `ip`. */
  mac: string;
  nodeId: string;
  /** Underlay address of the node that runs the task (its VXLAN tunnel endpoint). */
  vtep: string;
  aliases: string[];
  /** The task reported 'running' (with a healthcheck: healthy) and is not being stopped. */
  running: boolean;
}

export interface SvcInfo {
  id: string;
  name: string;
  endpointMode: 'vip' | 'dnsrr';
  /** One virtual IP per network the service is attached to (none in dnsrr mode). */
  vips: { networkId: string; ip: string }[];
  /** Published ports (publishedPort always set: the allocator fills dynamic ones). */
  ports: PortConfig[];
  aliases: { networkId: string; aliases: string[] }[];
}

export interface NetView {
  nodeId: string;
  /** This node's underlay address (its VTEP). */
  vtep: string;
  /** Networks with at least one task on this node, plus the ingress network on every node. */
  networks: NetInfo[];
  /** Every attachment, cluster-wide, on the networks above (local ones included). */
  endpoints: Endpoint[];
  /** Services attached to the networks above, and every service with published ports. */
  services: SvcInfo[];
  /** This node's own address on the ingress network (the source of routing-mesh traffic it forwards). */
  ingressAddr?: string;
  /**
   * Every cluster node's underlay address, sorted: the only senders VXLAN is accepted from, and addresses
   * whose manager and VXLAN ports tasks may not reach (overlay-net/filter.ts).
   */
  nodeAddrs?: string[];
}

/** Node-local addressing that never leaves the node. */
export const NODE_LOCAL = {
  /** The gateway bridge every task gets a leg on (egress NAT, and the DNS resolver's address). */
  gwBridgeCidr: '172.31.0.0/16',
  gwBridgeAddr: '172.31.0.1',
  /** The veth pair between the node's namespace and its ingress network namespace. */
  ingressHostAddr: '169.254.230.1',
  ingressNsAddr: '169.254.230.2',
  ingressLinkPrefix: 30,
} as const;

/** Docker's convention: a task's MAC is 02:42 followed by its IPv4 address. */
export function macForIp(ip: string): string {
  const b = ip.split('.').map((x) => Number(x));
  return ['02', '42', ...b.map((x) => x.toString(16).padStart(2, '0'))].join(':');
}

/**
 * What a node may use from the moment a view arrives, before its data plane has applied it (the DNS
 * answers, the routing mesh, the tasks' VIP tables): the new view, except that an endpoint this node
 * cannot reach yet (its address, MAC and VTEP were not in the view applied last, so no ARP/FDB entry
 * exists for it) counts as not running until the apply. Withdrawals (a task told to stop, a task gone)
 * take effect at once; additions wait for the entries they need. Pure.
 */
export function viewBeforeApply(applied: NetView | null, next: NetView): NetView {
  if (!applied) return next;
  const programmed = new Set(applied.endpoints.map(endpointKey));
  if (next.endpoints.every((e) => !e.running || programmed.has(endpointKey(e)))) return next;
  return { ...next, endpoints: next.endpoints.map((e) => (!e.running || programmed.has(endpointKey(e)) ? e : { ...e, running: false })) };
}

const endpointKey = (e: Endpoint): string => `${e.networkId} ${e.ip} ${e.mac} ${e.vtep}`;
