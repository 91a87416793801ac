// Docker's ServiceSpec ↔ Shoal's, and Shoal's services and tasks as Docker's Service and Task JSON.
// Shoal's model is swarmkit's, so most fields map one to one (durations ns ↔ ms, PascalCase ↔
// camelCase). Fields Shoal does not implement are never dropped silently: `toShoalSpec` names each
// one that was set in `warnings`, which the create/update answer carries (the CLI prints them).
// Pure: no store, no clock.
import type { Frozen, Mount, PortConfig, Service, ServiceSpec, Task, TaskTemplate, UpdateConfig } from '../../api/objects.ts';
import type { ServiceSpecInput } from '../service/spec.ts';
import { badRequest } from '../api/http.ts';
import { compact, dockerTime, msToNs, nsToMs } from './wire.ts';

type J = Record<string, unknown>;

const obj = (v: unknown): J => (typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as J) : {});
const arr = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);
const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);
const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);
const strs = (v: unknown): string[] | undefined => (Array.isArray(v) ? v.map(String) : undefined);

/** Is a field "set" (so dropping it must be reported)? Empty lists, maps, false, 0 and "" are not. */
function isSet(v: unknown): boolean {
  if (v === undefined || v === null || v === false || v === 0 || v === '') return false;
  if (Array.isArray(v)) return v.length > 0;
  if (typeof v === 'object') return Object.values(v as J).some(isSet);
  return true;
}

/** ContainerSpec fields Shoal has no equivalent for (reported when set). */
const UNSUPPORTED_CONTAINER = [
  'Groups',
  'Privileges',
  'Init',
  'Hosts',
  'DNSConfig',
  'TTY',
  'OpenStdin',
  'ReadOnly',
  'Sysctls',
  'CapabilityAdd',
  'CapabilityDrop',
  'Ulimits',
  'OomScoreAdj',
];

function restartCondition(c: unknown): 'none' | 'on-failure' | 'any' | undefined {
  if (c === 'none' || c === 'on-failure' || c === 'any') return c;
  if (c === undefined || c === '') return undefined;
  throw badRequest(`TaskTemplate.RestartPolicy.Condition must be none, on-failure or any (got ${JSON.stringify(c)})`);
}

function mountIn(m: J, i: number, warn: (w: string) => void): Partial<Mount> {
  const type = str(m.Type) ?? 'volume';
  if (isSet(m.VolumeOptions)) warn(`ContainerSpec.Mounts[${i}].VolumeOptions is not supported by Shoal and was ignored`);
  if (isSet(m.BindOptions)) warn(`ContainerSpec.Mounts[${i}].BindOptions is not supported by Shoal and was ignored`);
  if (isSet(obj(m.TmpfsOptions).Mode)) warn(`ContainerSpec.Mounts[${i}].TmpfsOptions.Mode is not supported by Shoal and was ignored`);
  return compact({
    type: type as Mount['type'],
    source: str(m.Source),
    target: typeof m.Target === 'string' ? m.Target : '',
    readOnly: m.ReadOnly === true ? true : undefined,
    tmpfsSizeBytes: num(obj(m.TmpfsOptions).SizeBytes),
  });
}

function fileRefIn(kind: 'secret' | 'config', r: J): J {
  const f = obj(r.File);
  const target = { name: str(f.Name) ?? '', uid: str(f.UID) ?? '0', gid: str(f.GID) ?? '0', mode: num(f.Mode) ?? 0o444 };
  return kind === 'secret'
    ? { secretId: str(r.SecretID) ?? '', secretName: str(r.SecretName) ?? '', target }
    : { configId: str(r.ConfigID) ?? '', configName: str(r.ConfigName) ?? '', target };
}

function updateIn(u: unknown): Partial<UpdateConfig> | undefined {
  if (u === undefined || u === null) return undefined;
  const o = obj(u);
  const fa = str(o.FailureAction);
  return compact({
    parallelism: num(o.Parallelism) ?? 0,
    delayMs: nsToMs(o.Delay),
    failureAction: fa as UpdateConfig['failureAction'] | undefined,
    monitorMs: nsToMs(o.Monitor) || undefined,
    maxFailureRatio: num(o.MaxFailureRatio),
    order: str(o.Order) as UpdateConfig['order'] | undefined,
  });
}

function modeIn(m: unknown): ServiceSpec['mode'] {
  const o = obj(m);
  if ('Global' in o) return { global: {} };
  if ('GlobalJob' in o) return { globalJob: {} };
  if ('ReplicatedJob' in o) {
    const j = obj(o.ReplicatedJob);
    const maxConcurrent = num(j.MaxConcurrent) ?? 1;
    return { replicatedJob: { maxConcurrent, totalCompletions: num(j.TotalCompletions) ?? maxConcurrent } };
  }
  // `Mode: {"Replicated": {}}` (stack deploy) and no mode at all both mean one replica.
  return { replicated: { replicas: num(obj(o.Replicated).Replicas) ?? 1 } };
}

