// The compose schema as `docker stack deploy` accepts it: the merged, interpolated tree of a stack's
// files → a ComposeProject (types.ts), or every problem found, each naming file:line:key. Unknown keys
// and wrong types are errors (with "did you mean" for near misses); options Swarm ignores give Docker's
// one-line warnings; options Shoal cannot honour give a warning or, where ignoring them would be unsafe,
// an error (options.ts lists which). The service section is read by service.ts.
//
// Versions: a `version` of 3 or 3.x (string or number), or none (the Compose Specification). Version 1
// and 2.x files describe `docker compose` projects with options that have no Swarm meaning; Docker
// refuses them for stacks and so does Shoal.
import { posix as path } from 'node:path';
import { Checker, got, isEmptyValue, join } from './check.ts';
import type { Problems } from './errors.ts';
import type { Lookup } from './interpolate.ts';
import { deprecatedWarning, unhonouredWarning, unsupportedWarning } from './options.ts';
import { readService, type ServiceContext } from './service.ts';
import type { PMap, PNode } from './tree.ts';
import type { ComposeFileObject, ComposeNetwork, ComposeProject, ComposeService, ComposeVolume } from './types.ts';

export interface SchemaOptions {
  workingDir: string;
  lookup: Lookup;
  readFile: (absPath: string) => string | undefined;
  /** Problems go here; the caller throws them. */
  problems: Problems;
}

const TOP_KEYS = ['version', 'name', 'services', 'networks', 'volumes', 'secrets', 'configs', 'include'];

/** Validates a merged tree; returns the project (only meaningful when `opts.problems` stayed empty). */
export function readProject(root: PNode, opts: SchemaOptions): ComposeProject {
  const c = new Checker(opts.problems);
  const project: ComposeProject = { workingDir: opts.workingDir, services: [], networks: [], volumes: [], secrets: [], configs: [], warnings: [] };
  const m = c.map(root, '', TOP_KEYS);
  if (!m) return project;
  const vn = c.field(m, 'version');
  if (vn) {
    const v = vn.kind === 'scalar' && typeof vn.value === 'number' ? (vn.source ?? String(vn.value)) : c.string(vn, 'version');
    if (v !== undefined && !/^3(\.\d+)?$/.test(v.trim())) {
      c.err(
        vn,
        'version',
        `unsupported Compose file version ${JSON.stringify(v)}: docker stack deploy takes version 3.x files or the Compose Specification (no version)`,
      );
    }
  }
  if (c.field(m, 'name')) c.warn('The top-level name is ignored: a stack takes its name from the command line.');
  const inc = c.field(m, 'include');
  if (inc) c.err(inc, 'include', 'not supported by docker stack deploy: pass each file with -c instead');

  project.networks = readObjects(c, c.field(m, 'networks'), 'networks', readNetwork);
  project.volumes = readObjects(c, c.field(m, 'volumes'), 'volumes', readVolume);
  project.secrets = readObjects(c, c.field(m, 'secrets'), 'secrets', (cc, k, n, p) => readFileObject(cc, k, n, p, 'secret', opts.workingDir));
  project.configs = readObjects(c, c.field(m, 'configs'), 'configs', (cc, k, n, p) => readFileObject(cc, k, n, p, 'config', opts.workingDir));

  const ctx: ServiceContext = {
    workingDir: opts.workingDir,
    lookup: opts.lookup,
    readFile: opts.readFile,
    declared: {
      networks: new Set(project.networks.map((x) => x.key)),
      volumes: new Set(project.volumes.map((x) => x.key)),
      secrets: new Set(project.secrets.map((x) => x.key)),
      configs: new Set(project.configs.map((x) => x.key)),
    },
    notes: { unsupported: new Set(), deprecated: new Set(), unhonoured: new Set() },
  };
  const sn = c.field(m, 'services');
  if (!sn) c.err(m, 'services', 'a stack needs at least one service (the services section is missing or empty)');
  else {
    const sm = c.map(sn, 'services', [], { unknown: () => true });
    for (const e of sm?.entries ?? []) {
      if (e.key.startsWith('x-')) continue;
      if (!/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(e.key)) {
        c.err(e.keyPos, `services.${e.key}`, 'a service name must be letters, digits, _, . and -, starting with a letter or digit');
        continue;
      }
      const s = readService(c, e.key, e.value, ctx);
      if (s) project.services.push({ ...s, pos: e.keyPos });
    }
    if (sm && project.services.length === 0 && !opts.problems.any) c.err(sm, 'services', 'a stack needs at least one service');
  }
  project.services.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  const defaultUsed = project.services.some((s: ComposeService) => !s.networks || s.networks.some((n) => n.key === 'default'));
  if (defaultUsed && !project.networks.some((n) => n.key === 'default')) {
    project.networks.push({ key: 'default', pos: m.pos, external: false, driver: 'overlay', attachable: false, internal: false, labels: {} });
  }

  const { unsupported, deprecated, unhonoured } = ctx.notes;
  const warnings: string[] = [];
  if (unsupported.size) warnings.push(unsupportedWarning(unsupported));
  if (deprecated.size) warnings.push(deprecatedWarning(deprecated));
  if (unhonoured.size) warnings.push(unhonouredWarning(unhonoured));
  project.warnings = [...warnings, ...c.warnings];
  return project;
}

