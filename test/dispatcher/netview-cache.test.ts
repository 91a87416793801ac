// The dispatcher keeps one network index between store changes (dispatcher.ts netIndex) instead of
// building one per hello. What must hold: a node that says hello after a change sees that change, and
// nodes already connected are sent it too. Real Dispatcher over mutual-TLS WebSockets on loopback, with
// an in-memory store.
import { after, before, describe, it } from 'node:test';
import type { WebSocket } from 'ws';
import { onNet1, openNodeSession, serveStoreDispatcher, storeOnNet1, until, type ServedDispatcher } from '../helpers/dispatcher-server.ts';
import { makeTestCa, type TestCa } from '../helpers/pki.ts';
import type { Store } from '../../manager/store/store.ts';
import { node, task } from '../allocator/fixtures.ts';
import { applyAddrChange } from '../../worker/netview-addrs.ts';

/**
 * For a describe block: a leading dispatcher over a store of `nodes` nodes with `tasks` on net1, served
 * before its tests and closed after them with the sessions they opened.
 */
function servedOnNet1(nodes: number, tasks: () => object[]): { ca: TestCa; served: ServedDispatcher; store: Store; sockets: WebSocket[] } {
  const h = { sockets: [] as WebSocket[] } as { ca: TestCa; served: ServedDispatcher; store: Store; sockets: WebSocket[] };
  before(async () => {
    h.ca = makeTestCa();
    h.store = await storeOnNet1(h.ca, nodes, tasks());
    ({ served: h.served } = await serveStoreDispatcher(h.store, h.ca));
  });
  after(async () => {
    for (const ws of h.sockets) ws.terminate();
    await h.served?.close();
  });
  return h;
}

describe('network views from the cached index', () => {
  // A node's view covers the networks its own tasks are on: one task each.
  const h = servedOnNet1(3, () => [
    task('t1', 'web', { state: 'running', nodeId: 'n1', slot: 1, networks: onNet1('10.0.1.5') }),
    task('t2', 'web', { state: 'running', nodeId: 'n2', slot: 2, networks: onNet1('10.0.1.6') }),
    task('t3', 'web', { state: 'running', nodeId: 'n3', slot: 3, networks: onNet1('10.0.1.7') }),
  ]);

  /** A node's session: the views it was sent, newest last. */
  async function session(id: string) {
    const views: { endpoints?: { taskId?: string; addr?: string }[] }[] = [];
    h.sockets.push(
      await openNodeSession(h.served, h.ca, id, (m) => {
        if (m.t === 'network') views.push(m.view);
      }),
    );
    const tasks = () => (views.at(-1)?.endpoints ?? []).map((e) => e.taskId).sort();
    return { views, tasks };
  }

  it('a hello after a change sees it; sessions already open are sent it', async () => {
    const n1 = await session('n1');
    await until(() => n1.tasks().join() === 't1,t2,t3', 'n1 sees t1-t3');
    // The index now exists (n1's hello built it). A second hello before any change reuses it.
    const n2 = await session('n2');
    await until(() => n2.tasks().join() === 't1,t2,t3', 'n2 sees t1-t3');

    // A change that alters views: a fourth task on the network.
    await h.store.update((tx) => {
      tx.create({ ...task('t4', 'web', { state: 'running', nodeId: 'n1', slot: 4, networks: onNet1('10.0.1.8') }) } as never);
    });
    // A node saying hello right after it must get the new view, not one from the index built before.
    const n3 = await session('n3');
    await until(() => n3.tasks().join() === 't1,t2,t3,t4', 'n3 sees t1-t4');
    // And the nodes already connected are sent the change.
    await until(() => n1.tasks().join() === 't1,t2,t3,t4' && n2.tasks().join() === 't1,t2,t3,t4', 'n1 and n2 see t4');

    // A removal too: t1 leaves the view of every node.
    await h.store.update((tx) => {
      tx.delete('task', 't1');
    });
    await until(() => [n1, n2, n3].every((n) => n.tasks().join() === 't2,t3,t4'), 'every node sees t2-t4');
  });
});

