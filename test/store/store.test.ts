// The replicated store: transactions, optimistic concurrency checked at apply time, all-or-nothing
// entries, unique names, the size limit and batches, watches (order, filters, overflow), snapshots,
// deterministic replay, secondary indexes and immutability. Everything runs in memory: "managers" are
// several Store replicas fed the same entries by a fake Raft log that can hold and reorder proposals.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { NotLeaderError } from '../../manager/raft/core.ts';
import type { Entry } from '../../manager/raft/types.ts';
import { TASK_STATES, defaultClusterSpec, isTerminalTaskState, mutable, taskStateRank } from '../../api/objects.ts';
import type { Cluster, Draft, Frozen, Kind, Network, Node, Service, Task } from '../../api/objects.ts';
import {
  BatchError,
  ConflictError,
  NameInUseError,
  NotFoundError,
  Store,
  StoreError,
  StoreResetError,
  TX_FORMAT_JSON_V1,
  TxTooLargeError,
  ValidationError,
  WatchOverflowError,
} from '../../manager/store/store.ts';
import type { StoreEvent, WriteTx } from '../../manager/store/store.ts';

// ---------------------------------------------------------------------------------------------- fixtures

const T0 = Date.parse('2025-01-01T00:00:00.000Z');

/** A clock that advances one second per call, so timestamps are predictable. */
function clock(start = T0): () => Date {
  let t = start;
  return () => new Date((t += 1000));
}

function service(id: string, name: string, replicas = 1): Draft<Service> {
  return {
    id,
    kind: 'service',
    spec: {
      name,
      labels: {},
      mode: { replicated: { replicas } },
      task: { image: 'busybox:1.36', command: ['sleep', 'infinity'] },
      networks: [],
      endpoint: { ports: [] },
    },
    specVersion: 1,
    status: {},
  };
}

function node(id: string, hostname: string): Draft<Node> {
  return {
    id,
    kind: 'node',
    spec: { labels: {}, availability: 'active', role: 'worker' },
    description: {
      hostname,
      platform: { os: 'linux', arch: 'x86_64' },
      resources: { nanoCpus: 4e9, memoryBytes: 8 * 2 ** 30 },
      engineVersion: '0.1.0',
      addr: '10.0.0.1',
    },
    status: { state: 'ready', message: '', addr: '10.0.0.1' },
  };
}

function task(id: string, serviceId: string, slot: number | undefined, nodeId?: string): Draft<Task> {
  const t: Draft<Task> = {
    id,
    kind: 'task',
    serviceId,
    spec: { image: 'busybox:1.36' },
    desiredState: 'running',
    status: { state: 'new', timestamp: new Date(T0).toISOString(), message: 'created' },
    serviceAnnotations: { name: 'web', labels: {} },
    networks: [],
  };
  if (slot !== undefined) t.slot = slot;
  if (nodeId !== undefined) t.nodeId = nodeId;
  return t;
}

function network(id: string, name: string): Draft<Network> {
  return {
    id,
    kind: 'network',
    spec: { name, driver: 'overlay', labels: {}, ipam: { configs: [] }, attachable: false, internal: false },
    status: {},
  };
}

function cluster(): Draft<Cluster> {
  return {
    id: 'cluster',
    kind: 'cluster',
    spec: defaultClusterSpec('shoal'),
    status: {},
    rootCa: { caCertPem: 'CERT', caKeyPem: 'KEY' },
    joinTokens: { worker: 'SWMTKN-w', manager: 'SWMTKN-m' },
    denyList: { removedNodes: [], revokedSerials: [] },
  };
}

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

/**
 * A fake Raft log shared by several Store replicas ("managers"). Proposals are held until deliver(),
 * which appends them in the order asked for and applies every new entry to every replica in log order;
 * the proposer's promise gets its own replica's apply() result, as RaftNode does.
 */
class FakeRaft {
  readonly replicas: Store[] = [];
  readonly log: Entry[] = [];
  private pending: { from: number; data: Uint8Array; resolve: (v: unknown) => void; reject: (e: unknown) => void }[] = [];
  proposals = 0;

  /** A new replica whose proposals go through this log. */
  replica(now: () => Date = clock()): Store {
    const from = this.replicas.length;
    const s = new Store({
      now,
      propose: (data) =>
        new Promise((resolve, reject) => {
          this.proposals++;
          this.pending.push({ from, data, resolve, reject });
        }),
    });
    this.replicas.push(s);
    return s;
  }

  get held(): number {
    return this.pending.length;
  }

  /**
   * Appends held proposals (all, in arrival order, or those at `order` positions in that order). Waits
   * a turn first: update() proposes only after its transaction function's microtask.
   */
  async deliver(order?: number[]): Promise<void> {
    await tick();
    const all = this.pending;
    const picked = order ? order.map((i) => all[i]!) : all;
    this.pending = order ? all.filter((_, i) => !order.includes(i)) : [];
    for (const p of picked) {
      const e: Entry = { index: this.log.length + 1, term: 1, type: 'normal', data: p.data };
      this.log.push(e);
      let result: unknown;
      this.replicas.forEach((r, i) => {
        const res = r.apply(e);
        if (i === p.from) result = res;
      });
      p.resolve(result);
    }
  }

  /** Appends an entry that no replica proposed (a no-op or a membership change). */
  appendRaw(type: Entry['type'], data: Uint8Array): void {
    const e: Entry = { index: this.log.length + 1, term: 1, type, data };
    this.log.push(e);
    for (const r of this.replicas) r.apply(e);
  }

  /** Fails the held proposal at `i` (e.g. leadership lost). */
  fail(i: number, err: unknown): void {
    const [p] = this.pending.splice(i, 1);
    p!.reject(err);
  }
}

/** Waits until the fake log holds `n` proposals (update() proposes after fn's microtask). */
async function held(raft: FakeRaft, n: number): Promise<void> {
  for (let i = 0; i < 100 && raft.held < n; i++) await tick();
  assert.equal(raft.held, n, 'proposals held');
}

function snap(s: Store): string {
  return Buffer.from(s.snapshot()).toString('utf8');
}

/** Recomputes every secondary index from scratch and compares with the store's lookups. */
function checkIndexes(s: Store): void {
  s.view((tx) => {
    const tasks = tx.list('task');
    const byService = new Map<string, string[]>();
    const byNode = new Map<string, string[]>();
    const bySlot = new Map<string, string[]>();
    const push = (m: Map<string, string[]>, k: string, id: string) => m.set(k, [...(m.get(k) ?? []), id]);
    for (const t of tasks) {
      push(byService, t.serviceId, t.id);
      if (t.nodeId !== undefined) push(byNode, t.nodeId, t.id);
      if (t.slot !== undefined) push(bySlot, `${t.serviceId}/${t.slot}`, t.id);
    }
    const ids = (xs: readonly { id: string }[]) => xs.map((x) => x.id).sort();
    for (const [k, v] of byService) assert.deepEqual(ids(tx.tasksByService(k)), v.sort(), `tasksByService(${k})`);
    for (const [k, v] of byNode) assert.deepEqual(ids(tx.tasksByNode(k)), v.sort(), `tasksByNode(${k})`);
    for (const [k, v] of bySlot) {
      const [svc, slot] = k.split('/');
      assert.deepEqual(ids(tx.tasksBySlot(svc!, Number(slot))), v.sort(), `tasksBySlot(${k})`);
    }
    for (const svc of tx.list('service')) {
      const running = tasks.filter((t) => t.serviceId === svc.id && t.desiredState === 'running' && t.status.state === 'running').length;
      assert.equal(tx.runningTasks(svc.id), running, `runningTasks(${svc.id})`);
      assert.equal(tx.byName('service', svc.spec.name)?.id, svc.id);
      assert.equal(tx.byName('service', svc.spec.name.toUpperCase())?.id, svc.id);
      if (!byService.has(svc.id)) assert.deepEqual(tx.tasksByService(svc.id), []);
    }
    for (const n of tx.list('node')) {
      if (!byNode.has(n.id)) assert.deepEqual(tx.tasksByNode(n.id), []);
    }
  });
}

// ------------------------------------------------------------------------------------------ object model

