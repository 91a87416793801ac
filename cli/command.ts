// The shape of the CLI's one declaration (cli/commands.ts): a tree of commands, each with its flags
// (cli/flags.ts) and a handler loaded on demand, and what a handler receives when it runs. The
// dispatcher (cli/shoal.ts), the help (cli/help.ts) and `shoal completion bash` all read this tree.
import { contextPath, loadContext, type Context } from '../client/context.ts';
import { all, last, flag, type FlagDef, type Parsed } from './flags.ts';

export interface CommandDef {
  name: string;
  aliases?: string[];
  /** One line: shown in the parent's list and at the top of --help. */
  summary: string;
  /** The arguments after the flags in the usage line, e.g. 'SERVICE [SERVICE...]'. */
  args?: string;
  flags?: FlagDef[];
  /** Flags may follow positionals (default), or the first positional ends them (`create IMAGE CMD...`). */
  interspersed?: boolean;
  /** Flags of sibling commands that do not apply here, with what to use instead (shown for an unknown flag). */
  hints?: Readonly<Record<string, string>>;
  /** Extra lines for --help (examples, notes). */
  notes?: string[];
  subcommands?: CommandDef[];
  run?: (inv: Invocation) => Promise<number>;
}

/** What a handler gets: its parsed flags, the raw words after the command, the cluster context on demand. */
export class Invocation {
  constructor(
    /** The command words, e.g. ['service', 'ls']. */
    readonly path: string[],
    /** The words after the command words (without --context). */
    readonly argv: string[],
    readonly p: Parsed,
  ) {}

  get positionals(): string[] {
    return this.p.positionals;
  }
  value(name: string): string | undefined {
    return last(this.p, name);
  }
  values(name: string): string[] {
    return all(this.p, name);
  }
  flag(name: string): boolean {
    return flag(this.p, name);
  }
  /** --format and -q, for ls/ps/inspect. */
  get output(): { format: string | undefined; quiet: boolean } {
    return { format: this.value('format'), quiet: this.flag('quiet') };
  }
  /** The cluster context named by --context (or $SHOAL_CONTEXT, or ~/.shoal/context.json). */
  context(): Context {
    return loadContext(contextPath(this.value('context')));
  }
  get name(): string {
    return `shoal ${this.path.join(' ')}`;
  }
}
