// THE declaration of the `shoal` command line: every command and subcommand, its flags with one line of
// help each, and its handler (imported only when that command runs, so `shoal node ls` loads neither the
// daemon nor the lab). The dispatcher (cli/shoal.ts), `--help` (cli/help.ts) and `shoal completion bash`
// (cli/completion.ts) are all generated from this tree: a flag added here is parsed, listed and completed.
import type { CommandDef, Invocation } from './command.ts';
import { CliError } from '../client/context.ts';
import { bool, list, value, type FlagDef } from './flags.ts';
import { NETWORK_CREATE_FLAGS } from './network.ts';
import { CREATE_FLAGS, CREATE_HINTS, UPDATE_FLAGS, UPDATE_HINTS } from './service-flags.ts';
import { DAEMON_COMMAND, STATE_DIR } from './daemon-command.ts';

// -------------------------------------------------------------------------------------- shared flags

/** Accepted by every command (and before the command: `shoal --context F node ls`). */
export const CONTEXT_FLAG = value('context', 'Cluster context file (default $SHOAL_CONTEXT or ~/.shoal/context.json)', { value: 'file' });
const FORMAT = value('format', "Output: table, json, or a template such as '{{.ID}}' or 'table {{.ID}}\\t{{.Name}}'", { value: 'format' });
const QUIET = bool('quiet', 'Only display IDs', { short: 'q' });
/** ls and ps. */
const LIST_OUTPUT = [FORMAT, QUIET];
/** inspect. */
const INSPECT_OUTPUT = [value('format', "Output: json (default) or a template such as '{{.ID}}' or '{{json .Spec}}'", { value: 'format' })];
const ALL = bool('all', 'Show all tasks (default shows running and desired tasks only)', { short: 'a' });
const DETACH = bool('detach', 'Exit immediately instead of waiting for the service to converge', { short: 'd' });
const QUIET_PROGRESS = bool('quiet', 'Suppress progress output', { short: 'q' });

/** `cluster update` limits (POST /v1/cluster/update `limits`; see manager/store/limits.ts). */
const LIMIT_FLAGS: FlagDef[] = [
  value('max-replicas', 'Most replicas (or job completions) one service may have', { value: 'N' }),
  value('max-tasks', 'Most task objects in the cluster, history included', { value: 'N' }),
  value('max-object-size', 'Largest stored object (e.g. 512k)', { value: 'bytes' }),
  value('max-labels', 'Most entries in one labels map', { value: 'N' }),
  value('max-label-key-size', 'Largest label key', { value: 'bytes' }),
  value('max-label-value-size', 'Largest label value', { value: 'bytes' }),
  value('max-name-length', 'Longest service, network or node name', { value: 'N' }),
];

const LAB_NAME = value('name', 'Lab name: 1-8 of [a-z0-9] (default shoal)', { value: 'name' });

const LOGS_FLAGS: FlagDef[] = [
  bool('follow', 'Follow log output', { short: 'f' }),
  value('tail', 'Number of lines to show from the end of the logs (or "all")', { short: 'n', value: 'N' }),
  value('since', 'Show logs since a timestamp or a relative time (e.g. 10m, 1h30m)', { value: 'time' }),
  bool('timestamps', 'Show timestamps', { short: 't' }),
  bool('raw', 'Do not prefix lines with the task and node'),
  bool('no-task-ids', 'Do not include task IDs in the prefix'),
];

// Lazy handlers: each command module is imported only when its command runs.
const cluster = () => import('./cluster.ts');
const node = () => import('./node.ts');
const service = () => import('./service.ts');
const network = () => import('./network.ts');
const image = () => import('./image.ts');
const lab = () => import('./lab.ts');
const logs = () => import('./logs.ts');
const stack = () => import('./stack.ts');
const secret = () => import('./secret.ts');

