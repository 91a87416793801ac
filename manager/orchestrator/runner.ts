// The orchestrator's runner: the leader-only loop that feeds the pure reconcile functions from the store
// and writes their decisions back. See docs/design/orchestrator.md.
//
// * Watches services, tasks, nodes (changes that matter for placement only, not heartbeats) and the
//   cluster object; marks the affected services dirty and, after a short debounce, reconciles them.
// * Each dirty service is reconciled INSIDE the write transaction that applies its decisions (reads and
//   writes see the same state), packed into as few transactions as fit under the store's size limit
//   (store.batch). A service with more decisions than fit in one transaction gets the first part now and
//   is reconciled again right after. Every decision re-checks the versions it was computed from.
// * A ConflictError (another manager-side writer committed in between, under Raft) re-queues the
//   services; they are reconciled again from the new state. Other errors back off and retry.
// * Timers: each reconcile returns the earliest moment something time-based becomes due (restart delay,
//   update delay, monitor window, stop timeout, orphan grace); one timer wakes the runner for the
//   earliest of them. Timers and the clock are injectable, so tests can drive time.
// * Nothing is kept in memory that a new leader would need: all state is in the store. The one piece of
//   memory — when a task was seen entering 'running', used by update monitoring — has a store-based
//   fallback.
import { newId } from '../store/ids.ts';
import { pacingDelay } from '../store/pass-loop.ts';
import { CLUSTER_ID } from '../../api/objects.ts';
import { BatchError, ConflictError } from '../store/store.ts';
import { LimitExceededError } from '../store/errors.ts';
import type { WriteBurst } from '../store/write-burst.ts';
import { LIMIT_SETTINGS, checkStoredObject, limitsOf } from '../store/limits.ts';
import type { ClusterLimits } from '../../api/objects.ts';
import type { Store, StoreEvent, WriteTx } from '../store/store.ts';
import { DEFAULT_TASK_HISTORY_LIMIT } from './reaper.ts';
import { reconcileService } from './reconcile.ts';
import { reconcileReplicated, reconcileReplicatedSlots, replicasOf, warmSlots } from './replicated.ts';
import { decisionsDifference, groupingDifference, sameNodes, SlotCache } from './slot-cache.ts';
import { bySlotNumber, dirtyCheck } from './slots.ts';
import { isFitPlacement } from './enforcer.ts';
import { isStopEcho, modeOf, ms, stopDeadlineFrom, taskChange, updateSettled } from './types.ts';
import { jsonEqual } from '../../api/objects.ts';
import type { Decision, FNode, FService, FTask, OrchestratorTuning, ReconcileContext, ReconcileResult } from './types.ts';

export interface OrchestratorTimers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export interface OrchestratorOptions {
  /** Clock, ms since the epoch. Default Date.now. */
  now?: () => number;
  /** Task id generator. Default: 25 base-36 characters, like Swarm's. */
  newId?: () => string;
  log?: (line: string) => void;
  /** Default: the global setTimeout / clearTimeout. */
  timers?: OrchestratorTimers;
  /** Delay between the first change and the reconcile pass. Default 5 ms. */
  debounceMs?: number;
  tuning?: Partial<OrchestratorTuning>;
  /**
   * Bytes of decisions applied per service per transaction (measured as they are written; one decision
   * may overshoot). The rest is applied by the next pass. Default a third of the store's limit.
   */
  maxBytesPerService?: number;
  /**
   * Called after each service is reconciled: how long it took (ms, the runner's clock) and whether it
   * decided anything. A reconcile that decides nothing still read every task of its service: their
   * share is what the event filters in onEvent are for (metrics: shoal_orchestrator_reconciles_total).
   */
  onReconcile?: (r: { ms: number; decided: boolean; fullCheck?: boolean }) => void;
  /**
   * When a pass that decided nothing is checked from scratch (see reconcile): every such pass for services
   * of up to `slots` slots, at most every `everyMs` for larger ones. Default FULL_CHECK_SLOTS and
   * FULL_CHECK_EVERY_MS; tests lower them.
   */
  fullCheck?: { slots: number; everyMs: number };
  /**
   * Replicated services of more than `slots` replicas are warmed up when the runner starts (a new leader),
   * `step` slots per turn of the event loop, before its first pass (see warmUp). Default WARM_SLOTS and
   * WARM_STEP; tests lower them.
   */
  warm?: { slots: number; step: number };
  /**
   * Tests: every grouping the slot cache reuses is checked against a fresh one and the outcome passed
   * here (null: the same); on a difference the service's pass fails.
   */
  verifySlotCache?: (difference: string | null) => void;
  /**
   * Marked from a pass's first write to its last (the batch and the rest of a large service's decisions),
   * so that the scheduler places the pass's new tasks together (store/write-burst.ts).
   */
  burst?: WriteBurst;
}

const realTimers: OrchestratorTimers = {
  setTimeout: (fn, delay) => setTimeout(fn, delay),
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};

