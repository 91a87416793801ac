// The in-memory view of a node's Raft log: a base position (the entry just before the first one kept,
// usually the latest snapshot's position) followed by contiguous entries. `stable` marks how far the
// log is known to be durable; everything after it is handed to storage in the next Ready.
import type { Entry } from './types.ts';

export class RaftLog {
  /** Index of the entry just before entries[0] (0 for an empty, never-compacted log). */
  baseIndex: number;
  /** Term of the entry at baseIndex (0 when baseIndex is 0). */
  baseTerm: number;
  entries: Entry[];
  /** Highest index known to be persisted. */
  stable: number;

  constructor(baseIndex: number, baseTerm: number, entries: Entry[]) {
    this.baseIndex = baseIndex;
    this.baseTerm = baseTerm;
    this.entries = entries;
    this.stable = baseIndex + entries.length;
  }

  firstIndex(): number {
    return this.baseIndex + 1;
  }

  lastIndex(): number {
    return this.baseIndex + this.entries.length;
  }

  lastTerm(): number {
    const n = this.entries.length;
    return n === 0 ? this.baseTerm : this.entries[n - 1]!.term;
  }

  /** Term of the entry at `index`, or undefined when it is compacted away or beyond the end. */
  term(index: number): number | undefined {
    if (index === this.baseIndex) return this.baseTerm;
    if (index < this.baseIndex || index > this.lastIndex()) return undefined;
    return this.entries[index - this.baseIndex - 1]!.term;
  }

  entry(index: number): Entry | undefined {
    if (index <= this.baseIndex || index > this.lastIndex()) return undefined;
    return this.entries[index - this.baseIndex - 1];
  }

  matchTerm(index: number, term: number): boolean {
    return this.term(index) === term;
  }

  /** Is a log ending at (lastTerm, lastIndex) at least as up to date as ours? (Raft §5.4.1) */
  isUpToDate(lastIndex: number, lastTerm: number): boolean {
    const myTerm = this.lastTerm();
    return lastTerm > myTerm || (lastTerm === myTerm && lastIndex >= this.lastIndex());
  }

  /** Entries in [lo, hi], capped by count and total payload bytes (at least one entry if any). */
  slice(lo: number, hi: number, maxCount: number, maxBytes: number): Entry[] | undefined {
    if (lo <= this.baseIndex) return undefined;
    const last = Math.min(hi, this.lastIndex());
    const out: Entry[] = [];
    let bytes = 0;
    for (let i = lo; i <= last && out.length < maxCount; i++) {
      const e = this.entries[i - this.baseIndex - 1]!;
      bytes += e.data.length;
      if (out.length > 0 && bytes > maxBytes) break;
      out.push(e);
    }
    return out;
  }

  /** Appends entries, truncating any existing suffix from entries[0].index on. */
  append(entries: Entry[]): void {
    if (entries.length === 0) return;
    const first = entries[0]!.index;
    if (first <= this.baseIndex) throw new Error(`append at ${first} below log base ${this.baseIndex}`);
    if (first > this.lastIndex() + 1) throw new Error(`append at ${first} leaves a gap after ${this.lastIndex()}`);
    if (first <= this.lastIndex()) {
      this.entries.length = first - this.baseIndex - 1;
      if (this.stable >= first) this.stable = first - 1;
    }
    for (const e of entries) this.entries.push(e);
  }

  /** Index of the first entry in `entries` whose term differs from ours, or 0 if all match. */
  findConflict(entries: Entry[]): number {
    for (const e of entries) {
      if (!this.matchTerm(e.index, e.term)) return e.index;
    }
    return 0;
  }

  /** Entries not yet durable. */
  unstable(): Entry[] {
    return this.stable >= this.lastIndex() ? [] : this.entries.slice(this.stable - this.baseIndex);
  }

  stableTo(index: number, term: number): void {
    if (index > this.stable && this.term(index) === term) this.stable = index;
  }

  /** Drops entries up to and including `index` (which must be in the log). */
  compactTo(index: number): void {
    if (index <= this.baseIndex) return;
    const term = this.term(index);
    if (term === undefined) throw new Error(`compact to ${index} outside log (${this.baseIndex}..${this.lastIndex()})`);
    this.entries.splice(0, index - this.baseIndex);
    this.baseIndex = index;
    this.baseTerm = term;
  }

  /** Replaces the whole log by a snapshot position. */
  reset(index: number, term: number): void {
    this.baseIndex = index;
    this.baseTerm = term;
    this.entries = [];
    this.stable = index;
  }

  /**
   * For fast conflict back-off: the largest index <= `index` whose term is <= `term`
   * (the leader skips a whole term of mismatching entries per round trip).
   */
  findConflictByTerm(index: number, term: number): number {
    let i = Math.min(index, this.lastIndex());
    while (i > this.baseIndex) {
      const t = this.term(i)!;
      if (t <= term) return i;
      i--;
    }
    return this.baseIndex;
  }
}
