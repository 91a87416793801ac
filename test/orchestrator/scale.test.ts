// What keeps the orchestrator's cost down at scale (docs/design/scale.md): task progress before
// 'running' does not start a pass (taskChange), nor does 'running' itself while the service's update is
// settled (updateSettled), a scale-up larger than one transaction is
// written by one pass in several transactions, and a leftover write stops when the service changed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Store } from '../../manager/store/store.ts';
import { Orchestrator } from '../../manager/orchestrator/runner.ts';
import { taskChange, taskChangeMatters, updateSettled } from '../../manager/orchestrator/types.ts';
import { dirtyCheck } from '../../manager/orchestrator/slots.ts';
import type { FTask } from '../../manager/orchestrator/types.ts';
import type { TaskState } from '../../api/objects.ts';
import { FakeClock, Harness, bigService, seqIds } from './harness.ts';

const task = (state: TaskState, patch: Partial<FTask> = {}): FTask =>
  ({
    id: 't1',
    kind: 'task',
    version: 1,
    createdAt: '',
    updatedAt: '',
    serviceId: 's1',
    specVersion: 1,
    slot: 1,
    nodeId: 'n1',
    spec: { image: 'busybox' },
    desiredState: 'running',
    status: { state, timestamp: '', message: '' },
    ...patch,
  }) as unknown as FTask;

test('progress between assigned and starting, or new and pending, does not matter to the orchestrator', () => {
  assert.equal(taskChangeMatters(task('assigned'), task('accepted')), false);
  assert.equal(taskChangeMatters(task('accepted'), task('preparing')), false);
  assert.equal(taskChangeMatters(task('preparing'), task('starting')), false);
  assert.equal(taskChangeMatters(task('assigned'), task('starting')), false);
  assert.equal(taskChangeMatters(task('new', { nodeId: undefined }), task('pending', { nodeId: undefined })), false);
});

test('running, finishing, assignment and any change of desire, node, slot or spec version matter', () => {
  assert.equal(taskChangeMatters(task('starting'), task('running')), true);
  assert.equal(taskChangeMatters(task('running'), task('failed')), true);
  assert.equal(taskChangeMatters(task('starting'), task('rejected')), true);
  assert.equal(taskChangeMatters(task('pending', { nodeId: undefined }), task('assigned')), true);
  assert.equal(taskChangeMatters(task('pending'), task('assigned')), true, 'assigned on the node it was meant for');
  assert.equal(taskChangeMatters(task('accepted'), task('accepted', { desiredState: 'shutdown' })), true);
  assert.equal(taskChangeMatters(task('accepted'), task('accepted', { nodeId: 'n2' })), true);
  assert.equal(taskChangeMatters(task('accepted'), task('accepted', { slot: 2 })), true);
  assert.equal(taskChangeMatters(task('accepted'), task('accepted', { specVersion: 2 })), true);
  // A task told to stop: its progress may decide when its slot is refilled.
  const stopping = { desiredState: 'shutdown' as const };
  assert.equal(taskChangeMatters(task('accepted', stopping), task('preparing', stopping)), true);
});

/** Counts the orchestrator's passes (each one is a store.batch call). */
function countPasses(store: Store): { passes: number } {
  const c = { passes: 0 };
  const batch = store.batch.bind(store);
  store.batch = ((items, fn) => {
    c.passes++;
    return batch(items, fn);
  }) as Store['batch'];
  return c;
}

test("'running' matters only to a service whose update is not settled", () => {
  assert.equal(taskChange(task('starting'), task('running')), 'running');
  assert.equal(taskChange(task('running'), task('running', { status: { state: 'running', timestamp: 'later', message: 'healthy' } })), 'running');
  assert.equal(taskChange(task('assigned'), task('accepted')), 'no');
  assert.equal(taskChange(task('running'), task('failed')), 'yes', 'an end is never only running');
  assert.equal(taskChange(task('starting'), task('running', { desiredState: 'shutdown' })), 'yes', 'nor a change of desire');
  const svc = (state?: string) => ({ id: 's1', updateStatus: state === undefined ? undefined : { state } }) as never;
  assert.equal(updateSettled(svc()), true, 'never updated');
  assert.equal(updateSettled(svc('completed')), true);
  assert.equal(updateSettled(svc('rollback_completed')), true);
  for (const st of ['updating', 'paused', 'rollback_started', 'rollback_paused']) assert.equal(updateSettled(svc(st)), false, st);
  assert.equal(updateSettled(undefined), false, 'a service not known: counts');
});

