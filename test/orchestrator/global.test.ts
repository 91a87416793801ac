// Global services end to end: one task per eligible node, following joins, removals, availability,
// state and label changes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Harness, countBy } from './harness.ts';

test('global service: one task per node, created bound to the node (pending: no network to allocate)', async () => {
  const h = new Harness();
  await h.addNode('n1');
  await h.addNode('n2');
  await h.createService('agent', { mode: { global: {} }, task: { image: 'agent:1' } });
  await h.orch.idle();
  const fresh = h.tasks('agent');
  assert.equal(fresh.length, 2);
  for (const t of fresh) {
    assert.equal(t.status.state, 'pending');
    assert.equal(t.slot, undefined);
    assert.ok(t.nodeId === 'n1' || t.nodeId === 'n2', 'expected to hold');
  }
  await h.settle();
  assert.deepEqual(
    countBy(h.running('agent'), (t) => t.nodeId),
    { n1: 1, n2: 1 },
  );
  h.orch.stop();
});

test('global service follows node join, drain, pause, down, removal and label changes', async () => {
  const h = new Harness();
  await h.addNode('n1', { labels: { gpu: 'yes' } });
  await h.addNode('n2', { labels: { gpu: 'yes' } });
  await h.addNode('n3', { labels: { gpu: 'no' } });
  await h.createService('agent', { mode: { global: {} }, task: { placement: { constraints: ['node.labels.gpu==yes'] } } });
  await h.settle();
  const nodesRunning = () => Object.keys(countBy(h.running('agent'), (t) => t.nodeId)).sort();
  assert.deepEqual(nodesRunning(), ['n1', 'n2']);

  // Join.
  await h.addNode('n4', { labels: { gpu: 'yes' } });
  await h.settle();
  assert.deepEqual(nodesRunning(), ['n1', 'n2', 'n4']);

  // Label change: n3 now qualifies, n2 no longer does.
  await h.editNode('n3', (n) => (n.spec.labels = { gpu: 'yes' }));
  await h.editNode('n2', (n) => (n.spec.labels = { gpu: 'no' }));
  await h.settle();
  assert.deepEqual(nodesRunning(), ['n1', 'n3', 'n4']);

  // Drain: the task stops and nothing replaces it; back to active: a new task.
  await h.editNode('n1', (n) => (n.spec.availability = 'drain'));
  await h.settle();
  assert.deepEqual(nodesRunning(), ['n3', 'n4']);
  await h.editNode('n1', (n) => (n.spec.availability = 'active'));
  await h.settle();
  assert.deepEqual(nodesRunning(), ['n1', 'n3', 'n4']);

  // Pause: existing tasks stay; a paused node that joins gets nothing.
  await h.editNode('n3', (n) => (n.spec.availability = 'pause'));
  await h.addNode('n5', { labels: { gpu: 'yes' }, availability: 'pause' });
  await h.settle();
  assert.deepEqual(nodesRunning(), ['n1', 'n3', 'n4']);
  assert.equal(h.tasks('agent').filter((t) => t.nodeId === 'n5').length, 0);

  // Down: the task is told to stop (nobody can confirm); back up: a new task.
  const onN4 = h.running('agent').find((t) => t.nodeId === 'n4')!;
  await h.editNode('n4', (n) => (n.status.state = 'down'));
  await h.settle();
  assert.equal(h.task(onN4.id)!.desiredState, 'shutdown');
  assert.deepEqual(nodesRunning(), ['n1', 'n3']);
  await h.editNode('n4', (n) => (n.status.state = 'ready'));
  await h.settle();
  assert.deepEqual(nodesRunning(), ['n1', 'n3', 'n4']);

  // Removal.
  const onN1 = h.running('agent').find((t) => t.nodeId === 'n1')!;
  await h.removeNode('n1');
  await h.settle();
  assert.equal(h.task(onN1.id)!.desiredState, 'shutdown');
  assert.equal(h.task(onN1.id)!.status.state, 'orphaned');
  assert.deepEqual(nodesRunning(), ['n3', 'n4']);
  h.orch.stop();
});

test('global service: a failed task is restarted on the same node per the restart policy', async () => {
  const h = new Harness();
  await h.addNode('n1');
  await h.addNode('n2');
  await h.createService('agent', { mode: { global: {} }, task: { restartPolicy: { condition: 'on-failure', delayMs: 2_000 } } });
  await h.settle();
  const old = h.running('agent').find((t) => t.nodeId === 'n2')!;
  await h.finish(old.id, 'failed', 3);
  await h.advance(1_000);
  assert.equal(h.running('agent').length, 1);
  await h.advance(1_000);
  const now = h.running('agent').find((t) => t.nodeId === 'n2')!;
  assert.notEqual(now.id, old.id);
  assert.equal(h.task(old.id)!.desiredState, 'shutdown');

  // Exit 0 with on-failure: not restarted.
  await h.finish(now.id, 'complete', 0);
  await h.advance(10_000);
  assert.equal(h.running('agent').length, 1);
  h.orch.stop();
});

test('global service rolling update replaces the task on every node', async () => {
  const h = new Harness();
  for (const n of ['n1', 'n2', 'n3']) await h.addNode(n);
  await h.createService('agent', { mode: { global: {} }, update: { parallelism: 1, monitorMs: 0 } });
  await h.settle();
  await h.updateService('agent', (s) => (s.task.image = 'app:2'));
  await h.settle();
  assert.equal(h.running('agent').length, 3);
  assert.ok(
    h.running('agent').every((t) => t.spec.image === 'app:2' && t.specVersion === 2),
    'expected to hold',
  );
  assert.equal(h.service('agent').updateStatus?.state, 'completed');
  h.orch.stop();
});
