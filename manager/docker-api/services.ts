// Services and tasks: create (→ `{ID, Warnings}`), list (filters; `status=true` adds ServiceStatus),
// inspect, update (the `version` that was read is required and a stale one refused; `rollback=previous`),
// delete; tasks listed with every filter the CLI sends, terminated ones included (`service ps` shows
// history), `_up-to-date` meaning "created from the service's current spec" (specVersion). Plus
// `distribution/{image}/json`, answered by the resolver service create pins with, so the digest the
// CLI puts in its spec is the one Shoal would have chosen. Everything goes through the control API.
import type { ServerResponse } from 'node:http';
import { BODY_LIMITS, badRequest, notFound, readJson, type Router } from '../api/http.ts';
import type { Node, Service, Task } from '../../api/objects.ts';
import { dirtyCheck } from '../orchestrator/slots.ts';
import { callControl } from './control.ts';
import { dockerSpecError } from './fields.ts';
import type { DockerDeps } from './deps.ts';
import { serviceOut, taskOut, toShoalSpec, type ServiceCounts } from './convert-service.ts';
import { allLabels, anyOf, parseFilters, prefixOf } from './filters.ts';
import { outOfSequence, query, requiredVersion, sendDocker, type DockerCtx } from './http.ts';
import { goArch, queryBool } from './wire.ts';

const TERMINAL = new Set(['complete', 'shutdown', 'failed', 'rejected', 'remove', 'orphaned']);

/** Running, desired and completed tasks of a service, as `service ls` shows them. */
export function countsOf(s: Service, tasks: readonly Task[]): ServiceCounts {
  const mine = tasks.filter((t) => t.serviceId === s.id);
  const running = mine.filter((t) => t.status.state === 'running' && t.desiredState === 'running').length;
  const completed = mine.filter((t) => t.status.state === 'complete').length;
  const m = s.spec.mode;
  let desired: number;
  if ('replicated' in m) desired = m.replicated.replicas;
  else if ('replicatedJob' in m) desired = Math.min(m.replicatedJob.maxConcurrent, Math.max(0, m.replicatedJob.totalCompletions - completed));
  else desired = mine.filter((t) => t.desiredState === 'running' || (t.desiredState === 'complete' && !TERMINAL.has(t.status.state))).length;
  return { running, desired, completed };
}

async function allTasks(d: DockerDeps): Promise<Task[]> {
  return callControl<Task[]>(d.control, 'GET', '/v1/tasks?all=1');
}

async function allServices(d: DockerDeps): Promise<Service[]> {
  return callControl<Service[]>(d.control, 'GET', '/v1/services');
}

async function getService(d: DockerDeps, ref: string): Promise<Service> {
  return callControl<Service>(d.control, 'GET', `/v1/services/${encodeURIComponent(ref)}`);
}

/** The task name Docker derives: service.slot (replicated) or service.nodeId (global). */
function taskName(t: Task): string {
  return `${t.serviceAnnotations.name}.${t.slot ?? t.nodeId ?? ''}`;
}

function created(res: ServerResponse, body: unknown): undefined {
  sendDocker(res, 201, body);
  return undefined;
}

