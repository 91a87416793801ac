// VIP load balancing, Docker style, inside each task's network namespace: table `ip shoal-lb` with a nat
// output hook that DNATs every connection a task opens to a service VIP (all ports and protocols, like
// Docker's VIPs) to one of the service's running backends on that network.
//
//   map vips { type ipv4_addr : verdict; elements = { VIP : goto svc_<service>_<network>, … } }
//   chain output { type nat hook output priority -100; policy accept; ip daddr vmap @vips }
//   chain svc_S_N {                                   # backends b0 … b(n-1), sorted by address
//     numgen random mod n 0 dnat to b0                # taken with probability 1/n
//     numgen random mod n-1 0 dnat to b1              # 1/(n-1) of the rest: 1/n overall
//     …
//     dnat to b(n-1)                                  # whatever is left: 1/n
//   }
//
// A service with no running backend gets `reject with tcp reset` + `reject` (ICMP port unreachable), so a
// client fails at once instead of waiting for a black hole. Only the first packet of a connection traverses
// a nat chain: conntrack keeps an established connection on its backend whatever happens to the chain later.
//
// Why numgen random, and why one rule per backend rather than `numgen random mod n map { 0 : b0, … }`:
//  - random, not jhash: inside a task's namespace every connection has the same source address, so a hash of
//    the addresses would send all of a task's connections to one backend; a hash over the ports as well is
//    no better than random and costs more. Round robin (numgen inc) needs one draw per connection, i.e. a
//    map, and its counter restarts whenever the chain is replaced; random keeps no state at all.
//  - each rule draws independently, so the chained conditional draws give exactly 1/n each (the renderer's
//    unit test checks the arithmetic, the lab test the spread). An anonymous map per chain is one kernel set per
//    service: loading 1,000 services took 160 ms with maps against 66 ms with rules here, and every later
//    `nft` run fetches all those sets into its cache (≈ 10 ms an incremental update against ≈ 5 ms). Only a
//    connection's first packet walks the chain, so n cheap rules cost nothing that matters.
import type { NetView } from '../api/netview.ts';
import {
  emptyTable,
  isIpv4,
  naturalCompare,
  nftName,
  planTableChanges,
  renderTable,
  TableProgrammer,
  type ApplyKind,
  type NftApplier,
  type NftChain,
  type NftTable,
  type VerifyResult,
} from './nft.ts';
import { StaleFlowSweeper, sweepOptions, type StaleFlowOptions } from './stale-flows.ts';

export const LB_TABLE = 'shoal-lb';

/** One VIP of one service on one network, and the addresses of its running backends there. */
export interface LbVip {
  serviceId: string;
  serviceName: string;
  networkId: string;
  vip: string;
  backends: string[];
}

/** The networks of `networkIds` that give tasks VIPs: all but the routing mesh's (as in Swarm). */
export function vipNetworks(view: NetView, networkIds: Iterable<string>): string[] {
  const ingress = new Set(view.networks.filter((n) => n.ingress).map((n) => n.id));
  return [...networkIds].filter((id) => !ingress.has(id));
}

/**
 * The VIPs a task attached to `networkIds` balances, in a stable order. A VIP claimed twice keeps its
 * first owner. The ingress network's VIPs are not balanced inside tasks: ingress only carries mesh traffic.
 */
export function lbVips(view: NetView, networkIds: Iterable<string>): LbVip[] {
  const nets = new Set(vipNetworks(view, networkIds));
  const backends = new Map<string, Set<string>>(); // serviceId \0 networkId → running backend IPs
  for (const e of view.endpoints) {
    if (!e.running || !nets.has(e.networkId) || !isIpv4(e.ip)) continue;
    const k = `${e.serviceId}\0${e.networkId}`;
    let s = backends.get(k);
    if (!s) backends.set(k, (s = new Set()));
    s.add(e.ip);
  }
  const out: LbVip[] = [];
  const seen = new Set<string>();
  const services = [...view.services].filter((s) => s.endpointMode === 'vip').sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  for (const s of services) {
    const vips = [...s.vips].sort((a, b) => (a.networkId < b.networkId ? -1 : a.networkId > b.networkId ? 1 : 0));
    for (const v of vips) {
      if (!nets.has(v.networkId) || !isIpv4(v.ip) || seen.has(v.ip)) continue;
      seen.add(v.ip);
      const b = [...(backends.get(`${s.id}\0${v.networkId}`) ?? [])].sort(naturalCompare);
      out.push({ serviceId: s.id, serviceName: s.name, networkId: v.networkId, vip: v.ip, backends: b });
    }
  }
  return out;
}

export function lbChainName(serviceId: string, networkId: string): string {
  return `svc_${nftName(serviceId)}_${nftName(networkId)}`;
}

/**
 * Rules that pick one of `targets` uniformly (each an nft dnat target: `ip` or `ip:port`), or reject when
 * there is none. `match` is put before every rule (e.g. `meta l4proto tcp`, needed by a dnat to a port).
 * The last rule is unconditional for every packet entering the chain (so the chain is terminal).
 */
