// The scheduler's core: decides which node each pending task runs on. A pure function of a view of the
// cluster (nodes, the tasks already on them, the pending tasks, recent failures, the time) with no I/O
// and no clock, so it is tested and benchmarked without a store; manager/scheduler/runner.ts feeds it
// from the store and writes its decisions back. See docs/design/scheduler.md.
//
// For every group of pending tasks (one service version) the nodes are first filtered, in order:
//
//   1. ready          node.status.state == ready
//   2. availability   spec.availability == active (drain and pause take no new tasks)
//   3. resources      the group's cpu / memory reservation fits what the node has left
//   4. constraints    every placement constraint matches (a node counts against the first it fails)
//   5. platform       the node's os/arch is one the group names (only when it names any)
//   6. host ports     none of the group's host-mode published ports is in use on the node
//   7. max replicas   the node runs fewer than placement.maxReplicas tasks of this service
//
// Stages 1, 2, 4 and 5 cannot change while a group is placed: they are evaluated once per node per
// group. Stages 3, 6 and 7 are capacity: they are re-checked, cheaply, when a node comes up for a task,
// and a node that runs out of capacity leaves the candidate set for the rest of the group.
//
// The remaining nodes are ranked (lowest first) by: recent failures of this service on the node (only
// once they reach `maxFailures` within `failureWindowMs`), tasks of this service, tasks in total, node
// id. Spread preferences first split the service's tasks evenly across the values of a node label
// (hierarchically for several preferences), then rank within the chosen branch. The candidates live in
// binary heaps (one per branch), so placing T tasks on N nodes costs O(N) per group plus O(log N) per task.

import { ConstraintError, firstFailing, parseConstraints, supportsPlatform } from './constraints.ts';
import type { Constraint, ConstraintNode } from './constraints.ts';
import type { NodeAvailability, ResourceAmounts } from '../../api/objects.ts';
import { PlacedTally, amount, portKey } from './tally.ts';
import type { PlacedTotals } from './tally.ts';

// ------------------------------------------------------------------------------------------- inputs

/** A node as the scheduler sees it. */
export interface SchedNode extends ConstraintNode {
  availability: NodeAvailability;
  /** node.status.state; only 'ready' nodes take tasks. */
  state: string;
  /** What the node offers in total (its description.resources). */
  resources: { nanoCpus: number; memoryBytes: number };
}

/** A host-mode published port: `port/protocol` can be bound by one task per node. */
export interface HostPort {
  port: number;
  protocol: string;
}

/** A task already placed on a node and not terminal: it counts for spreading and holds its reservations and host ports. */
export interface PlacedTask {
  serviceId: string;
  nodeId: string;
  reservations?: ResourceAmounts | undefined;
  hostPorts?: readonly HostPort[] | undefined;
}

/** A task to place. `nodeId` set = pre-assigned (e.g. a global service's task): only that node is checked. */
export interface PendingTask {
  id: string;
  nodeId?: string | undefined;
}

/** The pending tasks of one service version: they share a template, so one decision places them all. */
export interface PendingGroup {
  serviceId: string;
  specVersion?: number | undefined;
  tasks: readonly PendingTask[];
  /** Placement constraints, e.g. `node.labels.zone==eu` (see constraints.ts), ANDed. */
  constraints?: readonly string[] | undefined;
  /** Spread preferences, outermost first, e.g. [{ spread: 'node.labels.zone' }]. */
  preferences?: readonly { readonly spread: string }[] | undefined;
  /** At most this many tasks of the service per node (0 / absent = unlimited). */
  maxReplicas?: number | undefined;
  /** Reserved per task. */
  reservations?: ResourceAmounts | undefined;
  /** Host-mode published ports each task binds. */
  hostPorts?: readonly HostPort[] | undefined;
  /** Platforms the image runs on; absent or empty = any. */
  platforms?: readonly { readonly os?: string | undefined; readonly arch?: string | undefined }[] | undefined;
}

/** A task of `serviceId` that failed on `nodeId` at `at` (ms, same clock as SchedulerInput.now). */
export interface TaskFailure {
  serviceId: string;
  nodeId: string;
  at: number;
}

