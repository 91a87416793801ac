// The slots of replicated services, kept by the runner between passes so that a pass regroups only the
// slots whose tasks changed since the last one.
//
// Why: a rolling update reconciles its service on every report that comes back, and each pass used to
// read every task of the service (20,000 for 10,000 slots: the old task of each updated slot stays as
// history) and group them again (store lookups and bySlotNumber: ≈ 40 % of the pass in bench:converge),
// to refill or start a handful of slots. The store hands the runner every task change as an event; the
// slots those touch are regrouped from the store's slot index, the others are the same objects as before.
//
// States of one service's entry:
//
//   (none) ──group()──▶ fresh ──task event──▶ changed slots noted ──group()──▶ fresh
//      ▲                                          │
//      └──────── forget(): a task without a slot, one that moved slot, a new slot number ─┘
//
// A full regroup (bySlotNumber over tasksByService, exactly the uncached path) happens when:
//   - the service object changed (a new spec or version: isDirty, which orders a slot's tasks, changes
//     with it), or more than a quarter of the node objects (and 16) changed at once (NODE_CHANGES_REGROUP). Fewer
//     changed nodes regroup the slots of the service's tasks on them (the store's node index): dirtyCheck
//     reads the node of each task it answers for, never another one;
//   - a task event named no slot, or moved a task between slots, or a slot number appeared that the
//     entry does not hold (slots are kept in ascending order, as bySlotNumber makes them);
//   - the runner (re)started, its watch closed, or a batch failed (forgetAll).
// The runner also regroups in full before it believes a pass that decided nothing (runner.ts): a missed
// event can delay a decision by one pass, never lose it.
//
// Cost: O(changed slots × their tasks) per pass, instead of O(tasks of the service), plus O(nodes) to
// find the changed nodes when the nodes map is a new one (slots.ts changedNodes: once per pair of maps,
// shared by the services and the memos).
import { buildSlot, bySlotNumber, changedNodes, slotGroups } from './slots.ts';
import type { Slot } from './slots.ts';
import type { FNode, FService, FTask, ReconcileResult } from './types.ts';

/** What group() reads: the store's transaction (or a view) of the pass. */
export interface SlotSource {
  tasksByService(serviceId: string): readonly FTask[];
  tasksBySlot(serviceId: string, slot: number): readonly FTask[];
  tasksByNode(nodeId: string): readonly FTask[];
}

/**
 * More changed nodes than this share of them regroup a service in full: patching would look up about as
 * many tasks through the node index as the service holds.
 */
const NODE_CHANGES_REGROUP = 1 / 4;

export interface Grouped {
  slots: Map<number, Slot>;
  strays: FTask[];
}

interface Entry {
  service: FService;
  nodes: ReadonlyMap<string, FNode>;
  grouped: Grouped;
  changed: Set<number>;
}

export class SlotCache {
  private readonly entries = new Map<string, Entry>();

  /** A task of `serviceId` was created, updated or deleted: `slot` (and `oldSlot`, on an update) changed. */
  noteTask(serviceId: string, slot: number | undefined, oldSlot: number | undefined): void {
    const e = this.entries.get(serviceId);
    if (e === undefined) return;
    if (slot === undefined || (oldSlot !== undefined && oldSlot !== slot)) {
      this.entries.delete(serviceId);
      return;
    }
    e.changed.add(slot);
  }

  forget(serviceId: string): void {
    this.entries.delete(serviceId);
  }

  forgetAll(): void {
    this.entries.clear();
  }

  /**
   * The slots of `service` as `src` holds them, grouped as bySlotNumber(src.tasksByService(id), isDirty)
   * would group them. `reused`: only the changed slots were regrouped.
   */
  group(service: FService, nodes: ReadonlyMap<string, FNode>, src: SlotSource, isDirty: (t: FTask) => boolean): Grouped & { reused: boolean } {
    const e = this.entries.get(service.id);
    const moved = e === undefined ? null : changedNodes(e.nodes, nodes);
    if (
      e !== undefined &&
      moved !== null &&
      moved.size <= Math.max(16, Math.floor(nodes.size * NODE_CHANGES_REGROUP)) &&
      e.service === service &&
      e.grouped.strays.length === 0
    ) {
      // The slots of the service's tasks on a changed node are regrouped (isDirty may answer otherwise).
      for (const id of moved) for (const t of src.tasksByNode(id)) if (t.serviceId === service.id && t.slot !== undefined) e.changed.add(t.slot);
      let complete = true;
      for (const n of e.changed) {
        const tasks = src.tasksBySlot(service.id, n);
        if (tasks.length === 0) e.grouped.slots.delete(n);
        else if (!e.grouped.slots.has(n)) {
          complete = false; // a new slot number: the order of the map would be wrong
          break;
        } else e.grouped.slots.set(n, buildSlot(`slot:${n}`, [...tasks], isDirty, { slot: n }));
      }
      e.changed.clear();
      if (complete) {
        e.nodes = nodes;
        return { ...e.grouped, reused: true };
      }
    }
    return { ...this.regroup(service, nodes, src, isDirty), reused: false };
  }

