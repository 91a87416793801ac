// `--help` text, generated from the command tree in cli/commands.ts (never written by hand): a group
// lists its subcommands with their one-line summaries; a command shows its usage line and one line per
// flag.
import type { CommandDef } from './command.ts';
import { CONTEXT_FLAG } from './commands.ts';
import { flagHelpLines } from './flags.ts';

export function helpText(path: CommandDef[]): string {
  const cmd = path[path.length - 1]!;
  const words = path.map((c) => c.name).join(' ');
  const out: string[] = [];
  if (cmd.subcommands) {
    out.push(`Usage: ${words} COMMAND`, '', cmd.summary, '', 'Commands:');
    const w = Math.max(...cmd.subcommands.map((s) => s.name.length));
    for (const s of cmd.subcommands) out.push(`  ${s.name.padEnd(w)}   ${s.summary}`);
    out.push('', `Run '${words} COMMAND --help' for more information on a command.`);
  } else {
    const flags = cmd.flags ?? [];
    out.push(`Usage: ${words}${flags.length ? ' [OPTIONS]' : ''}${cmd.args ? ` ${cmd.args}` : ''}`, '', cmd.summary);
    if (cmd.aliases?.length) out.push('', `Aliases: ${[cmd.name, ...cmd.aliases].join(', ')}`);
    if (flags.length) out.push('', 'Options:', ...flagHelpLines(flags));
  }
  if (cmd.notes?.length) out.push('', ...cmd.notes);
  out.push('', 'Global options:', ...flagHelpLines([CONTEXT_FLAG, { long: 'help', short: 'h', kind: 'bool', help: 'Print this help' }]));
  return out.join('\n');
}
