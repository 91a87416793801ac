// Rolling updates and rollbacks (`service update`, `service rollback`, automatic rollback). Pure: the
// whole state of an update is read back from the store on every pass — which tasks are out of date
// (dirty), which slots are in flight, how many tasks of this spec version failed, updateStatus — so a new
// leader's orchestrator resumes an update where the old one left it. See docs/design/update.md.
//
// Per pass, for a replicated or global service:
//   1. Status. Not updating, not paused, and some slot is dirty → updateStatus 'updating' (the API
//      normally writes that itself when it stores a spec change).
//   2. Failures. Tasks of the current specVersion that failed (failed, rejected, exited, or shut down
//      while meant to run) within `monitor` of starting to run — or before running at all — count. If
//      failures / slots updated so far > maxFailureRatio: failureAction 'pause' → 'paused'
//      ('rollback_paused' during a rollback), 'rollback' → spec := previousSpec (specVersion+1,
//      'rollback_started'), 'continue' → carry on.
//   3. In flight. A slot is in flight while its stop-first replacement waits for the old task to stop,
//      or while its head (current specVersion) is not running yet, or ran for less than `delay`.
//   4. Start. Up to `parallelism` (0 = all) minus in-flight dirty slots are updated now: stop-first
//      tells the old task to stop (the slot's replacement is created when it has stopped — at once if
//      it already has); start-first creates the new task at once and retires the old one when the new
//      one is running (repair.ts).
//   5. Done. No dirty slot, none in flight, every head of this version has run for `monitor` →
//      'completed' / 'rollback_completed'.
import type { UpdateConfig, UpdateState } from '../../api/objects.ts';
import type { SlotCondition } from './repair.ts';
import { sameNodesFor, slotName } from './slots.ts';
import type { Slot } from './slots.ts';
import { acts, isFinished, isRunning, isStopped, iso, ms, stateSince, toldToStop, wantsToRun } from './types.ts';
import type { Draft, Task } from '../../api/objects.ts';
import type { FNode, FService, FTask, Plan } from './types.ts';

/** Swarm's defaults, for update and rollback alike. */
export const DEFAULT_UPDATE_CONFIG: Readonly<UpdateConfig> = Object.freeze({
  parallelism: 1,
  delayMs: 0,
  failureAction: 'pause',
  monitorMs: 5_000,
  maxFailureRatio: 0,
  order: 'stop-first',
});

export function isRollingBack(state: UpdateState | undefined): boolean {
  return state === 'rollback_started' || state === 'rollback_paused';
}

/** The config that drives the current pass: spec.rollback during a rollback, else spec.update; defaults filled. */
export function updateConfigOf(service: FService): UpdateConfig {
  const c = isRollingBack(service.updateStatus?.state) ? service.spec.rollback : service.spec.update;
  return { ...DEFAULT_UPDATE_CONFIG, ...(c ?? {}) };
}

export interface UpdateSlot {
  slot: Slot;
  cond: SlotCondition;
  /**
   * A new task for this slot on the current spec (null when the slot may not get one). Called with the
   * slot, so that one function per pass can serve every slot (no closure per slot per pass). Absent: the
   * pass's UpdateOptions.replacement (an entry without one can then be kept between passes).
   */
  replacement?: (slot: Slot) => Draft<Task> | null;
}

export interface UpdateOptions {
  isDirty: (t: FTask) => boolean;
  /** The replacement of slots whose UpdateSlot names none. */
  replacement?: (slot: Slot) => Draft<Task> | null;
  runningSince?: ReadonlyMap<string, number>;
  /**
   * The nodes `isDirty` was made with. Given, each slot's facts are kept on the slot object between
   * passes (Slot.updateFacts, below), valid while the service is the same object and the slot's tasks'
   * nodes are the same node objects.
   */
  nodes?: ReadonlyMap<string, FNode>;
}

