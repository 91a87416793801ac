// Cluster limits (ClusterSpec.limits): the checks the control API and the store run against them, and the
// validator for the `limits` member of a cluster-update request. Pure: no clock, no I/O, no store.
//
// Where each limit is enforced:
//   * API validation (manager/service/spec.ts, api/services.ts, api/networks.ts) refuses a request that
//     asks for too much, with a LimitExceededError naming the setting: replicas, labels, the task budget
//     a create or scale would use up.
//   * The store (store.ts, on every proposed write) is the backstop for every writer, the orchestrator and
//     the dispatcher included: object size, labels, names, and the number of tasks.
//
// The store checks writes when they are proposed, not when log entries are applied: applying must give
// the same result on every manager and on every replay of an old log, and a limit changed later (or a
// default changed by an upgrade) must not turn an entry that was once applied into a no-op.
//
// Grandfathering: lowering a limit does not make existing objects unwritable. An update is refused only
// when it makes the object's offending part worse (grows an object already too large by more than
// GRANDFATHER_SLACK_BYTES, changes labels that are over the limit, renames to a name too long), so
// heartbeats and status reports, whose messages vary in length, keep flowing.
import { LimitExceededError, ValidationError } from './errors.ts';
import { DEFAULT_LIMITS } from '../../api/objects.ts';
import type { AnyObject, ClusterLimits, ClusterSpec, Frozen } from '../../api/objects.ts';

export type LimitName = keyof ClusterLimits;
export type LimitsPatch = Partial<ClusterLimits>;

/**
 * Largest allowed maxObjectBytes: one object plus its transaction envelope must fit in the store's
 * 1.5 MiB transaction limit (store.ts MAX_TX_BYTES), or no transaction could ever write it.
 */
export const MAX_OBJECT_BYTES_CEILING = 1024 * 1024;

/** How much an object already over maxObjectBytes may grow in one update (status messages, timestamps). */
export const GRANDFATHER_SLACK_BYTES = 1024;

/** Accepted values for each setting, and the CLI flag that sets it (named in every refusal). */
export const LIMIT_SETTINGS: Readonly<Record<LimitName, { min: number; max: number; flag: string; unit: string }>> = {
  maxReplicas: { min: 1, max: 1_000_000, flag: '--max-replicas', unit: 'replicas' },
  maxTasks: { min: 1, max: 10_000_000, flag: '--max-tasks', unit: 'tasks' },
  // The floor keeps the cluster object itself (CA certificate and key, join tokens) writable.
  maxObjectBytes: { min: 64 * 1024, max: MAX_OBJECT_BYTES_CEILING, flag: '--max-object-size', unit: 'bytes' },
  maxLabels: { min: 1, max: 10_000, flag: '--max-labels', unit: 'labels' },
  maxLabelKeyBytes: { min: 1, max: 4096, flag: '--max-label-key-size', unit: 'bytes' },
  maxLabelValueBytes: { min: 1, max: 64 * 1024, flag: '--max-label-value-size', unit: 'bytes' },
  maxNameLength: { min: 1, max: 1024, flag: '--max-name-length', unit: 'characters' },
};

const LIMIT_NAMES = Object.keys(LIMIT_SETTINGS) as LimitName[];

/** The effective limits of a cluster spec: its own, with DEFAULT_LIMITS for anything missing. */
export function limitsOf(spec: ClusterSpec | Frozen<ClusterSpec> | undefined): ClusterLimits {
  return { ...DEFAULT_LIMITS, ...(spec?.limits ?? {}) };
}

function exceeded(name: LimitName, limits: ClusterLimits, actual: number, what: string, field?: string): LimitExceededError {
  const s = LIMIT_SETTINGS[name];
  const msg = `${what}: the cluster allows at most ${limits[name]} ${s.unit} (setting limits.${name}; raise it with shoal cluster update ${s.flag} N)`;
  return new LimitExceededError(`limits.${name}`, limits[name], actual, msg, field);
}

// ------------------------------------------------------------------------------------------ checks

