// A loaded compose project → the Shoal objects of one stack, named and labelled as `docker stack
// deploy` names and labels them, so a later Docker-API front sees the same stacks.
//
// API (everything pure; stack/fs.ts is the only file that touches the disk):
//
//   loadCompose({ files, cwd, env, fs })        stack/compose/load.ts → ComposeProject (+ .warnings)
//   convertStack(project, namespace)            this file → Stack: services (validated ServiceSpec +
//                                               secret/config references), networks, volumes, secrets,
//                                               configs, all labelled com.docker.stack.namespace=NS
//   planDeploy(stack, existing, { prune })      stack/plan.ts → the ordered steps of a deploy (or a
//                                               PlanError before anything is created)
//   planRemove(namespace, existing)             stack/plan.ts → the removals of `stack rm`
//   errors: ComposeError (file:line:key problems), ComposeFileError, PlanError, StackNameError
//
// Naming (Docker's): every object NS_<key>, unless the compose file gives `name:` (networks, volumes,
// secrets, configs) or it is external (then its own name, or the key). Services always NS_<key>.
// Labels: every created object carries com.docker.stack.namespace=NS; services also
// com.docker.stack.image=<image>, and the namespace label is on the container labels too. A service
// that names no network joins NS_default; on each network its aliases are its key plus the aliases the
// file gives. Units are Shoal's: milliseconds, bytes, nano-CPUs.
//
// Every converted spec is run through manager/service/spec.ts validateServiceSpec here, so what a deploy
// sends is exactly what the control API will accept (a Shoal-side rule the compose schema does not know
// becomes a ComposeError naming the service). Secrets and configs used by a service are kept in separate
// lists on StackService (the service spec has no field for them yet): nothing is dropped silently.
import type { NetworkSpec, ServiceSpec } from '../api/objects.ts';
import { SpecError, validateServiceSpec } from '../manager/service/spec.ts';
import { ComposeError, type Pos, type Problem } from './compose/errors.ts';
import { parseDuration } from './compose/units.ts';
import type { ComposeFileRef, ComposeProject, ComposeService } from './compose/types.ts';

export const NAMESPACE_LABEL = 'com.docker.stack.namespace';
export const IMAGE_LABEL = 'com.docker.stack.image';
/** Docker's defaults for a secret/config file in the container. */
export const DEFAULT_FILE_MODE = 0o444;

export class StackNameError extends Error {
  readonly code = 'ESTACKNAME';
  constructor(message: string) {
    super(message);
    this.name = 'StackNameError';
  }
}

/** How a service uses a secret or config: Docker's {source, target, uid, gid, mode} with the object's real name. */
export interface FileReference {
  /** The secret/config object's name (NS_key, its `name:`, or the external name). */
  source: string;
  /** The key in the compose file. */
  key: string;
  /** Absolute path in the container. */
  target: string;
  uid: string;
  gid: string;
  mode: number;
}

export interface StackService {
  key: string;
  name: string;
  /** Validated and normalised (validateServiceSpec). */
  spec: ServiceSpec;
  secrets: FileReference[];
  configs: FileReference[];
  /** `x-shoal-*` fields of the service as written (x-shoal-autoscale is also converted into spec.autoscale). */
  extensions: Record<string, unknown>;
  pos: Pos;
}

export interface StackNetwork {
  key: string;
  name: string;
  external: boolean;
  /** What to create (absent for external networks). */
  spec?: NetworkSpec;
  pos: Pos;
}

export interface StackVolume {
  key: string;
  name: string;
  external: boolean;
  labels: Record<string, string>;
}

export interface StackFileObject {
  key: string;
  name: string;
  external: boolean;
  /** Absolute path of the data (absent for external objects). */
  file?: string;
  labels: Record<string, string>;
  pos: Pos;
}

export interface Stack {
  namespace: string;
  services: StackService[];
  /** Only the networks some service uses (Docker creates no others). */
  networks: StackNetwork[];
  volumes: StackVolume[];
  secrets: StackFileObject[];
  configs: StackFileObject[];
  warnings: string[];
}

