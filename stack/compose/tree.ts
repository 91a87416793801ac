// A compose file as a tree of positioned nodes: what the `yaml` library parsed, with anchors and aliases
// resolved and merge keys (`<<`) applied, but every value still carrying the file and line it was
// written on. Interpolation and the override merge work on this tree (so a value from an override file
// keeps the override file's position), and the schema reads it, so every error can name file:line:key.
//
// Why not yaml's toJS(): it loses positions, and compose needs three things a plain object cannot hold:
// the source text of a scalar (`mode: 0440` is octal to Docker's YAML 1.1 parser but decimal 440 in
// YAML 1.2), the `!reset` / `!override` tags of the Compose override rules, and the line of each key.
import { LineCounter, isAlias, isMap, isPair, isScalar, isSeq, parseDocument, type Document, type Node as YamlNode } from 'yaml';
import type { Pos, Problems } from './errors.ts';

export type Scalar = string | number | boolean | null;

export interface PScalar {
  kind: 'scalar';
  pos: Pos;
  value: Scalar;
  /** The text as written, for plain (unquoted) scalars: `0440`, `1e3`. */
  source?: string;
  tag?: string;
}

export interface PEntry {
  key: string;
  keyPos: Pos;
  value: PNode;
}

export interface PMap {
  kind: 'map';
  pos: Pos;
  entries: PEntry[];
  tag?: string;
}

export interface PSeq {
  kind: 'seq';
  pos: Pos;
  items: PNode[];
  tag?: string;
}

export type PNode = PScalar | PMap | PSeq;

/** Nodes one file may expand to through aliases: guards against "billion laughs" alias bombs. */
export const MAX_NODES = 50_000;
/** Nesting depth limit (also catches an alias that refers to a collection containing itself). */
export const MAX_DEPTH = 64;

export function entry(m: PMap, key: string): PEntry | undefined {
  return m.entries.find((e) => e.key === key);
}

export function get(m: PMap, key: string): PNode | undefined {
  return entry(m, key)?.value;
}

/** A node's value as plain JSON (for x- extension fields kept for later, and for messages). */
export function toPlain(n: PNode): unknown {
  switch (n.kind) {
    case 'scalar':
      return n.value;
    case 'seq':
      return n.items.map(toPlain);
    case 'map': {
      const o: Record<string, unknown> = {};
      for (const e of n.entries) Object.defineProperty(o, e.key, { value: toPlain(e.value), enumerable: true, writable: true, configurable: true });
      return o;
    }
  }
}

/**
 * Parses one compose file into a positioned tree. YAML syntax errors, duplicate keys, non-scalar keys,
 * alias bombs and too-deep nesting are added to `problems` (then the result is null).
 */
