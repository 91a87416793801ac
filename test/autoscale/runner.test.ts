// The autoscaler's runner against an in-memory store (no Raft): it turns the leader's usage table into
// samples, writes the replica change and status.autoscale in one transaction, re-checks the count it
// decided from, and a manager that (re)gains leadership starts with an empty window.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Service, Task } from '../../api/objects.ts';
import { AutoscaleRunner } from '../../manager/autoscale/runner.ts';
import { Store } from '../../manager/store/store.ts';

const iso = (ms: number) => new Date(ms).toISOString();

function setup(replicas: number, autoscale: Service['spec']['autoscale']) {
  let now = Date.parse('2026-12-06T08:00:00Z');
  const store = new Store({ now: () => new Date(now) });
  const reports = new Map<string, { at: number; cpuPercent?: number; memoryBytes: number }>();
  const runner = new AutoscaleRunner(store, {
    now: () => now,
    usageOf: (id) => {
      const r = reports.get(id);
      return r ? { ...(r.cpuPercent !== undefined ? { cpuPercent: r.cpuPercent } : {}), memoryBytes: r.memoryBytes, at: iso(r.at) } : undefined;
    },
  });
  const h = {
    store,
    runner,
    /** True while the runner's tick runs (its writes, not the test's task bookkeeping). */
    inTick: false,
    get now() {
      return now;
    },
    async create() {
      await store.update((tx) => {
        tx.create({
          id: 'svc',
          kind: 'service',
          spec: { name: 'web', labels: {}, mode: { replicated: { replicas } }, task: { image: 'app:1' }, networks: [], endpoint: { ports: [] }, autoscale },
          specVersion: 1,
          status: {},
        } as never);
      });
      await h.syncTasks();
    },
    service: () => store.view((tx) => tx.get('service', 'svc')) as Service,
    /** Makes the running tasks match the spec's count (what the orchestrator and workers would do). */
    async syncTasks() {
      const want = (h.service().spec.mode as { replicated: { replicas: number } }).replicated.replicas;
      await store.update((tx) => {
        const tasks = tx.tasksByService('svc') as Task[];
        for (let i = tasks.length; i < want; i++) {
          tx.create({
            id: `t${i}`,
            kind: 'task',
            serviceId: 'svc',
            slot: i + 1,
            spec: { image: 'app:1' },
            desiredState: 'running',
            status: { state: 'running', timestamp: iso(now), message: '' },
            serviceAnnotations: { name: 'web', labels: {} },
            networks: [],
          } as never);
        }
        for (const t of tasks.slice(want)) tx.delete('task', t.id);
      });
    },
    /** Advances the clock by `s` seconds, one runner tick per second; every task reports every 5 s. */
    async run(s: number, load: (t: number) => number) {
      for (let i = 0; i < s; i++) {
        now += 1000;
        const tasks = store.view((tx) => tx.tasksByService('svc')) as Task[];
        if (Math.floor(now / 1000) % 5 === 0) {
          for (const t of tasks) {
            const had = reports.has(t.id);
            reports.set(t.id, { at: now, ...(had ? { cpuPercent: load(now) / tasks.length } : {}), memoryBytes: 1e6 });
          }
        }
        h.inTick = true;
        await runner.tick();
        h.inTick = false;
        await h.syncTasks();
      }
    },
  };
  return h;
}

const policy = { min: 1, max: 4, cpu: 50, windowMs: 20_000, cooldowns: { outMs: 5_000, inMs: 5_000 } };

describe('autoscale runner', () => {
  it('scales out under load and back in after it, writing the count and status.autoscale together', async () => {
    const h = setup(1, policy);
    await h.create();
    h.runner.start();
    h.runner.stop(); // leaderSince = now; the test drives ticks itself
    (h.runner as unknown as { leaderSince: number }).leaderSince = h.now;
    await h.run(60, () => 180); // 180% of a core, target 50%: 4 replicas
    const out = h.service();
    assert.equal((out.spec.mode as { replicated: { replicas: number } }).replicated.replicas, 4);
    assert.equal(out.status.autoscale?.to, 4);
    assert.match(out.status.autoscale!.reason, /cpu \d+% of limit \(target 50%\)/);
    assert.equal(out.specVersion, 1, 'a scale is not a new spec version');
    await h.run(90, () => 10);
    const back = h.service();
    assert.equal((back.spec.mode as { replicated: { replicas: number } }).replicated.replicas, 1);
    assert.deepEqual([back.status.autoscale?.from, back.status.autoscale?.to], [2, 1]);
  });

  it('a count changed by someone else between the decision and the write wins', async () => {
    const h = setup(1, policy);
    await h.create();
    (h.runner as unknown as { leaderSince: number }).leaderSince = h.now;
    const realUpdate = h.store.update.bind(h.store);
    let raced = false;
    h.store.update = async (fn) => {
      if (!raced && h.inTick) {
        raced = true;
        await realUpdate((tx) => {
          const s = tx.get('service', 'svc') as Service;
          tx.update({ ...s, spec: { ...s.spec, mode: { replicated: { replicas: 3 } } } } as Service);
        });
      }
      return realUpdate(fn);
    };
    await h.run(30, () => 180);
    const s = h.service();
    // The user's 3 was not overwritten by a decision made from 1 (a later decision may move on from 3).
    assert.ok(raced);
    assert.equal(s.status.autoscale?.from, 3, JSON.stringify(s.status.autoscale));
  });

  it('after a leadership change the runner waits a full window of its own samples before scaling in', async () => {
    const h = setup(4, policy);
    await h.create();
    (h.runner as unknown as { leaderSince: number }).leaderSince = h.now;
    await h.run(15, () => 10);
    assert.equal((h.service().spec.mode as { replicated: { replicas: number } }).replicated.replicas, 4, 'no scale-in before a full window');
    assert.match(h.runner.lastDecision('svc')!.reason, /wants 1, (holding|waiting for a full 20s of usage before scaling in)/);
    // Lose and regain leadership: history and samples are gone, the window starts again.
    h.runner.stop();
    h.runner.start();
    h.runner.stop();
    (h.runner as unknown as { leaderSince: number }).leaderSince = h.now;
    await h.run(15, () => 10);
    assert.equal((h.service().spec.mode as { replicated: { replicas: number } }).replicated.replicas, 4);
    await h.run(20, () => 10);
    assert.ok((h.service().spec.mode as { replicated: { replicas: number } }).replicated.replicas < 4);
  });
});
