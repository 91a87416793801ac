// The pure reconcile functions on hand-built objects: no store, no runner, no clock.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { deepFreeze } from '../../api/objects.ts';
import type { Frozen, Node, Service, ServiceSpec, Task, TaskState } from '../../api/objects.ts';
import { reconcileService } from '../../manager/orchestrator/reconcile.ts';
import { MAX_NEW_TASKS_PER_PASS, pickForRemoval, reconcileReplicated, reconcileReplicatedSlots } from '../../manager/orchestrator/replicated.ts';
import { restartVerdict } from '../../manager/orchestrator/restart.ts';
import { buildSlot, bySlotNumber, dirtyCheck } from '../../manager/orchestrator/slots.ts';
import { firstToUpdate } from '../../manager/orchestrator/update.ts';
import { jobProgress } from '../../manager/orchestrator/jobs.ts';
import { isFitPlacement, placementProblem } from '../../manager/orchestrator/enforcer.ts';
import { isStopEcho, newTask, type ReconcileContext } from '../../manager/orchestrator/types.ts';
import { T0, seqIds } from './harness.ts';

const iso = (ms: number) => new Date(ms).toISOString();

function node(
  id: string,
  o: Partial<{ labels: Record<string, string>; state: Node['status']['state']; availability: Node['spec']['availability'] }> = {},
): Frozen<Node> {
  return deepFreeze<Node>({
    id,
    kind: 'node',
    version: 1,
    createdAt: iso(T0),
    updatedAt: iso(T0),
    spec: { labels: o.labels ?? {}, availability: o.availability ?? 'active', role: 'worker' },
    description: {
      hostname: id,
      platform: { os: 'linux', arch: 'amd64' },
      resources: { nanoCpus: 1e9, memoryBytes: 1e9 },
      engineVersion: 't',
      addr: '10.0.0.1',
    },
    status: { state: o.state ?? 'ready', message: '', addr: '10.0.0.1' },
  });
}

function service(o: Partial<ServiceSpec> & { specVersion?: number; updateStatus?: Service['updateStatus']; previousSpec?: ServiceSpec } = {}): Frozen<Service> {
  const { specVersion, updateStatus, previousSpec, ...spec } = o;
  return deepFreeze<Service>({
    id: 'svc',
    kind: 'service',
    version: 7,
    createdAt: iso(T0),
    updatedAt: iso(T0),
    spec: { name: 'web', labels: {}, mode: { replicated: { replicas: 1 } }, task: { image: 'app:1' }, networks: [], endpoint: { ports: [] }, ...spec },
    specVersion: specVersion ?? 1,
    ...(updateStatus ? { updateStatus } : {}),
    ...(previousSpec ? { previousSpec } : {}),
    status: {},
  });
}

let seq = 0;
function task(o: {
  slot?: number;
  nodeId?: string;
  state?: TaskState;
  desired?: TaskState;
  at?: number;
  created?: number;
  specVersion?: number;
  image?: string;
  exitCode?: number;
  restart?: Task['spec']['restartPolicy'];
  id?: string;
  constraints?: string[];
}): Frozen<Task> {
  const at = o.at ?? T0;
  return deepFreeze<Task>({
    id: o.id ?? `x${++seq}`,
    kind: 'task',
    version: 3,
    createdAt: iso(o.created ?? at - 1000),
    updatedAt: iso(at),
    serviceId: 'svc',
    ...(o.slot !== undefined ? { slot: o.slot } : {}),
    ...(o.nodeId !== undefined ? { nodeId: o.nodeId } : {}),
    spec: {
      image: o.image ?? 'app:1',
      ...(o.restart ? { restartPolicy: o.restart } : {}),
      ...(o.constraints ? { placement: { constraints: o.constraints } } : {}),
    },
    specVersion: o.specVersion ?? 1,
    desiredState: o.desired ?? 'running',
    status: { state: o.state ?? 'running', timestamp: iso(at), message: '', ...(o.exitCode !== undefined ? { exitCode: o.exitCode } : {}) },
    serviceAnnotations: { name: 'web', labels: {} },
    networks: [],
  });
}

