// Which task updates the dispatcher pushes to the task's node (manager/dispatcher/dispatcher.ts
// assignmentChanged): the node's own status reports between live states are not echoed back; anything
// that changes what the node must run is.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { assignmentChanged } from '../../manager/dispatcher/dispatcher.ts';
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
});
