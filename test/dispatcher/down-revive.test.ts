// A node the leader marked Down because its heartbeats came late, whose session never ended, is ready
// again as soon as it heartbeats: no hello will come to say so (the session is the same), and before
// this it stayed Down for good (at 1,000 simulated nodes, 67 live nodes were left Down after a burst
// of late heartbeats). A node that is gone stays Down. Real mutual-TLS WebSocket on loopback, in-memory
// store; detectDown is called with the clock the test chooses.
import { serveStoreDispatcher, until, joinedNode as node, helloDescription as desc, type ServedDispatcher } from '../helpers/dispatcher-server.ts';
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { WebSocket } from 'ws';
import { makeTestCa, type TestCa } from '../helpers/pki.ts';
import type { Dispatcher } from '../../manager/dispatcher/dispatcher.ts';
import { Store } from '../../manager/store/store.ts';
import type { Cluster, Draft, Node } from '../../api/objects.ts';
import { testCluster } from '../helpers/cluster.ts';

const PERIOD = 200;

/** A served dispatcher over a store holding the cluster (heartbeat period PERIOD) and these nodes. */
async function dispatcherWith(nodeIds: readonly string[], logs: string[]): Promise<{ ca: TestCa; store: Store; d: Dispatcher; served: ServedDispatcher }> {
  const ca = makeTestCa();
  const store = new Store();
  await store.update((tx) => {
    const c = testCluster({ ca: { caCertPem: ca.caCert, caKeyPem: ca.caKey } }) as Draft<Cluster>;
    tx.create({ ...c, spec: { ...c.spec, dispatcher: { heartbeatPeriodMs: PERIOD } } });
    for (const id of nodeIds) tx.create(node(id));
  });
  const { d, served } = await serveStoreDispatcher(store, ca, (l) => logs.push(l));
  return { ca, store, d, served };
}

describe('a node marked Down that heartbeats again on its session', () => {
  let ca: TestCa;
  let served: ServedDispatcher;
  let url: string;
  let store: Store;
  let d: Dispatcher;
  const sockets: WebSocket[] = [];
  const logs: string[] = [];

  before(async () => {
    ({ ca, store, d, served } = await dispatcherWith(['n1', 'n2'], logs));
    url = served.url;
  });

  after(async () => {
    for (const ws of sockets) ws.terminate();
    await served?.close();
  });

  async function session(id: string): Promise<WebSocket> {
    const c = ca.issue(id, { ou: 'worker' });
    const ws = new WebSocket(url, { key: c.key, cert: c.cert, ca: ca.caCert });
    ws.on('error', () => {});
    sockets.push(ws);
    await once(ws, 'open');
    ws.send(JSON.stringify({ t: 'hello', description: desc(id) }));
    await until(() => state(id) === 'ready', `${id} ready`);
    return ws;
  }

  const state = (id: string) => (store.view((tx) => tx.get('node', id)) as Node).status.state;

  it('the configured period is announced to a small cluster', () => {
    assert.equal(d.heartbeatPeriod(), PERIOD);
  });

  it('late heartbeats: Down; the next heartbeat on the same session: ready again', async () => {
    const ws1 = await session('n1');
    const ws2 = await session('n2');
    // Both silent for longer than 3 periods: both Down.
    await d.detectDown(Date.now() + 4 * PERIOD);
    assert.equal(state('n1'), 'down');
    assert.equal(state('n2'), 'down');
    // n1 heartbeats again on its session; n2's agent is gone (its connection closed).
    ws2.terminate();
    await until(() => !d.hasSession('n2'), 'n2 session gone');
    const heard = d.stats().messages.byType['hb'] ?? 0;
    ws1.send(JSON.stringify({ t: 'hb' }));
    await until(() => (d.stats().messages.byType['hb'] ?? 0) > heard, 'the heartbeat heard');
    await d.detectDown(Date.now());
    assert.equal(state('n1'), 'ready', 'a live node is not left Down');
    assert.equal(state('n2'), 'down', 'a node without a session stays Down');
    assert.ok(
      logs.some((l) => /marked down heartbeat again: ready/.test(l)),
      logs.join('\n'),
    );
  });
});

describe('nodes marked Down, and ready again, in more than one transaction', () => {
  let ca: TestCa;
  let served: ServedDispatcher;
  let store: Store;
  let d: Dispatcher;
  const sockets: WebSocket[] = [];
  const ids = ['n1', 'n2', 'n3', 'n4', 'n5'];

  before(async () => {
    ({ ca, store, d, served } = await dispatcherWith(ids, []));
  });

  after(async () => {
    for (const ws of sockets) ws.terminate();
    await served?.close();
  });

  it('five nodes that fit the store two by two: all Down, then all ready again', async () => {
    for (const id of ids) {
      const c = ca.issue(id, { ou: 'worker' });
      const ws = new WebSocket(served.url, { key: c.key, cert: c.cert, ca: ca.caCert });
      ws.on('error', () => {});
      sockets.push(ws);
      await once(ws, 'open');
      ws.send(JSON.stringify({ t: 'hello', description: desc(id) }));
    }
    const state = (id: string) => (store.view((tx) => tx.get('node', id)) as Node).status.state;
    await until(() => ids.every((id) => state(id) === 'ready'), 'all ready');
    // From here a transaction holds two node updates at most (at 5,000 nodes, 2,000 of them were 2 MB).
    const size = JSON.stringify(store.view((tx) => tx.get('node', 'n1'))).length;
    (store as { maxTxBytes: number }).maxTxBytes = Math.floor(2.5 * size);
    const before = store.view((tx) => tx.index);
    await d.detectDown(Date.now() + 4 * PERIOD);
    assert.deepEqual(
      ids.map(state),
      ids.map(() => 'down'),
    );
    assert.ok(store.view((tx) => tx.index) - before >= 3, 'five updates in three transactions or more');
    for (const ws of sockets) ws.send(JSON.stringify({ t: 'hb' }));
    await until(() => (d.stats().messages.byType['hb'] ?? 0) >= ids.length, 'the heartbeats heard');
    await d.detectDown(Date.now());
    assert.deepEqual(
      ids.map(state),
      ids.map(() => 'ready'),
    );
  });
});
