// `shoal stack deploy|ls|services|ps|rm`: compose applications, as `docker stack` runs them. A stack is
// not a store object: like Docker's client, this command reads the files, converts them (stack/: load →
// convertStack → planDeploy/planRemove, all pure) and carries the plan out through the ordinary control
// API — networks, secrets, configs, then services — finding the stack's objects again by their
// com.docker.stack.namespace label. This file is the thin I/O around that library: listing what exists,
// one request per step, waiting for convergence and for removals. Flags are declared in cli/commands.ts.
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ConfigReference, Network, Node, SecretReference, Service, ServiceSpec, Task } from '../api/objects.ts';
import { ComposeError, ComposeFileError } from '../stack/compose/errors.ts';
import { loadCompose, type StackFiles } from '../stack/compose/load.ts';
import { NAMESPACE_LABEL, StackNameError, convertStack, validateNamespace, type FileReference, type Stack, type StackService } from '../stack/convert.ts';
import { nodeStackFiles } from '../stack/fs.ts';
import { PlanError, planDeploy, planRemove, type Existing, type ExistingObject, type ExistingService, type PlanStep, type DeployPlan } from '../stack/plan.ts';
import type { Invocation } from './command.ts';
import { CliError, control, type Context } from '../client/context.ts';
import { cap, humanAgo, renderListing, type Listing } from './format.ts';
import { serviceListing } from './service.ts';

/** A service as GET /v1/services answers: the store's object plus its replica counts. */
type ServiceView = Service & { replicas: { running: number; desired: number | null } };

/** A secret or config as the control API lists it (never with a secret's data). */
interface FileObjectView {
  id: string;
  version: number;
  spec: { name: string; labels?: Record<string, string> };
}

/** How the control API's task template names a secret/config a task uses (api/objects.ts). */
interface WireFileReference {
  target: { name: string; uid: string; gid: string; mode: number };
  secretId?: string;
  secretName?: string;
  configId?: string;
  configName?: string;
}

/** The one line a stack that uses secrets/configs gets on a cluster without the API for them. */
export const NO_SECRETS_MESSAGE = 'secrets are not supported by this cluster yet';
export const NO_CONFIGS_MESSAGE = 'configs are not supported by this cluster yet';

/** Bounds of the waits (a stack of a few dozen services converges well within them on a lab). */
const CONVERGE_TIMEOUT_MS = 180_000;
const REMOVE_TIMEOUT_MS = 120_000;
const POLL_MS = 250;
/** Service requests in flight at once (the managers batch concurrent writes into fewer Raft rounds). */
const PARALLEL_REQUESTS = 8;

/**
 * Runs `fn` over the items in batches of at most `n`, each batch finishing before the next starts; the
 * first failure ends it after its batch has settled (a deploy is re-runnable: the next run finishes).
 */
async function inBatches<T>(items: readonly T[], n: number, fn: (item: T) => Promise<unknown>): Promise<void> {
  for (let i = 0; i < items.length; i += n) {
    const settled = await Promise.allSettled(items.slice(i, i + n).map(fn));
    const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
  }
}

const unpinned = (image: string) => (image.includes('@') ? image.slice(0, image.indexOf('@')) : image);
const hasNamespace = (labels: Readonly<Record<string, string>> | undefined, ns?: string) =>
  labels !== undefined && (ns === undefined ? labels[NAMESPACE_LABEL] !== undefined : labels[NAMESPACE_LABEL] === ns);

// ---------------------------------------------------------------------------------- pure conversions

/** A secret/config target as the stack library writes it: an absolute path. */
export function absoluteTarget(kind: 'secret' | 'config', name: string): string {
  return name.startsWith('/') ? name : kind === 'secret' ? `/run/secrets/${name}` : `/${name}`;
}

/**
 * The references of a service's task template, read back as the stack library's FileReferences (the
 * compose key is taken from the stack being deployed, so an unchanged file compares equal).
 */
