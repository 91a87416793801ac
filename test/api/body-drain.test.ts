// An error answered before the request body has been read — above all the 413 for a body over a route's
// cap — must reach the client over TLS. Closing the connection while the client is still sending makes
// the server's kernel answer the rest with a reset, and the client's next write fails (EPIPE/ECONNRESET)
// before it reads the answer: curl and the docker CLI then print "broken pipe", not the 413. The server
// here is built as the daemon builds its secure port (mutual TLS asked for, the port's limits and guards,
// the control Router, readJson, sendError); the Docker API is the real DockerApiServer on TCP with TLS.
// Clients: Node's https client as the CLI calls it (one write), a raw TLS client writing a large body
// in many small writes, and one that sends `Expect: 100-continue` as curl does for large bodies.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpsServer, request as httpsRequest, type Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { guardServer, serverOptions } from '../../daemon/server-guard.ts';
import { BODY_LIMITS, BODY_DRAIN, ApiError, Router, readJson, sendError } from '../../manager/api/http.ts';
import type { DockerDeps } from '../../manager/docker-api/deps.ts';
import { DockerApiServer } from '../../manager/docker-api/server.ts';
import { httpsRaw } from '../../transport/https.ts';
import { freePort } from '../docker-api/harness.ts';
import { makeTestCa } from '../helpers/pki.ts';

const ca = makeTestCa();
const server = ca.issue('127.0.0.1', { ou: 'manager' });
const admin = ca.issue('admin', { ou: 'admin' });
const tls = { ca: ca.caCert, key: admin.key, cert: admin.cert };
const MiB = 1 << 20;

interface Answer {
  /** Status line's code, or 0 if no answer was read. */
  status: number;
  headers: Record<string, string>;
  body: string;
  /** Body bytes the client managed to write. */
  sent: number;
  /** The socket error the client saw (EPIPE, ECONNRESET), if any. */
  error: string | null;
}

/**
 * POSTs `total` bytes of body to `path` over a raw TLS connection, `chunk` bytes a write (waiting for
 * each write to be taken, as a client streaming a file does), reading the answer as it comes. With
 * `expect`, sends `Expect: 100-continue` and waits for the interim answer (or a final one) first.
 */
function rawPost(port: number, path: string, total: number, chunk: number, expect = false): Promise<Answer> {
  return new Promise((resolve) => {
    const s = tlsConnect({ host: '127.0.0.1', port, ca: tls.ca, key: tls.key, cert: tls.cert, checkServerIdentity: () => undefined });
    const got: Buffer[] = [];
    let sent = 0;
    let error: string | null = null;
    let stop = false;
    let onInterim: (() => void) | null = null;
    s.on('data', (d: Buffer) => {
      got.push(d);
      onInterim?.();
    });
    s.on('error', (e: NodeJS.ErrnoException) => {
      error = e.code ?? e.message;
      stop = true;
    });
    s.on('close', () => {
      stop = true;
      onInterim?.();
      resolve(parseAnswer(Buffer.concat(got).toString('latin1'), sent, error));
    });
    const send = async () => {
      const head = [`POST ${path} HTTP/1.1`, 'Host: 127.0.0.1', 'Content-Type: application/json', `Content-Length: ${total}`];
      if (expect) head.push('Expect: 100-continue');
      s.write(`${head.join('\r\n')}\r\n\r\n`);
      if (expect) {
        await new Promise<void>((r) => {
          onInterim = r;
          if (got.length > 0) r();
        });
        onInterim = null;
        // A final answer instead of 100 Continue: the body is not sent (RFC 9110 §10.1.1).
        if (!Buffer.concat(got).toString('latin1').startsWith('HTTP/1.1 100')) return;
      }
      const block = Buffer.alloc(chunk, 0x78);
      while (sent < total && !stop) {
        const n = Math.min(chunk, total - sent);
        const ok = s.write(n === chunk ? block : block.subarray(0, n));
        sent += n;
        if (!ok) await drained(s);
      }
      // The request is complete: read the answer to its end (the server closes after a 413).
    };
    s.once('secureConnect', () => void send());
  });
}

