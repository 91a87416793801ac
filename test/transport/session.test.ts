// Session against real ws sockets on loopback: every way a peer can misbehave ends at most its own
// session (or only the one message), never the process, and every limit actually bites.
import { describe, it, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { WebSocket, WebSocketServer } from 'ws';
import { ProtocolViolation, Session, jsonDecoder, jsonDepthExceeds, type SessionLimits } from '../../transport/session.ts';

type Msg = { t: string; n?: number };

const decode = jsonDecoder<Msg>((v) => {
  if (typeof v !== 'object' || v === null || typeof (v as Msg).t !== 'string') throw new ProtocolViolation('bad-field', 't must be a string');
  return v as Msg;
});

async function until(cond: () => boolean, what: string, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

interface Rig {
  url: string;
  sessions: Session<Msg>[];
  got: Msg[];
  logs: string[];
  clients: WebSocket[];
  close(): Promise<void>;
}

const rigs: Rig[] = [];
afterEach(async () => {
  for (const r of rigs.splice(0)) await r.close();
});

async function rig(
  opts: { maxPayload?: number; limits?: Partial<SessionLimits>; onMessage?: (m: Msg, s: Session<Msg>) => void | Promise<void> } = {},
): Promise<Rig> {
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1', maxPayload: opts.maxPayload ?? 1 << 20, perMessageDeflate: false });
  await once(wss, 'listening');
  const r: Rig = {
    url: `ws://127.0.0.1:${(wss.address() as AddressInfo).port}`,
    sessions: [],
    got: [],
    logs: [],
    clients: [],
    close: async () => {
      for (const c of r.clients) c.terminate();
      for (const s of r.sessions) s.ws.terminate();
      await new Promise((res) => wss.close(() => res(undefined)));
    },
  };
  wss.on('connection', (ws) => {
    r.sessions.push(
      new Session<Msg>(ws, {
        name: `test ${r.sessions.length}`,
        decode,
        onMessage: opts.onMessage ?? ((m) => void r.got.push(m)),
        log: (l) => r.logs.push(l),
        limits: { liveness: null, ...opts.limits },
      }),
    );
  });
  rigs.push(r);
  return r;
}

async function client(r: Rig, options: ConstructorParameters<typeof WebSocket>[2] = {}): Promise<WebSocket> {
  const c = new WebSocket(r.url, options);
  c.on('error', () => {}); // the client side is the hostile one here; its errors are not under test
  r.clients.push(c);
  await once(c, 'open');
  await until(() => r.sessions.length >= r.clients.length, 'server session');
  return c;
}

describe('transport/session', () => {
  it('jsonDepthExceeds counts brackets outside strings only', () => {
    assert.equal(jsonDepthExceeds(Buffer.from('[[[]]]'), 3), false);
    assert.equal(jsonDepthExceeds(Buffer.from('[[[[]]]]'), 3), true);
    assert.equal(jsonDepthExceeds(Buffer.from('{"a":"[[[[[[\\"[[[["}'), 1), false);
    assert.equal(jsonDepthExceeds(Buffer.from('[{"a":[{}]}]'), 4), false);
    assert.equal(jsonDepthExceeds(Buffer.from('[{"a":[{}]}]'), 3), true);
  });

  it('delivers valid messages and counts them', async () => {
    const r = await rig();
    const c = await client(r);
    c.send(JSON.stringify({ t: 'a' }));
    c.send(JSON.stringify({ t: 'b' }));
    await until(() => r.got.length === 2, 'two messages');
    assert.deepEqual(
      r.got.map((m) => m.t),
      ['a', 'b'],
    );
    const s = r.sessions[0]!;
    assert.equal(s.counters.received, 2);
    assert.equal(s.counters.dropped, 0);
    const echoed = once(c, 'message');
    assert.equal(s.sendJson({ t: 'pong' }), true);
    assert.equal(String((await echoed)[0]), '{"t":"pong"}');
    assert.equal(s.counters.sent, 1);
  });

  it('a frame over maxPayload ends only that session, with 1009, and the server keeps serving', async () => {
    const r = await rig({ maxPayload: 64 << 10 });
    const c = await client(r);
    const closed = once(c, 'close');
    c.send('x'.repeat(100 << 10));
    const [code] = (await closed) as [number];
    assert.equal(code, 1009);
    const s = r.sessions[0]!;
    await until(() => s.counters.closeCode !== null, 'session end');
    assert.equal(s.counters.closeCode, 1009);
    assert.match(s.counters.closeReason ?? '', /WS_ERR_UNSUPPORTED_MESSAGE_LENGTH/);
    // The process is alive and a new session works.
    const c2 = await client(r);
    c2.send(JSON.stringify({ t: 'after' }));
    await until(() => r.got.some((m) => m.t === 'after'), 'message on a new session');
  });

  it('a message over maxMessageBytes (under maxPayload) is dropped alone', async () => {
    const r = await rig({ limits: { maxMessageBytes: 1000 } });
    const c = await client(r);
    c.send(JSON.stringify({ t: 'big', pad: 'y'.repeat(2000) }));
    c.send(JSON.stringify({ t: 'small' }));
    await until(() => r.got.length === 1, 'the small message');
    const s = r.sessions[0]!;
    assert.equal(r.got[0]!.t, 'small');
    assert.equal(s.counters.droppedByReason['too-large'], 1);
    assert.equal(s.open, true);
  });

  it('garbage is dropped and counted; invalid UTF-8 closes the session with 1007', async () => {
    const r = await rig();
    const c = await client(r);
    c.send('not json at all');
    c.send(JSON.stringify({ nope: 1 }));
    c.send(Buffer.from([1, 2, 3]), { binary: true });
    c.send(JSON.stringify({ t: 'ok' }));
    await until(() => r.got.length === 1, 'the valid message');
    const s = r.sessions[0]!;
    assert.deepEqual(s.counters.droppedByReason, { 'bad-json': 1, 'bad-field': 1, binary: 1 });
    assert.equal(s.counters.violations, 3);
    assert.equal(s.open, true);
    const closed = once(c, 'close');
    c.send(Buffer.from([0x7b, 0xff, 0xfe, 0x7d]), { binary: false }); // a text frame that is not UTF-8
    const [code] = (await closed) as [number];
    assert.equal(code, 1007);
    await until(() => s.counters.closeCode !== null, 'session end');
    assert.equal(s.counters.closeCode, 1007);
  });

  it('deeply nested JSON is refused before it is parsed; ordinary nesting passes', async () => {
    const r = await rig();
    const c = await client(r);
    const n = 200_000;
    const t0 = Date.now();
    c.send(`{"t":"deep","x":${'['.repeat(n)}${']'.repeat(n)}}`);
    c.send(JSON.stringify({ t: 'shallow', x: [[[{ a: [1] }]]], pad: 'p'.repeat(2000), s: '[[[[[[[[' }));
    await until(() => r.got.length === 1, 'the shallow message');
    assert.ok(Date.now() - t0 < 2000);
    const s = r.sessions[0]!;
    assert.equal(r.got[0]!.t, 'shallow');
    assert.equal(s.counters.droppedByReason['too-deep'], 1);
  });

  it('a handler that throws (sync or async) costs only its own message', async () => {
    const r = await rig({
      onMessage: (m) => {
        if (m.t === 'sync-boom') throw new Error('sync boom');
        if (m.t === 'async-boom') return Promise.reject(new Error('async boom'));
        r.got.push(m);
      },
    });
    const c = await client(r);
    for (const t of ['sync-boom', 'a', 'async-boom', 'b']) c.send(JSON.stringify({ t }));
    await until(() => r.got.length === 2, 'the two good messages');
    const s = r.sessions[0]!;
    await until(() => s.counters.handlerErrors === 2, 'two handler errors');
    assert.deepEqual(
      r.got.map((m) => m.t),
      ['a', 'b'],
    );
    assert.equal(s.counters.violations, 0);
    assert.ok(r.logs.some((l) => /async boom/.test(l)));
    assert.equal(s.open, true);
  });

  it('a flood of violations disconnects the peer with 1008 and a reason', async () => {
    const r = await rig({ limits: { violations: { count: 5, windowMs: 60_000 } } });
    const c = await client(r);
    const closed = once(c, 'close');
    for (let i = 0; i < 50; i++) c.send('{{{');
    const [code, reason] = (await closed) as [number, Buffer];
    assert.equal(code, 1008);
    assert.match(String(reason), /too many protocol violations/);
    const s = r.sessions[0]!;
    await until(() => s.counters.closeCode !== null, 'session end');
    assert.equal(s.counters.closeCode, 1008);
    assert.equal(s.counters.violations, 6, 'processing stops once the session is closing');
    assert.ok(r.logs.some((l) => /closing \(1008\)/.test(l)));
  });

  it('a handler may reject a message as a violation', async () => {
    const r = await rig({
      limits: { violations: { count: 2, windowMs: 60_000 } },
      onMessage: (m) => {
        if (m.t === 'forbidden') throw new ProtocolViolation('not-owner', 'task is not yours');
        r.got.push(m);
      },
    });
    const c = await client(r);
    c.send(JSON.stringify({ t: 'forbidden' }));
    c.send(JSON.stringify({ t: 'fine' }));
    await until(() => r.got.length === 1, 'the fine message');
    const s = r.sessions[0]!;
    assert.equal(s.counters.droppedByReason['not-owner'], 1);
    const closed = once(c, 'close');
    c.send(JSON.stringify({ t: 'forbidden' }));
    c.send(JSON.stringify({ t: 'forbidden' }));
    assert.equal(((await closed) as [number])[0], 1008);
  });

  it('slow consumer: send() refuses past the buffer limit, then recovers once the peer drains', async () => {
    const r = await rig({ limits: { maxBufferedBytes: 1 << 20, slowConsumer: 'drop' } });
    const c = await client(r);
    let received = 0;
    c.on('message', () => received++);
    const sock = (c as unknown as { _socket: import('node:net').Socket })._socket;
    sock.pause();
    const s = r.sessions[0]!;
    const chunk = 'z'.repeat(64 << 10);
    let accepted = 0;
    while (s.send(chunk)) {
      accepted++;
      assert.ok(accepted < 2000, 'send() never refused');
    }
    assert.ok(s.ws.bufferedAmount <= (1 << 20) + (64 << 10), `buffer bounded (${s.ws.bufferedAmount})`);
    assert.equal(s.counters.sendRefused, 1);
    assert.equal(s.open, true, "policy 'drop' keeps the session");
    sock.resume();
    await until(() => received === accepted, 'the peer drains');
    await until(() => s.ws.bufferedAmount === 0, 'buffer empty');
    assert.equal(s.send(chunk), true);
  });

  it("slow consumer with policy 'close' ends the session", async () => {
    const r = await rig({ limits: { maxBufferedBytes: 256 << 10, slowConsumer: 'close', closeTimeoutMs: 200 } });
    const c = await client(r);
    const sock = (c as unknown as { _socket: import('node:net').Socket })._socket;
    sock.pause();
    const s = r.sessions[0]!;
    let n = 0;
    while (s.send('q'.repeat(32 << 10))) assert.ok(++n < 2000, 'send() never refused');
    await until(() => s.counters.closeCode !== null, 'session end');
    assert.equal(s.counters.closeCode, 1008);
    assert.match(s.counters.closeReason ?? '', /slow consumer/);
  });

  it('liveness: a peer that stops answering pings is terminated; one that answers stays', async () => {
    const r = await rig({ limits: { liveness: { pingIntervalMs: 40, timeoutMs: 200 } } });
    const silent = await client(r, { autoPong: false });
    const alive = await client(r);
    const [sSilent, sAlive] = r.sessions as [Session<Msg>, Session<Msg>];
    const t0 = Date.now();
    await until(() => sSilent.counters.closeCode !== null, 'idle session end');
    assert.ok(Date.now() - t0 >= 150, 'not before the timeout');
    assert.match(sSilent.counters.closeReason ?? '', /^idle/);
    await until(() => Date.now() - t0 > 400, 'two timeouts have passed');
    assert.equal(sAlive.open, true);
    assert.equal(alive.readyState, WebSocket.OPEN);
  });

  it('liveness: only a quiet peer is pinged; one that talks gets no pings and stays', async () => {
    const r = await rig({ limits: { liveness: { pingIntervalMs: 40, timeoutMs: 200 } } });
    const talker = await client(r);
    const quiet = await client(r);
    const pings = new Map<WebSocket, number>();
    for (const c of [talker, quiet]) c.on('ping', () => pings.set(c, (pings.get(c) ?? 0) + 1));
    const chatter = setInterval(() => talker.send(JSON.stringify({ t: 'tick' })), 10);
    try {
      // Five pings to the quiet peer: five intervals have passed, each checking both sessions.
      await until(() => (pings.get(quiet) ?? 0) >= 5, 'five pings to the quiet peer');
    } finally {
      clearInterval(chatter);
    }
    assert.equal(pings.get(talker) ?? 0, 0, 'a peer heard from every 10 ms is never pinged');
    assert.ok((pings.get(quiet) ?? 0) >= 3, `the quiet peer was pinged ${pings.get(quiet) ?? 0} times`);
    for (const s of r.sessions) assert.equal(s.open, true);
  });

  it('works on client sockets: opens, counts violations from the server, and survives a refused connection', async () => {
    const r = await rig({
      onMessage: (_m, s) => {
        s.send('garbage from the server');
        s.sendJson({ t: 'hi' });
      },
    });
    const got: Msg[] = [];
    let opened = false;
    const cs = new Session<Msg>(new WebSocket(r.url), {
      name: 'client',
      decode,
      onMessage: (m) => void got.push(m),
      onOpen: (s) => {
        opened = true;
        s.sendJson({ t: 'hello' });
      },
      limits: { liveness: null },
    });
    r.clients.push(cs.ws);
    await until(() => got.length === 1, 'the valid server message');
    assert.equal(opened, true);
    assert.equal(cs.counters.droppedByReason['bad-json'], 1);
    // A connection that is refused: error and close are handled, nothing throws.
    const probe = new WebSocketServer({ port: 0, host: '127.0.0.1' });
    await once(probe, 'listening');
    const port = (probe.address() as AddressInfo).port;
    await new Promise((res) => probe.close(() => res(undefined)));
    let closedWith: number | null = null;
    const refused = new Session<Msg>(new WebSocket(`ws://127.0.0.1:${port}`), {
      name: 'refused',
      decode,
      onMessage: () => {},
      onClose: (code) => (closedWith = code),
    });
    await until(() => closedWith !== null, 'refused session end');
    assert.equal(refused.send('x'), false);
    assert.match(refused.counters.closeReason ?? '', /ECONNREFUSED/);
  });
});
