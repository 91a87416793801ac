// Locked-manager notices (manager/keys/locked.ts): believed only for a manager, from the address it is
// recorded at, while it is unreachable, and only for LOCKED_TTL_MS.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { LOCKED_TTL_MS, LockedNodes } from '../../manager/keys/locked.ts';
import type { Node } from '../../api/objects.ts';

const node = (role: 'manager' | 'worker', addr = '10.0.0.3'): Node =>
  ({
    id: 'n3',
    kind: 'node',
    spec: { labels: {}, availability: 'active', role },
    description: { hostname: 'h3', platform: { os: 'linux', arch: 'x64' }, resources: { nanoCpus: 0, memoryBytes: 0 }, engineVersion: '', addr },
    status: { state: 'down', message: '', addr },
  }) as unknown as Node;

describe('LockedNodes', () => {
  test('a notice from the manager address, while unreachable, counts for LOCKED_TTL_MS', () => {
    const l = new LockedNodes();
    assert.equal(l.report('n3', '::ffff:10.0.0.3', node('manager'), false, 1000), null);
    assert.equal(l.isLocked('n3', 1000 + LOCKED_TTL_MS), true);
    assert.equal(l.isLocked('n3', 1001 + LOCKED_TTL_MS), false, 'expired');
    assert.equal(l.isLocked('n3', 1000), false, 'forgotten once expired');
  });

  test('refused: unknown node, a worker, another address, a reachable manager', () => {
    const l = new LockedNodes();
    assert.match(String(l.report('n3', '10.0.0.3', undefined, false, 0)), /no such node/);
    assert.match(String(l.report(42, '10.0.0.3', node('manager'), false, 0)), /no such node/);
    assert.match(String(l.report('n3', '10.0.0.3', node('worker'), false, 0)), /only a manager/);
    assert.match(String(l.report('n3', '10.0.0.9', node('manager'), false, 0)), /address the node is recorded at/);
    assert.match(String(l.report('n3', '10.0.0.3', node('manager'), true, 0)), /reachable/);
    assert.equal(l.isLocked('n3', 0), false, 'nothing refused was remembered');
  });
});
