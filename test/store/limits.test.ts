// Cluster limits: the pure checks and the cluster-update validator (manager/store/limits.ts), the store's
// backstop on every proposed write (object size, labels, names, tasks in the cluster; grandfathering;
// never re-checked in apply()), and the orchestrator at the task limit: it records why on the service
// once and does not retry until something changes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_LIMITS, defaultClusterSpec } from '../../api/objects.ts';
import type { Cluster, ClusterLimits, ClusterSpec, Draft, Node, Service, Task } from '../../api/objects.ts';
import { LimitExceededError, Store, ValidationError } from '../../manager/store/store.ts';
import {
  LIMIT_SETTINGS,
  applyLimitsUpdate,
  checkLabels,
  checkName,
  checkReplicas,
  checkTaskBudget,
  limitsOf,
  parseLimitsUpdate,
} from '../../manager/store/limits.ts';
import { Orchestrator } from '../../manager/orchestrator/runner.ts';
import { testCluster } from '../helpers/cluster.ts';

// ---------------------------------------------------------------------------------------------- fixtures

function cluster(limits: Partial<ClusterLimits>): Draft<Cluster> {
  return testCluster({ limits });
}

function service(id: string, name: string, replicas = 1): Draft<Service> {
  return {
    id,
    kind: 'service',
    spec: { name, labels: {}, mode: { replicated: { replicas } }, task: { image: 'app:1' }, networks: [], endpoint: { ports: [] } },
    specVersion: 1,
    status: {},
  };
}

function task(id: string, serviceId: string, slot: number): Draft<Task> {
  return {
    id,
    kind: 'task',
    serviceId,
    slot,
    spec: { image: 'app:1' },
    desiredState: 'running',
    status: { state: 'new', timestamp: '2025-01-01T00:00:00.000Z', message: 'created' },
    serviceAnnotations: { name: serviceId, labels: {} },
    networks: [],
  };
}

function node(id: string, hostname: string): Draft<Node> {
  return {
    id,
    kind: 'node',
    spec: { labels: {}, availability: 'active', role: 'worker' },
    description: { hostname, platform: { os: 'linux', arch: 'x64' }, resources: { nanoCpus: 1e9, memoryBytes: 1 << 30 }, engineVersion: '', addr: '10.0.0.1' },
    status: { state: 'ready', message: '', addr: '10.0.0.1' },
  };
}

async function storeWith(limits: Partial<ClusterLimits>): Promise<Store> {
  const s = new Store();
  await s.update((tx) => void tx.create(cluster(limits)));
  return s;
}

async function setLimits(s: Store, patch: Partial<ClusterLimits>): Promise<void> {
  await s.update((tx) => void tx.modify('cluster', 'cluster', (c) => (c.spec = applyLimitsUpdate(c.spec, patch))));
}

/** The LimitExceededError `p` rejects with (fails the test otherwise). */
async function limitError(p: Promise<unknown>): Promise<LimitExceededError> {
  const e = await p.then(
    () => null,
    (err: unknown) => err,
  );
  assert.ok(e instanceof LimitExceededError, `expected LimitExceededError, got ${String(e)}`);
  return e;
}

// ---------------------------------------------------------------------------------------- pure checks

test('defaults: every setting has one, within its own accepted range, and new clusters carry them', () => {
  for (const [k, r] of Object.entries(LIMIT_SETTINGS)) {
    const v = DEFAULT_LIMITS[k as keyof ClusterLimits];
    assert.ok(v >= r.min && v <= r.max, `${k} = ${v} outside ${r.min}..${r.max}`);
  }
  assert.deepEqual(defaultClusterSpec().limits, { ...DEFAULT_LIMITS });
  // A cluster created before limits existed gets the defaults.
  const { limits: _l, ...old } = defaultClusterSpec();
  assert.deepEqual(limitsOf(old as ClusterSpec), { ...DEFAULT_LIMITS });
  assert.deepEqual(limitsOf(undefined), { ...DEFAULT_LIMITS });
});