export function readReferences(kind: 'secret' | 'config', refs: readonly WireFileReference[] | undefined, stack: Stack): FileReference[] {
  const objects = kind === 'secret' ? stack.secrets : stack.configs;
  return (refs ?? []).map((r) => {
    const source = (kind === 'secret' ? r.secretName : r.configName) ?? '';
    return {
      source,
      key: objects.find((o) => o.name === source)?.key ?? source,
      target: absoluteTarget(kind, r.target.name),
      uid: r.target.uid,
      gid: r.target.gid,
      mode: r.target.mode,
    };
  });
}

/**
 * A stored service as the deploy plan compares it: the image without the digest the managers pinned
 * (the file names a tag; an unchanged tag is an unchanged service), and secret/config references kept
 * beside the spec, as the stack library keeps them. `withFiles`: the cluster has secrets and configs
 * (otherwise the references are left out of the comparison, as the library does).
 */
export function existingService(s: Service, stack: Stack, withFiles: boolean): ExistingService {
  const { secrets, configs, ...task } = s.spec.task as ServiceSpec['task'] & { secrets?: WireFileReference[]; configs?: WireFileReference[] };
  const spec: ServiceSpec = { ...s.spec, task: { ...task, image: unpinned(task.image) } } as ServiceSpec;
  const out: ExistingService = { id: s.id, name: s.spec.name, labels: s.spec.labels ?? {}, spec };
  if (withFiles) {
    out.secrets = readReferences('secret', secrets, stack);
    out.configs = readReferences('config', configs, stack);
  }
  return out;
}

/** The spec to send for a stack service: its secret/config references resolved to the objects' ids. */
export function specWithFiles(s: StackService, spec: ServiceSpec, ids: { secrets: Map<string, string>; configs: Map<string, string> }): ServiceSpec {
  if (s.secrets.length === 0 && s.configs.length === 0) return spec;
  const idOf = (kind: 'secret' | 'config', r: FileReference): string => {
    const id = (kind === 'secret' ? ids.secrets : ids.configs).get(r.source);
    if (id === undefined) throw new CliError(`${kind} ${r.source} (used by service ${s.name}) does not exist`);
    return id;
  };
  // Docker's File.Name: a secret's is relative to /run/secrets, a config's is its path.
  const target = (kind: 'secret' | 'config', r: FileReference) => ({
    name: kind === 'secret' && r.target.startsWith('/run/secrets/') ? r.target.slice('/run/secrets/'.length) : r.target,
    uid: r.uid,
    gid: r.gid,
    mode: r.mode,
  });
  const task: ServiceSpec['task'] = { ...spec.task };
  if (s.secrets.length)
    task.secrets = s.secrets.map((r): SecretReference => ({ secretId: idOf('secret', r), secretName: r.source, target: target('secret', r) }));
  if (s.configs.length)
    task.configs = s.configs.map((r): ConfigReference => ({ configId: idOf('config', r), configName: r.source, target: target('config', r) }));
  return { ...spec, task };
}

/** The line Docker prints for a step (nothing for unchanged objects). */
export function stepLine(step: PlanStep): string | null {
  switch (step.action) {
    case 'create':
      return `Creating ${step.kind} ${step.name}`;
    case 'update':
      return step.kind === 'service' ? `Updating service ${step.name} (id: ${step.id})` : `Updating ${step.kind} ${step.name}`;
    case 'remove':
      return `Removing ${step.kind} ${step.name}`;
    default:
      return null;
  }
}

// ----------------------------------------------------------------------------------------- listing

/** The secret/config API answers "no endpoint" on a cluster that has none yet. */
async function listFileObjects(ctx: Context, kind: 'secrets' | 'configs'): Promise<FileObjectView[] | null> {
  try {
    return await control<FileObjectView[]>(ctx, 'GET', `/v1/${kind}`);
  } catch (e) {
    if (e instanceof CliError && /^no endpoint /.test(e.message)) return null;
    throw e;
  }
}

interface Cluster {
  services: ServiceView[];
  networks: Network[];
  /** null: the cluster has no secret (config) API. */
  secrets: FileObjectView[] | null;
  configs: FileObjectView[] | null;
}

