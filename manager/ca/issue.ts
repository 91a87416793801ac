// What only a certificate authority does: build and sign X.509 certificates (the cluster's root, its
// cross-signed copy in a root rotation, node and admin certificates) and check the CSRs it signs. See
// docs/design/ca.md. The structures are built with der.ts; Node's crypto does every key operation.
// Kept apart from pki.ts so that a worker, which only requests certificates, never loads this.
import { createHash, createPublicKey, randomBytes, sign, verify } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { isIP } from 'node:net';
import {
  DerError,
  TAG,
  bits,
  bool,
  child,
  children,
  explicit,
  octets,
  oid,
  pemBody,
  readBits,
  readElement,
  readOid,
  readWhole,
  seq,
  set,
  time,
  tlv,
  toPem,
  uint,
  utf8,
  type Element,
} from './der.ts';
import {
  CA_COMMON_NAME,
  CLOCK_SKEW_MS,
  DEFAULT_KEY_TYPE,
  DEFAULT_NODE_CERT_VALIDITY_MS,
  NODE_ROLES,
  OID,
  PkiError,
  checkKeyStrength,
  checkName,
  describeKey,
  errorMessage,
  generateKeyPem,
  loadPrivateKey,
  loadX509,
  normalizeSerial,
  signatureAlgorithm,
  type CaMaterial,
  type IssuedCertificate,
  type KeyType,
  type NodeRole,
} from './pki.ts';

/**
 * Creates the cluster's root CA: a self-signed certificate with CN `shoal-ca` and O = clusterId, valid
 * 20 years. ECDSA P-256 by default, as Swarm's root is (128-bit strength, which NIST SP 800-57 deems
 * sufficient past 2030; RSA needs 3,072 bits for the same, at 100 times the cost per signature).
 */
export async function createRootCa(opts: { clusterId: string; validityYears?: number; keyType?: KeyType; now?: Date }): Promise<CaMaterial> {
  const { clusterId, validityYears = 20, keyType = DEFAULT_KEY_TYPE } = opts;
  checkName('clusterId', clusterId);
  if (!Number.isFinite(validityYears) || validityYears <= 0 || validityYears > 100) {
    throw new PkiError('INVALID_ARGUMENT', `validityYears must be in (0, 100], got ${validityYears}`);
  }
  const keyPem = await generateKeyPem(keyType);
  const key = loadPrivateKey(keyPem);
  const now = (opts.now ?? new Date()).getTime();
  const notAfter = new Date(now);
  notAfter.setUTCFullYear(notAfter.getUTCFullYear() + Math.floor(validityYears));
  const extraMs = (validityYears % 1) * 365.25 * 24 * 3600_000;
  const spki = spkiOf(key);
  const subject = name([OID.commonName, CA_COMMON_NAME], [OID.organizationName, clusterId]);
  const certPem = buildCertificate({
    serial: randomSerial(),
    issuer: subject,
    subject,
    notBefore: wholeSeconds(now - CLOCK_SKEW_MS),
    notAfter: wholeSeconds(notAfter.getTime() + extraMs),
    spki,
    extensions: [
      extension(EXT.basicConstraints, true, seq(bool(true))),
      extension(EXT.keyUsage, true, keyUsage(KU.keyCertSign, KU.cRLSign)),
      extension(EXT.subjectKeyIdentifier, false, octets(keyIdentifierOf(spki))),
    ],
    signer: key,
  });
  return { certPem, keyPem };
}

/**
 * The cross-signed copy of a new root for a root rotation (docs/design/ca.md): the new root's subject,
 * public key and key identifier, issued and signed by the current root. A peer that trusts only the
 * current root verifies a certificate the new key issued through it (leaf → cross-signed → old root);
 * a peer that trusts the new root finds the new root itself. Valid no longer than either root.
 */
