// slot-cache.ts: the slots a runner keeps between passes match a fresh grouping after the changes it was
// told of; it regroups in full when it cannot patch; and the check used by the runner's tests catches a
// change it was not told of. Then the runner end to end: a rolling update reuses kept slots, each reuse
// checked against a fresh grouping (harness.ts passes verifySlotCache).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SlotCache, groupingDifference } from '../../manager/orchestrator/slot-cache.ts';
import { bySlotNumber, dirtyCheck } from '../../manager/orchestrator/slots.ts';
import type { FNode, FService, FTask } from '../../manager/orchestrator/types.ts';
import { Harness, seqIds } from './harness.ts';

async function fixture() {
  const h = new Harness();
  h.orch.stop(); // the store only: this test drives the cache itself
  await h.addNode('n1');
  await h.addNode('n2');
  const id = await h.createService('web', { mode: { replicated: { replicas: 4 } } });
  // Four tasks, one per slot, and a finished one in slot 2 (history).
  const task = (taskId: string, slot: number, nodeId: string, desiredState: string, state: string) => ({
    id: taskId,
    kind: 'task',
    serviceId: id,
    slot,
    nodeId,
    spec: { image: 'app:1' },
    specVersion: 1,
    desiredState,
    status: { state, timestamp: h.clock.iso(), message: '' },
    serviceAnnotations: { name: 'web', labels: {} },
    networks: [],
  });
  await h.store.update((tx) => {
    for (let n = 1; n <= 4; n++) tx.create(task(`t${n}`, n, 'n1', 'running', 'running') as never);
    tx.create(task('old2', 2, 'n2', 'shutdown', 'shutdown') as never);
  });
  const read = () =>
    h.store.view((tx) => ({
      service: tx.get('service', id) as FService,
      nodes: new Map(tx.list('node').map((n) => [n.id, n as FNode])),
    }));
  const group = (cache: SlotCache) =>
    h.store.view((tx) => {
      const { service, nodes } = read();
      const isDirty = dirtyCheck(service, nodes);
      const g = cache.group(service, nodes, tx, isDirty);
      const fresh = bySlotNumber(tx.tasksByService(id) as FTask[], isDirty);
      return { g, diff: groupingDifference(g, fresh) };
    });
  const setTask = (taskId: string, edit: (t: Record<string, unknown>) => void) => h.store.update((tx) => void tx.modify('task', taskId, edit as never));
  return { h, id, group, setTask };
}

test('changed slots are regrouped, the others kept; the result equals a fresh grouping', async () => {
  const { id, group, setTask } = await fixture();
  const cache = new SlotCache();
  const first = group(cache);
  assert.equal(first.g.reused, false, 'nothing kept yet');
  assert.equal(first.diff, null);
  const kept1 = first.g.slots.get(1);

  await setTask('t3', (t) => ((t.status as { state: string }).state = 'failed'));
  cache.noteTask(id, 3, 3);
  const second = group(cache);
  assert.equal(second.g.reused, true);
  assert.equal(second.diff, null);
  assert.equal(second.g.slots.get(1), kept1, 'an unchanged slot is the same object');
  assert.equal(second.g.slots.get(3)!.head!.status.state, 'failed');
  assert.deepEqual([...second.g.slots.keys()], [1, 2, 3, 4]);
});

test('a deleted slot goes; a new slot number, a stray, a moved task or a new service object regroup in full', async () => {
  const { h, id, group, setTask } = await fixture();
  const cache = new SlotCache();
  group(cache);

  await h.store.update((tx) => {
    tx.delete('task', 't4');
  });
  cache.noteTask(id, 4, undefined);
  let r = group(cache);
  assert.equal(r.g.reused, true);
  assert.equal(r.diff, null);
  assert.deepEqual([...r.g.slots.keys()], [1, 2, 3]);

  // Slot 7 did not exist: the map's order would be wrong if it were appended.
  await h.store.update((tx) => {
    const t = tx.get('task', 't1')!;
    tx.create({ ...t, id: 't7', slot: 7 } as never);
  });
  cache.noteTask(id, 7, undefined);
  r = group(cache);
  assert.equal(r.g.reused, false);
  assert.equal(r.diff, null);

  await setTask('t2', (t) => (t.slot = 9));
  cache.noteTask(id, 9, 2);
  r = group(cache);
  assert.equal(r.g.reused, false, 'a task moved between slots');
  assert.equal(r.diff, null);

  await h.updateService('web', (s) => (s.task.image = 'app:2'));
  r = group(cache);
  assert.equal(r.g.reused, false, 'the service changed');
  assert.equal(r.diff, null);
});

