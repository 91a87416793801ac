// The real executor: every task is a container run by Shoal's own engine — an overlayfs root made of the
// image's layers, the task's mounts, network and cgroups, and a `shoal-shim` monitor that outlives the
// agent. It converges on the assignments the dispatcher sends and reports each state change, forward only.
//
//   accepted → preparing (image resolved, mounts checked, rootfs mounted, network attached)
//   → starting (cgroups, shim; with a healthcheck: until the first successful probe) → running
//   → complete (exit 0) | failed (non-zero exit, OOM, unhealthy) | shutdown (stopped) | rejected (cannot run here)
import { existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import type { StartOptions } from './shim.ts';
import { hostname } from 'node:os';
import { dirname, join } from 'node:path';
import { taskStateRank, type TaskState, type TaskTemplate } from '../../api/objects.ts';
import type { Executor } from '../executor.ts';
import { statusUpdate, type TaskAssignment, type TaskStatusUpdate } from '../../api/task-status.ts';
import { TaskCgroup } from './cgroups.ts';
import { HealthState, healthConfig, mergeHealthcheck, type HealthConfig, type HealthReport, type ImageHealthcheck } from './health.ts';
import { readLogs, type LogEntry, type ReadLogsOptions } from './logs.ts';
import { isMountPoint, planMounts, sortByDepth, volumeUses } from './mounts.ts';
import { execInContainer, isAlive, killShim, readState, startContainer, stopContainer, type ExecResult, type ShimMount, type ShimState } from './shim.ts';
import { VolumeStore } from './volumes.ts';
import { UserLookupError, resolveUser } from './user.ts';
import { effectiveCapabilities, isNetSysctl } from '../../api/confinement.ts';
import { compileSeccompProfile } from '../../api/seccomp-profile.ts';
import type { TaskFiles } from './secrets.ts';

/** What the engine needs from the node's image store. */
export interface ResolvedImage {
  /** Lower directories for overlayfs, top layer first. */
  layers: string[];
  config: { Env?: string[]; Cmd?: string[]; Entrypoint?: string[]; WorkingDir?: string; User?: string; Healthcheck?: ImageHealthcheck };
}

export interface ImageResolver {
  resolve(ref: string): ResolvedImage | undefined;
  mountRootfs(layers: string[], upper: string, work: string, target: string): Promise<void>;
  unmountRootfs(target: string): Promise<void>;
}

/** How a task's container is connected, as decided by the node's network plugin. */
export interface NetworkSetup {
  /** an existing network namespace (e.g. /run/netns/<name>) the container joins */
  netnsPath?: string;
  /** the host's network namespace (excludes netnsPath) */
  host?: boolean;
  /** contents for the container's /etc/resolv.conf (bind-mounted read-only) */
  resolvConf?: string;
  /** contents for the container's /etc/hosts (bind-mounted read-only) */
  hosts?: string;
}

/**
 * The node's network plugin. attach() runs while the task is preparing, before its container exists;
 * detach() once the container is gone and its resources are cleaned up — for every task attach() was
 * called for, even when it failed (so partial work can be undone), and also after an agent restart for
 * tasks a previous agent attached. detach() may therefore see a task it already detached (an agent that
 * died between the two) and must tolerate that.
 */
export interface NetworkHook {
  attach(task: TaskAssignment): Promise<NetworkSetup>;
  detach(taskId: string): Promise<void>;
}

export interface EngineOptions {
  /** Where task directories live (rootfs, upper/work dirs, shim state, logs). */
  root: string;
  images: ImageResolver;
  /** Parent cgroup of this node's tasks (e.g. `shoal` or `shoal-h3` in a lab host). */
  cgroupParent: string;
  /** Without it every container gets a fresh network namespace with only loopback. */
  network?: NetworkHook;
  /** This node's name in error messages (default: os.hostname()). */
  nodeName?: string;
  /** Named volumes (default: a store beside the task directories, `<root>/../volumes`). */
  volumes?: VolumeStore;
  /** Secrets and configs as files on a tmpfs (secrets.ts); without it, tasks referencing any are rejected. */
  files?: TaskFiles;
  pollMs?: number;
  log?: (line: string) => void;
  /** The shoal-shim binary (default: native/build/shoal-shim); the engine benchmark compares two. */
  shimPath?: string;
  /** Spawn the shim from one sealed copy per daemon (default true); false: it seals itself per start. */
  sealShimOnce?: boolean;
  /** Observer (metrics): a task start's duration, prepare to the process running (ok) or to the failure. */
  onStart?: (seconds: number, ok: boolean) => void;
}

export interface EngineExecOptions {
  env?: Record<string, string>;
  workdir?: string;
  /** a user name or uid, optionally `:group`, resolved against the image's /etc/passwd and /etc/group */
  user?: string;
  timeoutMs?: number;
  input?: string | Buffer;
}

export type TaskUsage = { cpuNanos: number; memoryBytes: number };

interface HealthRun {
  state: HealthState;
  timer?: NodeJS.Timeout;
  stopped: boolean;
}

interface Live {
  a: TaskAssignment;
  state: TaskState;
  message: string;
  err?: string;
  exitCode?: number;
  dir: string;
  cg: TaskCgroup | null;
  mounted: boolean;
  /** a shim was started for this task (by this agent or, re-adopted, by a previous one) */
  shim: boolean;
  /** starting or stopping: reconcile leaves the task alone, and idle() catches up afterwards */
  busy: boolean;
  /** the managers stopped listing the task while it was busy */
  forgetWhenIdle?: boolean;
  cleaning?: Promise<void>;
  health?: HealthRun;
}

const terminal = (s: TaskState) => ['complete', 'shutdown', 'failed', 'rejected', 'remove', 'orphaned'].includes(s);
/** The reason a task cannot run on this node: it ends as 'rejected' rather than 'failed'. */
const rejection = (message: string) => Object.assign(new Error(message), { reject: true });
const WAITING_FOR_HEALTH = 'container is starting, waiting for healthcheck';
/** In a task directory while its network is attached (the hook's detach() has not succeeded yet). */
const NET_MARKER = 'network-attached';

export class EngineExecutor implements Executor {
  private tasks = new Map<string, Live>();
  private cb: (u: TaskStatusUpdate) => void = () => {};
  private timer: NodeJS.Timeout;
  private readonly log: (l: string) => void;
  private readonly nodeName: string;
  readonly volumes: VolumeStore;

  constructor(private readonly o: EngineOptions) {
    this.log = o.log ?? (() => {});
    this.nodeName = o.nodeName ?? hostname();
    this.volumes = o.volumes ?? new VolumeStore(dirname(o.root));
    mkdirSync(o.root, { recursive: true });
    this.timer = setInterval(() => this.poll(), o.pollMs ?? 200);
  }

  onStatus(cb: (u: TaskStatusUpdate) => void): void {
    this.cb = cb;
  }

  snapshot(): TaskStatusUpdate[] {
    return [...this.tasks.values()].map((l) => this.update(l));
  }

  async close(): Promise<void> {
    // Containers keep running: the shim outlives the agent; the next agent re-adopts them (and their
    // healthchecks).
    clearInterval(this.timer);
    for (const l of this.tasks.values()) this.stopHealth(l);
  }

  reconcile(tasks: readonly TaskAssignment[]): void {
    const wanted = new Set<string>();
    for (const a of tasks) {
      wanted.add(a.id);
      let l = this.tasks.get(a.id);
      const stop = ['shutdown', 'remove', 'orphaned'].includes(a.desiredState);
      if (!l) {
        l = { a, state: 'accepted', message: 'accepted', dir: join(this.o.root, a.id), cg: null, mounted: false, shim: false, busy: false };
        this.tasks.set(a.id, l);
        if (this.adopt(l)) {
          // A container that ran on while this node was away may no longer be wanted (its tasks were
          // rescheduled elsewhere while the node was Down): stop it now.
          if (stop && !terminal(l.state) && !l.busy) void this.stop(l);
          continue;
        }
        if (terminal(a.state)) continue;
        if (stop) {
          this.set(l, 'shutdown', 'shut down before it started');
          continue;
        }
        this.emit(l);
        void this.start(l);
      } else {
        l.a = a;
        l.forgetWhenIdle = false;
        if (stop && !terminal(l.state) && !l.busy) void this.stop(l);
      }
    }
    for (const [id, l] of this.tasks) {
      if (wanted.has(id)) continue;
      if (l.busy) l.forgetWhenIdle = true;
      else this.forget(l);
    }
    // Secret tmpfs of tasks this executor does not know (left by a previous agent) go now.
    void this.o.files?.sweep(new Set(this.tasks.keys())).catch((e) => this.log(`engine: sweeping secret mounts: ${(e as Error).message}`));
  }

  /** The task is no longer assigned here: stop whatever still runs and remove all its traces. */
  private forget(l: Live): void {
    this.tasks.delete(l.a.id);
    this.stopHealth(l);
    void this.cleanup(l, true);
  }

  /** Ends a busy phase; forgets the task if that was asked meanwhile (then returns false). */
  private idle(l: Live): boolean {
    l.busy = false;
    if (!l.forgetWhenIdle) return true;
    this.forget(l);
    return false;
  }

  /**
   * Runs a command in the task's container (see execInContainer). Rejects when the task's container
   * is not running on this node.
   */
  async exec(taskId: string, args: string[], opts: EngineExecOptions = {}): Promise<ExecResult> {
    const l = this.tasks.get(taskId);
    if (!l || terminal(l.state) || !l.shim || readState(l.dir)?.status !== 'running' || !isAlive(l.dir)) {
      throw new Error(`task ${taskId} is not running on this node`);
    }
    const user = resolveUser(join(l.dir, 'rootfs'), opts.user); // throws UserLookupError with the reason
    return execInContainer(l.dir, args, {
      ...(opts.env ? { env: opts.env } : {}),
      ...(opts.workdir !== undefined ? { workdir: opts.workdir } : {}),
      ...(user ? { user } : {}),
      ...(opts.timeoutMs !== undefined ? { timeoutMs: opts.timeoutMs } : {}),
      ...(opts.input !== undefined ? { input: opts.input } : {}),
      ...(this.o.shimPath !== undefined ? { shimPath: this.o.shimPath } : {}),
      ...(this.o.sealShimOnce === false ? { sealOnce: false } : {}),
    });
  }

  /** The task's health (status, failing streak, last probes); undefined when it has no healthcheck. */
  health(taskId: string): HealthReport | undefined {
    return this.known(taskId).health?.state.report();
  }

  /**
   * The task's log (see readLogs), also after its container exited, as long as the task is known here.
   * `follow` ends once the container has exited and everything it wrote was read.
   */
  logs(taskId: string, opts: Omit<ReadLogsOptions, 'done'> = {}): AsyncGenerator<LogEntry> {
    const l = this.known(taskId);
    // terminal states are set only after the shim recorded the exit, which it does after closing the log
    return readLogs(join(l.dir, 'container.log'), { ...opts, done: () => terminal(l.state) });
  }

  /** CPU time used and memory in use by each task whose container is up, from its cgroups. */
  usage(): Record<string, TaskUsage> {
    const out: Record<string, TaskUsage> = {};
    for (const [id, l] of this.tasks) {
      if (!l.cg || !l.shim || terminal(l.state)) continue;
      try {
        out[id] = l.cg.cpuMemory();
      } catch (e) {
        this.log(`engine: task ${id}: reading usage: ${(e as Error).message}`);
      }
    }
    return out;
  }

  private known(taskId: string): Live {
    const l = this.tasks.get(taskId);
    if (!l) throw new Error(`task ${taskId} is not known on this node`);
    return l;
  }

  /** A container from a previous agent still running (or finished) in its task directory. */
  private adopt(l: Live): boolean {
    const st = existsSync(l.dir) ? readState(l.dir) : null;
    if (!st) return false;
    const id = l.a.id;
    l.mounted = isMountPoint(join(l.dir, 'rootfs'));
    try {
      l.cg = TaskCgroup.open({ parent: this.o.cgroupParent, id });
    } catch (e) {
      this.log(`engine: task ${id}: cgroups: ${(e as Error).message}`);
    }
    for (const v of volumeUses(id, l.a.spec.mounts)) {
      try {
        this.volumes.acquire(v.name, id, { anonymous: v.anonymous });
      } catch (e) {
        this.log(`engine: task ${id}: volume ${v.name}: ${(e as Error).message}`);
      }
    }
    if (st.status === 'running' && isAlive(l.dir)) {
      l.shim = true;
      let health: HealthConfig | null = null;
      try {
        health = this.healthOf(l.a.spec);
      } catch (e) {
        this.log(`engine: task ${id}: healthcheck: ${(e as Error).message}`);
      }
      // Only a task the managers never saw running still waits for its first healthy probe.
      const sawRunning = taskStateRank(l.a.state) >= taskStateRank('running');
      l.state = health && !sawRunning ? 'starting' : 'running';
      l.message = health && !sawRunning ? WAITING_FOR_HEALTH : 'running (re-adopted after an agent restart)';
      this.log(`engine: re-adopted running task ${id}`);
      this.emit(l);
      if (health) this.startHealth(l, health, Date.parse(st.startedAt ?? '') || Date.now());
    } else {
      this.finish(l, st);
      void this.cleanup(l, false);
    }
    return true;
  }

  /** The task's healthcheck (its own fields, the rest from the image), or null. Throws when malformed. */
  private healthOf(spec: TaskTemplate): HealthConfig | null {
    return healthConfig(mergeHealthcheck(spec.healthcheck, this.o.images.resolve(spec.image)?.config.Healthcheck));
  }

  private async start(l: Live): Promise<void> {
    l.busy = true;
    const spec = l.a.spec;
    let health: HealthConfig | null = null;
    let startedAtMs = 0;
    /** the task's cgroups while being made; once made, l.cg (which the cleanup removes) */
    let cgroup: Promise<TaskCgroup> | undefined;
    const t0 = performance.now();
    try {
      this.set(l, 'preparing', 'preparing');
      const img = this.o.images.resolve(spec.image);
      if (!img) throw rejection(`image ${spec.image} is not present on this node (load it with \`shoal image load\`)`);
      const entry = spec.command ?? img.config.Entrypoint ?? [];
      const cmd = spec.args ?? (spec.command ? [] : (img.config.Cmd ?? []));
      const args = [...entry, ...cmd];
      if (args.length === 0) throw rejection(`image ${spec.image} has no command and none was given`);
      try {
        health = healthConfig(mergeHealthcheck(spec.healthcheck, img.config.Healthcheck));
      } catch (e) {
        throw rejection((e as Error).message);
      }
      let mounts: ShimMount[];
      try {
        mounts = planMounts(l.a.id, spec.mounts, { volumes: this.volumes, nodeName: this.nodeName });
      } catch (e) {
        throw rejection((e as Error).message);
      }
      // The task's cgroups (a directory in every hierarchy, the device allowlist: a few ms of file
      // operations) depend on nothing prepared below, so they are made meanwhile. A failure surfaces at
      // the await after 'starting', as when they were made there; when preparing fails first, they are
      // removed once made (see the catch below).
      const lim = spec.resources?.limits ?? {};
      const res = spec.resources?.reservations ?? {};
      cgroup = TaskCgroup.create({
        parent: this.o.cgroupParent,
        id: l.a.id,
        limits: {
          ...(lim.memoryBytes ? { memoryBytes: lim.memoryBytes } : {}),
          ...(res.memoryBytes ? { memoryReservationBytes: res.memoryBytes } : {}),
          ...(lim.nanoCpus ? { nanoCpus: lim.nanoCpus } : {}),
          ...(lim.pids ? { pids: lim.pids } : {}),
        },
      });
      cgroup.catch(() => {}); // awaited below
      let fileMounts: ShimMount[] = [];
      if ((spec.secrets?.length ?? 0) + (spec.configs?.length ?? 0) > 0) {
        if (!this.o.files) throw rejection('this node cannot mount secrets or configs');
        try {
          fileMounts = await this.o.files.prepare(l.a);
        } catch (e) {
          throw rejection((e as Error).message);
        }
      }
      const rootfs = join(l.dir, 'rootfs');
      for (const d of ['rootfs', 'upper', 'work']) mkdirSync(join(l.dir, d), { recursive: true });
      await this.o.images.mountRootfs(img.layers, join(l.dir, 'upper'), join(l.dir, 'work'), rootfs);
      l.mounted = true;
      let user: { uid: number; gid: number } | undefined;
      try {
        user = resolveUser(rootfs, spec.user ?? img.config.User);
      } catch (e) {
        throw e instanceof UserLookupError ? rejection(e.message) : e;
      }
      const net = await this.attachNetwork(l, new Set([...mounts, ...fileMounts].map((m) => m.target)));

      this.set(l, 'starting', 'starting');
      const cg = (l.cg = await cgroup);
      cgroup = undefined;
      const env: Record<string, string> = {};
      for (const kv of [...(img.config.Env ?? []), ...(spec.env ?? [])]) {
        const i = kv.indexOf('=');
        if (i > 0) env[kv.slice(0, i)] = kv.slice(i + 1);
      }
      const st = await startContainer({
        ...this.confinement(l, spec, net.host === true),
        ...(this.o.shimPath !== undefined ? { shimPath: this.o.shimPath } : {}),
        ...(this.o.sealShimOnce === false ? { sealOnce: false } : {}),
        stateDir: l.dir,
        rootfs,
        args,
        env,
        cgroups: cg.paths(),
        mounts: sortByDepth([...mounts, ...fileMounts, ...net.mounts]),
        ...(net.netnsPath !== undefined ? { netnsPath: net.netnsPath } : {}),
        ...(net.host ? { hostNetwork: true } : {}),
        // Docker's default: the container's short id; with host networking, the host's name.
        ...(spec.hostname ? { hostname: spec.hostname } : net.host ? {} : { hostname: l.a.id.slice(0, 12) }),
        ...((spec.workdir ?? img.config.WorkingDir) ? { workdir: spec.workdir ?? img.config.WorkingDir } : {}),
        ...(user ? { user } : {}),
        ...(spec.stopGracePeriodMs !== undefined ? { stopGraceMs: spec.stopGracePeriodMs } : {}),
        ...(spec.stopSignal ? { stopSignal: spec.stopSignal } : {}),
      });
      l.shim = true;
      this.o.onStart?.((performance.now() - t0) / 1000, true);
      startedAtMs = Date.parse(st.state.startedAt ?? '') || Date.now();
      if (st.state.status === 'running') {
        this.set(l, health ? 'starting' : 'running', health ? WAITING_FOR_HEALTH : 'started');
      } else {
        // A short-lived command may already have exited: it did run, so report running first.
        if (st.state.status === 'exited' && !health) this.set(l, 'running', 'started');
        this.finish(l, st.state);
        await this.cleanup(l, false);
      }
    } catch (e) {
      const err = e as Error & { reject?: boolean };
      l.err = err.message;
      this.o.onStart?.((performance.now() - t0) / 1000, false);
      this.set(l, err.reject ? 'rejected' : 'failed', err.reject ? 'task rejected' : 'starting failed');
      await this.cleanup(l, false);
      if (cgroup) {
        // Preparing failed before the cgroups were awaited: the cleanup did not see them.
        const made = await cgroup.catch(() => null);
        await made?.destroy().catch((e2: Error) => this.log(`engine: task ${l.a.id}: removing its cgroups: ${e2.message}`));
      }
    }
    if (!this.idle(l)) return;
    // A stop may have been requested while starting.
    if (['shutdown', 'remove'].includes(l.a.desiredState) && !terminal(l.state)) void this.stop(l);
    else if (health && l.state === 'starting') this.startHealth(l, health, startedAtMs);
  }

  /**
   * The shim options for the task's --cap-add/--cap-drop, --read-only, --sysctl, --ulimit, --init and
   * --security-opt seccomp, and the v2 device program. Values were validated by the managers; what only
   * this node can judge (net.* sysctls with the host's network) is a rejection.
   */
  private confinement(l: Live, spec: TaskTemplate, hostNetwork: boolean): Partial<StartOptions> {
    const o: Partial<StartOptions> = {};
    if (spec.capabilityAdd || spec.capabilityDrop) o.caps = effectiveCapabilities(spec.capabilityAdd, spec.capabilityDrop);
    if (spec.readOnly) o.readOnly = true;
    if (spec.init) o.init = true;
    if (spec.sysctls) {
      const net = Object.keys(spec.sysctls).filter(isNetSysctl);
      if (hostNetwork && net.length) throw rejection(`sysctl ${net[0]} cannot be set for a task on the host's network (it would change the host)`);
      o.sysctls = spec.sysctls;
    }
    if (spec.ulimits) o.ulimits = Object.fromEntries(spec.ulimits.map((u) => [u.name, { soft: u.soft, hard: u.hard }]));
    if (spec.seccomp?.mode === 'unconfined') o.seccomp = false;
    else if (spec.seccomp?.mode === 'custom') {
      let compiled: string;
      try {
        compiled = compileSeccompProfile(spec.seccomp.profile);
      } catch (e) {
        throw rejection((e as Error).message);
      }
      const file = join(l.dir, 'seccomp-profile');
      writeFileSync(file, compiled, { mode: 0o600 });
      o.seccompProfilePath = file;
    }
    const bpf = l.cg?.deviceBpfDir();
    if (bpf !== undefined) o.devicesBpfDir = bpf;
    return o;
  }

  /**
   * Calls the network hook; its resolv.conf / hosts contents become files in the task directory that
   * are bind-mounted read-only over the container's (unless the task mounts something there itself).
   */
  private async attachNetwork(l: Live, userTargets: Set<string>): Promise<{ netnsPath?: string; host?: boolean; mounts: ShimMount[] }> {
    const hook = this.o.network;
    if (!hook) return { mounts: [] };
    // Marked before attach(): an agent that dies during attach() still has detach() called later.
    writeFileSync(join(l.dir, NET_MARKER), '');
    let setup: NetworkSetup;
    try {
      setup = await hook.attach(l.a);
    } catch (e) {
      throw rejection((e as Error).message);
    }
    if (setup.host && setup.netnsPath !== undefined) throw rejection('network: the plugin asked for both the host network and a namespace');
    const mounts: ShimMount[] = [];
    for (const [file, target, content] of [
      ['resolv.conf', '/etc/resolv.conf', setup.resolvConf],
      ['hosts', '/etc/hosts', setup.hosts],
    ] as const) {
      if (content === undefined || userTargets.has(target)) continue;
      writeFileSync(join(l.dir, file), content);
      mounts.push({ type: 'bind', source: join(l.dir, file), target, readOnly: true });
    }
    return { ...(setup.netnsPath !== undefined ? { netnsPath: setup.netnsPath } : {}), ...(setup.host ? { host: true } : {}), mounts };
  }

  /**
   * Probes the container one probe at a time (the next is scheduled only when the previous finished)
   * until the task ends; the decisions come from HealthState.
   */
  private startHealth(l: Live, cfg: HealthConfig, containerStartMs: number): void {
    const run: HealthRun = { state: new HealthState(cfg, containerStartMs), stopped: false };
    l.health = run;
    const schedule = () => {
      if (run.stopped) return;
      run.timer = setTimeout(() => void probe(), Math.max(0, run.state.nextProbeAt() - Date.now()));
    };
    const probe = async () => {
      const startMs = Date.now();
      let r: ExecResult;
      try {
        // Docker keeps 4 KiB of a probe's output: never hold more than a little over that
        r = await execInContainer(l.dir, cfg.command, {
          timeoutMs: cfg.timeoutMs,
          maxOutputBytes: 64 * 1024,
          ...(this.o.shimPath !== undefined ? { shimPath: this.o.shimPath } : {}),
          ...(this.o.sealShimOnce === false ? { sealOnce: false } : {}),
        });
      } catch (e) {
        r = { exitCode: 125, stdout: Buffer.alloc(0), stderr: Buffer.from((e as Error).message), timedOut: false };
      }
      if (run.stopped) return;
      const output = Buffer.concat([r.stdout, r.stderr]).toString('utf8');
      const decision = run.state.record({ startMs, endMs: Date.now(), exitCode: r.exitCode, output, timedOut: r.timedOut });
      if (decision === 'unhealthy') return void this.failUnhealthy(l);
      if (decision === 'healthy' && l.state === 'starting') this.set(l, 'running', 'started');
      schedule();
    };
    schedule();
  }

  private stopHealth(l: Live): void {
    if (!l.health) return;
    l.health.stopped = true;
    clearTimeout(l.health.timer);
  }

  /** Swarm's reaction to an unhealthy container: stop it and fail the task. */
  private async failUnhealthy(l: Live): Promise<void> {
    this.stopHealth(l);
    if (l.busy || terminal(l.state)) return; // already being stopped, or ended meanwhile
    l.busy = true;
    const last = l.health?.state.report().log.at(-1)?.output.trim() ?? '';
    try {
      const st = await stopContainer(l.dir, l.a.spec.stopGracePeriodMs ?? 10_000);
      l.exitCode = st.exitCode ?? undefined;
    } catch (e) {
      this.log(`engine: task ${l.a.id}: stopping unhealthy container: ${(e as Error).message}`);
    }
    l.err = last ? `unhealthy container: ${last}` : 'unhealthy container';
    this.set(l, 'failed', 'unhealthy');
    await this.cleanup(l, false);
    this.idle(l);
  }

  private async stop(l: Live): Promise<void> {
    l.busy = true;
    this.stopHealth(l);
    try {
      const st = await stopContainer(l.dir, l.a.spec.stopGracePeriodMs ?? 10_000);
      l.exitCode = st.exitCode ?? undefined;
      this.set(l, 'shutdown', 'shutdown');
      await this.cleanup(l, false);
    } catch (e) {
      l.err = (e as Error).message;
      this.set(l, 'failed', 'stopping failed');
    }
    this.idle(l);
  }

  private poll(): void {
    for (const l of this.tasks.values()) {
      if (!l.shim || l.busy || terminal(l.state)) continue;
      const st = readState(l.dir);
      if (st && (st.status === 'exited' || st.status === 'failed')) {
        this.finish(l, st);
        void this.cleanup(l, false);
      } else if (!st || !isAlive(l.dir)) {
        l.err = 'the container monitor (shoal-shim) disappeared';
        this.set(l, 'failed', 'monitor lost');
        void this.cleanup(l, false);
      }
    }
  }

  private finish(l: Live, st: ShimState): void {
    l.exitCode = st.exitCode ?? undefined;
    if (st.oomKilled) {
      l.err = 'OOMKilled: the task exceeded its memory limit';
      this.set(l, 'failed', 'OOMKilled');
    } else if (st.status === 'failed') {
      l.err = st.error ?? 'the container could not be started';
      this.set(l, 'failed', 'failed');
    } else if (st.exitCode === 0) {
      this.set(l, 'complete', 'finished');
    } else {
      l.err = st.signal ? `task: killed by signal ${st.signal}` : `task: non-zero exit (${st.exitCode})`;
      this.set(l, 'failed', 'failed');
    }
  }

  /**
   * Removes cgroups, unmounts the rootfs and detaches the network; with `forget` also kills a container
   * still running, releases the task's volumes (deleting its anonymous ones) and removes the task
   * directory (logs included). Cleanups of one task run one after another (a finished task can be
   * forgotten while its first cleanup is still unmounting), and never throw.
   */
  private cleanup(l: Live, forget: boolean): Promise<void> {
    l.cleaning = (l.cleaning ?? Promise.resolve())
      .then(() => this.doCleanup(l, forget))
      .catch((e) => this.log(`engine: task ${l.a.id}: cleanup: ${(e as Error).message}`));
    return l.cleaning;
  }

  private async doCleanup(l: Live, forget: boolean): Promise<void> {
    const id = l.a.id;
    if (forget) killShim(l.dir); // the container dies with its shim (PDEATHSIG)
    try {
      if (l.cg) await l.cg.destroy();
      l.cg = null;
    } catch (e) {
      this.log(`engine: task ${id}: cgroup cleanup: ${(e as Error).message}`);
    }
    if (l.mounted) {
      await this.o.images.unmountRootfs(join(l.dir, 'rootfs')).catch((e) => this.log(`engine: task ${id}: unmount: ${(e as Error).message}`));
      l.mounted = false;
    }
    if (this.o.network && existsSync(join(l.dir, NET_MARKER))) {
      try {
        await this.o.network.detach(id);
        rmSync(join(l.dir, NET_MARKER), { force: true });
      } catch (e) {
        this.log(`engine: task ${id}: network detach: ${(e as Error).message}`); // retried by the next cleanup
      }
    }
    // The container is gone: its secrets and configs go with it.
    await this.o.files?.release(id).catch((e: Error) => this.log(`engine: task ${id}: secrets: ${e.message}`));
    if (forget) {
      this.volumes.release(id);
      try {
        rmSync(l.dir, { recursive: true, force: true });
      } catch (e) {
        this.log(`engine: task ${id}: removing ${l.dir}: ${(e as Error).message}`);
      }
    }
  }

  private set(l: Live, state: TaskState, message: string): void {
    if (terminal(l.state)) return;
    l.state = state;
    l.message = message;
    if (terminal(state)) this.stopHealth(l);
    this.emit(l);
  }

  private update(l: Live): TaskStatusUpdate {
    return statusUpdate(l.a.id, l);
  }

  private emit(l: Live): void {
    this.cb(this.update(l));
  }

  /** Task directories present on disk (for start-up re-adoption and cleanup). */
  listTaskDirs(): string[] {
    return existsSync(this.o.root) ? readdirSync(this.o.root) : [];
  }
}
