// The page's model (web/model.ts): a snapshot, then deltas applied in order; what the map counts as a
// current task; names and orders the views rely on.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Model, ago, byTask, isCurrent, taskName } from '../../web/model.ts';
import type { DashNode, DashTask, Snapshot } from '../../web/protocol.ts';

const T = '2026-12-06T08:00:00.000Z';
const task = (id: string, slot: number | null, state: string, desiredState = 'running', nodeId: string | null = 'n1'): DashTask => ({
  id,
  serviceId: 's1',
  serviceName: 'web',
  slot,
  nodeId,
  state,
  desiredState,
  message: '',
  err: null,
  timestamp: T,
  image: 'nginx',
  specVersion: 1,
});
const node = (id: string, hostname: string, role: 'manager' | 'worker', leader = false): DashNode => ({
  id,
  hostname,
  role,
  availability: 'active',
  state: 'ready',
  message: '',
  addr: '',
  labels: {},
  nanoCpus: 0,
  memoryBytes: 0,
  manager: role === 'manager' ? { leader, voter: true, reachability: 'reachable', addr: '' } : null,
});

test('a snapshot, then deltas: upserts, removals, events capped, the cause remembered', () => {
  const m = new Model();
  const snap: Snapshot = {
    clusterId: 'c',
    nodes: [node('w', 'zeta', 'worker'), node('m2', 'beta', 'manager'), node('m1', 'omega', 'manager', true)],
    services: [],
    tasks: [task('t1', 1, 'running')],
    raft: [],
    events: [],
    link: { state: 'live', message: '', since: 0 },
  };
  m.load(snap);
  assert.deepEqual(
    m.sortedNodes().map((n) => n.hostname),
    ['omega', 'beta', 'zeta'],
    'leader, then managers, then workers',
  );
  m.apply({ at: 1, cause: '9.0', tasks: [task('t2', 2, 'pending', 'running', null)], removeTasks: ['t1'], removeNodes: ['w'] });
  assert.deepEqual([...m.tasks.keys()], ['t2']);
  assert.equal(m.nodes.has('w'), false);
  assert.equal(m.lastCause, '9.0');
  const ev = (i: number) => ({ seq: `${i}.0`, time: T, type: 'task' as const, action: 'state', actor: { id: 'x', name: 'web.1', attributes: {} } });
  m.apply({ at: 2, events: Array.from({ length: 600 }, (_, i) => ev(i)) });
  assert.equal(m.events.length, 500);
  assert.equal(m.events[0]!.seq, '100.0', 'the oldest go first');
});

test('current tasks are the ones that run or should; names and order as service ps shows them', () => {
  assert.equal(isCurrent(task('a', 1, 'running')), true);
  assert.equal(isCurrent(task('a', 1, 'failed', 'shutdown')), false);
  assert.equal(isCurrent(task('a', 1, 'running', 'shutdown')), true, 'still running while it is being stopped');
  assert.equal(taskName(task('a', 3, 'running')), 'web.3');
  assert.equal(taskName(task('a', null, 'running', 'running', 'n1'), new Map([['n1', node('n1', 'h4', 'worker')]])), 'web.h4');
  const older = { ...task('old', 1, 'failed', 'shutdown'), timestamp: '2026-12-06T07:00:00.000Z' };
  const sorted = [older, task('b', 2, 'running'), task('new', 1, 'running')].sort(byTask).map((t) => t.id);
  assert.deepEqual(sorted, ['new', 'old', 'b'], 'a slot’s current task above its history');
  assert.equal(ago('2026-12-06T07:59:30.000Z', Date.parse(T)), '30 s ago');
  assert.equal(ago('2026-12-06T06:00:00.000Z', Date.parse(T)), '2 h ago');
});