// ---------------------------------------------------------------------------------------- slot facts
//
// Steps 2 and 3 read every slot of the service on every pass: at 10,000 slots, scanning them (each
// slot's tasks, isDirty of its head and of its stopping tasks, its head's state) was half of a pass
// during an update (bench:converge --profile, leader: planUpdate, its filters and firstToUpdate 3.0 s of
// 36.6 s busy over the run). What a slot contributes depends only on its tasks, the service (spec
// version, update config, template), the nodes of its tasks (isDirty) and runningSince, apart from this
// pass's repair condition and the clock, which are applied to the facts every pass. The runner keeps
// unchanged slots as the same objects (slot-cache.ts), a slot's tasks are fixed, and runningSince only
// changes with a task event, which gives the slot a new object: so the facts are kept on the slot
// object, and a pass recomputes only those of the slots that changed since the last one, or whose
// tasks' nodes did (sameNodesFor).

/** What one slot contributes to steps 2 and 3, apart from this pass's repair condition and the clock. */
export interface UpdateFacts {
  service: FService;
  /** undefined: computed for one pass only (the caller gave no nodes), never kept. */
  nodes: ReadonlyMap<string, FNode> | undefined;
  /** The slot has a head and it is out of date. */
  dirtyHead: boolean;
  /** Some task of the slot has the current spec version (the slot counts as updated). */
  touched: boolean;
  /** Its tasks of the current spec version that failed early, and the one that failed first. */
  failures: number;
  firstFailed: FTask | undefined;
  /**
   * A dead slot: a task of it was told to stop and is out of date (a stop-first update in progress). A
   * live slot: its head has the current version, is up to date, and is neither running nor finished.
   */
  inFlight: boolean;
  /** A live slot whose up-to-date head of the current version runs or ran: since when (stateSince). */
  since: number | undefined;
}

function factsOf(s: Slot, service: FService, monitorMs: number, o: UpdateOptions): UpdateFacts {
  const kept = s.updateFacts;
  if (kept !== undefined && kept.service === service && kept.nodes !== undefined && o.nodes !== undefined && sameNodesFor(s.tasks, kept.nodes, o.nodes)) {
    // Still true under these nodes (isDirty reads only the nodes of the slot's tasks): kept for this map.
    kept.nodes = o.nodes;
    return kept;
  }
  const V = service.specVersion;
  let touched = false;
  let failures = 0;
  let firstFailed: FTask | undefined;
  for (const t of s.tasks) {
    if (t.specVersion !== V) continue;
    touched = true;
    if (failedEarly(t, monitorMs, o.runningSince)) {
      failures++;
      if (firstFailed === undefined || ms(t.updatedAt) < ms(firstFailed.updatedAt)) firstFailed = t;
    }
  }
  const h = s.head;
  let inFlight = false;
  let since: number | undefined;
  if (s.dead) {
    // A stop-first update in progress: the old task is stopping, or has stopped and its replacement
    // is being created in this very pass (by repairSlot).
    inFlight = s.tasks.some((t) => toldToStop(t) && o.isDirty(t));
  } else if (h !== undefined && h.specVersion === V && !o.isDirty(h)) {
    if (!isRunning(h) && !isFinished(h)) inFlight = true;
    else since = stateSince(h);
  }
  const f: UpdateFacts = { service, nodes: o.nodes, dirtyHead: h !== undefined && o.isDirty(h), touched, failures, firstFailed, inFlight, since };
  if (o.nodes !== undefined) s.updateFacts = f;
  return f;
}

/** Computes and keeps a slot's facts ahead of a pass (a new leader warming up: slot-cache.ts, warm); monitorMs from updateConfigOf. */
export function warmFacts(s: Slot, service: FService, monitorMs: number, o: UpdateOptions & { nodes: ReadonlyMap<string, FNode> }): void {
  factsOf(s, service, monitorMs, o);
}

/** Did this task fail in a way that counts against the update? */
function failedEarly(t: FTask, monitorMs: number, runningSince: ReadonlyMap<string, number> | undefined): boolean {
  if (!isFinished(t)) return false;
  const s = t.status.state;
  const failed = s === 'failed' || s === 'rejected' || s === 'complete' || (wantsToRun(t) && (s === 'shutdown' || s === 'orphaned'));
  if (!failed) return false;
  // When did it start running? Known when this runner saw it; otherwise a task without an exit code never
  // ran (rejected, failed to start) and counts; one with an exit code is measured from its creation.
  const started = runningSince?.get(t.id) ?? (t.status.exitCode === undefined ? undefined : ms(t.createdAt));
  return started === undefined || stateSince(t) - started <= monitorMs;
}

