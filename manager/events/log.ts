// Each manager's event log: the ClusterEvents derived (derive.ts) from the store changes it applies,
// kept in a bounded ring for replay, and handed to a bounded set of live listeners, each with a bounded
// queue. No timers and no I/O: the manager feeds it (Manager wires a store watch and the Raft leader
// callback); the route (manager/api/events.ts) and the Docker API read it.
//
// Order and identity. A change's `seq` is `INDEX.POSITION`: the Raft index of the entry that made it and
// its place among the events derived from that entry. Its `time` is the entry's transaction time. Both
// come from the log, so every manager has the same events under the same seq, and replay after a leader
// change, from any manager, gives the same answer.
//
// Leader changes. Only the leader of term T proposes entries of term T, so the first applied entry of a
// higher term marks where the new leader's changes begin: a `manager leader` event is placed first in
// that entry (position 0), with the entry's time. Which node led T is not in the entry; this manager's
// Raft tells (a manager that never saw T's leader — it was cut off then — says "unknown"). The event
// therefore comes with the new leader's first write, which in practice is within a heartbeat: every
// agent's session moves to the new leader and its hello is written at once.
//
// Bounds (docs/design/events.md says why these numbers):
//   ring        EVENT_RING events (the oldest are dropped; `oldestSeq` says where replay starts)
//   listeners   MAX_LISTENERS at once (one more is refused: the route answers 503)
//   per listener LISTENER_QUEUE events waiting for a slow reader; one more and the listener is dropped
//               with a reason (the route writes an end line), so a stuck client costs bounded memory and
//               never slows apply (delivery runs after apply, from the store's watch microtask).
//
// History after a restart or a snapshot. The ring is not persisted. A restarted manager restores its
// latest snapshot and re-applies the log after it, so its ring is rebuilt from those entries with the
// same seq/time as before; anything older is gone (`historyFrom`). A snapshot installed from the leader
// replaces the store without events: the ring keeps what it had, and history has a gap up to the
// snapshot (`gaps`). The design page weighs replicating a compact ring in the snapshot instead.
import type { ClusterEvent } from '../../api/events.ts';
import type { StoreEvent } from '../store/store.ts';
import { deriveChange, leaderEvent, place, seqOf, type DeriveLookup } from './derive.ts';
import { inWindow, matchesFilter, type EventQuery } from './filter.ts';

/** Events kept per manager for replay. */
export const EVENT_RING = 10_000;
/** Live listeners per manager. */
export const MAX_LISTENERS = 64;
/** Events one listener may have waiting before it is dropped. */
export const LISTENER_QUEUE = 1_000;

export interface EventLogOptions extends DeriveLookup {
  /** Who led `term`, as this manager's Raft saw it. */
  leaderOf(term: number): string | undefined;
  capacity?: number;
  maxListeners?: number;
  listenerQueue?: number;
}

/** A live reader. The hub offers events; the reader takes them when it can write. */
export class EventListener {
  private q: ClusterEvent[] = [];
  private head = 0;
  /** Why the hub ended this listener (null: still open, or closed by its reader). */
  endReason: string | null = null;
  closed = false;
  /** The seq of the last event handed to the reader (for a resume hint). */
  lastSeq: string | null = null;

  constructor(
    private readonly hub: EventLog,
    readonly query: Pick<EventQuery, 'filter' | 'until' | 'after'>,
    private readonly maxQueue: number,
    /** Called when events are waiting, or when the hub ended the listener. */
    private readonly wake: () => void,
  ) {}

  get queued(): number {
    return this.q.length - this.head;
  }

  offer(e: ClusterEvent): void {
    if (this.closed || !matchesFilter(e, this.query.filter) || !inWindow(e, this.query)) return;
    if (this.queued >= this.maxQueue) {
      this.end(`this client fell ${this.maxQueue} events behind and was dropped; reconnect with after=${this.lastSeq ?? e.seq}`);
      return;
    }
    this.q.push(e);
    this.wake();
  }

  take(): ClusterEvent | undefined {
    if (this.head >= this.q.length) return undefined;
    const e = this.q[this.head++]!;
    if (this.head > 1024 && this.head * 2 > this.q.length) {
      this.q = this.q.slice(this.head);
      this.head = 0;
    }
    this.lastSeq = e.seq;
    return e;
  }

  /** Ends the listener from the hub's side (the reader is told through wake and endReason). */
  end(reason: string): void {
    if (this.closed) return;
    this.endReason = reason;
    this.close();
    this.wake();
  }

