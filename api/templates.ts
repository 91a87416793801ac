// Go-template-like placeholders in task templates, as in `docker service create --hostname
// "{{.Node.Hostname}}-{{.Task.Slot}}"`. Swarm expands them on the node, just before the container is
// created, in env values (not keys), the hostname and mount sources and targets; Shoal does the same.
//
// Only the subset of text/template that makes sense here is understood:
//   {{.Node.ID}} {{.Node.Hostname}} {{.Task.ID}} {{.Task.Name}} {{.Task.Slot}} {{.Service.ID}} {{.Service.Name}}
//   {{ .Node.ID }}            whitespace inside the braces
//   {{- .Node.ID -}}          trim markers (remove the whitespace before / after the action)
//   {{"{{"}} {{`text`}}       string constants (the only way to write a literal "{{")
//   {{/* comment */}}         comments
// Anything else inside braces (other fields, functions, pipelines) is refused when the spec is validated,
// so a typo never reaches a node. Everything here is pure.
import type { Frozen, TaskTemplate } from './objects.ts';

/** The placeholders Shoal expands, in the order error messages list them. */
export const TEMPLATE_FIELDS = ['.Node.ID', '.Node.Hostname', '.Task.ID', '.Task.Name', '.Task.Slot', '.Service.ID', '.Service.Name'] as const;
export type TemplateField = (typeof TEMPLATE_FIELDS)[number];

const KNOWN: ReadonlySet<string> = new Set(TEMPLATE_FIELDS);

/** What a task's templates are expanded with. */
export interface TemplateContext {
  node: { id: string; hostname: string };
  /** `slot` is absent (or 0) for global services: .Task.Slot then expands to the node id, as in Swarm. */
  task: { id: string; name: string; slot?: number };
  service: { id: string; name: string };
}

export class TemplateError extends Error {
  readonly code = 'ETEMPLATE';
  constructor(message: string) {
    super(message);
    this.name = 'TemplateError';
  }
}

export function isTemplateField(f: string): f is TemplateField {
  return KNOWN.has(f);
}

/** The "(use …)" tail of unknown-field messages. */
export function templateFieldsHint(): string {
  return `use ${TEMPLATE_FIELDS.join(', ')}`;
}

type Piece = { kind: 'text'; text: string } | { kind: 'field'; expr: string } | { kind: 'const'; text: string };

const SPACE = /[ \t\r\n]/;

/** Splits `s` into text and actions; throws TemplateError on an unclosed action or a bad constant. */
function scan(s: string): Piece[] {
  const out: Piece[] = [];
  let i = 0;
  let text = '';
  let trimNext = false;
  while (i < s.length) {
    const open = s.indexOf('{{', i);
    if (open < 0) {
      text += s.slice(i);
      break;
    }
    text += s.slice(i, open);
    let j = open + 2;
    // `{{- ` trims the whitespace before the action (the dash must be followed by a space).
    if (s[j] === '-' && SPACE.test(s[j + 1] ?? '')) {
      text = text.replace(/[ \t\r\n]+$/, '');
      j += 1;
    }
    if (trimNext) {
      text = text.replace(/^[ \t\r\n]+/, '');
      trimNext = false;
    }
    if (text) out.push({ kind: 'text', text });
    text = '';
    // Find the closing braces, skipping over quoted constants.
    let k = j;
    let close = -1;
    while (k < s.length) {
      const c = s[k]!;
      if (c === '"' || c === '`') {
        const end = findQuoteEnd(s, k);
        if (end < 0) throw new TemplateError(`unterminated quoted string in template ${JSON.stringify(s.slice(open))}`);
        k = end + 1;
        continue;
      }
      if (c === '}' && s[k + 1] === '}') {
        close = k;
        break;
      }
      k++;
    }
    if (close < 0) throw new TemplateError(`unclosed action: ${JSON.stringify(s.slice(open))} has no closing }}`);
    let inner = s.slice(j, close);
    // ` -}}` trims the whitespace after the action.
    if (/[ \t\r\n]-$/.test(inner)) {
      inner = inner.slice(0, -1);
      trimNext = true;
    }
    out.push(classify(inner.trim(), s.slice(open, close + 2)));
    i = close + 2;
  }
  if (trimNext) text = text.replace(/^[ \t\r\n]+/, '');
  if (text) out.push({ kind: 'text', text });
  return out;
}