export interface SchedulerInput {
  nodes: readonly SchedNode[];
  /** nodeLayout(nodes), when the caller keeps it between passes (computed here otherwise). */
  layout?: NodeLayout | undefined;
  /** Tasks assigned to a node and not terminal. Ignored when `placed` is given. */
  tasks?: readonly PlacedTask[] | undefined;
  /**
   * The same tasks added up (tally.ts), as the runner keeps them between passes: the core reads only
   * these sums, and adding up a list is O(tasks) per pass. Their host ports come from `servicePorts`.
   */
  placed?: PlacedTotals | undefined;
  /** With `placed`: the host-mode ports of services, bound on every node that runs one of their tasks. */
  servicePorts?: ReadonlyMap<string, readonly HostPort[]> | undefined;
  /** Groups are placed in this order (earlier groups see the tasks placed by earlier ones). */
  groups: readonly PendingGroup[];
  failures?: readonly TaskFailure[] | undefined;
  /** Current time in ms (only used to age failures). */
  now: number;
}

export interface SchedulerOptions {
  /** Failures of a service on a node within the window from which that node is avoided. Default 5. */
  maxFailures?: number;
  /** Default 5 minutes. */
  failureWindowMs?: number;
}

export const DEFAULT_MAX_FAILURES = 5;
export const DEFAULT_FAILURE_WINDOW_MS = 5 * 60_000;

// ------------------------------------------------------------------------------------------ outputs

export interface Assignment {
  taskId: string;
  nodeId: string;
}

export interface Unplaced {
  taskId: string;
  serviceId: string;
  /** e.g. `no suitable node (3 nodes fail constraint node.labels.zone==eu; 1 node is drained)`. */
  reason: string;
}

export interface SchedulerResult {
  assignments: Assignment[];
  unplaced: Unplaced[];
}

/** Places every group of `input` and returns the decisions. Deterministic; does not modify its input. */
export function schedule(input: SchedulerInput, opts: SchedulerOptions = {}): SchedulerResult {
  const state = new PlacementState(input, opts);
  const out: SchedulerResult = { assignments: [], unplaced: [] };
  for (const g of input.groups) state.placeGroup(g, out);
  return out;
}

// ---------------------------------------------------------------------------------------- reasons

/** Filter stages, in evaluation order. */
const Stage = { Ready: 0, Availability: 1, Resources: 2, Constraint: 3, Platform: 4, Ports: 5, MaxReplicas: 6 } as const;
type Stage = (typeof Stage)[keyof typeof Stage];

interface ReasonCount {
  stage: Stage;
  /** Order within the stage (constraint index). */
  sub: number;
  count: number;
  /** Predicate after "1 node" / after "N nodes". */
  one: string;
  many: string;
}

/** Counts of nodes excluded per reason, for one group. */
class Reasons {
  private readonly m = new Map<string, ReasonCount>();

  add(key: string, stage: Stage, sub: number, one: string, many: string): void {
    const r = this.m.get(key);
    if (r !== undefined) r.count++;
    else this.m.set(key, { stage, sub, count: 1, one, many });
  }

  /**
   * `no suitable node (…)`: the reasons that excluded the most nodes first; on a tie the later filter
   * (the one the nodes came closest to passing) first, then constraint order.
   */
  message(): string {
    const rs = [...this.m.values()];
    if (rs.length === 0) return 'no suitable node (no nodes available)';
    rs.sort((a, b) => b.count - a.count || b.stage - a.stage || a.sub - b.sub);
    return `no suitable node (${rs.map((r) => (r.count === 1 ? `1 node ${r.one}` : `${r.count} nodes ${r.many}`)).join('; ')})`;
  }
}

function addStateReason(rs: Reasons, state: string): void {
  if (state === 'down' || state === 'disconnected') rs.add(`state:${state}`, Stage.Ready, 0, `is ${state}`, `are ${state}`);
  else rs.add('state:not-ready', Stage.Ready, 0, 'is not ready', 'are not ready');
}

// --------------------------------------------------------------------------------------------- heap

/** Binary min-heap of small integers under a comparator that reads mutable external keys. */
class Heap {
  private readonly a: number[];

  constructor(
    items: number[],
    private readonly less: (x: number, y: number) => boolean,
  ) {
    this.a = items;
    for (let i = (items.length >> 1) - 1; i >= 0; i--) this.down(i);
  }

  get size(): number {
    return this.a.length;
  }

