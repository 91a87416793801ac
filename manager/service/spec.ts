// Service specs: validation and normalisation (what the control API runs on every create and update
// before anything is stored) and the diff the update API uses to decide what an update means for tasks.
//
// validateServiceSpec takes untrusted JSON and either returns a normalised ServiceSpec or throws a
// SpecError naming the offending field with a dotted path (`task.resources.limits.memoryBytes`,
// `endpoint.ports[1]`). Every field is checked; unknown keys are refused at every level so that a typo
// (`replica`, `memroyBytes`) cannot pass silently. The rules follow Docker Swarm's: nothing Swarm accepts
// is refused, except where noted (a service name may not hold characters Swarm rejects either).
//
// Normalisation: defaults are filled in (mode, restart policy, stop grace period, update and rollback
// config for non-job services, endpoint mode), keys are put in a canonical order and "no value" forms are
// collapsed (0 resources, 0 health-check durations, an empty placement, readOnly false, publishedPort 0
// …) so that two specs that mean the same thing compare equal in specDiff.
import type {
  AutoscaleSpec,
  EndpointSpec,
  Frozen,
  HealthCheck,
  Mount,
  NetworkAttachmentConfig,
  Placement,
  PortConfig,
  ResourceAmounts,
  RestartPolicy,
  ServiceMode,
  ServiceSpec,
  TaskTemplate,
  UpdateConfig,
} from '../../api/objects.ts';
import { DEFAULT_LIMITS, jsonEqual } from '../../api/objects.ts';
import type { ClusterLimits } from '../../api/objects.ts';
import { checkLabels, checkName, checkReplicas, checkServiceSpecBytes } from '../store/limits.ts';
import { ConstraintError, parseConstraint } from '../scheduler/constraints.ts';
import { TemplateError, isTemplateField, templateFields, templateFieldsHint } from '../../api/templates.ts';
import { FileRefError, checkUniqueTargets, validateFileRefs } from '../../api/file-refs.ts';
import type { ConfigReference, SecretReference } from '../../api/objects.ts';
import { ConfinementError, checkSysctl, checkUlimit, normalizeCapability } from '../../api/confinement.ts';
import { SeccompProfileError, compileSeccompProfile } from '../../api/seccomp-profile.ts';
import { defaultAutoscale } from '../autoscale/decide.ts';

// ---------------------------------------------------------------------------------------------- types

/** A mount as Shoal carries it: objects.ts's Mount plus the tmpfs size (`--mount type=tmpfs,tmpfs-size=64m`). */
export interface MountSpec extends Mount {
  tmpfsSizeBytes?: number;
}

/** Resource limits: objects.ts's ResourceAmounts plus the pids limit (`--limit-pids`). */
export interface ResourceLimits extends ResourceAmounts {
  pids?: number;
}

export type DeepPartial<T> = T extends readonly (infer U)[] ? DeepPartial<U>[] : T extends object ? { [K in keyof T]?: DeepPartial<T[K]> } : T;

/** What a client sends (and what the CLI builds) before validation: any part may be left out. */
export type ServiceSpecInput = DeepPartial<ServiceSpec>;

export class SpecError extends Error {
  readonly code = 'EINVALIDSPEC';
  /** How the control API answers it (manager/api/errors.ts, which reads this instead of importing the class). */
  readonly wire = 'invalid';
  /** Dotted path of the offending field, e.g. `task.resources.limits.memoryBytes` or `endpoint.ports[1]`. */
  readonly field: string;
  constructor(field: string, message: string) {
    super(message);
    this.name = 'SpecError';
    this.field = field;
  }
}

// ------------------------------------------------------------------------------------------- defaults

export const DEFAULT_REPLICAS = 1;
export const DEFAULT_STOP_GRACE_PERIOD_MS = 10_000;
export const DEFAULT_RESTART_DELAY_MS = 5_000;
export const DEFAULT_MONITOR_MS = 5_000;
/** Swarm's minimum non-zero limits and reservations. */
export const MIN_NANO_CPUS = 1_000_000;
export const MIN_MEMORY_BYTES = 4 * 1024 * 1024;

export function defaultUpdateConfig(): UpdateConfig {
  return { parallelism: 1, delayMs: 0, failureAction: 'pause', monitorMs: DEFAULT_MONITOR_MS, maxFailureRatio: 0, order: 'stop-first' };
}

export function defaultRestartPolicy(): Required<RestartPolicy> {
  return { condition: 'any', delayMs: DEFAULT_RESTART_DELAY_MS, maxAttempts: 0, windowMs: 0 };
}

// ------------------------------------------------------------------------------------------- helpers

function fail(field: string, message: string): never {
  throw new SpecError(field, message);
}

/** A short rendering of a bad value for "(got …)". */
function got(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'object') return 'an object';
  if (typeof v === 'string') return JSON.stringify(v.length > 80 ? `${v.slice(0, 77)}...` : v);
  return String(v);
}

const at = (field: string, key: string): string => (field ? `${field}.${key}` : key);
const idx = (field: string, i: number): string => `${field}[${i}]`;
/** null counts as absent for optional fields (JSON clients often send it). */
const absent = (v: unknown): v is undefined | null => v === undefined || v === null;

