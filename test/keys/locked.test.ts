// Locked-manager notices (manager/keys/locked.ts): believed only for a manager, from the address it is
// recorded at, while it is unreachable, and only for LOCKED_TTL_MS.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer } from 'node:https';
import { LOCKED_TTL_MS, LockedNodes, announceLocked } from '../../manager/keys/locked.ts';
import { makeTestCa } from '../helpers/pki.ts';
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

describe('announceLocked', () => {
  test('a manager that never answers does not hold back the notices to the others', async () => {
    const ca = makeTestCa();
    const cert = ca.issue('m1', { ou: 'manager' });
    let answered = 0;
    const good = createServer({ key: cert.key, cert: cert.cert }, (req, res) => {
      answered++;
      req.resume();
      res.end('{}');
    });
    const hanging = createServer({ key: cert.key, cert: cert.cert }, (req) => req.resume()); // never answers
    const addrs: string[] = [];
    for (const s of [good, hanging]) {
      s.listen(0, '127.0.0.1');
      await once(s, 'listening');
      addrs.push(`127.0.0.1:${(s.address() as { port: number }).port}`);
    }
    const stop = announceLocked({ nodeId: 'n3', managers: () => addrs, ca: ca.caCert, everyMs: 20, timeoutMs: 150 });
    try {
      // With the 10 s default timeout, the hanging manager held each round: one notice in this time.
      const deadline = Date.now() + 3000;
      while (answered < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      assert.ok(answered >= 3, `the reachable manager got ${answered} notices`);
    } finally {
      stop();
      for (const s of [good, hanging]) {
        s.closeAllConnections();
        s.close();
      }
    }
  });
});
