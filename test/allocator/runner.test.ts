// AllocatorRunner on an in-memory Store (no proposer: local commits): it creates the ingress network,
// allocates networks, endpoints, node and task addresses; waits with a reason and resumes when the cause
// goes away; recomputes after a conflict; resyncs after a store reset; stops writing when stopped; and,
// with the real Orchestrator and SchedulerRunner on the same store, takes a service from created to
// assigned tasks with addresses.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { AllocatorRunner, INGRESS_NETWORK, readHostRoutes } from '../../manager/allocator/runner.ts';
import type { AllocatorPassInfo, AllocatorRunnerOptions } from '../../manager/allocator/runner.ts';
import { Orchestrator } from '../../manager/orchestrator/runner.ts';
import { SchedulerRunner } from '../../manager/scheduler/runner.ts';
import { Store } from '../../manager/store/store.ts';
import type { Draft, Frozen, Network, Node, PortConfig, Service, Task } from '../../api/objects.ts';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

// ---------------------------------------------------------------------------------------------- fixtures

function nodeObj(id: string, addr = '192.0.2.1'): Draft<Node> {
  return {
    id,
    kind: 'node',
    spec: { labels: {}, availability: 'active', role: 'worker' },
    description: {
      hostname: `host-${id}`,
      platform: { os: 'linux', arch: 'x64' },
      resources: { nanoCpus: 4e9, memoryBytes: 8 * 2 ** 30 },
      engineVersion: '',
      addr,
    },
    status: { state: 'ready', message: '', addr },
  };
}

function netObj(id: string, o: { subnet?: string; name?: string } = {}): Draft<Network> {
  return {
    id,
    kind: 'network',
    spec: { name: o.name ?? id, driver: 'overlay', labels: {}, ipam: { configs: o.subnet ? [{ subnet: o.subnet }] : [] }, attachable: false, internal: false },
    status: {},
  };
}

function serviceObj(id: string, o: { networks?: string[]; ports?: Partial<PortConfig>[]; replicas?: number } = {}): Draft<Service> {
  return {
    id,
    kind: 'service',
    spec: {
      name: id,
      labels: {},
      mode: { replicated: { replicas: o.replicas ?? 1 } },
      task: { image: 'nginx:alpine' },
      networks: (o.networks ?? []).map((target) => ({ target })),
      endpoint: { mode: 'vip', ports: (o.ports ?? []).map((p) => ({ protocol: 'tcp', targetPort: 80, publishMode: 'ingress', ...p }) as PortConfig) },
    },
    specVersion: 1,
    status: {},
  };
}

function taskObj(id: string, serviceId: string, slot = 1): Draft<Task> {
  return {
    id,
    kind: 'task',
    serviceId,
    slot,
    spec: { image: 'nginx:alpine' },
    specVersion: 1,
    desiredState: 'running',
    status: { state: 'new', timestamp: '2025-01-01T00:00:00.000Z', message: 'created' },
    serviceAnnotations: { name: serviceId, labels: {} },
    networks: [],
  };
}

interface Harness {
  store: Store;
  runner: AllocatorRunner;
  passes: AllocatorPassInfo[];
  logs: string[];
  task(id: string): Frozen<Task>;
  done(): Promise<void>;
}

/** Differences between the tasks the runners kept and a full read, over every runner of this file. */
const keptDiffs: string[] = [];
let keptChecks = 0;
after(() => {
  assert.deepEqual(keptDiffs, [], 'the kept tasks match the store on every pass');
  assert.ok(keptChecks >= 20, `${keptChecks} passes compared the kept tasks with a full read`);
});

function harness(opts: AllocatorRunnerOptions = {}, store = new Store({})): Harness {
  const passes: AllocatorPassInfo[] = [];
  const logs: string[] = [];
  let ids = 0;
  const runner = new AllocatorRunner(store, {
    log: (m) => logs.push(m),
    onPass: (p) => passes.push(p),
    newId: () => `ingress${++ids}`,
    // Every pass of every test here also reads all tasks and compares them with the kept ones.
    verifyKept: (d) => (d === null ? keptChecks++ : keptDiffs.push(d)),
    ...opts,
  });
  return { store, runner, passes, logs, task: (id) => store.view((tx) => tx.get('task', id))!, done: () => runner.idle() };
}