test('task states are ordered and ranked', () => {
  assert.deepEqual(TASK_STATES, [
    'new',
    'pending',
    'assigned',
    'accepted',
    'preparing',
    'starting',
    'running',
    'complete',
    'shutdown',
    'failed',
    'rejected',
    'remove',
    'orphaned',
  ]);
  TASK_STATES.forEach((s, i) => {
    assert.equal(taskStateRank(s), i);
  });
  assert.ok(taskStateRank('running') < taskStateRank('complete'));
  assert.ok(isTerminalTaskState('failed') && !isTerminalTaskState('running'));
  assert.throws(() => taskStateRank('bogus' as never), RangeError);
});

// ---------------------------------------------------------------------------------------- transactions

test('a transaction commits and is visible, with versions and timestamps assigned by the store', async () => {
  const s = new Store({ now: clock() });
  assert.equal(s.index, 0);
  const idx = await s.update((tx) => {
    tx.create({ ...service('s1', 'web'), version: 99, createdAt: 'bogus' });
    tx.create(node('n1', 'host-1'));
    tx.create(cluster());
  });
  assert.equal(idx, 1);
  assert.equal(s.index, 1);
  const svc = s.view((tx) => tx.get('service', 's1'))!;
  assert.equal(svc.version, 1, 'version = commit index, caller value ignored');
  assert.equal(svc.createdAt, '2025-01-01T00:00:01.000Z', 'timestamp from the transaction clock');
  assert.equal(svc.updatedAt, svc.createdAt);
  assert.deepEqual(Object.keys(svc).slice(0, 5), ['id', 'kind', 'version', 'createdAt', 'updatedAt']);
  assert.equal(s.view((tx) => tx.byName('node', 'HOST-1'))?.id, 'n1');
  assert.equal(s.view((tx) => tx.get('cluster', 'cluster'))?.spec.taskHistoryLimit, 5);

  const idx2 = await s.update((tx) => {
    tx.modify('service', 's1', (d) => {
      d.spec.labels['tier'] = 'front';
    });
  });
  assert.equal(idx2, 2);
  const svc2 = s.view((tx) => tx.get('service', 's1'))!;
  assert.equal(svc2.version, 2);
  assert.equal(svc2.createdAt, svc.createdAt, 'createdAt kept');
  assert.equal(svc2.updatedAt, '2025-01-01T00:00:02.000Z');
  assert.equal(svc2.spec.labels['tier'], 'front');
  assert.equal(svc.spec.labels['tier'], undefined, 'the old snapshot object is unchanged');

  // Nothing written: nothing proposed, current index returned.
  assert.equal(await s.update((tx) => void tx.get('service', 's1')), 2);
  assert.equal(s.index, 2);

  // Delete.
  assert.equal(await s.update((tx) => tx.delete('node', 'n1')), 3);
  assert.equal(
    s.view((tx) => tx.get('node', 'n1')),
    undefined,
  );
  assert.equal(
    s.view((tx) => tx.byName('node', 'host-1')),
    undefined,
  );
});

test('a transaction reads its own writes (get, list, find, byName, task indexes), others do not until commit', async () => {
  const s = new Store({ now: clock() });
  await s.update((tx) => {
    tx.create(service('s1', 'web'));
    tx.create(task('t1', 's1', 1, 'n1'));
    tx.create(task('t2', 's1', 2, 'n1'));
  });
  let inside: string[] = [];
  const p = s.update((tx) => {
    tx.create(service('s2', 'api'));
    tx.create(task('t3', 's2', 1, 'n2'));
    tx.modify('task', 't1', (t) => {
      t.nodeId = 'n2';
    });
    tx.delete('task', 't2');
    assert.equal(tx.get('service', 's2')?.spec.name, 'api');
    assert.equal(tx.get('service', 's2')?.version, 0, 'pending objects have version 0');
    assert.equal(tx.byName('service', 'API')?.id, 's2');
    assert.equal(tx.get('task', 't2'), undefined);
    assert.deepEqual(
      tx
        .tasksByNode('n2')
        .map((t) => t.id)
        .sort(),
      ['t1', 't3'],
    );
    assert.deepEqual(tx.tasksByNode('n1'), []);
    assert.deepEqual(
      tx.tasksByService('s1').map((t) => t.id),
      ['t1'],
    );
    assert.deepEqual(tx.tasksBySlot('s1', 2), []);
    assert.deepEqual(
      tx.list('task').map((t) => t.id),
      ['t1', 't3'],
    );
    assert.equal(tx.find('task', (t) => t.serviceId === 's2')?.id, 't3');
    // Recreate: delete then create the same id in one transaction.
    tx.delete('service', 's2');
    assert.equal(tx.byName('service', 'api'), undefined);
    tx.create(service('s2', 'api2'));
    // Update an object created in this transaction (its pending version is 0).
    const s2 = mutable(tx.get('service', 's2')!);
    s2.spec.labels['x'] = 'y';
    tx.update(s2);
    inside = s.view((r) => r.list('task').map((t) => t.id));
  });
  assert.deepEqual(inside, ['t1', 't2'], 'outside readers do not see uncommitted writes');
  const idx = await p;
  s.view((tx) => {
    assert.deepEqual(
      tx.list('task').map((t) => [t.id, t.nodeId]),
      [
        ['t1', 'n2'],
        ['t3', 'n2'],
      ],
    );
    const s2 = tx.get('service', 's2')!;
    assert.equal(s2.spec.name, 'api2');
    assert.equal(s2.spec.labels['x'], 'y');
    assert.equal(s2.version, idx);
    assert.equal(tx.byName('service', 'api'), undefined);
  });
  checkIndexes(s);
});

test('writes fail eagerly with the right errors and leave the transaction unchanged', async () => {
  const s = new Store({ now: clock() });
  await s.update((tx) => {
    tx.create(service('s1', 'web'));
  });
  const stale = s.view((tx) => tx.get('service', 's1'))!;
  await s.update((tx) => tx.modify('service', 's1', (d) => void (d.specVersion = 2)));
  await s.update((tx) => {
    assert.throws(
      () => tx.create(service('s1', 'other')),
      (e: unknown) => e instanceof ConflictError && /service s1 already exists/.test(e.message),
    );
    const err = (() => {
      try {
        tx.update(stale);
      } catch (e) {
        return e;
      }
      return null;
    })();
    assert.ok(err instanceof ConflictError);
    assert.equal(err.kind, 'service');
    assert.equal(err.id, 's1');
    assert.equal(err.expected, 1);
    assert.equal(err.actual, 2);
    assert.match(err.message, /service s1 .*version 1 .*version 2/);
    assert.throws(
      () => tx.create(service('s9', 'WEB')),
      (e: unknown) => e instanceof NameInUseError && e.message === 'service name WEB is already in use',
    );
    assert.throws(() => tx.delete('task', 'nope'), NotFoundError);
    assert.throws(() => tx.modify('task', 'nope', () => {}), NotFoundError);
    assert.throws(() => tx.delete('service', 's1', 1), ConflictError);
    assert.throws(() => tx.create({ ...service('', 'x') }), ValidationError);
    assert.throws(() => tx.create({ ...cluster(), id: 'other' } as Draft<Cluster>), ValidationError);
    assert.throws(() => tx.create({ ...task('t', 's1', 1), desiredState: 'bogus' } as unknown as Draft<Task>), ValidationError);
    assert.throws(() => tx.create({ ...service('s8', 'x'), when: new Date() } as unknown as Draft<Service>), /not a plain object/);
    assert.throws(() => tx.create({ ...service('s8', 'x'), n: NaN } as unknown as Draft<Service>), /not valid JSON/);
    assert.throws(() => tx.create({ ...service('s8', 'x'), n: 1n } as unknown as Draft<Service>), ValidationError);
    // The path names the value, however deep (it is built only for the error).
    assert.throws(
      () =>
        tx.create({ ...service('s8', 'x'), spec: { ...service('s8', 'x').spec, task: { image: 'a', env: ['A=1', undefined] } } } as unknown as Draft<Service>),
      (e: unknown) => e instanceof ValidationError && e.message === 'service.spec.task.env[1]: undefined in an array',
    );
    assert.throws(
      () => tx.create({ ...service('s8', 'x'), labels: { deep: { n: Number.POSITIVE_INFINITY } } } as unknown as Draft<Service>),
      (e: unknown) => e instanceof ValidationError && e.message === 'service.labels.deep.n: Infinity is not valid JSON',
    );
    assert.deepEqual(
      tx.list('service').map((x) => x.id),
      ['s1'],
    );
  });
  assert.equal(s.index, 2, 'a transaction without successful writes proposes nothing');
});