function ctx(nodes: Frozen<Node>[], now = T0 + 60_000, extra: Partial<ReconcileContext> = {}): ReconcileContext {
  return { now, newId: seqIds('n'), nodes: new Map(nodes.map((n) => [n.id, n])), taskHistoryLimit: 5, ...extra };
}

const actionsOf = (r: ReturnType<typeof reconcileService>) => r.decisions.flatMap((d) => d.actions);

test('pickForRemoval: dead and non-running slots first, then the busiest node, highest slot on a tie', () => {
  const noDirty = () => false;
  const mk = (slot: number, nodeId: string, state: TaskState = 'running') => buildSlot(`slot:${slot}`, [task({ slot, nodeId, state })], noDirty, { slot });
  const slots = [mk(1, 'a'), mk(2, 'a'), mk(3, 'a'), mk(4, 'b'), mk(5, 'b'), mk(6, 'c'), mk(7, 'c', 'pending')];
  assert.deepEqual(
    pickForRemoval(slots, 1).map((s) => s.slot),
    [7],
  );
  assert.deepEqual(
    pickForRemoval(slots, 3).map((s) => s.slot),
    [7, 3, 5],
  );
  assert.deepEqual(
    pickForRemoval(slots, 4).map((s) => s.slot),
    [7, 3, 5, 2],
  );
});

test('restartVerdict: conditions, jobs, delay, max attempts counted from the slot history', () => {
  const now = T0 + 100_000;
  const failed = task({ slot: 1, state: 'failed', exitCode: 1, at: T0 + 90_000, restart: { condition: 'any', delayMs: 20_000 } });
  assert.deepEqual(restartVerdict(failed, [failed], { job: false, now }), { restart: true, at: T0 + 110_000, attempt: 1 });
  const done = task({ slot: 1, state: 'complete', exitCode: 0, restart: { condition: 'on-failure' } });
  assert.equal(restartVerdict(done, [done], { job: false, now }).restart, false);
  const doneAny = task({ slot: 1, state: 'complete', exitCode: 0 });
  assert.equal(restartVerdict(doneAny, [doneAny], { job: false, now }).restart, true);
  assert.equal(restartVerdict(doneAny, [doneAny], { job: true, now }).restart, false, 'a job completion is final');
  const none = task({ slot: 1, state: 'failed', restart: { condition: 'none' } });
  assert.equal(restartVerdict(none, [none], { job: false, now }).restart, false);

  const policy = { condition: 'any' as const, delayMs: 0, maxAttempts: 2, windowMs: 30_000 };
  const h1 = task({ slot: 1, state: 'failed', desired: 'shutdown', at: T0 + 10_000, restart: policy });
  const h2 = task({ slot: 1, state: 'rejected', desired: 'shutdown', at: T0 + 70_000, restart: policy });
  const h3 = task({ slot: 1, state: 'shutdown', desired: 'shutdown', at: T0 + 75_000, restart: policy }); // drained: not a restart
  const head = task({ slot: 1, state: 'failed', at: T0 + 80_000, restart: policy });
  const v = restartVerdict(head, [h1, h2, h3, head], { job: false, now });
  assert.deepEqual(v, { restart: true, at: T0 + 80_000, attempt: 2 }, 'h1 is outside the window, h3 was not a restart');
  const h4 = task({ slot: 1, state: 'failed', desired: 'shutdown', at: T0 + 79_000, restart: policy });
  const v2 = restartVerdict(head, [h1, h2, h3, h4, head], { job: false, now });
  assert.equal(v2.restart, false);
  assert.match((v2 as { reason: string }).reason, /2 restarts within 30000 ms reached the maximum of 2/);
});

