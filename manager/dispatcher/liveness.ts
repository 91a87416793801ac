// Which nodes have stopped heartbeating: a pure function of heartbeat times and the clock, owned by the
// leader's dispatcher. A new leader has heard from nobody yet, so every node gets a full grace window from
// the moment it took over.
//
// The period nodes are told (announced) may be longer than the configured one in a large cluster
// (heartbeatPeriodFor): each heartbeat costs the leader a TLS read, a decode and a reply, and 5,000 nodes
// at 1 s would be 5,000 of them a second. A node is Down once it was silent for the announced period plus
// (missedLimit − 1) configured periods: the same slack for a late heartbeat as with the configured period
// alone (3 missed periods when both are equal), so Down stays within announced + 2 s by default.
import type { NodeId } from '../raft/types.ts';

/** Heartbeats per second the leader is sized for; beyond that the announced period grows. */
export const HEARTBEAT_BUDGET_PER_SEC = 2_000;
/**
 * The announced period never grows past this by itself (an operator may configure a longer one): with
 * 2 configured periods of slack (1 s by default) a dead node is Down within 4.5 s, under issue 17's 5 s.
 */
export const MAX_ADAPTIVE_PERIOD_MS = 2_500;

/**
 * The period to announce to `nodes` heartbeating nodes: the configured one, or longer when that many
 * nodes at it would exceed `budgetPerSec` heartbeats a second (at most MAX_ADAPTIVE_PERIOD_MS, never
 * shorter than configured). Rounded up to 100 ms, so a few nodes more or less do not re-time every agent.
 */
export function heartbeatPeriodFor(configuredMs: number, nodes: number, budgetPerSec = HEARTBEAT_BUDGET_PER_SEC): number {
  const wanted = Math.ceil((nodes * 1000) / budgetPerSec / 100) * 100;
  return Math.max(configuredMs, Math.min(wanted, MAX_ADAPTIVE_PERIOD_MS));
}

/**
 * Reconnects a new leader is sized to absorb per second. Every node of the cluster lost its session with
 * the old leader and must open one with the new leader (a TLS handshake, a hello, its assignments and
 * views). With only the usual deadline (3 s) a new leader of 1,000 nodes marked 650-1,000 live nodes
 * Down while they queued to reconnect (bench:scale, leader kill), and each Down node's tasks are fair
 * game for rescheduling.
 */
export const TAKEOVER_RECONNECTS_PER_SEC = 200;
/**
 * The least extra time a new leader gives the nodes it inherits. With 5 s per 1,000 nodes, 1,000 nodes
 * still left 170-280 marked Down in runs where part of the agents waited 10 s and more to be accepted
 * (docs/design/scale.md, failover); Swarm gives every node 3 heartbeats of 5 s after a change of leader.
 */
export const MIN_TAKEOVER_GRACE_MS = 12_000;
/** The extra takeover window never grows past this. */
export const MAX_TAKEOVER_GRACE_MS = 60_000;

/**
 * How much longer than the usual deadline a new leader waits for the nodes it inherits: the time for
 * `nodes` reconnects at TAKEOVER_RECONNECTS_PER_SEC, at least MIN_TAKEOVER_GRACE_MS (none for a cluster
 * without nodes) and at most MAX_TAKEOVER_GRACE_MS: 12 s up to 2,400 nodes, 25 s at 5,000.
 */
export function takeoverGraceMs(nodes: number, perSec = TAKEOVER_RECONNECTS_PER_SEC): number {
  if (nodes === 0) return 0;
  return Math.min(MAX_TAKEOVER_GRACE_MS, Math.max(MIN_TAKEOVER_GRACE_MS, Math.ceil((nodes * 1000) / perSec)));
}

/** Reconnects a second the agents aim at when they spread them (a little over the takeover budget). */
export const RECONNECT_SPREAD_PER_SEC = 250;
/** Spreads are announced in steps of this, so a few nodes more or less do not re-time every agent. */
export const RECONNECT_SPREAD_STEP_MS = 5_000;

/**
 * Over how long the agents of a cluster of `nodes` spread their reconnects when their leader is gone
 * (announced with the heartbeat period; worker/reconnect.ts). Each agent used to redial within one
 * heartbeat period (2.5 s at 5,000 nodes): ≈ 2,000 TLS handshakes a second on the survivors, first as
 * "not leader" probes that slowed the election itself (7.3 s), then on the new leader, whose listen
 * queue overflowed 28,209 times while it marked 37 live nodes Down (bench:scale, December 7). Spread at
 * RECONNECT_SPREAD_PER_SEC the last agent arrives before the takeover window (takeoverGraceMs, sized at
 * 200 a second) ends. 0 (no spread beyond the heartbeat period) below 2,500 nodes, where a period
 * already keeps the rate near that.
 */