test('a throwing transaction function proposes nothing; writes after update() returned are refused', async () => {
  let proposals = 0;
  const s = new Store({
    now: clock(),
    propose: async () => {
      proposals++;
      return 1;
    },
  });
  await assert.rejects(
    s.update((tx) => {
      tx.create(service('s1', 'web'));
      throw new Error('boom');
    }),
    /boom/,
  );
  await assert.rejects(
    s.update(async (tx) => {
      tx.create(service('s1', 'web'));
      await tick();
      throw new Error('async boom');
    }),
    /async boom/,
  );
  assert.equal(proposals, 0);

  const local = new Store({ now: clock() });
  let leaked: WriteTx | undefined;
  await local.update((tx) => {
    leaked = tx;
    tx.create(service('s1', 'web'));
  });
  assert.throws(() => leaked!.create(service('s2', 'api')), StoreError);
  assert.equal(
    local.view((tx) => tx.get('service', 's2')),
    undefined,
  );
});

// ------------------------------------------------------------------------------------ conflicts at apply

test('two managers update the same object concurrently: exactly one wins, whatever the log order', async () => {
  for (const order of [
    [0, 1],
    [1, 0],
  ]) {
    const raft = new FakeRaft();
    const a = raft.replica();
    const b = raft.replica();
    const c = raft.replica(); // a follower that only applies
    const seed = a.update((tx) => void tx.create(service('s1', 'web', 1)));
    await raft.deliver();
    assert.equal(await seed, 1);

    const pa = a.update((tx) => void tx.modify('service', 's1', (d) => void (d.spec.mode = { replicated: { replicas: 3 } })));
    const pb = b.update((tx) => void tx.modify('service', 's1', (d) => void (d.spec.mode = { replicated: { replicas: 5 } })));
    await held(raft, 2);
    await raft.deliver(order);
    const [ra, rb] = await Promise.allSettled([pa, pb]);
    const winner = order[0] === 0 ? ra : rb;
    const loser = order[0] === 0 ? rb : ra;
    assert.equal(winner.status, 'fulfilled');
    assert.equal(loser.status, 'rejected');
    const err = (loser as PromiseRejectedResult).reason as unknown;
    assert.ok(err instanceof ConflictError, String(err));
    assert.equal(err.kind, 'service');
    assert.equal(err.id, 's1');
    assert.equal(err.expected, 1);
    assert.equal(err.actual, 2);
    const replicas = order[0] === 0 ? 3 : 5;
    for (const r of raft.replicas) {
      const svc = r.view((tx) => tx.get('service', 's1'))!;
      assert.deepEqual(svc.spec.mode, { replicated: { replicas } });
      assert.equal(svc.version, 2);
      assert.equal(r.index, 3, 'the failed entry is applied as a no-op');
    }
    assert.equal(snap(a), snap(b));
    assert.equal(snap(a), snap(c));
  }
});

/** A proposer `a` and a follower `b` (which decodes every entry from its bytes); `write` commits through `a`. */
function proposerAndFollower(): { a: Store; b: Store; write: (fn: (tx: WriteTx) => void) => Promise<void> } {
  const raft = new FakeRaft();
  const a = raft.replica();
  const b = raft.replica();
  const write = async (fn: (tx: WriteTx) => void): Promise<void> => {
    const p = a.update(fn);
    await raft.deliver();
    await p;
  };
  return { a, b, write };
}

test("the proposer applies its own transactions without decoding them, to exactly the followers' state", async () => {
  const { a, b, write } = proposerAndFollower();
  await write((tx) => {
    tx.create(service('s1', 'web'));
    tx.create(node('n1', 'h1'));
    // Values JSON drops or changes, and a key named __proto__: the follower decodes what the JSON says,
    // and so must the proposer's copy be.
    const odd = { ...task('t1', 's1', 1, 'n1'), extra: undefined, list: [1, -0, 3] } as unknown as Draft<Task>;
    Object.defineProperty(odd.spec, '__proto__', { value: { polluted: true }, enumerable: true, configurable: true, writable: true });
    tx.create(odd);
    tx.create(task('t2', 's1', 2, 'n1'));
  });
  await write((tx) => {
    tx.modify('task', 't1', (d) => void (d.status.state = 'running'));
    tx.delete('task', 't2');
    tx.create(task('t2', 's1', 2)); // deleted and created again in one transaction
    tx.modify('node', 'n1', (d) => void (d.spec.labels['zone'] = 'eu'));
  });
  await write((tx) => void tx.delete('node', 'n1'));
  assert.equal(a.ownApplied, 3, 'the proposer decoded none of its three transactions');
  assert.equal(b.ownApplied, 0);
  for (const kind of ['service', 'node', 'task'] as const) {
    const mine = a.view((tx) => tx.list(kind));
    const theirs = b.view((tx) => tx.list(kind));
    assert.equal(JSON.stringify(mine), JSON.stringify(theirs), `${kind}: the same objects, fields in the same order`);
    assert.deepEqual(mine, theirs);
  }
  const t1 = a.view((tx) => tx.get('task', 't1'))! as unknown as { list: unknown[]; extra?: unknown; spec: object };
  assert.ok(Object.is(t1.list[1], 0), '-0 is written as 0');
  assert.equal('extra' in t1, false);
  assert.equal(Object.getPrototypeOf(t1.spec), Object.prototype, 'a __proto__ field is data, not a prototype');
  assert.equal(snap(a), snap(b));
});

test("a write that keeps a task's stored spec keeps the pooled object itself, on the proposer and in its entry", async () => {
  const { a, b, write } = proposerAndFollower();
  await write((tx) => {
    tx.create(service('s1', 'web'));
    for (const id of ['t1', 't2']) tx.create(task(id, 's1', id === 't1' ? 1 : 2));
  });
  const spec = (st: Store, id: string) => st.view((tx) => tx.get('task', id)!.spec);
  assert.equal(spec(a, 't1'), spec(a, 't2'), 'pooled at apply');
  const pooled = spec(a, 't1');
  // Status writes as the dispatcher makes them: the stored task spread, its spec the pooled object.
  await write((tx) => {
    for (const id of ['t1', 't2']) {
      const t = tx.get('task', id)!;
      const next = tx.update({ ...t, status: { ...t.status, state: 'running' } });
      assert.equal(next.spec, pooled, "the transaction's own copy holds the pooled spec");
    }
  });
  assert.equal(spec(a, 't1'), pooled, 'still the same object after the apply');
  assert.equal(spec(a, 't2'), pooled);
  assert.deepEqual(spec(b, 't1'), pooled, 'the follower decoded the same value');
  assert.equal(snap(a), snap(b));
  // An equal spec that is a new object (not the pool's) is still checked and pooled by its JSON.
  await write((tx) => {
    const t = tx.get('task', 't1')!;
    tx.update({ ...t, spec: JSON.parse(JSON.stringify(t.spec)) });
  });
  assert.equal(spec(a, 't1'), pooled);
  assert.equal(snap(a), snap(b));
});

test('concurrent transactions of one manager are checked at apply too (pipelined proposals)', async () => {
  const raft = new FakeRaft();
  const a = raft.replica();
  const seed = a.update((tx) => void tx.create(node('n1', 'h1')));
  await raft.deliver();
  await seed;
  // Both read version 1 before either is applied, so both pass the eager check.
  const p1 = a.update((tx) => void tx.modify('node', 'n1', (d) => void (d.spec.availability = 'drain')));
  const p2 = a.update((tx) => void tx.modify('node', 'n1', (d) => void (d.spec.availability = 'pause')));
  const p3 = a.update((tx) => tx.delete('node', 'n1'));
  await held(raft, 3);
  await raft.deliver([2, 0, 1]);
  const results = await Promise.allSettled([p1, p2, p3]);
  assert.deepEqual(
    results.map((r) => r.status),
    ['rejected', 'rejected', 'fulfilled'],
  );
  for (const r of results.slice(0, 2)) {
    const e = (r as PromiseRejectedResult).reason as ConflictError;
    assert.ok(e instanceof ConflictError);
    assert.equal(e.actual, null);
    assert.match(e.message, /node n1 .* no longer exists/);
  }
  assert.equal(
    a.view((tx) => tx.get('node', 'n1')),
    undefined,
  );
});

