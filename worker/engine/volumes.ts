// Named volumes of one node: plain directories at <root>/volumes/<name>/_data that tasks bind-mount.
// A volume is created the first time a task uses it and outlives its tasks until removed (`rm`,
// `prune`). An anonymous volume (a volume mount without a source) belongs to one task and is deleted
// with it. Which task uses which volume is known only in memory: the executor registers every task it
// starts or re-adopts after an agent restart, and releases it when the task is forgotten.
import { existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';

const NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

export interface VolumeInfo {
  name: string;
  /** the directory tasks mount */
  path: string;
  /** ids of the tasks using it, sorted */
  users: string[];
  anonymous: boolean;
}

export class VolumeStore {
  readonly dir: string;
  /** volume name → ids of tasks using it */
  private readonly users = new Map<string, Set<string>>();
  /** anonymous volume name → the task it belongs to */
  private readonly anonymous = new Map<string, string>();

  /** Volumes live in `<root>/volumes`. */
  constructor(root: string) {
    this.dir = join(root, 'volumes');
  }

  static validName(name: string): boolean {
    return NAME_RE.test(name);
  }

  /** The name of a task's anonymous volume for its `index`-th mount (stable, so a restarted agent finds it again). */
  static anonymousName(taskId: string, index: number): string {
    return `anon-${taskId}-${index}`;
  }

  /** The directory a volume's users mount. */
  dataPath(name: string): string {
    this.check(name);
    return join(this.dir, name, '_data');
  }

  /**
   * Registers `taskId` as a user of the volume, creating the volume on first use, and returns the
   * directory to mount. An anonymous volume is deleted when its task is released.
   */
  acquire(name: string, taskId: string, opts: { anonymous?: boolean } = {}): string {
    const path = this.dataPath(name);
    mkdirSync(path, { recursive: true });
    let set = this.users.get(name);
    if (!set) this.users.set(name, (set = new Set()));
    set.add(taskId);
    if (opts.anonymous) this.anonymous.set(name, taskId);
    return path;
  }

  /** The task is gone: it no longer uses any volume, and its anonymous volumes are deleted. */
  release(taskId: string): void {
    for (const [name, set] of this.users) {
      set.delete(taskId);
      if (set.size === 0) this.users.delete(name);
    }
    for (const [name, owner] of this.anonymous) {
      if (owner !== taskId || this.users.has(name)) continue;
      this.anonymous.delete(name);
      rmSync(join(this.dir, name), { recursive: true, force: true });
    }
  }

  list(): VolumeInfo[] {
    const names = existsSync(this.dir)
      ? readdirSync(this.dir)
          .filter((n) => VolumeStore.validName(n))
          .sort()
      : [];
    return names.map((name) => ({
      name,
      path: join(this.dir, name, '_data'),
      users: [...(this.users.get(name) ?? [])].sort(),
      anonymous: this.anonymous.has(name),
    }));
  }

  /** Deletes a volume and its data. Refuses while a task uses it. */
  rm(name: string): void {
    this.check(name);
    const set = this.users.get(name);
    if (set && set.size > 0) throw new Error(`volume ${name} is in use by task ${[...set].sort().join(', ')}`);
    if (!existsSync(join(this.dir, name))) throw new Error(`no such volume: ${name}`);
    this.anonymous.delete(name);
    rmSync(join(this.dir, name), { recursive: true, force: true });
  }

  /** Deletes every volume no task uses; returns their names. */
  prune(): string[] {
    const removed: string[] = [];
    for (const v of this.list()) {
      if (v.users.length > 0) continue;
      this.rm(v.name);
      removed.push(v.name);
    }
    return removed;
  }

  private check(name: string): void {
    if (!VolumeStore.validName(name)) throw new Error(`invalid volume name ${JSON.stringify(name)}: [a-zA-Z0-9][a-zA-Z0-9_.-]*`);
  }
}
