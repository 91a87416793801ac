// Out of every load balancer before the container stops (the stop drain).
//
// Why: a running task on an overlay network is a backend in every node's tables: the routing mesh of
// each host, the VIP tables of each task on its networks, and the DNS answers of `tasks.<svc>`. When
// the orchestrator stops it (scale-down, rolling update, service rm), the leader sends the node its
// assignments 10 ms later and every node its new NetView 100 ms later. Without an order between the
// two, the container was gone while the other nodes still sent it connections: each scale-down of a
// published service dropped 15-20 requests per second of load on a 3-host lab, on every host.
//
// Docker Swarm sleeps a fixed 2 s after it withdraws the task from gossip ("gossip converge delay").
// Shoal knows when each node has applied a view: the agent acknowledges every view it has programmed
// (`network-applied`, with the view's version). So a stopping task is *held*: its node is told to keep
// it running until every node that had a view without the task pending has applied it, or
// DRAIN_MAX_MS has passed (a node that never answers, e.g. an older agent or a dead session, costs at
// most what Swarm always costs).
//
//            stop wanted                    every needed node acked ≥ its version
//   running ─────────────▶ held ──────────────────────────────────────────────▶ released ─▶ (stop sent)
//                            │     deadline (DRAIN_MAX_MS) or the nodes left       ▲
//                            └──────────────────────────────────────────────────────┘
//
// A pure state machine: the dispatcher says what it sent and heard, the gate answers which tasks to
// hold and which nodes' assignments to send again. Memory: one entry per stopping networked task,
// dropped when the task ends (`forget`).

/** The longest a stop waits for the nodes' acknowledgements (Swarm's fixed gossip delay, as a bound). */
export const DRAIN_MAX_MS = 2000;

/** How holds ended (a fixed vocabulary: metric labels), and the time they made stops wait. */
export interface DrainStats {
  /** Stops held right now. */
  holding: number;
  /** Held stops released, by why: every node acknowledged, a node it waited for left, the deadline. */
  released: { acknowledged: number; 'node-gone': number; deadline: number };
  /** Stops that needed no hold (every node had already applied a view without the task). */
  immediate: number;
  /** Sum of the time released stops were held, ms. */
  heldMs: number;
}

type Outcome = keyof DrainStats['released'];

interface Hold {
  /** The node that runs the task (its assignments are sent again on release). */
  nodeId: string;
  since: number;
  deadline: number;
  /** Node → the view version it must have applied. */
  waiting: Map<string, number>;
}

export class StopDrain {
  private readonly holds = new Map<string, Hold>();
  private readonly released = new Set<string>();
  private readonly counts = { acknowledged: 0, 'node-gone': 0, deadline: 0 };
  private immediate = 0;
  private heldMs = 0;

  constructor(private readonly maxMs = DRAIN_MAX_MS) {}

  /**
   * Whether the stop of `taskId` (running on `nodeId`) may be sent now. The first time a task is
   * asked about, `need()` gives the view version each node must have applied (only nodes that still
   * lack it): none means the stop goes at once.
   */
  mayStop(taskId: string, nodeId: string, need: () => Map<string, number>, now: number): boolean {
    if (this.released.has(taskId)) return true;
    const h = this.holds.get(taskId);
    if (h) return false;
    const waiting = need();
    if (waiting.size === 0) {
      this.released.add(taskId);
      this.immediate++;
      return true;
    }
    this.holds.set(taskId, { nodeId, since: now, deadline: now + this.maxMs, waiting });
    return false;
  }

  /** `nodeId` has applied view `version`: returns the nodes whose held tasks are now released. */
  applied(nodeId: string, version: number, now: number): string[] {
    return this.settle(now, 'acknowledged', (h) => {
      const v = h.waiting.get(nodeId);
      if (v !== undefined && version >= v) h.waiting.delete(nodeId);
    });
  }

  /** `nodeId` has no session any more: nothing waits for it. */
  nodeGone(nodeId: string, now: number): string[] {
    return this.settle(now, 'node-gone', (h) => h.waiting.delete(nodeId));
  }

  /** The nodes that expired holds still wait for (before `expire`: who was late, for the log). */
  overdue(now: number): string[] {
    const late = new Set<string>();
    for (const h of this.holds.values()) if (now >= h.deadline) for (const n of h.waiting.keys()) late.add(n);
    return [...late];
  }

  /** Holds past their deadline are released (returns their nodes). */
  expire(now: number): string[] {
    return this.settle(now, 'deadline', (h) => {
      if (now >= h.deadline) h.waiting.clear();
    });
  }

  /** The earliest deadline of a hold (for the caller's one timer), or null when nothing is held. */
  nextDeadline(): number | null {
    let min: number | null = null;
    for (const h of this.holds.values()) if (min === null || h.deadline < min) min = h.deadline;
    return min;
  }

  /** The task ended or was removed: its entry goes. */
  forget(taskId: string): void {
    this.holds.delete(taskId);
    this.released.delete(taskId);
  }

  /** Leadership lost or the store was reset: everything is decided again. */
  clear(): void {
    this.holds.clear();
    this.released.clear();
  }

  get held(): number {
    return this.holds.size;
  }

  stats(): DrainStats {
    return { holding: this.holds.size, released: { ...this.counts }, immediate: this.immediate, heldMs: this.heldMs };
  }

  private settle(now: number, outcome: Outcome, step: (h: Hold) => void): string[] {
    const nodes = new Set<string>();
    for (const [taskId, h] of this.holds) {
      step(h);
      if (h.waiting.size > 0) continue;
      this.holds.delete(taskId);
      this.released.add(taskId);
      this.counts[outcome]++;
      this.heldMs += Math.max(0, now - h.since);
      nodes.add(h.nodeId);
    }
    return [...nodes];
  }
}