test('an entry is all-or-nothing: one failed precondition discards every write, and emits no events', async () => {
  const raft = new FakeRaft();
  const a = raft.replica();
  const b = raft.replica();
  const seed = a.update((tx) => {
    tx.create(node('n1', 'h1'));
    tx.create(service('s1', 'web'));
  });
  await raft.deliver();
  await seed;
  const events: StoreEvent[] = [];
  const unwatch = b.watch(undefined, (ev) => void events.push(ev));

  const big = a.update((tx) => {
    tx.create(service('s2', 'api'));
    tx.create(task('t1', 's2', 1, 'n1'));
    tx.modify('service', 's1', (d) => void (d.specVersion = 7));
    tx.modify('node', 'n1', (d) => void (d.spec.availability = 'pause'));
  });
  const racer = b.update((tx) => void tx.modify('node', 'n1', (d) => void (d.spec.labels['zone'] = 'a')));
  await held(raft, 2);
  await raft.deliver([1, 0]);
  await racer;
  await assert.rejects(big, (e: unknown) => e instanceof ConflictError && e.kind === 'node' && e.id === 'n1');
  await tick();
  for (const r of raft.replicas) {
    r.view((tx) => {
      assert.equal(tx.get('service', 's2'), undefined);
      assert.equal(tx.get('task', 't1'), undefined);
      assert.equal(tx.get('service', 's1')?.specVersion, 1);
      assert.equal(tx.byName('service', 'api'), undefined);
      assert.deepEqual(tx.tasksByNode('n1'), []);
      assert.equal(tx.get('node', 'n1')?.spec.labels['zone'], 'a');
    });
    checkIndexes(r);
  }
  assert.deepEqual(
    events.map((e) => [e.type, e.kind, e.object.id, e.index]),
    [['update', 'node', 'n1', 2]],
  );
  unwatch();
});

test('unique names: per kind, case-insensitive, checked again at apply and against the final state of the entry', async () => {
  const raft = new FakeRaft();
  const a = raft.replica();
  const b = raft.replica();
  const pa = a.update((tx) => void tx.create(service('s1', 'web')));
  const pb = b.update((tx) => void tx.create(service('s2', 'Web')));
  const pn = b.update((tx) => void tx.create(network('w1', 'web'))); // another kind: allowed
  await held(raft, 3);
  await raft.deliver();
  assert.equal(await pa, 1);
  await assert.rejects(pb, (e: unknown) => e instanceof NameInUseError && e.message === 'service name Web is already in use');
  assert.equal(await pn, 3);
  // Once applied, the clash is caught eagerly, before proposing.
  const before = raft.proposals;
  await assert.rejects(
    a.update((tx) => void tx.create(network('w2', 'WEB'))),
    /network name WEB is already in use/,
  );
  assert.equal(raft.proposals, before);

  // Swap two names inside one transaction through a temporary name: every step is legal in the
  // transaction's own view and the final state is unique.
  const seed = a.update((tx) => void tx.create(service('s3', 'api')));
  await raft.deliver();
  await seed;
  const swap = a.update((tx) => {
    tx.modify('service', 's1', (d) => void (d.spec.name = 'tmp'));
    tx.modify('service', 's3', (d) => void (d.spec.name = 'web'));
    tx.modify('service', 's1', (d) => void (d.spec.name = 'api'));
  });
  await held(raft, 1);
  await raft.deliver();
  await swap;
  for (const r of raft.replicas) {
    assert.equal(r.view((tx) => tx.byName('service', 'web'))?.id, 's3');
    assert.equal(r.view((tx) => tx.byName('service', 'api'))?.id, 's1');
    assert.equal(
      r.view((tx) => tx.byName('service', 'tmp')),
      undefined,
    );
    checkIndexes(r);
  }
  // A rename racing with a create of the old name from another manager.
  const rename = a.update((tx) => void tx.modify('service', 's3', (d) => void (d.spec.name = 'front')));
  const reuse = b.update((tx) => void tx.create(service('s4', 'front')));
  await held(raft, 2);
  await raft.deliver([1, 0]);
  await reuse;
  await assert.rejects(rename, NameInUseError);
  assert.equal(snap(a), snap(b));
});

test('a proposer error (leader lost) reaches the caller unchanged and changes nothing', async () => {
  const raft = new FakeRaft();
  const a = raft.replica();
  const p = a.update((tx) => void tx.create(service('s1', 'web')));
  await held(raft, 1);
  raft.fail(0, new NotLeaderError('m2'));
  await assert.rejects(p, (e: unknown) => e instanceof NotLeaderError && e.leader === 'm2');
  assert.equal(a.index, 0);
  assert.equal(
    a.view((tx) => tx.list('service').length),
    0,
  );

  const refusing = new Store({ propose: () => Promise.reject(new NotLeaderError(null)) });
  await assert.rejects(
    refusing.update((tx) => void tx.create(node('n1', 'h'))),
    NotLeaderError,
  );
});

test('apply ignores empty, membership and already-applied entries; a malformed entry is a no-op error', async () => {
  const raft = new FakeRaft();
  const a = raft.replica();
  const b = raft.replica();
  raft.appendRaw('normal', new Uint8Array(0)); // a new leader's no-op
  raft.appendRaw('conf', new TextEncoder().encode('{"type":"addVoter","node":"m3"}'));
  assert.equal(a.index, 2);
  const p = a.update((tx) => void tx.create(service('s1', 'web')));
  await held(raft, 1);
  await raft.deliver();
  assert.equal(await p, 3);
  // Re-applying an old entry (replay after a snapshot) does nothing.
  assert.equal(a.apply(raft.log[2]!), undefined);
  assert.equal(a.view((tx) => tx.get('service', 's1'))?.version, 3);

  const junk = a.apply({ index: 4, data: new Uint8Array([0x7f, 1, 2]) });
  assert.ok(junk instanceof ValidationError);
  const junk2 = a.apply({ index: 5, data: new Uint8Array([TX_FORMAT_JSON_V1, 0x7b]) });
  assert.ok(junk2 instanceof ValidationError);
  const bad = new TextEncoder().encode('{"ts":"x","ops":[{"op":"create","object":{"id":"s","kind":"service","spec":{},"status":{}}}]}');
  const junk3 = a.apply({ index: 6, data: new Uint8Array([TX_FORMAT_JSON_V1, ...bad]) });
  assert.ok(junk3 instanceof ValidationError);
  assert.equal(a.index, 6);
  assert.equal(
    a.view((tx) => tx.list('service').length),
    1,
  );
  void b;
});

// ----------------------------------------------------------------------------------------- size, batches

test('a transaction over the size limit is refused before it is proposed', async () => {
  let proposals = 0;
  const s = new Store({
    now: clock(),
    propose: async () => {
      proposals++;
      return 1;
    },
  });
  // Four objects of 0.4 MiB: each under the cluster's object-size limit (limits.ts), together over the
  // transaction limit. Padded in env, which has no limit of its own (labels do).
  const huge = [1, 2, 3, 4].map((i) => {
    const x = service(`s${i}`, `web${i}`);
    x.spec.task.env = [`BLOB=${'x'.repeat(0.4 * 1024 * 1024)}`];
    return x;
  });
  const err = await s
    .update((tx) => {
      for (const x of huge) tx.create(x);
    })
    .catch((e: unknown) => e);
  assert.ok(err instanceof TxTooLargeError, String(err));
  assert.equal(err.limit, 1.5 * 1024 * 1024);
  assert.ok(err.size > err.limit);
  assert.match(err.message, /above the 1572864-byte limit/);
  assert.equal(proposals, 0);

  // Exactly at the limit is fine; one byte less of limit is not (the size is the exact encoded size).
  const sizes: number[] = [];
  const probe = new Store({
    now: () => new Date(T0),
    propose: async (d) => {
      sizes.push(d.length);
      return 1;
    },
  });
  const fill = (n: number) => {
    const x = service('s1', 'web');
    x.spec.labels['pad'] = 'é'.repeat(n); // 2 UTF-8 bytes each
    return x;
  };
  await probe.update((tx) => void tx.create(fill(0)));
  const base = sizes[0]!;
  const n = Math.floor((4000 - base) / 2);
  const exact = new Store({ now: () => new Date(T0), maxTxBytes: base + 2 * n });
  await exact.update((tx) => void tx.create(fill(n)));
  const tight = new Store({ now: () => new Date(T0), maxTxBytes: base + 2 * n - 1 });
  await assert.rejects(
    tight.update((tx) => void tx.create(fill(n))),
    TxTooLargeError,
  );
});