/** Levenshtein distance: how many single-character edits turn a into b (for "did you mean" hints). */
export function editDistance(a: string, b: string): number {
  const d: number[] = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = d[0]!;
    d[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = d[j]!;
      d[j] = Math.min(d[j]! + 1, d[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return d[b.length]!;
}

function suggestion(key: string, known: readonly string[]): string {
  let best: string | null = null;
  let bestD = Infinity;
  for (const k of known) {
    const dist = k.toLowerCase() === key.toLowerCase() ? 0 : editDistance(key.toLowerCase(), k.toLowerCase());
    if (dist < bestD) {
      bestD = dist;
      best = k;
    }
  }
  return best !== null && bestD <= Math.max(2, Math.floor(key.length / 4)) ? `; did you mean ${best}?` : '';
}

/** Fields people put in the wrong place, by the path they used. */
const MISPLACED: Record<string, string> = {
  replicas: 'mode.replicated.replicas',
  replica: 'mode.replicated.replicas',
  image: 'task.image',
  command: 'task.command',
  args: 'task.args',
  env: 'task.env',
  mounts: 'task.mounts',
  hostname: 'task.hostname',
  resources: 'task.resources',
  placement: 'task.placement',
  constraints: 'task.placement.constraints',
  ports: 'endpoint.ports',
  'task.ports': 'endpoint.ports',
  'task.networks': 'networks',
  'task.constraints': 'task.placement.constraints',
  'task.replicas': 'mode.replicated.replicas',
  'mode.replicas': 'mode.replicated.replicas',
  'task.restart': 'task.restartPolicy',
  'task.health': 'task.healthcheck',
};

/** A plain object with only `known` keys (undefined-valued keys are ignored, as JSON would drop them). */
function record(v: unknown, field: string, known: readonly string[]): Record<string, unknown> {
  const name = field || 'spec';
  if (typeof v !== 'object' || v === null || Array.isArray(v)) fail(field, `${name} must be an object (got ${got(v)})`);
  const proto: unknown = Object.getPrototypeOf(v);
  if (proto !== Object.prototype && proto !== null) fail(field, `${name} must be a plain object`);
  const o = v as Record<string, unknown>;
  for (const k of Object.keys(o)) {
    if (o[k] === undefined || known.includes(k)) continue;
    const f = at(field, k);
    const knownList = known.length ? `known fields: ${known.join(', ')}` : 'no fields are allowed here';
    const moved = MISPLACED[f];
    fail(f, `${f}: unknown field (${knownList}${moved ? `; did you mean ${moved}?` : suggestion(k, known)})`);
  }
  return o;
}

function array(v: unknown, field: string, what = 'an array'): unknown[] {
  if (!Array.isArray(v)) fail(field, `${field} must be ${what} (got ${got(v)})`);
  return v;
}

function string(v: unknown, field: string): string {
  if (typeof v !== 'string') fail(field, `${field} must be a string (got ${got(v)})`);
  if (v.includes('\0')) fail(field, `${field} must not contain NUL characters`);
  return v;
}

function stringArray(v: unknown, field: string): string[] {
  return array(v, field, 'an array of strings').map((s, i) => string(s, idx(field, i)));
}

function bool(v: unknown, field: string): boolean {
  if (typeof v !== 'boolean') fail(field, `${field} must be true or false (got ${got(v)})`);
  return v;
}

function oneOf<T extends string>(v: unknown, field: string, allowed: readonly T[]): T {
  if (typeof v !== 'string' || !(allowed as readonly string[]).includes(v)) {
    const list = allowed.length === 2 ? `${allowed[0]} or ${allowed[1]}` : `${allowed.slice(0, -1).join(', ')} or ${allowed[allowed.length - 1]}`;
    fail(field, `${field} must be ${list} (got ${got(v)})`);
  }
  return v as T;
}

/** A non-negative safe integer; `phrase` is how the message describes the rule. */
function nonNegInt(v: unknown, field: string, phrase = 'a non-negative integer'): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) fail(field, `${field} must be ${phrase} (got ${got(v)})`);
  return v;
}

function durationMs(v: unknown, field: string): number {
  return nonNegInt(v, field, 'a non-negative whole number of milliseconds');
}

/** Label maps: string keys (non-empty, no whitespace) to string values. */
function labelMap(v: unknown, field: string): Record<string, string> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) fail(field, `${field} must be an object of string values (got ${got(v)})`);
  const out: Record<string, string> = {};
  for (const k of Object.keys(v).sort()) {
    const val = (v as Record<string, unknown>)[k];
    if (val === undefined) continue;
    const f = `${field}[${JSON.stringify(k)}]`;
    if (k === '') fail(f, `${field}: label keys must not be empty`);
    if (/\s/.test(k)) fail(f, `${field}: label key ${JSON.stringify(k)} contains whitespace`);
    if (k.includes('\0')) fail(f, `${field}: label key ${JSON.stringify(k)} contains a NUL character`);
    // defineProperty, so that a label called __proto__ is kept as a label.
    Object.defineProperty(out, k, { value: string(val, f), enumerable: true, writable: true, configurable: true });
  }
  return out;
}

/** Checks the placeholders in a templated string; `field` names it in messages. */
function checkTemplates(s: string, field: string): void {
  let fields: string[];
  try {
    fields = templateFields(s);
  } catch (e) {
    if (e instanceof TemplateError) fail(field, `${field}: ${e.message}`);
    throw e;
  }
  for (const f of fields) {
    if (!isTemplateField(f)) fail(field, `${field}: unknown template field {{${f}}} (${templateFieldsHint()})`);
  }
}

/** `s` with every placeholder replaced by a plain sample value, for checks on the expanded form. */
function sampleExpansion(s: string): string {
  return s.replace(/\{\{.*?\}\}/g, 'x0');
}

// --------------------------------------------------------------------------------------------- name

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;

function validateName(v: unknown): string {
  if (absent(v) || v === '') fail('name', 'name is required');
  const s = string(v, 'name');
  if (!NAME_RE.test(s)) fail('name', `name must be 1–63 characters of [a-zA-Z0-9-_.] starting with a letter or digit (got ${got(s)})`);
  return s;
}

// --------------------------------------------------------------------------------------------- mode

const MODE_KINDS = ['replicated', 'global', 'replicatedJob', 'globalJob'] as const;
export type ModeKind = (typeof MODE_KINDS)[number];

export function modeKind(mode: ServiceMode | Frozen<ServiceMode>): ModeKind {
  if ('replicated' in mode) return 'replicated';
  if ('global' in mode) return 'global';
  if ('replicatedJob' in mode) return 'replicatedJob';
  return 'globalJob';
}

export function isJobMode(mode: ServiceMode | Frozen<ServiceMode>): boolean {
  return 'replicatedJob' in mode || 'globalJob' in mode;
}

