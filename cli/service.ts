// `shoal service create|ls|ps|inspect|autoscale|scale|update|rollback|rm`, with live progress until the service
// converges (unless --detach), like `docker service`. Flags are declared in cli/commands.ts (create and
// update: in cli/service-flags.ts, which parses Docker's flags into a spec).
import { setTimeout as sleep } from 'node:timers/promises';
import type { AutoscaleReport, Node, Service, Task } from '../api/objects.ts';
import type { Invocation } from './command.ts';
import { CliError, control, type Context } from '../client/context.ts';
import { cap, checkFormat, humanAgo, renderInspect, renderListing, type Listing } from './format.ts';
import { neutralise } from './logs.ts';
import { StatusLine } from './progress.ts';
import { parseServiceCreateArgs, parseServiceUpdateArgs, serviceUpdateTarget } from './service-flags.ts';

/** A service as GET /v1/services answers: the store's object plus its replica counts. */
type ServiceView = Service & { replicas: { running: number; desired: number | null } };

function modeText(svc: Service): string {
  const m = svc.spec.mode;
  if ('replicated' in m) return 'replicated';
  if ('global' in m) return 'global';
  if ('replicatedJob' in m) return 'replicated job';
  return 'global job';
}

function portsText(svc: Service): string {
  return (svc.spec.endpoint?.ports ?? []).map((p) => `*:${p.publishedPort ?? '?'}->${p.targetPort}/${p.protocol}`).join(', ');
}

export async function serviceCreate(i: Invocation): Promise<number> {
  const { spec, detach, quiet } = parseServiceCreateArgs(i.argv);
  const ctx = i.context();
  const r = await control<{ id: string }>(ctx, 'POST', '/v1/services', { spec });
  console.log(r.id);
  if (!detach) await progress(ctx, r.id, 'create', quiet);
  return 0;
}

export function serviceListing(services: ServiceView[]): Listing {
  return {
    headers: ['ID', 'NAME', 'MODE', 'REPLICAS', 'IMAGE', 'PORTS'],
    rows: services.map((s) => {
      const a = s.spec.autoscale;
      const rep =
        (s.replicas.desired === null ? `${s.replicas.running}` : `${s.replicas.running}/${s.replicas.desired}`) + (a ? ` (auto ${a.min}–${a.max})` : '');
      return { id: s.id, object: s, cells: [s.id.slice(0, 12), s.spec.name, modeText(s), rep, s.spec.task.image, portsText(s)] };
    }),
  };
}

export async function serviceLs(i: Invocation): Promise<number> {
  if (i.positionals.length > 0) throw new CliError(`${i.name} takes no arguments`);
  const services = await control<ServiceView[]>(i.context(), 'GET', '/v1/services');
  console.log(renderListing(serviceListing(services), i.output));
  return 0;
}

export async function serviceInspect(i: Invocation): Promise<number> {
  if (i.positionals.length === 0) throw new CliError('service inspect needs a service');
  const ctx = i.context();
  const out: ServiceView[] = [];
  for (const a of i.positionals) out.push(await control<ServiceView>(ctx, 'GET', `/v1/services/${encodeURIComponent(a)}`));
  console.log(renderInspect(out, i.output.format));
  return 0;
}

/** `90000` → `1m30s`: milliseconds as the policy was given (Go's duration spelling, as the flags take it). */
export function msText(ms: number): string {
  if (ms === 0) return '0s';
  const parts: string[] = [];
  let rest = ms;
  for (const [unit, size] of [
    ['h', 3_600_000],
    ['m', 60_000],
    ['s', 1000],
  ] as const) {
    if (rest >= size) {
      parts.push(`${Math.floor(rest / size)}${unit}`);
      rest %= size;
    }
  }
  if (rest > 0) parts.push(`${rest}ms`);
  return parts.join('');
}

/** The report of `service autoscale`, one field per line (as `docker service inspect --pretty`). */
export function autoscaleText(r: AutoscaleReport): string {
  if (!r.policy) return `Service ${r.name} has no autoscale policy (set one with: shoal service update --autoscale min=N,max=M,cpu=P% ${r.name})\n`;
  const p = r.policy;
  const targets = [p.cpu !== undefined ? `cpu ${p.cpu}%` : '', p.memory !== undefined ? `memory ${p.memory}%` : ''].filter(Boolean).join(', ');
  const lines = [
    ['Service', `${r.name} (${r.serviceId.slice(0, 12)})`],
    [
      'Policy',
      `min ${p.min}, max ${p.max}, ${targets}; window ${msText(p.windowMs)}, cooldowns out ${msText(p.cooldowns.outMs)} / in ${msText(p.cooldowns.inMs)}`,
    ],
    ['Replicas', String(r.replicas ?? '-')],
    [
      'Last change',
      r.lastChange ? `${r.lastChange.from} → ${r.lastChange.to}, ${humanAgo(r.lastChange.time).toLowerCase()}: ${r.lastChange.reason}` : 'none yet',
    ],
    [
      'Now',
      r.decision
        ? `${r.decision.recommendation === r.replicas ? 'holds' : 'wants'} ${r.decision.recommendation}: ${r.decision.reason} (evaluated ${humanAgo(r.decision.at).toLowerCase()})`
        : 'not evaluated yet by this leader',
    ],
  ];
  const w = Math.max(...lines.map(([k]) => k!.length)) + 2;
  return lines.map(([k, v]) => `${`${k}:`.padEnd(w)}${v}\n`).join('');
}