test('a changed node regroups the slots of its tasks only; the other slots stay the same objects', async () => {
  const { h, group } = await fixture();
  const cache = new SlotCache();
  const first = { slots: new Map(group(cache).g.slots) }; // the cache patches its map in place
  // n2 holds only slot 2's finished task (history); slots 1, 3 and 4 run on n1.
  await h.editNode('n2', (n) => (n.spec.labels = { zone: 'b' }));
  let r = group(cache);
  assert.equal(r.g.reused, true, 'one node of two changed: patched');
  assert.equal(r.diff, null);
  assert.notEqual(r.g.slots.get(2), first.slots.get(2), 'slot 2 has a task on n2: regrouped');
  for (const n of [1, 3, 4]) assert.equal(r.g.slots.get(n), first.slots.get(n), `slot ${n} kept`);
  // Both nodes changed: every slot is regrouped through the node index, still a patch (under 16 nodes).
  const before = { slots: new Map(r.g.slots) };
  await h.editNode('n1', (n) => (n.spec.labels = { zone: 'a' }));
  await h.editNode('n2', (n) => (n.spec.labels = { zone: 'c' }));
  r = group(cache);
  assert.equal(r.diff, null);
  for (const n of [1, 2, 3, 4]) assert.notEqual(r.g.slots.get(n), before.slots.get(n), `slot ${n} regrouped`);
});

test('the check catches a change the cache was not told of', async () => {
  const { id, group, setTask } = await fixture();
  const cache = new SlotCache();
  group(cache);
  await setTask('t1', (t) => ((t.status as { state: string }).state = 'failed'));
  // No noteTask: the kept slot 1 still holds the running task.
  const r = group(cache);
  assert.equal(r.g.reused, true);
  assert.match(r.diff ?? '', /slot 1: task t1 is an older object/);
  cache.noteTask(id, 1, 1);
  assert.equal(group(cache).diff, null, 'told, it regroups the slot');
});

test('the runner reuses kept slots through a rolling update, every reuse equal to a fresh grouping', async () => {
  const h = new Harness();
  for (const n of ['n1', 'n2', 'n3']) await h.addNode(n);
  await h.createService('web', { mode: { replicated: { replicas: 12 } }, update: { parallelism: 3, delayMs: 0, monitorMs: 0 } });
  await h.settle();
  await h.updateService('web', (s) => (s.task.image = 'app:2'));
  for (let i = 0; i < 200 && h.service('web').updateStatus?.state !== 'completed'; i++) await h.advance(100);
  assert.equal(h.service('web').updateStatus?.state, 'completed');
  assert.equal(h.running('web').filter((t) => t.spec.image === 'app:2').length, 12);
  assert.deepEqual(h.slotCacheErrors, []);
  assert.ok(h.slotCacheReuses >= 4, `${h.slotCacheReuses} passes reused kept slots`);
  h.orch.stop();
});

test('nodes going Down, drained or losing a label during a rolling update: kept slots, every pass equal to one from scratch', async () => {
  const h = new Harness();
  const ids = ['n1', 'n2', 'n3', 'n4', 'n5', 'n6'];
  for (const n of ids) await h.addNode(n, { labels: { zone: 'a' } });
  await h.createService('web', {
    mode: { replicated: { replicas: 24 } },
    task: { placement: { constraints: ['node.labels.zone==a'] } },
    update: { parallelism: 4, delayMs: 0, monitorMs: 0 },
  });
  await h.settle();
  await h.updateService('web', (s) => (s.task.image = 'app:2'));
  await h.advance(100);
  const reusesBefore = h.slotCacheReuses;
  await h.editNode('n2', (n) => void (n.status.state = 'down'));
  await h.advance(100);
  await h.editNode('n3', (n) => void (n.spec.availability = 'drain'));
  await h.advance(100);
  await h.editNode('n4', (n) => void (n.spec.labels = { zone: 'b' }));
  await h.advance(100);
  await h.editNode('n5', (n) => void (n.spec.labels = { zone: 'a', rack: '7' })); // changes nothing
  for (let i = 0; i < 300 && h.service('web').updateStatus?.state !== 'completed'; i++) await h.advance(100);
  await h.settle();
  assert.equal(h.service('web').updateStatus?.state, 'completed');
  const running = h.running('web');
  assert.equal(running.length, 24);
  assert.ok(
    running.every((t) => t.spec.image === 'app:2' && ['n1', 'n5', 'n6'].includes(t.nodeId!)),
    'every task on the new image, on a node that is up, active and in zone a',
  );
  assert.deepEqual(h.slotCacheErrors, [], 'every kept grouping and its decisions equal a fresh pass');
  assert.ok(h.slotCacheReuses - reusesBefore >= 4, `${h.slotCacheReuses - reusesBefore} passes after the node changes reused kept slots`);
  h.orch.stop();
});

