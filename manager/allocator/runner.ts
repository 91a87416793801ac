// The allocator's loop: connects the pure planner (allocator.ts) to the store. Runs on the leader only
// (started and stopped with leadership, like the orchestrator and the scheduler).
//
//   store events ──► one pass per event-loop turn: read one view ──► planAllocation() ──► write
//
// Events that can change an allocation (a task to allocate, a service / network created, deleted or
// respecified, a node joining or leaving, and, while something is blocked, anything that frees an
// address or a port) ask for a pass; all events of one turn of the event loop give one pass, and one
// pass runs at a time (an event during a pass asks for exactly one more). Events the last pass already
// saw (index <= its view) are skipped.
//
// A pass first makes sure the ingress network exists (creating it: overlay, 10.255.0.0/16, VNI 4096)
// on the first pass after start (a new leader, a fresh cluster) and whenever a service publishes ports
// through the routing mesh, so a user who removed it can create their own (`network create --ingress`)
// in between; then plans, then writes through Store.batch: networks first, then services, nodes and tasks, so a
// transaction that fails stops everything after it (nothing is written that depends on an allocation
// that was not). Every write re-checks, inside the transaction, that what it was computed from is
// unchanged (a task's version, a service's spec and endpoint, a node's attachments, a network's
// version); a stale write is skipped and one more pass follows. A ConflictError from apply re-runs the
// pass at once (three times, then with backoff); other errors back off up to 5 s.
import { newId } from '../store/ids.ts';
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { NameInUseError } from '../store/store.ts';
import { PassLoop } from '../store/pass-loop.ts';
import type { Store, StoreEvent, WriteTx } from '../store/store.ts';
import { CLUSTER_ID, isTerminalTaskState, taskStateRank } from '../../api/objects.ts';
import type { Cluster, Draft, Frozen, Network, Node, Service, Task } from '../../api/objects.ts';
import { needsAllocation, planAllocation, publishesIngress } from './allocator.ts';
import { jsonEqual } from '../../api/objects.ts';
import type { AllocationPlan } from './allocator.ts';
import { formatIp } from './ipam.ts';

/**
 * The longest a node that joined waits for the pass that gives it its ingress address: the joins of that
 * time share the pass (a pass is O(nodes)). A task waiting to be allocated, or any other change, runs the
 * pass at once as before.
 */
export const NODE_JOIN_GATHER_MS = 250;

/** The routing-mesh network the allocator creates when there is none. */
export const INGRESS_NETWORK = {
  name: 'ingress',
  subnet: '10.255.0.0/16',
  gateway: '10.255.0.1',
} as const;

export interface AllocatorRunnerOptions {
  log?: (msg: string) => void;
  /** Routes of this manager's host (CIDRs), read on every pass. Default: none. See readHostRoutes. */
  hostRoutes?: () => string[];
  /** Id of the ingress network when the allocator creates it. Default: 25 random base-36 characters. */
  newId?: () => string;
  /** Called after every pass (tests, metrics). */
  onPass?: (info: AllocatorPassInfo) => void;
  /** Tests: every pass also reads all tasks and passes here how the kept ones differ (null: they do not). */
  verifyKept?: (difference: string | null) => void;
}

export interface AllocatorPassInfo {
  /** Store index of the view the pass read. */
  index: number;
  networks: number;
  services: number;
  nodes: number;
  /** Tasks moved to pending. */
  allocated: number;
  /** Tasks left in 'new' (whether or not their message was rewritten). */
  blocked: number;
  /** Writes skipped because the object changed after the view (a new pass follows). */
  stale: number;
  ms: number;
}

/**
 * The IPv4 routes of this host, from /proc/net/route (Linux), as CIDRs; default routes are left out.
 * Subnets carved from the default address pool avoid them, so an overlay never shadows a network the
 * host can already reach. Returns [] where the file cannot be read.
 */
export function readHostRoutes(path = '/proc/net/route'): string[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return [];
  }
  const out = new Set<string>();
  for (const line of text.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 8) continue;
    // Destination and Mask are little-endian hex.
    const le = (h: string) => {
      const v = parseInt(h, 16) >>> 0;
      return (((v & 0xff) << 24) | (((v >>> 8) & 0xff) << 16) | (((v >>> 16) & 0xff) << 8) | (v >>> 24)) >>> 0;
    };
    const dest = le(f[1]!);
    const mask = le(f[7]!);
    if (mask === 0) continue;
    const prefix = 32 - Math.log2(2 ** 32 - mask);
    if (!Number.isInteger(prefix)) continue;
    out.add(`${formatIp((dest & mask) >>> 0)}/${prefix}`);
  }
  return [...out];
}

const R_SHUTDOWN = taskStateRank('shutdown');

