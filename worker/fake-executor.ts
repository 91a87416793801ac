// A test executor: runs no processes, walks tasks through the real state sequence with small delays,
// and fails, completes or rejects them on request through the image name, so orchestration can be tested
// at scale (hundreds of simulated agents in one process) and failure paths exercised deterministically:
//   image "fail[:ms]"      → running, then failed with exit code 1 after ms (default 50)
//   image "exit0[:ms]"     → running, then complete (exit code 0) after ms
//   image "reject"         → rejected at once ("image reject not found")
//   image "slow[:ms]"      → takes ms to start
// anything else           → runs until asked to stop.
import { isTerminalTaskState, taskStateRank, type TaskState } from '../api/objects.ts';
import type { Executor } from './executor.ts';
import { statusUpdate, type TaskAssignment, type TaskStatusUpdate } from '../api/task-status.ts';

interface Running {
  a: TaskAssignment;
  state: TaskState;
  timers: NodeJS.Timeout[];
  exitCode?: number;
  err?: string;
  message: string;
}

export class FakeExecutor implements Executor {
  private tasks = new Map<string, Running>();
  private cb: (u: TaskStatusUpdate) => void = () => {};
  private closed = false;

  constructor(private readonly stepMs = 5) {}

  onStatus(cb: (u: TaskStatusUpdate) => void): void {
    this.cb = cb;
  }

  reconcile(tasks: readonly TaskAssignment[]): void {
    if (this.closed) return;
    const wanted = new Set<string>();
    for (const a of tasks) {
      wanted.add(a.id);
      const r = this.tasks.get(a.id);
      const stop = taskStateRank(a.desiredState) >= taskStateRank('shutdown');
      if (!r) {
        if (isTerminalTaskState(a.state)) continue; // already finished before we knew it
        if (stop) {
          // Never started here: it is simply shut down.
          this.add(a, 'shutdown', 'shut down before it started');
          continue;
        }
        this.start(a);
      } else if (stop && !isTerminalTaskState(r.state)) {
        this.stop(r);
      }
    }
    for (const [id, r] of this.tasks) {
      if (!wanted.has(id)) {
        for (const t of r.timers) clearTimeout(t);
        this.tasks.delete(id);
      }
    }
  }

  snapshot(): TaskStatusUpdate[] {
    return [...this.tasks.values()].map((r) => this.update(r));
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const r of this.tasks.values()) for (const t of r.timers) clearTimeout(t);
    this.tasks.clear();
  }

  private add(a: TaskAssignment, state: TaskState, message: string): Running {
    const r: Running = { a, state, timers: [], message };
    this.tasks.set(a.id, r);
    this.emit(r);
    return r;
  }

  private start(a: TaskAssignment): void {
    const [kind, arg] = a.spec.image.split(':');
    if (kind === 'reject') {
      const r: Running = { a, state: 'rejected', timers: [], message: 'task rejected', err: `image ${a.spec.image} not found` };
      this.tasks.set(a.id, r);
      this.emit(r);
      return;
    }
    const r = this.add(a, 'accepted', 'accepted');
    const startDelay = kind === 'slow' ? Number(arg ?? 500) : this.stepMs;
    const later = (ms: number, fn: () => void) => r.timers.push(setTimeout(() => !this.closed && this.tasks.get(a.id) === r && fn(), ms));
    later(this.stepMs, () => this.set(r, 'preparing', 'preparing'));
    later(this.stepMs + startDelay, () => this.set(r, 'starting', 'starting'));
    later(2 * this.stepMs + startDelay, () => {
      this.set(r, 'running', 'started');
      if (kind === 'fail' || kind === 'exit0') {
        const ms = Number(arg ?? 50);
        later(ms, () => {
          if (kind === 'fail') {
            r.exitCode = 1;
            r.err = 'task: non-zero exit (1)';
            this.set(r, 'failed', 'failed');
          } else {
            r.exitCode = 0;
            this.set(r, 'complete', 'finished');
          }
        });
      }
    });
  }

  private stop(r: Running): void {
    for (const t of r.timers) clearTimeout(t);
    r.timers = [];
    const grace = Math.min(r.a.spec.stopGracePeriodMs ?? 0, 20);
    r.timers.push(
      setTimeout(() => {
        if (this.tasks.get(r.a.id) !== r || isTerminalTaskState(r.state)) return;
        r.exitCode = 0;
        this.set(r, 'shutdown', 'shutdown');
      }, grace),
    );
  }

  private set(r: Running, state: TaskState, message: string): void {
    if (isTerminalTaskState(r.state)) return;
    r.state = state;
    r.message = message;
    this.emit(r);
  }

  private update(r: Running): TaskStatusUpdate {
    return statusUpdate(r.a.id, r);
  }

  private emit(r: Running): void {
    this.cb(this.update(r));
  }
}