export function parseYamlTree(src: string, file: string, problems: Problems): PNode | null {
  const lc = new LineCounter();
  // YAML 1.2 core schema (so `22:22` stays a string, not a base-60 number) plus merge keys, as compose
  // files use them. Unknown tags (!reset, !override) are kept on the nodes; yaml's warnings about them
  // are not errors.
  const doc = parseDocument(src, { lineCounter: lc, merge: true, uniqueKeys: true, prettyErrors: false });
  const posAt = (offset: number | undefined): Pos => ({ file, line: offset === undefined ? 1 : lc.linePos(offset).line });
  if (doc.errors.length) {
    for (const e of doc.errors) problems.add(posAt(e.pos[0]), '', `invalid YAML: ${e.message.split('\n')[0]}`);
    return null;
  }
  let count = 0;
  let failed = false;
  const resolved = new Map<object, unknown>();
  const bad = (offset: number | undefined, key: string, msg: string): null => {
    failed = true;
    problems.add(posAt(offset), key, msg);
    return null;
  };

  const walk = (node: unknown, path: string, depth: number): PNode | null => {
    if (failed) return null;
    if (++count > MAX_NODES) return bad(undefined, path, `the file expands to more than ${MAX_NODES} values (through aliases)`);
    if (depth > MAX_DEPTH)
      return bad((node as YamlNode | null)?.range?.[0], path, `nested more than ${MAX_DEPTH} levels deep (an alias that contains itself?)`);
    if (isAlias(node)) {
      // yaml's resolve() searches the document each time; an alias used often is resolved once.
      let target = resolved.get(node);
      if (target === undefined) {
        target = node.resolve(doc as Document.Parsed);
        resolved.set(node, target);
      }
      if (!target) return bad(node.range?.[0], path, `unknown alias *${node.source}`);
      return walk(target, path, depth + 1);
    }
    if (node === null || node === undefined) return { kind: 'scalar', pos: posAt(undefined), value: null };
    if (isScalar(node)) {
      const pos = posAt(node.range?.[0]);
      const v = node.value;
      let value: Scalar;
      if (v === null || typeof v === 'string' || typeof v === 'boolean') value = v;
      else if (typeof v === 'number') value = v;
      else if (typeof v === 'bigint') value = Number(v);
      else return bad(node.range?.[0], path, `unsupported YAML value (${typeof v})`);
      const out: PScalar = { kind: 'scalar', pos, value };
      if (node.type === 'PLAIN' && typeof node.source === 'string') out.source = node.source;
      if (node.tag && !node.tag.startsWith('tag:yaml.org')) out.tag = node.tag;
      return out;
    }
    if (isSeq(node)) {
      const items: PNode[] = [];
      for (let i = 0; i < node.items.length; i++) {
        const it = walk(node.items[i], `${path}[${i}]`, depth + 1);
        if (it === null) return null;
        items.push(it);
      }
      const out: PSeq = { kind: 'seq', pos: posAt(node.range?.[0]), items };
      if (node.tag && !node.tag.startsWith('tag:yaml.org')) out.tag = node.tag;
      return out;
    }
    if (isMap(node)) {
      const entries: PEntry[] = [];
      const merged: PEntry[][] = [];
      for (const pair of node.items) {
        if (!isPair(pair)) continue;
        const k = pair.key;
        if (isScalar(k) && typeof k.value === 'symbol') {
          // A merge key: its value is a map or a list of maps (usually aliases) whose keys are added
          // unless the map itself has them; earlier maps in the list win over later ones (YAML merge).
          const srcs = isSeq(pair.value) ? pair.value.items : [pair.value];
          const group: PEntry[] = [];
          for (const s of srcs) {
            const m = walk(s, path, depth + 1);
            if (m === null) return null;
            if (m.kind !== 'map') return bad(k.range?.[0], path, 'a merge key (<<) needs a mapping or a list of mappings');
            for (const e of m.entries) if (!group.some((g) => g.key === e.key)) group.push(e);
          }
          merged.push(group);
          continue;
        }
        if (!isScalar(k) || (k.value !== null && typeof k.value === 'object')) {
          return bad((k as YamlNode | null)?.range?.[0] ?? node.range?.[0], path, 'keys must be plain strings');
        }
        const key = k.value === null ? '' : String(k.value);
        const childPath = path ? `${path}.${key}` : key;
        const v = walk(pair.value, childPath, depth + 1);
        if (v === null) return null;
        // A value is reported at its key's line: an empty value (`key:`) has no node of its own, and a
        // block mapping or list starts on the line after its key, where a reader would not look.
        const keyPos = posAt(k.range?.[0]);
        if (pair.value === null || pair.value === undefined || v.kind !== 'scalar') v.pos = keyPos;
        entries.push({ key, keyPos, value: v });
      }
      for (const group of merged) for (const e of group) if (!entries.some((x) => x.key === e.key)) entries.push(e);
      const out: PMap = { kind: 'map', pos: posAt(node.range?.[0]), entries };
      if (node.tag && !node.tag.startsWith('tag:yaml.org')) out.tag = node.tag;
      return out;
    }
    return bad(undefined, path, 'unsupported YAML node');
  };
  const root = walk(doc.contents, '', 0);
  return failed ? null : root;
}
