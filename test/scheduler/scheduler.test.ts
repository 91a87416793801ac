// The scheduler's pure core: every filter and its pending reason, spreading (per service, then total
// tasks), spread preferences, max replicas, reservations, host ports, platforms, failure avoidance,
// pre-assigned tasks, batching exactness and determinism. No store, no clock.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PlacementState, schedule } from '../../manager/scheduler/scheduler.ts';
import type { PendingGroup, PlacedTask, SchedNode, SchedulerInput, SchedulerResult, TaskFailure } from '../../manager/scheduler/scheduler.ts';

// ---------------------------------------------------------------------------------------------- fixtures

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;

function node(id: string, over: Partial<SchedNode> = {}): SchedNode {
  return {
    id,
    hostname: `host-${id}`,
    role: 'worker',
    os: 'linux',
    arch: 'amd64',
    ip: '10.0.0.1',
    labels: {},
    availability: 'active',
    state: 'ready',
    resources: { nanoCpus: 4e9, memoryBytes: 8 * GiB },
    ...over,
  };
}

function ids(n: number, prefix = 't'): { id: string }[] {
  return Array.from({ length: n }, (_, i) => ({ id: `${prefix}${String(i).padStart(4, '0')}` }));
}

function group(serviceId: string, n: number, over: Partial<PendingGroup> = {}): PendingGroup {
  return { serviceId, specVersion: 1, tasks: ids(n, `${serviceId}-`), ...over };
}

function run(nodes: SchedNode[], groups: PendingGroup[], tasks: PlacedTask[] = [], failures: TaskFailure[] = [], now = 1_000_000): SchedulerResult {
  return schedule({ nodes, tasks, groups, failures, now });
}

/** Tasks per node id (only nodes that got some). */
function perNode(r: SchedulerResult): Record<string, number> {
  const out: Record<string, number> = {};
  for (const a of r.assignments) out[a.nodeId] = (out[a.nodeId] ?? 0) + 1;
  return out;
}

function reasons(r: SchedulerResult): string[] {
  return [...new Set(r.unplaced.map((u) => u.reason))];
}

// ------------------------------------------------------------------------------------------------- spread

test('spread: 7 tasks over 3 nodes end 3/2/2, ties broken by node id', () => {
  const r = run([node('c'), node('a'), node('b')], [group('s', 7)]);
  assert.deepEqual(perNode(r), { a: 3, b: 2, c: 2 });
  assert.deepEqual(
    r.assignments.map((a) => a.nodeId),
    ['a', 'b', 'c', 'a', 'b', 'c', 'a'],
  );
  assert.equal(r.unplaced.length, 0);
});

test('spread: a second service spreads on its own counts, then breaks ties on total tasks', () => {
  // s1 leaves a:3 b:2 c:2; s2 has none anywhere, so total tasks decide: b and c first, then a.
  const r = run([node('a'), node('b'), node('c')], [group('s1', 7), group('s2', 3)]);
  const s2 = r.assignments.filter((a) => a.taskId.startsWith('s2-')).map((a) => a.nodeId);
  assert.deepEqual(s2, ['b', 'c', 'a']);
  // The same with s1's tasks already running (input tasks), decided in a separate call.
  const placed: PlacedTask[] = r.assignments.filter((a) => a.taskId.startsWith('s1-')).map((a) => ({ serviceId: 's1', nodeId: a.nodeId }));
  const r2 = run([node('a'), node('b'), node('c')], [group('s2', 4)], placed);
  assert.deepEqual(
    r2.assignments.map((a) => a.nodeId),
    ['b', 'c', 'a', 'b'],
  );
});

test('spread: existing tasks of the service are counted', () => {
  const placed: PlacedTask[] = [
    { serviceId: 's', nodeId: 'a' },
    { serviceId: 's', nodeId: 'a' },
    { serviceId: 's', nodeId: 'b' },
  ];
  const r = run([node('a'), node('b'), node('c')], [group('s', 3)], placed);
  assert.deepEqual(
    r.assignments.map((a) => a.nodeId),
    ['c', 'b', 'c'],
  );
});