describe('the view at hello', () => {
  // n1 runs a task on the network; n2 runs nothing (a node that just joined).
  const h = servedOnNet1(2, () => [task('t1', 'web', { state: 'running', nodeId: 'n1', slot: 1, networks: onNet1('10.0.1.5') })]);

  async function kinds(id: string): Promise<string[]> {
    const seen: string[] = [];
    h.sockets.push(await openNodeSession(h.served, h.ca, id, (m) => seen.push(m.t)));
    return seen;
  }

  it('a node without tasks on a network gets its view with the next round; one with such tasks before its assignments', async () => {
    // No index is built yet (nothing asked for a view): n2's hello does not build one for itself.
    const n2 = await kinds('n2');
    await until(() => n2.includes('assignments'), 'n2 has its (empty) set');
    await until(() => n2.includes('network'), 'n2 gets its view with the round');
    // A change drops the index; n1's tasks need their view, and it comes first.
    await h.store.update((tx) => void tx.create({ ...task('t2', 'web', { state: 'running', nodeId: 'n2', slot: 2, networks: onNet1('10.0.1.6') }) } as never));
    const n1 = await kinds('n1');
    await until(() => n1.includes('assignments'), 'n1 has its set');
    const v = n1.indexOf('network');
    if (v < 0 || v > n1.indexOf('assignments')) throw new Error(`n1 was sent ${n1.join(', ')}: its view must come before its assignments`);
  });
});

describe("node addresses to an agent that takes their changes ('netview-addr-changes')", () => {
  const h = servedOnNet1(2, () => [task('t1', 'web', { state: 'running', nodeId: 'n1', slot: 1, networks: onNet1('10.0.1.5') })]);

  it('the first view of a session is whole; then only what changed, which rebuilds the list a whole view has', async () => {
    const n1: any[] = [];
    const n2: any[] = [];
    h.sockets.push(await openNodeSession(h.served, h.ca, 'n1', (m) => m.t === 'network' && n1.push(m), ['netview-addr-changes']));
    h.sockets.push(await openNodeSession(h.served, h.ca, 'n2', (m) => m.t === 'network' && n2.push(m)));
    await until(() => n1.length >= 1 && n2.length >= 1, 'both have a view');
    const first = n1[0];
    if (!Array.isArray(first.view.nodeAddrs) || !Number.isInteger(first.addrsGen)) throw new Error(`first view: ${JSON.stringify(first)}`);
    let have: { gen: number; list: readonly string[] } = { gen: first.addrsGen, list: first.view.nodeAddrs };
    // A node joins (a new address): n1 is sent the change, n2 (no feature) the whole list.
    const k1 = n1.length;
    const k2 = n2.length;
    await h.store.update((tx) => void tx.create({ ...node('n3', { addr: '192.0.2.77' }) } as never));
    await until(() => n1.length > k1 && n2.length > k2, 'both are sent the new address');
    // Every view after the first, in order, as the agent applies them (the first ones may have come while
    // n2 said hello).
    for (const m of n1.slice(1)) {
      if (m.view.nodeAddrs !== undefined || m.addrs === undefined) throw new Error(`not a change: ${JSON.stringify(m)}`);
      have = applyAddrChange(have, m.addrs);
    }
    const change = n1.at(-1).addrs;
    if (JSON.stringify(change.add) !== JSON.stringify(['192.0.2.77']) || change.remove.length !== 0)
      throw new Error(`the last change: ${JSON.stringify(change)}`);
    const whole = n2.at(-1).view.nodeAddrs;
    if (JSON.stringify(have.list) !== JSON.stringify(whole)) throw new Error(`rebuilt ${JSON.stringify(have.list)}, whole ${JSON.stringify(whole)}`);
  });
});