  /** The smallest item (the heap must not be empty). */
  top(): number {
    return this.a[0]!;
  }

  /** Removes the smallest item. */
  pop(): void {
    const last = this.a.pop()!;
    if (this.a.length > 0) {
      this.a[0] = last;
      this.down(0);
    }
  }

  /** Restores the order after the top item's key grew. */
  topIncreased(): void {
    this.down(0);
  }

  private down(i: number): void {
    const a = this.a;
    const n = a.length;
    const x = a[i]!;
    for (;;) {
      let c = 2 * i + 1;
      if (c >= n) break;
      const r = c + 1;
      if (r < n && this.less(a[r]!, a[c]!)) c = r;
      if (!this.less(a[c]!, x)) break;
      a[i] = a[c]!;
      i = c;
    }
    a[i] = x;
  }
}

/** A branch of the spread-preference tree; a leaf holds a heap of node indexes. */
interface Branch {
  /** Tasks of the current service on the branch's nodes that pass the static filters (full ones included). */
  svc: number;
  /** Tie-break among siblings (label values in order, missing label last). */
  order: number;
  /** Heap of child branch indexes (into `branches`) or, for a leaf, of node indexes. */
  heap: Heap;
  leaf: boolean;
}

// -------------------------------------------------------------------------------------------- state