export function registerServiceRoutes(r: Router<DockerCtx>, d: DockerDeps): void {
  r.add('GET', '/services', async (_c, _p, req) => {
    const q = query(req);
    const f = parseFilters(q.get('filters'), ['id', 'name', 'label', 'mode']);
    const services = (await allServices(d)).filter(
      (s) =>
        anyOf(f, 'id', prefixOf(s.id)) &&
        anyOf(f, 'name', prefixOf(s.spec.name)) &&
        allLabels(f, 'label', s.spec.labels) &&
        anyOf(f, 'mode', (m) =>
          m === 'replicated'
            ? 'replicated' in s.spec.mode
            : m === 'global'
              ? 'global' in s.spec.mode
              : m === 'replicated-job'
                ? 'replicatedJob' in s.spec.mode
                : m === 'global-job' && 'globalJob' in s.spec.mode,
        ),
    );
    const tasks = queryBool(q.get('status')) ? await allTasks(d) : null;
    return services.map((s) => serviceOut(s, tasks ? countsOf(s, tasks) : null));
  });

  r.add('GET', '/services/:id', async (_c, p, req) => {
    const s = await getService(d, p.id!);
    const tasks = queryBool(query(req).get('status')) ? await allTasks(d) : null;
    return serviceOut(s, tasks ? countsOf(s, tasks) : null);
  });

  r.add('POST', '/services/create', async (_c, _p, req, res) => {
    const { spec, warnings } = toShoalSpec(await readJson(req, BODY_LIMITS.spec));
    const out = await callControl<{ id: string }>(d.control, 'POST', '/v1/services', { spec }).catch((e) => {
      throw dockerSpecError(e);
    });
    return created(res, { ID: out.id, Warnings: warnings.length ? warnings : null });
  });

  r.add('POST', '/services/:id/update', async (_c, p, req) => {
    const q = query(req);
    const version = requiredVersion(req);
    const body = await readJson(req, BODY_LIMITS.spec);
    const cur = await getService(d, p.id!);
    if (cur.version !== version) throw outOfSequence('service', cur.spec.name, version, cur.version);
    if (q.get('rollback') === 'previous') {
      await callControl(d.control, 'POST', `/v1/services/${cur.id}/rollback`);
      return { Warnings: null };
    }
    const { spec, warnings } = toShoalSpec(body);
    // Docker's spec has no autoscale field: a Docker client's update keeps the service's policy.
    if (cur.spec.autoscale && spec.autoscale === undefined) spec.autoscale = structuredClone(cur.spec.autoscale);
    await callControl(d.control, 'POST', `/v1/services/${cur.id}/update`, { spec, version }).catch((e) => {
      throw dockerSpecError(e);
    });
    return { Warnings: warnings.length ? warnings : null };
  });

  r.add('DELETE', '/services/:id', async (_c, p, _req, res) => {
    await callControl(d.control, 'DELETE', `/v1/services/${encodeURIComponent(p.id!)}`);
    sendDocker(res, 200, undefined);
    return undefined;
  });

  r.add('GET', '/tasks', async (_c, _p, req) => {
    const f = parseFilters(query(req).get('filters'), ['id', 'name', 'service', 'node', 'label', 'desired-state', '_up-to-date', 'runtime']);
    const [tasks, services] = await Promise.all([allTasks(d), allServices(d)]);
    const byId = new Map(services.map((s) => [s.id, s]));
    // Services named in the filter, by id, name or id prefix (the CLI sends ids, scripts names).
    const svcMatch = (t: Task) => (v: string) => {
      const s = byId.get(t.serviceId);
      return t.serviceId === v || s?.spec.name === v || t.serviceId.startsWith(v);
    };
    const nodeMatch = (t: Task) => (v: string) => t.nodeId !== undefined && (t.nodeId === v || t.nodeId.startsWith(v));
    // Up to date = a rolling update would not replace it: the orchestrator's own rule (as swarmkit's
    // filter uses its IsTaskDirty), so a rollback's tasks that match the restored spec count too.
    const upToDate = f.get('_up-to-date');
    const nodes = upToDate?.length ? new Map((await callControl<Node[]>(d.control, 'GET', '/v1/nodes')).map((n) => [n.id, n])) : new Map<string, Node>();
    const dirty = new Map<string, (t: Task) => boolean>();
    const isDirty = (t: Task) => {
      const s = byId.get(t.serviceId);
      if (!s) return true;
      let check = dirty.get(s.id);
      if (!check) dirty.set(s.id, (check = dirtyCheck(s, nodes)));
      return check(t);
    };
    return tasks
      .filter(
        (t) =>
          anyOf(f, 'id', prefixOf(t.id)) &&
          anyOf(f, 'name', prefixOf(taskName(t))) &&
          anyOf(f, 'service', svcMatch(t)) &&
          anyOf(f, 'node', nodeMatch(t)) &&
          allLabels(f, 'label', t.spec.labels) &&
          anyOf(f, 'desired-state', (v) => v === t.desiredState || (v === 'accepted' && t.desiredState === 'running' && t.status.state === 'accepted')) &&
          (!upToDate || upToDate.length === 0 || !isDirty(t)),
      )
      .map(taskOut);
  });

  r.add('GET', '/tasks/:id', async (_c, p) => {
    const tasks = await allTasks(d);
    const exact = tasks.find((t) => t.id === p.id);
    if (exact) return taskOut(exact);
    const prefix = tasks.filter((t) => t.id.startsWith(p.id!));
    if (prefix.length > 1) throw badRequest(`task reference ${p.id} is ambiguous (${prefix.length} tasks match)`);
    if (prefix.length === 0) throw notFound(`task ${p.id} not found`);
    return taskOut(prefix[0]!);
  });
}

/** `GET /distribution/{name…}/json`: outside the router, whose parameters are one path segment. */
export async function distributionAnswer(d: DockerDeps, path: string): Promise<unknown> {
  const m = /^\/distribution\/(.+)\/json$/.exec(path);
  const ref = decodeURIComponent(m?.[1] ?? '');
  if (!d.resolveImage) throw notFound(`image ${ref}: this manager has no image resolver (test executor); the image is used as given`);
  let pinned: string;
  try {
    pinned = await d.resolveImage(ref);
  } catch (e) {
    throw notFound(`image ${ref}: ${(e as Error).message}`);
  }
  const digest = pinned.slice(pinned.indexOf('@') + 1);
  return {
    Descriptor: { mediaType: 'application/vnd.oci.image.index.v1+json', digest, size: 0 },
    Platforms: [{ architecture: goArch(d.host.arch), os: 'linux' }],
  };
}