test('dirtyCheck: template changes are dirty; placement alone only where the node no longer fits', () => {
  const nodes = new Map([
    ['a', node('a', { labels: { zone: 'x' } })],
    ['b', node('b', { labels: { zone: 'y' } })],
  ]);
  const svc = service({ specVersion: 2, task: { image: 'app:1', placement: { constraints: ['node.labels.zone==x'] } } });
  const isDirty = dirtyCheck(svc, nodes);
  assert.equal(isDirty(task({ nodeId: 'a' })), false, 'placement only, node still fits');
  assert.equal(isDirty(task({ nodeId: 'b' })), true, 'placement only, node does not fit');
  assert.equal(isDirty(task({ nodeId: 'a', image: 'app:0' })), true);
  assert.equal(isDirty(task({ nodeId: 'b', image: 'app:0', specVersion: 2 })), false, 'current spec version is never dirty');

  const prev: ServiceSpec = { ...svc.spec, endpoint: { ports: [{ protocol: 'tcp', targetPort: 80, publishMode: 'ingress' }] } } as ServiceSpec;
  const net = service({ specVersion: 2, previousSpec: prev });
  assert.equal(dirtyCheck(net, nodes)(task({ nodeId: 'a' })), true, 'an endpoint change makes older tasks dirty');
});

test('enforcer: placementProblem names the reason', () => {
  const nodes = new Map([
    ['a', node('a', { labels: { zone: 'x' } })],
    ['d', node('d', { state: 'down' })],
    ['r', node('r', { availability: 'drain' })],
    ['p', node('p', { availability: 'pause' })],
  ]);
  assert.equal(placementProblem(task({ nodeId: 'a', constraints: ['node.labels.zone==x'] }), nodes), null);
  assert.match(placementProblem(task({ nodeId: 'a', constraints: ['node.labels.zone==y'] }), nodes)!, /no longer satisfies constraint node.labels.zone==y/);
  assert.match(placementProblem(task({ nodeId: 'd' }), nodes)!, /is down/);
  assert.match(placementProblem(task({ nodeId: 'r' }), nodes)!, /is drained/);
  assert.equal(placementProblem(task({ nodeId: 'p' }), nodes), null, 'paused nodes keep their tasks');
  assert.match(placementProblem(task({ nodeId: 'gone' }), nodes)!, /was removed/);
});

test('reconcileReplicated: a restart is one decision (shut the old down AND create the new), with the slot and spec', () => {
  const nodes = [node('a')];
  const svc = service({ mode: { replicated: { replicas: 2 } } });
  const dead = task({ id: 'old', slot: 2, nodeId: 'a', state: 'failed', exitCode: 1, at: T0, restart: { condition: 'any', delayMs: 0 } });
  const r = reconcileReplicated(svc, [task({ slot: 1, nodeId: 'a' }), dead], ctx(nodes));
  assert.equal(r.decisions.length, 1);
  const [stop, create] = r.decisions[0]!.actions;
  assert.deepEqual(stop, { type: 'set', taskId: 'old', version: 3, desiredState: 'shutdown' });
  assert.equal(create!.type, 'create');
  const t = (create as { task: Task }).task;
  assert.equal(t.slot, 2);
  assert.equal(t.nodeId, undefined);
  assert.equal(t.desiredState, 'running');
  // No network and no published port: the allocator would give it nothing, so it is created pending.
  assert.equal(t.status.state, 'pending');
  assert.equal(t.status.message, 'pending task scheduling');
  assert.equal(t.specVersion, 1);
  assert.deepEqual(t.spec, { image: 'app:1' });
  assert.equal(r.wakeAt, null);
});

test('newTask: created new (for the allocator) with an overlay network or a published port, pending without', () => {
  const c = ctx([node('a')]);
  const state = (spec: Partial<ServiceSpec>) => newTask(service(spec), c, { desiredState: 'running', slot: 1 }).status.state;
  assert.equal(state({}), 'pending');
  assert.equal(state({ networks: [{ target: 'host' }] }), 'pending', "the host's network needs no allocation");
  assert.equal(state({ networks: [{ target: 'backend' }] }), 'new');
  assert.equal(state({ networks: [{ target: 'host' }, { target: 'backend' }] }), 'new');
  assert.equal(state({ endpoint: { ports: [{ targetPort: 80, publishedPort: 8080, protocol: 'tcp', publishMode: 'ingress' }] } }), 'new');
  assert.equal(
    state({ endpoint: { ports: [{ targetPort: 80, publishedPort: 8080, protocol: 'tcp', publishMode: 'host' }] } }),
    'new',
    'ports are written to the endpoint by the allocator',
  );
});

