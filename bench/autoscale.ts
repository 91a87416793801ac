// `npm run bench:autoscale`: how fast the autoscaler reacts on a real lab (1 manager + 2 workers, engine
// executor). The service's tasks burn CPU while a flag file exists in a host directory bind-mounted into
// them (a real CPU load in real cgroups, measured by the real agents; the flag only switches it on and
// off), under a 0.2-CPU limit, with short windows set through the spec:
//   baseline   `service scale` 1 → 3 by hand: the cost of the scaling itself, measured in the same run
//   out        flag on  → the autoscaler raised the count to max, and → all those tasks running
//   in         flag off → the count is back at min
// One figure per line, with its unit and goal. autoscaleFigures(lab) runs the same on any lab with the
// engine executor (bench/observe.ts calls it on its 3+2 lab). The lab is removed at the end, also on failure.
import { mkdirSync, mkdtempSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { localCall } from '../client/context.ts';
import { ClusterLab, waitFor } from '../lab/cluster-lab.ts';
import { cleanupOnExit } from '../lab/lab.ts';
import { outWindowMs } from '../manager/autoscale/decide.ts';
import { buildImage, busyboxLayer } from '../worker/images/build.ts';

export const BURN_IMAGE = 'shoal/burn:1';
/** Spins while /ctl/on exists, sleeps otherwise (checking every second). */
export const BURN_SCRIPT = 'trap "exit 0" TERM; while :; do if [ -e /ctl/on ]; then i=0; while [ $i -lt 5000 ]; do i=$((i+1)); done; else sleep 1; fi; done';

export interface BurnPolicy {
  min: number;
  max: number;
  cpu: number;
  windowMs: number;
  cooldowns: { outMs: number; inMs: number };
}
export const BENCH_POLICY: BurnPolicy = { min: 1, max: 3, cpu: 40, windowMs: 20_000, cooldowns: { outMs: 5_000, inMs: 5_000 } };
export const BURN_NANO_CPUS = 200_000_000;

/** Builds the burner image (busybox) and loads it on every manager of the lab (workers fetch it from them). */
export async function loadBurnImage(lab: ClusterLab, tmp: string): Promise<void> {
  const archive = join(tmp, 'burn.tar');
  writeFileSync(archive, buildImage({ name: BURN_IMAGE, layers: [busyboxLayer()], cmd: ['/bin/sh', '-c', BURN_SCRIPT] }).archive);
  for (const d of lab.daemons.values()) {
    if (d.role === 'manager') await localCall(lab.stateDir(d.host.name), 'POST', '/images/load', { path: archive });
  }
}

/** The spec of a burner service controlled by the flag directory `ctl`. */
export function burnSpec(name: string, ctl: string, policy: BurnPolicy | null, replicas = policy?.min ?? 1): unknown {
  return {
    name,
    mode: { replicated: { replicas } },
    task: {
      image: BURN_IMAGE,
      command: ['/bin/sh', '-c', BURN_SCRIPT],
      mounts: [{ type: 'bind', source: ctl, target: '/ctl', readOnly: true }],
      resources: { limits: { nanoCpus: BURN_NANO_CPUS } },
      stopGracePeriodMs: 1000,
    },
    ...(policy ? { autoscale: policy } : {}),
  };
}

type Json = any;

async function counts(lab: ClusterLab, name: string): Promise<{ desired: number; running: number; svc: Json }> {
  const svc = (await lab.control('GET', `/v1/services/${name}`)) as Json;
  return { desired: svc.spec.mode.replicated.replicas, running: svc.replicas.running, svc };
}

export interface AutoscaleFigures {
  settings: string;
  baselineS: number;
  outDecisionS: number;
  outRunningS: number;
  inS: number;
  /** status.autoscale reasons, oldest first. */
  reasons: string[];
}

/** Runs the scenario on `lab` (engine executor) and returns the figures; removes what it created. */
export async function autoscaleFigures(lab: ClusterLab, policy: BurnPolicy = BENCH_POLICY): Promise<AutoscaleFigures> {
  const tmp = mkdtempSync(join(tmpdir(), 'shoal-bench-as-'));
  const ctl = join(tmp, 'ctl');
  const flag = join(ctl, 'on');
  const poll = (cond: () => Promise<boolean>) => async () => cond().catch(() => false);
  const created: string[] = [];
  try {
    mkdirSync(ctl);
    await loadBurnImage(lab, tmp);

    // Baseline: the same scale by hand (no autoscale), 1 → max all running.
    await lab.control('POST', '/v1/services', { spec: burnSpec('as-base', ctl, null, 1) });
    created.push('as-base');
    await waitFor(
      poll(async () => (await counts(lab, 'as-base')).running === 1),
      180_000,
      'baseline: 1 running',
      200,
    );
    let t0 = performance.now();
    await lab.control('POST', '/v1/services/as-base/scale', { replicas: policy.max });
    await waitFor(
      poll(async () => (await counts(lab, 'as-base')).running === policy.max),
      180_000,
      `baseline: ${policy.max} running`,
      100,
    );
    const baselineS = (performance.now() - t0) / 1000;
    await lab.control('DELETE', '/v1/services/as-base');
    created.pop();

    await lab.control('POST', '/v1/services', { spec: burnSpec('as-burn', ctl, policy) });
    created.push('as-burn');
    await waitFor(
      poll(async () => (await counts(lab, 'as-burn')).running === policy.min),
      180_000,
      `${policy.min} running`,
      200,
    );
    // Let the idle tasks report twice, so the load's start is what the autoscaler sees. GET /v1/tasks
    // carries each task's latest usage report; cpuPercent appears with a task's second report (a
    // difference of two). The autoscaler (1 s ticks) takes that in long before the next report (5 s).
    await waitFor(
      poll(async () => {
        const tasks = (await lab.control('GET', '/v1/tasks?service=as-burn')) as Json[];
        const running = tasks.filter((t) => t.status?.state === 'running');
        return running.length === policy.min && running.every((t) => typeof t.usage?.cpuPercent === 'number');
      }),
      60_000,
      `two usage reports of each of the ${policy.min} idle tasks`,
      200,
    );

    const reasons: string[] = [];
    const note = (svc: Json) => {
      const r = svc.status?.autoscale?.reason;
      if (r && reasons[reasons.length - 1] !== r) reasons.push(r);
    };
    writeFileSync(flag, '');
    t0 = performance.now();
    let outDecisionS = 0;
    await waitFor(
      poll(async () => {
        const c = await counts(lab, 'as-burn');
        note(c.svc);
        if (!outDecisionS && c.desired === policy.max) outDecisionS = (performance.now() - t0) / 1000;
        return c.desired === policy.max && c.running === policy.max;
      }),
      300_000,
      `scaled out to ${policy.max}`,
      100,
    );
    const outRunningS = (performance.now() - t0) / 1000;

    unlinkSync(flag);
    t0 = performance.now();
    await waitFor(
      poll(async () => {
        const c = await counts(lab, 'as-burn');
        note(c.svc);
        return c.desired === policy.min;
      }),
      300_000,
      `scaled back in to ${policy.min}`,
      100,
    );
    const inS = (performance.now() - t0) / 1000;
    await lab.control('DELETE', '/v1/services/as-burn');
    created.pop();
    const settings =
      `min ${policy.min}, max ${policy.max}, cpu ${policy.cpu}% of a ${BURN_NANO_CPUS / 1e9}-CPU limit, window ${policy.windowMs / 1000} s ` +
      `(out-window ${outWindowMs(policy) / 1000} s), cooldowns out ${policy.cooldowns.outMs / 1000} s / in ${policy.cooldowns.inMs / 1000} s, usage reports every 5 s`;
    return { settings, baselineS, outDecisionS, outRunningS, inS, reasons };
  } finally {
    for (const n of created) await lab.control('DELETE', `/v1/services/${n}`).catch(() => {});
    rmSync(tmp, { recursive: true, force: true });
  }
}

/** The figures as printed lines (bench:autoscale and bench:observe print the same). */
export function figureLines(f: AutoscaleFigures): string[] {
  return [
    `autoscale settings: ${f.settings}`,
    `baseline: manual service scale 1 → 3, all running: ${f.baselineS.toFixed(1)} s`,
    `load start → autoscaler raised replicas to max: ${f.outDecisionS.toFixed(1)} s (goal ≤ 30 s)`,
    `load start → scaled out, all running: ${f.outRunningS.toFixed(1)} s (goal ≤ 30 s + baseline)`,
    `load stop → scaled back in to min: ${f.inS.toFixed(1)} s (goal ≤ 60 s: window 20 s + steps)`,
  ];
}

/** The whole benchmark on its own 1+2 engine lab (also the last part of `npm run bench:observe`). */
export async function autoscaleBench(): Promise<void> {
  const name = 'asbench';
  const unhook = cleanupOnExit(name);
  let lab: ClusterLab | undefined;
  try {
    lab = await ClusterLab.up({ name, managers: 1, workers: 2, executor: 'engine' });
    const f = await autoscaleFigures(lab);
    for (const l of figureLines(f)) console.log(l);
    for (const r of f.reasons) console.log(`  decision: ${r}`);
  } finally {
    await lab?.down();
    unhook();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  autoscaleBench().catch((e) => {
    console.error(e);
    process.exitCode = 1;
  });
}