/** A usable non-negative amount (absent, negative or non-finite = 0). */
function byString(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** What one group needs, prepared once. */
interface Group {
  serviceId: string;
  constraints: readonly Constraint[];
  cpu: number;
  mem: number;
  portKeys: readonly string[];
  /** 0 = unlimited. */
  maxReplicas: number;
  platforms: readonly { readonly os?: string | undefined; readonly arch?: string | undefined }[];
  platformText: string;
  /** Spread labels (without `node.labels.`), outermost first. */
  spread: readonly string[];
  /** Node indexes whose count of this service changed. */
  touched: Set<number>;
}

/** How a node fares against a group's filters. */
const Verdict = { Pass: 0, Capacity: 1, Static: 2 } as const;
type Verdict = (typeof Verdict)[keyof typeof Verdict];

/** The nodes of a pass, without duplicates, sorted by id (the final tie-break), and where each is. */
export interface NodeLayout {
  nodes: readonly SchedNode[];
  index: ReadonlyMap<string, number>;
}

/**
 * Lays out a pass's nodes: O(n log n). The runner keeps the layout while no node changes (collectInput)
 * and passes it as SchedulerInput.layout: deduplicating, sorting and indexing 5,000 nodes on every pass,
 * with converting them, was most of each pass's setup in a rolling update beside 150,000 tasks (8.5 of
 * the leader's 49 busy seconds with the per-service counts; bench:scale profile).
 */
export function nodeLayout(input: readonly SchedNode[]): NodeLayout {
  const seen = new Set<string>();
  const nodes: SchedNode[] = [];
  for (const n of input) {
    if (seen.has(n.id)) continue;
    seen.add(n.id);
    nodes.push(n);
  }
  nodes.sort((a, b) => byString(a.id, b.id));
  const index = new Map<string, number>();
  nodes.forEach((n, i) => {
    index.set(n.id, i);
  });
  return { nodes, index };
}

/**
 * The cluster as the scheduler tracks it while placing: per node, tasks in total, free resources and
 * host ports in use; per service, tasks per node. `schedule()` is `new PlacementState(input)` plus one
 * `placeGroup()` per group, in order; each placement updates the state, so later groups see it. The
 * bench times placeGroup() on its own (one batch).
 */
export class PlacementState {
  /** Nodes sorted by id: the index into this array is the final tie-break. */
  readonly nodes: readonly SchedNode[];
  private readonly index: ReadonlyMap<string, number>;
  private readonly total: Int32Array;
  private readonly cpuFree: Float64Array;
  private readonly memFree: Float64Array;
  private readonly ports: (Set<string> | undefined)[];
  /**
   * serviceId -> node index -> tasks of that service on the node (outside the group being placed), built
   * from the tally when a pass first places that service: at 5,000 nodes, building it for every service of
   * the cluster (150,000 tasks of one service on all of them) was a third of each pass of a rolling update.
   */
  private readonly perService = new Map<string, Map<number, number>>();
  private readonly placedByService: ReadonlyMap<string, ReadonlyMap<string, number>>;
  /** serviceId -> node index -> failures within the window. */
  private readonly failures = new Map<string, Map<number, number>>();
  private readonly maxFailures: number;
  // Per-group scratch: tasks of the group's service per node, failure penalty per node.
  private readonly svc: Int32Array;
  private readonly pen: Int32Array;
  /** Node ranking: penalty, tasks of this service, tasks in total, id. */
  private readonly nodeLess: (x: number, y: number) => boolean;

  constructor(input: Pick<SchedulerInput, 'nodes' | 'layout' | 'tasks' | 'placed' | 'servicePorts' | 'failures' | 'now'>, opts: SchedulerOptions = {}) {
    const layout = input.layout ?? nodeLayout(input.nodes);
    const nodes = layout.nodes;
    this.nodes = nodes;
    this.index = layout.index;
    const N = nodes.length;
    this.total = new Int32Array(N);
    this.cpuFree = new Float64Array(N);
    this.memFree = new Float64Array(N);
    this.ports = new Array<Set<string> | undefined>(N).fill(undefined);
    this.svc = new Int32Array(N);
    this.pen = new Int32Array(N);
    for (let i = 0; i < N; i++) {
      const n = nodes[i]!;
      this.cpuFree[i] = amount(n.resources.nanoCpus);
      this.memFree[i] = amount(n.resources.memoryBytes);
    }
    // The placed tasks, added up: O(nodes + services × their nodes) from a kept tally.
    const placed = input.placed ?? PlacedTally.of(input.tasks ?? []);
    for (const [id, load] of placed.byNode) {
      const i = this.index.get(id);
      if (i === undefined) continue;
      this.total[i] = load.tasks;
      this.cpuFree[i]! -= load.nanoCpus;
      this.memFree[i]! -= load.memoryBytes;
      if (load.ports !== undefined && load.ports.size > 0) this.usePorts(i, [...load.ports.keys()]);
    }
    this.placedByService = placed.byService;
    // A kept tally does not hold ports: the host ports of its services' tasks are taken here.
    if (input.placed !== undefined) {
      for (const [serviceId, hostPorts] of input.servicePorts ?? []) {
        const keys = hostPorts.map(portKey);
        if (keys.length === 0) continue;
        for (const id of placed.byService.get(serviceId)?.keys() ?? []) {
          const i = this.index.get(id);
          if (i !== undefined) this.usePorts(i, keys);
        }
      }
    }
    this.maxFailures = opts.maxFailures ?? DEFAULT_MAX_FAILURES;
    const since = input.now - (opts.failureWindowMs ?? DEFAULT_FAILURE_WINDOW_MS);
    for (const f of input.failures ?? []) {
      if (!(f.at > since)) continue;
      const i = this.index.get(f.nodeId);
      if (i === undefined) continue;
      let m = this.failures.get(f.serviceId);
      if (m === undefined) this.failures.set(f.serviceId, (m = new Map()));
      m.set(i, (m.get(i) ?? 0) + 1);
    }
    const { pen, svc, total } = this;
    this.nodeLess = (x, y) => {
      const d = pen[x]! - pen[y]! || svc[x]! - svc[y]! || total[x]! - total[y]!;
      return d !== 0 ? d < 0 : x < y;
    };
  }

  /** The placed tasks as this state counts them, canonical (tests compare a kept tally with a fresh read). */
  placedSummary(): string {
    for (const serviceId of this.placedByService.keys()) this.countsOf(serviceId);
    const nodes = this.nodes.map((n, i) => [n.id, this.total[i], this.cpuFree[i], this.memFree[i], [...(this.ports[i] ?? [])].sort()]);
    const services = [...this.perService]
      .map(([id, m]) => [id, [...m].filter(([, c]) => c > 0).sort((x, y) => x[0] - y[0])] as const)
      .filter(([, m]) => m.length > 0)
      .sort((x, y) => byString(x[0], y[0]));
    return JSON.stringify({ nodes, services });
  }

  private usePorts(i: number, keys: readonly string[]): void {
    let s = this.ports[i];
    if (s === undefined) this.ports[i] = s = new Set();
    for (const k of keys) s.add(k);
  }

  /**
   * Places one group (all its tasks in one decision); appends the decisions to `out` (default: a fresh
   * result) and returns it. Pre-assigned tasks (with a nodeId) are checked against their node first.
   */
  placeGroup(pg: PendingGroup, out: SchedulerResult = { assignments: [], unplaced: [] }): SchedulerResult {
    if (pg.tasks.length === 0) return out;
    let constraints: Constraint[];
    try {
      constraints = parseConstraints(pg.constraints);
    } catch (err) {
      if (!(err instanceof ConstraintError)) throw err;
      for (const t of pg.tasks) out.unplaced.push({ taskId: t.id, serviceId: pg.serviceId, reason: `no suitable node (${err.message})` });
      return out;
    }
    const g: Group = {
      serviceId: pg.serviceId,
      constraints,
      cpu: amount(pg.reservations?.nanoCpus),
      mem: amount(pg.reservations?.memoryBytes),
      portKeys: [...new Set((pg.hostPorts ?? []).map(portKey))],
      maxReplicas: pg.maxReplicas !== undefined && pg.maxReplicas > 0 ? Math.floor(pg.maxReplicas) : 0,
      platforms: pg.platforms ?? [],
      platformText: (pg.platforms ?? []).map((p) => `${p.os ?? '*'}/${p.arch ?? '*'}`).join(' or '),
      spread: (pg.preferences ?? [])
        .map((p) => p.spread)
        .filter((s) => s.startsWith('node.labels.'))
        .map((s) => s.slice('node.labels.'.length)),
      touched: new Set(),
    };
    this.load(g.serviceId);
    const free: string[] = [];
    for (const t of pg.tasks) {
      if (t.nodeId === undefined) {
        free.push(t.id);
        continue;
      }
      const i = this.index.get(t.nodeId);
      const rs = new Reasons();
      // A task bound to its node (global services) replaces one that already ran there: a paused node
      // keeps it (pause only stops new placements); the orchestrator decides which nodes get one at all.
      if (i !== undefined && this.check(g, i, rs, true) === Verdict.Pass) this.assign(g, t.id, i, out);
      else
        out.unplaced.push({ taskId: t.id, serviceId: g.serviceId, reason: i === undefined ? `no suitable node (node ${t.nodeId} not found)` : rs.message() });
    }
    if (free.length > 0) this.placeFree(g, free, out);
    let m = this.countsOf(g.serviceId);
    for (const i of g.touched) {
      if (m === undefined) this.perService.set(g.serviceId, (m = new Map()));
      m.set(i, this.svc[i]!);
    }
    return out;
  }

  /** The service's tasks per node index, from the tally the first time (perService). */
  private countsOf(serviceId: string): Map<number, number> | undefined {
    let m = this.perService.get(serviceId);
    if (m !== undefined) return m;
    const onNodes = this.placedByService.get(serviceId);
    if (onNodes === undefined) return undefined;
    m = new Map();
    for (const [id, c] of onNodes) {
      const i = this.index.get(id);
      if (i !== undefined) m.set(i, c);
    }
    this.perService.set(serviceId, m);
    return m;
  }

  /** Loads the service's per-node counts and failure penalties into the scratch buffers. */
  private load(serviceId: string): void {
    this.svc.fill(0);
    this.pen.fill(0);
    const m = this.countsOf(serviceId);
    if (m !== undefined) for (const [i, c] of m) this.svc[i] = c;
    const f = this.failures.get(serviceId);
    if (f !== undefined) for (const [i, c] of f) if (c >= this.maxFailures) this.pen[i] = c;
  }

  /**
   * Runs every filter on node i, in order; records the first that fails in `rs`. Static = fails a filter
   * that cannot change while the group is placed (ready, availability, constraints, platform).
   */
  private check(g: Group, i: number, rs: Reasons, bound = false): Verdict {
    const n = this.nodes[i]!;
    if (n.state !== 'ready') {
      addStateReason(rs, n.state);
      return Verdict.Static;
    }
    if (n.availability !== 'active' && !(bound && n.availability === 'pause')) {
      if (n.availability === 'drain') rs.add('avail:drain', Stage.Availability, 0, 'is drained', 'are drained');
      else rs.add(`avail:${n.availability}`, Stage.Availability, 0, 'is paused', 'are paused');
      return Verdict.Static;
    }
    const resources = this.resourcesOk(g, i);
    const c = g.constraints.length > 0 ? firstFailing(g.constraints, n) : null;
    const platform = g.platforms.length === 0 || this.platformOk(g, n);
    if (resources !== null) this.addResourceReason(rs, resources);
    else if (c !== null) {
      const k = g.constraints.indexOf(c);
      rs.add(`constraint:${k}`, Stage.Constraint, k, `fails constraint ${c.text}`, `fail constraint ${c.text}`);
    } else if (!platform) {
      rs.add('platform', Stage.Platform, 0, `does not support platform ${g.platformText}`, `do not support platform ${g.platformText}`);
    }
    if (c !== null || !platform) return Verdict.Static;
    if (resources !== null) return Verdict.Capacity;
    return this.capacityOk(g, i, rs, false) ? Verdict.Pass : Verdict.Capacity;
  }

  private platformOk(g: Group, n: SchedNode): boolean {
    return supportsPlatform(g.platforms, n.os, n.arch);
  }

  /** null when the group's reservation fits on node i, else the resource that is short. */
  private resourcesOk(g: Group, i: number): 'cpu' | 'memory' | null {
    if (g.cpu > 0 && this.cpuFree[i]! < g.cpu) return 'cpu';
    if (g.mem > 0 && this.memFree[i]! < g.mem) return 'memory';
    return null;
  }

  private addResourceReason(rs: Reasons, r: 'cpu' | 'memory'): void {
    rs.add(`res:${r}`, Stage.Resources, r === 'cpu' ? 0 : 1, `has insufficient ${r}`, `have insufficient ${r}`);
  }

  /** The filters that change as tasks are placed: resources (optionally), host ports, max replicas. */
  private capacityOk(g: Group, i: number, rs: Reasons, withResources: boolean): boolean {
    if (withResources) {
      const r = this.resourcesOk(g, i);
      if (r !== null) {
        this.addResourceReason(rs, r);
        return false;
      }
    }
    if (g.portKeys.length > 0) {
      const used = this.ports[i];
      if (used !== undefined) {
        for (const k of g.portKeys) {
          if (used.has(k)) {
            rs.add(`port:${k}`, Stage.Ports, 0, `has port ${k} in use`, `have port ${k} in use`);
            return false;
          }
        }
      }
    }
    if (g.maxReplicas > 0 && this.svc[i]! >= g.maxReplicas) {
      const k = g.maxReplicas;
      rs.add(
        'maxreplicas',
        Stage.MaxReplicas,
        0,
        `already runs the maximum of ${k} tasks of this service`,
        `already run the maximum of ${k} tasks of this service`,
      );
      return false;
    }
    return true;
  }

  /** Commits one task of the group to node i. */
  private assign(g: Group, taskId: string, i: number, out: SchedulerResult): void {
    this.total[i]!++;
    this.svc[i]!++;
    this.cpuFree[i]! -= g.cpu;
    this.memFree[i]! -= g.mem;
    if (g.portKeys.length > 0) this.usePorts(i, g.portKeys);
    g.touched.add(i);
    out.assignments.push({ taskId, nodeId: this.nodes[i]!.id });
  }

  /** Places tasks that may go anywhere: filter once, then pick from the preference tree task by task. */
  private placeFree(g: Group, taskIds: readonly string[], out: SchedulerResult): void {
    const rs = new Reasons();
    const N = this.nodes.length;
    // Nodes that pass the static filters; `ok` marks those with capacity for at least one task now.
    const eligible: number[] = [];
    const ok = new Uint8Array(N);
    for (let i = 0; i < N; i++) {
      const v = this.check(g, i, rs);
      if (v === Verdict.Static) continue;
      eligible.push(i);
      if (v === Verdict.Pass) ok[i] = 1;
    }
    const tree = new SpreadTree(this.nodes, eligible, ok, g.spread, this.svc, this.nodeLess);
    let k = 0;
    for (; k < taskIds.length; k++) {
      const i = tree.pick((n) => this.capacityOk(g, n, rs, true));
      if (i < 0) break;
      this.assign(g, taskIds[k]!, i, out);
      tree.placed();
    }
    if (k < taskIds.length) {
      const reason = rs.message();
      for (; k < taskIds.length; k++) out.unplaced.push({ taskId: taskIds[k]!, serviceId: g.serviceId, reason });
    }
  }
}

// ------------------------------------------------------------------------------------- spread tree

/**
 * The candidates of one group, arranged by spread preferences: one level per preference, one branch per
 * label value (nodes without the label form their own branch, last). Each branch knows how many tasks of
 * the service its nodes run; picking walks down to the branch with the fewest (ties: value order), and
 * at the leaf takes the best-ranked node. Without preferences the tree is a single leaf. A node that runs
 * out of capacity is dropped from its leaf, an empty branch from its parent; counts of a dropped branch
 * still count for its parent (the service's tasks there are still there).
 */
class SpreadTree {
  private readonly branches: Branch[] = [];
  private readonly root: Branch | null;
  /** Branches walked by the last pick(), root first, and the leaf. */
  private readonly path: Branch[] = [];
  private leaf: Branch | null = null;
  private readonly branchLess = (x: number, y: number): boolean => {
    const a = this.branches[x]!;
    const b = this.branches[y]!;
    return a.svc !== b.svc ? a.svc < b.svc : a.order < b.order;
  };

  constructor(
    private readonly nodes: readonly SchedNode[],
    eligible: number[],
    ok: Uint8Array,
    private readonly spread: readonly string[],
    private readonly svc: Int32Array,
    private readonly nodeLess: (x: number, y: number) => boolean,
  ) {
    this.root = this.build(eligible, ok, 0, 0).branch;
  }

  /** Builds the subtree over `nodes`; branch null when none of them has capacity. */
  private build(nodes: number[], ok: Uint8Array, depth: number, order: number): { branch: Branch | null; svc: number } {
    let svc = 0;
    if (depth === this.spread.length) {
      const cands: number[] = [];
      for (const i of nodes) {
        svc += this.svc[i]!;
        if (ok[i] === 1) cands.push(i);
      }
      if (cands.length === 0) return { branch: null, svc };
      return { branch: { svc, order, heap: new Heap(cands, this.nodeLess), leaf: true }, svc };
    }
    const label = this.spread[depth]!;
    const byValue = new Map<string, number[]>();
    const missing: number[] = [];
    for (const i of nodes) {
      const v = this.nodes[i]!.labels[label];
      if (v === undefined) missing.push(i);
      else {
        const l = byValue.get(v);
        if (l === undefined) byValue.set(v, [i]);
        else l.push(i);
      }
    }
    const groups = [...byValue.keys()].sort(byString).map((v) => byValue.get(v)!);
    if (missing.length > 0) groups.push(missing);
    const kids: number[] = [];
    const me: Branch = { svc: 0, order, heap: new Heap([], this.branchLess), leaf: false };
    groups.forEach((ns, o) => {
      const sub = this.build(ns, ok, depth + 1, o);
      svc += sub.svc;
      if (sub.branch === null) return;
      kids.push(this.branches.length);
      this.branches.push(sub.branch);
    });
    if (kids.length === 0) return { branch: null, svc };
    me.svc = svc;
    me.heap = new Heap(kids, this.branchLess);
    return { branch: me, svc };
  }

  /** The best node for which `fits` holds, or -1; nodes that do not fit are dropped for good. */
  pick(fits: (i: number) => boolean): number {
    const root = this.root;
    if (root === null) return -1;
    const path = this.path;
    for (;;) {
      path.length = 0;
      let b = root;
      while (!b.leaf) {
        if (b.heap.size === 0) return -1; // only the root can be left empty
        path.push(b);
        b = this.branches[b.heap.top()]!;
      }
      while (b.heap.size > 0) {
        const i = b.heap.top();
        if (fits(i)) {
          this.leaf = b;
          return i;
        }
        b.heap.pop();
      }
      if (path.length === 0) return -1;
      // The leaf ran dry: drop it, and every ancestor that leaves empty (never the root itself).
      for (let d = path.length - 1; d >= 0; d--) {
        const parent = path[d]!;
        parent.heap.pop();
        if (parent.heap.size > 0 || d === 0) break;
      }
    }
  }

  /** After a task went to the node pick() returned (its keys were bumped): re-rank it and its branches. */
  placed(): void {
    const leaf = this.leaf!;
    leaf.heap.topIncreased();
    leaf.svc++;
    for (let d = this.path.length - 1; d >= 0; d--) {
      const b = this.path[d]!;
      b.heap.topIncreased();
      b.svc++;
    }
  }
}
