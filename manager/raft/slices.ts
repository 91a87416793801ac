// Long work on a manager's event loop, in slices: steps run back to back until a slice's time is used,
// then the loop gets a turn. A snapshot is serialised (node.ts), sealed and hashed (storage-sqlite.ts)
// this way.
//
// Why slices rather than a turn per step: each turn given up waits behind the loop's other work, ≈ 20 ms
// on a busy leader. With one step (≈ 6 ms) per turn, a 150,000-task snapshot spent ≈ 3 s of its 4.6-6.8 s
// waiting for ≈ 150 turns; with 20 ms slices ≈ 1 s over ≈ 45 (derived from bench:scale's printed totals
// of work, file and wall time).

/**
 * How long a slice may hold the loop (ms): below what one orchestrator pass over 150,000 slots holds
 * (47 ms), and well below a heartbeat interval (100 ms).
 */
export const SLICE_MS = 40;

/** Counts the time of the slice under way and hands the loop a turn when it is used up. */
export class Slicer {
  /** The longest slice so far (ms): what the work held the loop for at once. */
  longestMs = 0;
  private start = performance.now();

  constructor(private readonly sliceMs = SLICE_MS) {}

  /** Call after each step: a turn for the loop once the slice is used (await it), else undefined. */
  next(): Promise<void> | undefined {
    const held = performance.now() - this.start;
    if (held < this.sliceMs) return undefined;
    this.longestMs = Math.max(this.longestMs, held);
    return new Promise<void>((resolve) => setImmediate(resolve)).then(() => {
      this.start = performance.now();
    });
  }

  /** The work is done: the slice under way counts too. */
  end(): void {
    this.longestMs = Math.max(this.longestMs, performance.now() - this.start);
  }
}
