// The stop drain (manager/dispatcher/drain.ts): a running task on a network is told to stop only after
// every node has acknowledged a NetView without it, or after DRAIN_MAX_MS. The pure state machine, then
// the real Dispatcher over mutual-TLS WebSockets on loopback with an in-memory store: what each node is
// sent, and when.
import { onNet1, openNodeSession, serveStoreDispatcher, storeOnNet1, until, type ServedDispatcher } from '../helpers/dispatcher-server.ts';
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { WebSocket } from 'ws';
import { makeTestCa, type TestCa } from '../helpers/pki.ts';
import type { Dispatcher } from '../../manager/dispatcher/dispatcher.ts';
import { DRAIN_MAX_MS, StopDrain } from '../../manager/dispatcher/drain.ts';
import { validateAgentMessage } from '../../manager/dispatcher/validate.ts';
import type { Store } from '../../manager/store/store.ts';
import type { Task } from '../../api/objects.ts';
import { task } from '../allocator/fixtures.ts';

describe('StopDrain, the pure state machine', () => {
  const need = (m: Record<string, number>) => () => new Map(Object.entries(m));

  it('nothing to wait for: the stop goes at once, and stays released', () => {
    const d = new StopDrain();
    assert.equal(d.mayStop('t1', 'n1', need({}), 0), true);
    assert.equal(d.mayStop('t1', 'n1', need({ n2: 5 }), 1), true, 'decided once');
    assert.equal(d.held, 0);
    assert.equal(d.stats().immediate, 1);
  });

  it('held until every node has applied its version; only then its node is named', () => {
    const d = new StopDrain();
    assert.equal(d.mayStop('t1', 'n1', need({ n1: 3, n2: 7 }), 0), false);
    assert.equal(d.mayStop('t1', 'n1', need({}), 1), false, 'still held: need() is asked only once');
    assert.deepEqual(d.applied('n2', 6, 2), [], 'an older view does not count');
    assert.deepEqual(d.applied('n1', 3, 3), []);
    assert.deepEqual(d.applied('n2', 9, 4), ['n1'], 'a later view counts');
    assert.equal(d.mayStop('t1', 'n1', need({ n2: 99 }), 5), true);
    assert.deepEqual(d.stats(), { holding: 0, released: { acknowledged: 1, 'node-gone': 0, deadline: 0 }, immediate: 0, heldMs: 4 });
    d.forget('t1');
    assert.equal(d.mayStop('t1', 'n1', need({ n2: 99 }), 3), false, 'forgotten: decided again');
  });

  it('a node that leaves is not waited for; the deadline releases the rest', () => {
    const d = new StopDrain(100);
    d.mayStop('a', 'n1', need({ n2: 1 }), 0);
    d.mayStop('b', 'n3', need({ n4: 1 }), 50);
    assert.deepEqual(d.nodeGone('n2', 30), ['n1']);
    assert.equal(d.nextDeadline(), 150);
    assert.deepEqual(d.overdue(149), []);
    assert.deepEqual(d.expire(149), []);
    assert.deepEqual(d.overdue(150), ['n4']);
    assert.deepEqual(d.expire(150), ['n3']);
    assert.equal(d.nextDeadline(), null);
    assert.equal(d.held, 0);
    assert.deepEqual(d.stats(), { holding: 0, released: { acknowledged: 0, 'node-gone': 1, deadline: 1 }, immediate: 0, heldMs: 30 + 100 });
  });

  it('clear forgets holds and releases alike', () => {
    const d = new StopDrain();
    d.mayStop('a', 'n1', need({ n2: 1 }), 0);
    d.mayStop('b', 'n1', need({}), 0);
    d.clear();
    assert.equal(d.held, 0);
    assert.equal(d.mayStop('b', 'n1', need({ n2: 1 }), 0), false);
  });

  it('the acknowledgement is validated: a non-negative integer version', () => {
    assert.deepEqual(validateAgentMessage({ t: 'network-applied', v: 4, extra: 1 }), { t: 'network-applied', v: 4 });
    for (const v of [-1, 1.5, '3', null, Number.POSITIVE_INFINITY])
      assert.throws(() => validateAgentMessage({ t: 'network-applied', v }), /network-applied\.v/);
  });
});

