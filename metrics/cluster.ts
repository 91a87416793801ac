// Manager-side metrics read from the replicated store, the dispatcher's counters and the usage nodes
// report, at scrape time. Nothing here is updated as objects change: a scrape reads one consistent
// view, so the numbers always agree with `shoal service ls` / `node ls` at that moment, and an idle
// cluster costs nothing between scrapes.
//
// Cluster-wide numbers (tasks, services, nodes, scheduler, dispatcher, usage) are exported by the
// leader only: every manager holds the same store, and three managers reporting the same tasks would
// make sum() triple-count. Store object counts are exported by every manager: they are that replica's
// own view, and a lagging replica shows in them.
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { FAST_BUCKETS } from './registry.ts';

export interface TaskView {
  id: string;
  /** The service's name (bounded by the number of services). */
  service: string;
  node: string | null;
  state: string;
  /** status.message: for a pending task, why it is not placed. */
  message: string;
}

export interface DispatcherView {
  sessions: { open: number };
  messages: { byType: Record<string, number> };
  dropped: { byReason: Record<string, number> };
  /** Stops held for the nodes' tables (manager/dispatcher/drain.ts). */
  drain?: { holding: number; released: Record<string, number>; immediate: number; heldMs: number };
}

export interface UsageView {
  cpuPercent?: number;
  memoryBytes: number;
}

/** What the collectors read; the manager implements it over its store, dispatcher and usage table. */
export interface ClusterView {
  isLeader(): boolean;
  /** Objects per kind in this replica's store. */
  counts(): Record<string, number>;
  tasks(): readonly TaskView[];
  services(): readonly { name: string; updateState: string | null }[];
  nodes(): readonly { id: string; hostname: string; state: string; availability: string }[];
  dispatcher(): DispatcherView;
  usageOf(taskId: string): UsageView | undefined;
}

/** A pending task's status.message, reduced to a small fixed set of causes (a label must stay bounded). */
export function pendingReasonClass(message: string): string {
  if (message === '') return 'not-tried';
  if (/no nodes available/.test(message)) return 'no-nodes';
  if (/insufficient/.test(message)) return 'resources';
  if (/constraint/.test(message)) return 'constraints';
  if (/port/.test(message)) return 'ports';
  if (/drain|pause|down|not ready/.test(message)) return 'availability';
  if (/fail|repeatedly/.test(message)) return 'failures';
  return 'other';
}

const TASK_SETTLED_STATES = new Set(['complete', 'shutdown', 'failed', 'rejected', 'remove', 'orphaned']);

export class ClusterMetrics {
  private view: ClusterView | null = null;
  private readonly placements: Histogram;
  private readonly passes: Counter<'result'>;
  private readonly reconciles: Counter<'result'>;
  private readonly reconcileTime: Histogram;

