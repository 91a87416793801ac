// Nodes and networks. A node update carries Docker's whole NodeSpec `{Labels, Role, Availability}` and
// the version that was read; Shoal's control API takes changes, so the update becomes: labels and
// availability (one write), then promote or demote when Role differs (`docker node promote/demote`
// are client-side role edits). Networks use the engine's network.Inspect shape; create answers 201
// `{Id, Warning}`, delete 204.
import { setTimeout as sleep } from 'node:timers/promises';
import { ApiError, BODY_LIMITS, badRequest, notFound, readJson, type Router } from '../api/http.ts';
import type { Network, Service } from '../../api/objects.ts';

/** How long a network removal waits for the tasks of removed services to stop. */
const NETWORK_DRAIN_MS = 20_000;
import { callControl } from './control.ts';
import type { DockerDeps } from './deps.ts';
import { networkOut, networkSpecIn, nodeOut, type PresentedNode } from './convert-node.ts';
import { allLabels, anyOf, labelMatch, parseFilters, prefixOf } from './filters.ts';
import { outOfSequence, query, requiredVersion, sendDocker, type DockerCtx } from './http.ts';

type J = Record<string, unknown>;

export function registerNodeRoutes(r: Router<DockerCtx>, d: DockerDeps): void {
  r.add('GET', '/nodes', async (_c, _p, req) => {
    const f = parseFilters(query(req).get('filters'), ['id', 'name', 'label', 'node.label', 'role', 'membership']);
    const nodes = await callControl<PresentedNode[]>(d.control, 'GET', '/v1/nodes');
    return nodes
      .filter(
        (n) =>
          anyOf(f, 'id', prefixOf(n.id)) &&
          anyOf(f, 'name', prefixOf(n.description?.hostname)) &&
          allLabels(f, 'node.label', n.spec.labels) &&
          allLabels(f, 'label', {}) &&
          anyOf(f, 'role', (v) => v === n.spec.role) &&
          anyOf(f, 'membership', (v) => v === 'accepted'),
      )
      .map(nodeOut);
  });

  r.add('GET', '/nodes/:id', async (_c, p) => nodeOut(await callControl<PresentedNode>(d.control, 'GET', `/v1/nodes/${encodeURIComponent(p.id!)}`)));

  r.add('POST', '/nodes/:id/update', async (_c, p, req) => {
    const version = requiredVersion(req);
    const b = (await readJson(req, BODY_LIMITS.small)) as J;
    const cur = await callControl<PresentedNode>(d.control, 'GET', `/v1/nodes/${encodeURIComponent(p.id!)}`);
    if (cur.version !== version) throw outOfSequence('node', cur.description?.hostname ?? cur.id, version, cur.version);
    const want = (b.Labels && typeof b.Labels === 'object' ? b.Labels : {}) as Record<string, string>;
    const have = cur.spec.labels ?? {};
    const labelAdd = Object.fromEntries(Object.entries(want).filter(([k, v]) => have[k] !== v));
    const labelRm = Object.keys(have).filter((k) => !(k in want));
    const availability = typeof b.Availability === 'string' && b.Availability !== '' && b.Availability !== cur.spec.availability ? b.Availability : undefined;
    if (Object.keys(labelAdd).length || labelRm.length || availability) {
      await callControl(d.control, 'POST', `/v1/nodes/${cur.id}/update`, { labelAdd, labelRm, ...(availability ? { availability } : {}) });
    }
    if (typeof b.Role === 'string' && b.Role !== '' && b.Role !== cur.spec.role) {
      await callControl(d.control, 'POST', `/v1/nodes/${cur.id}/${b.Role === 'manager' ? 'promote' : 'demote'}`);
    }
    return {};
  });

  r.add('DELETE', '/nodes/:id', async (_c, p, req, res) => {
    const force = ['1', 'true'].includes(query(req).get('force') ?? '');
    await callControl(d.control, 'DELETE', `/v1/nodes/${encodeURIComponent(p.id!)}${force ? '?force=1' : ''}`);
    sendDocker(res, 200, undefined);
    return undefined;
  });
}

/** Is the network one no service refers to (Docker's "dangling")? The ingress network never is. */
function danglingCheck(services: readonly Service[]): (n: Network) => boolean {
  const used = new Set(services.flatMap((s) => s.spec.networks.map((a) => a.target)));
  return (n) => n.spec.ingress !== true && !used.has(n.id) && !used.has(n.spec.name);
}

