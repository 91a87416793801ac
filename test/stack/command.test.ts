// The pure parts of `shoal stack` (cli/stack.ts) that meet stored objects: a service as the managers
// store it (image pinned to a digest, secret/config references by id in the task template) must plan
// as unchanged against the file it came from, and as changed when a reference changes; the references
// sent carry the ids found; the listings show Docker's columns.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Service, Task } from '../../api/objects.ts';
import { convertStack } from '../../stack/convert.ts';
import { planDeploy } from '../../stack/plan.ts';
import { existingService, notConverged, specWithFiles, stackListing, stackTaskListing, stepLine } from '../../cli/stack.ts';
import { loadMemory } from './helpers.ts';

const FILE = `services:
  web:
    image: shoal/demo-web:1
    secrets:
      - source: token
        target: app_token
        mode: 0400
    configs:
      - settings
secrets:
  token:
    file: ./token.txt
configs:
  settings:
    file: ./app.conf
`;

const load = (text = FILE) => convertStack(loadMemory({ '/app/s.yml': text, '/app/token.txt': 'x', '/app/app.conf': 'y' }, ['s.yml']), 'app');
const ids = { secrets: new Map([['app_token', 'sec1']]), configs: new Map([['app_settings', 'cfg1']]) };

/** The service as the managers would store it after a deploy of `stack`. */
function stored(stack = load()): Service {
  const s = stack.services[0]!;
  const spec = specWithFiles(s, s.spec, ids);
  return {
    id: 'svc1',
    kind: 'service',
    version: 7,
    createdAt: '',
    updatedAt: '',
    specVersion: 1,
    status: {},
    spec: { ...spec, task: { ...spec.task, image: `${spec.task.image}@sha256:${'a'.repeat(64)}` } },
  } as unknown as Service;
}

describe('shoal stack against stored services', () => {
  it('sends Docker-shaped references with the ids of the objects', () => {
    const spec = specWithFiles(load().services[0]!, load().services[0]!.spec, ids);
    assert.deepEqual(spec.task.secrets, [{ secretId: 'sec1', secretName: 'app_token', target: { name: 'app_token', uid: '0', gid: '0', mode: 0o400 } }]);
    assert.deepEqual(spec.task.configs, [{ configId: 'cfg1', configName: 'app_settings', target: { name: '/settings', uid: '0', gid: '0', mode: 0o444 } }]);
    assert.throws(
      () => specWithFiles(load().services[0]!, load().services[0]!.spec, { secrets: new Map(), configs: ids.configs }),
      /secret app_token \(used by service app_web\) does not exist/,
    );
  });

  it('a pinned image and stored references plan as unchanged; a changed target as an update', () => {
    const stack = load();
    const existing = {
      services: [existingService(stored(), stack, true)],
      networks: [{ id: 'n1', name: 'app_default', labels: { 'com.docker.stack.namespace': 'app' } }],
      secrets: [{ id: 'sec1', name: 'app_token', labels: { 'com.docker.stack.namespace': 'app' } }],
      configs: [{ id: 'cfg1', name: 'app_settings', labels: { 'com.docker.stack.namespace': 'app' } }],
    };
    const plan = planDeploy(stack, existing);
    assert.deepEqual(
      plan.steps.map((s) => `${s.action} ${s.kind} ${s.name}`),
      ['unchanged network app_default', 'unchanged secret app_token', 'unchanged config app_settings', 'unchanged service app_web'],
    );
    const moved = load(FILE.replace('target: app_token', 'target: other'));
    const p2 = planDeploy(moved, { ...existing, services: [existingService(stored(), moved, true)] });
    const step = p2.steps.find((s) => s.kind === 'service')!;
    assert.equal(step.action, 'update');
    assert.deepEqual(step.action === 'update' && step.kind === 'service' ? step.changed : [], ['secrets']);
    assert.equal(stepLine(step), 'Updating service app_web (id: svc1)');
  });

  it('convergence, stack ls and stack ps', () => {
    const svc = (name: string, running: number, desired: number | null, state?: string) =>
      ({
        id: name,
        spec: {
          name,
          mode: desired === null ? { global: {} } : { replicated: { replicas: desired } },
          labels: { 'com.docker.stack.namespace': name.split('_')[0] },
          endpoint: { mode: 'vip', ports: [{ protocol: 'tcp', targetPort: 80, publishedPort: 9000, publishMode: 'host' }] },
        },
        replicas: { running, desired },
        ...(state ? { updateStatus: { state } } : {}),
      }) as never;
    assert.deepEqual(
      notConverged([svc('a_x', 1, 2), svc('a_y', 2, 2), svc('a_z', 2, 2, 'updating'), svc('a_g', 0, null)], ['a_x', 'a_y', 'a_z', 'a_g', 'gone']),
      ['a_x', 'a_z'],
    );
    const ls = stackListing([svc('a_x', 0, 1), svc('a_y', 0, 1), svc('b_z', 0, 1)]);
    assert.deepEqual(
      ls.rows.map((r) => r.cells),
      [
        ['a', '2'],
        ['b', '1'],
      ],
    );
    const task = (id: string, slot: number, created: string, state: string) =>
      ({
        id,
        serviceId: 'a_x',
        slot,
        nodeId: 'n1',
        desiredState: 'running',
        createdAt: created,
        spec: { image: 'img:1@sha256:abc' },
        status: { state, timestamp: '2026-01-01T00:00:00Z' },
      }) as unknown as Task;
    const ps = stackTaskListing(
      [svc('a_x', 1, 1)],
      [task('t1', 1, '1', 'shutdown'), task('t2', 1, '2', 'running')],
      () => 'h1',
      Date.parse('2026-01-01T00:00:05Z'),
    );
    assert.deepEqual(ps.headers, ['ID', 'NAME', 'IMAGE', 'NODE', 'DESIRED STATE', 'CURRENT STATE', 'ERROR', 'PORTS']);
    assert.deepEqual(
      ps.rows.map((r) => r.cells.slice(1)),
      [
        ['a_x.1', 'img:1', 'h1', 'Running', 'Running 5 seconds ago', '', '*:9000->80/tcp'],
        [' \\_ a_x.1', 'img:1', 'h1', 'Running', 'Shutdown 5 seconds ago', '', '*:9000->80/tcp'],
      ],
    );
  });
});
