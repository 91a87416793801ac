// The object model of Shoal's replicated store: plain JSON data, nothing else (no classes, Dates, Maps,
// undefined inside arrays, NaN). Every object has the same envelope:
//
//   { id, kind, version, createdAt, updatedAt, spec, status, ... }
//
// * `spec` is what a user (or the API) asked for; `status` is what the system observed. Reconcilers
//   compare the two and write the difference back through the store.
// * `version` is the Raft index of the entry that last wrote the object. The store assigns it, together
//   with createdAt / updatedAt (taken from the proposing transaction's clock, never from the applier's,
//   so every manager computes the same bytes); values supplied by callers for these three are ignored.
// * Objects handed out by the store are deep-frozen (see Frozen / mutable below).
//
// The shapes follow Docker Swarm's (swarmkit api/objects.proto) where that is useful, simplified.

/** Every kind of object the store holds. */
export type Kind = 'cluster' | 'node' | 'service' | 'task' | 'network' | 'secret' | 'config';
export const KINDS: readonly Kind[] = ['cluster', 'node', 'service', 'task', 'network', 'secret', 'config'];

/**
 * Kinds that can be looked up by name (services, networks, secrets and configs by spec.name, unique per
 * kind; nodes by hostname).
 */
export type NamedKind = 'service' | 'network' | 'node' | 'secret' | 'config';

/** The singleton cluster object's id. */
export const CLUSTER_ID = 'cluster';

export interface ObjectMeta<K extends Kind> {
  id: string;
  kind: K;
  /** Raft index of the entry that last wrote this object (0 while only pending in a transaction). */
  version: number;
  /** ISO-8601, from the proposing transaction. */
  createdAt: string;
  /** ISO-8601, from the proposing transaction. */
  updatedAt: string;
}

// ------------------------------------------------------------------------------------------------ tasks

/**
 * Task lifecycle, in order. A task only ever moves forward (see taskStateRank); the states from COMPLETE
 * on are terminal. `desiredState` uses the same vocabulary (usually RUNNING, COMPLETE, SHUTDOWN or REMOVE).
 */
export const TaskState = {
  New: 'new',
  Pending: 'pending',
  Assigned: 'assigned',
  Accepted: 'accepted',
  Preparing: 'preparing',
  Starting: 'starting',
  Running: 'running',
  Complete: 'complete',
  Shutdown: 'shutdown',
  Failed: 'failed',
  Rejected: 'rejected',
  Remove: 'remove',
  Orphaned: 'orphaned',
} as const;
export type TaskState = (typeof TaskState)[keyof typeof TaskState];

/** All task states in lifecycle order. */
export const TASK_STATES: readonly TaskState[] = [
  'new',
  'pending',
  'assigned',
  'accepted',
  'preparing',
  'starting',
  'running',
  'complete',
  'shutdown',
  'failed',
  'rejected',
  'remove',
  'orphaned',
];

const TASK_STATE_RANK: ReadonlyMap<string, number> = new Map(TASK_STATES.map((s, i) => [s, i]));

/** Position of `state` in the lifecycle (NEW = 0 … ORPHANED = 12). Throws on an unknown state. */
export function taskStateRank(state: TaskState): number {
  const r = TASK_STATE_RANK.get(state);
  if (r === undefined) throw new RangeError(`unknown task state ${String(state)}`);
  return r;
}

/** True for states from COMPLETE on: the task will never run (again). */
export function isTerminalTaskState(state: TaskState): boolean {
  return taskStateRank(state) >= taskStateRank('complete');
}

// ---------------------------------------------------------------------------------------------- cluster

export interface ClusterSpec {
  name: string;
  raft: { snapshotEvery: number; keepEntries: number };
  dispatcher: { heartbeatPeriodMs: number };
  caConfig: { nodeCertValidityMs: number };
  /** Terminated tasks kept per slot (or per node for global services). */
  taskHistoryLimit: number;
  /** Pool the allocator carves overlay subnets from, `size` = prefix length of each subnet. */
  defaultAddressPool: { cidr: string; size: number };
  /**
   * What the store and the control API refuse to go past (manager/store/limits.ts). Absent in clusters
   * created before limits existed: readers use limitsOf(), which fills in DEFAULT_LIMITS.
   */
  limits?: ClusterLimits;
}