  constructor(reg: Registry) {
    const self = this;
    const leaderView = (): ClusterView | null => (self.view?.isLeader() ? self.view : null);

    new Gauge({
      name: 'shoal_store_objects',
      help: "Objects in this manager's replica of the store, by kind.",
      labelNames: ['kind'],
      registers: [reg],
      collect() {
        this.reset();
        const v = self.view;
        if (v) for (const [kind, n] of Object.entries(v.counts())) this.set({ kind }, n);
      },
    });

    new Gauge({
      name: 'shoal_tasks',
      help: 'Tasks by service and state (leader only). Settled states are counted but not per service.',
      labelNames: ['service', 'state'],
      registers: [reg],
      collect() {
        this.reset();
        const v = leaderView();
        if (!v) return;
        const n = new Map<string, { service: string; state: string; n: number }>();
        for (const t of v.tasks()) {
          // History (finished tasks) can be long: count it per state only, so dead services leave no series.
          const service = TASK_SETTLED_STATES.has(t.state) ? '' : t.service;
          const k = `${service}\u0000${t.state}`;
          const cur = n.get(k);
          if (cur) cur.n++;
          else n.set(k, { service, state: t.state, n: 1 });
        }
        for (const e of n.values()) this.set({ service: e.service, state: e.state }, e.n);
      },
    });

    new Gauge({
      name: 'shoal_scheduler_pending_tasks',
      help: 'Tasks waiting for a node, by the class of reason the scheduler gave (leader only).',
      labelNames: ['reason'],
      registers: [reg],
      collect() {
        this.reset();
        const v = leaderView();
        if (!v) return;
        const by: Record<string, number> = {};
        for (const t of v.tasks()) if (t.state === 'pending') by[pendingReasonClass(t.message)] = (by[pendingReasonClass(t.message)] ?? 0) + 1;
        for (const [reason, n] of Object.entries(by)) this.set({ reason }, n);
      },
    });
    this.placements = new Histogram({
      name: 'shoal_scheduler_pass_duration_seconds',
      help: 'One scheduling pass: read the view, place the pending tasks, write the assignments.',
      buckets: FAST_BUCKETS,
      registers: [reg],
    });
    this.passes = new Counter({
      name: 'shoal_scheduler_tasks_total',
      help: 'Tasks handled by scheduling passes, by result (assigned, unplaced).',
      labelNames: ['result'],
      registers: [reg],
    });

    // The orchestrator's reconciles (manager/orchestrator/runner.ts): each one reads every task of its
    // service, so at scale their count and length are the leader's cost of a rolling update; one that
    // decided nothing is pure overhead.
    this.reconciles = new Counter({
      name: 'shoal_orchestrator_reconciles_total',
      help: 'Services reconciled by the orchestrator, by result (decided, nothing).',
      labelNames: ['result'],
      registers: [reg],
    });
    this.reconcileTime = new Histogram({
      name: 'shoal_orchestrator_reconcile_duration_seconds',
      help: "One service's reconcile: read its tasks and decide.",
      buckets: FAST_BUCKETS,
      registers: [reg],
    });

    new Gauge({
      name: 'shoal_services',
      help: 'Services by rolling-update state; "none" = never updated (leader only).',
      labelNames: ['update_state'],
      registers: [reg],
      collect() {
        this.reset();
        const v = leaderView();
        if (!v) return;
        const by: Record<string, number> = {};
        for (const s of v.services()) by[s.updateState ?? 'none'] = (by[s.updateState ?? 'none'] ?? 0) + 1;
        for (const [update_state, n] of Object.entries(by)) this.set({ update_state }, n);
      },
    });

    new Gauge({
      name: 'shoal_nodes',
      help: 'Nodes by state (ready, down, …) and availability (active, pause, drain) (leader only).',
      labelNames: ['state', 'availability'],
      registers: [reg],
      collect() {
        this.reset();
        const v = leaderView();
        if (!v) return;
        for (const n of v.nodes()) this.inc({ state: n.state, availability: n.availability });
      },
    });

    new Gauge({
      name: 'shoal_dispatcher_sessions',
      help: "Open node sessions on this manager's dispatcher (leader only).",
      registers: [reg],
      collect() {
        this.reset();
        const v = leaderView();
        if (v) this.set(v.dispatcher().sessions.open);
      },
    });
    // The dispatcher keeps its own totals (manager/dispatcher/stats.ts); these are read, not duplicated.
    // They restart from 0 when leadership moves, which rate()/increase() treat as a counter reset.
    new Counter({
      name: 'shoal_dispatcher_heartbeats_total',
      help: "Heartbeats received from nodes by this leader's dispatcher.",
      registers: [reg],
      collect() {
        this.reset();
        const v = leaderView();
        // Counted under the message's type on the wire, 'hb' (api/dispatcher.ts).
        if (v) this.inc(v.dispatcher().messages.byType['hb'] ?? 0);
      },
    });
    new Counter({
      name: 'shoal_dispatcher_messages_total',
      help: 'Messages received from nodes, by message type (a fixed protocol vocabulary).',
      labelNames: ['type'],
      registers: [reg],
      collect() {
        this.reset();
        const v = leaderView();
        if (v) for (const [type, n] of Object.entries(v.dispatcher().messages.byType)) this.inc({ type }, n);
      },
    });
    new Counter({
      name: 'shoal_dispatcher_dropped_messages_total',
      help: 'Messages from nodes dropped, by reason (rate limit, violation, stale state, …).',
      labelNames: ['reason'],
      registers: [reg],
      collect() {
        this.reset();
        const v = leaderView();
        if (v) for (const [reason, n] of Object.entries(v.dispatcher().dropped.byReason)) this.inc({ reason }, n);
      },
    });

    // The stop drain (manager/dispatcher/drain.ts): a stop of a task on a network waits until every node
    // has taken the task out of its load balancers. `deadline` releases mean a node did not acknowledge.
    new Gauge({
      name: 'shoal_dispatcher_stops_held',
      help: 'Task stops held right now until every node has taken the task out of its load balancers.',
      registers: [reg],
      collect() {
        this.reset();
        const d = leaderView()?.dispatcher().drain;
        if (d) this.set(d.holding);
      },
    });
    new Counter({
      name: 'shoal_dispatcher_stop_drains_total',
      help: 'Stops of tasks on networks, by how their hold ended: acknowledged, node-gone, deadline, or immediate (nothing to wait for).',
      labelNames: ['outcome'],
      registers: [reg],
      collect() {
        this.reset();
        const d = leaderView()?.dispatcher().drain;
        if (!d) return;
        for (const [outcome, n] of Object.entries(d.released)) this.inc({ outcome }, n);
        this.inc({ outcome: 'immediate' }, d.immediate);
      },
    });
    new Counter({
      name: 'shoal_dispatcher_stop_drain_seconds_total',
      help: 'Time held stops waited for the nodes, summed (divide by the released holds for the mean).',
      registers: [reg],
      collect() {
        this.reset();
        const d = leaderView()?.dispatcher().drain;
        if (d) this.inc(d.heldMs / 1000);
      },
    });

    // Usage is what nodes last reported (manager/api/remote.ts); tasks without a report are left out.
    const usageGauge = (name: string, help: string, labelNames: string[], pick: (u: UsageView) => number | undefined, byNode: boolean) =>
      new Gauge({
        name,
        help,
        labelNames,
        registers: [reg],
        collect() {
          this.reset();
          const v = leaderView();
          if (!v) return;
          const nodes = byNode ? new Map(v.nodes().map((n) => [n.id, n.hostname])) : null;
          const sums = new Map<string, number>();
          for (const t of v.tasks()) {
            if (t.state !== 'running') continue;
            const u = v.usageOf(t.id);
            const x = u ? pick(u) : undefined;
            if (x === undefined) continue;
            if (nodes) {
              const host = (t.node && nodes.get(t.node)) ?? t.node ?? '';
              sums.set(host, (sums.get(host) ?? 0) + x);
            } else this.set({ service: t.service, task: t.id }, x);
          }
          for (const [node, x] of sums) this.set({ node }, x);
        },
      });
    usageGauge(
      'shoal_task_cpu_percent',
      'CPU use of a running task as last reported, in percent of one core.',
      ['service', 'task'],
      (u) => u.cpuPercent,
      false,
    );
    usageGauge('shoal_task_memory_bytes', 'Memory use of a running task as last reported.', ['service', 'task'], (u) => u.memoryBytes, false);
    usageGauge('shoal_node_tasks_cpu_percent', 'Summed CPU use of the running tasks on a node, in percent of one core.', ['node'], (u) => u.cpuPercent, true);
    usageGauge('shoal_node_tasks_memory_bytes', 'Summed memory use of the running tasks on a node.', ['node'], (u) => u.memoryBytes, true);
  }

  /** Where the collectors read from; null while this daemon runs no manager. */
  source(view: ClusterView | null): void {
    this.view = view;
  }

  /** One scheduler pass (manager/scheduler/runner.ts onPass). */
  orchestratorReconcile(info: { ms: number; decided: boolean }): void {
    this.reconciles.inc({ result: info.decided ? 'decided' : 'nothing' });
    this.reconcileTime.observe(info.ms / 1000);
  }

  schedulerPass(info: { ms: number; assigned: number; unplaced: number }): void {
    this.placements.observe(info.ms / 1000);
    if (info.assigned > 0) this.passes.inc({ result: 'assigned' }, info.assigned);
    if (info.unplaced > 0) this.passes.inc({ result: 'unplaced' }, info.unplaced);
  }
}
