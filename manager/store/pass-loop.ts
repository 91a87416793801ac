// The driver shared by the store-driven leader loops (allocator, scheduler): passes over the store run
// one at a time; requests made while one runs give exactly one more pass after it; bursts of requests
// are coalesced (within one event-loop turn, or debounced); a failed pass is retried with back-off.
import { BatchError, ConflictError } from './store.ts';

export interface PassLoopOptions {
  /** Prefix of log lines (`allocator`, `scheduler`). */
  who: string;
  log: (line: string) => void;
  /** 0 (default): one pass per event-loop turn's requests. Otherwise a pass runs this long after the last request… */
  debounceMs?: number;
  /** …but no later than this after the first request of a burst (default: debounceMs). */
  maxDelayMs?: number;
}

/**
 * How long the next pass waits: at least as long as the last one computed (capped at `maxMs`), counted
 * from its end, so a loop under a steady stream of events takes at most about half of the leader's CPU
 * (the rest goes to Raft, sessions and the API); never less than the debounce.
 */
export function pacingDelay(lastPassMs: number, sinceEndMs: number, debounceMs: number, maxMs: number): number {
  return Math.max(debounceMs, Math.min(lastPassMs, maxMs) - sinceEndMs);
}

/**
 * The delay before retrying a failed pass. A ConflictError (someone else wrote an object this pass was
 * writing) is retried on a fresh view at once the first three times, then with a growing delay up to
 * 1 s; any other error backs off from 100 ms up to 5 s.
 */
export function passRetryDelay(err: unknown, consecutiveErrors: number, who: string, log: (line: string) => void): number {
  const cause = err instanceof BatchError ? err.cause : err;
  const msg = cause instanceof Error ? cause.message : String(cause);
  if (cause instanceof ConflictError) {
    if (consecutiveErrors <= 3) log(`${who}: conflict (${msg}); recomputing`);
    return consecutiveErrors <= 3 ? 1 : Math.min(1000, 10 * 2 ** (consecutiveErrors - 3));
  }
  log(`${who}: pass failed: ${msg}`);
  return Math.min(5000, 100 * 2 ** Math.min(6, consecutiveErrors - 1));
}

/** The longest a pass waits because the previous one was long (see run). */
const MAX_PACE_MS = 2_000;

export class PassLoop {
  private started = false;
  private running: Promise<void> | null = null;
  /** A pass is executing (set before it starts, so requests it makes itself are seen as "again"). */
  private inPass = false;
  private dirty = false;
  private immediate: NodeJS.Immediate | null = null;
  private timer: NodeJS.Timeout | null = null;
  private lastRequest = 0;
  private burstStart = 0;
  /** The pending timer was armed by triggerLazy alone: any other request runs the pass sooner. */
  private lazy = false;
  /** triggerLazy during a pass: the longest the pass after it may wait (null: none asked). */
  private lazyDirty: number | null = null;
  private consecutiveErrors = 0;
  private readonly debounceMs: number;
  private readonly maxDelayMs: number;

  constructor(
    /** Resolves to the milliseconds it computed (its waits for commits left out), or nothing: then its wall time paces the next. */
    private readonly pass: () => Promise<number | undefined>,
    private readonly o: PassLoopOptions,
  ) {
    this.debounceMs = o.debounceMs ?? 0;
    this.maxDelayMs = Math.max(this.debounceMs, o.maxDelayMs ?? this.debounceMs);
  }

  /** True between start() and stop(): a pass in flight checks it before writing. */
  get active(): boolean {
    return this.started;
  }

  start(): void {
    this.started = true;
    this.consecutiveErrors = 0;
  }

  stop(): void {
    this.started = false;
    if (this.immediate !== null) clearImmediate(this.immediate);
    this.immediate = null;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.lazy = false;
    this.dirty = false;
    this.lazyDirty = null;
  }

