// SchedulerRunner on an in-memory Store (no proposer: local commits): it places pending tasks, writes
// pending reasons (only when they change), places tasks once a node qualifies or capacity is freed,
// coalesces bursts, ignores tasks on their way out, stops cleanly, and recomputes after a conflict.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { ASSIGNED_MESSAGE, SchedulerRunner, collectInput } from '../../manager/scheduler/runner.ts';
import type { NodesMemo, PassInfo, SchedulerRunnerOptions } from '../../manager/scheduler/runner.ts';
import { Store } from '../../manager/store/store.ts';
import type { Draft, Frozen, Node, Service, Task, TaskState, TaskTemplate } from '../../api/objects.ts';

// ---------------------------------------------------------------------------------------------- fixtures

const GiB = 1024 ** 3;

function nodeObj(
  id: string,
  over: { labels?: Record<string, string>; state?: Node['status']['state']; availability?: Node['spec']['availability']; memoryBytes?: number } = {},
): Draft<Node> {
  return {
    id,
    kind: 'node',
    spec: { labels: over.labels ?? {}, availability: over.availability ?? 'active', role: 'worker' },
    description: {
      hostname: `host-${id}`,
      platform: { os: 'linux', arch: 'x64' },
      resources: { nanoCpus: 4e9, memoryBytes: over.memoryBytes ?? 8 * GiB },
      engineVersion: '',
      addr: '10.0.0.1',
    },
    status: { state: over.state ?? 'ready', message: '', addr: '10.0.0.1' },
  };
}

function taskObj(
  id: string,
  serviceId: string,
  over: { spec?: Partial<TaskTemplate>; desiredState?: TaskState; state?: TaskState; nodeId?: string; slot?: number } = {},
): Draft<Task> {
  return {
    id,
    kind: 'task',
    serviceId,
    ...(over.slot !== undefined ? { slot: over.slot } : {}),
    ...(over.nodeId !== undefined ? { nodeId: over.nodeId } : {}),
    spec: { image: 'nginx:alpine', ...over.spec },
    specVersion: 1,
    desiredState: over.desiredState ?? 'running',
    status: { state: over.state ?? 'pending', timestamp: '2025-01-01T00:00:00.000Z', message: 'pending task scheduling' },
    serviceAnnotations: { name: serviceId, labels: {} },
    networks: [],
  };
}

function serviceObj(id: string, ports: Service['spec']['endpoint']['ports'] = []): Draft<Service> {
  return {
    id,
    kind: 'service',
    spec: { name: id, labels: {}, mode: { replicated: { replicas: 1 } }, task: { image: 'nginx:alpine' }, networks: [], endpoint: { ports } },
    specVersion: 1,
    status: {},
  };
}

interface Harness {
  store: Store;
  runner: SchedulerRunner;
  passes: PassInfo[];
  logs: string[];
  task(id: string): Frozen<Task>;
  done(): Promise<void>;
}

/** Differences between the tasks the runner kept and a full read, over every runner of this file. */
const keptDiffs: string[] = [];
let keptChecks = 0;

function harness(opts: SchedulerRunnerOptions = {}, store = new Store({})): Harness {
  const passes: PassInfo[] = [];
  const logs: string[] = [];
  const runner = new SchedulerRunner(store, {
    log: (m) => logs.push(m),
    onPass: (p) => passes.push(p),
    // Every pass of every test here also reads all tasks and compares them with the kept ones.
    verifyKept: (d) => (d === null ? keptChecks++ : keptDiffs.push(d)),
    ...opts,
  });
  return {
    store,
    runner,
    passes,
    logs,
    task: (id) => store.view((tx) => tx.get('task', id))!,
    done: async () => {
      await runner.idle();
      assert.deepEqual(keptDiffs, [], 'the kept tasks match the store');
    },
  };
}

after(() => {
  assert.deepEqual(keptDiffs, []);
  assert.ok(keptChecks >= 10, `${keptChecks} passes compared the kept tasks with a full read`);
});

async function create(store: Store, objs: (Draft<Node> | Draft<Task> | Draft<Service>)[]): Promise<void> {
  await store.update((tx) => {
    for (const o of objs) tx.create(o);
  });
}

