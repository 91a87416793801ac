// Control API for services and tasks: create, inspect, update (rolling), rollback, scale, remove, and
// task listings for `service ps`. Specs are validated completely, and against the cluster's limits
// (replicas, labels, size, the task budget: store/limits.ts), before anything is stored; the
// orchestrators, scheduler and dispatcher do the rest from the store. Errors reach the client with the
// status their class maps to (errors.ts): a name in use is a 409.
import { CLUSTER_ID } from '../../api/objects.ts';
import type { AutoscaleReport, ClusterLimits, Frozen, Service, ServiceMode, ServiceSpec, Task } from '../../api/objects.ts';
import type { ReadTx, Store } from '../store/store.ts';
import { checkReplicas, checkTaskBudget, limitsOf } from '../store/limits.ts';
import { BODY_LIMITS, badRequest, conflict, notFound, queryParam, readJson, type Router } from './http.ts';
import { specDiff, validateServiceSpec } from '../service/spec.ts';
import { resolveFileRefs } from './secrets.ts';

export interface ServiceApiDeps {
  store: Store;
  newId: () => string;
  requireLeader: () => void;
  linearizable: () => Promise<void>;
  write: (fn: Parameters<Store['update']>[0]) => Promise<void>;
  /**
   * Pins an image reference to a digest (`name:tag@sha256:…`) so every node runs the same bytes; throws
   * with the reason when no manager (or registry) has it. Absent: images are used as given (test executor).
   */
  resolveImage?: (ref: string) => Promise<string>;
  /** Latest CPU/memory usage a node reported for a task (leader only). */
  usageOf?: (taskId: string) => unknown;
  /** The autoscaler's latest evaluation of a service (leader only: manager/autoscale/runner.ts). */
  autoscaleOf?: (serviceId: string) => { recommendation: number; reason: string; at: number } | undefined;
}

/** The image part of a pinned reference's name (`busybox:latest@sha256:…` → `busybox:latest`). */
function imageName(ref: string): string {
  const at = ref.indexOf('@');
  return at < 0 ? ref : ref.slice(0, at);
}

async function pin(d: ServiceApiDeps, spec: ServiceSpec, prev?: ServiceSpec): Promise<void> {
  if (!d.resolveImage) return;
  // An update that leaves the (already pinned) image alone keeps its digest, as Docker does with
  // --no-resolve-image semantics for an unchanged image field.
  if (prev && spec.task.image === prev.task.image && prev.task.image.includes('@')) return;
  try {
    spec.task = { ...spec.task, image: await d.resolveImage(spec.task.image) };
  } catch (e) {
    throw badRequest(`image ${imageName(spec.task.image)}: ${(e as Error).message}`, { field: 'task.image' });
  }
}

function limits(tx: ReadTx): ClusterLimits {
  return limitsOf(tx.get('cluster', CLUSTER_ID)?.spec);
}

/** Tasks a mode runs at once when converged (global modes: not known here, counted as 0). */
function desiredTasks(mode: ServiceMode | Frozen<ServiceMode>): number {
  if ('replicated' in mode) return mode.replicated.replicas;
  if ('replicatedJob' in mode) return mode.replicatedJob.maxConcurrent;
  return 0;
}

/**
 * Refuses a create, update or scale that would take the cluster past limits.maxTasks once its tasks
 * exist: the tasks the new mode runs beyond what the old one did (0 for a create), on top of the task
 * objects there are now. The store refuses the task creations anyway (the backstop); this turns them
 * into a 400 for the request instead of a service that never converges.
 */
function checkTasks(tx: ReadTx, next: ServiceMode | Frozen<ServiceMode>, prev: ServiceMode | Frozen<ServiceMode> | undefined, field: string): void {
  const adding = desiredTasks(next) - (prev ? desiredTasks(prev) : 0);
  checkTaskBudget(tx.count('task'), adding, limits(tx), field);
}

export function resolveService(store: Store, ref: string): Service {
  const all = store.view((tx) => tx.list('service')) as Service[];
  const exact = all.find((s) => s.id === ref) ?? all.find((s) => s.spec.name === ref);
  if (exact) return exact;
  const prefix = all.filter((s) => s.id.startsWith(ref));
  if (prefix.length === 1) return prefix[0]!;
  if (prefix.length > 1) throw badRequest(`service reference ${ref} is ambiguous (${prefix.length} services match)`);
  throw notFound(`service ${ref} not found`);
}

