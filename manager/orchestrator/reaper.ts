// Task history and clean-up (SwarmKit's task reaper). Pure; decisions go into the Plan.
//
// * History: per slot (replicated services and jobs) or per node (global services and jobs), the
//   newest N finished tasks that were told to stop are kept, older ones deleted. N = the cluster's
//   spec.taskHistoryLimit (default 5; negative keeps everything; 0 keeps none), raised to the restart
//   policy's maxAttempts when that is larger, so that restart counting (restart.ts) survives trimming.
//   The live head of a slot is never history, even when it finished (a parked slot, a completed job).
// * Removed tasks (desiredState 'remove': scaled down, service deleted) are deleted as soon as they
//   have stopped (or were never scheduled).
// * Orphans: a task told to stop whose node was removed is marked 'orphaned' at once; one whose node is
//   down, `orphanAfterMs` after the node went down (default 24 h, as Swarm). Orphaned is terminal, so
//   the history rules then reap it.
// * Tasks of a deleted service: all told 'remove', then deleted as above.
import { Plan, isFinished, ms, newestFirst, rank, toldToStop, tuningOf, wantsToRun } from './types.ts';
import type { FService, FTask, ReconcileContext, ReconcileResult } from './types.ts';

export const DEFAULT_TASK_HISTORY_LIMIT = 5;

/** History tasks kept per slot for this service. */
export function historyKeep(limit: number, service: FService | undefined): number {
  if (limit < 0) return Number.POSITIVE_INFINITY;
  const max = service?.spec.task.restartPolicy?.maxAttempts ?? 0;
  return Math.max(limit, max);
}

/** Marks tasks told to stop whose node is gone as orphaned (at once if removed, after the grace if down). */
function orphans(plan: Plan, tasks: readonly FTask[]): void {
  const ctx = plan.ctx;
  const grace = tuningOf(ctx).orphanAfterMs;
  for (const t of tasks) {
    if (!toldToStop(t) || t.nodeId === undefined || isFinished(t) || plan.touchedTask(t)) continue;
    if (rank(t.status.state) < rank('assigned')) continue;
    const n = ctx.nodes.get(t.nodeId);
    if (n === undefined) {
      plan.add(`task ${t.id} orphaned: node ${t.nodeId} was removed`, [plan.orphan(t, `node ${t.nodeId} was removed`)]);
    } else if (n.status.state === 'down') {
      const at = ms(n.updatedAt) + grace;
      if (ctx.now >= at)
        plan.add(`task ${t.id} orphaned: node ${t.nodeId} down since ${n.updatedAt}`, [plan.orphan(t, `node ${t.nodeId} has been down since ${n.updatedAt}`)]);
      else plan.wake(at);
    }
  }
}

/** Applies the history rules to one slot's (or node's) tasks. */
export function reapSlot(plan: Plan, tasks: readonly FTask[], keep: number): void {
  orphans(plan, tasks);
  const history: FTask[] = [];
  for (const t of tasks) {
    if (!isFinished(t) || wantsToRun(t) || plan.touchedTask(t)) continue;
    if (t.desiredState === 'remove') plan.add(`task ${t.id} deleted: removed and stopped`, [plan.delete(t)]);
    else history.push(t);
  }
  if (history.length <= keep) return;
  history.sort(newestFirst);
  const drop = history.slice(keep);
  plan.add(
    `history: ${drop.length} old task${drop.length === 1 ? '' : 's'} deleted (keeping ${keep})`,
    drop.map((t) => plan.delete(t)),
  );
}

/** Tasks of a service that no longer exists: told 'remove', deleted once stopped. */
export function reconcileDeleted(serviceId: string, tasks: readonly FTask[], ctx: ReconcileContext): ReconcileResult {
  const plan = new Plan(ctx);
  for (const t of tasks) {
    if (isFinished(t)) continue;
    const a = plan.stop(t, 'remove', `service ${serviceId} was removed`);
    if (a !== null) plan.add(`task ${t.id}: service ${serviceId} removed`, [a]);
  }
  // Finished tasks of any desired state go at once (history of a deleted service is not kept).
  const finished = tasks.filter((t) => isFinished(t) && !plan.touchedTask(t));
  if (finished.length > 0)
    plan.add(
      `service ${serviceId} removed: ${finished.length} finished tasks deleted`,
      finished.map((t) => plan.delete(t)),
    );
  orphans(plan, tasks);
  return plan.result();
}