test('checks name the setting, the limit, the value and the flag that raises it', () => {
  const l = { ...DEFAULT_LIMITS, maxReplicas: 10 };
  checkReplicas(10, l);
  assert.throws(
    () => checkReplicas(1_000_000_000, l, 'mode.replicated.replicas'),
    (e: unknown) =>
      e instanceof LimitExceededError &&
      e.setting === 'limits.maxReplicas' &&
      e.limit === 10 &&
      e.actual === 1_000_000_000 &&
      e.field === 'mode.replicated.replicas' &&
      e.code === 'ELIMIT' &&
      /limits\.maxReplicas/.test(e.message) &&
      /--max-replicas/.test(e.message),
  );
  checkTaskBudget(5, 5, { ...l, maxTasks: 10 });
  checkTaskBudget(50, -3, { ...l, maxTasks: 10 }); // shrinking always passes
  assert.throws(
    () => checkTaskBudget(5, 6, { ...l, maxTasks: 10 }),
    (e: unknown) => e instanceof LimitExceededError && e.setting === 'limits.maxTasks' && e.actual === 11,
  );
  assert.throws(
    () => checkLabels({ a: '1', b: '2' }, { ...l, maxLabels: 1 }),
    (e: unknown) => e instanceof LimitExceededError && e.setting === 'limits.maxLabels',
  );
  assert.throws(
    () => checkLabels({ ['k'.repeat(9)]: '' }, { ...l, maxLabelKeyBytes: 8 }),
    (e: unknown) => e instanceof LimitExceededError && e.setting === 'limits.maxLabelKeyBytes',
  );
  // Sizes are UTF-8 bytes: 3 characters of 2 bytes are 6 bytes.
  assert.throws(
    () => checkLabels({ k: 'ééé' }, { ...l, maxLabelValueBytes: 5 }),
    (e: unknown) => e instanceof LimitExceededError && e.setting === 'limits.maxLabelValueBytes' && e.actual === 6,
  );
  checkLabels({ k: 'éé' }, { ...l, maxLabelValueBytes: 5 });
  assert.throws(
    () => checkName('x'.repeat(11), { ...l, maxNameLength: 10 }),
    (e: unknown) => e instanceof LimitExceededError && e.setting === 'limits.maxNameLength',
  );
});

test('parseLimitsUpdate: any subset of the settings, integers in range; anything else is a 400 naming the field', () => {
  assert.deepEqual(parseLimitsUpdate(undefined), {});
  assert.deepEqual(parseLimitsUpdate(null), {});
  assert.deepEqual(parseLimitsUpdate({ maxReplicas: 500, maxTasks: 20_000 }), { maxReplicas: 500, maxTasks: 20_000 });
  const bad: [unknown, RegExp][] = [
    [[1], /limits must be an object/],
    ['x', /limits must be an object/],
    [{ maxReplica: 5 }, /limits\.maxReplica: unknown setting/],
    [{ maxReplicas: 0 }, /limits\.maxReplicas must be an integer from 1 to 1000000/],
    [{ maxReplicas: 2.5 }, /limits\.maxReplicas/],
    [{ maxReplicas: '5' }, /limits\.maxReplicas .*got "5"/],
    [{ maxTasks: 1e12 }, /limits\.maxTasks/],
    [{ maxObjectBytes: 1024 }, /limits\.maxObjectBytes must be an integer from 65536/],
    [{ maxObjectBytes: 2 << 20 }, /limits\.maxObjectBytes/],
    [{ ['__proto__']: 1 }, /unknown setting/],
  ];
  for (const [raw, re] of bad) {
    const input = raw !== null && typeof raw === 'object' && !Array.isArray(raw) && Object.keys(raw).length === 0 ? JSON.parse('{"__proto__":1}') : raw;
    assert.throws(
      () => parseLimitsUpdate(input),
      (e: unknown) => e instanceof ValidationError && re.test(e.message),
      `${JSON.stringify(raw)} → ${String(re)}`,
    );
  }
  // applyLimitsUpdate: fills in the defaults for a cluster that had none, and keeps the rest of the spec.
  const { limits: _l, ...old } = defaultClusterSpec('c');
  const next = applyLimitsUpdate(old as ClusterSpec, { maxReplicas: 7 });
  assert.deepEqual(next.limits, { ...DEFAULT_LIMITS, maxReplicas: 7 });
  assert.equal(next.name, 'c');
});

// ------------------------------------------------------------------------------------- store backstop

test('store: a task create past limits.maxTasks is refused in the transaction; deleting makes room', async () => {
  const s = await storeWith({ maxTasks: 3 });
  await s.update((tx) => void tx.create(service('s1', 'web')));
  await s.update((tx) => {
    for (const i of [1, 2, 3]) tx.create(task(`t${i}`, 's1', i));
  });
  const e = await limitError(s.update((tx) => void tx.create(task('t4', 's1', 4))));
  assert.equal(e.setting, 'limits.maxTasks');
  assert.equal(
    s.view((tx) => tx.count('task')),
    3,
  );
  // Delete and create in one transaction: the count never goes past the limit.
  await s.update((tx) => {
    tx.delete('task', 't1');
    assert.equal(tx.count('task'), 2);
    tx.create(task('t4', 's1', 4));
    assert.equal(tx.count('task'), 3);
  });
  // A batch stops at the item that would cross it, after committing the ones before.
  await setLimits(s, { maxTasks: 5 });
  const err = await s.batch([5, 6, 7], (tx, i) => void tx.create(task(`t${i}`, 's1', i))).catch((x: unknown) => x);
  assert.ok(err instanceof Error && (err.cause as unknown) instanceof LimitExceededError, String(err));
  assert.deepEqual(s.view((tx) => tx.list('task').map((t) => t.id)).sort(), ['t2', 't3', 't4', 't5', 't6']);
});