function validateMode(v: unknown): ServiceMode {
  if (absent(v)) return { replicated: { replicas: DEFAULT_REPLICAS } };
  const o = record(v, 'mode', MODE_KINDS);
  const keys = MODE_KINDS.filter((k) => !absent(o[k]));
  for (const g of ['global', 'globalJob'] as const) {
    const gv = o[g];
    if ((typeof gv === 'object' && gv !== null && 'replicas' in gv) || (keys.includes(g) && keys.includes('replicated'))) {
      fail('mode', 'mode: --replicas cannot be used with a global service');
    }
  }
  if (keys.length !== 1) {
    fail('mode', `mode must set exactly one of replicated, global, replicatedJob, globalJob (got ${keys.length ? keys.join(', ') : 'none'})`);
  }
  const kind = keys[0]!;
  switch (kind) {
    case 'replicated': {
      const r = record(o.replicated, 'mode.replicated', ['replicas']);
      const replicas = absent(r.replicas) ? DEFAULT_REPLICAS : nonNegInt(r.replicas, 'mode.replicated.replicas');
      return { replicated: { replicas } };
    }
    case 'replicatedJob': {
      const r = record(o.replicatedJob, 'mode.replicatedJob', ['maxConcurrent', 'totalCompletions']);
      const total = absent(r.totalCompletions) ? undefined : nonNegInt(r.totalCompletions, 'mode.replicatedJob.totalCompletions');
      let max: number;
      if (absent(r.maxConcurrent)) {
        // Like Docker: by default every task of the job runs at once.
        max = Math.max(1, total ?? 1);
      } else {
        const m = r.maxConcurrent;
        if (typeof m !== 'number' || !Number.isSafeInteger(m) || m < 1)
          fail('mode.replicatedJob.maxConcurrent', `mode.replicatedJob.maxConcurrent must be ≥ 1 (got ${got(m)})`);
        max = m;
      }
      return { replicatedJob: { maxConcurrent: max, totalCompletions: total ?? max } };
    }
    case 'global':
      record(o.global, 'mode.global', []);
      return { global: {} };
    case 'globalJob':
      record(o.globalJob, 'mode.globalJob', []);
      return { globalJob: {} };
  }
}

// -------------------------------------------------------------------------------------------- image

const DOMAIN_RE =
  /^(?:(?:[A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9])(?:\.(?:[A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9]))*|\[[0-9A-Fa-f:.]+\])(?::\d+)?$/;
const PATH_COMPONENT_RE = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG_RE = /^\w[\w.-]{0,127}$/;
const DIGEST_RE = /^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[0-9a-fA-F]{32,}$/;

/** Why `ref` is not a valid image reference ([registry[:port]/]path[:tag][@digest]), or null if it is. */
export function imageReferenceProblem(ref: string): string | null {
  if (ref === '') return 'it is empty';
  if (/\s/.test(ref)) return 'it contains whitespace';
  let rest = ref;
  const atSign = rest.indexOf('@');
  if (atSign >= 0) {
    const digest = rest.slice(atSign + 1);
    if (!DIGEST_RE.test(digest)) return `invalid digest ${JSON.stringify(digest)} (expected algorithm:hex, e.g. sha256:…)`;
    rest = rest.slice(0, atSign);
  }
  const slash = rest.lastIndexOf('/');
  const colon = rest.lastIndexOf(':');
  if (colon > slash) {
    const tag = rest.slice(colon + 1);
    if (!TAG_RE.test(tag)) return `invalid tag ${JSON.stringify(tag)}`;
    rest = rest.slice(0, colon);
  }
  if (rest === '') return 'the repository name is missing';
  if (rest.length > 255) return 'the repository name is longer than 255 characters';
  const parts = rest.split('/');
  const first = parts[0]!;
  const hasDomain = parts.length > 1 && (/[.:]/.test(first) || first === 'localhost' || first !== first.toLowerCase());
  if (hasDomain && !DOMAIN_RE.test(first)) return `invalid registry host ${JSON.stringify(first)}`;
  for (const p of hasDomain ? parts.slice(1) : parts) {
    if (PATH_COMPONENT_RE.test(p)) continue;
    if (p !== p.toLowerCase() && PATH_COMPONENT_RE.test(p.toLowerCase())) return 'the repository name must be lowercase';
    return `invalid repository name component ${JSON.stringify(p)}`;
  }
  return null;
}

// -------------------------------------------------------------------------------------------- task

const TASK_KEYS = [
  'image',
  'command',
  'args',
  'env',
  'workdir',
  'user',
  'hostname',
  'labels',
  'mounts',
  'resources',
  'restartPolicy',
  'placement',
  'healthcheck',
  'stopSignal',
  'stopGracePeriodMs',
  'forceUpdate',
  'secrets',
  'configs',
  'capabilityAdd',
  'capabilityDrop',
  'readOnly',
  'sysctls',
  'ulimits',
  'init',
  'seccomp',
] as const;

const SIGNALS = new Set([
  'HUP',
  'INT',
  'QUIT',
  'ILL',
  'TRAP',
  'ABRT',
  'IOT',
  'BUS',
  'FPE',
  'KILL',
  'USR1',
  'SEGV',
  'USR2',
  'PIPE',
  'ALRM',
  'TERM',
  'STKFLT',
  'CHLD',
  'CLD',
  'CONT',
  'STOP',
  'TSTP',
  'TTIN',
  'TTOU',
  'URG',
  'XCPU',
  'XFSZ',
  'VTALRM',
  'PROF',
  'WINCH',
  'IO',
  'POLL',
  'PWR',
  'SYS',
  'RTMIN',
  'RTMAX',
]);

/** Signal names as Docker accepts them: a number 1–64, or a name with or without SIG, any case (RTMIN+3 …). */
export function isValidSignal(s: string): boolean {
  if (/^\d+$/.test(s)) return Number(s) >= 1 && Number(s) <= 64;
  const n = s.toUpperCase().replace(/^SIG/, '');
  if (SIGNALS.has(n)) return true;
  const rt = /^RTMIN\+(\d+)$|^RTMAX-(\d+)$/.exec(n);
  return rt !== null && Number(rt[1] ?? rt[2]) <= 30;
}