/** Resolves when `s` takes writes again or is closed. */
function drained(s: TLSSocket): Promise<void> {
  return new Promise((r) => {
    const done = () => {
      s.off('drain', done).off('close', done);
      r();
    };
    s.on('drain', done).on('close', done);
  });
}

function parseAnswer(text: string, sent: number, error: string | null): Answer {
  // Skip an interim 100 Continue.
  let t = text;
  while (t.startsWith('HTTP/1.1 100')) t = t.slice(t.indexOf('\r\n\r\n') + 4);
  const end = t.indexOf('\r\n\r\n');
  if (!t.startsWith('HTTP/1.1 ') || end < 0) return { status: 0, headers: {}, body: '', sent, error };
  const lines = t.slice(0, end).split('\r\n');
  const headers: Record<string, string> = {};
  for (const l of lines.slice(1)) {
    const i = l.indexOf(':');
    headers[l.slice(0, i).toLowerCase()] = l.slice(i + 1).trim();
  }
  return { status: Number(lines[0]!.split(' ')[1]), headers, body: t.slice(end + 4), sent, error };
}

/** POSTs `total` bytes with Node's https client in one write (how transport/https.ts and dockerode send). */
function nodePost(port: number, path: string, total: number): Promise<{ status: number; body: string }> {
  return httpsRaw(`127.0.0.1:${port}`, 'POST', path, { pad: 'x'.repeat(total) }, { ...tls, insecure: true }, 30_000).then((r) => ({
    status: r.status,
    body: r.text,
  }));
}

const curlSkip = (await new Promise<boolean>((r) => execFile('curl', ['--version'], (e) => r(e === null)))) ? false : 'curl is not installed';
const files = mkdtempSync(join(tmpdir(), 'shoal-drain-'));
writeFileSync(join(files, 'ca.pem'), ca.caCert);
writeFileSync(join(files, 'cert.pem'), admin.cert);
writeFileSync(join(files, 'key.pem'), admin.key, { mode: 0o600 });
writeFileSync(join(files, 'body'), Buffer.alloc(8 * MiB, 0x78));

type CurlMode = 'expect' | 'length' | 'chunked';

/**
 * POSTs the 8 MiB file with curl: `expect` as curl sends a body this large by default (Content-Length and
 * `Expect: 100-continue`), `length` with Content-Length only (as the docker CLI and Node send), `chunked`
 * with no declared length (the cap is then met while reading).
 */
function curlPost(port: number, path: string, mode: CurlMode): Promise<{ code: number; status: number; body: string; err: string }> {
  const args = ['-sS', '--cacert', join(files, 'ca.pem'), '--cert', join(files, 'cert.pem'), '--key', join(files, 'key.pem')];
  args.push('-X', 'POST', '-H', 'Content-Type: application/json', '--data-binary', `@${join(files, 'body')}`, '-w', '\n%{http_code}');
  if (mode !== 'expect') args.push('-H', 'Expect:');
  if (mode === 'chunked') args.push('-H', 'Transfer-Encoding: chunked');
  args.push(`https://127.0.0.1:${port}${path}`);
  return new Promise((resolve) =>
    execFile('curl', args, { timeout: 30_000 }, (e, out, err) => {
      const i = out.lastIndexOf('\n');
      resolve({ code: e ? Number((e as { code?: number }).code ?? 1) : 0, status: Number(out.slice(i + 1)), body: out.slice(0, i), err: String(err) });
    }),
  );
}

function listen(s: HttpsServer): Promise<number> {
  return new Promise((r) => s.listen(0, '127.0.0.1', () => r((s.address() as AddressInfo).port)));
}