/**
 * A Docker ServiceSpec as the control API's spec input, and the fields that were set but cannot be
 * honoured. The control API validates the result (unknown values are its 400s).
 */
export function toShoalSpec(raw: unknown): { spec: ServiceSpecInput; warnings: string[] } {
  const warnings: string[] = [];
  const warn = (w: string) => warnings.push(w);
  const s = obj(raw);
  const tt = obj(s.TaskTemplate);
  const cs = obj(tt.ContainerSpec);
  if (isSet(tt.PluginSpec) || isSet(tt.NetworkAttachmentSpec)) throw badRequest('TaskTemplate: only ContainerSpec tasks are supported');
  for (const k of UNSUPPORTED_CONTAINER) if (isSet(cs[k])) warn(`ContainerSpec.${k} is not supported by Shoal and was ignored`);
  if (isSet(cs.Isolation) && cs.Isolation !== 'default') warn('ContainerSpec.Isolation is not supported by Shoal and was ignored');
  if (isSet(tt.LogDriver)) warn('TaskTemplate.LogDriver is not supported by Shoal (tasks log to their node) and was ignored');
  if (isSet(obj(tt.Resources).Reservations) && isSet(obj(obj(tt.Resources).Reservations).GenericResources))
    warn('Resources.Reservations.GenericResources is not supported by Shoal and was ignored');
  const hc = cs.Healthcheck === undefined ? undefined : obj(cs.Healthcheck);
  const res = obj(tt.Resources);
  const amounts = (a: unknown) => {
    const o = obj(a);
    const out = compact({ nanoCpus: num(o.NanoCPUs) || undefined, memoryBytes: num(o.MemoryBytes) || undefined, pids: num(o.Pids) || undefined });
    return Object.keys(out).length ? out : undefined;
  };
  const rp = tt.RestartPolicy === undefined ? undefined : obj(tt.RestartPolicy);
  const pl = obj(tt.Placement);
  const task: J = compact({
    image: typeof cs.Image === 'string' ? cs.Image : '',
    command: strs(cs.Command),
    args: strs(cs.Args),
    env: strs(cs.Env),
    workdir: str(cs.Dir),
    user: str(cs.User),
    hostname: str(cs.Hostname),
    labels: isSet(cs.Labels) ? (cs.Labels as Record<string, string>) : undefined,
    mounts: arr(cs.Mounts).length ? arr(cs.Mounts).map((m, i) => mountIn(obj(m), i, warn)) : undefined,
    resources: amounts(res.Limits) || amounts(res.Reservations) ? compact({ limits: amounts(res.Limits), reservations: amounts(res.Reservations) }) : undefined,
    restartPolicy: rp
      ? compact({ condition: restartCondition(rp.Condition), delayMs: nsToMs(rp.Delay), maxAttempts: num(rp.MaxAttempts), windowMs: nsToMs(rp.Window) })
      : undefined,
    placement:
      isSet(pl.Constraints) || isSet(pl.Preferences) || isSet(pl.MaxReplicas) || isSet(pl.Platforms)
        ? compact({
            constraints: strs(pl.Constraints),
            preferences: arr(pl.Preferences).length
              ? arr(pl.Preferences).map((p) => ({ spread: String(obj(obj(p).Spread).SpreadDescriptor ?? '') }))
              : undefined,
            maxReplicas: num(pl.MaxReplicas) || undefined,
            // The CLI adds the platforms /distribution answered; the scheduler honours them.
            platforms: arr(pl.Platforms).length
              ? arr(pl.Platforms).map((p) => {
                  const o = obj(p);
                  return compact({
                    os: o.OS === undefined ? undefined : (o.OS as string),
                    arch: o.Architecture === undefined ? undefined : (o.Architecture as string),
                  });
                })
              : undefined,
          })
        : undefined,
    healthcheck: hc
      ? compact({
          test: strs(hc.Test) ?? [],
          intervalMs: nsToMs(hc.Interval) || undefined,
          timeoutMs: nsToMs(hc.Timeout) || undefined,
          retries: num(hc.Retries) || undefined,
          startPeriodMs: nsToMs(hc.StartPeriod) || undefined,
        })
      : undefined,
    stopSignal: str(cs.StopSignal),
    stopGracePeriodMs: nsToMs(cs.StopGracePeriod),
    forceUpdate: num(tt.ForceUpdate) || undefined,
    secrets: arr(cs.Secrets).length ? arr(cs.Secrets).map((r) => fileRefIn('secret', obj(r))) : undefined,
    configs: arr(cs.Configs).length ? arr(cs.Configs).map((r) => fileRefIn('config', obj(r))) : undefined,
  });
  // Networks: the task template's, or the deprecated spec-level list older clients send.
  const nets = arr(tt.Networks).length ? arr(tt.Networks) : arr(s.Networks);
  const ep = obj(s.EndpointSpec);
  const spec: J = compact({
    name: typeof s.Name === 'string' ? s.Name : '',
    labels: (isSet(s.Labels) ? s.Labels : {}) as Record<string, string>,
    mode: modeIn(s.Mode),
    task,
    update: updateIn(s.UpdateConfig),
    rollback: updateIn(s.RollbackConfig),
    networks: nets.map((n) => compact({ target: String(obj(n).Target ?? ''), aliases: arr(obj(n).Aliases).length ? strs(obj(n).Aliases) : undefined })),
    endpoint: compact({
      mode: str(ep.Mode) as 'vip' | 'dnsrr' | undefined,
      ports: arr(ep.Ports).map((p) => {
        const o = obj(p);
        return compact({
          name: str(o.Name),
          protocol: (str(o.Protocol) ?? 'tcp') as PortConfig['protocol'],
          targetPort: num(o.TargetPort) ?? 0,
          publishedPort: num(o.PublishedPort) || undefined,
          publishMode: (str(o.PublishMode) ?? 'ingress') as PortConfig['publishMode'],
        });
      }),
    }),
  });
  return { spec: spec as ServiceSpecInput, warnings };
}

