import { after, before } from 'node:test';
// A stand-in manager for agent tests: a real TLS WebSocket server on loopback with a manager's
// certificate, requiring a client certificate from the same test CA. Each test decides how it answers
// (a follower's redirect, a leader's welcome, silence); the server counts the connections it opened.
import { once } from 'node:events';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { type WebSocket, WebSocketServer } from 'ws';
import { makeTestCa } from './pki.ts';
import { Agent, type AgentOptions } from '../../worker/agent.ts';

export interface FakeManager {
  /** host:port to give the agent as its manager. */
  addr: string;
  /** Credentials of node `n1` (OU worker) from the same CA. */
  creds: { key: string; cert: string; ca: string };
  /** When each connection opened (ms since the epoch). */
  opens: number[];
  close(): Promise<void>;
}

/** Starts the server; `onMessage` gets every message an agent sends on a connection, with that socket. */
export async function startFakeManager(onMessage: (ws: WebSocket, data: string) => void): Promise<FakeManager> {
  const ca = makeTestCa();
  const m = ca.issue('m1', { ou: 'manager' });
  const n = ca.issue('n1', { ou: 'worker' });
  const server: Server = createServer({ key: m.key, cert: m.cert, ca: ca.caCert, requestCert: true, rejectUnauthorized: true });
  const wss = new WebSocketServer({ server });
  const opens: number[] = [];
  wss.on('connection', (ws) => {
    opens.push(Date.now());
    ws.on('message', (data) => onMessage(ws, String(data)));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    addr: `127.0.0.1:${(server.address() as AddressInfo).port}`,
    creds: { key: n.key, cert: n.cert, ca: ca.caCert },
    opens,
    close: async () => {
      for (const c of wss.clients) c.terminate();
      wss.close();
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    },
  };
}

/** The welcome a leader sends node n1. */
export const WELCOME_N1 = JSON.stringify({ t: 'welcome', nodeId: 'n1', heartbeatPeriodMs: 1000, managers: [], role: 'worker' });

/** An agent of node n1 (hostname n1, address 10.0.0.1) whose only manager is `fake`; `opts` adds or overrides. */
export function agentOf(fake: FakeManager, opts: Partial<AgentOptions> = {}): Agent {
  return new Agent({ nodeId: 'n1', managers: [fake.addr], creds: () => fake.creds, advertiseAddr: '10.0.0.1', hostname: 'n1', ...opts });
}

/**
 * For a test file: a fake leader, started before its tests and closed after them, that welcomes node n1
 * on every hello, keeping the hellos and the socket of the last one (the session a test talks on).
 */
export function welcomingManager(): { fake: () => FakeManager; hellos: { features?: string[] }[]; session: () => WebSocket | null } {
  let fake: FakeManager | null = null;
  let session: WebSocket | null = null;
  const hellos: { features?: string[] }[] = [];
  before(async () => {
    fake = await startFakeManager((ws, data) => {
      const m = JSON.parse(data) as { t: string; features?: string[] };
      if (m.t !== 'hello') return;
      hellos.push(m);
      session = ws;
      ws.send(WELCOME_N1);
    });
  });
  after(() => fake?.close());
  return { fake: () => fake!, hellos, session: () => session };
}

/** Polls `cond` every 10 ms for up to 5 s; the timeout names `what` and shows `logs`. */
export async function untilLogged(what: string, cond: () => boolean, logs: readonly string[]): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what}\n${logs.join('\n')}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