type Reader<T> = (c: Checker, key: string, n: PNode, p: string) => T | undefined;

function readObjects<T>(c: Checker, n: PNode | undefined, section: string, read: Reader<T>): T[] {
  if (!n) return [];
  const m = c.map(n, section, [], { unknown: () => true });
  const out: T[] = [];
  for (const e of m?.entries ?? []) {
    if (e.key.startsWith('x-')) continue;
    const p = `${section}.${e.key}`;
    // `front:` with no value declares an object with every option at its default.
    const v: PNode = e.value.kind === 'scalar' && e.value.value === null ? { kind: 'map', pos: e.keyPos, entries: [] } : e.value;
    const o = read(c, e.key, v, p);
    if (o) out.push(o);
  }
  return out;
}

/**
 * `external: true`, or the 3.x form `external: {name: x}` (Docker warns that it is deprecated in favour
 * of `name:`). Returns [external, name from external].
 */
function readExternal(c: Checker, m: PMap, p: string): [boolean, string | undefined] {
  const x = c.field(m, 'external');
  if (!x) return [false, undefined];
  if (x.kind === 'map') {
    const em = c.map(x, join(p, 'external'), ['name']);
    const nn = em && c.field(em, 'name');
    const name = nn ? c.string(nn, join(p, 'external.name')) : undefined;
    if (name !== undefined) {
      if (c.field(m, 'name')) c.err(x, join(p, 'external.name'), 'conflicts with name: set only name');
      else c.warn(`${p}: external.name is deprecated in favour of name`);
    }
    return [true, name];
  }
  return [c.bool(x, join(p, 'external')) ?? false, undefined];
}

function nameOf(c: Checker, m: PMap, p: string): string | undefined {
  const n = c.field(m, 'name');
  const s = n ? c.string(n, join(p, 'name')) : undefined;
  return s === '' ? undefined : s;
}

/** An external object may only say that it is external (and its name, labels aside). */
function checkExternalOnly(c: Checker, m: PMap, p: string, external: boolean, allowed: string[]): void {
  if (!external) return;
  for (const e of m.entries) {
    if (['external', 'name', ...allowed].includes(e.key) || e.key.startsWith('x-') || isEmptyValue(e.value)) continue;
    c.err(e.keyPos, join(p, e.key), `conflicts with external: an external object is used as it is, not configured here`);
  }
}

function readNetwork(c: Checker, key: string, n: PNode, p: string): ComposeNetwork | undefined {
  const m = c.map(n, p, ['driver', 'driver_opts', 'attachable', 'internal', 'external', 'name', 'ipam', 'labels', 'enable_ipv6', 'enable_ipv4']);
  if (!m) return undefined;
  const [external, extName] = readExternal(c, m, p);
  checkExternalOnly(c, m, p, external, []);
  const net: ComposeNetwork = {
    key,
    pos: m.pos,
    external,
    driver: 'overlay',
    attachable: false,
    internal: false,
    labels: c.labels(c.field(m, 'labels'), join(p, 'labels')),
  };
  const name = extName ?? nameOf(c, m, p);
  if (name !== undefined) net.name = name;
  const dn = c.field(m, 'driver');
  if (dn) {
    const d = c.string(dn, join(p, 'driver'));
    if (d !== undefined && d !== 'overlay')
      c.err(
        dn,
        join(p, 'driver'),
        `driver ${JSON.stringify(d)} is not supported: Shoal stack networks are cluster-wide overlays (use overlay, or leave driver out)`,
      );
  }
  for (const k of ['attachable', 'internal'] as const) {
    const x = c.field(m, k);
    if (x) net[k] = c.bool(x, join(p, k)) ?? false;
  }
  const v6 = c.field(m, 'enable_ipv6');
  if (v6 && c.bool(v6, join(p, 'enable_ipv6'))) c.err(v6, join(p, 'enable_ipv6'), 'not supported: Shoal overlays are IPv4 only');
  const v4 = c.field(m, 'enable_ipv4');
  if (v4 && c.bool(v4, join(p, 'enable_ipv4')) === false) c.err(v4, join(p, 'enable_ipv4'), 'not supported: Shoal overlays are IPv4 networks');
  const opts = c.field(m, 'driver_opts');
  if (opts) {
    const om = c.map(opts, join(p, 'driver_opts'), [], { extensions: false, unknown: () => true });
    for (const e of om?.entries ?? []) {
      if (e.key === 'encrypted') {
        // Swarm encrypts such a network with IPsec; Shoal's VXLAN data plane cannot. Refusing would
        // stop well-known sample stacks (which ask for it) from deploying unchanged, so the network is
        // created and the warning says plainly that its traffic is not encrypted.
        c.warn(
          `${join(p, 'driver_opts.encrypted')}: NOT honoured: Shoal overlays cannot encrypt (no IPsec in the data plane); traffic on this network crosses the wire in clear`,
        );
      } else c.warn(`${join(p, `driver_opts.${e.key}`)}: not honoured by Shoal's overlay driver`);
    }
  }
  const ip = c.field(m, 'ipam');
  if (ip) {
    const im = c.map(ip, join(p, 'ipam'), ['driver', 'config', 'options']);
    if (im) {
      const dv = c.field(im, 'driver');
      const d = dv ? c.string(dv, join(p, 'ipam.driver')) : undefined;
      if (d !== undefined && d !== 'default') c.err(dv!, join(p, 'ipam.driver'), `only the default IPAM driver is supported, got ${JSON.stringify(d)}`);
      if (c.field(im, 'options')) c.warn(`${join(p, 'ipam.options')}: not honoured`);
      const cf = c.field(im, 'config');
      if (cf) {
        if (cf.kind !== 'seq') c.err(cf, join(p, 'ipam.config'), `must be a list, got ${got(cf)}`);
        else if (cf.items.length > 1) c.err(cf.items[1]!, join(p, 'ipam.config[1]'), 'a Shoal network has one subnet');
        else if (cf.items[0]) {
          const cp = join(p, 'ipam.config[0]');
          const cm = c.map(cf.items[0], cp, ['subnet', 'ip_range', 'gateway', 'aux_addresses']);
          if (cm) {
            const ipam: NonNullable<ComposeNetwork['ipam']> = {};
            const sn = c.field(cm, 'subnet');
            const gw = c.field(cm, 'gateway');
            const subnet = sn ? c.string(sn, join(cp, 'subnet')) : undefined;
            const gateway = gw ? c.string(gw, join(cp, 'gateway')) : undefined;
            if (subnet) ipam.subnet = subnet;
            if (gateway) ipam.gateway = gateway;
            const rg = c.field(cm, 'ip_range');
            if (rg) c.err(rg, join(cp, 'ip_range'), 'not supported: Shoal hands out addresses from the whole subnet');
            if (c.field(cm, 'aux_addresses')) c.warn(`${join(cp, 'aux_addresses')}: not honoured (addresses are not reserved)`);
            net.ipam = ipam;
          }
        }
      }
    }
  }
  return net;
}