export function registerNetworkRoutes(r: Router<DockerCtx>, d: DockerDeps): void {
  r.add('GET', '/networks', async (_c, _p, req) => {
    const f = parseFilters(query(req).get('filters'), ['driver', 'label', 'name', 'id', 'scope', 'type', 'dangling']);
    const nets = await callControl<Network[]>(d.control, 'GET', '/v1/networks');
    const dangling = f.get('dangling')?.length ? danglingCheck(await callControl<Service[]>(d.control, 'GET', '/v1/services')) : () => true;
    return nets
      .filter(
        (n) =>
          anyOf(f, 'driver', (v) => v === n.spec.driver) &&
          allLabels(f, 'label', n.spec.labels) &&
          anyOf(f, 'name', prefixOf(n.spec.name)) &&
          anyOf(f, 'id', prefixOf(n.id)) &&
          anyOf(f, 'scope', (v) => v === 'swarm') &&
          anyOf(f, 'type', (v) => v === 'custom') &&
          anyOf(f, 'dangling', (v) => (['1', 'true'].includes(v) ? dangling(n) : ['0', 'false'].includes(v) ? !dangling(n) : false)),
      )
      .map(networkOut);
  });

  // `docker network prune`: removes the networks no service uses (never ingress); one still held by
  // the tasks of a just-removed service is left for the next prune, as the engine leaves one in use.
  r.add('POST', '/networks/prune', async (_c, _p, req) => {
    const f = parseFilters(query(req).get('filters'), ['label', 'label!', 'until']);
    const [nets, services] = await Promise.all([
      callControl<Network[]>(d.control, 'GET', '/v1/networks'),
      callControl<Service[]>(d.control, 'GET', '/v1/services'),
    ]);
    const until = f.get('until')?.[0];
    const before = until === undefined ? Number.POSITIVE_INFINITY : /^\d+$/.test(until) ? Number(until) * 1000 : Date.parse(until);
    if (Number.isNaN(before)) throw badRequest(`invalid filter 'until=${until}': a Unix time or an RFC 3339 time is required`);
    const dangling = danglingCheck(services);
    const deleted: string[] = [];
    for (const n of nets) {
      if (!dangling(n) || !allLabels(f, 'label', n.spec.labels) || (f.get('label!') ?? []).some(labelMatch(n.spec.labels))) continue;
      if (Date.parse(n.createdAt) >= before) continue;
      try {
        await callControl(d.control, 'DELETE', `/v1/networks/${n.id}`);
        deleted.push(n.spec.name);
      } catch (e) {
        if (!(e instanceof ApiError) || (e.status !== 409 && e.status !== 404)) throw e;
      }
    }
    return { NetworksDeleted: deleted };
  });

  // Connecting a container: a manager runs none, so the container named is not found (as the engine
  // answers for an unknown container).
  for (const op of ['connect', 'disconnect']) {
    r.add('POST', `/networks/:id/${op}`, async (_c, p, req) => {
      await callControl<Network>(d.control, 'GET', `/v1/networks/${encodeURIComponent(p.id!)}`);
      const b = (await readJson(req, BODY_LIMITS.small)) as J;
      throw notFound(`No such container: ${typeof b.Container === 'string' ? b.Container : ''}`);
    });
  }

  r.add('GET', '/networks/:id', async (_c, p) => networkOut(await callControl<Network>(d.control, 'GET', `/v1/networks/${encodeURIComponent(p.id!)}`)));

  r.add('POST', '/networks/create', async (_c, _p, req, res) => {
    const { spec, warnings } = networkSpecIn((await readJson(req, BODY_LIMITS.spec)) as J);
    const out = await callControl<{ id: string }>(d.control, 'POST', '/v1/networks', { spec });
    sendDocker(res, 201, { Id: out.id, Warning: warnings.join('; ') });
    return undefined;
  });

  // `stack rm` removes the services and then at once their networks, whose tasks are still stopping.
  // Shoal refuses to remove a network while tasks hold addresses on it; once no service refers to the
  // network any more, the removal waits (bounded) for those tasks instead of failing the command.
  r.add('DELETE', '/networks/:id', async (_c, p, _req, res) => {
    const path = `/v1/networks/${encodeURIComponent(p.id!)}`;
    const deadline = Date.now() + NETWORK_DRAIN_MS;
    for (;;) {
      try {
        await callControl(d.control, 'DELETE', path);
        break;
      } catch (e) {
        if (!(e instanceof ApiError) || e.status !== 409 || Date.now() > deadline) throw e;
        const net = await callControl<Network>(d.control, 'GET', path);
        const services = await callControl<Service[]>(d.control, 'GET', '/v1/services');
        if (services.some((s) => s.spec.networks.some((a) => a.target === net.id || a.target === net.spec.name))) throw e;
        await sleep(200);
      }
    }
    sendDocker(res, 204, undefined);
    return undefined;
  });
}