/**
 * Cluster-wide limits, each adjustable with `shoal cluster update --max-…`. They exist so that one request
 * (`service scale web=1000000000`, a 100 MB label) is refused with a 4xx naming the setting instead of
 * being attempted and taking the managers' memory and Raft log with it.
 */
export interface ClusterLimits {
  /** Replicas (or job completions, or concurrent job tasks) of one service. */
  maxReplicas: number;
  /** Task objects in the store, terminated ones kept as history included. */
  maxTasks: number;
  /** Bytes of one stored object, encoded as JSON (without version and timestamps). */
  maxObjectBytes: number;
  /** Entries in one labels map (a service's, its task template's, a node's, a network's). */
  maxLabels: number;
  /** UTF-8 bytes of one label key. */
  maxLabelKeyBytes: number;
  /** UTF-8 bytes of one label value. */
  maxLabelValueBytes: number;
  /** Characters of a service or network name or a node hostname. */
  maxNameLength: number;
}

/**
 * Defaults: far above what a working cluster needs, low enough that the largest allowed request still
 * fits in the managers' memory and in one Raft entry. 250,000 tasks (history included, up to six per
 * slot) leaves room for SwarmKit's published 100,000-task scale at a few hundred MB per manager; 1 MiB
 * per object holds a secret or config of Swarm's 500 KiB limit once base64-encoded and sealed (≈ 680 KiB
 * stored); 255 characters is the longest DNS name.
 */
export const DEFAULT_LIMITS: Readonly<ClusterLimits> = Object.freeze({
  maxReplicas: 10_000,
  maxTasks: 250_000,
  maxObjectBytes: 1024 * 1024,
  maxLabels: 128,
  maxLabelKeyBytes: 256,
  maxLabelValueBytes: 4096,
  maxNameLength: 255,
});

/** Reserved: the cluster has no observed status yet. */
export type ClusterStatus = Record<string, never>;

export interface Cluster extends ObjectMeta<'cluster'> {
  spec: ClusterSpec;
  status: ClusterStatus;
  /** Root CA material. The key is replicated (every manager can sign), as in Swarm. */
  rootCa: RootCa;
  joinTokens: { worker: string; manager: string };
  /**
   * Nodes that were removed and certificates that were revoked: refused on every connection.
   * `demotedSerials`: manager certificates of demoted nodes, refused except on the dispatcher.
   */
  denyList: { removedNodes: string[]; revokedSerials: string[]; demotedSerials?: string[] };
  /** Admin (CLI) certificates the managers issued (manager/ca/revocation.ts AdminRecord). */
  admins?: AdminCertRecord[];
  /** Autolock: the unlock key (present only while autolock is on). */
  unlockKey?: string;
}

/** The cluster's root CA and, while one runs, its rotation (manager/ca/rotation.ts, docs/design/ca.md). */
export interface RootCa {
  /** The trust anchor: the root every node trusts. */
  caCertPem: string;
  caKeyPem: string;
  /**
   * Intermediates served after every certificate this root issues: the cross-signed copy of this root
   * from the previous one, kept after a rotation so nodes that still trust the old root verify peers.
   */
  chainPem?: string;
  /** A root rotation in progress: new certificates are issued by `newCertPem`'s key. */
  rotation?: RootRotation;
  /** When the last rotation completed (ISO-8601). */
  lastRotatedAt?: string;
}

export interface RootRotation {
  newCertPem: string;
  newKeyPem: string;
  /** The new root's subject and key, issued by the current root: the link old trust follows. */
  crossSignedPem: string;
  /** ISO-8601. */
  startedAt: string;
  /** The operator supplied the new root (`cluster ca --rotate --cert --key`). */
  external: boolean;
}