export function reconnectSpreadMs(nodes: number, perSec = RECONNECT_SPREAD_PER_SEC): number {
  const ms = (nodes * 1000) / perSec;
  if (ms < 2 * RECONNECT_SPREAD_STEP_MS) return 0;
  return Math.min(MAX_TAKEOVER_GRACE_MS, Math.floor(ms / RECONNECT_SPREAD_STEP_MS) * RECONNECT_SPREAD_STEP_MS);
}

export class NodeLiveness {
  private lastSeen = new Map<NodeId, number>();
  private announcedMs: number;
  private configuredMs: number;
  /** A longer period announced before the current one, still honoured until `until` (ms). */
  private held: { ms: number; until: number } | null = null;

  constructor(
    periodMs: number,
    private readonly missedLimit = 3,
  ) {
    this.announcedMs = periodMs;
    this.configuredMs = periodMs;
  }

  /**
   * The period nodes are told and the configured one (the same unless the cluster is large). When the
   * announced period shrinks, nodes still heartbeating at the longer one hear of it only with their
   * next reply: the longer deadline holds for one more (old) deadline from `now`.
   */
  setPeriod(announcedMs: number, configuredMs = announcedMs, now = 0): void {
    // (Nobody tracked yet, as when leadership starts: no node can be on the longer period.)
    if (announcedMs < this.announcedMs && this.lastSeen.size > 0) {
      const ms = Math.max(this.announcedMs, this.held && now < this.held.until ? this.held.ms : 0);
      this.held = { ms, until: now + this.deadlineFor(ms) };
    }
    this.announcedMs = announcedMs;
    this.configuredMs = configuredMs;
  }

  private deadlineFor(announcedMs: number): number {
    return announcedMs + (this.missedLimit - 1) * this.configuredMs;
  }

  /** Silence after which a node is Down (with the current periods; a held longer one may add to it). */
  get deadlineMs(): number {
    return this.deadlineFor(this.announcedMs);
  }

  /**
   * Leadership gained at `now`: nodes believed alive get a full window before they can expire, plus
   * `graceMs` (takeoverGraceMs) for all of them to reconnect.
   */
  startTracking(nodes: NodeId[], now: number, graceMs = 0): void {
    for (const n of nodes) this.lastSeen.set(n, now + graceMs);
  }

  heartbeat(node: NodeId, now: number): void {
    this.lastSeen.set(node, now);
  }

  forget(node: NodeId): void {
    this.lastSeen.delete(node);
  }

  isTracked(node: NodeId): boolean {
    return this.lastSeen.has(node);
  }

  /**
   * The leader itself did not run from `fromMs` to `toMs` (its event loop was blocked, or its process got
   * no CPU): heartbeats that arrived meanwhile wait unread in socket buffers, and Node runs the timer
   * that checks deadlines before it reads them. That time is not the nodes' silence, so every tracked
   * node's last heartbeat moves forward by it. Without this, one 2 s stall of a leader of 5,000 nodes
   * marked 1,085 live nodes Down at once (bench:scale, December 7), and writing that cost it its term.
   */
  leaderStalled(fromMs: number, toMs: number): void {
    const gap = toMs - fromMs;
    if (!(gap > 0)) return;
    for (const [id, t] of this.lastSeen) this.lastSeen.set(id, Math.max(t, Math.min(t + gap, toMs)));
  }

  /**
   * Nodes whose last heartbeat is older than the deadline, at most `max` of them (the longest silent
   * first); they stop being tracked.
   */
  expired(now: number, max = Number.POSITIVE_INFINITY): NodeId[] {
    let out = this.overdue(now);
    if (out.length > max) out = out.sort((a, b) => this.lastSeen.get(a)! - this.lastSeen.get(b)!).slice(0, max);
    for (const id of out) this.lastSeen.delete(id);
    return out;
  }

  /** Nodes whose last heartbeat is older than the deadline, still tracked. */
  overdue(now: number): NodeId[] {
    const out: NodeId[] = [];
    if (this.held && now >= this.held.until) this.held = null;
    const limit = this.deadlineFor(Math.max(this.announcedMs, this.held?.ms ?? 0));
    for (const [id, t] of this.lastSeen) if (now - t > limit) out.push(id);
    return out;
  }

  /** How many nodes are tracked (the population a mass silence is judged against). */
  get trackedCount(): number {
    return this.lastSeen.size;
  }
}

/**
 * Below this many nodes silent at once, each is judged on its own (Kubernetes' node lifecycle controller
 * treats clusters under 50 nodes the same way: `large-cluster-size-threshold`).
 */
export const MASS_SILENCE_MIN_NODES = 50;
/** The share of tracked nodes silent at once beyond which the leader suspects itself first. */
export const MASS_SILENCE_FRACTION = 0.2;

/**
 * Once a mass silence has outlasted its hold, the share of tracked nodes marked Down per deadline (the
 * longest silent first, at least MASS_SILENCE_MIN_NODES), until fewer are silent than a mass.
 */
