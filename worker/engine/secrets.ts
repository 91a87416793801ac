// A task's secrets and configs as files in its container. For each task that references any, a tmpfs
// (memory, never disk) is mounted at <root>/<task id>, the files are written into it with the
// reference's uid, gid and mode, and each is bind-mounted read-only into the container: secrets at
// /run/secrets/<target>, configs at their target path. The tmpfs is created when the task starts and
// unmounted when it ends; on an agent restart, tmpfs of tasks the executor no longer knows are swept.
//
// <root> lies outside the daemon's state directory, under /run/shoal/<node id>/: /run is itself a tmpfs
// on every systemd host, nothing there survives a reboot, backups of the state directory never see it,
// and the node id keeps lab hosts that share one machine apart. See docs/design/secrets.md.
import { execFile } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, readdirSync, rmdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import type { TaskAssignment } from '../../api/task-status.ts';
import type { ShimMount } from './shim.ts';
import { targetPath } from '../../api/file-refs.ts';
import { isMountPoint } from './mounts.ts';

const run = promisify(execFile);

/** Where a task's file data comes from (worker/files.ts NodeFiles). */
export interface FileSource {
  get(kind: 'secret' | 'config', id: string): Buffer | undefined;
}

/** What the engine needs (EngineOptions.files). */
export interface TaskFiles {
  /** Mounts the task's tmpfs and returns the binds for the shim; [] when it references nothing. */
  prepare(task: TaskAssignment): Promise<ShimMount[]>;
  /** Unmounts the task's tmpfs (idempotent). */
  release(taskId: string): Promise<void>;
  /** Releases the tmpfs of every task not in `keep`. */
  sweep(keep: ReadonlySet<string>): Promise<void>;
}

/** A file a task needs that this node does not have (the dispatcher did not send it, or not yet). */
export class MissingFileError extends Error {
  readonly code = 'EMISSINGFILE';
  constructor(message: string) {
    super(message);
    this.name = 'MissingFileError';
  }
}

export class SecretMounts implements TaskFiles {
  constructor(
    /** e.g. /run/shoal/<node id>/files */
    readonly root: string,
    private readonly source: FileSource,
    private readonly log: (l: string) => void = () => {},
  ) {}

  dirOf(taskId: string): string {
    if (!/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(taskId)) throw new Error(`bad task id ${JSON.stringify(taskId)}`);
    return join(this.root, taskId);
  }

  async prepare(task: TaskAssignment): Promise<ShimMount[]> {
    const secrets = task.spec.secrets ?? [];
    const configs = task.spec.configs ?? [];
    if (secrets.length === 0 && configs.length === 0) return [];
    // Everything is looked up before anything is mounted: a missing one rejects the task cleanly.
    const files = [
      ...secrets.map((r, i) => ({
        file: `s${i}`,
        kind: 'secret' as const,
        id: r.secretId,
        name: r.secretName,
        t: r.target,
        path: targetPath('secret', r.target.name),
      })),
      ...configs.map((r, i) => ({
        file: `c${i}`,
        kind: 'config' as const,
        id: r.configId,
        name: r.configName,
        t: r.target,
        path: targetPath('config', r.target.name),
      })),
    ].map((f) => {
      const data = this.source.get(f.kind, f.id);
      if (!data) throw new MissingFileError(`${f.kind} ${f.name} (${f.id}) is not available on this node`);
      return { ...f, data };
    });
    const dir = this.dirOf(task.id);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    chmodSync(this.root, 0o700);
    if (!isMountPoint(dir)) {
      const bytes = files.reduce((n, f) => n + f.data.length + 4096, 64 * 1024);
      await run('mount', ['-t', 'tmpfs', '-o', `size=${bytes},mode=0700,nosuid,nodev,noexec`, 'shoal-files', dir]);
    }
    try {
      const out: ShimMount[] = [];
      for (const f of files) {
        const p = join(dir, f.file);
        writeFileSync(p, f.data, { mode: 0o600 });
        chownSync(p, Number(f.t.uid), Number(f.t.gid));
        chmodSync(p, f.t.mode);
        out.push({ type: 'bind', source: p, target: f.path, readOnly: true });
      }
      return out;
    } catch (e) {
      await this.release(task.id);
      throw e;
    }
  }

  async release(taskId: string): Promise<void> {
    const dir = this.dirOf(taskId);
    if (!existsSync(dir)) return;
    // Lazily: a container that still holds its binds keeps the memory until it exits, then it is freed.
    if (isMountPoint(dir)) await run('umount', ['-l', dir]).catch((e: Error) => this.log(`engine: task ${taskId}: unmounting its secrets: ${e.message}`));
    try {
      rmdirSync(dir);
    } catch (e) {
      this.log(`engine: task ${taskId}: removing ${dir}: ${(e as Error).message}`);
    }
    // The last one out removes the node's directories too, so a node without such tasks leaves nothing in /run.
    for (const d of [this.root, dirname(this.root)]) {
      try {
        rmdirSync(d);
      } catch {
        break; // not empty (another task's tmpfs), or already gone
      }
    }
  }

  async sweep(keep: ReadonlySet<string>): Promise<void> {
    if (!existsSync(this.root)) return;
    for (const id of readdirSync(this.root)) if (!keep.has(id)) await this.release(id);
  }
}
