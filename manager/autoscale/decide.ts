// The autoscaler's decision, as a pure function: fed a service's autoscale policy, its replica count, the
// recent usage samples of its running tasks, the recommendations of the last window and the last change,
// it says how many replicas the service should have and why. The runner (runner.ts) gathers the samples
// on the leader and writes the change; nothing here touches a clock, the store or the network. See
// docs/design/autoscaling.md.
//
//   samples ──▶ utilisation per task ──▶ recommendation ──▶ history (one per tick, last windowMs)
//   (≤ SAMPLE_SPAN_MS, mean)  (% of limit)   ceil(Σ util / target), max over cpu and memory, in [min, max]
//                                                       │
//            ┌──────────────────────────────────────────┴───────────────────────────────────┐
//            ▼                                                                              ▼
//   scale out: the LOWEST recommendation of the last outWindow      scale in: the HIGHEST recommendation
//   (a spike shorter than that is ignored), > replicas;             of the last windowMs, < replicas; only
//   after cooldowns.outMs; at most max(4, replicas) more            with a full window observed by this
//                                                                   leader, no task missing its usage,
//                                                                   after cooldowns.inMs; keep ≥ half
//
// * Utilisation: cpu is the task's CPU use in percent of its CPU limit (of one core when it has none);
//   memory is its memory use in percent of its memory limit. A task's figure is the mean of its samples of
//   the last SAMPLE_SPAN_MS; a task with none is missing.
// * Recommendation (as the Kubernetes HPA): while the average is within TOLERANCE of the target, the
//   current count; above, ceil(Σ util / target), counting missing tasks as 0 and never below the current
//   count; below, ceil(Σ util / target) only when every replica reported, else the current count (never
//   scale in on missing data). Several targets: the largest recommendation. No data at all: current count.
// * A count outside [min, max] (just set, or the bounds changed) is brought inside at once, without
//   waiting for usage or cooldowns.
import type { AutoscaleSpec } from '../../api/objects.ts';

/** Kubernetes HPA's default tolerance (--horizontal-pod-autoscaler-tolerance 0.1): a ratio of usage to target within ±10% changes nothing. */
export const TOLERANCE = 0.1;
/** Kubernetes HPA's default scale-in stabilisation window (--horizontal-pod-autoscaler-downscale-stabilization, 5 min). */
export const DEFAULT_WINDOW_MS = 300_000;
/**
 * Scale out only on a recommendation that held for the whole out-window: min(this, windowMs / 4). 15 s is
 * the HPA's sync period (--horizontal-pod-autoscaler-sync-period): a load must last one period to count.
 */
export const OUT_WINDOW_MS = 15_000;
/**
 * Shoal's choice: new tasks must start and send two usage reports (agents report every 5 s, worker/agent.ts)
 * before their effect on the average can be seen; scaling out again earlier would overshoot.
 */
export const DEFAULT_COOLDOWN_OUT_MS = 30_000;
/** Shoal's choice: between two scale-in steps, time for the remaining tasks' usage to show the new load. */
export const DEFAULT_COOLDOWN_IN_MS = 60_000;
/** A task's utilisation is the mean of its samples of this span: the last two agent reports (5 s apart). */
export const SAMPLE_SPAN_MS = 10_000;
/** Kubernetes HPA's default scale-up policy: at most 4 pods or 100% more per step, whichever is larger. */
export const OUT_STEP_MIN = 4;

export function defaultAutoscale(): Pick<AutoscaleSpec, 'windowMs' | 'cooldowns'> {
  return { windowMs: DEFAULT_WINDOW_MS, cooldowns: { outMs: DEFAULT_COOLDOWN_OUT_MS, inMs: DEFAULT_COOLDOWN_IN_MS } };
}

export function outWindowMs(p: Pick<AutoscaleSpec, 'windowMs'>): number {
  return Math.min(OUT_WINDOW_MS, p.windowMs / 4);
}

// ------------------------------------------------------------------------------------------- inputs

/** One usage report of one task, as the leader received it. */
export interface UsageSample {
  /** ms, same clock as AutoscaleInput.now. */
  at: number;
  /** CPU use in percent of one core over the node's last report period; absent on a task's first report. */
  cpuPercent?: number | undefined;
  memoryBytes?: number | undefined;
}

