// `npm run bench:scheduler`: the scheduler's pure core (manager/scheduler/scheduler.ts) in one process,
// 1,000 nodes and 100,000 tasks (100 services x 1,000 tasks, each service one batch), in three cases:
//   a) no constraints
//   b) a constraint that matches half of the nodes (node.labels.half==yes)
//   c) a spread preference over a label with 10 values (node.labels.zone)
// Every task reserves a little cpu and memory, so the resource filter is live. Each case runs RUNS times
// on a fresh cluster; per-batch time is one placeGroup() call (1,000 tasks of one service version),
// overall placements/s counts the whole decision (building the cluster view + all 100 batches).
// Then d) the same 100,000 tasks end to end through SchedulerRunner on an in-memory Store (reading the
// view, deciding, and writing the assignments back in transactions): one run, for context.
// Prints one figure per line with units and the target; exits on its own well within two minutes.
import { performance } from 'node:perf_hooks';
import { PlacementState, nodeLayout, schedule } from '../manager/scheduler/scheduler.ts';
import type { PendingGroup, PlacedTask, SchedNode, SchedulerResult } from '../manager/scheduler/scheduler.ts';
import { PlacedTally } from '../manager/scheduler/tally.ts';
import { SchedulerRunner } from '../manager/scheduler/runner.ts';
import { Store } from '../manager/store/store.ts';
import type { Node, Task } from '../api/objects.ts';

const NODES = Number(process.env.SCHED_BENCH_NODES ?? 1000);
const SERVICES = Number(process.env.SCHED_BENCH_SERVICES ?? 100);
const TASKS_PER_SERVICE = Number(process.env.SCHED_BENCH_TASKS ?? 1000);
const RUNS = Math.max(3, Number(process.env.SCHED_BENCH_RUNS ?? 5));
const E2E = process.env.SCHED_BENCH_E2E !== '0';
const TARGET = 50_000;
const SWARMKIT = 4_400;
const WATCHDOG_MS = 110_000;

const watchdog = setTimeout(() => {
  console.error(`bench:scheduler: still running after ${WATCHDOG_MS / 1000} s, giving up`);
  process.exit(2);
}, WATCHDOG_MS);
watchdog.unref();

const TOTAL = SERVICES * TASKS_PER_SERVICE;
const RES = { nanoCpus: 10_000_000, memoryBytes: 16 * 1024 * 1024 };

function pad(n: number, w = 4): string {
  return String(n).padStart(w, '0');
}

function makeNodes(count = NODES): SchedNode[] {
  const nodes: SchedNode[] = [];
  for (let i = 0; i < count; i++) {
    nodes.push({
      id: `node-${pad(i)}`,
      hostname: `host-${i}`,
      role: i < 3 ? 'manager' : 'worker',
      os: 'linux',
      arch: 'amd64',
      ip: `10.${(i >> 8) & 255}.${i & 255}.1`,
      labels: { zone: `z${i % 10}`, half: i % 2 === 0 ? 'yes' : 'no', rack: `r${i % 40}` },
      availability: 'active',
      state: 'ready',
      resources: { nanoCpus: 64e9, memoryBytes: 256 * 1024 ** 3 },
    });
  }
  return nodes;
}

type Case = { name: string; group: (s: number) => Omit<PendingGroup, 'tasks' | 'serviceId'> };

const CASES: Case[] = [
  { name: 'a) no constraints', group: () => ({ reservations: RES }) },
  { name: 'b) constraint matching half the nodes', group: () => ({ reservations: RES, constraints: ['node.labels.half==yes'] }) },
  { name: 'c) spread preference over 10 zones', group: () => ({ reservations: RES, preferences: [{ spread: 'node.labels.zone' }] }) },
];

function makeGroups(c: Case): PendingGroup[] {
  const groups: PendingGroup[] = [];
  for (let s = 0; s < SERVICES; s++) {
    const tasks = [];
    for (let t = 0; t < TASKS_PER_SERVICE; t++) tasks.push({ id: `svc-${pad(s, 3)}-task-${pad(t, 5)}` });
    groups.push({ serviceId: `svc-${pad(s, 3)}`, specVersion: 1, tasks, ...c.group(s) });
  }
  return groups;
}

function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i]!;
}

const fmt = (x: number, d = 2) => x.toFixed(d);
const int = (x: number) => Math.round(x).toLocaleString('en-US');

