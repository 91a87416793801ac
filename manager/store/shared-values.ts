// Shared values: one frozen copy of a task's spec for all the tasks that carry the same one.
//
// Why. Every task carries its service's task spec (the agent runs the task from it, and it stays the
// spec the task was created with while the service moves on), and every manager builds each task from
// the bytes of its Raft entry, so 150,000 replicas of one service held 150,000 equal copies of it: a
// third of a task's heap, and a third of a snapshot's bytes and JSON parse time (docs/design/scale.md).
// Stored objects are deep-frozen, so equal values can be one object: nothing can tell a shared copy from
// an own one except `===`, which only gets more precise.
//
// Which fields. Those that are equal across the tasks of a service version and have no per-task part:
// `spec` (the task template) and `serviceAnnotations`. Not `networks` (each task's own addresses) nor
// `status`.
//
// Cost. A pool lookup serializes the value (≈ 1 µs for a typical spec); a hit then skips freezing it. The
// pool is bounded (least recently used out first): a value evicted while tasks still hold it only means
// the next equal value becomes a second copy.

import { deepFreeze } from '../../api/objects.ts';

/** Fields of a task that the tasks of one service version share. Order is the snapshot's order. */
export const SHARED_TASK_FIELDS = ['spec', 'serviceAnnotations'] as const;

/** Distinct values a pool keeps: services × versions alive at once (two during a rolling update). */
export const DEFAULT_POOL_ENTRIES = 4096;
/**
 * JSON text a pool keeps as keys, in characters: a task spec may be up to the object size limit (1 MiB by
 * default), and 4,096 of those would be gigabytes. Past this the oldest go, as past the entry count.
 */
export const DEFAULT_POOL_KEY_CHARS = 32 << 20;

/** Frozen values by their JSON text, least recently used first. */
export class ValuePool {
  private readonly byJson = new Map<string, object>();
  /** The pooled objects themselves: a value that is one needs no serialising to be found. */
  private readonly pooled = new WeakSet<object>();
  private keyChars = 0;

  constructor(
    private readonly maxEntries = DEFAULT_POOL_ENTRIES,
    private readonly maxKeyChars = DEFAULT_POOL_KEY_CHARS,
  ) {}

  get size(): number {
    return this.byJson.size;
  }

  /** Characters of JSON text held as keys. */
  get chars(): number {
    return this.keyChars;
  }

  /**
   * The pooled value equal to `value` (the same frozen object for every equal value), or `value` itself,
   * deep-frozen and pooled, when none is. Non-objects are returned as they are.
   */
  intern<T>(value: T): T {
    if (typeof value !== 'object' || value === null) return value;
    // Already the pooled copy (a write that kept the stored task's spec, Store's prepare): as it is. Its
    // place in the eviction order is not refreshed; evicted while in use, it only means a second copy.
    if (this.pooled.has(value)) return value;
    const key = JSON.stringify(value);
    const hit = this.byJson.get(key);
    if (hit !== undefined) {
      // Refresh its place: delete and re-insert moves it to the end of the Map's order.
      this.byJson.delete(key);
      this.byJson.set(key, hit);
      return hit as T;
    }
    deepFreeze(value);
    this.byJson.set(key, value);
    this.pooled.add(value);
    this.keyChars += key.length;
    while (this.byJson.size > this.maxEntries || this.keyChars > this.maxKeyChars) {
      const oldest = this.byJson.keys().next().value as string;
      this.pooled.delete(this.byJson.get(oldest)!);
      this.byJson.delete(oldest);
      this.keyChars -= oldest.length;
    }
    return value;
  }

  /** Whether `value` is one of this pool's objects (deep-frozen, parsed from JSON, valid JSON data). */
  has(value: object): boolean {
    return this.pooled.has(value);
  }

  /** Replaces a task body's shared fields with their pooled copies, in place (before it is frozen). */
  internTask(body: Record<string, unknown>): void {
    for (const f of SHARED_TASK_FIELDS) {
      const v = body[f];
      if (typeof v === 'object' && v !== null) body[f] = this.intern(v);
    }
  }
}
