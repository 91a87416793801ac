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
// handshake is held. Connections without that name are never held. Held handshakes are admitted a few
// per turn of the event loop:
//
//     ClientHello ──► waiting ──(each turn: up to perTurn, newest first)──► admitted: the handshake goes on
//                        └──► shed: its client left, it waited maxWaitMs, or the queue is full
//
// Per turn, not a number in flight: a handshake in flight mostly waits for its client (a farm at nice 19
// answered in hundreds of ms), and 32 in flight let only ≈ 54 sessions a second through a leader that can
// take ≈ 300 (bench:scale, 5,000 joins: 221 s instead of 100). A turn's admissions are a bounded amount
// of work ahead of whatever else the loop has, and a loop with nothing else to do turns as fast as it can
// handshake: the rate follows the CPU left over.
//
// Newest first, because under overload the oldest waiters are the ones whose clients are about to give up
// (an agent waits at least AGENT_HANDSHAKE_TIMEOUT_MS, then dials again): serving them first is how a queue ends up
// doing only work nobody waits for. A waiter whose client leaves costs nothing more: Node sees the reset
// and closes the socket while it is held. The class below is the policy alone (no sockets, no clock);
// `sniAdmission` wires it to Node's SNI callback.
import type { TLSSocket } from 'node:tls';
import { AGENT_HANDSHAKE_TIMEOUT_MS, AGENT_SERVER_NAME } from '../api/dispatcher.ts';

export interface AdmissionLimits {
  /**
   * Agent handshakes admitted per turn of the event loop. Each costs ≈ 0.35 ms when admitted (the server's
   * key share and signature) and ≈ 3 ms in all with its hello (scale.md): 5 are ≈ 15 ms of work per turn,
   * which lets a loop with nothing else to do take ≈ 300 a second, this machine's whole capacity.
   */
  perTurn: number;
  /** Handshakes held at once; beyond, the oldest is shed. */
  maxWaiting: number;
  /**
   * A waiter held this long is shed. Two thirds of an agent's shortest handshake timeout
   * (AGENT_HANDSHAKE_TIMEOUT_MS): one admitted later would likely give up before the handshake and its
   * upgrade are done, after the manager did the work (a run admitted agents after 2.9 s of waiting).
   * A shed agent sees a reset and dials again after its backoff, at the cost of a ClientHello.
   */
  maxWaitMs: number;
}

export const DEFAULT_ADMISSION: AdmissionLimits = { perTurn: 5, maxWaiting: 4096, maxWaitMs: (AGENT_HANDSHAKE_TIMEOUT_MS * 2) / 3 };

export interface AdmissionStats {
  /** Handshakes let through. */
  admitted: number;
  /** The longest wait of an admitted handshake (ms). */
  longestWaitMs: number;
  /** Waiters dropped: the client left while held. */
  left: number;
  /** Waiters dropped: held maxWaitMs, or pushed out of a full queue. */
  shed: number;
  /** Waiting now. */
  waiting: number;
}

/** What to do now: admit these, shed these. */
export interface Decision<T> {
  admit: T[];
  shed: T[];
}

/** The admission policy over opaque items (sockets in production). Pure: the caller passes the time. */
export class Admission<T> {
  readonly stats: AdmissionStats = { admitted: 0, longestWaitMs: 0, left: 0, shed: 0, waiting: 0 };
  /** Oldest first; admitted from the end. Entries whose client left stay, marked, until reached. */
  private queue: Waiter<T>[] = [];
  private readonly waiters = new Map<T, Waiter<T>>();

  constructor(readonly limits: AdmissionLimits = DEFAULT_ADMISSION) {
    if (!(limits.perTurn >= 1) || !(limits.maxWaiting >= 1) || !(limits.maxWaitMs > 0)) {
      throw new RangeError(`admission limits must be positive: ${JSON.stringify(limits)}`);
    }
  }

  /** A handshake arrives and waits for the next turn. Returns what a full queue pushed out. */
  arrive(item: T, now: number): T[] {
    const w: Waiter<T> = { item, since: now, gone: false };
    this.queue.push(w);
    this.waiters.set(item, w);
    const shed: T[] = [];
    if (this.waiters.size > this.limits.maxWaiting) {
      shed.push(this.next('oldest')!.item);
      this.stats.shed++;
    }
    this.stats.waiting = this.waiters.size;
    return shed;
  }

  /** Its client left (or the handshake ended some other way) while it waited: forget it. */
  left(item: T): void {
    const w = this.waiters.get(item);
    if (!w) return;
    w.gone = true;
    this.waiters.delete(item);
    this.stats.left++;
    this.stats.waiting = this.waiters.size;
  }

  /** A turn of the event loop: sheds waiters held too long, admits up to perTurn, newest first. */
  turn(now: number): Decision<T> {
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
    while (out.admit.length < this.limits.perTurn) {
      const w = this.next('newest');
      if (w === undefined) break;
      out.admit.push(w.item);
      this.stats.admitted++;
      this.stats.longestWaitMs = Math.max(this.stats.longestWaitMs, now - w.since);
    }
    this.stats.waiting = this.waiters.size;
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
}

interface Waiter<T> {
  item: T;
  since: number;
  /** Its client left while it waited. */
  gone: boolean;
}

type SniCallback = (servername: string, cb: (err: Error | null, ctx?: undefined) => void) => void;

/**
 * An SNI callback for an https server that holds agents' handshakes under `admission`, admitting them
 * once per turn of the event loop (`schedule`: setImmediate; tests pass their own). Other server names
 * (and connections without one, which never reach it) go on with the server's own context at once.
 */
export function sniAdmission(
  admission: Admission<TLSSocket>,
  opts: { now?: () => number; schedule?: (fn: () => void) => void } = {},
): { SNICallback: SniCallback } {
  const now = opts.now ?? (() => performance.now());
  const schedule = opts.schedule ?? ((fn: () => void) => void setImmediate(fn));
  const resume = new Map<TLSSocket, () => void>();
  let scheduled = false;
  const pump = (): void => {
    scheduled = false;
    const d = admission.turn(now());
    for (const s of d.shed) {
      resume.delete(s);
      s.destroy();
    }
    for (const s of d.admit) {
      const go = resume.get(s);
      resume.delete(s);
      // The handshake goes on inside Node from here, outside the try of its own SNI call: whatever one
      // connection's handshake throws ends that connection, not the turn (nor the daemon).
      try {
        go?.();
      } catch {
        s.destroy();
      }
    }
    if (admission.stats.waiting > 0) wake();
  };
  const wake = (): void => {
    if (scheduled) return;
    scheduled = true;
    schedule(pump);
  };
  // A function, not an arrow: Node calls it as a method of the server-side TLSSocket.
  const SNICallback = function (this: TLSSocket, servername: string, cb: (err: Error | null, ctx?: undefined) => void): void {
    if (servername !== AGENT_SERVER_NAME) {
      cb(null);
      return;
    }
    this.once('close', () => {
      if (resume.delete(this)) admission.left(this);
    });
    resume.set(this, () => cb(null));
    for (const s of admission.arrive(this, now())) {
      resume.delete(s);
      s.destroy();
    }
    wake();
  };
  return { SNICallback };
}
