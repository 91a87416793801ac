// `shoal node ls|ps|inspect|update|promote|demote|rm`: the cluster's nodes, as `docker node` shows
// them. Flags are declared in cli/commands.ts; these handlers only talk to the managers and print.
import type { Node, Task } from '../api/objects.ts';
import type { Invocation } from './command.ts';
import { CliError, control } from '../client/context.ts';
import { cap, renderInspect, renderListing, type Listing } from './format.ts';

/** A task as GET /v1/tasks answers: the store's task plus its service's name and the node's last usage report. */
/** A node as GET /v1/nodes answers: the manager status is the live Raft view, not the stored one. */
type NodeView = Omit<Node, 'managerStatus'> & { managerStatus: { leader: boolean; voter: boolean; reachability: string; addr: string } | null };

type TaskView = Task & { serviceAnnotations?: { name?: string }; usage?: { cpuPercent?: number; memoryBytes: number } };

export function nodeListing(nodes: NodeView[]): Listing {
  // Code-point order, as `docker node ls` (and no ICU collator to load: localeCompare's first call costs ms).
  const host = (n: NodeView) => String(n.description?.hostname);
  const sorted = [...nodes].sort((a, b) => (host(a) < host(b) ? -1 : host(a) > host(b) ? 1 : 0));
  return {
    headers: ['ID', 'HOSTNAME', 'STATUS', 'AVAILABILITY', 'MANAGER STATUS', 'ROLE', 'ADDRESS'],
    rows: sorted.map((n) => {
      const m = n.managerStatus;
      const ms = m ? (m.leader ? 'Leader' : m.voter ? cap(m.reachability) : 'Joining') : '';
      return {
        id: n.id,
        object: n,
        cells: [
          n.id.slice(0, 12),
          n.description?.hostname ?? '',
          cap(n.status?.state ?? ''),
          cap(n.spec?.availability ?? ''),
          ms,
          n.spec?.role ?? '',
          n.status?.addr ?? '',
        ],
      };
    }),
  };
}

const one = (i: Invocation, what = 'one node (id, id prefix or hostname)'): string => {
  if (i.positionals.length !== 1) throw new CliError(`${i.name} needs ${what}`);
  return i.positionals[0]!;
};

export async function nodeLs(i: Invocation): Promise<number> {
  if (i.positionals.length > 0) throw new CliError(`${i.name} takes no arguments`);
  const nodes = await control<NodeView[]>(i.context(), 'GET', '/v1/nodes');
  console.log(renderListing(nodeListing(nodes), i.output));
  return 0;
}

/** Docker's `node ps`, plus the CPU and memory each task's node last reported. */
export async function nodePs(i: Invocation): Promise<number> {
  const ref = one(i);
  const ctx = i.context();
  const node = await control<Node>(ctx, 'GET', `/v1/nodes/${encodeURIComponent(ref)}`);
  const tasks = await control<TaskView[]>(ctx, 'GET', `/v1/tasks?node=${encodeURIComponent(node.id)}${i.flag('all') ? '&all=1' : ''}`);
  const mib = (b: number) => `${(b / 1048576).toFixed(1)}MiB`;
  const sorted = [...tasks].sort(
    (a, b) => String(a.serviceAnnotations?.name).localeCompare(String(b.serviceAnnotations?.name)) || (a.slot ?? 0) - (b.slot ?? 0),
  );
  const listing: Listing = {
    headers: ['ID', 'NAME', 'IMAGE', 'DESIRED STATE', 'CURRENT STATE', 'CPU %', 'MEM', 'ERROR'],
    rows: sorted.map((t) => {
      const u = t.usage;
      return {
        id: t.id,
        object: t,
        cells: [
          t.id.slice(0, 12),
          `${t.serviceAnnotations?.name ?? t.serviceId}.${t.slot ?? node.description?.hostname ?? ''}`,
          String(t.spec.image).replace(/@sha256:([a-f0-9]{12})[a-f0-9]*/, '@$1…'),
          t.desiredState,
          t.status.state,
          u?.cpuPercent !== undefined ? u.cpuPercent.toFixed(1) : '-',
          u ? mib(u.memoryBytes) : '-',
          t.status.err ?? '',
        ],
      };
    }),
  };
  console.log(renderListing(listing, i.output));
  return 0;
}

export async function nodeInspect(i: Invocation): Promise<number> {
  if (i.positionals.length === 0) throw new CliError(`${i.name} needs at least one node (id, id prefix or hostname)`);
  const ctx = i.context();
  const out: Node[] = [];
  for (const ref of i.positionals) out.push(await control<Node>(ctx, 'GET', `/v1/nodes/${encodeURIComponent(ref)}`));
  console.log(renderInspect(out, i.output.format));
  return 0;
}

export async function nodeUpdate(i: Invocation): Promise<number> {
  const ref = one(i);
  const labelAdd: Record<string, string> = {};
  for (const kv of i.values('label-add')) {
    const at = kv.indexOf('=');
    if (at <= 0) throw new CliError(`--label-add ${kv}: expected key=value`);
    labelAdd[kv.slice(0, at)] = kv.slice(at + 1);
  }
  const availability = i.value('availability');
  if (availability !== undefined && !['active', 'pause', 'drain'].includes(availability))
    throw new CliError(`--availability must be active, pause or drain (got ${JSON.stringify(availability)})`);
  const n = await control<Node>(i.context(), 'POST', `/v1/nodes/${encodeURIComponent(ref)}/update`, {
    labelAdd,
    labelRm: i.values('label-rm'),
    ...(availability ? { availability } : {}),
  });
  console.log(n.id);
  return 0;
}

export async function nodeRole(i: Invocation): Promise<number> {
  const verb = i.path[i.path.length - 1] as 'promote' | 'demote';
  if (i.positionals.length === 0) throw new CliError(`${i.name} needs at least one node`);
  const ctx = i.context();
  for (const ref of i.positionals) {
    await control(ctx, 'POST', `/v1/nodes/${encodeURIComponent(ref)}/${verb}`);
    console.log(`Node ${ref} ${verb}d ${verb === 'promote' ? 'to a manager' : 'to a worker'} in the cluster.`);
  }
  return 0;
}

export async function nodeRm(i: Invocation): Promise<number> {
  const ref = one(i, 'one node');
  const r = await control<{ removed: string }>(i.context(), 'DELETE', `/v1/nodes/${encodeURIComponent(ref)}${i.flag('force') ? '?force=1' : ''}`);
  console.log(r.removed);
  return 0;
}
