// The real executor: every task is a container run by Shoal's own engine — an overlayfs root made of the
// image's layers, the task's cgroups, and a `shoal-shim` monitor that outlives the agent. It converges on
// the assignments the dispatcher sends and reports each state change, forward only.
//
//   accepted → preparing (image resolved, rootfs mounted) → starting (cgroups, shim) → running
//   → complete (exit 0) | failed (non-zero exit, OOM) | shutdown (stopped) | rejected (cannot run here)
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { TaskState } from '../../manager/store/objects.ts';
import type { Executor, TaskAssignment, TaskStatusUpdate } from '../executor.ts';
import { TaskCgroup } from './cgroups.ts';
import { isAlive, readState, startContainer, stopContainer, type ShimState } from './shim.ts';

/** What the engine needs from the node's image store. */
export interface ResolvedImage {
  /** Lower directories for overlayfs, top layer first. */
  layers: string[];
  config: { Env?: string[]; Cmd?: string[]; Entrypoint?: string[]; WorkingDir?: string; User?: string };
}

export interface ImageResolver {
  resolve(ref: string): ResolvedImage | undefined;
  mountRootfs(layers: string[], upper: string, work: string, target: string): Promise<void>;
  unmountRootfs(target: string): Promise<void>;
}

export interface EngineOptions {
  /** Where task directories live (rootfs, upper/work dirs, shim state, logs). */
  root: string;
  images: ImageResolver;
  /** Parent cgroup of this node's tasks (e.g. `shoal` or `shoal-h3` in a lab host). */
  cgroupParent: string;
  pollMs?: number;
  log?: (line: string) => void;
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
  busy: boolean;
  cleaning?: Promise<void>;
}

const terminal = (s: TaskState) => ['complete', 'shutdown', 'failed', 'rejected', 'remove', 'orphaned'].includes(s);

export class EngineExecutor implements Executor {
  private tasks = new Map<string, Live>();
  private cb: (u: TaskStatusUpdate) => void = () => {};
  private timer: NodeJS.Timeout;
  private readonly log: (l: string) => void;

  constructor(private readonly o: EngineOptions) {
    this.log = o.log ?? (() => {});
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
    // Containers keep running: the shim outlives the agent; the next agent re-adopts them.
    clearInterval(this.timer);
  }

  reconcile(tasks: readonly TaskAssignment[]): void {
    const wanted = new Set<string>();
    for (const a of tasks) {
      wanted.add(a.id);
      let l = this.tasks.get(a.id);
      const stop = ['shutdown', 'remove', 'orphaned'].includes(a.desiredState);
      if (!l) {
        l = { a, state: 'accepted', message: 'accepted', dir: join(this.o.root, a.id), cg: null, mounted: false, busy: false };
        this.tasks.set(a.id, l);
        if (this.adopt(l)) continue;
        if (terminal(a.state)) continue;
        if (stop) {
          this.set(l, 'shutdown', 'shut down before it started');
          continue;
        }
        this.emit(l);
        void this.start(l);
      } else {
        l.a = a;
        if (stop && !terminal(l.state) && !l.busy) void this.stop(l);
      }
    }
    for (const [id, l] of this.tasks) {
      if (!wanted.has(id) && !l.busy) {
        this.tasks.delete(id);
        void this.cleanup(l, true);
      }
    }
  }

  /** A container from a previous agent still running (or finished) in its task directory. */
  private adopt(l: Live): boolean {
    const st = existsSync(l.dir) ? readState(l.dir) : null;
    if (!st) return false;
    l.mounted = true;
    if (st.status === 'running' && isAlive(l.dir)) {
      l.state = 'running';
      l.message = 'running (re-adopted after an agent restart)';
      this.log(`engine: re-adopted running task ${l.a.id}`);
    } else {
      this.finish(l, st);
    }
    this.emit(l);
    return true;
  }

  private async start(l: Live): Promise<void> {
    l.busy = true;
    const spec = l.a.spec;
    try {
      this.set(l, 'preparing', 'preparing');
      const img = this.o.images.resolve(spec.image);
      if (!img) throw Object.assign(new Error(`image ${spec.image} is not present on this node (load it with \`shoal image load\`)`), { reject: true });
      const rootfs = join(l.dir, 'rootfs');
      for (const d of ['rootfs', 'upper', 'work']) mkdirSync(join(l.dir, d), { recursive: true });
      await this.o.images.mountRootfs(img.layers, join(l.dir, 'upper'), join(l.dir, 'work'), rootfs);
      l.mounted = true;
      this.set(l, 'starting', 'starting');
      const lim = spec.resources?.limits ?? {};
      const res = spec.resources?.reservations ?? {};
      l.cg = await TaskCgroup.create({
        parent: this.o.cgroupParent,
        id: l.a.id,
        limits: {
          ...(lim.memoryBytes ? { memoryBytes: lim.memoryBytes } : {}),
          ...(res.memoryBytes ? { memoryReservationBytes: res.memoryBytes } : {}),
          ...(lim.nanoCpus ? { nanoCpus: lim.nanoCpus } : {}),
          ...(lim.pids ? { pids: lim.pids } : {}),
        },
      } as Parameters<typeof TaskCgroup.create>[0]);
      const entry = spec.command ?? img.config.Entrypoint ?? [];
      const cmd = spec.args ?? (spec.command ? [] : (img.config.Cmd ?? []));
      const args = [...entry, ...cmd];
      if (args.length === 0) throw Object.assign(new Error(`image ${spec.image} has no command and none was given`), { reject: true });
      const env: Record<string, string> = {};
      for (const kv of [...(img.config.Env ?? []), ...(spec.env ?? [])]) {
        const i = kv.indexOf('=');
        if (i > 0) env[kv.slice(0, i)] = kv.slice(i + 1);
      }
      const user = resolveUser(rootfs, spec.user ?? img.config.User);
      const st = await startContainer({
        stateDir: l.dir,
        rootfs,
        args,
        env,
        cgroups: l.cg.paths(),
        ...(spec.hostname ? { hostname: spec.hostname } : {}),
        ...(spec.workdir ?? img.config.WorkingDir ? { workdir: spec.workdir ?? img.config.WorkingDir } : {}),
        ...(user ? { user } : {}),
        ...(spec.stopGracePeriodMs !== undefined ? { stopGraceMs: spec.stopGracePeriodMs } : {}),
        ...(spec.stopSignal ? { stopSignal: spec.stopSignal } : {}),
      });
      if (st.state.status === 'failed') this.finish(l, st.state);
      else {
        // A short-lived command may already have exited: it did run, so report running first.
        this.set(l, 'running', 'started');
        if (st.state.status === 'exited') this.finish(l, st.state);
      }
    } catch (e) {
      const err = e as Error & { reject?: boolean };
      l.err = err.message;
      this.set(l, err.reject ? 'rejected' : 'failed', err.reject ? 'task rejected' : 'starting failed');
      await this.cleanup(l, false);
    } finally {
      l.busy = false;
    }
    // A stop may have been requested while starting.
    if (['shutdown', 'remove'].includes(l.a.desiredState) && !terminal(l.state)) void this.stop(l);
  }