function perNode(store: Store): Record<string, number> {
  const out: Record<string, number> = {};
  for (const t of store.view((tx) => tx.list('task', (x) => x.status.state === 'assigned'))) out[t.nodeId!] = (out[t.nodeId!] ?? 0) + 1;
  return out;
}

// ------------------------------------------------------------------------------------------------- tests

test('runner: pending tasks are assigned, spread, with state assigned and a message', async (t) => {
  const h = harness();
  t.after(() => h.runner.stop());
  await create(h.store, [nodeObj('n1'), nodeObj('n2'), nodeObj('n3')]);
  await create(
    h.store,
    Array.from({ length: 7 }, (_, i) => taskObj(`t${i}`, 's1', { slot: i + 1 })),
  );
  h.runner.start();
  await h.done();
  assert.deepEqual(perNode(h.store), { n1: 3, n2: 2, n3: 2 });
  const t0 = h.task('t0');
  assert.equal(t0.nodeId, 'n1');
  assert.equal(t0.status.state, 'assigned');
  assert.equal(t0.status.message, ASSIGNED_MESSAGE);
  assert.notEqual(t0.status.timestamp, '2025-01-01T00:00:00.000Z');
  // Tasks created while running are placed too, on the emptiest nodes for their service.
  await create(h.store, [taskObj('u0', 's1', { slot: 8 }), taskObj('u1', 's1', { slot: 9 })]);
  await h.done();
  assert.deepEqual(perNode(h.store), { n1: 3, n2: 3, n3: 3 });
  assert.ok(
    h.logs.some((l) => l.startsWith('scheduler: assigned 7 of 7 pending tasks')),
    h.logs.join('\n'),
  );
});

test("runner: a pass writes each node's new tasks together (in node order), not spread across its transactions", async (t) => {
  // Transactions of at most ≈ 1 KB: a pass's 12 assignments take several.
  const h = harness({}, new Store({ maxTxBytes: 4_096 }));
  t.after(() => h.runner.stop());
  await create(h.store, [nodeObj('n1'), nodeObj('n2'), nodeObj('n3')]);
  await create(
    h.store,
    Array.from({ length: 12 }, (_, i) => taskObj(`t${i}`, 's1', { slot: i + 1 })),
  );
  const order: { node: string; index: number }[] = [];
  const stop = h.store.watch({ kinds: ['task'] }, (ev) => {
    const x = ev.object as Task;
    if (x.status.state === 'assigned') order.push({ node: x.nodeId!, index: ev.index });
  });
  t.after(stop);
  h.runner.start();
  await h.done();
  assert.equal(order.length, 12);
  assert.deepEqual(
    order.map((o) => o.node),
    [...order.map((o) => o.node)].sort(),
    'assignments in node order (placement spread them n1, n2, n3, n1, ...)',
  );
  assert.ok(new Set(order.map((o) => o.index)).size > 1, 'over several transactions');
});

test('runner: an impossible constraint leaves the task pending with the reason, until a node gets the label', async (t) => {
  const h = harness();
  t.after(() => h.runner.stop());
  await create(h.store, [nodeObj('n1'), nodeObj('n2', { availability: 'drain' })]);
  h.runner.start();
  await create(h.store, [taskObj('t1', 's1', { spec: { placement: { constraints: ['node.labels.zone==eu'] } } })]);
  await h.done();
  let t1 = h.task('t1');
  assert.equal(t1.status.state, 'pending');
  assert.equal(t1.nodeId, undefined);
  assert.equal(t1.status.message, 'no suitable node (1 node fails constraint node.labels.zone==eu; 1 node is drained)');
  const version = t1.version;

  // A pass for another reason (capacity freed elsewhere) finds the same reason: nothing is written.
  const passes = h.passes.length;
  await create(h.store, [taskObj('r1', 'other', { nodeId: 'n1', state: 'running' })]);
  await h.store.update((tx) => tx.modify('task', 'r1', (d) => void (d.status.state = 'complete')));
  await h.done();
  assert.equal(h.passes.length, passes + 1);
  assert.equal(h.passes.at(-1)!.messages, 0);
  assert.equal(h.task('t1').version, version);

  // A heartbeat-like node update (no placement-relevant change) does not even run a pass.
  const before = h.passes.length;
  await h.store.update((tx) => tx.modify('node', 'n1', (d) => void (d.status.lastHeartbeat = new Date().toISOString())));
  await h.done();
  assert.equal(h.passes.length, before);

  // The node gets the label: the task is placed.
  await h.store.update((tx) => tx.modify('node', 'n1', (d) => void (d.spec.labels['zone'] = 'eu')));
  await h.done();
  t1 = h.task('t1');
  assert.equal(t1.status.state, 'assigned');
  assert.equal(t1.nodeId, 'n1');
});