function findQuoteEnd(s: string, start: number): number {
  const q = s[start]!;
  for (let k = start + 1; k < s.length; k++) {
    const c = s[k]!;
    if (q === '"' && c === '\\') {
      k++;
      continue;
    }
    if (c === q) return k;
  }
  return -1;
}

function classify(expr: string, raw: string): Piece {
  if (expr.startsWith('/*') && expr.endsWith('*/') && expr.length >= 4) return { kind: 'const', text: '' };
  if (/^"(?:[^"\\]|\\.)*"$/.test(expr)) {
    try {
      return { kind: 'const', text: JSON.parse(expr) as string };
    } catch {
      throw new TemplateError(`bad string constant in ${raw}`);
    }
  }
  if (/^`[^`]*`$/.test(expr)) return { kind: 'const', text: expr.slice(1, -1) };
  return { kind: 'field', expr };
}

/**
 * The placeholders in `s`, as written inside the braces and trimmed (e.g. `.Node.Hostname`, or
 * `.Node.Foo` / `index .Service.Labels "x"` for ones Shoal does not know), in order of appearance.
 * Constants and comments are not listed. Throws TemplateError when `s` is not a well-formed template.
 */
export function templateFields(s: string): string[] {
  return scan(s).flatMap((p) => (p.kind === 'field' ? [p.expr] : []));
}

/** Does `s` contain any template action at all? */
export function hasTemplate(s: string): boolean {
  return s.includes('{{');
}

function fieldValue(f: string, ctx: TemplateContext): string {
  switch (f) {
    case '.Node.ID':
      return ctx.node.id;
    case '.Node.Hostname':
      return ctx.node.hostname;
    case '.Task.ID':
      return ctx.task.id;
    case '.Task.Name':
      return ctx.task.name;
    case '.Task.Slot':
      return ctx.task.slot !== undefined && ctx.task.slot !== 0 ? String(ctx.task.slot) : ctx.node.id;
    case '.Service.ID':
      return ctx.service.id;
    case '.Service.Name':
      return ctx.service.name;
    default:
      throw new TemplateError(`unknown template field {{${f}}} (${templateFieldsHint()})`);
  }
}

/** Expands one string. Throws TemplateError on a malformed template or an unknown field. */
export function expandString(s: string, ctx: TemplateContext): string {
  if (!hasTemplate(s)) return s;
  return scan(s)
    .map((p) => (p.kind === 'field' ? fieldValue(p.expr, ctx) : p.text))
    .join('');
}

/**
 * A copy of `template` with placeholders expanded in env values, the hostname and mount sources and
 * targets (Swarm's set). Everything else is copied unchanged; the input is not modified (it may be frozen).
 */
export function expandTemplates(template: TaskTemplate | Frozen<TaskTemplate>, ctx: TemplateContext): TaskTemplate {
  const out = structuredClone(template) as TaskTemplate;
  if (out.env) {
    out.env = out.env.map((e) => {
      const eq = e.indexOf('=');
      return eq < 0 ? e : e.slice(0, eq + 1) + expandString(e.slice(eq + 1), ctx);
    });
  }
  if (out.hostname !== undefined) out.hostname = expandString(out.hostname, ctx);
  if (out.mounts) {
    for (const m of out.mounts) {
      if (m.source !== undefined) m.source = expandString(m.source, ctx);
      m.target = expandString(m.target, ctx);
    }
  }
  return out;
}