/** An admin certificate record (manager/ca/revocation.ts). */
export interface AdminCertRecord {
  name: string;
  serial: string;
  /** ISO-8601. */
  notAfter: string;
  issuedAt: string;
  revoked: boolean;
  /** Earlier certificates of this admin (renewals), still valid until they expire. */
  history?: { serial: string; notAfter: string }[];
  /** sha256 of the root that issued the current certificate (absent: issued before rotations existed). */
  issuer?: string;
}

export function defaultClusterSpec(name = 'default'): ClusterSpec {
  return {
    name,
    raft: { snapshotEvery: 10_000, keepEntries: 5_000 },
    dispatcher: { heartbeatPeriodMs: 1_000 },
    caConfig: { nodeCertValidityMs: 90 * 24 * 3600 * 1000 },
    taskHistoryLimit: 5,
    defaultAddressPool: { cidr: '10.10.0.0/16', size: 24 },
    limits: { ...DEFAULT_LIMITS },
  };
}

// ------------------------------------------------------------------------------------------------ nodes

export type NodeRole = 'manager' | 'worker';
export type NodeAvailability = 'active' | 'pause' | 'drain';
export type NodeStateName = 'unknown' | 'ready' | 'down' | 'disconnected';

export interface NodeSpec {
  labels: Record<string, string>;
  availability: NodeAvailability;
  /** Desired role; the certificate's role follows once renewed. */
  role: NodeRole;
}

export interface NodeDescription {
  hostname: string;
  platform: { os: string; arch: string };
  resources: { nanoCpus: number; memoryBytes: number };
  engineVersion: string;
  addr: string;
}

export interface NodeStatus {
  state: NodeStateName;
  message: string;
  /** ISO-8601 time of the last heartbeat the dispatcher recorded. */
  lastHeartbeat?: string;
  /** Address the node was last seen from. */
  addr: string;
}

export interface ManagerStatus {
  raftId: string;
  addr: string;
  leader: boolean;
  reachability: 'reachable' | 'unreachable' | 'unknown';
}

export interface NodeCertificate {
  serial: string;
  /** ISO-8601. */
  notAfter: string;
  role: NodeRole;
  /** Earlier unexpired certificates of the node (renewals), so revocation can name them all. */
  history?: { serial: string; notAfter: string; role: NodeRole }[];
  /** sha256 (hex) of the root CA certificate whose key issued the current certificate (root rotation). */
  issuer?: string;
  /** sha256 (hex) of the root handed to the node with it, as its trust anchor (root rotation). */
  anchor?: string;
  /**
   * sha256 (hex) of the root whose key issued the certificate the node's latest dispatcher session was
   * opened with (written at its hello): what the node holds, as opposed to what was sent to it. A root
   * rotation completes on this, so a renewal answer lost on the way cannot strand a node.
   */
  presented?: string;
}

/** A node's own address on a network (today only the ingress network: the routing mesh's source address). */
export interface NodeNetworkAttachment {
  networkId: string;
  /** CIDR form, e.g. 10.255.0.3/16. */
  addr: string;
}

export interface Node extends ObjectMeta<'node'> {
  spec: NodeSpec;
  description: NodeDescription;
  status: NodeStatus;
  managerStatus?: ManagerStatus;
  certificate?: NodeCertificate;
  /** Written by the allocator (manager/allocator): the node's address on the ingress network. */
  attachments?: NodeNetworkAttachment[];
}

// --------------------------------------------------------------------------------------------- services

export type ServiceMode =
  | { replicated: { replicas: number } }
  | { global: Record<string, never> }
  | { replicatedJob: { maxConcurrent: number; totalCompletions: number } }
  | { globalJob: Record<string, never> };

export interface Mount {
  type: 'bind' | 'volume' | 'tmpfs';
  source?: string;
  target: string;
  readOnly?: boolean;
  /** tmpfs only: size limit in bytes. */
  tmpfsSizeBytes?: number;
}

export interface ResourceAmounts {
  nanoCpus?: number;
  memoryBytes?: number;
  /** Limits only: maximum number of processes. */
  pids?: number;
}

export interface RestartPolicy {
  condition: 'none' | 'on-failure' | 'any';
  delayMs?: number;
  /** 0 or absent = unlimited. */
  maxAttempts?: number;
  windowMs?: number;
}

