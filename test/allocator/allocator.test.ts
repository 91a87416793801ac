// planAllocation, the allocator's pure core: networks (subnets, gateways, VNIs), service endpoints (VIPs,
// published ports, conflicts), node ingress addresses, task attachments, and the derived notion of "in
// use" (reclaim after a node crash, no leaks over many create/remove cycles), with plain data.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ALLOCATED_MESSAGE, holdsAddresses, planAllocation } from '../../manager/allocator/allocator.ts';
import { AddressPool, addrOf } from '../../manager/allocator/ipam.ts';
import type { Frozen, Network, Node, Service, Task } from '../../api/objects.ts';
import { World, ingressNet, net, node, svc, task } from './fixtures.ts';

function addrs(t: Frozen<Task>): string[] {
  return t.networks.map((n) => `${n.networkId}=${n.addresses.join(',')}`);
}

test('networks: ingress gets VNI 4096 and its subnet; others are carved from the pool with VNIs from 4097', () => {
  const w = new World().add(net('front'), ingressNet(), net('back'), net('fixed', { subnet: '192.168.50.0/24', gateway: '192.168.50.254' }));
  const plan = w.step();
  assert.deepEqual(
    plan.networks.map((u) => [u.id, u.allocation]),
    [
      ['ing', { vni: 4096, subnets: [{ subnet: '10.255.0.0/16', gateway: '10.255.0.1' }] }],
      ['front', { vni: 4097, subnets: [{ subnet: '10.10.0.0/24', gateway: '10.10.0.1' }] }],
      ['back', { vni: 4098, subnets: [{ subnet: '10.10.1.0/24', gateway: '10.10.1.1' }] }],
      ['fixed', { vni: 4099, subnets: [{ subnet: '192.168.50.0/24', gateway: '192.168.50.254' }] }],
    ],
  );
  assert.deepEqual(plan.problems, []);
  // Allocated networks are stable: nothing more to do.
  const again = w.plan();
  assert.deepEqual([again.networks, again.services, again.nodes, again.tasks], [[], [], [], []]);
});

test('networks: a subnet someone asked for is never carved for another; host routes are avoided', () => {
  const w = new World().add(net('auto1'), net('mine', { subnet: '10.10.0.0/24' }), net('auto2'));
  w.hostRoutes = ['10.10.1.0/24', '0.0.0.0/0'];
  const plan = w.step();
  const sub = (id: string) => w.network(id).allocation?.subnets?.[0]?.subnet;
  assert.equal(sub('mine'), '10.10.0.0/24');
  assert.equal(sub('auto1'), '10.10.2.0/24', 'not 10.10.0.0 (requested by mine), not 10.10.1.0 (a host route)');
  assert.equal(sub('auto2'), '10.10.3.0/24');
  assert.deepEqual(plan.problems, []);
});

test('networks: overlap with an allocated network, exhausted pool, unsupported driver → allocation.error', () => {
  const w = new World();
  w.clusterSpec = { defaultAddressPool: { cidr: '10.20.0.0/23', size: 24 } };
  w.add(net('a'), net('b'), net('c'), net('br', { driver: 'bridge' }));
  w.step();
  // Created later (e.g. two API calls racing): the allocated network keeps its subnet.
  w.add(net('clash', { subnet: '10.20.0.0/16' }));
  w.step();
  assert.equal(w.network('a').allocation?.subnets?.[0]?.subnet, '10.20.0.0/24');
  assert.equal(w.network('b').allocation?.subnets?.[0]?.subnet, '10.20.1.0/24');
  assert.deepEqual(w.network('c').allocation, { error: 'the default address pool 10.20.0.0/23 has no free /24 subnet left' });
  assert.deepEqual(w.network('clash').allocation, { error: 'subnet 10.20.0.0/16 overlaps network a (10.20.0.0/24)' });
  assert.deepEqual(w.network('br').allocation, { error: 'driver bridge is not supported (only overlay)' });
  // Errors are written once, not on every pass.
  assert.deepEqual(w.plan().networks, []);
  // A requested subnet is never carved for another network, even one created before it.
  const w2 = new World();
  w2.clusterSpec = { defaultAddressPool: { cidr: '10.20.0.0/23', size: 24 } };
  w2.add(net('auto'), net('wants', { subnet: '10.20.0.0/24' }));
  w2.step();
  assert.equal(w2.network('auto').allocation?.subnets?.[0]?.subnet, '10.20.1.0/24');
  assert.equal(w2.network('wants').allocation?.subnets?.[0]?.subnet, '10.20.0.0/24');
  // Deleting b frees its subnet: c gets it.
  w.networks.delete('b');
  w.step();
  assert.equal(w.network('c').allocation?.subnets?.[0]?.subnet, '10.20.1.0/24');
  assert.equal(w.network('c').allocation?.error, undefined);
});

