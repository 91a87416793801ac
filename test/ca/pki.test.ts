import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, createPublicKey, generateKeyPairSync, X509Certificate } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer, request } from 'node:https';
import type { Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import forge from 'node-forge';
import {
  CA_COMMON_NAME,
  caDigest,
  createCsr,
  generateKeyPem,
  issuingRootDigest,
  parseCertificate,
  PkiError,
  renewalTime,
  verifyNodeCertificate,
} from '../../manager/ca/pki.ts';
import { createRootCa, signNodeCertificate } from '../../manager/ca/issue.ts';
import type { CaMaterial, IssuedCertificate, NodeRole, PkiErrorCode } from '../../manager/ca/pki.ts';

const CLUSTER = 'cluster-a';
const DAY = 24 * 3600_000;
// A fixed instant inside the CA's lifetime (next 1 June, noon UTC), so expected times are exact.
const NOW = new Date(Date.UTC(new Date().getUTCFullYear() + 1, 5, 1, 12));
const at = (deltaMs: number): string => new Date(NOW.getTime() + deltaMs).toISOString();

// RSA throughout this file: forge (the independent parser these tests read certificates with) reads RSA
// keys only. The ECDSA default is tested in ecdsa.test.ts, against OpenSSL.
let ca: CaMaterial; // the cluster's CA: RSA-3072, the root of clusters made before ECDSA
let impostor: CaMaterial; // same subject (shoal-ca, O=cluster-a), different key
let foreign: CaMaterial; // another cluster's CA
let keys: string[] = []; // node keys, reused
let workerCsr: string;

function key(i: number): string {
  const k = keys[i];
  if (!k) throw new Error(`no key ${i}`);
  return k;
}

function issue(over: Partial<Parameters<typeof signNodeCertificate>[0]> = {}): IssuedCertificate {
  return signNodeCertificate({
    caCertPem: ca.certPem,
    caKeyPem: ca.keyPem,
    csrPem: workerCsr,
    nodeId: 'node-1',
    role: 'worker',
    clusterId: CLUSTER,
    ...over,
  });
}

function pkiCode(code: PkiErrorCode, message?: RegExp): (err: unknown) => boolean {
  return (err: unknown) => {
    assert.ok(err instanceof PkiError, `expected PkiError, got ${String(err)}`);
    assert.equal(err.code, code);
    if (message) assert.match(err.message, message);
    return true;
  };
}

/** keyIdentifier [0] of the authorityKeyIdentifier extension, hex. */
function authorityKeyId(certPem: string): string {
  const ext = forge.pki.certificateFromPem(certPem).getExtension('authorityKeyIdentifier') as { value: string } | undefined;
  assert.ok(ext, 'authorityKeyIdentifier present');
  const seq = forge.asn1.fromDer(ext.value);
  const first = (seq.value as forge.asn1.Asn1[])[0];
  assert.ok(first && first.tagClass === forge.asn1.Class.CONTEXT_SPECIFIC && first.type === 0);
  return forge.util.bytesToHex(first.value as string);
}

function subjectKeyId(certPem: string): string {
  const ext = forge.pki.certificateFromPem(certPem).getExtension('subjectKeyIdentifier') as { subjectKeyIdentifier: string } | undefined;
  assert.ok(ext, 'subjectKeyIdentifier present');
  return ext.subjectKeyIdentifier;
}

/** A certificate signed by `signer` with an arbitrary subject: the cases signNodeCertificate refuses to make. */
function craft(signer: CaMaterial, subject: { CN: string; OU?: string; O?: string }, nodeKeyPem: string, claimedCa: CaMaterial = signer): string {
  const caCert = forge.pki.certificateFromPem(claimedCa.certPem);
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.publicKeyFromPem(createPublicKey(nodeKeyPem).export({ type: 'spki', format: 'pem' }) as string);
  cert.serialNumber = '01a2b3c4';
  cert.validity.notBefore = new Date(NOW.getTime() - DAY);
  cert.validity.notAfter = new Date(NOW.getTime() + DAY);
  const attrs: forge.pki.CertificateField[] = [{ name: 'commonName', value: subject.CN }];
  if (subject.OU !== undefined) attrs.push({ name: 'organizationalUnitName', value: subject.OU });
  if (subject.O !== undefined) attrs.push({ name: 'organizationName', value: subject.O });
  cert.setSubject(attrs);
  cert.setIssuer(caCert.subject.attributes);
  cert.setExtensions([{ name: 'authorityKeyIdentifier', keyIdentifier: forge.util.hexToBytes(subjectKeyId(claimedCa.certPem)) }]);
  cert.sign(forge.pki.privateKeyFromPem(signer.keyPem), forge.md.sha256.create());
  return forge.pki.certificateToPem(cert);
}

before(async () => {
  [ca, impostor, foreign, ...keys] = await Promise.all([
    createRootCa({ clusterId: CLUSTER, keyType: 'rsa-3072', now: new Date(Date.now() - 30 * DAY) }), // old enough to issue an expired cert
    createRootCa({ clusterId: CLUSTER, keyType: 'rsa-2048' }),
    createRootCa({ clusterId: 'cluster-b', keyType: 'rsa-2048' }),
    generateKeyPem('rsa-2048'),
    generateKeyPem('rsa-2048'),
    generateKeyPem('rsa-2048'),
  ]);
  // The node asks to be called "evil-admin"; the CA decides it is node-1.
  workerCsr = createCsr({ keyPem: key(0), nodeId: 'evil-admin' });
});

describe('createRootCa', () => {
  test('self-signed RSA CA: CN shoal-ca, O = cluster, critical CA:true and keyCertSign+cRLSign, SKI, RSA-3072, 20 years', () => {
    const x = new X509Certificate(ca.certPem);
    assert.equal(x.subject, `CN=${CA_COMMON_NAME}\nO=${CLUSTER}`);
    assert.equal(x.issuer, x.subject);
    assert.equal(x.ca, true);
    assert.ok(x.checkIssued(x) && x.verify(x.publicKey), 'self-signed');
    assert.equal(x.publicKey.asymmetricKeyDetails?.modulusLength, 3072);
    assert.match(ca.keyPem, /^-----BEGIN PRIVATE KEY-----\n/);

    const f = forge.pki.certificateFromPem(ca.certPem);
    assert.deepEqual(pick(f.getExtension('basicConstraints'), ['cA', 'critical']), { cA: true, critical: true });
    assert.deepEqual(pick(f.getExtension('keyUsage'), ['keyCertSign', 'cRLSign', 'digitalSignature', 'critical']), {
      keyCertSign: true,
      cRLSign: true,
      digitalSignature: false,
      critical: true,
    });
    assert.match(subjectKeyId(ca.certPem), /^[0-9a-f]{40}$/);

    const lifetime = new Date(x.validTo).getTime() - new Date(x.validFrom).getTime() - 60_000;
    assert.ok(lifetime >= 20 * 365 * DAY - 1000 && lifetime <= 20 * 366 * DAY, `lifetime ${lifetime / DAY} days`);
  });

  test('validityYears and keyType are honoured', async () => {
    const short = await createRootCa({ clusterId: 'c-short', validityYears: 2, keyType: 'rsa-2048', now: NOW });
    const info = parseCertificate(short.certPem);
    assert.equal(info.notAfter.toISOString(), new Date(Date.UTC(NOW.getUTCFullYear() + 2, 5, 1, 12)).toISOString());
    assert.equal(info.notBefore.toISOString(), at(-60_000));
    assert.equal(info.clusterId, 'c-short');
    assert.equal(new X509Certificate(short.certPem).publicKey.asymmetricKeyDetails?.modulusLength, 2048);
  });

  test('rejects cluster ids that cannot be a subject O', async () => {
    await assert.rejects(createRootCa({ clusterId: 'a,b=c' }), pkiCode('INVALID_ARGUMENT', /clusterId/));
    await assert.rejects(createRootCa({ clusterId: '' }), pkiCode('INVALID_ARGUMENT'));
    await assert.rejects(createRootCa({ clusterId: 'c', validityYears: 0 }), pkiCode('INVALID_ARGUMENT', /validityYears/));
  });
});

describe('createCsr / signNodeCertificate', () => {
  test('the CSR names the requested CN and is signed by the key', () => {
    const csr = forge.pki.certificationRequestFromPem(workerCsr);
    assert.equal(csr.subject.getField('CN').value, 'evil-admin');
    assert.equal(csr.verify(), true);
    assert.match(workerCsr, /^-----BEGIN CERTIFICATE REQUEST-----\n/);
  });

  test('the CSR is standard PKCS#10 (built without forge): openssl verifies it, a long CN and the attributes field included', () => {
    const dir = mkdtempSync(join(tmpdir(), 'shoal-csr-'));
    try {
      // 64 characters: the longest id checkName allows, so the DER lengths go past the short form.
      const cn = `n${'x'.repeat(63)}`;
      for (const [name, pem] of [
        ['worker', workerCsr],
        ['long', createCsr({ keyPem: key(1), nodeId: cn })],
      ] as const) {
        writeFileSync(join(dir, `${name}.csr`), pem);
        const out = execFileSync('openssl', ['req', '-in', join(dir, `${name}.csr`), '-noout', '-verify', '-subject', '-nameopt', 'RFC2253'], {
          encoding: 'utf8',
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        assert.match(out, new RegExp(`subject=CN=${name === 'long' ? cn : 'evil-admin'}`));
        assert.match(
          execFileSync('openssl', ['req', '-in', join(dir, `${name}.csr`), '-noout', '-text'], { encoding: 'utf8' }),
          /Attributes:\s*\n\s*\(none\)|Attributes:\s*\n\s*a0:00/,
        );
      }
      assert.equal(forge.pki.certificationRequestFromPem(createCsr({ keyPem: key(1), nodeId: cn })).verify(), true, 'forge reads it too');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('issued certificate: identity decided by the CA, SANs, EKU, serial, skew-adjusted validity, AKI', () => {
    const issued = issue({ now: NOW, sans: { ips: ['10.0.0.5', '::ffff:192.0.2.1', '2001:db8::7'], dns: ['Node-1.Example.org'] } });
    const x = new X509Certificate(issued.certPem);
    assert.equal(x.subject, `CN=node-1\nOU=worker\nO=${CLUSTER}`);
    assert.equal(x.issuer, `CN=shoal-ca\nO=${CLUSTER}`);
    assert.equal(
      x.subjectAltName,
      'DNS:shoal-worker, DNS:node-1, DNS:node-1.example.org, IP Address:10.0.0.5, ' + 'IP Address:0:0:0:0:0:FFFF:C000:201, IP Address:2001:DB8:0:0:0:0:0:7',
    );
    assert.deepEqual([...(x.keyUsage ?? [])].sort(), ['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2']);
    assert.equal(x.ca, false);
    const ca509 = new X509Certificate(ca.certPem);
    assert.ok(x.checkIssued(ca509), 'issuer name and AKI match the CA');
    assert.ok(x.verify(ca509.publicKey), 'signed by the CA key');
    assert.equal(authorityKeyId(issued.certPem), subjectKeyId(ca.certPem));

    // The certificate carries the CSR's key, nothing else from the CSR.
    const spki = (pem: string): string => createPublicKey(pem).export({ type: 'spki', format: 'der' }).toString('hex');
    assert.equal(x.publicKey.export({ type: 'spki', format: 'der' }).toString('hex'), spki(key(0)));

    assert.match(issued.serial, /^[0-9a-f]{32}$/);
    assert.notEqual(issued.serial.slice(0, 2), '00');
    assert.equal(x.serialNumber.toLowerCase(), issued.serial);
    assert.equal(issued.notBefore.toISOString(), at(-60_000));
    assert.equal(issued.notAfter.toISOString(), new Date(NOW.getTime() + 90 * DAY).toISOString());
    assert.equal(new Date(x.validFrom).getTime(), issued.notBefore.getTime());
    assert.equal(new Date(x.validTo).getTime(), issued.notAfter.getTime());

    const f = forge.pki.certificateFromPem(issued.certPem);
    assert.deepEqual(pick(f.getExtension('basicConstraints'), ['cA', 'critical']), { cA: false, critical: true });
  });

  test('serials are random per certificate', () => {
    const serials = new Set([issue().serial, issue().serial, issue().serial]);
    assert.equal(serials.size, 3);
  });

  test('nothing the CSR asks for beyond its key is honoured (subject OU/O, CA:true extension request)', () => {
    const priv = forge.pki.privateKeyFromPem(key(1));
    const csr = forge.pki.createCertificationRequest();
    csr.publicKey = forge.pki.setRsaPublicKey(priv.n, priv.e);
    csr.setSubject([
      { name: 'commonName', value: 'root' },
      { name: 'organizationalUnitName', value: 'admin' },
      { name: 'organizationName', value: 'cluster-b' },
    ]);
    csr.setAttributes([
      {
        name: 'extensionRequest',
        extensions: [
          { name: 'basicConstraints', cA: true, critical: true },
          { name: 'subjectAltName', altNames: [{ type: 2, value: 'evil.example' }] },
        ],
      },
    ]);
    csr.sign(priv, forge.md.sha256.create());
    const issued = issue({ csrPem: forge.pki.certificationRequestToPem(csr), nodeId: 'node-2', role: 'manager', now: NOW });
    const x = new X509Certificate(issued.certPem);
    assert.equal(x.subject, `CN=node-2\nOU=manager\nO=${CLUSTER}`);
    assert.equal(x.ca, false);
    assert.equal(x.subjectAltName, 'DNS:shoal-manager, DNS:node-2');
  });

  test('refuses a CSR whose signature does not match its key (no proof of possession)', () => {
    const signer = forge.pki.privateKeyFromPem(key(1));
    const victim = forge.pki.privateKeyFromPem(key(2));
    const csr = forge.pki.createCertificationRequest();
    csr.publicKey = forge.pki.setRsaPublicKey(victim.n, victim.e);
    csr.setSubject([{ name: 'commonName', value: 'x' }]);
    csr.sign(signer, forge.md.sha256.create());
    assert.throws(() => issue({ csrPem: forge.pki.certificationRequestToPem(csr) }), pkiCode('CSR_SIGNATURE', /does not match its public key/));
  });

  test('refuses malformed CSRs and weak keys', () => {
    assert.throws(() => issue({ csrPem: 'not a csr' }), pkiCode('MALFORMED_CSR', /^certificate signing request is malformed/));
    const tampered = workerCsr.replace(/\n(.)(.)/, (_m, a: string, b: string) => `\n${b}${a}`);
    assert.throws(
      () => issue({ csrPem: tampered }),
      (err: unknown) => err instanceof PkiError && ['MALFORMED_CSR', 'CSR_SIGNATURE'].includes(err.code),
    );
    const weak = generateKeyPairSync('rsa', {
      modulusLength: 1024,
      privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
      publicKeyEncoding: { type: 'spki', format: 'pem' },
    });
    assert.throws(() => issue({ csrPem: createCsr({ keyPem: weak.privateKey, nodeId: 'w' }) }), pkiCode('WEAK_KEY', /RSA-1024; at least RSA-2048/));
  });

  test('refuses a CA key that does not belong to the CA certificate', () => {
    assert.throws(() => issue({ caKeyPem: impostor.keyPem }), pkiCode('CA_KEY_MISMATCH'));
  });

  test('never outlives the CA, and refuses to sign outside the CA validity', () => {
    const caEnd = parseCertificate(ca.certPem).notAfter;
    const late = issue({ now: new Date(caEnd.getTime() - 3600_000) });
    assert.equal(late.notAfter.getTime(), caEnd.getTime());
    assert.throws(() => issue({ now: new Date(caEnd.getTime() + 1000) }), pkiCode('CA_NOT_VALID', /not valid at/));
  });

  test('rejects bad arguments', () => {
    assert.throws(() => issue({ role: 'root' as NodeRole }), pkiCode('INVALID_ARGUMENT', /role must be one of manager, worker, admin/));
    assert.throws(() => issue({ nodeId: 'node-1,OU=admin' }), pkiCode('INVALID_ARGUMENT', /nodeId/));
    assert.throws(() => issue({ sans: { ips: ['10.0.0.256'] } }), pkiCode('INVALID_ARGUMENT', /invalid IP/));
    assert.throws(() => issue({ sans: { dns: ['*.example.org'] } }), pkiCode('INVALID_ARGUMENT', /invalid DNS/));
    assert.throws(() => issue({ validityMs: 0 }), pkiCode('INVALID_ARGUMENT', /validityMs/));
    assert.throws(() => createCsr({ keyPem: 'nope', nodeId: 'n' }), pkiCode('MALFORMED_KEY'));
  });
});

describe('parseCertificate / caDigest', () => {
  test('reads identity, role, cluster, serial, validity, fingerprint and issuer', () => {
    const issued = issue({ nodeId: 'node-9', role: 'admin', now: NOW });
    const info = parseCertificate(issued.certPem);
    const der = new X509Certificate(issued.certPem).raw;
    assert.deepEqual(info, {
      nodeId: 'node-9',
      role: 'admin',
      clusterId: CLUSTER,
      serial: issued.serial,
      notBefore: issued.notBefore,
      notAfter: issued.notAfter,
      fingerprint: createHash('sha256').update(der).digest('hex'),
      issuerCn: 'shoal-ca',
    });
    assert.deepEqual(parseCertificate(der), info, 'DER works too (TLS peer certificates)');
  });

  test('malformed input raises PkiError MALFORMED_CERTIFICATE', () => {
    assert.throws(() => parseCertificate('hello'), pkiCode('MALFORMED_CERTIFICATE', /not PEM/));
    const cut = ca.certPem.slice(0, 200) + '\n-----END CERTIFICATE-----\n';
    assert.throws(() => parseCertificate(cut), pkiCode('MALFORMED_CERTIFICATE', /malformed/));
    assert.throws(() => parseCertificate(Buffer.from([0x30, 0x03, 0x02, 0x01])), pkiCode('MALFORMED_CERTIFICATE'));
    assert.throws(() => caDigest('garbage'), pkiCode('MALFORMED_CERTIFICATE'));
  });

  test('caDigest is the lowercase sha256 of the DER, independent of PEM line endings', () => {
    const d = caDigest(ca.certPem);
    assert.match(d, /^[0-9a-f]{64}$/);
    assert.equal(d, new X509Certificate(ca.certPem).fingerprint256.replace(/:/g, '').toLowerCase());
    assert.equal(caDigest(ca.certPem.replace(/\n/g, '\r\n')), d);
    assert.notEqual(caDigest(impostor.certPem), d, 'same subject, different CA');
  });
});

describe('verifyNodeCertificate', () => {
  const opts = (over: Partial<Parameters<typeof verifyNodeCertificate>[1]> = {}): Parameters<typeof verifyNodeCertificate>[1] => ({
    caCertPem: ca.certPem,
    clusterId: CLUSTER,
    now: NOW,
    ...over,
  });

  test('accepts a certificate issued by the cluster CA and narrows the role', () => {
    const issued = issue({ nodeId: 'node-3', role: 'manager', now: NOW });
    const r = verifyNodeCertificate(issued.certPem, opts());
    assert.ok(r.ok, r.ok ? '' : r.reason);
    assert.equal(r.info.nodeId, 'node-3');
    assert.equal(r.info.role, 'manager');
    assert.equal(r.info.serial, issued.serial);
  });

  test('a certificate valid for 2 s: valid inside, expired after, not yet valid before', () => {
    const issued = issue({ now: NOW, validityMs: 2000 });
    assert.equal(issued.notAfter.getTime(), NOW.getTime() + 2000);
    assert.equal(verifyNodeCertificate(issued.certPem, opts({ now: new Date(NOW.getTime() + 1500) })).ok, true);
    assert.equal(verifyNodeCertificate(issued.certPem, opts({ now: new Date(NOW.getTime() - 30_000) })).ok, true, 'one minute of clock skew');
    assert.deepEqual(verifyNodeCertificate(issued.certPem, opts({ now: new Date(NOW.getTime() + 3000) })), {
      ok: false,
      reason: `certificate expired at ${at(2000)}`,
    });
    assert.deepEqual(verifyNodeCertificate(issued.certPem, opts({ now: new Date(NOW.getTime() - 120_000) })), {
      ok: false,
      reason: `certificate is not yet valid (valid from ${at(-60_000)})`,
    });
  });

  test('refuses a certificate from another CA, even one with the same name', () => {
    const csr = createCsr({ keyPem: key(1), nodeId: 'n' });
    const fromImpostor = signNodeCertificate({
      caCertPem: impostor.certPem,
      caKeyPem: impostor.keyPem,
      csrPem: csr,
      nodeId: 'node-1',
      role: 'manager',
      clusterId: CLUSTER,
      now: NOW,
    });
    assert.deepEqual(verifyNodeCertificate(fromImpostor.certPem, opts()), { ok: false, reason: 'certificate was issued by another CA' });
    const fromForeign = signNodeCertificate({
      caCertPem: foreign.certPem,
      caKeyPem: foreign.keyPem,
      csrPem: csr,
      nodeId: 'node-1',
      role: 'worker',
      clusterId: 'cluster-b',
      now: NOW,
    });
    assert.deepEqual(verifyNodeCertificate(fromForeign.certPem, opts()), {
      ok: false,
      reason: 'certificate was issued by another CA (it names cluster cluster-b, not cluster-a)',
    });
  });

  test('refuses a forgery that names our CA (issuer and key id) but is signed by another key', () => {
    const forged = craft(impostor, { CN: 'node-6', OU: 'manager', O: CLUSTER }, key(2), ca);
    assert.ok(new X509Certificate(forged).checkIssued(new X509Certificate(ca.certPem)), 'names match: only the signature differs');
    assert.deepEqual(verifyNodeCertificate(forged, opts()), { ok: false, reason: 'certificate was issued by another CA' });
    assert.equal(verifyNodeCertificate(craft(ca, { CN: 'node-6', OU: 'manager', O: CLUSTER }, key(2)), opts()).ok, true, 'control');
  });

  test('refuses a certificate naming another cluster even when our CA signed it', () => {
    const issued = issue({ clusterId: 'cluster-b', now: NOW });
    assert.deepEqual(verifyNodeCertificate(issued.certPem, opts()), { ok: false, reason: 'certificate belongs to cluster cluster-b, not cluster-a' });
  });

  test('refuses unknown or missing role OU, and the CA certificate itself', () => {
    const superuser = craft(ca, { CN: 'node-5', OU: 'superuser', O: CLUSTER }, key(2));
    assert.deepEqual(verifyNodeCertificate(superuser, opts()), { ok: false, reason: 'unknown role OU superuser' });
    const none = craft(ca, { CN: 'node-5', O: CLUSTER }, key(2));
    assert.deepEqual(verifyNodeCertificate(none, opts()), { ok: false, reason: 'unknown role OU (none)' });
    assert.deepEqual(verifyNodeCertificate(ca.certPem, opts()), { ok: false, reason: 'certificate is a CA certificate, not a node certificate' });
  });

  test('refuses revoked nodes by node id or by serial; others are unaffected', () => {
    const removed = issue({ nodeId: 'node-7', now: NOW });
    const other = issue({ nodeId: 'node-8', now: NOW });
    assert.deepEqual(verifyNodeCertificate(removed.certPem, opts({ denied: new Set(['node-7']) })), {
      ok: false,
      reason: 'certificate of node node-7 was revoked (node removed)',
    });
    const reason = `certificate ${removed.serial} of node node-7 was revoked`;
    assert.deepEqual(verifyNodeCertificate(removed.certPem, opts({ denied: new Set([removed.serial]) })), { ok: false, reason });
    assert.deepEqual(verifyNodeCertificate(removed.certPem, opts({ denied: new Set([removed.serial.toUpperCase()]) })), { ok: false, reason });
    assert.equal(verifyNodeCertificate(other.certPem, opts({ denied: new Set(['node-7', removed.serial]) })).ok, true);
  });

  test('the same bytes checked again (kept parsed): per root set, time and deny list each call, copies out', () => {
    const issued = issue({ nodeId: 'node-9', now: NOW, validityMs: 2000 });
    const der = new X509Certificate(issued.certPem).raw;
    for (const form of [issued.certPem, der]) {
      assert.equal(verifyNodeCertificate(form, opts()).ok, true);
      // The signature fact is per root: the same leaf under another root set is refused, then accepted again.
      assert.deepEqual(verifyNodeCertificate(form, opts({ caCertPem: [impostor.certPem] })), { ok: false, reason: 'certificate was issued by another CA' });
      assert.equal(verifyNodeCertificate(form, opts({ caCertPem: [impostor.certPem, ca.certPem] })).ok, true);
      assert.equal(issuingRootDigest(form, [impostor.certPem]), null);
      assert.equal(issuingRootDigest(form, [impostor.certPem, ca.certPem]), caDigest(ca.certPem));
      // Time and the deny list are read on every call.
      assert.match(String((verifyNodeCertificate(form, opts({ now: new Date(NOW.getTime() + 3000) })) as { reason?: string }).reason), /expired/);
      assert.equal(verifyNodeCertificate(form, opts({ denied: new Set(['node-9']) })).ok, false);
      // What a caller gets is its own: changing it changes nothing for the next one.
      const r = verifyNodeCertificate(form, opts());
      assert.ok(r.ok);
      r.info.notAfter.setTime(0);
      const again = verifyNodeCertificate(form, opts());
      assert.ok(again.ok);
      assert.equal(again.info.notAfter.getTime(), NOW.getTime() + 2000);
    }
    // A byte changed is other bytes: parsed and checked afresh (the signature no longer holds).
    const tampered = Buffer.from(der);
    tampered[tampered.length - 5]! ^= 0x01;
    assert.equal(verifyNodeCertificate(tampered, opts()).ok, false);
  });

  test('malformed input is a refusal with a reason, not an exception', () => {
    const r = verifyNodeCertificate('garbage', opts());
    assert.equal(r.ok, false);
    assert.match(r.ok ? '' : r.reason, /^certificate is not PEM/);
  });
});

describe('renewalTime', () => {
  test('uniform between 50 % and 80 % of the lifetime', () => {
    const nb = NOW;
    const na = new Date(nb.getTime() + 100_000);
    assert.equal(renewalTime(nb, na, () => 0).getTime(), nb.getTime() + 50_000);
    assert.equal(renewalTime(nb, na, () => 0.5).getTime(), nb.getTime() + 65_000);
    assert.equal(renewalTime(nb, na, () => 1 - 2 ** -53).getTime(), nb.getTime() + 80_000);
    assert.equal(renewalTime(nb, na, () => 7).getTime(), nb.getTime() + 80_000, 'out-of-range randoms are clamped');
    let lo = Infinity;
    let hi = -Infinity;
    for (let i = 0; i < 2000; i++) {
      const t = renewalTime(nb, na, Math.random).getTime() - nb.getTime();
      lo = Math.min(lo, t);
      hi = Math.max(hi, t);
    }
    assert.ok(lo >= 50_000 && lo < 51_000 && hi <= 80_000 && hi > 79_000, `range ${lo}..${hi}`);
    assert.throws(() => renewalTime(na, nb, Math.random), pkiCode('INVALID_ARGUMENT'));
  });

  test('of a real 90-day certificate: between day 45 and day 72', () => {
    const issued = issue({ now: NOW });
    const t = renewalTime(issued.notBefore, issued.notAfter, () => 0.25).getTime();
    assert.equal(t, issued.notBefore.getTime() + (90 * DAY + 60_000) * 0.575);
  });
});

describe('Node TLS accepts what the CA issues (mutual TLS)', () => {
  const HOST = '127.0.0.1';
  let server: Server;
  let port = 0;
  const seen: string[] = [];
  const tlsErrors: string[] = [];
  let worker: IssuedCertificate;

  before(async () => {
    const managerCert = signNodeCertificate({
      caCertPem: ca.certPem,
      caKeyPem: ca.keyPem,
      csrPem: createCsr({ keyPem: key(1), nodeId: 'mgr-1' }),
      nodeId: 'mgr-1',
      role: 'manager',
      clusterId: CLUSTER,
      sans: { ips: [HOST] },
    });
    worker = issue();
    server = createServer({ key: key(1), cert: managerCert.certPem, ca: ca.certPem, requestCert: true, rejectUnauthorized: true }, (req, res) => {
      const peer = (req.socket as TLSSocket).getPeerCertificate();
      const check = verifyNodeCertificate(peer.raw, { caCertPem: ca.certPem, clusterId: CLUSTER });
      seen.push(check.ok ? `${check.info.nodeId}/${check.info.role}` : check.reason);
      res.end('hello');
    });
    // Node destroys a socket whose client certificate fails verification; the OpenSSL verify code is
    // left on the socket (authorizationError), the error itself only says ECONNRESET.
    server.on('tlsClientError', (err: NodeJS.ErrnoException, socket: TLSSocket) => {
      tlsErrors.push(String(socket.authorizationError ?? err.code ?? err.message));
    });
    await new Promise<void>((resolve) => server.listen(0, HOST, resolve));
    port = (server.address() as AddressInfo).port;
  });

  after(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  function get(client: { key?: string; cert?: string }, extra: { servername?: string } = {}): Promise<{ status: number; body: string }> {
    return new Promise((resolve, reject) => {
      const req = request({ host: HOST, port, path: '/', agent: false, ca: ca.certPem, ...client, ...extra }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end();
    });
  }

  test('a client certificate issued by signNodeCertificate is accepted; the server sees its identity', async () => {
    const before = seen.length;
    const r = await get({ key: key(0), cert: worker.certPem });
    assert.deepEqual(r, { status: 200, body: 'hello' });
    assert.deepEqual(seen.slice(before), ['node-1/worker']);
  });

  test('the manager is also verifiable by its role SAN (shoal-manager), as Swarm nodes do', async () => {
    const r = await get({ key: key(0), cert: worker.certPem }, { servername: 'shoal-manager' });
    assert.equal(r.status, 200);
    await assert.rejects(get({ key: key(0), cert: worker.certPem }, { servername: 'shoal-worker' }), { code: 'ERR_TLS_CERT_ALTNAME_INVALID' });
  });

  test('a client certificate from another root CA (same CA name) is refused during the handshake', async () => {
    const csr = createCsr({ keyPem: key(2), nodeId: 'node-1' });
    const rogue = signNodeCertificate({
      caCertPem: impostor.certPem,
      caKeyPem: impostor.keyPem,
      csrPem: csr,
      nodeId: 'node-1',
      role: 'worker',
      clusterId: CLUSTER,
    });
    const before = seen.length;
    await assert.rejects(get({ key: key(2), cert: rogue.certPem }));
    assert.equal(seen.length, before, 'the request handler never ran');
    await eventually(
      () => tlsErrors.includes('UNABLE_TO_VERIFY_LEAF_SIGNATURE'),
      () => `server verify errors: ${tlsErrors.join(', ')}`,
    );
  });

  test('an expired client certificate (same key, same CA) and a missing one are refused', async () => {
    const expired = issue({ now: new Date(Date.now() - 10 * DAY), validityMs: DAY });
    const before = seen.length;
    await assert.rejects(get({ key: key(0), cert: expired.certPem }));
    await assert.rejects(get({}));
    assert.equal(seen.length, before, 'the request handler never ran');
    await eventually(
      () => tlsErrors.includes('CERT_HAS_EXPIRED'),
      () => `server verify errors: ${tlsErrors.join(', ')}`,
    );
    await eventually(
      () => tlsErrors.includes('ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE'),
      () => `server verify errors: ${tlsErrors.join(', ')}`,
    );
  });
});

async function eventually(cond: () => boolean, what: () => string): Promise<void> {
  for (let i = 0; i < 100 && !cond(); i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(cond(), what());
}

function pick(o: unknown, fields: string[]): Record<string, unknown> {
  const src = (o ?? {}) as Record<string, unknown>;
  return Object.fromEntries(fields.map((f) => [f, src[f]]));
}
