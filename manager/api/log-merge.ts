// The leader's side of a logs request: the chunks of several tasks (from one or many nodes) become one
// ordered stream for the client, without the leader holding whole logs.
//
// Each task's chunks queue in arrival order (a node sends them in the task's own order). The next
// chunk written is:
//   * while a task has a line open (its last written chunk was `partial`): that task's next chunk only,
//     so a line's pieces are contiguous in the output and a client can write them as they come. If the
//     task ends with a line open, a `cut` closes it (the node went away mid-line).
//   * 'sorted' (non-follow): the head with the earliest timestamp among all tasks, once every task that
//     has not ended has a head (a merge of per-task ordered streams: the same order as sorting
//     everything, with one head per task in memory instead of everything).
//   * 'arrival' (follow): the chunk that arrived first. A line left open longer than `maxOpenLineMs`
//     while other tasks have chunks waiting is cut ('stalled': a program printed part of a line and
//     went quiet), so one task cannot hold up everyone's follow; its rest comes later as a new line.
// Memory is bounded by the caller: a node may have only LOG_WINDOW_BYTES of a task outstanding, and the
// leader acknowledges a chunk only once it is written to the client. Pure: no clock, no socket.
import type { LogLine } from '../../api/dispatcher.ts';

export type MergeOut =
  | { kind: 'chunk'; chunk: LogLine }
  /**
   * A line on `stream` was left open: its task ended ('ended': the line is incomplete), or it stalled
   * while others waited ('stalled': the rest of the line follows later as a line of its own).
   */
  | { kind: 'cut'; taskId: string; stream: 'stdout' | 'stderr'; ts: string; reason: 'ended' | 'stalled' };

interface TaskQueue {
  readonly id: string;
  readonly order: number;
  items: { c: LogLine; seq: number }[];
  head: number;
  ended: boolean;
  /** Streams with a line open (a partial chunk written, its end not yet). */
  open: Map<'stdout' | 'stderr', string>;
}

export class LogMerge {
  private readonly tasks = new Map<string, TaskQueue>();
  private lock: TaskQueue | null = null;
  private seq = 0;
  private pendingCuts: MergeOut[] = [];
  /** When the open line last made progress (the `now` of the last take from the locked task). */
  private lockSince = 0;

  constructor(
    private readonly mode: 'sorted' | 'arrival',
    taskIds: readonly string[],
    private readonly maxOpenLineMs = Infinity,
  ) {
    taskIds.forEach((id, order) => {
      this.tasks.set(id, { id, order, items: [], head: 0, ended: false, open: new Map() });
    });
  }

  has(taskId: string): boolean {
    return this.tasks.has(taskId);
  }

  /** Queues a chunk. False (and nothing queued) for a task not in this merge or already ended. */
  push(c: LogLine): boolean {
    const q = this.tasks.get(c.taskId);
    if (!q || q.ended) return false;
    q.items.push({ c, seq: this.seq++ });
    return true;
  }

  /** No more chunks for this task. */
  end(taskId: string): void {
    const q = this.tasks.get(taskId);
    if (q) q.ended = true;
  }

  /** Chunks queued and not yet taken (for tests and diagnostics). */
  get queued(): number {
    let n = 0;
    for (const q of this.tasks.values()) n += q.items.length - q.head;
    return n;
  }

  /** Every task ended and everything was taken. */
  get done(): boolean {
    if (this.pendingCuts.length > 0) return false;
    for (const q of this.tasks.values()) if (!q.ended || q.head < q.items.length || q.open.size > 0) return false;
    return true;
  }

  /**
   * The next thing to write, or null when it must wait for more chunks (or the merge is done). `now`
   * (ms, any clock) only matters for cutting a stalled line in 'arrival' mode.
   */
  next(now = 0): MergeOut | null {
    if (this.pendingCuts.length > 0) return this.pendingCuts.shift()!;
    if (this.lock) {
      const q = this.lock;
      if (q.head < q.items.length) return this.take(q, now);
      const stalled = !q.ended && this.mode === 'arrival' && now - this.lockSince > this.maxOpenLineMs && this.othersWaiting(q);
      if (!q.ended && !stalled) return null;
      this.lock = null;
      const reason = q.ended ? ('ended' as const) : ('stalled' as const);
      this.pendingCuts = [...q.open].map(([stream, ts]) => ({ kind: 'cut' as const, taskId: q.id, stream, ts, reason }));
      q.open.clear();
      return this.pendingCuts.shift() ?? this.next(now);
    }
    let best: TaskQueue | null = null;
    for (const q of this.tasks.values()) {
      if (q.head >= q.items.length) {
        if (this.mode === 'sorted' && !q.ended) return null; // its next line may be the earliest
        continue;
      }
      if (best === null || this.before(q, best)) best = q;
    }
    return best ? this.take(best, now) : null;
  }

  private othersWaiting(q: TaskQueue): boolean {
    for (const o of this.tasks.values()) if (o !== q && o.head < o.items.length) return true;
    return false;
  }

  private before(a: TaskQueue, b: TaskQueue): boolean {
    const x = a.items[a.head]!;
    const y = b.items[b.head]!;
    if (this.mode === 'arrival') return x.seq < y.seq;
    return x.c.ts < y.c.ts || (x.c.ts === y.c.ts && a.order < b.order);
  }

  private take(q: TaskQueue, now: number): MergeOut {
    const { c } = q.items[q.head]!;
    q.items[q.head] = undefined as never; // let it be collected
    q.head++;
    if (q.head > 1024 && q.head * 2 > q.items.length) {
      q.items = q.items.slice(q.head);
      q.head = 0;
    }
    if (c.partial) {
      if (!q.open.has(c.stream)) q.open.set(c.stream, c.ts);
    } else q.open.delete(c.stream);
    this.lock = q.open.size > 0 ? q : null;
    this.lockSince = now;
    return { kind: 'chunk', chunk: c };
  }
}
