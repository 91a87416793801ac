// Restart policy (`--restart-condition`, `--restart-delay`, `--restart-max-attempts`,
// `--restart-window`): whether the task at the head of a slot, which finished although it was desired
// to run, is replaced by a new task in the same slot, and when. Pure.
//
// * condition: 'any' (default) restarts after any exit; 'on-failure' only after a failure (failed,
//   rejected, or shut down / orphaned while it was meant to run), not after exit 0; 'none' never.
//   Job tasks are never restarted after completing, whatever the condition.
// * delay (default 5 s): the replacement is created when now >= finishedAt + delay. finishedAt is the
//   time the store recorded the final state (task.updatedAt, managers' clock, so a worker's skewed clock
//   cannot stretch the delay). Until then the finished task stays the slot's head, desired 'running';
//   the runner sets a timer for the moment. Nothing is created early with a "not before" field, so the
//   scheduler and the dispatcher need no special case.
// * maxAttempts (0 / absent = unlimited) within window (0 / absent = forever): the restarts already made
//   in the slot for the same spec version are counted from the slot's history — tasks told to stop after
//   they failed, were rejected or completed — that ended within the window before the head ended. When the count reaches
//   maxAttempts the head is left as it is: finished, still desired 'running', not replaced (the slot is
//   "parked") until the service's spec changes (`service update --force` retries it). The reaper keeps at
//   least maxAttempts history tasks per slot so the count survives history trimming.
//
// Not counted as restarts: replacements because a node was drained, went down or stopped satisfying the
// constraints, and replacements made by rolling updates. Those do not consult the policy at all.
import type { RestartPolicy } from '../../api/objects.ts';
import { stateSince, toldToStop } from './types.ts';
import type { FTask } from './types.ts';

export const DEFAULT_RESTART_DELAY_MS = 5_000;

export type RestartVerdict =
  /** Create the replacement at `at` (now or later). `attempt` counts from 1. */
  { restart: true; at: number; attempt: number } | { restart: false; reason: string };

export function policyOf(t: FTask): Readonly<RestartPolicy> {
  return t.spec.restartPolicy ?? { condition: 'any' };
}

/** Did this finished task end in failure (as opposed to exiting 0)? */
export function endedInFailure(t: FTask): boolean {
  return t.status.state !== 'complete';
}

/**
 * History tasks of the slot that count as restarts already made for `head`'s spec version: those that
 * ended within `windowMs` before the head itself ended. Measuring the window from the head's end (not
 * from now) makes the verdict a fixed fact about the store — it is made once, when the head finished,
 * as in Swarm — rather than something that flips when a reconcile happens to run later.
 */
export function restartsMade(head: FTask, slotTasks: readonly FTask[]): number {
  const p = policyOf(head);
  const windowMs = p.windowMs ?? 0;
  const end = stateSince(head);
  let n = 0;
  for (const t of slotTasks) {
    if (t.id === head.id || t.specVersion !== head.specVersion || !toldToStop(t)) continue;
    const s = t.status.state;
    if (s !== 'failed' && s !== 'rejected' && s !== 'complete') continue;
    if (windowMs > 0 && stateSince(t) < end - windowMs) continue;
    n++;
  }
  return n;
}

/**
 * The verdict for `head`, a task that finished although desired to run. `job`: the service is a job
 * (completion is final). `slotTasks`: every task of the slot (or node, for global services).
 */
export function restartVerdict(head: FTask, slotTasks: readonly FTask[], o: { job: boolean; now: number }): RestartVerdict {
  const p = policyOf(head);
  const failed = endedInFailure(head);
  if (!failed && o.job) return { restart: false, reason: 'job task completed' };
  if (p.condition === 'none') return { restart: false, reason: 'restart condition is none' };
  if (p.condition === 'on-failure' && !failed) return { restart: false, reason: 'exited 0 and the restart condition is on-failure' };
  const made = restartsMade(head, slotTasks);
  const max = p.maxAttempts ?? 0;
  if (max > 0 && made >= max) {
    const w = p.windowMs ? ` within ${p.windowMs} ms` : '';
    return { restart: false, reason: `restart policy: ${made} restarts${w} reached the maximum of ${max}` };
  }
  const delay = Math.max(0, p.delayMs ?? DEFAULT_RESTART_DELAY_MS);
  return { restart: true, at: stateSince(head) + delay, attempt: made + 1 };
}

/** A short description of how a task ended, for decision reasons. */
export function howItEnded(t: FTask): string {
  const bits: string[] = [t.status.state];
  if (t.status.exitCode !== undefined) bits.push(`exit ${t.status.exitCode}`);
  if (t.status.err) bits.push(t.status.err);
  else if (t.status.message && t.status.message !== t.status.state) bits.push(t.status.message);
  return bits.join(': ');
}