function validateTask(v: unknown, mode: ServiceMode): TaskTemplate {
  if (absent(v)) fail('task.image', 'task.image is required');
  const o = record(v, 'task', TASK_KEYS);
  const t: TaskTemplate = { image: validateImage(o.image) };

  if (!absent(o.command)) t.command = stringArray(o.command, 'task.command');
  if (!absent(o.args)) t.args = stringArray(o.args, 'task.args');
  if (!absent(o.env)) {
    const env = stringArray(o.env, 'task.env');
    env.forEach((e, i) => {
      const f = idx('task.env', i);
      const eq = e.indexOf('=');
      if (eq <= 0) fail(f, `${f}: expected KEY=value (got ${got(e)})`);
      checkTemplates(e.slice(eq + 1), f);
    });
    if (env.length) t.env = env;
  }
  if (!absent(o.workdir) && o.workdir !== '') {
    const w = string(o.workdir, 'task.workdir');
    if (!w.startsWith('/')) fail('task.workdir', `task.workdir must be an absolute path (got ${got(w)})`);
    t.workdir = w;
  }
  if (!absent(o.user) && o.user !== '') {
    const u = string(o.user, 'task.user');
    if (/\s/.test(u)) fail('task.user', `task.user must be a user name or uid, optionally :group or :gid (got ${got(u)})`);
    t.user = u;
  }
  if (!absent(o.hostname) && o.hostname !== '') {
    const h = string(o.hostname, 'task.hostname');
    checkTemplates(h, 'task.hostname');
    if (/[\s/]/.test(sampleExpansion(h))) fail('task.hostname', `task.hostname must not contain whitespace or '/' (got ${got(h)})`);
    t.hostname = h;
  }
  if (!absent(o.labels)) {
    const l = labelMap(o.labels, 'task.labels');
    if (Object.keys(l).length) t.labels = l;
  }
  if (!absent(o.mounts)) {
    const m = validateMounts(o.mounts);
    if (m.length) t.mounts = m;
  }
  if (!absent(o.resources)) {
    const r = validateResources(o.resources);
    if (r) t.resources = r;
  }
  t.restartPolicy = validateRestartPolicy(o.restartPolicy);
  if (!absent(o.placement)) {
    const p = validatePlacement(o.placement, mode);
    if (p) t.placement = p;
  }
  if (!absent(o.healthcheck)) t.healthcheck = validateHealthcheck(o.healthcheck);
  if (!absent(o.stopSignal) && o.stopSignal !== '') {
    const s = string(o.stopSignal, 'task.stopSignal');
    if (!isValidSignal(s)) fail('task.stopSignal', `task.stopSignal must be a signal name or number, e.g. SIGTERM, SIGQUIT or 15 (got ${got(s)})`);
    t.stopSignal = s;
  }
  t.stopGracePeriodMs = absent(o.stopGracePeriodMs) ? DEFAULT_STOP_GRACE_PERIOD_MS : durationMs(o.stopGracePeriodMs, 'task.stopGracePeriodMs');
  if (!absent(o.forceUpdate)) {
    const n = nonNegInt(o.forceUpdate, 'task.forceUpdate');
    if (n > 0) t.forceUpdate = n;
  }
  // Secrets and configs (api/file-refs.ts); whether they exist is checked when the service is written.
  let secrets: SecretReference[] = [];
  let configs: ConfigReference[] = [];
  try {
    secrets = absent(o.secrets) ? [] : validateFileRefs('secret', o.secrets);
    configs = absent(o.configs) ? [] : validateFileRefs('config', o.configs);
    checkUniqueTargets(secrets, configs);
  } catch (e) {
    if (e instanceof FileRefError) fail(e.field, e.message);
    throw e;
  }
  if (secrets.length) t.secrets = secrets;
  if (configs.length) t.configs = configs;
  validateConfinement(o, t);
  return t;
}

/** --cap-add/--cap-drop, --read-only, --sysctl, --ulimit, --init, --security-opt seccomp (api/confinement.ts). */
function validateConfinement(o: Record<string, unknown>, t: TaskTemplate): void {
  try {
    for (const k of ['capabilityAdd', 'capabilityDrop'] as const) {
      if (absent(o[k])) continue;
      const f = `task.${k}`;
      const caps = [...new Set(stringArray(o[k], f).map((c, i) => normalizeCapability(c, idx(f, i))))].sort();
      if (caps.length) t[k] = caps;
    }
    if (!absent(o.readOnly) && bool(o.readOnly, 'task.readOnly')) t.readOnly = true;
    if (!absent(o.init) && bool(o.init, 'task.init')) t.init = true;
    if (!absent(o.sysctls)) {
      const m = labelMap(o.sysctls, 'task.sysctls');
      for (const [k, v] of Object.entries(m)) checkSysctl(k, v, `task.sysctls[${JSON.stringify(k)}]`);
      if (Object.keys(m).length) t.sysctls = m;
    }
    if (!absent(o.ulimits)) {
      const seen = new Set<string>();
      const list = array(o.ulimits, 'task.ulimits', 'an array of {name, soft, hard}').map((u, i) => {
        const f = idx('task.ulimits', i);
        const r = record(u, f, ['name', 'soft', 'hard']);
        const x = { name: string(r.name, `${f}.name`), soft: Number(r.soft), hard: Number(r.hard) };
        if (typeof r.soft !== 'number' || typeof r.hard !== 'number') fail(f, `${f}: soft and hard must be numbers`);
        checkUlimit(x, f);
        if (seen.has(x.name)) fail(f, `${f}: ulimit ${x.name} is given twice`);
        seen.add(x.name);
        return x;
      });
      if (list.length) t.ulimits = list.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    }
    if (!absent(o.seccomp)) {
      const r = record(o.seccomp, 'task.seccomp', ['mode', 'profile']);
      const mode = oneOf(r.mode, 'task.seccomp.mode', ['default', 'unconfined', 'custom'] as const);
      if (mode !== 'custom' && !absent(r.profile)) fail('task.seccomp.profile', 'task.seccomp.profile is only for mode custom');
      if (mode === 'unconfined') t.seccomp = { mode };
      if (mode === 'custom') {
        const profile = string(r.profile, 'task.seccomp.profile');
        compileSeccompProfile(profile); // refused now, with the reason, rather than on every node
        t.seccomp = { mode, profile };
      }
    }
  } catch (e) {
    if (e instanceof ConfinementError) fail(e.field, e.message);
    if (e instanceof SeccompProfileError) fail('task.seccomp.profile', e.message);
    throw e;
  }
}

function validateImage(v: unknown): string {
  if (absent(v) || v === '') fail('task.image', 'task.image is required');
  const s = string(v, 'task.image');
  const problem = imageReferenceProblem(s);
  if (problem) fail('task.image', `task.image: invalid image reference ${got(s)}: ${problem}`);
  return s;
}