const MAX_TIMER_MS = 2 ** 31 - 1;
/** The longest a pass is delayed because the previous one was long (see kick). */
const MAX_PACE_MS = 5_000;
/** Decision lines logged per service and pass; the rest are counted (see logSome). */
const LOGGED_DECISIONS = 20;
/**
 * A pass that decides nothing from kept slots is computed again from all of them (see reconcile), for
 * services of up to this many slots on every such pass, for larger ones at most every
 * FULL_CHECK_EVERY_MS. The check regroups every task and recomputes every slot from scratch: at 150,000
 * slots the regroup alone was 0.2-0.5 s and such passes 0.6-1.5 s on the loaded lab machine (bench:scale
 * --profile, December 7), after every node or task event while agents reconnected to a new leader.
 */
const FULL_CHECK_SLOTS = 10_000;
const FULL_CHECK_EVERY_MS = 10_000;
/**
 * Services of more replicas than this are warmed up a step at a time when the runner starts (warmUp): a
 * new leader's first pass over 150,000 slots held the event loop 400 ms in process (bench:scale
 * --store-only, profiled) and 0.9-2.5 s on the lab's loaded managers, where it cost leaders their terms.
 * The profile of that takeover put the grouping at 125 ms and the checks at 276 ms for the 150,000
 * slots, so a step of 5,000 is a thirtieth of each; the lab logs 2.1-3.6 s for the whole warm-up.
 */
const WARM_SLOTS = 10_000;
const WARM_STEP = 5_000;
/**
 * A pass goes on writing a large service's remaining decisions for at least this long (see pass). The
 * scheduler places a pass's new tasks together (store/write-burst.ts): at 1 s, the passes of a
 * 150,000-replica create on the loaded lab wrote 4,000-16,000 tasks, under one per node of 5,000 per
 * pass for some; 2.5 s lets most reach MAX_NEW_TASKS_PER_PASS (four per node). Other services wait as
 * long behind such a pass.
 */
const LEFTOVER_MIN_MS = 2_500;
/**
 * How long a create or stop this runner wrote is remembered as its own (ownCreates, ownStops). Its event
 * comes once the transaction is applied: on a Raft leader, a commit takes milliseconds, and a minute of
 * backlog is a sick cluster, where a pass too many costs nothing.
 */
const OWN_WRITE_TTL_MS = 60_000;

/** Decisions of a pass still to be written, from `next`. */
interface Leftover {
  decisions: readonly Decision[];
  next: number;
  name: string;
  /** What the service must still be for them to apply (leftoverGuard). */
  guard: string;
}

/** The parts of a service its decisions were computed from that a leftover write re-checks. */
function leftoverGuard(s: { specVersion: number; spec: { mode: unknown } }): string {
  return `${s.specVersion}:${JSON.stringify(s.spec.mode)}`;
}

/** Tasks a decision adds to the store (creations minus deletions). */
function taskGrowth(d: Decision): number {
  let n = 0;
  for (const a of d.actions) n += a.type === 'create' ? 1 : a.type === 'delete' ? -1 : 0;
  return n;
}

/** Why a service's tasks are not created while the cluster is at limits.maxTasks (stable text: written once). */
function tasksLimitReason(maxTasks: number): string {
  return `the cluster has reached limits.maxTasks (${maxTasks} tasks): tasks are created once others are removed or the limit is raised (shoal cluster update ${LIMIT_SETTINGS.maxTasks.flag} N)`;
}

/**
 * Why the store would refuse a task this decision creates (its size or labels break a limit lowered after
 * the service was created), or null. Checked before applying so that one such service stops alone: a
 * refused write inside the batch would stop every service after it in the pass, on every retry. The text
 * is stable (no task id, no size), so it is written once.
 */
function refusedCreate(d: Decision, limits: ClusterLimits): string | null {
  for (const a of d.actions) {
    if (a.type !== 'create') continue;
    try {
      checkStoredObject(a.task as never, Buffer.byteLength(JSON.stringify(a.task), 'utf8'), limits);
    } catch (e) {
      if (!(e instanceof LimitExceededError)) throw e;
      const flag = LIMIT_SETTINGS[e.setting.replace(/^limits\./, '') as keyof ClusterLimits]?.flag ?? '';
      return `its tasks would break ${e.setting} (${e.limit}): tasks are created once the service is changed or the limit is raised (shoal cluster update ${flag} N)`;
    }
  }
  return null;
}

/**
 * Applies one decision in `tx` if every object it was computed from is still at the version it read.
 * Returns the approximate encoded size of what it wrote (bytes), or null (writing nothing) when an
 * object changed or disappeared in between.
 */
