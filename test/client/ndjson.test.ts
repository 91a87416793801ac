// client/ndjson.ts, the one reader of the managers' NDJSON streams (shoal events, logs, task exec and
// the dashboard), against real mutual-TLS servers on loopback: redirects to the leader, refusals that
// end the stream (4xx) or move on (5xx, no answer), the line bound, the idle limit, a handler's throw,
// a POST body, and backpressure (pause stops reading until resume). No root needed.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer as createTcp, type AddressInfo } from 'node:net';
import type { Context } from '../../client/context.ts';
import { NdjsonError, openNdjson, readNdjson, type NdjsonEnd } from '../../client/ndjson.ts';
import { generateKeyPem, type CaMaterial } from '../../manager/ca/pki.ts';
import { createRootCa } from '../../manager/ca/issue.ts';
import { signLoopback } from '../helpers/pki.ts';

const clusterId = 'ndjson';

type Handler = (req: IncomingMessage, res: ServerResponse, body: string) => void;

describe('client/ndjson.ts', () => {
  let ca: CaMaterial;
  let mkey = '';
  let admin: Context['admin'];
  const servers: Server[] = [];
  /** A port nothing listens on (bound, then closed). */
  let deadAddr = '';

  async function serve(h: Handler): Promise<string> {
    const s = createServer(
      { key: mkey, cert: signLoopback(ca, mkey, `m${servers.length}`, 'manager', clusterId), ca: ca.certPem, requestCert: true, rejectUnauthorized: true },
      (req, res) => {
        let body = '';
        req.on('data', (c: Buffer) => (body += c));
        req.on('end', () => h(req, res, body));
      },
    );
    servers.push(s);
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
    return `127.0.0.1:${(s.address() as AddressInfo).port}`;
  }
  const ctxOf = (...managers: string[]): Context => ({ clusterId, managers, admin });
  const ndjson = (res: ServerResponse, status = 200) => res.writeHead(status, { 'content-type': 'application/x-ndjson' });
  const errorAnswer = (res: ServerResponse, status: number, error: Record<string, string>) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ error }));
  };
  /** Opens a stream and collects its lines and how it ended. */
  const collect = (ctx: Context, path: string, extra: { idleMs?: number; maxLine?: number } = {}) =>
    new Promise<{ lines: unknown[]; end: NdjsonEnd | undefined; opened: string | null }>((resolve) => {
      const lines: unknown[] = [];
      let opened: string | null = null;
      openNdjson(ctx, { path, ...extra }, { onOpen: (m) => (opened = m), onLine: (o) => lines.push(o), onEnd: (end) => resolve({ lines, end, opened }) });
    });

  before(async () => {
    ca = await createRootCa({ clusterId });
    const akey = await generateKeyPem();
    mkey = await generateKeyPem();
    admin = { key: akey, cert: signLoopback(ca, akey, 'admin', 'admin', clusterId), ca: ca.certPem };
    const t = createTcp();
    await new Promise<void>((r) => t.listen(0, '127.0.0.1', () => r()));
    deadAddr = `127.0.0.1:${(t.address() as AddressInfo).port}`;
    await new Promise((r) => t.close(r));
  });
  after(() => {
    for (const s of servers) {
      s.closeAllConnections();
      s.close();
    }
  });

  it('hands over every line, skipping blank ones, and ends cleanly with the answer', async () => {
    const a = await serve((_q, res) => {
      ndjson(res);
      res.write('{"a":1}\n\n{"b":');
      setTimeout(() => res.end('2}\n'), 20); // a line split across writes
    });
    const r = await collect(ctxOf(a), '/v1/x');
    assert.deepEqual(r.lines, [{ a: 1 }, { b: 2 }]);
    assert.equal(r.end, undefined);
    assert.equal(r.opened, a);
  });

  it('follows a 421 to the leader it names; a manager that does not answer is skipped', async () => {
    const leader = await serve((_q, res) => {
      ndjson(res);
      res.end('{"from":"leader"}\n');
    });
    const follower = await serve((_q, res) => errorAnswer(res, 421, { message: 'not the leader', leader }));
    const r = await collect(ctxOf(deadAddr, follower), '/v1/logs');
    assert.deepEqual(r.lines, [{ from: 'leader' }]);
    assert.equal(r.opened, leader);
  });

  it('a 4xx ends at once with the API message and status (the same everywhere); a 5xx moves on', async () => {
    let asked = 0;
    const bad = await serve((_q, res) => {
      asked++;
      errorAnswer(res, 400, { message: 'filter: unknown key "colour"' });
    });
    const never = await serve((_q, res) => {
      asked += 100;
      res.end();
    });
    const r = await collect(ctxOf(bad, never), '/v1/events');
    assert.deepEqual(r.end, { message: 'filter: unknown key "colour"', status: 400, started: false });
    assert.equal(asked, 1, 'the next manager was not asked');

    const busy = await serve((_q, res) => errorAnswer(res, 503, { message: 'no leader' }));
    const ok = await serve((_q, res) => {
      ndjson(res);
      res.end('{"ok":true}\n');
    });
    assert.deepEqual((await collect(ctxOf(busy, ok), '/v1/events')).lines, [{ ok: true }]);
    const both = await collect(ctxOf(busy, deadAddr), '/v1/events');
    assert.equal(both.end?.started, false);
    assert.match(both.end!.message, /no manager reachable/);
  });

  it('a line over the bound, a line that is not JSON, and a throwing handler each end the stream', async () => {
    const long = await serve((_q, res) => {
      ndjson(res);
      res.write(`{"a":"${'x'.repeat(5000)}`); // no newline yet: a line being buffered
    });
    const r = await collect(ctxOf(long), '/v1/x', { maxLine: 1024 });
    assert.match(r.end!.message, /longer than 1024 bytes/);
    assert.equal(r.end!.started, true);

    const junk = await serve((_q, res) => {
      ndjson(res);
      res.end('{"a":1}\nnot json\n{"b":2}\n');
    });
    const j = await collect(ctxOf(junk), '/v1/x');
    assert.deepEqual(j.lines, [{ a: 1 }], 'nothing after the bad line');
    assert.match(j.end!.message, /not JSON/);

    const three = await serve((_q, res) => {
      ndjson(res);
      res.end('{"n":1}\n{"n":2}\n{"n":3}\n');
    });
    const seen: unknown[] = [];
    await assert.rejects(
      readNdjson(ctxOf(three), { path: '/v1/x' }, (o) => {
        seen.push(o);
        if ((o as { n: number }).n === 2) throw new Error('exec failed: no such task');
      }),
      (e: unknown) => e instanceof NdjsonError && e.message === 'exec failed: no such task' && e.started,
    );
    assert.deepEqual(seen, [{ n: 1 }, { n: 2 }]);
  });

  it('the idle limit ends a silent stream; without one a quiet stream stays open', async () => {
    const quiet = await serve((_q, res) => {
      ndjson(res);
      res.write('{"first":true}\n');
      setTimeout(() => res.end('{"late":true}\n'), 400);
    });
    const limited = await collect(ctxOf(quiet), '/v1/events', { idleMs: 150 });
    assert.deepEqual(limited.lines, [{ first: true }]);
    assert.match(limited.end!.message, /no data for 0.15 s/);
    const open = await collect(ctxOf(quiet), '/v1/logs');
    assert.deepEqual(open.lines, [{ first: true }, { late: true }]);
    assert.equal(open.end, undefined);
  });

  it('POSTs its JSON body', async () => {
    const echo = await serve((req, res, body) => {
      ndjson(res);
      res.end(`${JSON.stringify({ method: req.method, type: req.headers['content-type'], body: JSON.parse(body) })}\n`);
    });
    const got: unknown[] = [];
    await readNdjson(ctxOf(echo), { method: 'POST', path: '/v1/tasks/t/exec', body: { args: ['ls'] } }, (o) => void got.push(o));
    assert.deepEqual(got, [{ method: 'POST', type: 'application/json', body: { args: ['ls'] } }]);
  });

  it('pause stops reading until resume (backpressure reaches the server)', async () => {
    let written = 0;
    let serverBlocked = false;
    const chunk = `${JSON.stringify({ pad: 'y'.repeat(16_000) })}\n`;
    const flood = await serve((_q, res) => {
      ndjson(res);
      const pump = () => {
        while (written < 2000) {
          written++;
          if (!res.write(chunk)) {
            serverBlocked = true;
            res.once('drain', pump);
            return;
          }
        }
        res.end();
      };
      pump();
    });
    let lines = 0;
    await new Promise<void>((resolve, reject) => {
      const s = openNdjson(
        ctxOf(flood),
        { path: '/v1/logs' },
        {
          onLine: () => {
            lines++;
            if (lines === 1) {
              s.pause();
              // While paused the server fills its buffers and stops; nothing more arrives here.
              setTimeout(() => {
                try {
                  assert.ok(serverBlocked, 'the server saw backpressure');
                  assert.ok(written < 2000, `the server could not write everything (${written})`);
                  s.resume();
                } catch (e) {
                  reject(e);
                }
              }, 300);
            }
          },
          onEnd: (e) => (e ? reject(new Error(e.message)) : resolve()),
        },
      );
    });
    assert.equal(lines, 2000, 'every line arrived after resume');
  });
});
