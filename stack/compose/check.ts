// Typed readers over the positioned tree: each one checks a node's type and returns the value, or adds a
// problem naming file:line:key (with "did you mean" for a misspelt key) and returns undefined, so the
// schema carries on and reports every problem of a file at once.
//
// Numbers and booleans written as strings are accepted where compose accepts them, because
// interpolation produces strings (`replicas: ${REPLICAS:-2}` is the string "2" once interpolated) and
// Docker's loader casts such values by key; a string that does not parse is an error naming the value.
import { editDistance } from '../../manager/service/spec.ts';
import type { Pos, Problems } from './errors.ts';
import type { PMap, PNode, PScalar } from './tree.ts';

/** A short rendering of a node for "got …". */
export function got(n: PNode): string {
  if (n.kind === 'map') return 'a mapping';
  if (n.kind === 'seq') return 'a list';
  const v = n.value;
  if (v === null) return 'nothing (null)';
  if (typeof v === 'string') return JSON.stringify(v.length > 60 ? `${v.slice(0, 57)}...` : v);
  return String(v);
}

/** `; did you mean X?` for the closest known key within a small distance, or ''. */
export function didYouMean(key: string, known: readonly string[]): string {
  let best: string | null = null;
  let bestD = Infinity;
  const k = key.toLowerCase().replace(/-/g, '_');
  for (const c of known) {
    const dd = editDistance(k, c.toLowerCase());
    if (dd < bestD) {
      bestD = dd;
      best = c;
    }
  }
  return best !== null && bestD <= Math.max(2, Math.floor(key.length / 4)) ? `; did you mean ${best}?` : '';
}

export const join = (path: string, key: string): string => (path ? `${path}.${key}` : key);

export class Checker {
  readonly problems: Problems;
  readonly warnings: string[] = [];
  constructor(problems: Problems) {
    this.problems = problems;
  }

  err(at: { pos: Pos } | Pos, key: string, message: string): undefined {
    this.problems.add('pos' in at ? at.pos : at, key, message);
    return undefined;
  }

  warn(message: string): void {
    if (!this.warnings.includes(message)) this.warnings.push(message);
  }

  /**
   * A mapping whose keys are all in `known` (or `x-` extension fields when `extensions`). Unknown keys
   * are problems unless `unknown` handles them (returns true when it did).
   */
  map(
    n: PNode,
    path: string,
    known: readonly string[],
    opts: { extensions?: boolean; unknown?: (key: string, e: PMap['entries'][number]) => boolean } = {},
  ): PMap | undefined {
    if (n.kind !== 'map') return this.err(n, path, `must be a mapping, got ${got(n)}`);
    for (const e of n.entries) {
      if (known.includes(e.key)) continue;
      if (opts.extensions !== false && e.key.startsWith('x-')) continue;
      if (opts.unknown?.(e.key, e)) continue;
      this.err(e.keyPos, join(path, e.key), `unknown option${didYouMean(e.key, known)}`);
    }
    return n;
  }

  /** The value under `key`, treating an explicit null like an absent key (compose does). */
  field(m: PMap, key: string): PNode | undefined {
    const e = m.entries.find((x) => x.key === key);
    if (!e || (e.value.kind === 'scalar' && e.value.value === null)) return undefined;
    return e.value;
  }

  scalar(n: PNode, path: string, what: string): PScalar | undefined {
    if (n.kind !== 'scalar' || n.value === null) return this.err(n, path, `must be ${what}, got ${got(n)}`);
    return n;
  }

  string(n: PNode, path: string): string | undefined {
    const s = this.scalar(n, path, 'a string');
    if (!s) return undefined;
    // Numbers and booleans are accepted and read as text, as YAML users expect (`user: 1000`).
    return typeof s.value === 'string' ? s.value : (s.source ?? String(s.value));
  }

  int(n: PNode, path: string, min = 0): number | undefined {
    const s = this.scalar(n, path, 'an integer');
    if (!s) return undefined;
    const v = typeof s.value === 'string' && /^\s*[+-]?\d+\s*$/.test(s.value) ? Number(s.value) : s.value;
    if (typeof v !== 'number' || !Number.isSafeInteger(v)) return this.err(n, path, `must be an integer, got ${got(n)}`);
    if (v < min) return this.err(n, path, `must be at least ${min}, got ${v}`);
    return v;
  }