test('reconcileReplicated: a pending restart only asks to be woken up', () => {
  const svc = service();
  const dead = task({ slot: 1, nodeId: 'a', state: 'failed', at: T0 + 58_000 }); // default delay 5 s
  const r = reconcileReplicated(svc, [dead], ctx([node('a')]));
  assert.equal(r.decisions.length, 0);
  assert.equal(r.wakeAt, T0 + 63_000);
});

test('reaper: N newest history tasks per slot, removed tasks deleted once stopped, at least maxAttempts kept', () => {
  const svc = service({ task: { image: 'app:1', restartPolicy: { condition: 'any', maxAttempts: 3 } } });
  const hist = [1, 2, 3, 4].map((i) => task({ id: `h${i}`, slot: 1, nodeId: 'a', state: 'failed', desired: 'shutdown', at: T0 + i * 1000 }));
  const head = task({ id: 'head', slot: 1, nodeId: 'a' });
  const removed = task({ id: 'rm', slot: 2, nodeId: 'a', state: 'shutdown', desired: 'remove' });
  const r = reconcileService('svc', svc, [...hist, head, removed], ctx([node('a')], T0 + 60_000, { taskHistoryLimit: 1 }));
  const deleted = actionsOf(r)
    .filter((a) => a.type === 'delete')
    .map((a) => (a as { taskId: string }).taskId)
    .sort();
  assert.deepEqual(deleted, ['h1', 'rm'], 'keep max(limit 1, maxAttempts 3) = 3 newest');
});

test('deleted service: unfinished tasks told to remove, finished ones deleted', () => {
  const a = task({ id: 'a', slot: 1, nodeId: 'n' });
  const b = task({ id: 'b', slot: 2, nodeId: 'n', state: 'failed' });
  const c = task({ id: 'c', slot: 3, state: 'pending' });
  const r = reconcileService('svc', undefined, [a, b, c], ctx([node('n')]));
  const acts = actionsOf(r);
  assert.deepEqual(
    acts.find((x) => x.type === 'set' && x.taskId === 'a'),
    { type: 'set', taskId: 'a', version: 3, desiredState: 'remove' },
  );
  const cAct = acts.find((x) => x.type === 'set' && x.taskId === 'c') as { desiredState: string; status: { state: string } };
  assert.equal(cAct.desiredState, 'remove');
  assert.equal(cAct.status.state, 'shutdown', 'never scheduled: shut down by the orchestrator');
  assert.ok(
    acts.some((x) => x.type === 'delete' && x.taskId === 'b'),
    'expected to hold',
  );
});

test('update monitor: a failure long after the task started running does not count', () => {
  const svc = service({
    mode: { replicated: { replicas: 2 } },
    specVersion: 2,
    task: { image: 'app:2' },
    update: { parallelism: 1, delayMs: 0, failureAction: 'pause', monitorMs: 5_000, maxFailureRatio: 0, order: 'stop-first' },
    updateStatus: { state: 'updating', startedAt: iso(T0), message: 'update in progress' },
  });
  const now = T0 + 60_000;
  const late = task({ id: 'late', slot: 1, nodeId: 'a', image: 'app:2', specVersion: 2, state: 'failed', exitCode: 1, at: T0 + 50_000, created: T0 + 5_000 });
  const old = task({ id: 'old', slot: 2, nodeId: 'a' });
  const hints = new Map([['late', T0 + 10_000]]);
  const r = reconcileService('svc', svc, [late, old], ctx([node('a')], now, { runningSince: hints }));
  assert.equal(
    actionsOf(r).some((a) => a.type === 'service' && a.updateStatus.state === 'paused'),
    false,
    'with the hint',
  );
  // Without the hint the exit code tells it ran; it is measured from its creation (45 s before): too late too.
  const r2 = reconcileService('svc', svc, [late, old], ctx([node('a')], now));
  assert.equal(
    actionsOf(r2).some((a) => a.type === 'service' && a.updateStatus.state === 'paused'),
    false,
    'without the hint',
  );
  // A quick failure counts: pause, naming the task.
  const quick = task({ id: 'quick', slot: 1, nodeId: 'a', image: 'app:2', specVersion: 2, state: 'rejected', at: T0 + 50_000 });
  const r3 = reconcileService('svc', svc, [quick, old], ctx([node('a')], now));
  const pause = actionsOf(r3).find((a) => a.type === 'service');
  assert.ok(pause !== undefined && pause.type === 'service', 'paused');
  assert.equal(pause.updateStatus.state, 'paused');
  assert.match(pause.updateStatus.message, /task quick/);
});