test('services: one VIP per network, ingress VIP when publishing, dynamic ports from 30000, host ports untouched', () => {
  const w = new World().add(ingressNet(), net('front'), net('back'));
  w.add(
    svc('web', {
      networks: ['front', { target: 'back', aliases: ['www'] }],
      ports: [{ targetPort: 80, publishedPort: 8080 }, { targetPort: 443 }, { targetPort: 9000, publishMode: 'host', publishedPort: 9000 }],
    }),
    svc('db', { networks: ['BACK'] }),
    svc('dns', { networks: ['front'], dnsrr: true }),
    svc('plain'),
  );
  const plan = w.step();
  assert.deepEqual(plan.problems, []);
  assert.deepEqual(w.service('web').status.endpoint, {
    virtualIps: [
      { networkId: 'front', addr: '10.10.0.2/24' },
      { networkId: 'back', addr: '10.10.1.2/24' },
      { networkId: 'ing', addr: '10.255.0.2/16' },
    ],
    ports: [
      { protocol: 'tcp', targetPort: 80, publishedPort: 8080, publishMode: 'ingress' },
      { protocol: 'tcp', targetPort: 443, publishedPort: 30000, publishMode: 'ingress' },
      { protocol: 'tcp', targetPort: 9000, publishedPort: 9000, publishMode: 'host' },
    ],
  });
  assert.deepEqual(
    w.service('db').status.endpoint,
    { virtualIps: [{ networkId: 'back', addr: '10.10.1.3/24' }], ports: [] },
    'network names are case-insensitive',
  );
  assert.deepEqual(w.service('dns').status.endpoint, { virtualIps: [], ports: [] }, 'dnsrr: no VIP');
  assert.deepEqual(w.service('plain').status.endpoint, { virtualIps: [], ports: [] });
  // Stable: a second pass changes nothing.
  assert.deepEqual(w.plan().services, []);
  // Adding a dynamic port before the existing one keeps 30000 for 443 and gives the new one 30001.
  w.editService('web', (s) => {
    s.spec.endpoint.ports.unshift({ protocol: 'udp', targetPort: 53, publishMode: 'ingress' }, { protocol: 'tcp', targetPort: 8443, publishMode: 'ingress' });
  });
  w.step();
  assert.deepEqual(
    w.service('web').status.endpoint?.ports.map((p) => `${p.targetPort}->${p.publishedPort}/${p.protocol}`),
    ['53->30000/udp', '8443->30001/tcp', '80->8080/tcp', '443->30000/tcp', '9000->9000/tcp'],
  );
  // Detaching from back frees the VIP there; the next one handed out on back comes after the cursor.
  w.editService('web', (s) => (s.spec.networks = [{ target: 'front' }]));
  w.step();
  assert.deepEqual(
    w.service('web').status.endpoint?.virtualIps.map((v) => v.networkId),
    ['front', 'ing'],
  );
  w.add(svc('cache', { networks: ['back'] }));
  w.step();
  assert.deepEqual(w.service('cache').status.endpoint?.virtualIps, [{ networkId: 'back', addr: '10.10.1.4/24' }]);
});

