// The scheduler's loop: connects the pure core (scheduler.ts) to the store. Runs on the leader only
// (the manager starts it with leadership and stops it when leadership is lost, see Manager.leaderHooks).
//
//   store events ──► debounce ──► pass: read one consistent view ──► schedule() ──► write decisions
//
// A pass is triggered by: a task becoming pending and unassigned (created, or moved back to pending), a
// pre-assigned pending task, a node appearing, disappearing or changing in a way that matters for
// placement (state, availability, labels, role, resources, platform, address) while tasks are pending,
// and capacity being freed (a placed task ending, moving or being deleted) while tasks are pending.
// Bursts are coalesced: the events of one event-loop turn (one applied entry) give one pass, and a pass
// asked for during another waits as long as that one computed (PassLoop). A debounce (`debounceMs` after
// the last event, at most `maxDelayMs` after the first) can be set; by default there is none: 10 ms was a
// fixed wait in the start of every task (bench:converge, created -> running at its agent: p50 88 -> 63-66
// ms). Events the running pass already saw (index <= the view's index) trigger nothing.
//
// Writes go through Store.batch (split under the 1.5 MiB transaction limit). Every write re-checks, in
// the transaction, that the task still has the version the pass read; a task that changed is left for
// the next pass. Assigned tasks get nodeId, status.state 'assigned' and a message; unplaceable tasks stay
// 'pending' with the reason as status.message, written only when it changes. A ConflictError from apply
// (another transaction got there first) re-runs the pass on a fresh view.
import { performance } from 'node:perf_hooks';
import { PassLoop } from '../store/pass-loop.ts';
import type { ReadTx, Store, StoreEvent } from '../store/store.ts';
import { isTerminalTaskState, taskStateRank } from '../../api/objects.ts';
import type { Frozen, Node, Service, Task } from '../../api/objects.ts';
import { DEFAULT_FAILURE_WINDOW_MS, PlacementState, nodeLayout, schedule } from './scheduler.ts';
import { PlacedTally } from './tally.ts';
import type { BurstGate } from '../store/write-burst.ts';
import type { PlacedTotals } from './tally.ts';
import type { HostPort, NodeLayout, PendingGroup, PlacedTask, SchedNode, SchedulerInput, SchedulerOptions, TaskFailure } from './scheduler.ts';

/** status.message of a task the scheduler assigned. */
export const ASSIGNED_MESSAGE = 'scheduler assigned task to node';

export interface SchedulerRunnerOptions extends SchedulerOptions {
  /** Quiet time after the last event before a pass runs. Default 0: one pass per event-loop turn's events. */
  debounceMs?: number;
  /** A burst of events delays a pass at most this long after its first event. Default 250 ms. */
  maxDelayMs?: number;
  /** Clock (ms) for failure ages. Default Date.now. */
  now?: () => number;
  log?: (msg: string) => void;
  /** Called after every pass that found pending tasks (metrics, tests, bench). */
  onPass?: (info: PassInfo) => void;
  /** Tests: every pass also reads all tasks and passes here how that differs from the kept ones (null: not). */
  verifyKept?: (difference: string | null) => void;
  /** Tasks the first read takes per turn of the event loop (readKept). Default READ_STEP; tests lower it. */
  readStep?: number;
  /**
   * The orchestrator's writes (store/write-burst.ts): a pass due while they go on waits for their end, at
   * most `burstHoldMs`, so that the tasks one orchestrator pass creates are placed together.
   */
  burst?: BurstGate;
  /** Longest a pass waits for a burst to end. Default BURST_HOLD_MS. */
  burstHoldMs?: number;
}

export interface PassInfo {
  /** Store index of the view the pass read. */
  index: number;
  pending: number;
  assigned: number;
  unplaced: number;
  /** Tasks whose pending reason was (re)written. */
  messages: number;
  /** Writes skipped because the task changed after the view was read (a new pass follows). */
  stale: number;
  /** Whole pass: view, decision, writes. */
  ms: number;
  /** The decision alone (schedule()). */
  decideMs: number;
}

/** What a pass reads: the core's input, and for every pending task the version and message it had. */
export interface CollectedInput {
  input: SchedulerInput;
  pending: Map<string, { version: number; message: string }>;
  index: number;
}