/** Which dirty slots go first: those whose task is not running, then by slot number, then by key. */
function updateOrder(a: UpdateSlot, b: UpdateSlot): number {
  return Number(isRunning(a.slot.head!)) - Number(isRunning(b.slot.head!)) || (a.slot.slot ?? 0) - (b.slot.slot ?? 0) || a.slot.key.localeCompare(b.slot.key);
}

/**
 * The first `n` of `dirty` in updateOrder. The callers list slots by number (replicated) or node id
 * (global), so the order is usually a stable split into not running / running: O(slots), where sorting
 * 10,000 dirty slots on every pass of an update was a tenth of the pass.
 */
export function firstToUpdate(dirty: readonly UpdateSlot[], n: number): UpdateSlot[] {
  if (n <= 0) return [];
  let sorted = true;
  for (let i = 1; i < dirty.length && sorted; i++) sorted = inOrder(dirty[i - 1]!.slot, dirty[i]!.slot);
  if (!sorted) return [...dirty].sort(updateOrder).slice(0, n);
  return firstOfSplit(
    dirty.filter((u) => !isRunning(u.slot.head!)),
    dirty.filter((u) => isRunning(u.slot.head!)),
    n,
  );
}

/** The first `n` of sorted dirty slots already split into not running and running (each in order). */
function firstOfSplit(idle: readonly UpdateSlot[], running: readonly UpdateSlot[], n: number): UpdateSlot[] {
  if (n <= 0) return [];
  const out = idle.slice(0, n);
  if (out.length < n) out.push(...running.slice(0, n - out.length));
  return out;
}

/** Is `b` after `a` in (slot, key) order (how callers list their slots)? */
function inOrder(a: Slot, b: Slot): boolean {
  return (a.slot ?? 0) - (b.slot ?? 0) < 0 || ((a.slot ?? 0) === (b.slot ?? 0) && a.key.localeCompare(b.key) < 0);
}

/**
 * Plans this pass of a rolling update. Returns 'rollback' when the plan is only the rollback decision
 * (the caller must discard everything else it planned: the spec it planned against is being replaced).
 */
