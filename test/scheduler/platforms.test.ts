// Placement.Platforms (Docker's, which the CLI fills from /distribution): validated as part of the
// service spec (errors name the field), matched against a node's os/arch with the three spellings of
// one architecture treated as one, and carried from a pending task's template into the scheduler's
// group, so a task whose platform no node has stays pending with that reason.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Draft, Node, Task } from '../../api/objects.ts';
import { supportsPlatform } from '../../manager/scheduler/constraints.ts';
import { collectInput, SchedulerRunner } from '../../manager/scheduler/runner.ts';
import { SpecError, validateServiceSpec } from '../../manager/service/spec.ts';
import { Store } from '../../manager/store/store.ts';

const spec = (platforms: unknown) => ({
  name: 'web',
  mode: { replicated: { replicas: 1 } },
  task: { image: 'busybox:1.36', placement: { platforms } },
});

function fieldOf(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    if (e instanceof SpecError) return `${e.field}: ${e.message}`;
    throw e;
  }
  return 'accepted';
}

test('platforms: stored as given; every entry needs os or arch; bad names are refused by field', () => {
  const ok = validateServiceSpec(spec([{ os: 'linux', arch: 'amd64' }, { arch: 'arm64/v8' }]));
  assert.deepEqual(ok.task.placement?.platforms, [{ os: 'linux', arch: 'amd64' }, { arch: 'arm64/v8' }]);
  assert.equal(validateServiceSpec(spec([])).task.placement, undefined, 'an empty list is no placement');
  assert.match(
    fieldOf(() => validateServiceSpec(spec([{}]))),
    /^task\.placement\.platforms\[0\]: .*needs os or arch/,
  );
  assert.match(
    fieldOf(() => validateServiceSpec(spec([{ os: 'linux' }, { os: 'win dows' }]))),
    /^task\.placement\.platforms\[1\]\.os: .*must be a platform name/,
  );
  assert.match(
    fieldOf(() => validateServiceSpec(spec([{ os: 'linux', variant: 'v8' }]))),
    /^task\.placement\.platforms\[0\]\.variant: .*unknown field \(known fields: os, arch\)/,
  );
  assert.match(
    fieldOf(() => validateServiceSpec(spec([{ arch: 64 }]))),
    /^task\.placement\.platforms\[0\]\.arch: .*must be a string/,
  );
  assert.match(
    fieldOf(() => validateServiceSpec(spec('linux/amd64'))),
    /^task\.placement\.platforms: /,
  );
});

test('platforms: amd64, x86_64 and x64 are one architecture; os compares case-insensitively; empty = any', () => {
  for (const arch of ['amd64', 'x86_64', 'x64', 'AMD64']) assert.ok(supportsPlatform([{ os: 'linux', arch }], 'linux', 'x64'), arch);
  assert.ok(supportsPlatform([{ os: 'Linux', arch: 'aarch64' }], 'linux', 'arm64'));
  assert.ok(supportsPlatform([], 'linux', 'x64'));
  assert.ok(supportsPlatform([{ os: 'windows' }, { arch: 'amd64' }], 'linux', 'x64'), 'any one entry');
  assert.ok(!supportsPlatform([{ os: 'linux', arch: 'arm64' }], 'linux', 'x64'));
  assert.ok(!supportsPlatform([{ os: 'windows', arch: 'amd64' }], 'linux', 'x64'));
});

function node(id: string, arch: string): Draft<Node> {
  return {
    id,
    kind: 'node',
    spec: { labels: {}, availability: 'active', role: 'worker' },
    description: { hostname: id, platform: { os: 'linux', arch }, resources: { nanoCpus: 4e9, memoryBytes: 8 << 30 }, engineVersion: '', addr: '10.0.0.1' },
    status: { state: 'ready', message: '', addr: '10.0.0.1' },
  };
}

function task(id: string, serviceId: string, platforms: { os?: string; arch?: string }[]): Draft<Task> {
  return {
    id,
    kind: 'task',
    serviceId,
    slot: 1,
    spec: { image: 'busybox:1.36', placement: { platforms } },
    specVersion: 1,
    desiredState: 'running',
    status: { state: 'pending', timestamp: '2025-01-01T00:00:00.000Z', message: 'pending task scheduling' },
    serviceAnnotations: { name: serviceId, labels: {} },
    networks: [],
  };
}

test('platforms: the runner places by them; no matching node leaves the task pending with the reason', async (t) => {
  const store = new Store({});
  await store.update((tx) => {
    tx.create(node('x86', 'x64'));
    tx.create(node('arm', 'aarch64'));
    tx.create(task('t-amd', 'amd', [{ os: 'linux', arch: 'amd64' }]));
    tx.create(task('t-arm', 'arm', [{ arch: 'arm64' }]));
    tx.create(task('t-s390', 's390', [{ os: 'linux', arch: 's390x' }]));
  });
  const groups = store.view((tx) => collectInput(tx, [], 0)).input.groups;
  assert.deepEqual(groups.find((g) => g.serviceId === 'amd')?.platforms, [{ os: 'linux', arch: 'amd64' }]);
  const runner = new SchedulerRunner(store, { log: () => {} });
  t.after(() => runner.stop());
  runner.start();
  await runner.idle();
  const get = (id: string) => store.view((tx) => tx.get('task', id))!;
  assert.equal(get('t-amd').nodeId, 'x86');
  assert.equal(get('t-arm').nodeId, 'arm');
  assert.equal(get('t-s390').nodeId, undefined);
  assert.equal(get('t-s390').status.state, 'pending');
  assert.match(get('t-s390').status.message + (get('t-s390').status.err ?? ''), /2 nodes do not support platform linux\/s390x/);
});