test('services: a VIP listed in an endpoint that cannot be rewritten is never handed to someone else', () => {
  // Full subnet except web's VIP: web moves from tiny to a network that does not exist (its endpoint
  // cannot be rewritten, so it still lists the VIP); a newcomer on tiny must not get that address.
  const w = new World().add(net('tiny', { subnet: '10.0.0.0/30' }));
  w.add(svc('web', { networks: ['tiny'] }));
  w.step();
  assert.deepEqual(w.service('web').status.endpoint?.virtualIps, [{ networkId: 'tiny', addr: '10.0.0.2/30' }]);
  w.editService('web', (s) => (s.spec.networks = [{ target: 'elsewhere' }]));
  w.add(svc('newcomer', { networks: ['tiny'] }));
  const plan = w.step();
  assert.deepEqual(w.service('web').status.endpoint?.virtualIps, [{ networkId: 'tiny', addr: '10.0.0.2/30' }]);
  assert.equal(w.service('newcomer').status.endpoint, undefined);
  assert.deepEqual(
    plan.problems.map((p) => `${p.name}: ${p.message}`),
    ['web: network elsewhere not found', 'newcomer: network tiny (10.0.0.0/30) has no free address'],
  );
  // Once web's endpoint lets go (its new network exists), the address is free on the pass after.
  w.add(net('elsewhere'));
  w.step();
  assert.deepEqual(
    w.service('web').status.endpoint?.virtualIps.map((v) => v.networkId),
    ['elsewhere'],
  );
  w.step();
  assert.deepEqual(w.service('newcomer').status.endpoint?.virtualIps, [{ networkId: 'tiny', addr: '10.0.0.2/30' }]);
});

test('published port conflicts: the later service waits with a clear message; the holder keeps its port', () => {
  const w = new World().add(ingressNet(), node('n1'));
  w.add(
    svc('web', { ports: [{ targetPort: 80, publishedPort: 8080 }] }),
    svc('api', { ports: [{ targetPort: 3000, publishedPort: 8080 }] }),
    svc('other', { ports: [{ targetPort: 1 }] }),
  );
  w.add(task('w1', 'web'), task('a1', 'api'), task('a2', 'api'), task('o1', 'other'));
  const plan = w.step();
  assert.equal(w.task('w1').status.state, 'pending');
  assert.equal(w.task('o1').status.state, 'pending', 'tasks of other services are not blocked');
  for (const id of ['a1', 'a2']) {
    assert.equal(w.task(id).status.state, 'new');
    assert.equal(w.task(id).status.message, 'port 8080/tcp is already published by service web');
    assert.deepEqual(w.task(id).networks, []);
  }
  assert.equal(plan.blocked, 2);
  assert.deepEqual(
    plan.problems.map((p) => `${p.kind} ${p.name}: ${p.message}`),
    ['service api: port 8080/tcp is already published by service web'],
  );
  assert.equal(w.service('api').status.endpoint, undefined);
  // The message is not rewritten on the next pass.
  assert.deepEqual(w.plan().tasks, []);
  // Another protocol is another port.
  w.editService('api', (s) => (s.spec.endpoint.ports[0]!.protocol = 'udp'));
  w.step();
  assert.equal(w.task('a1').status.state, 'pending');
  assert.deepEqual(
    w.service('api').status.endpoint?.ports.map((p) => p.publishedPort),
    [8080],
  );
});

test('published ports: a port held in a service endpoint stays with it, even against an older service', () => {
  const w = new World().add(ingressNet());
  const old = svc('old', { ports: [{ targetPort: 80, publishedPort: 8080 }] });
  const young = svc('young', { ports: [{ targetPort: 80, publishedPort: 9090 }] });
  w.add(old, young).step();
  // young changes to 8080 while old still holds it; then old gives it up.
  w.editService('young', (s) => (s.spec.endpoint.ports[0]!.publishedPort = 8080));
  w.add(task('y1', 'young'));
  w.step();
  assert.equal(w.task('y1').status.message, 'port 8080/tcp is already published by service old');
  w.editService('old', (s) => (s.spec.endpoint.ports = []));
  w.step(); // old's endpoint drops 8080 (young still waits: the port is released only once written)
  w.step();
  assert.equal(w.task('y1').status.state, 'pending');
  assert.deepEqual(
    w.service('young').status.endpoint?.ports.map((p) => p.publishedPort),
    [8080],
  );
  // A dynamic port never lands on a port some service asks for explicitly.
  w.add(svc('wants', { ports: [{ targetPort: 1, publishedPort: 30000 }] }), svc('dyn', { ports: [{ targetPort: 2 }] }));
  w.step();
  assert.equal(w.service('dyn').status.endpoint?.ports[0]?.publishedPort, 30001);
});

