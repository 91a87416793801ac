// The agent expands service templates on the node before handing tasks to the executor, and the test
// executor walks tasks through the real state sequence (including failures, completions and stops).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Agent } from '../../worker/agent.ts';
import type { Executor } from '../../worker/executor.ts';
import type { TaskAssignment, TaskStatusUpdate } from '../../api/task-status.ts';
import { FakeExecutor } from '../../worker/fake-executor.ts';

class Capture implements Executor {
  seen: TaskAssignment[] = [];
  reconcile(tasks: readonly TaskAssignment[]): void {
    this.seen = [...tasks];
  }
  onStatus(): void {}
  snapshot(): TaskStatusUpdate[] {
    return [];
  }
  async close(): Promise<void> {}
}

test('templates are expanded on the node: env, hostname and mount sources', () => {
  const ex = new Capture();
  const agent = new Agent({
    nodeId: 'node123',
    managers: [],
    creds: () => ({ key: '', cert: '', ca: '' }),
    advertiseAddr: '10.0.0.1',
    hostname: 'h7',
    executor: ex,
  });
  const task: TaskAssignment = {
    id: 'task9',
    serviceId: 'svc1',
    serviceName: 'web',
    slot: 3,
    desiredState: 'running',
    state: 'assigned',
    spec: {
      image: 'nginx',
      env: ['WHO={{.Node.Hostname}}-{{.Task.Slot}}', 'SVC={{ .Service.Name }}'],
      hostname: '{{.Service.Name}}-{{.Task.Slot}}',
      mounts: [{ type: 'bind', source: '/data/{{.Node.ID}}', target: '/data' }],
    },
  };
  (agent as unknown as { onMessage(m: unknown): void }).onMessage({ t: 'assignments', tasks: [task] });
  const got = ex.seen[0]!.spec;
  assert.deepEqual(got.env, ['WHO=h7-3', 'SVC=web']);
  assert.equal(got.hostname, 'web-3');
  assert.equal(got.mounts![0]!.source, '/data/node123');
  agent.stop();
});

test('the test executor runs, fails, completes and stops tasks through the forward-only sequence', async () => {
  const ex = new FakeExecutor(1);
  const states = new Map<string, string[]>();
  ex.onStatus((u) => states.set(u.taskId, [...(states.get(u.taskId) ?? []), u.state]));
  const mk = (id: string, image: string, desiredState: TaskAssignment['desiredState'] = 'running'): TaskAssignment => ({
    id,
    serviceId: 's',
    serviceName: 's',
    desiredState,
    state: 'assigned',
    spec: { image },
  });
  ex.reconcile([mk('ok', 'nginx'), mk('bad', 'fail:5'), mk('job', 'exit0:5', 'complete'), mk('rej', 'reject')]);
  const deadline = Date.now() + 2000;
  while (
    Date.now() < deadline &&
    !(states.get('bad')?.includes('failed') && states.get('job')?.includes('complete') && states.get('ok')?.includes('running'))
  ) {
    await new Promise((r) => setTimeout(r, 5));
  }
  assert.deepEqual(states.get('ok'), ['accepted', 'preparing', 'starting', 'running']);
  assert.deepEqual(states.get('bad'), ['accepted', 'preparing', 'starting', 'running', 'failed']);
  assert.deepEqual(states.get('job'), ['accepted', 'preparing', 'starting', 'running', 'complete']);
  assert.deepEqual(states.get('rej'), ['rejected']);
  ex.reconcile([mk('ok', 'nginx', 'shutdown')]);
  while (Date.now() < deadline + 1000 && !states.get('ok')?.includes('shutdown')) await new Promise((r) => setTimeout(r, 5));
  assert.equal(states.get('ok')!.at(-1), 'shutdown');
  await ex.close();
});
