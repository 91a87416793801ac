// `shoal system install|unit|uninstall`: run `shoal daemon` on a real host under systemd. A subcommand
// rather than a shell script because the CLI already knows where its own launcher and checkout are (the
// unit must call the launcher by an absolute path), parses flags and reports errors the one way the rest
// of `shoal` does, and keeps the unit's rendering (cli/system-unit.ts) a pure, tested function.
//
// install: render deploy/systemd/shoal.service.in, verify it with `systemd-analyze verify` in a scratch
// directory (a unit that does not verify is never installed), write it only if it changed, create the
// state directory, then — when systemd runs this host — daemon-reload, enable, and with --start start it
// (or restart it if it runs an older unit). Running it again changes nothing.
import { spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { CliError, DEFAULT_STATE_DIR } from '../client/context.ts';
import { renderUnit, UnitOptionError, unitPath, verifyProblems, type UnitOptions } from './system-unit.ts';

export const UNIT_NAME = 'shoal.service';
export const DEFAULT_UNIT_DIR = '/etc/systemd/system';
const TEMPLATE = join('deploy', 'systemd', 'shoal.service.in');

/** The checkout this CLI runs from: the first directory up from this file with package.json and bin/shoal
 *  (the same from cli/ as from a compiled copy such as dist/cli/). */
export function findCheckout(from = dirname(fileURLToPath(import.meta.url))): { repo: string; launcher: string } {
  for (let d = from; ; d = dirname(d)) {
    if (existsSync(join(d, 'package.json')) && existsSync(join(d, 'bin', 'shoal'))) return { repo: d, launcher: realpathSync(join(d, 'bin', 'shoal')) };
    if (dirname(d) === d) throw new CliError(`cannot find the Shoal checkout (package.json and bin/shoal) above ${from}`);
  }
}

function run(cmd: string, args: string[], timeoutMs = 60_000): { code: number | null; out: string; missing: boolean } {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: timeoutMs });
  const missing = (r.error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT';
  return { code: r.status, out: `${r.stdout ?? ''}${r.stderr ?? ''}`.trim(), missing };
}

function systemctl(...args: string[]): void {
  const r = run('systemctl', args);
  if (r.code !== 0) throw new CliError(`systemctl ${args.join(' ')} failed: ${r.out.split('\n')[0] || `exit ${r.code}`}`);
}

/** Like sd_booted(): systemd is PID 1 of this host. */
function systemdRunning(): boolean {
  return existsSync('/run/systemd/system');
}

function pid1(): string {
  try {
    return readFileSync('/proc/1/comm', 'utf8').trim();
  } catch {
    return 'unknown';
  }
}

interface Parsed {
  stateDir: string;
  unitDir: string;
  launcher: string | undefined;
  start: boolean;
  enable: boolean;
  daemonArgs: string[];
}

/** The installer's own flags (before any `--`); a bad flag is a usage error. */
function parseOwnFlags(own: string[]) {
  try {
    return parseArgs({
      args: own,
      options: {
        'state-dir': { type: 'string' },
        'unit-dir': { type: 'string' },
        shoal: { type: 'string' },
        start: { type: 'boolean' },
        'no-enable': { type: 'boolean' },
        context: { type: 'string' },
      },
      allowPositionals: false,
    }).values;
  } catch (e) {
    throw new CliError((e as Error).message);
  }
}

function parse(argv: string[]): Parsed {
  // Everything after the first `--` goes to the daemon's ExecStart untouched.
  const cut = argv.indexOf('--');
  const own = cut < 0 ? argv : argv.slice(0, cut);
  const daemonArgs = cut < 0 ? [] : argv.slice(cut + 1);
  const v = parseOwnFlags(own);
  return {
    stateDir: resolve(v['state-dir'] ?? DEFAULT_STATE_DIR),
    unitDir: resolve(v['unit-dir'] ?? DEFAULT_UNIT_DIR),
    launcher: v.shoal === undefined ? undefined : resolve(v.shoal),
    start: v.start ?? false,
    enable: !(v['no-enable'] ?? false),
    daemonArgs,
  };
}

/** The unit for these flags, and the checkout it comes from. */
function unitFor(p: Parsed): { text: string; opts: UnitOptions } {
  const checkout = findCheckout();
  const launcher = p.launcher ?? checkout.launcher;
  try {
    accessSync(launcher, constants.X_OK);
  } catch {
    throw new CliError(`--shoal ${launcher}: not an executable file`);
  }
  const real = realpathSync(launcher);
  const opts: UnitOptions = {
    launcher,
    // The launcher's own checkout (it may be a link elsewhere on the PATH).
    workdir: dirname(dirname(real)),
    stateDir: p.stateDir,
    daemonArgs: p.daemonArgs,
    docs: `file://${encodeURI(join(checkout.repo, 'docs', 'operations.md'))}`,
    path: unitPath(dirname(process.execPath)),
  };
  const template = readFileSync(join(checkout.repo, TEMPLATE), 'utf8');
  try {
    return { text: renderUnit(template, opts), opts };
  } catch (e) {
    if (e instanceof UnitOptionError) throw new CliError(e.message);
    throw e;
  }
}