/** Replicas (or job completions / concurrency) one service asks for. */
export function checkReplicas(n: number, limits: ClusterLimits, field = 'replicas'): void {
  if (n > limits.maxReplicas) throw exceeded('maxReplicas', limits, n, `${field} is ${n}`, field);
}

/**
 * Tasks a request would add to a cluster holding `current` task objects. `adding` ≤ 0 always passes, so
 * a cluster over its limit can still shrink.
 */
export function checkTaskBudget(current: number, adding: number, limits: ClusterLimits, field?: string): void {
  if (adding <= 0 || current + adding <= limits.maxTasks) return;
  throw exceeded('maxTasks', limits, current + adding, `${adding} more task${adding === 1 ? '' : 's'} would make ${current + adding} in the cluster`, field);
}

const byteLength = (s: string): number => Buffer.byteLength(s, 'utf8');

/** One labels map: entry count, key and value sizes. */
export function checkLabels(labels: Readonly<Record<string, string>> | undefined, limits: ClusterLimits, field = 'labels'): void {
  if (labels === undefined || labels === null) return;
  const entries = Object.entries(labels);
  if (entries.length > limits.maxLabels) throw exceeded('maxLabels', limits, entries.length, `${field} has ${entries.length} labels`, field);
  for (const [k, v] of entries) {
    const kb = byteLength(k);
    if (kb > limits.maxLabelKeyBytes) throw exceeded('maxLabelKeyBytes', limits, kb, `${field}: label key ${preview(k)} is ${kb} bytes`, field);
    const vb = typeof v === 'string' ? byteLength(v) : 0;
    if (vb > limits.maxLabelValueBytes) throw exceeded('maxLabelValueBytes', limits, vb, `${field}.${preview(k)} is ${vb} bytes`, `${field}.${k}`);
  }
}

/** A service or network name, or a node hostname. */
export function checkName(name: string, limits: ClusterLimits, field = 'name'): void {
  if (name.length > limits.maxNameLength) throw exceeded('maxNameLength', limits, name.length, `${field} ${preview(name)} is ${name.length} characters`, field);
}

/** Encoded size of one object. */
export function checkObjectBytes(bytes: number, limits: ClusterLimits, what: string, field?: string): void {
  if (bytes > limits.maxObjectBytes) throw exceeded('maxObjectBytes', limits, bytes, `${what} is ${bytes} bytes encoded`, field);
}

/**
 * Encoded size of a service spec. A service object holds its spec and the previous one (for rollback),
 * and every task holds a copy of the template, so a spec may take at most half of maxObjectBytes.
 */
export function checkServiceSpecBytes(bytes: number, limits: ClusterLimits): void {
  const half = Math.floor(limits.maxObjectBytes / 2);
  if (bytes <= half) return;
  const msg = `the service spec is ${bytes} bytes encoded: a service keeps its previous spec too, so a spec may take at most half of limits.maxObjectBytes (${half} of ${limits.maxObjectBytes} bytes; raise it with shoal cluster update ${LIMIT_SETTINGS.maxObjectBytes.flag} BYTES)`;
  throw new LimitExceededError('limits.maxObjectBytes', limits.maxObjectBytes, bytes, msg, 'spec');
}

function preview(s: string): string {
  return JSON.stringify(s.length > 40 ? `${s.slice(0, 37)}...` : s);
}

function isRecord(v: unknown): v is Readonly<Record<string, unknown>> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * The labels maps an object carries, by field path: `spec.labels` of any kind that has one (so kinds added
 * later are covered), plus a service's task template and a task's copy of its service's labels.
 */
function labelMaps(o: Frozen<AnyObject>): [string, Readonly<Record<string, string>> | undefined][] {
  const spec: unknown = o.spec;
  const own: [string, Readonly<Record<string, string>> | undefined][] =
    isRecord(spec) && isRecord(spec['labels']) ? [['spec.labels', spec['labels'] as Readonly<Record<string, string>>]] : [];
  switch (o.kind) {
    case 'service':
      return [...own, ['spec.task.labels', o.spec.task?.labels]];
    case 'task':
      return [...own, ['serviceAnnotations.labels', o.serviceAnnotations?.labels]];
    default:
      return own;
  }
}

