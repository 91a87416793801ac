// A service's `ports`: the short syntax (`[[HOST_IP:]PUBLISHED[-RANGE]:]TARGET[-RANGE][/PROTOCOL]`,
// ranges expanded one port each) and the long syntax (`target`, `published`, `protocol`, `mode`), as
// ComposePorts. A host IP cannot be honoured (a published port listens on every node) and says so.
import type { Pos } from './errors.ts';
import { type Checker, got, join } from './check.ts';
import type { PMap, PNode } from './tree.ts';
import type { ComposePort } from './types.ts';

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

export function readPorts(c: Checker, n: PNode, p: string): ComposePort[] {
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
    if (!(PROTOCOLS as readonly string[]).includes(pr))
      return c.err(pos, p, `unknown protocol ${JSON.stringify(pr)} in ${JSON.stringify(s)} (use tcp, udp or sctp)`);
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
    if (published[1] - published[0] !== target[1] - target[0])
      return c.err(pos, p, `invalid port ${JSON.stringify(s)}: the published and container ranges differ in size`);
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
    if (r[0] !== r[1])
      return c.err(pn, join(p, 'published'), `a published range needs the short syntax (e.g. "8000-8001:80-81"): one long-syntax entry publishes one port`);
    if (r[0] !== 0) port.published = r[0];
  }
  return [port];
}