/** The server cut a body of `total` bytes at the drain bound: it took at least the bound, not all. */
function cutAtBound(sent: number, total: number): void {
  assert.ok(sent < total, `the server took all ${sent} bytes of a body past the drain bound`);
  assert.ok(sent >= BODY_DRAIN.bytes, `cut after ${sent} bytes, before the bound of ${BODY_DRAIN.bytes}`);
}
describe('an error answered before the body is read reaches the client over TLS', { concurrency: false }, () => {
  let srv: HttpsServer;
  let port = 0;
  let handled = 0;
  before(async () => {
    // As daemon.ts startManager builds the secure port.
    srv = createHttpsServer(
      { key: server.key, cert: server.cert, ca: ca.caCert, requestCert: true, rejectUnauthorized: false, ...serverOptions() },
      (req, res) =>
        void (async () => {
          handled++;
          const router = new Router<null>();
          router.add('POST', '/v1/services/:id/scale', async (_c, _p, r) => readJson(r, BODY_LIMITS.small));
          router.add('GET', '/v1/info', () => ({ ok: true }));
          try {
            if (!(await router.dispatch(null, req, res))) throw new ApiError(404, 'ENOTFOUND', 'no such endpoint');
          } catch (e) {
            sendError(res, e);
          }
        })(),
    );
    guardServer(srv, () => false);
    port = await listen(srv);
  });
  after(async () => {
    rmSync(files, { recursive: true, force: true });
    srv.closeAllConnections();
    await new Promise<void>((r) => srv.close(() => r()));
  });

  const is413 = (a: { status: number; body: string }) => {
    assert.equal(a.status, 413, `no 413 read: ${JSON.stringify({ ...a, body: a.body.slice(0, 200) })}`);
    const e = (JSON.parse(a.body) as { error: { code: string; message: string; limit: number } }).error;
    assert.match(e.message, /limit of 64 KiB/);
    assert.equal(e.limit, BODY_LIMITS.small);
  };

  it('Node https client, 8 MiB in one write (the CLI, dockerode): reads the 413 naming the limit', async () => {
    for (let i = 0; i < 3; i++) is413(await nodePost(port, '/v1/services/web/scale', 8 * MiB));
    assert.equal((await httpsRaw(`127.0.0.1:${port}`, 'GET', '/v1/info', undefined, { ...tls, insecure: true })).status, 200);
  });

  for (const mode of ['expect', 'length', 'chunked'] as const) {
    it(`curl (${mode}), 8 MiB, 5 times: reads the 413 naming the limit each time, never "broken pipe"`, { skip: curlSkip }, async () => {
      for (let i = 0; i < 5; i++) {
        const r = await curlPost(port, '/v1/services/web/scale', mode);
        assert.equal(r.code, 0, `curl try ${i + 1} failed: ${r.err}`);
        is413(r);
      }
      assert.equal((await httpsRaw(`127.0.0.1:${port}`, 'GET', '/v1/info', undefined, { ...tls, insecure: true })).status, 200);
    });
  }

  it('raw TLS client, 8 MiB in 16 KiB writes: reads the 413, every byte is taken, no EPIPE/ECONNRESET', async () => {
    const a = await rawPost(port, '/v1/services/web/scale', 8 * MiB, 16 << 10);
    is413(a);
    assert.equal(a.headers.connection, 'close');
    assert.equal(a.error, null);
    assert.equal(a.sent, 8 * MiB);
  });

  it('raw TLS client with Expect: 100-continue: reads the 413 naming the limit, no EPIPE/ECONNRESET', async () => {
    const a = await rawPost(port, '/v1/services/web/scale', 8 * MiB, 64 << 10, true);
    is413(a);
    assert.equal(a.error, null);
  });

  it('past the byte bound (64 MiB) the connection is cut, and the server keeps answering', async () => {
    const total = BODY_DRAIN.bytes + 16 * MiB;
    const a = await rawPost(port, '/v1/services/web/scale', total, 256 << 10);
    // The 413 was sent first; whether the client still reads it after the reset is up to its kernel.
    cutAtBound(a.sent, total);
    const before = handled;
    assert.equal((await httpsRaw(`127.0.0.1:${port}`, 'GET', '/v1/info', undefined, { ...tls, insecure: true })).status, 200);
    assert.equal(handled, before + 1);
  });

  it('past the time bound a slow body is cut', async () => {
    const t0 = performance.now();
    const s = tlsConnect({ host: '127.0.0.1', port, ca: tls.ca, key: tls.key, cert: tls.cert, checkServerIdentity: () => undefined });
    const got: Buffer[] = [];
    s.on('data', (d: Buffer) => got.push(d));
    s.on('error', () => {});
    await new Promise<void>((r) => s.once('secureConnect', () => r()));
    s.write(`POST /v1/services/web/scale HTTP/1.1\r\nHost: x\r\nContent-Length: ${1 << 30}\r\n\r\n`);
    // One byte every 100 ms: the connection must be closed by the server within the bound (plus slack).
    const drip = setInterval(() => s.write('x'), 100);
    await new Promise<void>((r) => s.once('close', () => r()));
    clearInterval(drip);
    const ms = performance.now() - t0;
    assert.ok(ms >= BODY_DRAIN.ms - 100, `closed after ${ms} ms, before the bound of ${BODY_DRAIN.ms} ms`);
    assert.ok(ms < BODY_DRAIN.ms + 5_000, `still open after ${ms} ms`);
    is413(parseAnswer(Buffer.concat(got).toString('latin1'), 0, null));
  });
});

