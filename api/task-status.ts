// What crosses the dispatcher session about one task: the assignment a manager sends to a node and the
// status the node's executor reports back. Shared by the manager (dispatcher) and the worker (agent,
// executors), so it lives below both.
import type { NetworkAttachment, TaskState, TaskTemplate } from './objects.ts';

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