/** `secret` and `config`: the same commands for both kinds (cli/secret.ts). */
function fileCommands(kind: 'secret' | 'config', summary: string): CommandDef {
  const K = kind.toUpperCase();
  return {
    name: kind,
    summary,
    subcommands: [
      {
        name: 'create',
        summary: `Create a ${kind} from a file or standard input (-)`,
        args: 'NAME FILE|-',
        flags: [list('label', `${kind[0]!.toUpperCase()}${kind.slice(1)} labels`, { short: 'l', value: 'key=value' })],
        run: async (i) => (await secret()).fileCreate(kind)(i),
      },
      { name: 'ls', aliases: ['list'], summary: `List ${kind}s`, flags: LIST_OUTPUT, run: async (i) => (await secret()).fileLs(kind)(i) },
      {
        name: 'inspect',
        summary: kind === 'secret' ? 'Show secrets in detail (never their data)' : 'Show configs in detail, data included (base64)',
        args: `${K} [${K}...]`,
        flags: INSPECT_OUTPUT,
        run: async (i) => (await secret()).fileInspect(kind)(i),
      },
      {
        name: 'rm',
        aliases: ['remove'],
        summary: `Remove ${kind}s (refused while a service uses one)`,
        args: `${K} [${K}...]`,
        run: async (i) => (await secret()).fileRm(kind)(i),
      },
    ],
  };
}
/** `shoal system SUB`: cli/system.ts parses its own argv (everything after `--` goes to the daemon). */
const systemRun = (sub: string) => async (i: Invocation) => (await import('./system.ts')).systemCmd(sub, i.argv);
const SYSTEM_UNIT_FLAGS: FlagDef[] = [
  value('state-dir', "The daemon's state directory (default /var/lib/shoal)", { value: 'dir' }),
  value('shoal', "The launcher the unit runs (default: this checkout's bin/shoal)", { value: 'path' }),
];
/**
 * `shoal lab SUB`: H4's module parses its own argv (the declared flags are checked first). The harness
 * reports a bad lab name as a LabError: that is the user's mistake, so it becomes one line.
 */
const labRun = (sub: string) => async (i: Invocation) => {
  const { LabError, validateLabName } = await import('../lab/lab.ts');
  try {
    validateLabName(i.value('name') ?? (sub === 'down' ? i.positionals[0] : undefined) ?? 'shoal');
    if (sub === 'up') checkLabUp(i);
    return await (await lab()).labCmd(sub, i.argv);
  } catch (e) {
    throw e instanceof LabError ? new CliError(e.message) : e;
  }
};

/** `lab up`'s numbers, checked before any host is created (a typo must not cost a half-built lab). */
function checkLabUp(i: Invocation): void {
  const ranges: [string, number, number][] = [
    ['managers', 1, 7],
    ['workers', 0, 50],
    ['replicas', 1, 500],
    ['port', 1, 65535],
  ];
  for (const [f, lo, hi] of ranges) {
    const v = i.value(f);
    if (v !== undefined && !(Number.isInteger(Number(v)) && Number(v) >= lo && Number(v) <= hi))
      throw new CliError(`--${f} must be ${lo}..${hi} (got ${JSON.stringify(v)})`);
  }
}