test('batching: 1,000 tasks over 10 nodes end exactly 100 each, 100,000 over 1,000 nodes stay exact', () => {
  const nodes = Array.from({ length: 10 }, (_, i) => node(`n${i}`));
  const r = run(nodes, [group('s', 1000)]);
  assert.deepEqual(Object.values(perNode(r)), Array(10).fill(100));

  const big = Array.from({ length: 1000 }, (_, i) => node(`node-${String(i).padStart(4, '0')}`));
  const groups = Array.from({ length: 100 }, (_, s) => group(`svc${s}`, 1000));
  const t0 = performance.now();
  const rb = run(big, groups);
  const ms = performance.now() - t0;
  assert.equal(rb.assignments.length, 100_000);
  const counts = Object.values(perNode(rb));
  assert.equal(counts.length, 1000);
  assert.ok(counts.every((c) => c === 100));
  assert.ok(ms < 10_000, `100k placements took ${ms} ms`);
});

// ------------------------------------------------------------------------------------ spread preferences

test('spread preference: zones a,a,b with 4 tasks: 2 in zone a split 1/1, 2 on the b node', () => {
  const nodes = [node('n1', { labels: { zone: 'a' } }), node('n2', { labels: { zone: 'a' } }), node('n3', { labels: { zone: 'b' } })];
  const r = run(nodes, [group('s', 4, { preferences: [{ spread: 'node.labels.zone' }] })]);
  assert.deepEqual(perNode(r), { n1: 1, n2: 1, n3: 2 });
  // Without the preference the same nodes spread per node.
  const r2 = run(nodes, [group('s', 4)]);
  assert.deepEqual(perNode(r2), { n1: 2, n2: 1, n3: 1 });
});

test('spread preference: nodes without the label form their own group', () => {
  const nodes = [node('n1', { labels: { zone: 'a' } }), node('n2', { labels: { zone: 'b' } }), node('n3'), node('n4')];
  const r = run(nodes, [group('s', 6, { preferences: [{ spread: 'node.labels.zone' }] })]);
  assert.deepEqual(perNode(r), { n1: 2, n2: 2, n3: 1, n4: 1 });
});

test('spread preference: preferences nest (zone, then rack)', () => {
  const nodes = [
    node('n1', { labels: { zone: 'a', rack: 'r1' } }),
    node('n2', { labels: { zone: 'a', rack: 'r1' } }),
    node('n3', { labels: { zone: 'a', rack: 'r2' } }),
    node('n4', { labels: { zone: 'b', rack: 'r3' } }),
  ];
  const r = run(nodes, [group('s', 8, { preferences: [{ spread: 'node.labels.zone' }, { spread: 'node.labels.rack' }] })]);
  // zone a 4 (rack r1 2 -> 1+1, rack r2 2), zone b 4.
  assert.deepEqual(perNode(r), { n1: 1, n2: 1, n3: 2, n4: 4 });
});

test('spread preference: existing tasks count per branch, and an exhausted branch yields to the others', () => {
  const nodes = [node('n1', { labels: { zone: 'a' } }), node('n2', { labels: { zone: 'a' } }), node('n3', { labels: { zone: 'b' } })];
  const placed: PlacedTask[] = [
    { serviceId: 's', nodeId: 'n1' },
    { serviceId: 's', nodeId: 'n2' },
  ];
  const r = run(nodes, [group('s', 3, { preferences: [{ spread: 'node.labels.zone' }] })], placed);
  assert.deepEqual(
    r.assignments.map((a) => a.nodeId),
    ['n3', 'n3', 'n1'],
  );

  // Zone a's only node has memory for one task: the rest goes to zone b.
  const small = [
    node('n1', { labels: { zone: 'a' }, resources: { nanoCpus: 4e9, memoryBytes: GiB } }),
    node('n2', { labels: { zone: 'b' } }),
    node('n3', { labels: { zone: 'b' } }),
  ];
  const r2 = run(small, [group('s', 6, { preferences: [{ spread: 'node.labels.zone' }], reservations: { memoryBytes: 600 * MiB } })]);
  assert.deepEqual(perNode(r2), { n1: 1, n2: 3, n3: 2 });
  assert.equal(r2.unplaced.length, 0);
});

// -------------------------------------------------------------------------------- filters and reasons

test('reason: constraint, drained and down nodes, most-excluding first', () => {
  const nodes = [
    node('n1', { labels: { zone: 'us' } }),
    node('n2', { labels: { zone: 'us' } }),
    node('n3'),
    node('n4', { labels: { zone: 'eu' }, availability: 'drain' }),
    node('n5', { labels: { zone: 'eu' }, state: 'down' }),
  ];
  const r = run(nodes, [group('s', 2, { constraints: ['node.labels.zone==eu'] })]);
  assert.equal(r.assignments.length, 0);
  assert.deepEqual(
    r.unplaced.map((u) => u.reason),
    Array(2).fill('no suitable node (3 nodes fail constraint node.labels.zone==eu; 1 node is drained; 1 node is down)'),
  );
  assert.deepEqual(
    r.unplaced.map((u) => u.serviceId),
    ['s', 's'],
  );
});

