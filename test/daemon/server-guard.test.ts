// The secure port's guards (daemon/server-guard.ts) on a real TLS server on loopback: the per-address
// connection cap, a stalled TLS handshake timing out, an upgrade to a path nobody serves destroyed, an
// upgrade without a client certificate closed at once; and the process guard's verdicts.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:https';
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import type { AddressInfo } from 'node:net';
import { generateKeyPem } from '../../manager/ca/pki.ts';
import { createRootCa } from '../../manager/ca/issue.ts';
import { signLoopback } from '../helpers/pki.ts';
import { DEFAULT_SERVER_LIMITS, guardServer, serverOptions, type GuardStats, type ServerLimits } from '../../daemon/server-guard.ts';
import { classify } from '../../daemon/process-guard.ts';

async function waitFor(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

function closed(s: Socket): Promise<void> {
  return new Promise((r) => (s.destroyed ? r() : s.once('close', () => r())));
}

interface Pki {
  ca: string;
  server: { key: string; cert: string };
  client: { key: string; cert: string };
}

async function makePki(): Promise<Pki> {
  const clusterId = 'guardtest';
  const [ca, sk, ck] = await Promise.all([createRootCa({ clusterId }), generateKeyPem(), generateKeyPem()]);
  const sign = (keyPem: string, nodeId: string, role: 'manager' | 'worker') => signLoopback(ca, keyPem, nodeId, role, clusterId);
  return { ca: ca.certPem, server: { key: sk, cert: sign(sk, 'srv', 'manager') }, client: { key: ck, cert: sign(ck, 'cli', 'worker') } };
}

describe('secure port guards', () => {
  let pki: Pki;
  let server: Server;
  let stats: GuardStats;
  let port: number;
  const claimedUpgrades: string[] = [];
  const limits: ServerLimits = { ...DEFAULT_SERVER_LIMITS, maxConnectionsPerIp: 4, handshakeTimeoutMs: 300 };
  const sockets = new Set<Socket>();

  before(async () => {
    pki = await makePki();
    server = createServer({ ...pki.server, ca: pki.ca, requestCert: true, rejectUnauthorized: false, ...serverOptions(limits) }, (_req, res) => res.end('ok'));
    stats = guardServer(server, (p) => p === '/ws', limits).stats;
    // The endpoint for the claimed path answers like a WebSocket server would.
    server.on('upgrade', (req, socket) => {
      if (socket.destroyed) return;
      claimedUpgrades.push(req.url ?? '');
      socket.end('HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: test\r\n\r\n');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    port = (server.address() as AddressInfo).port;
  });

  after(async () => {
    for (const s of sockets) s.destroy();
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  });

  const raw = (): Promise<Socket> =>
    new Promise((resolve, reject) => {
      const s = netConnect(port, '127.0.0.1', () => resolve(s));
      s.on('error', () => {});
      s.once('error', reject);
      sockets.add(s);
    });

  const tls = (withCert: boolean): Promise<TLSSocket> =>
    new Promise((resolve, reject) => {
      const s = tlsConnect({ host: '127.0.0.1', port, ca: pki.ca, ...(withCert ? pki.client : {}), checkServerIdentity: () => undefined }, () => resolve(s));
      s.on('error', () => {});
      s.once('error', reject);
      sockets.add(s);
    });

  const upgrade = (s: Socket, path: string) => s.write(`GET ${path} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n`);

  it('times out a TLS handshake that never starts', async () => {
    const s = await raw();
    const t0 = Date.now();
    await Promise.race([closed(s), new Promise((_, rej) => setTimeout(() => rej(new Error('a silent connection stayed open for 5 s')), 5000))]);
    assert.ok(Date.now() - t0 < 3000, `closed after ${Date.now() - t0} ms`);
    await waitFor(() => stats.tlsErrors >= 1, 2000, 'the TLS error to be counted');
  });

  it('destroys an upgrade to a path nobody serves, and leaves a claimed one to its endpoint', async () => {
    const s = await tls(true);
    upgrade(s, '/anything');
    await closed(s);
    assert.equal(stats.unmatchedUpgrades, 1);
    const ok = await tls(true);
    let answer = '';
    ok.on('data', (d: Buffer) => (answer += d.toString()));
    upgrade(ok, '/ws');
    await closed(ok);
    assert.match(answer, /^HTTP\/1.1 101/);
    assert.deepEqual(claimedUpgrades, ['/ws']);
  });

  it('closes at once an upgrade without a client certificate, even to a claimed path', async () => {
    const s = await tls(false);
    let answer = '';
    s.on('data', (d: Buffer) => (answer += d.toString()));
    upgrade(s, '/ws');
    await closed(s);
    assert.equal(answer, '', 'nothing is said to an anonymous upgrade');
    assert.equal(stats.anonymousUpgrades, 1);
    assert.deepEqual(claimedUpgrades, ['/ws'], 'the endpoint never saw it');
  });

  it('caps connections per source address', async () => {
    for (const s of sockets) s.destroy();
    await waitFor(() => stats.open === 0, 2000, 'earlier connections to close');
    const open: Socket[] = [];
    for (let i = 0; i < 4; i++) open.push(await tls(true)); // at the cap: all handshake
    const before = stats.refusedPerIp;
    const extra = await raw();
    await closed(extra);
    assert.equal(stats.refusedPerIp, before + 1);
    for (const s of open) assert.equal(s.destroyed, false);
    // A slot frees when a connection closes.
    open[0]!.destroy();
    await waitFor(() => stats.open === 3, 2000, 'the server to see the close');
    const again = await tls(true);
    assert.equal(again.destroyed, false);
  });
});

describe('process guard', () => {
  it('continues after errors of one connection and exits on anything else', () => {
    const withCode = (code: string) => Object.assign(new Error(code), { code });
    assert.equal(classify(withCode('WS_ERR_UNSUPPORTED_MESSAGE_LENGTH')), 'continue');
    assert.equal(classify(withCode('ECONNRESET')), 'continue');
    assert.equal(classify(withCode('ERR_SSL_WRONG_VERSION_NUMBER')), 'continue');
    assert.equal(classify(new TypeError('x is undefined')), 'exit');
    assert.equal(classify(withCode('SQLITE_CORRUPT')), 'exit');
    assert.equal(classify('a string'), 'exit');
  });
});
