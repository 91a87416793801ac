// One `services.<key>` section of a compose file → a ComposeService (types.ts): every option Shoal
// converts is read and type-checked here or in the files for the larger parts (ports.ts, mounts.ts,
// deploy.ts); short syntaxes (secrets, healthcheck test, command strings) are expanded, env_file is read
// through the injected reader; the options Swarm ignores or Shoal cannot honour are noted for the
// one-line warnings (options.ts).
import { posix as path } from 'node:path';
import type { Pos } from './errors.ts';
import { type Checker, got, isEmptyValue, join } from './check.ts';
import { readDeploy } from './deploy.ts';
import { readMounts, readTmpfs } from './mounts.ts';
import { readPorts } from './ports.ts';
import { parseEnvFile, type Lookup } from './interpolate.ts';
import { ALL_SERVICE_OPTIONS, DEPRECATED_OPTIONS, FORBIDDEN_OPTIONS, REFUSED_UNHONOURED, UNHONOURED_OPTIONS, UNSUPPORTED_OPTIONS } from './options.ts';
import { ShellSplitError, shellSplit } from './shell.ts';
import type { PMap, PNode } from './tree.ts';
import type { ComposeFileRef, ComposeHealthcheck, ComposeService } from './types.ts';
import { parseDuration } from './units.ts';

export interface ServiceContext {
  /** Relative paths (bind sources, env_file) resolve against this absolute directory. */
  workingDir: string;
  /** For `~` in bind sources and bare `KEY` environment entries. */
  lookup: Lookup;
  /** Reads a file for env_file: its text, or undefined when it does not exist. */
  readFile: (absPath: string) => string | undefined;
  declared: { networks: Set<string>; volumes: Set<string>; secrets: Set<string>; configs: Set<string> };
  /** Option names collected across services for the warning lines. */
  notes: { unsupported: Set<string>; deprecated: Set<string>; unhonoured: Set<string> };
}

const KNOWN = ALL_SERVICE_OPTIONS;

export function readService(c: Checker, key: string, node: PNode, ctx: ServiceContext): ComposeService | undefined {
  const p = `services.${key}`;
  const m = c.map(node, p, KNOWN);
  if (!m) return undefined;
  const extensions: Record<string, unknown> = {};
  for (const e of m.entries) {
    if (e.key.startsWith('x-shoal-')) extensions[e.key] = plainOf(e.value);
    classify(c, p, e, ctx);
  }
  const f = (k: string) => c.field(m, k);
  const imageNode = f('image');
  const image = imageNode ? c.string(imageNode, join(p, 'image')) : c.err(m, p, 'image is required: a stack deploys images, it does not build them');
  const svc: ComposeService = {
    key,
    pos: m.pos,
    image: image ?? '',
    environment: {},
    labels: c.labels(f('labels'), join(p, 'labels')),
    ports: [],
    mounts: [],
    secrets: [],
    configs: [],
    deploy: { mode: 'replicated', labels: {}, constraints: [], preferences: [] },
    extensions,
  };
  for (const k of ['command', 'entrypoint'] as const) {
    const n = f(k);
    if (n) {
      const v = command(c, n, join(p, k));
      if (v) svc[k] = v;
    }
  }
  const str = (k: string) => {
    const n = f(k);
    return n ? c.string(n, join(p, k)) : undefined;
  };
  const wd = str('working_dir');
  if (wd) svc.workingDir = wd;
  const user = str('user');
  if (user) svc.user = user;
  const hostname = str('hostname');
  if (hostname) svc.hostname = hostname;
  const sig = str('stop_signal');
  if (sig) svc.stopSignal = sig;
  const sgp = f('stop_grace_period');
  if (sgp) {
    const v = c.unit(sgp, join(p, 'stop_grace_period'), parseDuration);
    if (v !== undefined) svc.stopGracePeriodMs = v;
  }
  svc.environment = environment(c, m, p, ctx);
  const ports = f('ports');
  if (ports) svc.ports = readPorts(c, ports, join(p, 'ports'));
  const nets = f('networks');
  if (nets) {
    // An empty list is no list: the service joins the default network, as in Docker.
    const list = readServiceNetworks(c, nets, join(p, 'networks'), ctx);
    if (list?.length) svc.networks = list;
  }
  const vols = f('volumes');
  if (vols) svc.mounts = readMounts(c, vols, join(p, 'volumes'), ctx);
  const tmpfs = f('tmpfs');
  if (tmpfs) svc.mounts.push(...readTmpfs(c, tmpfs, join(p, 'tmpfs'), ctx));
  for (const k of ['secrets', 'configs'] as const) {
    const n = f(k);
    if (n) svc[k] = readFileRefs(c, n, join(p, k), k, ctx.declared[k]);
  }
  const hc = f('healthcheck');
  if (hc) {
    const h = readHealthcheck(c, hc, join(p, 'healthcheck'), ctx);
    if (h) svc.healthcheck = h;
  }
  const dep = f('deploy');
  if (dep) {
    const d = readDeploy(c, dep, join(p, 'deploy'), ctx);
    if (d) svc.deploy = d;
  }
  const conf = readConfinement(c, m, p);
  if (Object.keys(conf).length) svc.confinement = conf;
  return svc;
}

