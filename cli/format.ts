// How `ls`, `ps` and `inspect` print, the same for every command: a table by default, `-q` for IDs
// only, `--format json`, or a Go-template-like `--format` as Docker users write them:
//   '{{.Name}}'                     one line per object
//   '{{.Name}}: {{.Spec.Mode}}'     fields of the row (NAME column → .Name) or of the API object
//   '{{json .}}' '{{json .Spec}}'   JSON of the value
//   'table {{.ID}}\t{{.Name}}'      an aligned table with a header row
// `\t` and `\n` written literally in the template are a tab and a newline. The renderer is pure
// (strings in, string out) so it is unit-tested without a cluster.
import { CliError } from '../client/context.ts';

export function table(rows: string[][]): string {
  const widths: number[] = [];
  for (const r of rows) {
    r.forEach((c, i) => {
      widths[i] = Math.max(widths[i] ?? 0, c.length);
    });
  }
  return rows
    .map((r) =>
      r
        .map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]! + 3)))
        .join('')
        .trimEnd(),
    )
    .join('\n');
}

export const cap = (s: string) => (s ? s[0]!.toUpperCase() + s.slice(1) : s);

/**
 * How long ago `iso` was, as the docker CLI words it (its HumanDuration; `service ps` lowercases it): "Less than a second ago",
 * "1 second ago", "5 seconds ago", "About a minute ago", "12 minutes ago", "About an hour ago",
 * "20 hours ago", "3 days ago", "2 weeks ago", "4 months ago", "2 years ago". '' when there is no time.
 */
export function humanAgo(iso: string | undefined, now = Date.now()): string {
  const t = iso ? Date.parse(iso) : Number.NaN;
  if (Number.isNaN(t)) return '';
  const ms = Math.max(0, now - t);
  const seconds = Math.floor(ms / 1000);
  const minutes = Math.floor(ms / 60_000);
  const hours = Math.floor(ms / 3_600_000 + 0.5);
  let d: string;
  if (seconds < 1) d = 'Less than a second';
  else if (seconds === 1) d = '1 second';
  else if (seconds < 60) d = `${seconds} seconds`;
  else if (minutes === 1) d = 'About a minute';
  else if (minutes < 60) d = `${minutes} minutes`;
  else if (hours === 1) d = 'About an hour';
  else if (hours < 48) d = `${hours} hours`;
  else if (hours < 24 * 7 * 2) d = `${Math.floor(hours / 24)} days`;
  else if (hours < 24 * 30 * 2) d = `${Math.floor(hours / 24 / 7)} weeks`;
  else if (hours < 24 * 365 * 2) d = `${Math.floor(hours / 24 / 30)} months`;
  else d = `${Math.floor(ms / 3_600_000 / 24 / 365)} years`;
  return `${d} ago`;
}

/** One row of a listing: the shown columns, the API object behind it, its ID for -q. */
export interface Row {
  id: string;
  cells: string[];
  object: unknown;
}

export interface Listing {
  /** Column headers as the table shows them: 'ID', 'NAME', 'DESIRED STATE' (→ .ID, .Name, .DesiredState). */
  headers: string[];
  rows: Row[];
}

export interface OutputFlags {
  format?: string | undefined;
  quiet?: boolean | undefined;
}

/** 'DESIRED STATE' → 'DesiredState', 'ID' → 'ID', 'CPU %' → 'CPU'. */
export function fieldName(header: string): string {
  const words = header
    .replace(/[^A-Za-z0-9 ]/g, ' ')
    .trim()
    .split(/\s+/);
  return words.map((w) => (w === 'ID' || w === 'CPU' || w === 'VNI' ? w : cap(w.toLowerCase()))).join('');
}

/** The template's view of a row: its columns by field name, falling back to the API object. */
function rowView(l: Listing, r: Row): Record<string, unknown> {
  const view: Record<string, unknown> = {};
  l.headers.forEach((h, i) => {
    view[fieldName(h)] = r.cells[i] ?? '';
  });
  return view;
}

export function renderListing(l: Listing, f: OutputFlags): string {
  if (f.quiet) return l.rows.map((r) => r.id).join('\n');
  const format = f.format ?? 'table';
  if (format === 'table') return table([l.headers, ...l.rows.map((r) => r.cells)]);
  if (format === 'json')
    return JSON.stringify(
      l.rows.map((r) => r.object),
      null,
      2,
    );
  const t = parseTemplate(format);
  const views = l.rows.map((r) => ({ view: rowView(l, r), object: r.object }));
  if (t.table) {
    const header = t.parts.map((p) => (p.kind === 'text' ? p.text : headerOf(p))).join('');
    return table([header, ...views.map((v) => renderParts(t.parts, v.view, v.object))].map((line) => line.split('\t')));
  }
  return views.map((v) => renderParts(t.parts, v.view, v.object)).join('\n');
}

