// Node ids gathered for one later action: a set, and one timer for all of them. The dispatcher retries
// refused network views and assignment sets this way, and tells nodes late that their ended tasks left
// their set. Only the clock is I/O here; the action decides what to do with the ids.

export class NodeBatch {
  private readonly ids = new Set<string>();
  private timer: NodeJS.Timeout | null = null;

  /** `flush` gets the ids `delayMs` after the first of them was added (and the set starts again). */
  constructor(
    private readonly delayMs: number,
    private readonly flush: (ids: string[]) => void,
  ) {}

  add(id: string): void {
    this.ids.add(id);
    this.timer ??= setTimeout(() => {
      this.timer = null;
      const ids = [...this.ids];
      this.ids.clear();
      this.flush(ids);
    }, this.delayMs);
  }

  has(id: string): boolean {
    return this.ids.has(id);
  }

  delete(id: string): void {
    this.ids.delete(id);
  }

  /** Forgets every id and the timer (leadership lost). */
  clear(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.ids.clear();
  }
}
