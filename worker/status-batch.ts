// When an agent sends the task status reports it has buffered. Pure: states and clocks in, a delay out.
//
// Reports go in batches, at most one message per STATUS_BATCH_MS, so a node starting 50 tasks at once
// sends a few messages, not 200. Within that bound, a report the managers act on goes at the leading edge:
//
//   queued state            sent
//   accepted, preparing,    STATUS_BATCH_MS after it is queued (it only informs `task ls`), unless a
//   starting, …             report that acts goes first and takes it along
//   running                 at once, or when the last message is STATUS_BATCH_MS old: a rolling update
//                           moves on to its next slot only when it sees its new task running
//   complete, failed,       the same: the orchestrator refills the slot or restarts the task
//   shutdown, rejected, …
//
// Before, every report waited the full 20 ms; a stop-first slot waits for two reports (the old task's
// stop and the new one's running), so every slot of a rolling update paid ≈ 40 ms for nothing.
import { isTerminalTaskState, type TaskState } from '../api/objects.ts';

/** At most one status message per this many ms from one agent. */
export const STATUS_BATCH_MS = 20;

/** States the managers act on as soon as they see them. */
export function managersActOn(state: TaskState): boolean {
  return state === 'running' || isTerminalTaskState(state);
}

/** How long from `now` the buffer should go after a report of `state` is queued. */
export function statusSendDelay(state: TaskState, now: number, lastSentAt: number): number {
  return managersActOn(state) ? Math.max(0, lastSentAt + STATUS_BATCH_MS - now) : STATUS_BATCH_MS;
}