function readVolume(c: Checker, key: string, n: PNode, p: string): ComposeVolume | undefined {
  const m = c.map(n, p, ['driver', 'driver_opts', 'external', 'labels', 'name']);
  if (!m) return undefined;
  const [external, extName] = readExternal(c, m, p);
  checkExternalOnly(c, m, p, external, []);
  const vol: ComposeVolume = { key, pos: m.pos, external, labels: c.labels(c.field(m, 'labels'), join(p, 'labels')) };
  const name = extName ?? nameOf(c, m, p);
  if (name !== undefined) vol.name = name;
  const dn = c.field(m, 'driver');
  if (dn) {
    const d = c.string(dn, join(p, 'driver'));
    // A volume plugin (NFS, cloud disks …) decides where the data lives; a node-local directory
    // instead would split the data between nodes without a word. Refuse.
    if (d !== undefined && d !== 'local')
      c.err(
        dn,
        join(p, 'driver'),
        `volume driver ${JSON.stringify(d)} is not supported: Shoal volumes are directories local to each node (use local, or leave driver out)`,
      );
  }
  const opts = c.field(m, 'driver_opts');
  if (opts && !isEmptyValue(opts)) {
    c.err(
      opts,
      join(p, 'driver_opts'),
      'not supported: Shoal volumes are plain node-local directories (no NFS, bind or device options); refusing rather than storing the data somewhere else than the file says',
    );
  }
  return vol;
}

function readFileObject(c: Checker, key: string, n: PNode, p: string, what: 'secret' | 'config', workingDir: string): ComposeFileObject | undefined {
  const m = c.map(n, p, ['file', 'external', 'name', 'labels', 'driver', 'driver_opts', 'template_driver', 'environment', 'content']);
  if (!m) return undefined;
  const [external, extName] = readExternal(c, m, p);
  checkExternalOnly(c, m, p, external, []);
  const o: ComposeFileObject = { key, pos: m.pos, external, labels: c.labels(c.field(m, 'labels'), join(p, 'labels')) };
  const name = extName ?? nameOf(c, m, p);
  if (name !== undefined) o.name = name;
  for (const k of ['driver', 'driver_opts', 'template_driver']) {
    const x = c.field(m, k);
    if (x && !isEmptyValue(x))
      c.err(x, join(p, k), `not supported: Shoal stores ${what}s itself${k === 'template_driver' ? ' and does not template them' : ''}`);
  }
  for (const k of ['environment', 'content']) {
    const x = c.field(m, k);
    if (x) c.err(x, join(p, k), `not supported by docker stack deploy: put the ${what} in a file and use file:`);
  }
  const fn = c.field(m, 'file');
  if (fn) {
    const f = c.string(fn, join(p, 'file'));
    if (f !== undefined) {
      o.file = path.resolve(workingDir, f);
      o.filePos = fn.pos;
    }
  }
  if (!external && o.file === undefined && !c.field(m, 'environment') && !c.field(m, 'content')) {
    c.err(m, p, `a ${what} needs file: (a path relative to the compose file) or external: true`);
  }
  return o;
}
