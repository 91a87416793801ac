// Several `-c` files merged into one, by the Compose Specification's override rules ("Merge and
// override"): each later file is laid over the result so far.
//
//   mappings                        merged key by key, recursively
//   scalars, or different shapes    the later value replaces the earlier one
//   command, entrypoint,
//   healthcheck.test                replaced (a command is one value, not a list of items to add to)
//   environment, labels,
//   deploy.labels, extra_hosts,
//   sysctls, networks (service)     list or mapping, both read as a mapping and merged by key
//   ports                           merged by what they publish (host ip, published, target, protocol)
//   volumes                         merged by target path (the mount point)
//   secrets, configs                merged by target (default /run/secrets/<source>, /<source>)
//   any other sequence              the later items appended, exact repeats of scalars dropped
//   !reset                          removes the value; !override replaces instead of merging
//
// Merging works on positioned trees (tree.ts), so a value taken from an override file keeps its own
// file:line in later error messages. It happens before validation: the merged tree is validated once.
import type { PEntry, PMap, PNode, PScalar, PSeq } from './tree.ts';

/** Merges `over` onto `base`; returns a new tree (the inputs are not modified). */
export function mergeTrees(base: PNode, over: PNode): PNode {
  return mergeAt(base, over, []) ?? { kind: 'map', pos: over.pos, entries: [] };
}

type Rule = 'replace' | 'mapping' | 'ports' | 'volumes' | 'secrets' | 'configs' | 'default';

const SERVICE_RULES: Record<string, Rule> = {
  command: 'replace',
  entrypoint: 'replace',
  environment: 'mapping',
  labels: 'mapping',
  extra_hosts: 'mapping',
  sysctls: 'mapping',
  networks: 'mapping',
  ports: 'ports',
  volumes: 'volumes',
  secrets: 'secrets',
  configs: 'configs',
};

/** The rule for a path like ['services', 'web', 'deploy', 'labels']. */
function ruleFor(path: readonly string[]): Rule {
  if (path[0] !== 'services' || path.length < 3) return 'default';
  const rest = path.slice(2).join('.');
  if (rest === 'healthcheck.test') return 'replace';
  if (rest === 'deploy.labels' || rest === 'build.args') return 'mapping';
  return SERVICE_RULES[rest] ?? 'default';
}

function strip<T extends PNode>(n: T): T {
  if (n.tag !== '!override' && n.tag !== '!reset') return n;
  const c = { ...n };
  delete c.tag;
  return c;
}

function mergeAt(base: PNode | undefined, over: PNode, path: string[]): PNode | undefined {
  if (over.tag === '!reset') return undefined;
  if (over.tag === '!override' || base === undefined) return strip(over);
  const rule = ruleFor(path);
  switch (rule) {
    case 'replace':
      return over;
    case 'mapping': {
      const b = asMapping(base);
      const o = asMapping(over);
      if (b && o) return mergeMaps(b, o, path);
      return over;
    }
    case 'ports':
    case 'volumes':
    case 'secrets':
    case 'configs':
      if (base.kind === 'seq' && over.kind === 'seq') return mergeByKey(base, over, (n) => identity(rule, n));
      return over;
    case 'default':
      if (base.kind === 'map' && over.kind === 'map') return mergeMaps(base, over, path);
      if (base.kind === 'seq' && over.kind === 'seq') return appendSeq(base, over);
      return over;
  }
}

function mergeMaps(base: PMap, over: PMap, path: string[]): PMap {
  const entries: PEntry[] = base.entries.map((e) => ({ ...e }));
  for (const oe of over.entries) {
    const i = entries.findIndex((e) => e.key === oe.key);
    const merged = mergeAt(i >= 0 ? entries[i]!.value : undefined, oe.value, [...path, oe.key]);
    if (merged === undefined) {
      if (i >= 0) entries.splice(i, 1);
    } else if (i >= 0) entries[i] = { key: oe.key, keyPos: oe.keyPos, value: merged };
    else entries.push({ key: oe.key, keyPos: oe.keyPos, value: merged });
  }
  return { kind: 'map', pos: base.pos, entries };
}

