// Which task updates the dispatcher pushes to the task's node (manager/dispatcher/assignments.ts
// assignmentChanged): the node's own status reports between live states are not echoed back; anything
// that changes what the node must run is. And what a session is told of them (assignments.ts): a full
// set first, then changes only.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { assignmentChanged, assignmentOf, onlyEnded, planAssignments } from '../../manager/dispatcher/assignments.ts';
import type { Task } from '../../api/objects.ts';

const base = {
  id: 't1',
  kind: 'task',
  version: 1,
  createdAt: '',
  updatedAt: '',
  serviceId: 's1',
  slot: 1,
  nodeId: 'n1',
  spec: { image: 'busybox:latest' },
  desiredState: 'running',
  status: { state: 'assigned', timestamp: '', message: '' },
  serviceAnnotations: { name: 'web', labels: {} },
  networks: [],
} as unknown as Task;
const with_ = (patch: Partial<Task>): Task => ({ ...base, ...patch }) as Task;
const state = (s: string) => with_({ status: { ...base.status, state: s } as Task['status'] });

test("the node's own forward reports between live states are not pushed back", () => {
  assert.equal(assignmentChanged(state('assigned'), state('accepted')), false);
  assert.equal(assignmentChanged(state('accepted'), state('preparing')), false);
  assert.equal(assignmentChanged(state('starting'), state('running')), false);
  // Decoded from the log, an unchanged spec is a new object: compared as JSON, not by identity.
  assert.equal(assignmentChanged(state('starting'), { ...state('running'), spec: { image: 'busybox:latest' } } as unknown as Task), false);
});

test('anything the node must act on is pushed', () => {
  assert.equal(assignmentChanged(state('pending'), state('assigned')), true, 'newly live on the node');
  assert.equal(assignmentChanged(state('running'), state('failed')), true, 'finished: leaves the set');
  assert.equal(assignmentChanged(base, with_({ desiredState: 'shutdown' })), true, 'asked to stop');
  assert.equal(assignmentChanged(base, with_({ nodeId: 'n2' })), true, 'moved');
  assert.equal(assignmentChanged(base, { ...base, spec: { image: 'busybox:v2' } } as unknown as Task), true, 'spec');
  assert.equal(assignmentChanged(base, with_({ networks: [{ networkId: 'x', addresses: ['10.0.0.2/24'] }] as unknown as Task['networks'] })), true, 'networks');
  assert.equal(assignmentChanged(base, with_({ slot: 2 })), true, 'slot');
  assert.equal(assignmentChanged(base, with_({ serviceAnnotations: { name: 'web2', labels: {} } })), true, 'service name');
});

test('onlyEnded: the node reported the end of a task it runs, and nothing else changed (sent later)', () => {
  assert.equal(onlyEnded(state('running'), state('shutdown')), true);
  assert.equal(onlyEnded(state('starting'), state('failed')), true);
  assert.equal(
    onlyEnded(
      with_({ desiredState: 'shutdown', status: { ...base.status, state: 'running' } }),
      with_({ desiredState: 'shutdown', status: { ...base.status, state: 'shutdown' } }),
    ),
    true,
  );
  assert.equal(onlyEnded(state('running'), { ...state('shutdown'), desiredState: 'remove' } as Task), false, 'told to go too');
  assert.equal(onlyEnded(state('running'), { ...state('orphaned'), nodeId: 'n2' } as Task), false, 'moved');
  assert.equal(onlyEnded(state('pending'), state('shutdown')), false, 'never was on the node');
  assert.equal(onlyEnded(state('starting'), state('running')), false, 'still live');
  assert.equal(onlyEnded(state('running'), { ...state('failed'), spec: { image: 'busybox:v2' } } as unknown as Task), false, 'spec');
});

// ------------------------------------------------------------------ what a session is told (assignments.ts)

const frozen = (id: string, patch: Partial<Task> = {}): Task => Object.freeze({ ...base, id, ...patch }) as Task;
const ids = (ts: { id: string }[]) => ts.map((t) => t.id).sort();

test('planAssignments: a full set first; then only added, changed and removed tasks; nothing when nothing changed', () => {
  const a = frozen('a');
  const b = frozen('b');
  const first = planAssignments(null, [
    { task: a, desired: 'running' },
    { task: b, desired: 'running' },
  ]);
  assert.equal(first.message?.t, 'assignments');
  assert.deepEqual(ids((first.message as { tasks: { id: string }[] }).tasks), ['a', 'b']);

  const same = planAssignments(first.next, [
    { task: a, desired: 'running' },
    { task: b, desired: 'running' },
  ]);
  assert.equal(same.message, null, 'the same objects told the same: no message');

  const a2 = frozen('a', { desiredState: 'shutdown' });
  const c = frozen('c');
  const ch = planAssignments(same.next, [
    { task: a2, desired: 'shutdown' },
    { task: c, desired: 'running' },
  ]);
  assert.equal(ch.message?.t, 'assignment-changes');
  const m = ch.message as { set: { id: string; desiredState: string }[]; remove: string[] };
  assert.deepEqual(ids(m.set), ['a', 'c']);
  assert.equal(m.set.find((t) => t.id === 'a')!.desiredState, 'shutdown');
  assert.deepEqual(m.remove, ['b']);
  assert.deepEqual([...ch.next.keys()].sort(), ['a', 'c']);
});

test('planAssignments: a stop held for the drain and then released is sent again; the set matches a full one', () => {
  const t = frozen('a', { desiredState: 'shutdown', status: { ...base.status, state: 'running' } });
  const held = planAssignments(null, [{ task: t, desired: 'running' }]);
  assert.equal((held.message as { tasks: { desiredState: string }[] }).tasks[0]!.desiredState, 'running');
  const released = planAssignments(held.next, [{ task: t, desired: 'shutdown' }]);
  const m = released.message as { t: string; set: unknown[] };
  assert.equal(m.t, 'assignment-changes');
  // What a change says of a task is exactly what a full set says of it.
  assert.deepEqual(m.set, [assignmentOf(t, 'shutdown')]);
  assert.deepEqual(m.set, (planAssignments(null, [{ task: t, desired: 'shutdown' }]).message as { tasks: unknown[] }).tasks);
});

test("planAssignments: a task the node reported on since is not sent again with the node's next change", () => {
  const a = frozen('a');
  const first = planAssignments(null, [{ task: a, desired: 'running' }]);
  // The node reported a's progress (new stored objects, same assignment); then it got a new task b.
  const aRunning = frozen('a', { status: { ...base.status, state: 'running' } });
  const b = frozen('b');
  const next = planAssignments(first.next, [
    { task: aRunning, desired: 'running' },
    { task: b, desired: 'running' },
  ]);
  assert.deepEqual(ids((next.message as { set: { id: string }[] }).set), ['b'], 'only the new task');
  assert.equal(next.next.get('a')!.obj, aRunning, 'kept as last stored, so a later change compares with it');
  // A later change to a (told to stop) goes out, with the state the managers recorded.
  const aStop = frozen('a', { desiredState: 'shutdown', status: { ...base.status, state: 'running' } });
  const stop = planAssignments(next.next, [
    { task: aStop, desired: 'shutdown' },
    { task: b, desired: 'running' },
  ]);
  assert.deepEqual((stop.message as { set: unknown[] }).set, [assignmentOf(aStop, 'shutdown')]);
  // A full set (a new session) carries every recorded state.
  assert.equal((planAssignments(null, [{ task: aRunning, desired: 'running' }]).message as { tasks: { state: string }[] }).tasks[0]!.state, 'running');
});