// ------------------------------------------------------------------------------------ Shoal → Docker

type F<T> = Frozen<T> | T;

function updateOut(u: F<UpdateConfig> | undefined): J | undefined {
  if (!u) return undefined;
  return {
    Parallelism: u.parallelism,
    Delay: msToNs(u.delayMs),
    FailureAction: u.failureAction,
    Monitor: msToNs(u.monitorMs),
    MaxFailureRatio: u.maxFailureRatio,
    Order: u.order,
  };
}

function portsOut(ports: readonly F<PortConfig>[] | undefined): J[] {
  return (ports ?? []).map((p) =>
    compact({ Name: p.name, Protocol: p.protocol, TargetPort: p.targetPort, PublishedPort: p.publishedPort, PublishMode: p.publishMode }),
  );
}

/** The task template as Docker's TaskTemplate. */
export function taskTemplateOut(t: F<TaskTemplate>, networks: readonly { target: string; aliases?: readonly string[] | undefined }[] = []): J {
  const amounts = (a: F<NonNullable<TaskTemplate['resources']>>['limits']) =>
    a ? compact({ NanoCPUs: a.nanoCpus, MemoryBytes: a.memoryBytes, Pids: a.pids }) : undefined;
  const container = compact({
    Image: t.image,
    Labels: t.labels && Object.keys(t.labels).length ? t.labels : undefined,
    Command: t.command?.length ? t.command : undefined,
    Args: t.args?.length ? t.args : undefined,
    Hostname: t.hostname,
    Env: t.env?.length ? t.env : undefined,
    Dir: t.workdir,
    User: t.user,
    Mounts: t.mounts?.length
      ? t.mounts.map((m) =>
          compact({
            Type: m.type,
            Source: m.source,
            Target: m.target,
            ReadOnly: m.readOnly,
            TmpfsOptions: (m as { tmpfsSizeBytes?: number }).tmpfsSizeBytes ? { SizeBytes: (m as { tmpfsSizeBytes?: number }).tmpfsSizeBytes } : undefined,
          }),
        )
      : undefined,
    StopSignal: t.stopSignal,
    StopGracePeriod: msToNs(t.stopGracePeriodMs),
    Healthcheck: t.healthcheck
      ? compact({
          Test: t.healthcheck.test,
          Interval: msToNs(t.healthcheck.intervalMs),
          Timeout: msToNs(t.healthcheck.timeoutMs),
          Retries: t.healthcheck.retries,
          StartPeriod: msToNs(t.healthcheck.startPeriodMs),
        })
      : undefined,
    Secrets: t.secrets?.length
      ? t.secrets.map((r) => ({
          File: { Name: r.target.name, UID: r.target.uid, GID: r.target.gid, Mode: r.target.mode },
          SecretID: r.secretId,
          SecretName: r.secretName,
        }))
      : undefined,
    Configs: t.configs?.length
      ? t.configs.map((r) => ({
          File: { Name: r.target.name, UID: r.target.uid, GID: r.target.gid, Mode: r.target.mode },
          ConfigID: r.configId,
          ConfigName: r.configName,
        }))
      : undefined,
    Isolation: 'default',
  });
  const rp = t.restartPolicy;
  const pl = t.placement;
  return compact({
    ContainerSpec: container,
    Resources: { Limits: amounts(t.resources?.limits) ?? {}, Reservations: amounts(t.resources?.reservations) ?? {} },
    RestartPolicy: rp
      ? compact({ Condition: rp.condition, Delay: msToNs(rp.delayMs), MaxAttempts: rp.maxAttempts ?? 0, Window: msToNs(rp.windowMs) })
      : undefined,
    Placement: pl
      ? compact({
          Constraints: pl.constraints?.length ? pl.constraints : undefined,
          Preferences: pl.preferences?.map((p) => ({ Spread: { SpreadDescriptor: p.spread } })),
          MaxReplicas: pl.maxReplicas,
          Platforms: pl.platforms?.length ? pl.platforms.map((p) => compact({ Architecture: p.arch, OS: p.os })) : undefined,
        })
      : {},
    Networks: networks.length ? networks.map((n) => compact({ Target: n.target, Aliases: n.aliases?.length ? n.aliases : undefined })) : undefined,
    ForceUpdate: t.forceUpdate ?? 0,
    Runtime: 'container',
  });
}

