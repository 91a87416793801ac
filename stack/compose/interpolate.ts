// Variable interpolation in compose files, and the `.env` / env_file format.
//
// Syntax (the Compose Specification's "Interpolation" section):
//   $VAR, ${VAR}            the value, or "" when unset (with a warning, as Docker prints one)
//   ${VAR:-default}         default when VAR is unset or empty;   ${VAR-default}: only when unset
//   ${VAR:?message}         error when VAR is unset or empty;     ${VAR?message}: only when unset
//   ${VAR:+alternative}     alternative when VAR is set and non-empty; ${VAR+alternative}: when set
//   $$                      a literal $
// Defaults, messages and alternatives are interpolated themselves, so `${A:-${B:-x}}` nests. A `$` that
// starts none of these (`$1`, a trailing `$`, `${}`) is an error telling the user to write `$$`, as Docker
// does, rather than being passed through and surprising someone at run time.
//
// Where values come from: the process environment and the `.env` file beside the first compose file.
// The Compose Specification gives variables set in the shell precedence over the same variables in
// `.env` (the file only supplies defaults for what the environment does not set); mergeEnvironments
// follows that. Only values are interpolated, never keys, as in Compose.
import type { Pos, Problems } from './errors.ts';
import type { PNode } from './tree.ts';

/** Looks a variable up: undefined when it is not set (set-but-empty is ""). */
export type Lookup = (name: string) => string | undefined;

export class InterpolationError extends Error {
  readonly code = 'EINTERPOLATION';
  constructor(message: string) {
    super(message);
    this.name = 'InterpolationError';
  }
}

const NAME_START = /[A-Za-z_]/;
const NAME_CHAR = /[A-Za-z0-9_]/;

/** Index of the `}` closing the `${` whose content starts at `from`, counting nested `${…}`; -1 if none. */
function closingBrace(s: string, from: number): number {
  let depth = 1;
  for (let i = from; i < s.length; i++) {
    const c = s[i];
    if (c === '$' && s[i + 1] === '$') i++;
    else if (c === '$' && s[i + 1] === '{') {
      depth++;
      i++;
    } else if (c === '}' && --depth === 0) return i;
  }
  return -1;
}

/**
 * Interpolates one string. `unset` is called with the name of each variable that was used without a
 * value and without a default (the caller warns). Throws InterpolationError.
 */
export function interpolate(s: string, lookup: Lookup, unset: (name: string) => void = () => {}): string {
  if (!s.includes('$')) return s;
  let out = '';
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (c !== '$') {
      out += c;
      continue;
    }
    const n = s[i + 1];
    if (n === '$') {
      out += '$';
      i++;
      continue;
    }
    if (n !== undefined && NAME_START.test(n)) {
      let j = i + 1;
      while (j < s.length && NAME_CHAR.test(s[j]!)) j++;
      const name = s.slice(i + 1, j);
      const v = lookup(name);
      if (v === undefined) unset(name);
      out += v ?? '';
      i = j - 1;
      continue;
    }
    if (n === '{') {
      const end = closingBrace(s, i + 2);
      if (end < 0) throw new InterpolationError(`invalid interpolation format in ${JSON.stringify(s)}: missing closing brace (write $$ for a literal $)`);
      out += braced(s.slice(i + 2, end), s, lookup, unset);
      i = end;
      continue;
    }
    throw new InterpolationError(`invalid interpolation format in ${JSON.stringify(s)}: a $ must start $VAR or \${VAR} (write $$ for a literal $)`);
  }
  return out;
}

/** The inside of one `${…}`. */
function braced(body: string, whole: string, lookup: Lookup, unset: (name: string) => void): string {
  let j = 0;
  while (j < body.length && NAME_CHAR.test(body[j]!)) j++;
  const name = body.slice(0, j);
  if (name === '' || !NAME_START.test(name[0]!)) {
    throw new InterpolationError(
      `invalid interpolation format in ${JSON.stringify(whole)}: \${${body}} does not start with a variable name (write $$ for a literal $)`,
    );
  }
  const rest = body.slice(j);
  const v = lookup(name);
  if (rest === '') {
    if (v === undefined) unset(name);
    return v ?? '';
  }
  const colon = rest.startsWith(':');
  const op = rest[colon ? 1 : 0];
  const arg = rest.slice(colon ? 2 : 1);
  // Unset, or (with the colon) set but empty.
  const missing = v === undefined || (colon && v === '');
  switch (op) {
    case '-':
      return missing ? interpolate(arg, lookup, unset) : v!;
    case '?':
      if (missing) {
        const msg = interpolate(arg, lookup, unset);
        throw new InterpolationError(`required variable ${name} is missing a value${msg ? `: ${msg}` : ''}`);
      }
      return v!;
    case '+':
      return missing ? '' : interpolate(arg, lookup, unset);
    default:
      throw new InterpolationError(`invalid interpolation format in ${JSON.stringify(whole)}: unknown operator after \${${name} (use :-, -, :?, ?, :+ or +)`);
  }
}