async function listCluster(ctx: Context): Promise<Cluster> {
  const [services, networks, secrets, configs] = await Promise.all([
    control<ServiceView[]>(ctx, 'GET', '/v1/services'),
    control<Network[]>(ctx, 'GET', '/v1/networks'),
    listFileObjects(ctx, 'secrets'),
    listFileObjects(ctx, 'configs'),
  ]);
  return { services, networks, secrets, configs };
}

const fileObject = (o: FileObjectView): ExistingObject => ({ id: o.id, name: o.spec.name, labels: o.spec.labels ?? {} });

function existingOf(c: Cluster, stack: Stack | null): Existing {
  const withFiles = c.secrets !== null && c.configs !== null;
  return {
    services: c.services.map((s) =>
      stack ? existingService(s, stack, withFiles) : { id: s.id, name: s.spec.name, labels: s.spec.labels ?? {}, spec: s.spec },
    ),
    networks: c.networks.map((n) => ({ id: n.id, name: n.spec.name, labels: n.spec.labels ?? {}, spec: n.spec })),
    secrets: (c.secrets ?? []).map(fileObject),
    configs: (c.configs ?? []).map(fileObject),
  };
}

// ------------------------------------------------------------------------------------------ deploy

/** The compose files: real ones, and `-` for standard input (read once, shown as "-"). */
function composeFiles(files: readonly string[], cwd: string): StackFiles {
  if (!files.includes('-')) return nodeStackFiles;
  const stdinPath = resolve(cwd, '-');
  let text: string | undefined;
  return {
    exists: (p) => (p === stdinPath ? true : nodeStackFiles.exists(p)),
    readFile: (p) => {
      if (p !== stdinPath) return nodeStackFiles.readFile(p);
      text ??= readFileSync(0, 'utf8');
      return text;
    },
  };
}

/** The library's errors are the user's to fix: one message, no stack trace. */
function userError(e: unknown): never {
  if (e instanceof ComposeError || e instanceof ComposeFileError || e instanceof StackNameError || e instanceof PlanError) throw new CliError(e.message);
  throw e;
}

export async function stackDeploy(i: Invocation): Promise<number> {
  const files = i.values('compose-file');
  if (files.length === 0) throw new CliError('stack deploy needs a compose file: -c FILE (or -c - for standard input)');
  if (i.positionals.length !== 1) throw new CliError(`stack deploy needs exactly one stack name (got ${i.positionals.length})`);
  const ns = i.positionals[0]!;
  const cwd = process.cwd();
  let stack: Stack;
  try {
    validateNamespace(ns);
    const project = loadCompose({ files, cwd, env: process.env, fs: composeFiles(files, cwd) });
    for (const w of project.warnings) console.error(w);
    stack = convertStack(project, ns);
  } catch (e) {
    userError(e);
  }
  const ctx = i.context();
  const cluster = await listCluster(ctx);
  const usesSecrets = stack.secrets.length > 0 || stack.services.some((s) => s.secrets.length > 0);
  const usesConfigs = stack.configs.length > 0 || stack.services.some((s) => s.configs.length > 0);
  if (usesSecrets && cluster.secrets === null) throw new CliError(NO_SECRETS_MESSAGE);
  if (usesConfigs && cluster.configs === null) throw new CliError(NO_CONFIGS_MESSAGE);
  let plan: DeployPlan;
  try {
    plan = planDeploy(stack, existingOf(cluster, stack), { prune: i.flag('prune') });
  } catch (e) {
    userError(e);
  }
  for (const w of plan.warnings) console.error(w);

  const ids = {
    secrets: new Map((cluster.secrets ?? []).map((o) => [o.spec.name, o.id])),
    configs: new Map((cluster.configs ?? []).map((o) => [o.spec.name, o.id])),
  };
  const touched: string[] = [];
  // Prunes, networks, secrets and configs one by one, in the plan's order (services need them); the
  // service creates and updates, independent of each other, a few at a time.
  const serviceSteps = plan.steps.filter((st) => st.kind === 'service' && st.action !== 'remove');
  for (const step of plan.steps.filter((st) => !serviceSteps.includes(st))) {
    const line = stepLine(step);
    if (line) console.log(line);
    await carryOut(ctx, step, ids, touched);
  }
  for (const step of serviceSteps) {
    const line = stepLine(step);
    if (line) console.log(line);
  }
  await inBatches(serviceSteps, PARALLEL_REQUESTS, (step) => carryOut(ctx, step, ids, touched));
  if (!i.flag('detach') && touched.length > 0) await converge(ctx, touched, i.flag('quiet'));
  return 0;
}

