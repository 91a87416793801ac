// WriteBurst (manager/store/write-burst.ts): settled() resolves at the end of the outermost burst or at
// its cap; and with it, the scheduler places all the tasks one orchestrator pass writes in several
// transactions in one pass of its own, so that each node's share travels together.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WriteBurst } from '../../manager/store/write-burst.ts';
import { Store } from '../../manager/store/store.ts';
import { Orchestrator } from '../../manager/orchestrator/runner.ts';
import { SchedulerRunner } from '../../manager/scheduler/runner.ts';
import type { PassInfo } from '../../manager/scheduler/runner.ts';
import type { Draft, Node } from '../../api/objects.ts';
import { bigService } from '../orchestrator/harness.ts';
import { until } from '../helpers/dispatcher-server.ts';

test('settled(): at once when idle, at the end of the outermost burst, or false at the cap', async () => {
  const b = new WriteBurst();
  assert.equal(b.active, false);
  assert.equal(await b.settled(1_000), true);
  b.begin();
  b.begin();
  let ended: boolean | null = null;
  void b.settled(5_000).then((v) => (ended = v));
  b.end();
  await new Promise((r) => setImmediate(r));
  assert.equal(ended, null, 'the inner end() is not the end');
  assert.equal(b.active, true);
  b.end();
  await new Promise((r) => setImmediate(r));
  assert.equal(ended, true);
  assert.equal(b.active, false);
  b.end(); // an end() without a begin() does nothing
  assert.equal(b.active, false);
  b.begin();
  const t0 = Date.now();
  assert.equal(await b.settled(30), false, 'the cap came first');
  assert.ok(Date.now() - t0 >= 25);
  b.end();
});

const node = (id: string): Draft<Node> => ({
  id,
  kind: 'node',
  spec: { labels: {}, availability: 'active', role: 'worker' },
  description: {
    hostname: id,
    platform: { os: 'linux', arch: 'x64' },
    resources: { nanoCpus: 4e9, memoryBytes: 8 << 30 },
    engineVersion: '',
    addr: '10.0.0.1',
  },
  status: { state: 'ready', message: '', addr: '10.0.0.1' },
});

/** Orchestrator and scheduler on one store whose commits take a turn of the event loop (as Raft's do). */
async function createAndPlace(burst: WriteBurst | undefined): Promise<{ passes: PassInfo[]; txs: number }> {
  const store: Store = new Store({
    maxTxBytes: 16 * 1024,
    propose: async (data) => {
      await new Promise((r) => setTimeout(r, 2));
      return store.apply({ index: store.index + 1, data });
    },
  });
  await store.update((tx) => {
    for (const id of ['n1', 'n2', 'n3']) tx.create(node(id));
  });
  const passes: PassInfo[] = [];
  const orch = new Orchestrator(store, { burst });
  const sched = new SchedulerRunner(store, { burst, onPass: (p) => passes.push(p) });
  orch.start();
  sched.start();
  try {
    const before = store.index;
    await store.update((tx) => void tx.create(bigService(300)));
    const placed = () => store.view((tx) => tx.tasksByService('big')).filter((t) => t.nodeId !== undefined).length;
    await until(() => placed() === 300, 'all 300 tasks placed', 10_000);
    return { passes: passes.filter((p) => p.assigned > 0), txs: store.index - before };
  } finally {
    orch.stop();
    sched.stop();
  }
}

test("the scheduler places a burst of the orchestrator's transactions in one pass", async () => {
  const alone = await createAndPlace(undefined);
  assert.ok(alone.txs > 10, `the 300 tasks took several transactions (${alone.txs} in all)`);
  assert.ok(alone.passes.length > 1, `without the burst the scheduler placed them in ${alone.passes.length} passes`);
  const together = await createAndPlace(new WriteBurst());
  assert.deepEqual(
    together.passes.map((p) => p.assigned),
    [300],
    'one pass placed all 300 (100 a node, each node written in one run of transactions)',
  );
});
