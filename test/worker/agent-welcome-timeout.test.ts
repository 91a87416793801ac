// A manager that accepts the agent's connection and never answers its hello (neither a welcome nor a
// redirect) must not hold the agent: it gives up after the welcome timeout and dials again. Before, it
// waited for the session's liveness (45 s). Real TLS WebSockets on loopback.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { WebSocketServer } from 'ws';
import { makeTestCa } from '../helpers/pki.ts';
import { Agent } from '../../worker/agent.ts';

let server: Server;
let wss: WebSocketServer;
let addr = '';
let creds: { key: string; cert: string; ca: string };
const opens: number[] = [];
let answer = false;

before(async () => {
  const ca = makeTestCa();
  const m = ca.issue('m1', { ou: 'manager' });
  const n = ca.issue('n1', { ou: 'worker' });
  server = createServer({ key: m.key, cert: m.cert, ca: ca.caCert, requestCert: true, rejectUnauthorized: true });
  wss = new WebSocketServer({ server });
  wss.on('connection', (ws) => {
    opens.push(Date.now());
    ws.on('message', () => {
      // Silent (a manager being demoted, or wedged) until told to answer.
      if (answer) ws.send(JSON.stringify({ t: 'welcome', nodeId: 'n1', heartbeatPeriodMs: 1000, managers: [], role: 'worker' }));
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  addr = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  creds = { key: n.key, cert: n.cert, ca: ca.caCert };
});

after(async () => {
  for (const c of wss.clients) c.terminate();
  wss.close();
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});

test('no welcome within the timeout: the agent closes that connection and dials again', async () => {
  const logs: string[] = [];
  const agent = new Agent({
    nodeId: 'n1',
    managers: [addr],
    creds: () => creds,
    advertiseAddr: '10.0.0.1',
    hostname: 'n1',
    random: () => 1,
    welcomeTimeoutMs: 300,
    log: (l) => logs.push(l),
  });
  agent.start();
  try {
    const deadline = Date.now() + 10_000;
    while (opens.length < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.ok(opens.length >= 3, `${opens.length} connection(s): the agent stayed on a silent one`);
    assert.ok(
      logs.some((l) => /ended \(4000 no welcome\)/.test(l)),
      logs.join('\n'),
    );
    // A manager that answers keeps the agent: ready, and no more dialling.
    answer = true;
    while (agent.state !== 'ready' && Date.now() < deadline + 5000) await new Promise((r) => setTimeout(r, 20));
    assert.equal(agent.state, 'ready');
    const n = opens.length;
    await new Promise((r) => setTimeout(r, 600));
    assert.equal(opens.length, n, 'a welcomed session is not timed out');
  } finally {
    agent.stop();
  }
});