/** One step of a deploy plan, as control API requests. Ids of created secrets/configs go into `ids`. */
async function carryOut(ctx: Context, step: PlanStep, ids: { secrets: Map<string, string>; configs: Map<string, string> }, touched: string[]): Promise<void> {
  const enc = encodeURIComponent;
  if (step.action === 'remove') {
    const path = step.kind === 'service' ? 'services' : step.kind === 'network' ? 'networks' : `${step.kind}s`;
    await control(ctx, 'DELETE', `/v1/${path}/${enc(step.id)}`);
    return;
  }
  if (step.action === 'unchanged') return;
  if (step.kind === 'network' && step.action === 'create') {
    await control(ctx, 'POST', '/v1/networks', { spec: step.network.spec });
    return;
  }
  if ((step.kind === 'secret' || step.kind === 'config') && (step.action === 'create' || step.action === 'update')) {
    const o = step.object;
    const map = step.kind === 'secret' ? ids.secrets : ids.configs;
    if (step.action === 'create') {
      if (o.file === undefined) throw new CliError(`${step.kind} ${o.name} has no file to read its data from`);
      let data: Buffer;
      try {
        data = readFileSync(o.file);
      } catch (e) {
        throw new CliError(`${step.kind} ${o.name}: cannot read ${o.file}: ${(e as Error).message}`);
      }
      const r = await control<{ id: string }>(ctx, 'POST', `/v1/${step.kind}s`, { name: o.name, labels: o.labels, data: data.toString('base64') });
      map.set(o.name, r.id);
    } else {
      const cur = await control<FileObjectView>(ctx, 'GET', `/v1/${step.kind}s/${enc(step.id)}`);
      await control(ctx, 'POST', `/v1/${step.kind}s/${enc(step.id)}/update`, { labels: o.labels, version: cur.version });
    }
    return;
  }
  if (step.kind === 'service' && step.action === 'create') {
    const r = await control<{ id: string }>(ctx, 'POST', '/v1/services', { spec: specWithFiles(step.service, step.service.spec, ids) });
    touched.push(r.id);
    return;
  }
  if (step.kind === 'service' && step.action === 'update') {
    const cur = await control<ServiceView>(ctx, 'GET', `/v1/services/${enc(step.id)}`);
    const spec = specWithFiles(step.service, step.service.spec, ids);
    await control(ctx, 'POST', `/v1/services/${enc(step.id)}/update`, { spec, version: cur.version });
    touched.push(step.id);
  }
}

/** Which of the services are not converged yet (pure: the poll's answers in). */
export function notConverged(services: readonly ServiceView[], ids: readonly string[]): string[] {
  const out: string[] = [];
  for (const id of ids) {
    const s = services.find((x) => x.id === id);
    if (!s) continue; // removed meanwhile: nothing to wait for
    const us = s.updateStatus?.state;
    const updating = us === 'updating' || us === 'rollback_started';
    const m = s.spec.mode;
    const job = 'replicatedJob' in m || 'globalJob' in m;
    const short = s.replicas.desired !== null && !job && s.replicas.running < s.replicas.desired;
    if (updating || short) out.push(s.spec.name);
  }
  return out;
}