test('runner: a node becoming ready, and capacity being freed, place waiting tasks', async (t) => {
  const h = harness();
  t.after(() => h.runner.stop());
  await create(h.store, [nodeObj('n1', { state: 'down', memoryBytes: GiB })]);
  h.runner.start();
  const spec = { resources: { reservations: { memoryBytes: 0.6 * GiB } } };
  await create(h.store, [taskObj('a', 's', { spec }), taskObj('b', 's', { spec })]);
  await h.done();
  assert.equal(h.task('a').status.message, 'no suitable node (1 node is down)');

  await h.store.update((tx) => tx.modify('node', 'n1', (d) => void (d.status.state = 'ready')));
  await h.done();
  assert.equal(h.task('a').status.state, 'assigned');
  assert.equal(h.task('b').status.state, 'pending');
  assert.equal(h.task('b').status.message, 'no suitable node (1 node has insufficient memory)');

  // Task a fails on the node: its reservation is released and b goes there.
  await h.store.update((tx) => tx.modify('task', 'a', (d) => void (d.status.state = 'failed')));
  await h.done();
  assert.equal(h.task('b').status.state, 'assigned');
  assert.equal(h.task('b').nodeId, 'n1');
});

test('runner: tasks whose desired state is shutdown or remove are not scheduled; pre-assigned tasks are validated', async (t) => {
  const h = harness();
  t.after(() => h.runner.stop());
  await create(h.store, [nodeObj('n1'), nodeObj('n2', { availability: 'drain' }), nodeObj('n3', { availability: 'pause' })]);
  await create(h.store, [
    taskObj('down', 's', { desiredState: 'shutdown' }),
    taskObj('gone', 's', { desiredState: 'remove' }),
    taskObj('job', 'j', { desiredState: 'complete' }),
    taskObj('g1', 'global', { nodeId: 'n1' }),
    taskObj('g2', 'global', { nodeId: 'n2' }),
    // A bound task on a paused node replaces one that ran there: pause only stops new placements.
    taskObj('g3', 'global', { nodeId: 'n3' }),
  ]);
  h.runner.start();
  await h.done();
  assert.equal(h.task('down').status.state, 'pending');
  assert.equal(h.task('down').status.message, 'pending task scheduling');
  assert.equal(h.task('gone').nodeId, undefined);
  assert.equal(h.task('job').status.state, 'assigned');
  assert.equal(h.task('g1').status.state, 'assigned');
  assert.equal(h.task('g1').nodeId, 'n1');
  assert.equal(h.task('g3').status.state, 'assigned');
  assert.equal(h.task('g3').nodeId, 'n3');
  assert.equal(h.task('g2').status.state, 'pending');
  assert.equal(h.task('g2').status.message, 'no suitable node (1 node is drained)');
  // Activating the drained node places the pre-assigned task there.
  await h.store.update((tx) => tx.modify('node', 'n2', (d) => void (d.spec.availability = 'active')));
  await h.done();
  assert.equal(h.task('g2').status.state, 'assigned');
  assert.equal(h.task('g2').nodeId, 'n2');
});