test('batch splits 10,000 task creations into several transactions, each under the limit', async () => {
  const sizes: number[] = [];
  let index = 0;
  const s: Store = new Store({
    now: clock(),
    propose: async (d) => {
      sizes.push(d.length);
      return s.apply({ index: ++index, data: d });
    },
  });
  await s.update((tx) => void tx.create(service('s1', 'web', 10_000)));
  const slots = Array.from({ length: 10_000 }, (_, i) => i + 1);
  const indexes = await s.batch(slots, (tx, slot) => {
    tx.create(task(`t${slot}`, 's1', slot, `n${slot % 7}`));
  });
  assert.ok(indexes.length >= 2, `${indexes.length} transactions`);
  assert.deepEqual(
    indexes,
    Array.from({ length: indexes.length }, (_, i) => i + 2),
  );
  for (const size of sizes) assert.ok(size <= s.maxTxBytes, `${size} bytes`);
  assert.equal(sizes.length, 1 + indexes.length);
  s.view((tx) => {
    assert.equal(tx.tasksByService('s1').length, 10_000);
    assert.equal(tx.tasksBySlot('s1', 9_999)[0]?.id, 't9999');
    assert.equal(tx.tasksByNode('n3').length, slots.filter((x) => x % 7 === 3).length);
  });
  checkIndexes(s);
});

test('batch: an item that throws stops the batch after committing the items before it', async () => {
  const s = new Store({ now: clock(), maxTxBytes: 1500 });
  await s.update((tx) => void tx.create(service('s1', 'web')));
  const err = await s
    .batch([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], (tx, i) => {
      tx.create(task(`t${i}`, 's1', i));
      if (i === 8) throw new Error('item 8 is bad');
    })
    .catch((e: unknown) => e);
  assert.ok(err instanceof BatchError, String(err));
  assert.equal(err.itemsCommitted, 7);
  assert.match(err.message, /item 8 is bad/);
  assert.ok(err.indexes.length >= 2, 'several transactions were needed');
  assert.deepEqual(
    s.view((tx) => tx.tasksByService('s1').map((t) => t.slot)),
    [1, 2, 3, 4, 5, 6, 7],
  );
  // One item alone too large: TxTooLargeError.
  await assert.rejects(
    s.batch([1], (tx) => {
      const x = service('big', 'big');
      x.spec.task.env = [`PAD=${'x'.repeat(5000)}`];
      tx.create(x);
    }),
    TxTooLargeError,
  );
});

// ------------------------------------------------------------------------------------------------ watch

test('watch delivers every event after apply, in commit order, across many transactions and kinds', async () => {
  const s = new Store({ now: clock() });
  const got: StoreEvent[] = [];
  let seenIndexAtDelivery = Infinity;
  const unwatch = s.watch(undefined, (ev) => {
    seenIndexAtDelivery = Math.min(seenIndexAtDelivery, s.index - ev.index);
    got.push(ev);
  });
  // Random workload; a mirror rebuilt from the events must equal the store.
  let seed = 7;
  const rnd = (n: number) => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed % n;
  };
  const commits: number[] = [];
  for (let i = 0; i < 200; i++) {
    commits.push(
      await s.update((tx) => {
        const ops = 1 + rnd(4);
        for (let j = 0; j < ops; j++) {
          const pick = rnd(6);
          const nodes = tx.list('node');
          const tasks = tx.list('task');
          if (pick === 0 || nodes.length === 0) tx.create(node(`n${i}.${j}`, `h${i}.${j}`));
          else if (pick === 1) tx.create(service(`s${i}.${j}`, `svc${i}.${j}`));
          else if (pick === 2) tx.create(task(`t${i}.${j}`, 's', j, nodes[rnd(nodes.length)]!.id));
          else if (pick === 3 && tasks.length > 0) {
            const t = tasks[rnd(tasks.length)]!;
            const to = nodes[rnd(nodes.length)]!.id;
            tx.modify('task', t.id, (d) => void (d.nodeId = to));
          } else if (pick === 4 && tasks.length > 0) tx.delete('task', tasks[rnd(tasks.length)]!.id);
          else tx.create(network(`w${i}.${j}`, `net${i}.${j}`));
        }
      }),
    );
  }
  await tick();
  unwatch();
  assert.equal(seenIndexAtDelivery, 0, 'a handler runs after the apply of its entry');
  for (let i = 1; i < got.length; i++) assert.ok(got[i]!.index >= got[i - 1]!.index, 'commit order');
  assert.deepEqual(
    [...new Set(got.map((e) => e.index))],
    commits.filter((c, i) => commits.indexOf(c) === i),
  );
  const mirror = new Map<string, unknown>();
  for (const ev of got) {
    const key = `${ev.kind}/${ev.object.id}`;
    if (ev.type === 'delete') {
      assert.ok(mirror.has(key));
      mirror.delete(key);
    } else {
      if (ev.type === 'create') assert.ok(!mirror.has(key));
      else assert.deepEqual(ev.old, mirror.get(key), 'old = the previous event object');
      assert.equal(ev.object.version, ev.index);
      mirror.set(key, ev.object);
    }
  }
  const all = s.view((tx) => (['node', 'service', 'task', 'network'] as Kind[]).flatMap((k) => tx.list(k)));
  assert.equal(mirror.size, all.length);
  for (const o of all) assert.deepEqual(mirror.get(`${o.kind}/${o.id}`), o);
  checkIndexes(s);
});

test('filtered watches: by kind and by predicate; unsubscribe stops delivery', async () => {
  const s = new Store({ now: clock() });
  const tasksOnly: StoreEvent[] = [];
  const onN1: string[] = [];
  const off1 = s.watch({ kinds: ['task'] }, (ev) => void tasksOnly.push(ev));
  const off2 = s.watch(
    { kinds: ['task'], predicate: (ev) => (ev.object as Frozen<Task>).nodeId === 'n1' },
    (ev) => void onN1.push(`${ev.type}:${ev.object.id}`),
  );
  await s.update((tx) => {
    tx.create(service('s1', 'web'));
    tx.create(node('n1', 'h1'));
    tx.create(task('t1', 's1', 1, 'n1'));
    tx.create(task('t2', 's1', 2, 'n2'));
  });
  await s.update((tx) => void tx.modify('task', 't2', (d) => void (d.nodeId = 'n1')));
  off1();
  await s.update((tx) => tx.delete('task', 't1'));
  await tick();
  assert.deepEqual(
    tasksOnly.map((e) => `${e.type}:${e.object.id}`),
    ['create:t1', 'create:t2', 'update:t2'],
  );
  assert.deepEqual(onN1, ['create:t1', 'update:t2', 'delete:t1']);
  off2();
});

test('a slow subscriber overflows its bounded queue and is closed; apply and other subscribers go on', async () => {
  const s = new Store({ now: clock() });
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const slowSeen: number[] = [];
  let closedWith: Error | undefined;
  s.watch(
    {
      maxQueue: 5,
      onClose: (err) => {
        closedWith = err;
      },
    },
    async (ev) => {
      slowSeen.push(ev.index);
      await gate; // never returns during the test's writes
    },
  );
  const fast: number[] = [];
  s.watch(undefined, (ev) => void fast.push(ev.index));
  for (let i = 0; i < 20; i++) await s.update((tx) => void tx.create(node(`n${i}`, `h${i}`)));
  await tick();
  assert.equal(s.index, 20, 'every transaction committed');
  assert.ok(closedWith instanceof WatchOverflowError, String(closedWith));
  assert.equal(fast.length, 20);
  assert.deepEqual(slowSeen, [1], 'the slow handler got one event, the rest overflowed');
  release();
  await tick();
  assert.deepEqual(slowSeen, [1], 'nothing is delivered after the close');

  // Iterator form: a consumer that never pulls overflows; next() then throws.
  const it = s.events({ maxQueue: 3 });
  for (let i = 20; i < 25; i++) await s.update((tx) => void tx.create(node(`n${i}`, `h${i}`)));
  await assert.rejects(it.next(), WatchOverflowError);
  assert.deepEqual(await it.next(), { value: undefined, done: true });

  // A handler that throws closes its watch with that error.
  let thrown: Error | undefined;
  s.watch({ onClose: (e) => void (thrown = e) }, () => {
    throw new Error('handler bug');
  });
  await s.update((tx) => void tx.create(node('nx', 'hx')));
  await tick();
  assert.match(String(thrown), /handler bug/);
});