export function planUpdate(plan: Plan, service: FService, slots: readonly UpdateSlot[], o: UpdateOptions): 'rollback' | undefined {
  const ctx = plan.ctx;
  const now = ctx.now;
  const st = service.updateStatus;
  const rollingBack = isRollingBack(st?.state);
  if (st?.state === 'paused' || st?.state === 'rollback_paused') return undefined;
  const cfg = updateConfigOf(service);
  const V = service.specVersion;

  // Steps 2 and 3 read each slot's facts once, in one sweep (see "slot facts" above). The dirty slots are
  // split as firstToUpdate orders them (not running first), which the sweep can do for free while the
  // callers' order holds.
  const dirty: UpdateSlot[] = [];
  const dirtyIdle: UpdateSlot[] = [];
  const dirtyRunning: UpdateSlot[] = [];
  let sorted = true;
  let failures = 0;
  let firstFailed: FTask | undefined;
  let updated = 0;
  let inFlight = 0;
  const settleWaits: number[] = [];
  for (const u of slots) {
    const f = factsOf(u.slot, service, cfg.monitorMs, o);
    if (f.dirtyHead && u.cond !== 'busy' && u.cond !== 'empty') {
      if (sorted && dirty.length > 0) sorted = inOrder(dirty[dirty.length - 1]!.slot, u.slot);
      dirty.push(u);
      (isRunning(u.slot.head!) ? dirtyRunning : dirtyIdle).push(u);
    }
    if (f.touched) updated++;
    if (f.firstFailed !== undefined) {
      failures += f.failures;
      if (firstFailed === undefined || ms(f.firstFailed.updatedAt) < ms(firstFailed.updatedAt)) firstFailed = f.firstFailed;
    }
    // In flight (step 3 of the list at the top of this file).
    if (u.slot.dead) {
      if (f.inFlight) inFlight++;
    } else if (u.cond === 'busy' || f.inFlight) {
      // busy: restarted or moved in this very pass, its new task (current spec) is about to start.
      inFlight++;
    } else if (f.since !== undefined) {
      const settled = f.since + cfg.delayMs;
      if (settled > now) {
        inFlight++;
        settleWaits.push(settled);
      }
    }
  }
  let active = st?.state === 'updating' || st?.state === 'rollback_started';
  const statusActions = [];
  if (!active) {
    if (dirty.length === 0) return undefined;
    active = true;
    statusActions.push({
      type: 'service' as const,
      serviceId: service.id,
      version: service.version,
      updateStatus: { state: 'updating' as const, startedAt: iso(now), message: 'update in progress' },
    });
  }

  // Failures of this spec version.
  if (cfg.failureAction !== 'continue' && failures > 0 && failures / Math.max(1, updated) > cfg.maxFailureRatio) {
    const what = `failure or early termination of task ${firstFailed!.id}`;
    if (cfg.failureAction === 'rollback' && !rollingBack && service.previousSpec !== undefined) {
      plan.decisions.length = 0;
      plan.add(`update failed (${failures}/${updated}): rolling back`, [
        {
          type: 'service',
          serviceId: service.id,
          version: service.version,
          rollback: true,
          updateStatus: { state: 'rollback_started', startedAt: iso(now), message: `update rolled back due to ${what}` },
        },
      ]);
      return 'rollback';
    }
    const paused: UpdateState = rollingBack ? 'rollback_paused' : 'paused';
    const why = cfg.failureAction === 'rollback' && !rollingBack ? ' (no previous spec to roll back to)' : '';
    plan.add(`${rollingBack ? 'rollback' : 'update'} paused (${failures}/${updated} failed)`, [
      {
        type: 'service',
        serviceId: service.id,
        version: service.version,
        updateStatus: {
          state: paused,
          ...(st?.startedAt ? { startedAt: st.startedAt } : {}),
          message: `${rollingBack ? 'rollback' : 'update'} paused due to ${what}${why}`,
        },
      },
    ]);
    return undefined;
  }

  // Start updating more slots.
  const free = cfg.parallelism > 0 ? Math.max(0, cfg.parallelism - inFlight) : dirty.length;
  const started = sorted ? firstOfSplit(dirtyIdle, dirtyRunning, free) : firstToUpdate(dirty, free);
  const verb = rollingBack ? 'rollback' : 'update';
  let first = true;
  for (const u of started) {
    const s = u.slot;
    const head = s.head!;
    const old = s.live.filter((t) => o.isDirty(t));
    const r = (u.replacement ?? o.replacement)?.(s) ?? null;
    const extra = first ? statusActions.splice(0) : [];
    first = false;
    if (cfg.order === 'start-first' && !isFinished(head) && r !== null) {
      plan.add(`${verb} ${slotName(s)} (start-first): new task ${r.id}, task ${head.id} stops once it runs`, [...extra, { type: 'create', task: r }]);
    } else {
      const stopNow = old.every((t) => isStopped(t, ctx) || isFinished(t));
      plan.add(
        `${verb} ${slotName(s)} (stop-first): task ${head.id} stops${stopNow && r ? `, new task ${r.id}` : ', replaced once stopped'}`,
        acts(...extra, ...old.map((t) => plan.stop(t, 'shutdown', `${verb} to spec version ${V}`)), stopNow ? r && { type: 'create', task: r } : null),
      );
    }
  }
  if (statusActions.length > 0) plan.add('update started', statusActions);
  for (const w of settleWaits) plan.wake(w);

  // Done?
  if (dirty.length === 0 && inFlight === 0) {
    let monitoring = false;
    for (const u of slots) {
      const h = u.slot.head;
      if (h === undefined || h.specVersion !== V || !isRunning(h)) continue;
      const end = (o.runningSince?.get(h.id) ?? stateSince(h)) + cfg.monitorMs;
      if (end > now) {
        monitoring = true;
        plan.wake(end);
      }
    }
    if (!monitoring) {
      const done: UpdateState = rollingBack ? 'rollback_completed' : 'completed';
      plan.add(`${verb} completed`, [
        {
          type: 'service',
          serviceId: service.id,
          version: service.version,
          updateStatus: {
            state: done,
            ...(st?.startedAt ? { startedAt: st.startedAt } : {}),
            completedAt: iso(now),
            message: rollingBack ? 'rollback completed' : 'update completed',
          },
        },
      ]);
    }
  }
  return undefined;
}