/**
 * The tasks planAllocation reads: those on a network (they may hold addresses) and those waiting for
 * theirs. Every other task is skipped by both of its task steps.
 */
export function allocatorReads(t: Frozen<Task>): boolean {
  return t.networks.length > 0 || needsAllocation(t);
}

/** Does this task still carry addresses that the next pass could see freed? (event-level approximation) */
function mayHoldAddresses(t: Frozen<Task>): boolean {
  return t.networks.length > 0 && !isTerminalTaskState(t.status.state);
}

type Item =
  | { kind: 'network'; u: AllocationPlan['networks'][number] }
  | { kind: 'service'; u: AllocationPlan['services'][number]; seen: Frozen<Service> }
  | { kind: 'node'; u: AllocationPlan['nodes'][number]; seen: Frozen<Node> }
  | { kind: 'task'; u: AllocationPlan['tasks'][number] };

export class AllocatorRunner {
  private readonly log: (msg: string) => void;
  private readonly newId: () => string;
  private readonly loop: PassLoop;
  private unwatch: (() => void) | null = null;
  private seenIndex = 0;
  /** Something could not be allocated in the last pass: freed resources are worth a pass. */
  private blocked = false;
  private ingressNameTaken = false;
  /** Problems (other than single tasks') logged already. */
  private reported = new Set<string>();
  /** The next pass is the first since start (or a resync): create the ingress network if there is none. */
  private firstPass = true;
  /**
   * The tasks allocatorReads(), kept from the store's events after the first pass
   * read them all (and again after the watch closed): at 150,000 tasks without networks, each pass
   * listed and filtered all of them to find the few new ones (a pass per round of a rolling update, and
   * per event turn while 5,000 nodes joined). Exact at the start of every pass: the store delivers a
   * transaction's events from a microtask, before any timer runs. In the store's order except for a
   * task that left the set and came back (it is last): planAllocation orders what it allocates by
   * creation itself, and the order of the tasks it only claims addresses for decides nothing but which
   * of two tasks holding the same address is named in the problem.
   */
  private kept: { tasks: Map<string, Frozen<Task>>; index: number } | null = null;

  constructor(
    private readonly store: Store,
    private readonly opts: AllocatorRunnerOptions = {},
  ) {
    this.log = opts.log ?? (() => {});
    this.newId = opts.newId ?? newId;
    this.loop = new PassLoop(() => this.pass(), { who: 'allocator', log: this.log });
  }

  /** Starts watching the store and runs a first pass (tasks may have been waiting for a leader). */
  start(): void {
    if (this.loop.active) return;
    this.loop.start();
    this.seenIndex = 0;
    this.ingressNameTaken = false;
    this.firstPass = true;
    this.reported = new Set();
    this.subscribe();
    this.loop.trigger();
  }

  /** Stops watching; a pass in flight stops writing. */
  stop(): void {
    if (!this.loop.active) return;
    this.loop.stop();
    this.unwatch?.();
    this.unwatch = null;
    this.kept = null;
  }

  /** Resolves once no pass is running or due (for tests and tools). */
  idle(): Promise<void> {
    return this.loop.idle();
  }

  // ------------------------------------------------------------------------------------ events

  private subscribe(): void {
    this.unwatch = this.store.watch(
      {
        kinds: ['task', 'service', 'network', 'node', 'cluster'],
        onClose: (err) => {
          if (!this.loop.active) return;
          this.log(`allocator: watch closed (${err.message}); resyncing`);
          this.seenIndex = 0;
          this.kept = null;
          this.firstPass = true;
          this.subscribe();
          this.loop.trigger();
        },
      },
      (ev) => this.onEvent(ev),
    );
  }

  private onEvent(ev: StoreEvent): void {
    if (!this.loop.active) return;
    const k = this.kept;
    if (ev.kind === 'task' && k !== null && ev.index > k.index) {
      const t = ev.object as Frozen<Task>;
      if (ev.type !== 'delete' && allocatorReads(t)) k.tasks.set(t.id, t);
      else k.tasks.delete(t.id);
    }
    if (ev.index <= this.seenIndex) return;
    const r = this.relevant(ev);
    if (r === 'soon') this.loop.triggerLazy(NODE_JOIN_GATHER_MS);
    else if (r) this.loop.trigger();
  }

