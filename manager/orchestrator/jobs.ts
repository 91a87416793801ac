// Jobs: replicated jobs (run `totalCompletions` tasks to completion, at most `maxConcurrent` at a time)
// and global jobs (run once on every eligible node, including nodes that join later). Pure; see
// docs/design/orchestrator.md.
//
// * Job tasks are created with desiredState 'complete' (Swarm's convention): "run this to completion".
//   Workers must treat it like 'running' — only 'shutdown' / 'remove' mean stop.
// * A completed task is final: never restarted, whatever the restart condition. A failed one follows the
//   restart policy (condition 'any' behaves like 'on-failure'); when the policy gives up, that slot stays
//   failed and the job cannot complete until it is re-run.
// * Iterations: the job's iteration is its specVersion. Changing the spec in a way that bumps it re-runs
//   the job: tasks of earlier versions still live are told to stop, and completions are counted again
//   from zero. (Changing totalCompletions alone — `service scale` — continues the current run.)
// * Slots: replicated jobs use slots 1..totalCompletions, one completion each; new tasks go to the
//   lowest slots not started yet. maxConcurrent 0 means totalCompletions.
// * Rolling updates do not apply to jobs.
import { nodeKeeps } from './enforcer.ts';
import { reconcileGlobalLike } from './global.ts';
import { historyKeep, reapSlot } from './reaper.ts';
import { repairSlot } from './repair.ts';
import { bySlotNumber } from './slots.ts';
import { Plan, acts, isFinished, newTask, wantsToRun } from './types.ts';
import type { FNode, FService, FTask, ReconcileContext, ReconcileResult } from './types.ts';

/** Tells live tasks of earlier iterations to stop. Returns the tasks of the current iteration. */
function retireOldIterations(plan: Plan, service: FService, tasks: readonly FTask[]): FTask[] {
  const cur: FTask[] = [];
  for (const t of tasks) {
    if (t.specVersion === service.specVersion) {
      cur.push(t);
      continue;
    }
    if (wantsToRun(t)) plan.add(`task ${t.id}: job re-run at spec version ${service.specVersion}`, acts(plan.stop(t, 'shutdown', 'job re-run')));
  }
  return cur;
}

export function jobSizes(service: FService): { total: number; maxConcurrent: number } {
  const m = service.spec.mode;
  if (!('replicatedJob' in m)) return { total: 0, maxConcurrent: 0 };
  const total = Math.max(0, Math.floor(m.replicatedJob.totalCompletions));
  const mc = Math.floor(m.replicatedJob.maxConcurrent);
  return { total, maxConcurrent: mc > 0 ? mc : total };
}

export function reconcileReplicatedJob(service: FService, tasks: readonly FTask[], ctx: ReconcileContext): ReconcileResult {
  const plan = new Plan(ctx);
  const cur = retireOldIterations(plan, service, tasks);
  const { total, maxConcurrent } = jobSizes(service);
  const noDirty = () => false;
  const { slots, strays } = bySlotNumber(cur, noDirty);
  for (const t of strays) if (!isFinished(t)) plan.add(`task ${t.id} has no slot: removed`, acts(plan.stop(t, 'remove', 'task has no slot')));

  // Slots outside 1..total (totalCompletions lowered): removed.
  for (const s of slots.values()) {
    if (s.slot! >= 1 && s.slot! <= total) continue;
    const actions = acts(...s.tasks.map((t) => (isFinished(t) ? plan.delete(t) : plan.stop(t, 'remove', `job scaled to ${total} completions`))));
    plan.add(`job scaled to ${total}: slot ${s.slot} removed`, actions);
  }

  let active = 0;
  const notStarted: number[] = [];
  for (let n = 1; n <= total; n++) {
    const s = slots.get(n);
    if (s === undefined || s.removed) {
      notStarted.push(n);
      continue;
    }
    const completed = s.tasks.find((t) => t.status.state === 'complete');
    if (completed !== undefined) {
      for (const t of s.live)
        if (t !== completed && !isFinished(t)) plan.add(`slot ${n}: already completed`, acts(plan.stop(t, 'shutdown', 'slot already completed')));
      continue;
    }
    const cond = repairSlot(plan, s, {
      job: true,
      isDirty: noDirty,
      replacement: () => newTask(service, ctx, { slot: n, desiredState: 'complete' }),
    });
    if (cond !== 'parked' && cond !== 'empty') active++;
  }
  for (const n of notStarted) {
    if (active >= maxConcurrent) break;
    const t = newTask(service, ctx, { slot: n, desiredState: 'complete' });
    plan.add(`job: slot ${n} new task ${t.id}`, [{ type: 'create', task: t }]);
    active++;
  }

  const keep = historyKeep(ctx.taskHistoryLimit, service);
  for (const s of bySlotNumber(tasks, noDirty).slots.values()) reapSlot(plan, s.tasks, keep);
  return plan.result();
}

export function reconcileGlobalJob(service: FService, tasks: readonly FTask[], ctx: ReconcileContext): ReconcileResult {
  const plan = new Plan(ctx);
  const cur = retireOldIterations(plan, service, tasks);
  reconcileGlobalLike(plan, service, cur, { job: true, reapTasks: tasks });
  return plan.result();
}

export interface JobProgress {
  /** Completions needed: totalCompletions, or the number of eligible nodes for a global job. */
  total: number;
  completed: number;
  /** Tasks of this iteration not finished yet. */
  running: number;
  /** Slots / nodes whose task failed and will not be restarted, or is waiting to be. */
  failed: number;
  /** Every completion reached. */
  done: boolean;
}

/**
 * Progress of a job's current iteration (for `service ls/ps`). For global jobs `nodes` decides which
 * nodes count (not down, not drained, constraints satisfied).
 */
export function jobProgress(service: FService, tasks: readonly FTask[], nodes?: ReadonlyMap<string, FNode>): JobProgress {
  const cur = tasks.filter((t) => t.specVersion === service.specVersion);
  const m = service.spec.mode;
  const running = cur.filter((t) => !isFinished(t) && wantsToRun(t)).length;
  if ('replicatedJob' in m) {
    const { total } = jobSizes(service);
    const done = new Set<number>();
    const failedSlots = new Set<number>();
    for (const t of cur) {
      if (t.slot === undefined || t.slot < 1 || t.slot > total) continue;
      if (t.status.state === 'complete') done.add(t.slot);
    }
    for (const t of cur) {
      if (t.slot === undefined || done.has(t.slot) || !wantsToRun(t) || !isFinished(t)) continue;
      failedSlots.add(t.slot);
    }
    return { total, completed: done.size, running, failed: failedSlots.size, done: done.size >= total };
  }
  const constraints = service.spec.task.placement?.constraints;
  const eligible = [...(nodes?.values() ?? [])].filter((n) => nodeKeeps(n, constraints) === null).map((n) => n.id);
  const doneNodes = new Set(cur.filter((t) => t.status.state === 'complete' && t.nodeId !== undefined).map((t) => t.nodeId!));
  const failedNodes = new Set(cur.filter((t) => t.nodeId !== undefined && !doneNodes.has(t.nodeId) && wantsToRun(t) && isFinished(t)).map((t) => t.nodeId!));
  const completed = eligible.filter((id) => doneNodes.has(id)).length;
  return { total: eligible.length, completed, running, failed: failedNodes.size, done: completed >= eligible.length };
}
