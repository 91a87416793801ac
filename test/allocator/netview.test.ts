// nodeNetView: which networks, endpoints and services a node sees; VTEPs, MACs, running flags, the
// ingress address; deterministic output whatever the input order; diffNetViews.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { canonicalJson, diffNetViews, hostPart, nodeChangeAffectsNetViews, nodeNetView, nodeNetViews } from '../../manager/allocator/netview.ts';
import { World, ingressNet, net, node, svc, task } from './fixtures.ts';

/** An allocated cluster: web (front + ingress, port 8080), db (back), dns (back, dnsrr), tasks on n1/n2. */
function cluster(): World {
  const w = new World().add(ingressNet(), net('front'), net('back'));
  w.add(
    node('n1', { addr: '192.0.2.1:4242' }),
    node('n2', { addr: '192.0.2.2' }),
    node('n3', { addr: '192.0.2.3' }),
    node('n4', { addr: '192.0.2.4', state: 'down' }),
  );
  w.add(
    svc('web', { networks: [{ target: 'front', aliases: ['www'] }], ports: [{ targetPort: 80, publishedPort: 8080 }] }),
    svc('db', { networks: ['back'] }),
    svc('dns', { networks: ['back'], dnsrr: true }),
  );
  w.add(
    task('w1', 'web', { slot: 1 }),
    task('w2', 'web', { slot: 2 }),
    task('w3', 'web', { slot: 3 }),
    task('d1', 'db', { slot: 1 }),
    task('g1', 'dns'),
    task('lost', 'db', { slot: 2 }),
  );
  w.step();
  const place = (id: string, nodeId: string, state: 'running' | 'starting' | 'failed') =>
    w.editTask(id, (t) => ((t.nodeId = nodeId), (t.status.state = state)));
  place('w1', 'n1', 'running');
  place('w2', 'n2', 'starting');
  place('w3', 'n1', 'failed');
  place('d1', 'n2', 'running');
  place('g1', 'n2', 'running');
  place('lost', 'n4', 'running');
  w.editTask('lost', (t) => (t.desiredState = 'shutdown'));
  return w;
}

function snap(w: World) {
  return { networks: [...w.networks.values()], services: [...w.services.values()], tasks: [...w.tasks.values()], nodes: [...w.nodes.values()] };
}

test('a node sees the networks of its tasks plus ingress, every endpoint on them, and the services that matter', () => {
  const w = cluster();
  const v = nodeNetView('n1', snap(w));
  assert.equal(v.nodeId, 'n1');
  assert.equal(v.vtep, '192.0.2.1', 'the host part of the advertised address');
  assert.deepEqual(
    v.networks.map((n) => [n.id, n.name, n.vni, n.subnet, n.gateway, n.ingress]),
    [
      ['front', 'front', 4097, '10.10.0.0/24', '10.10.0.1', false],
      ['ing', 'ingress', 4096, '10.255.0.0/16', '10.255.0.1', true],
    ],
  );
  // w3 failed: not an endpoint. Endpoints are sorted by network, then address.
  assert.deepEqual(
    v.endpoints.map((e) => `${e.networkId} ${e.taskName} ${e.ip} ${e.vtep} ${e.running ? 'running' : '-'} [${e.aliases.join(',')}]`),
    [
      'front web.1.w1 10.10.0.3 192.0.2.1 running [www]',
      'front web.2.w2 10.10.0.4 192.0.2.2 - [www]',
      // every node's own ingress address (the source of mesh traffic it forwards) is a peer too
      'ing ingress-endpoint.host-n1 10.255.0.3 192.0.2.1 - []',
      'ing ingress-endpoint.host-n2 10.255.0.4 192.0.2.2 - []',
      'ing ingress-endpoint.host-n3 10.255.0.5 192.0.2.3 - []',
      'ing web.1.w1 10.255.0.7 192.0.2.1 running []',
      'ing web.2.w2 10.255.0.8 192.0.2.2 - []',
    ],
  );
  const e = v.endpoints[0]!;
  assert.deepEqual(
    { mac: e.mac, nodeId: e.nodeId, serviceId: e.serviceId, serviceName: e.serviceName },
    { mac: '02:42:0a:0a:00:03', nodeId: 'n1', serviceId: 'web', serviceName: 'web' },
  );
  assert.deepEqual(v.services, [
    {
      id: 'web',
      name: 'web',
      endpointMode: 'vip',
      vips: [
        { networkId: 'front', ip: '10.10.0.2' },
        { networkId: 'ing', ip: '10.255.0.2' },
      ],
      ports: [{ protocol: 'tcp', targetPort: 80, publishedPort: 8080, publishMode: 'ingress' }],
      aliases: [{ networkId: 'front', aliases: ['www'] }],
    },
  ]);
  assert.equal(v.ingressAddr, '10.255.0.3');
});

test('a node with tasks on another network sees that network, its services (dnsrr without VIP) and published services', () => {
  const v = nodeNetView('n2', snap(cluster()));
  assert.deepEqual(
    v.networks.map((n) => n.id),
    ['back', 'front', 'ing'],
  );
  assert.deepEqual(
    v.endpoints.filter((e) => e.networkId === 'back').map((e) => e.taskName),
    ['db.1.d1', 'dns.n2.g1'],
    'the task told to stop on the down node n4 is not listed (its address may be handed out again)',
  );
  assert.deepEqual(
    v.services.map((s) => [s.name, s.endpointMode, s.vips.map((x) => x.ip).join(',')]),
    [
      ['db', 'vip', '10.10.1.2'],
      ['dns', 'dnsrr', ''],
      ['web', 'vip', '10.10.0.2,10.255.0.2'],
    ],
  );
});

