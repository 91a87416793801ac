// Replicated services end to end: the Orchestrator runner on an in-memory store, driven by the fake
// scheduler/worker of harness.ts on a fake clock.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Harness, bySlot, countBy } from './harness.ts';

async function cluster(nodes = ['n1', 'n2', 'n3']): Promise<Harness> {
  const h = new Harness();
  for (const n of nodes) await h.addNode(n);
  return h;
}

test('scale up creates one task per slot (pending: nothing to allocate); the fake worker runs them', async () => {
  const h = await cluster();
  await h.createService('web', { name: 'web', mode: { replicated: { replicas: 3 } }, task: { image: 'nginx:1' } });
  await h.orch.idle();
  const created = h.tasks('web');
  assert.equal(created.length, 3);
  assert.deepEqual(created.map((t) => t.slot).sort(), [1, 2, 3]);
  for (const t of created) {
    assert.equal(t.status.state, 'pending');
    assert.equal(t.status.message, 'pending task scheduling');
    assert.deepEqual(t.networks, []);
    assert.equal(t.desiredState, 'running');
    assert.equal(t.specVersion, 1);
    assert.equal(t.nodeId, undefined);
    assert.deepEqual(t.spec, { image: 'nginx:1' });
    assert.deepEqual(t.serviceAnnotations, { name: 'web', labels: {} });
  }
  await h.settle();
  assert.equal(h.running('web').length, 3);
  assert.deepEqual(
    countBy(h.running('web'), (t) => t.nodeId),
    { n1: 1, n2: 1, n3: 1 },
  );

  await h.updateService('web', (s) => (s.mode = { replicated: { replicas: 5 } }));
  await h.settle();
  assert.equal(h.running('web').length, 5);
  assert.deepEqual(
    h
      .running('web')
      .map((t) => t.slot)
      .sort(),
    [1, 2, 3, 4, 5],
  );
  assert.equal(h.service('web').updateStatus, undefined, 'a scale is not a rolling update');
  h.orch.stop();
});

test('scale down removes tasks from the nodes running the most tasks of the service first', async () => {
  const h = await cluster();
  // Slots 1-3 on n1, 4 on n2, 5 on n3.
  h.placer = (t) => (t.slot! <= 3 ? 'n1' : t.slot === 4 ? 'n2' : 'n3');
  await h.createService('web', { mode: { replicated: { replicas: 5 } } });
  await h.settle();
  assert.deepEqual(
    countBy(h.running('web'), (t) => t.nodeId),
    { n1: 3, n2: 1, n3: 1 },
  );

  await h.updateService('web', (s) => (s.mode = { replicated: { replicas: 3 } }));
  await h.orch.idle();
  const removed = h.tasks('web').filter((t) => t.desiredState === 'remove');
  assert.equal(removed.length, 2);
  assert.ok(
    removed.every((t) => t.nodeId === 'n1'),
    'both removed tasks came from the busiest node',
  );
  await h.settle();
  // The worker stopped them and the reaper deleted them.
  assert.equal(h.tasks('web').length, 3);
  assert.deepEqual(
    countBy(h.running('web'), (t) => t.nodeId),
    { n1: 1, n2: 1, n3: 1 },
  );

  // Scale to 0 and back: slot numbers are reused from 1.
  await h.updateService('web', (s) => (s.mode = { replicated: { replicas: 0 } }));
  await h.settle();
  assert.equal(h.tasks('web').length, 0);
  await h.updateService('web', (s) => (s.mode = { replicated: { replicas: 2 } }));
  await h.settle();
  assert.deepEqual(
    h
      .running('web')
      .map((t) => t.slot)
      .sort(),
    [1, 2],
  );
  h.orch.stop();
});

test('a failed task is replaced in the same slot by a NEW task after the restart delay', async () => {
  const h = await cluster();
  await h.createService('web', { mode: { replicated: { replicas: 2 } } });
  await h.settle();
  const victim = h.running('web').find((t) => t.slot === 2)!;
  await h.finish(victim.id, 'failed', 137);
  await h.settle();
  // Default delay 5 s: nothing yet; the failed task still stands for its slot.
  assert.equal(h.tasks('web').length, 2);
  assert.equal(h.task(victim.id)!.desiredState, 'running');
  await h.advance(4_999);
  assert.equal(h.tasks('web').length, 2);
  await h.advance(1);
  const slot2 = bySlot(h.tasks('web')).get(2)!;
  assert.equal(slot2.length, 2);
  const fresh = slot2.find((t) => t.id !== victim.id)!;
  assert.equal(fresh.status.state, 'running');
  assert.equal(fresh.slot, 2);
  assert.equal(h.task(victim.id)!.desiredState, 'shutdown');
  assert.equal(h.running('web').length, 2);
  h.orch.stop();
});