/** A running task of the service and its limits (they turn usage into percentages). */
export interface AutoscaleTask {
  id: string;
  /** task.resources.limits.nanoCpus; absent: one core. */
  nanoCpus?: number | undefined;
  /** task.resources.limits.memoryBytes; absent: no memory figure for this task. */
  memoryBytes?: number | undefined;
}

/** A recommendation the decision made earlier (kept by the caller for one window). */
export interface Recommendation {
  at: number;
  replicas: number;
}

export interface AutoscaleInput {
  policy: AutoscaleSpec;
  /** The replica count in the spec now. */
  replicas: number;
  /** Running tasks (desired running, observed running). */
  tasks: readonly AutoscaleTask[];
  /** Samples per task id, oldest first; older than SAMPLE_SPAN_MS are ignored. */
  samples: ReadonlyMap<string, readonly UsageSample[]>;
  /** The recommendations of earlier calls (what the previous output's `history` was). */
  history: readonly Recommendation[];
  /** When the caller began gathering usage for this service (a new leader starts with nothing). */
  observingSince: number;
  /** The last change the autoscaler made (service.status.autoscale), replicated, so cooldowns survive a leader change. */
  last?: { at: number; from: number; to: number } | undefined;
  now: number;
}

// ------------------------------------------------------------------------------------------ outputs

export interface MetricFigure {
  /** Mean utilisation of the tasks that reported, percent of limit. */
  average: number;
  target: number;
  /** Tasks that reported / running tasks. */
  reported: number;
  tasks: number;
}

export interface AutoscaleDecision {
  /** The count the service should have: equal to input.replicas when nothing changes. */
  replicas: number;
  changed: boolean;
  /** Why, for people: "cpu 142% of target 70% over 2 tasks: 2 → 5". */
  reason: string;
  /** This tick's recommendation (already in `history`). */
  recommendation: number;
  /** Pass back in as the next input's history (pruned to the window). */
  history: Recommendation[];
  figures: { cpu?: MetricFigure; memory?: MetricFigure };
}

// ------------------------------------------------------------------------------------------ decision

type Metric = 'cpu' | 'memory';

/** A task's utilisation (percent of its limit) for `m`, or undefined when it has no sample in the span. */
function utilisation(t: AutoscaleTask, samples: readonly UsageSample[] | undefined, m: Metric, now: number): number | undefined {
  if (!samples) return undefined;
  let sum = 0;
  let n = 0;
  for (const s of samples) {
    if (s.at <= now - SAMPLE_SPAN_MS || s.at > now) continue;
    const v = m === 'cpu' ? s.cpuPercent : s.memoryBytes;
    if (v === undefined || !Number.isFinite(v) || v < 0) continue;
    sum += v;
    n++;
  }
  if (n === 0) return undefined;
  const mean = sum / n;
  if (m === 'cpu') return mean / ((t.nanoCpus ?? 1e9) / 1e9);
  if (!t.memoryBytes) return undefined;
  return (mean / t.memoryBytes) * 100;
}

interface MetricRec {
  metric: Metric;
  replicas: number;
  figure: MetricFigure;
}

function recommendFor(m: Metric, target: number, input: AutoscaleInput): MetricRec | undefined {
  const utils: number[] = [];
  for (const t of input.tasks) {
    const u = utilisation(t, input.samples.get(t.id), m, input.now);
    if (u !== undefined) utils.push(u);
  }
  if (utils.length === 0) return undefined;
  const sum = utils.reduce((a, b) => a + b, 0);
  const average = sum / utils.length;
  const figure: MetricFigure = { average, target, reported: utils.length, tasks: input.tasks.length };
  const ratio = average / target;
  const cur = input.replicas;
  let replicas = cur; // within TOLERANCE of the target: hold
  if (Math.abs(ratio - 1) > TOLERANCE) {
    if (ratio > 1) replicas = Math.max(cur, Math.ceil(sum / target - 1e-9));
    // In only on reports from every replica (utils holds at most one per task, so there are >= cur tasks).
    else if (utils.length >= cur) replicas = Math.ceil(sum / target - 1e-9);
  }
  return { metric: m, replicas, figure };
}