/** `inspect`: a JSON array by default (as Docker), or a template applied to each object. */
export function renderInspect(objects: unknown[], format: string | undefined): string {
  if (format === undefined || format === 'json') return JSON.stringify(objects, null, 2);
  if (format === 'table') throw new CliError('--format table is for ls and ps; inspect prints JSON or a template such as {{.ID}}');
  const t = parseTemplate(format);
  return objects.map((o) => renderParts(t.parts, o, o)).join('\n');
}

/** Checks a --format value before any request is made (a typo fails before work, with one line). */
export function checkFormat(format: string | undefined): void {
  if (format === undefined || format === 'table' || format === 'json') return;
  parseTemplate(format);
}

// ------------------------------------------------------------------------------------------ templates

type Part = { kind: 'text'; text: string } | { kind: 'field'; path: string[]; json: boolean; src: string };

export interface Template {
  table: boolean;
  parts: Part[];
}

const unescapeTabsNewlines = (s: string) => s.replace(/\\t/g, '\t').replace(/\\n/g, '\n');

export function parseTemplate(format: string): Template {
  let body = format;
  let isTable = false;
  if (/^table(\s|$)/.test(body)) {
    isTable = true;
    body = body.slice(5).trimStart();
  }
  const parts: Part[] = [];
  const re = /\{\{\s*(.*?)\s*\}\}/g;
  let at = 0;
  for (let m = re.exec(body); m; m = re.exec(body)) {
    if (m.index > at) parts.push({ kind: 'text', text: unescapeTabsNewlines(body.slice(at, m.index)) });
    at = m.index + m[0].length;
    const expr = m[1]!;
    const jm = /^json\s+(\S+)$/.exec(expr);
    const ref = jm ? jm[1]! : expr;
    if (ref !== '.' && !/^(\.[A-Za-z_][A-Za-z0-9_]*)+$/.test(ref)) {
      throw new CliError(`--format: cannot read {{${expr}}} (use {{.Field}}, {{.A.B}}, {{json .}} or {{json .Field}})`);
    }
    parts.push({ kind: 'field', path: ref === '.' ? [] : ref.slice(1).split('.'), json: jm !== null, src: expr });
  }
  if (at < body.length) parts.push({ kind: 'text', text: unescapeTabsNewlines(body.slice(at)) });
  if (body.includes('{{') && !parts.some((p) => p.kind === 'field')) throw new CliError(`--format: unclosed {{ in ${JSON.stringify(format)}`);
  if (!parts.some((p) => p.kind === 'field')) {
    throw new CliError(`--format must be table, json or a template such as '{{.ID}}' (got ${JSON.stringify(format)})`);
  }
  return { table: isTable, parts };
}

const headerOf = (p: Part & { kind: 'field' }) =>
  p.path.length === 0 ? 'VALUE' : p.path[p.path.length - 1]!.replace(/([a-z0-9])([A-Z])/g, '$1 $2').toUpperCase();

/** Looks a key up exactly, then case-insensitively (so {{.Spec.Name}} reads the API's `spec.name`). */
function lookup(v: unknown, key: string): unknown {
  if (v === null || typeof v !== 'object') return undefined;
  const o = v as Record<string, unknown>;
  if (key in o) return o[key];
  const lower = key.toLowerCase();
  const k = Object.keys(o).find((x) => x.toLowerCase() === lower);
  return k === undefined ? undefined : o[k];
}

function resolvePath(path: string[], view: unknown, object: unknown): unknown {
  if (path.length === 0) return view;
  const [first, ...rest] = path;
  let v = lookup(view, first!);
  if (v === undefined && view !== object) v = lookup(object, first!);
  for (const k of rest) v = lookup(v, k);
  return v;
}

function show(v: unknown): string {
  if (v === undefined || v === null) return '<no value>';
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}

function renderParts(parts: Part[], view: unknown, object: unknown): string {
  return parts
    .map((p) => (p.kind === 'text' ? p.text : p.json ? JSON.stringify(resolvePath(p.path, view, object) ?? null) : show(resolvePath(p.path, view, object))))
    .join('');
}
