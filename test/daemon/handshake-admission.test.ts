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

const LIMITS = { perTurn: 2, maxWaiting: 3, maxWaitMs: 1000 };

describe('admission policy', () => {
  it('admits up to perTurn a turn, newest first', () => {
    const a = new Admission<string>(LIMITS);
    assert.deepEqual(a.arrive('a', 0), []);
    assert.deepEqual(a.arrive('b', 1), []);
    assert.deepEqual(a.arrive('c', 2), []);
    assert.equal(a.stats.waiting, 3);
    // Newest first: the oldest waiters are the ones whose clients are about to give up.
    assert.deepEqual(a.turn(10), { admit: ['c', 'b'], shed: [] });
    assert.deepEqual(a.turn(11), { admit: ['a'], shed: [] });
    assert.deepEqual(a.turn(12), { admit: [], shed: [] });
    assert.equal(a.stats.admitted, 3);
    assert.equal(a.stats.longestWaitMs, 11);
  });

  it('a newcomer goes before those that waited longer', () => {
    const a = new Admission<string>(LIMITS);
    a.arrive('a', 0);
    a.arrive('b', 0);
    a.arrive('c', 0);
    assert.deepEqual(a.turn(1).admit, ['c', 'b']);
    a.arrive('d', 2);
    assert.deepEqual(a.turn(3).admit, ['d', 'a']);
  });

  it('sheds waiters held maxWaitMs and the oldest of a full queue, and forgets those whose client left', () => {
    const a = new Admission<string>(LIMITS);
    a.arrive('w1', 0);
    a.arrive('w2', 500);
    a.arrive('w3', 600);
    // Full (3 waiting): the oldest goes.
    assert.deepEqual(a.arrive('w4', 700), ['w1']);
    // w3's client leaves while it waits.
    a.left('w3');
    assert.equal(a.stats.left, 1);
    a.left('w3'); // twice changes nothing
    assert.equal(a.stats.left, 1);
    // w2 has waited 1000 ms at 1500; w4 is admitted.
    assert.deepEqual(a.turn(1500), { admit: ['w4'], shed: ['w2'] });
    assert.equal(a.stats.shed, 2);
    assert.equal(a.stats.waiting, 0);
    // Something neither waiting nor known changes nothing.
    a.left('w1');
    assert.equal(a.stats.left, 1);
  });

  it('refuses limits that cannot work', () => {
    assert.throws(() => new Admission({ perTurn: 0, maxWaiting: 1, maxWaitMs: 1 }), /positive/);
    assert.throws(() => new Admission({ perTurn: 1, maxWaiting: 1, maxWaitMs: Number.NaN }), /positive/);
  });
});

describe('admission wiring', () => {
  it("a handshake that throws when let through ends its own connection, not the turn's others", () => {
    const admission = new Admission<TLSSocket>({ perTurn: 2, maxWaiting: 10, maxWaitMs: 60_000 });
    const turns: (() => void)[] = [];
    const { SNICallback } = sniAdmission(admission, { schedule: (fn) => void turns.push(fn) });
    const socket = () => {
      const s = { destroyed: false, once: () => s, destroy: () => void (s.destroyed = true) };
      return s;
    };
    const bad = socket();
    const good = socket();
    let resumed = false;
    SNICallback.call(bad as unknown as TLSSocket, AGENT_SERVER_NAME, () => {
      throw new Error('handle gone');
    });
    SNICallback.call(good as unknown as TLSSocket, AGENT_SERVER_NAME, () => {
      resumed = true;
    });
    assert.doesNotThrow(() => turns.shift()!());
    assert.equal(bad.destroyed, true);
    assert.equal(resumed, true);
    assert.equal(good.destroyed, false);
  });
});

describe('admission on a real TLS server', () => {
  let server: Server;
  let port = 0;
  let admission: Admission<TLSSocket>;
  const pending: (() => void)[] = [];
  /** One turn of the admission, if one is due. */
  const crank = (): void => {
    for (const fn of pending.splice(0)) fn();
  };
  let pki: { ca: string; key: string; cert: string };
  const clients = new Set<TLSSocket>();
  const raws = new Set<Socket>();

  before(async () => {
    const clusterId = 'admission';
    const [ca, key] = await Promise.all([createRootCa({ clusterId }), generateKeyPem()]);
    pki = { ca: ca.certPem, key, cert: signLoopback(ca, key, 'mgr', 'manager', clusterId) };
    admission = new Admission<TLSSocket>({ perTurn: 1, maxWaiting: 100, maxWaitMs: 60_000 });
    // The test turns the admission's crank itself: a turn is whenever it says.
    const held = sniAdmission(admission, { schedule: (fn) => void pending.push(fn) });
    server = createServer({ key: pki.key, cert: pki.cert, SNICallback: held.SNICallback }, (_req, res) => res.end('ok'));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    port = (server.address() as AddressInfo).port;
  });

  after(async () => {
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

  /** A raw socket that sends an agent's ClientHello (recorded once from a real client) and nothing more. */
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
  function rawHello(): Socket {
    const s = netConnect({ host: '127.0.0.1', port }, () => s.write(hello));
    s.on('error', () => {});
    raws.add(s);
    return s;
  }

  it('holds agents for the next turn, newest first, while a control client and a named host go straight through', async () => {
    const base = { ...admission.stats };
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
    crank(); // one a turn: the newer
    assert.equal(await newer.secure, true);
    assert.equal(admission.stats.waiting, 1);
    crank();
    assert.equal(await older.secure, true);
    assert.deepEqual(order, ['newer', 'older']);
    assert.equal(admission.stats.admitted - base.admitted, 2);
  });

  it('an agent that leaves while held is dropped without being admitted', async () => {
    hello ??= await recordHello();
    const base = { ...admission.stats };
    const leaving = rawHello();
    await until(() => admission.stats.waiting === 1, 'the leaver waiting');
    leaving.destroy();
    await until(() => admission.stats.left === base.left + 1, 'the leaver dropped');
    assert.equal(admission.stats.waiting, 0);
    const staying = dial(AGENT_SERVER_NAME);
    await until(() => admission.stats.waiting === 1, 'an agent waiting');
    crank();
    assert.equal(await staying.secure, true);
    assert.equal(admission.stats.admitted - base.admitted, 1, 'admitted: the one that stayed, never the one that left');
  });
});