function appendSeq(base: PSeq, over: PSeq): PSeq {
  const items = [...base.items];
  for (const it of over.items) {
    if (it.kind === 'scalar' && items.some((x) => x.kind === 'scalar' && x.value === it.value)) continue;
    items.push(strip(it));
  }
  return { kind: 'seq', pos: base.pos, items };
}

/** Items with the same identity are replaced in place by the later one; the rest are appended. */
function mergeByKey(base: PSeq, over: PSeq, id: (n: PNode) => string | undefined): PSeq {
  const items = [...base.items];
  for (const it of over.items) {
    const k = id(it);
    const i = k === undefined ? -1 : items.findIndex((x) => id(x) === k);
    if (i >= 0) items[i] = strip(it);
    else items.push(strip(it));
  }
  return { kind: 'seq', pos: base.pos, items };
}

/**
 * A list-or-mapping (`environment: [A=1]` or `environment: {A: 1}`; `networks: [front]`) as a mapping:
 * `A=1` → A: "1", `A` → A: null. null when the node is neither a list of strings nor a mapping.
 */
export function asMapping(n: PNode): PMap | null {
  if (n.kind === 'map') return n;
  if (n.kind !== 'seq') return null;
  const entries: PEntry[] = [];
  for (const it of n.items) {
    if (it.kind !== 'scalar' || it.value === null || typeof it.value === 'object') return null;
    const s = String(it.value);
    const eq = s.indexOf('=');
    const key = eq < 0 ? s : s.slice(0, eq);
    const value: PScalar = { kind: 'scalar', pos: it.pos, value: eq < 0 ? null : s.slice(eq + 1) };
    const prev = entries.findIndex((e) => e.key === key);
    if (prev >= 0) entries.splice(prev, 1);
    entries.push({ key, keyPos: it.pos, value });
  }
  return { kind: 'map', pos: n.pos, entries };
}

function field(n: PMap, key: string): string | undefined {
  const e = n.entries.find((x) => x.key === key);
  return e && e.value.kind === 'scalar' && e.value.value !== null ? String(e.value.value) : undefined;
}

/** What makes two list items "the same" for the unique-resource rules; undefined: never the same. */
function identity(rule: Rule, n: PNode): string | undefined {
  switch (rule) {
    case 'ports': {
      if (n.kind === 'scalar' && n.value !== null) {
        let s = String(n.value);
        let proto = 'tcp';
        const slash = s.lastIndexOf('/');
        if (slash >= 0) {
          proto = s.slice(slash + 1);
          s = s.slice(0, slash);
        }
        const parts = s.split(':');
        const target = parts.pop() ?? '';
        const published = parts.pop() ?? '';
        const ip = parts.join(':');
        return `${ip}|${published}|${target}|${proto}`;
      }
      if (n.kind === 'map') return `${field(n, 'host_ip') ?? ''}|${field(n, 'published') ?? ''}|${field(n, 'target') ?? ''}|${field(n, 'protocol') ?? 'tcp'}`;
      return undefined;
    }
    case 'volumes': {
      if (n.kind === 'scalar' && typeof n.value === 'string') {
        const parts = n.value.split(':');
        return parts.length === 1 ? parts[0] : parts[1];
      }
      if (n.kind === 'map') return field(n, 'target');
      return undefined;
    }
    case 'secrets':
    case 'configs': {
      const dflt = (src: string) => (rule === 'secrets' ? `/run/secrets/${src}` : `/${src}`);
      const abs = (t: string) => (t.startsWith('/') ? t : rule === 'secrets' ? `/run/secrets/${t}` : `/${t}`);
      if (n.kind === 'scalar' && n.value !== null) return dflt(String(n.value));
      if (n.kind === 'map') {
        const t = field(n, 'target');
        const src = field(n, 'source');
        return t !== undefined ? abs(t) : src !== undefined ? dflt(src) : undefined;
      }
      return undefined;
    }
    default:
      return undefined;
  }
}
