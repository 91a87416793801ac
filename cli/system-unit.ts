// The systemd unit that runs `shoal daemon`, as a pure function of the template
// (deploy/systemd/shoal.service.in) and the installation's paths: quoting for ExecStart, checks of the
// inputs, and the reading of `systemd-analyze verify`'s output. `shoal system install` (cli/system.ts)
// does the I/O around it.
import { isAbsolute } from 'node:path';

export interface UnitOptions {
  /** Absolute path of the `shoal` launcher the unit runs. */
  launcher: string;
  /** The daemon's working directory (the checkout the launcher runs from). */
  workdir: string;
  /** Absolute state directory, passed as --state-dir. */
  stateDir: string;
  /** More `shoal daemon` flags, appended to ExecStart as given. */
  daemonArgs: string[];
  /** Documentation= URI. */
  docs: string;
  /** The daemon's PATH (colon-separated absolute directories). */
  path: string;
}

/** systemd's own default PATH for services, after which the node directory is put in front. */
export const SYSTEM_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** PATH for the unit: `nodeDir` first (unless already listed), then systemd's default directories. */
export function unitPath(nodeDir: string): string {
  const dirs = SYSTEM_PATH.split(':');
  return (dirs.includes(nodeDir) ? dirs : [nodeDir, ...dirs]).join(':');
}

/** An install input that would make a broken or ambiguous unit; the message names the input. */
export class UnitOptionError extends Error {
  override name = 'UnitOptionError';
}

/** A template field the renderer does not know, or one left unfilled. */
export class UnitTemplateError extends Error {
  override name = 'UnitTemplateError';
}

/** Characters that need no quoting in an ExecStart word (after % and $ are doubled). */
const PLAIN_WORD = /^[A-Za-z0-9_@%$+=:,./-]+$/;

/**
 * One ExecStart word. systemd expands `%x` specifiers and `$VAR` in ExecStart, so both are doubled to stay
 * literal; a word with anything else special (spaces, quotes, backslashes, a lone `;`) is double-quoted
 * with C-style escapes. Newlines cannot be expressed on one line and are refused.
 */
export function quoteExecWord(word: string): string {
  if (/[\n\r\0]/.test(word)) throw new UnitOptionError(`daemon argument ${JSON.stringify(word)}: contains a newline or NUL`);
  const escaped = word.replace(/%/g, '%%').replace(/\$/g, '$$$$');
  if (escaped !== '' && escaped !== ';' && PLAIN_WORD.test(escaped)) return escaped;
  return `"${escaped.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

/** A path setting (WorkingDirectory=): absolute, one line, `%` doubled (specifiers expand there too). */
function pathValue(what: string, p: string): string {
  if (!isAbsolute(p)) throw new UnitOptionError(`${what} must be an absolute path (got ${JSON.stringify(p)})`);
  if (/[\n\r\0]/.test(p)) throw new UnitOptionError(`${what}: contains a newline or NUL`);
  return p.replace(/%/g, '%%');
}

export function checkUnitOptions(o: UnitOptions): void {
  pathValue('the launcher', o.launcher);
  pathValue('the working directory', o.workdir);
  pathValue('--state-dir', o.stateDir);
  for (const d of o.path.split(':')) pathValue('every PATH directory', d);
  if (/\s/.test(o.path)) throw new UnitOptionError(`PATH ${JSON.stringify(o.path)}: a directory with white space cannot go into Environment=`);
  for (const a of o.daemonArgs) {
    if (a === '--state-dir' || a.startsWith('--state-dir=')) {
      throw new UnitOptionError('give the state directory with `shoal system install --state-dir DIR`, not after --');
    }
    quoteExecWord(a);
  }
}

/** The ExecStart= command line: the launcher, `daemon --state-dir DIR`, then the extra daemon flags. */
export function execStart(o: UnitOptions): string {
  return [o.launcher, 'daemon', '--state-dir', o.stateDir, ...o.daemonArgs].map(quoteExecWord).join(' ');
}

/** The unit text: the template with every @FIELD@ filled in. */
export function renderUnit(template: string, o: UnitOptions): string {
  checkUnitOptions(o);
  const fields: Record<string, string> = {
    EXEC_START: execStart(o),
    WORKDIR: pathValue('the working directory', o.workdir),
    DOCS: o.docs,
    PATH: o.path.replace(/%/g, '%%'),
  };
  const out = template.replace(/@([A-Z_]+)@/g, (_m, k: string) => {
    const v = fields[k];
    if (v === undefined) throw new UnitTemplateError(`unit template: unknown field @${k}@`);
    return v;
  });
  return out.endsWith('\n') ? out : out + '\n';
}

/**
 * What `systemd-analyze verify` found wrong with the unit at `unitPath`. It exits 0 even for a directive it
 * could not parse and ignored ("Failed to parse …, ignoring", "Unknown key name …"), and such a unit would
 * run without the setting, so any line naming the unit counts, and so does a non-zero exit.
 */
export function verifyProblems(output: string, exitCode: number | null, unitPath: string): string[] {
  const base = unitPath.split('/').pop()!;
  const lines = output
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '');
  const mine = lines.filter((l) => l.includes(unitPath) || l.startsWith(`${base}:`));
  if (exitCode !== 0 && mine.length === 0) return lines.length > 0 ? lines : [`systemd-analyze verify exited with ${exitCode}`];
  return mine;
}

/** The settings of a unit file as `section.Key` → values (a key may repeat, e.g. After=). For tests and
 *  for telling an operator what an installed unit says. */
export function parseUnit(text: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  let section = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const s = /^\[(.+)\]$/.exec(line);
    if (s) {
      section = s[1]!;
      continue;
    }
    const eq = line.indexOf('=');
    if (eq < 0) continue;
    const key = `${section}.${line.slice(0, eq).trim()}`;
    const list = out.get(key) ?? [];
    list.push(line.slice(eq + 1).trim());
    out.set(key, list);
  }
  return out;
}