test('runner: host-mode ports come from the service; a burst of creations is coalesced', async (t) => {
  const h = harness({ debounceMs: 20 });
  t.after(() => h.runner.stop());
  await create(h.store, [nodeObj('n1'), nodeObj('n2'), serviceObj('web', [{ protocol: 'tcp', targetPort: 80, publishedPort: 8080, publishMode: 'host' }])]);
  h.runner.start();
  await h.done();
  const passesBefore = h.passes.length;
  // 30 separate transactions in a burst.
  await Promise.all(Array.from({ length: 30 }, (_, i) => create(h.store, [taskObj(`w${i}`, 'web', { slot: i + 1 })])));
  await h.done();
  assert.ok(h.passes.length - passesBefore <= 2, `${h.passes.length - passesBefore} passes`);
  assert.deepEqual(perNode(h.store), { n1: 1, n2: 1 });
  const waiting = h.store.view((tx) => tx.list('task', (x) => x.status.state === 'pending'));
  assert.equal(waiting.length, 28);
  assert.ok(waiting.every((x) => x.status.message === 'no suitable node (2 nodes have port 8080/tcp in use)'));
});

test('runner: collectInput groups by service version and counts placed tasks with their reservations', async () => {
  const store = new Store({});
  await create(store, [nodeObj('n1'), serviceObj('s')]);
  await create(store, [
    taskObj('p1', 's', { nodeId: 'n1', state: 'running', spec: { resources: { reservations: { memoryBytes: 1 } } } }),
    taskObj('p2', 's', { nodeId: 'n1', state: 'shutdown' }),
    taskObj('q1', 's'),
    { ...taskObj('q2', 's'), specVersion: 2 },
    taskObj('q3', 's'),
  ]);
  const c = store.view((tx) => collectInput(tx, [], 0));
  assert.deepEqual(c.input.tasks, [{ serviceId: 's', nodeId: 'n1', reservations: { memoryBytes: 1 }, hostPorts: undefined }]);
  assert.deepEqual(
    c.input.groups.map((g) => [g.specVersion, g.tasks.map((x) => x.id)]),
    [
      [1, ['q1', 'q3']],
      [2, ['q2']],
    ],
  );
  assert.deepEqual([...c.pending.keys()], ['q1', 'q2', 'q3']);
  assert.equal(c.input.nodes[0]!.arch, 'x64');
});

test('runner: collectInput hands the core the same nodes array while no node changed, a new one after', async () => {
  const store = new Store({});
  await create(store, [nodeObj('n2'), nodeObj('n1'), serviceObj('s'), taskObj('q1', 's')]);
  const memo: { last: NodesMemo | null } = { last: null };
  const input = () => store.view((tx) => collectInput(tx, [], 0, undefined, memo)).input;
  const read = () => input().nodes;
  const a = read();
  const layout = input().layout;
  assert.ok(layout !== undefined);
  assert.deepEqual(
    layout.nodes.map((n) => n.id),
    ['n1', 'n2'],
    'sorted by id for the core',
  );
  await create(store, [taskObj('q2', 's')]);
  const b = read();
  assert.equal(b, a, 'a task changed, no node did: the same array (the core keeps its sorted layout for it)');
  assert.equal(input().layout, layout, 'and the same layout');
  await store.update((tx) => tx.modify('node', 'n1', (d) => void (d.spec.labels['zone'] = 'eu')));
  const c = read();
  assert.notEqual(c, a);
  assert.equal(c.find((n) => n.id === 'n1')!.labels['zone'], 'eu');
  // The node that did not change keeps its conversion.
  assert.equal(
    c.find((n) => n.id === 'n2'),
    a.find((n) => n.id === 'n2'),
  );
  assert.equal(read(), c, 'kept again from the new list on');
  assert.notEqual(input().layout, layout, 'the layout made again after the node changed');
});

test('runner: stop() ends scheduling; start() again resumes', async () => {
  const h = harness();
  await create(h.store, [nodeObj('n1')]);
  h.runner.start();
  await h.done();
  h.runner.stop();
  await create(h.store, [taskObj('t1', 's')]);
  await h.done();
  assert.equal(h.task('t1').status.state, 'pending');
  h.runner.start();
  await h.done();
  assert.equal(h.task('t1').status.state, 'assigned');
  h.runner.stop();
});