function checkSpread(nodes: SchedNode[], res: SchedulerResult, c: Case): string {
  const per = new Map<string, number>();
  for (const a of res.assignments) per.set(a.nodeId, (per.get(a.nodeId) ?? 0) + 1);
  const used = [...per.values()];
  const min = Math.min(...used);
  const max = Math.max(...used);
  if (res.unplaced.length > 0) throw new Error(`${c.name}: ${res.unplaced.length} tasks unplaced: ${res.unplaced[0]!.reason}`);
  if (c.name.startsWith('b')) {
    const bad = res.assignments.filter((a) => nodes.find((n) => n.id === a.nodeId)!.labels['half'] !== 'yes').length;
    if (bad > 0) throw new Error(`${c.name}: ${bad} tasks on nodes failing the constraint`);
  }
  return `${per.size} nodes used, ${min}..${max} tasks per node`;
}

function runCase(c: Case): void {
  const nodes = makeNodes();
  const batchMs: number[] = [];
  const overall: number[] = [];
  let shape = '';
  for (let run = 0; run < RUNS; run++) {
    const groups = makeGroups(c);
    const t0 = performance.now();
    const st = new PlacementState({ nodes, tasks: [], now: 0 });
    const out: SchedulerResult = { assignments: [], unplaced: [] };
    for (const g of groups) {
      const b0 = performance.now();
      st.placeGroup(g, out);
      batchMs.push(performance.now() - b0);
    }
    const ms = performance.now() - t0;
    overall.push((out.assignments.length / ms) * 1000);
    if (run === 0) shape = checkSpread(nodes, out, c);
  }
  batchMs.sort((a, b) => a - b);
  overall.sort((a, b) => a - b);
  const med = quantile(overall, 0.5);
  console.log(`${c.name}: ${NODES} nodes, ${SERVICES} services x ${TASKS_PER_SERVICE} tasks, ${RUNS} runs (${shape})`);
  console.log(`  per-batch time (${TASKS_PER_SERVICE} tasks) median: ${fmt(quantile(batchMs, 0.5), 3)} ms`);
  console.log(`  per-batch time (${TASKS_PER_SERVICE} tasks) p99: ${fmt(quantile(batchMs, 0.99), 3)} ms`);
  console.log(`  placements/s (median of runs): ${int(med)} placements/s`);
  console.log(`  placements/s (slowest run): ${int(overall[0]!)} placements/s`);
  console.log(`  vs SwarmKit 4,400/s: ${fmt(med / SWARMKIT, 1)}x; target ${int(TARGET)}/s: ${med >= TARGET ? 'met' : 'MISSED'}`);
  results.push({ name: c.name, med });
}

const results: { name: string; med: number }[] = [];

async function endToEnd(): Promise<void> {
  const store = new Store({});
  const nodes = makeNodes();
  await store.batch(nodes, (tx, n) => {
    const node: Omit<Node, 'version' | 'createdAt' | 'updatedAt'> = {
      id: n.id,
      kind: 'node',
      spec: { labels: { ...n.labels }, availability: 'active', role: n.role as 'worker' | 'manager' },
      description: { hostname: n.hostname, platform: { os: n.os, arch: n.arch }, resources: n.resources, engineVersion: '', addr: n.ip },
      status: { state: 'ready', message: '', addr: n.ip },
    };
    tx.create(node);
  });
  const tasks: Omit<Task, 'version' | 'createdAt' | 'updatedAt'>[] = [];
  for (let s = 0; s < SERVICES; s++) {
    for (let t = 0; t < TASKS_PER_SERVICE; t++) {
      tasks.push({
        id: `svc-${pad(s, 3)}-task-${pad(t, 5)}`,
        kind: 'task',
        serviceId: `svc-${pad(s, 3)}`,
        slot: t + 1,
        spec: { image: 'nginx:alpine', resources: { reservations: RES } },
        specVersion: 1,
        desiredState: 'running',
        status: { state: 'pending', timestamp: new Date(0).toISOString(), message: 'pending' },
        serviceAnnotations: { name: `svc-${s}`, labels: {} },
        networks: [],
      });
    }
  }
  const c0 = performance.now();
  await store.batch(tasks, (tx, t) => void tx.create(t));
  const createMs = performance.now() - c0;
  let passMs = 0;
  let decideMs = 0;
  let passes = 0;
  const runner = new SchedulerRunner(store, {
    debounceMs: 10,
    onPass: (p) => {
      passMs += p.ms;
      decideMs += p.decideMs;
      passes++;
    },
  });
  const t0 = performance.now();
  runner.start();
  const deadline = Date.now() + 60_000;
  for (;;) {
    await runner.idle();
    const left = store.view((tx) => tx.list('task', (t) => t.status.state === 'pending').length);
    if (left === 0 || Date.now() > deadline) break;
  }
  const ms = performance.now() - t0;
  runner.stop();
  const assigned = store.view((tx) => tx.list('task', (t) => t.status.state === 'assigned').length);
  console.log(`d) end to end through SchedulerRunner + in-memory Store (context, 1 run):`);
  console.log(`  creating ${int(TOTAL)} pending tasks in the store: ${fmt(createMs / 1000)} s`);
  console.log(`  assigned: ${int(assigned)} of ${int(TOTAL)} tasks in ${fmt(ms / 1000)} s = ${int((assigned / ms) * 1000)} placements/s end to end`);
  console.log(
    `  of which: ${passes} pass(es) ${fmt(passMs / 1000)} s, deciding (schedule()) ${fmt(decideMs / 1000)} s, the rest reading the view and committing ${int(assigned)} task updates`,
  );
}