export function crossSignRoot(opts: { newCertPem: string; oldCertPem: string; oldKeyPem: string; now?: Date }): string {
  const now = (opts.now ?? new Date()).getTime();
  const next = certificateParts(opts.newCertPem, 'the new root');
  const old = certificateParts(opts.oldCertPem, 'the current root');
  const oldKey = loadPrivateKey(opts.oldKeyPem);
  if (!spkiOf(oldKey).equals(old.spki)) {
    throw new PkiError('CA_KEY_MISMATCH', 'the current root key does not belong to the current root certificate');
  }
  const nextX = loadX509(opts.newCertPem);
  const oldX = loadX509(opts.oldCertPem);
  return buildCertificate({
    serial: randomSerial(),
    issuer: old.subject,
    subject: next.subject,
    notBefore: wholeSeconds(Math.max(now - CLOCK_SKEW_MS, new Date(oldX.validFrom).getTime())),
    notAfter: wholeSeconds(Math.min(new Date(nextX.validTo).getTime(), new Date(oldX.validTo).getTime())),
    spki: next.spki,
    extensions: [
      extension(EXT.basicConstraints, true, seq(bool(true))),
      extension(EXT.keyUsage, true, keyUsage(KU.keyCertSign, KU.cRLSign)),
      // The key identifier must be the new root's own, byte for byte: leaves name their issuer by it.
      extension(EXT.subjectKeyIdentifier, false, octets(caKeyIdentifier(next))),
      extension(EXT.authorityKeyIdentifier, false, seq(tlv(0x80, caKeyIdentifier(old)))),
    ],
    signer: oldKey,
  });
}

/**
 * Checks a root CA an operator supplies (`cluster ca --rotate --cert --key`): one self-signed CA
 * certificate (ECDSA P-256/P-384 or RSA ≥ 2048) that may sign certificates, its key, valid now and for at
 * least `minValidityMs` more.
 */
export function checkRootCa(certPem: string, keyPem: string, opts: { now?: Date; minValidityMs?: number } = {}): CaMaterial {
  const now = (opts.now ?? new Date()).getTime();
  const blocks = certPem.match(/-----BEGIN CERTIFICATE-----/g) ?? [];
  if (blocks.length !== 1) throw new PkiError('INVALID_ARGUMENT', `the root CA certificate file must hold exactly one certificate (it holds ${blocks.length})`);
  const x = loadX509(certPem);
  const key = loadPrivateKey(keyPem);
  if (!spkiOf(key).equals(spkiOf(x.publicKey))) throw new PkiError('CA_KEY_MISMATCH', 'the root CA key does not belong to the root CA certificate');
  if (!x.ca) throw new PkiError('INVALID_ARGUMENT', 'the root CA certificate is not a CA certificate (basicConstraints CA:TRUE is missing)');
  if (!x.checkIssued(x) || !x.verify(x.publicKey))
    throw new PkiError('INVALID_ARGUMENT', 'the root CA certificate is not self-signed (give a root, not an intermediate)');
  const ku = certificateParts(certPem, 'the root CA certificate').extensions.get(EXT.keyUsage);
  if (ku && !hasKeyUsage(ku.value, KU.keyCertSign))
    throw new PkiError('INVALID_ARGUMENT', 'the root CA certificate may not sign certificates (keyUsage lacks keyCertSign)');
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

  const ca = loadedCa(opts.caCertPem, opts.caKeyPem);
  if (now < ca.notBefore || now >= ca.notAfter) {
    throw new PkiError('CA_NOT_VALID', `the CA certificate is not valid at ${new Date(now).toISOString()} (valid ${iso(ca.notBefore)} to ${iso(ca.notAfter)})`);
  }

  const { spki, key } = verifiedCsrPublicKey(opts.csrPem);

  const dns = uniq([`shoal-${role}`, nodeId, ...(opts.sans?.dns ?? []).map((d) => d.toLowerCase())]);
  for (const d of dns) {
    if (!DNS_NAME.test(d)) throw new PkiError('INVALID_ARGUMENT', `invalid DNS subject alternative name ${JSON.stringify(d)}`);
  }
  const ips = uniq(opts.sans?.ips ?? []);
  const altNames = [...dns.map((d) => tlv(0x82, Buffer.from(d, 'ascii'))), ...ips.map((ip) => tlv(0x87, ipToBytes(ip)))];

  const serial = randomSerial();
  const notBefore = wholeSeconds(Math.max(now - CLOCK_SKEW_MS, ca.notBefore));
  const notAfter = wholeSeconds(Math.min(now + validityMs, ca.notAfter));
  const certPem = buildCertificate({
    serial,
    issuer: ca.subject,
    subject: name([OID.commonName, nodeId], [OID.organizationalUnitName, role], [OID.organizationName, clusterId]),
    notBefore,
    notAfter,
    spki,
    extensions: [
      extension(EXT.basicConstraints, true, seq()),
      // keyEncipherment is RSA key transport (TLS 1.2's RSA key exchange); an EC key only signs.
      extension(EXT.keyUsage, true, key.asymmetricKeyType === 'rsa' ? keyUsage(KU.digitalSignature, KU.keyEncipherment) : keyUsage(KU.digitalSignature)),
      extension(EXT.extKeyUsage, false, seq(oid(EKU.serverAuth), oid(EKU.clientAuth))),
      extension(EXT.subjectAltName, false, seq(...altNames)),
      extension(EXT.subjectKeyIdentifier, false, octets(keyIdentifierOf(spki))),
      extension(EXT.authorityKeyIdentifier, false, seq(tlv(0x80, ca.keyId))),
    ],
    signer: ca.key,
  });
  return { certPem, serial: normalizeSerial(serial.toString('hex')), notBefore, notAfter };
}

