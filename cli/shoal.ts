// The `shoal` command line's entry point: it only dispatches. It finds the command in the declared tree
// (cli/commands.ts), checks its flags (unknown ones get a "did you mean"), answers --help, and runs the
// command's handler. Flags that work on every command (--context; --format and -q where the command
// has them) may also come before the command: `shoal --format json node ls`. A user's mistake is one
// line on stderr and exit code 1, never a stack trace.
//
// This module is also what `shoal daemon` runs (bin/shoal, the labs: dist/cli/shoal.js), for as long as
// the daemon lives, so it imports the command tree, the help and the output formats only when a command
// line needs them: a plain `shoal daemon FLAGS` parses with the daemon's own declaration
// (cli/daemon-command.ts) and never loads the others (docs/design/build.md, "Memory").
import { pathToFileURL } from 'node:url';
import { realpathSync } from 'node:fs';
import { Invocation, type CommandDef } from './command.ts';
import { DAEMON_COMMAND, plainDaemonRun } from './daemon-command.ts';
import { ApiError } from '../api/errors.ts';
import { CliError } from '../client/context.ts';
import { scan, type FlagDef } from './flags.ts';
import { editDistance } from '../manager/service/spec.ts';

const HELP = new Set(['--help', '-h']);

/** Flags that may precede the command words; each takes a value except -q. */
const LEADING: Record<string, 'value' | 'bool'> = { '--context': 'value', '--format': 'value', '-q': 'bool', '--quiet': 'bool' };

/** The closest of `names` to `word` (at most 2 edits), for "unknown command … (did you mean …?)". */
function closest(word: string, names: string[]): string | undefined {
  let best: string | undefined;
  let bestD = 3;
  for (const n of names) {
    const d = editDistance(word, n);
    if (d < bestD) [best, bestD] = [n, d];
  }
  return best;
}

/** Whether --help/-h is asked for: before `--`, and for commands whose flags stop at the first word, before it. */
function wantsHelp(args: string[], cmd: CommandDef): boolean {
  for (const a of args) {
    if (a === '--') return false;
    if (HELP.has(a)) return true;
    if (cmd.interspersed === false && !a.startsWith('-')) return false;
  }
  return false;
}

export interface Output {
  out: (s: string) => void;
}

/** `--help` text for the command at the end of `path` (cli/help.ts, which reads the whole tree). */
async function helpText(path: CommandDef[]): Promise<string> {
  return (await import('./help.ts')).helpText(path);
}

/** Runs one command line. `root` is the declared tree (cli/commands.ts); tests pass a copy whose handlers only record. */
export async function main(argv: string[], io: Output = { out: (s) => console.log(s) }, root?: CommandDef): Promise<number> {
  const tree = await import('./commands.ts');
  root ??= tree.COMMANDS;
  // Leading global flags.
  const leading: string[] = [];
  let at = 0;
  while (at < argv.length && argv[at]!.startsWith('-')) {
    const a = argv[at]!;
    if (HELP.has(a)) {
      io.out(await helpText([root]));
      return 0;
    }
    const name = a.includes('=') ? a.slice(0, a.indexOf('=')) : a;
    const kind = LEADING[name];
    if (!kind) throw new CliError(`${name}: unknown flag before the command (only --context, --format and -q may come first; see shoal --help)`);
    leading.push(a);
    if (kind === 'value' && !a.includes('=')) {
      if (argv[at + 1] === undefined) throw new CliError(`${a}: needs a value`);
      leading.push(argv[++at]!);
    }
    at++;
  }

  // Walk the command words; `shoal help service create` is `shoal service create --help`.
  let words = argv.slice(at);
  let help = false;
  if (words[0] === 'help') {
    help = true;
    words = words.slice(1);
  }
  const path: CommandDef[] = [root];
  let cmd = root;
  while (cmd.subcommands) {
    const w = words[0];
    if (w === undefined || HELP.has(w)) {
      io.out(await helpText(path));
      return 0;
    }
    const next = cmd.subcommands.find((s) => s.name === w || s.aliases?.includes(w));
    if (!next) {
      const hint = closest(
        w,
        cmd.subcommands.map((s) => s.name),
      );
      const where =
        path.length === 1
          ? 'command'
          : `${path
              .slice(1)
              .map((c) => c.name)
              .join(' ')} command`;
      throw new CliError(`unknown ${where} '${w}'${hint ? ` (did you mean '${hint}'?)` : ''}; see '${path.map((c) => c.name).join(' ')} --help'`);
    }
    path.push(next);
    cmd = next;
    words = words.slice(1);
  }
  const args = [...leading, ...words];
  if (help || wantsHelp(args, cmd)) {
    io.out(await helpText(path));
    return 0;
  }

  // Check the flags against the declaration (the handler may parse again: service create/update parse
  // Docker's flags into a spec, logs and lab use their own parsers), then take --context out.
  const defs: FlagDef[] = [...(cmd.flags ?? []), ...((cmd.flags ?? []).some((f) => f.long === 'context') ? [] : [tree.CONTEXT_FLAG])];
  const parsed = scan(args, defs, { interspersed: cmd.interspersed ?? true, ...(cmd.hints ? { hints: cmd.hints } : {}) });
  // A bad --format template fails here, before any request is made.
  const format = parsed.values.get('format')?.at(-1);
  if (format !== undefined && (cmd.flags ?? []).some((f) => f.long === 'format')) (await import('./format.ts')).checkFormat(format);
  const rest = withoutContext(args, cmd.interspersed ?? true);
  return cmd.run!(
    new Invocation(
      path.slice(1).map((c) => c.name),
      rest,
      parsed,
    ),
  );
}

/** The argv without --context (handlers that parse their own argv do not declare it). */
function withoutContext(args: string[], interspersed: boolean): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--' || (!interspersed && !a.startsWith('-'))) {
      out.push(...args.slice(i));
      break;
    }
    if (a === '--context') i++;
    else if (!a.startsWith('--context=')) out.push(a);
  }
  return out;
}

/** Errors a user can act on from one line; anything else is a bug and keeps its stack. */
function isUserError(e: unknown): boolean {
  if (e instanceof CliError) return true;
  if (e instanceof ApiError) return true; // e.g. no manager answered (transport/https.ts)
  const err = e as { code?: unknown };
  return typeof err?.code === 'string' && err.code.startsWith('ERR_PARSE_ARGS');
}

/**
 * Runs `shoal ARGV` and exits: 0, the command's code, or 1 with one line on stderr for a user's mistake.
 * A plain `shoal daemon FLAGS` goes straight to the daemon (cli/daemon-command.ts), without the tree.
 */
export function run(argv: string[]): void {
  const daemon = plainDaemonRun(argv);
  (daemon ? DAEMON_COMMAND.run!(daemon) : main(argv)).then(
    (code) => process.exit(code),
    (e) => {
      const user = isUserError(e);
      console.error(`shoal: ${user ? (e as Error).message : ((e as Error).stack ?? String(e))}`);
      process.exit(1);
    },
  );
}

// Run when executed directly (`node --import tsx cli/shoal.ts`, `node dist/cli/shoal.js`); bin/shoal
// imports this module and calls run() itself.
const invoked = process.argv[1] ? pathToFileURL(realpathOr(process.argv[1])).href : '';
if (invoked === import.meta.url || /\/cli\/shoal\.[jt]s$/.test(invoked)) run(process.argv.slice(2));

function realpathOr(p: string): string {
  try {
    return realpathSync(p);
  } catch {
    return p;
  }
}