/** Waits until the created and updated services run their desired tasks (what `--detach=false` does). */
async function converge(ctx: Context, ids: string[], quiet: boolean): Promise<void> {
  const deadline = Date.now() + CONVERGE_TIMEOUT_MS;
  let last = '';
  for (;;) {
    const services = await control<ServiceView[]>(ctx, 'GET', '/v1/services');
    const waiting = notConverged(services, ids);
    if (waiting.length === 0) return;
    const line = `waiting for ${waiting.length} service(s) to converge: ${waiting.slice(0, 5).join(', ')}${waiting.length > 5 ? ', …' : ''}`;
    if (!quiet && line !== last) console.error(line);
    last = line;
    if (Date.now() > deadline)
      throw new CliError(
        `services did not converge within ${CONVERGE_TIMEOUT_MS / 1000} s: ${waiting.join(', ')} (the deploy is stored; follow it with \`shoal stack ps\`)`,
      );
    await sleep(POLL_MS);
  }
}

// ------------------------------------------------------------------------------------ ls, services, ps

/** Services of one stack (all stacks: ns undefined), as the API lists them. */
async function stackServices(ctx: Context, ns?: string): Promise<ServiceView[]> {
  return (await control<ServiceView[]>(ctx, 'GET', '/v1/services')).filter((s) => hasNamespace(s.spec.labels, ns));
}

export function stackListing(services: readonly Service[]): Listing {
  const count = new Map<string, number>();
  for (const s of services) {
    const ns = s.spec.labels?.[NAMESPACE_LABEL];
    if (ns !== undefined) count.set(ns, (count.get(ns) ?? 0) + 1);
  }
  const names = [...count.keys()].sort();
  return { headers: ['NAME', 'SERVICES'], rows: names.map((n) => ({ id: n, object: { Name: n, Services: count.get(n) }, cells: [n, String(count.get(n))] })) };
}

export async function stackLs(i: Invocation): Promise<number> {
  if (i.positionals.length > 0) throw new CliError(`${i.name} takes no arguments`);
  console.log(renderListing(stackListing(await stackServices(i.context())), i.output));
  return 0;
}

function oneStack(i: Invocation): string {
  if (i.positionals.length !== 1) throw new CliError(`${i.name} needs one stack name`);
  return i.positionals[0]!;
}

export async function stackServicesCmd(i: Invocation): Promise<number> {
  const ns = oneStack(i);
  const services = (await stackServices(i.context(), ns)).sort((a, b) => a.spec.name.localeCompare(b.spec.name));
  if (services.length === 0) {
    console.error(`Nothing found in stack: ${ns}`);
    return 0;
  }
  console.log(renderListing(serviceListing(services), i.output));
  return 0;
}

/** `stack ps`: the tasks of every service of the stack, as `service ps` shows one service's. */
export function stackTaskListing(services: readonly Service[], tasks: readonly Task[], hostOf: (nodeId: string) => string, now: number): Listing {
  const byId = new Map(services.map((s) => [s.id, s]));
  const host = (t: Task) => (t.nodeId ? hostOf(t.nodeId) : '');
  const nameOf = (t: Task) => `${byId.get(t.serviceId)?.spec.name ?? t.serviceId}.${t.slot ?? (host(t) || t.nodeId) ?? ''}`;
  const sorted = [...tasks].sort(
    (a, b) => nameOf(a).localeCompare(nameOf(b), undefined, { numeric: true }) || String(b.createdAt).localeCompare(String(a.createdAt)),
  );
  const listing: Listing = { headers: ['ID', 'NAME', 'IMAGE', 'NODE', 'DESIRED STATE', 'CURRENT STATE', 'ERROR', 'PORTS'], rows: [] };
  let lastName = '';
  for (const t of sorted) {
    const name = nameOf(t);
    const shown = name === lastName ? ` \\_ ${name}` : name;
    lastName = name;
    // Docker shows a task's host-mode ports here (ingress ports belong to the service, not the task).
    const ports = (byId.get(t.serviceId)?.spec.endpoint?.ports ?? [])
      .filter((p) => p.publishMode === 'host')
      .map((p) => `*:${p.publishedPort ?? '?'}->${p.targetPort}/${p.protocol}`)
      .join(', ');
    listing.rows.push({
      id: t.id,
      object: t,
      cells: [
        t.id.slice(0, 12),
        shown,
        unpinned(t.spec.image),
        host(t),
        cap(t.desiredState),
        `${cap(t.status.state)} ${humanAgo(t.status.timestamp, now).toLowerCase()}`,
        t.status.err ?? '',
        ports,
      ],
    });
  }
  return listing;
}

