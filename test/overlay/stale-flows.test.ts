// The pure half of overlay-net/stale-flows.ts: which backends left a table, and what a sweeper asks the
// kernel to delete after each apply (the kernel half is in test/net/mesh.test.ts, "a backend that died").
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { lbTable } from '../../overlay-net/lb.ts';
import { hostPortTable, meshIngressTable, meshNodeTable } from '../../overlay-net/mesh.ts';
import { emptyTable } from '../../overlay-net/nft.ts';
import type { FlowTargets } from '../../overlay-net/netlink.ts';
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
    const kinds: FlowTargets[] = [];
    const drop = async (t: FlowTargets, netns: string | null) => {
      const addrs = [...t.unreplied, ...t.all];
      calls.push({ addrs, netns });
      kinds.push(t);
      return { scanned: 10, deleted: addrs.length };
    };
    return { calls, kinds, drop };
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
    assert.equal(
      swept.reduce((n, x) => n + Number(x.split(':')[1]), 0),
      2,
      'two entries deleted in all',
    );
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
    let started!: () => void;
    const firstStarted = new Promise<void>((r) => (started = r));
    const drop = async (t: FlowTargets, netns: string | null) => {
      started();
      running++;
      assert.equal(running, 1, 'never two sweeps at once');
      order.push(`${netns}:${[...t.unreplied, ...t.all].join(',')}`);
      if (order.length === 1) await gate; // the first sweep is slow
      running--;
      return { scanned: 1, deleted: 0 };
    };
    const a = new StaleFlowSweeper('/run/netns/a', { drop });
    const b = new StaleFlowSweeper('/run/netns/b', { drop });
    for (const x of [a, b]) x.applied(meshIngressTable(v()));
    a.applied(meshIngressTable(v({ t1: false })));
    await firstStarted; // a's sweep is running, held at the gate
    b.applied(meshIngressTable(v({ t1: false })));
    b.applied(meshIngressTable(v({ t1: false, t2: false }))); // joins b's waiting sweep
    a.applied(meshIngressTable(v({ t1: false, t2: false }))); // a's first sweep is running: a second one
    release();
    await Promise.all([a.settled(), b.settled()]);
    assert.deepEqual(order, ['/run/netns/a:10.255.0.11', '/run/netns/b:10.255.0.11,10.255.0.12', '/run/netns/a:10.255.0.12']);
  });

  test('with the view: a withdrawn backend loses its unreplied entries; once gone from the view, all of them', async () => {
    const { kinds, drop } = recorder();
    const s = new StaleFlowSweeper(null, { drop });
    const present = (...ips: string[]) => new Set(ips);
    s.applied(meshIngressTable(v()), present('10.255.0.11', '10.255.0.12'));
    // t1 withdrawn (draining), still in the view: only its unreplied entries.
    s.applied(meshIngressTable(v({ t1: false })), present('10.255.0.11', '10.255.0.12'));
    await s.settled();
    assert.deepEqual(kinds, [{ unreplied: ['10.255.0.11'], all: [] }]);
    // Its task ended and the address was released: every entry left goes.
    s.applied(meshIngressTable(v({ t1: false })), present('10.255.0.12'));
    await s.settled();
    assert.deepEqual(kinds[1], { unreplied: [], all: ['10.255.0.11'] });
    // t2 killed and released in one view: all of its entries at once, no unreplied-only pass.
    s.applied(meshIngressTable(v({ t1: false, t2: false })), present());
    await s.settled();
    assert.deepEqual(kinds[2], { unreplied: [], all: ['10.255.0.12'] });
    assert.equal(kinds.length, 3);
  });

  test('a withdrawn backend back in the table before its sweep runs is left alone', async () => {
    const { kinds, drop } = recorder();
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let started!: () => void;
    const slowStarted = new Promise<void>((r) => (started = r));
    const slow = new StaleFlowSweeper('/run/netns/slow', {
      drop: async () => {
        started();
        await gate;
        return { scanned: 0, deleted: 0 };
      },
    });
    slow.applied(meshIngressTable(v()));
    slow.applied(meshIngressTable(v({ t1: false }))); // occupies the process's one sweep slot
    await slowStarted;
    const s = new StaleFlowSweeper(null, { drop });
    const all = new Set(['10.255.0.11', '10.255.0.12']);
    s.applied(meshIngressTable(v()), all);
    s.applied(meshIngressTable(v({ t2: false })), all); // queued behind the slow sweep
    s.applied(meshIngressTable(v()), all); // t2 is a backend again
    release();
    await Promise.all([slow.settled(), s.settled()]);
    assert.deepEqual(kinds, [], 'nothing swept: its entries are live again');
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
    assert.deepEqual(errors, ['deleting stale connections to 10.1.0.12: boom EPERM']);
    const gone = new StaleFlowSweeper(null, { drop: fail('ENOENT'), onError: (e) => errors.push(e.message) });
    gone.applied(lbTable(v(), [APP.id]));
    await gone.settled();
    gone.applied(lbTable(v({ t1: false }), [APP.id]));
    await gone.settled();
    assert.equal(errors.length, 1);
  });
});