  /**
   * Groups `tasks` (the service's, as read at the start) a step at a time: the generator yields after
   * every `step` slots, and returns the slots once the grouping is kept, as group() then reuses it. The entry
   * exists from the first step on, so task events meanwhile are noted against it and those slots are
   * regrouped from the store by the next group(); one that forgets it (a task without a slot, or one
   * that moved) ends the warm-up with null. Why: a new leader's first pass grouped 150,000 tasks in one
   * turn of the event loop (regroup: 125 ms of its 400 in process), on top of reconciling them.
   */
  *warm(
    service: FService,
    nodes: ReadonlyMap<string, FNode>,
    tasks: readonly FTask[],
    isDirty: (t: FTask) => boolean,
    step: number,
  ): Generator<void, ReadonlyMap<number, Slot> | null> {
    const { numbers, groups, strays } = slotGroups(tasks);
    const slots = new Map<number, Slot>();
    const entry: Entry = { service, nodes, grouped: { slots, strays }, changed: new Set() };
    this.entries.set(service.id, entry);
    for (let i = 0; i < numbers.length; i++) {
      if (i % step === 0) {
        yield;
        if (this.entries.get(service.id) !== entry) return null;
      }
      slots.set(numbers[i]!, buildSlot(`slot:${numbers[i]}`, groups[i]!, isDirty, { slot: numbers[i]! }));
    }
    return this.entries.get(service.id) === entry ? slots : null;
  }

  /** Groups every task of the service again and keeps the result. */
  regroup(service: FService, nodes: ReadonlyMap<string, FNode>, src: SlotSource, isDirty: (t: FTask) => boolean): Grouped {
    const grouped = bySlotNumber(src.tasksByService(service.id), isDirty);
    this.entries.set(service.id, { service, nodes, grouped, changed: new Set() });
    return grouped;
  }
}

/** The same node objects under the same ids (the runner then passes the previous pass's map again). */
export function sameNodes(a: ReadonlyMap<string, FNode>, b: ReadonlyMap<string, FNode>): boolean {
  if (a === b) return true;
  if (a.size !== b.size) return false;
  for (const [id, n] of a) if (b.get(id) !== n) return false;
  return true;
}

/**
 * Do two groupings hold the same slots, in the same order, with the same tasks, head, live and extras?
 * Returns the first difference, or null (tests and the runner's verifySlotCache option).
 */
export function groupingDifference(a: Grouped, b: Grouped): string | null {
  const ids = (ts: readonly FTask[]) => ts.map((t) => t.id);
  const sorted = (ts: readonly FTask[]) => ids(ts).sort().join(',');
  if (sorted(a.strays) !== sorted(b.strays)) return 'strays differ';
  const ka = [...a.slots.keys()];
  const kb = [...b.slots.keys()];
  if (ka.join(',') !== kb.join(',')) return `slot numbers differ: ${ka.length} against ${kb.length}`;
  for (const [n, x] of a.slots) {
    const y = b.slots.get(n)!;
    if (sorted(x.tasks) !== sorted(y.tasks)) return `slot ${n}: tasks ${sorted(x.tasks)} against ${sorted(y.tasks)}`;
    // A task of the slot that changed is a new object: compare objects, not only ids.
    const byId = new Map(y.tasks.map((t) => [t.id, t]));
    for (const t of x.tasks) if (byId.get(t.id) !== t) return `slot ${n}: task ${t.id} is an older object`;
    if (x.head?.id !== y.head?.id) return `slot ${n}: head ${x.head?.id} against ${y.head?.id}`;
    if (ids(x.live).join(',') !== ids(y.live).join(',')) return `slot ${n}: live tasks differ`;
    if (ids(x.extras).join(',') !== ids(y.extras).join(',')) return `slot ${n}: extras differ`;
    if (x.dead !== y.dead || x.removed !== y.removed) return `slot ${n}: dead/removed differ`;
  }
  return null;
}

/**
 * Do two reconciles of the same state decide the same? The ids of created tasks differ between two runs
 * (each draws new ids): they are compared by their order of appearance. Returns the first difference, or
 * null (the runner's verifySlotCache option).
 */
export function decisionsDifference(a: ReconcileResult, b: ReconcileResult): string | null {
  const canon = (r: ReconcileResult) => {
    const ids = new Map<string, string>();
    for (const d of r.decisions) for (const x of d.actions) if (x.type === 'create') ids.set(x.task.id, `#${ids.size}`);
    let text = JSON.stringify({ decisions: r.decisions, wakeAt: r.wakeAt });
    for (const [id, k] of ids) text = text.split(id).join(k);
    return text;
  };
  const x = canon(a);
  const y = canon(b);
  if (x === y) return null;
  let i = 0;
  while (i < x.length && x[i] === y[i]) i++;
  return `decisions differ at …${x.slice(Math.max(0, i - 80), i + 80)}… against …${y.slice(Math.max(0, i - 80), i + 80)}…`;
}