async function create(store: Store, objs: Draft<Node | Network | Service | Task>[]): Promise<void> {
  await store.update((tx) => {
    for (const o of objs) tx.create(o as Draft<Node>);
  });
}

// ------------------------------------------------------------------------------------------------- tests

test('runner: creates the ingress network, allocates networks, endpoints, node and task addresses', async (t) => {
  const h = harness();
  t.after(() => h.runner.stop());
  await create(h.store, [
    nodeObj('n1'),
    netObj('front'),
    serviceObj('web', { networks: ['front'], ports: [{ targetPort: 80 }] }),
    taskObj('t1', 'web', 1),
    taskObj('t2', 'web', 2),
  ]);
  h.runner.start();
  await h.done();
  const ingress = h.store.view((tx) => tx.byName('network', 'ingress'))!;
  assert.equal(ingress.id, 'ingress1');
  assert.equal(ingress.spec.ingress, true);
  assert.equal(ingress.spec.driver, 'overlay');
  assert.deepEqual(ingress.allocation?.vni, 4096);
  assert.deepEqual(ingress.allocation?.subnets, [{ subnet: INGRESS_NETWORK.subnet, gateway: '10.255.0.1' }]);
  const front = h.store.view((tx) => tx.get('network', 'front'))!;
  assert.deepEqual(front.allocation?.subnets, [{ subnet: '10.10.0.0/24', gateway: '10.10.0.1' }]);
  assert.equal(front.allocation?.vni, 4097);
  const web = h.store.view((tx) => tx.get('service', 'web'))!;
  assert.deepEqual(web.status.endpoint, {
    virtualIps: [
      { networkId: 'front', addr: '10.10.0.2/24' },
      { networkId: 'ingress1', addr: '10.255.0.2/16' },
    ],
    ports: [{ protocol: 'tcp', targetPort: 80, publishedPort: 30000, publishMode: 'ingress' }],
  });
  assert.deepEqual(h.store.view((tx) => tx.get('node', 'n1'))!.attachments, [{ networkId: 'ingress1', addr: '10.255.0.3/16' }]);
  const t1 = h.task('t1');
  assert.equal(t1.status.state, 'pending');
  assert.equal(t1.status.message, 'pending task scheduling');
  assert.notEqual(t1.status.timestamp, '2025-01-01T00:00:00.000Z');
  assert.deepEqual(t1.networks, [
    { networkId: 'front', addresses: ['10.10.0.3/24'] },
    { networkId: 'ingress1', addresses: ['10.255.0.4/16'] },
  ]);
  assert.deepEqual(
    h.task('t2').networks.map((n) => n.addresses[0]),
    ['10.10.0.4/24', '10.255.0.5/16'],
  );
  // Quiet afterwards: its own writes do not make it loop.
  const passes = h.passes.length;
  await h.done();
  assert.equal(h.passes.length, passes);
  // New tasks are allocated as they appear.
  await create(h.store, [taskObj('t3', 'web', 3)]);
  await h.done();
  assert.equal(h.task('t3').status.state, 'pending');
  assert.ok(
    h.logs.some((l) => l.includes('created the ingress network')),
    h.logs.join('\n'),
  );
});

test('runner: nodes that join within the window share one pass; a task to allocate does not wait for it', async (t) => {
  const h = harness();
  t.after(() => h.runner.stop());
  h.runner.start();
  await h.done();
  await create(h.store, [netObj('front'), serviceObj('web', { networks: ['front'] })]);
  await h.done();
  const before = h.passes.length;
  // Twenty joins, one per event-loop turn, as a manager takes them.
  for (let i = 0; i < 20; i++) {
    await create(h.store, [nodeObj(`j${i}`)]);
    await new Promise((r) => setImmediate(r));
  }
  await h.done();
  const passes = h.passes.length - before;
  assert.ok(passes <= 2, `20 joins took ${passes} passes (one per join before the gathering)`);
  const addrs = h.store.view((tx) => tx.list('node').map((n) => n.attachments?.[0]?.addr));
  assert.equal(addrs.filter((a) => a !== undefined).length, 20, 'every node has its ingress address');
  assert.equal(new Set(addrs).size, 20, 'all different');

  // A join, then a task at once: the task is allocated in the next turn, not after NODE_JOIN_GATHER_MS.
  await create(h.store, [nodeObj('late')]);
  const t0 = performance.now();
  await create(h.store, [taskObj('t1', 'web', 1)]);
  while (h.task('t1').status.state !== 'pending') await new Promise((r) => setTimeout(r, 2));
  const waited = performance.now() - t0;
  assert.ok(waited < 150, `the task waited ${waited.toFixed(0)} ms for its pass`);
  await h.done();
  assert.ok(h.store.view((tx) => tx.get('node', 'late'))!.attachments?.length, 'and the node that joined with it got its address');
});

