// Jobs end to end: replicated jobs run totalCompletions tasks with at most maxConcurrent at once, global
// jobs run once per node; completed tasks are never restarted, failed ones follow the restart policy.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { jobProgress } from '../../manager/orchestrator/jobs.ts';
import { Harness, countBy } from './harness.ts';

test('replicated job: totalCompletions tasks, at most maxConcurrent at once, then complete', async () => {
  const h = new Harness();
  for (const n of ['n1', 'n2']) await h.addNode(n);
  let maxActive = 0;
  h.observers.push(() => {
    maxActive = Math.max(maxActive, h.live('batch').length);
  });
  await h.createService('batch', { mode: { replicatedJob: { maxConcurrent: 2, totalCompletions: 5 } }, task: { image: 'job:1' } });
  await h.orch.idle();
  const first = h.tasks('batch');
  assert.equal(first.length, 2);
  assert.ok(
    first.every((t) => t.desiredState === 'complete'),
    'expected to hold',
  );
  assert.deepEqual(first.map((t) => t.slot).sort(), [1, 2]);
  await h.settle();
  const tasks = h.tasks('batch');
  assert.equal(tasks.length, 5);
  assert.ok(
    tasks.every((t) => t.status.state === 'complete'),
    'expected to hold',
  );
  assert.deepEqual(tasks.map((t) => t.slot).sort(), [1, 2, 3, 4, 5]);
  assert.ok(maxActive <= 2, `at most 2 at once (saw ${maxActive})`);
  assert.ok(jobProgress(h.service('batch'), tasks).done, 'expected to hold');
  // Completed tasks are final: time passing changes nothing.
  await h.advance(60_000);
  assert.equal(h.tasks('batch').length, 5);
  h.orch.stop();
});

test('replicated job: a failed task follows the restart policy; completions are not restarted', async () => {
  const h = new Harness();
  await h.addNode('n1');
  await h.createService('batch', {
    mode: { replicatedJob: { maxConcurrent: 3, totalCompletions: 3 } },
    task: { image: 'app:1', restartPolicy: { condition: 'any', delayMs: 1_000 } },
  });
  await h.settle();
  const [a, b, c] = h.live('batch');
  await h.finish(a!.id, 'complete', 0);
  await h.finish(b!.id, 'failed', 1);
  await h.advance(1_000);
  assert.equal(h.task(a!.id)!.desiredState, 'complete', 'completion is final, even with condition any');
  assert.equal(h.task(b!.id)!.desiredState, 'shutdown');
  const retry = h.live('batch').find((t) => t.slot === b!.slot)!;
  assert.ok(retry, 'expected to hold');
  await h.finish(retry.id, 'complete', 0);
  await h.finish(c!.id, 'complete', 0);
  await h.settle();
  const p = jobProgress(h.service('batch'), h.tasks('batch'));
  assert.deepEqual({ completed: p.completed, done: p.done, running: p.running }, { completed: 3, done: true, running: 0 });
  h.orch.stop();
});

test('replicated job: a spec change re-runs the job', async () => {
  const h = new Harness();
  await h.addNode('n1');
  await h.createService('batch', { mode: { replicatedJob: { maxConcurrent: 1, totalCompletions: 2 } }, task: { image: 'job:1' } });
  await h.settle();
  assert.equal(h.tasks('batch').filter((t) => t.status.state === 'complete').length, 2);
  await h.updateService('batch', (s) => (s.task.image = 'job:2'));
  await h.settle();
  const v2 = h.tasks('batch').filter((t) => t.specVersion === 2);
  assert.equal(v2.length, 2);
  assert.ok(
    v2.every((t) => t.status.state === 'complete' && t.spec.image === 'job:2'),
    'expected to hold',
  );
  h.orch.stop();
});

test('global job: runs once on every eligible node, including nodes that join later', async () => {
  const h = new Harness();
  for (const n of ['n1', 'n2']) await h.addNode(n);
  await h.addNode('n3', { availability: 'drain' });
  await h.createService('sweep', { mode: { globalJob: {} }, task: { image: 'job:1' } });
  await h.settle();
  const nodes = () => new Map(h.store.view((tx) => tx.list('node')).map((n) => [n.id, n]));
  assert.deepEqual(
    countBy(h.tasks('sweep'), (t) => t.nodeId),
    { n1: 1, n2: 1 },
  );
  assert.ok(
    h.tasks('sweep').every((t) => t.status.state === 'complete' && t.desiredState === 'complete'),
    'expected to hold',
  );
  assert.ok(jobProgress(h.service('sweep'), h.tasks('sweep'), nodes()).done, 'expected to hold');
  await h.advance(60_000);
  assert.equal(h.tasks('sweep').length, 2, 'completed tasks are not run again');

  await h.addNode('n4');
  await h.settle();
  assert.deepEqual(
    countBy(h.tasks('sweep'), (t) => t.nodeId),
    { n1: 1, n2: 1, n4: 1 },
  );
  assert.ok(jobProgress(h.service('sweep'), h.tasks('sweep'), nodes()).done, 'expected to hold');
  h.orch.stop();
});