test('jobProgress counts completions of the current iteration', () => {
  const svc = service({ mode: { replicatedJob: { maxConcurrent: 2, totalCompletions: 3 } }, specVersion: 2 });
  const tasks = [
    task({ slot: 1, state: 'complete', desired: 'complete', specVersion: 2 }),
    task({ slot: 2, state: 'running', desired: 'complete', specVersion: 2 }),
    task({ slot: 3, state: 'failed', desired: 'complete', specVersion: 2 }),
    task({ slot: 1, state: 'complete', desired: 'shutdown', specVersion: 1 }),
  ];
  assert.deepEqual(jobProgress(svc, tasks), { total: 3, completed: 1, running: 1, failed: 1, done: false });
});

test('bySlotNumber: slots in ascending order, dense or not; tasks without a slot are strays', () => {
  const noDirty = () => false;
  const ts = [
    task({ slot: 3 }),
    task({ slot: 1 }),
    task({ slot: 3, state: 'shutdown', desired: 'shutdown', at: T0 - 5000 }),
    task({}),
    task({ slot: 10_000_000 }), // far past the dense range
    task({ slot: -2 }),
    task({ slot: 2.5 }),
    task({ slot: 0 }),
  ];
  const { slots, strays } = bySlotNumber(ts, noDirty);
  assert.deepEqual([...slots.keys()], [-2, 0, 1, 2.5, 3, 10_000_000]);
  assert.deepEqual(strays, [ts[3]]);
  const s3 = slots.get(3)!;
  assert.deepEqual(s3.tasks, [ts[0], ts[2]], 'a slot keeps every task, in input order');
  assert.equal(s3.head, ts[0]);
  assert.deepEqual(s3.extras, []);
  assert.equal(slots.get(1)!.key, 'slot:1');
  // A slot whose only task was told to stop is dead, with no live tasks.
  const dead = bySlotNumber([task({ slot: 4, desired: 'shutdown' })], noDirty).slots.get(4)!;
  assert.equal(dead.dead, true);
  assert.deepEqual(dead.live, []);
});

