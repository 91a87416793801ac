// Control API for overlay networks: create, ls, inspect, rm. A network is only a spec here; the
// allocator (manager/allocator) gives it its subnet, gateway and VXLAN id and writes them into
// `allocation`. Every check happens before anything is written, and the checks that depend on other
// networks (name, overlapping subnets) and on users (services, tasks) run inside the write transaction,
// so an error changes nothing.
import type { Frozen, Network, NetworkSpec, Service, Task } from '../../api/objects.ts';
import type { ReadTx, Store } from '../store/store.ts';
import { HOST_NETWORK, holdsAddresses, isAllocated, publishesIngress, resolveNetwork } from '../allocator/allocator.ts';
import { DEFAULT_ADDRESS_POOL, IpamError, carveSubnet, checkSubnet, gatewayFor } from '../allocator/ipam.ts';
import { checkLabels, checkName, limitsOf } from '../store/limits.ts';
import { BODY_LIMITS, badRequest, conflict, notFound, readJson, type Router } from './http.ts';

export interface NetworkApiDeps {
  store: Store;
  newId: () => string;
  requireLeader: () => void;
  linearizable: () => Promise<void>;
  write: (fn: Parameters<Store['update']>[0]) => Promise<void>;
}

/** Names that mean something else (Docker's built-in networks); `host` is host networking for services. */
export const RESERVED_NETWORK_NAMES: readonly string[] = [HOST_NETWORK, 'bridge', 'none'];
const NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;
const NAME_MAX = 64;
const SPEC_KEYS = ['name', 'driver', 'labels', 'ipam', 'attachable', 'internal', 'ingress'];

function fail(field: string, message: string): never {
  throw badRequest(message, { field });
}