export function applyDecision(tx: WriteTx, d: Decision): number | null {
  for (const a of d.actions) {
    if (a.type === 'create') {
      if (tx.get('task', a.task.id) !== undefined) return null;
    } else if (a.type === 'service') {
      const s = tx.get('service', a.serviceId);
      if (s === undefined || s.version !== a.version || (a.rollback && s.previousSpec === undefined)) return null;
    } else {
      const t = tx.get('task', a.taskId);
      if (t === undefined || t.version !== a.version) return null;
    }
  }
  let bytes = 0;
  for (const a of d.actions) {
    switch (a.type) {
      case 'create':
        bytes += JSON.stringify(tx.create(a.task)).length + 32;
        break;
      case 'set': {
        const t = tx.get('task', a.taskId)!;
        const next = tx.update({
          ...t,
          ...(a.desiredState !== undefined ? { desiredState: a.desiredState } : {}),
          ...(a.status !== undefined ? { status: a.status } : {}),
        });
        bytes += JSON.stringify(next).length + 48;
        break;
      }
      case 'delete':
        tx.delete('task', a.taskId, a.version);
        bytes += 64 + a.taskId.length;
        break;
      case 'service': {
        const s = tx.get('service', a.serviceId)!;
        const next = a.rollback
          ? tx.update({ ...s, spec: s.previousSpec!, previousSpec: s.spec, specVersion: s.specVersion + 1, updateStatus: a.updateStatus })
          : tx.update({ ...s, updateStatus: a.updateStatus });
        bytes += JSON.stringify(next).length + 48;
        break;
      }
    }
  }
  return bytes;
}

function nodeChanged(a: FNode, b: FNode): boolean {
  return a.status.state !== b.status.state || a.status.addr !== b.status.addr || !jsonEqual(a.spec, b.spec) || !jsonEqual(a.description, b.description);
}

export class Orchestrator {
  private readonly now: () => number;
  private readonly newId: () => string;
  private readonly log: (line: string) => void;
  private readonly timers: OrchestratorTimers;
  private readonly debounceMs: number;
  private readonly tuning: Partial<OrchestratorTuning>;
  private readonly maxBytesPerService: number;

  private started = false;
  private unwatch: (() => void) | null = null;
  /** Services (ids, possibly deleted ones) to reconcile in the next pass. */
  private readonly dirty = new Set<string>();
  /**
   * Tasks this runner wrote a create for, and when: their create events are its own echo (onEvent). An id
   * whose transaction failed never comes back: entries older than OWN_WRITE_TTL_MS go (noteWrite).
   */
  private readonly ownCreates = new Map<string, number>();
  /** The same for the stops it wrote that a node must carry out (a SetAction without a status). */
  private readonly ownStops = new Map<string, number>();
  /**
   * Per service, the earliest stop deadline of the stops written in this pass: a task that is never
   * reported stopped is taken as stopped then (types.ts stopDeadline), and the pass that would have armed
   * that wake-up (the stop's echo) is skipped. Merged into the pass's wake-ups when it ends.
   */
  private stopWakes = new Map<string, number>();
  /** Per service: when it asked to be reconciled again. */
  private readonly wakeAt = new Map<string, number>();
  private wakeTimer: { handle: unknown; at: number } | null = null;
  private debounce: unknown = null;
  private current: Promise<void> | null = null;
  /** Services whose pass failed for a reason other than a conflict, retried after a back-off. */
  private readonly retry = new Set<string>();
  private retryTimer: unknown = null;
  private retryDelayMs = 0;
  private conflictsInARow = 0;
  /** When each task was seen entering 'running' (ms, managers' clock). */
  private readonly runningSince = new Map<string, number>();
  /** Services waiting for room under limits.maxTasks: reconciled again when a task is deleted. */
  private readonly blocked = new Set<string>();
  /** How long the last pass computed (ms on the runner's clock, waits for commits not counted): the next one waits at least as long. */
  private lastPassMs = 0;
  /** When the last pass ended (runner's clock): the pacing wait counts from there. */
  private lastPassEnd = Number.NEGATIVE_INFINITY;
  private readonly onReconcile: NonNullable<OrchestratorOptions['onReconcile']>;
  /** The nodes of the last pass (see pass()). */
  private lastNodes: Map<string, FNode> | null = null;
  /** A node event came since a pass last read the nodes (or none has read them): the next pass reads them. */
  private nodesStale = true;
  /** Replicated services' slots between passes (slot-cache.ts). */
  private readonly slotCache = new SlotCache();
  /** When a large service's empty pass was last checked from scratch (see FULL_CHECK_SLOTS). */
  private readonly fullCheckAt = new Map<string, number>();
  private readonly fullCheck: { slots: number; everyMs: number };
  /** Whether the last reconcile() checked an empty pass from scratch (for onReconcile). */
  private checkedFromScratch = false;
  private readonly verifySlotCache: ((difference: string | null) => void) | null;
  private readonly warm: { slots: number; step: number };
  /** The warm-up under way (warmUp): passes wait for it. */
  private warming: Promise<void> | null = null;
  /** Counts start() calls: a warm-up of an earlier start stops at its next step. */
  private generation = 0;
  private readonly burst: WriteBurst | null;

