// One `services.<key>` section of a compose file → a ComposeService (types.ts): every option Shoal
// converts is read and type-checked here, short syntaxes (ports, volumes, secrets, healthcheck test,
// command strings) are expanded, relative paths resolved, env_file read through the injected reader; the
// options Swarm ignores or Shoal cannot honour are noted for the one-line warnings (options.ts).
import { posix as path } from 'node:path';
import type { Pos } from './errors.ts';
import { Checker, got, isEmptyValue, join } from './check.ts';
import { parseEnvFile, type Lookup } from './interpolate.ts';
import {
  ALL_SERVICE_OPTIONS,
  DEPRECATED_OPTIONS,
  FORBIDDEN_OPTIONS,
  REFUSED_UNHONOURED,
  UNHONOURED_OPTIONS,
  UNSUPPORTED_OPTIONS,
} from './options.ts';
import { ShellSplitError, shellSplit } from './shell.ts';
import type { PMap, PNode } from './tree.ts';
import type { ComposeDeploy, ComposeFileRef, ComposeHealthcheck, ComposeMount, ComposePort, ComposeResources, ComposeService, ComposeUpdateConfig } from './types.ts';
import { parseBytes, parseCpus, parseDuration } from './units.ts';

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
  return svc;
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
}

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

// ----------------------------------------------------------------------------------------------- ports

const PROTOCOLS = ['tcp', 'udp', 'sctp'] as const;

function portNum(s: string): number | undefined {
  if (!/^\d+$/.test(s)) return undefined;
  const n = Number(s);
  return n >= 1 && n <= 65535 ? n : undefined;
}

function portRange(s: string): [number, number] | undefined {
  const m = /^(\d+)(?:-(\d+))?$/.exec(s);
  if (!m) return undefined;
  const lo = portNum(m[1]!);
  const hi = m[2] === undefined ? lo : portNum(m[2]);
  return lo !== undefined && hi !== undefined && hi >= lo ? [lo, hi] : undefined;
}

function readPorts(c: Checker, n: PNode, p: string): ComposePort[] {
  if (n.kind !== 'seq') return c.err(n, p, `must be a list, got ${got(n)}`) ?? [];
  const out: ComposePort[] = [];
  n.items.forEach((it, i) => {
    const ip = `${p}[${i}]`;
    if (it.kind === 'map') {
      const port = longPort(c, it, ip);
      if (port) out.push(...port);
      return;
    }
    const s = c.string(it, ip);
    if (s === undefined) return;
    out.push(...(shortPort(c, it.pos, s, ip) ?? []));
  });
  return out;
}

/** `[[HOST_IP:]PUBLISHED[-RANGE]:]TARGET[-RANGE][/PROTOCOL]`, published in ingress mode. */
function shortPort(c: Checker, pos: Pos, s: string, p: string): ComposePort[] | undefined {
  let rest = s.trim();
  let protocol: ComposePort['protocol'] = 'tcp';
  const slash = rest.lastIndexOf('/');
  if (slash >= 0) {
    const pr = rest.slice(slash + 1).toLowerCase();
    if (!(PROTOCOLS as readonly string[]).includes(pr)) return c.err(pos, p, `unknown protocol ${JSON.stringify(pr)} in ${JSON.stringify(s)} (use tcp, udp or sctp)`);
    protocol = pr as ComposePort['protocol'];
    rest = rest.slice(0, slash);
  }
  const parts = rest.split(':');
  const targetS = parts.pop()!;
  const publishedS = parts.length ? parts.pop()! : '';
  if (parts.length) c.warn(`${p}: the host IP ${parts.join(':')} in ${JSON.stringify(s)} is not honoured: a published port listens on every node's addresses`);
  const target = portRange(targetS);
  if (!target) return c.err(pos, p, `invalid port ${JSON.stringify(s)}: the container port must be 1-65535 or a range like 8000-8010`);
  let published: [number, number] | undefined;
  if (publishedS !== '') {
    published = portRange(publishedS);
    if (!published) return c.err(pos, p, `invalid port ${JSON.stringify(s)}: the published port must be 1-65535 or a range`);
    if (published[1] - published[0] !== target[1] - target[0]) return c.err(pos, p, `invalid port ${JSON.stringify(s)}: the published and container ranges differ in size`);
  }
  const out: ComposePort[] = [];
  for (let i = 0; i <= target[1] - target[0]; i++) {
    const port: ComposePort = { target: target[0] + i, protocol, mode: 'ingress', pos };
    if (published) port.published = published[0] + i;
    out.push(port);
  }
  return out;
}