test('restart policy: maxAttempts within the window stops restarts; failures outside it do not count', async () => {
  const h = await cluster(['n1']);
  await h.createService('web', {
    mode: { replicated: { replicas: 1 } },
    task: { restartPolicy: { condition: 'any', delayMs: 1_000, maxAttempts: 2, windowMs: 60_000 } },
  });
  await h.settle();
  const failHead = async () => {
    const head = h.live('web')[0]!;
    await h.finish(head.id, 'failed', 1);
    await h.settle();
    await h.advance(1_000);
    return head;
  };
  await failHead(); // restart 1
  await failHead(); // restart 2
  assert.equal(h.tasks('web').length, 3);
  assert.equal(h.live('web').length, 1);
  // Two restarts are more than a minute old by now: they no longer count.
  await h.advance(61_000);
  await failHead(); // restart (0 within the window)
  await failHead(); // restart (1 within the window)
  assert.equal(h.live('web').length, 1);
  const last = await failHead(); // 2 within the window: the maximum, not restarted
  await h.advance(120_000);
  assert.equal(h.live('web').length, 0);
  assert.equal(h.task(last.id)!.desiredState, 'running', 'the parked task keeps standing for its slot');
  assert.ok(h.logs.some((l) => l.includes(`task ${last.id} failed: exit 1; restart`)) === false, 'expected to hold');
  assert.ok(
    h.logs.some((l) => l.includes('failed: exit 1; restart #2')),
    'expected to hold',
  );

  // Parked until the spec changes: `service update --force` retries the slot.
  await h.updateService('web', (s) => (s.task.forceUpdate = 1));
  await h.settle();
  assert.equal(h.running('web').length, 1);
  assert.equal(h.running('web')[0]!.specVersion, 2);
  h.orch.stop();
});

test('restart conditions: none never, on-failure only after failures, any also after exit 0', async () => {
  const h = await cluster(['n1']);
  await h.createService('none', { mode: { replicated: { replicas: 1 } }, task: { restartPolicy: { condition: 'none', delayMs: 0 } } });
  await h.createService('onfail', { mode: { replicated: { replicas: 2 } }, task: { restartPolicy: { condition: 'on-failure', delayMs: 0 } } });
  await h.createService('any', { mode: { replicated: { replicas: 1 } }, task: { restartPolicy: { condition: 'any', delayMs: 0 } } });
  await h.settle();

  await h.finish(h.live('none')[0]!.id, 'failed', 1);
  const [ok, bad] = h.live('onfail');
  await h.finish(ok!.id, 'complete', 0);
  await h.finish(bad!.id, 'failed', 2);
  await h.finish(h.live('any')[0]!.id, 'complete', 0);
  await h.settle();

  assert.equal(h.tasks('none').length, 1, 'condition none: not restarted');
  assert.equal(h.live('none').length, 0);
  assert.equal(h.tasks('onfail').length, 3, 'on-failure: only the failed one restarted');
  assert.equal(h.task(ok!.id)!.desiredState, 'running');
  assert.equal(h.task(bad!.id)!.desiredState, 'shutdown');
  assert.equal(h.running('onfail').length, 1);
  assert.equal(h.tasks('any').length, 2, 'any: exit 0 is restarted');
  assert.equal(h.running('any').length, 1);
  h.orch.stop();
});

test('tasks on a drained node are replaced elsewhere at once', async () => {
  const h = await cluster();
  await h.createService('web', { mode: { replicated: { replicas: 3 } } });
  await h.settle();
  const onN1 = h.running('web').filter((t) => t.nodeId === 'n1');
  assert.equal(onN1.length, 1);
  await h.editNode('n1', (n) => (n.spec.availability = 'drain'));
  await h.orch.idle();
  // Same transaction: the old task is told to stop and its replacement exists.
  assert.equal(h.task(onN1[0]!.id)!.desiredState, 'shutdown');
  assert.equal(bySlot(h.tasks('web')).get(onN1[0]!.slot!)!.length, 2);
  await h.settle();
  assert.equal(h.running('web').length, 3);
  assert.ok(
    h.running('web').every((t) => t.nodeId !== 'n1'),
    'expected to hold',
  );
  assert.equal(h.task(onN1[0]!.id)!.status.state, 'shutdown');
  h.orch.stop();
});

