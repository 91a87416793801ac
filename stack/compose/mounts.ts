// A service's `volumes` (short syntax `[SOURCE:]TARGET[:MODE]`, long syntax with volume, bind and tmpfs
// options) and service-level `tmpfs`, as ComposeMounts: named volumes must be declared, bind sources are
// resolved against the working directory (`~` against HOME), targets must be absolute; options Shoal
// cannot honour (SELinux relabelling, propagation, nocopy) are warned about.
import { posix as path } from 'node:path';
import { type Checker, got, join } from './check.ts';
import type { ServiceContext } from './service.ts';
import type { PMap, PNode } from './tree.ts';
import type { ComposeMount } from './types.ts';
import { parseBytes } from './units.ts';

function expandHome(s: string, ctx: ServiceContext): string {
  if (s === '~' || s.startsWith('~/')) return (ctx.lookup('HOME') ?? '/root') + s.slice(1);
  return s;
}

function isPathLike(s: string): boolean {
  return s.startsWith('/') || s.startsWith('.') || s.startsWith('~');
}

export function readMounts(c: Checker, n: PNode, p: string, ctx: ServiceContext): ComposeMount[] {
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
    else if (['cached', 'delegated', 'consistent'].includes(flag))
      continue; // Docker for Mac hints, no meaning on Linux.
    else if (['z', 'Z', 'nocopy', 'shared', 'rshared', 'slave', 'rslave', 'private', 'rprivate'].includes(flag))
      c.warn(`${p}: the mount option ${flag} is not honoured`);
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
export function readTmpfs(c: Checker, n: PNode, p: string, ctx: ServiceContext): ComposeMount[] {
  const out: ComposeMount[] = [];
  const items = n.kind === 'seq' ? n.items.map((it, i) => ({ it, ip: `${p}[${i}]` })) : [{ it: n, ip: p }];
  for (const { it, ip } of items) {
    const s = c.string(it, ip);
    if (s === undefined) continue;
    const colon = s.indexOf(':');
    const target = colon < 0 ? s : s.slice(0, colon);
    const m: ComposeMount = { type: 'tmpfs', target, readOnly: false, pos: it.pos };
    for (const opt of colon < 0
      ? []
      : s
          .slice(colon + 1)
          .split(',')
          .filter((x) => x !== '')) {
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