function got(v: unknown): string {
  return v === undefined ? 'nothing' : JSON.stringify(v);
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function checkKeys(o: Record<string, unknown>, allowed: readonly string[], where: string): void {
  for (const k of Object.keys(o)) {
    if (!allowed.includes(k)) fail(where ? `${where}.${k}` : k, `${where ? `${where}.` : ''}${k}: unknown field (allowed: ${allowed.join(', ')})`);
  }
}

/**
 * Checks a network spec on its own (no other networks involved) and returns it normalised. Throws a
 * 400 ApiError whose `field` names the offending field.
 */
export function validateNetworkSpec(raw: unknown): NetworkSpec {
  if (!isRecord(raw)) fail('spec', `spec must be an object (got ${got(raw)})`);
  checkKeys(raw, SPEC_KEYS, '');
  const name = raw.name;
  if (typeof name !== 'string' || name === '') fail('name', 'name is required');
  if (!NAME_RE.test(name)) fail('name', `name ${JSON.stringify(name)} is invalid: use letters, digits, '_', '.' and '-', starting with a letter or digit`);
  if (name.length > NAME_MAX) fail('name', `name is ${name.length} characters long (at most ${NAME_MAX})`);
  if (RESERVED_NETWORK_NAMES.includes(name.toLowerCase())) {
    fail(
      'name',
      `name ${name} is reserved${name.toLowerCase() === HOST_NETWORK ? ' (attach a service to "host" to use the host\'s network stack; it needs no network object)' : ''}`,
    );
  }
  const driver = raw.driver === undefined || raw.driver === '' ? 'overlay' : raw.driver;
  if (typeof driver !== 'string') fail('driver', `driver must be a string (got ${got(driver)})`);
  if (driver !== 'overlay') fail('driver', `driver ${driver} is not supported: Shoal networks are cluster-wide overlays (use --driver overlay)`);
  const labels: Record<string, string> = {};
  if (raw.labels !== undefined) {
    if (!isRecord(raw.labels)) fail('labels', `labels must be an object of strings (got ${got(raw.labels)})`);
    for (const [k, v] of Object.entries(raw.labels)) {
      if (k === '') fail('labels', 'labels: a label key cannot be empty');
      if (typeof v !== 'string') fail(`labels.${k}`, `labels.${k} must be a string (got ${got(v)})`);
      labels[k] = v;
    }
  }
  const bool = (k: 'attachable' | 'internal' | 'ingress'): boolean => {
    const v = raw[k];
    if (v === undefined) return false;
    if (typeof v !== 'boolean') fail(k, `${k} must be true or false (got ${got(v)})`);
    return v;
  };
  const attachable = bool('attachable');
  const internal = bool('internal');
  const ingress = bool('ingress');
  if (ingress && attachable) fail('attachable', 'the ingress network cannot be attachable');
  const ipam: NetworkSpec['ipam'] = { configs: [] };
  if (raw.ipam !== undefined) {
    if (!isRecord(raw.ipam)) fail('ipam', `ipam must be an object (got ${got(raw.ipam)})`);
    checkKeys(raw.ipam, ['driver', 'configs'], 'ipam');
    const d = raw.ipam.driver;
    if (d !== undefined && d !== '' && d !== 'default') fail('ipam.driver', `ipam.driver ${got(d)} is not supported (only the default IPAM)`);
    const configs = raw.ipam.configs ?? [];
    if (!Array.isArray(configs)) fail('ipam.configs', `ipam.configs must be an array (got ${got(configs)})`);
    if (configs.length > 1) fail('ipam.configs', `ipam.configs: a network has one subnet (got ${configs.length})`);
    const c = configs[0] as unknown;
    if (c !== undefined) {
      const f = 'ipam.configs[0]';
      if (!isRecord(c)) fail(f, `${f} must be an object (got ${got(c)})`);
      checkKeys(c, ['subnet', 'gateway', 'range'], f);
      if (c.range !== undefined && c.range !== '') fail(`${f}.range`, `${f}.range: IP ranges are not supported (the whole subnet is used)`);
      const subnet = c.subnet === '' ? undefined : c.subnet;
      const gateway = c.gateway === '' ? undefined : c.gateway;
      if (subnet !== undefined && typeof subnet !== 'string') fail(`${f}.subnet`, `${f}.subnet must be a string (got ${got(subnet)})`);
      if (gateway !== undefined && typeof gateway !== 'string') fail(`${f}.gateway`, `${f}.gateway must be a string (got ${got(gateway)})`);
      if (gateway !== undefined && subnet === undefined) fail(`${f}.gateway`, `${f}.gateway: a gateway needs a subnet (--subnet)`);
      if (subnet !== undefined) {
        const cfg: { subnet: string; gateway?: string } = { subnet };
        try {
          const cidr = checkSubnet(subnet, [], `${f}.subnet`);
          cfg.subnet = cidr.text;
          if (gateway !== undefined) cfg.gateway = gatewayFor(cidr, gateway, `${f}.gateway`);
        } catch (e) {
          if (e instanceof IpamError) fail(e.field ?? `${f}.subnet`, e.message);
          throw e;
        }
        ipam.configs.push(cfg);
      }
    }
  }
  return { name, driver, labels, ipam, attachable, internal, ...(ingress ? { ingress: true } : {}) };
}

/** Network by exact id, by name (case-insensitive), or by a unique id prefix. */
export function findNetwork(tx: ReadTx, ref: string): Frozen<Network> {
  const exact = tx.get('network', ref) ?? tx.byName('network', ref);
  if (exact !== undefined) return exact;
  const prefix = tx.list('network', (n) => n.id.startsWith(ref));
  if (prefix.length === 1) return prefix[0]!;
  if (prefix.length > 1) throw badRequest(`network reference ${ref} is ambiguous (${prefix.length} networks match)`);
  throw notFound(`network ${ref} not found`);
}

/** The subnet a network has or asked for. */
function subnetOf(n: Frozen<Network>): string | undefined {
  return n.allocation?.subnets?.[0]?.subnet ?? n.spec.ipam?.configs?.[0]?.subnet;
}

/** Checks that need the other networks: unique name, one ingress, a subnet that overlaps none. */
function checkAgainstOthers(tx: ReadTx, spec: NetworkSpec): void {
  const same = tx.byName('network', spec.name);
  if (same !== undefined) throw conflict(`network name ${spec.name} is already in use (network ${same.id})`);
  const all = tx.list('network');
  if (spec.ingress === true) {
    const ing = all.find((n) => n.spec.ingress === true);
    if (ing !== undefined) fail('ingress', `ingress: there is already an ingress network (${ing.spec.name})`);
  }
  const others = all.flatMap((n) => {
    const s = subnetOf(n);
    return s !== undefined ? [{ name: n.spec.name, subnet: s }] : [];
  });
  const cfg = spec.ipam.configs[0];
  const field = 'ipam.configs[0].subnet';
  try {
    if (cfg?.subnet !== undefined) checkSubnet(cfg.subnet, others, field);
    else {
      // Networks created but not allocated yet will take a subnet from the pool first (in creation order).
      const pool = tx.get('cluster', 'cluster')?.spec.defaultAddressPool ?? DEFAULT_ADDRESS_POOL;
      const taken = others.map((o) => o.subnet);
      for (const n of all) if (subnetOf(n) === undefined && n.allocation?.error === undefined) taken.push(carveSubnet(pool, taken));
      carveSubnet(pool, taken);
    }
  } catch (e) {
    if (!(e instanceof IpamError)) throw e;
    if (e.code === 'EPOOLEXHAUSTED') fail(field, `${e.message}: give the network a subnet (--subnet)`);
    fail(field, e.message);
  }
}

/** Why a network cannot be removed now, or null. */
export function networkInUse(tx: ReadTx, net: Frozen<Network>): string | null {
  const networks = tx.list('network');
  const services = tx.list('service');
  const users: Frozen<Service>[] = services.filter((s) =>
    (s.spec.networks ?? []).some((a) => a.target !== HOST_NETWORK && resolveNetwork(networks, a.target)?.id === net.id),
  );
  const publishers = net.spec.ingress === true ? services.filter((s) => publishesIngress(s) && !users.includes(s)) : [];
  const names = (xs: readonly Frozen<Service>[]) =>
    xs
      .map((s) => s.spec.name)
      .sort()
      .join(', ');
  if (users.length > 0) {
    return `network ${net.spec.name} is in use by service${users.length > 1 ? 's' : ''} ${names(users)}: remove ${users.length > 1 ? 'them' : 'it'} or detach ${users.length > 1 ? 'them' : 'it'} first`;
  }
  if (publishers.length > 0) {
    return `network ${net.spec.name} is the routing mesh and service${publishers.length > 1 ? 's' : ''} ${names(publishers)} publish${publishers.length > 1 ? '' : 'es'} ports through it: remove the published ports first`;
  }
  const nodes = new Map(tx.list('node').map((n) => [n.id, n]));
  const tasks: Frozen<Task>[] = tx.list('task', (t) => t.networks.some((a) => a.networkId === net.id) && holdsAddresses(t, nodes));
  if (tasks.length > 0) {
    const ids = tasks.map((t) => t.id.slice(0, 12)).sort();
    const shown = ids.slice(0, 5).join(', ') + (ids.length > 5 ? `, … (${ids.length - 5} more)` : '');
    return `network ${net.spec.name} is in use by ${tasks.length} task${tasks.length > 1 ? 's' : ''} that ha${tasks.length > 1 ? 've' : 's'} not stopped yet (${shown})`;
  }
  return null;
}

export function registerNetworkRoutes<C>(r: Router<C>, d: NetworkApiDeps): void {
  r.add('POST', '/v1/networks', async (_c, _p, req) => {
    // Labels may be as large as the cluster's label limits allow: the spec-sized cap.
    const body = (await readJson(req, BODY_LIMITS.spec)) as { spec?: unknown };
    const spec = validateNetworkSpec(body.spec);
    d.requireLeader();
    const id = d.newId();
    await d.write((tx) => {
      const limits = limitsOf(tx.get('cluster', 'cluster')?.spec);
      checkName(spec.name, limits, 'name');
      checkLabels(spec.labels, limits, 'labels');
      checkAgainstOthers(tx, spec);
      tx.create({ id, kind: 'network', spec, status: {} });
    });
    return { id, name: spec.name };
  });

  r.add('GET', '/v1/networks', async () => {
    await d.linearizable();
    return d.store.view((tx) => tx.list('network'));
  });

  r.add('GET', '/v1/networks/:id', async (_c, p) => {
    await d.linearizable();
    return d.store.view((tx) => findNetwork(tx, p.id!));
  });

  r.add('DELETE', '/v1/networks/:id', async (_c, p) => {
    d.requireLeader();
    let removed: { id: string; name: string } | null = null;
    await d.write((tx) => {
      const net = findNetwork(tx, p.id!);
      const why = networkInUse(tx, net);
      if (why !== null) throw conflict(why);
      tx.delete('network', net.id);
      removed = { id: net.id, name: net.spec.name };
    });
    const done = removed as { id: string; name: string } | null;
    return { removed: done?.id, name: done?.name };
  });
}