  private async stop(l: Live): Promise<void> {
    l.busy = true;
    try {
      const st = await stopContainer(l.dir, l.a.spec.stopGracePeriodMs ?? 10_000);
      l.exitCode = st.exitCode ?? undefined;
      this.set(l, 'shutdown', 'shutdown');
      await this.cleanup(l, false);
    } catch (e) {
      l.err = (e as Error).message;
      this.set(l, 'failed', 'stopping failed');
    } finally {
      l.busy = false;
    }
  }

  private poll(): void {
    for (const l of this.tasks.values()) {
      if (l.state !== 'running' || l.busy) continue;
      const st = readState(l.dir);
      if (st && (st.status === 'exited' || st.status === 'failed')) {
        this.finish(l, st);
        void this.cleanup(l, false);
      } else if (!st || !isAlive(l.dir)) {
        l.err = 'the container monitor (shoal-shim) disappeared';
        this.set(l, 'failed', 'monitor lost');
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
   * Unmounts the rootfs and removes cgroups; with `forget` also the task directory (logs included).
   * Cleanups of one task run one after another (a finished task can be forgotten while its first
   * cleanup is still unmounting), and never throw.
   */
  private cleanup(l: Live, forget: boolean): Promise<void> {
    l.cleaning = (l.cleaning ?? Promise.resolve())
      .then(() => this.doCleanup(l, forget))
      .catch((e) => this.log(`engine: task ${l.a.id}: cleanup: ${(e as Error).message}`));
    return l.cleaning;
  }

  private async doCleanup(l: Live, forget: boolean): Promise<void> {
    try {
      if (l.cg) await l.cg.destroy();
      l.cg = null;
    } catch (e) {
      this.log(`engine: task ${l.a.id}: cgroup cleanup: ${(e as Error).message}`);
    }
    if (l.mounted) {
      await this.o.images.unmountRootfs(join(l.dir, 'rootfs')).catch((e) => this.log(`engine: task ${l.a.id}: unmount: ${(e as Error).message}`));
      l.mounted = false;
    }
    if (forget) {
      try {
        rmSync(l.dir, { recursive: true, force: true });
      } catch (e) {
        this.log(`engine: task ${l.a.id}: removing ${l.dir}: ${(e as Error).message}`);
      }
    }
  }

  private set(l: Live, state: TaskState, message: string): void {
    if (terminal(l.state)) return;
    l.state = state;
    l.message = message;
    this.emit(l);
  }

  private update(l: Live): TaskStatusUpdate {
    return {
      taskId: l.a.id,
      state: l.state,
      message: l.message,
      ...(l.err !== undefined ? { err: l.err } : {}),
      ...(l.exitCode !== undefined ? { exitCode: l.exitCode } : {}),
      timestamp: new Date().toISOString(),
    };
  }

  private emit(l: Live): void {
    this.cb(this.update(l));
  }

  /** Task directories present on disk (for start-up re-adoption and cleanup). */
  listTaskDirs(): string[] {
    return existsSync(this.o.root) ? readdirSync(this.o.root) : [];
  }
}

/** "uid[:gid]" or a user name from the image's /etc/passwd. */
export function resolveUser(rootfs: string, user: string | undefined): { uid: number; gid: number } | undefined {
  if (!user) return undefined;
  const [u, g] = user.split(':');
  const lookup = (file: string, name: string): string[] | undefined => {
    try {
      return readFileSync(join(rootfs, 'etc', file), 'utf8')
        .split('\n')
        .map((l) => l.split(':'))
        .find((f) => f[0] === name);
    } catch {
      return undefined;
    }
  };
  let uid: number;
  let gid: number;
  if (/^\d+$/.test(u!)) {
    uid = Number(u);
    gid = uid;
  } else {
    const pw = lookup('passwd', u!);
    if (!pw) throw Object.assign(new Error(`user ${u} not found in the image's /etc/passwd`), { reject: true });
    uid = Number(pw[2]);
    gid = Number(pw[3]);
  }
  if (g !== undefined) {
    if (/^\d+$/.test(g)) gid = Number(g);
    else {
      const gr = lookup('group', g);
      if (!gr) throw Object.assign(new Error(`group ${g} not found in the image's /etc/group`), { reject: true });
      gid = Number(gr[2]);
    }
  }
  return { uid, gid };
}