export const MASS_DOWN_PER_DEADLINE = 0.1;
/** A mass silence that lasts this many deadlines from its first hold is marked Down whole. */
export const MASS_MAX_DEADLINES = 5;

export type DownDecision =
  | { mark: 'all' }
  | { mark: 'some'; max: number; holdUntil: number; reason: string }
  /** reconnecting: held because sessions are still being started (the 5-deadline bound restarts). */
  | { mark: 'none'; holdUntil: number; reason: string; reconnecting?: true };

/**
 * Whether to mark Down the nodes that are overdue now, or hold them one more deadline. Pure.
 *
 * When many nodes fall silent in the same instant, the likeliest cause is on the leader's side (its
 * CPU, its network, its own stall not caught by leaderStalled), not that many machines died together;
 * and marking them Down moves all their tasks and writes one store update each, which is what a
 * struggling leader can least afford (at 5,000 nodes that write lost the leader its term, and the new
 * leader's reconnect storm made the next silence). So a mass silence (at least MASS_SILENCE_MIN_NODES
 * nodes and MASS_SILENCE_FRACTION of those tracked) is held for one deadline: nodes that were only
 * unheard heartbeat again and are never marked. If a mass is still silent when the hold ends, the
 * longest silent of them are marked, MASS_DOWN_PER_DEADLINE of the tracked nodes per deadline, until
 * what is left is no longer a mass, then all of it; and all of it anyway MASS_MAX_DEADLINES deadlines
 * after the first hold: a real outage of any size is Down within six deadlines (27 s at the default
 * 4.5 s), the longest silent first. While nodes are still starting sessions with this leader (a hello
 * within the last deadline), a mass is held one more deadline at a time, up to MAX_TAKEOVER_GRACE_MS
 * from the first hold: a new leader that cannot take 5,000 reconnects within its takeover window (its
 * listen queue overflowed) is the one behind, and marking the nodes still queued moved their tasks and
 * made it further behind (bench:scale, December 7). Why not all at once: after a leader kill at 5,000
 * nodes, with the simulated nodes' heartbeats seconds late, the new leader held a mass of 2,884 silent
 * nodes; once Down was written in batches, the end of that hold would mark them all in one go, ≈ 86,000
 * tasks (30 per node) to move on a leader already behind (Kubernetes' node lifecycle controller likewise
 * slows evictions when a large share of nodes is unhealthy). One hold
 * at a time: silences that start during a hold are judged when it ends, so repeated holds cannot
 * postpone a real outage for ever.
 */
export function downDecision(i: {
  overdue: number;
  tracked: number;
  now: number;
  deadlineMs: number;
  heldUntil: number | null;
  /** When the current mass silence was first held, or last held for reconnects (with heldUntil). */
  heldSince?: number;
  /** When it was first held, whatever came after (the bound of holds for reconnects). */
  firstHeldAt?: number;
  /** When a node last started a session with this leader (its hello). */
  lastSessionAt?: number;
}): DownDecision {
  if (i.overdue === 0) return { mark: 'all' };
  const mass = i.overdue >= MASS_SILENCE_MIN_NODES && i.overdue >= MASS_SILENCE_FRACTION * i.tracked;
  if (i.heldUntil !== null) {
    if (i.now < i.heldUntil) return { mark: 'none', holdUntil: i.heldUntil, reason: 'held' };
    const max = Math.max(MASS_SILENCE_MIN_NODES, Math.floor(MASS_DOWN_PER_DEADLINE * i.tracked));
    const since = i.heldSince ?? i.heldUntil - i.deadlineMs;
    const first = i.firstHeldAt ?? since;
    if (mass && i.lastSessionAt !== undefined && i.now - i.lastSessionAt <= i.deadlineMs && i.now - first < MAX_TAKEOVER_GRACE_MS) {
      return {
        mark: 'none',
        holdUntil: i.now + i.deadlineMs,
        reason: `${i.overdue} of ${i.tracked} nodes still silent while nodes are still starting sessions: holding Down another ${i.deadlineMs} ms`,
        reconnecting: true,
      };
    }
    if (!mass || i.overdue <= max || i.now - since >= MASS_MAX_DEADLINES * i.deadlineMs) return { mark: 'all' };
    return {
      mark: 'some',
      max,
      holdUntil: i.now + i.deadlineMs,
      reason: `${i.overdue} of ${i.tracked} nodes still silent after a hold: marking the ${max} silent longest Down, the rest judged in ${i.deadlineMs} ms`,
    };
  }
  if (!mass) return { mark: 'all' };
  return {
    mark: 'none',
    holdUntil: i.now + i.deadlineMs,
    reason: `${i.overdue} of ${i.tracked} nodes went silent at once: holding Down for ${i.deadlineMs} ms (the leader may be the one behind)`,
  };
}
