// Global services: one live task per eligible node. Pure; see docs/design/orchestrator.md.
//
// Eligibility (as Swarm): a node keeps a task of the service while it is not down, not drained, and
// satisfies the service's placement constraints; it gets a task it never had only if it is also
// 'active' (paused nodes keep what they run, get nothing new). Nodes in state 'unknown' (joined, no
// session yet) are eligible: the task waits, bound to the node, until the scheduler can assign it.
//
// Tasks are created bound to their node (nodeId set) in state 'new' (the allocator moves them to 'pending'). The scheduler must only
// validate them (resources, ports) and move them to 'assigned'; it must not move them elsewhere.
//
// One pass: strays (tasks without a node) removed; per node: if the node no longer keeps tasks of the
// service, its live tasks are told to stop (nothing replaces them); else the slot is repaired (dead slot
// refilled on the same node, restart policy, extras); then the rolling update, then tasks for nodes
// that have none, then history per node.
import { acceptsNew, nodeKeeps } from './enforcer.ts';
import { historyKeep, reapSlot } from './reaper.ts';
import { repairSlot } from './repair.ts';
import { buildSlot, byNode, dirtyCheck } from './slots.ts';
import type { Slot } from './slots.ts';
import { planUpdate } from './update.ts';
import type { UpdateSlot } from './update.ts';
import { Plan, acts, isFinished, newTask } from './types.ts';
import type { FService, FTask, ReconcileContext, ReconcileResult } from './types.ts';

export interface GlobalOptions {
  /** Jobs: desiredState 'complete', completion final, no rolling update. */
  job: boolean;
  /** Tasks whose history is trimmed (default: `tasks`); jobs pass earlier iterations too. */
  reapTasks?: readonly FTask[];
}

/** Shared by global services and global jobs (jobs.ts). `tasks` are the tasks that count (current iteration for jobs). */
export function reconcileGlobalLike(plan: Plan, service: FService, tasks: readonly FTask[], o: GlobalOptions): void {
  const ctx = plan.ctx;
  const constraints = service.spec.task.placement?.constraints;
  const isDirty = o.job ? () => false : dirtyCheck(service, ctx.nodes);
  const { slots, strays } = byNode(tasks, isDirty);
  const desiredState = o.job ? 'complete' : 'running';

  for (const t of strays) {
    if (isFinished(t)) continue;
    plan.add(`task ${t.id} has no node: removed`, acts(plan.stop(t, 'remove', 'global task without a node')));
  }

  const updSlots: UpdateSlot[] = [];
  const nodeIds = new Set<string>([...ctx.nodes.keys(), ...slots.keys()]);
  for (const id of [...nodeIds].sort()) {
    const node = ctx.nodes.get(id);
    const s: Slot = slots.get(id) ?? buildSlot(`node:${id}`, [], isDirty, { nodeId: id });
    const whyNot = nodeKeeps(node, constraints);
    if (whyNot !== null) {
      const actions = acts(...s.live.map((t) => plan.stop(t, 'shutdown', whyNot)));
      plan.add(`node ${id}: ${s.live.length} task${s.live.length === 1 ? '' : 's'} stopped: ${whyNot}`, actions);
      continue;
    }
    if (o.job && s.tasks.some((t) => t.status.state === 'complete')) {
      // Job done on this node: retire anything else still live there.
      for (const t of s.live)
        if (t.status.state !== 'complete') plan.add(`node ${id}: job already completed`, acts(plan.stop(t, 'shutdown', 'job completed on this node')));
      continue;
    }
    if (s.tasks.length === 0 || s.removed) {
      if (acceptsNew(node, constraints)) {
        const t = newTask(service, ctx, { nodeId: id, desiredState });
        plan.add(`node ${id}: new task ${t.id}`, [{ type: 'create', task: t }]);
      }
      continue;
    }
    const replacement = () => newTask(service, ctx, { nodeId: id, desiredState });
    const cond = repairSlot(plan, s, { job: o.job, replacement, isDirty });
    updSlots.push({ slot: s, cond, replacement });
  }

  if (!o.job && planUpdate(plan, service, updSlots, { isDirty, ...(ctx.runningSince ? { runningSince: ctx.runningSince } : {}) }) === 'rollback') {
    return;
  }

  const keep = historyKeep(ctx.taskHistoryLimit, service);
  const reap = o.reapTasks === undefined ? slots : byNode(o.reapTasks, isDirty).slots;
  for (const s of reap.values()) reapSlot(plan, s.tasks, keep);
}

export function reconcileGlobal(service: FService, tasks: readonly FTask[], ctx: ReconcileContext): ReconcileResult {
  const plan = new Plan(ctx);
  reconcileGlobalLike(plan, service, tasks, { job: false });
  return plan.result();
}