const MOUNT_KEYS = ['type', 'source', 'target', 'readOnly', 'tmpfsSizeBytes'] as const;
const VOLUME_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]+$/;

function validateMounts(v: unknown): MountSpec[] {
  const seen = new Map<string, number>();
  return array(v, 'task.mounts').map((raw, i) => {
    const f = idx('task.mounts', i);
    const o = record(raw, f, MOUNT_KEYS);
    const type = oneOf(o.type, `${f}.type`, ['bind', 'volume', 'tmpfs'] as const);
    if (absent(o.target) || o.target === '') fail(`${f}.target`, `${f}: target is required (the path inside the container)`);
    const target = string(o.target, `${f}.target`);
    checkTemplates(target, `${f}.target`);
    if (!target.startsWith('/')) fail(`${f}.target`, `${f}: target must be an absolute path (got ${got(target)})`);
    if (target.replace(/\/+$/, '') === '') fail(`${f}.target`, `${f}: target cannot be /`);
    const norm = target.length > 1 ? target.replace(/\/+$/, '') : target;
    const prev = seen.get(norm);
    if (prev !== undefined) fail(f, `${f}: target ${target} is used twice (also by task.mounts[${prev}])`);
    seen.set(norm, i);
    const source = absent(o.source) || o.source === '' ? undefined : string(o.source, `${f}.source`);
    if (source !== undefined) checkTemplates(source, `${f}.source`);
    switch (type) {
      case 'bind':
        if (source === undefined || !source.startsWith('/')) fail(`${f}.source`, `${f}: bind mount needs an absolute source (got ${got(source)})`);
        break;
      case 'volume':
        if (source !== undefined && !VOLUME_NAME_RE.test(sampleExpansion(source))) {
          fail(
            `${f}.source`,
            `${f}: invalid volume name ${got(source)}: use 2 or more characters of [a-zA-Z0-9_.-] starting with a letter or digit, or leave source out for an anonymous volume`,
          );
        }
        break;
      case 'tmpfs':
        if (source !== undefined) fail(`${f}.source`, `${f}: a tmpfs mount takes no source (got ${got(source)})`);
        break;
    }
    const m: MountSpec = source !== undefined ? { type, source, target } : { type, target };
    if (!absent(o.readOnly) && bool(o.readOnly, `${f}.readOnly`)) m.readOnly = true;
    if (!absent(o.tmpfsSizeBytes)) {
      const n = nonNegInt(o.tmpfsSizeBytes, `${f}.tmpfsSizeBytes`);
      if (type !== 'tmpfs' && n > 0) fail(`${f}.tmpfsSizeBytes`, `${f}: tmpfsSizeBytes only applies to tmpfs mounts`);
      if (n > 0) m.tmpfsSizeBytes = n;
    }
    return m;
  });
}

function validateAmounts(v: unknown, field: string, withPids: boolean): ResourceLimits | undefined {
  const o = record(v, field, withPids ? ['nanoCpus', 'memoryBytes', 'pids'] : ['nanoCpus', 'memoryBytes']);
  const out: ResourceLimits = {};
  if (!absent(o.nanoCpus)) {
    const n = nonNegInt(o.nanoCpus, `${field}.nanoCpus`);
    if (n > 0 && n < MIN_NANO_CPUS) fail(`${field}.nanoCpus`, `${field}.nanoCpus must be 0 or at least ${MIN_NANO_CPUS} (0.001 CPU) (got ${n})`);
    if (n > 0) out.nanoCpus = n;
  }
  if (!absent(o.memoryBytes)) {
    const n = nonNegInt(o.memoryBytes, `${field}.memoryBytes`);
    if (n > 0 && n < MIN_MEMORY_BYTES) fail(`${field}.memoryBytes`, `${field}.memoryBytes must be 0 or at least 4 MiB (${MIN_MEMORY_BYTES} bytes) (got ${n})`);
    if (n > 0) out.memoryBytes = n;
  }
  if (withPids && !absent(o.pids)) {
    const n = nonNegInt(o.pids, `${field}.pids`);
    if (n > 0) out.pids = n;
  }
  return Object.keys(out).length ? out : undefined;
}

function validateResources(v: unknown): TaskTemplate['resources'] | undefined {
  const o = record(v, 'task.resources', ['limits', 'reservations']);
  const out: { limits?: ResourceLimits; reservations?: ResourceAmounts } = {};
  if (!absent(o.limits)) {
    const l = validateAmounts(o.limits, 'task.resources.limits', true);
    if (l) out.limits = l;
  }
  if (!absent(o.reservations)) {
    const r = validateAmounts(o.reservations, 'task.resources.reservations', false);
    if (r) out.reservations = r;
  }
  return Object.keys(out).length ? out : undefined;
}

function validateRestartPolicy(v: unknown): RestartPolicy {
  const d = defaultRestartPolicy();
  if (absent(v)) return d;
  const f = 'task.restartPolicy';
  const o = record(v, f, ['condition', 'delayMs', 'maxAttempts', 'windowMs']);
  return {
    condition: absent(o.condition) ? d.condition : oneOf(o.condition, `${f}.condition`, ['none', 'on-failure', 'any'] as const),
    delayMs: absent(o.delayMs) ? d.delayMs : durationMs(o.delayMs, `${f}.delayMs`),
    maxAttempts: absent(o.maxAttempts) ? d.maxAttempts : nonNegInt(o.maxAttempts, `${f}.maxAttempts`),
    windowMs: absent(o.windowMs) ? d.windowMs : durationMs(o.windowMs, `${f}.windowMs`),
  };
}

const SPREAD_RE = /^node\.labels\.[A-Za-z0-9_.\-/]+$/;