test('events(): async iteration in commit order, ends on abort or break', async () => {
  const s = new Store({ now: clock() });
  const ac = new AbortController();
  const seen: string[] = [];
  const consumer = (async () => {
    for await (const ev of s.events({ kinds: ['service'] }, ac.signal)) seen.push(`${ev.type}:${ev.object.id}@${ev.index}`);
  })();
  await s.update((tx) => {
    tx.create(service('s1', 'web'));
    tx.create(node('n1', 'h'));
    tx.create(service('s2', 'api'));
  });
  await s.update((tx) => tx.delete('service', 's1'));
  await tick();
  ac.abort();
  await consumer;
  assert.deepEqual(seen, ['create:s1@1', 'create:s2@1', 'delete:s1@2']);

  const it = s.events();
  const p = it.next();
  await s.update((tx) => void tx.create(service('s3', 'x')));
  const r = await p;
  assert.equal(r.done, false);
  assert.equal((r.value as StoreEvent).object.id, 's3');
  await it.return!();
  assert.deepEqual(await it.next(), { value: undefined, done: true });
});

test('waitForIndex and linearizableView', async () => {
  const raft = new FakeRaft();
  const a = raft.replica();
  const b = raft.replica();
  const waited = b.waitForIndex(1);
  let resolved = false;
  void waited.then(() => (resolved = true));
  const p = a.update((tx) => void tx.create(service('s1', 'web')));
  await held(raft, 1);
  await tick();
  assert.equal(resolved, false);
  await raft.deliver();
  await p;
  await waited;
  await b.waitForIndex(0);
  const ac = new AbortController();
  const never = b.waitForIndex(100, ac.signal);
  ac.abort(new Error('gave up'));
  await assert.rejects(never, /gave up/);

  // The barrier runs before the read, and the read sees what was applied meanwhile.
  let barriers = 0;
  b.readLinearizable(async () => {
    barriers++;
    const q = a.update((tx) => void tx.create(service('s2', 'api')));
    await held(raft, 1);
    await raft.deliver();
    await q;
  });
  const names = await b.linearizableView((tx) => tx.list('service').map((x) => x.spec.name));
  assert.deepEqual(names, ['web', 'api']);
  assert.equal(barriers, 1);
  const local = new Store();
  assert.equal(await local.linearizableView((tx) => tx.index), 0);
});

// ------------------------------------------------------------------------------------- snapshot, replay

async function populated(): Promise<Store> {
  const s = new Store({ now: clock() });
  await s.update((tx) => {
    tx.create(cluster());
    tx.create(node('n1', 'h1'));
    tx.create(node('n2', 'h2'));
    tx.create(service('s1', 'web', 3));
    tx.create(network('w1', 'ingress'));
  });
  await s.batch([1, 2, 3], (tx, slot) => void tx.create(task(`t${slot}`, 's1', slot, 'n1')));
  await s.update((tx) => {
    tx.modify('task', 't2', (d) => {
      d.nodeId = 'n2';
      d.status.state = 'running';
    });
    tx.delete('task', 't3');
    tx.modify('service', 's1', (d) => void (d.spec.name = 'web2'));
  });
  return s;
}

test('snapshot/restore round trip: same bytes, same reads, indexes rebuilt; restore closes watches', async () => {
  const a = await populated();
  const data = a.snapshot();
  assert.equal(data[0], 2, 'format byte');
  const b = new Store({ now: clock() });
  let closed: Error | undefined;
  b.watch({ onClose: (e) => void (closed = e) }, () => {});
  const it = b.events();
  const pending = it.next();
  const waiting = b.waitForIndex(a.index);
  b.restore(data);
  await waiting;
  await assert.rejects(pending, StoreResetError);
  await tick();
  assert.ok(closed instanceof StoreResetError);
  assert.equal(b.index, a.index);
  assert.equal(snap(b), snap(a));
  assert.deepEqual(
    b.view((tx) => tx.list('task')),
    a.view((tx) => tx.list('task')),
  );
  assert.equal(b.view((tx) => tx.byName('service', 'web2'))?.id, 's1');
  assert.equal(
    b.view((tx) => tx.byName('service', 'web')),
    undefined,
  );
  assert.deepEqual(
    b.view((tx) => tx.tasksByNode('n2').map((t) => t.id)),
    ['t2'],
  );
  assert.ok(Object.isFrozen(b.view((tx) => tx.get('task', 't1'))!.status));
  checkIndexes(b);
  // The restored store keeps working, with indexes continuing from the snapshot's.
  const next = await b.update((tx) => void tx.create(task('t9', 's1', 9, 'n2')));
  assert.equal(next, a.index + 1);
  // Restore replaces everything (also in a store that had state).
  b.restore(data);
  assert.equal(
    b.view((tx) => tx.get('task', 't9')),
    undefined,
  );
  assert.equal(snap(b), snap(a));
  // Corrupt snapshots are refused.
  assert.throws(() => b.restore(new Uint8Array([9])), StoreError);
  assert.throws(() => b.restore(new Uint8Array([1, 0x7b])), StoreError);
  assert.equal(snap(b), snap(a), 'a refused snapshot changes nothing');
});

test('snapshotInSteps: the state as of the call, in steps of 2,000 objects, restoring to the same reads', async () => {
  const a = await populated();
  // 4,500 more tasks over two spec versions: three steps of tasks, shared values met in several steps.
  const slots = Array.from({ length: 4500 }, (_, i) => i + 10);
  for (let i = 0; i < slots.length; i += 500) {
    await a.update((tx) => {
      for (const slot of slots.slice(i, i + 500)) {
        const t = task(`m${slot}`, 's1', slot, slot % 2 ? 'n1' : 'n2');
        if (slot % 3 === 0) t.spec = { image: 'busybox:1.37' };
        tx.create(t);
      }
    });
  }
  const index = a.index;
  const tasks = a.view((tx) => tx.list('task'));
  const services = a.view((tx) => tx.list('service'));
  const steps = a.snapshotInSteps();
  let n = 0;
  let r = steps.next();
  // Writes while the steps run are not in it: a task deleted, one changed, one created, a service renamed.
  await a.update((tx) => {
    tx.delete('task', 'm11');
    tx.modify('task', 'm12', (d) => void (d.status.message = 'changed after the capture'));
    tx.create(task('late', 's1', 99999, 'n1'));
    tx.modify('service', 's1', (d) => void (d.spec.name = 'renamed'));
  });
  while (!r.done) {
    n++;
    r = steps.next();
  }
  assert.ok(n >= 3, `${n} steps for ${tasks.length} tasks`);
  const data = Buffer.concat(r.value);
  const b = new Store();
  b.restore(data);
  assert.equal(b.index, index);
  assert.deepEqual(
    b.view((tx) => tx.list('task')),
    tasks,
  );
  assert.deepEqual(
    b.view((tx) => tx.list('service')),
    services,
  );
  checkIndexes(b);
  // The same bytes as the one-call snapshot of that state, and the shared specs written once.
  assert.deepEqual(Buffer.from(b.snapshot()), data);
  const doc = JSON.parse(data.subarray(1).toString('utf8'));
  assert.equal(doc.shared.length, 3, JSON.stringify(doc.shared));
});