const RUNNING_RANK = taskStateRank('running');
const PRUNE_FAILURES_AT = 10_000;
/** Tasks readKept takes per turn of the event loop (a fifteenth of the 116 ms read of 150,000). */
const READ_STEP = 10_000;
const ASSIGNED_RANK = taskStateRank('assigned');
/**
 * Longest a pass waits for the orchestrator's writes to end. An orchestrator pass starts no new
 * transaction for a large service after max(2.5 s, twice its compute) (orchestrator/runner.ts,
 * LEFTOVER_MIN_MS); 20,000 new tasks are about eight transactions. The cap matters when a commit hangs.
 */
const BURST_HOLD_MS = 5_000;

/**
 * A task the scheduler should place: pending, and not on its way out. Jobs' tasks (desired state
 * 'complete') are scheduled; desired 'shutdown' / 'remove' and later are not.
 */
export function isSchedulable(t: Frozen<Task>): boolean {
  return t.status.state === 'pending' && (taskStateRank(t.desiredState) <= RUNNING_RANK || t.desiredState === 'complete');
}

/** Holds a node: assigned (or further) and not terminal. */
function isPlaced(t: Frozen<Task>): boolean {
  if (t.nodeId === undefined) return false;
  const r = taskStateRank(t.status.state);
  return r >= ASSIGNED_RANK && !isTerminalTaskState(t.status.state);
}

function isFailure(t: Frozen<Task>): boolean {
  return (t.status.state === 'failed' || t.status.state === 'rejected') && t.nodeId !== undefined;
}

/** The IPv4 address in a node's address (which may carry a port), or ''. */
function ipOf(addr: string): string {
  const m = /(\d{1,3}(?:\.\d{1,3}){3})/.exec(addr);
  return m ? m[1]! : '';
}

/** Conversions kept per store node object: a node that did not change is the same object, and so is its SchedNode. */
const schedNodes = new WeakMap<Frozen<Node>, SchedNode>();

/** A store node as the core sees it (the same object for the same store object). */
export function toSchedNode(n: Frozen<Node>): SchedNode {
  let s = schedNodes.get(n);
  if (s === undefined) schedNodes.set(n, (s = convertNode(n)));
  return s;
}

/**
 * The nodes of the last pass and their layout (scheduler.ts, nodeLayout): while the store lists the same
 * node objects, the layout is not made again.
 */
export interface NodesMemo {
  frozen: readonly Frozen<Node>[];
  nodes: readonly SchedNode[];
  layout: NodeLayout;
}

function schedNodesOf(tx: ReadTx, memo?: { last: NodesMemo | null }): { nodes: readonly SchedNode[]; layout?: NodeLayout } {
  const frozen = tx.list('node');
  const last = memo?.last;
  if (last && last.frozen.length === frozen.length && last.frozen.every((n, i) => n === frozen[i])) return last;
  const nodes = frozen.map(toSchedNode);
  if (!memo) return { nodes };
  memo.last = { frozen, nodes, layout: nodeLayout(nodes) };
  return memo.last;
}

function convertNode(n: Frozen<Node>): SchedNode {
  return {
    id: n.id,
    hostname: n.description.hostname,
    role: n.spec.role,
    os: n.description.platform?.os ?? '',
    arch: n.description.platform?.arch ?? '',
    ip: ipOf(n.status.addr || n.description.addr || ''),
    labels: n.spec.labels ?? {},
    availability: n.spec.availability,
    state: n.status.state,
    resources: { nanoCpus: n.description.resources?.nanoCpus ?? 0, memoryBytes: n.description.resources?.memoryBytes ?? 0 },
  };
}

/** Host-mode published ports of a service (tasks bind them on their node). */
export function hostPortsOf(s: Frozen<Service> | undefined): HostPort[] {
  const out: HostPort[] = [];
  for (const p of s?.spec.endpoint?.ports ?? []) {
    if (p.publishMode === 'host' && p.publishedPort !== undefined) out.push({ port: p.publishedPort, protocol: p.protocol });
  }
  return out;
}

/**
 * Reads everything a pass needs from one consistent view: nodes, placed tasks (with their reservations
 * and their service's host ports), and the schedulable pending tasks grouped by service and spec version
 * (in creation order of each group's first task).
 */
