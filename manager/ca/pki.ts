// Shoal's cluster PKI: the root CA, node keys and CSRs, node certificate issuance and the
// authorization-layer checks a manager runs on a peer's certificate. See docs/design/ca.md.
//
// Division of labour: Node's crypto generates keys, signs, verifies signatures and parses certificates
// (native, constant-time). What a node needs (keys, CSRs, parsing, verification) is here; what only a
// CA does (building X.509 certificates, which Node cannot do) is in issue.ts, on the DER codec of der.ts.
//
// Keys are ECDSA P-256 by default, as Swarm's are. A cluster pays for its keys on every join, renewal
// and TLS handshake, and bench:scale's joins and reconnect storms are bound by that; `npm run bench:pki`
// (2 cores): a node key 0.26 ms instead of 170 ms (RSA-2048), the CA's work per join 0.57 ms of CPU
// instead of 2.49 ms (RSA-3072 root), a full mutual-TLS handshake 2.9 ms of CPU (both ends) instead of
// 3.9 ms. RSA keys of 2048 bits and more are still accepted everywhere, so clusters made with RSA roots
// keep working, and their next root rotation moves them to ECDSA.
import { createHash, createPrivateKey, createPublicKey, generateKeyPair, sign, X509Certificate } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { bits, oid, seq, set, tlv, toPem, uint, utf8 } from './der.ts';

export type NodeRole = 'manager' | 'worker' | 'admin';
export const NODE_ROLES: readonly NodeRole[] = ['manager', 'worker', 'admin'];

/** CN of every Shoal root CA (the cluster is named by O). */
export const CA_COMMON_NAME = 'shoal-ca';
export const DEFAULT_NODE_CERT_VALIDITY_MS = 90 * 24 * 3600_000;
/** Issued certificates start this far in the past so a peer whose clock is behind accepts them. */
export const CLOCK_SKEW_MS = 60_000;
/** Smallest RSA modulus the CA accepts in a CSR. */
export const MIN_RSA_BITS = 2048;

/** The kinds of key Shoal generates and accepts. */
export type KeyType = 'ecdsa-p256' | 'ecdsa-p384' | 'rsa-2048' | 'rsa-3072' | 'rsa-4096';
export const KEY_TYPES: readonly KeyType[] = ['ecdsa-p256', 'ecdsa-p384', 'rsa-2048', 'rsa-3072', 'rsa-4096'];
/** Node, admin and root keys alike (a root's 20 years need no more than P-256's 128-bit strength). */
export const DEFAULT_KEY_TYPE: KeyType = 'ecdsa-p256';
/** EC curves accepted (Node's names): P-256 and P-384, what every TLS stack speaks. */
const EC_CURVES: ReadonlyMap<string, { hash: string; sigOid: string }> = new Map([
  ['prime256v1', { hash: 'sha256', sigOid: '1.2.840.10045.4.3.2' }],
  ['secp384r1', { hash: 'sha384', sigOid: '1.2.840.10045.4.3.3' }],
]);

export type PkiErrorCode =
  | 'INVALID_ARGUMENT'
  | 'MALFORMED_CERTIFICATE'
  | 'MALFORMED_KEY'
  | 'MALFORMED_CSR'
  | 'CSR_SIGNATURE'
  | 'WEAK_KEY'
  | 'UNSUPPORTED_KEY'
  | 'CA_KEY_MISMATCH'
  | 'CA_NOT_VALID';

