// Logical clock ticks from a late timer.
//
// Why. RaftCore counts time in ticks: an election starts after `electionTicks` ticks without a leader.
// RaftNode ticks from a 10 ms interval timer, and a timer only fires when the event loop is free. A
// manager busy with a reconnect storm (1,000 agents' TLS handshakes after the leader died) ran its timer
// every 30-50 ms, so "1 s without a leader" took 3-5 s of wall time: at 1,000 nodes a new leader was
// elected 4.4 s after the old one was killed. Counting the ticks that were due since the last one keeps
// the timeouts in wall time while the loop is merely slow.
//
// Bound. A loop blocked for a long stretch (a GC pause, a long synchronous pass) must not fire a whole
// election timeout at once on waking: the leader's heartbeats that arrived meanwhile are still unread in
// the socket, and this node would campaign before reading them. So at most MAX_CATCH_UP_TICKS are run
// per wake-up and older missed ticks are dropped: a slow loop is followed, a stalled one is not.

/** Ticks run at most per timer wake-up (100 ms at the default 10 ms tick: a tenth of an election timeout). */
export const MAX_CATCH_UP_TICKS = 10;

/**
 * How many ticks to run at `now`, given when the previous tick was due (`dueAt`, ms), and when the next
 * one is due. At least one tick per wake-up (the timer fired: at least one period passed, as far as it
 * knows), at most `cap`; when more were missed, the schedule restarts from now.
 */
export function ticksDue(dueAt: number, now: number, tickMs: number, cap = MAX_CATCH_UP_TICKS): { ticks: number; next: number } {
  const missed = Math.floor((now - dueAt) / tickMs) + 1;
  if (!(missed > 1)) return { ticks: 1, next: dueAt + tickMs };
  if (missed > cap) return { ticks: cap, next: now + tickMs };
  return { ticks: missed, next: dueAt + missed * tickMs };
}
