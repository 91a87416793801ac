// `shoal network create|ls|inspect|rm`: cluster-wide overlay networks, like `docker network` on a
// swarm. The managers validate (see manager/api/networks.ts); the allocator gives each network its
// subnet and VXLAN id shortly after it is created.
import { parseArgs } from 'node:util';
import type { ParseArgsConfig } from 'node:util';
import { CliError, control, table, type Context } from './shoal.ts';

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

type Values = Record<string, string | boolean | string[] | undefined>;

function parse(args: string[], options: NonNullable<ParseArgsConfig['options']>): { values: Values; positionals: string[] } {
  try {
    const r = parseArgs({ args, options: { context: { type: 'string' }, format: { type: 'string' }, ...options }, allowPositionals: true, strict: true });
    return { values: r.values as Values, positionals: r.positionals };
  } catch (e) {
    throw new CliError((e as Error).message.replace(/^.*?: /, '').replace(/\. To specify a positional.*$/, ''));
  }
}

const CREATE_OPTIONS = {
  driver: { type: 'string', short: 'd' },
  subnet: { type: 'string' },
  gateway: { type: 'string' },
  attachable: { type: 'boolean' },
  internal: { type: 'boolean' },
  ingress: { type: 'boolean' },
  label: { type: 'string', multiple: true },
} as const;

/** `network create` flags → the API request (the managers validate the values themselves). */
export function parseNetworkCreateArgs(args: string[]): NetworkCreateRequest {
  const { values, positionals } = parse(args, CREATE_OPTIONS);
  if (positionals.length !== 1) throw new CliError(`network create needs exactly one network name (got ${positionals.length})`);
  const labels: Record<string, string> = {};
  for (const kv of (values.label as string[] | undefined) ?? []) {
    const i = kv.indexOf('=');
    const k = i < 0 ? kv : kv.slice(0, i);
    if (k === '') throw new CliError(`--label ${kv}: expected key=value`);
    labels[k] = i < 0 ? '' : kv.slice(i + 1);
  }
  if (values.gateway !== undefined && values.subnet === undefined) throw new CliError('--gateway needs --subnet');
  const cfg: { subnet?: string; gateway?: string } = {};
  if (values.subnet !== undefined) cfg.subnet = String(values.subnet);
  if (values.gateway !== undefined) cfg.gateway = String(values.gateway);
  return {
    spec: {
      name: positionals[0]!,
      driver: values.driver !== undefined ? String(values.driver) : 'overlay',
      labels,
      ipam: { configs: cfg.subnet !== undefined ? [cfg] : [] },
      attachable: values.attachable === true,
      internal: values.internal === true,
      ...(values.ingress === true ? { ingress: true } : {}),
    },
  };
}

/** The `network ls` table. */
export function networkRows(networks: any[]): string[][] {
  const rows = [['ID', 'NAME', 'DRIVER', 'SCOPE', 'SUBNET', 'VNI']];
  const sorted = [...networks].sort((a, b) => String(a.spec?.name).localeCompare(String(b.spec?.name)));
  for (const n of sorted) {
    const subnet = n.allocation?.subnets?.[0]?.subnet ?? n.spec?.ipam?.configs?.[0]?.subnet ?? '';
    const vni = n.allocation?.vni !== undefined ? String(n.allocation.vni) : n.allocation?.error ? 'error' : 'pending';
    rows.push([String(n.id).slice(0, 12), n.spec?.name ?? '', n.spec?.driver ?? '', 'swarm', subnet, vni]);
  }
  return rows;
}

function checkFormat(values: Values): 'json' | 'table' {
  const f = values.format;
  if (f === undefined || f === 'table') return 'table';
  if (f === 'json') return 'json';
  throw new CliError(`--format must be table or json (got ${JSON.stringify(f)})`);
}

/**
 * Runs `shoal network SUB ARGS`. `context(flag)` loads the cluster context (the value of --context, if
 * given), so this module parses all of its own flags.
 */
export async function networkCmd(sub: string | undefined, args: string[], context: (flag: string | undefined) => Context): Promise<number> {
  switch (sub) {
    case 'create': {
      const body = parseNetworkCreateArgs(args);
      const { values } = parse(args, CREATE_OPTIONS);
      const r = await control(context(values.context as string | undefined), 'POST', '/v1/networks', body);
      console.log(r.id);
      return 0;
    }
    case 'ls':
    case 'list': {
      const { values, positionals } = parse(args, { quiet: { type: 'boolean', short: 'q' } });
      if (positionals.length > 0) throw new CliError('network ls takes no arguments');
      const format = checkFormat(values);
      const networks = (await control(context(values.context as string | undefined), 'GET', '/v1/networks')) as any[];
      if (values.quiet) console.log(networks.map((n) => n.id).join('\n'));
      else if (format === 'json') console.log(JSON.stringify(networks, null, 2));
      else console.log(table(networkRows(networks)));
      return 0;
    }
    case 'inspect': {
      const { values, positionals } = parse(args, {});
      checkFormat(values);
      if (positionals.length === 0) throw new CliError('network inspect needs at least one network (name, id or id prefix)');
      const ctx = context(values.context as string | undefined);
      const out = [];
      for (const ref of positionals) out.push(await control(ctx, 'GET', `/v1/networks/${encodeURIComponent(ref)}`));
      console.log(JSON.stringify(out, null, 2));
      return 0;
    }
    case 'rm':
    case 'remove': {
      const { values, positionals } = parse(args, {});
      if (positionals.length === 0) throw new CliError('network rm needs at least one network');
      const ctx = context(values.context as string | undefined);
      const failed: string[] = [];
      for (const ref of positionals) {
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
    default:
      throw new CliError(`unknown network command '${sub ?? ''}' (create, ls, inspect, rm)`);
  }
}

/** Usage lines for `shoal --help`. */
export const NETWORK_USAGE = `Networks:
  shoal network create [--driver overlay] [--subnet CIDR] [--gateway IP] [--attachable] [--internal] [--ingress] [--label k=v]... NAME
  shoal network ls [--format json] [-q] | inspect NETWORK... | rm NETWORK...`;