export class PkiError extends Error {
  override readonly name = 'PkiError';
  constructor(
    readonly code: PkiErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export interface CaMaterial {
  /** Self-signed root CA certificate, PEM. */
  certPem: string;
  /** The CA's private key, PKCS#8 PEM. Lives in the replicated store so any leader can sign. */
  keyPem: string;
}

export interface IssuedCertificate {
  certPem: string;
  /** Lowercase hex, no leading zero bytes (32 hex digits): the form `denied` sets hold. */
  serial: string;
  /** Exactly what the certificate says (X.509 times have whole-second precision). */
  notBefore: Date;
  notAfter: Date;
}

export interface CertificateInfo {
  /** Subject CN. */
  nodeId: string;
  /** Subject OU, verbatim ('' when absent). Only verifyNodeCertificate narrows it to a NodeRole. */
  role: string;
  /** Subject O ('' when absent). */
  clusterId: string;
  serial: string;
  notBefore: Date;
  notAfter: Date;
  /** sha256 of the certificate's DER, lowercase hex. */
  fingerprint: string;
  issuerCn: string;
}

export interface VerifiedCertificate extends CertificateInfo {
  role: NodeRole;
}

export type VerifyResult = { ok: true; info: VerifiedCertificate } | { ok: false; reason: string };

export interface VerifyOptions {
  /** The root(s) the certificate may be issued by: during a root rotation, the old and the new one. */
  caCertPem: string | readonly string[];
  clusterId: string;
  now?: Date;
  /** Revoked certificate serials (lowercase hex, as IssuedCertificate.serial) and removed node ids. */
  denied?: ReadonlySet<string>;
}

// ---------------------------------------------------------------------------------------------------
// Keys and the root CA

/** A fresh private key (PKCS#8 PEM), generated off the main thread by Node's libuv pool. */
export function generateKeyPem(type: KeyType = DEFAULT_KEY_TYPE): Promise<string> {
  if (!KEY_TYPES.includes(type))
    return Promise.reject(new PkiError('INVALID_ARGUMENT', `key type must be one of ${KEY_TYPES.join(', ')}, got ${String(type)}`));
  const encoding = { publicKeyEncoding: { type: 'spki', format: 'pem' }, privateKeyEncoding: { type: 'pkcs8', format: 'pem' } } as const;
  return new Promise((resolve, reject) => {
    const done = (err: Error | null, _publicKey: string, privateKey: string) => (err ? reject(err) : resolve(privateKey));
    if (type.startsWith('rsa-')) generateKeyPair('rsa', { modulusLength: Number(type.slice(4)), ...encoding }, done);
    else generateKeyPair('ec', { namedCurve: type === 'ecdsa-p384' ? 'secp384r1' : 'prime256v1', ...encoding }, done);
  });
}

/**
 * How `key` signs a certificate or CSR: the digest and the AlgorithmIdentifier (RFC 5758 for ECDSA, no
 * parameters; RFC 4055 for RSA, NULL parameters). ECDSA signatures come out of Node in DER, as X.509
 * carries them.
 */
export function signatureAlgorithm(key: KeyObject): { hash: string; algorithmId: Buffer } {
  if (key.asymmetricKeyType === 'rsa') return { hash: 'sha256', algorithmId: SHA256_WITH_RSA };
  const curve = EC_CURVES.get(String(key.asymmetricKeyDetails?.namedCurve));
  if (key.asymmetricKeyType === 'ec' && curve) return { hash: curve.hash, algorithmId: seq(oid(curve.sigOid)) };
  throw new PkiError('UNSUPPORTED_KEY', `${describeKey(key)} keys are not supported: use ECDSA P-256 or P-384, or RSA of at least ${MIN_RSA_BITS} bits`);
}

/** A public or private key in words: "RSA-2048", "EC prime256v1", "ed25519". */
export function describeKey(key: KeyObject): string {
  const d = key.asymmetricKeyDetails;
  if (key.asymmetricKeyType === 'rsa') return `RSA-${d?.modulusLength}`;
  if (key.asymmetricKeyType === 'ec') return `EC ${d?.namedCurve}`;
  return String(key.asymmetricKeyType);
}

/**
 * Whether Shoal accepts `key` in a certificate: RSA of at least MIN_RSA_BITS (WEAK_KEY below that), or EC on
 * P-256 or P-384 (UNSUPPORTED_KEY for any other kind, e.g. RSA-PSS, Ed25519 or another curve: what every
 * TLS peer of a cluster, the docker CLI's Go TLS included, is sure to speak).
 */
export function checkKeyStrength(key: KeyObject, what: string): void {
  if (key.asymmetricKeyType === 'rsa') {
    const n = key.asymmetricKeyDetails?.modulusLength ?? 0;
    if (n < MIN_RSA_BITS) throw new PkiError('WEAK_KEY', `${what} key is RSA-${n}; at least RSA-${MIN_RSA_BITS} is required`);
    return;
  }
  if (key.asymmetricKeyType !== 'ec' || !EC_CURVES.has(String(key.asymmetricKeyDetails?.namedCurve))) {
    throw new PkiError('UNSUPPORTED_KEY', `${what} key is ${describeKey(key)}; use ECDSA P-256 or P-384, or RSA of at least ${MIN_RSA_BITS} bits`);
  }
}

/** sha256 of the CA certificate's DER, lowercase hex (64 characters): the digest in join tokens. */
export function caDigest(caCertPem: string): string {
  return createHash('sha256').update(loadCaX509(caCertPem).raw).digest('hex');
}

/**
 * The digest (caDigest) of the root among `roots` whose key signed `cert`, or null if none did. The
 * dispatcher records it for the certificate each session is opened with: what a node presents, not what
 * was issued to it, is the proof a root rotation may complete (an answer lost on the way proves nothing).
 */
export function issuingRootDigest(cert: string | Buffer, roots: readonly string[]): string | null {
  let leaf: LeafFacts;
  try {
    leaf = leafFacts(cert);
  } catch {
    return null;
  }
  for (const pem of roots) {
    try {
      if (issuedBy(leaf, pem)) return caDigestOf(pem);
    } catch {
      // an unparseable root signs nothing
    }
  }
  return null;
}

// ---------------------------------------------------------------------------------------------------
// CSRs and issuance

/**
 * A PKCS#10 CSR for `nodeId`, signed with `keyPem` (ECDSA with SHA-256/384, or sha256WithRSAEncryption).
 * The CA ignores everything in it but the key.
 */
export function createCsr(opts: { keyPem: string; nodeId: string }): string {
  checkName('nodeId', opts.nodeId);
  const key = loadPrivateKey(opts.keyPem);
  const { hash, algorithmId } = signatureAlgorithm(key);
  const spki = createPublicKey(key).export({ type: 'spki', format: 'der' });
  // CertificationRequestInfo ::= SEQUENCE { version 0, subject CN=nodeId (UTF8String), SPKI, attributes [0] {} }
  const subject = seq(set(seq(oid(OID.commonName), utf8(opts.nodeId))));
  const info = seq(uint(Buffer.from([0])), subject, spki, tlv(0xa0, Buffer.alloc(0)));
  return toPem(seq(info, algorithmId, bits(sign(hash, info, key))), 'CERTIFICATE REQUEST');
}

/** The OIDs of names the PKI writes. */
export const OID = {
  commonName: '2.5.4.3',
  organizationalUnitName: '2.5.4.11',
  organizationName: '2.5.4.10',
} as const;

/** AlgorithmIdentifier { 1.2.840.113549.1.1.11 sha256WithRSAEncryption, NULL }, encoded. */
const SHA256_WITH_RSA = Buffer.from('300d06092a864886f70d01010b0500', 'hex');

// ---------------------------------------------------------------------------------------------------
// Parsing and verification

/** Reads the fields Shoal cares about. Throws PkiError('MALFORMED_CERTIFICATE') on anything else. */
export function parseCertificate(pem: string | Buffer): CertificateInfo {
  return certificateInfo(loadX509(pem));
}

function certificateInfo(x509: X509Certificate): CertificateInfo {
  const legacy = x509.toLegacyObject();
  const subject = legacy.subject as unknown as Record<string, unknown> | undefined;
  const issuer = legacy.issuer as unknown as Record<string, unknown> | undefined;
  const notBefore = new Date(x509.validFrom);
  const notAfter = new Date(x509.validTo);
  if (Number.isNaN(notBefore.getTime()) || Number.isNaN(notAfter.getTime())) {
    throw new PkiError('MALFORMED_CERTIFICATE', 'certificate has an unreadable validity period');
  }
  return {
    nodeId: singleField(subject, 'CN', 'subject'),
    role: singleField(subject, 'OU', 'subject'),
    clusterId: singleField(subject, 'O', 'subject'),
    serial: normalizeSerial(x509.serialNumber),
    notBefore,
    notAfter,
    fingerprint: createHash('sha256').update(x509.raw).digest('hex'),
    issuerCn: singleField(issuer, 'CN', 'issuer'),
  };
}

/**
 * The authorization-layer check on a peer's certificate (TLS has already verified the chain on the
 * wire; this names the cause in a sentence and applies what TLS cannot know: cluster, role, deny list).
 * Accepts PEM or DER (e.g. `tlsSocket.getPeerCertificate().raw`). Checks, in order: parseable, issued
 * by this CA, not a CA, validity period, cluster, role, deny list.
 */
export function verifyNodeCertificate(pem: string | Buffer, opts: VerifyOptions): VerifyResult {
  const now = (opts.now ?? new Date()).getTime();
  let leaf: LeafFacts;
  try {
    leaf = leafFacts(pem);
  } catch (err) {
    return { ok: false, reason: errorMessage(err) };
  }
  const { x509 } = leaf;
  const info: CertificateInfo = { ...leaf.info, notBefore: new Date(leaf.info.notBefore), notAfter: new Date(leaf.info.notAfter) };
  const roots = typeof opts.caCertPem === 'string' ? [opts.caCertPem] : opts.caCertPem;
  for (const p of roots) loadCaX509(p); // a root that does not parse is an error, as before
  if (!roots.some((ca) => issuedBy(leaf, ca))) {
    const claim = info.clusterId && info.clusterId !== opts.clusterId ? ` (it names cluster ${info.clusterId}, not ${opts.clusterId})` : '';
    return { ok: false, reason: `certificate was issued by another CA${claim}` };
  }
  if (x509.ca) return { ok: false, reason: 'certificate is a CA certificate, not a node certificate' };
  if (now < info.notBefore.getTime()) {
    return { ok: false, reason: `certificate is not yet valid (valid from ${info.notBefore.toISOString()})` };
  }
  if (now > info.notAfter.getTime()) {
    return { ok: false, reason: `certificate expired at ${info.notAfter.toISOString()}` };
  }
  if (info.clusterId !== opts.clusterId) {
    return { ok: false, reason: `certificate belongs to cluster ${info.clusterId || '(none)'}, not ${opts.clusterId}` };
  }
  const role = info.role;
  if (!isNodeRole(role)) return { ok: false, reason: `unknown role OU ${role || '(none)'}` };
  const denied = opts.denied;
  if (denied?.has(info.nodeId)) return { ok: false, reason: `certificate of node ${info.nodeId} was revoked (node removed)` };
  if (denied && (denied.has(info.serial) || denied.has(info.serial.toUpperCase()))) {
    return { ok: false, reason: `certificate ${info.serial} of ${info.role === 'admin' ? 'admin' : 'node'} ${info.nodeId} was revoked` };
  }
  return { ok: true, info: { ...info, role } };
}

export function isNodeRole(s: string): s is NodeRole {
  return (NODE_ROLES as readonly string[]).includes(s);
}

/**
 * When to renew: a uniformly random point between 50 % and 80 % of the certificate's lifetime, so a
 * cluster's nodes (issued together at bootstrap) do not all renew at once. `random` returns [0, 1).
 */
export function renewalTime(notBefore: Date, notAfter: Date, random: () => number): Date {
  const start = notBefore.getTime();
  const lifetime = notAfter.getTime() - start;
  if (!Number.isFinite(lifetime) || lifetime <= 0) {
    throw new PkiError('INVALID_ARGUMENT', 'renewalTime needs notBefore < notAfter');
  }
  const r = random();
  const u = Number.isFinite(r) ? Math.min(Math.max(r, 0), 1) : 0;
  return new Date(start + lifetime * (0.5 + 0.3 * u));
}

// ---------------------------------------------------------------------------------------------------
// Helpers

/** @internal (also used by issue.ts) */
export function normalizeSerial(hex: string): string {
  const s = hex
    .toLowerCase()
    .replace(/:/g, '')
    .replace(/^(00)+(?=..)/, '');
  return s.length % 2 ? `0${s}` : s;
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** Node and cluster ids go into CN/O and a DNS SAN: one conservative character set, no surprises. */
/** @internal (also used by issue.ts) */
export function checkName(what: string, value: string): void {
  if (typeof value !== 'string' || !NAME.test(value)) {
    throw new PkiError('INVALID_ARGUMENT', `${what} must be 1-64 characters of [A-Za-z0-9._-] starting with a letter or digit, got ${JSON.stringify(value)}`);
  }
}

/** @internal (also used by issue.ts) */
export function loadX509(pem: string | Buffer): X509Certificate {
  if (typeof pem !== 'string' && !Buffer.isBuffer(pem)) {
    throw new PkiError('MALFORMED_CERTIFICATE', 'certificate must be a PEM string or DER buffer');
  }
  if (typeof pem === 'string' && !pem.includes('-----BEGIN CERTIFICATE-----')) {
    throw new PkiError('MALFORMED_CERTIFICATE', 'certificate is not PEM: no "-----BEGIN CERTIFICATE-----" line');
  }
  try {
    return new X509Certificate(pem);
  } catch (err) {
    throw new PkiError('MALFORMED_CERTIFICATE', `certificate is malformed: ${errorMessage(err)}`, { cause: err });
  }
}

/**
 * A CA certificate, parsed once: the same few roots are checked against for every session a manager
 * opens and every hello (verifyNodeCertificate, issuingRootDigest), and parsing a 3,072-bit root each
 * time was ≈ 6 % of a leader's CPU while 1,000 nodes connected (bench:scale --profile). X509Certificate
 * is immutable, so one object can serve every caller. Bounded: a root rotation has two roots at once.
 */
const caCache = new Map<string, X509Certificate>();
const CA_CACHE_ENTRIES = 8;
const caDigests = new Map<string, string>();

/** caDigest of a root, computed once per root. */
function caDigestOf(pem: string): string {
  let d = caDigests.get(pem);
  if (d === undefined) {
    d = createHash('sha256').update(loadCaX509(pem).raw).digest('hex');
    if (caDigests.size >= CA_CACHE_ENTRIES) caDigests.delete(caDigests.keys().next().value as string);
    caDigests.set(pem, d);
  }
  return d;
}

/**
 * What a leaf certificate's bytes say, parsed once: its fields and which roots signed it. A node presents
 * the same certificate on every session it opens; a new leader takes every node's reconnect at once, and
 * parsing the leaf (X509Certificate, toLegacyObject, its fingerprint) and checking its signature, twice
 * per session (the session's certificate check and its issuing root), was 0.7 ms of the leader's CPU per
 * reconnect (bench:scale --profile, 1,000 nodes / 150,000 tasks: 0.72 of 4.2 busy seconds of the
 * takeover). Both are pure facts of the bytes (and the root, for the signature), so they are kept,
 * bounded, keyed by the bytes; the validity period, cluster, role and deny list are checked on every call.
 */
interface LeafFacts {
  x509: X509Certificate;
  info: CertificateInfo;
  /** Root PEM → whether it issued and signed this leaf. */
  signers: Map<string, boolean>;
}
const leafCache = new Map<string, LeafFacts>();
/** Enough for every node of a 5,000-node cluster plus renewals in flight (a parsed certificate each). */
const LEAF_CACHE_ENTRIES = 8192;

function leafFacts(pem: string | Buffer): LeafFacts {
  const key = typeof pem === 'string' ? pem : Buffer.isBuffer(pem) ? `der:${pem.toString('base64')}` : null;
  if (key !== null) {
    const hit = leafCache.get(key);
    if (hit !== undefined) {
      // Least recently used goes first: move the hit to the end.
      leafCache.delete(key);
      leafCache.set(key, hit);
      return hit;
    }
  }
  const x509 = loadX509(pem);
  const facts: LeafFacts = { x509, info: certificateInfo(x509), signers: new Map() };
  if (key !== null) {
    if (leafCache.size >= LEAF_CACHE_ENTRIES) leafCache.delete(leafCache.keys().next().value as string);
    leafCache.set(key, facts);
  }
  return facts;
}

function issuedBy(leaf: LeafFacts, rootPem: string): boolean {
  let ok = leaf.signers.get(rootPem);
  if (ok === undefined) {
    const root = loadCaX509(rootPem);
    ok = leaf.x509.checkIssued(root) && leaf.x509.verify(root.publicKey);
    // A leaf is checked against the one or two roots of the moment: bounded like the roots.
    if (leaf.signers.size >= CA_CACHE_ENTRIES) leaf.signers.clear();
    leaf.signers.set(rootPem, ok);
  }
  return ok;
}

/** @internal */
export function loadCaX509(pem: string): X509Certificate {
  const hit = caCache.get(pem);
  if (hit !== undefined) return hit;
  const x = loadX509(pem);
  if (caCache.size >= CA_CACHE_ENTRIES) caCache.delete(caCache.keys().next().value as string);
  caCache.set(pem, x);
  return x;
}

/** @internal (also used by issue.ts) */
export function loadPrivateKey(pem: string): KeyObject {
  let key: KeyObject;
  try {
    key = createPrivateKey(pem);
  } catch (err) {
    throw new PkiError('MALFORMED_KEY', `private key is malformed: ${errorMessage(err)}`, { cause: err });
  }
  checkKeyStrength(key, 'private');
  return key;
}

function singleField(name: Record<string, unknown> | undefined, field: string, where: string): string {
  const v = name?.[field];
  if (v === undefined) return '';
  if (typeof v === 'string') return v;
  throw new PkiError('MALFORMED_CERTIFICATE', `certificate ${where} has more than one ${field}`);
}

/** @internal (also used by issue.ts) */
export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