test('snapshot format 2 writes a shared task spec once; format 1 still restores; bad references are refused', async () => {
  const a = await populated();
  await a.batch([4, 5, 6, 7], (tx, slot) => {
    const t = task(`u${slot}`, 's1', slot, 'n2');
    // Two spec versions alive at once, as during a rolling update.
    if (slot > 5) t.spec = { image: 'busybox:1.37' };
    tx.create(t);
  });
  const data = a.snapshot();
  const doc = JSON.parse(Buffer.from(data.subarray(1)).toString('utf8'));
  // Distinct values: the two specs and the one annotation set, each once.
  assert.equal(doc.shared.length, 3, JSON.stringify(doc.shared));
  for (const t of doc.objects.task) {
    assert.equal(typeof t.spec, 'number');
    assert.equal(typeof t.serviceAnnotations, 'number');
  }
  // Applied tasks with equal specs hold one frozen object; so do restored ones.
  const same = (s: Store, x: string, y: string) => s.view((tx) => tx.get('task', x)!.spec === tx.get('task', y)!.spec);
  assert.ok(same(a, 'u4', 'u5'));
  assert.ok(same(a, 'u6', 'u7'));
  assert.ok(!same(a, 'u5', 'u6'));
  const b = new Store();
  b.restore(data);
  assert.equal(snap(b), snap(a));
  assert.ok(same(b, 't1', 'u4'));
  assert.ok(!same(b, 'u5', 'u6'));
  assert.deepEqual(
    b.view((tx) => tx.get('task', 'u7')!.spec),
    { image: 'busybox:1.37' },
  );
  checkIndexes(b);
  // A snapshot written by an older manager (format 1: every task whole) restores to the same state.
  const v1 = { format: 1, index: doc.index, objects: { ...doc.objects } };
  v1.objects.task = doc.objects.task.map((t: Record<string, unknown>) => ({
    ...t,
    spec: doc.shared[t.spec as number],
    serviceAnnotations: doc.shared[t.serviceAnnotations as number],
  }));
  const c = new Store();
  c.restore(new Uint8Array(Buffer.concat([Buffer.from([1]), Buffer.from(JSON.stringify(v1))])));
  assert.equal(snap(c), snap(a));
  checkIndexes(c);
  // A reference past the shared list, or a shared list that is not one, is refused and changes nothing.
  const broken = (mutate: (d: typeof doc) => void) => {
    const d = JSON.parse(JSON.stringify(doc));
    mutate(d);
    return new Uint8Array(Buffer.concat([Buffer.from([2]), Buffer.from(JSON.stringify(d))]));
  };
  assert.throws(
    () =>
      c.restore(
        broken((d) => {
          d.objects.task[0].spec = 99;
        }),
      ),
    /store snapshot: task t1: spec names shared value 99 of 3/,
  );
  assert.throws(
    () =>
      c.restore(
        broken((d) => {
          d.objects.task[0].spec = -1;
        }),
      ),
    /shared value -1/,
  );
  assert.throws(
    () =>
      c.restore(
        broken((d) => {
          d.shared = {};
        }),
      ),
    /shared is not a list/,
  );
  assert.equal(snap(c), snap(a), 'a refused snapshot changes nothing');
});

test('indexes: a slot with several tasks (history) gains and loses them one by one', async () => {
  const s = new Store({ now: clock() });
  await s.update((tx) => {
    tx.create(cluster());
    tx.create(node('n1', 'h1'));
    tx.create(service('s1', 'web', 1));
  });
  const slotIds = () =>
    s.view((tx) =>
      tx
        .tasksBySlot('s1', 1)
        .map((t) => t.id)
        .sort(),
    );
  for (const id of ['a', 'b', 'c']) {
    await s.update((tx) => void tx.create(task(id, 's1', 1, 'n1')));
    checkIndexes(s);
  }
  assert.deepEqual(slotIds(), ['a', 'b', 'c']);
  for (const [id, left] of [
    ['b', ['a', 'c']],
    ['a', ['c']],
    ['c', []],
  ] as const) {
    await s.update((tx) => {
      const t = tx.get('task', id)!;
      tx.delete('task', id, t.version);
    });
    assert.deepEqual(slotIds(), left);
    checkIndexes(s);
  }
  assert.deepEqual(
    s.view((tx) => tx.tasksByService('s1')),
    [],
  );
  assert.deepEqual(
    s.view((tx) => tx.tasksByNode('n1')),
    [],
  );
  // Moving a task to another node leaves nothing behind under the old one.
  await s.update((tx) => void tx.create(task('d', 's1', 1, 'n1')));
  await s.update((tx) => void tx.modify('task', 'd', (m) => void (m.nodeId = 'n2')));
  assert.deepEqual(
    s.view((tx) => tx.tasksByNode('n1')),
    [],
  );
  checkIndexes(s);
});

test('deterministic apply: stores fed the same entries end byte-identical, whatever their clocks', async () => {
  const log: Entry[] = [];
  let index = 0;
  const leader: Store = new Store({
    now: clock(),
    propose: async (data) => {
      const e: Entry = { index: ++index, term: 1, type: 'normal', data };
      log.push(e);
      return leader.apply(e);
    },
  });
  await leader.update((tx) => {
    tx.create(cluster());
    tx.create(service('s1', 'web'));
  });
  await leader.batch([1, 2, 3, 4, 5], (tx, i) => void tx.create(task(`t${i}`, 's1', i, `n${i % 2}`)));
  await leader.update((tx) => void tx.modify('task', 't1', (d) => void (d.nodeId = 'n9')));
  await leader.update((tx) => void tx.modify('service', 's1', (d) => void (d.specVersion = 5)));
  // A stale write that only fails at apply: forge it by proposing an old version through a second store.
  const stale = new Store({
    now: () => new Date(0),
    propose: async (data) => {
      const e: Entry = { index: ++index, term: 1, type: 'normal', data };
      log.push(e);
      return leader.apply(e);
    },
  });
  stale.restore(snapshotAt(log, 2));
  await assert.rejects(
    stale.update((tx) => void tx.modify('service', 's1', (d) => void (d.specVersion = 2))),
    ConflictError,
  );
  await leader.update((tx) => tx.delete('task', 't2'));

  const replay = (): Store => {
    const s = new Store({ now: () => new Date(8.64e15) });
    for (const e of log) s.apply(e);
    return s;
  };
  const r1 = replay();
  const r2 = replay();
  assert.equal(snap(r1), snap(leader));
  assert.equal(snap(r2), snap(leader));
  // Snapshot in the middle, then replay the rest: same again.
  const mid = new Store();
  mid.restore(snapshotAt(log, 3));
  for (const e of log.slice(3)) mid.apply(e);
  assert.equal(snap(mid), snap(leader));
});

/** Snapshot of the state after the first `n` entries of `log`. */
function snapshotAt(log: Entry[], n: number): Uint8Array {
  const s = new Store();
  for (const e of log.slice(0, n)) s.apply(e);
  return s.snapshot();
}

test('randomised: three managers proposing concurrently with reordered delivery stay identical and consistent', async () => {
  let seed = 12345;
  const rnd = (n: number) => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed % n;
  };
  const raft = new FakeRaft();
  const managers = [raft.replica(), raft.replica(), raft.replica()];
  const seedTx = managers[0]!.update((tx) => {
    tx.create(service('s1', 'web'));
    for (let i = 0; i < 4; i++) tx.create(node(`n${i}`, `h${i}`));
  });
  await raft.deliver();
  await seedTx;
  let ok = 0;
  let conflicts = 0;
  let names = 0;
  for (let round = 0; round < 60; round++) {
    const inflight: Promise<number>[] = [];
    for (let k = 0; k < 1 + rnd(5); k++) {
      const m = managers[rnd(3)]!;
      inflight.push(
        m
          .update((tx) => {
            const tasks = tx.tasksByService('s1');
            const pick = rnd(5);
            if (pick === 0 || tasks.length === 0) tx.create(task(`t${round}.${k}`, 's1', 1 + rnd(3), `n${rnd(4)}`));
            else if (pick === 1) tx.delete('task', tasks[rnd(tasks.length)]!.id);
            else if (pick === 2) tx.create(service(`x${round}.${k}`, `name${rnd(4)}`));
            else {
              const t = tasks[rnd(tasks.length)]!;
              const to = `n${rnd(4)}`;
              tx.modify('task', t.id, (d) => {
                d.nodeId = to;
                d.slot = 1 + rnd(3);
              });
              tx.modify('node', to, (d) => void (d.spec.labels['touched'] = String(round)));
            }
          })
          .catch((e: unknown) => {
            if (e instanceof ConflictError) conflicts++;
            else if (e instanceof NameInUseError) names++;
            else throw e;
            return -1;
          }),
      );
    }
    // Every update has either proposed or been rejected eagerly by now.
    for (let i = 0; i < 5; i++) await tick();
    const order = Array.from({ length: raft.held }, (_, i) => i);
    for (let i = order.length - 1; i > 0; i--) {
      const j = rnd(i + 1);
      [order[i], order[j]] = [order[j]!, order[i]!];
    }
    await raft.deliver(order);
    for (const r of await Promise.all(inflight)) if (r > 0) ok++;
  }
  assert.ok(ok > 50 && conflicts > 5, `ok ${ok}, conflicts ${conflicts}, name clashes ${names}`);
  const ref = snap(managers[0]!);
  for (const m of managers) {
    assert.equal(snap(m), ref);
    checkIndexes(m);
    const seen = new Set<string>();
    for (const svc of m.view((tx) => tx.list('service'))) {
      assert.ok(!seen.has(svc.spec.name.toLowerCase()), 'names stay unique');
      seen.add(svc.spec.name.toLowerCase());
    }
  }
});