  constructor(
    private readonly store: Store,
    opts: OrchestratorOptions = {},
  ) {
    this.now = opts.now ?? Date.now;
    this.newId = opts.newId ?? newId;
    this.log = opts.log ?? (() => {});
    this.timers = opts.timers ?? realTimers;
    this.debounceMs = opts.debounceMs ?? 5;
    this.tuning = opts.tuning ?? {};
    this.maxBytesPerService = opts.maxBytesPerService ?? Math.floor(store.maxTxBytes / 3);
    this.onReconcile = opts.onReconcile ?? (() => {});
    this.verifySlotCache = opts.verifySlotCache ?? null;
    this.burst = opts.burst ?? null;
    this.fullCheck = opts.fullCheck ?? { slots: FULL_CHECK_SLOTS, everyMs: FULL_CHECK_EVERY_MS };
    this.warm = opts.warm ?? { slots: WARM_SLOTS, step: WARM_STEP };
  }

  get running(): boolean {
    return this.started;
  }

  /** Starts reconciling (call on the leader only): every service is reconciled once, then on changes. */
  start(): void {
    if (this.started) return;
    this.started = true;
    const gen = ++this.generation;
    this.subscribe();
    this.markAll();
    const p: Promise<void> = this.warmUp(gen)
      .catch((e: unknown) => this.log(`warming up failed: ${(e as Error).message}; the first pass groups from scratch`))
      .finally(() => {
        if (this.warming === p) this.warming = null;
        this.kick();
      });
    this.warming = p;
  }

  /** Stops: no new passes; a pass already writing finishes its transaction. */
  stop(): void {
    if (!this.started) return;
    this.started = false;
    this.unwatch?.();
    this.unwatch = null;
    if (this.debounce !== null) this.timers.clearTimeout(this.debounce);
    this.debounce = null;
    if (this.wakeTimer !== null) this.timers.clearTimeout(this.wakeTimer.handle);
    this.wakeTimer = null;
    if (this.retryTimer !== null) this.timers.clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.dirty.clear();
    this.wakeAt.clear();
    this.retry.clear();
    this.runningSince.clear();
    this.blocked.clear();
    this.ownCreates.clear();
    this.ownStops.clear();
    this.stopWakes = new Map();
    this.slotCache.forgetAll();
    this.fullCheckAt.clear();
    this.lastNodes = null;
    this.nodesStale = true;
  }

  /**
   * Resolves when no reconcile is pending: changes already committed have been reconciled, including
   * the cascade of the orchestrator's own writes. A pending debounce is cut short. Timers set for later
   * (restart delays, monitor windows…) and back-offs after errors do not count as pending.
   */
  async idle(): Promise<void> {
    for (let i = 0; i < 10_000; i++) {
      // Let queued watch events reach the handler (they are delivered from microtasks).
      await new Promise<void>((r) => setImmediate(r));
      if (this.warming !== null) {
        await this.warming;
        continue;
      }
      if (this.current !== null) {
        await this.current;
        continue;
      }
      if (!this.started || this.dirty.size === 0) return;
      if (this.debounce !== null) this.timers.clearTimeout(this.debounce);
      this.debounce = null;
      await this.run();
    }
    throw new Error('orchestrator: still reconciling after 10000 passes (the decisions do not converge)');
  }

  // ------------------------------------------------------------------------------------------ events

  private subscribe(): void {
    this.unwatch = this.store.watch(
      {
        kinds: ['service', 'task', 'node', 'cluster'],
        onClose: (err) => {
          if (!this.started) return;
          this.log(`watch closed (${err.message}); resyncing`);
          this.nodesStale = true;
          this.slotCache.forgetAll();
          this.subscribe();
          this.markAll();
          this.kick();
        },
      },
      (ev) => this.onEvent(ev),
    );
  }

  private onEvent(ev: StoreEvent): void {
    if (!this.started) return;
    switch (ev.kind) {
      case 'task': {
        const t = ev.object as FTask;
        const old = ev.old as FTask | undefined;
        // Every change, also those that start no pass below: the kept slots must follow the store.
        this.slotCache.noteTask(t.serviceId, t.slot, old?.slot);
        if (ev.type === 'delete') {
          this.runningSince.delete(t.id);
          for (const id of this.blocked) this.dirty.add(id);
        } else if (t.status.state === 'running' && old?.status.state !== 'running') {
          this.runningSince.set(t.id, ms(t.updatedAt, this.now()));
        }
        // The echo of a task this runner created decides nothing: the pass that created it planned with it.
        // (Only the orchestrator creates tasks, but another leader's orchestrator may have: those count.)
        if (ev.type === 'create' && this.ownCreates.delete(t.id)) return;
        if (ev.type === 'update' && old !== undefined) {
          const change = taskChange(old, t);
          if (change === 'no') return;
          if (change === 'running' && updateSettled(this.store.view((tx) => tx.get('service', t.serviceId)))) return;
          const node = t.nodeId === undefined ? undefined : this.store.view((tx) => tx.get('node', t.nodeId!));
          if (isFitPlacement(old, t, node)) return;
          // Nor does the echo of a stop it wrote: the pass that wrote it armed the stop deadline (stopWakes).
          if (this.ownStops.delete(t.id) && isStopEcho(old, t, node)) return;
        }
        this.dirty.add(t.serviceId);
        break;
      }
      case 'service':
        this.dirty.add(ev.object.id);
        break;
      case 'node':
        // Any new node object: lastNodes (compared by identity) no longer holds.
        this.nodesStale = true;
        if (ev.type !== 'update' || nodeChanged(ev.old as FNode, ev.object as FNode)) this.markNode(ev.object.id);
        break;
      case 'cluster': {
        const old = ev.old as { spec: { taskHistoryLimit: number; limits?: unknown } } | undefined;
        const cur = ev.object as { spec: { taskHistoryLimit: number; limits?: unknown } };
        if (old === undefined || old.spec.taskHistoryLimit !== cur.spec.taskHistoryLimit || !jsonEqual(old.spec.limits, cur.spec.limits)) this.markAll();
        break;
      }
      default:
        break;
    }
    this.kick();
  }

