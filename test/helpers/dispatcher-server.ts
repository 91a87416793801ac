// A Dispatcher served on a loopback mutual-TLS https server (the manager's secure port, reduced to the
// dispatcher's upgrade), for tests that run the real dispatcher against real TLS WebSockets. Clients are
// checked by the dispatcher (certProblem), so the server asks for a certificate but does not refuse.
import { once } from 'node:events';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { DISPATCHER_PATH } from '../../api/dispatcher.ts';
import type { Dispatcher } from '../../manager/dispatcher/dispatcher.ts';
import type { Draft, Node } from '../../api/objects.ts';

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