export interface Placement {
  /** e.g. `node.role==manager`, `node.labels.zone!=a`. */
  constraints?: string[];
  preferences?: { spread: string }[];
  maxReplicas?: number;
  /** Platforms the image runs on (Docker's Placement.Platforms): a node must match one; absent = any. */
  platforms?: { os?: string; arch?: string }[];
}

export interface HealthCheck {
  test: string[];
  intervalMs?: number;
  timeoutMs?: number;
  retries?: number;
  startPeriodMs?: number;
}

/** The task template: what every task of a service runs. Copied into each task's spec. */
export interface TaskTemplate {
  image: string;
  command?: string[];
  args?: string[];
  /** `KEY=value` strings. */
  env?: string[];
  workdir?: string;
  user?: string;
  hostname?: string;
  labels?: Record<string, string>;
  mounts?: Mount[];
  resources?: { limits?: ResourceAmounts; reservations?: ResourceAmounts };
  restartPolicy?: RestartPolicy;
  placement?: Placement;
  healthcheck?: HealthCheck;
  stopSignal?: string;
  stopGracePeriodMs?: number;
  /** Bumped to force a rolling restart without another change (`service update --force`). */
  forceUpdate?: number;
  /** Secrets mounted under /run/secrets (Docker's ContainerSpec.Secrets). */
  secrets?: SecretReference[];
  /** Configs mounted as read-only files (Docker's ContainerSpec.Configs). */
  configs?: ConfigReference[];
  /** Capabilities added to / dropped from Docker's default set: `CAP_NET_ADMIN`, or `ALL`. */
  capabilityAdd?: string[];
  capabilityDrop?: string[];
  /** The root filesystem is read-only (`--read-only`). */
  readOnly?: boolean;
  /** Namespaced kernel settings (`--sysctl net.ipv4.ip_forward=1`). */
  sysctls?: Record<string, string>;
  /** Resource limits (`--ulimit nofile=1024:2048`); -1 means unlimited. */
  ulimits?: { name: string; soft: number; hard: number }[];
  /** A small reaper runs as PID 1 and the command as its child (`--init`). */
  init?: boolean;
  /** Seccomp: absent = Shoal's default allowlist; unconfined; or a Docker JSON profile's text. */
  seccomp?: { mode: 'unconfined' } | { mode: 'custom'; profile: string };
}

/** Where a secret or config appears in the container, and as whom. */
export interface FileTarget {
  /** Secrets: a name under /run/secrets (or an absolute path under it). Configs: an absolute path. */
  name: string;
  uid: string;
  gid: string;
  /** Permission bits, e.g. 0o444 (292). */
  mode: number;
}

/** A task's use of a secret: the id is what the worker is sent; the name is kept for display. */
export interface SecretReference {
  secretId: string;
  secretName: string;
  target: FileTarget;
}

export interface ConfigReference {
  configId: string;
  configName: string;
  target: FileTarget;
}

export interface UpdateConfig {
  parallelism: number;
  delayMs: number;
  failureAction: 'pause' | 'continue' | 'rollback';
  monitorMs: number;
  maxFailureRatio: number;
  order: 'stop-first' | 'start-first';
}

export interface NetworkAttachmentConfig {
  /** Network id or name. */
  target: string;
  aliases?: string[];
}

export interface PortConfig {
  name?: string;
  protocol: 'tcp' | 'udp' | 'sctp';
  targetPort: number;
  /** Absent = allocated from the dynamic range. */
  publishedPort?: number;
  publishMode: 'ingress' | 'host';
}

export interface EndpointSpec {
  mode?: 'vip' | 'dnsrr';
  ports: PortConfig[];
}

/**
 * Autoscaling of a replicated service (manager/autoscale, docs/design/autoscaling.md): the leader keeps
 * the replica count within [min, max] and moves it so the tasks' average usage approaches the targets.
 * `cpu`: percent of the task's CPU limit (task.resources.limits.nanoCpus) when it has one, else of one
 * core. `memory`: percent of the task's memory limit (a memory target needs one).
 */