/**
 * Interpolates every string value of a tree in place (keys are left alone). Problems name the value's
 * position and key path; `warn` receives one message per variable used while unset.
 */
export function interpolateTree(node: PNode, path: string, lookup: Lookup, problems: Problems, warn: (msg: string) => void): void {
  const unset = (name: string) => warn(`The "${name}" variable is not set. Defaulting to a blank string.`);
  switch (node.kind) {
    case 'scalar':
      if (typeof node.value === 'string' && node.value.includes('$')) {
        try {
          node.value = interpolate(node.value, lookup, unset);
          // The value is no longer what was written: its source text no longer describes it.
          delete node.source;
        } catch (e) {
          if (!(e instanceof InterpolationError)) throw e;
          problems.add(node.pos, path, e.message);
        }
      }
      return;
    case 'seq':
      node.items.forEach((it, i) => {
        interpolateTree(it, `${path}[${i}]`, lookup, problems, warn);
      });
      return;
    case 'map':
      for (const e of node.entries) interpolateTree(e.value, path ? `${path}.${e.key}` : e.key, lookup, problems, warn);
      return;
  }
}

/** Process environment overlaid on `.env`: the environment wins (see the header). */
export function mergeEnvironments(processEnv: Readonly<Record<string, string | undefined>>, dotEnv: Readonly<Record<string, string>>): Record<string, string> {
  const out: Record<string, string> = { ...dotEnv };
  for (const [k, v] of Object.entries(processEnv)) if (v !== undefined) out[k] = v;
  return out;
}

export interface EnvFileLine {
  key: string;
  /** undefined: the line names a variable without `=` (take it from the environment, if set). */
  value: string | undefined;
  pos: Pos;
}

/**
 * Parses the `.env` / env_file format: `KEY=value` a line; blank lines and `#` comments skipped; an
 * optional `export ` prefix; values in single quotes are literal, in double quotes `\n`, `\t`, `\\`
 * and `\"` are unescaped; an unquoted value ends at ` #` (an inline comment) and is trimmed. A line
 * with only `KEY` has no value. Bad lines go to `problems`.
 */
export function parseEnvFile(text: string, file: string, problems: Problems): EnvFileLine[] {
  const out: EnvFileLine[] = [];
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const pos = { file, line: i + 1 };
    let line = lines[i]!.trim();
    if (line === '' || line.startsWith('#')) continue;
    if (line.startsWith('export ')) line = line.slice(7).trimStart();
    const eq = line.indexOf('=');
    const key = (eq < 0 ? line : line.slice(0, eq)).trim();
    if (!/^[A-Za-z_][A-Za-z0-9_.-]*$/.test(key)) {
      problems.add(pos, '', `invalid variable name ${JSON.stringify(key)} (expected KEY=value)`);
      continue;
    }
    if (eq < 0) {
      out.push({ key, value: undefined, pos });
      continue;
    }
    let raw = line.slice(eq + 1).trimStart();
    let value: string;
    const q = raw[0];
    if (q === '"' || q === "'") {
      let j = 1;
      value = '';
      for (; j < raw.length && raw[j] !== q; j++) {
        if (q === '"' && raw[j] === '\\' && j + 1 < raw.length) {
          const e = raw[++j]!;
          value += e === 'n' ? '\n' : e === 't' ? '\t' : e === 'r' ? '\r' : e;
        } else value += raw[j];
      }
      if (j >= raw.length) {
        problems.add(pos, key, `unterminated ${q === '"' ? 'double' : 'single'} quote`);
        continue;
      }
      const after = raw.slice(j + 1).trim();
      if (after !== '' && !after.startsWith('#')) {
        problems.add(pos, key, `unexpected text after the closing quote: ${JSON.stringify(after)}`);
        continue;
      }
    } else {
      const hash = raw.search(/\s#/);
      if (hash >= 0) raw = raw.slice(0, hash);
      value = raw.trim();
    }
    out.push({ key, value, pos });
  }
  return out;
}
