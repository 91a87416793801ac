// `shoal daemon`'s declaration, kept apart from the rest of the command tree (cli/commands.ts lists it
// from here), so that a starting daemon (systemd, `shoal lab up`) parses its flags without loading every
// other command's: cli/commands.ts and cli/service-flags.ts would stay in its heap for the daemon's whole
// life, ≈ 0.4 MB (docs/design/build.md, "Memory"). cli/shoal.ts run() takes this path for a plain
// `shoal daemon FLAGS` and the general dispatcher for anything else, so the daemon accepts, rejects and
// prints exactly what the dispatcher would.
import { Invocation, type CommandDef } from './command.ts';
import { list, scan, value } from './flags.ts';

/** The local daemon's state directory: `shoal daemon` and the commands that talk to its local socket. */
export const STATE_DIR = value('state-dir', 'State directory of the local daemon', { value: 'dir' });

export const DAEMON_COMMAND: CommandDef = {
  name: 'daemon',
  summary: "Run this host's Shoal daemon in the foreground",
  flags: [
    STATE_DIR,
    value('hostname', 'Node hostname (default: the host name)', { value: 'name' }),
    value('executor', 'Task executor: engine (containers) or test (no processes)', { value: 'engine|test' }),
    list('insecure-registry', 'Registry reached over plain HTTP', { value: 'host:port' }),
    value('netns-prefix', 'Prefix of the network namespaces this node creates', { value: 'prefix' }),
    value('election-ms', 'Raft election timeout in milliseconds', { value: 'ms' }),
    value('metrics-addr', 'Serve Prometheus metrics over plain HTTP on this address (e.g. 127.0.0.1:9323)', { value: 'host:port' }),
  ],
  run: async (i) => (await import('./daemon.ts')).daemonCmd(i),
};

/**
 * `shoal daemon FLAGS` parsed as cli/shoal.ts main() parses it, or null when the line needs what only
 * the dispatcher has: help (`--help`, `-h`), `--`, `--context` (a global flag, declared with the tree),
 * or a flag that does not parse here (unknown: the dispatcher's error suggests the closest flag). With
 * none of those the dispatcher would find the same command and scan the same words with the same flags
 * (plus --context, absent here), so the Invocation is the one it would build.
 */
export function plainDaemonRun(argv: readonly string[]): Invocation | null {
  if (argv[0] !== DAEMON_COMMAND.name) return null;
  const args = argv.slice(1);
  if (args.some((a) => a === '--help' || a === '-h' || a === '--' || a === '--context' || a.startsWith('--context='))) return null;
  try {
    return new Invocation([DAEMON_COMMAND.name], args, scan(args, DAEMON_COMMAND.flags ?? [], { interspersed: DAEMON_COMMAND.interspersed ?? true }));
  } catch {
    return null;
  }
}