  /** A node changed: global services and every service with a task on it. */
  private markNode(nodeId: string): void {
    this.store.view((tx) => {
      for (const s of tx.list('service')) if ('global' in s.spec.mode || 'globalJob' in s.spec.mode) this.dirty.add(s.id);
      for (const t of tx.tasksByNode(nodeId)) this.dirty.add(t.serviceId);
    });
  }

  private markAll(): void {
    this.store.view((tx) => {
      for (const s of tx.list('service')) this.dirty.add(s.id);
      for (const t of tx.list('task')) this.dirty.add(t.serviceId);
    });
  }

  // ----------------------------------------------------------------------------------------- passes

  /**
   * Schedules the next pass. A pass costs time proportional to the tasks of the services it reconciles
   * (≈ 1.3 s for one service of 150,000 tasks), and a steady stream of task events would otherwise run
   * them back to back: the next pass waits at least as long as the last one computed, so the
   * orchestrator takes at most about half of the leader's CPU and the events of that time are reconciled
   * together. Waits for commits do not count: small passes keep the short debounce.
   *
   * The wait counts from the end of the last pass, not from the event that asks for the next one: the
   * time the pass's writes take to reach the nodes and their answers to come back already counts. (Counted
   * from the event, it came on top of that round trip in every round of a rolling update.)
   */
  private kick(): void {
    if (!this.started || this.warming !== null || this.current !== null || this.debounce !== null || this.dirty.size === 0) return;
    this.debounce = this.timers.setTimeout(
      () => {
        this.debounce = null;
        void this.run();
      },
      pacingDelay(this.lastPassMs, this.now() - this.lastPassEnd, this.debounceMs, MAX_PACE_MS),
    );
  }

  private run(): Promise<void> {
    if (this.current !== null) return this.current;
    if (!this.started || this.dirty.size === 0) return Promise.resolve();
    const p = this.pass()
      .catch((e: unknown) => this.log(`pass failed: ${(e as Error).message}`))
      .finally(() => {
        this.current = null;
        this.kick();
      });
    this.current = p;
    return p;
  }