test('runner: a task waits with the reason, and is allocated once the network appears or the port is freed', async (t) => {
  const h = harness();
  t.after(() => h.runner.stop());
  h.runner.start();
  await create(h.store, [serviceObj('web', { ports: [{ publishedPort: 8080 }] }), taskObj('w1', 'web')]);
  await h.done();
  await create(h.store, [serviceObj('api', { networks: ['back'], ports: [{ publishedPort: 8080 }] }), taskObj('a1', 'api')]);
  await h.done();
  assert.equal(h.task('a1').status.state, 'new');
  assert.equal(h.task('a1').status.message, 'network back not found');
  await create(h.store, [netObj('back')]);
  await h.done();
  assert.equal(h.task('a1').status.message, 'port 8080/tcp is already published by service web');
  await create(h.store, [taskObj('a2', 'api', 2)]);
  await h.done();
  assert.equal(
    h.logs.filter((l) => l === 'allocator: service api: port 8080/tcp is already published by service web').length,
    1,
    'logged once, not on every pass',
  );
  // The holder goes away: its port is free, the waiting task is allocated without anyone touching it.
  await h.store.update((tx) => {
    tx.delete('service', 'web');
    tx.modify('task', 'w1', (d) => void (d.status.state = 'shutdown'));
  });
  await h.done();
  assert.equal(h.task('a1').status.state, 'pending');
  assert.deepEqual(
    h.store.view((tx) => tx.get('service', 'api'))!.status.endpoint?.ports.map((p) => p.publishedPort),
    [8080],
  );
});

test('runner: a full subnet unblocks as soon as a task ends', async (t) => {
  const h = harness();
  t.after(() => h.runner.stop());
  await create(h.store, [netObj('tiny', { subnet: '10.9.0.0/30' }), serviceObj('s', { networks: ['tiny'] })]);
  // A /30 has one address, and the VIP takes it: use dnsrr so that tasks get it.
  await h.store.update((tx) => tx.modify('service', 's', (d) => void (d.spec.endpoint.mode = 'dnsrr')));
  await create(h.store, [taskObj('a', 's', 1), taskObj('b', 's', 2)]);
  h.runner.start();
  await h.done();
  const [a, b] = [h.task('a'), h.task('b')];
  const [got, waiting] = a.status.state === 'pending' ? [a, b] : [b, a];
  assert.equal(waiting.status.state, 'new');
  assert.equal(waiting.status.message, 'network tiny (10.9.0.0/30) has no free address');
  await h.store.update((tx) => tx.modify('task', got.id, (d) => void (d.status.state = 'failed')));
  await h.done();
  assert.equal(h.task(waiting.id).status.state, 'pending');
  assert.deepEqual(h.task(waiting.id).networks[0]!.addresses, ['10.9.0.2/30']);
});

test('runner: only tasks on a network or waiting for addresses are kept, from the events', async (t) => {
  const h = harness();
  t.after(() => h.runner.stop());
  await create(h.store, [nodeObj('n1'), netObj('front'), serviceObj('plain'), serviceObj('web', { networks: ['front'] })]);
  h.runner.start();
  await create(h.store, [taskObj('p1', 'plain', 1), taskObj('w1', 'web', 1), taskObj('p2', 'plain', 2)]);
  await h.done();
  // Allocated: the plain tasks have no network and leave the kept set, web's keeps its address.
  assert.equal(h.task('p1').status.state, 'pending');
  assert.equal(h.task('w1').networks.length, 1);
  await create(h.store, [taskObj('w2', 'web', 2), taskObj('p3', 'plain', 3)]);
  await h.store.update((tx) => {
    tx.delete('task', 'w1');
    tx.modify('task', 'p1', (x) => void (x.status.state = 'running'));
  });
  await h.done();
  assert.equal(h.task('w2').networks.length, 1);
  assert.equal(h.task('p3').status.state, 'pending');
  // A task that is rewritten as new again (a store edit) is kept again, and allocated again.
  await h.store.update((tx) => tx.modify('task', 'p2', (x) => void (x.status.state = 'new')));
  await h.done();
  assert.equal(h.task('p2').status.state, 'pending');
});