// ---------------------------------------------------------------------------------------------------
// The CA, loaded

interface LoadedCa {
  key: KeyObject;
  /** The CA's subject Name, as encoded in its certificate: every certificate it issues names it so. */
  subject: Buffer;
  keyId: Buffer;
  notBefore: number;
  notAfter: number;
}

/**
 * The CA as signing needs it: its key, its subject, its key identifier and validity, after checking the
 * key belongs to the certificate. Parsing these per join cost about 1 ms of the leader's CPU
 * (bench:scale, 16 ms per join at 1,000 nodes), so the last few CAs are kept, keyed by their PEMs: a
 * root rotation signs with two roots, nothing else changes them.
 */
function loadedCa(certPem: string, keyPem: string): LoadedCa {
  const cacheKey = `${certPem}\0${keyPem}`;
  const hit = caCache.get(cacheKey);
  if (hit) return hit;
  const x = loadX509(certPem);
  const parts = certificateParts(certPem, 'the CA certificate');
  const key = loadPrivateKey(keyPem);
  if (!spkiOf(key).equals(parts.spki)) throw new PkiError('CA_KEY_MISMATCH', 'the CA private key does not belong to the CA certificate');
  const loaded: LoadedCa = {
    key,
    subject: parts.subject,
    keyId: caKeyIdentifier(parts),
    notBefore: new Date(x.validFrom).getTime(),
    notAfter: new Date(x.validTo).getTime(),
  };
  caCache.set(cacheKey, loaded);
  if (caCache.size > CA_CACHE_SIZE) caCache.delete(caCache.keys().next().value!);
  return loaded;
}

const CA_CACHE_SIZE = 4;
const caCache = new Map<string, LoadedCa>();

/** What the CA reads of a certificate: its encoded subject and public key, and its extensions by OID. */
interface CertificateParts {
  subject: Buffer;
  spki: Buffer;
  extensions: Map<string, { critical: boolean; value: Buffer }>;
}

/**
 * Takes a certificate apart (RFC 5280 4.1): TBSCertificate { [0] version, serial, signature, issuer,
 * validity, subject, subjectPublicKeyInfo, [1] [2] unique ids, [3] extensions }. Node has already
 * parsed it (loadX509) before anything here is used, so a failure names only `what`.
 */
function certificateParts(certPem: string, what: string): CertificateParts {
  loadX509(certPem);
  try {
    const cert = readWhole(pemBody(certPem, 'CERTIFICATE'), TAG.SEQUENCE);
    const tbs = child(children(cert), 0, TAG.SEQUENCE, 'tbsCertificate');
    const f = children(tbs);
    const i = f[0]?.tag === 0xa0 ? 1 : 0;
    const subject = child(f, i + 4, TAG.SEQUENCE, 'subject').raw;
    const spki = child(f, i + 5, TAG.SEQUENCE, 'subjectPublicKeyInfo').raw;
    const extensions = new Map<string, { critical: boolean; value: Buffer }>();
    const wrapped = f.slice(i + 6).find((e) => e.tag === 0xa3);
    if (wrapped) {
      for (const ext of children(child(children(wrapped), 0, TAG.SEQUENCE, 'extensions'))) {
        const parts = children(ext);
        const id = readOid(child(parts, 0, TAG.OID, 'extension id'));
        const critical = parts[1]?.tag === TAG.BOOLEAN && parts[1].content[0] !== 0;
        const value = child(parts, parts.length - 1, TAG.OCTET_STRING, `extension ${id}`).content;
        extensions.set(id, { critical, value });
      }
    }
    return { subject, spki, extensions };
  } catch (err) {
    throw new PkiError('MALFORMED_CERTIFICATE', `${what} is malformed: ${errorMessage(err)}`, { cause: err });
  }
}

