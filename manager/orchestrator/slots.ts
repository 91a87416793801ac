// The slot model shared by every mode. A service's tasks are grouped into slots: by `slot` number for
// replicated services and replicated jobs, by node for global services and global jobs. A slot holds the
// task that currently stands for it (the head) and its history. Pure.
//
//   live     tasks desired to run (desiredState 'running' / 'complete'), finished or not
//   head     the live task that stands for the slot: the one on the current spec if any (during a
//            start-first update the new task is the head while the old one still runs), then a running
//            one, then the newest
//   extras   other live tasks (the old task of a start-first update; duplicates)
//   dead     the slot has tasks but none live and they are not all 'remove': someone told its task to
//            stop without replacing it (a stop-first update, or another component) — it gets a new task
//            once the old one has stopped
//   removed  every task of the slot is desired 'remove' (scaled down, service deleted): the slot is gone
//            and its number is free
import { failingConstraint } from './enforcer.ts';
import { isFinished, isRunning, ms, rank, wantsToRun } from './types.ts';
import { jsonEqual } from '../../api/objects.ts';
import type { FNode, FService, FTask } from './types.ts';
import type { QuietInputs } from './replicated.ts';
import type { UpdateFacts, UpdateSlot } from './update.ts';

export interface Slot {
  /** `slot:N` or `node:ID`. */
  key: string;
  slot?: number;
  nodeId?: string;
  /** Every task of the slot, history included. */
  tasks: FTask[];
  live: FTask[];
  head: FTask | undefined;
  extras: FTask[];
  dead: boolean;
  removed: boolean;
  /**
   * Memos of replicated.ts: the inputs with which this slot's repair / history rules last decided
   * nothing (a slot object is immutable otherwise, and the runner keeps unchanged ones: slot-cache.ts).
   */
  quietRepair?: QuietInputs;
  quietReap?: QuietInputs;
  /** Memo of update.ts: what this slot contributes to a rolling update's counts (UpdateFacts). */
  updateFacts?: UpdateFacts;
  /**
   * replicated.ts: this slot's entry for the updater when its repair found it quiet ({slot, cond: 'ok'},
   * never written): a steady pass over 150,000 slots otherwise made 150,000 of them.
   */
  okEntry?: UpdateSlot;
}

/**
 * Is `t` out of date with the service's spec (does a rolling update have to replace it)?
 * - Tasks created from the current specVersion never are.
 * - Otherwise the task's template copy is compared with the service's. A change of placement alone does
 *   not make a task dirty while its node still satisfies the new constraints (as in Swarm).
 * - The task carries no copy of the service's networks / endpoint: when the last change touched those
 *   (spec vs previousSpec), tasks of older spec versions are dirty.
 */
export function dirtyCheck(service: FService, nodes: ReadonlyMap<string, FNode>): (t: FTask) => boolean {
  const tmpl = service.spec.task;
  const prev = service.previousSpec;
  const netChanged = prev !== undefined && (!jsonEqual(prev.networks, service.spec.networks) || !jsonEqual(prev.endpoint, service.spec.endpoint));
  // What the answers that do not depend on a node are computed from. A rolling update reconciles its
  // service on every task event, and comparing each older task's spec with the template (as JSON) was
  // most of a pass: those answers are kept with the task object (a changed task is a new object).
  // One key string per service object, so that comparing keys is comparing references.
  let key = dirtyKeys.get(service);
  if (key === undefined) dirtyKeys.set(service, (key = `${service.id}\u0000${service.specVersion}\u0000${netChanged}\u0000${JSON.stringify(tmpl)}`));
  const cache = new Map<string, boolean>();
  return (t: FTask): boolean => {
    if (t.specVersion === service.specVersion) return false;
    const kept = specDirty.get(t);
    if (kept !== undefined && kept.key === key) return kept.dirty;
    const hit = cache.get(t.id);
    if (hit !== undefined) return hit;
    let dirty: boolean | undefined;
    if (netChanged) dirty = true;
    else if (jsonEqual(t.spec, tmpl)) dirty = false;
    else if (!jsonEqual({ ...t.spec, placement: undefined }, { ...tmpl, placement: undefined })) dirty = true;
    if (dirty !== undefined) {
      specDirty.set(t, { key, dirty });
      return dirty;
    }
    // Only the placement differs: dirty unless the task's node still satisfies the new constraints
    // (an answer for this pass's nodes only).
    const n = t.nodeId === undefined ? undefined : nodes.get(t.nodeId);
    dirty = n === undefined || failingConstraint(tmpl.placement?.constraints, n) !== null;
    cache.set(t.id, dirty);
    return dirty;
  };
}