/**
 * e) A pass among many placed tasks, as during a large create: 150,000 tasks already placed on 5,000 nodes
 * and 3,312 pending (what one pass placed in the 5,000-node lab run). The core given the placed tasks as
 * a list (adding them up is O(placed)) against the same tasks as the tally the runner keeps between
 * passes (O(nodes)), with the nodes' layout it keeps too, alternating, in this run.
 */
function amongPlaced(): void {
  const N = 5000;
  const PLACED = 150_000;
  const nodes = makeNodes(N);
  const tasks: PlacedTask[] = Array.from({ length: PLACED }, (_, i) => ({ serviceId: 'big', nodeId: nodes[i % N]!.id, reservations: RES }));
  const group: PendingGroup = { serviceId: 'big', specVersion: 1, tasks: Array.from({ length: 3312 }, (_, i) => ({ id: `p${i}` })), reservations: RES };
  const tally = PlacedTally.of(tasks);
  const layout = nodeLayout(nodes);
  const list: number[] = [];
  const kept: number[] = [];
  for (let r = 0; r < 2 * RUNS + 2; r++) {
    let t = performance.now();
    const a = schedule({ nodes, tasks, groups: [group], now: 0 });
    const listMs = performance.now() - t;
    t = performance.now();
    const b = schedule({ nodes, layout, placed: tally, groups: [group], now: 0 });
    const keptMs = performance.now() - t;
    if (JSON.stringify(a) !== JSON.stringify(b)) throw new Error('the tally placed differently from the list');
    if (r >= 2) {
      list.push(listMs);
      kept.push(keptMs);
    }
  }
  list.sort((x, y) => x - y);
  kept.sort((x, y) => x - y);
  console.log(`e) a pass placing ${int(group.tasks.length)} tasks beside ${int(PLACED)} placed on ${int(N)} nodes (${list.length} runs):`);
  console.log(`  placed tasks as a list (baseline): median ${fmt(quantile(list, 0.5), 1)} ms, p99 ${fmt(quantile(list, 0.99), 1)} ms`);
  console.log(
    `  placed tasks as the runner's tally, nodes as its kept layout: median ${fmt(quantile(kept, 0.5), 1)} ms, p99 ${fmt(quantile(kept, 0.99), 1)} ms`,
  );
  console.log(`  ratio (list / tally, medians): ${fmt(quantile(list, 0.5) / quantile(kept, 0.5), 1)}x`);
}

function main(): Promise<void> | void {
  console.log(`bench:scheduler  node ${process.version}, ${NODES} nodes x ${int(TOTAL)} tasks`);
  console.log(`target >= ${int(TARGET)} placements/s (SwarmKit published: 100k tasks on 1k nodes in 22.6 s ≈ 4,400/s)`);
  // Warm up the JIT on a small instance.
  schedule({ nodes: makeNodes().slice(0, 50), tasks: [], groups: makeGroups(CASES[0]!).slice(0, 5), now: 0 });
  for (const c of CASES) runCase(c);
  amongPlaced();
  const worst = Math.min(...results.map((r) => r.med));
  console.log(
    `slowest case: ${int(worst)} placements/s = ${fmt(worst / SWARMKIT, 1)}x SwarmKit's 4,400/s; target >= ${int(TARGET)}/s ${worst >= TARGET ? 'met' : 'MISSED'}`,
  );
  if (E2E) return endToEnd();
}

await main();
clearTimeout(watchdog);
