// The PKI's ECDSA default (P-256 roots and node keys, as Swarm's), checked against OpenSSL as the
// independent reader and verifier: the certificates Shoal builds must be what other TLS stacks accept,
// and the CSRs other tools make must be what Shoal's CA takes. The RSA path is tested in pki.test.ts.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createPrivateKey, createPublicKey, generateKeyPairSync, sign, X509Certificate } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, createServer } from 'node:tls';
import type { AddressInfo } from 'node:net';
import { bits, children, nul, oid, pemBody, readWhole, seq, set, tlv, toPem, uint, utf8 } from '../../manager/ca/der.ts';
import { createCsr, generateKeyPem, parseCertificate, PkiError, verifyNodeCertificate } from '../../manager/ca/pki.ts';
import type { CaMaterial, PkiErrorCode } from '../../manager/ca/pki.ts';
import { checkRootCa, createRootCa, signNodeCertificate } from '../../manager/ca/issue.ts';

const CLUSTER = 'cluster-ec';
let dir: string;
let ec: CaMaterial;
let rsa: CaMaterial;
let nodeKey: string;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'shoal-ecdsa-'));
  [ec, rsa, nodeKey] = await Promise.all([createRootCa({ clusterId: CLUSTER }), createRootCa({ clusterId: CLUSTER, keyType: 'rsa-2048' }), generateKeyPem()]);
});
after(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}

