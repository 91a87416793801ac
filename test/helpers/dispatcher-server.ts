// A Dispatcher served on a loopback mutual-TLS https server (the manager's secure port, reduced to the
// dispatcher's upgrade), for tests that run the real dispatcher against real TLS WebSockets. Clients are
// checked by the dispatcher (certProblem), so the server asks for a certificate but does not refuse.
import { once } from 'node:events';
import { WebSocket } from 'ws';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { DISPATCHER_PATH } from '../../api/dispatcher.ts';
import { Dispatcher } from '../../manager/dispatcher/dispatcher.ts';
import { Gate } from '../../manager/api/gate.ts';
import { Store } from '../../manager/store/store.ts';
import type { Cluster, Draft, Node } from '../../api/objects.ts';
import { net, node, svc } from '../allocator/fixtures.ts';
import { testCluster } from './cluster.ts';
import { soleLeader } from './leader.ts';
import type { TestCa } from './pki.ts';

export interface ServedDispatcher {
  server: Server;
  /** host:port, as an agent's manager list names it. */
  addr: string;
  /** wss URL of the dispatcher path. */
  url: string;
  /** Stops the dispatcher and the server, dropping open connections. */
  close(): Promise<void>;
}

/** Serves `d` (leading) with `tls` (the manager's key and certificate, the CA or CAs clients chain to). */
export async function serveDispatcher(d: Dispatcher, tls: { key: string; cert: string; ca: string | string[] }): Promise<ServedDispatcher> {
  const server = createServer({ key: tls.key, cert: tls.cert, ca: tls.ca, requestCert: true, rejectUnauthorized: false });
  server.on('upgrade', (req, socket, head) => {
    if (!d.handleUpgrade(req, socket, head)) socket.destroy();
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const addr = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  d.startLeading();
  return {
    server,
    addr,
    url: `wss://${addr}${DISPATCHER_PATH}`,
    async close() {
      d.stop();
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    },
  };
}

/** The overlay of the network-view tests: net1, VNI 4097, 10.0.1.0/24. */
export const NET1 = net('net1', { allocation: { vni: 4097, subnets: [{ subnet: '10.0.1.0/24', gateway: '10.0.1.1' }] } });
/** A task's attachment to NET1 at `ip`. */
export const onNet1 = (ip: string) => [{ networkId: 'net1', addresses: [`${ip}/24`] }];

/**
 * The store of the network-view tests: the cluster (with `ca`), nodes n1..n`nodes` at 192.0.2.1.., NET1
 * and the service `web` on it, then `tasks` (each test's own), in one transaction.
 */
export async function storeOnNet1(ca: TestCa, nodes: number, tasks: readonly object[]): Promise<Store> {
  const store = new Store();
  await store.update((tx) => {
    tx.create(testCluster({ ca: { caCertPem: ca.caCert, caKeyPem: ca.caKey } }) as Draft<Cluster>);
    for (let i = 1; i <= nodes; i++) tx.create({ ...node(`n${i}`, { addr: `192.0.2.${i}` }) } as never);
    tx.create({ ...NET1 } as never);
    tx.create({ ...svc('web', { networks: ['net1'] }) } as never);
    for (const t of tasks) tx.create({ ...t } as never);
  });
  return store;
}

/** A leading Dispatcher over `store` (sole Raft leader, no certificate problems), served with a manager certificate of `ca`. */
export async function serveStoreDispatcher(
  store: Store,
  ca: TestCa,
  log: (line: string) => void = () => {},
): Promise<{ d: Dispatcher; served: ServedDispatcher }> {
  const serverCert = ca.issue('m1', { ou: 'manager' });
  const { raft, members } = soleLeader();
  const d = new Dispatcher({ store, raft, gate: new Gate(raft, store, members, 1000), members, clusterId: 'c', certProblem: () => null, log });
  return { d, served: await serveDispatcher(d, { key: serverCert.key, cert: serverCert.cert, ca: ca.caCert }) };
}

/** A node as `join` records it, before its first hello (for a store the dispatcher serves). */
export function joinedNode(id: string): Draft<Node> {
  return {
    id,
    kind: 'node',
    spec: { labels: {}, availability: 'active', role: 'worker' },
    description: { hostname: id, platform: { os: 'linux', arch: 'x64' }, resources: { nanoCpus: 0, memoryBytes: 0 }, engineVersion: '', addr: '10.0.0.1' },
    status: { state: 'unknown', message: 'joined', addr: '10.0.0.1' },
  };
}

/** The description a node's hello carries. */
export const helloDescription = (hostname: string) => ({
  hostname,
  platform: { os: 'linux', arch: 'x64' },
  resources: { nanoCpus: 2e9, memoryBytes: 2 ** 30 },
  engineVersion: 'shoal-test',
  addr: '10.0.0.9',
});

/** Polls `cond` every 5 ms (session tests wait for messages in flight); throws naming `what` after `ms`. */
export async function until(cond: () => boolean, what: string, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/**
 * A worker's session to `served`: a certificate of `ca` for `id`, the socket open, `onMessage` called with
 * every message the dispatcher sends (parsed), and the hello sent. The caller keeps and ends the socket.
 */
export async function openNodeSession(served: ServedDispatcher, ca: TestCa, id: string, onMessage: (m: any) => void, features?: string[]): Promise<WebSocket> {
  const c = ca.issue(id, { ou: 'worker' });
  const ws = new WebSocket(served.url, { key: c.key, cert: c.cert, ca: ca.caCert });
  ws.on('error', () => {});
  ws.on('message', (data) => onMessage(JSON.parse(String(data))));
  await once(ws, 'open');
  ws.send(JSON.stringify({ t: 'hello', description: helloDescription(id), ...(features ? { features } : {}) }));
  return ws;
}
