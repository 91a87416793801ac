// GET /keys/v1/dek (manager/keys/endpoint.ts) on a real mutual-TLS server on loopback, with real
// cluster certificates: a manager certificate gets the key ring (fetchKeyRing), a worker's, an admin's,
// a revoked manager's and an anonymous caller get nothing.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import { createCsr, generateKeyPem, verifyNodeCertificate } from '../../manager/ca/pki.ts';
import { createRootCa, signNodeCertificate } from '../../manager/ca/issue.ts';
import { KeyRing } from '../../manager/keys/keyring.ts';
import { KEYS_PATH, fetchKeyRing, serveKeys } from '../../manager/keys/endpoint.ts';
import { httpsJson } from '../../transport/https.ts';

describe('GET /keys/v1/dek', { timeout: 60_000 }, () => {
  const clusterId = 'c1';
  const ring = KeyRing.generate(randomBytes, new Date());
  const denied = new Set<string>();
  let server: Server;
  let addr = '';
  let ca = '';
  const creds = new Map<string, { key: string; cert: string; serial: string }>();

  before(async () => {
    const root = await createRootCa({ clusterId });
    ca = root.certPem;
    const issue = async (nodeId: string, role: 'manager' | 'worker' | 'admin') => {
      const key = await generateKeyPem();
      const c = signNodeCertificate({
        caCertPem: root.certPem,
        caKeyPem: root.keyPem,
        csrPem: createCsr({ keyPem: key, nodeId }),
        nodeId,
        role,
        clusterId,
        sans: { ips: ['127.0.0.1'] },
      });
      creds.set(nodeId, { key, cert: c.certPem, serial: c.serial });
    };
    await Promise.all([issue('m1', 'manager'), issue('m2', 'manager'), issue('m3', 'manager'), issue('w1', 'worker'), issue('admin1', 'admin')]);
    denied.add(creds.get('m3')!.serial);
    const certProblem = (raw: Buffer | undefined, roles: string[]) => {
      if (!raw) return 'a client certificate is required';
      const r = verifyNodeCertificate(raw, { caCertPem: ca, clusterId, denied });
      if (!r.ok) return r.reason;
      return roles.includes(r.info.role) ? null : `a ${r.info.role} certificate may not call this endpoint`;
    };
    const m1 = creds.get('m1')!;
    server = createServer({ key: m1.key, cert: m1.cert, ca, requestCert: true, rejectUnauthorized: false }, (req, res) => {
      if (!serveKeys(req, res, { ring: () => ring, certProblem })) res.writeHead(404).end();
    });
    server.listen(0, '127.0.0.1');
    await new Promise((r) => server.once('listening', r));
    addr = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  after(() => new Promise<void>((r) => server.close(() => r())));

  it('gives another manager the key ring', async () => {
    const m2 = creds.get('m2')!;
    const got = await fetchKeyRing([addr], { ca, key: m2.key, cert: m2.cert });
    assert.equal(got.active.kid, ring.active.kid);
    assert.deepEqual(got.active.key, ring.active.key);
  });

  it('refuses workers, admins, revoked managers and anonymous callers', async () => {
    for (const who of ['w1', 'admin1', 'm3']) {
      const c = creds.get(who)!;
      const r = await httpsJson(addr, 'GET', KEYS_PATH, undefined, { ca, key: c.key, cert: c.cert });
      assert.equal(r.status, 403, `${who}: ${JSON.stringify(r.body)}`);
      assert.ok(!JSON.stringify(r.body).includes(ring.active.key.toString('base64')));
    }
    const anon = await httpsJson(addr, 'GET', KEYS_PATH, undefined, { ca });
    assert.equal(anon.status, 403);
    await assert.rejects(
      fetchKeyRing([addr], { ca, key: creds.get('w1')!.key, cert: creds.get('w1')!.cert }),
      /could not fetch the data-encryption key.*HTTP 403/,
    );
  });
});
