// Agents' TLS handshakes on a manager's secure port wait their turn; the control API, Raft and joins go
// first.
//
// Why. A new leader takes the reconnect of every node of the cluster: at 5,000 nodes (bench:scale), 5,000
// TLS handshakes, each ≈ 3 ms of its CPU with the hello that follows, on the port that also carries the
// control API and Raft. Node starts every handshake it accepts, so each ClientHello queued behind
// hundreds of agents': the first write after a failover waited 2-4 s behind them, and agents whose own
// 3 s handshake timeout ran out redialled while the leader still worked on the connection they had left.
//
// How. Agents name AGENT_SERVER_NAME in their ClientHello (SNI). Node asks the SNI callback for a context
// before it does any key exchange or signature, and waits for its answer: this is where an agent's
// handshake is held. Connections without that name are never held. Held handshakes are admitted:
//
//     ClientHello ──► in flight (fewer than maxInFlight) ──► secure, or closed ──► slot freed
//          │                                                     ▲
//          └──► waiting ──(a slot frees: newest first)───────────┘
//                  └──► shed: the client left, it waited maxWaitMs, or the queue is full
//
// Newest first, because under overload the oldest waiters are the ones whose clients are about to give up
// (an agent waits AGENT_HANDSHAKE_TIMEOUT_MS, then dials again): serving them first is how a queue ends up doing only work
// nobody waits for. A waiter whose client leaves costs nothing more: Node sees the reset and closes the
// socket while it is held. The class below is the policy alone (no sockets, no clock); `sniAdmission`
// wires it to Node's SNI callback.
import type { TLSSocket } from 'node:tls';
import { AGENT_HANDSHAKE_TIMEOUT_MS, AGENT_SERVER_NAME } from '../api/dispatcher.ts';

export interface AdmissionLimits {
  /**
   * Agent handshakes admitted and not yet secure. At ≈ 3 ms of CPU each, 32 keep ≈ 100 ms of agents'
   * handshake work ahead of anything else in the event loop, while a slot frees every few ms on a busy
   * loop, enough for the ≈ 300 reconnects a second this machine's leader can take (scale.md).
   */
  maxInFlight: number;
  /** Handshakes held at once; beyond, the oldest is shed. */
  maxWaiting: number;
  /** A waiter held this long is shed: its client has given up (AGENT_HANDSHAKE_TIMEOUT_MS). */
  maxWaitMs: number;
}

export const DEFAULT_ADMISSION: AdmissionLimits = { maxInFlight: 32, maxWaiting: 4096, maxWaitMs: AGENT_HANDSHAKE_TIMEOUT_MS };

export interface AdmissionStats {
  /** Handshakes let through, at once or after waiting. */
  admitted: number;
  /** Of those, how many waited. */
  waited: number;
  /** The longest wait of an admitted handshake (ms). */
  longestWaitMs: number;
  /** Waiters dropped: the client left while held. */
  left: number;
  /** Waiters dropped: held maxWaitMs, or pushed out of a full queue. */
  shed: number;
  /** Now: in flight, and waiting. */
  inFlight: number;
  waiting: number;
}

/** What to do now: admit these, shed these. */
export interface Decision<T> {
  admit: T[];
  shed: T[];
}

/** The admission policy over opaque items (sockets in production). Pure: the caller passes the time. */
export class Admission<T> {
  readonly stats: AdmissionStats = { admitted: 0, waited: 0, longestWaitMs: 0, left: 0, shed: 0, inFlight: 0, waiting: 0 };
  private readonly inFlight = new Set<T>();
  /** Oldest first; admitted from the end. Entries whose client left stay, marked, until reached. */
  private queue: Waiter<T>[] = [];
  private readonly waiters = new Map<T, Waiter<T>>();

  constructor(readonly limits: AdmissionLimits = DEFAULT_ADMISSION) {
    if (!(limits.maxInFlight >= 1) || !(limits.maxWaiting >= 0) || !(limits.maxWaitMs > 0)) {
      throw new RangeError(`admission limits must be positive: ${JSON.stringify(limits)}`);
    }
  }