/** A CA's key identifier: its subjectKeyIdentifier if it has one (an operator's root may not), else RFC 5280's method 1. */
function caKeyIdentifier(ca: CertificateParts): Buffer {
  const ski = ca.extensions.get(EXT.subjectKeyIdentifier);
  if (ski) {
    const e = readWhole(ski.value);
    if (e.tag === TAG.OCTET_STRING && e.content.length > 0) return Buffer.from(e.content);
  }
  return keyIdentifierOf(ca.spki);
}

/** RFC 5280 4.2.1.2 method 1: SHA-1 of the subjectPublicKey bits. */
function keyIdentifierOf(spki: Buffer): Buffer {
  const parts = children(readWhole(spki, TAG.SEQUENCE));
  return createHash('sha1')
    .update(readBits(child(parts, 1, TAG.BIT_STRING, 'subjectPublicKey')))
    .digest();
}

function spkiOf(key: KeyObject): Buffer {
  return (key.type === 'private' ? createPublicKey(key) : key).export({ type: 'spki', format: 'der' });
}

// ---------------------------------------------------------------------------------------------------
// CSRs

/** Signature algorithms a CSR may use: OID → digest and key kind. */
const CSR_SIGNATURES: ReadonlyMap<string, { hash: string; key: 'rsa' | 'ec' }> = new Map([
  ['1.2.840.113549.1.1.11', { hash: 'sha256', key: 'rsa' }],
  ['1.2.840.113549.1.1.12', { hash: 'sha384', key: 'rsa' }],
  ['1.2.840.113549.1.1.13', { hash: 'sha512', key: 'rsa' }],
  ['1.2.840.10045.4.3.2', { hash: 'sha256', key: 'ec' }],
  ['1.2.840.10045.4.3.3', { hash: 'sha384', key: 'ec' }],
  ['1.2.840.10045.4.3.4', { hash: 'sha512', key: 'ec' }],
] as const);

/**
 * The public key of a PKCS#10 request (RFC 2986), after its signature has been checked (proof of
 * possession) and the key judged strong enough. CertificationRequest ::= SEQUENCE { info, algorithm,
 * signature BIT STRING }, info ::= SEQUENCE { version 0, subject, subjectPKInfo, [0] attributes }.
 */
function verifiedCsrPublicKey(csrPem: string): { spki: Buffer; key: KeyObject } {
  if (typeof csrPem !== 'string') throw new PkiError('MALFORMED_CSR', 'certificate signing request must be a PEM string');
  let info: Element;
  let spki: Buffer;
  let algorithm: string;
  let signature: Buffer;
  let key: KeyObject;
  try {
    const csr = children(readWhole(pemBody(csrPem, 'CERTIFICATE REQUEST'), TAG.SEQUENCE));
    if (csr.length !== 3) throw new DerError(`CertificationRequest has ${csr.length} fields, expected 3`);
    info = child(csr, 0, TAG.SEQUENCE, 'certificationRequestInfo');
    const fields = children(info);
    const version = child(fields, 0, TAG.INTEGER, 'version');
    if (version.content.length !== 1 || version.content[0] !== 0) throw new DerError('version is not 0 (v1)');
    child(fields, 1, TAG.SEQUENCE, 'subject');
    spki = child(fields, 2, TAG.SEQUENCE, 'subjectPKInfo').raw;
    algorithm = readOid(readElement(child(csr, 1, TAG.SEQUENCE, 'signatureAlgorithm').content));
    signature = readBits(child(csr, 2, TAG.BIT_STRING, 'signature'));
    key = createPublicKey({ key: spki, format: 'der', type: 'spki' });
  } catch (err) {
    throw new PkiError('MALFORMED_CSR', `certificate signing request is malformed: ${errorMessage(err)}`, { cause: err });
  }
  const alg = CSR_SIGNATURES.get(algorithm);
  if (!alg) {
    throw new PkiError(
      'CSR_SIGNATURE',
      `certificate signing request uses an unsupported signature algorithm (${algorithm}); use ECDSA with SHA-256 or sha256WithRSAEncryption`,
    );
  }
  if (alg.key !== key.asymmetricKeyType) {
    throw new PkiError('CSR_SIGNATURE', `certificate signing request is signed with ${algorithm}, which does not fit its ${describeKey(key)} key`);
  }
  checkKeyStrength(key, 'certificate signing request');
  let ok = false;
  try {
    ok = verify(alg.hash, info.raw, key, signature);
  } catch {
    ok = false; // a malformed ECDSA signature throws rather than failing
  }
  if (!ok) throw new PkiError('CSR_SIGNATURE', 'certificate signing request signature does not match its public key');
  return { spki: Buffer.from(spki), key };
}

