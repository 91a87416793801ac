// `npm run bench:orchestrator`: what a rolling update costs the leader's control loops, in this process
// (issue 17; docs/design/scale.md, "What is left"). No Raft, no sessions, no lab: the orchestrator,
// allocator and scheduler run on one in-memory store, and 200 simulated nodes move their tasks
// assigned → running and told-to-stop → shutdown in 20 ms batches, as the dispatcher's status flush does.
// Printed one per line:
//   1. `service create --replicas N` → all running, and the rolling update of all N at parallelism 100:
//      wall time, CPU, the store batches (passes of the three loops) it took, and the orchestrator's
//      reconciles (how many decided nothing, and their time);
//   2. one orchestrator pass over a service half way through its update (N slots, N × 1.5 tasks):
//      median and p99 of CPU over 50 passes;
//   3. a service's tasks read inside a store batch (as a pass reads them) against the same read in a
//      plain view: the baseline, measured in the same run.
// BENCH_ORCH_TASKS (default 10000) sets N, BENCH_ORCH_NODES (default 200) the nodes.
import { performance } from 'node:perf_hooks';
import { Store } from '../manager/store/store.ts';
import { Orchestrator } from '../manager/orchestrator/runner.ts';
import { reconcileReplicated } from '../manager/orchestrator/replicated.ts';
import { newTask, type FTask, type ReconcileContext } from '../manager/orchestrator/types.ts';
import { AllocatorRunner } from '../manager/allocator/runner.ts';
import { SchedulerRunner } from '../manager/scheduler/runner.ts';
import { deepFreeze, taskStateRank, type Node, type ServiceSpec, type Task } from '../api/objects.ts';
import { testCluster } from '../test/helpers/cluster.ts';
import { summarize } from './stats.ts';

const N = Number(process.env.BENCH_ORCH_TASKS ?? 10_000);
const NODES = Number(process.env.BENCH_ORCH_NODES ?? 200);
const UPDATE = { parallelism: 100, delayMs: 0, failureAction: 'pause', monitorMs: 0, maxFailureRatio: 0, order: 'stop-first' } as const;
const cpuMs = (u: NodeJS.CpuUsage) => (u.user + u.system) / 1000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function nodeDraft(i: number): Node {
  const addr = `10.0.${i >> 8}.${i & 255}`;
  return {
    id: `n${i}`,
    kind: 'node',
    spec: { labels: {}, availability: 'active', role: 'worker' },
    description: {
      hostname: `n${i}`,
      platform: { os: 'linux', arch: 'amd64' },
      resources: { nanoCpus: 64e9, memoryBytes: 2 ** 38 },
      engineVersion: 'bench',
      addr,
    },
    status: { state: 'ready', message: '', addr },
  } as Node;
}

function serviceSpec(image: string): ServiceSpec {
  return {
    name: 'bench',
    labels: {},
    mode: { replicated: { replicas: N } },
    task: { image },
    networks: [],
    endpoint: { ports: [] },
    update: { ...UPDATE },
  } as ServiceSpec;
}

/** The simulated nodes: each batch of task changes is answered 20 ms later, in transactions of 500. */
function simulateNodes(store: Store): void {
  const due = new Set<string>();
  let timer: NodeJS.Timeout | null = null;
  const R_ASSIGNED = taskStateRank('assigned');
  const R_RUNNING = taskStateRank('running');
  const R_SHUTDOWN = taskStateRank('shutdown');
  const next = (t: Task): Task['status']['state'] | null => {
    const r = taskStateRank(t.status.state);
    if (t.desiredState === 'running' && r >= R_ASSIGNED && r < R_RUNNING) return 'running';
    if ((t.desiredState === 'shutdown' || t.desiredState === 'remove') && t.nodeId !== undefined && r < R_SHUTDOWN) return 'shutdown';
    return null;
  };
  const flush = async () => {
    timer = null;
    const ids = [...due];
    due.clear();
    for (let i = 0; i < ids.length; i += 500) {
      await store.update((tx) => {
        for (const id of ids.slice(i, i + 500)) {
          const t = tx.get('task', id);
          const state = t && next(t as Task);
          if (t && state) tx.update({ ...t, status: { state, timestamp: new Date().toISOString(), message: state } });
        }
      });
    }
  };
  store.watch({ kinds: ['task'] }, (ev) => {
    if (ev.type === 'delete' || next(ev.object as Task) === null) return;
    due.add(ev.object.id);
    if (timer === null) timer = setTimeout(() => void flush(), 20);
  });
}