test('tasks: new → pending with one address per network (service order, ingress last), CIDR form, aliases', () => {
  const w = new World().add(ingressNet(), net('front'), net('back'), node('n1'));
  w.add(svc('web', { networks: ['front', { target: 'back', aliases: ['www', 'api'] }], ports: [{ targetPort: 80 }] }));
  w.add(task('t1', 'web', { slot: 1 }), task('t2', 'web', { slot: 2 }));
  w.step();
  const t1 = w.task('t1');
  assert.equal(t1.status.state, 'pending');
  assert.equal(t1.status.message, ALLOCATED_MESSAGE);
  assert.deepEqual(t1.networks, [
    { networkId: 'front', addresses: ['10.10.0.3/24'] },
    { networkId: 'back', addresses: ['10.10.1.3/24'], aliases: ['www', 'api'] },
    { networkId: 'ing', addresses: ['10.255.0.4/16'] },
  ]);
  assert.deepEqual(addrs(w.task('t2')), ['front=10.10.0.4/24', 'back=10.10.1.4/24', 'ing=10.255.0.5/16']);
  // On ingress, the VIP comes first (.2), then the node (.3), then the tasks (.4, .5).
  assert.deepEqual(
    w.service('web').status.endpoint?.virtualIps.find((v) => v.networkId === 'ing'),
    { networkId: 'ing', addr: '10.255.0.2/16' },
  );
  assert.deepEqual(w.nodes.get('n1')!.attachments, [{ networkId: 'ing', addr: '10.255.0.3/16' }]);
  // The network cursors moved and were written back.
  assert.equal(w.network('front').allocation?.lastAddr, '10.10.0.4');
});

test("tasks: an unknown network keeps the service's tasks new (naming it) and blocks nobody else; host networking allocates nothing", () => {
  const w = new World().add(ingressNet(), net('front'));
  w.add(svc('bad', { networks: ['front', 'nope'] }), svc('good', { networks: ['front'] }), svc('hostnet', { networks: ['host'] }));
  w.add(task('b1', 'bad'), task('g1', 'good'), task('h1', 'hostnet'));
  const plan = w.step();
  assert.equal(w.task('b1').status.state, 'new');
  assert.equal(w.task('b1').status.message, 'network nope not found');
  assert.equal(w.task('g1').status.state, 'pending');
  assert.equal(w.task('h1').status.state, 'pending');
  assert.deepEqual(w.task('h1').networks, []);
  assert.deepEqual(w.service('hostnet').status.endpoint, { virtualIps: [], ports: [] });
  assert.equal(plan.blocked, 1);
  // The network appears: the task is allocated on the next pass.
  w.add(net('nope'));
  w.step();
  assert.equal(w.task('b1').status.state, 'pending');
  assert.deepEqual(
    w.task('b1').networks.map((n) => n.networkId),
    ['front', 'nope'],
  );
});

test('tasks: publishing without an ingress network waits for it', () => {
  const w = new World().add(svc('web', { ports: [{ targetPort: 80 }] }), task('t1', 'web'));
  w.step();
  assert.equal(w.task('t1').status.message, 'the ingress network does not exist (it is needed to publish ports)');
  w.add(ingressNet());
  w.step();
  assert.equal(w.task('t1').status.state, 'pending');
});

test('tasks: only new tasks that want to run are allocated; jobs are; tasks of deleted services are left alone', () => {
  const w = new World().add(net('front'));
  w.add(svc('web', { networks: ['front'] }), svc('job', { networks: ['front'], job: true }));
  w.add(
    task('stop', 'web', { desired: 'shutdown' }),
    task('j1', 'job', { desired: 'complete' }),
    task('orphan', 'gone'),
    task('p', 'web', { state: 'pending' }),
  );
  const plan = w.step();
  assert.deepEqual(
    plan.tasks.map((u) => `${u.id}:${u.state}`),
    ['j1:pending'],
  );
});