function modeOut(m: F<ServiceSpec['mode']>): J {
  if ('replicated' in m) return { Replicated: { Replicas: m.replicated.replicas } };
  if ('global' in m) return { Global: {} };
  if ('replicatedJob' in m) return { ReplicatedJob: { MaxConcurrent: m.replicatedJob.maxConcurrent, TotalCompletions: m.replicatedJob.totalCompletions } };
  return { GlobalJob: {} };
}

/** A Shoal spec as Docker's ServiceSpec. */
export function specOut(s: F<ServiceSpec>, networkId: (target: string) => string = (t) => t): J {
  return compact({
    Name: s.name,
    Labels: s.labels ?? {},
    TaskTemplate: taskTemplateOut(
      s.task,
      s.networks.map((n) => ({ ...n, target: networkId(n.target) })),
    ),
    Mode: modeOut(s.mode),
    UpdateConfig: updateOut(s.update),
    RollbackConfig: updateOut(s.rollback),
    EndpointSpec: { Mode: s.endpoint.mode ?? 'vip', ...(s.endpoint.ports.length ? { Ports: portsOut(s.endpoint.ports) } : {}) },
  });
}

export interface ServiceCounts {
  running: number;
  desired: number;
  completed: number;
}

/** A Shoal service as Docker's Service (ServiceStatus only when counts are given: `status=true`). */
export function serviceOut(s: F<Service>, counts: ServiceCounts | null, networkId?: (target: string) => string): J {
  const ep = s.status.endpoint;
  const spec = specOut(s.spec, networkId);
  return compact({
    ID: s.id,
    Version: { Index: s.version },
    CreatedAt: dockerTime(s.createdAt),
    UpdatedAt: dockerTime(s.updatedAt),
    Spec: spec,
    PreviousSpec: s.previousSpec ? specOut(s.previousSpec, networkId) : undefined,
    Endpoint: {
      Spec: spec.EndpointSpec,
      ...(ep?.ports.length ? { Ports: portsOut(ep.ports) } : {}),
      ...(ep?.virtualIps.length ? { VirtualIPs: ep.virtualIps.map((v) => ({ NetworkID: v.networkId, Addr: v.addr })) } : {}),
    },
    UpdateStatus: s.updateStatus
      ? compact({ State: s.updateStatus.state, StartedAt: s.updateStatus.startedAt, CompletedAt: s.updateStatus.completedAt, Message: s.updateStatus.message })
      : undefined,
    ServiceStatus: counts ? { RunningTasks: counts.running, DesiredTasks: counts.desired, CompletedTasks: counts.completed } : undefined,
    JobStatus:
      'replicatedJob' in s.spec.mode || 'globalJob' in s.spec.mode
        ? { JobIteration: { Index: s.status.jobIteration ?? 0 }, LastExecution: dockerTime(s.createdAt) }
        : undefined,
  });
}

/** A Shoal task as Docker's Task. */
export function taskOut(t: F<Task>): J {
  const st = t.status;
  return compact({
    ID: t.id,
    Version: { Index: t.version },
    CreatedAt: dockerTime(t.createdAt),
    UpdatedAt: dockerTime(t.updatedAt),
    Labels: {},
    Spec: taskTemplateOut(t.spec),
    ServiceID: t.serviceId,
    Slot: t.slot,
    NodeID: t.nodeId,
    Status: compact({
      Timestamp: dockerTime(st.timestamp),
      State: st.state,
      Message: st.message,
      Err: st.err,
      ContainerStatus: st.containerId || st.exitCode !== undefined ? compact({ ContainerID: st.containerId, ExitCode: st.exitCode ?? 0 }) : undefined,
      PortStatus: {},
    }),
    DesiredState: t.desiredState,
    NetworksAttachments: t.networks.length ? t.networks.map((n) => ({ Network: { ID: n.networkId }, Addresses: n.addresses })) : undefined,
  });
}