test('drained, paused, down, disconnected and unknown nodes take no new tasks', () => {
  const nodes = [
    node('n1', { availability: 'drain' }),
    node('n2', { availability: 'pause' }),
    node('n3', { availability: 'pause' }),
    node('n4', { state: 'down' }),
    node('n5', { state: 'disconnected' }),
    node('n6', { state: 'unknown' }),
    node('n7'),
  ];
  const r = run(nodes, [group('s', 3)]);
  assert.deepEqual(perNode(r), { n7: 3 });
  const none = run(nodes.slice(0, 6), [group('s', 1)]);
  assert.deepEqual(reasons(none), ['no suitable node (2 nodes are paused; 1 node is drained; 1 node is down; 1 node is disconnected; 1 node is not ready)']);
  assert.deepEqual(reasons(run([], [group('s', 1)])), ['no suitable node (no nodes available)']);
});

test('constraints: node.labels, node.role, node.hostname, node.ip CIDR, !=; a node counts against the first it fails', () => {
  const nodes = [
    node('m1', { role: 'manager', hostname: 'alpha', ip: '10.1.0.5', labels: { disk: 'ssd' } }),
    node('w1', { role: 'worker', hostname: 'beta', ip: '10.1.0.6', labels: { disk: 'hdd' } }),
    node('w2', { role: 'worker', hostname: 'gamma', ip: '10.2.0.7', labels: { disk: 'ssd' } }),
  ];
  const on = (cs: string[], n = 1) => perNode(run(nodes, [group('s', n, { constraints: cs })]));
  assert.deepEqual(on(['node.labels.disk==ssd'], 4), { m1: 2, w2: 2 });
  assert.deepEqual(on(['node.role==manager'], 2), { m1: 2 });
  assert.deepEqual(on(['node.role!=manager'], 2), { w1: 1, w2: 1 });
  assert.deepEqual(on(['node.hostname==BETA']), { w1: 1 });
  assert.deepEqual(on(['node.ip==10.1.0.0/16'], 2), { m1: 1, w1: 1 });
  assert.deepEqual(on(['node.ip==10.2.0.7']), { w2: 1 });
  assert.deepEqual(on(['node.labels.disk==ssd', 'node.role==worker'], 2), { w2: 2 });
  // w1 fails both constraints: it counts against the first only.
  const r = run(nodes, [group('s', 1, { constraints: ['node.labels.disk==ssd', 'node.hostname==nope'] })]);
  assert.deepEqual(reasons(r), ['no suitable node (2 nodes fail constraint node.hostname==nope; 1 node fails constraint node.labels.disk==ssd)']);
  // An invalid constraint (the API should have refused it) leaves the tasks pending with the parse error.
  const bad = run(nodes, [group('s', 1, { constraints: ['node.colour==blue'] })]);
  assert.match(bad.unplaced[0]!.reason, /^no suitable node \(invalid constraint "node\.colour==blue"/);
});

test('reservations: memory and cpu are used up by placed and existing tasks', () => {
  const nodes = [node('a', { resources: { nanoCpus: 4e9, memoryBytes: GiB } }), node('b', { resources: { nanoCpus: 4e9, memoryBytes: GiB } })];
  const r = run(nodes, [group('s', 8, { reservations: { memoryBytes: 300 * MiB } })]);
  assert.deepEqual(perNode(r), { a: 3, b: 3 });
  assert.equal(r.unplaced.length, 2);
  assert.deepEqual(reasons(r), ['no suitable node (2 nodes have insufficient memory)']);

  // Existing tasks' reservations count; tasks without reservations still fit anywhere.
  const placed: PlacedTask[] = [{ serviceId: 'other', nodeId: 'a', reservations: { memoryBytes: 900 * MiB } }];
  const r2 = run(nodes, [group('s', 3, { reservations: { memoryBytes: 300 * MiB } }), group('free', 2)], placed);
  assert.deepEqual(perNode({ assignments: r2.assignments.filter((a) => a.taskId.startsWith('s-')), unplaced: [] }), { b: 3 });
  assert.deepEqual(perNode({ assignments: r2.assignments.filter((a) => a.taskId.startsWith('free-')), unplaced: [] }), { a: 1, b: 1 });

  const cpu = run(nodes, [group('s', 5, { reservations: { nanoCpus: 2e9 } })]);
  assert.deepEqual(perNode(cpu), { a: 2, b: 2 });
  assert.deepEqual(reasons(cpu), ['no suitable node (2 nodes have insufficient cpu)']);

  // A node that also fails a constraint counts against resources (the earlier filter).
  const mixed = run(
    [...nodes, node('c', { labels: { x: '1' } })],
    [group('s', 1, { reservations: { memoryBytes: 2 * GiB }, constraints: ['node.labels.x==2'] })],
  );
  assert.deepEqual(reasons(mixed), ['no suitable node (2 nodes have insufficient memory; 1 node fails constraint node.labels.x==2)']);
});

test('max replicas per node', () => {
  const nodes = [node('a'), node('b'), node('c')];
  const r = run(nodes, [group('s', 7, { maxReplicas: 2 })]);
  assert.deepEqual(perNode(r), { a: 2, b: 2, c: 2 });
  assert.deepEqual(reasons(r), ['no suitable node (3 nodes already run the maximum of 2 tasks of this service)']);
  // Existing tasks of the service count towards the maximum; other services' do not.
  const placed: PlacedTask[] = [
    { serviceId: 's', nodeId: 'a' },
    { serviceId: 'x', nodeId: 'b' },
    { serviceId: 'x', nodeId: 'b' },
  ];
  const r2 = run(nodes, [group('s', 3, { maxReplicas: 1 })], placed);
  assert.deepEqual(perNode(r2), { b: 1, c: 1 });
  assert.deepEqual(reasons(r2), ['no suitable node (3 nodes already run the maximum of 1 tasks of this service)']);
});

test('host-mode published ports: one task per node per port, tcp and udp apart', () => {
  const nodes = [node('a'), node('b'), node('c')];
  const placed: PlacedTask[] = [{ serviceId: 'other', nodeId: 'a', hostPorts: [{ port: 8080, protocol: 'tcp' }] }];
  const r = run(nodes, [group('s', 3, { hostPorts: [{ port: 8080, protocol: 'tcp' }] })], placed);
  assert.deepEqual(perNode(r), { b: 1, c: 1 });
  assert.deepEqual(reasons(r), ['no suitable node (3 nodes have port 8080/tcp in use)']);
  const udp = run(nodes, [group('s', 3, { hostPorts: [{ port: 8080, protocol: 'udp' }] })], placed);
  assert.deepEqual(perNode(udp), { a: 1, b: 1, c: 1 });
  // A second group in the same decision sees the ports the first one took.
  const two = run(nodes, [group('s', 1, { hostPorts: [{ port: 9000, protocol: 'tcp' }] }), group('t', 3, { hostPorts: [{ port: 9000, protocol: 'tcp' }] })]);
  assert.deepEqual(perNode(two), { a: 1, b: 1, c: 1 });
  assert.equal(two.unplaced.length, 1);
});

test('platform: only when the group names one; amd64/x64/x86_64 are the same', () => {
  const nodes = [node('a', { arch: 'x64' }), node('b', { arch: 'arm64' }), node('c', { os: 'windows', arch: 'x86_64' })];
  assert.deepEqual(perNode(run(nodes, [group('s', 3)])), { a: 1, b: 1, c: 1 });
  const r = run(nodes, [group('s', 2, { platforms: [{ os: 'linux', arch: 'amd64' }] })]);
  assert.deepEqual(perNode(r), { a: 2 });
  const none = run(nodes, [group('s', 1, { platforms: [{ os: 'linux', arch: 's390x' }] })]);
  assert.deepEqual(reasons(none), ['no suitable node (3 nodes do not support platform linux/s390x)']);
  assert.deepEqual(perNode(run(nodes, [group('s', 2, { platforms: [{ arch: 'aarch64' }, { os: 'windows' }] })])), { b: 1, c: 1 });
});

// ----------------------------------------------------------------------------------- failure avoidance

test('failure avoidance: 5 recent failures of the service push a node to the back, without excluding it', () => {
  const nodes = [node('a'), node('b'), node('c')];
  const now = 10_000_000;
  const fail = (n: number, nodeId: string, ago: number, serviceId = 's'): TaskFailure[] =>
    Array.from({ length: n }, () => ({ serviceId, nodeId, at: now - ago }));
  const order = (f: TaskFailure[], g = group('s', 4)) => run(nodes, [g], [], f, now).assignments.map((a) => a.nodeId);
  assert.deepEqual(order([]), ['a', 'b', 'c', 'a']);
  assert.deepEqual(order(fail(5, 'a', 60_000)), ['b', 'c', 'b', 'c']);
  assert.deepEqual(order(fail(4, 'a', 60_000)), ['a', 'b', 'c', 'a']); // below the threshold
  assert.deepEqual(order(fail(5, 'a', 6 * 60_000)), ['a', 'b', 'c', 'a']); // outside the window
  assert.deepEqual(order(fail(5, 'a', 60_000, 'other')), ['a', 'b', 'c', 'a']); // another service's failures
  // The avoided node is still used when nothing else fits.
  assert.deepEqual(order(fail(5, 'a', 60_000), group('s', 4, { constraints: ['node.id==a'] })), ['a', 'a', 'a', 'a']);
  // Options change the threshold and the window.
  const r = schedule({ nodes, tasks: [], groups: [group('s', 2)], failures: fail(2, 'a', 60_000), now }, { maxFailures: 2, failureWindowMs: 120_000 });
  assert.deepEqual(
    r.assignments.map((a) => a.nodeId),
    ['b', 'c'],
  );
});

// ------------------------------------------------------------------------------ pre-assigned tasks

test('pre-assigned tasks are checked against their own node only', () => {
  const nodes = [node('a'), node('b', { availability: 'drain' }), node('c', { labels: { zone: 'eu' } })];
  const g: PendingGroup = {
    serviceId: 'g',
    tasks: [
      { id: 'ta', nodeId: 'a' },
      { id: 'tb', nodeId: 'b' },
      { id: 'tc', nodeId: 'c' },
      { id: 'tx', nodeId: 'zz' },
    ],
    constraints: ['node.labels.zone!=us'],
  };
  const r = run(nodes, [g]);
  assert.deepEqual(r.assignments, [
    { taskId: 'ta', nodeId: 'a' },
    { taskId: 'tc', nodeId: 'c' },
  ]);
  assert.deepEqual(
    r.unplaced.map((u) => [u.taskId, u.reason]),
    [
      ['tb', 'no suitable node (1 node is drained)'],
      ['tx', 'no suitable node (node zz not found)'],
    ],
  );
});

// ------------------------------------------------------------------------------------- determinism

test('determinism: same decisions whatever the input order of nodes, and on every run', () => {
  const nodes = Array.from({ length: 50 }, (_, i) => node(`n${String(i).padStart(2, '0')}`, { labels: { zone: `z${i % 3}` } }));
  const groups = [group('s1', 120, { preferences: [{ spread: 'node.labels.zone' }] }), group('s2', 77, { maxReplicas: 2 }), group('s3', 33)];
  const input: SchedulerInput = { nodes, tasks: [], groups, now: 0 };
  const a = schedule(input);
  const b = schedule(input);
  // A fixed pseudo-random permutation of the nodes.
  const shuffled = [...nodes].reverse();
  for (let i = shuffled.length - 1, x = 12345; i > 0; i--) {
    x = (x * 1103515245 + 12345) % 2 ** 31;
    const j = x % (i + 1);
    [shuffled[i], shuffled[j]] = [shuffled[j]!, shuffled[i]!];
  }
  assert.notDeepEqual(
    shuffled.map((n) => n.id),
    nodes.map((n) => n.id),
  );
  const c = schedule({ ...input, nodes: shuffled });
  assert.deepEqual(a, b);
  assert.deepEqual(a, c);
  // The input is not modified.
  assert.equal(groups[0]!.tasks.length, 120);
});

test('PlacementState: groups placed one at a time see the earlier placements', () => {
  const nodes = [node('a'), node('b'), node('c')];
  const st = new PlacementState({ nodes, tasks: [], now: 0 });
  const r1 = st.placeGroup(group('s1', 2));
  const r2 = st.placeGroup(group('s2', 1));
  assert.deepEqual(
    r1.assignments.map((a) => a.nodeId),
    ['a', 'b'],
  );
  assert.deepEqual(
    r2.assignments.map((a) => a.nodeId),
    ['c'],
  );
  const r3 = st.placeGroup(group('s1', 1, { tasks: [{ id: 'late' }] }));
  assert.deepEqual(r3.assignments, [{ taskId: 'late', nodeId: 'c' }]);
});