test('update facts kept on slot objects: reused while service and nodes are the same, never the clock', () => {
  // Slot 1 already runs version 2 (since T0 + 58 s, delay 5 s: settling until T0 + 63 s); slots 2 and 3
  // run version 1. Parallelism 2: while slot 1 settles, only one more slot may start.
  const spec = { mode: { replicated: { replicas: 3 } }, task: { image: 'app:2' } } as const;
  const updating = { state: 'updating' as const, startedAt: iso(T0), message: 'update in progress' };
  const update = (parallelism: number) => ({
    parallelism,
    delayMs: 5_000,
    failureAction: 'pause' as const,
    monitorMs: 5_000,
    maxFailureRatio: 0,
    order: 'stop-first' as const,
  });
  const svc = service({ ...spec, update: update(2), specVersion: 2, updateStatus: updating });
  const ts = [task({ slot: 1, specVersion: 2, image: 'app:2', at: T0 + 58_000 }), task({ slot: 2, nodeId: 'n1' }), task({ slot: 3, nodeId: 'n1' })];
  const c = ctx([node('n1')], T0 + 60_000);
  const isDirty = dirtyCheck(svc, c.nodes);
  const grouped = bySlotNumber(ts, isDirty);
  const stops = (r: ReturnType<typeof reconcileService>) =>
    actionsOf(r)
      .filter((a) => a.type === 'set' && a.desiredState === 'shutdown')
      .map((a) => (a as { taskId: string }).taskId);
  assert.deepEqual(stops(reconcileReplicatedSlots(svc, grouped, isDirty, c)), [ts[1]!.id], 'slot 1 settling: one slot starts');
  const facts = [...grouped.slots.values()].map((s) => s.updateFacts);
  assert.ok(facts.every((f) => f !== undefined));
  // Same objects, a later clock: the facts are reused, the settle window is applied anew.
  assert.deepEqual(stops(reconcileReplicatedSlots(svc, grouped, isDirty, { ...c, now: T0 + 64_000 })), [ts[1]!.id, ts[2]!.id], 'slot 1 settled');
  assert.deepEqual(
    [...grouped.slots.values()].map((s) => s.updateFacts),
    facts,
  );
  // A new service object (parallelism 1): every slot's facts are computed again.
  const svc2 = service({ ...spec, update: update(1), specVersion: 2, updateStatus: updating });
  assert.deepEqual(stops(reconcileReplicatedSlots(svc2, grouped, dirtyCheck(svc2, c.nodes), c)), [], 'slot 1 settling takes the only place');
  assert.ok([...grouped.slots.values()].every((s, i) => s.updateFacts !== facts[i] && s.updateFacts?.service === svc2));
});

test('quiet-slot memos and update facts follow the nodes of their own tasks: one node Down re-checks its slots only', () => {
  // 12 slots over 4 nodes, all running. A first pass finds every slot quiet; then n2 goes down (a new
  // node object in a new map) and n3 gets a label (a new object that changes nothing).
  const svc = service({ mode: { replicated: { replicas: 12 } } });
  const nodes = ['n1', 'n2', 'n3', 'n4'].map((id) => node(id));
  const ts = Array.from({ length: 12 }, (_, i) => task({ slot: i + 1, nodeId: `n${(i % 4) + 1}` }));
  const c1 = ctx(nodes);
  const grouped = bySlotNumber(ts, dirtyCheck(svc, c1.nodes));
  assert.deepEqual(reconcileReplicatedSlots(svc, grouped, dirtyCheck(svc, c1.nodes), c1).decisions, []);
  const memo = new Map([...grouped.slots].map(([n, sl]) => [n, { repair: sl.quietRepair, facts: sl.updateFacts }]));
  assert.ok([...memo.values()].every((m) => m.repair?.nodes === c1.nodes && m.facts?.nodes === c1.nodes));

  const c2 = ctx([nodes[0]!, node('n2', { state: 'down' }), node('n3', { labels: { zone: 'b' } }), nodes[3]!]);
  const r = reconcileReplicatedSlots(svc, grouped, dirtyCheck(svc, c2.nodes), c2);
  const moved = r.decisions.map((d) => d.reason.match(/^slot (\d+)/)![1]).sort();
  assert.deepEqual(moved, ['10', '2', '6'], 'the slots on n2 are moved, no other');
  // The same as a reconcile from scratch (fresh slots, no memo).
  const fresh = reconcileReplicated(svc, ts, { ...c2, newId: seqIds('n') });
  assert.deepEqual(
    fresh.decisions.map((d) => d.reason.replace(/new task \S+/, '')),
    r.decisions.map((d) => d.reason.replace(/new task \S+/, '')),
  );
  for (const [n, sl] of grouped.slots) {
    if ([2, 6, 10].includes(n)) {
      assert.equal(sl.quietRepair?.nodes, c1.nodes, `slot ${n} on n2: its memo is not renewed`);
      continue;
    }
    // Slots on n1 and n4: the memos hold and are renewed for c2. Slots on n3 (a new object with the same
    // answers): computed again, quiet again.
    assert.equal(sl.quietRepair?.nodes, c2.nodes, `slot ${n}: quiet memo for the new map`);
    assert.equal(sl.updateFacts?.nodes, c2.nodes);
    if ([3, 7, 11].includes(n)) assert.notEqual(sl.updateFacts, memo.get(n)!.facts, `slot ${n} on n3: facts computed again`);
    else assert.equal(sl.updateFacts, memo.get(n)!.facts, `slot ${n}: update facts kept`);
  }
});