export function collectInput(
  tx: ReadTx,
  failures: readonly TaskFailure[],
  now: number,
  kept?: KeptTasks,
  nodesMemo?: { last: NodesMemo | null },
): CollectedInput {
  const { nodes, layout } = schedNodesOf(tx, nodesMemo);
  const ports = new Map<string, HostPort[]>();
  const portsOf = (serviceId: string): HostPort[] => {
    let p = ports.get(serviceId);
    if (p === undefined) ports.set(serviceId, (p = hostPortsOf(tx.get('service', serviceId))));
    return p;
  };
  const placed: PlacedTask[] = [];
  const groups = new Map<string, PendingGroup & { tasks: { id: string; nodeId?: string }[] }>();
  const pending = new Map<string, { version: number; message: string }>();
  let candidates: Iterable<Frozen<Task>>;
  let servicePorts: Map<string, HostPort[]> | undefined;
  if (kept !== undefined) {
    // The placed tasks as the runner keeps them, added up: their services' host ports are looked up
    // here (a service's endpoint may change without any of its tasks changing).
    for (const serviceId of kept.tally.byService.keys()) {
      const hp = portsOf(serviceId);
      if (hp.length > 0) (servicePorts ??= new Map()).set(serviceId, hp);
    }
    candidates = kept.pending.values();
  } else candidates = tx.list('task');
  for (const t of candidates) {
    if (isPlaced(t)) {
      const hp = portsOf(t.serviceId);
      placed.push({ serviceId: t.serviceId, nodeId: t.nodeId!, reservations: t.spec.resources?.reservations, hostPorts: hp.length > 0 ? hp : undefined });
      continue;
    }
    if (!isSchedulable(t)) continue;
    const placement = t.spec.placement;
    const reservations = t.spec.resources?.reservations;
    // Tasks of one service version share their template; without a version, group by what matters.
    const key =
      t.specVersion !== undefined
        ? `${t.serviceId}\u0000${t.specVersion}`
        : `${t.serviceId}\u0000-\u0000${JSON.stringify([placement ?? null, reservations ?? null])}`;
    let g = groups.get(key);
    if (g === undefined) {
      const hp = portsOf(t.serviceId);
      g = {
        serviceId: t.serviceId,
        specVersion: t.specVersion,
        tasks: [],
        constraints: placement?.constraints,
        preferences: placement?.preferences,
        maxReplicas: placement?.maxReplicas,
        platforms: placement?.platforms,
        reservations,
        hostPorts: hp.length > 0 ? hp : undefined,
      };
      groups.set(key, g);
    }
    g.tasks.push(t.nodeId !== undefined ? { id: t.id, nodeId: t.nodeId } : { id: t.id });
    pending.set(t.id, { version: t.version, message: t.status.message });
  }
  const input: SchedulerInput =
    kept !== undefined
      ? { nodes, layout, placed: kept.tally, servicePorts, groups: [...groups.values()], failures, now }
      : { nodes, layout, tasks: placed, groups: [...groups.values()], failures, now };
  return { input, pending, index: tx.index };
}

/**
 * The tasks a pass reads, kept by the runner from the store's events instead of read from every task of
 * the cluster on every pass (at 20,000 tasks that scan was most of a pass during a rolling update): the
 * placed ones as the core counts them, and the schedulable pending ones.
 */
export interface KeptTasks {
  /** The placed tasks added up. */
  tally: PlacedTotals;
  pending: ReadonlyMap<string, Frozen<Task>>;
}

/** How two reads differ in what the core is given (placed tasks as a multiset, groups, versions), or null. */
export function collectedDifference(a: CollectedInput, b: CollectedInput): string | null {
  // What the core makes of the placed tasks (per node: tasks, free cpu and memory, ports; per service).
  const placed = (c: CollectedInput) => new PlacementState(c.input).placedSummary();
  const pa = placed(a);
  const pb = placed(b);
  if (pa !== pb) return `placed tasks differ: ${pa.slice(0, 300)} against ${pb.slice(0, 300)}`;
  const pend = (c: CollectedInput) => JSON.stringify([...c.pending].sort((x, y) => (x[0] < y[0] ? -1 : 1)));
  if (pend(a) !== pend(b)) return `pending tasks: ${a.pending.size} against ${b.pending.size}`;
  const groups = (c: CollectedInput) => JSON.stringify(c.input.groups.map((g) => ({ ...g, tasks: [...g.tasks].sort((x, y) => (x.id < y.id ? -1 : 1)) })));
  if (groups(a) !== groups(b)) return 'groups differ';
  return null;
}

