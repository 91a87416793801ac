// The autoscaler's runner: the leader-only loop that feeds decide() (decide.ts) and writes its changes.
// See docs/design/autoscaling.md.
//
// * Every tick (1 s) it reads the services that carry `spec.autoscale`, takes the latest usage report
//   of each of their running tasks from the leader's usage table (agents send one every 5 s; the
//   dispatcher keeps the last per task), keeps the new ones as samples, and calls decide().
// * A change is written in ONE transaction: the replica count (spec.mode.replicated.replicas, as
//   `service scale` does: no new spec version, no task is replaced) and `status.autoscale` = { time,
//   from, to, reason }, from which every manager derives an `autoscale` event. The write re-checks that
//   the count is still the one decided from (a user's scale in between wins) and the cluster's task budget.
// * Memory: samples and recommendations live only in this leader's memory. A manager that becomes leader
//   starts with none (usage it received before it led is ignored), so it scales in only after a full
//   window of its own observations; cooldowns count from status.autoscale, which is replicated.
import { CLUSTER_ID } from '../../api/objects.ts';
import type { AutoscaleSpec, Service, Task } from '../../api/objects.ts';
import { LimitExceededError } from '../store/errors.ts';
import { checkTaskBudget, limitsOf } from '../store/limits.ts';
import { ConflictError } from '../store/store.ts';
import type { Store } from '../store/store.ts';
import { SAMPLE_SPAN_MS, decide } from './decide.ts';
import type { AutoscaleTask, Recommendation, UsageSample } from './decide.ts';

/** How often the leader re-evaluates every autoscaled service. */
export const AUTOSCALE_TICK_MS = 1000;
/** Samples kept per task: what decide() reads (SAMPLE_SPAN_MS) and a margin. */
const KEEP_SAMPLES_MS = 3 * SAMPLE_SPAN_MS;

/** The latest usage the leader has for a task (RemoteCalls.usageOf). */
export type UsageOf = (taskId: string) => { cpuPercent?: number; memoryBytes: number; at: string } | undefined;

export interface AutoscaleRunnerOptions {
  usageOf: UsageOf;
  /** Clock, ms since the epoch. Default Date.now. */
  now?: () => number;
  tickMs?: number;
  log?: (line: string) => void;
}

/** What the runner remembers about one service while this manager leads. */
interface Tracked {
  /** The policy the history was computed for: a changed policy starts over. */
  policy: string;
  since: number;
  samples: Map<string, UsageSample[]>;
  lastAt: Map<string, number>;
  history: Recommendation[];
  /** The last reason logged for a held change that could not be written (logged once). */
  blocked?: string;
}

/** A service's last decision as the runner made it (for diagnostics; the store holds the last change). */
export interface AutoscaleView {
  serviceId: string;
  replicas: number;
  recommendation: number;
  reason: string;
  at: number;
}

export class AutoscaleRunner {
  private timer: NodeJS.Timeout | null = null;
  private busy = false;
  private leaderSince = 0;
  private readonly tracked = new Map<string, Tracked>();
  private readonly views = new Map<string, AutoscaleView>();
  private readonly now: () => number;
  private readonly log: (line: string) => void;

  constructor(
    private readonly store: Store,
    private readonly o: AutoscaleRunnerOptions,
  ) {
    this.now = o.now ?? Date.now;
    this.log = o.log ?? (() => {});
  }

  start(): void {
    if (this.timer) return;
    this.leaderSince = this.now();
    this.timer = setInterval(() => void this.tick().catch((e) => this.log(`autoscale: ${(e as Error).message}`)), this.o.tickMs ?? AUTOSCALE_TICK_MS);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.tracked.clear();
    this.views.clear();
  }

  /** The last decision per autoscaled service (this leader only). */
  lastDecision(serviceId: string): AutoscaleView | undefined {
    return this.views.get(serviceId);
  }