function validatePlacement(v: unknown, mode: ServiceMode): Placement | undefined {
  const f = 'task.placement';
  const o = record(v, f, ['constraints', 'preferences', 'maxReplicas', 'platforms']);
  const out: Placement = {};
  if (!absent(o.constraints)) {
    const cs = stringArray(o.constraints, `${f}.constraints`).map((c, i) => {
      const cf = idx(`${f}.constraints`, i);
      try {
        return parseConstraint(c).text;
      } catch (e) {
        if (e instanceof ConstraintError) fail(cf, `${cf}: ${e.message}`);
        throw e;
      }
    });
    if (cs.length) out.constraints = cs;
  }
  if (!absent(o.preferences)) {
    const ps = array(o.preferences, `${f}.preferences`).map((p, i) => {
      const pf = idx(`${f}.preferences`, i);
      const po = record(p, pf, ['spread']);
      if (absent(po.spread)) fail(`${pf}.spread`, `${pf}.spread is required (e.g. node.labels.zone)`);
      const s = string(po.spread, `${pf}.spread`);
      if (!SPREAD_RE.test(s)) fail(`${pf}.spread`, `${pf}.spread must be node.labels.<name> (got ${got(s)})`);
      return { spread: s };
    });
    if (ps.length) out.preferences = ps;
  }
  if (!absent(o.maxReplicas)) {
    const n = nonNegInt(o.maxReplicas, `${f}.maxReplicas`);
    if (n > 0 && ('global' in mode || 'globalJob' in mode)) {
      fail(`${f}.maxReplicas`, `${f}.maxReplicas (--replicas-max-per-node) cannot be used with a global service: it already runs one task per node`);
    }
    if (n > 0) out.maxReplicas = n;
  }
  if (!absent(o.platforms)) {
    const ps = array(o.platforms, `${f}.platforms`).map((p, i) => {
      const pf = idx(`${f}.platforms`, i);
      const po = record(p, pf, ['os', 'arch']);
      const one: { os?: string; arch?: string } = {};
      for (const k of ['os', 'arch'] as const) {
        if (absent(po[k]) || po[k] === '') continue;
        const s = string(po[k], `${pf}.${k}`);
        if (!PLATFORM_RE.test(s)) fail(`${pf}.${k}`, `${pf}.${k} must be a platform name such as ${k === 'os' ? 'linux' : 'amd64'} (got ${got(s)})`);
        one[k] = s;
      }
      if (!one.os && !one.arch) fail(pf, `${pf} needs os or arch (e.g. {"os":"linux","arch":"amd64"})`);
      return one;
    });
    if (ps.length) out.platforms = ps;
  }
  return Object.keys(out).length ? out : undefined;
}

/** An OS or architecture name as image indexes spell them: linux, amd64, arm64/v8, x86_64. */
const PLATFORM_RE = /^[a-z0-9][a-z0-9_.-]*(\/[a-z0-9][a-z0-9_.-]*)?$/i;

const HEALTH_KEYS = ['test', 'intervalMs', 'timeoutMs', 'retries', 'startPeriodMs'] as const;

function validateHealthcheck(v: unknown): HealthCheck {
  const f = 'task.healthcheck';
  const o = record(v, f, HEALTH_KEYS);
  const test = absent(o.test) ? [] : stringArray(o.test, `${f}.test`);
  const shapeOk =
    test.length === 0 ||
    (test[0] === 'NONE' && test.length === 1) ||
    (test[0] === 'CMD' && test.length >= 2 && test[1] !== '') ||
    (test[0] === 'CMD-SHELL' && test.length === 2 && test[1]!.trim() !== '');
  if (!shapeOk) {
    fail(
      `${f}.test`,
      `${f}.test must be [] (use the image's check), ["NONE"], ["CMD", executable, args…] or ["CMD-SHELL", command] (got ${JSON.stringify(test)})`,
    );
  }
  const hc: HealthCheck = { test };
  for (const k of ['intervalMs', 'timeoutMs', 'startPeriodMs'] as const) {
    const x = o[k];
    if (absent(x)) continue;
    if (typeof x !== 'number' || !Number.isSafeInteger(x) || x < 0) {
      fail(`${f}.${k}`, `${f}.${k} must be > 0 (got ${got(x)}; leave it out, or 0, for the default)`);
    }
    if (x > 0) hc[k] = x;
  }
  if (!absent(o.retries)) {
    const n = nonNegInt(o.retries, `${f}.retries`);
    if (n > 0) hc.retries = n;
  }
  return hc;
}

// ------------------------------------------------------------------------------- update / rollback

const UPDATE_KEYS = ['parallelism', 'delayMs', 'failureAction', 'monitorMs', 'maxFailureRatio', 'order'] as const;

function validateUpdateConfig(v: unknown, field: 'update' | 'rollback'): UpdateConfig {
  const d = defaultUpdateConfig();
  const o = record(v, field, UPDATE_KEYS);
  const actions = field === 'update' ? (['pause', 'continue', 'rollback'] as const) : (['pause', 'continue'] as const);
  let ratio = d.maxFailureRatio;
  if (!absent(o.maxFailureRatio)) {
    const r = o.maxFailureRatio;
    if (typeof r !== 'number' || !Number.isFinite(r) || r < 0 || r > 1)
      fail(`${field}.maxFailureRatio`, `${field}.maxFailureRatio must be between 0 and 1 (got ${got(r)})`);
    ratio = r;
  }
  let parallelism = d.parallelism;
  if (!absent(o.parallelism)) {
    const p = o.parallelism;
    if (typeof p !== 'number' || !Number.isSafeInteger(p))
      fail(`${field}.parallelism`, `${field}.parallelism must be an integer ≥ 0 (got ${got(p)}; 0 updates all tasks at once)`);
    if (p < 0) fail(`${field}.parallelism`, `${field}.parallelism must be ≥ 0 (got ${p}; 0 updates all tasks at once)`);
    parallelism = p;
  }
  return {
    parallelism,
    delayMs: absent(o.delayMs) ? d.delayMs : durationMs(o.delayMs, `${field}.delayMs`),
    failureAction: absent(o.failureAction) ? d.failureAction : oneOf(o.failureAction, `${field}.failureAction`, actions),
    monitorMs: absent(o.monitorMs) ? d.monitorMs : durationMs(o.monitorMs, `${field}.monitorMs`),
    maxFailureRatio: ratio,
    order: absent(o.order) ? d.order : oneOf(o.order, `${field}.order`, ['stop-first', 'start-first'] as const),
  };
}

// ------------------------------------------------------------------------------ networks / endpoint

