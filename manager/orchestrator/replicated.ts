// Replicated services: slots 1..replicas, one live task each. Pure; see docs/design/orchestrator.md.
//
// One pass, in order:
//   1. tasks without a slot are removed (they cannot belong to a replicated service);
//   2. scale down: slots beyond `replicas` are removed — dead slots first, then slots whose task is not
//      running, then running ones from the nodes that run the most tasks of the service (Swarm's
//      balancing), highest slot number first on a tie. Their tasks get desiredState 'remove' (finished
//      ones are deleted); the worker stops them and the reaper deletes them;
//   3. repairs per slot (repair.ts): dead slots refilled, tasks on drained / down / removed /
//      non-matching nodes replaced in the same slot, finished tasks restarted per the restart policy;
//   4. rolling update (update.ts);
//   5. scale up: new tasks in the lowest free slot numbers;
//   6. history (reaper.ts).
import { planUpdate, updateConfigOf, warmFacts } from './update.ts';
import type { UpdateSlot } from './update.ts';
import { historyKeep, reapSlot } from './reaper.ts';
import { repairSlot } from './repair.ts';
import { bySlotNumber, dirtyCheck, sameNodesFor } from './slots.ts';
import type { Slot } from './slots.ts';
import { Plan, acts, isFinished, isRunning, newTask } from './types.ts';
import type { FService, FTask, ReconcileContext, ReconcileResult } from './types.ts';

export function replicasOf(service: FService): number {
  const m = service.spec.mode;
  return 'replicated' in m ? Math.max(0, Math.floor(m.replicated.replicas)) : 0;
}

/**
 * Which of `slots` to remove to leave `keep`. Dead slots first, then slots whose head is not running,
 * then running ones taken one at a time from the node that currently runs the most of them.
 */
export function pickForRemoval(slots: readonly Slot[], count: number): Slot[] {
  if (count <= 0) return [];
  const bySlotDesc = (a: Slot, b: Slot) => (b.slot ?? 0) - (a.slot ?? 0);
  const idle = slots.filter((s) => s.dead || s.head === undefined || !isRunning(s.head));
  idle.sort((a, b) => Number(b.dead) - Number(a.dead) || bySlotDesc(a, b));
  const out = idle.slice(0, count);
  if (out.length >= count) return out;
  const perNode = new Map<string, Slot[]>();
  for (const s of slots) {
    if (s.dead || s.head === undefined || !isRunning(s.head)) continue;
    const n = s.head.nodeId ?? '';
    let l = perNode.get(n);
    if (l === undefined) perNode.set(n, (l = []));
    l.push(s);
  }
  for (const l of perNode.values()) l.sort(bySlotDesc);
  while (out.length < count) {
    let best: Slot[] | undefined;
    for (const l of perNode.values()) {
      if (l.length === 0) continue;
      if (best === undefined || l.length > best.length || (l.length === best.length && (l[0]!.slot ?? 0) > (best[0]!.slot ?? 0))) best = l;
    }
    if (best === undefined) break;
    out.push(best.shift()!);
  }
  return out;
}

/**
 * New tasks one pass creates at most, for scale-ups and repairs together (a rolling update's own batch
 * is bounded by its parallelism). A pass is one synchronous turn of the leader's event loop: creating
 * 150,000 replicas in one built every task object at once, 0.9-1.5 s with the garbage collection it
 * caused (bench:scale --profile, 1,000 nodes), longer than Raft's election timeout then (1 s), so the
 * leader lost its term in pass after pass and the create never finished; replacing the tasks of many
 * failed nodes in one pass was 2 s (repairSlot → newTask). The runner writes each pass's decisions in
 * bounded transactions.
 *
 * Why 20,000 and not the first cap's 5,000: a pass is mostly its sweep over the service's slots, not the
 * tasks it creates, so 150,000 replicas in passes of 5,000 swept 150,000 slots 30 times. The create of
 * `BENCH_ORCH_TASKS=150000 BENCH_ORCH_NODES=5000 npm run bench:orchestrator` went from 23.3 to
 * 17.5-18.5 s with passes of 20,000, its reconciles from 6.1-6.5 to 2.2-2.5 s of CPU, the longest pass
 * from 386-427 to 432-571 ms; the election timeout now grows with the replicas asked for
 * (election-timing.ts).
 */
export const MAX_NEW_TASKS_PER_PASS = 20_000;

export function reconcileReplicated(service: FService, tasks: readonly FTask[], ctx: ReconcileContext): ReconcileResult {
  const isDirty = dirtyCheck(service, ctx.nodes);
  return reconcileReplicatedSlots(service, bySlotNumber(tasks, isDirty), isDirty, ctx);
}

/**
 * The same, from the service's tasks already grouped as bySlotNumber groups them with `isDirty` (the
 * runner keeps the groups between passes: slot-cache.ts).
 */