function openssl(...args: string[]): string {
  return execFileSync('openssl', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

function issue(csrPem: string, ca: CaMaterial = ec, nodeId = 'node-1') {
  return signNodeCertificate({
    caCertPem: ca.certPem,
    caKeyPem: ca.keyPem,
    csrPem,
    nodeId,
    role: 'worker',
    clusterId: CLUSTER,
    sans: { ips: ['10.0.0.7', '::1'], dns: ['h1.lab'] },
  });
}

function pkiCode(code: PkiErrorCode, message?: RegExp): (err: unknown) => boolean {
  return (err: unknown) => {
    assert.ok(err instanceof PkiError, `expected PkiError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    if (message) assert.match(err.message, message);
    return true;
  };
}

/** A CSR made by OpenSSL with a fresh key of `keyArgs` (e.g. ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256']). */
function opensslCsr(name: string, keyArgs: string[], digest = '-sha256'): string {
  const out = join(dir, `${name}.csr`);
  openssl('req', '-new', ...keyArgs, '-nodes', '-keyout', join(dir, `${name}.key`), '-subj', '/CN=whatever', digest, '-out', out);
  return readFileSync(out, 'utf8');
}

/** A self-signed EC root made by OpenSSL on `curve`, written to `keyOut` and `certOut`. */
function opensslRoot(curve: string, subject: string, keyOut: string, certOut: string): void {
  openssl(
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    `ec_paramgen_curve:${curve}`,
    '-nodes',
    '-keyout',
    keyOut,
    '-out',
    certOut,
    '-days',
    '3650',
    '-subj',
    subject,
  );
}

describe('ECDSA P-256 by default', () => {
  test('the root: P-256, ecdsa-with-SHA256, CA:TRUE critical, keyCertSign and cRLSign, a key identifier, 20 years', () => {
    const x = new X509Certificate(ec.certPem);
    assert.equal(x.publicKey.asymmetricKeyType, 'ec');
    assert.equal(x.publicKey.asymmetricKeyDetails?.namedCurve, 'prime256v1');
    assert.equal(x.subject, `CN=shoal-ca\nO=${CLUSTER}`);
    assert.ok(x.ca && x.checkIssued(x) && x.verify(x.publicKey));
    assert.equal(createPrivateKey(ec.keyPem).asymmetricKeyType, 'ec');
    const text = openssl('x509', '-in', file('root.pem', ec.certPem), '-noout', '-text');
    assert.match(text, /Signature Algorithm: ecdsa-with-SHA256/);
    assert.match(text, /X509v3 Basic Constraints: critical\s+CA:TRUE/);
    assert.match(text, /X509v3 Key Usage: critical\s+Certificate Sign, CRL Sign/);
    assert.match(text, /X509v3 Subject Key Identifier:\s+[0-9A-F:]{59}/);
    assert.match(text, /ASN1 OID: prime256v1/);
    const years = (new Date(x.validTo).getTime() - new Date(x.validFrom).getTime()) / (365.25 * 24 * 3600_000);
    assert.ok(years > 19.9 && years < 20.1, `${years} years`);
  });

  test('a node certificate: OpenSSL verifies it, with the names, usages and key identifiers Shoal writes', () => {
    const issued = issue(createCsr({ keyPem: nodeKey, nodeId: 'ignored' }));
    const leaf = file('leaf.pem', issued.certPem);
    assert.match(openssl('verify', '-CAfile', file('root.pem', ec.certPem), '-purpose', 'sslclient', leaf), /leaf\.pem: OK/);
    assert.match(openssl('verify', '-CAfile', file('root.pem', ec.certPem), '-purpose', 'sslserver', leaf), /leaf\.pem: OK/);
    const text = openssl('x509', '-in', leaf, '-noout', '-text');
    assert.match(text, /Subject: CN = node-1, OU = worker, O = cluster-ec/);
    assert.match(text, /X509v3 Key Usage: critical\s+Digital Signature\n/);
    assert.match(text, /X509v3 Basic Constraints: critical\s+CA:FALSE/);
    assert.match(text, /TLS Web Server Authentication, TLS Web Client Authentication/);
    assert.match(text, /DNS:shoal-worker, DNS:node-1, DNS:h1\.lab, IP Address:10\.0\.0\.7, IP Address:0:0:0:0:0:0:0:1/);
    const rootSki = /Subject Key Identifier:\s+([0-9A-F:]+)/.exec(openssl('x509', '-in', file('root.pem', ec.certPem), '-noout', '-text'))?.[1];
    assert.ok(rootSki);
    assert.match(text, new RegExp(`Authority Key Identifier:\\s+(keyid:)?${rootSki}`));
    const info = parseCertificate(issued.certPem);
    assert.equal(info.nodeId, 'node-1');
    assert.equal(info.serial, issued.serial);
    const v = verifyNodeCertificate(issued.certPem, { caCertPem: ec.certPem, clusterId: CLUSTER });
    assert.ok(v.ok, v.ok ? '' : v.reason);
  });

  test('mixed clusters: an RSA root signs ECDSA nodes and an ECDSA root signs RSA nodes', async () => {
    const rsaKey = await generateKeyPem('rsa-2048');
    for (const [ca, keyPem, name] of [
      [rsa, nodeKey, 'rsa-root-ec-leaf'],
      [ec, rsaKey, 'ec-root-rsa-leaf'],
    ] as const) {
      const issued = issue(createCsr({ keyPem, nodeId: 'n' }), ca);
      assert.match(openssl('verify', '-CAfile', file(`${name}-ca.pem`, ca.certPem), file(`${name}.pem`, issued.certPem)), /: OK/, name);
      const ku = openssl('x509', '-in', join(dir, `${name}.pem`), '-noout', '-ext', 'keyUsage');
      // keyEncipherment only for an RSA key (RSA key transport); an EC key only signs.
      assert.equal(/Key Encipherment/.test(ku), keyPem === rsaKey, `${name}: ${ku}`);
    }
  });

  test('a root valid past 2049 is written with GeneralizedTime and read back exactly', async () => {
    const now = new Date('2026-12-07T10:00:00Z');
    const long = await createRootCa({ clusterId: CLUSTER, validityYears: 40, now });
    assert.equal(new Date(new X509Certificate(long.certPem).validTo).toISOString(), '2066-12-07T10:00:00.000Z');
    assert.match(openssl('asn1parse', '-in', file('long.pem', long.certPem)), /GENERALIZEDTIME\s+:20661207100000Z/);
  });

  test('an mTLS handshake between two ECDSA nodes: both verified, TLS 1.3, ECDSA keys on both sides', async () => {
    const serverKey = await generateKeyPem();
    const server = issue(createCsr({ keyPem: serverKey, nodeId: 's' }), ec, 'server-1');
    const client = issue(createCsr({ keyPem: nodeKey, nodeId: 'c' }), ec, 'client-1');
    const srv = createServer({ key: serverKey, cert: server.certPem, ca: ec.certPem, requestCert: true, rejectUnauthorized: true });
    const seen = new Promise<{ cn: string; keyType: string | undefined; sigalgs: string[] }>((resolve) =>
      srv.once('secureConnection', (s) => {
        const peer = s.getPeerX509Certificate();
        resolve({ cn: String(s.getPeerCertificate().subject.CN), keyType: peer?.publicKey.asymmetricKeyType, sigalgs: s.getSharedSigalgs() });
        s.end();
      }),
    );
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    try {
      const port = (srv.address() as AddressInfo).port;
      const clientSide = await new Promise<{ protocol: string | null; cn: string; keyType: string | undefined }>((resolve, reject) => {
        const c = connect({ host: '127.0.0.1', port, key: nodeKey, cert: client.certPem, ca: ec.certPem, servername: 'shoal-worker' }, () => {
          if (!c.authorized) reject(c.authorizationError);
          resolve({
            protocol: c.getProtocol(),
            cn: String(c.getPeerCertificate().subject.CN),
            keyType: c.getPeerX509Certificate()?.publicKey.asymmetricKeyType,
          });
          c.end();
        });
        c.on('error', reject);
      });
      assert.deepEqual(clientSide, { protocol: 'TLSv1.3', cn: 'server-1', keyType: 'ec' });
      const serverSide = await seen;
      assert.equal(serverSide.cn, 'client-1');
      assert.equal(serverSide.keyType, 'ec');
      assert.ok(serverSide.sigalgs.includes('ECDSA+SHA256'), serverSide.sigalgs.join(' '));
    } finally {
      srv.close();
    }
  });
});

describe('CSRs from other tools', () => {
  test('OpenSSL-made CSRs are accepted: P-256, P-384, RSA-2048 with SHA-512', () => {
    for (const [name, args, digest] of [
      ['p256', ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'], '-sha256'],
      ['p384', ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-384'], '-sha384'],
      ['rsa', ['-newkey', 'rsa:2048'], '-sha512'],
    ] as const) {
      const issued = issue(opensslCsr(name, [...args], digest));
      const keyOut = createPublicKey(readFileSync(join(dir, `${name}.key`), 'utf8')).export({ type: 'spki', format: 'der' });
      assert.deepEqual(
        new X509Certificate(issued.certPem).publicKey.export({ type: 'spki', format: 'der' }),
        keyOut,
        `${name}: the certificate carries the CSR's key`,
      );
    }
  });

  test('keys Shoal does not take are refused with the reason: Ed25519, P-521, RSA-1024', () => {
    assert.throws(
      () => issue(opensslCsr('ed', ['-newkey', 'ed25519'])),
      (err: unknown) => {
        assert.ok(err instanceof PkiError);
        assert.ok(['CSR_SIGNATURE', 'UNSUPPORTED_KEY'].includes(err.code), err.message);
        assert.match(err.message, /1\.3\.101\.112|ed25519/);
        return true;
      },
    );
    assert.throws(
      () => issue(opensslCsr('p521', ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-521'], '-sha512')),
      pkiCode('UNSUPPORTED_KEY', /EC secp521r1; use ECDSA P-256 or P-384/),
    );
    assert.throws(() => issue(opensslCsr('rsa1024', ['-newkey', 'rsa:1024'])), pkiCode('WEAK_KEY', /RSA-1024; at least RSA-2048/));
  });

  test('no proof of possession: a CSR carrying one key and signed by another', async () => {
    const signer = createPrivateKey(await generateKeyPem());
    const victim = createPublicKey(nodeKey).export({ type: 'spki', format: 'der' });
    const info = seq(uint(Buffer.from([0])), seq(set(seq(oid('2.5.4.3'), utf8('x')))), victim, tlv(0xa0, Buffer.alloc(0)));
    const csr = toPem(seq(info, seq(oid('1.2.840.10045.4.3.2')), bits(sign('sha256', info, signer))), 'CERTIFICATE REQUEST');
    assert.throws(() => issue(csr), pkiCode('CSR_SIGNATURE', /does not match its public key/));
  });

  test('an algorithm that does not fit the key, and one that is not allowed', () => {
    const [info, , signature] = children(readWhole(pemBody(createCsr({ keyPem: nodeKey, nodeId: 'n' }), 'CERTIFICATE REQUEST')));
    const withAlgorithm = (algorithm: Buffer) => toPem(seq(info!.raw, algorithm, signature!.raw), 'CERTIFICATE REQUEST');
    assert.throws(() => issue(withAlgorithm(seq(oid('1.2.840.113549.1.1.11'), nul()))), pkiCode('CSR_SIGNATURE', /does not fit its EC prime256v1 key/));
    // ecdsa-with-SHA1 (1.2.840.10045.4.1): a digest no longer fit for signatures.
    assert.throws(
      () => issue(withAlgorithm(seq(oid('1.2.840.10045.4.1')))),
      pkiCode('CSR_SIGNATURE', /unsupported signature algorithm \(1\.2\.840\.10045\.4\.1\)/),
    );
  });

  test('malformed CSRs name what is wrong and never throw anything else', () => {
    const body = pemBody(createCsr({ keyPem: nodeKey, nodeId: 'n' }), 'CERTIFICATE REQUEST');
    assert.throws(() => issue('not a csr'), pkiCode('MALFORMED_CSR', /no "-----BEGIN CERTIFICATE REQUEST-----" block/));
    assert.throws(() => issue(toPem(Buffer.concat([body, Buffer.from([0])]), 'CERTIFICATE REQUEST')), pkiCode('MALFORMED_CSR', /1 bytes after the end/));
    for (let n = 1; n < body.length; n += 7) {
      assert.throws(() => issue(toPem(body.subarray(0, n), 'CERTIFICATE REQUEST')), pkiCode('MALFORMED_CSR'), `prefix of ${n}`);
    }
    // Every single-byte change is refused (or, if harmless to the structure, fails the signature).
    for (let i = 0; i < body.length; i += 3) {
      const b = Buffer.from(body);
      b[i] = b[i]! ^ 0x41;
      assert.throws(
        () => issue(toPem(b, 'CERTIFICATE REQUEST')),
        (err: unknown) => err instanceof PkiError && ['MALFORMED_CSR', 'CSR_SIGNATURE', 'UNSUPPORTED_KEY'].includes(err.code),
        `byte ${i}`,
      );
    }
  });
});

describe('roots an operator supplies', () => {
  test('an OpenSSL-made P-256 root is accepted with its bytes kept; a P-521 root is refused', () => {
    const key = join(dir, 'op.key');
    const cert = join(dir, 'op.pem');
    opensslRoot('P-256', '/CN=Ops Root/O=ops', key, cert);
    const m = checkRootCa(readFileSync(cert, 'utf8'), readFileSync(key, 'utf8'));
    assert.deepEqual(new X509Certificate(m.certPem).raw, new X509Certificate(readFileSync(cert)).raw);
    const issued = issue(createCsr({ keyPem: nodeKey, nodeId: 'n' }), m);
    assert.match(openssl('verify', '-CAfile', cert, file('op-leaf.pem', issued.certPem)), /: OK/);
    assert.match(openssl('x509', '-in', join(dir, 'op-leaf.pem'), '-noout', '-issuer'), /issuer=CN = Ops Root, O = ops/);

    opensslRoot('P-521', '/CN=Big/O=ops', key, cert);
    assert.throws(() => checkRootCa(readFileSync(cert, 'utf8'), readFileSync(key, 'utf8')), pkiCode('UNSUPPORTED_KEY', /EC secp521r1/));
  });

  test('generateKeyPem refuses an unknown key type', async () => {
    await assert.rejects(generateKeyPem('dsa-1024' as never), pkiCode('INVALID_ARGUMENT', /key type must be one of ecdsa-p256/));
    const ed = generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
    assert.throws(() => createCsr({ keyPem: ed, nodeId: 'n' }), pkiCode('UNSUPPORTED_KEY', /ed25519/));
  });
});
