// Secrets and configs, translated to the control API's /v1/secrets and /v1/configs (manager/api/
// secrets.ts): Docker's `{Name, Labels, Data: base64}` create (201 `{ID}`), list with the id/name/
// names/label filters, inspect (a secret never shows its data, a config does), label-only update with
// the version read (a stack redeploy resends identical data, which passes) and delete (204; refused
// while a service uses it). External secret drivers and templating do not exist in Shoal: refused.
import { BODY_LIMITS, badRequest, readJson, type Router } from '../api/http.ts';
import { callControl } from './control.ts';
import type { DockerDeps } from './deps.ts';
import { allLabels, anyOf, parseFilters, prefixOf } from './filters.ts';
import { query, requiredVersion, sendDocker, type DockerCtx } from './http.ts';
import { dockerTime } from './wire.ts';

type J = Record<string, unknown>;

interface FileObject {
  id: string;
  version: number;
  createdAt: string;
  updatedAt: string;
  spec: { name: string; labels: Record<string, string>; data?: unknown };
}

function fileOut(kind: 'secret' | 'config', o: FileObject): J {
  const spec: J = { Name: o.spec.name, Labels: o.spec.labels ?? {} };
  if (kind === 'config' && typeof o.spec.data === 'string') spec.Data = o.spec.data;
  return { ID: o.id, Version: { Index: o.version }, CreatedAt: dockerTime(o.createdAt), UpdatedAt: dockerTime(o.updatedAt), Spec: spec };
}

function specIn(b: J): { name: unknown; labels: Record<string, string>; data: unknown } {
  if (b.Driver && typeof b.Driver === 'object' && (b.Driver as J).Name) throw badRequest('secret drivers are not supported by Shoal: give the data itself');
  if (b.Templating && typeof b.Templating === 'object' && (b.Templating as J).Name) throw badRequest('templating is not supported by Shoal');
  return { name: b.Name, labels: (b.Labels && typeof b.Labels === 'object' ? b.Labels : {}) as Record<string, string>, data: b.Data };
}

function registerKind(r: Router<DockerCtx>, d: DockerDeps, kind: 'secret' | 'config'): void {
  const base = `/v1/${kind}s`;
  r.add('GET', `/${kind}s`, async (_c, _p, req) => {
    const f = parseFilters(query(req).get('filters'), ['id', 'name', 'names', 'label']);
    const all = await callControl<FileObject[]>(d.control, 'GET', base);
    return all
      .filter(
        (o) =>
          anyOf(f, 'id', prefixOf(o.id)) &&
          anyOf(f, 'name', prefixOf(o.spec.name)) &&
          anyOf(f, 'names', (v) => v === o.spec.name) &&
          allLabels(f, 'label', o.spec.labels),
      )
      .map((o) => fileOut(kind, o));
  });
  r.add('GET', `/${kind}s/:id`, async (_c, p) => fileOut(kind, await callControl<FileObject>(d.control, 'GET', `${base}/${encodeURIComponent(p.id!)}`)));
  r.add('POST', `/${kind}s/create`, async (_c, _p, req, res) => {
    const s = specIn((await readJson(req, BODY_LIMITS.spec)) as J);
    const out = await callControl<{ id: string }>(d.control, 'POST', base, s);
    sendDocker(res, 201, { ID: out.id });
    return undefined;
  });
  r.add('POST', `/${kind}s/:id/update`, async (_c, p, req, res) => {
    const version = requiredVersion(req);
    const s = specIn((await readJson(req, BODY_LIMITS.spec)) as J);
    await callControl(d.control, 'POST', `${base}/${encodeURIComponent(p.id!)}/update`, {
      version,
      labels: s.labels,
      ...(s.name !== undefined ? { name: s.name } : {}),
      ...(s.data !== undefined && s.data !== null && s.data !== '' ? { data: s.data } : {}),
    });
    sendDocker(res, 200, undefined);
    return undefined;
  });
  r.add('DELETE', `/${kind}s/:id`, async (_c, p, _req, res) => {
    await callControl(d.control, 'DELETE', `${base}/${encodeURIComponent(p.id!)}`);
    sendDocker(res, 204, undefined);
    return undefined;
  });
}

export function registerSecretRoutes(r: Router<DockerCtx>, d: DockerDeps): void {
  registerKind(r, d, 'secret');
  registerKind(r, d, 'config');
}