describe('the dispatcher holds a networked task stop until the nodes have taken it out', () => {
  let ca: TestCa;
  let served: ServedDispatcher;
  let store: Store;
  let d: Dispatcher;
  const sockets: WebSocket[] = [];

  before(async () => {
    ca = makeTestCa();
    store = await storeOnNet1(ca, 2, [
      task('t1', 'web', { state: 'running', nodeId: 'n1', slot: 1, networks: onNet1('10.0.1.5') }),
      task('t2', 'web', { state: 'running', nodeId: 'n2', slot: 2, networks: onNet1('10.0.1.6') }),
      task('t3', 'web', { state: 'running', nodeId: 'n1', slot: 3, networks: onNet1('10.0.1.7') }),
      task('plain', 'web', { state: 'running', nodeId: 'n1', slot: 4 }),
    ]);
    ({ d, served } = await serveStoreDispatcher(store, ca));
  });

  after(async () => {
    for (const ws of sockets) ws.terminate();
    await served?.close();
  });

  /** A node's session; it records every message and acknowledges views only when told to. */
  async function session(id: string) {
    const got: { at: number; m: any }[] = [];
    const ws = await openNodeSession(served, ca, id, (m) => got.push({ at: Date.now(), m }));
    sockets.push(ws);
    const views = () => got.filter((g) => g.m.t === 'network');
    return {
      got,
      lastView: () => views().at(-1)?.m as { v: number; view: { endpoints?: unknown } } | undefined,
      /** Sends an acknowledgement and waits until the dispatcher has handled it. */
      ack: async (v: number) => {
        const before = acks();
        ws.send(JSON.stringify({ t: 'network-applied', v }));
        await until(() => acks() > before, `${id}'s acknowledgement handled`);
      },
      assignments: () => got.filter((g) => g.m.t === 'assignments').length,
      /** The desired state of a task in the last assignments sent. */
      desired: (taskId: string): string | undefined =>
        (got.filter((g) => g.m.t === 'assignments').at(-1)?.m.tasks as { id: string; desiredState: string }[] | undefined)?.find((t) => t.id === taskId)
          ?.desiredState,
    };
  }

  /** Acknowledgements the dispatcher has handled (counted as each is handled, in the same tick). */
  const acks = () => d.stats().messages.byType['network-applied'] ?? 0;
  const holding = () => d.stats().drain.holding;
  /** Is the task a running endpoint (a backend, in DNS) anywhere in the view? */
  const backendIn = (view: unknown, taskId: string): boolean => {
    if (Array.isArray(view)) return view.some((x) => backendIn(x, taskId));
    if (typeof view !== 'object' || view === null) return false;
    const o = view as Record<string, unknown>;
    if (o.taskId === taskId && o.running === true) return true;
    return Object.values(o).some((x) => backendIn(x, taskId));
  };
  const stop = (id: string) =>
    store.update((tx) => {
      const t = tx.get('task', id) as Task;
      tx.update({ ...t, desiredState: 'shutdown' });
    });

  it('the stop goes only after both nodes acknowledged a view without the task; a forged future version counts for nothing', async () => {
    const n1 = await session('n1');
    const n2 = await session('n2');
    await until(() => n1.lastView() !== undefined && n2.lastView() !== undefined && n1.desired('t1') === 'running', 'first views and assignments');
    await n1.ack(n1.lastView()!.v);
    // A version n2 was never sent: counted as the last one it was sent, so it cannot pre-acknowledge views.
    await n2.ack(1_000_000);
    const v1 = n1.lastView()!.v;
    const v2 = n2.lastView()!.v;
    const sent = n1.assignments();

    await stop('t1');
    // Both nodes get a view without t1 at once (not after the 100 ms debounce); n1 keeps running t1.
    await until(() => n1.lastView()!.v > v1 && n2.lastView()!.v > v2, 'views without t1');
    assert.ok(backendIn(n2.got.find((g) => g.m.t === 'network' && g.m.v === v2)!.m.view, 't1'), 'the old view had t1 as a backend');
    assert.ok(!backendIn(n2.lastView()!.view, 't1'), 'the new view has not');
    await until(() => n1.assignments() > sent, 'the assignments that follow the stop');
    assert.equal(n1.desired('t1'), 'running', 'held while no node has acknowledged');
    assert.equal(holding(), 1);
    await n1.ack(n1.lastView()!.v);
    assert.equal(holding(), 1, 'held while n2 has not acknowledged');
    assert.equal(n1.desired('t1'), 'running');
    await n2.ack(n2.lastView()!.v);
    assert.equal(holding(), 0, 'released once both acknowledged');
    await until(() => n1.desired('t1') === 'shutdown', 'the stop sent once both acknowledged');
  });

  it('a node that never acknowledges delays the stop by at most DRAIN_MAX_MS; a task on no network is stopped at once', async () => {
    const [n1] = await Promise.all([session('n1'), session('n2')]);
    await until(() => n1.lastView() !== undefined && n1.desired('t3') === 'running', 'n1 view and assignments');
    await n1.ack(n1.lastView()!.v);
    const t0 = Date.now();
    await stop('t3');
    await stop('plain');
    await until(() => n1.desired('plain') === 'shutdown', 'the plain task stopped');
    assert.equal(n1.desired('t3'), 'running', 'the networked task is held');
    // n2 stays silent; n1 acknowledges its new view at once.
    await until(() => !backendIn(n1.lastView()!.view, 't3'), 'n1 view without t3');
    await n1.ack(n1.lastView()!.v);
    assert.equal(holding(), 1, 'still held for the silent node');
    await until(() => n1.desired('t3') === 'shutdown', 't3 stopped after the deadline', DRAIN_MAX_MS + 3000);
    const waited = Date.now() - t0;
    assert.ok(waited >= DRAIN_MAX_MS - 50, `the stop waited for the silent node (${waited} ms)`);
  });
});
