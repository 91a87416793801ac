// A run of transactions one leader loop writes back to back (the orchestrator's pass: its batch, then the
// rest of a large service's decisions, runner.ts), and the loops that would rather read its end than
// each transaction of it (the scheduler).
//
// Why: the scheduler ran after every applied transaction. An orchestrator pass that creates 20,000 tasks
// of one service writes them in about eight transactions of 2,500; placed one transaction at a time over
// 5,000 nodes, each node got one task per transaction, and the dispatcher sent one message per task:
// 150,000 messages for 150,000 replicas (bench:scale, December 7), each a TLS record and a write system
// call on the leader (≈ 50 µs of `writev` alone, --profile). Placed when the pass has written them all,
// a node's four tasks of that pass travel in one message.
//
// The wait is bounded twice: by the burst itself (a pass's writes stop after LEFTOVER_MIN_MS or twice its
// compute time, orchestrator/runner.ts) and by the waiter's own cap (a commit that hangs, a lost quorum).
//
//   idle ──begin()──► writing (depth ≥ 1) ──end() to depth 0──► idle: every settled() resolves
//
// Nested begin()s count (two loops may share one burst); an end() without a begin() does nothing.

/** What a waiting loop sees of a burst. */
export interface BurstGate {
  readonly active: boolean;
  /** Resolves when no burst is active, or after `maxMs`: true if the burst ended, false if the cap came first. */
  settled(maxMs: number): Promise<boolean>;
}

export class WriteBurst implements BurstGate {
  private depth = 0;
  private readonly waiters = new Set<(ended: boolean) => void>();

  get active(): boolean {
    return this.depth > 0;
  }

  begin(): void {
    this.depth++;
  }

  end(): void {
    if (this.depth === 0) return;
    this.depth--;
    if (this.depth > 0) return;
    const waiting = [...this.waiters];
    this.waiters.clear();
    for (const w of waiting) w(true);
  }

  settled(maxMs: number): Promise<boolean> {
    if (this.depth === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.waiters.delete(done);
        resolve(false);
      }, maxMs);
      const done = (ended: boolean): void => {
        clearTimeout(timer);
        resolve(ended);
      };
      this.waiters.add(done);
    });
  }
}
