// The pure half of overlay-net/stale-flows.ts: which backends left a table, and what a sweeper asks the
// kernel to delete after each apply (the kernel half is in test/net/mesh.test.ts, "a backend that died").
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { lbTable } from '../../overlay-net/lb.ts';
import { hostPortTable, meshIngressTable, meshNodeTable } from '../../overlay-net/mesh.ts';
import { emptyTable } from '../../overlay-net/nft.ts';
import { dnatTargets, goneTargets, StaleFlowSweeper } from '../../overlay-net/stale-flows.ts';
import { endpoint, net, service, view } from '../net/netlab.ts';

const ING = net('ing', '10.255.0.0/24', { ingress: true, attachable: false });
const APP = net('app', '10.1.0.0/24');

function v(running: Record<string, boolean> = {}) {
  const r = (t: string) => running[t] ?? true;
  return view(
    [ING, APP],
    [
      service('web', { ing: '10.255.0.3', app: '10.1.0.3' }, [{ protocol: 'tcp', targetPort: 80, publishedPort: 8080, publishMode: 'ingress' }]),
      service('hosted', {}, [{ protocol: 'udp', targetPort: 53, publishedPort: 5353, publishMode: 'host' }]),
    ],
    [
      endpoint('web', 'ing', 't1', '10.255.0.11', r('t1')),
      endpoint('web', 'ing', 't2', '10.255.0.12', r('t2')),
      endpoint('web', 'app', 't1', '10.1.0.11', r('t1')),
      endpoint('web', 'app', 't2', '10.1.0.12', r('t2')),
      endpoint('hosted', 'app', 'h1', '10.1.0.9'),
    ],
    '10.255.0.2',
  );
}

describe('dnatTargets', () => {
  test('the backends of the ingress, VIP and host-port tables; the node table only points at the ingress namespace', () => {
    assert.deepEqual([...dnatTargets(meshIngressTable(v()))].sort(), ['10.255.0.11', '10.255.0.12']);
    assert.deepEqual([...dnatTargets(lbTable(v(), [APP.id]))].sort(), ['10.1.0.11', '10.1.0.12']);
    assert.deepEqual([...dnatTargets(hostPortTable(v(), new Map([['h1', '172.31.0.9']]), new Map([['h1', 'hosted']])))], ['172.31.0.9']);
    assert.deepEqual([...dnatTargets(meshNodeTable(v()))], ['169.254.230.2']);
    // Nothing running: reject rules, no target.
    assert.deepEqual([...dnatTargets(meshIngressTable(v({ t1: false, t2: false })))], []);
    assert.deepEqual([...dnatTargets(emptyTable('x'))], []);
  });

  test('goneTargets: what the first set has and the second lacks, sorted', () => {
    assert.deepEqual(goneTargets(new Set(['10.0.0.3', '10.0.0.1', '10.0.0.2']), new Set(['10.0.0.2'])), ['10.0.0.1', '10.0.0.3']);
    assert.deepEqual(goneTargets(new Set(), new Set(['10.0.0.2'])), []);
  });
});

describe('StaleFlowSweeper', () => {
  const recorder = () => {
    const calls: { addrs: readonly string[]; netns: string | null }[] = [];
    const drop = async (addrs: readonly string[], netns: string | null) => {
      calls.push({ addrs, netns });
      return { scanned: 10, deleted: addrs.length };
    };
    return { calls, drop };
  };

  test('the first table is the baseline; later ones sweep exactly the backends they dropped', async () => {
    const { calls, drop } = recorder();
    const swept: string[] = [];
    const s = new StaleFlowSweeper('/run/netns/x', { drop, onSwept: (gone, n) => swept.push(`${gone.join(',')}:${n}`) });
    s.applied(meshIngressTable(v({ t2: false })));
    await s.settled();
    assert.deepEqual(calls, [], 'nothing to compare with yet');
    s.applied(meshIngressTable(v()));
    await s.settled();
    assert.deepEqual(calls, [], 'a backend added: nothing to sweep');
    s.applied(meshIngressTable(v({ t1: false })));
    await s.settled();
    assert.deepEqual(calls, [{ addrs: ['10.255.0.11'], netns: '/run/netns/x' }]);
    s.applied(meshIngressTable(v({ t1: false })));
    await s.settled();
    assert.equal(calls.length, 1, 'the same table again: nothing');
    s.applied(meshIngressTable(v({ t1: false, t2: false })));
    await s.settled();
    assert.deepEqual(calls[1], { addrs: ['10.255.0.12'], netns: '/run/netns/x' });
    assert.equal(s.deleted, 2);
    assert.deepEqual(swept, ['10.255.0.11:1', '10.255.0.12:1'], 'each sweep reported');
    s.reset();
    s.applied(meshIngressTable(v({ t1: false, t2: false })));
    await s.settled();
    assert.equal(calls.length, 2, 'after a reset the next table is a baseline again');
  });

  test('sweeps run one at a time in the process; what leaves a table while its sweep waits joins it', async () => {
    const order: string[] = [];
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let running = 0;
    const drop = async (addrs: readonly string[], netns: string | null) => {
      running++;
      assert.equal(running, 1, 'never two sweeps at once');
      order.push(`${netns}:${addrs.join(',')}`);
      if (order.length === 1) await gate; // the first sweep is slow
      running--;
      return { scanned: 1, deleted: 0 };
    };
    const a = new StaleFlowSweeper('/run/netns/a', { drop });
    const b = new StaleFlowSweeper('/run/netns/b', { drop });
    for (const x of [a, b]) x.applied(meshIngressTable(v()));
    a.applied(meshIngressTable(v({ t1: false })));
    await new Promise((r) => setImmediate(r)); // a's sweep has started and waits on the gate
    b.applied(meshIngressTable(v({ t1: false })));
    b.applied(meshIngressTable(v({ t1: false, t2: false }))); // joins b's waiting sweep
    a.applied(meshIngressTable(v({ t1: false, t2: false }))); // a's first sweep is running: a second one
    release();
    await Promise.all([a.settled(), b.settled()]);
    assert.deepEqual(order, ['/run/netns/a:10.255.0.11', '/run/netns/b:10.255.0.11,10.255.0.12', '/run/netns/a:10.255.0.12']);
  });

  test('a failed sweep is reported, never thrown; a namespace that went away is not an error', async () => {
    const errors: string[] = [];
    const fail = (code: string) => async () => {
      throw Object.assign(new Error(`boom ${code}`), { code });
    };
    const s = new StaleFlowSweeper(null, { drop: fail('EPERM'), onError: (e) => errors.push(e.message) });
    s.applied(lbTable(v(), [APP.id]));
    await s.settled();
    s.applied(lbTable(v({ t2: false }), [APP.id]));
    await s.settled();
    assert.deepEqual(errors, ['deleting unreplied connections to 10.1.0.12: boom EPERM']);
    const gone = new StaleFlowSweeper(null, { drop: fail('ENOENT'), onError: (e) => errors.push(e.message) });
    gone.applied(lbTable(v(), [APP.id]));
    await gone.settled();
    gone.applied(lbTable(v({ t1: false }), [APP.id]));
    await gone.settled();
    assert.equal(errors.length, 1);
  });
});