async function rollingUpdate(): Promise<void> {
  const store = new Store();
  await store.update((tx) => void tx.create(testCluster() as never));
  // In transactions of 500 (a transaction is bounded in size; 5,000 nodes in one are over it).
  for (let k = 0; k < NODES; k += 500) {
    await store.update((tx) => {
      for (let i = k; i < Math.min(NODES, k + 500); i++) tx.create(nodeDraft(i) as never);
    });
  }
  let batches = 0;
  const batch = store.batch.bind(store);
  store.batch = ((items, fn) => {
    batches++;
    return batch(items, fn);
  }) as Store['batch'];
  const reconciles = { decided: 0, nothing: 0, ms: 0 };
  const onReconcile = (r: { ms: number; decided: boolean }) => {
    reconciles[r.decided ? 'decided' : 'nothing']++;
    reconciles.ms += r.ms;
  };
  const loops = [new Orchestrator(store, { onReconcile }), new AllocatorRunner(store), new SchedulerRunner(store)];
  for (const l of loops) l.start();
  simulateNodes(store);
  const running = (version: number) =>
    store.view(
      (tx) => tx.tasksByService('svc').filter((t) => t.specVersion === version && t.desiredState === 'running' && t.status.state === 'running').length,
    );
  try {
    let t0 = performance.now();
    let u0 = process.cpuUsage();
    await store.update((tx) => void tx.create({ id: 'svc', kind: 'service', spec: serviceSpec('app:1'), specVersion: 1, status: {} } as never));
    while (running(1) < N) await sleep(50);
    console.log(
      `create ${N} replicas -> all running: ${((performance.now() - t0) / 1000).toFixed(2)} s wall, ${(cpuMs(process.cpuUsage(u0)) / 1000).toFixed(2)} s CPU`,
    );

    batches = 0;
    Object.assign(reconciles, { decided: 0, nothing: 0, ms: 0 });
    t0 = performance.now();
    u0 = process.cpuUsage();
    await store.update((tx) =>
      tx.modify('service', 'svc', (s) => {
        s.previousSpec = s.spec;
        s.spec = serviceSpec('app:2');
        s.specVersion += 1;
        s.updateStatus = { state: 'updating', startedAt: new Date().toISOString(), message: 'update in progress' };
      }),
    );
    for (;;) {
      const s = store.view((tx) => tx.get('service', 'svc'));
      if (s?.updateStatus?.state === 'paused') throw new Error(`update paused: ${s.updateStatus.message}`);
      if (s?.updateStatus?.state === 'completed' && running(2) >= N) break;
      await sleep(50);
    }
    const wall = (performance.now() - t0) / 1000;
    const cpu = cpuMs(process.cpuUsage(u0));
    console.log(
      `rolling update of ${N} tasks, parallelism 100: ${wall.toFixed(2)} s wall, ${(cpu / 1000).toFixed(2)} s CPU (${(cpu / N).toFixed(2)} ms per task; goal in the lab <= 20 s)`,
    );
    console.log(
      `rolling update of ${N} tasks: ${batches} store batches (orchestrator, allocator and scheduler passes), ${(N / batches).toFixed(1)} tasks per batch`,
    );
    const n = reconciles.decided + reconciles.nothing;
    console.log(
      `rolling update of ${N} tasks: ${n} orchestrator reconciles, ${reconciles.nothing} of them deciding nothing; ${(reconciles.ms / 1000).toFixed(2)} s in them (${(reconciles.ms / Math.max(1, n)).toFixed(1)} ms each)`,
    );
  } finally {
    for (const l of loops) l.stop();
  }
}