export async function serviceAutoscale(i: Invocation): Promise<number> {
  if (i.positionals.length !== 1) throw new CliError('service autoscale needs one service');
  const format = i.output.format;
  if (format !== undefined && format !== 'pretty') checkFormat(format); // a typo fails before the request
  const r = await control<AutoscaleReport>(i.context(), 'GET', `/v1/services/${encodeURIComponent(i.positionals[0]!)}/autoscale`);
  // The reasons are the manager's words about names users chose: control characters made visible on a terminal.
  if (format === undefined || format === 'pretty') process.stdout.write(process.stdout.isTTY ? neutralise(autoscaleText(r)) : autoscaleText(r));
  else console.log(renderInspect([r], format));
  return 0;
}

export async function servicePs(i: Invocation): Promise<number> {
  const all = i.flag('all');
  if (i.positionals.length !== 1) throw new CliError('service ps needs one service');
  const ctx = i.context();
  const svc = await control<ServiceView>(ctx, 'GET', `/v1/services/${encodeURIComponent(i.positionals[0]!)}`);
  const tasks = await control<Task[]>(ctx, 'GET', `/v1/tasks?service=${encodeURIComponent(svc.id)}${all ? '&all=1' : ''}`);
  const nodes = new Map<string, string>((await control<Node[]>(ctx, 'GET', '/v1/nodes')).map((n) => [n.id, n.description?.hostname ?? n.id]));
  const host = (t: Task) => (t.nodeId ? (nodes.get(t.nodeId) ?? '') : '');
  const sorted = [...tasks].sort(
    (a, b) => (a.slot ?? 0) - (b.slot ?? 0) || host(a).localeCompare(host(b)) || String(b.createdAt).localeCompare(String(a.createdAt)),
  );
  let lastSlot: unknown;
  const listing: Listing = { headers: ['ID', 'NAME', 'IMAGE', 'NODE', 'DESIRED STATE', 'CURRENT STATE', 'ERROR'], rows: [] };
  for (const t of sorted) {
    const key = t.slot ?? t.nodeId;
    const name = `${svc.spec.name}.${t.slot ?? (host(t) || t.nodeId) ?? ''}`;
    const shown = all && key === lastSlot ? ` \\_ ${name}` : name;
    lastSlot = key;
    const err = t.status.err ?? (t.status.state === 'pending' && t.status.message?.startsWith('no suitable node') ? `"${t.status.message}"` : '');
    listing.rows.push({
      id: t.id,
      object: t,
      cells: [
        t.id.slice(0, 12),
        shown,
        t.spec.image,
        host(t),
        cap(t.desiredState),
        `${cap(t.status.state)} ${humanAgo(t.status.timestamp).toLowerCase()}`,
        err,
      ],
    });
  }
  console.log(renderListing(listing, i.output));
  // Why tasks are missing (a cluster limit), under the table only: -q and --format stay machine-readable.
  if (svc.status?.blocked && !i.output.quiet && i.output.format === undefined) console.log(`\nblocked: ${svc.status.blocked}`);
  return 0;
}

export async function serviceScale(i: Invocation): Promise<number> {
  if (i.positionals.length === 0) throw new CliError('service scale needs SERVICE=REPLICAS');
  const ctx = i.context();
  for (const a of i.positionals) {
    const m = /^([^=]+)=(\d+)$/.exec(a);
    if (!m) throw new CliError(`service scale: expected SERVICE=REPLICAS, got ${JSON.stringify(a)}`);
  }
  for (const a of i.positionals) {
    const m = /^([^=]+)=(\d+)$/.exec(a)!;
    const r = await control<{ id: string }>(ctx, 'POST', `/v1/services/${encodeURIComponent(m[1]!)}/scale`, { replicas: Number(m[2]) });
    console.log(`${m[1]} scaled to ${m[2]}`);
    if (!i.flag('detach')) await progress(ctx, r.id, 'scale', i.flag('quiet'));
  }
  return 0;
}

export async function serviceUpdate(i: Invocation): Promise<number> {
  const args = i.argv;
  const name = serviceUpdateTarget(args);
  if (!name) throw new CliError('service update needs a service');
  const ctx = i.context();
  const cur = await control<ServiceView>(ctx, 'GET', `/v1/services/${encodeURIComponent(name)}`);
  const { spec, force, detach, quiet, rollback } = parseServiceUpdateArgs(args, cur.spec);
  if (rollback) {
    // --rollback may carry --update-*/--rollback-* settings: store them, then roll back.
    if (JSON.stringify(spec.update) !== JSON.stringify(cur.spec.update) || JSON.stringify(spec.rollback) !== JSON.stringify(cur.spec.rollback)) {
      await control(ctx, 'POST', `/v1/services/${encodeURIComponent(cur.id)}/update`, {
        spec: { ...cur.spec, update: spec.update, rollback: spec.rollback },
        version: cur.version,
      });
    }
    await control(ctx, 'POST', `/v1/services/${encodeURIComponent(cur.id)}/rollback`);
  } else {
    await control(ctx, 'POST', `/v1/services/${encodeURIComponent(cur.id)}/update`, { spec, force, version: cur.version });
  }
  console.log(cur.spec.name);
  if (!detach) await progress(ctx, cur.id, rollback ? 'rollback' : 'update', quiet);
  return 0;
}