  private async pass(): Promise<void> {
    const ids = [...this.dirty];
    this.dirty.clear();
    const now = this.now();
    let computeMs = 0;
    // The nodes are read again only after a node event: building the map of 5,000 nodes and comparing it
    // with the last was 1.3 of the leader's 35 busy seconds of a rolling update beside 150,000 tasks
    // (bench:scale --profile). A pass runs from a timer, after every event of what it reads was delivered.
    const lastNodes = this.nodesStale ? null : this.lastNodes;
    this.nodesStale = false;
    const read = this.store.view((tx) => ({
      nodes: lastNodes ?? new Map(tx.list('node').map((n) => [n.id, n] as const)),
      limit: tx.get('cluster', CLUSTER_ID)?.spec.taskHistoryLimit ?? DEFAULT_TASK_HISTORY_LIMIT,
      limits: limitsOf(tx.get('cluster', CLUSTER_ID)?.spec),
    }));
    const { limit, limits } = read;
    // Unchanged nodes: the previous pass's map again, so that what was computed from it is known to
    // still hold (the slots replicated.ts found quiet; dirtyCheck's answers).
    const nodes = this.lastNodes !== null && sameNodes(this.lastNodes, read.nodes) ? this.lastNodes : read.nodes;
    this.lastNodes = nodes;
    const ctx: ReconcileContext = {
      now,
      newId: this.newId,
      nodes,
      taskHistoryLimit: limit,
      runningSince: this.runningSince,
      tuning: this.tuning,
    };
    const wakes = new Map<string, number | null>();
    const logs = new Map<string, string[]>();
    const again = new Set<string>();
    const broken = new Set<string>();
    /** Decisions of this pass that did not fit the service's share of its transaction. */
    const rest = new Map<string, Leftover>();
    // From here to the last leftover the pass writes: the scheduler waits for its end (write-burst.ts).
    this.burst?.begin();
    try {
      try {
        await this.store.batch(ids, (tx, id) => {
          const t0 = this.now();
          const service = tx.get('service', id);
          let r: ReconcileResult;
          try {
            r = this.reconcile(id, service, tx, ctx);
          } catch (e) {
            this.log(`reconciling service ${id} failed: ${(e as Error).stack ?? String(e)}`);
            broken.add(id);
            return;
          }
          wakes.set(id, r.wakeAt);
          this.onReconcile({ ms: this.now() - t0, decided: r.decisions.length > 0, fullCheck: this.checkedFromScratch });
          const name = service?.spec.name ?? id;
          const lines: string[] = [];
          rest.delete(id); // this function may run again for the same service (batch retries it)
          const { next, blocked, stale } = this.applySome(tx, r.decisions, 0, this.maxBytesPerService, limits, name, lines);
          if (stale) again.add(id);
          if (next < r.decisions.length && blocked === undefined) {
            if (service !== undefined) rest.set(id, { decisions: r.decisions, next, name, guard: leftoverGuard(service) });
            else again.add(id);
          }
          const s = tx.get('service', id);
          if (s !== undefined && s.status.blocked !== blocked) {
            const { blocked: _was, ...status } = s.status;
            tx.update({ ...s, status: blocked !== undefined ? { ...status, blocked } : status });
            if (blocked !== undefined) lines.push(`service ${name}: not creating tasks: ${blocked}`);
          }
          if (blocked !== undefined) this.blocked.add(id);
          else this.blocked.delete(id);
          logs.set(id, lines);
          computeMs += this.now() - t0;
        });
        this.conflictsInARow = 0;
        this.retryDelayMs = 0;
      } catch (e) {
        const cause = e instanceof BatchError ? e.cause : e;
        rest.clear();
        this.slotCache.forgetAll();
        for (const id of ids) again.add(id);
        if (cause instanceof ConflictError && ++this.conflictsInARow <= 3) {
          // Someone else wrote in between (Raft): reconcile again from the new state.
        } else {
          for (const id of ids) broken.add(id);
          this.log(`writing decisions failed: ${(cause as Error)?.message ?? String(cause)}`);
        }
      }
      // The rest of a large service's decisions (a scale-up of 150,000 tasks is 300 transactions) go on in
      // further transactions of this pass instead of one pass each, which would reconcile every task of
      // the service again for each transaction's worth. Each decision re-checks the versions it read,
      // and the service must still have the spec and replica count it was reconciled with. Bounded in
      // time (other services wait meanwhile); what is left is reconciled again in the next pass.
      const until = this.now() + Math.max(LEFTOVER_MIN_MS, 2 * computeMs);
      for (const [id, lo] of rest) {
        try {
          let lines = logs.get(id);
          if (lines === undefined) logs.set(id, (lines = []));
          if (await this.applyLeftover(id, lo, limits, until, lines)) again.add(id);
        } catch (e) {
          if (!(e instanceof ConflictError)) this.log(`writing decisions failed: ${(e as Error)?.message ?? String(e)}`);
        }
        if (lo.next < lo.decisions.length) again.add(id);
      }
    } finally {
      this.burst?.end();
    }
    for (const lines of logs.values()) this.logSome(lines);
    this.lastPassMs = computeMs;
    this.lastPassEnd = this.now();
    for (const [id, at] of wakes) {
      if (at === null) this.wakeAt.delete(id);
      else this.wakeAt.set(id, at);
    }
    for (const [id, at] of this.stopWakes) {
      const cur = this.wakeAt.get(id);
      if (cur === undefined || at < cur) this.wakeAt.set(id, at);
    }
    this.stopWakes = new Map();
    for (const id of again) if (!broken.has(id)) this.dirty.add(id);
    if (broken.size > 0) this.backOff(broken);
    this.armWakeTimer();
  }

