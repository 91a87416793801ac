// Admin certificates end to end on one in-process manager (the real Daemon, test executor): the init
// admin is recorded, a new admin can be issued and works, a name cannot be issued twice, a revoked admin
// is refused on the next request while the others go on, and the CLI renews its own certificate past
// 2/3 of its life, rewriting the context file 0600.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { X509Certificate } from 'node:crypto';
import { Daemon } from '../../daemon/daemon.ts';
import { createCsr, generateKeyPem, parseCertificate } from '../../manager/ca/pki.ts';
import { control, loadContext, renewAdminIfDue, saveContext, type Context } from '../../client/context.ts';

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
}

interface Issued {
  name: string;
  serial: string;
  notAfter: string;
  certPem: string;
  caCertPem: string;
  clusterId: string;
  managers: string[];
}
interface Listed {
  name: string;
  serial: string;
  notAfter: string;
  revoked: boolean;
}

describe('admin certificates', () => {
  const dir = mkdtempSync(join(tmpdir(), 'shoal-admins-'));
  let daemon: Daemon;
  let root: Context;

  const issue = async (name: string, validityMs?: number): Promise<Context & { serial: string }> => {
    const key = await generateKeyPem();
    const r = await control<Issued>(root, 'POST', '/v1/ca/admins', {
      name,
      csr: createCsr({ keyPem: key, nodeId: 'x' }),
      ...(validityMs ? { validityMs } : {}),
    });
    return { clusterId: r.clusterId, managers: r.managers, admin: { key, cert: r.certPem, ca: r.caCertPem }, serial: r.serial };
  };

  before(async () => {
    daemon = new Daemon({ stateDir: join(dir, 'state'), executor: 'test', processGuard: false, hostname: 'shoal-ca1', log: () => {} });
    await daemon.start();
    const r = await daemon.init({ advertiseAddr: '127.0.0.1', listenPort: await freePort() });
    root = { clusterId: r.clusterId, managers: r.managers, admin: r.admin };
  });
  after(async () => {
    await daemon.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('records the admin certificate cluster init issued', async () => {
    const list = await control<Listed[]>(root, 'GET', '/v1/ca/admins');
    const info = parseCertificate(root.admin.cert);
    assert.deepEqual(
      list.map((a) => [a.name, a.serial, a.revoked]),
      [[info.nodeId, info.serial, false]],
    );
  });

  it('issues a working admin certificate with the name as CN; a taken name is 409; bad input 400', async () => {
    const bob = await issue('bob', 3600_000);
    const info = parseCertificate(bob.admin.cert);
    assert.equal(info.nodeId, 'bob');
    assert.equal(info.role, 'admin');
    assert.ok(info.notAfter.getTime() - Date.now() < 3600_000 + 5000);
    assert.ok(Array.isArray(await control(bob, 'GET', '/v1/nodes')));
    await assert.rejects(issue('bob'), /already holds a valid certificate/);
    await assert.rejects(issue('../etc'), /admin name must be/);
    await assert.rejects(control(root, 'POST', '/v1/ca/admins', { name: 'eve', csr: 'nope' }), /certificate request refused/);
    await assert.rejects(control(root, 'POST', '/v1/ca/admins', { name: 'eve', csr: 'x', validityMs: 5 }), /between 1m and 10 years/);
  });

  it('a revoked admin is refused on its next request; others are not', async () => {
    const carol = await issue('carol');
    assert.ok(Array.isArray(await control(carol, 'GET', '/v1/nodes')));
    const r = await control<{ revoked: Listed }>(root, 'POST', '/v1/ca/admins/revoke', { ref: 'carol' });
    assert.equal(r.revoked.serial, carol.serial);
    await assert.rejects(control(carol, 'GET', '/v1/nodes'), new RegExp(`certificate ${carol.serial} of admin carol was revoked`));
    assert.ok(Array.isArray(await control(root, 'GET', '/v1/nodes')));
    const list = await control<Listed[]>(root, 'GET', '/v1/ca/admins');
    assert.equal(list.find((a) => a.name === 'carol')!.revoked, true);
    await assert.rejects(control(root, 'POST', '/v1/ca/admins/revoke', { ref: 'nobody' }), /no admin certificate named/);
    // Revocation by serial works too, and the name may then be issued again.
    const dave = await issue('dave');
    await control(root, 'POST', '/v1/ca/admins/revoke', { ref: dave.serial });
    await assert.rejects(control(dave, 'GET', '/v1/nodes'), /was revoked/);
    const dave2 = await issue('dave');
    assert.ok(Array.isArray(await control(dave2, 'GET', '/v1/nodes')));
  });

  it('the CLI renews its admin certificate past 2/3 of its life and rewrites the context 0600', async () => {
    const erin = await issue('erin', 90_000);
    const path = join(dir, 'erin.json');
    saveContext(path, erin);
    const ctx = loadContext(path);
    const x = new X509Certificate(erin.admin.cert);
    const from = Date.parse(x.validFrom);
    const to = Date.parse(x.validTo);
    // Before 2/3: nothing happens.
    await renewAdminIfDue(ctx, from + (to - from) / 2);
    assert.equal(loadContext(path).admin.cert, erin.admin.cert);
    const ctx2 = loadContext(path);
    await renewAdminIfDue(ctx2, from + ((to - from) * 3) / 4);
    const renewed = loadContext(path);
    assert.notEqual(renewed.admin.cert, erin.admin.cert);
    assert.notEqual(renewed.admin.key, erin.admin.key);
    assert.equal(parseCertificate(renewed.admin.cert).nodeId, 'erin');
    assert.equal(statSync(path).mode & 0o777, 0o600);
    assert.ok(Array.isArray(await control(renewed, 'GET', '/v1/nodes')));
    const list = await control<Listed[]>(root, 'GET', '/v1/ca/admins');
    assert.equal(list.find((a) => a.name === 'erin')!.serial, parseCertificate(renewed.admin.cert).serial);
    // Revoking erin revokes the earlier certificate too.
    await control(root, 'POST', '/v1/ca/admins/revoke', { ref: 'erin' });
    await assert.rejects(control(erin, 'GET', '/v1/nodes'), /was revoked/);
    await assert.rejects(control(renewed, 'GET', '/v1/nodes'), /was revoked/);
  });
});
