// Messages of a worker session (one mutual-TLS WebSocket from each node's agent to the leader's
// dispatcher, JSON text frames). The node's identity is its certificate's CN, never a field here.

/** What an agent says about its node in `hello` (stored as the node object's description). */
export type NodeDescriptionMsg = NodeDescription;

import type { TaskAssignment, TaskStatusUpdate } from './task-status.ts';
import type { NodeDescription } from './objects.ts';
import type { NetView } from './netview.ts';
import type { AddrChange } from './netview-addrs.ts';

export interface ManagerAddr {
  id: string;
  addr: string; // host:port of the manager's secure port
}

/**
 * What an agent can do beyond the base protocol, named in its hello. A manager uses a feature only with
 * an agent that named it, so agents and managers of different versions work together.
 *   assignment-changes: after the full set of a session ('assignments'), the agent takes only what
 *   changed ('assignment-changes').
 *   netview-addr-changes: after the first view of a session, a view's node addresses come as what
 *   changed since the generation the agent has ('network' with `addrs`; api/netview-addrs.ts).
 */
export const AGENT_FEATURES = ['assignment-changes', 'netview-addr-changes'] as const;
export type AgentFeature = (typeof AGENT_FEATURES)[number];

export type AgentToManager =
  | { t: 'hello'; description: NodeDescriptionMsg; features?: string[] }
  | { t: 'hb' }
  | { t: 'renew'; csr: string }
  /** The node now runs a manager (after promotion) listening at `advertise`: add it to Raft. */
  | { t: 'manager-up'; advertise: string }
  /** Task state changes observed on the node (batched). */
  | { t: 'status'; updates: TaskStatusUpdate[] }
  /** Log chunks answering a 'logs' request, batched by bytes (≤ LOG_BATCH_BYTES; see api/log-chunk.ts). */
  | { t: 'log'; req: string; lines: LogLine[] }
  /**
   * With `taskId`: that task's part of a 'logs' request is finished (or failed), after `chunks` chunks
   * (the leader checks none was lost). Without: the whole
   * request is finished (non-follow: all lines sent; follow: cancelled), or failed.
   */
  | { t: 'log-end'; req: string; taskId?: string; error?: string; chunks?: number }
  /** A piece of an exec's output, in order (`seq` counts from 0 per request); `data` base64, ≤ EXEC_CHUNK_BYTES decoded. */
  | { t: 'exec-output'; req: string; stream: 'stdout' | 'stderr'; data: string; seq: number }
  /** The end of an 'exec' (after its `pieces` exec-output messages): the exit code, or why it could not run. */
  | { t: 'exec-result'; req: string; exitCode?: number; pieces?: number; error?: string }
  /** Resource usage of the node's running tasks (every few seconds). */
  | { t: 'usage'; at: number; tasks: Record<string, TaskUsage> }
  /** The node has programmed NetView `v` (or a later one) into its tables: stops held for it may go. */
  | { t: 'network-applied'; v: number };

export interface LogLine {
  taskId: string;
  /** ISO-8601 with sub-millisecond digits as the shim wrote them. */
  ts: string;
  stream: 'stdout' | 'stderr';
  /** At most LOG_CHUNK_BYTES (UTF-8). */
  line: string;
  /** More of the same line follows in the next chunk of this task (Docker's partial-log metadata). */
  partial?: true;
}

// Flow limits of logs and exec: every message stays far below the session's frame limit, and a node
// sends a request no more than a window of bytes ahead of what the leader has passed on to its client.
/** Longest piece of a log line in one LogLine (bytes of UTF-8; Docker also splits at 16 KiB). */
export const LOG_CHUNK_BYTES = 16 * 1024;
/** Largest 'log' message (bytes of JSON). */
export const LOG_BATCH_BYTES = 256 * 1024;
/** Bytes of one task's log a node may send ahead of the leader's 'logs-ack' (at most; see LOG_REQUEST_BUDGET). */
export const LOG_WINDOW_BYTES = 256 * 1024;
/** The smallest window: two chunks, so a node always makes progress. */
export const LOG_MIN_WINDOW_BYTES = 2 * (LOG_CHUNK_BYTES + 64);
/** What one logs request may have outstanding over all its tasks: a service with many tasks gets smaller windows. */
export const LOG_REQUEST_BUDGET = 64 * 1024 * 1024;

