// A flow window: a sender may have at most `window` bytes outstanding (sent, not yet acknowledged by
// the receiver); `take` waits for room. A sender that had to wait resumes only once at least half the
// window is free again (hysteresis): it then sends half a window at a time instead of one small message
// per acknowledgement, which keeps the message rate low (the dispatcher limits messages per second). The node uses one per task of a logs request and one per exec,
// so a leader whose client reads slowly makes the node wait, instead of either side buffering without
// bound. No clock, no socket: the caller acknowledges with `release` and cancels with an AbortSignal.

export class FlowWindow {
  private outstanding = 0;
  private waiters: { need: number; resolve: (ok: boolean) => void }[] = [];

  constructor(readonly window: number) {}

  /** Bytes sent and not yet acknowledged. */
  get inFlight(): number {
    return this.outstanding;
  }

  /**
   * Reserves `n` bytes, waiting until they fit. A piece larger than the whole window goes out once
   * nothing else is outstanding. Resolves false if `signal` aborts first (nothing reserved).
   */
  take(n: number, signal?: AbortSignal): Promise<boolean> {
    if (signal?.aborted) return Promise.resolve(false);
    if (this.waiters.length === 0 && this.fits(n)) {
      this.outstanding += n;
      return Promise.resolve(true);
    }
    return new Promise((resolve) => {
      const w = {
        need: n,
        resolve: (ok: boolean) => {
          signal?.removeEventListener('abort', onAbort);
          resolve(ok);
        },
      };
      const onAbort = () => {
        this.waiters = this.waiters.filter((x) => x !== w);
        w.resolve(false);
        this.wake();
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiters.push(w);
    });
  }

  /** Reserves `n` bytes if they fit now and nobody waits before; otherwise reserves nothing. */
  tryTake(n: number): boolean {
    if (this.waiters.length > 0 || !this.fits(n)) return false;
    this.outstanding += n;
    return true;
  }

  /** The receiver acknowledged `n` bytes (more than outstanding is clamped: a confused peer cannot open the window wider). */
  release(n: number): void {
    if (!(n > 0)) return;
    this.outstanding = Math.max(0, this.outstanding - n);
    this.wake();
  }

  private fits(n: number): boolean {
    return this.outstanding === 0 || this.outstanding + n <= this.window;
  }

  /** Grants waiters in order while they fit (order of the stream is kept), once half the window is free. */
  private wake(): void {
    if (this.outstanding > this.window / 2) return;
    while (this.waiters.length > 0 && this.fits(this.waiters[0]!.need)) {
      const w = this.waiters.shift()!;
      this.outstanding += w.need;
      w.resolve(true);
    }
  }
}