  /**
   * Could this change make the allocator decide something new? 'soon' for a node that joined: it needs
   * its ingress address, but the joins of NODE_JOIN_GATHER_MS share one pass (PassLoop.triggerLazy).
   */
  private relevant(ev: StoreEvent): boolean | 'soon' {
    switch (ev.kind) {
      case 'task': {
        const t = ev.object as Frozen<Task>;
        const old = ev.old as Frozen<Task> | undefined;
        if (ev.type === 'delete') return this.blocked && mayHoldAddresses(t);
        if (needsAllocation(t) && (old === undefined || !needsAllocation(old))) return true;
        if (!this.blocked || old === undefined || !mayHoldAddresses(old)) return false;
        // Addresses freed: the task ended, or was told to stop (its node may be down).
        return isTerminalTaskState(t.status.state) || (taskStateRank(t.desiredState) >= R_SHUTDOWN && taskStateRank(old.desiredState) < R_SHUTDOWN);
      }
      case 'service': {
        const s = ev.object as Frozen<Service>;
        const old = ev.old as Frozen<Service> | undefined;
        if (ev.type !== 'update' || old === undefined) return true;
        if (!jsonEqual(old.spec.networks, s.spec.networks) || !jsonEqual(old.spec.endpoint, s.spec.endpoint)) return true;
        // An endpoint that gave up a port or a VIP may unblock another service.
        return this.blocked && !jsonEqual(old.status.endpoint, s.status.endpoint);
      }
      case 'network': {
        const n = ev.object as Frozen<Network>;
        const old = ev.old as Frozen<Network> | undefined;
        if (ev.type !== 'update' || old === undefined) return true;
        return !jsonEqual(old.spec, n.spec) || (n.allocation === undefined && old.allocation !== undefined);
      }
      case 'node': {
        const n = ev.object as Frozen<Node>;
        const old = ev.old as Frozen<Node> | undefined;
        if (ev.type === 'create') return 'soon';
        if (ev.type !== 'update' || old === undefined) return true;
        if (this.blocked && old.status.state !== n.status.state) return true;
        // Someone else rewrote the node without its attachments: give it its address back.
        return !jsonEqual(old.attachments, n.attachments) && n.attachments === undefined;
      }
      case 'cluster': {
        const c = ev.object as Frozen<Cluster>;
        const old = ev.old as Frozen<Cluster> | undefined;
        return this.blocked && (old === undefined || !jsonEqual(old.spec.defaultAddressPool, c.spec.defaultAddressPool));
      }
      default:
        return false;
    }
  }

  // ---------------------------------------------------------------------------------- passes

  /**
   * Creates the ingress network when none exists, on the first pass after start and whenever a service
   * publishes ports through the routing mesh.
   */
  private async ensureIngress(): Promise<void> {
    const first = this.firstPass;
    this.firstPass = false;
    const { exists, needed } = this.store.view((tx) => ({
      exists: tx.find('network', (n) => n.spec.ingress === true) !== undefined,
      needed: first || tx.find('service', publishesIngress) !== undefined,
    }));
    if (exists) {
      this.ingressNameTaken = false;
      return;
    }
    if (!needed) return;
    const net: Draft<Network> = {
      id: this.newId(),
      kind: 'network',
      spec: {
        name: INGRESS_NETWORK.name,
        driver: 'overlay',
        labels: {},
        ipam: { configs: [{ subnet: INGRESS_NETWORK.subnet, gateway: INGRESS_NETWORK.gateway }] },
        attachable: false,
        internal: false,
        ingress: true,
      },
      status: {},
    };
    try {
      await this.store.update((tx) => {
        if (tx.find('network', (n) => n.spec.ingress === true) !== undefined) return;
        tx.create(net);
      });
      this.log(`allocator: created the ingress network ${net.id} (${INGRESS_NETWORK.subnet})`);
    } catch (e) {
      if (!(e instanceof NameInUseError)) throw e;
      // A network called "ingress" that is not the routing mesh: ports cannot be published until it goes.
      if (!this.ingressNameTaken) this.log(`allocator: cannot create the ingress network: ${e.message}`);
      this.ingressNameTaken = true;
    }
  }