  /** One pass over every autoscaled service. */
  async tick(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      const now = this.now();
      const work = this.store.view((tx) =>
        (tx.list('service') as Service[])
          .filter((s) => s.spec.autoscale !== undefined && 'replicated' in s.spec.mode)
          .map((s) => ({ s, tasks: (tx.tasksByService(s.id) as Task[]).filter((t) => t.desiredState === 'running' && t.status.state === 'running') })),
      );
      const seen = new Set<string>();
      for (const { s, tasks } of work) {
        seen.add(s.id);
        await this.service(s, tasks, now);
      }
      for (const id of this.tracked.keys()) if (!seen.has(id)) this.tracked.delete(id);
      for (const id of this.views.keys()) if (!seen.has(id)) this.views.delete(id);
    } finally {
      this.busy = false;
    }
  }

  private track(s: Service, policy: AutoscaleSpec, now: number): Tracked {
    const key = JSON.stringify(policy);
    let t = this.tracked.get(s.id);
    if (!t || t.policy !== key) {
      t = { policy: key, since: now, samples: new Map(), lastAt: new Map(), history: [] };
      this.tracked.set(s.id, t);
    }
    return t;
  }

  private async service(s: Service, tasks: Task[], now: number): Promise<void> {
    const policy = s.spec.autoscale!;
    const replicas = (s.spec.mode as { replicated: { replicas: number } }).replicated.replicas;
    const tr = this.track(s, policy, now);
    const live = new Set<string>();
    const view: AutoscaleTask[] = [];
    for (const t of tasks) {
      live.add(t.id);
      const lim = t.spec.resources?.limits;
      view.push({ id: t.id, ...(lim?.nanoCpus ? { nanoCpus: lim.nanoCpus } : {}), ...(lim?.memoryBytes ? { memoryBytes: lim.memoryBytes } : {}) });
      const u = this.o.usageOf(t.id);
      if (!u) continue;
      const at = Date.parse(u.at);
      // Only reports received while this manager leads, each once.
      if (!(at >= this.leaderSince) || at <= (tr.lastAt.get(t.id) ?? -Infinity)) continue;
      tr.lastAt.set(t.id, at);
      const l = tr.samples.get(t.id) ?? [];
      l.push({ at, cpuPercent: u.cpuPercent, memoryBytes: u.memoryBytes });
      tr.samples.set(t.id, l);
    }
    for (const [id, l] of tr.samples) {
      if (!live.has(id)) {
        tr.samples.delete(id);
        tr.lastAt.delete(id);
        continue;
      }
      while (l.length > 0 && l[0]!.at < now - KEEP_SAMPLES_MS) l.shift();
    }
    const st = s.status.autoscale;
    const d = decide({
      policy,
      replicas,
      tasks: view,
      samples: tr.samples,
      history: tr.history,
      observingSince: Math.max(tr.since, this.leaderSince),
      last: st ? { at: Date.parse(st.time), from: st.from, to: st.to } : undefined,
      now,
    });
    tr.history = d.history;
    this.views.set(s.id, { serviceId: s.id, replicas, recommendation: d.recommendation, reason: d.reason, at: now });
    if (!d.changed) return;
    const to = d.replicas;
    try {
      await this.store.update((tx) => {
        const cur = tx.get('service', s.id) as Service | undefined;
        if (!cur?.spec.autoscale || !('replicated' in cur.spec.mode) || cur.spec.mode.replicated.replicas !== replicas) return; // changed meanwhile
        if (to > replicas) checkTaskBudget(tx.count('task'), to - replicas, limitsOf(tx.get('cluster', CLUSTER_ID)?.spec), 'autoscale');
        tx.update({
          ...cur,
          spec: { ...cur.spec, mode: { replicated: { replicas: to } } },
          status: { ...cur.status, autoscale: { time: new Date(now).toISOString(), from: replicas, to, reason: d.reason } },
        } as Service);
      });
      tr.blocked = undefined;
      this.log(`autoscale: service ${s.spec.name}: ${d.reason}`);
    } catch (e) {
      if (e instanceof ConflictError) return; // another writer won: decide again on the next tick
      if (e instanceof LimitExceededError) {
        const why = `service ${s.spec.name}: cannot scale to ${to}: ${e.message}`;
        if (tr.blocked !== why) this.log(`autoscale: ${why}`);
        tr.blocked = why;
        return;
      }
      throw e;
    }
  }
}
