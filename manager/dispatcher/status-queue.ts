// Task status reports waiting to be written, per node (security review, finding 3). Reports for the
// same task coalesce (the furthest state wins; states only move forward), and each node's queue is
// bounded by a count, so a node that floods reports fills only its own queue, and a full queue refuses
// only new tasks' reports from that node. Pure: no clock, no store.
import { taskStateRank } from '../../api/objects.ts';
import type { TaskStatusUpdate } from '../../api/task-status.ts';

export type PushResult = 'queued' | 'coalesced' | 'stale' | 'full';

export class StatusQueue {
  private byNode = new Map<string, Map<string, TaskStatusUpdate>>();
  private count = 0;

  constructor(private readonly maxPerNode: number) {}

  get size(): number {
    return this.count;
  }

  /** Queues a (validated) update; an earlier state than the one already queued for the task is 'stale'. */
  push(nodeId: string, u: TaskStatusUpdate): PushResult {
    let q = this.byNode.get(nodeId);
    const prev = q?.get(u.taskId);
    if (prev) {
      if (taskStateRank(u.state) < taskStateRank(prev.state)) return 'stale';
      q!.set(u.taskId, u);
      return 'coalesced';
    }
    if (!q) this.byNode.set(nodeId, (q = new Map()));
    if (q.size >= this.maxPerNode) return 'full';
    q.set(u.taskId, u);
    this.count++;
    return 'queued';
  }

  /** Everything queued, emptied. */
  drain(): { nodeId: string; u: TaskStatusUpdate }[] {
    const out: { nodeId: string; u: TaskStatusUpdate }[] = [];
    for (const [nodeId, q] of this.byNode) for (const u of q.values()) out.push({ nodeId, u });
    this.byNode.clear();
    this.count = 0;
    return out;
  }
}
