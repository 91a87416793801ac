// The compose model after validation: one shape per concept (short syntaxes expanded to long ones,
// durations in milliseconds, sizes in bytes, CPUs in nano-CPUs, relative paths resolved), still in
// compose's vocabulary (service keys, not Shoal names). schema.ts builds it from the merged tree;
// convert.ts turns it into Shoal objects. Every part keeps the position it was written at, so the
// later steps can still report file:line:key.
import type { Pos } from './errors.ts';

export interface ComposePort {
  target: number;
  /** Absent: allocated by the cluster. */
  published?: number;
  protocol: 'tcp' | 'udp' | 'sctp';
  mode: 'ingress' | 'host';
  name?: string;
  pos: Pos;
}

export interface ComposeMount {
  type: 'volume' | 'bind' | 'tmpfs';
  /** volume: the key in the top-level `volumes` (absent: anonymous); bind: an absolute host path. */
  source?: string;
  target: string;
  readOnly: boolean;
  tmpfsSizeBytes?: number;
  pos: Pos;
}

/** A service's use of a secret or config (long syntax; the short one is `{source}`). */
export interface ComposeFileRef {
  /** The key in the top-level `secrets` / `configs`. */
  source: string;
  target?: string;
  uid?: string;
  gid?: string;
  /** File mode bits (e.g. 0o444). */
  mode?: number;
  pos: Pos;
}

export interface ComposeHealthcheck {
  /** Docker's form: [] (image default), ["NONE"], ["CMD", …] or ["CMD-SHELL", cmd]. */
  test: string[];
  intervalMs?: number;
  timeoutMs?: number;
  retries?: number;
  startPeriodMs?: number;
}

export interface ComposeUpdateConfig {
  parallelism?: number;
  delayMs?: number;
  failureAction?: 'pause' | 'continue' | 'rollback';
  monitorMs?: number;
  maxFailureRatio?: number;
  order?: 'stop-first' | 'start-first';
}

export interface ComposeResources {
  nanoCpus?: number;
  memoryBytes?: number;
  pids?: number;
}

export interface ComposeDeploy {
  mode: 'replicated' | 'global' | 'replicated-job' | 'global-job';
  replicas?: number;
  labels: Record<string, string>;
  endpointMode?: 'vip' | 'dnsrr';
  constraints: string[];
  preferences: string[];
  maxReplicasPerNode?: number;
  limits?: ComposeResources;
  reservations?: ComposeResources;
  restartPolicy?: { condition?: 'none' | 'on-failure' | 'any'; delayMs?: number; maxAttempts?: number; windowMs?: number };
  updateConfig?: ComposeUpdateConfig;
  rollbackConfig?: ComposeUpdateConfig;
}

export interface ComposeService {
  key: string;
  pos: Pos;
  image: string;
  command?: string[];
  entrypoint?: string[];
  /** Resolved: env_file values overlaid by `environment`; a bare `KEY` took its value from the environment. */
  environment: Record<string, string>;
  workingDir?: string;
  user?: string;
  hostname?: string;
  /** Container labels (`labels:`); service labels are `deploy.labels`. */
  labels: Record<string, string>;
  ports: ComposePort[];
  /** Network keys with extra aliases; absent: the service named no networks (it joins `default`). */
  networks?: { key: string; aliases: string[]; pos: Pos }[];
  mounts: ComposeMount[];
  secrets: ComposeFileRef[];
  configs: ComposeFileRef[];
  healthcheck?: ComposeHealthcheck;
  stopGracePeriodMs?: number;
  stopSignal?: string;
  /** cap_add, cap_drop, init, read_only, sysctls, ulimits, in the task template's terms (checked by the managers). */
  confinement?: {
    capabilityAdd?: string[];
    capabilityDrop?: string[];
    init?: boolean;
    readOnly?: boolean;
    sysctls?: Record<string, string>;
    ulimits?: { name: string; soft: number; hard: number }[];
  };
  deploy: ComposeDeploy;
  /** `x-shoal-*` extension fields kept for later issues (`x-shoal-autoscale`), as plain JSON. */
  extensions: Record<string, unknown>;
}

export interface ComposeNetwork {
  key: string;
  pos: Pos;
  /** The `name:` (or external name) when given. */
  name?: string;
  external: boolean;
  driver: string;
  attachable: boolean;
  internal: boolean;
  labels: Record<string, string>;
  ipam?: { subnet?: string; gateway?: string };
}

export interface ComposeVolume {
  key: string;
  pos: Pos;
  name?: string;
  external: boolean;
  labels: Record<string, string>;
}

export interface ComposeFileObject {
  key: string;
  pos: Pos;
  name?: string;
  external: boolean;
  /** Absolute path of the file holding the data (not external). */
  file?: string;
  /** Where `file:` was written (for "not found"). */
  filePos?: Pos;
  labels: Record<string, string>;
}

export interface ComposeProject {
  /** Directory relative paths were resolved against: the first compose file's. */
  workingDir: string;
  services: ComposeService[];
  networks: ComposeNetwork[];
  volumes: ComposeVolume[];
  secrets: ComposeFileObject[];
  configs: ComposeFileObject[];
  /** Lines to print before deploying (Docker's "Ignoring unsupported options: …" and Shoal's own). */
  warnings: string[];
}