test('firstToUpdate: the first n in (not running, slot, key) order, the same as sorting', () => {
  const states: TaskState[] = ['running', 'pending', 'assigned', 'running', 'starting'];
  for (let round = 0; round < 50; round++) {
    const us = [];
    for (let i = 1; i <= 40; i++) {
      const t = task({ slot: i, state: states[(i * 7 + round) % states.length]! });
      us.push({ slot: buildSlot(`slot:${i}`, [t], () => true, { slot: i }), cond: 'ok' as const, replacement: () => null });
    }
    // Listed by slot (as reconcileReplicated does), and shuffled (the fallback sorts).
    const shuffled = [...us].sort((a, b) => ((a.slot.slot! * 31 + round) % 17) - ((b.slot.slot! * 31 + round) % 17));
    const want = [...us]
      .sort((a, b) => Number(a.slot.head!.status.state === 'running') - Number(b.slot.head!.status.state === 'running') || a.slot.slot! - b.slot.slot!)
      .map((u) => u.slot.slot);
    for (const n of [0, 1, 7, 40, 100]) {
      assert.deepEqual(
        firstToUpdate(us, n).map((u) => u.slot.slot),
        want.slice(0, n),
      );
      assert.deepEqual(
        firstToUpdate(shuffled, n).map((u) => u.slot.slot),
        want.slice(0, n),
      );
    }
  }
});

test('isFitPlacement: only a task desired to run, placed by the scheduler on a node that can keep it', () => {
  const pending = task({ slot: 1, state: 'pending' });
  const placed = (o: Parameters<typeof task>[0] = {}) => task({ id: pending.id, slot: 1, state: 'assigned', nodeId: 'n1', ...o });
  assert.equal(isFitPlacement(pending, placed(), node('n1')), true);
  assert.equal(isFitPlacement(pending, placed(), node('n1', { availability: 'drain' })), false, 'drained');
  assert.equal(isFitPlacement(pending, placed(), node('n1', { state: 'down' })), false, 'down');
  assert.equal(isFitPlacement(pending, placed(), undefined), false, 'removed');
  assert.equal(isFitPlacement(pending, placed(), node('n2')), false, 'another node');
  assert.equal(isFitPlacement(pending, placed({ constraints: ['node.labels.zone==a'] }), node('n1')), false, 'a constraint it fails');
  assert.equal(isFitPlacement(pending, placed({ desired: 'shutdown' }), node('n1')), false, 'told to stop');
  assert.equal(isFitPlacement(pending, placed({ state: 'running' }), node('n1')), false, 'running');
  assert.equal(isFitPlacement(pending, placed({ specVersion: 2 }), node('n1')), false, 'another spec version');
  assert.equal(
    isFitPlacement(task({ slot: 1, state: 'pending', nodeId: 'n1' }), placed(), node('n1')),
    false,
    'a global task (bound to its node) keeps its pass',
  );
});