test('store: objects over limits.maxObjectBytes, labels over the label limits and names over limits.maxNameLength are refused', async () => {
  const s = await storeWith({ maxObjectBytes: 64 * 1024, maxLabels: 2, maxNameLength: 12 });
  const big = service('s1', 'big');
  big.spec.task.env = [`PAD=${'x'.repeat(70 * 1024)}`];
  assert.equal((await limitError(s.update((tx) => void tx.create(big)))).setting, 'limits.maxObjectBytes');
  const labelled = service('s2', 'labelled');
  labelled.spec.labels = { a: '1', b: '2', c: '3' };
  const le = await limitError(s.update((tx) => void tx.create(labelled)));
  assert.equal(le.setting, 'limits.maxLabels');
  assert.match(le.message, /service s2 spec\.labels has 3 labels/);
  assert.equal((await limitError(s.update((tx) => void tx.create(node('n1', 'host-name-too-long'))))).setting, 'limits.maxNameLength');
  // Nothing was written by any of them.
  assert.equal(
    s.view((tx) => tx.count('service') + tx.count('node')),
    0,
  );
  // Node label updates (node update --label-add) go through the same check.
  await s.update((tx) => void tx.create(node('n1', 'h1')));
  const ne = await limitError(s.update((tx) => void tx.modify('node', 'n1', (n) => (n.spec.labels = { a: '', b: '', c: '' }))));
  assert.equal(ne.setting, 'limits.maxLabels');
});

test('store: lowering a limit grandfathers existing objects; only changes that make them worse are refused', async () => {
  const s = await storeWith({});
  const big = service('s1', 'big');
  big.spec.task.env = [`PAD=${'x'.repeat(100 * 1024)}`];
  big.spec.labels = { a: '1', b: '2', c: '3' };
  await s.update((tx) => void tx.create(big));
  await s.update((tx) => void tx.create(node('n1', 'a-long-hostname')));
  await setLimits(s, { maxObjectBytes: 64 * 1024, maxLabels: 2, maxNameLength: 5 });
  // A status write (the size and the labels do not change) still goes through: heartbeats keep flowing.
  await s.update((tx) => void tx.modify('service', 's1', (x) => (x.status = { jobIteration: 1 })));
  await s.update((tx) => void tx.modify('node', 'n1', (n) => (n.status.message = 'heartbeat')));
  // Growing the oversized object by more than the slack, touching the over-limit labels, or a new long
  // name: refused.
  const more = `MORE=${'y'.repeat(2048)}`;
  assert.equal(
    (await limitError(s.update((tx) => void tx.modify('service', 's1', (x) => (x.spec.task.env = [...x.spec.task.env!, more]))))).setting,
    'limits.maxObjectBytes',
  );
  // An object under the limit may not grow past it (no slack for those).
  await s.update((tx) => void tx.create(service('s2', 'small')));
  assert.equal(
    (await limitError(s.update((tx) => void tx.modify('service', 's2', (x) => (x.spec.task.env = [`PAD=${'x'.repeat(64 * 1024)}`]))))).setting,
    'limits.maxObjectBytes',
  );
  assert.equal(
    (await limitError(s.update((tx) => void tx.modify('service', 's1', (x) => (x.spec.labels = { ...x.spec.labels, d: '4' }))))).setting,
    'limits.maxLabels',
  );
  assert.equal(
    (await limitError(s.update((tx) => void tx.modify('node', 'n1', (n) => (n.description.hostname = 'another-long-one'))))).setting,
    'limits.maxNameLength',
  );
  // Shrinking is fine.
  await s.update((tx) => void tx.modify('service', 's1', (x) => (x.spec.labels = { a: '1' })));
});