  /** Asks for a pass (after `delayMs` at the earliest when given). */
  trigger(delayMs?: number): void {
    if (!this.started) return;
    if (this.inPass) {
      this.dirty = true;
      return;
    }
    const t = performance.now();
    this.lastRequest = t;
    if (this.timer !== null && this.lazy) {
      clearTimeout(this.timer);
      this.timer = null;
      this.lazy = false;
    }
    if (this.immediate !== null || this.timer !== null) return; // the pending run re-checks lastRequest
    this.burstStart = t;
    const wait = delayMs ?? this.debounceMs;
    if (wait <= 0) {
      this.immediate = setImmediate(() => {
        this.immediate = null;
        if (this.started) this.run();
      });
    } else this.arm(wait);
  }

  /**
   * Asks for a pass within `withinMs`, for a change that can wait: the requests of that time share one
   * pass. The allocator's passes are O(nodes), and a node that joins needs its ingress address soon, not
   * in the next turn: at 5,000 nodes joining ≈ 80 a second, a pass per join (per event-loop turn) was 11
   * of the leader's 95 busy seconds of the joins. Any other request (trigger) runs the pass as it would
   * have; a pass already due is not delayed.
   */
  triggerLazy(withinMs: number): void {
    if (!this.started) return;
    if (this.inPass) {
      this.lazyDirty = this.lazyDirty === null ? withinMs : Math.min(this.lazyDirty, withinMs);
      return;
    }
    if (this.immediate !== null || this.timer !== null) return;
    this.lazy = true;
    this.timer = setTimeout(
      () => {
        this.timer = null;
        this.lazy = false;
        if (this.started) this.run();
      },
      Math.max(0, withinMs),
    );
  }

  private arm(ms: number): void {
    this.timer = setTimeout(
      () => {
        this.timer = null;
        if (!this.started) return;
        const t = performance.now();
        const quietFor = t - this.lastRequest;
        const waited = t - this.burstStart;
        if (quietFor < this.debounceMs && waited < this.maxDelayMs) {
          this.arm(Math.min(this.debounceMs - quietFor, this.maxDelayMs - waited));
          return;
        }
        this.run();
      },
      Math.max(0, ms),
    );
  }

  /** From inside a pass: run another one after it. */
  again(): void {
    this.dirty = true;
  }

  private run(): void {
    this.dirty = false;
    this.lazyDirty = null;
    this.inPass = true;
    const t0 = performance.now();
    let paceMs = 0;
    this.running = this.pass()
      .then(
        (computedMs) => {
          this.consecutiveErrors = 0;
          paceMs = computedMs ?? performance.now() - t0;
          return 0;
        },
        (err: unknown) => passRetryDelay(err, ++this.consecutiveErrors, this.o.who, this.o.log),
      )
      .then((retryMs) => {
        this.inPass = false;
        this.running = null;
        if (!this.started) return;
        if (retryMs > 0) this.trigger(retryMs);
        // Requests made during the pass: the next one waits as long as this one computed (at most
        // MAX_PACE_MS). A pass reads the whole store (≈ 0.1-1 s at 150,000 tasks): back to back under a
        // stream of events they kept a core busy, starving the leader's Raft heartbeats and sessions.
        // Its wait for the commit is not counted: the core was free then, and counting it made every
        // task of a rolling update wait one more commit in each of the allocator and the scheduler.
        else if (this.dirty) this.trigger(pacingDelay(paceMs, 0, this.debounceMs, MAX_PACE_MS));
        else if (this.lazyDirty !== null) this.triggerLazy(Math.max(this.lazyDirty, pacingDelay(paceMs, 0, this.debounceMs, MAX_PACE_MS)));
      });
  }

  /** Resolves once no pass is running or due (for tests and tools). */
  async idle(): Promise<void> {
    for (;;) {
      // Let queued watch events reach their handlers first.
      await new Promise<void>((r) => setImmediate(r));
      if (this.running !== null) await this.running;
      else if (this.immediate !== null) await new Promise<void>((r) => setImmediate(r));
      else if (this.timer !== null) await new Promise<void>((r) => setTimeout(r, Math.max(1, Math.min(this.debounceMs, 5))));
      else return;
    }
  }
}
