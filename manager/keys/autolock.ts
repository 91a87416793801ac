// Autolock (issue 15): a manager's key files — the cluster's data-encryption keys (dek.json) and its own
// Raft key (raft.json) — are wrapped with a key-encryption key (KEK) derived from an unlock key that only
// an operator holds, so a stolen disk (or a manager restarted by a thief) opens neither the Raft log nor
// any secret until someone types the key.
//
// The unlock key is 32 random bytes written as `SHOALKEY-1-<base64url>`: it is high-entropy, so a fast
// KDF is enough (HKDF-SHA256 with a random salt per wrap); scrypt would only add seconds to every unlock
// without making a 256-bit key harder to guess. The KEK exists only in memory while wrapping/unwrapping.
// Wrapping is AES-256-GCM with AAD naming the format, so a wrong key (or a tampered file) is refused
// rather than yielding garbage keys.
//
// Pure apart from node:crypto: randomness comes in as a function. File I/O lives in keyfile.ts.
import { createCipheriv, createDecipheriv, hkdfSync } from 'node:crypto';
import { KEY_BYTES, NONCE_BYTES, SealError, TAG_BYTES } from './keyring.ts';

export const UNLOCK_KEY_PREFIX = 'SHOALKEY-1-';
export const KDF_NAME = 'hkdf-sha256';
const SALT_BYTES = 16;
const INFO = Buffer.from('shoal-autolock-kek-v1', 'utf8');
const AAD = Buffer.from('shoal-keyfile-wrapped-v1', 'utf8');

/** The text is not an unlock key (wrong prefix, length or alphabet). */
export class UnlockKeyFormatError extends Error {
  readonly code = 'EUNLOCKKEYFORMAT';
  constructor(message: string) {
    super(message);
    this.name = 'UnlockKeyFormatError';
  }
}

/** The unlock key does not open the wrapped key file (wrong key, or the file was tampered with). */
export class WrongUnlockKeyError extends Error {
  readonly code = 'EWRONGUNLOCKKEY';
  constructor(message: string) {
    super(message);
    this.name = 'WrongUnlockKeyError';
  }
}

/**
 * The manager's keys are wrapped and no unlock key was given: it stays locked until `cluster unlock`.
 * A SealError (the key file cannot be opened), so callers that only know key files still refuse it.
 */
export class ManagerLockedError extends SealError {
  constructor(message: string) {
    super(message);
    this.name = 'ManagerLockedError';
  }
}

/** How a wrapped key file records its KEK derivation and the GCM nonce (keyfile.ts KeyFileWrapped.kek). */
export interface WrapParams {
  kdf: string;
  salt: string;
  nonce: string;
}

export interface Wrapped {
  kek: WrapParams;
  ct: string;
}

export function generateUnlockKey(random: (n: number) => Buffer): string {
  const k = random(KEY_BYTES);
  if (k.length !== KEY_BYTES) throw new UnlockKeyFormatError(`an unlock key is ${KEY_BYTES} bytes`);
  return formatUnlockKey(k);
}

export function formatUnlockKey(key: Buffer): string {
  return UNLOCK_KEY_PREFIX + key.toString('base64url');
}

/** Parses `SHOALKEY-1-…` (surrounding whitespace ignored); throws UnlockKeyFormatError. */
export function parseUnlockKey(text: string): Buffer {
  const t = text.trim();
  if (!t.startsWith(UNLOCK_KEY_PREFIX)) throw new UnlockKeyFormatError(`an unlock key starts with ${UNLOCK_KEY_PREFIX}`);
  const body = t.slice(UNLOCK_KEY_PREFIX.length);
  if (!/^[A-Za-z0-9_-]+$/.test(body)) throw new UnlockKeyFormatError('an unlock key is base64url after its prefix');
  const key = Buffer.from(body, 'base64url');
  if (key.length !== KEY_BYTES || formatUnlockKey(key) !== t) throw new UnlockKeyFormatError(`an unlock key holds ${KEY_BYTES} bytes`);
  return key;
}

function deriveKek(unlockKey: Buffer, salt: Buffer): Buffer {
  if (unlockKey.length !== KEY_BYTES) throw new UnlockKeyFormatError(`an unlock key is ${KEY_BYTES} bytes, not ${unlockKey.length}`);
  return Buffer.from(hkdfSync('sha256', unlockKey, salt, INFO, KEY_BYTES));
}

/** Encrypts `plain` (a key file's unwrapped JSON) under a fresh KEK derived from the unlock key. */
export function wrap(plain: Buffer, unlockKey: Buffer, random: (n: number) => Buffer): Wrapped {
  const salt = random(SALT_BYTES);
  const nonce = random(NONCE_BYTES);
  const kek = deriveKek(unlockKey, salt);
  try {
    const c = createCipheriv('aes-256-gcm', kek, nonce);
    c.setAAD(AAD);
    const ct = Buffer.concat([c.update(plain), c.final(), c.getAuthTag()]);
    return { kek: { kdf: KDF_NAME, salt: salt.toString('base64'), nonce: nonce.toString('base64') }, ct: ct.toString('base64') };
  } finally {
    kek.fill(0);
  }
}

/** Decrypts a wrapped key file; throws WrongUnlockKeyError if the key does not open it. */
export function unwrap(w: Wrapped, unlockKey: Buffer): Buffer {
  if (w.kek?.kdf !== KDF_NAME) throw new WrongUnlockKeyError(`the key file is wrapped with ${String(w.kek?.kdf)}, expected ${KDF_NAME}`);
  const salt = Buffer.from(w.kek.salt, 'base64');
  const nonce = Buffer.from(w.kek.nonce, 'base64');
  const ct = Buffer.from(w.ct, 'base64');
  if (salt.length !== SALT_BYTES || nonce.length !== NONCE_BYTES || ct.length < TAG_BYTES) throw new WrongUnlockKeyError('the wrapped key file is malformed');
  const kek = deriveKek(unlockKey, salt);
  try {
    const d = createDecipheriv('aes-256-gcm', kek, nonce);
    d.setAAD(AAD);
    d.setAuthTag(ct.subarray(ct.length - TAG_BYTES));
    return Buffer.concat([d.update(ct.subarray(0, ct.length - TAG_BYTES)), d.final()]);
  } catch {
    throw new WrongUnlockKeyError("the unlock key does not open this manager's keys (wrong key, or the key file was altered)");
  } finally {
    kek.fill(0);
  }
}
