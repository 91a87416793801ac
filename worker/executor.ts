// The agent's view of "something that runs tasks". The dispatcher sends the full set of tasks assigned
// to this node; the executor converges on it and reports every state change. Shoal's container engine
// (worker/engine) implements it for real; FakeExecutor runs no processes, so the real manager code can be
// driven by hundreds of simulated agents.
import type { TaskAssignment, TaskStatusUpdate } from '../api/task-status.ts';

export interface Executor {
  /** The complete set of tasks assigned to this node; tasks no longer listed are forgotten. */
  reconcile(tasks: readonly TaskAssignment[]): void;
  onStatus(cb: (u: TaskStatusUpdate) => void): void;
  /** Current state of every task the executor knows (sent after a session (re)starts). */
  snapshot(): TaskStatusUpdate[];
  close(): Promise<void>;
}