test('exhaustion: a full subnet blocks only the services on it; freed addresses are reused', () => {
  const w = new World().add(net('tiny', { subnet: '10.0.0.0/29' }), net('big'), node('n1'));
  w.add(svc('s', { networks: ['tiny'] }), svc('other', { networks: ['big'] }));
  for (let i = 1; i <= 6; i++) w.add(task(`t${i}`, 's', { slot: i }));
  w.add(task('o1', 'other'));
  const plan = w.step();
  // /29: 8 addresses - network - gateway - broadcast = 5: the VIP and 4 tasks.
  assert.deepEqual(
    ['t1', 't2', 't3', 't4', 't5', 't6'].map((id) => w.task(id).status.state),
    ['pending', 'pending', 'pending', 'pending', 'new', 'new'],
  );
  assert.equal(w.task('t5').status.message, 'network tiny (10.0.0.0/29) has no free address');
  assert.equal(w.task('o1').status.state, 'pending');
  assert.equal(plan.blocked, 2);
  // t2 fails: its address comes back and t5 gets it.
  w.editTask('t2', (t) => (t.status.state = 'failed'));
  w.step();
  assert.equal(w.task('t5').status.state, 'pending');
  assert.deepEqual(w.task('t5').networks[0]!.addresses, w.task('t2').networks[0]!.addresses);
  assert.equal(w.task('t6').status.state, 'new');
});

test('reclaim after a node crash: tasks of a down node free their addresses once told to stop', () => {
  const w = new World().add(net('tiny', { subnet: '10.0.0.0/29', gateway: '10.0.0.1' }), node('n1'), node('n2'));
  w.add(svc('s', { networks: ['tiny'], dnsrr: true }));
  for (let i = 1; i <= 5; i++) w.add(task(`t${i}`, 's', { slot: i }));
  w.step();
  for (let i = 1; i <= 5; i++) w.editTask(`t${i}`, (t) => ((t.status.state = 'running'), (t.nodeId = i <= 3 ? 'n1' : 'n2')));
  w.add(task('r1', 's', { slot: 1 }));
  w.step();
  assert.equal(w.task('r1').status.message, 'network tiny (10.0.0.0/29) has no free address');
  // n1 crashes: its tasks still run as far as anyone knows; their addresses stay theirs.
  w.editNode('n1', (n) => (n.status.state = 'down'));
  assert.equal(w.step().tasks.length, 0);
  assert.ok(holdsAddresses(w.task('t1'), w.nodes));
  // The orchestrator replaces them: desired shutdown. Nobody will ever report them stopped, so their
  // addresses are free now.
  for (const id of ['t1', 't2', 't3']) w.editTask(id, (t) => (t.desiredState = 'shutdown'));
  assert.ok(!holdsAddresses(w.task('t1'), w.nodes));
  w.add(task('r2', 's', { slot: 2 }), task('r3', 's', { slot: 3 }));
  w.step();
  for (const id of ['r1', 'r2', 'r3']) assert.equal(w.task(id).status.state, 'pending', id);
  const live = [...w.tasks.values()].filter((t) => holdsAddresses(t, w.nodes)).map((t) => addrOf(t.networks[0]!.addresses[0]!));
  assert.equal(new Set(live).size, live.length, 'no address is held twice');
  // A removed node: same (its tasks told to stop free their addresses, even if not terminal).
  w.nodes.delete('n2');
  assert.ok(holdsAddresses(w.task('t4'), w.nodes), 'still desired running: the orchestrator has not decided yet');
  w.editTask('t4', (t) => (t.desiredState = 'remove'));
  assert.ok(!holdsAddresses(w.task('t4'), w.nodes));
});

test('node ingress addresses: one per node, stable, freed when the node is removed', () => {
  const w = new World().add(ingressNet(), node('n1'), node('n2'));
  w.step();
  assert.deepEqual(w.nodes.get('n1')!.attachments, [{ networkId: 'ing', addr: '10.255.0.2/16' }]);
  assert.deepEqual(w.nodes.get('n2')!.attachments, [{ networkId: 'ing', addr: '10.255.0.3/16' }]);
  assert.deepEqual(w.plan().nodes, []);
  w.nodes.delete('n1');
  w.add(node('n3'));
  w.step();
  assert.deepEqual(w.nodes.get('n3')!.attachments, [{ networkId: 'ing', addr: '10.255.0.4/16' }], 'after the cursor, not the freed .2');
  // The ingress network is re-created (new id): stale attachments are replaced.
  w.networks.delete('ing');
  const plan = w.step();
  assert.deepEqual(
    plan.nodes.map((u) => u.attachments),
    [[], []],
  );
  w.add(ingressNet('ing2'));
  w.step();
  assert.deepEqual(w.nodes.get('n2')!.attachments, [{ networkId: 'ing2', addr: '10.255.0.2/16' }]);
});