function validateNetworks(v: unknown): NetworkAttachmentConfig[] {
  if (absent(v)) return [];
  const seen = new Map<string, number>();
  return array(v, 'networks').map((raw, i) => {
    const f = idx('networks', i);
    const o = record(raw, f, ['target', 'aliases']);
    if (absent(o.target) || o.target === '') fail(`${f}.target`, `${f}.target is required (a network name or id)`);
    const target = string(o.target, `${f}.target`);
    if (/\s/.test(target)) fail(`${f}.target`, `${f}.target must be a network name or id (got ${got(target)})`);
    const prev = seen.get(target);
    if (prev !== undefined) fail(f, `${f}: network ${target} is attached twice (also networks[${prev}])`);
    seen.set(target, i);
    const n: NetworkAttachmentConfig = { target };
    if (!absent(o.aliases)) {
      const aliases = stringArray(o.aliases, `${f}.aliases`);
      aliases.forEach((a, j) => {
        const af = idx(`${f}.aliases`, j);
        if (a === '' || /\s/.test(a)) fail(af, `${af} must be a non-empty name without whitespace (got ${got(a)})`);
        checkTemplates(a, af);
      });
      if (aliases.length) n.aliases = aliases;
    }
    return n;
  });
}

const PORT_KEYS = ['name', 'protocol', 'targetPort', 'publishedPort', 'publishMode'] as const;

function port(v: unknown, field: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > 65535) fail(field, `${field} must be an integer 1–65535 (got ${got(v)})`);
  return v;
}

function validateEndpoint(v: unknown): EndpointSpec {
  if (absent(v)) return { mode: 'vip', ports: [] };
  const o = record(v, 'endpoint', ['mode', 'ports']);
  const mode = absent(o.mode) ? 'vip' : oneOf(o.mode, 'endpoint.mode', ['vip', 'dnsrr'] as const);
  const seen = new Map<string, number>();
  const ports = absent(o.ports)
    ? []
    : array(o.ports, 'endpoint.ports').map((raw, i): PortConfig => {
        const f = idx('endpoint.ports', i);
        const p = record(raw, f, PORT_KEYS);
        const protocol = absent(p.protocol) ? 'tcp' : oneOf(p.protocol, `${f}.protocol`, ['tcp', 'udp', 'sctp'] as const);
        if (absent(p.targetPort)) fail(`${f}.targetPort`, `${f}.targetPort is required (the port inside the container)`);
        const targetPort = port(p.targetPort, `${f}.targetPort`);
        const publishMode = absent(p.publishMode) ? 'ingress' : oneOf(p.publishMode, `${f}.publishMode`, ['ingress', 'host'] as const);
        const out: PortConfig = { protocol, targetPort, publishMode };
        if (!absent(p.name) && p.name !== '') out.name = string(p.name, `${f}.name`);
        if (!absent(p.publishedPort) && p.publishedPort !== 0) out.publishedPort = port(p.publishedPort, `${f}.publishedPort`);
        if (mode === 'dnsrr' && publishMode === 'ingress') {
          fail(
            f,
            `${f}: port ${targetPort}/${protocol} is published in ingress mode, which cannot be used with endpoint mode dnsrr (publish it with publishMode host)`,
          );
        }
        if (out.publishedPort !== undefined) {
          const key = `${out.publishedPort}/${protocol}`;
          const prev = seen.get(key);
          if (prev !== undefined) fail(f, `${f}: published port ${key} is used twice (also endpoint.ports[${prev}])`);
          seen.set(key, i);
        }
        // Canonical key order.
        return {
          ...(out.name !== undefined ? { name: out.name } : {}),
          protocol,
          targetPort,
          ...(out.publishedPort !== undefined ? { publishedPort: out.publishedPort } : {}),
          publishMode,
        };
      });
  return { mode, ports };
}

// ---------------------------------------------------------------------------------------- autoscale

/** A target percentage: a whole number 1–100 (`70` or `"70%"`). */
function percent(v: unknown, field: string): number {
  const n = typeof v === 'string' && /^\s*\d+\s*%\s*$/.test(v) ? Number(v.replace(/[\s%]/g, '')) : v;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > 100) fail(field, `${field} must be a whole percentage from 1 to 100 (got ${got(v)})`);
  return n;
}

/**
 * autoscale: { min, max, cpu?, memory?, windowMs?, cooldowns?: { outMs?, inMs? } } — replicated services
 * only; 1 ≤ min ≤ max (max ≤ limits.maxReplicas: checkSpecLimits); at least one target; a memory target
 * needs a memory limit (it is a percentage of it). Defaults: manager/autoscale/decide.ts.
 */
function validateAutoscale(v: unknown, mode: ServiceMode, task: TaskTemplate): AutoscaleSpec {
  const o = record(v, 'autoscale', ['min', 'max', 'cpu', 'memory', 'windowMs', 'cooldowns']);
  if (!('replicated' in mode)) fail('autoscale', `autoscale: only a replicated service can be autoscaled (this one is ${modeKind(mode)})`);
  if (absent(o.min)) fail('autoscale.min', 'autoscale.min is required (the fewest replicas)');
  if (absent(o.max)) fail('autoscale.max', 'autoscale.max is required (the most replicas)');
  const min = nonNegInt(o.min, 'autoscale.min', 'a whole number ≥ 1');
  if (min < 1) fail('autoscale.min', 'autoscale.min must be a whole number ≥ 1 (got 0)');
  const max = nonNegInt(o.max, 'autoscale.max', 'a whole number ≥ 1');
  if (max < min) fail('autoscale.max', `autoscale.max (${max}) must not be below autoscale.min (${min})`);
  const d = defaultAutoscale();
  const out: AutoscaleSpec = { min, max, windowMs: d.windowMs, cooldowns: { ...d.cooldowns } };
  if (!absent(o.cpu)) out.cpu = percent(o.cpu, 'autoscale.cpu');
  if (!absent(o.memory)) {
    out.memory = percent(o.memory, 'autoscale.memory');
    if (!task.resources?.limits?.memoryBytes)
      fail('autoscale.memory', 'autoscale.memory is a percentage of the task memory limit: set task.resources.limits.memoryBytes (--limit-memory)');
  }
  if (out.cpu === undefined && out.memory === undefined) fail('autoscale', 'autoscale needs at least one target: cpu or memory (e.g. cpu=70%)');
  if (!absent(o.windowMs)) {
    out.windowMs = durationMs(o.windowMs, 'autoscale.windowMs');
    if (out.windowMs < 1000) fail('autoscale.windowMs', `autoscale.windowMs must be at least 1000 (1s) (got ${out.windowMs})`);
  }
  if (!absent(o.cooldowns)) {
    const c = record(o.cooldowns, 'autoscale.cooldowns', ['outMs', 'inMs']);
    if (!absent(c.outMs)) out.cooldowns.outMs = durationMs(c.outMs, 'autoscale.cooldowns.outMs');
    if (!absent(c.inMs)) out.cooldowns.inMs = durationMs(c.inMs, 'autoscale.cooldowns.inMs');
  }
  // Canonical key order.
  const ordered: AutoscaleSpec = { min: out.min, max: out.max } as AutoscaleSpec;
  if (out.cpu !== undefined) ordered.cpu = out.cpu;
  if (out.memory !== undefined) ordered.memory = out.memory;
  ordered.windowMs = out.windowMs;
  ordered.cooldowns = out.cooldowns;
  return ordered;
}

