// The placed-task tally (manager/scheduler/tally.ts): kept by adding and removing tasks in any order it
// equals a fresh tally of the tasks left, and the core places exactly as it does from the list of tasks.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { schedule } from '../../manager/scheduler/scheduler.ts';
import type { HostPort, PendingGroup, PlacedTask, SchedNode } from '../../manager/scheduler/scheduler.ts';
import { PlacedTally } from '../../manager/scheduler/tally.ts';

/** A deterministic generator (tests must not depend on Math.random). */
function rng(seed: number): (n: number) => number {
  let s = seed >>> 0;
  return (n) => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s % n;
  };
}

function canonical(t: PlacedTally): string {
  const nodes = [...t.byNode].map(([id, l]) => [id, l.tasks, l.nanoCpus, l.memoryBytes, [...(l.ports ?? [])].sort()]).sort();
  const services = [...t.byService].map(([id, m]) => [id, [...m].sort()]).sort();
  return JSON.stringify({ nodes, services, size: t.size });
}

const PORTS: HostPort[][] = [
  [],
  [{ port: 80, protocol: 'tcp' }],
  [
    { port: 80, protocol: 'TCP' },
    { port: 53, protocol: 'udp' },
  ],
];

function randomTask(r: (n: number) => number): PlacedTask {
  const reservations = r(3) === 0 ? undefined : { nanoCpus: r(4) * 250_000_000, memoryBytes: r(5) * 64 * 1024 ** 2 };
  const hostPorts = PORTS[r(PORTS.length)]!;
  return { serviceId: `s${r(4)}`, nodeId: `n${r(6)}`, reservations, ...(hostPorts.length > 0 ? { hostPorts } : {}) };
}

test('a tally kept by adding, moving and removing tasks equals a fresh tally of the tasks left', () => {
  for (const seed of [1, 2, 3, 42, 1234]) {
    const r = rng(seed);
    const live = new Map<string, PlacedTask>();
    const kept = new PlacedTally();
    for (let step = 0; step < 2000; step++) {
      const id = `t${r(60)}`;
      const was = live.get(id);
      const op = r(3);
      if (op === 0 && was !== undefined) {
        kept.remove(was);
        live.delete(id);
      } else {
        const now = randomTask(r);
        if (was !== undefined) kept.remove(was);
        kept.add(now);
        live.set(id, now);
      }
      if (step % 97 === 0 || step === 1999) assert.equal(canonical(kept), canonical(PlacedTally.of(live.values())), `seed ${seed}, step ${step}`);
    }
    // Everything removed: nothing left behind, not even empty entries.
    for (const t of live.values()) kept.remove(t);
    assert.deepEqual([kept.byNode.size, kept.byService.size, kept.size], [0, 0, 0]);
  }
});

test('removing a task that was never counted throws instead of going negative', () => {
  const t = new PlacedTally();
  assert.throws(() => t.remove({ serviceId: 's', nodeId: 'n' }), /no task counted on node n/);
  t.add({ serviceId: 'a', nodeId: 'n' });
  assert.throws(() => t.remove({ serviceId: 'b', nodeId: 'n' }), /no task of service b counted on node n/);
});

test('the core places the same from a tally and host ports by service as from the list of tasks', () => {
  const nodeOf = (i: number): SchedNode => ({
    id: `n${i}`,
    hostname: `h${i}`,
    role: 'worker',
    os: 'linux',
    arch: 'amd64',
    ip: `10.0.0.${i}`,
    labels: { zone: `z${i % 2}` },
    availability: 'active',
    state: 'ready',
    resources: { nanoCpus: 4e9, memoryBytes: 2 * 1024 ** 3 },
  });
  for (const seed of [7, 8, 9, 10, 11, 12]) {
    const r = rng(seed);
    const nodes = Array.from({ length: 6 }, (_, i) => nodeOf(i));
    const servicePorts = new Map<string, HostPort[]>([['s1', [{ port: 8080, protocol: 'tcp' }]]]);
    const tasks: PlacedTask[] = [{ serviceId: 's1', nodeId: 'n0', hostPorts: servicePorts.get('s1') }];
    for (let i = 1; i < 40; i++) {
      const t = randomTask(r);
      delete t.hostPorts;
      // Host ports come from the service, as the runner gives them.
      const hp = servicePorts.get(t.serviceId);
      tasks.push(hp ? { ...t, hostPorts: hp } : t);
    }
    const groups: PendingGroup[] = [
      // As many as there are nodes: those running s1 already hold port 8080 and must refuse.
      { serviceId: 's1', specVersion: 2, tasks: Array.from({ length: 6 }, (_, i) => ({ id: `a${i}` })), hostPorts: servicePorts.get('s1') },
      { serviceId: 's2', specVersion: 1, tasks: Array.from({ length: 12 }, (_, i) => ({ id: `b${i}` })), reservations: { nanoCpus: 1e9 }, maxReplicas: 3 },
      { serviceId: 's3', specVersion: 1, tasks: Array.from({ length: 8 }, (_, i) => ({ id: `c${i}` })), preferences: [{ spread: 'node.labels.zone' }] },
    ];
    const fromList = schedule({ nodes, tasks, groups, now: 0 });
    const tally = PlacedTally.of(tasks.map(({ hostPorts: _p, ...t }) => t));
    const fromTally = schedule({ nodes, placed: tally, servicePorts, groups, now: 0 });
    assert.deepEqual(fromTally, fromList, `seed ${seed}`);
    assert.ok(fromList.assignments.length > 0, 'the case places something');
    assert.ok(
      fromList.unplaced.some((u) => u.serviceId === 's1'),
      'the case has host ports in use',
    );
    assert.equal(tally.size, 40, 'the core does not change the tally it is given');
  }
});