/** Runs `systemd-analyze verify` on the unit text in a scratch directory; throws naming the first problem. */
function verify(text: string): 'verified' | 'not verified (systemd-analyze not found)' {
  const dir = mkdtempSync(join(tmpdir(), 'shoal-unit-'));
  try {
    const file = join(dir, UNIT_NAME);
    writeFileSync(file, text, { mode: 0o644 });
    const r = run('systemd-analyze', ['verify', file]);
    if (r.missing) return 'not verified (systemd-analyze not found)';
    const problems = verifyProblems(r.out, r.code, file);
    if (problems.length > 0) {
      throw new CliError(
        `the unit does not pass systemd-analyze verify, nothing installed: ${problems[0]!.replace(file, UNIT_NAME)}${problems.length > 1 ? ` (and ${problems.length - 1} more)` : ''}`,
      );
    }
    return 'verified';
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function requireRoot(what: string): void {
  if (process.getuid?.() !== 0)
    throw new CliError(`shoal system ${what} must run as root (it writes under ${DEFAULT_UNIT_DIR} and the state directory and calls systemctl)`);
}

function install(p: Parsed, say: (l: string) => void): number {
  requireRoot('install');
  const unitPath = join(p.unitDir, UNIT_NAME);
  const { text, opts } = unitFor(p);
  const verified = verify(text);
  let old: string | null = null;
  try {
    old = readFileSync(unitPath, 'utf8');
  } catch {
    /* first install */
  }
  const changed = old !== text;
  if (changed) {
    mkdirSync(p.unitDir, { recursive: true, mode: 0o755 });
    const tmp = `${unitPath}.${process.pid}.tmp`;
    writeFileSync(tmp, text, { mode: 0o644 });
    renameSync(tmp, unitPath);
    say(
      `${old === null ? 'wrote' : 'updated'} ${unitPath} (${verified}): ExecStart=${opts.launcher} daemon --state-dir ${opts.stateDir}${opts.daemonArgs.length ? ' …' : ''}`,
    );
  } else {
    say(`${unitPath} is up to date (${verified})`);
  }
  if (!existsSync(p.stateDir)) {
    mkdirSync(p.stateDir, { recursive: true, mode: 0o700 });
    say(`created the state directory ${p.stateDir} (mode 0700)`);
  }
  if (!p.enable) {
    say('not enabled (--no-enable)');
    return 0;
  }
  if (!systemdRunning()) {
    throw new CliError(
      `systemd is not running on this host (PID 1 is ${pid1()}): ${unitPath} is written and verified, but nothing can enable or start it here (use --no-enable to only write it)`,
    );
  }
  if (changed) systemctl('daemon-reload');
  systemctl('enable', '--quiet', UNIT_NAME);
  say(`enabled ${UNIT_NAME} (starts at boot)`);
  const active = run('systemctl', ['is-active', '--quiet', UNIT_NAME]).code === 0;
  if (p.start) {
    if (!active) {
      systemctl('start', UNIT_NAME);
      say(`started ${UNIT_NAME}; logs: journalctl -u shoal -f`);
    } else if (changed) {
      systemctl('restart', UNIT_NAME);
      say(`restarted ${UNIT_NAME} to run the new unit (containers keep running; the daemon re-adopts them)`);
    } else {
      say(`${UNIT_NAME} is already running`);
    }
  } else if (active && changed) {
    say(`${UNIT_NAME} still runs the previous unit: \`systemctl restart shoal\` applies it (containers keep running)`);
  } else if (!active) {
    say('start it with: systemctl start shoal');
  }
  return 0;
}

function uninstall(p: Parsed, say: (l: string) => void): number {
  requireRoot('uninstall');
  const unitPath = join(p.unitDir, UNIT_NAME);
  if (systemdRunning()) {
    // Stops the daemon only (KillMode=process): the containers keep running until a daemon comes back.
    const r = run('systemctl', ['disable', '--now', '--quiet', UNIT_NAME]);
    if (r.code === 0) say(`stopped and disabled ${UNIT_NAME} (containers keep running)`);
  }
  if (!existsSync(unitPath)) {
    say(`${unitPath} is not installed`);
    return 0;
  }
  rmSync(unitPath, { force: true });
  if (systemdRunning()) systemctl('daemon-reload');
  say(`removed ${unitPath}; the state directory ${p.stateDir} is kept`);
  return 0;
}

export async function systemCmd(sub: string | undefined, argv: string[], say: (l: string) => void = (l) => console.log(l)): Promise<number> {
  const p = parse(argv);
  switch (sub) {
    case 'install':
      return install(p, say);
    case 'unit':
      process.stdout.write(unitFor(p).text);
      return 0;
    case 'uninstall':
      return uninstall(p, say);
    default:
      throw new CliError(`unknown system command '${sub ?? ''}' (install, unit, uninstall)`);
  }
}