export interface AutoscaleSpec {
  min: number;
  max: number;
  cpu?: number;
  memory?: number;
  /** Scale-in stabilisation: scale in only to the highest recommendation of the last windowMs. */
  windowMs: number;
  /** Least time since the last autoscale change before scaling out / in again. */
  cooldowns: { outMs: number; inMs: number };
}

export interface ServiceSpec {
  name: string;
  labels: Record<string, string>;
  mode: ServiceMode;
  task: TaskTemplate;
  update?: UpdateConfig;
  rollback?: UpdateConfig;
  networks: NetworkAttachmentConfig[];
  endpoint: EndpointSpec;
  /** Replicated services only. */
  autoscale?: AutoscaleSpec;
}

export type UpdateState = 'updating' | 'paused' | 'completed' | 'rollback_started' | 'rollback_paused' | 'rollback_completed';

export interface UpdateStatus {
  state: UpdateState;
  startedAt?: string;
  completedAt?: string;
  message: string;
}

export interface ServiceStatus {
  /** Allocated virtual IPs and ports (filled by the allocator). */
  endpoint?: { virtualIps: { networkId: string; addr: string }[]; ports: PortConfig[] };
  /** Jobs: incremented on every re-run of the job. */
  jobIteration?: number;
  /**
   * Why the orchestrator cannot create the tasks the spec asks for (a cluster limit, e.g.
   * limits.maxTasks); absent when it can. Written once per distinct reason, not per attempt.
   */
  blocked?: string;
  /** The autoscaler's last change of the replica count (written with the change, in one transaction). */
  autoscale?: AutoscaleStatus;
}

/**
 * `GET /v1/services/ID/autoscale` (leader only): the policy, the last change (replicated) and what the
 * leader's autoscaler makes of the service right now (its memory: null until it has evaluated it).
 */
export interface AutoscaleReport {
  serviceId: string;
  name: string;
  policy: AutoscaleSpec | null;
  /** The replica count in the spec now. */
  replicas: number | null;
  lastChange: AutoscaleStatus | null;
  decision: { recommendation: number; reason: string; at: string } | null;
}

export interface AutoscaleStatus {
  /** RFC 3339. */
  time: string;
  from: number;
  to: number;
  reason: string;
}

export interface Service extends ObjectMeta<'service'> {
  spec: ServiceSpec;
  /** The spec before the last update (what a rollback returns to). */
  previousSpec?: ServiceSpec;
  /** Incremented by the API on every spec change; tasks record the one they were created from. */
  specVersion: number;
  updateStatus?: UpdateStatus;
  status: ServiceStatus;
}

// ------------------------------------------------------------------------------------------------ tasks

export interface TaskStatus {
  state: TaskState;
  /** ISO-8601 time of the last state change. */
  timestamp: string;
  message: string;
  err?: string;
  exitCode?: number;
  containerId?: string;
}

/** One network a task is attached to, written by the allocator when the task moves from new to pending. */
export interface NetworkAttachment {
  networkId: string;
  /** CIDR form, e.g. 10.10.1.5/24. */
  addresses: string[];
  aliases?: string[];
}

export interface Task extends ObjectMeta<'task'> {
  serviceId: string;
  /** Replicated services: 1..replicas. Absent for global services (identified by nodeId). */
  slot?: number;
  /** Absent until the scheduler assigns the task. */
  nodeId?: string;
  /** Copy of the service's task template at creation. */
  spec: TaskTemplate;
  /** The service's specVersion this task was created from. */
  specVersion?: number;
  desiredState: TaskState;
  status: TaskStatus;
  serviceAnnotations: { name: string; labels: Record<string, string> };
  networks: NetworkAttachment[];
}

// --------------------------------------------------------------------------------------------- networks

export interface IpamConfig {
  subnet?: string;
  gateway?: string;
  range?: string;
}

export interface NetworkSpec {
  name: string;
  driver: string;
  labels: Record<string, string>;
  ipam: { driver?: string; configs: IpamConfig[] };
  attachable: boolean;
  internal: boolean;
  /** The routing-mesh network. */
  ingress?: boolean;
}

