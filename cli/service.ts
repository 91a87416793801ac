// `shoal service create|ls|ps|inspect|scale|update|rollback|rm`, with live progress until the service
// converges (unless --detach), like `docker service`.
import { parseServiceCreateArgs, parseServiceUpdateArgs, serviceUpdateTarget } from './service-flags.ts';
import { CliError, control, table, type Context } from './shoal.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function ago(iso: string | undefined): string {
  if (!iso) return '';
  const s = Math.max(0, Math.round((Date.now() - new Date(iso).getTime()) / 1000));
  if (s < 60) return `${s} seconds ago`;
  if (s < 3600) return `${Math.round(s / 60)} minutes ago`;
  return `${Math.round(s / 3600)} hours ago`;
}

const cap = (s: string) => (s ? s[0]!.toUpperCase() + s.slice(1) : s);

function modeText(svc: any): string {
  const m = svc.spec.mode;
  if (m.replicated) return 'replicated';
  if (m.global) return 'global';
  if (m.replicatedJob) return 'replicated job';
  return 'global job';
}

function portsText(svc: any): string {
  return (svc.spec.endpoint?.ports ?? []).map((p: any) => `*:${p.publishedPort ?? '?'}->${p.targetPort}/${p.protocol}`).join(', ');
}

export async function serviceCmd(ctx: Context, sub: string | undefined, args: string[], format?: string): Promise<number> {
  switch (sub) {
    case 'create': {
      const { spec, detach } = parseServiceCreateArgs(args);
      const r = await control(ctx, 'POST', '/v1/services', { spec });
      console.log(r.id);
      if (!detach) await progress(ctx, r.id, 'create');
      return 0;
    }
    case 'ls': {
      const services = await control(ctx, 'GET', '/v1/services');
      if (format === 'json') {
        console.log(JSON.stringify(services, null, 2));
        return 0;
      }
      const rows = [['ID', 'NAME', 'MODE', 'REPLICAS', 'IMAGE', 'PORTS']];
      for (const s of services) {
        const rep = s.replicas.desired === null ? `${s.replicas.running}` : `${s.replicas.running}/${s.replicas.desired}`;
        rows.push([s.id.slice(0, 12), s.spec.name, modeText(s), rep, s.spec.task.image, portsText(s)]);
      }
      console.log(table(rows));
      return 0;
    }
    case 'inspect': {
      if (args.length === 0) throw new CliError('service inspect needs a service');
      const out = [];
      for (const a of args.filter((x) => !x.startsWith('-'))) out.push(await control(ctx, 'GET', `/v1/services/${encodeURIComponent(a)}`));
      console.log(JSON.stringify(out, null, 2));
      return 0;
    }
    case 'ps': {
      const all = args.includes('--all') || args.includes('-a');
      const refs = args.filter((x) => !x.startsWith('-'));
      if (refs.length !== 1) throw new CliError('service ps needs one service');
      const svc = await control(ctx, 'GET', `/v1/services/${encodeURIComponent(refs[0]!)}`);
      const tasks = await control(ctx, 'GET', `/v1/tasks?service=${encodeURIComponent(svc.id)}${all ? '&all=1' : ''}`);
      if (format === 'json') {
        console.log(JSON.stringify(tasks, null, 2));
        return 0;
      }
      const nodes = new Map<string, string>((await control(ctx, 'GET', '/v1/nodes')).map((n: any) => [n.id, n.description?.hostname ?? n.id]));
      const rows = [['ID', 'NAME', 'IMAGE', 'NODE', 'DESIRED STATE', 'CURRENT STATE', 'ERROR']];
      const sorted = [...tasks].sort((a: any, b: any) => (a.slot ?? 0) - (b.slot ?? 0) || (nodes.get(a.nodeId) ?? '').localeCompare(nodes.get(b.nodeId) ?? '') || String(b.createdAt).localeCompare(String(a.createdAt)));
      let lastSlot: unknown = undefined;
      for (const t of sorted) {
        const key = t.slot ?? t.nodeId;
        const name = `${svc.spec.name}.${t.slot ?? nodes.get(t.nodeId) ?? t.nodeId ?? ''}`;
        const shown = all && key === lastSlot ? ` \\_ ${name}` : name;
        lastSlot = key;
        const err = t.status.err ?? (t.status.state === 'pending' && t.status.message?.startsWith('no suitable node') ? `"${t.status.message}"` : '');
        rows.push([t.id.slice(0, 12), shown, t.spec.image, nodes.get(t.nodeId) ?? '', cap(t.desiredState), `${cap(t.status.state)} ${ago(t.status.timestamp)}`, err]);
      }
      console.log(table(rows));
      return 0;
    }
    case 'scale': {
      const detach = args.includes('-d') || args.includes('--detach');
      for (const a of args.filter((x) => !x.startsWith('-'))) {
        const m = /^([^=]+)=(\d+)$/.exec(a);
        if (!m) throw new CliError(`service scale: expected SERVICE=REPLICAS, got ${JSON.stringify(a)}`);
        const r = await control(ctx, 'POST', `/v1/services/${encodeURIComponent(m[1]!)}/scale`, { replicas: Number(m[2]) });
        console.log(`${m[1]} scaled to ${m[2]}`);
        if (!detach) await progress(ctx, r.id, 'scale');
      }
      return 0;
    }
    case 'update': {
      const name = serviceUpdateTarget(args);
      if (!name) throw new CliError('service update needs a service');
      const cur = await control(ctx, 'GET', `/v1/services/${encodeURIComponent(name)}`);
      const { spec, force, detach, rollback } = parseServiceUpdateArgs(args, cur.spec);
      if (rollback) {
        // --rollback may carry --update-*/--rollback-* settings: store them, then roll back.
        if (JSON.stringify(spec.update) !== JSON.stringify(cur.spec.update) || JSON.stringify(spec.rollback) !== JSON.stringify(cur.spec.rollback)) {
          await control(ctx, 'POST', `/v1/services/${encodeURIComponent(cur.id)}/update`, { spec: { ...cur.spec, update: spec.update, rollback: spec.rollback }, version: cur.version });
        }
        await control(ctx, 'POST', `/v1/services/${encodeURIComponent(cur.id)}/rollback`);
      } else {
        await control(ctx, 'POST', `/v1/services/${encodeURIComponent(cur.id)}/update`, { spec, force, version: cur.version });
      }
      console.log(cur.spec.name);
      if (!detach) await progress(ctx, cur.id, rollback ? 'rollback' : 'update');
      return 0;
    }
    case 'rollback': {
      const detach = args.includes('-d') || args.includes('--detach');
      const name = args.find((x) => !x.startsWith('-'));
      if (!name) throw new CliError('service rollback needs a service');
      const r = await control(ctx, 'POST', `/v1/services/${encodeURIComponent(name)}/rollback`);
      console.log(name);
      if (!detach) await progress(ctx, r.id, 'rollback');
      return 0;
    }
    case 'rm': {
      const names = args.filter((x) => !x.startsWith('-'));
      if (names.length === 0) throw new CliError('service rm needs at least one service');
      for (const n of names) {
        await control(ctx, 'DELETE', `/v1/services/${encodeURIComponent(n)}`);
        console.log(n);
      }
      return 0;
    }
    default:
      throw new CliError(`unknown service command '${sub ?? ''}' (create, ls, ps, inspect, scale, update, rollback, rm)`);
  }
}