const NAMESPACE_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

/** Docker's rule for stack names, plus a length that leaves room for `_<key>` in a 63-character name. */
export function validateNamespace(ns: string): void {
  if (!NAMESPACE_RE.test(ns))
    throw new StackNameError(`invalid stack name ${JSON.stringify(ns)}: use letters, digits, _, . and -, starting with a letter or digit`);
  if (ns.length > 50) throw new StackNameError(`invalid stack name ${JSON.stringify(ns)}: at most 50 characters`);
}

function withNamespace(labels: Record<string, string>, ns: string): Record<string, string> {
  return { ...labels, [NAMESPACE_LABEL]: ns };
}

const scoped = (ns: string, key: string) => `${ns}_${key}`;

function objectName(ns: string, o: { key: string; name?: string; external: boolean }): string {
  return o.name ?? (o.external ? o.key : scoped(ns, o.key));
}

/** Compose paths for the top-level parts of a Shoal spec, so validation messages point at the right option. */
const SPEC_TO_COMPOSE: [string, string][] = [
  ['task.placement', 'deploy.placement'],
  ['task.resources', 'deploy.resources'],
  ['task.restartPolicy', 'deploy.restart_policy'],
  ['task.healthcheck', 'healthcheck'],
  ['task.mounts', 'volumes'],
  ['task.image', 'image'],
  ['task.command', 'entrypoint'],
  ['task.args', 'command'],
  ['task.env', 'environment'],
  ['task.workdir', 'working_dir'],
  ['task.user', 'user'],
  ['task.hostname', 'hostname'],
  ['task.labels', 'labels'],
  ['task.stopSignal', 'stop_signal'],
  ['task.stopGracePeriodMs', 'stop_grace_period'],
  ['task.capabilityAdd', 'cap_add'],
  ['task.capabilityDrop', 'cap_drop'],
  ['task.init', 'init'],
  ['task.readOnly', 'read_only'],
  ['task.sysctls', 'sysctls'],
  ['task.ulimits', 'ulimits'],
  ['endpoint.ports', 'ports'],
  ['endpoint', 'deploy.endpoint_mode'],
  ['update', 'deploy.update_config'],
  ['rollback', 'deploy.rollback_config'],
  ['autoscale', 'x-shoal-autoscale'],
  ['mode', 'deploy'],
  ['labels', 'deploy.labels'],
  ['networks', 'networks'],
  ['name', ''],
];

function composeKey(svc: string, field: string): string {
  for (const [from, to] of SPEC_TO_COMPOSE) {
    if (field === from || field.startsWith(`${from}.`) || field.startsWith(`${from}[`)) return to ? `services.${svc}.${to}` : `services.${svc}`;
  }
  return `services.${svc}`;
}

function fileRefs(ns: string, refs: ComposeFileRef[], objects: ComposeProject['secrets'], kind: 'secret' | 'config'): FileReference[] {
  return refs.map((r) => {
    const o = objects.find((x) => x.key === r.source)!;
    const t = r.target ?? r.source;
    const target = t.startsWith('/') ? t : kind === 'secret' ? `/run/secrets/${t}` : `/${t}`;
    return { source: objectName(ns, o), key: r.source, target, uid: r.uid ?? '0', gid: r.gid ?? '0', mode: r.mode ?? DEFAULT_FILE_MODE };
  });
}