test("a node's progress reports start no pass, nor does running unless the service is updating", async () => {
  const h = new Harness();
  await h.addNode('n1');
  await h.createService('web', { mode: { replicated: { replicas: 2 } }, update: { parallelism: 1, order: 'start-first', monitorMs: 0 } });
  await h.orch.idle();
  const c = countPasses(h.store);
  const step = async (id: string, state: TaskState, nodeId?: string) => {
    await h.store.update((tx) => {
      tx.modify('task', id, (x) => {
        if (nodeId !== undefined) x.nodeId = nodeId;
        x.status = { state, timestamp: h.clock.iso(), message: state };
      });
    });
    await h.orch.idle();
  };
  const [t] = h.tasks('web');
  await step(t!.id, 'pending');
  assert.equal(c.passes, 0, 'new -> pending');
  await step(t!.id, 'assigned', 'n1');
  assert.equal(c.passes, 0, 'pending -> assigned on a node that can keep it: no pass');
  await step(t!.id, 'accepted');
  await step(t!.id, 'preparing');
  await step(t!.id, 'starting');
  assert.equal(c.passes, 0, 'accepted, preparing, starting: no pass');
  await step(t!.id, 'running');
  assert.equal(c.passes, 0, 'running, with no update under way: no pass');

  // An update under way (start-first, so that the old task waits for its replacement to run).
  await h.settle();
  await h.updateService('web', (s) => void (s.task.image = 'busybox:2'));
  await h.orch.idle();
  const fresh = h.tasks('web').filter((x) => x.specVersion === 2 && x.desiredState === 'running');
  assert.equal(fresh.length, 1, 'one slot at a time');
  for (const st of ['pending', 'assigned', 'accepted', 'starting'] as const) await step(fresh[0]!.id, st, st === 'assigned' ? 'n1' : undefined);
  const before = c.passes;
  await step(fresh[0]!.id, 'running');
  assert.ok(c.passes > before, 'running while updating is a pass');
  const old = h.task(h.tasks('web').find((x) => x.specVersion === 1 && x.slot === fresh[0]!.slot)!.id)!;
  assert.equal(old.desiredState, 'shutdown', 'and the old task of its slot retires');
  assert.equal(h.tasks('web').filter((x) => x.specVersion === 2 && x.desiredState === 'running').length, 2, 'the next slot starts');
  h.orch.stop();
});

test('an assignment to a node that cannot keep the task is a pass, and the task moves', async () => {
  for (const [what, edit] of [
    ['drained', (n: { spec: { availability: string } }) => void (n.spec.availability = 'drain')],
    ['down', (n: { status: { state: string } }) => void (n.status.state = 'down')],
  ] as const) {
    const h = new Harness();
    await h.addNode('n1');
    await h.addNode('n2');
    await h.createService('web', { mode: { replicated: { replicas: 1 } } });
    await h.orch.idle();
    const [t] = h.tasks('web');
    // The scheduler read n2 as fit; n2 changed before its assignment was applied (the node's event came
    // first and found no task of the service on n2).
    await h.editNode('n2', edit as (n: unknown) => void);
    await h.orch.idle();
    const c = countPasses(h.store);
    await h.store.update((tx) => {
      tx.modify('task', t!.id, (x) => {
        x.nodeId = 'n2';
        x.status = { state: 'assigned', timestamp: h.clock.iso(), message: 'assigned' };
      });
    });
    await h.orch.idle();
    assert.ok(c.passes >= 1, `assigned on a ${what} node: a pass`);
    assert.equal(h.task(t!.id)?.desiredState, 'shutdown', `the task on the ${what} node is told to stop`);
    assert.equal(h.live('web').length, 1, 'and replaced');
    h.orch.stop();
  }
});