/** Node fields that change where tasks may go. */
function nodeChanged(a: Frozen<Node>, b: Frozen<Node>): boolean {
  return (
    a.status.state !== b.status.state ||
    a.spec.availability !== b.spec.availability ||
    a.spec.role !== b.spec.role ||
    a.description.hostname !== b.description.hostname ||
    a.status.addr !== b.status.addr ||
    a.description.addr !== b.description.addr ||
    a.description.platform?.os !== b.description.platform?.os ||
    a.description.platform?.arch !== b.description.platform?.arch ||
    a.description.resources?.nanoCpus !== b.description.resources?.nanoCpus ||
    a.description.resources?.memoryBytes !== b.description.resources?.memoryBytes ||
    JSON.stringify(a.spec.labels) !== JSON.stringify(b.spec.labels)
  );
}

interface Write {
  taskId: string;
  version: number;
  nodeId?: string;
  reason?: string;
}

export class SchedulerRunner {
  private readonly loop: PassLoop;
  private readonly now: () => number;
  private readonly log: (msg: string) => void;
  private readonly windowMs: number;
  private unwatch: (() => void) | null = null;
  /** Index of the view the last pass read: events up to it were taken into account. */
  private seenIndex = 0;
  /** The nodes of the last pass (collectInput). */
  private readonly nodesMemo: { last: NodesMemo | null } = { last: null };
  /**
   * Placed and schedulable tasks, kept from the store's events (KeptTasks). Exact at the start of every
   * pass: the store delivers a transaction's events from a microtask, all of them before any timer runs,
   * and a pass starts from a timer. null until the first pass reads them all, and again after the watch
   * closed (overflow, snapshot installed).
   */
  private kept: {
    placed: Map<string, PlacedTask>;
    tally: PlacedTally;
    pending: Map<string, Frozen<Task>>;
    index: number;
    /** While the first read is under way (readKept): tasks whose events came meanwhile, already kept. */
    reading?: Set<string>;
  } | null = null;
  /** Recent failures by task id (pruned on every pass, and when it grows past pruneAt). */
  private readonly failures = new Map<string, TaskFailure>();
  private pruneAt = PRUNE_FAILURES_AT;

  constructor(
    private readonly store: Store,
    private readonly opts: SchedulerRunnerOptions = {},
  ) {
    this.now = opts.now ?? Date.now;
    this.log = opts.log ?? (() => {});
    this.loop = new PassLoop(() => this.pass(), { who: 'scheduler', log: this.log, debounceMs: opts.debounceMs ?? 0, maxDelayMs: opts.maxDelayMs ?? 250 });
    this.windowMs = opts.failureWindowMs ?? DEFAULT_FAILURE_WINDOW_MS;
  }

  /** Starts watching the store and runs a first pass (tasks may have been waiting for a leader). */
  start(): void {
    if (this.loop.active) return;
    this.loop.start();
    this.seenIndex = 0;
    this.subscribe();
    this.seedFailures();
    this.loop.trigger();
  }

  /** Resolves once no pass is running or due (for tests and tools). */
  idle(): Promise<void> {
    return this.loop.idle();
  }

  /** Stops watching; a pass in flight stops writing. */
  stop(): void {
    if (!this.loop.active) return;
    this.loop.stop();
    this.unwatch?.();
    this.unwatch = null;
    this.kept = null;
  }

  // ------------------------------------------------------------------------------------ events

  private subscribe(): void {
    this.unwatch = this.store.watch(
      {
        kinds: ['task', 'node'],
        onClose: (err) => {
          // Overflow or snapshot restore: the events are lost, so resync with a full pass.
          if (!this.loop.active) return;
          this.log(`scheduler: watch closed (${err.message}); resyncing`);
          this.seenIndex = 0;
          this.kept = null;
          this.subscribe();
          this.seedFailures();
          this.loop.trigger();
        },
      },
      (ev) => this.onEvent(ev),
    );
  }