/** The ServiceSpec draft of one compose service (before validation). */
export function serviceDraft(ns: string, s: ComposeService, project: ComposeProject): Record<string, unknown> {
  const d = s.deploy;
  const netName = (key: string) => objectName(ns, project.networks.find((n) => n.key === key)!);
  const volName = (key: string) => objectName(ns, project.volumes.find((v) => v.key === key)!);
  const replicas = d.replicas ?? 1;
  const mode =
    d.mode === 'global'
      ? { global: {} }
      : d.mode === 'global-job'
        ? { globalJob: {} }
        : d.mode === 'replicated-job'
          ? { replicatedJob: { maxConcurrent: replicas, totalCompletions: replicas } }
          : { replicated: { replicas } };
  const task: Record<string, unknown> = { image: s.image };
  if (s.entrypoint) task.command = s.entrypoint;
  if (s.command) task.args = s.command;
  const env = Object.entries(s.environment).map(([k, v]) => `${k}=${v}`);
  if (env.length) task.env = env;
  if (s.workingDir) task.workdir = s.workingDir;
  if (s.user) task.user = s.user;
  if (s.hostname) task.hostname = s.hostname;
  task.labels = withNamespace(s.labels, ns);
  if (s.mounts.length) {
    task.mounts = s.mounts.map((m) => ({
      type: m.type,
      ...(m.source !== undefined ? { source: m.type === 'volume' ? volName(m.source) : m.source } : {}),
      target: m.target,
      ...(m.readOnly ? { readOnly: true } : {}),
      ...(m.tmpfsSizeBytes ? { tmpfsSizeBytes: m.tmpfsSizeBytes } : {}),
    }));
  }
  const resources: Record<string, unknown> = {};
  if (d.limits && Object.keys(d.limits).length) resources.limits = { ...d.limits };
  if (d.reservations && Object.keys(d.reservations).length) resources.reservations = { ...d.reservations };
  if (Object.keys(resources).length) task.resources = resources;
  if (d.restartPolicy) task.restartPolicy = { ...d.restartPolicy };
  const placement: Record<string, unknown> = {};
  if (d.constraints.length) placement.constraints = d.constraints;
  if (d.preferences.length) placement.preferences = d.preferences.map((spread) => ({ spread }));
  if (d.maxReplicasPerNode) placement.maxReplicas = d.maxReplicasPerNode;
  if (Object.keys(placement).length) task.placement = placement;
  if (s.healthcheck) task.healthcheck = { ...s.healthcheck };
  if (s.stopSignal) task.stopSignal = s.stopSignal;
  if (s.stopGracePeriodMs !== undefined) task.stopGracePeriodMs = s.stopGracePeriodMs;
  if (s.confinement) Object.assign(task, s.confinement);

  const nets = (s.networks ?? [{ key: 'default', aliases: [], pos: s.pos }])
    .map((n) => ({ target: netName(n.key), aliases: [s.key, ...n.aliases.filter((a) => a !== s.key)] }))
    .sort((a, b) => (a.target < b.target ? -1 : a.target > b.target ? 1 : 0));
  const draft: Record<string, unknown> = {
    name: scoped(ns, s.key),
    labels: { ...withNamespace(d.labels, ns), [IMAGE_LABEL]: s.image },
    mode,
    task,
    networks: nets,
    endpoint: {
      mode: d.endpointMode ?? 'vip',
      ports: s.ports.map((p) => ({
        ...(p.name ? { name: p.name } : {}),
        protocol: p.protocol,
        targetPort: p.target,
        ...(p.published !== undefined ? { publishedPort: p.published } : {}),
        publishMode: p.mode,
      })),
    },
  };
  if (d.updateConfig) draft.update = { ...d.updateConfig };
  if (d.rollbackConfig) draft.rollback = { ...d.rollbackConfig };
  const auto = s.extensions['x-shoal-autoscale'];
  if (auto !== undefined && auto !== null) draft.autoscale = autoscaleDraft(auto);
  return draft;
}

const AUTOSCALE_COMPOSE_KEYS = ['min', 'max', 'cpu', 'memory', 'window', 'cooldown', 'cooldown_out', 'cooldown_in'];

/**
 * `x-shoal-autoscale: { min, max, cpu: 70%, memory: 80%, window: 5m, cooldown: 30s | cooldown_out, cooldown_in }`
 * → the spec's autoscale draft (validateServiceSpec checks the values). Durations are compose durations.
 */
