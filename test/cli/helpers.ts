// Shared by the CLI tests: the declared command tree with every handler replaced by a recorder, so the
// dispatcher's parsing can be checked without a cluster, and a capture of what `shoal` prints.
import type { CommandDef, Invocation } from '../../cli/command.ts';
import { COMMANDS } from '../../cli/commands.ts';
import { main } from '../../cli/shoal.ts';

/** Every leaf command of the tree, as its words: [['cluster', 'init'], …, ['daemon'], …]. */
export function leaves(c: CommandDef = COMMANDS, prefix: string[] = []): { words: string[]; cmd: CommandDef }[] {
  if (!c.subcommands) return [{ words: prefix, cmd: c }];
  return c.subcommands.flatMap((s) => leaves(s, [...prefix, s.name]));
}

/** Every group (a command with subcommands), as its words ([] is `shoal` itself). */
export function groups(c: CommandDef = COMMANDS, prefix: string[] = []): { words: string[]; cmd: CommandDef }[] {
  if (!c.subcommands) return [];
  return [{ words: prefix, cmd: c }, ...c.subcommands.flatMap((s) => groups(s, [...prefix, s.name]))];
}

/** A copy of the tree whose handlers record their Invocation instead of running. */
export function recordingTree(): { root: CommandDef; calls: Invocation[] } {
  const calls: Invocation[] = [];
  const copy = (c: CommandDef): CommandDef => ({
    ...c,
    ...(c.subcommands ? { subcommands: c.subcommands.map(copy) } : {}),
    ...(c.run
      ? {
          run: async (i: Invocation) => {
            calls.push(i);
            return 0;
          },
        }
      : {}),
  });
  return { root: copy(COMMANDS), calls };
}

/** Runs `shoal ARGV` in-process against `root`; returns its exit code and what it printed. */
export async function shoal(argv: string[], root?: CommandDef): Promise<{ code: number; out: string }> {
  const lines: string[] = [];
  const code = await main(argv, { out: (s) => lines.push(s) }, root);
  return { code, out: lines.join('\n') };
}