  private onEvent(ev: StoreEvent): void {
    if (!this.loop.active) return;
    if (ev.kind === 'task') {
      const t = ev.object as Frozen<Task>;
      const old = ev.old as Frozen<Task> | undefined;
      this.keep(ev.type === 'delete', t, ev.index);
      if (ev.type !== 'delete' && isFailure(t) && (old === undefined || !isFailure(old))) {
        this.failures.set(t.id, { serviceId: t.serviceId, nodeId: t.nodeId!, at: this.now() });
        if (this.failures.size > this.pruneAt) {
          this.recentFailures(this.now());
          this.pruneAt = Math.max(PRUNE_FAILURES_AT, 2 * this.failures.size);
        }
      }
      if (ev.index <= this.seenIndex) return;
      if (ev.type === 'delete') {
        if (isPlaced(t) && this.anyPending()) this.loop.trigger();
        return;
      }
      const now = isSchedulable(t);
      const was = old !== undefined && isSchedulable(old);
      if (now) {
        // A new candidate, or one whose target changed; a message-only update (ours) is not news.
        if (!was || old.nodeId !== t.nodeId || old.desiredState !== t.desiredState || old.specVersion !== t.specVersion) this.loop.trigger();
        return;
      }
      // Capacity freed: a placed task ended or left its node.
      if (old !== undefined && isPlaced(old) && (!isPlaced(t) || t.nodeId !== old.nodeId) && this.anyPending()) this.loop.trigger();
      return;
    }
    if (ev.index <= this.seenIndex || !this.anyPending()) return;
    const n = ev.object as Frozen<Node>;
    const old = ev.old as Frozen<Node> | undefined;
    if (ev.type !== 'update' || old === undefined || nodeChanged(old, n)) this.loop.trigger();
  }

  /** Follows one task event in the kept tasks (events the last full read already saw change nothing). */
  private keep(deleted: boolean, t: Frozen<Task>, index: number): void {
    const k = this.kept;
    if (k === null || index <= k.index) return;
    k.reading?.add(t.id);
    const was = k.placed.get(t.id);
    if (!deleted && isPlaced(t)) {
      const reservations = t.spec.resources?.reservations;
      if (was === undefined || was.serviceId !== t.serviceId || was.nodeId !== t.nodeId || was.reservations !== reservations) {
        const now: PlacedTask = { serviceId: t.serviceId, nodeId: t.nodeId!, reservations };
        if (was !== undefined) k.tally.remove(was);
        k.tally.add(now);
        k.placed.set(t.id, now);
      }
    } else if (was !== undefined) {
      k.tally.remove(was);
      k.placed.delete(t.id);
    }
    if (!deleted && isSchedulable(t)) k.pending.set(t.id, t);
    else k.pending.delete(t.id);
  }

  /** Are tasks waiting for a node? Unknown (so yes) until a pass has read them all. */
  private anyPending(): boolean {
    return this.kept === null || this.kept.reading !== undefined || this.kept.pending.size > 0;
  }

  /**
   * Every placed and schedulable task of the store, read once (then kept from events), READ_STEP tasks
   * per turn of the event loop: at 150,000 tasks the read held a new leader's event loop 116 ms in
   * process, beside the orchestrator's own first pass (bench:scale --store-only, profiled). The tasks are
   * listed at one index; from then on events after it are kept as usual, and the tasks they name are
   * skipped by the rest of the read, which would hold an older copy. The pass waits for it; a stop ends it.
   */
  private async readKept(): Promise<void> {
    const { tasks, index } = this.store.view((tx) => ({ tasks: tx.list('task'), index: tx.index }));
    const k: NonNullable<SchedulerRunner['kept']> = { placed: new Map(), tally: new PlacedTally(), pending: new Map(), index, reading: new Set() };
    this.kept = k;
    const step = this.opts.readStep ?? READ_STEP;
    for (let i = 0; i < tasks.length; i++) {
      if (i > 0 && i % step === 0) {
        await new Promise<void>((r) => setImmediate(r));
        if (this.kept !== k) return;
      }
      const t = tasks[i]!;
      if (k.reading!.has(t.id)) continue;
      if (isPlaced(t)) {
        const p: PlacedTask = { serviceId: t.serviceId, nodeId: t.nodeId!, reservations: t.spec.resources?.reservations };
        k.placed.set(t.id, p);
        k.tally.add(p);
      } else if (isSchedulable(t)) k.pending.set(t.id, t);
    }
    delete k.reading;
  }

  /** Failures still in the window, from the store (a new leader has no event history). */
  private seedFailures(): void {
    const since = this.now() - this.windowMs;
    this.store.view((tx) => {
      for (const t of tx.list('task', isFailure)) {
        const at = Date.parse(t.status.timestamp);
        if (Number.isFinite(at) && at > since && !this.failures.has(t.id)) this.failures.set(t.id, { serviceId: t.serviceId, nodeId: t.nodeId!, at });
      }
    });
  }