// ------------------------------------------------------------------------------------------- entry

const SPEC_KEYS = ['name', 'labels', 'mode', 'task', 'update', 'rollback', 'networks', 'endpoint', 'autoscale'] as const;

/**
 * Checks every field of a service spec and returns a normalised copy (defaults filled in, canonical key
 * order, "no value" forms dropped). Throws SpecError (code EINVALIDSPEC, `.field` the dotted path) on the
 * first problem, and LimitExceededError (naming the setting) when the spec asks for more than the
 * cluster's `limits` allow (checkSpecLimits). Jobs (replicated-job, global-job) take no update or rollback
 * config, as in Docker; for other services both are filled with defaults. The input is not modified.
 */
export function validateServiceSpec(spec: unknown, limits: ClusterLimits = DEFAULT_LIMITS): ServiceSpec {
  const o = record(spec, '', SPEC_KEYS);
  const name = validateName(o.name);
  const lbls = absent(o.labels) ? {} : labelMap(o.labels, 'labels');
  const mode = validateMode(o.mode);
  const task = validateTask(o.task, mode);
  const job = isJobMode(mode);
  const out: ServiceSpec = { name, labels: lbls, mode, task, networks: [], endpoint: { mode: 'vip', ports: [] } };
  for (const k of ['update', 'rollback'] as const) {
    if (!absent(o[k])) {
      if (job) fail(k, `${k}: a job (replicated-job or global-job) cannot have an ${k} config: jobs are re-run, not rolled out`);
      out[k] = validateUpdateConfig(o[k], k);
    } else if (!job) {
      out[k] = defaultUpdateConfig();
    }
  }
  out.networks = validateNetworks(o.networks);
  out.endpoint = validateEndpoint(o.endpoint);
  // Canonical key order.
  const ordered: ServiceSpec = { name: out.name, labels: out.labels, mode: out.mode, task: out.task } as ServiceSpec;
  if (out.update) ordered.update = out.update;
  if (out.rollback) ordered.rollback = out.rollback;
  ordered.networks = out.networks;
  ordered.endpoint = out.endpoint;
  if (!absent(o.autoscale)) ordered.autoscale = validateAutoscale(o.autoscale, mode, task);
  checkSpecLimits(ordered, limits);
  return ordered;
}

/**
 * The cluster limits a (valid) service spec must stay within: replicas (job completions and concurrency
 * count as replicas), labels, the name's length, and its encoded size. Throws LimitExceededError.
 */
export function checkSpecLimits(spec: ServiceSpec | Frozen<ServiceSpec>, limits: ClusterLimits): void {
  const m = spec.mode;
  if ('replicated' in m) checkReplicas(m.replicated.replicas, limits, 'mode.replicated.replicas');
  if (spec.autoscale) checkReplicas(spec.autoscale.max, limits, 'autoscale.max');
  if ('replicatedJob' in m) {
    checkReplicas(m.replicatedJob.totalCompletions, limits, 'mode.replicatedJob.totalCompletions');
    checkReplicas(m.replicatedJob.maxConcurrent, limits, 'mode.replicatedJob.maxConcurrent');
  }
  checkName(spec.name, limits, 'name');
  checkLabels(spec.labels, limits, 'labels');
  checkLabels(spec.task.labels, limits, 'task.labels');
  checkServiceSpecBytes(Buffer.byteLength(JSON.stringify(spec), 'utf8'), limits);
}

// -------------------------------------------------------------------------------------------- diff

export type SpecPart = (typeof SPEC_KEYS)[number];

export interface SpecDiff {
  /** Top-level parts whose content differs (ServiceSpec key order). Empty when the specs are equal. */
  changed: SpecPart[];
  /** The name differs. Docker refuses renames; the update API should too. */
  renamed: boolean;
  /** The kind of mode differs (e.g. replicated → global). Docker refuses this; the update API should too. */
  modeKindChanged: boolean;
  /** Same mode kind, different counts (replicas, maxConcurrent, totalCompletions): a scale, no task is replaced. */
  scale: boolean;
  /**
   * Tasks must be replaced (a rolling update for services, a re-run for jobs): the task template
   * (including forceUpdate), the networks or the endpoint differ.
   */
  rollingUpdate: boolean;
  /** Only labels, update/rollback config and/or autoscale differ: store the spec, touch no task. */
  metadataOnly: boolean;
}

/**
 * What changed between two (validated) specs `a` (current) and `b` (new), for the update API.
 */
export function specDiff(a: ServiceSpec | Frozen<ServiceSpec>, b: ServiceSpec | Frozen<ServiceSpec>): SpecDiff {
  const changed = SPEC_KEYS.filter((k) => !jsonEqual(a[k], b[k]));
  const has = (k: SpecPart) => changed.includes(k);
  const modeKindChanged = modeKind(a.mode) !== modeKind(b.mode);
  return {
    changed,
    renamed: has('name'),
    modeKindChanged,
    scale: has('mode') && !modeKindChanged,
    rollingUpdate: has('task') || has('networks') || has('endpoint'),
    metadataOnly: changed.length > 0 && changed.every((k) => k === 'labels' || k === 'update' || k === 'rollback' || k === 'autoscale'),
  };
}
