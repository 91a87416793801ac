// The agent's view of "something that runs tasks". The dispatcher sends the full set of tasks assigned
// to this node; the executor converges on it and reports every state change. Shoal's container engine
// (worker/engine) implements it for real; FakeExecutor runs no processes, so the real manager code can be
// driven by hundreds of simulated agents.
import type { NetworkAttachment, TaskState, TaskTemplate } from '../manager/store/objects.ts';

export interface TaskAssignment {
  id: string;
  serviceId: string;
  serviceName: string;
  slot?: number;
  spec: TaskTemplate;
  /** What the managers want: usually 'running'; 'shutdown' / 'remove' to stop it. */
  desiredState: TaskState;
  /** The last state the managers recorded for it. */
  state: TaskState;
  /** Overlay attachments allocated by the managers (addresses in CIDR form). */
  networks?: NetworkAttachment[];
  /** The image digest the managers pinned (`sha256:…`), when resolved. */
  imageDigest?: string;
}

export interface TaskStatusUpdate {
  taskId: string;
  state: TaskState;
  message: string;
  err?: string;
  exitCode?: number;
  /** ISO-8601 */
  timestamp: string;
}

/** A status report for a task, stamped now. */
export function statusUpdate(
  taskId: string,
  s: { state: TaskState; message: string; err?: string | undefined; exitCode?: number | undefined },
): TaskStatusUpdate {
  return {
    taskId,
    state: s.state,
    message: s.message,
    ...(s.err !== undefined ? { err: s.err } : {}),
    ...(s.exitCode !== undefined ? { exitCode: s.exitCode } : {}),
    timestamp: new Date().toISOString(),
  };
}

export interface Executor {
  /** The complete set of tasks assigned to this node; tasks no longer listed are forgotten. */
  reconcile(tasks: readonly TaskAssignment[]): void;
  onStatus(cb: (u: TaskStatusUpdate) => void): void;
  /** Current state of every task the executor knows (sent after a session (re)starts). */
  snapshot(): TaskStatusUpdate[];
  close(): Promise<void>;
}