  /** A handshake arrives. */
  arrive(item: T, now: number): Decision<T> {
    const out = this.expire(now);
    if (this.inFlight.size < this.limits.maxInFlight && this.waiters.size === 0) {
      this.admit(item, now, now);
      out.admit.push(item);
    } else {
      const w: Waiter<T> = { item, since: now, gone: false };
      this.queue.push(w);
      this.waiters.set(item, w);
      if (this.waiters.size > this.limits.maxWaiting) {
        const oldest = this.next('oldest')!;
        out.shed.push(oldest.item);
        this.stats.shed++;
      }
    }
    this.count();
    return out;
  }

  /**
   * A handshake ended: secure, failed, or its client left. Frees its slot (or its place in the queue)
   * and admits waiters, newest first.
   */
  done(item: T, now: number): Decision<T> {
    if (!this.inFlight.delete(item)) {
      const w = this.waiters.get(item);
      if (w) {
        w.gone = true;
        this.waiters.delete(item);
        this.stats.left++;
      }
    }
    return this.fill(now);
  }

  /** Sheds waiters held too long and admits into free slots. Call now and then (a timer). */
  tick(now: number): Decision<T> {
    return this.fill(now);
  }

  private fill(now: number): Decision<T> {
    const out = this.expire(now);
    while (this.inFlight.size < this.limits.maxInFlight && this.waiters.size > 0) {
      const w = this.next('newest')!;
      this.admit(w.item, w.since, now);
      out.admit.push(w.item);
    }
    this.count();
    return out;
  }

  /** Takes the oldest or newest live waiter out of the queue (dropping marked ones on the way). */
  private next(end: 'oldest' | 'newest'): Waiter<T> | undefined {
    for (;;) {
      const w = end === 'oldest' ? this.queue.shift() : this.queue.pop();
      if (w === undefined) return undefined;
      if (w.gone) continue;
      this.waiters.delete(w.item);
      return w;
    }
  }

  private expire(now: number): Decision<T> {
    const out: Decision<T> = { admit: [], shed: [] };
    for (;;) {
      const head = this.queue[0];
      if (head === undefined || (!head.gone && now - head.since < this.limits.maxWaitMs)) break;
      this.queue.shift();
      if (head.gone) continue;
      this.waiters.delete(head.item);
      out.shed.push(head.item);
      this.stats.shed++;
    }
    return out;
  }

  private admit(item: T, since: number, now: number): void {
    this.inFlight.add(item);
    this.stats.admitted++;
    if (now > since) {
      this.stats.waited++;
      this.stats.longestWaitMs = Math.max(this.stats.longestWaitMs, now - since);
    }
  }

  private count(): void {
    this.stats.inFlight = this.inFlight.size;
    this.stats.waiting = this.waiters.size;
  }
}

interface Waiter<T> {
  item: T;
  since: number;
  /** Its client left while it waited. */
  gone: boolean;
}

type SniCallback = (servername: string, cb: (err: Error | null, ctx?: undefined) => void) => void;

/**
 * An SNI callback for an https server that holds agents' handshakes under `admission`, and a function
 * that stops its timer. Other server names (and connections without one, which never reach it) go on
 * with the server's own context at once.
 */
export function sniAdmission(admission: Admission<TLSSocket>, now: () => number = () => performance.now()): { SNICallback: SniCallback; stop: () => void } {
  const resume = new Map<TLSSocket, () => void>();
  const apply = (d: Decision<TLSSocket>): void => {
    for (const s of d.shed) {
      resume.delete(s);
      s.destroy();
    }
    for (const s of d.admit) {
      const go = resume.get(s);
      resume.delete(s);
      go?.();
    }
  };
  // Waiters are shed on time even when no handshake ends (a stalled loop, clients that never leave).
  const timer = setInterval(() => apply(admission.tick(now())), 250);
  timer.unref();
  // A function, not an arrow: Node calls it as a method of the server-side TLSSocket.
  const SNICallback = function (this: TLSSocket, servername: string, cb: (err: Error | null, ctx?: undefined) => void): void {
    if (servername !== AGENT_SERVER_NAME) {
      cb(null);
      return;
    }
    let ended = false;
    const end = (): void => {
      if (ended) return;
      ended = true;
      resume.delete(this);
      apply(admission.done(this, now()));
    };
    this.once('secure', end);
    this.once('close', end);
    resume.set(this, () => cb(null));
    apply(admission.arrive(this, now()));
  };
  return { SNICallback, stop: () => clearInterval(timer) };
}