/** Follows a service until it converges, printing progress lines as they change. */
async function progress(ctx: Context, id: string, what: 'create' | 'scale' | 'update' | 'rollback', timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  let stable = 0;
  while (Date.now() < deadline) {
    const svc = await control(ctx, 'GET', `/v1/services/${encodeURIComponent(id)}`);
    const tasks = (await control(ctx, 'GET', `/v1/tasks?service=${encodeURIComponent(id)}`)) as any[];
    const current = tasks.filter((t) => t.desiredState === 'running' || t.desiredState === 'complete');
    const onVersion = current.filter((t) => t.specVersion === svc.specVersion);
    const running = onVersion.filter((t) => t.status.state === 'running' || t.status.state === 'complete').length;
    const desired = svc.replicas.desired ?? current.length;
    const us = svc.updateStatus?.state as string | undefined;
    // Per-task states of the current tasks, e.g. "running 3, starting 2, pending 1".
    const byState = new Map<string, number>();
    for (const t of current) byState.set(t.status.state, (byState.get(t.status.state) ?? 0) + 1);
    const states = [...byState.entries()].sort((a, b) => b[1] - a[1]).map(([k, n]) => `${k} ${n}`).join(', ');
    let line: string;
    if (what === 'update' || what === 'rollback') line = `${what === 'update' ? 'updated' : 'rolled back'}: ${running}/${desired} tasks [${states}]${us ? ` (${us.replace('_', ' ')}${svc.updateStatus.message ? `: ${svc.updateStatus.message}` : ''})` : ''}`;
    else line = `converging: ${running}/${desired} tasks running [${states}]`;
    if (line !== last) {
      console.log(line);
      last = line;
    }
    if (us === 'paused' || us === 'rollback_paused') throw new CliError(`update paused: ${svc.updateStatus.message}`);
    if (what === 'update' && us === 'rollback_completed') throw new CliError(`update failed and was rolled back: ${svc.updateStatus.message}`);
    const pendingReason = current.find((t) => t.status.state === 'pending' && String(t.status.message).startsWith('no suitable node'))?.status.message;
    const done = running >= desired && (!us || us === 'completed' || us === 'rollback_completed');
    if (done) {
      if (++stable >= 2) {
        console.log(`verify: service ${svc.spec.name} converged`);
        return;
      }
    } else stable = 0;
    if (pendingReason && line === last && Date.now() > deadline - timeoutMs + 5000) {
      console.log(`waiting: ${pendingReason}`);
    }
    await sleep(250);
  }
  throw new CliError(`service ${id} did not converge within ${timeoutMs / 1000} s (the change is stored; follow it with \`shoal service ps\`)`);
}
