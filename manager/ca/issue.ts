// What only a certificate authority does: build and sign X.509 certificates (the cluster's root, its
// cross-signed copy in a root rotation, node and admin certificates) and check the CSRs it signs. See
// docs/design/ca.md. node-forge builds the structures, which Node cannot do; Node's crypto does every
// private-key operation (forge's RSA is pure JS: 35 ms per RSA-2048 signature, 75 ms for RSA-3072,
// blocking the leader's event loop). Kept apart from pki.ts so that only managers load forge.
import { createPrivateKey, createPublicKey, randomBytes, sign, verify } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { isIP } from 'node:net';
import forge from 'node-forge';
import {
  CA_COMMON_NAME,
  CLOCK_SKEW_MS,
  DEFAULT_NODE_CERT_VALIDITY_MS,
  MIN_RSA_BITS,
  NODE_ROLES,
  PkiError,
  checkName,
  errorMessage,
  generateKeyPem,
  loadPrivateKey,
  loadX509,
  normalizeSerial,
  type CaMaterial,
  type IssuedCertificate,
  type NodeRole,
} from './pki.ts';

/**
 * Creates the cluster's root CA: a self-signed certificate with CN `shoal-ca` and O = clusterId.
 * RSA-3072 by default: the root lives for 20 years, well past the point where 2048-bit RSA is
 * recommended (NIST SP 800-57: 2030); node certificates live 90 days and use 2048 bits.
 */