/** cap_add, cap_drop, init, read_only, sysctls and ulimits (names and ranges are checked by the managers). */
function readConfinement(c: Checker, m: PMap, p: string): NonNullable<ComposeService['confinement']> {
  const out: NonNullable<ComposeService['confinement']> = {};
  const f = (k: string) => c.field(m, k);
  for (const [k, key] of [
    ['cap_add', 'capabilityAdd'],
    ['cap_drop', 'capabilityDrop'],
  ] as const) {
    const n = f(k);
    const list = n ? c.stringList(n, join(p, k)) : undefined;
    if (list?.length) out[key] = list;
  }
  for (const [k, key] of [
    ['init', 'init'],
    ['read_only', 'readOnly'],
  ] as const) {
    const n = f(k);
    if (n && c.bool(n, join(p, k))) out[key] = true;
  }
  const sc = f('sysctls');
  if (sc) {
    const s = c.labels(sc, join(p, 'sysctls'));
    if (Object.keys(s).length) out.sysctls = s;
  }
  // ulimits: {nofile: {soft: 1024, hard: 2048}, nproc: 65535} (a single number sets both)
  const ul = f('ulimits');
  const um = ul ? c.map(ul, join(p, 'ulimits'), [], { unknown: () => true }) : undefined;
  if (um) {
    const list: { name: string; soft: number; hard: number }[] = [];
    for (const e of um.entries) {
      const ep = join(join(p, 'ulimits'), e.key);
      if (e.value.kind === 'map') {
        const lm = c.map(e.value, ep, ['soft', 'hard']);
        const soft = lm && c.field(lm, 'soft');
        const hard = lm && c.field(lm, 'hard');
        const sv = soft ? c.int(soft, join(ep, 'soft'), -1) : c.err(e.value, ep, 'soft is required');
        const hv = hard ? c.int(hard, join(ep, 'hard'), -1) : c.err(e.value, ep, 'hard is required');
        if (sv !== undefined && hv !== undefined) list.push({ name: e.key, soft: sv, hard: hv });
      } else {
        const v = c.int(e.value, ep, -1);
        if (v !== undefined) list.push({ name: e.key, soft: v, hard: v });
      }
    }
    if (list.length) out.ulimits = list;
  }
  return out;
}

function plainOf(n: PNode): unknown {
  if (n.kind === 'scalar') return n.value;
  if (n.kind === 'seq') return n.items.map(plainOf);
  return Object.fromEntries(n.entries.map((e) => [e.key, plainOf(e.value)]));
}