test('runner: a conflicting write at commit time makes it recompute on a fresh view', async (t) => {
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
  await create(store, [netObj('ingress', { name: 'ingress' }), serviceObj('s'), taskObj('t1', 's')]);
  // Make the existing network the ingress one, so the first write is the allocation.
  await store.update((tx) => tx.modify('network', 'ingress', (d) => void (d.spec.ingress = true)));
  intercept = true;
  h.runner.start();
  await h.done();
  await h.done();
  assert.equal(h.task('t1').status.state, 'pending');
  assert.ok(
    h.logs.some((l) => l.includes('conflict')),
    h.logs.join('\n'),
  );
});

test('runner: a network named ingress that is not the routing mesh is reported once, and nothing loops', async (t) => {
  const h = harness();
  t.after(() => h.runner.stop());
  await create(h.store, [
    netObj('x', { name: 'ingress' }),
    serviceObj('web', { ports: [{ targetPort: 80 }] }),
    taskObj('t1', 'web'),
    serviceObj('plain'),
    taskObj('p1', 'plain'),
  ]);
  h.runner.start();
  await h.done();
  assert.equal(h.logs.filter((l) => l.includes('cannot create the ingress network')).length, 1, h.logs.join('\n'));
  assert.equal(h.task('t1').status.message, 'the ingress network does not exist (it is needed to publish ports)');
  assert.equal(h.task('p1').status.state, 'pending');
});

test('runner: after removal, ingress is re-created when a service publishes ports (or a custom one is used); a store reset resyncs', async (t) => {
  const h = harness();
  t.after(() => h.runner.stop());
  h.runner.start();
  await h.done();
  await h.store.update((tx) => tx.delete('network', 'ingress1'));
  await create(h.store, [serviceObj('plain'), taskObj('p1', 'plain')]);
  await h.done();
  assert.equal(
    h.store.view((tx) => tx.byName('network', 'ingress')),
    undefined,
    'not needed yet: the user may create their own',
  );
  assert.equal(h.task('p1').status.state, 'pending');
  await create(h.store, [serviceObj('web', { ports: [{ targetPort: 80 }] }), taskObj('w1', 'web')]);
  await h.done();
  const again = h.store.view((tx) => tx.byName('network', 'ingress'))!;
  assert.equal(again.id, 'ingress2');
  assert.equal(again.allocation?.vni, 4096);
  assert.equal(h.task('w1').networks[0]!.networkId, 'ingress2');
  // A custom routing-mesh network instead (network rm ingress; network create --ingress --subnet …).
  await h.store.update((tx) => {
    tx.delete('service', 'web');
    tx.delete('task', 'w1');
    tx.delete('network', 'ingress2');
    tx.create({ ...netObj('mesh', { subnet: '10.99.0.0/24' }), spec: { ...netObj('mesh', { subnet: '10.99.0.0/24' }).spec, ingress: true } });
  });
  await create(h.store, [serviceObj('web2', { ports: [{ targetPort: 80 }] }), taskObj('w2', 'web2')]);
  await h.done();
  assert.equal(
    h.store.view((tx) => tx.byName('network', 'ingress')),
    undefined,
  );
  assert.deepEqual(h.task('w2').networks, [{ networkId: 'mesh', addresses: ['10.99.0.3/24'] }], 'the VIP has .2');
  assert.equal(h.store.view((tx) => tx.get('network', 'mesh'))!.allocation?.vni, 4096);
  // A snapshot from elsewhere replaces the state: the runner lists everything again.
  const other = new Store({});
  await create(other, [netObj('front'), serviceObj('s', { networks: ['front'] }), taskObj('t9', 's')]);
  h.store.restore(other.snapshot());
  await h.done();
  await h.done();
  assert.equal(h.task('t9').status.state, 'pending');
  assert.ok(
    h.logs.some((l) => l.includes('resyncing')),
    h.logs.join('\n'),
  );
});

test('runner: once stopped it writes nothing', async () => {
  const h = harness();
  h.runner.start();
  await h.done();
  h.runner.stop();
  await create(h.store, [serviceObj('s'), taskObj('t1', 's')]);
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(h.task('t1').status.state, 'new');
});

