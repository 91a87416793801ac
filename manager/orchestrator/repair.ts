// Per-slot repairs shared by every mode: refill a dead slot once its old task stopped, retire extra live
// tasks, move a task off a node that no longer fits it (enforcer), and apply the restart policy to a
// head that finished although it was desired to run. Pure; decisions go into the Plan.
import { placementProblem } from './enforcer.ts';
import { howItEnded, restartVerdict } from './restart.ts';
import { slotName } from './slots.ts';
import type { Slot } from './slots.ts';
import { acts, isFinished, isRunning, isStopped, stopDeadline } from './types.ts';
import type { Draft, Task } from '../../api/objects.ts';
import type { FTask, Plan } from './types.ts';

/**
 * What repairSlot left the slot as:
 *   busy     it wrote something for this slot in this pass (the updater leaves it alone)
 *   pending  the head finished and will be restarted at a later time (`at`)
 *   parked   the head finished and will not be restarted (policy), or a job task completed
 *   ok       the head is alive (pending … running)
 *   empty    no tasks at all
 */
export type SlotCondition = 'busy' | 'pending' | 'parked' | 'ok' | 'empty';

export interface RepairOptions {
  /** Job semantics: a completed task is final. */
  job: boolean;
  /** A new task for this slot, or null when this slot must not get one (e.g. its node left). */
  replacement: () => Draft<Task> | null;
  isDirty: (t: FTask) => boolean;
}

export function repairSlot(plan: Plan, s: Slot, o: RepairOptions): SlotCondition {
  const ctx = plan.ctx;
  if (s.tasks.length === 0 || s.removed) return 'empty';

  if (s.dead) {
    // Told to stop without a replacement (stop-first update, or another component). Refill once stopped.
    const stopping = s.tasks.filter((t) => !isStopped(t, ctx));
    if (stopping.length > 0) {
      for (const t of stopping) plan.wake(stopDeadline(t, ctx));
      return 'busy';
    }
    const r = o.replacement();
    if (r !== null) plan.add(`${slotName(s)}: new task ${r.id} replaces stopped task ${s.tasks[0]!.id}`, [{ type: 'create', task: r }]);
    return 'busy';
  }

  const head = s.head!;
  // Extra live tasks: the old task of a start-first update retires once the new head runs; duplicates
  // on the current spec, finished extras and extras whose node no longer fits them retire at once.
  for (const x of s.extras) {
    let why: string | null = null;
    if (isRunning(head)) why = `superseded by task ${head.id}`;
    else if (isFinished(x)) why = `finished (${howItEnded(x)})`;
    else if (!o.isDirty(x)) why = `duplicate of task ${head.id}`;
    else why = placementProblem(x, ctx.nodes);
    if (why !== null) plan.add(`${slotName(s)}: task ${x.id} stopped: ${why}`, acts(plan.stop(x, 'shutdown', why)));
  }

  if (!isFinished(head)) {
    const problem = placementProblem(head, ctx.nodes);
    if (problem === null) return 'ok';
    const r = o.replacement();
    plan.add(
      `${slotName(s)}: task ${head.id} moved: ${problem}${r ? `; new task ${r.id}` : ''}`,
      acts(plan.stop(head, 'shutdown', problem), r ? { type: 'create', task: r } : null),
    );
    return 'busy';
  }

  const v = restartVerdict(head, s.tasks, { job: o.job, now: ctx.now });
  if (!v.restart) return 'parked';
  if (v.at > ctx.now) {
    plan.wake(v.at);
    return 'pending';
  }
  const r = o.replacement();
  plan.add(
    `${slotName(s)}: task ${head.id} ${howItEnded(head)}; ${r ? `restart #${v.attempt} as task ${r.id}` : 'not restarted here'}`,
    acts(plan.stop(head, 'shutdown', 'restarted'), r ? { type: 'create', task: r } : null),
  );
  return 'busy';
}