function autoscaleDraft(v: unknown): unknown {
  if (typeof v !== 'object' || Array.isArray(v)) return v; // the validator names the problem
  const o = v as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  const cooldowns: Record<string, unknown> = {};
  const duration = (key: string, field: string): number => {
    const x = o[key];
    const p = parseDuration(typeof x === 'number' || typeof x === 'string' ? x : String(x));
    if (!p.ok) throw new SpecError(field, `${key} ${p.message}`);
    return p.value;
  };
  for (const k of Object.keys(o)) {
    if (!AUTOSCALE_COMPOSE_KEYS.includes(k)) throw new SpecError('autoscale', `unknown key ${k} (known: ${AUTOSCALE_COMPOSE_KEYS.join(', ')})`);
  }
  for (const k of ['min', 'max', 'cpu', 'memory']) if (o[k] !== undefined) out[k] = o[k];
  if (o.window !== undefined) out.windowMs = duration('window', 'autoscale.windowMs');
  if (o.cooldown !== undefined) cooldowns.outMs = cooldowns.inMs = duration('cooldown', 'autoscale.cooldowns');
  if (o.cooldown_out !== undefined) cooldowns.outMs = duration('cooldown_out', 'autoscale.cooldowns.outMs');
  if (o.cooldown_in !== undefined) cooldowns.inMs = duration('cooldown_in', 'autoscale.cooldowns.inMs');
  if (Object.keys(cooldowns).length) out.cooldowns = cooldowns;
  return out;
}

/** Converts a loaded project into the objects of stack `namespace`. Throws StackNameError or ComposeError. */
export function convertStack(project: ComposeProject, namespace: string): Stack {
  validateNamespace(namespace);
  const ns = namespace;
  const problems: Problem[] = [];
  const services: StackService[] = [];
  for (const s of project.services) {
    try {
      const spec = validateServiceSpec(serviceDraft(ns, s, project));
      services.push({
        key: s.key,
        name: spec.name,
        spec,
        secrets: fileRefs(ns, s.secrets, project.secrets, 'secret'),
        configs: fileRefs(ns, s.configs, project.configs, 'config'),
        extensions: s.extensions,
        pos: s.pos,
      });
    } catch (e) {
      if (!(e instanceof SpecError)) throw e;
      problems.push({ pos: s.pos, key: composeKey(s.key, e.field), message: e.message });
    }
  }
  const used = new Set(project.services.flatMap((s) => (s.networks ?? [{ key: 'default' }]).map((n) => n.key)));
  const networks: StackNetwork[] = project.networks
    .filter((n) => used.has(n.key))
    .map((n) => {
      const name = objectName(ns, n);
      if (n.external) return { key: n.key, name, external: true, pos: n.pos };
      const spec: NetworkSpec = {
        name,
        driver: 'overlay',
        labels: withNamespace(n.labels, ns),
        ipam: { configs: n.ipam?.subnet ? [{ subnet: n.ipam.subnet, ...(n.ipam.gateway ? { gateway: n.ipam.gateway } : {}) }] : [] },
        attachable: n.attachable,
        internal: n.internal,
      };
      return { key: n.key, name, external: false, spec, pos: n.pos };
    });
  const fileObjects = (list: ComposeProject['secrets']): StackFileObject[] =>
    list.map((o) => ({
      key: o.key,
      name: objectName(ns, o),
      external: o.external,
      ...(o.file !== undefined && !o.external ? { file: o.file } : {}),
      labels: o.external ? {} : withNamespace(o.labels, ns),
      pos: o.pos,
    }));
  if (problems.length) throw new ComposeError(problems);
  return {
    namespace: ns,
    services,
    networks,
    volumes: project.volumes.map((v) => ({ key: v.key, name: objectName(ns, v), external: v.external, labels: v.external ? {} : withNamespace(v.labels, ns) })),
    secrets: fileObjects(project.secrets),
    configs: fileObjects(project.configs),
    warnings: [...project.warnings],
  };
}
