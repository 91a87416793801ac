// The CLI's TLS session cache (client/context.ts): a control call leaves the manager's session in a 0600
// file beside the context, the next call resumes it (the server sees a reused session), and a bad cache
// (garbage, a ticket the server does not know, sessions of other credentials) is ignored: the call
// makes a full, verified handshake and the file is replaced. A server whose certificate the context's CA
// did not sign is refused whether or not a session is cached. Real TLS on loopback; no root needed.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { control, loadContext, saveContext, sessionCachePath, type Context } from '../../client/context.ts';
import { generateKeyPem, type CaMaterial } from '../../manager/ca/pki.ts';
import { createRootCa } from '../../manager/ca/issue.ts';
import { signLoopback } from '../helpers/pki.ts';

const clusterId = 'sesstest';

/** A stand-in manager: answers every request with whether its TLS session was resumed. */
async function manager(ca: CaMaterial): Promise<{ server: Server; addr: string; reused: boolean[] }> {
  const key = await generateKeyPem();
  const reused: boolean[] = [];
  const server = createServer(
    { key, cert: signLoopback(ca, key, 'mgr', 'manager', clusterId), ca: ca.certPem, requestCert: true, rejectUnauthorized: true },
    (req, res) => {
      const r = (req.socket as TLSSocket).isSessionReused();
      reused.push(r);
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ reused: r }));
    },
  );
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return { server, addr: `127.0.0.1:${(server.address() as AddressInfo).port}`, reused };
}

describe('TLS session cache', () => {
  let dir = '';
  let ca: CaMaterial;
  let other: CaMaterial;
  let m: Awaited<ReturnType<typeof manager>>;
  let ctxPath = '';
  const fresh = (): Context => loadContext(ctxPath); // a new CLI process reads the context afresh
  const call = (ctx = fresh()) => control<{ reused: boolean }>(ctx, 'GET', '/v1/ping');
  /** What the exit handler writes (each CLI command is its own process). */
  const exitFlush = () => process.emit('exit', 0);

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'shoal-sess-'));
    [ca, other] = await Promise.all([createRootCa({ clusterId }), createRootCa({ clusterId })]);
    m = await manager(ca);
    const key = await generateKeyPem();
    ctxPath = join(dir, 'context.json');
    saveContext(ctxPath, { clusterId, managers: [m.addr], admin: { key, cert: signLoopback(ca, key, 'admin', 'admin', clusterId), ca: ca.certPem } });
  });
  after(() => {
    m?.server.close();
    m?.server.closeAllConnections();
    rmSync(dir, { recursive: true, force: true });
  });

  it('keeps the session in a 0600 file and resumes it on the next call', async () => {
    assert.equal((await call()).reused, false);
    exitFlush();
    const file = sessionCachePath(ctxPath);
    assert.equal(statSync(file).mode & 0o777, 0o600);
    const cached = JSON.parse(readFileSync(file, 'utf8')) as { sessions: Record<string, { ticket: string }> };
    assert.ok(cached.sessions[m.addr]?.ticket, 'a ticket for the manager');
    assert.equal((await call()).reused, true, 'the second call resumes');
  });

  it('ignores a cache that is not JSON, and replaces it', async () => {
    // A context of its own: this process's in-memory copy of the first one must not hide the file.
    const copy = join(dir, 'garbage.json');
    writeFileSync(copy, readFileSync(ctxPath));
    writeFileSync(sessionCachePath(copy), 'not json{', { mode: 0o644 });
    assert.equal((await call(loadContext(copy))).reused, false);
    exitFlush();
    assert.equal(statSync(sessionCachePath(copy)).mode & 0o777, 0o600, 'rewritten 0600');
    assert.equal((await call(loadContext(copy))).reused, true);
  });

  it('falls back to a full handshake when the server does not know the ticket', async () => {
    const copy = join(dir, 'unknown-ticket.json');
    writeFileSync(copy, readFileSync(ctxPath));
    const good = JSON.parse(readFileSync(sessionCachePath(ctxPath), 'utf8')) as { v: number; id: string };
    const bogus = { ...good, sessions: { [m.addr]: { at: Date.now(), ticket: Buffer.from('x'.repeat(200)).toString('base64') } } };
    writeFileSync(sessionCachePath(copy), JSON.stringify(bogus), { mode: 0o600 });
    const before = m.reused.length;
    assert.equal((await call(loadContext(copy))).reused, false);
    assert.equal(m.reused.length, before + 1, 'one request reached the manager');
  });

  it('ignores sessions made with other credentials', async () => {
    const copy = join(dir, 'other-creds.json');
    const ctx = loadContext(ctxPath);
    const key = await generateKeyPem();
    // The same manager, but the admin certificate is a new one: the cached sessions must not be offered.
    saveContext(copy, { ...ctx, admin: { ...ctx.admin, key, cert: signLoopback(ca, key, 'admin2', 'admin', clusterId) } });
    writeFileSync(sessionCachePath(copy), readFileSync(sessionCachePath(ctxPath)), { mode: 0o600 });
    assert.equal((await call(loadContext(copy))).reused, false);
  });

  it('refuses a manager certified by another CA, session cache or not', async () => {
    const impostor = await manager(other);
    try {
      const copy = join(dir, 'impostor.json');
      const ctx = loadContext(ctxPath);
      saveContext(copy, { ...ctx, managers: [impostor.addr] });
      // Offer the real manager's ticket to the impostor: it cannot resume it, and the full handshake fails.
      const good = JSON.parse(readFileSync(sessionCachePath(ctxPath), 'utf8')) as { sessions: Record<string, unknown> };
      writeFileSync(sessionCachePath(copy), JSON.stringify({ ...good, sessions: { [impostor.addr]: good.sessions[m.addr] } }), { mode: 0o600 });
      await assert.rejects(call(loadContext(copy)), /no manager reachable/);
      assert.deepEqual(impostor.reused, [], 'no request reached the impostor');
    } finally {
      impostor.server.close();
      impostor.server.closeAllConnections();
    }
  });
});
