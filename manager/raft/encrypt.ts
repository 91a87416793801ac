// Encryption at rest for the Raft log and snapshots (issue 15): what SqliteRaftStorage stores is sealed
// with AES-256-GCM under this manager's own Raft data key, so raft.db, its WAL and the snapshot files hold
// no plaintext store content (secrets' sealed values, the CA key, service specs).
//
// The key is per manager (<state-dir>/keys/raft.json, a KeyRing in the key-file format of
// manager/keys/keyfile.ts), never the cluster ring that seals secrets: each manager's log is its own file,
// entries travel between managers decrypted inside mutual TLS, and so each manager can rotate its key
// alone. See docs/design/security.md, "Encryption at rest".
//
// The additional authenticated data binds a sealed entry to its index, term and type (and a snapshot to
// its index and term), so a ciphertext moved to another row or file fails to open instead of replaying
// old state. Sealed format (a version byte first, so the format can change):
//   0x01 | kidLen u8 | kid (UTF-8) | nonce (12) | ciphertext | tag (16)
//
// Pure apart from node:crypto: randomness comes in as a function.
import { createCipheriv, createDecipheriv } from 'node:crypto';
import { type KeyRing, NONCE_BYTES, TAG_BYTES } from '../keys/keyring.ts';

const FORMAT_V1 = 1;

/** An encrypted entry or snapshot could not be opened: wrong or missing key, or tampered bytes. */
export class RaftCipherError extends Error {
  readonly code = 'ERAFTCIPHER';
  constructor(message: string) {
    super(message);
    this.name = 'RaftCipherError';
  }
}

/** What a sealed blob belongs to (the AAD). */
export type RaftSealContext = { kind: 'entry'; index: number; term: number; type: number } | { kind: 'snapshot'; index: number; term: number };

function aad(ctx: RaftSealContext, kid: string): Buffer {
  const b = Buffer.alloc(1 + 8 + 8 + 1);
  b[0] = ctx.kind === 'entry' ? 1 : 2;
  b.writeBigUInt64BE(BigInt(ctx.index), 1);
  b.writeBigUInt64BE(BigInt(ctx.term), 9);
  b[17] = ctx.kind === 'entry' ? ctx.type : 0;
  return Buffer.concat([Buffer.from('shoal-raft-v1\0', 'utf8'), b, Buffer.from(kid, 'utf8')]);
}

function describe(ctx: RaftSealContext): string {
  return ctx.kind === 'entry' ? `log entry ${ctx.index}` : `snapshot ${ctx.index}-${ctx.term}`;
}

/** Seals and opens Raft entries and snapshots with the active key of a per-manager ring. */
export class RaftCipher {
  constructor(
    readonly ring: KeyRing,
    private readonly random: (n: number) => Buffer,
  ) {}

  seal(plain: Uint8Array, ctx: RaftSealContext): Buffer {
    const steps = this.sealInSteps(plain, ctx, plain.length + 1);
    for (;;) {
      const r = steps.next();
      if (r.done) return r.value;
    }
  }

  /**
   * seal() in steps of at most `stepBytes` of plaintext: each next() encrypts one step, the last returns
   * the sealed bytes (the same layout as seal()). A 68 MB snapshot is ≈ 0.25-0.7 s of AES-GCM in one go,
   * which a leader's event loop cannot give up at once (Raft's election timeout is 1 s); its snapshot job
   * yields between steps. Validation and the nonce happen at the first next().
   */
  *sealInSteps(plain: Uint8Array, ctx: RaftSealContext, stepBytes: number): Generator<void, Buffer, void> {
    const k = this.ring.active;
    const kid = Buffer.from(k.kid, 'utf8');
    if (kid.length > 255) throw new RaftCipherError(`key id ${k.kid} is too long`);
    const nonce = this.random(NONCE_BYTES);
    if (nonce.length !== NONCE_BYTES) throw new RaftCipherError(`a nonce is ${NONCE_BYTES} bytes`);
    const c = createCipheriv('aes-256-gcm', k.key, nonce);
    c.setAAD(aad(ctx, k.kid));
    // GCM is a stream cipher: the ciphertext is as long as the plaintext, so it is written in place.
    const start = 2 + kid.length + NONCE_BYTES;
    const out = Buffer.allocUnsafe(start + plain.length + TAG_BYTES);
    out[0] = FORMAT_V1;
    out[1] = kid.length;
    kid.copy(out, 2);
    nonce.copy(out, 2 + kid.length);
    const step = Math.max(1, stepBytes);
    let at = start;
    for (let i = 0; i < plain.length; i += step) {
      if (i > 0) yield;
      at += c.update(plain.subarray(i, Math.min(plain.length, i + step))).copy(out, at);
    }
    at += c.final().copy(out, at);
    if (at !== start + plain.length) throw new RaftCipherError(`sealing wrote ${at - start} bytes for ${plain.length}`);
    c.getAuthTag().copy(out, at);
    return out;
  }

  open(sealed: Uint8Array, ctx: RaftSealContext): Buffer {
    const b = Buffer.from(sealed.buffer, sealed.byteOffset, sealed.byteLength);
    if (b.length < 2 || b[0] !== FORMAT_V1) throw new RaftCipherError(`${describe(ctx)}: unknown encrypted format ${b[0] ?? 'none'}`);
    const kidLen = b[1]!;
    const start = 2 + kidLen + NONCE_BYTES;
    if (b.length < start + TAG_BYTES) throw new RaftCipherError(`${describe(ctx)}: the encrypted value is truncated`);
    const kid = b.subarray(2, 2 + kidLen).toString('utf8');
    const k = this.ring.keys.find((x) => x.kid === kid);
    if (!k) throw new RaftCipherError(`${describe(ctx)} was encrypted with key ${kid}, which this manager does not have`);
    const d = createDecipheriv('aes-256-gcm', k.key, b.subarray(2 + kidLen, start));
    d.setAAD(aad(ctx, kid));
    d.setAuthTag(b.subarray(b.length - TAG_BYTES));
    try {
      return Buffer.concat([d.update(b.subarray(start, b.length - TAG_BYTES)), d.final()]);
    } catch {
      throw new RaftCipherError(`${describe(ctx)}: the encrypted value does not authenticate (tampered, or moved from another index)`);
    }
  }
}
