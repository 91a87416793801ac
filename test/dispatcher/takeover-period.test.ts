// A new leader sizes the heartbeat period by the nodes it takes back, not by the few sessions it has when
// the first of them reconnect: told the configured period, the first 2,000 of 5,000 reconnecting nodes
// heartbeat at 2.5 times the rate the leader is sized for during the reconnect storm, and are Down after
// 3 s of a lagging node's silence instead of 4.5 s. Real mutual-TLS WebSocket on loopback, in-memory store.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { openNodeSession, serveStoreDispatcher, until, joinedNode, type ServedDispatcher } from '../helpers/dispatcher-server.ts';
import { makeTestCa } from '../helpers/pki.ts';
import { heartbeatPeriodFor } from '../../manager/dispatcher/liveness.ts';
import { Store } from '../../manager/store/store.ts';
import type { Cluster, Draft } from '../../api/objects.ts';
import type { WebSocket } from 'ws';
import { testCluster } from '../helpers/cluster.ts';

const NODES = 2_500;
const open: { served: ServedDispatcher[]; sockets: WebSocket[] } = { served: [], sockets: [] };
after(async () => {
  for (const ws of open.sockets) ws.terminate();
  for (const s of open.served) await s.close();
});

test('a new leader of 2,500 nodes tells the first node to reconnect the period sized for all of them', async () => {
  const ca = makeTestCa();
  const store = new Store();
  await store.update((tx) => {
    tx.create(testCluster({ ca: { caCertPem: ca.caCert, caKeyPem: ca.caKey } }) as Draft<Cluster>);
    for (let i = 1; i <= NODES; i++) tx.create(joinedNode(`n${i}`));
  });
  const logs: string[] = [];
  const { served } = await serveStoreDispatcher(store, ca, (l) => logs.push(l));
  open.served.push(served);
  const got: { t: string; heartbeatPeriodMs?: number }[] = [];
  open.sockets.push(await openNodeSession(served, ca, 'n1', (m) => got.push(m)));
  await until(() => got.some((m) => m.t === 'welcome'), 'welcome');
  const period = got.find((m) => m.t === 'welcome')!.heartbeatPeriodMs;
  assert.equal(heartbeatPeriodFor(1000, 1), 1000, 'one session alone would be told the configured period');
  assert.equal(period, heartbeatPeriodFor(1000, NODES));
  assert.equal(period, 1300);
  // The Down deadline follows the same period: 1.3 s + two configured periods, after the takeover grace.
  assert.ok(
    logs.some((l) => /^tracking 2500 node\(s\): Down after \d+ ms without a heartbeat, then 3300 ms$/.test(l)),
    logs.filter((l) => l.startsWith('tracking')).join('\n'),
  );
});
