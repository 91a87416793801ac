// When an agent dials again after its session to a manager ended. Pure: the agent passes what it knows.
//
//   session was welcomed, then ended      the manager died or stepped down: every node of the cluster
//   (the leader died, or left)            lost its session at the same instant. Each waits a random part
//                                         of one heartbeat period, or of the reconnect spread a large
//                                         cluster's leader announced (20 s at 5,000 nodes), so the
//                                         survivors see the reconnects spread, not as one burst.
//   redirected to a known leader          at once.
//   "4001 not leader", no leader known    an election is under way, and none ends in less than a Raft
//                                         election timeout (1 s): wait at least NO_LEADER_BACKOFF_MS,
//                                         doubling up to MAX_BACKOFF_MS (a quarter of the spread, if
//                                         longer: 5,000 probes every 2 s slowed the election itself).
//   anything else (refused, TLS, timeout) exponential backoff from MIN_BACKOFF_MS to MAX_BACKOFF_MS.
//
// Why. At 1,000 nodes a killed leader's agents all redialled within 50 ms and then every 50, 100, 200,
// 400 ms...: ≈ 5 TLS handshakes per agent during a 2 s election, thousands a second on the two
// survivors, whose elections and control API then waited behind them (bench:scale, leader kill).
// Random jitter is "equal jitter": half the delay fixed, half random, so no agent dials at once.

export const MIN_BACKOFF_MS = 50;
export const MAX_BACKOFF_MS = 2000;
/** A follower that knows no leader is in an election: none is decided sooner than this (raft.md). */
export const NO_LEADER_BACKOFF_MS = 1000;

export interface ReconnectInput {
  /** The session that ended had been welcomed (the agent was ready on it). */
  wasReady: boolean;
  /** The WebSocket close code (1006 for a connection that failed). */
  code: number;
  /** The manager redirected us to a known leader before closing. */
  redirected: boolean;
  /** The current backoff (ms). */
  backoff: number;
  /** The heartbeat period the leader announced (ms). */
  periodMs: number;
  /** The reconnect spread the leader announced (ms; 0 or absent: none beyond the period). */
  spreadMs?: number;
  /** Uniform in [0, 1). */
  random: number;
}

/** The delay before the next dial, and the backoff after it. */
export function reconnectDelay(i: ReconnectInput): { delay: number; backoff: number } {
  const spread = i.spreadMs !== undefined && Number.isFinite(i.spreadMs) && i.spreadMs > 0 ? Math.min(i.spreadMs, MAX_SPREAD_MS) : 0;
  if (i.redirected) return { delay: 0, backoff: i.backoff };
  if (i.wasReady) return { delay: i.random * Math.max(i.periodMs, spread), backoff: MIN_BACKOFF_MS };
  const base = i.code === 4001 ? Math.max(i.backoff, NO_LEADER_BACKOFF_MS) : i.backoff;
  return { delay: base * (0.5 + i.random / 2), backoff: Math.min(base * 2, Math.max(MAX_BACKOFF_MS, spread / 4)) };
}

/** A spread announced longer than this (a confused or hostile manager) is taken as this. */
export const MAX_SPREAD_MS = 60_000;

/** The longest handshake timeout a large cluster's spread buys an agent (ms). */
export const MAX_HANDSHAKE_TIMEOUT_MS = 10_000;

/**
 * How long an agent waits for its TLS and WebSocket handshake: AGENT_HANDSHAKE_TIMEOUT_MS, or half the
 * reconnect spread the leader announced, up to MAX_HANDSHAKE_TIMEOUT_MS. A large cluster's new leader
 * takes every node's reconnect over the spread, a few hundred a second (scale.md); 3 s was too short for
 * a handshake admitted late on a loaded manager, and each agent that gave up had cost the manager a whole
 * handshake and came back for another (bench:scale, 5,000 nodes: 22,760 timed out over a run, 11,814 with this).
 */
export function handshakeTimeoutMs(spreadMs: number | undefined, base: number): number {
  const spread = spreadMs !== undefined && Number.isFinite(spreadMs) && spreadMs > 0 ? Math.min(spreadMs, MAX_SPREAD_MS) : 0;
  return Math.max(base, Math.min(spread / 2, MAX_HANDSHAKE_TIMEOUT_MS));
}