export const COMMANDS: CommandDef = {
  name: 'shoal',
  summary: 'A multi-host container cluster manager (Docker Swarm-like)',
  flags: [CONTEXT_FLAG],
  subcommands: [
    {
      name: 'context',
      summary: 'Use this cluster from other tools',
      subcommands: [
        {
          name: 'docker',
          summary: 'Write the admin certificate for the docker CLI and create a docker context (Docker API on port 2376)',
          flags: [
            value('dir', 'Where ca.pem, cert.pem and key.pem go (default ~/.shoal/docker/NAME)', { value: 'dir' }),
            value('name', 'Docker context name (default shoal-<cluster id>)', { value: 'name' }),
            value('port', 'Docker API port of the managers (default 2376)', { value: 'port' }),
          ],
          run: async (i) => (await import('./docker-context.ts')).contextDocker(i),
        },
      ],
    },
    {
      name: 'cluster',
      summary: 'Create, join and configure a cluster',
      subcommands: [
        {
          name: 'init',
          summary: 'Initialise a cluster: this node becomes its first manager',
          flags: [
            value('advertise-addr', 'Address (IP or interface) other nodes reach this one at', { value: 'IP|IFACE' }),
            value('listen-port', 'Port for the managers and agents (default 2377)', { value: 'port' }),
            STATE_DIR,
            bool('force-new-cluster', "Force a new cluster from this manager's state (quorum lost)"),
            bool('autolock', 'Lock restarted managers until `shoal cluster unlock` (prints the unlock key)'),
          ],
          run: async (i) => (await cluster()).clusterInit(i),
        },
        {
          name: 'join',
          summary: 'Join this node to a cluster as a worker or a manager',
          args: 'MANAGER[:PORT]',
          flags: [
            value('token', 'Join token (from `shoal cluster join-token`)', { value: 'token' }),
            value('advertise-addr', 'Address (IP or interface) other nodes reach this one at', { value: 'IP|IFACE' }),
            value('listen-port', 'Port for the managers and agents (default 2377)', { value: 'port' }),
            STATE_DIR,
          ],
          run: async (i) => (await cluster()).clusterJoin(i),
        },
        {
          name: 'join-token',
          summary: 'Show (or rotate) the join token for workers or managers',
          args: 'worker|manager',
          flags: [bool('rotate', 'Rotate the join token'), bool('quiet', 'Only display the token', { short: 'q' })],
          run: async (i) => (await cluster()).clusterJoinToken(i),
        },
        {
          name: 'leave',
          summary: 'Make this node leave the cluster',
          flags: [bool('force', 'Leave even if this breaks the quorum', { short: 'f' }), STATE_DIR],
          run: async (i) => (await cluster()).clusterLeave(i),
        },
        {
          name: 'inspect',
          summary: 'Show the cluster object (spec, Raft state)',
          flags: INSPECT_OUTPUT,
          run: async (i) => (await cluster()).clusterInspect(i),
        },
        {
          name: 'update',
          summary: 'Change cluster-wide settings',
          flags: [
            value('dispatcher-heartbeat', 'Heartbeat period of the agents (e.g. 5s)', { value: 'duration' }),
            value('cert-expiry', 'Validity of node certificates (e.g. 90d)', { value: 'duration' }),
            value('autolock', 'Lock restarted managers until unlocked (true|false)', { value: 'bool' }),
            ...LIMIT_FLAGS,
          ],
          run: async (i) => (await cluster()).clusterUpdate(i),
        },
        {
          name: 'unlock',
          summary: 'Unlock this (autolocked) manager: reads the unlock key from stdin or a prompt',
          flags: [STATE_DIR],
          run: async (i) => (await cluster()).clusterUnlock(i),
        },
        {
          name: 'unlock-key',
          summary: 'Show (or rotate) the key that unlocks autolocked managers',
          flags: [bool('rotate', 'Rotate the unlock key'), bool('quiet', 'Only display the key', { short: 'q' })],
          run: async (i) => (await cluster()).clusterUnlockKey(i),
        },
        {
          name: 'ca',
          summary: 'Manage the cluster CA and admin certificates',
          flags: [
            bool('rotate-node-certs', 'Ask every node to renew its certificate'),
            value('issue-admin', 'Issue an admin certificate to NAME (prints a context file, or writes it with --output)', { value: 'NAME' }),
            value('expiry', 'Validity of the issued admin certificate (default 365d)', { value: 'duration' }),
            value('output', 'Write the new admin context file here (mode 0600)', { value: 'file', short: 'o' }),
            value('revoke-admin', 'Revoke an admin certificate by name or serial', { value: 'NAME|SERIAL' }),
            bool('admins', 'List admin certificates (name, serial, expiry, revoked)'),
            bool('rotate', 'Rotate the root CA: a new root (generated, or your own), nodes move over, then the old root is dropped'),
            value('cert', 'With --rotate: the new root CA certificate (PEM file) instead of a generated one', { value: 'file' }),
            value('key', 'With --rotate: the key of that root certificate (PEM file)', { value: 'file' }),
            bool('detach', 'With --rotate: return at once instead of waiting for the rotation to complete', { short: 'd' }),
            bool('renew-admin', "Renew this context's admin certificate now (do it during a root rotation)"),
            ...LIST_OUTPUT,
          ],
          run: async (i) => (await cluster()).clusterCa(i),
        },
      ],
    },
    {
      name: 'node',
      summary: 'Manage the nodes of the cluster',
      subcommands: [
        { name: 'ls', aliases: ['list'], summary: 'List nodes', flags: LIST_OUTPUT, run: async (i) => (await node()).nodeLs(i) },
        {
          name: 'ps',
          summary: 'List the tasks on a node, with their CPU and memory',
          args: 'NODE',
          flags: [ALL, ...LIST_OUTPUT],
          run: async (i) => (await node()).nodePs(i),
        },
        { name: 'inspect', summary: 'Show nodes in detail', args: 'NODE [NODE...]', flags: INSPECT_OUTPUT, run: async (i) => (await node()).nodeInspect(i) },
        {
          name: 'update',
          summary: "Change a node's labels or availability",
          args: 'NODE',
          flags: [
            list('label-add', 'Add or update a node label', { value: 'key=value' }),
            list('label-rm', 'Remove a node label', { value: 'key' }),
            value('availability', 'Availability: active, pause or drain', { value: 'state' }),
          ],
          run: async (i) => (await node()).nodeUpdate(i),
        },
        { name: 'promote', summary: 'Make workers managers', args: 'NODE [NODE...]', run: async (i) => (await node()).nodeRole(i) },
        { name: 'demote', summary: 'Make managers workers', args: 'NODE [NODE...]', run: async (i) => (await node()).nodeRole(i) },
        {
          name: 'rm',
          aliases: ['remove'],
          summary: 'Remove a node from the cluster',
          args: 'NODE',
          flags: [bool('force', 'Remove a node that is not down', { short: 'f' })],
          run: async (i) => (await node()).nodeRm(i),
        },
      ],
    },
    {
      name: 'service',
      summary: 'Manage services',
      subcommands: [
        {
          name: 'create',
          summary: "Create a service (Docker's `service create` flags)",
          args: 'IMAGE [COMMAND] [ARG...]',
          flags: CREATE_FLAGS,
          hints: CREATE_HINTS,
          interspersed: false,
          run: async (i) => (await service()).serviceCreate(i),
        },
        { name: 'ls', aliases: ['list'], summary: 'List services', flags: LIST_OUTPUT, run: async (i) => (await service()).serviceLs(i) },
        { name: 'ps', summary: 'List the tasks of a service', args: 'SERVICE', flags: [ALL, ...LIST_OUTPUT], run: async (i) => (await service()).servicePs(i) },
        {
          name: 'inspect',
          summary: 'Show services in detail',
          args: 'SERVICE [SERVICE...]',
          flags: INSPECT_OUTPUT,
          run: async (i) => (await service()).serviceInspect(i),
        },
        {
          name: 'autoscale',
          summary: "Show a service's autoscale policy, last change and what the autoscaler wants now",
          args: 'SERVICE',
          flags: [value('format', "Output: pretty (default), json or a template such as '{{.Decision.Reason}}'", { value: 'format' })],
          run: async (i) => (await service()).serviceAutoscale(i),
        },
        {
          name: 'scale',
          summary: 'Scale replicated services',
          args: 'SERVICE=REPLICAS [SERVICE=REPLICAS...]',
          flags: [DETACH, QUIET_PROGRESS],
          run: async (i) => (await service()).serviceScale(i),
        },
        {
          name: 'update',
          summary: "Update a service (Docker's `service update` flags)",
          args: 'SERVICE',
          flags: UPDATE_FLAGS,
          hints: UPDATE_HINTS,
          run: async (i) => (await service()).serviceUpdate(i),
        },
        {
          name: 'rollback',
          summary: 'Revert a service to its previous spec',
          args: 'SERVICE',
          flags: [DETACH, QUIET_PROGRESS],
          run: async (i) => (await service()).serviceRollback(i),
        },
        { name: 'rm', aliases: ['remove'], summary: 'Remove services', args: 'SERVICE [SERVICE...]', run: async (i) => (await service()).serviceRm(i) },
        {
          name: 'logs',
          summary: 'Fetch the logs of every task of a service',
          args: 'SERVICE',
          flags: LOGS_FLAGS,
          run: async (i) => (await logs()).logsCmd(i.context(), 'service', i.argv),
        },
      ],
    },
    {
      name: 'task',
      summary: 'Work with single tasks',
      subcommands: [
        {
          name: 'logs',
          summary: 'Fetch the logs of one task',
          args: 'TASK',
          flags: LOGS_FLAGS,
          run: async (i) => (await logs()).logsCmd(i.context(), 'task', i.argv),
        },
        {
          name: 'exec',
          summary: "Run a command in a running task's container",
          args: 'TASK -- COMMAND [ARG...]',
          interspersed: false,
          flags: [value('timeout', 'Seconds to wait for the command (default 60)', { value: 'seconds' })],
          run: async (i) => (await logs()).taskExecCmd(i.context(), i.argv),
        },
      ],
    },
    {
      name: 'network',
      summary: 'Manage overlay networks',
      subcommands: [
        {
          name: 'create',
          summary: 'Create an overlay network',
          args: 'NAME',
          flags: NETWORK_CREATE_FLAGS,
          run: async (i) => (await network()).networkCreate(i),
        },
        { name: 'ls', aliases: ['list'], summary: 'List networks', flags: LIST_OUTPUT, run: async (i) => (await network()).networkLs(i) },
        {
          name: 'inspect',
          summary: 'Show networks in detail',
          args: 'NETWORK [NETWORK...]',
          flags: INSPECT_OUTPUT,
          run: async (i) => (await network()).networkInspect(i),
        },
        { name: 'rm', aliases: ['remove'], summary: 'Remove networks', args: 'NETWORK [NETWORK...]', run: async (i) => (await network()).networkRm(i) },
      ],
    },
    fileCommands('secret', 'Manage secrets (encrypted on the managers, delivered only to the nodes that need them)'),
    fileCommands('config', 'Manage configs (files mounted into tasks)'),
    {
      name: 'stack',
      summary: 'Deploy and manage compose applications (stacks)',
      subcommands: [
        {
          name: 'deploy',
          aliases: ['up'],
          summary: 'Deploy a new stack or update an existing one',
          args: 'STACK',
          flags: [
            list('compose-file', 'Path to a compose file, or "-" to read from stdin (repeat to merge files)', { short: 'c', value: 'file' }),
            bool('prune', 'Prune services that are no longer referenced'),
            bool('detach', 'Exit immediately instead of waiting for the stack services to converge', { short: 'd' }),
            QUIET_PROGRESS,
          ],
          run: async (i) => (await stack()).stackDeploy(i),
        },
        { name: 'ls', aliases: ['list'], summary: 'List stacks', flags: LIST_OUTPUT, run: async (i) => (await stack()).stackLs(i) },
        {
          name: 'services',
          summary: 'List the services in the stack',
          args: 'STACK',
          flags: LIST_OUTPUT,
          run: async (i) => (await stack()).stackServicesCmd(i),
        },
        { name: 'ps', summary: 'List the tasks in the stack', args: 'STACK', flags: [ALL, ...LIST_OUTPUT], run: async (i) => (await stack()).stackPs(i) },
        {
          name: 'rm',
          aliases: ['remove', 'down'],
          summary: 'Remove one or more stacks',
          args: 'STACK [STACK...]',
          run: async (i) => (await stack()).stackRm(i),
        },
      ],
    },
    {
      name: 'image',
      summary: "Manage this node's images (local daemon)",
      subcommands: [
        {
          name: 'load',
          summary: 'Load an image from a docker-save or OCI archive',
          args: 'ARCHIVE',
          flags: [STATE_DIR, value('tag', 'Name the image NAME:TAG', { value: 'name:tag' })],
          run: async (i) => (await image()).imageLoad(i),
        },
        {
          name: 'pull',
          summary: 'Pull an image from a registry',
          args: 'REF',
          flags: [STATE_DIR],
          notes: ['Registry credentials: SHOAL_REGISTRY_USER and SHOAL_REGISTRY_PASSWORD.'],
          run: async (i) => (await image()).imagePull(i),
        },
        { name: 'ls', aliases: ['list'], summary: 'List images', flags: [STATE_DIR, ...LIST_OUTPUT], run: async (i) => (await image()).imageLs(i) },
        {
          name: 'rm',
          aliases: ['remove'],
          summary: 'Remove images',
          args: 'IMAGE [IMAGE...]',
          flags: [STATE_DIR],
          run: async (i) => (await image()).imageRm(i),
        },
        { name: 'prune', summary: 'Remove images no task uses', flags: [STATE_DIR], run: async (i) => (await image()).imagePrune(i) },
      ],
    },
    {
      name: 'volume',
      summary: "Manage this node's volumes (created on first use by --mount type=volume)",
      subcommands: [
        { name: 'ls', aliases: ['list'], summary: 'List volumes', flags: [STATE_DIR, ...LIST_OUTPUT], run: async (i) => (await image()).volumeLs(i) },
        {
          name: 'rm',
          aliases: ['remove'],
          summary: 'Remove volumes',
          args: 'VOLUME [VOLUME...]',
          flags: [STATE_DIR],
          run: async (i) => (await image()).volumeRm(i),
        },
        { name: 'prune', summary: 'Remove volumes no task uses', flags: [STATE_DIR], run: async (i) => (await image()).volumePrune(i) },
      ],
    },
    {
      name: 'events',
      summary: "Show the cluster's events: replay since a time, then follow (like `docker events`)",
      flags: [
        value('since', 'Show events since a time: RFC 3339, Unix seconds, or a duration back from now (10m, 1h30m)', { value: 'time' }),
        value('until', 'Stop at this time (same forms); without it the stream stays open', { value: 'time' }),
        list('filter', 'Only matching events: type=, name=, id=, label=KEY[=VALUE], action= (same key: either; different keys: all)', {
          short: 'f',
          value: 'key=value',
        }),
        value('format', "Output: json, or a template such as '{{.Type}} {{.Action}} {{.Actor.Name}}'", { value: 'format' }),
      ],
      notes: ['Example: shoal events --since 30m --filter type=service --filter name=web'],
      run: async (i) => (await import('./events.ts')).eventsCmd(i),
    },
    {
      name: 'dashboard',
      summary: 'Serve a live web dashboard of the cluster on this machine (prints a one-time URL)',
      flags: [value('listen', 'Address to serve on (default 127.0.0.1:7373; port 0 picks a free one)', { value: 'host:port' })],
      notes: ["The dashboard uses this context's admin certificate; the printed link works once, in one browser."],
      run: async (i) => (await import('./dashboard/command.ts')).dashboardCmd(i),
    },
    // Declared apart, so that a starting daemon parses its flags without this tree (cli/daemon-command.ts).
    DAEMON_COMMAND,
    {
      name: 'lab',
      summary: 'A multi-host cluster on this machine, in network namespaces',
      subcommands: [
        {
          name: 'up',
          summary: 'Start a lab cluster (and a demo service)',
          flags: [
            LAB_NAME,
            value('managers', 'Number of managers, 1..7 (default 3)', { value: 'N' }),
            value('workers', 'Number of workers, 0..50 (default 2)', { value: 'N' }),
            bool('no-demo', 'Do not deploy the demo web service'),
            value('replicas', 'Replicas of the demo service, 1..500 (default 6)', { value: 'N' }),
            value('port', 'Published port of the demo service (default 8080)', { value: 'port' }),
          ],
          run: labRun('up'),
        },
        {
          name: 'down',
          summary: 'Stop a lab and remove everything it created',
          args: '[NAME]',
          flags: [LAB_NAME, bool('force', 'Kill without waiting for a clean stop')],
          run: labRun('down'),
        },
        { name: 'ls', aliases: ['list'], summary: "List labs on this machine, with each host's daemon", flags: [LAB_NAME], run: labRun('ls') },
        {
          name: 'restart',
          summary: "Restart a lab host's daemon and wait until it is back in the cluster",
          args: 'HOST',
          flags: [
            LAB_NAME,
            bool('force', 'Stop the daemon first if it still runs (SIGTERM by its recorded pid, SIGKILL after 5 s)'),
            value('wait', 'Seconds to wait for the node to rejoin, 0..600 (default 30)', { value: 'seconds' }),
          ],
          run: labRun('restart'),
        },
      ],
    },
    {
      name: 'system',
      summary: 'Run `shoal daemon` on this host under systemd',
      subcommands: [
        {
          name: 'install',
          summary: 'Install, verify and enable the systemd unit (idempotent)',
          args: '[-- DAEMON-FLAG...]',
          flags: [
            ...SYSTEM_UNIT_FLAGS,
            value('unit-dir', 'Where the unit goes (default /etc/systemd/system)', { value: 'dir' }),
            bool('start', 'Start it now (restart it if it runs an older unit; containers keep running)'),
            bool('no-enable', 'Only write and verify the unit'),
          ],
          notes: ['Flags after -- go to `shoal daemon`, e.g.:  shoal system install --start -- --insecure-registry 10.0.0.9:5000'],
          run: systemRun('install'),
        },
        { name: 'unit', summary: 'Print the unit that install would write', args: '[-- DAEMON-FLAG...]', flags: SYSTEM_UNIT_FLAGS, run: systemRun('unit') },
        {
          name: 'uninstall',
          summary: 'Disable and remove the unit (the daemon stops, containers keep running)',
          flags: [STATE_DIR, value('unit-dir', 'Where the unit is (default /etc/systemd/system)', { value: 'dir' })],
          run: systemRun('uninstall'),
        },
      ],
    },
    {
      name: 'completion',
      summary: 'Print a shell completion script',
      args: 'bash',
      notes: ['Load it with:  source <(shoal completion bash)'],
      run: async (i) => (await import('./completion.ts')).completionCmd(i),
    },
  ],
};
