// The runner's mechanics: convergence and idempotence, transactions split under the size limit,
// ConflictError retries, stop(), resync after a store reset, and a leader change while a stop-first
// update waits for an old task to stop.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Store } from '../../manager/store/store.ts';
import { Orchestrator } from '../../manager/orchestrator/runner.ts';
import { FakeClock, Harness, bySlot, seqIds } from './harness.ts';

test('converged state: another pass writes nothing', async () => {
  const h = new Harness();
  for (const n of ['n1', 'n2']) await h.addNode(n);
  await h.createService('web', { mode: { replicated: { replicas: 3 } } });
  await h.createService('agent', { mode: { global: {} } });
  await h.settle();
  const index = h.store.index;
  // A fresh orchestrator reconciles everything once on start: nothing to do.
  h.orch.stop();
  h.orch = h.newOrchestrator({}, seqIds('z'));
  h.orch.start();
  await h.orch.idle();
  assert.equal(h.store.index, index);
  h.orch.stop();
});

test('a large scale-up is split over several transactions under the store limit', async () => {
  const clock = new FakeClock();
  const store = new Store({ now: () => new Date(clock.now), maxTxBytes: 16 * 1024 });
  const orch = new Orchestrator(store, { now: () => clock.now, timers: clock.timers, newId: seqIds('t') });
  orch.start();
  const before = store.index;
  await store.update(
    (tx) =>
      void tx.create({
        id: 'big',
        kind: 'service',
        spec: {
          name: 'big',
          labels: {},
          mode: { replicated: { replicas: 300 } },
          task: { image: 'app:1', env: ['A=' + 'x'.repeat(200)] },
          networks: [],
          endpoint: { ports: [] },
        },
        specVersion: 1,
        status: {},
      }),
  );
  await orch.idle();
  const tasks = store.view((tx) => tx.tasksByService('big'));
  assert.equal(tasks.length, 300);
  assert.deepEqual(new Set(tasks.map((t) => t.slot)).size, 300);
  assert.ok(store.index - before > 5, `several transactions (${store.index - before})`);
  orch.stop();
});

test('a ConflictError at commit (another writer got in first) is retried from the new state', async () => {
  const clock = new FakeClock();
  let interfere: (() => Promise<void>) | null = null;
  let conflicts = 0;
  const store: Store = new Store({
    now: () => new Date(clock.now),
    // A fake Raft: before applying a proposal, possibly let another writer commit first.
    propose: async (data) => {
      if (interfere !== null) {
        const f = interfere;
        interfere = null;
        await f();
      }
      const r = store.apply({ index: store.index + 1, data });
      if (r instanceof Error && r.name === 'ConflictError') conflicts++;
      return r;
    },
  });
  const logs: string[] = [];
  const orch = new Orchestrator(store, { now: () => clock.now, timers: clock.timers, newId: seqIds('t'), log: (l) => logs.push(l) });
  orch.start();
  await store.update(
    (tx) =>
      void tx.create({
        id: 'web',
        kind: 'service',
        spec: { name: 'web', labels: {}, mode: { replicated: { replicas: 2 } }, task: { image: 'app:1' }, networks: [], endpoint: { ports: [] } },
        specVersion: 1,
        status: {},
      }),
  );
  await orch.idle();
  const ids = store.view((tx) => tx.tasksByService('web')).map((t) => t.id);
  // Scale down to 1 while the "dispatcher" writes a status to the same task in between.
  await store.update((tx) => void tx.modify('service', 'web', (s) => (s.spec.mode = { replicated: { replicas: 1 } })));
  interfere = () =>
    store
      .update((tx) => {
        for (const id of ids) tx.modify('task', id, (t) => (t.status = { ...t.status, message: 'scheduler was here' }));
      })
      .then(() => {});
  await orch.idle();
  assert.equal(conflicts, 1);
  const left = store.view((tx) => tx.tasksByService('web'));
  assert.equal(left.filter((t) => t.desiredState === 'running').length, 1);
  assert.equal(left.filter((t) => t.desiredState === 'remove').length + left.filter((t) => t.desiredState === 'running').length, left.length);
  assert.equal(logs.filter((l) => l.includes('writing decisions failed')).length, 0, 'a conflict is retried quietly');
  orch.stop();
});

test('stop(): no more reactions; idle() resolves', async () => {
  const h = new Harness();
  await h.addNode('n1');
  h.orch.stop();
  await h.createService('web', { mode: { replicated: { replicas: 2 } } });
  await h.orch.idle();
  assert.equal(h.tasks('web').length, 0);
  assert.equal(h.orch.running, false);
});

