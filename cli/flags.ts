// The one flag model of the `shoal` CLI: each command declares its flags once (long name, short name,
// kind, one line of help), and this file turns that declaration into the parser (Docker's conventions:
// `--flag value`, `--flag=value`, `-e X`, `-eX`, `-e=X`, `--bool=false`, short booleans clustered as
// `-qa`, `--` ends the flags), the unknown-flag hint ("did you mean --replicas?") and the help text. The
// help is therefore generated, never kept by hand, and cannot drift from what the parser accepts.
import { editDistance } from '../manager/service/spec.ts';
import { CliError } from '../client/context.ts';

export type FlagKind = 'value' | 'list' | 'bool';

export interface FlagDef {
  long: string;
  short?: string;
  kind: FlagKind;
  /** One line for --help. */
  help: string;
  /** The value's placeholder in --help (`--replicas N`); defaults to "string". */
  value?: string;
}

/** Declaration helpers: a flag taking one value (last wins), a repeatable one, a boolean. */
export const value = (long: string, help: string, o: { short?: string; value?: string } = {}): FlagDef => ({ long, kind: 'value', help, ...o });
export const list = (long: string, help: string, o: { short?: string; value?: string } = {}): FlagDef => ({ long, kind: 'list', help, ...o });
export const bool = (long: string, help: string, o: { short?: string } = {}): FlagDef => ({ long, kind: 'bool', help, ...o });

/** A CliError (so `shoal` prints it as one line) that also names the flag. */
export type FlagError = CliError & { readonly flag: string; readonly code: 'EBADFLAG' };

export function flagError(flag: string, reason: string): FlagError {
  return Object.assign(new CliError(`${flag}: ${reason}`), { flag, code: 'EBADFLAG' as const });
}

export function isFlagError(e: unknown): e is FlagError {
  return e instanceof CliError && (e as Partial<FlagError>).code === 'EBADFLAG';
}

export interface Parsed {
  /** Every occurrence of each value/list flag, in order, by long name. */
  values: Map<string, string[]>;
  bools: Map<string, boolean>;
  /** Long names of every flag given, in order. */
  given: string[];
  positionals: string[];
}

export interface ScanOptions {
  /** Flags and positionals may be mixed (true), or the first positional ends the flags (Docker's `create IMAGE CMD`). */
  interspersed: boolean;
  /** Flags that exist elsewhere but not here, with the reason shown instead of a suggestion. */
  hints?: Readonly<Record<string, string>>;
}

/** Go's strconv.ParseBool, as Docker reads `--detach=false`. */
export function parseBool(s: string, flag: string): boolean {
  if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(s)) return true;
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(s)) return false;
  throw flagError(flag, `invalid boolean ${JSON.stringify(s)} (use true or false)`);
}

/** The declared flag closest to `name` (at most 2 edits away), for "did you mean". */
export function closestFlag(name: string, defs: readonly FlagDef[]): string | undefined {
  let best: string | undefined;
  let bestD = 3;
  for (const d of defs) {
    const dist = editDistance(name, d.long);
    if (dist < bestD) [best, bestD] = [d.long, dist];
  }
  return best;
}

export function scan(argv: readonly string[], defs: readonly FlagDef[], o: ScanOptions): Parsed {
  const byLong = new Map(defs.map((d) => [d.long, d]));
  const byShort = new Map(defs.filter((d) => d.short).map((d) => [d.short!, d]));
  const out: Parsed = { values: new Map(), bools: new Map(), given: [], positionals: [] };
  const unknown = (shown: string, name: string): never => {
    const hint = o.hints?.[name];
    if (hint) throw flagError(shown, `unknown flag here (${hint})`);
    const best = closestFlag(name, defs);
    throw flagError(shown, `unknown flag${best ? ` (did you mean --${best}?)` : ''}`);
  };
  const set = (d: FlagDef, v: string | boolean) => {
    out.given.push(d.long);
    if (d.kind === 'bool') out.bools.set(d.long, v as boolean);
    else out.values.set(d.long, [...(out.values.get(d.long) ?? []), v as string]);
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') {
      out.positionals.push(...argv.slice(i + 1));
      break;
    }
    if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      const name = eq < 0 ? a.slice(2) : a.slice(2, eq);
      const inline = eq < 0 ? undefined : a.slice(eq + 1);
      const d = byLong.get(name) ?? unknown(`--${name}`, name);
      if (d.kind === 'bool') set(d, inline === undefined ? true : parseBool(inline, `--${name}`));
      else {
        const v = inline ?? argv[++i];
        if (v === undefined) throw flagError(`--${name}`, 'needs a value');
        set(d, v);
      }
      continue;
    }
    if (a.startsWith('-') && a.length > 1) {
      const cluster = a.slice(1);
      for (let j = 0; j < cluster.length; j++) {
        const ch = cluster[j]!;
        const d = byShort.get(ch) ?? unknown(`-${ch}`, ch);
        if (d.kind === 'bool') {
          set(d, true);
          continue;
        }
        let v: string | undefined = cluster.slice(j + 1);
        if (v.startsWith('=')) v = v.slice(1);
        else if (v === '') v = argv[++i];
        if (v === undefined) throw flagError(`--${d.long}`, 'needs a value');
        set(d, v);
        break;
      }
      continue;
    }
    if (!o.interspersed) {
      out.positionals.push(...argv.slice(i));
      break;
    }
    out.positionals.push(a);
  }
  return out;
}

/** Typed read access to a Parsed result. */
export const last = (p: Parsed, name: string): string | undefined => p.values.get(name)?.at(-1);
export const all = (p: Parsed, name: string): string[] => p.values.get(name) ?? [];
export const has = (p: Parsed, name: string): boolean => p.values.has(name) || p.bools.has(name);
export const flag = (p: Parsed, name: string): boolean => p.bools.get(name) ?? false;

/** `  -d, --detach             Exit immediately …`: one line per flag, sorted by long name. */
export function flagHelpLines(defs: readonly FlagDef[]): string[] {
  const seen = new Set<string>();
  const rows: [string, string][] = [];
  // Code-point order, as Docker's help (and no ICU collator to load: localeCompare's first call costs ms).
  for (const d of [...defs].sort((a, b) => (a.long < b.long ? -1 : a.long > b.long ? 1 : 0))) {
    if (seen.has(d.long)) continue;
    seen.add(d.long);
    const left = `${d.short ? `-${d.short}, ` : '    '}--${d.long}${d.kind === 'bool' ? '' : ` ${d.value ?? 'string'}`}${d.kind === 'list' ? ' …' : ''}`;
    rows.push([left, d.help]);
  }
  const w = Math.min(34, Math.max(...rows.map((r) => r[0].length)));
  return rows.map(([l, h]) => `  ${l.padEnd(w)}  ${h}`);
}