test('a node without tasks sees only ingress, its endpoints and the published services; an unknown node gets no ingressAddr', () => {
  const s = snap(cluster());
  const v = nodeNetView('n3', s);
  assert.deepEqual(
    v.networks.map((n) => n.id),
    ['ing'],
  );
  assert.deepEqual(
    v.endpoints.map((e) => e.taskId),
    ['node-n1', 'node-n2', 'node-n3', 'w1', 'w2'],
  );
  assert.deepEqual(
    v.services.map((x) => x.name),
    ['web'],
  );
  assert.deepEqual(v.services[0]!.vips, [{ networkId: 'ing', ip: '10.255.0.2' }]);
  assert.deepEqual(v.services[0]!.aliases, [], 'aliases only for networks in the view');
  assert.equal(v.ingressAddr, '10.255.0.5');
  const u = nodeNetView('nobody', s);
  assert.equal(u.vtep, '');
  assert.equal(u.ingressAddr, undefined);
  assert.deepEqual(
    u.networks.map((n) => n.id),
    ['ing'],
  );
});

test('deterministic: equal states give equal JSON whatever the input order; nodeNetViews = nodeNetView', () => {
  const s = snap(cluster());
  const rev = { networks: [...s.networks].reverse(), services: [...s.services].reverse(), tasks: [...s.tasks].reverse(), nodes: [...s.nodes].reverse() };
  for (const id of ['n1', 'n2', 'n3']) {
    assert.equal(JSON.stringify(nodeNetView(id, s)), JSON.stringify(nodeNetView(id, rev)), id);
    assert.ok(!diffNetViews(nodeNetView(id, s), nodeNetView(id, rev)));
  }
  const all = nodeNetViews(s);
  assert.deepEqual([...all.keys()], ['n1', 'n2', 'n3', 'n4']);
  assert.deepEqual(all.get('n2'), nodeNetView('n2', s));
});

test('diffNetViews: a task starting to run, a new endpoint, a missing view are changes; key order is not', () => {
  const w = cluster();
  const before = nodeNetView('n3', snap(w));
  w.editTask('w2', (t) => (t.status.state = 'running'));
  const after = nodeNetView('n3', snap(w));
  assert.ok(diffNetViews(before, after));
  assert.ok(!diffNetViews(after, nodeNetView('n3', snap(w))));
  assert.ok(diffNetViews(undefined, after));
  assert.ok(!diffNetViews(null, null));
  const reordered = JSON.parse(canonicalJson(after)) as typeof after;
  assert.ok(!diffNetViews(after, reordered));
  w.editTask('w3', (t) => (t.status.state = 'running'));
  assert.ok(diffNetViews(after, nodeNetView('n3', snap(w))), 'w3 is an endpoint again');
});

test('hostPart: IPv4 with or without port, bracketed IPv6, hostnames', () => {
  assert.equal(hostPart('10.0.0.5:2377'), '10.0.0.5');
  assert.equal(hostPart('10.0.0.5'), '10.0.0.5');
  assert.equal(hostPart('[fd00::1]:2377'), 'fd00::1');
  assert.equal(hostPart('node-1:2377'), 'node-1');
  assert.equal(hostPart(''), '');
});

test('a running task told to stop is no longer a running endpoint (it leaves DNS and the load balancers at once)', () => {
  const w = cluster();
  const running = () => nodeNetView('n1', snap(w)).endpoints.find((e) => e.taskId === 'w1' && e.networkId === 'front')!.running;
  assert.equal(running(), true);
  w.editTask('w1', (t) => (t.desiredState = 'shutdown'));
  const e = nodeNetView('n1', snap(w)).endpoints.find((x) => x.taskId === 'w1' && x.networkId === 'front');
  assert.ok(e, 'still an endpoint: it holds its address until it has stopped');
  assert.equal(e.running, false);
});

test('only a node update that changes its address, attachments or down-ness recomputes NetViews', () => {
  const n = node('n1', { addr: '192.0.2.1:4242' }) as unknown as Parameters<typeof nodeChangeAffectsNetViews>[0];
  const with_ = (patch: Record<string, unknown>, status: Record<string, unknown> = {}) => ({ ...n, ...patch, status: { ...n.status, ...status } }) as typeof n;
  assert.equal(nodeChangeAffectsNetViews(n, with_({}, { lastHeartbeat: '2026-12-06T00:00:00.000Z', message: 'hello' })), false);
  assert.equal(nodeChangeAffectsNetViews(n, with_({ description: { ...n.description, hostname: 'other' } })), false);
  assert.equal(nodeChangeAffectsNetViews(n, with_({ spec: { ...n.spec, labels: { a: 'b' } } })), false);
  assert.equal(nodeChangeAffectsNetViews(n, with_({ description: { ...n.description, addr: '192.0.2.9' } })), true);
  assert.equal(nodeChangeAffectsNetViews(n, with_({}, { state: 'down' })), true);
  assert.equal(nodeChangeAffectsNetViews(n, with_({ attachments: [{ networkId: 'ingress', addr: '10.255.0.9/16' }] })), true);
});
