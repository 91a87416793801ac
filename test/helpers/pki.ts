// A throwaway certificate authority for tests: node-forge builds the X.509 structures, Node's crypto
// generates the RSA keys (forge's own key generation is far too slow). Not for production use.
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import forge from 'node-forge';
import { createCsr, type CaMaterial, type NodeRole } from '../../manager/ca/pki.ts';
import { signNodeCertificate } from '../../manager/ca/issue.ts';

export interface IssueOptions {
  /** Subject organisational unit (e.g. 'manager', 'worker'). */
  ou?: string;
  /** Subject organisation. Defaults to 'Shoal Test'. */
  o?: string;
  /** Defaults to one hour ago (tolerates clock skew). */
  notBefore?: Date;
  /** Defaults to one day from now. */
  notAfter?: Date;
}

export interface IssuedCert {
  /** PKCS#1 PEM private key. */
  key: string;
  /** PEM certificate. */
  cert: string;
}

export interface TestCa {
  caCert: string;
  caKey: string;
  /** Issues a leaf certificate for `cn`, usable as both a TLS server and a TLS client certificate. */
  issue(cn: string, opts?: IssueOptions): IssuedCert;
}

const HOUR = 3600_000;

function rsaKeyPair(): { privatePem: string; publicPem: string } {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', {
    modulusLength: 2048,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs1', format: 'pem' },
  });
  return { privatePem: privateKey, publicPem: publicKey };
}

/** A positive, random 128-bit serial number as hex (the top bit is cleared so DER keeps it positive). */
function randomSerial(): string {
  const bytes = randomBytes(16);
  bytes[0] = ((bytes[0] ?? 0) & 0x7f) | 0x01;
  return bytes.toString('hex');
}

/** Creates a new self-signed RSA-2048 CA. `name` becomes its CN (a random suffix keeps CAs distinct). */
export function makeTestCa(name = `Shoal Test CA ${randomBytes(4).toString('hex')}`): TestCa {
  const caPair = rsaKeyPair();
  const caPrivate = forge.pki.privateKeyFromPem(caPair.privatePem);
  const caPublic = forge.pki.publicKeyFromPem(caPair.publicPem);

  const ca = forge.pki.createCertificate();
  ca.publicKey = caPublic;
  ca.serialNumber = randomSerial();
  ca.validity.notBefore = new Date(Date.now() - HOUR);
  ca.validity.notAfter = new Date(Date.now() + 7 * 24 * HOUR);
  const caSubject = [
    { name: 'commonName', value: name },
    { name: 'organizationName', value: 'Shoal Test' },
  ];
  ca.setSubject(caSubject);
  ca.setIssuer(caSubject);
  ca.setExtensions([
    { name: 'basicConstraints', cA: true, critical: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true },
    { name: 'subjectKeyIdentifier' },
  ]);
  ca.sign(caPrivate, forge.md.sha256.create());
  const caKeyId = ca.generateSubjectKeyIdentifier().getBytes();
  const caCertPem = forge.pki.certificateToPem(ca);

  return {
    caCert: caCertPem,
    caKey: caPair.privatePem,
    issue(cn: string, opts: IssueOptions = {}): IssuedCert {
      const pair = rsaKeyPair();
      const cert = forge.pki.createCertificate();
      cert.publicKey = forge.pki.publicKeyFromPem(pair.publicPem);
      cert.serialNumber = randomSerial();
      cert.validity.notBefore = opts.notBefore ?? new Date(Date.now() - HOUR);
      cert.validity.notAfter = opts.notAfter ?? new Date(Date.now() + 24 * HOUR);
      const subject: forge.pki.CertificateField[] = [{ name: 'commonName', value: cn }];
      subject.push({ name: 'organizationName', value: opts.o ?? 'Shoal Test' });
      if (opts.ou !== undefined) subject.push({ name: 'organizationalUnitName', value: opts.ou });
      cert.setSubject(subject);
      cert.setIssuer(ca.subject.attributes);
      cert.setExtensions([
        { name: 'basicConstraints', cA: false, critical: true },
        { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
        { name: 'extKeyUsage', serverAuth: true, clientAuth: true },
        {
          name: 'subjectAltName',
          altNames: [
            { type: 2, value: 'localhost' },
            { type: 7, ip: '127.0.0.1' },
            { type: 7, ip: '::1' },
          ],
        },
        { name: 'subjectKeyIdentifier' },
        { name: 'authorityKeyIdentifier', keyIdentifier: caKeyId },
      ]);
      cert.sign(caPrivate, forge.md.sha256.create());
      return { key: pair.privatePem, cert: forge.pki.certificateToPem(cert) };
    },
  };
}

/**
 * A certificate as Shoal's own CA issues it (manager/ca/pki.ts: CSR, cluster id and role in the
 * subject), for a server or client on loopback (IP SAN 127.0.0.1). For tests of the real TLS checks.
 */
export function signLoopback(ca: CaMaterial, keyPem: string, nodeId: string, role: NodeRole, clusterId: string): string {
  return signNodeCertificate({
    caCertPem: ca.certPem,
    caKeyPem: ca.keyPem,
    csrPem: createCsr({ keyPem, nodeId }),
    nodeId,
    role,
    clusterId,
    sans: { ips: ['127.0.0.1'] },
  }).certPem;
}