export function reconcileReplicatedSlots(
  service: FService,
  { slots, strays }: { slots: ReadonlyMap<number, Slot>; strays: readonly FTask[] },
  isDirty: (t: FTask) => boolean,
  ctx: ReconcileContext,
): ReconcileResult {
  const plan = new Plan(ctx);
  const want = replicasOf(service);

  // 1. Strays.
  for (const t of strays) {
    if (isFinished(t)) continue;
    plan.add(`task ${t.id} has no slot: removed`, acts(plan.stop(t, 'remove', 'task has no slot')));
  }

  // 2. Scale down. (The slots in use are listed only then: a pass over a steady service of 150,000
  // slots copied them twice for nothing.)
  let inUse = 0;
  for (const s of slots.values()) if (!s.removed) inUse++;
  let victims: Set<Slot> | null = null;
  if (inUse > want) {
    victims = new Set(
      pickForRemoval(
        [...slots.values()].filter((s) => !s.removed),
        inUse - want,
      ),
    );
    for (const s of victims) {
      const actions = acts(...s.tasks.map((t) => (isFinished(t) ? plan.delete(t) : plan.stop(t, 'remove', `scaled down to ${want}`))));
      plan.add(`scale down to ${want}: slot ${s.slot} removed`, actions);
    }
  }
  /** The slots kept: in use, and not scaled down. */
  const isKept = (s: Slot) => !s.removed && (victims === null || !victims.has(s));
  const keptCount = inUse - (victims?.size ?? 0);

  // 3. Repairs.
  const keep = historyKeep(ctx.taskHistoryLimit, service);
  const inputs = quietInputs(service, ctx, keep);
  const updSlots: UpdateSlot[] = [];
  let created = 0;
  const replacementFor = (s: Slot) => {
    created++;
    return newTask(service, ctx, { slot: s.slot!, desiredState: 'running' });
  };
  let deferred = false;
  for (const s of slots.values()) {
    if (!isKept(s)) continue;
    const memo = s.quietRepair;
    if (memo === inputs || quiet(s, memo, inputs)) {
      if (memo !== inputs) renew(s, memo!, inputs);
      updSlots.push((s.okEntry ??= { slot: s, cond: 'ok' }));
      continue;
    }
    // The pass's budget of new tasks is spent (a mass failure: every task of many nodes to replace):
    // the rest of the slots wait for the next pass, which is due at once; the updater leaves them alone.
    if (created >= MAX_NEW_TASKS_PER_PASS) {
      deferred = true;
      updSlots.push({ slot: s, cond: 'busy', replacement: replacementFor });
      continue;
    }
    const mark = plan.decisions.length + plan.wakes;
    const cond = repairSlot(plan, s, { job: false, replacement: () => replacementFor(s), isDirty });
    if (cond === 'ok' && s.extras.length === 0 && plan.decisions.length + plan.wakes === mark && untouched(plan, s)) s.quietRepair = inputs;
    updSlots.push({ slot: s, cond, replacement: replacementFor });
  }

  // 4. Rolling update.
  if (
    planUpdate(plan, service, updSlots, {
      isDirty,
      nodes: ctx.nodes,
      replacement: replacementFor,
      ...(ctx.runningSince ? { runningSince: ctx.runningSince } : {}),
    }) === 'rollback'
  ) {
    return plan.result();
  }

  // 5. Scale up with what is left of the budget; the pass asks to be woken at once for the rest.
  if (deferred) plan.wake(ctx.now + 1);
  if (keptCount < want) {
    const used = new Set<number>();
    for (const s of slots.values()) if (isKept(s)) used.add(s.slot!);
    const upTo = Math.min(want, keptCount + Math.max(0, MAX_NEW_TASKS_PER_PASS - created));
    let n = 1;
    for (let i = keptCount; i < upTo; i++) {
      while (used.has(n)) n++;
      used.add(n);
      const t = newTask(service, ctx, { slot: n, desiredState: 'running' });
      plan.add(`scale up to ${want}: slot ${n} new task ${t.id}`, [{ type: 'create', task: t }]);
    }
    if (upTo < want) plan.wake(ctx.now + 1);
  }

  // 6. History.
  for (const s of slots.values()) {
    const memo = s.quietReap;
    if (memo === inputs || quiet(s, memo, inputs)) {
      if (memo !== inputs) s.quietReap = inputs;
      continue;
    }
    const mark = plan.decisions.length + plan.wakes;
    // A task this pass already wrote is left alone by reapSlot: it may have a decision next time.
    const clean = untouched(plan, s);
    reapSlot(plan, s.tasks, keep);
    if (clean && plan.decisions.length + plan.wakes === mark) s.quietReap = inputs;
  }
  return plan.result();
}

/**
 * Finds ahead of a pass which of these slots are quiet, and computes their update facts, keeping both on
 * the slots as reconcileReplicatedSlots does (see "quiet slots" below): the pass then skips them. Returns
 * how many are quiet for both rules. Decides nothing (a slot that would get a decision is left without
 * a memo, for the pass to decide) and reads no clock on the paths that leave a memo, so it may run well
 * before the pass, a step at a time: a new
 * leader's first pass over 150,000 slots held the event loop 0.9-2.5 s on the lab, longer than Raft's
 * election timeout (bench:scale --profile, December 7).
 */
