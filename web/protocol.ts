// What `shoal dashboard`'s server (cli/dashboard/) sends the page (web/) and accepts from it: slim views
// of the store's objects (only what a view shows: no environment, secrets references or certificates
// travel to the browser), the first snapshot and the deltas that follow it over Server-Sent Events, and
// the bodies of the four actions. Both sides import this file; nothing here runs.
import type { ClusterEvent } from '../api/events.ts';

export interface DashNode {
  id: string;
  hostname: string;
  role: 'manager' | 'worker';
  availability: 'active' | 'pause' | 'drain';
  /** ready | down | disconnected | unknown */
  state: string;
  message: string;
  addr: string;
  labels: Record<string, string>;
  nanoCpus: number;
  memoryBytes: number;
  /** Managers only: the live Raft view of the manager that answered. */
  manager: { leader: boolean; voter: boolean; reachability: string; addr: string } | null;
}

export interface DashPort {
  protocol: string;
  targetPort: number;
  publishedPort?: number;
  publishMode: string;
}

export interface DashService {
  id: string;
  name: string;
  image: string;
  /** replicated | global | replicated-job | global-job */
  mode: string;
  /** Replicas (or job completions) asked for; null for global modes. */
  desired: number | null;
  /** Tasks running that should run (computed from the tasks the dashboard holds). */
  running: number;
  ports: DashPort[];
  update: { state: string; message: string; startedAt?: string; completedAt?: string } | null;
  hasPrevious: boolean;
  /** The service's version: the compare-and-set token of an image update. */
  version: number;
  specVersion: number;
  updatedAt: string;
  createdAt: string;
  labels: Record<string, string>;
}

export interface DashTask {
  id: string;
  serviceId: string;
  serviceName: string;
  slot: number | null;
  nodeId: string | null;
  state: string;
  desiredState: string;
  message: string;
  err: string | null;
  timestamp: string;
  image: string;
  specVersion: number | null;
}

/** One manager's own answer to GET /v1/info (null fields: it did not answer). */
export interface DashRaft {
  addr: string;
  nodeId: string | null;
  role: string | null;
  leader: string | null;
  term: number | null;
  commit: number | null;
  applied: number | null;
  error: string | null;
}

/** Whether the server has a live event stream from the cluster (the page shows it in the header). */
export interface DashLink {
  state: 'live' | 'connecting' | 'down';
  message: string;
  /** ms since the epoch of the last state change. */
  since: number;
}

export interface Snapshot {
  clusterId: string;
  nodes: DashNode[];
  services: DashService[];
  tasks: DashTask[];
  raft: DashRaft[];
  events: ClusterEvent[];
  link: DashLink;
}

/**
 * A change since the snapshot (or the previous delta). `at` is the server's clock when it sent it;
 * `cause` is the seq of the cluster event that led to it, when there was one (the benchmark and the
 * tests use it to time store change → DOM).
 */
export interface Delta {
  at: number;
  cause?: string;
  nodes?: DashNode[];
  removeNodes?: string[];
  services?: DashService[];
  removeServices?: string[];
  tasks?: DashTask[];
  removeTasks?: string[];
  raft?: DashRaft[];
  events?: ClusterEvent[];
  link?: DashLink;
}

/** One sample of usage pushed on /api/usage (per task, as the leader last heard from its node). */
export interface UsageSample {
  at: number;
  tasks: Record<string, { cpuPercent: number | null; memoryBytes: number }>;
}

/** One log line pushed on /api/logs (already joined from partial chunks by the server). */
export interface LogLineOut {
  task: string;
  node: string;
  ts: string;
  stream: string;
  line: string;
}

/** What GET /api/session answers: the CSRF token POSTs must carry in the x-shoal-csrf header. */
export interface SessionInfo {
  csrf: string;
  context: string;
}

/** POST bodies. */
export interface ScaleBody {
  replicas: number;
}
export interface ImageBody {
  image: string;
}
export interface AvailabilityBody {
  availability: 'active' | 'pause' | 'drain';
}

/** The header a POST must carry, with SessionInfo.csrf. */
export const CSRF_HEADER = 'x-shoal-csrf';
/** The session cookie's name. */
export const SESSION_COOKIE = 'shoal_dash';
