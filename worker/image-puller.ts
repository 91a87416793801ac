// Holds a new task back from the executor until its (pinned) image is on this node, fetching it from the
// managers meanwhile; the executor itself never waits on the network. A task the executor has already
// seen is always passed on (even if its image disappeared), so fetching can never make the executor
// forget — and stop — a running container.
import type { Executor } from './executor.ts';
import { statusUpdate, type TaskAssignment, type TaskStatusUpdate } from '../api/task-status.ts';

export interface ImageSource {
  has(ref: string): boolean;
  ensure(ref: string): Promise<void>;
}

const TERMINAL = new Set(['complete', 'shutdown', 'failed', 'rejected', 'remove', 'orphaned']);

export class PullingExecutor implements Executor {
  private cb: (u: TaskStatusUpdate) => void = () => {};
  private last: readonly TaskAssignment[] = [];
  /** Tasks handed to the inner executor at least once. */
  private passed = new Set<string>();
  /** Tasks waiting for their image: their last reported status. */
  private waiting = new Map<string, TaskStatusUpdate>();
  private failed = new Map<string, TaskStatusUpdate>();
  private closed = false;

  constructor(
    private readonly inner: Executor,
    private readonly images: ImageSource,
  ) {
    inner.onStatus((u) => this.cb(u));
  }

  onStatus(cb: (u: TaskStatusUpdate) => void): void {
    this.cb = cb;
  }

  reconcile(tasks: readonly TaskAssignment[]): void {
    this.last = tasks;
    const forward: TaskAssignment[] = [];
    const listed = new Set<string>();
    for (const a of tasks) {
      listed.add(a.id);
      if (this.passed.has(a.id) || TERMINAL.has(a.state) || (a.desiredState !== 'running' && a.desiredState !== 'complete') || this.images.has(a.spec.image)) {
        this.passed.add(a.id);
        this.waiting.delete(a.id);
        forward.push(a);
        continue;
      }
      if (this.failed.has(a.id) || this.waiting.has(a.id)) continue;
      this.report(a.id, 'preparing', `fetching image ${a.spec.image}`);
      this.images.ensure(a.spec.image).then(
        () => {
          if (this.closed) return;
          this.waiting.delete(a.id);
          this.reconcile(this.last);
        },
        (e: Error) => {
          if (this.closed || !this.waiting.has(a.id)) return;
          this.waiting.delete(a.id);
          const u = this.update(a.id, 'rejected', 'image unavailable', e.message);
          this.failed.set(a.id, u);
          this.cb(u);
        },
      );
    }
    for (const id of [...this.waiting.keys()]) if (!listed.has(id)) this.waiting.delete(id);
    for (const id of [...this.failed.keys()]) if (!listed.has(id)) this.failed.delete(id);
    for (const id of [...this.passed]) if (!listed.has(id)) this.passed.delete(id);
    this.inner.reconcile(forward);
  }

  private update(taskId: string, state: TaskStatusUpdate['state'], message: string, err?: string): TaskStatusUpdate {
    return statusUpdate(taskId, { state, message, err });
  }

  private report(taskId: string, state: TaskStatusUpdate['state'], message: string): void {
    const u = this.update(taskId, state, message);
    this.waiting.set(taskId, u);
    this.cb(u);
  }

  /** Images of the tasks assigned here that have not ended: never garbage-collected. */
  imagesInUse(): Set<string> {
    return new Set(this.last.filter((a) => !TERMINAL.has(a.state) || a.desiredState === 'running').map((a) => a.spec.image));
  }

  snapshot(): TaskStatusUpdate[] {
    return [...this.inner.snapshot(), ...this.waiting.values(), ...this.failed.values()];
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.inner.close();
  }
}