export function warmSlots(service: FService, slots: Iterable<Slot>, isDirty: (t: FTask) => boolean, ctx: ReconcileContext): number {
  const plan = new Plan(ctx);
  const keep = historyKeep(ctx.taskHistoryLimit, service);
  const inputs = quietInputs(service, ctx, keep);
  const facts = { isDirty, nodes: ctx.nodes, ...(ctx.runningSince ? { runningSince: ctx.runningSince } : {}) };
  const monitorMs = updateConfigOf(service).monitorMs;
  let quietOnes = 0;
  for (const s of slots) {
    if (!s.removed && !quiet(s, s.quietRepair, inputs)) {
      const mark = plan.decisions.length + plan.wakes;
      const cond = repairSlot(plan, s, { job: false, replacement: () => null, isDirty });
      if (cond === 'ok' && s.extras.length === 0 && plan.decisions.length + plan.wakes === mark && untouched(plan, s)) s.quietRepair = inputs;
    }
    if (!quiet(s, s.quietReap, inputs)) {
      const mark = plan.decisions.length + plan.wakes;
      const clean = untouched(plan, s);
      reapSlot(plan, s.tasks, keep);
      if (clean && plan.decisions.length + plan.wakes === mark) s.quietReap = inputs;
    }
    warmFacts(s, service, monitorMs, facts);
    if (s.quietRepair === inputs && s.quietReap === inputs) quietOnes++;
  }
  return quietOnes;
}

// ---------------------------------------------------------------------------------------- quiet slots
//
// The runner keeps unchanged slots between passes as the same objects (slot-cache.ts). A slot whose
// repair (3) and history rules (6) decided nothing and asked for no wake-up decides nothing again as
// long as it, the service, the history limit and the tuning are the same objects and the nodes of its
// own tasks are the same node objects: neither reads the clock on those paths (every time-based outcome
// asks for a wake-up, which makes the slot not quiet), nor any node but those of the slot's tasks. So a
// pass of a rolling update runs them only for the slots that changed: at 10,000 slots they were a third
// of the pass. And a node's change (Down, drained, a label) costs the slots of its tasks: compared as
// whole maps, one node marked Down made every slot of a 150,000-replica service be checked again. The
// updater (4) still sweeps every slot, since its counts span the service, but reads facts kept on the
// slot objects the same way (update.ts, "slot facts").
// The memo is written on the slot object (Slot.quietRepair / quietReap), the one thing a reconcile
// writes besides its plan; kept in a WeakMap instead, its 10,000 entries per pass cost more in garbage
// collection than they saved (bench:orchestrator: 28-37 against 14-15 ms per reconcile). A memo that
// still holds under a new nodes map is moved to this pass's inputs, so the next pass with the same map
// compares one reference.

/** What a quiet slot was found quiet with (one object per pass, or the last pass's: quietInputs). */
export interface QuietInputs {
  service: FService;
  nodes: ReconcileContext['nodes'];
  keep: number;
  tuning: ReconcileContext['tuning'];
}

/**
 * This pass's inputs: the object of the last pass of the same service object when nothing else changed,
 * so that a quiet slot is recognised by one comparison and its memo is not written again (150,000
 * writes per pass into long-lived slot objects, each through the garbage collector's write barrier).
 */
function quietInputs(service: FService, ctx: ReconcileContext, keep: number): QuietInputs {
  const last = lastInputs.get(service);
  if (last !== undefined && last.nodes === ctx.nodes && last.keep === keep && last.tuning === ctx.tuning) return last;
  const inputs: QuietInputs = { service, nodes: ctx.nodes, keep, tuning: ctx.tuning };
  lastInputs.set(service, inputs);
  return inputs;
}

const lastInputs = new WeakMap<FService, QuietInputs>();

/**
 * A memo `old` of slot `s` was found to hold under `inputs` (its tasks' nodes are the same objects in
 * both maps): every memo of the slot made with `old`'s nodes is moved to `inputs` at once, so the slot's
 * nodes are compared once per pass, not once per memo.
 */
function renew(s: Slot, old: QuietInputs, inputs: QuietInputs): void {
  s.quietRepair = inputs;
  if (s.quietReap === old) s.quietReap = inputs;
  const f = s.updateFacts;
  if (f !== undefined && f.service === inputs.service && f.nodes === old.nodes) f.nodes = inputs.nodes;
}

/** Does the memo `a` of slot `s` still hold with this pass's inputs `b`? */
function quiet(s: Slot, a: QuietInputs | undefined, b: QuietInputs): boolean {
  if (a === undefined) return false;
  if (a === b) return true;
  return a.service === b.service && a.keep === b.keep && a.tuning === b.tuning && sameNodesFor(s.tasks, a.nodes, b.nodes);
}

function untouched(plan: Plan, s: Slot): boolean {
  for (const t of s.tasks) if (plan.touchedTask(t)) return false;
  return true;
}
