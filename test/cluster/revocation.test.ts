// Revocation on a real lab (h15x: 3 managers + 1 worker, test executor), each check with a raw client
// holding certificate files saved before the change: a demoted manager's old certificate is refused on
// /raft/v1 (at once) and everywhere after its renewal; a removed worker's certificate is refused on the
// dispatcher and the image endpoint; an admin issued with `cluster ca --issue-admin` works until
// `--revoke-admin`, then is refused; `--admins` lists both; an archive tagged with a digest is refused.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { WebSocket } from 'ws';
import { localCall } from '../../client/context.ts';
import { parseCertificate } from '../../manager/ca/pki.ts';
import { appImage, baseImage, dockerSaveLegacy } from '../images/fixtures.ts';
import { ClusterLab, waitFor } from '../../lab/cluster-lab.ts';
import { cleanupOnExit } from '../../lab/lab.ts';

const NAME = 'h15x';
const SHOAL = join(resolve(fileURLToPath(new URL('../..', import.meta.url))), 'bin', 'shoal');

interface Creds {
  key: string;
  cert: string;
  ca: string;
}

/** The HTTP status a WebSocket upgrade gets with `creds` (101 when it opens), or -1 on a TLS failure. */
function upgradeStatus(url: string, creds: Creds): Promise<number> {
  return new Promise((res) => {
    const ws = new WebSocket(url, { ...creds, rejectUnauthorized: true, checkServerIdentity: () => undefined, handshakeTimeout: 5000 } as never);
    ws.on('open', () => {
      ws.terminate();
      res(101);
    });
    ws.on('unexpected-response', (_req, r) => {
      res(r.statusCode ?? 0);
      r.resume();
      ws.terminate();
    });
    ws.on('error', () => res(-1));
  });
}

function httpsGet(hostPort: string, path: string, creds: Creds): Promise<{ status: number; body: string }> {
  const [host, port] = hostPort.split(':');
  return new Promise((res, rej) => {
    const req = request(
      { host, port: Number(port), path, method: 'GET', ...creds, rejectUnauthorized: true, checkServerIdentity: () => undefined, timeout: 5000 },
      (r) => {
        let body = '';
        r.on('data', (c) => (body += c));
        r.on('end', () => res({ status: r.statusCode ?? 0, body }));
      },
    );
    req.on('error', rej);
    req.end();
  });
}