export async function stackPs(i: Invocation): Promise<number> {
  const ns = oneStack(i);
  const ctx = i.context();
  const services = await stackServices(ctx, ns);
  if (services.length === 0) {
    console.error(`Nothing found in stack: ${ns}`);
    return 0;
  }
  const all = i.flag('all');
  const tasks: Task[] = [];
  for (const s of services) tasks.push(...(await control<Task[]>(ctx, 'GET', `/v1/tasks?service=${encodeURIComponent(s.id)}${all ? '&all=1' : ''}`)));
  const nodes = new Map<string, string>((await control<Node[]>(ctx, 'GET', '/v1/nodes')).map((n) => [n.id, n.description?.hostname ?? n.id]));
  console.log(
    renderListing(
      stackTaskListing(services, tasks, (id) => nodes.get(id) ?? id, Date.now()),
      i.output,
    ),
  );
  return 0;
}

// ---------------------------------------------------------------------------------------------- rm

export async function stackRm(i: Invocation): Promise<number> {
  if (i.positionals.length === 0) throw new CliError('stack rm needs at least one stack name');
  const ctx = i.context();
  let failed = false;
  for (const ns of i.positionals) {
    const cluster = await listCluster(ctx);
    const steps = planRemove(ns, existingOf(cluster, null));
    if (steps.length === 0) {
      console.error(`Nothing found in stack: ${ns}`);
      continue;
    }
    const withId = (s: PlanStep): s is Extract<PlanStep, { action: 'remove' }> => s.action === 'remove';
    const removals = steps.filter(withId);
    const services = removals.filter((s) => s.kind === 'service');
    for (const s of services) console.log(stepLine(s));
    await inBatches(services, PARALLEL_REQUESTS, (s) => control(ctx, 'DELETE', `/v1/services/${encodeURIComponent(s.id)}`));
    // Secrets, configs and networks stay in use until the services' tasks have stopped.
    await tasksGone(ctx, new Set(services.map((s) => s.id)));
    for (const s of removals.filter((x) => x.kind !== 'service')) {
      console.log(stepLine(s));
      const path = s.kind === 'network' ? 'networks' : `${s.kind}s`;
      try {
        await untilRemoved(ctx, `/v1/${path}/${encodeURIComponent(s.id)}`);
      } catch (e) {
        if (!(e instanceof CliError)) throw e;
        console.error(`Failed to remove ${s.kind} ${s.name}: ${e.message}`);
        failed = true;
      }
    }
  }
  return failed ? 1 : 0;
}

/** Waits until no task of the removed services is still running (or stopping). */
async function tasksGone(ctx: Context, serviceIds: Set<string>): Promise<void> {
  if (serviceIds.size === 0) return;
  const deadline = Date.now() + REMOVE_TIMEOUT_MS;
  for (;;) {
    const live = (await control<Task[]>(ctx, 'GET', '/v1/tasks')).filter((t) => serviceIds.has(t.serviceId));
    if (live.length === 0) return;
    if (Date.now() > deadline) throw new CliError(`${live.length} task(s) of the removed services still run after ${REMOVE_TIMEOUT_MS / 1000} s`);
    await sleep(POLL_MS);
  }
}

/**
 * DELETE, retried while the object is still in use: the managers release a network's addresses shortly
 * after the last task on it stops. A 404 means it is gone already (an earlier, interrupted `stack rm`).
 */
async function untilRemoved(ctx: Context, path: string): Promise<void> {
  const deadline = Date.now() + REMOVE_TIMEOUT_MS;
  for (;;) {
    try {
      await control(ctx, 'DELETE', path);
      return;
    } catch (e) {
      if (!(e instanceof CliError)) throw e;
      if (/not found/.test(e.message)) return;
      if (!/in use/i.test(e.message) || Date.now() > deadline) throw e;
    }
    await sleep(POLL_MS);
  }
}
