// Agents' handshakes held behind everything else (daemon/handshake-admission.ts): the policy alone, then
// on a real TLS server on loopback with real clients.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:https';
import { connect as netConnect, createServer as netCreateServer, type AddressInfo, type Socket } from 'node:net';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { generateKeyPem } from '../../manager/ca/pki.ts';
import { createRootCa } from '../../manager/ca/issue.ts';
import { signLoopback } from '../helpers/pki.ts';
import { AGENT_SERVER_NAME } from '../../api/dispatcher.ts';
import { Admission, sniAdmission } from '../../daemon/handshake-admission.ts';

const LIMITS = { maxInFlight: 2, maxWaiting: 3, maxWaitMs: 1000 };

describe('admission policy', () => {
  it('admits up to maxInFlight at once, then holds; a freed slot goes to the newest waiter', () => {
    const a = new Admission<string>(LIMITS);
    assert.deepEqual(a.arrive('a', 0), { admit: ['a'], shed: [] });
    assert.deepEqual(a.arrive('b', 1), { admit: ['b'], shed: [] });
    assert.deepEqual(a.arrive('c', 2), { admit: [], shed: [] });
    assert.deepEqual(a.arrive('d', 3), { admit: [], shed: [] });
    assert.equal(a.stats.waiting, 2);
    // Newest first: the oldest waiters are the ones whose clients are about to give up.
    assert.deepEqual(a.done('a', 10), { admit: ['d'], shed: [] });
    assert.deepEqual(a.done('b', 11), { admit: ['c'], shed: [] });
    assert.equal(a.stats.admitted, 4);
    assert.equal(a.stats.waited, 2);
    assert.equal(a.stats.longestWaitMs, 9);
  });

  it('a newcomer does not jump a queue that is waiting', () => {
    const a = new Admission<string>(LIMITS);
    a.arrive('a', 0);
    a.arrive('b', 0);
    a.arrive('c', 1);
    a.done('a', 2); // c takes a's slot
    // Both slots are taken (b, c): e waits.
    assert.deepEqual(a.arrive('e', 3), { admit: [], shed: [] });
    assert.deepEqual(a.done('b', 4), { admit: ['e'], shed: [] });
  });

  it('sheds waiters held maxWaitMs, the oldest of a full queue, and forgets those whose client left', () => {
    const a = new Admission<string>(LIMITS);
    a.arrive('a', 0);
    a.arrive('b', 0);
    a.arrive('w1', 0);
    a.arrive('w2', 500);
    a.arrive('w3', 600);
    // Full (3 waiting): the oldest goes.
    assert.deepEqual(a.arrive('w4', 700), { admit: [], shed: ['w1'] });
    // w3's client leaves while it waits.
    assert.deepEqual(a.done('w3', 800), { admit: [], shed: [] });
    assert.equal(a.stats.left, 1);
    // w2 has waited 1000 ms at 1500.
    assert.deepEqual(a.tick(1500), { admit: [], shed: ['w2'] });
    assert.equal(a.stats.waiting, 1);
    assert.deepEqual(a.done('a', 1600), { admit: ['w4'], shed: [] });
    assert.equal(a.stats.shed, 2);
    // Ending something that is neither in flight nor waiting (shed already) changes nothing.
    assert.deepEqual(a.done('w1', 1700), { admit: [], shed: [] });
    assert.equal(a.stats.inFlight, 2);
  });

  it('refuses limits that cannot work', () => {
    assert.throws(() => new Admission({ maxInFlight: 0, maxWaiting: 1, maxWaitMs: 1 }), /positive/);
    assert.throws(() => new Admission({ maxInFlight: 1, maxWaiting: 1, maxWaitMs: Number.NaN }), /positive/);
  });
});

