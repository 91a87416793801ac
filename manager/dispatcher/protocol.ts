// Messages of a worker session (one mutual-TLS WebSocket from each node's agent to the leader's
// dispatcher, JSON text frames). The node's identity is its certificate's CN, never a field here.

export interface NodeDescriptionMsg {
  hostname: string;
  platform: { os: string; arch: string };
  resources: { nanoCpus: number; memoryBytes: number };
  engineVersion: string;
  addr: string;
}

import type { TaskAssignment, TaskStatusUpdate } from '../../worker/executor.ts';

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
  | { t: 'status'; updates: TaskStatusUpdate[] };

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
  | { t: 'error'; message: string };

export const DISPATCHER_PATH = '/dispatcher/v1';