export function registerServiceRoutes<C>(r: Router<C>, d: ServiceApiDeps): void {
  r.add('POST', '/v1/services', async (_c, _p, req) => {
    const body = (await readJson(req, BODY_LIMITS.spec)) as { spec?: unknown };
    const spec = validateServiceSpec(body.spec, d.store.view(limits));
    d.requireLeader();
    d.store.view((tx) => resolveFileRefs(tx, spec));
    await pin(d, spec);
    const id = d.newId();
    await d.write((tx) => {
      checkTasks(tx, spec.mode, undefined, 'mode');
      resolveFileRefs(tx, spec); // again: a secret or config may have been removed meanwhile
      // A name in use fails here with NameInUseError: 409 (errors.ts).
      tx.create({ id, kind: 'service', spec, specVersion: 1, status: {} } as never);
    });
    return { id, name: spec.name };
  });

  r.add('GET', '/v1/services', async () => {
    await d.linearizable();
    const services = d.store.view((tx) => tx.list('service')) as Service[];
    return services.map((s) => ({ ...s, replicas: replicaCounts(d.store, s) }));
  });

  r.add('GET', '/v1/services/:id', async (_c, p) => {
    await d.linearizable();
    const s = resolveService(d.store, p.id!);
    return { ...s, replicas: replicaCounts(d.store, s) };
  });

  // What the autoscaler makes of a service now. Its samples and decisions live in the leader's memory
  // only, so this is the leader's to answer (a follower redirects with 421).
  r.add('GET', '/v1/services/:id/autoscale', async (_c, p): Promise<AutoscaleReport> => {
    d.requireLeader();
    await d.linearizable();
    const s = resolveService(d.store, p.id!);
    const v = s.spec.autoscale ? d.autoscaleOf?.(s.id) : undefined;
    return {
      serviceId: s.id,
      name: s.spec.name,
      policy: s.spec.autoscale ?? null,
      replicas: 'replicated' in s.spec.mode ? s.spec.mode.replicated.replicas : null,
      lastChange: s.status.autoscale ?? null,
      decision: v ? { recommendation: v.recommendation, reason: v.reason, at: new Date(v.at).toISOString() } : null,
    };
  });

  r.add('POST', '/v1/services/:id/update', async (_c, p, req) => {
    const body = (await readJson(req, BODY_LIMITS.spec)) as { spec?: unknown; force?: unknown; version?: unknown };
    if (body.version !== undefined && (typeof body.version !== 'number' || !Number.isSafeInteger(body.version) || body.version < 0)) {
      throw badRequest(`version must be the non-negative integer version you read (got ${JSON.stringify(body.version)})`, { field: 'version' });
    }
    if (body.force !== undefined && typeof body.force !== 'boolean')
      throw badRequest(`force must be true or false (got ${JSON.stringify(body.force)})`, { field: 'force' });
    d.requireLeader();
    // A versioned update is a compare-and-set: compare against state at least as new as what the client
    // read (a new leader may not have applied everything committed yet), and again inside the write,
    // because a write re-run after a store conflict would otherwise land on top of the winner.
    if (body.version !== undefined) await d.linearizable();
    const cur = resolveService(d.store, p.id!);
    const outOfSequence = (current: number) =>
      conflict(
        `service ${cur.spec.name} changed since you read it (update out of sequence: sent version ${String(body.version)}, current version ${current}); read it again and retry`,
      );
    if (body.version !== undefined && body.version !== cur.version) throw outOfSequence(cur.version);
    const next = validateServiceSpec(body.spec ?? cur.spec, d.store.view(limits));
    d.store.view((tx) => resolveFileRefs(tx, next)); // before the diff: names become ids
    await pin(d, next, cur.spec);
    if (body.force) next.task = { ...next.task, forceUpdate: (cur.spec.task.forceUpdate ?? 0) + 1 };
    const diff = specDiff(cur.spec, next);
    if (diff.renamed) throw badRequest('name: a service cannot be renamed');
    const modeKind = (s: ServiceSpec) => Object.keys(s.mode)[0];
    if (diff.modeKindChanged) throw badRequest(`mode: cannot change a ${modeKind(cur.spec)} service into ${modeKind(next)}`);
    const rolling = diff.rollingUpdate;
    const now = new Date().toISOString();
    await d.write((tx) => {
      const s = tx.get('service', cur.id) as Service | undefined;
      if (!s) throw notFound(`service ${cur.spec.name} was removed`);
      if (body.version !== undefined && s.version !== body.version) throw outOfSequence(s.version);
      checkTasks(tx, next.mode, s.spec.mode, 'mode');
      resolveFileRefs(tx, next);
      tx.update({
        ...s,
        previousSpec: s.spec,
        spec: next,
        specVersion: rolling ? s.specVersion + 1 : s.specVersion,
        ...(rolling ? { updateStatus: { state: 'updating', startedAt: now, message: 'update in progress' } } : {}),
      } as Service);
    });
    return { id: cur.id, rolling };
  });

  r.add('POST', '/v1/services/:id/rollback', async (_c, p) => {
    d.requireLeader();
    const cur = resolveService(d.store, p.id!);
    if (!cur.previousSpec) throw conflict(`service ${cur.spec.name} has no previous spec to roll back to`);
    const now = new Date().toISOString();
    await d.write((tx) => {
      const s = tx.get('service', cur.id) as Service;
      tx.update({
        ...s,
        spec: s.previousSpec,
        previousSpec: s.spec,
        specVersion: s.specVersion + 1,
        updateStatus: { state: 'rollback_started', startedAt: now, message: 'manually requested rollback' },
      } as Service);
    });
    return { id: cur.id };
  });

  r.add('POST', '/v1/services/:id/scale', async (_c, p, req) => {
    const body = (await readJson(req, BODY_LIMITS.small)) as { replicas?: unknown };
    const n = body.replicas;
    if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0)
      throw badRequest(`replicas must be a non-negative integer (got ${JSON.stringify(n)})`, { field: 'replicas' });
    checkReplicas(n, d.store.view(limits), 'replicas');
    d.requireLeader();
    const cur = resolveService(d.store, p.id!);
    if (!('replicated' in cur.spec.mode) && !('replicatedJob' in cur.spec.mode)) {
      throw badRequest(`scale can only be used with replicated or replicated-job mode (service ${cur.spec.name} is ${Object.keys(cur.spec.mode)[0]})`);
    }
    await d.write((tx) => {
      const s = tx.get('service', cur.id) as Service;
      const mode =
        'replicated' in s.spec.mode
          ? { replicated: { replicas: n } }
          : {
              replicatedJob: { ...(s.spec.mode as { replicatedJob: { maxConcurrent: number; totalCompletions: number } }).replicatedJob, totalCompletions: n },
            };
      checkTasks(tx, mode, s.spec.mode, 'replicas');
      tx.update({ ...s, spec: { ...s.spec, mode } } as Service);
    });
    return { id: cur.id, replicas: n };
  });

  r.add('DELETE', '/v1/services/:id', async (_c, p) => {
    d.requireLeader();
    const cur = resolveService(d.store, p.id!);
    await d.write((tx) => tx.delete('service', cur.id));
    return { removed: cur.id, name: cur.spec.name };
  });

  r.add('GET', '/v1/tasks', async (_c, _p, req) => {
    await d.linearizable();
    const svc = queryParam(req, 'service');
    const nodeId = queryParam(req, 'node');
    const all = queryParam(req, 'all') === '1';
    let tasks: Task[];
    if (svc) {
      const s = resolveService(d.store, svc);
      tasks = d.store.view((tx) => tx.tasksByService(s.id)) as Task[];
    } else if (nodeId) {
      tasks = d.store.view((tx) => tx.tasksByNode(nodeId)) as Task[];
    } else {
      tasks = d.store.view((tx) => tx.list('task')) as Task[];
    }
    if (!all)
      tasks = tasks.filter(
        (t) =>
          t.desiredState === 'running' ||
          t.desiredState === 'complete' ||
          !['complete', 'shutdown', 'failed', 'rejected', 'orphaned', 'remove'].includes(t.status.state),
      );
    const usage = d.usageOf;
    return usage
      ? tasks.map((t) => {
          const u = usage(t.id);
          return u ? { ...t, usage: u } : t;
        })
      : tasks;
  });
}

function replicaCounts(store: Store, s: Service): { running: number; desired: number | null } {
  const running = store.view((tx) => tx.runningTasks(s.id));
  const m = s.spec.mode;
  const desired = 'replicated' in m ? m.replicated.replicas : 'replicatedJob' in m ? m.replicatedJob.totalCompletions : null;
  return { running, desired };
}