test("the orchestrator's own creates start no pass; a task another leader created does", async () => {
  const h = new Harness();
  await h.addNode('n1');
  const c = countPasses(h.store);
  await h.createService('web', { mode: { replicated: { replicas: 3 } } });
  await h.orch.idle();
  assert.equal(h.tasks('web').length, 3);
  assert.equal(c.passes, 1, 'one pass creates the tasks; their create events start none');
  // A task written by someone else (an earlier leader's orchestrator, committed late): a duplicate of
  // slot 1, which this orchestrator must see and retire.
  const dup = { ...structuredClone(h.tasks('web').find((t) => t.slot === 1)!), id: 'other-leader-task' };
  await h.store.update((tx) => void tx.create(dup as never));
  await h.orch.idle();
  assert.ok(c.passes >= 2, 'a create this orchestrator did not write is a pass');
  assert.equal(h.live('web').length, 3, 'the duplicate of slot 1 is retired');
  h.orch.stop();
});

test('a scale-up larger than a transaction is written by one pass, in several transactions', async () => {
  const clock = new FakeClock();
  const store = new Store({ now: () => new Date(clock.now), maxTxBytes: 16 * 1024 });
  const c = countPasses(store);
  const logs: string[] = [];
  const orch = new Orchestrator(store, { now: () => clock.now, timers: clock.timers, newId: seqIds('t'), log: (l) => logs.push(l) });
  orch.start();
  const before = store.index;
  await store.update((tx) => void tx.create(bigService(300)));
  await orch.idle();
  assert.equal(store.view((tx) => tx.tasksByService('big')).length, 300);
  assert.ok(store.index - before > 5, `several transactions (${store.index - before})`);
  // The decisions are logged 20 a pass, the rest counted.
  const scaleUps = logs.filter((l) => l.includes(': scale up')).length;
  assert.ok(scaleUps < 300 && logs.some((l) => /… and \d+ more decisions/.test(l)), `${scaleUps} scale-up lines logged`);
  // The pass that created them, and one more for the events of its own writes (which finds nothing).
  assert.ok(c.passes <= 2, `passes: ${c.passes}`);
  orch.stop();
});

test('leftover writes stop when the service was scaled meanwhile; the next pass reconciles the new count', async () => {
  const clock = new FakeClock();
  let writes = 0;
  let scaled = false;
  const store: Store = new Store({
    now: () => new Date(clock.now),
    maxTxBytes: 16 * 1024,
    // A fake Raft that lets an operator scale the service down after the orchestrator's third write.
    propose: async (data) => {
      const r = store.apply({ index: store.index + 1, data });
      if (++writes === 4 && !scaled) {
        scaled = true;
        await store.update((tx) => {
          tx.modify('service', 'big', (s) => {
            s.spec.mode = { replicated: { replicas: 40 } };
          });
        });
      }
      return r;
    },
  });
  let created = 0;
  store.watch({ kinds: ['task'] }, (ev) => {
    if (ev.type === 'create') created++;
  });
  const orch = new Orchestrator(store, { now: () => clock.now, timers: clock.timers, newId: seqIds('t') });
  orch.start();
  await store.update((tx) => void tx.create(bigService(300)));
  await orch.idle();
  assert.ok(scaled);
  assert.ok(created < 300, `tasks created: ${created} (the rest of the 300-replica plan was dropped)`);
  const live = store.view((tx) => tx.tasksByService('big')).filter((t) => t.desiredState === 'running');
  assert.equal(live.length, 40);
  orch.stop();
});

test("dirtyCheck's answers kept per task object follow the service's spec version and template", () => {
  const t = task('running', { spec: { image: 'app:1' } as FTask['spec'] });
  const svc = (specVersion: number, image: string) =>
    ({ id: 's1', specVersion, spec: { task: { image }, networks: [], endpoint: { ports: [] } } }) as unknown as Parameters<typeof dirtyCheck>[0];
  const nodes = new Map();
  assert.equal(dirtyCheck(svc(2, 'app:1'), nodes)(t), false, 'same template: not dirty');
  assert.equal(dirtyCheck(svc(3, 'app:2'), nodes)(t), true, 'a new template: dirty, not the kept answer');
  assert.equal(dirtyCheck(svc(4, 'app:1'), nodes)(t), false, 'back to the same template');
  assert.equal(dirtyCheck(svc(1, 'app:2'), nodes)(t), false, 'the task is of the current spec version');
});