export async function serviceRollback(i: Invocation): Promise<number> {
  const name = i.positionals[0];
  if (!name || i.positionals.length !== 1) throw new CliError('service rollback needs one service');
  const ctx = i.context();
  const r = await control<{ id: string }>(ctx, 'POST', `/v1/services/${encodeURIComponent(name)}/rollback`);
  console.log(name);
  if (!i.flag('detach')) await progress(ctx, r.id, 'rollback', i.flag('quiet'));
  return 0;
}

export async function serviceRm(i: Invocation): Promise<number> {
  if (i.positionals.length === 0) throw new CliError('service rm needs at least one service');
  const ctx = i.context();
  for (const n of i.positionals) {
    await control(ctx, 'DELETE', `/v1/services/${encodeURIComponent(n)}`);
    console.log(n);
  }
  return 0;
}

/** The status line for one poll of a converging service (pure: the poll's answers in, text out). */
export function progressLine(
  svc: ServiceView,
  tasks: Task[],
  what: 'create' | 'scale' | 'update' | 'rollback',
): { line: string; done: boolean; error?: string } {
  const current = tasks.filter((t) => t.desiredState === 'running' || t.desiredState === 'complete');
  const onVersion = current.filter((t) => t.specVersion === svc.specVersion);
  const running = onVersion.filter((t) => t.status.state === 'running' || t.status.state === 'complete').length;
  const desired = svc.replicas.desired ?? current.length;
  const us = svc.updateStatus?.state;
  const usMsg = svc.updateStatus?.message;
  // Per-task states of the current tasks, e.g. "running 3, starting 2, pending 1".
  const byState = new Map<string, number>();
  for (const t of current) byState.set(t.status.state, (byState.get(t.status.state) ?? 0) + 1);
  const states = [...byState.entries()]
    .sort((a, b) => b[1] - a[1])
    .map(([k, n]) => `${k} ${n}`)
    .join(', ');
  let line: string;
  if (what === 'update' || what === 'rollback')
    line = `${what === 'update' ? 'updated' : 'rolled back'}: ${running}/${desired} tasks [${states}]${us ? ` (${us.replace('_', ' ')}${usMsg ? `: ${usMsg}` : ''})` : ''}`;
  else line = `converging: ${running}/${desired} tasks running [${states}]`;
  const pendingReason = current.find((t) => t.status.state === 'pending' && String(t.status.message).startsWith('no suitable node'))?.status.message;
  if (pendingReason) line += ` (waiting: ${pendingReason})`;
  // The orchestrator cannot create the tasks (a cluster limit): waiting would only run into the timeout.
  const blocked = svc.status?.blocked;
  if (blocked && running < desired) return { line, done: false, error: `service ${svc.spec.name} cannot converge: ${blocked} (the change is stored)` };
  if (us === 'paused' || us === 'rollback_paused') return { line, done: false, error: `update paused: ${usMsg ?? ''}` };
  if (what === 'update' && us === 'rollback_completed') return { line, done: false, error: `update failed and was rolled back: ${usMsg ?? ''}` };
  return { line, done: running >= desired && (!us || us === 'completed' || us === 'rollback_completed') };
}

/**
 * Follows a service until it converges: on a terminal one status line redrawn in place, otherwise a
 * line only when the status changes (cli/progress.ts). `quiet` prints nothing but errors.
 */
async function progress(ctx: Context, id: string, what: 'create' | 'scale' | 'update' | 'rollback', quiet: boolean, timeoutMs = 120_000): Promise<void> {
  const t0 = Date.now();
  const deadline = t0 + timeoutMs;
  const status = new StatusLine(quiet ? { write: () => true } : process.stdout);
  let stable = 0;
  try {
    while (Date.now() < deadline) {
      const svc = await control<ServiceView>(ctx, 'GET', `/v1/services/${encodeURIComponent(id)}`);
      const tasks = await control<Task[]>(ctx, 'GET', `/v1/tasks?service=${encodeURIComponent(id)}`);
      const p = progressLine(svc, tasks, what);
      status.update(p.line, `${Math.round((Date.now() - t0) / 1000)}s`);
      if (p.error) throw new CliError(p.error);
      if (p.done) {
        if (++stable >= 2) {
          status.done(`verify: service ${svc.spec.name} converged`);
          return;
        }
      } else stable = 0;
      await sleep(250);
    }
  } finally {
    status.done();
  }
  throw new CliError(`service ${id} did not converge within ${timeoutMs / 1000} s (the change is stored; follow it with \`shoal service ps\`)`);
}