/** Three nodes and a converged service of 12 replicas, its leader's orchestrator stopped (a new one follows). */
async function afterLeader(): Promise<Harness> {
  const h = new Harness();
  for (const n of ['n1', 'n2', 'n3']) await h.addNode(n);
  await h.createService('web', { mode: { replicated: { replicas: 12 } } });
  await h.settle();
  h.orch.stop();
  return h;
}

test('a new leader warms a large service up a step at a time; its first pass reuses it all and decides nothing', async () => {
  const h = await afterLeader();
  // The next leader's orchestrator: services of more than 4 replicas are warmed, 5 slots per step, and
  // checked from scratch at most every minute.
  const passes: { decided: boolean; fullCheck?: boolean }[] = [];
  const reuses = h.slotCacheReuses;
  h.orch = h.newOrchestrator({ warm: { slots: 4, step: 5 }, fullCheck: { slots: 4, everyMs: 60_000 }, onReconcile: (r) => passes.push(r) }, seqIds('u'));
  h.orch.start();
  await h.settle();
  assert.ok(
    h.logs.some((l) => /^warmed up service \S+: 12 slots \(12 quiet\) in \d+ ms, 5 per step$/.test(l)),
    h.logs.filter((l) => l.startsWith('warm')).join('; '),
  );
  assert.ok(passes.length >= 1);
  assert.deepEqual(
    passes.map((p) => [p.decided, p.fullCheck]),
    passes.map(() => [false, false]),
    'the first pass reused the warm slots, and the warm-up was its full check',
  );
  assert.ok(h.slotCacheReuses > reuses, 'the pass reused the kept slots (each reuse checked against a fresh grouping)');
  assert.deepEqual(h.slotCacheErrors, []);
  h.orch.stop();
});

test('tasks that change while a new leader warms up are decided on by its first pass', async () => {
  const h = await afterLeader();
  h.orch = h.newOrchestrator({ warm: { slots: 4, step: 1 } }, seqIds('u'));
  h.orch.start();
  // A few turns into the warm-up (one slot per turn), a running task fails and a node goes down.
  for (let i = 0; i < 4; i++) await new Promise((r) => setImmediate(r));
  const victim = h.running('web').find((t) => t.slot === 9)!;
  await h.store.update((tx) => void tx.modify('task', victim.id, (t) => void (t.status.state = 'failed')));
  await h.editNode('n2', (n) => void (n.status.state = 'down'));
  await h.settle();
  await h.advance(10_000);
  assert.ok(h.logs.some((l) => /^warmed up service \S+: 12 slots/.test(l)));
  const running = h.running('web');
  assert.equal(running.length, 12);
  assert.ok(!running.some((t) => t.id === victim.id || t.nodeId === 'n2'), 'the failed task was replaced, and those of n2 moved');
  assert.deepEqual(h.slotCacheErrors, []);
  h.orch.stop();
});

test('an empty pass is checked from scratch every time for small services, at most every everyMs for large ones', async () => {
  const checks = new Map<number, number>(); // slots of the service -> passes checked from scratch
  for (const replicas of [2, 6]) {
    let checked = 0;
    const h = new Harness({
      fullCheck: { slots: 4, everyMs: 5000 },
      onReconcile: (r) => {
        if (r.fullCheck) checked++;
      },
    });
    for (const n of ['n1', 'n2']) await h.addNode(n);
    await h.createService('web', { mode: { replicated: { replicas } } });
    await h.settle();
    // A paused update with nothing left to replace: a running task's report is then a pass (with the
    // update settled, it starts none: taskChange).
    await h.store.update((tx) => void tx.modify('service', 'web', (s) => void (s.updateStatus = { state: 'paused', message: 'paused' })));
    await h.settle();
    checked = 0;
    // Passes that decide nothing from kept slots: a running task's report changes, 1 s apart.
    const report = async (message: string) => {
      const t = h.running('web')[0]!;
      await h.store.update((tx) => void tx.modify('task', t.id, (d) => void (d.status.message = message)));
      await h.settle();
    };
    for (let i = 0; i < 4; i++) {
      await report(`round ${i}`);
      await h.advance(1000);
    }
    await h.advance(5000);
    await report('last');
    checks.set(replicas, checked);
    assert.deepEqual(h.slotCacheErrors, []);
    assert.equal(h.running('web').length, replicas);
    h.orch.stop();
  }
  assert.equal(checks.get(2), 5, 'a small service: every empty pass');
  // The create's pass grouped it from scratch (a full check itself): the next is due everyMs later.
  assert.equal(checks.get(6), 1, 'a large one: once everyMs has passed since it was last grouped from scratch');
});
