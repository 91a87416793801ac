// `npm run bench:converge`: 3 real managers (daemons in lab hosts) + 200 simulated agents (real
// sessions, joined with real tokens and certificates, running the test executor). Measures the time
// from `service create --replicas 10000` to all tasks reported running, and of a rolling update of all
// of them with parallelism 100. Medians over the rounds. `--profile` profiles the managers.
import type { spawn } from 'node:child_process';
import { cpus } from 'node:os';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { ClusterLab, waitFor } from '../lab/cluster-lab.ts';
import { cleanupOnExit } from '../lab/lab.ts';
import { compiledEntry } from '../lab/compiled.ts';
import { formatSlotPhases, slotPhases } from './slot-timeline.ts';
import { processCpuSeconds } from './stats.ts';

const AGENTS = Number(process.env.SHOAL_BENCH_AGENTS ?? 200);
const REPLICAS = Number(process.env.SHOAL_BENCH_REPLICAS ?? 10_000);
const ROUNDS = Number(process.env.SHOAL_BENCH_ROUNDS ?? 1);
const NAME = `cv${process.pid % 1000}`;
/** `--profile`: a V8 CPU profile of every manager, written to /tmp/<lab>-prof when the lab goes down. */
const PROFILE = process.argv.includes('--profile');
const PROF_DIR = `/tmp/${NAME}-prof`;
/** SHOAL_BENCH_NODE_ARGS: more Node.js options for the managers (to measure a V8 setting), space-separated. */
const EXTRA_ARGS = (process.env.SHOAL_BENCH_NODE_ARGS ?? '').split(' ').filter(Boolean);
const NODE_ARGS = [...(PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${PROF_DIR}`] : []), ...EXTRA_ARGS];

/** The goal for the rolling update of 10,000 tasks at parallelism 100 (issue 17). */
const UPDATE_GOAL_S = 20;

const METRICS_PORT = 9323;

/** The orchestrator's counters from a manager's /metrics (shoal_orchestrator_reconcile*). */
async function reconciles(ip: string): Promise<{ decided: number; nothing: number; seconds: number }> {
  const text = await (await fetch(`http://${ip}:${METRICS_PORT}/metrics`)).text();
  const sample = (name: string) => Number(new RegExp(`^${name.replace(/[{}"]/g, '\\$&')} (\\S+)$`, 'm').exec(text)?.[1] ?? 0);
  return {
    decided: sample('shoal_orchestrator_reconciles_total{result="decided"}'),
    nothing: sample('shoal_orchestrator_reconciles_total{result="nothing"}'),
    seconds: sample('shoal_orchestrator_reconcile_duration_seconds_sum'),
  };
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s[Math.floor((s.length - 1) / 2)]!;
};

async function round(r: number, out: { create: number[]; update: number[] }): Promise<void> {
  const unhook = cleanupOnExit(NAME);
  const c = await ClusterLab.up({
    name: NAME,
    managers: 3,
    workers: 0,
    // Each manager's metrics on its lab host's address: the leader's orchestrator counts are read below.
    daemonArgs: (h) => ['--metrics-addr', `${h.ip}:${METRICS_PORT}`],
    ...(NODE_ARGS.length > 0 ? { nodeArgs: NODE_ARGS } : {}),
  });
  let farm: ReturnType<typeof spawn> | null = null;
  try {
    const tokens = await c.control('GET', '/v1/join-tokens');
    const t0 = performance.now();
    // The farm runs in the first lab host's network namespace (it reaches every manager there).
    farm = c
      .host('h1')
      .spawn(
        process.execPath,
        [
          compiledEntry('lab/agent-farm'),
          JSON.stringify({ managers: c.ctx.managers, token: tokens.worker, caPem: c.ctx.admin.ca, count: AGENTS, addr: c.host('h1').ip }),
        ],
        { stdio: ['ignore', 'pipe', 'inherit'], cwd: fileURLToPath(new URL('..', import.meta.url)) },
      );
    await new Promise<void>((resolve, reject) => {
      farm!.stdout!.on('data', (d: Buffer) => (String(d).includes('ready') ? resolve() : undefined));
      farm!.once('exit', (code) => reject(new Error(`agent farm exited (${code})`)));
    });
    await c.waitReady(3 + AGENTS, 60_000);
    console.log(`round ${r + 1}: ${AGENTS} simulated agents joined and ready in ${((performance.now() - t0) / 1000).toFixed(1)} s`);

    const spec = {
      name: 'bench',
      mode: { replicated: { replicas: REPLICAS } },
      task: { image: 'busybox:latest' },
      update: { parallelism: 100, delayMs: 0, failureAction: 'pause', monitorMs: 0, maxFailureRatio: 0, order: 'stop-first' },
    };
    let t = performance.now();
    const { id } = await c.control('POST', '/v1/services', { spec });
    await waitFor(async () => (await c.control('GET', `/v1/services/${id}`)).replicas.running >= REPLICAS, 600_000, `${REPLICAS} tasks running`, 200);
    out.create.push(performance.now() - t);
    console.log(`round ${r + 1}: create --replicas ${REPLICAS} -> all running: ${((performance.now() - t) / 1000).toFixed(2)} s`);

    const cur = await c.control('GET', `/v1/services/${id}`);
    // CPU of every process during the update: on 2 shared cores the wall time is only as good as this.
    const pids = new Map<string, number | undefined>([...c.daemons].map(([h, d]) => [h, d.pid ?? undefined]));
    pids.set('farm', farm.pid);
    const cpu0 = new Map([...pids].map(([k, pid]) => [k, processCpuSeconds(pid)]));
    const leaderIp = async () => {
      const h = (await c.nodes()).find((n: { managerStatus?: { leader?: boolean } }) => n.managerStatus?.leader)?.description.hostname as string;
      return c.host(h).ip!;
    };
    const rec0 = await reconciles(await leaderIp());
    const disp0 = await c.control('GET', '/v1/dispatcher/stats');
    t = performance.now();
    await c.control('POST', `/v1/services/${id}/update`, { spec: { ...cur.spec, task: { ...cur.spec.task, image: 'busybox:v2' } } });
    await waitFor(
      async () => {
        const s = await c.control('GET', `/v1/services/${id}`);
        if (s.updateStatus?.state === 'paused') throw new Error(`update paused: ${s.updateStatus.message}`);
        return s.updateStatus?.state === 'completed' && s.replicas.running >= REPLICAS;
      },
      900_000,
      'rolling update complete',
      250,
    );
    const wall = (performance.now() - t) / 1000;
    out.update.push(wall * 1000);
    console.log(`round ${r + 1}: rolling update of ${REPLICAS} tasks (parallelism 100): ${wall.toFixed(2)} s (goal <= ${UPDATE_GOAL_S} s)`);
    const leader = (await c.nodes()).find((n: { managerStatus?: { leader?: boolean } }) => n.managerStatus?.leader)?.description.hostname as string | undefined;
    const used = [...pids].map(([k, pid]) => `${k}${k === leader ? ' (leader)' : ''} ${(processCpuSeconds(pid) - cpu0.get(k)!).toFixed(1)} s`);
    console.log(`round ${r + 1}: CPU during the update (${wall.toFixed(1)} s on ${cpus().length} cores): ${used.join(', ')}`);
    const after = await c.control('GET', `/v1/services/${id}`);
    const tasks = await c.control('GET', `/v1/tasks?service=${id}&all=1`);
    for (const l of formatSlotPhases(slotPhases(tasks, after.specVersion, 100))) console.log(`round ${r + 1}: ${l}`);
    const disp = await c.control('GET', '/v1/dispatcher/stats');
    if (disp.leader && disp0.leader) {
      const sent = disp.assignments.changes - disp0.assignments.changes + disp.assignments.full - disp0.assignments.full;
      console.log(
        `round ${r + 1}: leader's dispatcher during the update: ${sent} assignment messages, ${disp.status.written - disp0.status.written} task states written, ${disp.messages.received - disp0.messages.received} messages received`,
      );
    }
    const rec = await reconciles(await leaderIp());
    const n = rec.decided - rec0.decided + rec.nothing - rec0.nothing;
    console.log(
      `round ${r + 1}: leader's orchestrator during the update: ${n} reconciles, ${rec.nothing - rec0.nothing} deciding nothing, ${(rec.seconds - rec0.seconds).toFixed(1)} s in them (${((1000 * (rec.seconds - rec0.seconds)) / Math.max(1, n)).toFixed(1)} ms each)`,
    );
  } finally {
    if (farm?.pid) c.host('h1').kill(farm.pid, 'SIGTERM');
    await c.down();
    unhook();
  }
}

async function main(): Promise<void> {
  const out = { create: [] as number[], update: [] as number[] };
  for (let r = 0; r < ROUNDS; r++) await round(r, out);
  console.log('');
  console.log(`service create --replicas ${REPLICAS} to all running median: ${(median(out.create) / 1000).toFixed(2)} s (${AGENTS} agents + 3 managers)`);
  console.log(`rolling update of ${REPLICAS} tasks, parallelism 100, median: ${(median(out.update) / 1000).toFixed(2)} s (goal <= ${UPDATE_GOAL_S} s)`);
  console.log(`tasks started per second during create: ${Math.round(REPLICAS / (median(out.create) / 1000))} tasks/s`);
  console.log(`rounds: ${ROUNDS}`);
  if (PROFILE) console.log(`CPU profiles of the managers: ${PROF_DIR}`);
}

main().catch((e) => {
  console.error(`bench:converge failed: ${(e as Error).stack ?? e}`);
  process.exitCode = 1;
});
