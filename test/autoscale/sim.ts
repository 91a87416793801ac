// A small deterministic model of an autoscaled service for decide() tests: a load (total CPU demand in
// percent of one core, spread evenly over the running tasks, as a load balancer would), agents that report
// every 5 s (a task's first report carries no CPU figure, as on a real node), tasks that take a few
// seconds to start, and a tick of the autoscaler every second. No clock, no randomness except a seeded one.
import { decide } from '../../manager/autoscale/decide.ts';
import type { AutoscaleDecision, AutoscaleTask, Recommendation, UsageSample } from '../../manager/autoscale/decide.ts';
import type { AutoscaleSpec } from '../../api/objects.ts';

export interface SimOptions {
  policy: AutoscaleSpec;
  replicas: number;
  /** Seconds to run. */
  seconds: number;
  /** Total CPU demand at time t (s), percent of one core. */
  demand: (t: number) => number;
  /** Memory per task at time t (bytes), when the policy has a memory target. */
  memory?: (t: number, tasks: number) => number;
  /** Task limits. */
  nanoCpus?: number;
  memoryBytes?: number;
  /** A task (by its index, 0 = oldest) does not report at time t. */
  silent?: (index: number, t: number) => boolean;
  /** Relative noise on each sample, e.g. 0.08 for ±8% (seeded). */
  noise?: number;
  seed?: number;
  /** A leader change at this second: the new leader starts with no samples and no history (the last change is replicated). */
  leaderChangeAt?: number;
  /** Seconds a new task takes to start running. Default 3. */
  startS?: number;
}

export interface Change {
  t: number;
  from: number;
  to: number;
  reason: string;
}

export interface SimResult {
  changes: Change[];
  /** Replica count at the end. */
  replicas: number;
  /** The last decision (for its reason and figures). */
  last: AutoscaleDecision;
  /** Replica count per second. */
  timeline: number[];
}

/** mulberry32: a tiny seeded PRNG. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface SimTask {
  id: string;
  runningAt: number;
  reports: number;
  phase: number;
}

export function simulate(o: SimOptions): SimResult {
  const rand = prng(o.seed ?? 1);
  const startS = o.startS ?? 3;
  let next = 0;
  const mk = (runningAt: number): SimTask => ({ id: `t${next++}`, runningAt, reports: 0, phase: next % 5 });
  const tasks: SimTask[] = Array.from({ length: o.replicas }, () => mk(-60));
  let replicas = o.replicas;
  const samples = new Map<string, UsageSample[]>();
  let history: Recommendation[] = [];
  let last: { at: number; from: number; to: number } | undefined;
  const changes: Change[] = [];
  const timeline: number[] = [];
  let decision: AutoscaleDecision | undefined;
  let observingSince = 0;
  for (let t = 0; t <= o.seconds; t++) {
    if (t === o.leaderChangeAt) {
      samples.clear();
      history = [];
      observingSince = t;
      for (const k of tasks) k.reports = 0; // the new leader's first report of a task has no CPU rate yet
    }
    const running = tasks.filter((k) => k.runningAt <= t);
    // Agent reports, every 5 s per task.
    running.forEach((k, i) => {
      if ((t - k.phase) % 5 !== 0) return;
      if (o.silent?.(i, t)) return;
      k.reports++;
      const noise = o.noise ? 1 + (rand() * 2 - 1) * o.noise : 1;
      const s: UsageSample = { at: t * 1000 };
      if (k.reports > 1) s.cpuPercent = Math.max(0, (o.demand(t) / running.length) * noise);
      if (o.memory) s.memoryBytes = o.memory(t, running.length);
      const l = samples.get(k.id) ?? [];
      l.push(s);
      while (l.length > 0 && l[0]!.at < (t - 30) * 1000) l.shift();
      samples.set(k.id, l);
    });
    const view: AutoscaleTask[] = running.map((k) => ({
      id: k.id,
      ...(o.nanoCpus ? { nanoCpus: o.nanoCpus } : {}),
      ...(o.memoryBytes ? { memoryBytes: o.memoryBytes } : {}),
    }));
    decision = decide({
      policy: o.policy,
      replicas,
      tasks: view,
      samples,
      history,
      observingSince: observingSince * 1000,
      last,
      now: t * 1000,
    });
    history = decision.history;
    if (decision.changed) {
      changes.push({ t, from: replicas, to: decision.replicas, reason: decision.reason });
      last = { at: t * 1000, from: replicas, to: decision.replicas };
      if (decision.replicas > replicas) for (let i = replicas; i < decision.replicas; i++) tasks.push(mk(t + startS));
      else tasks.splice(decision.replicas);
      replicas = decision.replicas;
    }
    timeline.push(replicas);
  }
  return { changes, replicas, last: decision!, timeline };
}

/** `t=75 2→6` lines: a readable golden form of a run's changes. */
export function changeLines(r: SimResult): string[] {
  return r.changes.map((c) => `t=${c.t} ${c.from}→${c.to}`);
}