/** Written by the allocator (manager/allocator). Absent, or without vni/subnets: not allocated yet. */
export interface NetworkAllocation {
  vni?: number;
  subnets?: { subnet: string; gateway: string }[];
  /** The address handed out last (dotted, no prefix): the next one is searched after it, so a just-released address is not reused at once. */
  lastAddr?: string;
  /** Why the network could not be allocated (then vni/subnets are absent). */
  error?: string;
}

/** Reserved: networks have no observed status yet. */
export type NetworkStatus = Record<string, never>;

export interface Network extends ObjectMeta<'network'> {
  spec: NetworkSpec;
  allocation?: NetworkAllocation;
  status: NetworkStatus;
}

// ------------------------------------------------------------------------------------ secrets, configs

/**
 * A secret's data is stored SEALED (manager/keys: AES-256-GCM under a data-encryption key that never
 * enters the Raft log), so neither the log, its snapshots nor a store dump hold the plaintext.
 */
export interface SealedData {
  /** Id of the key in the managers' key ring that sealed it. */
  kid: string;
  /** base64, 12 bytes. */
  nonce: string;
  /** base64: ciphertext followed by the 16-byte GCM tag. */
  ct: string;
}

export interface SecretSpec {
  name: string;
  labels: Record<string, string>;
  data: SealedData;
}

export interface Secret extends ObjectMeta<'secret'> {
  spec: SecretSpec;
  status: Record<string, never>;
}

/** Configs are not secret: their data is stored as given (base64). */
export interface ConfigSpec {
  name: string;
  labels: Record<string, string>;
  /** base64. */
  data: string;
}

export interface Config extends ObjectMeta<'config'> {
  spec: ConfigSpec;
  status: Record<string, never>;
}

// -------------------------------------------------------------------------------------------- utilities

export interface KindMap {
  cluster: Cluster;
  node: Node;
  service: Service;
  task: Task;
  network: Network;
  secret: Secret;
  config: Config;
}

export type ObjectOf<K extends Kind> = KindMap[K];
export type AnyObject = KindMap[Kind];

/** Fields the store assigns on every write; anything a caller puts there is ignored. */
export type StoreAssigned = 'version' | 'createdAt' | 'updatedAt';

/** What `WriteTx.create` takes: an object whose version and timestamps may be left out. */
export type Draft<T> = T extends AnyObject ? Omit<T, StoreAssigned> & Partial<Pick<T, StoreAssigned>> : never;

/** Recursively read-only view of plain data: what the store hands out (the objects are also frozen at runtime). */
export type Frozen<T> = T extends (infer U)[] ? readonly Frozen<U>[] : T extends object ? { readonly [P in keyof T]: Frozen<T[P]> } : T;

/** Inverse of Frozen: the writable type of a read-only view. */
export type Mutable<T> = T extends readonly (infer U)[] ? Mutable<U>[] : T extends object ? { -readonly [P in keyof T]: Mutable<T[P]> } : T;

/** A mutable deep copy of a (frozen) store object, to edit and pass to `WriteTx.update`. */
export function mutable<K extends Kind>(obj: Frozen<ObjectOf<K>> & { readonly kind: K }): ObjectOf<K>;
export function mutable<T>(obj: T): Mutable<T>;
export function mutable(obj: unknown): unknown {
  return structuredClone(obj);
}

/** Structural equality of plain JSON data: object key order and undefined-valued keys are ignored. */
export function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) {
    const bb = b as unknown[];
    return a.length === bb.length && a.every((x, i) => jsonEqual(x, bb[i]));
  }
  const ao = a as Record<string, unknown>;
  const bo = b as Record<string, unknown>;
  const ak = Object.keys(ao).filter((k) => ao[k] !== undefined);
  const bk = Object.keys(bo).filter((k) => bo[k] !== undefined);
  return ak.length === bk.length && ak.every((k) => jsonEqual(ao[k], bo[k]));
}

/** Deep-freezes plain data in place and returns it. */
export function deepFreeze<T>(value: T): Frozen<T> {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value as Frozen<T>;
}