test('runner: host routes are avoided when carving subnets; readHostRoutes parses /proc/net/route', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'shoal-routes-'));
  const file = join(dir, 'route');
  writeFileSync(
    file,
    'Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n' +
      'eth0\t00000000\t0102000A\t0003\t0\t0\t0\t00000000\t0\t0\t0\n' +
      'eth0\t00000A0A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n' +
      'eth1\t0000A8C0\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n',
  );
  assert.deepEqual(readHostRoutes(file), ['10.10.0.0/24', '192.168.0.0/16']);
  assert.deepEqual(readHostRoutes(join(dir, 'missing')), []);
  const h = harness({ hostRoutes: () => readHostRoutes(file) });
  t.after(() => h.runner.stop());
  await create(h.store, [netObj('front')]);
  h.runner.start();
  await h.done();
  assert.equal(h.store.view((tx) => tx.get('network', 'front'))!.allocation?.subnets?.[0]?.subnet, '10.10.1.0/24');
});

test('orchestrator + allocator + scheduler: a service goes from created to assigned tasks with addresses', async (t) => {
  const store = new Store({});
  const logs: string[] = [];
  let n = 0;
  const orch = new Orchestrator(store, { newId: () => `task${++n}`, log: (l) => logs.push(l) });
  const alloc = new AllocatorRunner(store, { newId: () => 'ingress', log: (l) => logs.push(l) });
  const sched = new SchedulerRunner(store, { log: (l) => logs.push(l) });
  t.after(() => {
    orch.stop();
    alloc.stop();
    sched.stop();
  });
  await create(store, [nodeObj('n1', '192.0.2.1'), nodeObj('n2', '192.0.2.2'), netObj('front')]);
  for (const x of [orch, alloc, sched]) x.start();
  await create(store, [serviceObj('web', { networks: ['front'], ports: [{ targetPort: 80, publishedPort: 8080 }], replicas: 4 })]);
  const deadline = Date.now() + 5000;
  let tasks: Frozen<Task>[] = [];
  while (Date.now() < deadline) {
    await orch.idle();
    await alloc.idle();
    await sched.idle();
    tasks = store.view((tx) => tx.tasksByService('web'));
    if (tasks.length === 4 && tasks.every((x) => x.status.state === 'assigned')) break;
    await new Promise((r) => setTimeout(r, 5));
  }
  assert.deepEqual(
    tasks.map((x) => x.status.state),
    ['assigned', 'assigned', 'assigned', 'assigned'],
    logs.join('\n'),
  );
  const addrs = tasks.flatMap((x) => x.networks.map((a) => a.addresses[0]!));
  assert.equal(addrs.length, 8, 'front + ingress for each task');
  assert.equal(new Set(addrs).size, 8);
  assert.deepEqual(new Set(tasks.map((x) => x.nodeId)), new Set(['n1', 'n2']));
  // Scale down and up: the removed tasks' addresses are not reused at once (cursor), none leak.
  await store.update((tx) => tx.modify('service', 'web', (d) => void (d.spec.mode = { replicated: { replicas: 1 } })));
  await orch.idle();
  await store.update((tx) => {
    for (const x of tx.tasksByService('web')) if (x.desiredState === 'remove') tx.modify('task', x.id, (d) => void (d.status.state = 'shutdown'));
  });
  await store.update((tx) => tx.modify('service', 'web', (d) => void (d.spec.mode = { replicated: { replicas: 3 } })));
  for (let i = 0; i < 50; i++) {
    await orch.idle();
    await alloc.idle();
    await sched.idle();
    const live = store.view((tx) => tx.tasksByService('web')).filter((x) => x.desiredState === 'running');
    if (live.length === 3 && live.every((x) => x.status.state === 'assigned')) break;
    await new Promise((r) => setTimeout(r, 5));
  }
  const live = store.view((tx) => tx.tasksByService('web')).filter((x) => x.desiredState === 'running');
  assert.equal(live.length, 3);
  const liveFront = live.map((x) => x.networks[0]!.addresses[0]!);
  const oldFront = new Set(addrs.filter((a) => a.startsWith('10.10.')));
  assert.equal(liveFront.filter((a) => oldFront.has(a)).length, 1, 'only the surviving task keeps an old address');
});
