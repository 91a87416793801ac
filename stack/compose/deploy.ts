// A service's `deploy` section: mode and replicas, service labels, endpoint mode, placement, resources,
// restart policy, and update and rollback configs, in Shoal's units (ms, bytes, nano-CPUs). Resource
// kinds Shoal cannot reserve (generic resources, devices) are noted for the "not honoured" warning.
import { type Checker, got, isEmptyValue, join } from './check.ts';
import type { ServiceContext } from './service.ts';
import type { PNode } from './tree.ts';
import type { ComposeDeploy, ComposeResources, ComposeUpdateConfig } from './types.ts';
import { parseBytes, parseCpus, parseDuration } from './units.ts';

const DEPLOY_KEYS = ['mode', 'replicas', 'labels', 'endpoint_mode', 'placement', 'resources', 'restart_policy', 'update_config', 'rollback_config'];

export function readDeploy(c: Checker, n: PNode, p: string, ctx: ServiceContext): ComposeDeploy | undefined {
  const m = c.map(n, p, DEPLOY_KEYS);
  if (!m) return undefined;
  const d: ComposeDeploy = { mode: 'replicated', labels: c.labels(c.field(m, 'labels'), join(p, 'labels')), constraints: [], preferences: [] };
  const mn = c.field(m, 'mode');
  if (mn) d.mode = c.oneOf(mn, join(p, 'mode'), ['replicated', 'global', 'replicated-job', 'global-job'] as const) ?? 'replicated';
  const rn = c.field(m, 'replicas');
  if (rn) {
    const r = c.int(rn, join(p, 'replicas'));
    if (r !== undefined) {
      if (d.mode === 'global' || d.mode === 'global-job')
        c.err(rn, join(p, 'replicas'), `replicas can only be used with mode replicated or replicated-job (mode is ${d.mode})`);
      else d.replicas = r;
    }
  }
  const em = c.field(m, 'endpoint_mode');
  if (em) {
    const v = c.oneOf(em, join(p, 'endpoint_mode'), ['vip', 'dnsrr'] as const);
    if (v) d.endpointMode = v;
  }
  const pl = c.field(m, 'placement');
  if (pl) readPlacement(c, pl, join(p, 'placement'), d);
  const rs = c.field(m, 'resources');
  if (rs) readResources(c, rs, join(p, 'resources'), d, ctx);
  const rp = c.field(m, 'restart_policy');
  if (rp) {
    const rm = c.map(rp, join(p, 'restart_policy'), ['condition', 'delay', 'max_attempts', 'window']);
    if (rm) {
      const pol: NonNullable<ComposeDeploy['restartPolicy']> = {};
      const rpp = join(p, 'restart_policy');
      const cn = c.field(rm, 'condition');
      if (cn) {
        const v = c.oneOf(cn, join(rpp, 'condition'), ['none', 'on-failure', 'any'] as const);
        if (v) pol.condition = v;
      }
      const dl = c.field(rm, 'delay');
      if (dl) {
        const v = c.unit(dl, join(rpp, 'delay'), parseDuration);
        if (v !== undefined) pol.delayMs = v;
      }
      const ma = c.field(rm, 'max_attempts');
      if (ma) {
        const v = c.int(ma, join(rpp, 'max_attempts'));
        if (v !== undefined) pol.maxAttempts = v;
      }
      const wn = c.field(rm, 'window');
      if (wn) {
        const v = c.unit(wn, join(rpp, 'window'), parseDuration);
        if (v !== undefined) pol.windowMs = v;
      }
      d.restartPolicy = pol;
    }
  }
  for (const [k, into] of [
    ['update_config', 'updateConfig'],
    ['rollback_config', 'rollbackConfig'],
  ] as const) {
    const x = c.field(m, k);
    if (x) {
      const u = readUpdateConfig(c, x, join(p, k), k === 'update_config');
      if (u) d[into] = u;
    }
  }
  return d;
}

