// Shoal's nodes and networks as the Engine API shows them: Node (`node ls/inspect`) and the engine's
// network.Inspect shape (not swarm.Network: that is what `network ls/inspect` decode), plus the
// reverse for node updates (Docker sends the whole NodeSpec; Shoal's control API takes changes).
// Pure.
import type { Frozen, Network, Node } from '../../api/objects.ts';
import { compact, dockerArch, dockerTime } from './wire.ts';

type J = Record<string, unknown>;

/** A node as GET /v1/nodes presents it: the store object plus its manager status. */
export type PresentedNode = Frozen<Node> & {
  managerStatus: { leader: boolean; reachability: string; voter: boolean; addr: string } | null;
};

export function nodeOut(n: PresentedNode): J {
  const d = n.description;
  const ms = n.managerStatus;
  return compact({
    ID: n.id,
    Version: { Index: n.version },
    CreatedAt: dockerTime(n.createdAt),
    UpdatedAt: dockerTime(n.updatedAt),
    Spec: { Labels: n.spec.labels ?? {}, Role: n.spec.role, Availability: n.spec.availability },
    Description: {
      Hostname: d?.hostname ?? '',
      Platform: { Architecture: dockerArch(d?.platform?.arch ?? ''), OS: d?.platform?.os ?? '' },
      Resources: { NanoCPUs: d?.resources?.nanoCpus ?? 0, MemoryBytes: d?.resources?.memoryBytes ?? 0 },
      Engine: { EngineVersion: d?.engineVersion ?? '', Labels: {}, Plugins: [] },
      TLSInfo: {},
    },
    // Docker's node states: unknown, down, ready, disconnected — the same names as Shoal's.
    Status: compact({ State: n.status.state, Message: n.status.message || undefined, Addr: ipOnly(n.status.addr || d?.addr || '') }),
    ManagerStatus: ms ? { Leader: ms.leader || undefined, Reachability: ms.reachability, Addr: ms.addr } : undefined,
  });
}

/** Docker's Status.Addr is an IP without a port. */
function ipOnly(addr: string): string {
  const m = /^\[?([0-9a-fA-F:.]+?)\]?(?::\d+)?$/.exec(addr);
  return m ? m[1]! : addr;
}

export function networkOut(n: Frozen<Network>): J {
  const subnets = n.allocation?.subnets ?? [];
  const configs = subnets.length
    ? subnets.map((s) => ({ Subnet: s.subnet, Gateway: s.gateway }))
    : n.spec.ipam.configs.map((c) => compact({ Subnet: c.subnet, Gateway: c.gateway, IPRange: c.range }));
  return {
    Name: n.spec.name,
    Id: n.id,
    Created: dockerTime(n.createdAt),
    Scope: 'swarm',
    Driver: n.spec.driver,
    EnableIPv4: true,
    EnableIPv6: false,
    IPAM: { Driver: n.spec.ipam.driver ?? 'default', Options: null, Config: configs },
    Internal: n.spec.internal,
    Attachable: n.spec.attachable,
    Ingress: n.spec.ingress === true,
    ConfigFrom: { Network: '' },
    ConfigOnly: false,
    Containers: {},
    Options: n.allocation?.vni !== undefined ? { 'com.docker.network.driver.overlay.vxlanid_list': String(n.allocation.vni) } : {},
    Labels: n.spec.labels ?? {},
  };
}

/** Docker's NetworkCreateRequest as Shoal's network spec input, and what could not be honoured. */
export function networkSpecIn(b: J): { spec: J; warnings: string[] } {
  const warnings: string[] = [];
  const ipam = (b.IPAM && typeof b.IPAM === 'object' ? b.IPAM : {}) as J;
  const configs = (Array.isArray(ipam.Config) ? ipam.Config : []) as J[];
  if (b.EnableIPv6 === true) warnings.push('EnableIPv6 is not supported by Shoal and was ignored');
  if (b.ConfigOnly === true || (b.ConfigFrom && typeof b.ConfigFrom === 'object' && (b.ConfigFrom as J).Network))
    warnings.push('ConfigOnly/ConfigFrom networks are not supported by Shoal and were ignored');
  if (b.Options && typeof b.Options === 'object' && Object.keys(b.Options).some((k) => k !== 'encrypted'))
    warnings.push('driver options are not supported by Shoal and were ignored');
  if (b.Options && typeof b.Options === 'object' && 'encrypted' in (b.Options as J))
    warnings.push('encrypted overlay networks are not supported by Shoal: traffic is not encrypted');
  const spec = compact({
    name: b.Name,
    driver: typeof b.Driver === 'string' && b.Driver !== '' ? b.Driver : 'overlay',
    labels: (b.Labels && typeof b.Labels === 'object' ? b.Labels : {}) as Record<string, string>,
    ipam: compact({
      driver: typeof ipam.Driver === 'string' && ipam.Driver !== '' ? ipam.Driver : undefined,
      configs: configs.map((c) => compact({ subnet: c.Subnet || undefined, gateway: c.Gateway || undefined, range: c.IPRange || undefined })),
    }),
    attachable: b.Attachable === true,
    internal: b.Internal === true,
    ingress: b.Ingress === true ? true : undefined,
  });
  return { spec, warnings };
}