describe('the Docker API over TLS answers a 413 the same way', { concurrency: false }, () => {
  let d: DockerApiServer;
  let port = 0;
  before(async () => {
    const deps: DockerDeps = {
      control: new Router<{ cn: string }>(),
      nodeId: 'n1',
      clusterId: 'c1',
      host: { name: 'host-a', ncpu: 1, memTotal: 1 << 30, arch: 'x64', kernel: '6.0' },
      isLeader: () => true,
      leader: () => ({ id: 'n1', addr: '127.0.0.1:2377' }),
      managers: () => [{ id: 'n1', addr: '127.0.0.1:2377' }],
    };
    port = await freePort();
    d = new DockerApiServer({
      deps,
      tcp: { host: '127.0.0.1', port },
      tls: () => ({ key: server.key, cert: server.cert, ca: ca.caCert }),
      certProblem: () => null,
    });
    await d.start();
  });
  after(async () => d.stop());

  it('POST /secrets/create with 8 MiB in 16 KiB writes: the 413 {"message"} naming the limit, no EPIPE', async () => {
    for (const expect of [false, true]) {
      const a = await rawPost(port, '/v1.47/secrets/create', 8 * MiB, 16 << 10, expect);
      assert.equal(a.status, 413, JSON.stringify({ ...a, body: a.body.slice(0, 200) }));
      assert.match((JSON.parse(a.body) as { message: string }).message, /limit of 1 MiB/);
      assert.equal(a.error, null);
    }
  });

  it('past the byte bound the connection is cut (it used to be read to the end, with no time limit)', async () => {
    const total = BODY_DRAIN.bytes + 16 * MiB;
    const a = await rawPost(port, '/v1.47/secrets/create', total, 256 << 10);
    cutAtBound(a.sent, total);
  });

  it('Node https client, 8 MiB in one write: the 413', async () => {
    const r = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const data = Buffer.alloc(8 * MiB, 0x78);
      const req = httpsRequest(
        {
          host: '127.0.0.1',
          port,
          method: 'POST',
          path: '/v1.47/secrets/create',
          ...tls,
          checkServerIdentity: () => undefined,
          headers: { 'content-length': data.length },
        },
        (res) => {
          const c: Buffer[] = [];
          res.on('data', (b: Buffer) => c.push(b));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(c).toString() }));
        },
      );
      req.on('error', reject);
      req.end(data);
    });
    assert.equal(r.status, 413);
  });
});
