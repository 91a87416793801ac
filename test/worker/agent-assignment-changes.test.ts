// The agent's side of 'assignment-changes' (manager/dispatcher/assignments.ts): it names the feature in
// its hello, takes the session's full set, applies the changes that follow to it, and hands its
// executor the whole result each time. Changes that come before a full set on a session are ignored
// (acting on them would stop every task they do not name). Real TLS WebSockets on loopback.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { agentOf, untilLogged, welcomingManager } from '../helpers/fake-manager.ts';
import type { Executor } from '../../worker/executor.ts';
import type { TaskAssignment } from '../../api/task-status.ts';

const { fake, hellos, session } = welcomingManager();

const task = (id: string, desiredState: 'running' | 'shutdown' = 'running', image = 'nginx'): TaskAssignment => ({
  id,
  serviceId: 's1',
  serviceName: 'web',
  slot: 1,
  spec: { image, env: ['HOST={{.Node.Hostname}}'] },
  desiredState,
  state: 'assigned',
});

test('full set, then changes applied to it; changes before a full set are ignored', async () => {
  const calls: TaskAssignment[][] = [];
  const executor: Executor = {
    reconcile: (tasks) => void calls.push([...tasks]),
    onStatus: () => {},
    snapshot: () => [],
    close: async () => {},
  };
  const logs: string[] = [];
  const agent = agentOf(fake(), { executor, log: (l) => logs.push(l) });
  const until = (what: string, cond: () => boolean) => untilLogged(what, cond, logs);
  agent.start();
  try {
    await until('ready', () => agent.state === 'ready');
    assert.ok(hellos[0]?.features?.includes('assignment-changes'), 'the hello names the feature');
    const send = (m: unknown) => session()!.send(JSON.stringify(m));
    // Changes before any full set on this session: nothing reaches the executor.
    send({ t: 'assignment-changes', set: [task('x')], remove: [] });
    send({ t: 'assignments', tasks: [task('a'), task('b')] });
    await until('the full set', () => calls.length === 1);
    assert.deepEqual(
      calls[0]!.map((t) => t.id),
      ['a', 'b'],
    );
    assert.ok(logs.some((l) => /assignment changes before a full set/.test(l)));
    assert.deepEqual(calls[0]![0]!.spec.env, ['HOST=n1'], 'templates are expanded');
    send({ t: 'assignment-changes', set: [task('c'), task('a', 'shutdown')], remove: ['b', 'not-there'] });
    await until('the changes', () => calls.length === 2);
    const now = new Map(calls[1]!.map((t) => [t.id, t]));
    assert.deepEqual([...now.keys()].sort(), ['a', 'c']);
    assert.equal(now.get('a')!.desiredState, 'shutdown');
    assert.deepEqual(now.get('c')!.spec.env, ['HOST=n1'], 'templates of changed tasks are expanded too');
    // Malformed changes are ignored, not thrown at the session.
    send({ t: 'assignment-changes', set: 'nope' });
    send({ t: 'assignment-changes', set: [], remove: ['c'] });
    await until('the next changes', () => calls.length === 3);
    assert.deepEqual(
      calls[2]!.map((t) => t.id),
      ['a'],
    );
    assert.equal(agent.state, 'ready');
  } finally {
    agent.stop();
  }
});