export async function createRootCa(opts: { clusterId: string; validityYears?: number; modulusLength?: 2048 | 3072 | 4096; now?: Date }): Promise<CaMaterial> {
  const { clusterId, validityYears = 20, modulusLength = 3072 } = opts;
  checkName('clusterId', clusterId);
  if (!Number.isFinite(validityYears) || validityYears <= 0 || validityYears > 100) {
    throw new PkiError('INVALID_ARGUMENT', `validityYears must be in (0, 100], got ${validityYears}`);
  }
  const keyPem = await generateKeyPem(modulusLength);
  const key = createPrivateKey(keyPem);
  const now = (opts.now ?? new Date()).getTime();

  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.publicKeyFromPem(createPublicKey(key).export({ type: 'spki', format: 'pem' }) as string);
  cert.serialNumber = randomSerialHex();
  cert.validity.notBefore = wholeSeconds(now - CLOCK_SKEW_MS);
  const notAfter = new Date(now);
  notAfter.setUTCFullYear(notAfter.getUTCFullYear() + Math.floor(validityYears));
  const extraMs = (validityYears % 1) * 365.25 * 24 * 3600_000;
  cert.validity.notAfter = wholeSeconds(notAfter.getTime() + extraMs);
  const subject = [utf8Attr('commonName', CA_COMMON_NAME), utf8Attr('organizationName', clusterId)];
  cert.setSubject(subject);
  cert.setIssuer(subject);
  cert.setExtensions([
    { name: 'basicConstraints', cA: true, critical: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
    { name: 'subjectKeyIdentifier' },
  ]);
  signCertificate(cert, key);
  return { certPem: toPem(cert), keyPem };
}

/**
 * The cross-signed copy of a new root for a root rotation (docs/design/ca.md): the new root's subject,
 * public key and key identifier, issued and signed by the current root. A peer that trusts only the
 * current root verifies a certificate the new key issued through it (leaf → cross-signed → old root);
 * a peer that trusts the new root finds the new root itself. Valid no longer than either root.
 */
export function crossSignRoot(opts: { newCertPem: string; oldCertPem: string; oldKeyPem: string; now?: Date }): string {
  const now = (opts.now ?? new Date()).getTime();
  const next = forge.pki.certificateFromPem(opts.newCertPem);
  const old = forge.pki.certificateFromPem(opts.oldCertPem);
  const oldKey = loadPrivateKey(opts.oldKeyPem);
  const spki = (k: KeyObject): Buffer => k.export({ type: 'spki', format: 'der' });
  if (!spki(createPublicKey(oldKey)).equals(spki(loadX509(opts.oldCertPem).publicKey))) {
    throw new PkiError('CA_KEY_MISMATCH', 'the current root key does not belong to the current root certificate');
  }
  const cert = forge.pki.createCertificate();
  cert.publicKey = next.publicKey;
  cert.serialNumber = randomSerialHex();
  cert.validity.notBefore = wholeSeconds(Math.max(now - CLOCK_SKEW_MS, old.validity.notBefore.getTime()));
  cert.validity.notAfter = wholeSeconds(Math.min(next.validity.notAfter.getTime(), old.validity.notAfter.getTime()));
  cert.setSubject(next.subject.attributes);
  cert.setIssuer(old.subject.attributes);
  // The key identifier must be the new root's own, byte for byte: leaves name their issuer by it.
  // Forge recomputes a `subjectKeyIdentifier` it builds, so this one goes in as a raw extension.
  const ski = forge.asn1.create(forge.asn1.Class.UNIVERSAL, forge.asn1.Type.OCTETSTRING, false, caKeyIdentifier(next));
  cert.setExtensions([
    { name: 'basicConstraints', cA: true, critical: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
    { id: '2.5.29.14', name: 'rawSubjectKeyIdentifier', value: ski },
    { name: 'authorityKeyIdentifier', keyIdentifier: caKeyIdentifier(old) },
  ]);
  signCertificate(cert, oldKey);
  return toPem(cert);
}

/**
 * Checks a root CA an operator supplies (`cluster ca --rotate --cert --key`): one self-signed RSA CA
 * certificate that may sign certificates, its key, valid now and for at least `minValidityMs` more.
 */
export function checkRootCa(certPem: string, keyPem: string, opts: { now?: Date; minValidityMs?: number } = {}): CaMaterial {
  const now = (opts.now ?? new Date()).getTime();
  const blocks = certPem.match(/-----BEGIN CERTIFICATE-----/g) ?? [];
  if (blocks.length !== 1) throw new PkiError('INVALID_ARGUMENT', `the root CA certificate file must hold exactly one certificate (it holds ${blocks.length})`);
  const x = loadX509(certPem);
  const key = loadPrivateKey(keyPem);
  const spki = (k: KeyObject): Buffer => k.export({ type: 'spki', format: 'der' });
  if (!spki(createPublicKey(key)).equals(spki(x.publicKey)))
    throw new PkiError('CA_KEY_MISMATCH', 'the root CA key does not belong to the root CA certificate');
  if (!x.ca) throw new PkiError('INVALID_ARGUMENT', 'the root CA certificate is not a CA certificate (basicConstraints CA:TRUE is missing)');
  if (!x.checkIssued(x) || !x.verify(x.publicKey))
    throw new PkiError('INVALID_ARGUMENT', 'the root CA certificate is not self-signed (give a root, not an intermediate)');
  const f = forge.pki.certificateFromPem(certPem);
  const ku = f.getExtension('keyUsage') as { keyCertSign?: boolean } | undefined;
  if (ku && !ku.keyCertSign) throw new PkiError('INVALID_ARGUMENT', 'the root CA certificate may not sign certificates (keyUsage lacks keyCertSign)');
  const from = new Date(x.validFrom).getTime();
  const to = new Date(x.validTo).getTime();
  if (now < from || now >= to) throw new PkiError('CA_NOT_VALID', `the root CA certificate is not valid now (valid ${iso(from)} to ${iso(to)})`);
  const min = opts.minValidityMs ?? 0;
  if (to - now < min) throw new PkiError('CA_NOT_VALID', `the root CA certificate expires ${iso(to)}, too soon to issue node certificates from`);
  // The operator's bytes, not a re-encoding: the join-token digest is taken over this DER.
  return { certPem: `${x.toString().trim()}\n`, keyPem: key.export({ type: 'pkcs8', format: 'pem' }) as string };
}

export interface SignNodeCertificateOptions {
  caCertPem: string;
  caKeyPem: string;
  csrPem: string;
  /** The identity the CA assigns; the CSR's CN is ignored. */
  nodeId: string;
  role: NodeRole;
  clusterId: string;
  sans?: { ips?: string[]; dns?: string[] };
  validityMs?: number;
  now?: Date;
}

/**
 * Issues a node certificate: CN = nodeId, OU = role, O = clusterId, SANs `shoal-<role>`, nodeId and the
 * given names/addresses, EKU serverAuth + clientAuth, a random 128-bit serial, valid from one minute ago
 * (clock skew) for `validityMs` (never past the CA's own expiry). Only the CSR's public key is used, after
 * its signature has been checked (proof of possession).
 */
export function signNodeCertificate(opts: SignNodeCertificateOptions): IssuedCertificate {
  const { nodeId, role, clusterId, validityMs = DEFAULT_NODE_CERT_VALIDITY_MS } = opts;
  checkName('nodeId', nodeId);
  checkName('clusterId', clusterId);
  if (!NODE_ROLES.includes(role)) throw new PkiError('INVALID_ARGUMENT', `role must be one of ${NODE_ROLES.join(', ')}`);
  if (!Number.isFinite(validityMs) || validityMs < 1000) {
    throw new PkiError('INVALID_ARGUMENT', `validityMs must be at least 1000, got ${validityMs}`);
  }
  const now = (opts.now ?? new Date()).getTime();

  const { caForge, caKey, caKeyId } = loadedCa(opts.caCertPem, opts.caKeyPem);
  const caNotBefore = caForge.validity.notBefore.getTime();
  const caNotAfter = caForge.validity.notAfter.getTime();
  if (now < caNotBefore || now >= caNotAfter) {
    throw new PkiError('CA_NOT_VALID', `the CA certificate is not valid at ${new Date(now).toISOString()} (valid ${iso(caNotBefore)} to ${iso(caNotAfter)})`);
  }

  const publicKey = verifiedCsrPublicKey(opts.csrPem);

  const cert = forge.pki.createCertificate();
  cert.publicKey = publicKey;
  const serialHex = randomSerialHex();
  cert.serialNumber = serialHex;
  const notBefore = wholeSeconds(Math.max(now - CLOCK_SKEW_MS, caNotBefore));
  const notAfter = wholeSeconds(Math.min(now + validityMs, caNotAfter));
  cert.validity.notBefore = notBefore;
  cert.validity.notAfter = notAfter;
  cert.setSubject([utf8Attr('commonName', nodeId), utf8Attr('organizationalUnitName', role), utf8Attr('organizationName', clusterId)]);
  cert.setIssuer(caForge.subject.attributes);

  const dns = uniq([`shoal-${role}`, nodeId, ...(opts.sans?.dns ?? []).map((d) => d.toLowerCase())]);
  for (const d of dns) {
    if (!DNS_NAME.test(d)) throw new PkiError('INVALID_ARGUMENT', `invalid DNS subject alternative name ${JSON.stringify(d)}`);
  }
  const ips = uniq(opts.sans?.ips ?? []);
  const altNames: { type: number; value: string }[] = [...dns.map((value) => ({ type: 2, value })), ...ips.map((ip) => ({ type: 7, value: ipToBytes(ip) }))];

  cert.setExtensions([
    { name: 'basicConstraints', cA: false, critical: true },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'extKeyUsage', serverAuth: true, clientAuth: true },
    { name: 'subjectAltName', altNames },
    { name: 'subjectKeyIdentifier' },
    { name: 'authorityKeyIdentifier', keyIdentifier: caKeyId },
  ]);
  signCertificate(cert, caKey);
  return { certPem: toPem(cert), serial: normalizeSerial(serialHex), notBefore, notAfter };
}

interface LoadedCa {
  caForge: forge.pki.Certificate;
  caKey: KeyObject;
  caKeyId: string;
}

/**
 * The CA as signing needs it: its certificate parsed by forge, its key, its key identifier, after
 * checking the key belongs to the certificate. Parsing these per join cost about 1 ms of the leader's
 * CPU (bench:scale, 16 ms per join at 1,000 nodes), so the last few CAs are kept, keyed by their PEMs:
 * a root rotation signs with two roots, nothing else changes them.
 */
function loadedCa(certPem: string, keyPem: string): LoadedCa {
  const key = `${certPem}\0${keyPem}`;
  const hit = caCache.get(key);
  if (hit) return hit;
  const caX509 = loadX509(certPem);
  const caForge = forge.pki.certificateFromPem(certPem);
  const caKey = loadPrivateKey(keyPem);
  const spki = (k: KeyObject): Buffer => k.export({ type: 'spki', format: 'der' });
  if (!spki(createPublicKey(caKey)).equals(spki(caX509.publicKey))) {
    throw new PkiError('CA_KEY_MISMATCH', 'the CA private key does not belong to the CA certificate');
  }
  const loaded = { caForge, caKey, caKeyId: caKeyIdentifier(caForge) };
  caCache.set(key, loaded);
  if (caCache.size > CA_CACHE_SIZE) caCache.delete(caCache.keys().next().value!);
  return loaded;
}

const CA_CACHE_SIZE = 4;
const caCache = new Map<string, LoadedCa>();

const CSR_SIGNATURE_HASHES = new Map<string, string>(
  (['sha256', 'sha384', 'sha512'] as const).flatMap((h) => {
    const oid = forge.pki.oids[`${h}WithRSAEncryption`];
    return oid ? [[oid, h] as [string, string]] : [];
  }),
);

function verifiedCsrPublicKey(csrPem: string): forge.pki.rsa.PublicKey {
  let csr: forge.pki.CertificateSigningRequest;
  try {
    csr = forge.pki.certificationRequestFromPem(csrPem);
  } catch (err) {
    throw new PkiError('MALFORMED_CSR', `certificate signing request is malformed: ${errorMessage(err)}`, { cause: err });
  }
  // Proof of possession, checked natively over the CSR's own CertificationRequestInfo bytes.
  const publicKey = csr.publicKey as forge.pki.rsa.PublicKey | null;
  if (!publicKey || !csr.certificationRequestInfo) throw new PkiError('MALFORMED_CSR', 'certificate signing request has no public key');
  const hash = CSR_SIGNATURE_HASHES.get(csr.signatureOid ?? '');
  if (!hash) {
    throw new PkiError(
      'CSR_SIGNATURE',
      `certificate signing request uses an unsupported signature algorithm (${csr.signatureOid}); use sha256WithRSAEncryption`,
    );
  }
  const signed = Buffer.from(forge.asn1.toDer(csr.certificationRequestInfo).getBytes(), 'binary');
  const signature = Buffer.from(String(csr.signature), 'binary');
  const key = createPublicKey(forge.pki.publicKeyToPem(publicKey));
  if (!verify(hash, signed, key, signature)) {
    throw new PkiError('CSR_SIGNATURE', 'certificate signing request signature does not match its public key');
  }
  const bits = publicKey.n.bitLength();
  if (bits < MIN_RSA_BITS) {
    throw new PkiError('WEAK_KEY', `certificate signing request key is RSA-${bits}; at least RSA-${MIN_RSA_BITS} is required`);
  }
  return publicKey;
}

// Forge builds these structures but does not export their builders in its type declarations.
const forgeInternals = forge.pki as unknown as {
  getTBSCertificate(cert: forge.pki.Certificate): forge.asn1.Asn1;
  getCertificationRequestInfo(csr: forge.pki.CertificateSigningRequest): forge.asn1.Asn1;
};

/** Signs a forge certificate with Node's native RSA (sha256WithRSAEncryption). */
function signCertificate(cert: forge.pki.Certificate, key: KeyObject): void {
  const oid = forge.pki.oids['sha256WithRSAEncryption'];
  if (!oid) throw new Error('node-forge lacks the sha256WithRSAEncryption OID');
  cert.signatureOid = cert.siginfo.algorithmOid = oid;
  const tbs = forgeInternals.getTBSCertificate(cert);
  cert.tbsCertificate = tbs;
  cert.signature = nativeSign(tbs, key);
}

/** RSASSA-PKCS1-v1_5 with SHA-256 over the DER of `data`, as a forge binary string. */
function nativeSign(data: forge.asn1.Asn1, key: KeyObject): string {
  const der = Buffer.from(forge.asn1.toDer(data).getBytes(), 'binary');
  return sign('sha256', der, key).toString('binary');
}

/** PEM with Unix line endings (forge writes CRLF). */
function toPem(cert: forge.pki.Certificate): string {
  return forge.pki.certificateToPem(cert).replace(/\r\n/g, '\n');
}

function caKeyIdentifier(ca: forge.pki.Certificate): string {
  const ext = ca.getExtension('subjectKeyIdentifier') as { subjectKeyIdentifier?: string } | undefined;
  if (ext?.subjectKeyIdentifier) return forge.util.hexToBytes(ext.subjectKeyIdentifier);
  return ca.generateSubjectKeyIdentifier().getBytes();
}

/** A name attribute encoded as UTF8String (forge defaults to PrintableString, which forbids '_'). */
function utf8Attr(name: string, value: string): forge.pki.CertificateField {
  // @types/node-forge declares valueTagClass as an asn1.Class; forge reads it as the value's asn1.Type.
  return { name, value, valueTagClass: forge.asn1.Type.UTF8 as unknown as forge.asn1.Class };
}

const DNS_LABEL = '[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?';

const DNS_NAME = new RegExp(`^(?=.{1,253}$)${DNS_LABEL}(\\.${DNS_LABEL})*$`, 'i');

/** An IPv4 or IPv6 address as the 4 or 16 network-order bytes of an iPAddress SAN (binary string). */
function ipToBytes(ip: string): string {
  const version = isIP(ip);
  if (version === 4) return String.fromCharCode(...ip.split('.').map(Number));
  if (version !== 6 || ip.includes('%')) {
    throw new PkiError('INVALID_ARGUMENT', `invalid IP subject alternative name ${JSON.stringify(ip)}`);
  }
  let text = ip;
  const lastColon = text.lastIndexOf(':');
  const tail = text.slice(lastColon + 1);
  if (tail.includes('.')) {
    const [a = 0, b = 0, c = 0, d = 0] = tail.split('.').map(Number);
    text = `${text.slice(0, lastColon + 1)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const halves = text.split('::');
  const head = halves[0] ? halves[0].split(':') : [];
  const rest = halves.length > 1 && halves[1] ? halves[1].split(':') : [];
  const groups = [...head, ...Array<string>(8 - head.length - rest.length).fill('0'), ...rest];
  return groups
    .map((g) => {
      const n = parseInt(g, 16);
      return String.fromCharCode(n >> 8, n & 0xff);
    })
    .join('');
}

/** 16 random bytes as a positive DER INTEGER: first byte non-zero, 00 prefix when its top bit is set. */
function randomSerialHex(): string {
  let bytes = randomBytes(16);
  while (bytes[0] === 0) bytes = randomBytes(16);
  const hex = bytes.toString('hex');
  return (bytes[0] ?? 0) & 0x80 ? `00${hex}` : hex;
}

function wholeSeconds(ms: number): Date {
  return new Date(Math.floor(ms / 1000) * 1000);
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

function uniq(xs: string[]): string[] {
  return [...new Set(xs)];
}