test('runner: the first read of the tasks goes a step at a time; tasks changed meanwhile are kept as changed', async () => {
  const store = new Store({});
  await create(store, [nodeObj('n1'), nodeObj('n2'), serviceObj('s1')]);
  // 12 running tasks on n1 and 2 pending ones; the runner reads 3 tasks per turn.
  await create(store, [
    ...Array.from({ length: 12 }, (_, i) => taskObj(`r${i}`, 's1', { nodeId: 'n1', state: 'running' })),
    taskObj('p1', 's1'),
    taskObj('p2', 's1'),
  ]);
  const h = harness({ readStep: 3 }, store);
  // Once the read has taken its first step: a running task is deleted, another moves to n2, a pending one
  // is removed from scheduling and a new one arrives. The read must not bring back what these replaced.
  const view = store.view.bind(store);
  let changed: Promise<void> | null = null;
  let readStarted = () => {};
  const started = new Promise<void>((r) => (readStarted = r));
  store.view = ((fn: never) => {
    const out = view(fn) as unknown;
    // The read's view (it returns the listed tasks and their index); its first step runs right after it.
    if (out === null || typeof out !== 'object' || !('tasks' in out)) return out;
    changed ??= new Promise<void>((r) => setImmediate(r)).then(async () => {
      await store.update((tx) => {
        tx.delete('task', 'r10');
        tx.modify('task', 'r11', (t) => void (t.nodeId = 'n2'));
        tx.modify('task', 'p2', (t) => void (t.desiredState = 'shutdown'));
        tx.create(taskObj('p3', 's1'));
      });
    });
    readStarted();
    return out;
  }) as typeof store.view;
  h.runner.start();
  await started;
  await changed;
  await h.done(); // every pass compared the kept tasks with a full read
  assert.equal(h.task('p1').status.state, 'assigned');
  assert.equal(h.task('p3').status.state, 'assigned');
  assert.equal(h.task('p2').status.state, 'pending', 'told to shut down: not scheduled');
  // Spread by the kept tally: n1 held 10 running tasks, n2 one, so both new tasks go to n2.
  assert.deepEqual([h.task('p1').nodeId, h.task('p3').nodeId], ['n2', 'n2']);
  h.runner.stop();
});

test('runner: a conflicting write at commit time makes it recompute on a fresh view', async (t) => {
  // A "Raft" that, once, lets another transaction commit first: the task the runner is writing changes
  // under it, apply() refuses the runner's entry with ConflictError, and the runner tries again.
  let intercept = false;
  let store!: Store;
  store = new Store({
    propose: async (data) => {
      if (intercept) {
        intercept = false;
        await store.update((tx) => tx.modify('task', 't1', (d) => void (d.status.message = 'touched by someone else')));
      }
      return store.apply({ index: store.index + 1, data });
    },
  });
  const h = harness({}, store);
  t.after(() => h.runner.stop());
  await create(store, [nodeObj('n1'), taskObj('t1', 's')]);
  intercept = true;
  h.runner.start();
  await h.done();
  await h.done();
  const t1 = h.task('t1');
  assert.equal(t1.status.state, 'assigned');
  assert.equal(t1.nodeId, 'n1');
  assert.ok(
    h.logs.some((l) => l.includes('conflict')),
    h.logs.join('\n'),
  );
});

test('runner: failures observed on a node steer the service away from it', async (t) => {
  let now = 1_000_000;
  const h = harness({ now: () => now });
  t.after(() => h.runner.stop());
  await create(h.store, [nodeObj('n1'), nodeObj('n2')]);
  h.runner.start();
  // Five tasks of s fail on n1.
  await create(
    h.store,
    Array.from({ length: 5 }, (_, i) => taskObj(`f${i}`, 's', { nodeId: 'n1', state: 'running' })),
  );
  for (let i = 0; i < 5; i++) await h.store.update((tx) => tx.modify('task', `f${i}`, (d) => void (d.status.state = 'failed')));
  await h.done();
  await create(h.store, [taskObj('a', 's'), taskObj('b', 's')]);
  await h.done();
  assert.equal(h.task('a').nodeId, 'n2');
  assert.equal(h.task('b').nodeId, 'n2');
  // Five minutes later the failures no longer count.
  now += 5 * 60_000 + 1;
  await create(h.store, [taskObj('c', 's')]);
  await h.done();
  assert.equal(h.task('c').nodeId, 'n1');
});
