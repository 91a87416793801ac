// Which nodes have stopped heartbeating: a pure function of heartbeat times and the clock, owned by the
// leader's dispatcher. A node is Down once it missed `missedLimit` periods. A new leader has heard from
// nobody yet, so every node gets a full grace window from the moment it took over.
import type { NodeId } from '../raft/types.ts';

export class NodeLiveness {
  private lastSeen = new Map<NodeId, number>();

  constructor(
    private periodMs: number,
    private readonly missedLimit = 3,
  ) {}

  setPeriod(ms: number): void {
    this.periodMs = ms;
  }

  get deadlineMs(): number {
    return this.periodMs * this.missedLimit;
  }

  /** Leadership gained at `now`: nodes believed alive get a full window before they can expire. */
  startTracking(nodes: NodeId[], now: number): void {
    for (const n of nodes) this.lastSeen.set(n, now);
  }

  heartbeat(node: NodeId, now: number): void {
    this.lastSeen.set(node, now);
  }

  forget(node: NodeId): void {
    this.lastSeen.delete(node);
  }

  isTracked(node: NodeId): boolean {
    return this.lastSeen.has(node);
  }

  /** Nodes whose last heartbeat is older than the deadline; they stop being tracked. */
  expired(now: number): NodeId[] {
    const out: NodeId[] = [];
    const limit = this.deadlineMs;
    for (const [id, t] of this.lastSeen) {
      if (now - t > limit) {
        out.push(id);
        this.lastSeen.delete(id);
      }
    }
    return out;
  }
}