  /** The reader leaves. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.q = [];
    this.head = 0;
    this.hub.detach(this);
  }
}

export class EventLog {
  private readonly cap: number;
  private readonly maxListeners: number;
  private readonly listenerQueue: number;
  /** Circular buffer: `size` events ending before `next`. */
  private readonly buf: (ClusterEvent | undefined)[];
  private next = 0;
  private size = 0;
  private readonly listeners = new Set<EventListener>();
  private index = -1;
  private position = 0;
  /** Term of the last applied entry; null when unknown (history did not start at the beginning of the log). */
  private lastTerm: number | null = null;
  /** Raft index history starts after (the store's index when the log started watching). */
  historyFrom = 0;
  /** Ranges of the log (exclusive from, inclusive to) whose events this manager never derived: installed snapshots. */
  readonly gaps: { from: number; to: number }[] = [];
  /** Events derived so far (also those since dropped from the ring). */
  total = 0;

  constructor(private readonly opts: EventLogOptions) {
    this.cap = opts.capacity ?? EVENT_RING;
    this.maxListeners = opts.maxListeners ?? MAX_LISTENERS;
    this.listenerQueue = opts.listenerQueue ?? LISTENER_QUEUE;
    this.buf = new Array<ClusterEvent | undefined>(this.cap);
  }

  /**
   * History starts after `storeIndex` (the store's index when the watch was opened). From index 0 the
   * whole log is seen, so the first entry's term is a leader change; from a snapshot it is not known.
   */
  begin(storeIndex: number): void {
    this.historyFrom = storeIndex;
    this.index = storeIndex;
    this.position = 0;
    this.lastTerm = storeIndex === 0 ? 0 : null;
  }

  /** The store replaced its state (snapshot installed) at `storeIndex`: events up to it were never derived. */
  reset(storeIndex: number): void {
    const from = Math.max(this.index, this.historyFrom);
    if (storeIndex > from) this.gaps.push({ from, to: storeIndex });
    if (this.gaps.length > 16) this.gaps.shift();
    this.index = storeIndex;
    this.position = 0;
    this.lastTerm = null;
  }

  /** One applied change (in commit order, as the store's watch delivers them). */
  apply(ev: StoreEvent): ClusterEvent[] {
    if (ev.index < this.index) return []; // already seen (a watch reopened over the same entries)
    const first = ev.index !== this.index;
    if (first) {
      this.index = ev.index;
      this.position = 0;
    }
    const bodies = deriveChange(ev, this.opts);
    if (first && ev.term !== undefined) {
      if (this.lastTerm !== null && ev.term > this.lastTerm) {
        // The transaction names its proposer, the leader of its term, the same on every manager and on
        // replay; entries written before proposers were recorded fall back to this manager's memory.
        const id = ev.by ?? this.opts.leaderOf(ev.term);
        bodies.unshift(leaderEvent(ev.term, this.lastTerm, id, id === undefined ? undefined : this.opts.nodeName(id)));
      }
      this.lastTerm = ev.term;
    }
    if (bodies.length === 0) return [];
    const out = place(ev.index, this.position, ev.time, bodies);
    this.position += bodies.length;
    for (const e of out) this.push(e);
    return out;
  }

  private push(e: ClusterEvent): void {
    this.buf[this.next] = e;
    this.next = (this.next + 1) % this.cap;
    if (this.size < this.cap) this.size++;
    this.total++;
    for (const l of this.listeners) l.offer(e);
  }

  /** Kept events, oldest first. */
  *kept(): Generator<ClusterEvent> {
    const start = (this.next - this.size + this.cap) % this.cap;
    for (let i = 0; i < this.size; i++) yield this.buf[(start + i) % this.cap]!;
  }

  /** Kept events inside the query's window that match its filters, oldest first. */
  replay(q: Pick<EventQuery, 'filter' | 'since' | 'until' | 'after'>): ClusterEvent[] {
    const out: ClusterEvent[] = [];
    for (const e of this.kept()) if (inWindow(e, q) && matchesFilter(e, q.filter)) out.push(e);
    return out;
  }

  /** The oldest kept event's seq, or where history starts when nothing is kept. */
  get oldestSeq(): string {
    const first = this.kept().next();
    return first.done ? seqOf(this.historyFrom, 0) : first.value.seq;
  }

  /**
   * A live listener for events derived from now on (combine with replay() for history: both run in the
   * same turn, so nothing falls between them). Null when MAX_LISTENERS are open.
   */
  listen(q: Pick<EventQuery, 'filter' | 'until' | 'after'>, wake: () => void): EventListener | null {
    if (this.listeners.size >= this.maxListeners) return null;
    const l = new EventListener(this, q, this.listenerQueue, wake);
    this.listeners.add(l);
    return l;
  }

  detach(l: EventListener): void {
    this.listeners.delete(l);
  }

  get listening(): number {
    return this.listeners.size;
  }
}