function describe(r: MetricRec): string {
  const f = r.figure;
  const of = r.metric === 'cpu' ? 'of limit' : 'of memory limit';
  return `${r.metric} ${Math.round(f.average)}% ${of} (target ${f.target}%) over ${f.reported}/${f.tasks} tasks`;
}

export function decide(input: AutoscaleInput): AutoscaleDecision {
  const { policy: p, replicas: cur, now } = input;
  const clamp = (n: number) => Math.min(p.max, Math.max(p.min, n));

  // This tick's recommendation: the largest over the targets.
  const recs: MetricRec[] = [];
  for (const m of ['cpu', 'memory'] as const) {
    const target = p[m];
    if (target === undefined) continue;
    const r = recommendFor(m, target, input);
    if (r) recs.push(r);
  }
  recs.sort((a, b) => b.replicas - a.replicas);
  const top = recs[0];
  const recommendation = clamp(top ? top.replicas : cur);
  const history = input.history.filter((h) => h.at > now - p.windowMs && h.at <= now);
  history.push({ at: now, replicas: recommendation });
  const figures: AutoscaleDecision['figures'] = {};
  for (const r of recs) figures[r.metric] = r.figure;
  const why = top ? recs.map(describe).join('; ') : 'no usage reported';
  const out = (replicas: number, reason: string): AutoscaleDecision => ({ replicas, changed: replicas !== cur, reason, recommendation, history, figures });

  // Bounds first: they need no usage.
  if (cur < p.min) return out(p.min, `${cur} replicas is below the autoscale minimum ${p.min}`);
  if (cur > p.max) return out(p.max, `${cur} replicas is above the autoscale maximum ${p.max}`);
  const sinceLast = input.last ? now - input.last.at : Infinity;

  // Scale out on the lowest recommendation that held for the whole out-window.
  const outWin = outWindowMs(p);
  const covered = history.some((h) => h.at <= now - outWin);
  const outRec = Math.min(...history.filter((h) => h.at >= now - outWin).map((h) => h.replicas));
  if (recommendation > cur) {
    if (!covered || outRec <= cur) return out(cur, `${why}: wants ${recommendation}, waiting for the load to last ${outWin / 1000}s`);
    if (sinceLast < p.cooldowns.outMs) return out(cur, `${why}: wants ${outRec}, cooling down for ${Math.ceil((p.cooldowns.outMs - sinceLast) / 1000)}s more`);
    const step = cur + Math.max(OUT_STEP_MIN, cur);
    const to = Math.min(outRec, step);
    const held =
      to === step && step < outRec ? `, at most ${step - cur} more per step` : to < recommendation ? `, the lowest of the last ${outWin / 1000}s` : '';
    return out(to, `${why}: ${cur} → ${to}${held ? ` (wants ${recommendation}${held})` : ''}`);
  }

  // Scale in on the highest recommendation of the window, observed in full, with every replica reporting.
  const inRec = Math.max(...history.map((h) => h.replicas));
  if (recommendation < cur) {
    if (inRec >= cur) return out(cur, `${why}: wants ${recommendation}, holding: ${inRec} was recommended within the last ${p.windowMs / 1000}s`);
    if (now - input.observingSince < p.windowMs) {
      return out(cur, `${why}: wants ${inRec}, waiting for a full ${p.windowMs / 1000}s of usage before scaling in`);
    }
    if (sinceLast < p.cooldowns.inMs) return out(cur, `${why}: wants ${inRec}, cooling down for ${Math.ceil((p.cooldowns.inMs - sinceLast) / 1000)}s more`);
    const half = Math.ceil(cur / 2);
    const to = Math.max(inRec, half);
    const held =
      to === half && half > inRec ? ', keeping at least half per step' : to > recommendation ? `, the highest of the last ${p.windowMs / 1000}s` : '';
    return out(to, `${why}: ${cur} → ${to}${held ? ` (wants ${recommendation}${held})` : ''}`);
  }
  if (!top) return out(cur, `no usage reported by the ${input.tasks.length} running tasks: holding ${cur}`);
  const missing = input.tasks.length < cur || recs.some((r) => r.figure.reported < cur);
  return out(cur, `${why}: ${missing ? 'holding (usage missing for some replicas)' : 'within tolerance'}`);
}