test('a store reset (snapshot restore) closes the watch; the runner resyncs', async () => {
  const h = new Harness();
  await h.addNode('n1');
  await h.settle();
  // Another store with a service and no tasks yet, as if installed from a leader's snapshot.
  const other = new Store();
  await other.update((tx) => {
    tx.create({
      id: 'n1',
      kind: 'node',
      spec: { labels: {}, availability: 'active', role: 'worker' },
      description: { hostname: 'n1', platform: { os: 'linux', arch: 'amd64' }, resources: { nanoCpus: 1, memoryBytes: 1 }, engineVersion: 't', addr: 'a' },
      status: { state: 'ready', message: '', addr: 'a' },
    });
    tx.create({
      id: 'web',
      kind: 'service',
      spec: { name: 'web', labels: {}, mode: { replicated: { replicas: 2 } }, task: { image: 'app:1' }, networks: [], endpoint: { ports: [] } },
      specVersion: 1,
      status: {},
    });
  });
  h.store.restore(other.snapshot());
  await h.settle();
  assert.equal(h.running('web').length, 2);
  assert.ok(
    h.logs.some((l) => l.includes('resyncing')),
    'logged the resync',
  );
  h.orch.stop();
});

test('leader change while a stop-first update waits for the old task to stop', async () => {
  const h = new Harness();
  for (const n of ['n1', 'n2']) await h.addNode(n);
  await h.createService('web', { mode: { replicated: { replicas: 2 } }, update: { parallelism: 1, monitorMs: 0 } });
  await h.settle();
  await h.updateService('web', (s) => (s.task.image = 'app:2'));
  await h.orch.idle();
  // The updater told one old task to stop; the worker has not stopped it yet. The leader dies here.
  const stopping = h.tasks('web').filter((t) => t.desiredState === 'shutdown' && t.status.state === 'running');
  assert.equal(stopping.length, 1);
  h.orch.stop();
  await h.step(); // the worker stops it: the slot is now empty
  assert.equal(h.task(stopping[0]!.id)!.status.state, 'shutdown');

  h.orch = h.newOrchestrator({}, seqIds('u'));
  h.orch.start();
  await h.settle();
  assert.equal(h.service('web').updateStatus?.state, 'completed');
  const slots = bySlot(h.tasks('web'));
  for (const ts of slots.values()) {
    assert.equal(ts.filter((t) => t.desiredState === 'running').length, 1);
    assert.equal(ts.filter((t) => t.specVersion === 2).length, 1);
  }
  assert.ok(
    h.running('web').every((t) => t.spec.image === 'app:2'),
    'all on app:2',
  );
  h.orch.stop();
});

test('a stop the node never reports: the deciding pass arms its deadline, and its echo starts no pass', async () => {
  const h = new Harness();
  await h.addNode('n1');
  await h.createService('web', { mode: { replicated: { replicas: 1 } }, update: { parallelism: 1, monitorMs: 0 } });
  await h.settle();
  const [old] = h.running('web');
  let passes = 0;
  const batch = h.store.batch.bind(h.store);
  h.store.batch = ((items, fn) => {
    passes++;
    return batch(items, fn);
  }) as typeof h.store.batch;
  await h.updateService('web', (s) => (s.task.image = 'app:2'));
  await h.orch.idle();
  assert.equal(h.task(old!.id)!.desiredState, 'shutdown', 'the update told the old task to stop');
  assert.equal(passes, 1, 'one pass for the update; the echo of its stop starts none');
  // The node never reports the task stopped: it counts as stopped at its stop deadline (grace 10 s +
  // stop timeout 60 s), not before, and only then does the slot get its new task.
  const fresh = () => h.tasks('web').filter((t) => t.specVersion === 2 && t.desiredState === 'running');
  h.clock.advance(69_000);
  await h.orch.idle();
  assert.equal(fresh().length, 0, 'not before the deadline');
  h.clock.advance(2_000);
  await h.orch.idle();
  assert.equal(fresh().length, 1, 'the slot is refilled once the deadline passed');
  h.orch.stop();
});

test('a stop of a task on a node that is down is not skipped: the task is orphaned once the node is removed', async () => {
  const h = new Harness();
  await h.addNode('n1');
  await h.addNode('n2');
  await h.createService('web', { mode: { replicated: { replicas: 1 } }, task: { placement: { constraints: ['node.hostname==n1'] } } });
  await h.settle();
  const [t] = h.running('web');
  await h.editNode('n1', (n) => void (n.status.state = 'down'));
  await h.orch.idle();
  assert.equal(h.task(t!.id)!.desiredState, 'shutdown', 'moved off the down node');
  await h.removeNode('n1');
  await h.orch.idle();
  // Orphaned at once (its node is gone), then reaped as history or kept as orphaned: never left shut down
  // in desire only, waiting for a node that will not report.
  const after = h.task(t!.id);
  assert.ok(after === undefined || after.status.state === 'orphaned', `task left ${after?.status.state}`);
  h.orch.stop();
});