  /** Resolves to the milliseconds it computed (the commit's wait left out): the loop paces by it. */
  private async pass(): Promise<number | undefined> {
    const t0 = performance.now();
    await this.ensureIngress();
    if (!this.loop.active) return;
    const c0 = performance.now();
    const snap = this.store.view((tx) => {
      this.kept ??= { tasks: new Map(tx.list('task', allocatorReads).map((t) => [t.id, t] as const)), index: tx.index };
      const tasks = [...this.kept.tasks.values()];
      if (this.opts.verifyKept) {
        const full = tx.list('task', allocatorReads);
        const ids = (ts: readonly Frozen<Task>[]) =>
          ts
            .map((t) => `${t.id}@${t.version}`)
            .sort()
            .join(',');
        this.opts.verifyKept(ids(tasks) === ids(full) ? null : `kept ${ids(tasks)} against ${ids(full)}`);
      }
      return {
        index: tx.index,
        networks: tx.list('network'),
        services: tx.list('service'),
        tasks,
        nodes: tx.list('node'),
        cluster: tx.get('cluster', CLUSTER_ID),
      };
    });
    this.seenIndex = snap.index;
    const plan = planAllocation({
      networks: snap.networks,
      services: snap.services,
      tasks: snap.tasks,
      nodes: snap.nodes,
      ...(snap.cluster !== undefined ? { clusterSpec: snap.cluster.spec } : {}),
      hostRoutes: this.opts.hostRoutes?.() ?? [],
    });
    this.blocked = plan.problems.length > 0 || plan.blocked > 0;
    const services = new Map(snap.services.map((s) => [s.id, s]));
    const nodes = new Map(snap.nodes.map((n) => [n.id, n]));
    const items: Item[] = [
      ...plan.networks.map((u): Item => ({ kind: 'network', u })),
      ...plan.services.map((u): Item => ({ kind: 'service', u, seen: services.get(u.id)! })),
      ...plan.nodes.map((u): Item => ({ kind: 'node', u, seen: nodes.get(u.id)! })),
      ...plan.tasks.map((u): Item => ({ kind: 'task', u })),
    ];
    // Objects whose write was skipped: what depends on them is skipped too.
    const staleNets = new Set<string>();
    const staleSvcs = new Set<string>();
    let stale = 0;
    let allocated = 0;
    const skip = (set: Set<string> | null, id: string) => {
      set?.add(id);
      stale++;
      this.loop.again();
    };
    let computeMs = performance.now() - c0;
    if (items.length > 0) {
      const b0 = performance.now();
      const committed = this.store.batch(items, (tx, item) => {
        if (!this.loop.active) return;
        this.write(tx, item, staleNets, staleSvcs, skip, () => allocated++);
      });
      computeMs += performance.now() - b0;
      await committed;
    }
    const info: AllocatorPassInfo = {
      index: snap.index,
      networks: plan.networks.length,
      services: plan.services.length,
      nodes: plan.nodes.length,
      allocated,
      blocked: plan.blocked,
      stale,
      ms: performance.now() - t0,
    };
    if (allocated > 0 || plan.services.length > 0 || plan.networks.some((n) => n.allocation.vni !== undefined && n.allocation.subnets !== undefined)) {
      this.log(
        `allocator: ${allocated} tasks allocated` +
          (plan.services.length > 0 ? `, ${plan.services.length} service endpoints` : '') +
          (plan.blocked > 0 ? `, ${plan.blocked} waiting` : '') +
          ` in ${info.ms.toFixed(1)} ms`,
      );
    }
    // Problems are logged when they appear, not on every pass while they last.
    const problems = new Set(plan.problems.filter((p) => p.kind !== 'task').map((p) => `allocator: ${p.kind} ${p.name}: ${p.message}`));
    for (const line of problems) if (!this.reported.has(line)) this.log(line);
    this.reported = problems;
    this.opts.onPass?.(info);
    return computeMs;
  }

  /** One planned write, if what it was computed from is unchanged. Synchronous and re-runnable (Store.batch). */
  private write(
    tx: WriteTx,
    item: Item,
    staleNets: Set<string>,
    staleSvcs: Set<string>,
    skip: (set: Set<string> | null, id: string) => void,
    allocated: () => void,
  ): void {
    switch (item.kind) {
      case 'network': {
        const cur = tx.get('network', item.u.id);
        if (cur === undefined || cur.version !== item.u.version) {
          skip(staleNets, item.u.id);
          return;
        }
        tx.update({ ...cur, allocation: item.u.allocation });
        return;
      }
      case 'service': {
        const cur = tx.get('service', item.u.id);
        if (cur === undefined || !jsonEqual(cur.spec, item.seen.spec) || !jsonEqual(cur.status.endpoint, item.seen.status.endpoint)) {
          skip(staleSvcs, item.u.id);
          return;
        }
        tx.update({ ...cur, status: { ...cur.status, endpoint: item.u.endpoint } });
        return;
      }
      case 'node': {
        const cur = tx.get('node', item.u.id);
        if (cur === undefined || !jsonEqual(cur.attachments, item.seen.attachments)) {
          skip(null, item.u.id);
          return;
        }
        tx.update({ ...cur, attachments: item.u.attachments });
        return;
      }
      case 'task': {
        const u = item.u;
        const cur = tx.get('task', u.id);
        if (cur === undefined || cur.version !== u.version) {
          skip(null, u.id);
          return;
        }
        if (u.state === 'new') {
          tx.update({ ...cur, status: { ...cur.status, message: u.message } });
          return;
        }
        if (staleSvcs.has(u.serviceId) || u.networks.some((n) => staleNets.has(n.networkId))) {
          skip(null, u.id);
          return;
        }
        tx.update({ ...cur, networks: u.networks, status: { ...cur.status, state: 'pending', timestamp: tx.now, message: u.message } });
        allocated();
        return;
      }
    }
  }
}