describe('admission on a real TLS server', () => {
  let server: Server;
  let port = 0;
  let admission: Admission<TLSSocket>;
  let stop: () => void;
  let pki: { ca: string; key: string; cert: string };
  const clients = new Set<TLSSocket>();
  const raws = new Set<Socket>();

  before(async () => {
    const clusterId = 'admission';
    const [ca, key] = await Promise.all([createRootCa({ clusterId }), generateKeyPem()]);
    pki = { ca: ca.certPem, key, cert: signLoopback(ca, key, 'mgr', 'manager', clusterId) };
    admission = new Admission<TLSSocket>({ maxInFlight: 1, maxWaiting: 100, maxWaitMs: 60_000 });
    const held = sniAdmission(admission);
    stop = held.stop;
    server = createServer({ key: pki.key, cert: pki.cert, SNICallback: held.SNICallback }, (_req, res) => res.end('ok'));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    port = (server.address() as AddressInfo).port;
  });

  after(async () => {
    stop();
    for (const c of clients) c.destroy();
    for (const r of raws) r.destroy();
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  });

  /** Starts a TLS connection; resolves true once secure, false if it ended first. */
  function dial(servername?: string): { socket: TLSSocket; secure: Promise<boolean> } {
    const socket = tlsConnect({ host: '127.0.0.1', port, ca: pki.ca, checkServerIdentity: () => undefined, ...(servername ? { servername } : {}) });
    clients.add(socket);
    socket.on('error', () => {});
    const secure = new Promise<boolean>((resolve) => {
      socket.once('secureConnect', () => resolve(true));
      socket.once('close', () => resolve(false));
    });
    return { socket, secure };
  }

  async function until(cond: () => boolean, what: string): Promise<void> {
    const end = Date.now() + 5000;
    while (!cond()) {
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  /**
   * An agent whose handshake stalls after its ClientHello: the bytes a real TLS client sends first
   * (recorded once), replayed on a raw socket that never answers the server's flight. Admitted, it holds
   * its slot until destroyed.
   */
  let hello: Buffer;
  async function recordHello(): Promise<Buffer> {
    const rec = netCreateServer();
    const got = new Promise<Buffer>((resolve) =>
      rec.once('connection', (s) =>
        s.once('data', (d: Buffer) => {
          resolve(d);
          s.destroy();
        }),
      ),
    );
    await new Promise<void>((r) => rec.listen(0, '127.0.0.1', () => r()));
    const c = tlsConnect({ host: '127.0.0.1', port: (rec.address() as AddressInfo).port, servername: AGENT_SERVER_NAME, rejectUnauthorized: false });
    c.on('error', () => {});
    const d = await got;
    c.destroy();
    await new Promise<void>((r) => rec.close(() => r()));
    return d;
  }
  function stall(): Socket {
    const s = netConnect({ host: '127.0.0.1', port }, () => s.write(hello));
    s.on('error', () => {});
    raws.add(s);
    return s;
  }

  it('holds agents past the limit, newest first, while a control client and a named host go straight through', async () => {
    hello ??= await recordHello();
    const base = { ...admission.stats };
    const blocker = stall();
    await until(() => admission.stats.inFlight === 1, 'the stalled agent admitted');
    const older = dial(AGENT_SERVER_NAME);
    await until(() => admission.stats.waiting === 1, 'the first agent waiting');
    const newer = dial(AGENT_SERVER_NAME);
    await until(() => admission.stats.waiting === 2, 'both agents waiting');
    const control = dial();
    const named = dial('manager1.example.com');
    assert.equal(await control.secure, true, 'the control client (no SNI) is not held');
    assert.equal(await named.secure, true, 'another server name is not held');
    assert.equal(admission.stats.waiting, 2, 'the agents still wait');
    const order: string[] = [];
    void older.secure.then(() => order.push('older'));
    void newer.secure.then(() => order.push('newer'));
    blocker.destroy();
    assert.deepEqual(await Promise.all([older.secure, newer.secure]), [true, true]);
    assert.deepEqual(order, ['newer', 'older']);
    assert.equal(admission.stats.admitted - base.admitted, 3);
    assert.equal(admission.stats.waited - base.waited, 2);
    // The server sees the client's Finished just after the client is done.
    await until(() => admission.stats.inFlight === 0, 'every slot freed');
  });

  it('an agent that leaves while held is dropped without being admitted', async () => {
    hello ??= await recordHello();
    const base = { ...admission.stats };
    const blocker = stall();
    await until(() => admission.stats.inFlight === 1, 'the stalled agent admitted');
    const leaving = stall();
    await until(() => admission.stats.waiting === 1, 'the leaver waiting');
    leaving.destroy();
    await until(() => admission.stats.left === base.left + 1, 'the leaver dropped');
    assert.equal(admission.stats.waiting, 0);
    const staying = dial(AGENT_SERVER_NAME);
    await until(() => admission.stats.waiting === 1, 'an agent waiting');
    blocker.destroy();
    assert.equal(await staying.secure, true);
    // Admitted: the blocker and the one that stayed; never the one that left.
    assert.equal(admission.stats.admitted - base.admitted, 2);
  });
});
