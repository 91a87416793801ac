// Rolling updates and rollbacks end to end: parallelism and delay, stop-first and start-first, failure
// actions (pause, automatic rollback), manual rollback, --force, and a leader change mid-update.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isTerminalTaskState } from '../../api/objects.ts';
import type { Frozen, Task } from '../../api/objects.ts';
import { Harness, bySlot, seqIds } from './harness.ts';

async function cluster(nodes = ['n1', 'n2', 'n3']): Promise<Harness> {
  const h = new Harness();
  for (const n of nodes) await h.addNode(n);
  return h;
}

/** Advances time in steps until `done()` (or fails after `max` ms). */
async function until(h: Harness, done: () => boolean, stepMs = 250, max = 120_000): Promise<void> {
  await h.settle();
  for (let t = 0; !done(); t += stepMs) {
    if (t > max) throw new Error('condition not reached in time');
    await h.advance(stepMs);
  }
}

/** A slot is "disturbed" unless exactly one of its tasks is unfinished and it runs, desired running. */
function disturbedSlots(tasks: readonly Frozen<Task>[]): number {
  let n = 0;
  for (const ts of bySlot(tasks).values()) {
    const alive = ts.filter((t) => !isTerminalTaskState(t.status.state));
    if (!(alive.length === 1 && alive[0]!.status.state === 'running' && alive[0]!.desiredState === 'running')) n++;
  }
  return n;
}

test('rolling update with parallelism 2: never more than 2 slots updating, delay between batches, all tasks on the new spec', async () => {
  const h = await cluster();
  await h.createService('web', { mode: { replicated: { replicas: 6 } }, update: { parallelism: 2, delayMs: 1_000, monitorMs: 2_000 } });
  await h.settle();
  let maxDisturbed = 0;
  h.observers.push(() => {
    maxDisturbed = Math.max(maxDisturbed, disturbedSlots(h.tasks('web')));
  });
  await h.updateService('web', (s) => (s.task.image = 'app:2'));
  assert.equal(h.service('web').updateStatus?.state, 'updating');
  await until(h, () => h.service('web').updateStatus?.state === 'completed');

  assert.equal(maxDisturbed, 2, 'two slots at a time, never more');
  const running = h.running('web');
  assert.equal(running.length, 6);
  assert.ok(
    running.every((t) => t.specVersion === 2 && t.spec.image === 'app:2'),
    'expected to hold',
  );
  assert.deepEqual(running.map((t) => t.slot).sort(), [1, 2, 3, 4, 5, 6]);
  // Batches of two, at least `delay` apart.
  const created = [
    ...new Set(
      h
        .tasks('web')
        .filter((t) => t.specVersion === 2)
        .map((t) => Date.parse(t.createdAt)),
    ),
  ].sort((a, b) => a - b);
  assert.equal(created.length, 3);
  assert.ok(created[1]! - created[0]! >= 1_000 && created[2]! - created[1]! >= 1_000, `batches ${created.join(', ')}`);
  const st = h.service('web').updateStatus!;
  assert.equal(st.message, 'update completed');
  assert.ok(st.completedAt && st.startedAt, 'expected to hold');
  h.orch.stop();
});

test('start-first: the new task runs before the old one is told to stop', async () => {
  const h = await cluster();
  await h.createService('web', { mode: { replicated: { replicas: 2 } }, update: { order: 'start-first', parallelism: 1, monitorMs: 1_000 } });
  await h.settle();
  const v1 = new Set(h.running('web').map((t) => t.id));
  let overlap = false;
  let violated = '';
  h.observers.push(() => {
    for (const [slot, ts] of bySlot(h.tasks('web'))) {
      const old = ts.find((t) => v1.has(t.id));
      const fresh = ts.filter((t) => !v1.has(t.id));
      if (!old) continue;
      if (old.desiredState !== 'running' && !fresh.some((t) => t.status.state === 'running')) violated = `slot ${slot}: old stopped before new ran`;
      if (old.status.state === 'running' && fresh.some((t) => t.status.state === 'running')) overlap = true;
    }
  });
  await h.updateService('web', (s) => (s.task.image = 'app:2'));
  await until(h, () => h.service('web').updateStatus?.state === 'completed');
  assert.equal(violated, '');
  assert.ok(overlap, 'old and new ran side by side');
  assert.ok(
    h.running('web').every((t) => t.spec.image === 'app:2'),
    'expected to hold',
  );
  assert.equal(h.running('web').length, 2);
  h.orch.stop();
});