test('no leaks: 1,000 tasks created and removed through a /24, in waves, never run out', () => {
  const w = new World().add(ingressNet(), net('front'), node('n1'));
  w.add(svc('web', { networks: ['front'], ports: [{ targetPort: 80 }] }));
  w.step();
  let seq = 0;
  const live: string[] = [];
  for (let wave = 0; wave < 10; wave++) {
    for (let i = 0; i < 100; i++) {
      const id = `t${++seq}`;
      w.add(task(id, 'web', { slot: i + 1 }));
      live.push(id);
    }
    const plan = w.step();
    assert.equal(plan.blocked, 0, `wave ${wave}: ${plan.problems.map((p) => p.message).join('; ')}`);
    // No two live tasks share an address on any network.
    const held = [...w.tasks.values()]
      .filter((t) => holdsAddresses(t, w.nodes))
      .flatMap((t) => t.networks.flatMap((n) => n.addresses.map((a) => `${n.networkId}/${a}`)));
    assert.equal(new Set(held).size, held.length, `wave ${wave}: duplicate addresses`);
    // Remove them one of three ways: failed, shut down, deleted.
    for (const [k, id] of live.splice(0).entries()) {
      if (k % 3 === 0) w.tasks.delete(id);
      else w.editTask(id, (t) => (t.status.state = k % 3 === 1 ? 'failed' : 'shutdown'));
    }
  }
  // With every task gone, only the VIPs and the node hold addresses.
  const front = w.network('front').allocation!.subnets![0]!;
  const pool = new AddressPool(front.subnet, front.gateway);
  for (const t of w.tasks.values()) if (holdsAddresses(t, w.nodes)) for (const n of t.networks) if (n.networkId === 'front') pool.claim(n.addresses[0]!);
  assert.equal(pool.free, pool.capacity, 'no task holds an address on front any more');
  assert.equal(w.service('web').status.endpoint?.virtualIps.length, 2);
});

test('deterministic: the same input gives the same plan, whatever the input order', () => {
  const objs: Frozen<Network | Service | Task | Node>[] = [
    ingressNet('ing'),
    net('front'),
    net('back'),
    svc('web', { networks: ['front', 'back'], ports: [{ targetPort: 80 }] }),
    svc('api', { networks: ['back'] }),
    node('n1'),
    node('n2'),
  ];
  for (let i = 0; i < 20; i++) objs.push(task(`t${String(i).padStart(2, '0')}`, i % 2 ? 'web' : 'api'));
  // The same objects (same creation times), fed in two orders.
  const w1 = new World().add(...objs);
  const w2 = new World().add(...[...objs].reverse());
  const p1 = planAllocation(w1.input());
  assert.equal(p1.tasks.length, 20);
  assert.deepEqual(p1, planAllocation(w2.input()));
  assert.deepEqual(p1, planAllocation(w1.input()));
});

test('holdsAddresses: terminal states free, desired shutdown on a healthy node still holds', () => {
  const nodes = new Map<string, Frozen<Node>>([
    ['n1', node('n1')],
    ['n2', node('n2', { state: 'down' })],
  ]);
  const mk = (state: Task['status']['state'], desired: Task['desiredState'], nodeId?: string) =>
    holdsAddresses(task('x', 's', { state, desired, ...(nodeId ? { nodeId } : {}) }), nodes);
  for (const st of ['complete', 'shutdown', 'failed', 'rejected', 'orphaned'] as const) assert.equal(mk(st, 'running', 'n1'), false, st);
  assert.equal(mk('running', 'running', 'n1'), true);
  assert.equal(mk('running', 'shutdown', 'n1'), true, 'the worker will report it stopped');
  assert.equal(mk('running', 'running', 'n2'), true, 'down, but not told to stop yet');
  assert.equal(mk('running', 'shutdown', 'n2'), false);
  assert.equal(mk('running', 'remove', 'gone'), false);
  assert.equal(mk('pending', 'shutdown'), true, 'unassigned: the orchestrator shuts it down itself');
});