  float(n: PNode, path: string): number | undefined {
    const s = this.scalar(n, path, 'a number');
    if (!s) return undefined;
    const v = typeof s.value === 'string' && /^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$/.test(s.value) ? Number(s.value) : s.value;
    if (typeof v !== 'number' || !Number.isFinite(v)) return this.err(n, path, `must be a number, got ${got(n)}`);
    return v;
  }

  bool(n: PNode, path: string): boolean | undefined {
    const s = this.scalar(n, path, 'true or false');
    if (!s) return undefined;
    if (typeof s.value === 'boolean') return s.value;
    // Docker's loader casts these strings (YAML 1.1 spellings) for boolean options.
    if (typeof s.value === 'string') {
      const l = s.value.toLowerCase();
      if (['true', 'yes', 'y', 'on'].includes(l)) return true;
      if (['false', 'no', 'n', 'off'].includes(l)) return false;
    }
    return this.err(n, path, `must be true or false, got ${got(n)}`);
  }

  oneOf<T extends string>(n: PNode, path: string, allowed: readonly T[]): T | undefined {
    const s = this.string(n, path);
    if (s === undefined) return undefined;
    if (!(allowed as readonly string[]).includes(s)) return this.err(n, path, `must be one of ${allowed.join(', ')}, got ${got(n)}${didYouMean(s, allowed)}`);
    return s as T;
  }

  /** A string or a list of strings (`env_file`, `dns`, `tmpfs`). */
  stringOrList(n: PNode, path: string): string[] | undefined {
    if (n.kind === 'seq') return this.stringList(n, path);
    const s = this.string(n, path);
    return s === undefined ? undefined : [s];
  }

  stringList(n: PNode, path: string): string[] | undefined {
    if (n.kind !== 'seq') return this.err(n, path, `must be a list of strings, got ${got(n)}`);
    const out: string[] = [];
    n.items.forEach((it, i) => {
      const s = this.string(it, `${path}[${i}]`);
      if (s !== undefined) out.push(s);
    });
    return out;
  }

  /**
   * A list of `KEY=value` strings or a mapping (environment, labels). Values are text; a list item
   * without `=` or a mapping value of null yields null ("take it from the environment" for environment,
   * "" for labels, decided by the caller).
   */
  keyValues(n: PNode, path: string): { key: string; value: string | null; pos: Pos }[] | undefined {
    const out: { key: string; value: string | null; pos: Pos }[] = [];
    if (n.kind === 'seq') {
      n.items.forEach((it, i) => {
        const s = this.string(it, `${path}[${i}]`);
        if (s === undefined) return;
        const eq = s.indexOf('=');
        const key = eq < 0 ? s : s.slice(0, eq);
        if (key === '') {
          this.err(it, `${path}[${i}]`, `expected KEY=value, got ${got(it)}`);
          return;
        }
        out.push({ key, value: eq < 0 ? null : s.slice(eq + 1), pos: it.pos });
      });
      return out;
    }
    if (n.kind !== 'map') return this.err(n, path, `must be a mapping or a list of KEY=value strings, got ${got(n)}`);
    for (const e of n.entries) {
      const v = e.value;
      if (v.kind !== 'scalar') {
        this.err(v, join(path, e.key), `must be a string, number or boolean, got ${got(v)}`);
        continue;
      }
      const value = v.value === null ? null : typeof v.value === 'string' ? v.value : (v.source ?? String(v.value));
      out.push({ key: e.key, value, pos: e.keyPos });
    }
    return out;
  }

  /** Labels: keyValues with a missing value meaning "". */
  labels(n: PNode | undefined, path: string): Record<string, string> {
    const out: Record<string, string> = {};
    if (!n) return out;
    for (const { key, value } of this.keyValues(n, path) ?? [])
      Object.defineProperty(out, key, { value: value ?? '', enumerable: true, writable: true, configurable: true });
    return out;
  }

  /** A parsed unit value (units.ts) or a problem. */
  unit(n: PNode, path: string, parse: (v: string | number) => { ok: true; value: number } | { ok: false; message: string }): number | undefined {
    const s = this.scalar(n, path, 'a value');
    if (!s) return undefined;
    if (typeof s.value === 'boolean') return this.err(n, path, `must not be a boolean, got ${s.value}`);
    const r = parse(s.value as string | number);
    return r.ok ? r.value : this.err(n, path, r.message);
  }
}

/** True when a value is "not set" in effect: null, false, an empty string, list or mapping. */
export function isEmptyValue(n: PNode): boolean {
  if (n.kind === 'scalar') return n.value === null || n.value === false || n.value === '';
  if (n.kind === 'seq') return n.items.length === 0;
  return n.entries.length === 0;
}