test('update to a broken image pauses (failureAction pause), naming the failing task', async () => {
  const h = await cluster();
  await h.createService('web', { mode: { replicated: { replicas: 3 } }, update: { parallelism: 1, failureAction: 'pause' } });
  await h.settle();
  await h.updateService('web', (s) => (s.task.image = 'broken'));
  await h.settle();
  const st = h.service('web').updateStatus!;
  assert.equal(st.state, 'paused');
  const failed = h.tasks('web').find((t) => t.spec.image === 'broken' && t.status.state === 'failed')!;
  assert.ok(failed, 'expected to hold');
  assert.match(st.message, new RegExp(`update paused due to failure or early termination of task ${failed.id}`));
  // Paused: the other slots stay on the old spec, whatever time passes.
  await h.advance(30_000);
  assert.equal(h.service('web').updateStatus!.state, 'paused');
  assert.equal(h.running('web').filter((t) => t.spec.image === 'app:1').length, 2);

  // A new update (the API writes 'updating' again) resumes, here with a working image.
  await h.updateService('web', (s) => (s.task.image = 'app:3'));
  await until(h, () => h.service('web').updateStatus?.state === 'completed');
  assert.equal(h.running('web').length, 3);
  assert.ok(
    h.running('web').every((t) => t.spec.image === 'app:3'),
    'expected to hold',
  );
  h.orch.stop();
});

test('update to a broken image rolls back automatically (failureAction rollback)', async () => {
  const h = await cluster();
  await h.createService('web', { mode: { replicated: { replicas: 3 } }, update: { parallelism: 1, failureAction: 'rollback' } });
  await h.settle();
  const seen = new Set<string>();
  h.observers.push(() => void seen.add(h.service('web').updateStatus?.state ?? 'none'));
  await h.updateService('web', (s) => (s.task.image = 'broken'));
  await until(h, () => h.service('web').updateStatus?.state === 'rollback_completed');
  assert.ok(seen.has('rollback_started'), 'expected to hold');
  const svc = h.service('web');
  assert.equal(svc.spec.task.image, 'app:1');
  assert.equal(svc.previousSpec?.task.image, 'broken');
  assert.equal(svc.specVersion, 3);
  assert.match(svc.updateStatus!.message, /rollback completed/);
  const running = h.running('web');
  assert.equal(running.length, 3);
  assert.ok(
    running.every((t) => t.spec.image === 'app:1'),
    'expected to hold',
  );
  assert.equal(h.live('web').length, 3);
  h.orch.stop();
});

test('manual rollback (the API swaps spec and previousSpec) is carried out by the same updater', async () => {
  const h = await cluster();
  await h.createService('web', {
    mode: { replicated: { replicas: 3 } },
    update: { parallelism: 0, monitorMs: 1_000 },
    rollback: { parallelism: 1, monitorMs: 1_000 },
  });
  await h.settle();
  await h.updateService('web', (s) => (s.task.image = 'app:2'));
  await until(h, () => h.service('web').updateStatus?.state === 'completed');
  assert.ok(
    h.running('web').every((t) => t.spec.image === 'app:2'),
    'expected to hold',
  );

  let maxDisturbed = 0;
  h.observers.push(() => {
    maxDisturbed = Math.max(maxDisturbed, disturbedSlots(h.tasks('web')));
  });
  await h.rollbackService('web');
  await until(h, () => h.service('web').updateStatus?.state === 'rollback_completed');
  assert.equal(maxDisturbed, 1, 'the rollback config (parallelism 1) drives a rollback');
  assert.equal(h.running('web').length, 3);
  assert.ok(
    h.running('web').every((t) => t.spec.image === 'app:1' && t.specVersion === 3),
    'expected to hold',
  );
  h.orch.stop();
});