// ---------------------------------------------------------------------------------------------------
// Building certificates

interface CertificateFields {
  serial: Buffer;
  issuer: Buffer;
  subject: Buffer;
  notBefore: Date;
  notAfter: Date;
  spki: Buffer;
  extensions: Buffer[];
  signer: KeyObject;
}

/** A v3 certificate (RFC 5280 4.1), signed by `signer` with the algorithm its key calls for. PEM. */
function buildCertificate(f: CertificateFields): string {
  const { hash, algorithmId } = signatureAlgorithm(f.signer);
  const tbs = seq(
    explicit(0, uint(Buffer.from([2]))),
    uint(f.serial),
    algorithmId,
    f.issuer,
    seq(time(f.notBefore), time(f.notAfter)),
    f.subject,
    f.spki,
    explicit(3, seq(...f.extensions)),
  );
  return toPem(seq(tbs, algorithmId, bits(sign(hash, tbs, f.signer))), 'CERTIFICATE');
}

/** A Name of one attribute per RDN, each a UTF8String (PrintableString forbids '_', which ids may hold). */
function name(...attrs: [string, string][]): Buffer {
  return seq(...attrs.map(([id, value]) => set(seq(oid(id), utf8(value)))));
}

function extension(id: string, critical: boolean, value: Buffer): Buffer {
  return seq(oid(id), ...(critical ? [bool(true)] : []), octets(value));
}

const EXT = {
  subjectKeyIdentifier: '2.5.29.14',
  keyUsage: '2.5.29.15',
  subjectAltName: '2.5.29.17',
  basicConstraints: '2.5.29.19',
  authorityKeyIdentifier: '2.5.29.35',
  extKeyUsage: '2.5.29.37',
} as const;

const EKU = { serverAuth: '1.3.6.1.5.5.7.3.1', clientAuth: '1.3.6.1.5.5.7.3.2' } as const;

/** KeyUsage bit numbers (RFC 5280 4.2.1.3); bit 0 is the first byte's most significant bit. */
const KU = { digitalSignature: 0, keyEncipherment: 2, keyCertSign: 5, cRLSign: 6 } as const;

/** A KeyUsage BIT STRING of the named bits, trailing zero bits dropped as DER requires. */
function keyUsage(...bitNumbers: number[]): Buffer {
  const last = Math.max(...bitNumbers);
  const bytes = Buffer.alloc((last >> 3) + 1);
  for (const b of bitNumbers) bytes[b >> 3]! |= 0x80 >> (b & 7);
  return tlv(TAG.BIT_STRING, Buffer.from([7 - (last & 7)]), bytes);
}

/** Whether an encoded KeyUsage BIT STRING has `bit` set. */
function hasKeyUsage(value: Buffer, bit: number): boolean {
  try {
    const e = readWhole(value, TAG.BIT_STRING);
    return ((e.content[1 + (bit >> 3)] ?? 0) & (0x80 >> (bit & 7))) !== 0;
  } catch {
    return false;
  }
}

const DNS_LABEL = '[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?';

const DNS_NAME = new RegExp(`^(?=.{1,253}$)${DNS_LABEL}(\\.${DNS_LABEL})*$`, 'i');

/** An IPv4 or IPv6 address as the 4 or 16 network-order bytes of an iPAddress SAN. */
function ipToBytes(ip: string): Buffer {
  const version = isIP(ip);
  if (version === 4) return Buffer.from(ip.split('.').map(Number));
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
  return Buffer.from(
    groups.flatMap((g) => {
      const n = parseInt(g, 16);
      return [n >> 8, n & 0xff];
    }),
  );
}

/** 16 random bytes, first byte non-zero: a positive 128-bit serial (uint adds the 00 a set top bit needs). */
function randomSerial(): Buffer {
  let bytes = randomBytes(16);
  while (bytes[0] === 0) bytes = randomBytes(16);
  return bytes;
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