export function pickRules(targets: readonly string[], opts: { match?: string; reject: 'any' | 'tcp' | 'udp' }): string[] {
  const pre = opts.match ? `${opts.match} ` : '';
  if (targets.length === 0) {
    // As nft prints them: `meta l4proto tcp reject with tcp reset` and `reject with icmp port-unreachable`.
    if (opts.reject === 'tcp') return ['reject with tcp reset'];
    if (opts.reject === 'udp') return ['reject'];
    return ['reject with tcp reset', 'reject'];
  }
  const n = targets.length;
  return targets.map((t, i) => (i === n - 1 ? `${pre}dnat to ${t}` : `${pre}numgen random mod ${n - i} 0 dnat to ${t}`));
}

/** The wanted `ip shoal-lb` table of a task attached to `networkIds`. */
export function lbTable(view: NetView, networkIds: Iterable<string>): NftTable {
  const t = emptyTable(LB_TABLE);
  const vips = lbVips(view, networkIds);
  const elements = new Map<string, string | null>();
  const chains = new Map<string, NftChain>();
  for (const v of vips) {
    const name = lbChainName(v.serviceId, v.networkId);
    elements.set(v.vip, `goto ${name}`);
    chains.set(name, { rules: pickRules(v.backends, { reject: 'any' }), terminal: true });
  }
  t.sets.set('vips', { kind: 'map', decl: ['type ipv4_addr : verdict'], elements });
  t.chains.set('output', { hook: 'type nat hook output priority -100; policy accept;', rules: ['ip daddr vmap @vips'] });
  for (const [name, c] of chains) t.chains.set(name, c);
  return t;
}

/** The whole `ip shoal-lb` table as one atomic `nft -f` script (create + delete + recreate). */
export function renderLbRuleset(view: NetView, networkIdsOfThisTask: Iterable<string>): string {
  return renderTable(lbTable(view, networkIdsOfThisTask));
}

/**
 * The incremental script from the table rendered for `prevView` to the one for `nextView`: only chains of
 * services whose backends changed are touched (the new version is inserted at the chain's head, see nft.ts),
 * VIP elements are added or removed, chains of VIPs that went away are deleted. '' when nothing changed.
 */
export function planLbChanges(prevView: NetView, nextView: NetView, networkIds: Iterable<string>): string {
  const nets = [...networkIds];
  const next = lbTable(nextView, nets);
  const plan = planTableChanges(lbTable(prevView, nets), next);
  return plan ? plan.script : renderTable(next);
}

export interface LbProgrammerOptions {
  /** The task's network namespace (a path), or null for the current one. */
  netns: string | null;
  /** The networks the task is attached to. */
  networkIds: Iterable<string>;
  applier?: NftApplier;
  compactAfterMs?: number;
  /** A full reload replaced an incremental update, or a sweep of stale connections failed (logged). */
  onFallback?: (err: Error) => void;
  /** How the task's connections to dropped backends are swept (stale-flows.ts). */
  staleFlows?: StaleFlowOptions;
}

/** Keeps one task's `ip shoal-lb` table converged on the NetViews it is given. */
export class LbProgrammer {
  private readonly tp: TableProgrammer;
  private readonly flows: StaleFlowSweeper;
  private networkIds: string[];

  constructor(opts: LbProgrammerOptions) {
    this.networkIds = [...opts.networkIds];
    this.tp = new TableProgrammer({
      netns: opts.netns,
      ...(opts.applier ? { applier: opts.applier } : {}),
      ...(opts.compactAfterMs !== undefined ? { compactAfterMs: opts.compactAfterMs } : {}),
      ...(opts.onFallback ? { onFallback: opts.onFallback } : {}),
    });
    this.flows = new StaleFlowSweeper(opts.netns, sweepOptions(opts));
  }

  get netns(): string | null {
    return this.tp.netns;
  }

  /** Applies the view (incrementally after the first time); `networkIds` replaces the task's networks. */
  async update(view: NetView, networkIds?: Iterable<string>): Promise<ApplyKind> {
    if (networkIds) this.networkIds = [...networkIds];
    const table = lbTable(view, this.networkIds);
    const kind = await this.tp.set(table);
    // Every address the view has on the task's networks, running or not (stale-flows.ts: which are dead).
    const nets = new Set(this.networkIds);
    this.flows.applied(table, new Set(view.endpoints.filter((e) => nets.has(e.networkId)).map((e) => e.ip)));
    return kind;
  }

  /** Resolves once the sweeps of connections to dropped backends asked for so far have run (stale-flows.ts). */
  settled(): Promise<void> {
    return this.flows.settled();
  }

  /** Re-asserts the table: reloads it when it is missing or differs from the last applied view. */
  verify(): Promise<VerifyResult> {
    return this.tp.verify();
  }

  /** Removes dead rules left by incremental updates now, instead of after the compaction delay. */
  compact(): Promise<number> {
    return this.tp.compact();
  }

  /** Deletes the table (the task is going away or leaves every VIP network). */
  async remove(): Promise<void> {
    await this.tp.remove('ip', LB_TABLE);
    this.flows.reset();
  }

  dispose(): void {
    this.tp.dispose();
  }
}
