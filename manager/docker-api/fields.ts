// Field paths in error messages as Docker users know them. The control API's validator names the
// offending field in Shoal's spec (`task.placement.constraints[0]`, `endpoint.ports[1].publishedPort`);
// someone who sent a Docker ServiceSpec looks for `TaskTemplate.Placement.Constraints[0]` and
// `EndpointSpec.Ports[1].PublishedPort`. `dockerFieldPath` walks Shoal's path through a table of
// the spec's shape (segments it does not know are kept as they are), `dockerSpecError` rewrites a
// SpecError's field and every mention of it in the message. Pure.
import { SpecError } from '../service/spec.ts';

/** A Shoal segment's Docker spelling (dotted when Docker nests deeper), and the table below it. */
type Node = string | readonly [string, Table];
interface Table {
  readonly [shoal: string]: Node;
}

const UPDATE: Table = {
  parallelism: 'Parallelism',
  delayMs: 'Delay',
  failureAction: 'FailureAction',
  monitorMs: 'Monitor',
  maxFailureRatio: 'MaxFailureRatio',
  order: 'Order',
};
const AMOUNTS: Table = { nanoCpus: 'NanoCPUs', memoryBytes: 'MemoryBytes', pids: 'Pids' };
const FILE_REF = (kind: 'Secret' | 'Config'): Table => ({
  [`${kind.toLowerCase()}Id`]: `${kind}ID`,
  [`${kind.toLowerCase()}Name`]: `${kind}Name`,
  target: ['File', { name: 'Name', uid: 'UID', gid: 'GID', mode: 'Mode' }],
});

const SPEC: Table = {
  name: 'Name',
  labels: 'Labels',
  mode: [
    'Mode',
    {
      replicated: ['Replicated', { replicas: 'Replicas' }],
      replicatedJob: ['ReplicatedJob', { maxConcurrent: 'MaxConcurrent', totalCompletions: 'TotalCompletions' }],
      global: 'Global',
      globalJob: 'GlobalJob',
    },
  ],
  task: [
    'TaskTemplate',
    {
      image: 'ContainerSpec.Image',
      command: 'ContainerSpec.Command',
      args: 'ContainerSpec.Args',
      env: 'ContainerSpec.Env',
      workdir: 'ContainerSpec.Dir',
      user: 'ContainerSpec.User',
      hostname: 'ContainerSpec.Hostname',
      labels: 'ContainerSpec.Labels',
      stopSignal: 'ContainerSpec.StopSignal',
      stopGracePeriodMs: 'ContainerSpec.StopGracePeriod',
      mounts: ['ContainerSpec.Mounts', { type: 'Type', source: 'Source', target: 'Target', readOnly: 'ReadOnly', tmpfsSizeBytes: 'TmpfsOptions.SizeBytes' }],
      healthcheck: [
        'ContainerSpec.Healthcheck',
        { test: 'Test', intervalMs: 'Interval', timeoutMs: 'Timeout', retries: 'Retries', startPeriodMs: 'StartPeriod' },
      ],
      secrets: ['ContainerSpec.Secrets', FILE_REF('Secret')],
      configs: ['ContainerSpec.Configs', FILE_REF('Config')],
      resources: ['Resources', { limits: ['Limits', AMOUNTS], reservations: ['Reservations', AMOUNTS] }],
      restartPolicy: ['RestartPolicy', { condition: 'Condition', delayMs: 'Delay', maxAttempts: 'MaxAttempts', windowMs: 'Window' }],
      placement: [
        'Placement',
        {
          constraints: 'Constraints',
          preferences: ['Preferences', { spread: 'Spread.SpreadDescriptor' }],
          maxReplicas: 'MaxReplicas',
          platforms: ['Platforms', { os: 'OS', arch: 'Architecture' }],
        },
      ],
      forceUpdate: 'ForceUpdate',
    },
  ],
  networks: ['TaskTemplate.Networks', { target: 'Target', aliases: 'Aliases' }],
  update: ['UpdateConfig', UPDATE],
  rollback: ['RollbackConfig', UPDATE],
  endpoint: [
    'EndpointSpec',
    {
      mode: 'Mode',
      ports: ['Ports', { name: 'Name', protocol: 'Protocol', targetPort: 'TargetPort', publishedPort: 'PublishedPort', publishMode: 'PublishMode' }],
    },
  ],
};

/** `task.placement.constraints[0]` → `TaskTemplate.Placement.Constraints[0]`; unknown segments kept. */
export function dockerFieldPath(path: string): string {
  const out: string[] = [];
  let table: Table | null = SPEC;
  for (const seg of path.split('.')) {
    const m = /^([^[]*)((?:\[\d+\])*)$/.exec(seg);
    const key = m?.[1] ?? seg;
    const index = m?.[2] ?? '';
    const node: Node | undefined = table && Object.hasOwn(table, key) ? table[key] : undefined;
    if (node === undefined) {
      out.push(seg);
      table = null;
    } else if (typeof node === 'string') {
      out.push(node + index);
      table = null;
    } else {
      out.push(node[0] + index);
      table = node[1];
    }
  }
  return out.join('.');
}

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** A SpecError with its field, and the field's mentions in the message, in Docker's names; other errors as they are. */
export function dockerSpecError(e: unknown): unknown {
  if (!(e instanceof SpecError) || e.field === '') return e;
  const field = dockerFieldPath(e.field);
  // A mention is the path itself or a longer path below it (`task.placement` in `task.placement.x`),
  // standing as a word: not inside a quoted value such as "bad!name".
  const re = new RegExp(`(^|[\\s(])(${escapeRe(e.field.split(/[.[]/)[0]!)}(?:\\.[A-Za-z]+|\\[\\d+\\])*)(?=[\\s:,;)]|$)`, 'g');
  const message = e.message.replace(
    re,
    (_all, pre: string, path: string) => pre + (path.startsWith(e.field) || e.field.startsWith(path) ? dockerFieldPath(path) : path),
  );
  return new SpecError(field, message);
}