/** The per-task window of a logs request over `tasks` tasks. */
export function logWindowFor(tasks: number): number {
  return Math.max(LOG_MIN_WINDOW_BYTES, Math.min(LOG_WINDOW_BYTES, Math.floor(LOG_REQUEST_BUDGET / Math.max(1, tasks))));
}
/** Largest decoded `data` of one 'exec-output'. */
export const EXEC_CHUNK_BYTES = 64 * 1024;
/** Decoded exec output bytes a node may send ahead of the leader's 'exec-ack'. */
export const EXEC_WINDOW_BYTES = 1024 * 1024;

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
  /**
   * `reconnectSpreadMs`, in a large cluster only: when the session's manager is gone, redial after a
   * random part of this (not of one heartbeat period), and back off up to a quarter of it while no
   * leader is known. Absent or 0: the heartbeat period, as before.
   */
  | { t: 'welcome'; nodeId: string; heartbeatPeriodMs: number; managers: ManagerAddr[]; role: 'manager' | 'worker'; reconnectSpreadMs?: number }
  | { t: 'hb'; heartbeatPeriodMs: number; managers: ManagerAddr[]; reconnectSpreadMs?: number }
  | { t: 'redirect'; leader: ManagerAddr | null; message: string }
  | { t: 'role'; role: 'manager' | 'worker' }
  /** Renew the node certificate now (rotation on demand, or a changed certificate lifetime). */
  | { t: 'renew-cert' }
  /** The complete set of tasks this node must run or stop (the first of a session; on every change to an agent without 'assignment-changes'). */
  | { t: 'assignments'; tasks: TaskAssignment[] }
  /**
   * What changed in that set since the last message of this session: tasks added or changed (whole), and
   * the ids of tasks no longer in it. Only to an agent whose hello named 'assignment-changes'.
   */
  | { t: 'assignment-changes'; set: TaskAssignment[]; remove: string[] }
  | { t: 'cert'; certPem: string; caCertPem: string; role: 'manager' | 'worker' }
  /** Send the logs of these tasks (answered with 'log' batches and one 'log-end'). */
  /** `window`: bytes of each task the node may send ahead of 'logs-ack' (default LOG_WINDOW_BYTES). */
  | ({ t: 'logs'; req: string; taskIds: string[]; window?: number } & LogRequestOptions)
  | { t: 'logs-cancel'; req: string }
  /** The leader passed on `bytes` (as counted by logChunkCost) of this task's log: the node may send more. */
  | { t: 'logs-ack'; req: string; taskId: string; bytes: number }
  /** Run a command inside a running task's container (answered with 'exec-output' pieces and one 'exec-result'). */
  | { t: 'exec'; req: string; taskId: string; args: string[]; timeoutMs: number }
  /** The leader passed on `bytes` of decoded exec output: the node may send more. */
  | { t: 'exec-ack'; req: string; bytes: number }
  /**
   * The overlay networks this node takes part in (sent on every change). `v` numbers the views sent to
   * this node (growing across its sessions): the node answers 'network-applied' once it has programmed it.
   */
  | {
      t: 'network';
      view: NetView;
      v?: number;
      /** With view.nodeAddrs: the generation of that list (an agent that takes changes keeps it). */
      addrsGen?: number;
      /** Instead of view.nodeAddrs, to an agent that named 'netview-addr-changes': what changed since its generation. */
      addrs?: AddrChange;
    }
  /**
   * Secret and config data the node's assigned tasks reference (sent before the assignments that need
   * it, once per session; see dispatcher/secret-delivery.ts), and the ones no task needs any more. The
   * node keeps them in memory only.
   */
  | { t: 'files'; set: FileData[]; remove: { kind: 'secret' | 'config'; id: string }[] }
  | { t: 'error'; message: string };

export const DISPATCHER_PATH = '/dispatcher/v1';

/**
 * The TLS server name (SNI) an agent sends: a manager holds these handshakes behind everything else's
 * when many arrive at once (daemon/handshake-admission.ts). `.invalid` is reserved (RFC 2606): nobody's
 * real host name.
 */
export const AGENT_SERVER_NAME = 'agent.shoal.invalid';

/** How long an agent waits at least for its TLS and WebSocket handshake with a manager (worker/reconnect.ts: longer in a large cluster). */
export const AGENT_HANDSHAKE_TIMEOUT_MS = 3000;

/** One secret's or config's contents on its way to a node: base64, decrypted for the node. */
export interface FileData {
  kind: 'secret' | 'config';
  id: string;
  data: string;
}