test('--force (forceUpdate bumped) replaces every task with an identical one', async () => {
  const h = await cluster();
  await h.createService('web', { mode: { replicated: { replicas: 2 } }, update: { parallelism: 0, monitorMs: 0 } });
  await h.settle();
  const before = new Set(h.running('web').map((t) => t.id));
  await h.updateService('web', (s) => (s.task.forceUpdate = 1));
  await until(h, () => h.service('web').updateStatus?.state === 'completed');
  assert.equal(h.running('web').length, 2);
  assert.ok(
    h.running('web').every((t) => !before.has(t.id) && t.spec.image === 'app:1' && t.spec.forceUpdate === 1),
    'expected to hold',
  );
  h.orch.stop();
});

test('a scale or a placement-only change that the nodes still satisfy restarts nothing', async () => {
  const h = await cluster();
  await h.createService('web', { mode: { replicated: { replicas: 2 } }, update: { monitorMs: 0 } });
  await h.settle();
  const before = h
    .running('web')
    .map((t) => t.id)
    .sort();
  await h.updateService('web', (s) => (s.task.placement = { constraints: ['node.platform.os==linux'] }));
  await until(h, () => h.service('web').updateStatus?.state === 'completed');
  assert.deepEqual(
    h
      .running('web')
      .map((t) => t.id)
      .sort(),
    before,
  );
  h.orch.stop();
});

test('leader change mid-update: a new orchestrator on the same store resumes from the store state', async () => {
  const h = await cluster();
  await h.createService('web', { mode: { replicated: { replicas: 4 } }, update: { parallelism: 1, delayMs: 500, monitorMs: 1_000 } });
  await h.settle();
  let maxDisturbed = 0;
  h.observers.push(() => {
    maxDisturbed = Math.max(maxDisturbed, disturbedSlots(h.tasks('web')));
  });
  await h.updateService('web', (s) => (s.task.image = 'app:2'));
  // Run until the second slot is in the middle of its update, then the leader dies.
  await until(h, () => h.tasks('web').filter((t) => t.specVersion === 2).length >= 2, 100);
  const upgradedBefore = h.running('web').filter((t) => t.specVersion === 2).length;
  assert.ok(upgradedBefore >= 1 && upgradedBefore < 4, `mid-update (${upgradedBefore} of 4 done)`);
  h.orch.stop();
  await h.orch.idle();

  // The workers keep going without a leader.
  await h.step();
  await h.step();

  // New leader: fresh memory, same store.
  h.orch = h.newOrchestrator({}, seqIds('u'));
  h.orch.start();
  await until(h, () => h.service('web').updateStatus?.state === 'completed');
  assert.ok(maxDisturbed <= 1, `parallelism 1 held across the change (saw ${maxDisturbed})`);
  const running = h.running('web');
  assert.equal(running.length, 4);
  assert.ok(
    running.every((t) => t.specVersion === 2 && t.spec.image === 'app:2'),
    'expected to hold',
  );
  const v2 = h.tasks('web').filter((t) => t.specVersion === 2);
  assert.equal(v2.length, 4, 'exactly one new task per slot: nothing was redone');
  assert.ok(
    v2.some((t) => t.id.startsWith('u')),
    'the new leader did part of the work',
  );
  for (const ts of bySlot(h.tasks('web')).values()) assert.equal(ts.filter((t) => t.desiredState === 'running').length, 1);
  h.orch.stop();
});