/** dirtyCheck's node-independent answers, per task object (see there). */
const specDirty = new WeakMap<FTask, { key: string; dirty: boolean }>();
const dirtyKeys = new WeakMap<FService, string>();

/** Order of preference for the head: current spec, not finished, furthest state, newest, id. */
function headOrder(isDirty: (t: FTask) => boolean): (a: FTask, b: FTask) => number {
  return (a, b) =>
    Number(isDirty(a)) - Number(isDirty(b)) ||
    Number(isFinished(a)) - Number(isFinished(b)) ||
    Number(isRunning(b)) - Number(isRunning(a)) ||
    rank(b.status.state) - rank(a.status.state) ||
    ms(b.createdAt) - ms(a.createdAt) ||
    (a.id < b.id ? 1 : a.id > b.id ? -1 : 0);
}

/** The `live` and `extras` of slots that have none: shared, never written. */
const NONE: FTask[] = Object.freeze([]) as unknown as FTask[];

export function buildSlot(key: string, tasks: FTask[], isDirty: (t: FTask) => boolean, where: { slot?: number; nodeId?: string }): Slot {
  // Most slots hold one task: no filter, sort or copies to build for it.
  let live: FTask[];
  if (tasks.length === 1) live = wantsToRun(tasks[0]!) ? tasks : NONE;
  else {
    live = tasks.filter(wantsToRun);
    if (live.length > 1) live.sort(headOrder(isDirty));
    else if (live.length === 0) live = NONE;
  }
  const head = live[0];
  const removed = live.length === 0 && tasks.length > 0 && tasks.every((t) => t.desiredState === 'remove');
  const s: Slot = { key, tasks, live, head, extras: live.length > 1 ? live.slice(1) : NONE, dead: live.length === 0 && tasks.length > 0 && !removed, removed };
  if (where.slot !== undefined) s.slot = where.slot;
  if (where.nodeId !== undefined) s.nodeId = where.nodeId;
  return s;
}

/**
 * Slot numbers up to this many times the task count (plus a margin) are grouped in an array indexed by
 * number: no map and no sort. Replicated slots are 1..replicas, refilled lowest first, so they are
 * dense; a sparse outlier falls back to a map and a sort.
 */
const DENSE_FACTOR = 4;
const DENSE_MARGIN = 1024;

/**
 * Groups tasks by slot number, in ascending order. Tasks without a slot are returned separately.
 * A rolling update reconciles its service on every round, over every task including history (20,000
 * tasks for 10,000 slots), so this runs in O(tasks) with no per-task allocation beyond the groups of
 * slots that hold more than one task.
 */
export function bySlotNumber(tasks: readonly FTask[], isDirty: (t: FTask) => boolean): { slots: Map<number, Slot>; strays: FTask[] } {
  const { numbers, groups, strays } = slotGroups(tasks);
  const slots = new Map<number, Slot>();
  for (let i = 0; i < numbers.length; i++) slots.set(numbers[i]!, buildSlot(`slot:${numbers[i]}`, groups[i]!, isDirty, { slot: numbers[i]! }));
  return { slots, strays };
}

/**
 * bySlotNumber's first half: the slot numbers in ascending order, the tasks of each (groups[i] for
 * numbers[i]), and the tasks without one. The second half (buildSlot per group) is the dearer; a runner warming up a large service
 * does it a step at a time (slot-cache.ts, warm).
 */
