// `shoal network create|ls|inspect|rm`: cluster-wide overlay networks, like `docker network` on a
// swarm. The managers validate (see manager/api/networks.ts); the allocator gives each network its
// subnet and VXLAN id shortly after it is created.
import type { Network } from '../api/objects.ts';
import type { Invocation } from './command.ts';
import { CliError, control } from '../client/context.ts';
import { all, bool, isFlagError, last, list, scan, value, type FlagDef, type Parsed } from './flags.ts';
import { renderInspect, renderListing, type Listing } from './format.ts';

export interface NetworkCreateRequest {
  spec: {
    name: string;
    driver: string;
    labels: Record<string, string>;
    ipam: { configs: { subnet?: string; gateway?: string }[] };
    attachable: boolean;
    internal: boolean;
    ingress?: boolean;
  };
}

/** `network create` flags (also its --help, through cli/commands.ts). */
export const NETWORK_CREATE_FLAGS: FlagDef[] = [
  value('driver', 'Driver to manage the network (overlay)', { short: 'd', value: 'driver' }),
  value('subnet', 'Subnet in CIDR format (e.g. 10.20.0.0/24); default: allocated', { value: 'CIDR' }),
  value('gateway', 'Gateway for the subnet (needs --subnet)', { value: 'IP' }),
  bool('attachable', 'Allow standalone containers to attach'),
  bool('internal', 'Restrict external access to the network'),
  bool('ingress', 'Create the routing-mesh (ingress) network'),
  list('label', 'Network labels', { value: 'key=value' }),
];

/** `network create` flags → the API request (the managers validate the values themselves). */
export function parseNetworkCreateArgs(args: string[]): NetworkCreateRequest {
  let p: Parsed;
  try {
    p = scan(args, [...NETWORK_CREATE_FLAGS, value('context', 'Cluster context file')], { interspersed: true });
  } catch (e) {
    // Worded as node:util's parseArgs did before this parser, which scripts may match on.
    if (isFlagError(e) && /unknown flag/.test(e.message))
      throw new CliError(`Unknown option '${e.flag}'${/\(did you mean .*\)/.exec(e.message)?.[0].replace(/^/, ' ') ?? ''}`);
    throw e;
  }
  const positionals = p.positionals;
  if (positionals.length !== 1) throw new CliError(`network create needs exactly one network name (got ${positionals.length})`);
  const labels: Record<string, string> = {};
  for (const kv of all(p, 'label')) {
    const i = kv.indexOf('=');
    const k = i < 0 ? kv : kv.slice(0, i);
    if (k === '') throw new CliError(`--label ${kv}: expected key=value`);
    labels[k] = i < 0 ? '' : kv.slice(i + 1);
  }
  const subnet = last(p, 'subnet');
  const gateway = last(p, 'gateway');
  if (gateway !== undefined && subnet === undefined) throw new CliError('--gateway needs --subnet');
  const cfg: { subnet?: string; gateway?: string } = {};
  if (subnet !== undefined) cfg.subnet = subnet;
  if (gateway !== undefined) cfg.gateway = gateway;
  return {
    spec: {
      name: positionals[0]!,
      driver: last(p, 'driver') ?? 'overlay',
      labels,
      ipam: { configs: cfg.subnet !== undefined ? [cfg] : [] },
      attachable: p.bools.get('attachable') === true,
      internal: p.bools.get('internal') === true,
      ...(p.bools.get('ingress') === true ? { ingress: true } : {}),
    },
  };
}

/** The fields of a network the table reads: the API's Network, or a partial one. */
export interface NetworkRowInput {
  id: string;
  spec?: { name?: string; driver?: string; ipam?: { configs?: { subnet?: string }[] } };
  allocation?: { vni?: number; error?: string; subnets?: { subnet: string; gateway?: string }[] };
}

/** The `network ls` rows. */
export function networkListing(networks: NetworkRowInput[]): Listing {
  const sorted = [...networks].sort((a, b) => String(a.spec?.name).localeCompare(String(b.spec?.name)));
  return {
    headers: ['ID', 'NAME', 'DRIVER', 'SCOPE', 'SUBNET', 'VNI'],
    rows: sorted.map((n) => {
      const subnet = n.allocation?.subnets?.[0]?.subnet ?? n.spec?.ipam?.configs?.[0]?.subnet ?? '';
      const vni = n.allocation?.vni !== undefined ? String(n.allocation.vni) : n.allocation?.error ? 'error' : 'pending';
      return { id: n.id, object: n, cells: [String(n.id).slice(0, 12), n.spec?.name ?? '', n.spec?.driver ?? '', 'swarm', subnet, vni] };
    }),
  };
}

/** The `network ls` table, header first. */
export function networkRows(networks: NetworkRowInput[]): string[][] {
  const l = networkListing(networks);
  return [l.headers, ...l.rows.map((r) => r.cells)];
}

export async function networkCreate(i: Invocation): Promise<number> {
  const body = parseNetworkCreateArgs(i.argv);
  const r = await control<{ id: string }>(i.context(), 'POST', '/v1/networks', body);
  console.log(r.id);
  return 0;
}

export async function networkLs(i: Invocation): Promise<number> {
  if (i.positionals.length > 0) throw new CliError('network ls takes no arguments');
  const networks = await control<Network[]>(i.context(), 'GET', '/v1/networks');
  console.log(renderListing(networkListing(networks), i.output));
  return 0;
}

export async function networkInspect(i: Invocation): Promise<number> {
  if (i.positionals.length === 0) throw new CliError('network inspect needs at least one network (name, id or id prefix)');
  const ctx = i.context();
  const out: Network[] = [];
  for (const ref of i.positionals) out.push(await control<Network>(ctx, 'GET', `/v1/networks/${encodeURIComponent(ref)}`));
  console.log(renderInspect(out, i.output.format));
  return 0;
}

export async function networkRm(i: Invocation): Promise<number> {
  if (i.positionals.length === 0) throw new CliError('network rm needs at least one network');
  const ctx = i.context();
  const failed: string[] = [];
  for (const ref of i.positionals) {
    try {
      await control(ctx, 'DELETE', `/v1/networks/${encodeURIComponent(ref)}`);
      console.log(ref);
    } catch (e) {
      if (!(e instanceof CliError)) throw e;
      console.error(`shoal: ${e.message}`);
      failed.push(ref);
    }
  }
  if (failed.length > 0) throw new CliError(`could not remove ${failed.length === 1 ? 'network' : 'networks'} ${failed.join(', ')}`);
  return 0;
}