/** Notes or refuses the options a stack does not convert. */
function classify(c: Checker, p: string, e: PMap['entries'][number], ctx: ServiceContext): void {
  const k = e.key;
  const kp = join(p, k);
  if ((UNSUPPORTED_OPTIONS as readonly string[]).includes(k)) ctx.notes.unsupported.add(k);
  else if (k in DEPRECATED_OPTIONS) ctx.notes.deprecated.add(k);
  else if (k in FORBIDDEN_OPTIONS) c.err(e.keyPos, kp, `not supported by docker stack deploy: ${FORBIDDEN_OPTIONS[k]}`);
  else if ((UNHONOURED_OPTIONS as readonly string[]).includes(k)) {
    if (!isEmptyValue(e.value)) ctx.notes.unhonoured.add(k);
  } else if (k in REFUSED_UNHONOURED) {
    if (!isEmptyValue(e.value)) c.err(e.keyPos, kp, `${REFUSED_UNHONOURED[k]} (remove the option to deploy without it)`);
  }
  checkIgnoredShape(c, kp, k, e.value);
}

/**
 * Ignored options are still checked where their shape is well known and misspellings are common, so
 * that `logging: {drivr: …}` is an error as in Docker's schema rather than ignored twice.
 */
function checkIgnoredShape(c: Checker, kp: string, k: string, v: PNode): void {
  if (v.kind === 'scalar' && v.value === null) return;
  if (k === 'logging') c.map(v, kp, ['driver', 'options']);
  else if (k === 'depends_on' && v.kind === 'map') {
    for (const d of v.entries)
      if (!(d.value.kind === 'scalar' && d.value.value === null)) c.map(d.value, join(kp, d.key), ['condition', 'restart', 'required']);
  } else if (k === 'depends_on' || k === 'cap_add' || k === 'security_opt' || k === 'devices' || k === 'links' || k === 'external_links') {
    c.stringList(v, kp);
  } else if (k === 'build' && v.kind !== 'scalar') c.map(v, kp, BUILD_KEYS);
}

/** The Compose Specification's build options (all ignored by a stack; listed to catch misspellings). */
const BUILD_KEYS = [
  'context',
  'dockerfile',
  'dockerfile_inline',
  'args',
  'ssh',
  'labels',
  'cache_from',
  'cache_to',
  'no_cache',
  'additional_contexts',
  'network',
  'target',
  'secrets',
  'tags',
  'ulimits',
  'platforms',
  'privileged',
  'extra_hosts',
  'isolation',
  'shm_size',
  'pull',
  'entitlements',
  'provenance',
  'sbom',
];

// ------------------------------------------------------------------------------------ command / env

/** A string is split like a shell would (no expansion); a list is taken as is. */
function command(c: Checker, n: PNode, p: string): string[] | undefined {
  if (n.kind === 'seq') return c.stringList(n, p);
  const s = c.string(n, p);
  if (s === undefined) return undefined;
  try {
    return shellSplit(s);
  } catch (e) {
    if (e instanceof ShellSplitError) return c.err(n, p, e.message);
    throw e;
  }
}

/**
 * env_file entries (in order, later files win), then `environment` on top (Docker's precedence). A bare
 * `KEY` (no value) takes the variable from the environment the deploy runs in, and is left out when it
 * is not set there, as Docker does.
 */