test('tasks on a down node are replaced elsewhere; the old ones are orphaned after the grace', async () => {
  const h = new Harness({ tuning: { orphanAfterMs: 60_000 } });
  for (const n of ['n1', 'n2']) await h.addNode(n);
  await h.createService('web', { mode: { replicated: { replicas: 2 } } });
  await h.settle();
  const lost = h.running('web').find((t) => t.nodeId === 'n1')!;
  await h.editNode('n1', (n) => (n.status.state = 'down'));
  await h.settle();
  assert.equal(h.running('web').length, 2);
  assert.ok(
    h.running('web').every((t) => t.nodeId === 'n2'),
    'expected to hold',
  );
  // Nobody reports on n1: the old task is still 'running' as far as the store knows.
  assert.equal(h.task(lost.id)!.status.state, 'running');
  assert.equal(h.task(lost.id)!.desiredState, 'shutdown');
  await h.advance(60_000);
  assert.equal(h.task(lost.id)!.status.state, 'orphaned');

  // A removed node: its tasks are orphaned at once.
  await h.addNode('n3');
  await h.updateService('web', (s) => (s.mode = { replicated: { replicas: 3 } }));
  await h.settle();
  const onN3 = h.running('web').find((t) => t.nodeId === 'n3')!;
  await h.editNode('n3', (n) => (n.status.state = 'down'));
  await h.removeNode('n3');
  await h.settle();
  assert.equal(h.task(onN3.id)!.status.state, 'orphaned');
  assert.equal(h.running('web').length, 3);
  h.orch.stop();
});

test('constraint enforcer: a label change moves the tasks that no longer fit', async () => {
  const h = new Harness();
  await h.addNode('n1', { labels: { zone: 'a' } });
  await h.addNode('n2', { labels: { zone: 'a' } });
  await h.addNode('n3', { labels: { zone: 'b' } });
  await h.createService('web', { mode: { replicated: { replicas: 4 } }, task: { placement: { constraints: ['node.labels.zone==a'] } } });
  await h.settle();
  assert.deepEqual(
    countBy(h.running('web'), (t) => t.nodeId),
    { n1: 2, n2: 2 },
  );
  const moved = h.running('web').filter((t) => t.nodeId === 'n2');
  await h.editNode('n2', (n) => (n.spec.labels = { zone: 'b' }));
  await h.settle();
  for (const t of moved) assert.equal(h.task(t.id)!.desiredState, 'shutdown');
  assert.deepEqual(
    countBy(h.running('web'), (t) => t.nodeId),
    { n1: 4 },
  );
  assert.ok(
    h.logs.some((l) => l.includes('no longer satisfies constraint node.labels.zone==a')),
    'expected to hold',
  );
  h.orch.stop();
});

test('task history: only the newest N finished tasks are kept per slot', async () => {
  const h = await cluster(['n1']);
  await h.setHistoryLimit(2);
  await h.createService('web', { mode: { replicated: { replicas: 2 } }, task: { restartPolicy: { condition: 'any', delayMs: 0 } } });
  await h.settle();
  const failed: string[] = [];
  for (let i = 0; i < 5; i++) {
    const head = h.live('web').find((t) => t.slot === 1)!;
    failed.push(head.id);
    await h.finish(head.id, 'failed', 1);
    await h.settle();
  }
  const slot1 = bySlot(h.tasks('web')).get(1)!;
  assert.equal(slot1.length, 3, 'the live task and 2 history tasks');
  assert.deepEqual(
    slot1
      .filter((t) => t.desiredState === 'shutdown')
      .map((t) => t.id)
      .sort(),
    failed.slice(-2).sort(),
  );
  assert.equal(bySlot(h.tasks('web')).get(2)!.length, 1);

  // Raising the limit keeps more from now on; lowering to 0 keeps none.
  await h.setHistoryLimit(0);
  await h.settle();
  assert.equal(bySlot(h.tasks('web')).get(1)!.length, 1);
  h.orch.stop();
});

test('a deleted service: its tasks are told to stop, then deleted', async () => {
  const h = await cluster();
  await h.createService('web', { mode: { replicated: { replicas: 3 } } });
  await h.settle();
  await h.deleteService('web');
  await h.orch.idle();
  assert.ok(
    h.tasks('web').every((t) => t.desiredState === 'remove'),
    'expected to hold',
  );
  await h.settle();
  assert.equal(h.tasks('web').length, 0);
  h.orch.stop();
});

test('pending tasks that were never scheduled are shut down by the orchestrator itself', async () => {
  const h = new Harness(); // no nodes: nothing can be scheduled
  await h.createService('web', { mode: { replicated: { replicas: 3 } } });
  await h.settle();
  assert.equal(h.tasks('web').length, 3);
  await h.updateService('web', (s) => (s.mode = { replicated: { replicas: 1 } }));
  await h.settle();
  assert.equal(h.tasks('web').length, 1, 'the two unscheduled tasks were removed and deleted');
  assert.equal(h.tasks('web')[0]!.slot, 1);
  h.orch.stop();
});