test('store: limits are checked when a write is proposed, never when an entry is applied (replay does not depend on them)', async () => {
  // A leader with room commits an entry; a replica whose cluster object says less applies it anyway.
  const entries: Uint8Array[] = [];
  const leader: Store = new Store({
    propose: async (d): Promise<unknown> => {
      entries.push(d);
      return leader.apply({ index: leader.index + 1, data: d });
    },
  });
  await leader.update((tx) => void tx.create(cluster({ maxTasks: 10 })));
  await leader.update((tx) => void tx.create(service('s1', 'web')));
  await leader.update((tx) => {
    for (const i of [1, 2, 3]) tx.create(task(`t${i}`, 's1', i));
  });
  const replica = new Store();
  replica.apply({ index: 1, data: entries[0]! });
  replica.apply({ index: 2, data: entries[1]! });
  // The replica's limit is lower (think: a default changed by an upgrade, or a log replayed after the
  // limit was lowered): the committed entry must still apply, as it did on the leader.
  await replica.update((tx) => void tx.modify('cluster', 'cluster', (c) => (c.spec = applyLimitsUpdate(c.spec, { maxTasks: 1 }))));
  const r = replica.apply({ index: replica.index + 1, data: entries[2]! });
  assert.equal(r, replica.index);
  assert.equal(
    replica.view((tx) => tx.count('task')),
    3,
  );
});

// ------------------------------------------------------------------------------------------ orchestrator

test('orchestrator at limits.maxTasks: records why on the service once, does not spin, resumes when the limit is raised', async () => {
  const s = await storeWith({ maxTasks: 3 });
  const logs: string[] = [];
  let ids = 0;
  const orch = new Orchestrator(s, { newId: () => `t${++ids}`, log: (l) => logs.push(l) });
  orch.start();
  try {
    await s.update((tx) => void tx.create(service('s1', 'web', 5)));
    await orch.idle();
    const svc = () => s.view((tx) => tx.get('service', 's1')!);
    assert.equal(
      s.view((tx) => tx.count('task')),
      3,
    );
    assert.match(svc().status.blocked ?? '', /limits\.maxTasks \(3 tasks\).*--max-tasks/);
    // No hot retry: with nothing changing, further passes write nothing.
    const index = s.index;
    const passesLogged = logs.length;
    await s.update((tx) => void tx.create(node('n1', 'h1'))); // an unrelated write
    await orch.idle();
    assert.equal(s.index, index + 1, 'the orchestrator wrote nothing more');
    assert.equal(logs.filter((l) => /writing decisions failed/.test(l)).length, 0, logs.join('\n'));
    assert.ok(logs.length - passesLogged <= 1, logs.slice(passesLogged).join('\n'));
    // Raising the limit wakes the blocked service: it converges and the reason is cleared.
    await setLimits(s, { maxTasks: 100 });
    await orch.idle();
    assert.equal(
      s.view((tx) => tx.tasksByService('s1').length),
      5,
    );
    assert.equal(svc().status.blocked, undefined);
  } finally {
    orch.stop();
  }
});

test('orchestrator: a service whose tasks break a lowered limit stops alone; the other services still converge', async () => {
  const s = await storeWith({});
  const logs: string[] = [];
  let ids = 0;
  const orch = new Orchestrator(s, { newId: () => `t${++ids}`, log: (l) => logs.push(l) });
  orch.start();
  try {
    const big = service('big', 'big', 0);
    big.spec.task.labels = { a: '1', b: '2', c: '3' };
    await s.update((tx) => void tx.create(big));
    await orch.idle();
    await setLimits(s, { maxLabels: 2 });
    // In one transaction, so both are reconciled in the same pass: big (grandfathered, now over the label
    // limit) scales up, and another service is created.
    await s.update((tx) => {
      tx.modify('service', 'big', (x) => (x.spec.mode = { replicated: { replicas: 2 } }));
      tx.create(service('other', 'other', 2));
    });
    await orch.idle();
    assert.equal(
      s.view((tx) => tx.tasksByService('other').length),
      2,
      logs.join('\n'),
    );
    assert.equal(
      s.view((tx) => tx.tasksByService('big').length),
      0,
    );
    assert.match(s.view((tx) => tx.get('service', 'big')!.status.blocked) ?? '', /limits\.maxLabels \(2\).*--max-labels/);
    assert.equal(logs.filter((l) => /writing decisions failed/.test(l)).length, 0, logs.join('\n'));
    // Nothing more is written while nothing changes (the reason is stable, written once).
    const index = s.index;
    await s.update((tx) => void tx.create(node('n1', 'h1')));
    await orch.idle();
    assert.equal(s.index, index + 1);
    // Raising the limit lets it converge.
    await setLimits(s, { maxLabels: 10 });
    await orch.idle();
    assert.equal(
      s.view((tx) => tx.tasksByService('big').length),
      2,
    );
    assert.equal(
      s.view((tx) => tx.get('service', 'big')!.status.blocked),
      undefined,
    );
  } finally {
    orch.stop();
  }
});