test('isStopEcho: only the desired state moved to a stop, on an assigned task whose node is up', () => {
  const running = task({ slot: 1, nodeId: 'n1', state: 'running', id: 'e1' });
  const told = (o: Parameters<typeof task>[0] = {}) => task({ slot: 1, nodeId: 'n1', state: 'running', desired: 'shutdown', id: 'e1', ...o });
  assert.equal(isStopEcho(running, told(), node('n1')), true);
  assert.equal(isStopEcho(running, told({ desired: 'remove' }), node('n1')), true, 'remove too');
  assert.equal(isStopEcho(running, told(), node('n1', { state: 'down' })), false, 'node down: its pass may orphan the task');
  assert.equal(isStopEcho(running, told(), undefined), false, 'node removed');
  assert.equal(isStopEcho(running, told({ state: 'shutdown' }), node('n1')), false, 'the state changed as well');
  assert.equal(isStopEcho(running, running, node('n1')), false, 'no stop');
  const pending = task({ slot: 1, state: 'pending', id: 'e2' });
  assert.equal(
    isStopEcho(pending, task({ slot: 1, state: 'pending', desired: 'shutdown', id: 'e2' }), undefined),
    false,
    'unassigned: shut down by the orchestrator itself',
  );
});

test('reconcileReplicated: a large scale-up is spread over passes, each asking to be woken at once for the rest', () => {
  const want = 2 * MAX_NEW_TASKS_PER_PASS + 7;
  const svc = service({ mode: { replicated: { replicas: want } } });
  const c = ctx([node('a')]);
  const first = reconcileReplicated(svc, [], c);
  const created = (r: ReturnType<typeof reconcileReplicated>) => r.decisions.flatMap((d) => d.actions).filter((a) => a.type === 'create') as { task: Task }[];
  assert.equal(created(first).length, MAX_NEW_TASKS_PER_PASS);
  assert.equal(first.wakeAt, c.now + 1, 'the rest is due at once');
  assert.deepEqual(
    created(first)
      .map((a) => a.task.slot)
      .slice(0, 3),
    [1, 2, 3],
  );
  // The next pass sees those tasks and goes on from the first free slot; the last one ends the wake-ups.
  const have = created(first).map((a) => a.task);
  const second = reconcileReplicated(svc, have, c);
  assert.equal(created(second).length, MAX_NEW_TASKS_PER_PASS);
  assert.equal(created(second)[0]!.task.slot, MAX_NEW_TASKS_PER_PASS + 1);
  const third = reconcileReplicated(svc, [...have, ...created(second).map((a) => a.task)], c);
  assert.equal(created(third).length, 7);
  assert.equal(third.wakeAt, null);
  assert.equal(created(third).at(-1)!.task.slot, want);
});

test('reconcileReplicated: replacing the tasks of failed nodes shares the per-pass budget; the rest wait for the next pass', () => {
  // A thousand more tasks than the budget on a node that is now down, 10 on a live one, and 10 replicas missing.
  const dead = MAX_NEW_TASKS_PER_PASS + 1_000;
  const want = dead + 20;
  const svc = service({ mode: { replicated: { replicas: want } } });
  const nodes = [node('dead', { state: 'down' }), node('live')];
  const tasks = [
    ...Array.from({ length: dead }, (_, i) => task({ id: `d${i}`, slot: i + 1, nodeId: 'dead' })),
    ...Array.from({ length: 10 }, (_, i) => task({ id: `l${i}`, slot: dead + 1 + i, nodeId: 'live' })),
  ];
  const c = ctx(nodes);
  const r = reconcileReplicated(svc, tasks, c);
  const actions = r.decisions.flatMap((d) => d.actions);
  const creates = actions.filter((a) => a.type === 'create') as { task: Task }[];
  assert.equal(creates.length, MAX_NEW_TASKS_PER_PASS, 'one budget for the pass');
  assert.ok(
    creates.every((a) => a.task.slot! <= dead),
    'repairs first, in slot order; no scale-up while the budget is spent',
  );
  // Every replacement stops its old task in the same decision; the deferred slots are untouched.
  const stopped = new Set(actions.filter((a) => a.type === 'set').map((a) => (a as { taskId: string }).taskId));
  assert.equal(stopped.size, MAX_NEW_TASKS_PER_PASS);
  assert.ok(!stopped.has(`d${MAX_NEW_TASKS_PER_PASS}`), 'the first deferred slot keeps its task for now');
  assert.equal(r.wakeAt, c.now + 1, 'and the next pass is due at once');
});