  /**
   * A new leader's warm-up: each replicated service of more than warm.slots replicas is grouped into the
   * slot cache and its quiet slots and update facts are found (warmSlots), warm.step slots per turn of
   * the event loop, so that the first pass reuses all of it and decides only what needs deciding. Task
   * events meanwhile are noted by the slot cache as usual (their slots are regrouped by the pass). The
   * grouping counts as the service's full check. Stops at the next step once the runner stopped.
   */
  private async warmUp(gen: number): Promise<void> {
    const live = () => this.started && this.generation === gen;
    const turn = () => new Promise<void>((r) => setImmediate(r));
    const ids = this.store.view((tx) =>
      tx
        .list('service')
        .filter((s) => modeOf(s) === 'replicated' && replicasOf(s) > this.warm.slots)
        .map((s) => s.id),
    );
    for (const id of ids) {
      await turn();
      if (!live()) return;
      const t0 = this.now();
      const read = this.store.view((tx) => {
        const service = tx.get('service', id);
        if (service === undefined || modeOf(service) !== 'replicated') return null;
        return {
          service,
          tasks: tx.tasksByService(id),
          nodes: new Map(tx.list('node').map((n) => [n.id, n] as const)),
          limit: tx.get('cluster', CLUSTER_ID)?.spec.taskHistoryLimit ?? DEFAULT_TASK_HISTORY_LIMIT,
        };
      });
      if (read === null) continue;
      const { service } = read;
      const nodes = this.lastNodes !== null && sameNodes(this.lastNodes, read.nodes) ? this.lastNodes : read.nodes;
      this.lastNodes = nodes;
      const isDirty = dirtyCheck(service, nodes);
      const steps = this.slotCache.warm(service, nodes, read.tasks, isDirty, this.warm.step);
      let r = steps.next();
      while (!r.done) {
        await turn();
        if (!live()) return;
        r = steps.next();
      }
      if (r.value === null) continue;
      this.fullCheckAt.set(id, this.now());
      const slots = [...r.value.values()];
      let quiet = 0;
      const ctx: ReconcileContext = {
        now: this.now(),
        newId: this.newId,
        nodes,
        taskHistoryLimit: read.limit,
        runningSince: this.runningSince,
        tuning: this.tuning,
      };
      for (let i = 0; i < slots.length; i += this.warm.step) {
        quiet += warmSlots(service, slots.slice(i, i + this.warm.step), isDirty, ctx);
        await turn();
        if (!live()) return;
      }
      this.log(
        `warmed up service ${service.spec.name}: ${slots.length} slots (${quiet} quiet) in ${Math.round(this.now() - t0)} ms, ${this.warm.step} per step`,
      );
    }
  }

  /**
   * One service's decisions. A replicated service's slots come from the slot cache (slot-cache.ts): only
   * the slots whose tasks changed since the last pass are grouped again. A pass that decides nothing
   * from kept slots is computed again from all of them before it is believed, so a change the cache
   * missed costs at most a pass, never a decision; for services larger than fullCheck.slots at most every
   * fullCheck.everyMs (FULL_CHECK_SLOTS), so a missed change there waits at most that long for a pass.
   */
  private reconcile(id: string, service: FService | undefined, tx: WriteTx, ctx: ReconcileContext): ReconcileResult {
    this.checkedFromScratch = false;
    if (service === undefined || modeOf(service) !== 'replicated') {
      this.slotCache.forget(id);
      this.fullCheckAt.delete(id);
      return reconcileService(id, service, tx.tasksByService(id), ctx);
    }
    const isDirty = dirtyCheck(service, ctx.nodes);
    const g = this.slotCache.group(service, ctx.nodes, tx, isDirty);
    if (!g.reused) {
      // Grouped from scratch: this pass is a full check (a new leader's first pass is one).
      this.fullCheckAt.set(id, ctx.now);
      return reconcileReplicatedSlots(service, g, isDirty, ctx);
    }
    if (this.verifySlotCache) {
      const diff = groupingDifference(g, bySlotNumber(tx.tasksByService(id), isDirty));
      this.verifySlotCache(diff === null ? null : `service ${id}: ${diff}`);
      if (diff !== null) throw new Error(`slot cache of service ${id} is wrong: ${diff}`);
    }
    const r = reconcileReplicatedSlots(service, g, isDirty, ctx);
    if (this.verifySlotCache) {
      // The same from scratch: fresh slots, and a fresh nodes map (no quiet slot is reused either).
      const nodes = new Map(ctx.nodes);
      let n = 0;
      const fresh = { ...ctx, nodes, newId: () => `verify-${++n}` };
      const diff = decisionsDifference(r, reconcileReplicated(service, tx.tasksByService(id), fresh));
      this.verifySlotCache(diff === null ? null : `service ${id}: ${diff}`);
      if (diff !== null) throw new Error(`kept slots of service ${id} decided otherwise: ${diff}`);
    }
    if (r.decisions.length > 0) return r;
    if (g.slots.size > this.fullCheck.slots) {
      const last = this.fullCheckAt.get(id);
      if (last !== undefined && ctx.now - last < this.fullCheck.everyMs) return r;
      this.fullCheckAt.set(id, ctx.now);
    }
    this.checkedFromScratch = true;
    const again = reconcileReplicatedSlots(service, this.slotCache.regroup(service, ctx.nodes, tx, isDirty), isDirty, ctx);
    // Not expected (every task event notes its slot): said, so that it is seen if it ever happens.
    if (again.decisions.length > 0) this.log(`service ${service.spec.name}: kept slots had missed a change; regrouped (${again.decisions[0]!.reason})`);
    return again;
  }