function longPort(c: Checker, m: PMap, p: string): ComposePort[] | undefined {
  if (!c.map(m, p, ['target', 'published', 'protocol', 'mode', 'host_ip', 'name', 'app_protocol'])) return undefined;
  const tn = c.field(m, 'target');
  if (!tn) return c.err(m, p, 'target is required (the port inside the container)');
  const target = c.int(tn, join(p, 'target'), 1);
  if (target === undefined) return undefined;
  if (target > 65535) return c.err(tn, join(p, 'target'), `must be a port 1-65535, got ${target}`);
  const port: ComposePort = { target, protocol: 'tcp', mode: 'ingress', pos: m.pos };
  const pr = c.field(m, 'protocol');
  if (pr) port.protocol = c.oneOf(pr, join(p, 'protocol'), PROTOCOLS) ?? 'tcp';
  const md = c.field(m, 'mode');
  if (md) port.mode = c.oneOf(md, join(p, 'mode'), ['ingress', 'host'] as const) ?? 'ingress';
  const nm = c.field(m, 'name');
  if (nm) {
    const s = c.string(nm, join(p, 'name'));
    if (s) port.name = s;
  }
  const hi = c.field(m, 'host_ip');
  if (hi) c.warn(`${join(p, 'host_ip')}: not honoured: a published port listens on every node's addresses`);
  const pn = c.field(m, 'published');
  if (pn) {
    const s = c.string(pn, join(p, 'published'));
    if (s === undefined) return undefined;
    const r = portRange(s);
    if (!r) return c.err(pn, join(p, 'published'), `must be a port 1-65535 (or a range), got ${got(pn)}`);
    if (r[0] !== r[1]) return c.err(pn, join(p, 'published'), `a published range needs the short syntax (e.g. "8000-8001:80-81"): one long-syntax entry publishes one port`);
    if (r[0] !== 0) port.published = r[0];
  }
  return [port];
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
      const mm = c.map(v, kp, ['aliases', 'ipv4_address', 'ipv6_address', 'link_local_ips', 'priority', 'mac_address', 'driver_opts', 'gw_priority', 'interface_name']);
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

// -------------------------------------------------------------------------------------------- mounts

function expandHome(s: string, ctx: ServiceContext): string {
  if (s === '~' || s.startsWith('~/')) return (ctx.lookup('HOME') ?? '/root') + s.slice(1);
  return s;
}

function isPathLike(s: string): boolean {
  return s.startsWith('/') || s.startsWith('.') || s.startsWith('~');
}

function readMounts(c: Checker, n: PNode, p: string, ctx: ServiceContext): ComposeMount[] {
  if (n.kind !== 'seq') return c.err(n, p, `must be a list, got ${got(n)}`) ?? [];
  const out: ComposeMount[] = [];
  n.items.forEach((it, i) => {
    const ip = `${p}[${i}]`;
    const mnt = it.kind === 'map' ? longMount(c, it, ip, ctx) : shortMount(c, it, ip, ctx);
    if (mnt) out.push(mnt);
  });
  return out;
}

function checkSource(c: Checker, m: ComposeMount, p: string, ctx: ServiceContext): ComposeMount | undefined {
  if (m.type === 'volume' && m.source !== undefined && !ctx.declared.volumes.has(m.source)) {
    return c.err(m.pos, p, `named volume ${JSON.stringify(m.source)} is not declared in the top-level volumes section`);
  }
  if (m.type === 'bind') {
    if (m.source === undefined) return c.err(m.pos, p, 'a bind mount needs a source path');
    m.source = path.resolve(ctx.workingDir, expandHome(m.source, ctx));
  }
  if (!m.target.startsWith('/')) return c.err(m.pos, p, `the target must be an absolute path in the container, got ${JSON.stringify(m.target)}`);
  return m;
}

/** `[SOURCE:]TARGET[:MODE]`: a path-like source is a bind mount, a name is a volume, no source an anonymous volume. */
function shortMount(c: Checker, n: PNode, p: string, ctx: ServiceContext): ComposeMount | undefined {
  const s = c.string(n, p);
  if (s === undefined) return undefined;
  const parts = s.split(':');
  if (parts.length > 3 || parts.some((x) => x === '')) return c.err(n, p, `invalid volume ${JSON.stringify(s)} (use [SOURCE:]TARGET[:MODE])`);
  if (parts.length === 1) return checkSource(c, { type: 'volume', target: parts[0]!, readOnly: false, pos: n.pos }, p, ctx);
  const [source, target, mode] = parts as [string, string, string | undefined];
  const m: ComposeMount = { type: isPathLike(source) ? 'bind' : 'volume', source, target, readOnly: false, pos: n.pos };
  for (const flag of (mode ?? '').split(',').filter((x) => x !== '')) {
    if (flag === 'ro') m.readOnly = true;
    else if (flag === 'rw') m.readOnly = false;
    else if (['cached', 'delegated', 'consistent'].includes(flag)) continue; // Docker for Mac hints, no meaning on Linux.
    else if (['z', 'Z', 'nocopy', 'shared', 'rshared', 'slave', 'rslave', 'private', 'rprivate'].includes(flag)) c.warn(`${p}: the mount option ${flag} is not honoured`);
    else return c.err(n, p, `unknown mount option ${JSON.stringify(flag)} in ${JSON.stringify(s)} (use ro or rw)`);
  }
  return checkSource(c, m, p, ctx);
}

function longMount(c: Checker, n: PMap, p: string, ctx: ServiceContext): ComposeMount | undefined {
  const m = c.map(n, p, ['type', 'source', 'target', 'read_only', 'bind', 'volume', 'tmpfs', 'consistency', 'image']);
  if (!m) return undefined;
  const tn = c.field(m, 'type');
  if (!tn) return c.err(m, p, 'type is required (volume, bind or tmpfs)');
  const type = c.oneOf(tn, join(p, 'type'), ['volume', 'bind', 'tmpfs'] as const);
  const tg = c.field(m, 'target');
  const target = tg ? c.string(tg, join(p, 'target')) : c.err(m, p, 'target is required (the path in the container)');
  if (type === undefined || target === undefined) return undefined;
  const out: ComposeMount = { type, target, readOnly: false, pos: m.pos };
  const sn = c.field(m, 'source');
  if (sn) {
    const s = c.string(sn, join(p, 'source'));
    if (s !== undefined && s !== '') out.source = s;
  }
  const ro = c.field(m, 'read_only');
  if (ro) out.readOnly = c.bool(ro, join(p, 'read_only')) ?? false;
  const sub = (k: 'bind' | 'volume' | 'tmpfs', known: string[]) => {
    const x = c.field(m, k);
    if (!x) return undefined;
    if (k !== type) c.err(x, join(p, k), `${k} options need type: ${k}, not ${type}`);
    return c.map(x, join(p, k), known);
  };
  const bind = sub('bind', ['propagation', 'create_host_path', 'selinux']);
  if (bind) {
    for (const k of ['propagation', 'selinux']) if (c.field(bind, k)) c.warn(`${join(p, `bind.${k}`)}: not honoured`);
  }
  const vol = sub('volume', ['nocopy', 'subpath']);
  if (vol) {
    const nc = c.field(vol, 'nocopy');
    if (nc && c.bool(nc, join(p, 'volume.nocopy'))) c.warn(`${join(p, 'volume.nocopy')}: not honoured`);
    const sp = c.field(vol, 'subpath');
    if (sp) c.err(sp, join(p, 'volume.subpath'), 'not supported by Shoal: mount a whole volume');
  }
  const tmp = sub('tmpfs', ['size', 'mode']);
  if (tmp) {
    const sz = c.field(tmp, 'size');
    if (sz) {
      const b = c.unit(sz, join(p, 'tmpfs.size'), parseBytes);
      if (b) out.tmpfsSizeBytes = b;
    }
    if (c.field(tmp, 'mode')) c.warn(`${join(p, 'tmpfs.mode')}: not honoured (the tmpfs is mode 1777)`);
  }
  if (type === 'tmpfs') {
    if (out.source !== undefined) return c.err(m, p, 'a tmpfs mount takes no source');
    return checkSource(c, out, p, ctx);
  }
  return checkSource(c, out, p, ctx);
}

/** Service-level `tmpfs: /run` or `[/run, "/tmp:size=64m"]`: tmpfs mounts. */
function readTmpfs(c: Checker, n: PNode, p: string, ctx: ServiceContext): ComposeMount[] {
  const out: ComposeMount[] = [];
  const items = n.kind === 'seq' ? n.items.map((it, i) => ({ it, ip: `${p}[${i}]` })) : [{ it: n, ip: p }];
  for (const { it, ip } of items) {
    const s = c.string(it, ip);
    if (s === undefined) continue;
    const colon = s.indexOf(':');
    const target = colon < 0 ? s : s.slice(0, colon);
    const m: ComposeMount = { type: 'tmpfs', target, readOnly: false, pos: it.pos };
    for (const opt of colon < 0 ? [] : s.slice(colon + 1).split(',').filter((x) => x !== '')) {
      if (opt.startsWith('size=')) {
        const b = parseBytes(opt.slice(5));
        if (!b.ok) c.err(it, ip, `size ${b.message}`);
        else m.tmpfsSizeBytes = b.value;
      } else if (opt === 'ro') m.readOnly = true;
      else if (opt !== 'rw') c.warn(`${ip}: the tmpfs option ${opt} is not honoured`);
    }
    const ok = checkSource(c, m, ip, ctx);
    if (ok) out.push(ok);
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

// ------------------------------------------------------------------------------------------- deploy

const DEPLOY_KEYS = ['mode', 'replicas', 'labels', 'endpoint_mode', 'placement', 'resources', 'restart_policy', 'update_config', 'rollback_config'];

function readDeploy(c: Checker, n: PNode, p: string, ctx: ServiceContext): ComposeDeploy | undefined {
  const m = c.map(n, p, DEPLOY_KEYS);
  if (!m) return undefined;
  const d: ComposeDeploy = { mode: 'replicated', labels: c.labels(c.field(m, 'labels'), join(p, 'labels')), constraints: [], preferences: [] };
  const mn = c.field(m, 'mode');
  if (mn) d.mode = c.oneOf(mn, join(p, 'mode'), ['replicated', 'global', 'replicated-job', 'global-job'] as const) ?? 'replicated';
  const rn = c.field(m, 'replicas');
  if (rn) {
    const r = c.int(rn, join(p, 'replicas'));
    if (r !== undefined) {
      if (d.mode === 'global' || d.mode === 'global-job') c.err(rn, join(p, 'replicas'), `replicas can only be used with mode replicated or replicated-job (mode is ${d.mode})`);
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
  for (const [k, into] of [['update_config', 'updateConfig'], ['rollback_config', 'rollbackConfig']] as const) {
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
  for (const [k, into] of [['delay', 'delayMs'], ['monitor', 'monitorMs']] as const) {
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