function readPlacement(c: Checker, n: PNode, p: string, d: ComposeDeploy): void {
  const m = c.map(n, p, ['constraints', 'preferences', 'max_replicas_per_node']);
  if (!m) return;
  const cn = c.field(m, 'constraints');
  if (cn) d.constraints = c.stringList(cn, join(p, 'constraints')) ?? [];
  const pn = c.field(m, 'preferences');
  if (pn) {
    if (pn.kind !== 'seq') c.err(pn, join(p, 'preferences'), `must be a list of {spread: node.labels.…}, got ${got(pn)}`);
    else {
      pn.items.forEach((it, i) => {
        const ip = `${p}.preferences[${i}]`;
        const pm = c.map(it, ip, ['spread']);
        const sp = pm && c.field(pm, 'spread');
        if (pm && !sp) c.err(pm, ip, 'spread is required (e.g. spread: node.labels.zone)');
        const s = sp ? c.string(sp, join(ip, 'spread')) : undefined;
        if (s !== undefined) d.preferences.push(s);
      });
    }
  }
  const mx = c.field(m, 'max_replicas_per_node');
  if (mx) {
    const v = c.int(mx, join(p, 'max_replicas_per_node'));
    if (v !== undefined) d.maxReplicasPerNode = v;
  }
}

function readAmounts(c: Checker, n: PNode, p: string, limits: boolean, ctx: ServiceContext): ComposeResources | undefined {
  const m = c.map(n, p, limits ? ['cpus', 'memory', 'pids'] : ['cpus', 'memory', 'generic_resources', 'devices']);
  if (!m) return undefined;
  const r: ComposeResources = {};
  const cp = c.field(m, 'cpus');
  if (cp) {
    const v = c.unit(cp, join(p, 'cpus'), parseCpus);
    if (v !== undefined) r.nanoCpus = v;
  }
  const mem = c.field(m, 'memory');
  if (mem) {
    const v = c.unit(mem, join(p, 'memory'), parseBytes);
    if (v !== undefined) r.memoryBytes = v;
  }
  const pids = limits ? c.field(m, 'pids') : undefined;
  if (pids) {
    const v = c.int(pids, join(p, 'pids'));
    if (v !== undefined) r.pids = v;
  }
  for (const k of ['generic_resources', 'devices']) {
    const x = limits ? undefined : c.field(m, k);
    if (x && !isEmptyValue(x)) ctx.notes.unhonoured.add(`deploy.resources.reservations.${k}`);
  }
  return r;
}

function readResources(c: Checker, n: PNode, p: string, d: ComposeDeploy, ctx: ServiceContext): void {
  const m = c.map(n, p, ['limits', 'reservations']);
  if (!m) return;
  const l = c.field(m, 'limits');
  if (l) {
    const v = readAmounts(c, l, join(p, 'limits'), true, ctx);
    if (v) d.limits = v;
  }
  const r = c.field(m, 'reservations');
  if (r) {
    const v = readAmounts(c, r, join(p, 'reservations'), false, ctx);
    if (v) d.reservations = v;
  }
}

function readUpdateConfig(c: Checker, n: PNode, p: string, update: boolean): ComposeUpdateConfig | undefined {
  const m = c.map(n, p, ['parallelism', 'delay', 'failure_action', 'monitor', 'max_failure_ratio', 'order']);
  if (!m) return undefined;
  const u: ComposeUpdateConfig = {};
  const pn = c.field(m, 'parallelism');
  if (pn) {
    const v = c.int(pn, join(p, 'parallelism'));
    if (v !== undefined) u.parallelism = v;
  }
  for (const [k, into] of [
    ['delay', 'delayMs'],
    ['monitor', 'monitorMs'],
  ] as const) {
    const x = c.field(m, k);
    if (x) {
      const v = c.unit(x, join(p, k), parseDuration);
      if (v !== undefined) u[into] = v;
    }
  }
  const fa = c.field(m, 'failure_action');
  if (fa) {
    const v = c.oneOf(fa, join(p, 'failure_action'), update ? (['pause', 'continue', 'rollback'] as const) : (['pause', 'continue'] as const));
    if (v) u.failureAction = v;
  }
  const mf = c.field(m, 'max_failure_ratio');
  if (mf) {
    const v = c.float(mf, join(p, 'max_failure_ratio'));
    if (v !== undefined) {
      if (v < 0 || v > 1) c.err(mf, join(p, 'max_failure_ratio'), `must be between 0 and 1, got ${v}`);
      else u.maxFailureRatio = v;
    }
  }
  const on = c.field(m, 'order');
  if (on) {
    const v = c.oneOf(on, join(p, 'order'), ['stop-first', 'start-first'] as const);
    if (v) u.order = v;
  }
  return u;
}