function environment(c: Checker, m: PMap, p: string, ctx: ServiceContext): Record<string, string> {
  const out = new Map<string, string>();
  const set = (key: string, value: string | null | undefined) => {
    const v = value ?? ctx.lookup(key);
    if (v === undefined) out.delete(key);
    else out.set(key, v);
  };
  const ef = c.field(m, 'env_file');
  if (ef) {
    const items: { path: string; required: boolean; pos: Pos; key: string }[] = [];
    const ep = join(p, 'env_file');
    if (ef.kind === 'seq') {
      ef.items.forEach((it, i) => {
        const ip = `${ep}[${i}]`;
        if (it.kind === 'map') {
          const mm = c.map(it, ip, ['path', 'required', 'format']);
          const pn = mm && c.field(mm, 'path');
          const ps = pn ? c.string(pn, join(ip, 'path')) : c.err(it, ip, 'path is required');
          const rn = mm && c.field(mm, 'required');
          const req = rn ? c.bool(rn, join(ip, 'required')) : true;
          if (ps !== undefined) items.push({ path: ps, required: req ?? true, pos: it.pos, key: ip });
        } else {
          const s = c.string(it, ip);
          if (s !== undefined) items.push({ path: s, required: true, pos: it.pos, key: ip });
        }
      });
    } else {
      const s = c.string(ef, ep);
      if (s !== undefined) items.push({ path: s, required: true, pos: ef.pos, key: ep });
    }
    for (const it of items) {
      const abs = path.resolve(ctx.workingDir, it.path);
      const text = ctx.readFile(abs);
      if (text === undefined) {
        if (it.required) c.err(it.pos, it.key, `env file ${abs} not found`);
        continue;
      }
      const before = c.problems.list.length;
      const lines = parseEnvFile(text, abs, c.problems);
      if (c.problems.list.length > before) continue;
      for (const l of lines) set(l.key, l.value);
    }
  }
  const env = c.field(m, 'environment');
  if (env) for (const kv of c.keyValues(env, join(p, 'environment')) ?? []) set(kv.key, kv.value);
  return Object.fromEntries([...out.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}
// ------------------------------------------------------------------------------------------ networks

function readServiceNetworks(c: Checker, n: PNode, p: string, ctx: ServiceContext): ComposeService['networks'] {
  const out: NonNullable<ComposeService['networks']> = [];
  const add = (key: string, pos: Pos, kp: string, aliases: string[]) => {
    if (!ctx.declared.networks.has(key) && key !== 'default') {
      c.err(pos, kp, `network ${JSON.stringify(key)} is not declared in the top-level networks section`);
      return;
    }
    out.push({ key, aliases, pos });
  };
  if (n.kind === 'seq') {
    n.items.forEach((it, i) => {
      const s = c.string(it, `${p}[${i}]`);
      if (s !== undefined) add(s, it.pos, `${p}[${i}]`, []);
    });
    return out;
  }
  if (n.kind !== 'map') return c.err(n, p, `must be a list of network names or a mapping, got ${got(n)}`);
  for (const e of n.entries) {
    const kp = join(p, e.key);
    const aliases: string[] = [];
    const v = e.value;
    if (!(v.kind === 'scalar' && v.value === null)) {
      const mm = c.map(v, kp, [
        'aliases',
        'ipv4_address',
        'ipv6_address',
        'link_local_ips',
        'priority',
        'mac_address',
        'driver_opts',
        'gw_priority',
        'interface_name',
      ]);
      if (mm) {
        const an = c.field(mm, 'aliases');
        if (an) aliases.push(...(c.stringList(an, join(kp, 'aliases')) ?? []));
        for (const x of mm.entries) {
          if (x.key !== 'aliases' && !x.key.startsWith('x-') && !isEmptyValue(x.value)) {
            c.warn(`${join(kp, x.key)}: not honoured: Shoal assigns task addresses itself`);
          }
        }
      }
    }
    add(e.key, e.keyPos, kp, aliases);
  }
  return out;
}
// ---------------------------------------------------------------------------------- secrets / configs

/** An octal mode: `0440` as written (YAML 1.1 octal, as Docker reads it), `0o440`, or a decimal number. */
function fileMode(c: Checker, n: PNode, p: string): number | undefined {
  if (n.kind === 'scalar') {
    const text = n.source ?? (typeof n.value === 'string' ? n.value : undefined);
    if (text !== undefined && /^0o?[0-7]+$/.test(text.trim())) return parseInt(text.trim().replace(/^0o/, ''), 8);
  }
  const v = c.int(n, p);
  if (v !== undefined && v > 0o7777) return c.err(n, p, `must be a file mode such as 0444, got ${got(n)}`);
  return v;
}

function readFileRefs(c: Checker, n: PNode, p: string, kind: 'secrets' | 'configs', declared: Set<string>): ComposeFileRef[] {
  if (n.kind !== 'seq') return c.err(n, p, `must be a list, got ${got(n)}`) ?? [];
  const out: ComposeFileRef[] = [];
  const what = kind === 'secrets' ? 'secret' : 'config';
  n.items.forEach((it, i) => {
    const ip = `${p}[${i}]`;
    let ref: ComposeFileRef | undefined;
    if (it.kind === 'map') {
      const m = c.map(it, ip, ['source', 'target', 'uid', 'gid', 'mode']);
      if (!m) return;
      const sn = c.field(m, 'source');
      const source = sn ? c.string(sn, join(ip, 'source')) : c.err(m, ip, 'source is required');
      if (source === undefined) return;
      ref = { source, pos: it.pos };
      for (const k of ['target', 'uid', 'gid'] as const) {
        const x = c.field(m, k);
        if (x) {
          const s = c.string(x, join(ip, k));
          if (s !== undefined && s !== '') ref[k] = s;
        }
      }
      const mn = c.field(m, 'mode');
      if (mn) {
        const mode = fileMode(c, mn, join(ip, 'mode'));
        if (mode !== undefined) ref.mode = mode;
      }
    } else {
      const source = c.string(it, ip);
      if (source === undefined) return;
      ref = { source, pos: it.pos };
    }
    if (!declared.has(ref.source)) {
      c.err(it, ip, `${what} ${JSON.stringify(ref.source)} is not declared in the top-level ${kind} section`);
      return;
    }
    out.push(ref);
  });
  return out;
}

// -------------------------------------------------------------------------------------- healthcheck

function readHealthcheck(c: Checker, n: PNode, p: string, ctx: ServiceContext): ComposeHealthcheck | undefined {
  const m = c.map(n, p, ['test', 'interval', 'timeout', 'retries', 'start_period', 'start_interval', 'disable']);
  if (!m) return undefined;
  const dn = c.field(m, 'disable');
  const disable = dn ? c.bool(dn, join(p, 'disable')) : false;
  const tn = c.field(m, 'test');
  let test: string[] = [];
  if (tn) {
    if (tn.kind === 'seq') {
      test = c.stringList(tn, join(p, 'test')) ?? [];
      if (test.length && !['NONE', 'CMD', 'CMD-SHELL'].includes(test[0]!)) {
        c.err(tn, join(p, 'test'), `a list must start with CMD, CMD-SHELL or NONE, got ${JSON.stringify(test[0])}`);
        test = [];
      }
    } else {
      const s = c.string(tn, join(p, 'test'));
      if (s === undefined) return undefined;
      test = s === 'NONE' ? ['NONE'] : ['CMD-SHELL', s];
    }
  }
  if (disable) {
    if (test.length && test[0] !== 'NONE') return c.err(dn!, join(p, 'disable'), 'disable: true and a test cannot be set together');
    return { test: ['NONE'] };
  }
  const hc: ComposeHealthcheck = { test };
  const dur = (k: string, into: 'intervalMs' | 'timeoutMs' | 'startPeriodMs') => {
    const x = c.field(m, k);
    if (!x) return;
    const v = c.unit(x, join(p, k), parseDuration);
    if (v !== undefined && v > 0) hc[into] = v;
  };
  dur('interval', 'intervalMs');
  dur('timeout', 'timeoutMs');
  dur('start_period', 'startPeriodMs');
  if (c.field(m, 'start_interval')) ctx.notes.unhonoured.add('healthcheck.start_interval');
  const rn = c.field(m, 'retries');
  if (rn) {
    const r = c.int(rn, join(p, 'retries'));
    if (r) hc.retries = r;
  }
  return hc;
}