// --------------------------------------------------------------------------------------- immutability

test('objects handed out are deep-frozen; callers edit copies; inputs are copied, not captured', async () => {
  const s = new Store({ now: clock() });
  const input = service('s1', 'web');
  const events: StoreEvent[] = [];
  s.watch(undefined, (ev) => void events.push(ev));
  await s.update((tx) => {
    const pending = tx.create(input);
    assert.ok(Object.isFrozen(pending) && Object.isFrozen(pending.spec.mode));
  });
  input.spec.name = 'mutated-after';
  (input.spec.labels as Record<string, string>)['late'] = 'x';
  assert.ok(!Object.isFrozen(input), 'the caller keeps a mutable object');
  const svc = s.view((tx) => tx.get('service', 's1'))!;
  assert.equal(svc.spec.name, 'web');
  assert.equal(svc.spec.labels['late'], undefined);
  assert.throws(() => {
    (svc as { spec: { name: string } }).spec.name = 'x';
  }, TypeError);
  assert.throws(() => {
    (svc.spec.task.command as string[]).push('x');
  }, TypeError);
  assert.throws(() => {
    (svc as { version: number }).version = 5;
  }, TypeError);
  const list = s.view((tx) => tx.list('service'));
  assert.throws(() => {
    (list[0]!.spec.labels as Record<string, string>)['a'] = 'b';
  }, TypeError);
  await tick();
  assert.ok(Object.isFrozen(events[0]!.object));
  assert.ok(Object.isFrozen(events[0]!.object.spec));

  const copy = mutable(svc);
  copy.spec.name = 'web-renamed';
  assert.ok(!Object.isFrozen(copy.spec));
  await s.update((tx) => void tx.update(copy));
  assert.equal(svc.spec.name, 'web', 'the earlier snapshot object never changes');
  assert.equal(s.view((tx) => tx.get('service', 's1'))?.spec.name, 'web-renamed');
});

test('secondary indexes follow tasks moving between nodes and slots, deletes and renames', async () => {
  const s = new Store({ now: clock() });
  await s.update((tx) => {
    tx.create(service('s1', 'web'));
    tx.create(service('s2', 'api'));
    tx.create(node('n1', 'alpha'));
    tx.create(node('n2', 'beta'));
    tx.create(node('n3', 'alpha')); // hostnames need not be unique
    for (let i = 1; i <= 4; i++) tx.create(task(`a${i}`, 's1', i, 'n1'));
    tx.create(task('g1', 's2', undefined, 'n2')); // global-style task without a slot
    tx.create(task('u1', 's2', 1)); // unassigned
  });
  assert.equal(s.view((tx) => tx.byName('node', 'ALPHA'))?.id, 'n1');
  const ids = (ts: readonly Frozen<Task>[]) => ts.map((t) => t.id).sort();
  await s.update((tx) => {
    tx.modify('task', 'a1', (d) => void (d.nodeId = 'n2'));
    tx.modify('task', 'a2', (d) => void delete d.nodeId);
    tx.modify('task', 'a3', (d) => void (d.slot = 1));
    tx.delete('task', 'a4');
    tx.modify('task', 'u1', (d) => void (d.nodeId = 'n3'));
    tx.modify('node', 'n1', (d) => void (d.description.hostname = 'gamma'));
  });
  s.view((tx) => {
    assert.deepEqual(ids(tx.tasksByNode('n1')), ['a3']);
    assert.deepEqual(ids(tx.tasksByNode('n2')), ['a1', 'g1']);
    assert.deepEqual(ids(tx.tasksByNode('n3')), ['u1']);
    assert.deepEqual(ids(tx.tasksBySlot('s1', 1)), ['a1', 'a3']);
    assert.deepEqual(ids(tx.tasksBySlot('s1', 2)), ['a2']);
    assert.deepEqual(tx.tasksBySlot('s1', 4), []);
    assert.deepEqual(ids(tx.tasksByService('s1')), ['a1', 'a2', 'a3']);
    assert.deepEqual(ids(tx.tasksByService('s2')), ['g1', 'u1']);
    assert.equal(tx.byName('node', 'alpha')?.id, 'n3');
    assert.equal(tx.byName('node', 'gamma')?.id, 'n1');
  });
  await s.update((tx) => {
    for (const t of tx.tasksByService('s1')) tx.delete('task', t.id);
    tx.delete('service', 's1');
  });
  s.view((tx) => {
    assert.deepEqual(tx.tasksByService('s1'), []);
    assert.deepEqual(tx.tasksBySlot('s1', 1), []);
    assert.deepEqual(ids(tx.tasksByNode('n2')), ['g1']);
    assert.equal(tx.byName('service', 'web'), undefined);
  });
  checkIndexes(s);
  // The name is free again.
  await s.update((tx) => void tx.create(service('s3', 'web')));
  assert.equal(s.view((tx) => tx.byName('service', 'web'))?.id, 's3');
});

test("runningTasks: follows state and desire, counts a transaction's own writes, survives a restore", async () => {
  const s = new Store({ now: clock() });
  await s.update((tx) => {
    tx.create(cluster());
    tx.create(node('n1', 'h1'));
    tx.create(service('s1', 'web', 3));
    tx.create(service('s2', 'api', 1));
    for (const id of ['a', 'b', 'c']) tx.create(task(id, 's1', 1, 'n1'));
    tx.create(task('d', 's2', 1, 'n1'));
  });
  const setState = (id: string, state: Task['status']['state'], desiredState?: Task['desiredState']) =>
    s.update((tx) =>
      tx.modify('task', id, (t) => {
        t.status = { ...t.status, state };
        if (desiredState) t.desiredState = desiredState;
      }),
    );
  const running = (id: string) => s.view((tx) => tx.runningTasks(id));
  assert.equal(running('s1'), 0);
  for (const id of ['a', 'b', 'c', 'd']) await setState(id, 'running');
  assert.deepEqual([running('s1'), running('s2'), running('nope')], [3, 1, 0]);
  await setState('a', 'running', 'shutdown');
  assert.equal(running('s1'), 2, 'told to stop: no longer counted');
  await setState('b', 'failed');
  assert.equal(running('s1'), 1, 'failed');
  await s.update((tx) => tx.delete('task', 'c'));
  assert.equal(running('s1'), 0, 'deleted');
  checkIndexes(s);
  // Inside a transaction, its own writes count.
  await s.update((tx) => {
    tx.modify('task', 'b', (t) => void (t.status = { ...t.status, state: 'running' }));
    assert.equal(tx.runningTasks('s1'), 1);
    tx.delete('task', 'd');
    assert.equal(tx.runningTasks('s2'), 0);
  });
  assert.deepEqual([running('s1'), running('s2')], [1, 0]);
  const r = new Store({ now: clock() });
  r.restore(s.snapshot());
  assert.deepEqual([r.view((tx) => tx.runningTasks('s1')), r.view((tx) => tx.runningTasks('s2'))], [1, 0], 'restored');
  checkIndexes(r);
});