/** The name an object is known by: a node's hostname, `spec.name` of named kinds (not tasks, not the cluster). */
function nameField(o: Frozen<AnyObject>): [string, string] | null {
  if (o.kind === 'node') return ['description.hostname', o.description.hostname];
  if (o.kind === 'task' || o.kind === 'cluster') return null;
  const spec: unknown = o.spec;
  return isRecord(spec) && typeof spec['name'] === 'string' ? ['spec.name', spec['name']] : null;
}

/** Equal flat label maps (absent = empty); cheaper than serialising them on every write. */
function sameLabels(a: Readonly<Record<string, string>> | undefined, b: Readonly<Record<string, string>> | undefined): boolean {
  if (a === b) return true;
  const ak = a ? Object.keys(a) : [];
  const bk = b ? Object.keys(b) : [];
  if (ak.length !== bk.length) return false;
  for (const k of ak) if (!Object.hasOwn(b!, k) || a![k] !== b![k]) return false;
  return true;
}

/**
 * The store's backstop for one object a transaction writes: size, labels, name. `bytes` is its encoded
 * size; `prev` the version it replaces (undefined for a create) and `prevBytes` that version's size,
 * asked for only when the new one is too large. Grandfathered as described at the top of the file.
 */
export function checkStoredObject(o: Frozen<AnyObject>, bytes: number, limits: ClusterLimits, prev?: Frozen<AnyObject>, prevBytes?: () => number): void {
  const what = `${o.kind} ${o.id}`;
  if (bytes > limits.maxObjectBytes) {
    const before = prev !== undefined && prevBytes !== undefined ? prevBytes() : 0;
    if (before <= limits.maxObjectBytes || bytes > before + GRANDFATHER_SLACK_BYTES) checkObjectBytes(bytes, limits, what);
  }
  const old = prev !== undefined && prev.kind === o.kind ? new Map(labelMaps(prev)) : null;
  for (const [field, labels] of labelMaps(o)) {
    if (old !== null && sameLabels(old.get(field), labels)) continue;
    checkLabels(labels, limits, `${what} ${field}`);
  }
  const n = nameField(o);
  if (n !== null) {
    const p = prev !== undefined && prev.kind === o.kind ? nameField(prev) : null;
    if (p === null || p[1] !== n[1]) checkName(n[1], limits, `${what} ${n[0]}`);
  }
}

// --------------------------------------------------------------------------------- cluster update

function got(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? `${v.slice(0, 37)}...` : v);
  if (typeof v === 'object') return v === null ? 'null' : Array.isArray(v) ? 'an array' : 'an object';
  return String(v);
}

/**
 * Validates the `limits` member of a `POST /v1/cluster/update` body: any subset of the ClusterLimits
 * keys, each an integer within LIMIT_SETTINGS' range. undefined or null: nothing to change ({}).
 * Throws ValidationError (400) naming `limits.<key>`, the accepted range and what was sent.
 */
export function parseLimitsUpdate(raw: unknown): LimitsPatch {
  if (raw === undefined || raw === null) return {};
  if (typeof raw !== 'object' || Array.isArray(raw)) throw new ValidationError(`limits must be an object (got ${got(raw)})`);
  const out: LimitsPatch = {};
  for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
    if (!Object.hasOwn(LIMIT_SETTINGS, k)) throw new ValidationError(`limits.${k}: unknown setting (known: ${LIMIT_NAMES.join(', ')})`);
    const s = LIMIT_SETTINGS[k as LimitName];
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < s.min || v > s.max) {
      throw new ValidationError(`limits.${k} must be an integer from ${s.min} to ${s.max} ${s.unit} (got ${got(v)})`);
    }
    out[k as LimitName] = v;
  }
  return out;
}

/** `spec` with `patch` applied over its effective limits (so older clusters gain every default). */
export function applyLimitsUpdate<S extends ClusterSpec | Frozen<ClusterSpec>>(spec: S, patch: LimitsPatch): S & { limits: ClusterLimits } {
  return { ...spec, limits: { ...limitsOf(spec), ...patch } };
}
