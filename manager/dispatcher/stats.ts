// The dispatcher's counters, served at GET /v1/dispatcher/stats: how many node sessions came and went
// and why, what nodes sent, and what was dropped and for which reason. Sessions count for themselves
// (transport/session.ts); a closed session's counts are folded in here, so the totals survive it. Pure
// bookkeeping: no clock, no sockets. Every map is keyed by a small fixed vocabulary (violation codes,
// message types, disconnect causes), never by anything a node chooses freely.
import type { SessionCounters } from '../../transport/session.ts';
import type { DrainStats } from './drain.ts';

export interface DispatcherStats {
  sessions: { open: number; opened: number; closed: number };
  messages: { received: number; bytes: number; byType: Record<string, number> };
  dropped: { total: number; byReason: Record<string, number> };
  violations: number;
  handlerErrors: number;
  disconnects: { total: number; byReason: Record<string, number> };
  status: { queued: number; written: number };
  /** Hellos that wrote the node, and hellos from a node already ready as described (no write). */
  hellos: { written: number; unchanged: number };
  /**
   * Assignment messages sent: full sets, and changes only (dispatcher/assignments.ts); the tasks they
   * carried; the rounds that sent them, and the longest round.
   */
  assignments: { full: number; changes: number; tasks: number; rounds: number; longestRoundMs: number };
  sent: number;
  sendRefused: number;
  /** Stops held until every node had taken the task out of its tables (drain.ts). */
  drain: DrainStats;
}

/** A disconnect's cause, as a small fixed set of keys. */
export function disconnectReason(code: number, reason: string): string {
  if (code === 1008) return /slow consumer/.test(reason) ? 'slow-consumer' : 'violations';
  if (code === 1009) return 'oversized-frame';
  if (code === 1007) return 'invalid-utf8';
  if (code === 4001) return 'not-leader';
  if (code === 4002) return 'replaced';
  if (code === 4003) return 'removed';
  if (/^idle/.test(reason)) return 'idle';
  if (code === 1000 || code === 1001 || code === 1005) return 'peer-closed';
  if (/manager stopping/.test(reason)) return 'manager-stopping';
  return 'error';
}

/** Sums of the per-session counters that add up. */
interface SessionSums {
  received: number;
  bytes: number;
  violations: number;
  handlerErrors: number;
  sent: number;
  sendRefused: number;
  dropped: Record<string, number>;
}

function emptySums(): SessionSums {
  return { received: 0, bytes: 0, violations: 0, handlerErrors: 0, sent: 0, sendRefused: 0, dropped: {} };
}

function addSession(into: SessionSums, c: SessionCounters): void {
  into.received += c.received;
  into.bytes += c.bytesIn;
  into.violations += c.violations;
  into.handlerErrors += c.handlerErrors;
  into.sent += c.sent;
  into.sendRefused += c.sendRefused;
  addCounts(into.dropped, c.droppedByReason);
}

export class DispatcherCounters {
  private opened = 0;
  private closed = 0;
  private statusQueued = 0;
  private statusWritten = 0;
  private hellosWritten = 0;
  private hellosUnchanged = 0;
  private readonly assignmentsSent = { full: 0, changes: 0, tasks: 0, rounds: 0, longestRoundMs: 0 };
  private readonly byType: Record<string, number> = {};
  /** Drops decided by the dispatcher itself (unknown task, stale state, full queue, failed write). */
  private readonly dispatcherDropped: Record<string, number> = {};
  private readonly disconnects: Record<string, number> = {};
  /** Counts of sessions that have ended. */
  private readonly ended = emptySums();

  sessionOpened(): void {
    this.opened++;
  }

  /** Folds an ended session's counts in; returns the disconnect cause. */
  sessionClosed(code: number, reason: string, c: SessionCounters): string {
    this.closed++;
    addSession(this.ended, c);
    const why = disconnectReason(code, reason);
    bump(this.disconnects, why);
    return why;
  }

  message(type: string): void {
    bump(this.byType, type);
  }

  drop(reason: string, n = 1): void {
    bump(this.dispatcherDropped, reason, n);
  }

  statusQueuedOne(): void {
    this.statusQueued++;
  }

  statusWrote(n: number): void {
    this.statusWritten += n;
  }

  helloWrote(): void {
    this.hellosWritten++;
  }

  helloUnchanged(): void {
    this.hellosUnchanged++;
  }

  assignments(kind: 'full' | 'changes', tasks: number): void {
    this.assignmentsSent[kind]++;
    this.assignmentsSent.tasks += tasks;
  }

  /** A round of assignment messages took `ms`. */
  assignmentRound(ms: number): void {
    const a = this.assignmentsSent;
    a.rounds++;
    a.longestRoundMs = Math.max(a.longestRoundMs, Math.round(ms));
  }

  /** Totals: ended sessions plus the live ones. */
  snapshot(live: Iterable<SessionCounters>, open: number): Omit<DispatcherStats, 'drain'> {
    const s = emptySums();
    addCounts(s.dropped, this.ended.dropped);
    for (const k of ['received', 'bytes', 'violations', 'handlerErrors', 'sent', 'sendRefused'] as const) s[k] = this.ended[k];
    for (const c of live) addSession(s, c);
    addCounts(s.dropped, this.dispatcherDropped);
    return {
      sessions: { open, opened: this.opened, closed: this.closed },
      messages: { received: s.received, bytes: s.bytes, byType: { ...this.byType } },
      dropped: { total: sum(s.dropped), byReason: s.dropped },
      violations: s.violations,
      handlerErrors: s.handlerErrors,
      disconnects: { total: sum(this.disconnects), byReason: { ...this.disconnects } },
      status: { queued: this.statusQueued, written: this.statusWritten },
      hellos: { written: this.hellosWritten, unchanged: this.hellosUnchanged },
      assignments: { ...this.assignmentsSent },
      sent: s.sent,
      sendRefused: s.sendRefused,
    };
  }
}

function bump(m: Record<string, number>, key: string, n = 1): void {
  m[key] = (m[key] ?? 0) + n;
}

function addCounts(into: Record<string, number>, from: Record<string, number>): void {
  for (const [k, v] of Object.entries(from)) bump(into, k, v);
}

function sum(m: Record<string, number>): number {
  return Object.values(m).reduce((a, b) => a + b, 0);
}