/** N slots half way through a stop-first update: the first half replaced (old task shut down + new running). */
function midUpdate(): { service: never; tasks: FTask[]; ctx: ReconcileContext } {
  let n = 0;
  const nodes = new Map(Array.from({ length: NODES }, (_, i) => [`n${i}`, deepFreeze({ ...nodeDraft(i), version: 1, createdAt: '', updatedAt: '' }) as never]));
  const ctx = { now: Date.now(), newId: () => `t${(n++).toString(36).padStart(24, '0')}`, nodes, taskHistoryLimit: 5 } as ReconcileContext;
  const v1 = deepFreeze({
    id: 's',
    kind: 'service',
    spec: serviceSpec('app:1'),
    specVersion: 1,
    status: {},
    version: 1,
    createdAt: '',
    updatedAt: '',
  }) as never;
  const v2 = deepFreeze({
    id: 's',
    kind: 'service',
    spec: serviceSpec('app:2'),
    previousSpec: serviceSpec('app:1'),
    specVersion: 2,
    status: {},
    updateStatus: { state: 'updating', startedAt: new Date().toISOString(), message: '' },
    version: 2,
    createdAt: '',
    updatedAt: '',
  }) as never;
  const at = (k: number) => new Date(Date.UTC(2026, 0, 1, 0, 0, 0, k)).toISOString();
  const tasks: FTask[] = [];
  const placed = (t: object, nodeId: string, state: Task['status']['state'], desiredState: Task['desiredState'], k: number) =>
    deepFreeze({
      ...t,
      nodeId,
      desiredState,
      status: { state, timestamp: at(k), message: state },
      version: 2,
      createdAt: at(k),
      updatedAt: at(k + 1),
    }) as FTask;
  for (let s = 1; s <= N; s++) {
    const node = `n${s % NODES}`;
    const old = newTask(v1, ctx, { slot: s, desiredState: 'running' });
    if (s <= N / 2) {
      tasks.push(placed(old, node, 'shutdown', 'shutdown', s));
      tasks.push(placed(newTask(v2, ctx, { slot: s, desiredState: 'running' }), node, 'running', 'running', s + 2));
    } else tasks.push(placed(old, node, 'running', 'running', s));
  }
  return { service: v2, tasks, ctx };
}

function onePass(): void {
  const { service, tasks, ctx } = midUpdate();
  const samples: number[] = [];
  for (let i = 0; i < 60; i++) {
    const u = process.cpuUsage();
    reconcileReplicated(service, tasks, { ...ctx, now: Date.now() });
    if (i >= 10) samples.push(cpuMs(process.cpuUsage(u)));
  }
  const s = summarize(samples);
  console.log(
    `one orchestrator pass over ${N} slots / ${tasks.length} tasks mid-update: p50 ${s.p50.toFixed(1)} ms CPU, p99 ${s.p99.toFixed(1)} ms (${s.n} passes)`,
  );
}

async function readInBatch(): Promise<void> {
  const store = new Store();
  const tasks = 2 * N;
  await store.update((tx) => void tx.create(testCluster() as never));
  for (let i = 0; i < tasks; i += 500) {
    await store.update((tx) => {
      for (let j = i; j < Math.min(tasks, i + 500); j++)
        tx.create({
          id: `t${j.toString(36).padStart(24, '0')}`,
          kind: 'task',
          serviceId: 's',
          slot: (j % N) + 1,
          specVersion: 1,
          spec: { image: 'app:1' },
          desiredState: 'running',
          status: { state: 'running', timestamp: '', message: '' },
          serviceAnnotations: { name: 's', labels: {} },
          networks: [],
        } as never);
    });
  }
  const inBatch: number[] = [];
  const inView: number[] = [];
  for (let i = 0; i < 40; i++) {
    let u = process.cpuUsage();
    await store.batch(['s'], (tx) => void tx.tasksByService('s'));
    inBatch.push(cpuMs(process.cpuUsage(u)));
    u = process.cpuUsage();
    store.view((tx) => tx.tasksByService('s'));
    inView.push(cpuMs(process.cpuUsage(u)));
  }
  const b = summarize(inBatch).p50;
  const v = summarize(inView).p50;
  console.log(
    `a service's ${tasks} tasks read inside a store batch: p50 ${b.toFixed(2)} ms CPU; in a plain view (baseline): ${v.toFixed(2)} ms; ratio ${(b / v).toFixed(2)}x`,
  );
}

async function main(): Promise<void> {
  await rollingUpdate();
  onePass();
  await readInBatch();
}

main().then(
  () => process.exit(0),
  (e) => {
    console.error(`bench:orchestrator failed: ${(e as Error).stack ?? e}`);
    process.exit(1);
  },
);
