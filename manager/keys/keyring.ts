// The managers' data-encryption keys (DEKs) and what they seal: secret data in the replicated store.
// AES-256-GCM with a 96-bit random nonce per seal; the additional authenticated data binds a sealed
// value to the object it belongs to (kind, id) and to the key id, so a ciphertext copied into another
// secret, or relabelled with another key id, fails to open instead of decrypting as the wrong secret.
//
// Pure apart from node:crypto: randomness (nonces, new keys) comes in as a function, so tests are
// deterministic. The ring holds several keys so that a later rotation can add one: new seals use the
// active key, opens find the key by the sealed value's `kid`. The key material itself never enters the
// Raft log or a snapshot; it lives in a file beside them (keyfile.ts) and travels between managers only
// over the mTLS port (endpoint.ts). See docs/design/secrets.md.
import { createCipheriv, createDecipheriv } from 'node:crypto';
import type { SealedData } from '../../api/objects.ts';

export const KEY_BYTES = 32;
export const NONCE_BYTES = 12;
export const TAG_BYTES = 16;

/** One data-encryption key. */
export interface DataKey {
  /** Short random id, stored beside every value the key sealed. */
  kid: string;
  key: Buffer;
  /** ISO-8601, for operators (which key is older). */
  createdAt: string;
}

/** A sealed value cannot be opened: wrong key, tampered bytes, or sealed for another object. */
export class SealError extends Error {
  readonly code = 'ESEAL';
  constructor(message: string) {
    super(message);
    this.name = 'SealError';
  }
}

/** What a sealed value is bound to (the AAD). */
export interface SealContext {
  kind: 'secret';
  id: string;
}

function aad(ctx: SealContext, kid: string): Buffer {
  // Length-prefixed fields: no choice of id can make two different contexts encode alike.
  const parts = ['shoal-seal-v1', ctx.kind, ctx.id, kid].map((s) => Buffer.from(s, 'utf8'));
  return Buffer.concat(parts.flatMap((p) => [Buffer.from([p.length >> 8, p.length & 0xff]), p]));
}

export class KeyRing {
  private readonly byKid: Map<string, DataKey>;

  /** `keys` non-empty; the last one is the active key (new seals use it). */
  constructor(readonly keys: readonly DataKey[]) {
    if (keys.length === 0) throw new SealError('a key ring needs at least one key');
    for (const k of keys) if (k.key.length !== KEY_BYTES) throw new SealError(`key ${k.kid}: a data key is ${KEY_BYTES} bytes, not ${k.key.length}`);
    this.byKid = new Map(keys.map((k) => [k.kid, k]));
    if (this.byKid.size !== keys.length) throw new SealError('key ids in a key ring must be unique');
  }

  /** A ring with one fresh key. */
  static generate(random: (n: number) => Buffer, now: Date): KeyRing {
    return new KeyRing([newDataKey(random, now)]);
  }

  get active(): DataKey {
    return this.keys[this.keys.length - 1]!;
  }

  seal(plain: Buffer, ctx: SealContext, random: (n: number) => Buffer): SealedData {
    const k = this.active;
    const nonce = random(NONCE_BYTES);
    if (nonce.length !== NONCE_BYTES) throw new SealError(`a nonce is ${NONCE_BYTES} bytes`);
    const c = createCipheriv('aes-256-gcm', k.key, nonce);
    c.setAAD(aad(ctx, k.kid));
    const ct = Buffer.concat([c.update(plain), c.final(), c.getAuthTag()]);
    return { kid: k.kid, nonce: nonce.toString('base64'), ct: ct.toString('base64') };
  }

  open(sealed: SealedData, ctx: SealContext): Buffer {
    const k = this.byKid.get(sealed.kid);
    if (!k) throw new SealError(`${ctx.kind} ${ctx.id} was sealed with key ${sealed.kid}, which this manager does not have`);
    const nonce = Buffer.from(sealed.nonce, 'base64');
    const ct = Buffer.from(sealed.ct, 'base64');
    if (nonce.length !== NONCE_BYTES || ct.length < TAG_BYTES) throw new SealError(`${ctx.kind} ${ctx.id}: the sealed value is malformed`);
    const d = createDecipheriv('aes-256-gcm', k.key, nonce);
    d.setAAD(aad(ctx, k.kid));
    d.setAuthTag(ct.subarray(ct.length - TAG_BYTES));
    try {
      return Buffer.concat([d.update(ct.subarray(0, ct.length - TAG_BYTES)), d.final()]);
    } catch {
      throw new SealError(`${ctx.kind} ${ctx.id}: the sealed value does not authenticate (tampered, or sealed for another object)`);
    }
  }
}

export function newDataKey(random: (n: number) => Buffer, now: Date): DataKey {
  return { kid: random(6).toString('hex'), key: random(KEY_BYTES), createdAt: now.toISOString() };
}