  private recentFailures(now: number): TaskFailure[] {
    const since = now - this.windowMs;
    const out: TaskFailure[] = [];
    for (const [id, f] of this.failures) {
      if (f.at > since) out.push(f);
      else this.failures.delete(id);
    }
    return out;
  }

  // ---------------------------------------------------------------------------------- passes

  /** Resolves to the milliseconds it computed (the commit's wait left out): the loop paces by it. */
  private async pass(): Promise<number | undefined> {
    // Placed together, a pass's new tasks reach each node in one message (write-burst.ts). Waiting is
    // not computing: the pacing below counts from here.
    if (this.opts.burst?.active) await this.opts.burst.settled(this.opts.burstHoldMs ?? BURST_HOLD_MS);
    if (!this.loop.active) return;
    const t0 = performance.now();
    const now = this.now();
    const failures = this.recentFailures(now);
    if (this.kept === null) await this.readKept();
    const kept = this.kept;
    if (kept === null || kept.reading !== undefined || !this.loop.active) return;
    const snap = this.store.view((tx) => {
      const c = collectInput(tx, failures, now, kept, this.nodesMemo);
      if (this.opts.verifyKept) {
        // Reported, and the pass goes on from the full read (a test then fails on the report, not on a hang).
        const full = collectInput(tx, failures, now);
        const diff = collectedDifference(c, full);
        this.opts.verifyKept(diff);
        if (diff !== null) return full;
      }
      return c;
    });
    this.seenIndex = snap.index;
    if (snap.pending.size === 0) return;
    const d0 = performance.now();
    const result = schedule(snap.input, this.opts);
    const decideMs = performance.now() - d0;
    const writes: Write[] = [];
    for (const a of result.assignments) writes.push({ taskId: a.taskId, version: snap.pending.get(a.taskId)!.version, nodeId: a.nodeId });
    // By node: the pass's transactions (store.batch splits them by size) then hold all of a node's new
    // tasks together, and the dispatcher tells each node about them in one message, not one per
    // transaction (placement spreads consecutive tasks over different nodes).
    writes.sort(byNode);
    let messages = 0;
    for (const u of result.unplaced) {
      const seen = snap.pending.get(u.taskId)!;
      if (seen.message === u.reason) continue;
      writes.push({ taskId: u.taskId, version: seen.version, reason: u.reason });
      messages++;
    }
    let stale = 0;
    let computeMs = performance.now() - t0;
    if (writes.length > 0) {
      const b0 = performance.now();
      const committed = this.store.batch(writes, (tx, w) => {
        if (!this.loop.active) return;
        const cur = tx.get('task', w.taskId);
        if (cur === undefined || cur.version !== w.version) {
          // Changed since the view: decide again on a fresh one.
          stale++;
          this.loop.again();
          return;
        }
        if (w.nodeId !== undefined) {
          tx.update({ ...cur, nodeId: w.nodeId, status: { ...cur.status, state: 'assigned', timestamp: tx.now, message: ASSIGNED_MESSAGE } });
        } else {
          tx.update({ ...cur, status: { ...cur.status, message: w.reason! } });
        }
      });
      computeMs += performance.now() - b0;
      await committed;
    }
    const info: PassInfo = {
      index: snap.index,
      pending: snap.pending.size,
      assigned: result.assignments.length,
      unplaced: result.unplaced.length,
      messages,
      stale,
      ms: performance.now() - t0,
      decideMs,
    };
    if (info.assigned > 0 || messages > 0) {
      const first = result.unplaced[0];
      this.log(
        `scheduler: assigned ${info.assigned} of ${info.pending} pending tasks` +
          (first ? `, ${info.unplaced} unplaceable (e.g. ${first.reason})` : '') +
          ` in ${info.ms.toFixed(1)} ms`,
      );
    }
    this.opts.onPass?.(info);
    return computeMs;
  }
}

/** Assignments by node id (stable: a node's tasks keep the order they were placed in). */
function byNode(a: { nodeId?: string }, b: { nodeId?: string }): number {
  const x = a.nodeId ?? '';
  const y = b.nodeId ?? '';
  return x < y ? -1 : x > y ? 1 : 0;
}