  /**
   * Applies decisions from `from` in `tx` until `maxBytes` were written (one decision may overshoot),
   * a decision is refused by a limit (`blocked`, why) or all are done. Returns the next decision to
   * apply. Decisions whose objects changed meanwhile are skipped (their service is reconciled again).
   */
  private applySome(
    tx: WriteTx,
    decisions: readonly Decision[],
    from: number,
    maxBytes: number,
    limits: ClusterLimits,
    name: string,
    lines: string[],
  ): { next: number; blocked?: string; stale: boolean } {
    let bytes = 0;
    let stale = false;
    let i = from;
    for (; i < decisions.length; i++) {
      if (bytes >= maxBytes) break;
      const d = decisions[i]!;
      const grows = taskGrowth(d);
      if (grows > 0 && tx.count('task') + grows > limits.maxTasks) return { next: i, blocked: tasksLimitReason(limits.maxTasks), stale };
      const refused = refusedCreate(d, limits);
      if (refused !== null) return { next: i, blocked: refused, stale };
      const wrote = applyDecision(tx, d);
      if (wrote === null) stale = true;
      else {
        bytes += wrote;
        for (const a of d.actions) {
          if (a.type === 'create') this.noteWrite(this.ownCreates, a.task.id);
          else if (a.type === 'set' && a.status === undefined && (a.desiredState === 'shutdown' || a.desiredState === 'remove')) this.noteStop(tx, a.taskId);
        }
        lines.push(`service ${name}: ${d.reason}`);
      }
    }
    return { next: i, stale };
  }

  /**
   * Writes the rest of a service's decisions, one transaction at a time, until done or `until`, adding
   * their log lines to `lines`. True if some were skipped because their objects changed (the service
   * must be reconciled again).
   */
  private async applyLeftover(id: string, lo: Leftover, limits: ClusterLimits, until: number, lines: string[]): Promise<boolean> {
    let stale = false;
    while (lo.next < lo.decisions.length && this.started && this.now() < until) {
      let end = lo.next;
      let stop = false;
      await this.store.update((tx) => {
        const s = tx.get('service', id);
        if (s === undefined || leftoverGuard(s) !== lo.guard) {
          stop = true;
          return;
        }
        const r = this.applySome(tx, lo.decisions, lo.next, Math.floor(this.store.maxTxBytes * 0.6), limits, lo.name, lines);
        end = r.next;
        stale ||= r.stale;
        if (r.blocked !== undefined) stop = true;
      });
      lo.next = end;
      if (stop) break;
    }
    return stale;
  }

  /**
   * Logs a service's decision lines, at most LOGGED_DECISIONS of them and a count of the rest: a
   * scale-up of 30,000 tasks was 30,000 lines written from the leader's event loop.
   */
  private logSome(lines: readonly string[]): void {
    for (const l of lines.slice(0, LOGGED_DECISIONS)) this.log(l);
    if (lines.length > LOGGED_DECISIONS) this.log(`${lines[0]!.split(':')[0]}: … and ${lines.length - LOGGED_DECISIONS} more decisions`);
  }

  /** Remembers a write of this runner's (ownCreates, ownStops); entries older than OWN_WRITE_TTL_MS go. */
  private noteWrite(own: Map<string, number>, id: string): void {
    const now = this.now();
    // Insertion order is age order: the oldest entries are first.
    for (const [old, at] of own) {
      if (now - at < OWN_WRITE_TTL_MS) break;
      own.delete(old);
    }
    own.delete(id);
    own.set(id, now);
  }

  /** A stop this pass wrote: its echo is skipped, so its deadline is armed here (see stopWakes). */
  private noteStop(tx: WriteTx, taskId: string): void {
    const t = tx.get('task', taskId);
    if (t === undefined) return;
    this.noteWrite(this.ownStops, taskId);
    const at = stopDeadlineFrom(this.now(), t, this.tuning);
    const cur = this.stopWakes.get(t.serviceId);
    if (cur === undefined || at < cur) this.stopWakes.set(t.serviceId, at);
  }

  private backOff(ids: Set<string>): void {
    for (const id of ids) this.retry.add(id);
    if (this.retryTimer !== null || !this.started) return;
    this.retryDelayMs = Math.min(5_000, Math.max(50, this.retryDelayMs * 2));
    this.retryTimer = this.timers.setTimeout(() => {
      this.retryTimer = null;
      for (const id of this.retry) this.dirty.add(id);
      this.retry.clear();
      this.kick();
    }, this.retryDelayMs);
  }

  private armWakeTimer(): void {
    // Already due (time passed while the pass ran): reconcile again without waiting for a timer.
    const now = this.now();
    for (const [id, at] of this.wakeAt) {
      if (at <= now) {
        this.dirty.add(id);
        this.wakeAt.delete(id);
      }
    }
    let min = Number.POSITIVE_INFINITY;
    for (const at of this.wakeAt.values()) if (at < min) min = at;
    if (this.wakeTimer !== null && this.wakeTimer.at === min) return;
    if (this.wakeTimer !== null) this.timers.clearTimeout(this.wakeTimer.handle);
    this.wakeTimer = null;
    if (!this.started || !Number.isFinite(min)) return;
    const delay = Math.min(MAX_TIMER_MS, Math.max(0, min - now));
    const handle = this.timers.setTimeout(() => {
      this.wakeTimer = null;
      this.onWake();
    }, delay);
    (handle as { unref?: () => void } | null)?.unref?.();
    this.wakeTimer = { handle, at: min };
  }

  private onWake(): void {
    if (!this.started) return;
    this.armWakeTimer();
    this.kick();
  }
}