describe('revocation on a lab', { concurrency: false, timeout: 300_000 }, () => {
  let c: ClusterLab;
  let unhook: () => void = () => {};
  const tmp = mkdtempSync(join(tmpdir(), 'shoal-h15x-'));
  const savedCreds = (h: string): Creds => ({
    key: readFileSync(join(c.stateDir(h), 'certs', 'node.key'), 'utf8'),
    cert: readFileSync(join(c.stateDir(h), 'certs', 'node.crt'), 'utf8'),
    ca: readFileSync(join(c.stateDir(h), 'certs', 'ca.crt'), 'utf8'),
  });
  const addr = (h: string) => `${c.host(h).ip}:2377`;
  const sh = (...args: string[]) =>
    new Promise<{ code: number; out: string; err: string }>((res) => {
      execFile(SHOAL, args, { env: { ...process.env, SHOAL_CONTEXT: c.contextPath }, timeout: 60_000 }, (e, out, err) =>
        res({ code: e ? (typeof (e as { code?: unknown }).code === 'number' ? (e as { code: number }).code : 1) : 0, out: String(out), err: String(err) }),
      );
    });
  const node = async (h: string) => (await c.nodes()).find((n: any) => n.description.hostname === h);

  before(async () => {
    unhook = cleanupOnExit(NAME);
    c = await ClusterLab.up({ name: NAME, managers: 3, workers: 1, executor: 'test' });
  });

  after(async () => {
    await c?.down();
    unhook();
    rmSync(tmp, { recursive: true, force: true });
  });

  it("a demoted manager's old certificate is refused on /raft/v1 at once, and everywhere once renewed", async () => {
    const old = savedCreds('h3');
    assert.equal(parseCertificate(old.cert).role, 'manager');
    assert.equal(await upgradeStatus(`wss://${addr('h1')}/raft/v1`, old), 101, 'before demotion the certificate opens Raft');
    const id = (await node('h3')).id;
    await c.control('POST', `/v1/nodes/${id}/demote`);
    // At once: refused on Raft by every remaining manager.
    for (const h of ['h1', 'h2']) {
      await waitFor(async () => (await upgradeStatus(`wss://${addr(h)}/raft/v1`, old)) === 403, 10_000, `${h} refuses the demoted certificate on /raft/v1`);
    }
    // The node renews into a worker certificate (over its session); then the old one is revoked outright.
    await waitFor(async () => (await node('h3'))?.certificate?.role === 'worker', 30_000, 'h3 renewed as a worker');
    await waitFor(() => parseCertificate(savedCreds('h3').cert).role === 'worker', 10_000, 'h3 wrote its worker certificate');
    assert.equal(await upgradeStatus(`wss://${addr('h1')}/dispatcher/v1`, old), 403);
    assert.equal(await upgradeStatus(`wss://${addr('h1')}/raft/v1`, old), 403);
    await waitFor(async () => (await node('h3'))?.status.state === 'ready', 20_000, 'h3 ready as a worker');
  });

  it("a removed node's certificate is refused everywhere", async () => {
    const old = savedCreds('h4');
    assert.equal(await upgradeStatus(`wss://${addr('h1')}/dispatcher/v1`, old), 101, 'before removal the worker certificate opens a session');
    const id = (await node('h4')).id;
    await c.control('DELETE', `/v1/nodes/${id}?force=1`);
    for (const h of ['h1', 'h2']) {
      await waitFor(async () => (await upgradeStatus(`wss://${addr(h)}/dispatcher/v1`, old)) === 403, 10_000, `${h} refuses the removed node's session`);
      const img = await httpsGet(addr(h), '/images/v1/export?ref=x', old);
      assert.equal(img.status, 403);
      assert.match(img.body, /revoked/);
    }
    assert.equal(await upgradeStatus(`wss://${addr('h1')}/raft/v1`, old), 403);
  });

  it('an issued admin works until revoked; --admins lists them', async () => {
    const file = join(tmp, 'ops.json');
    const issued = await sh('cluster', 'ca', '--issue-admin', 'ops', '--expiry', '30d', '--output', file);
    assert.equal(issued.code, 0, issued.err);
    assert.equal(statSync(file).mode & 0o777, 0o600);
    const ls = await sh('node', 'ls', '--context', file);
    assert.equal(ls.code, 0, ls.err);
    assert.match(ls.out, /h1/);
    const list = await sh('cluster', 'ca', '--admins');
    assert.match(list.out, /^NAME\s+SERIAL\s+EXPIRES\s+REVOKED/);
    assert.match(list.out, /\nops\s+[0-9a-f]+\s+\S+\s+no/);
    const revoked = await sh('cluster', 'ca', '--revoke-admin', 'ops');
    assert.equal(revoked.code, 0, revoked.err);
    const refused = await sh('node', 'ls', '--context', file);
    assert.notEqual(refused.code, 0);
    assert.match(refused.err, /was revoked/);
    assert.match((await sh('cluster', 'ca', '--admins')).out, /\nops\s+[0-9a-f]+\s+\S+\s+yes/);
    assert.equal((await sh('node', 'ls')).code, 0, 'the cluster admin still works');
  });

  it('an archive tagged with a digest is refused at load', async () => {
    const real = join(tmp, 'real.tar');
    writeFileSync(real, dockerSaveLegacy([baseImage('web:1')]));
    const loaded = await localCall<{ digest?: string; images?: { digest: string }[] }>(c.stateDir('h1'), 'POST', '/images/load', { path: real });
    const digest = loaded.digest ?? loaded.images?.[0]?.digest;
    assert.match(String(digest), /^sha256:[0-9a-f]{64}$/);
    const evil = join(tmp, 'evil.tar');
    writeFileSync(evil, dockerSaveLegacy([appImage(String(digest))]));
    await assert.rejects(localCall(c.stateDir('h1'), 'POST', '/images/load', { path: evil }), /looks like a digest/);
  });
});