export function slotGroups(tasks: readonly FTask[]): { numbers: number[]; groups: FTask[][]; strays: FTask[] } {
  const strays: FTask[] = [];
  const limit = tasks.length * DENSE_FACTOR + DENSE_MARGIN;
  // A slot's group: its only task, or an array once it has a second one.
  const dense: (FTask | FTask[] | undefined)[] = [];
  let sparse: Map<number, FTask[]> | undefined;
  for (const t of tasks) {
    const n = t.slot;
    if (n === undefined) {
      strays.push(t);
      continue;
    }
    if (Number.isInteger(n) && n >= 0 && n < limit) {
      while (dense.length <= n) dense.push(undefined);
      const g = dense[n];
      if (g === undefined) dense[n] = t;
      else if (Array.isArray(g)) g.push(t);
      else dense[n] = [g, t];
      continue;
    }
    sparse ??= new Map();
    let g = sparse.get(n);
    if (g === undefined) sparse.set(n, (g = []));
    g.push(t);
  }
  const numbers: number[] = [];
  const groups: FTask[][] = [];
  const add = (n: number, g: FTask[]) => {
    numbers.push(n);
    groups.push(g);
  };
  const extra = sparse === undefined ? [] : [...sparse.keys()].sort((a, b) => a - b);
  let e = 0;
  // Negative and fractional outliers sort before (or between) the dense numbers; huge ones after.
  for (let n = 0; n < dense.length; n++) {
    while (e < extra.length && extra[e]! < n) add(extra[e]!, sparse!.get(extra[e++]!)!);
    const g = dense[n];
    if (g !== undefined) add(n, Array.isArray(g) ? g : [g]);
  }
  while (e < extra.length) add(extra[e]!, sparse!.get(extra[e++]!)!);
  return { numbers, groups, strays };
}

/** Groups tasks by node. Tasks without a node are returned separately. */
export function byNode(tasks: readonly FTask[], isDirty: (t: FTask) => boolean): { slots: Map<string, Slot>; strays: FTask[] } {
  const groups = new Map<string, FTask[]>();
  const strays: FTask[] = [];
  for (const t of tasks) {
    if (t.nodeId === undefined) {
      strays.push(t);
      continue;
    }
    let g = groups.get(t.nodeId);
    if (g === undefined) groups.set(t.nodeId, (g = []));
    g.push(t);
  }
  const slots = new Map<string, Slot>();
  for (const id of [...groups.keys()].sort()) slots.set(id, buildSlot(`node:${id}`, groups.get(id)!, isDirty, { nodeId: id }));
  return { slots, strays };
}

/**
 * Do two node maps hold the same node objects for every node these tasks are on? What is computed for a
 * slot reads the nodes of the slot's own tasks only (their placement, dirtyCheck's placement-only
 * answers, the orphan rules), so a memo made with map `a` still holds under map `b` when this is true:
 * one node's change then costs the slots of its tasks, not every slot of the service.
 * Cost: O(nodes) once per pair of maps (changedNodes), then one set lookup per task; a lookup in both maps
 * per task for every slot of 150,000 was 100 ms of a pass after one node went Down (bench:scale
 * --store-only, profiled).
 */
export function sameNodesFor(tasks: readonly FTask[], a: ReadonlyMap<string, FNode>, b: ReadonlyMap<string, FNode>): boolean {
  if (a === b) return true;
  const changed = changedNodes(a, b);
  if (changed.size === 0) return true;
  for (const t of tasks) if (t.nodeId !== undefined && changed.has(t.nodeId)) return false;
  return true;
}

/** The last map each map was compared with, and the ids whose objects differ (sameNodesFor). */
const nodeDiffs = new WeakMap<ReadonlyMap<string, FNode>, { to: ReadonlyMap<string, FNode>; changed: ReadonlySet<string> }>();

/** Ids of the nodes whose objects differ between two maps, or that are in one only. */
export function changedNodes(a: ReadonlyMap<string, FNode>, b: ReadonlyMap<string, FNode>): ReadonlySet<string> {
  // The pair of the last call first: a pass asks about the same pair for every slot, and a WeakMap
  // lookup per slot was itself most of the cost.
  if (last.a === a && last.b === b) return last.changed;
  const kept = nodeDiffs.get(a);
  let changed: Set<string>;
  if (kept !== undefined && kept.to === b) changed = kept.changed as Set<string>;
  else {
    changed = new Set<string>();
    for (const [id, n] of b) if (a.get(id) !== n) changed.add(id);
    for (const id of a.keys()) if (!b.has(id)) changed.add(id);
    nodeDiffs.set(a, { to: b, changed });
  }
  last = { a, b, changed };
  return changed;
}

const NO_NODES: ReadonlyMap<string, FNode> = new Map();
let last: { a: ReadonlyMap<string, FNode>; b: ReadonlyMap<string, FNode>; changed: ReadonlySet<string> } = { a: NO_NODES, b: NO_NODES, changed: new Set() };

/** Where a slot is, for messages. */
export function slotName(s: Slot): string {
  return s.slot !== undefined ? `slot ${s.slot}` : `node ${s.nodeId ?? '?'}`;
}
