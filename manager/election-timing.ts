// How long Raft followers wait for a leader before electing another, as the cluster's state grows.
//
// Why. A leader that holds its event loop longer than the election timeout sends no heartbeats meanwhile,
// and a follower that heard nothing for that long elects itself: the leader loses its term although it
// never failed. A leader's longest pieces of work grow with the state it manages: at 150,000 tasks an
// orchestrator pass over one service held the loop 0.4-0.5 s in process (bench:scale --store-only: a new
// leader's loops on a converged cluster, 432-523 ms) and 0.9-2.5 s on the loaded 2-core lab machine, a new
// leader's first pass (nothing kept from before) among the longest (bench:scale --profile, December 7).
// With the 1 s timeout every new leader lost its term in its first pass: terms 3 to 14 in one run.
// The fixed cure is a long timeout for everyone: Swarm's is 10 s (ElectionTick 10 × 1 s ticks). Shoal keeps
// 1 s where the work is small, for a fast failover, and lengthens it in proportion to the tasks in the
// store: 1 s more per 100,000 tasks, at most 5 times the base. Every manager applies the same store, so
// they agree on it within an entry or two; Raft's safety does not depend on timeouts, only its liveness.
// (It was 1 s per 60,000 until a new leader warmed its orchestrator up in steps and a steady pass over
// 150,000 slots halved: the longest stalls a lab leader then logged over a whole 5,000-node run, the
// takeover included, were 1.1-1.7 s, under the 2.5 s this gives at 150,000 tasks.)
//
// Nodes count too, TASKS_PER_NODE tasks each: a join costs the leader 8-14 ms of CPU and a task 0.46-0.62 ms
// (scale.md), and two of six 5,000-node runs lost their leader in the joins, at the 1 s timeout of an empty
// store (December 7, fourth pass).
//
// The cost: a leader that goes silent without dying is replaced that much later (3.5 s + jitter at 5,000
// nodes and 150,000 tasks). A leader whose process dies is not waited for: its peers' dials are refused and
// they campaign at once (RaftCore.leaderGone).
//
// Pure: the caller reads the task count and the services and applies the result (manager.ts).

/** Tasks per extra base timeout. */
export const TASKS_PER_STEP = 100_000;
/** What a node weighs, in tasks: a join is ≈ 20 times a task's leader CPU (scale.md, projected limits). */
export const TASKS_PER_NODE = 20;
/** The timeout never exceeds this many times the configured one. */
export const MAX_FACTOR = 5;
/** Results are rounded to this (ms), so the count moving by a few tasks changes nothing. */
const ROUND_MS = 250;

export interface ElectionTimeout {
  electionMs: number;
  jitterMs: number;
}

/**
 * The tasks the timeout is sized for: those in the store, or those the services ask for when more (the
 * replicas of replicated services, one per node for global ones), plus TASKS_PER_NODE per node. A
 * 150,000-replica service is created with no task yet, and the leader's passes that create them come at
 * once: with the timeout sized for the empty store (1 s), a leader lost its term 3 s into such a create
 * (bench:scale, December 7).
 */
export function tasksToSizeFor(inStore: number, services: readonly { spec: { mode: unknown } }[], nodes: number): number {
  let wanted = 0;
  for (const s of services) {
    const m = s.spec.mode as { replicated?: { replicas?: unknown }; global?: unknown };
    if (m.replicated !== undefined) {
      const r = Number(m.replicated.replicas);
      if (Number.isFinite(r) && r > 0) wanted += r;
    } else if (m.global !== undefined) wanted += nodes;
  }
  const n = Number.isFinite(nodes) && nodes > 0 ? nodes : 0;
  return Math.max(inStore, wanted) + n * TASKS_PER_NODE;
}

/** The election timeout for a store of `tasks` tasks, from the configured one (`base`). */
export function electionTimeoutFor(tasks: number, base: ElectionTimeout): ElectionTimeout {
  const t = Number.isFinite(tasks) && tasks > 0 ? tasks : 0;
  const factor = Math.min(MAX_FACTOR, 1 + t / TASKS_PER_STEP);
  if (factor <= 1) return { ...base };
  const round = (ms: number) => Math.max(ROUND_MS, Math.round(ms / ROUND_MS) * ROUND_MS);
  return { electionMs: Math.max(base.electionMs, round(base.electionMs * factor)), jitterMs: Math.max(base.jitterMs, round(base.jitterMs * factor)) };
}
