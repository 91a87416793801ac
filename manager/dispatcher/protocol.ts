// Messages of a worker session (one mutual-TLS WebSocket from each node's agent to the leader's
// dispatcher, JSON text frames). The node's identity is its certificate's CN, never a field here.

/** What an agent says about its node in `hello` (stored as the node object's description). */
export type NodeDescriptionMsg = NodeDescription;

import type { TaskAssignment, TaskStatusUpdate } from '../../worker/executor.ts';
import type { NodeDescription } from '../store/objects.ts';
import type { NetView } from '../../overlay-net/types.ts';

export interface ManagerAddr {
  id: string;
  addr: string; // host:port of the manager's secure port
}

export type AgentToManager =
  | { t: 'hello'; description: NodeDescriptionMsg }
  | { t: 'hb' }
  | { t: 'renew'; csr: string }
  /** The node now runs a manager (after promotion) listening at `advertise`: add it to Raft. */
  | { t: 'manager-up'; advertise: string }
  /** Task state changes observed on the node (batched). */
  | { t: 'status'; updates: TaskStatusUpdate[] }
  /** Log lines answering a 'logs' request (batched). */
  | { t: 'log'; req: string; lines: LogLine[] }
  /** A 'logs' request is finished (non-follow: all lines sent; follow: cancelled), or failed. */
  | { t: 'log-end'; req: string; error?: string }
  /** Answer to 'exec'; stdout/stderr base64. */
  | { t: 'exec-result'; req: string; exitCode?: number; stdout?: string; stderr?: string; error?: string }
  /** Resource usage of the node's running tasks (every few seconds). */
  | { t: 'usage'; at: number; tasks: Record<string, TaskUsage> };

export interface LogLine {
  taskId: string;
  /** ISO-8601 with sub-millisecond digits as the shim wrote them. */
  ts: string;
  stream: 'stdout' | 'stderr';
  line: string;
}

export interface LogRequestOptions {
  /** Last N lines of each task. */
  tail?: number;
  /** ISO-8601: only lines at or after. */
  since?: string;
  follow?: boolean;
}

export interface TaskUsage {
  /** Cumulative CPU time. */
  cpuNanos: number;
  memoryBytes: number;
}

export type ManagerToAgent =
  | { t: 'welcome'; nodeId: string; heartbeatPeriodMs: number; managers: ManagerAddr[]; role: 'manager' | 'worker' }
  | { t: 'hb'; heartbeatPeriodMs: number; managers: ManagerAddr[] }
  | { t: 'redirect'; leader: ManagerAddr | null; message: string }
  | { t: 'role'; role: 'manager' | 'worker' }
  /** Renew the node certificate now (rotation on demand, or a changed certificate lifetime). */
  | { t: 'renew-cert' }
  /** The complete set of tasks this node must run or stop (sent on every change). */
  | { t: 'assignments'; tasks: TaskAssignment[] }
  | { t: 'cert'; certPem: string; caCertPem: string; role: 'manager' | 'worker' }
  /** Send the logs of these tasks (answered with 'log' batches and one 'log-end'). */
  | ({ t: 'logs'; req: string; taskIds: string[] } & LogRequestOptions)
  | { t: 'logs-cancel'; req: string }
  /** Run a command inside a running task's container (answered with 'exec-result'). */
  | { t: 'exec'; req: string; taskId: string; args: string[]; timeoutMs: number }
  /** The overlay networks this node takes part in (sent on every change). */
  | { t: 'network'; view: NetView }
  | { t: 'error'; message: string };

export const DISPATCHER_PATH = '/dispatcher/v1';
