// The key ring (manager/keys/keyring.ts) and key file (keyfile.ts): what a sealed secret is bound to,
// and that tampering, another object's context or an unknown key id all fail to open.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { KeyRing, SealError, newDataKey } from '../../manager/keys/keyring.ts';
import { decodeKeyRing, encodeKeyRing, keyFilePath, loadKeyRing, removeKeyRing, saveKeyRing } from '../../manager/keys/keyfile.ts';

/** A deterministic byte source for the tests. */
function seeded(seed: number): (n: number) => Buffer {
  let x = seed;
  return (n) => {
    const b = Buffer.alloc(n);
    for (let i = 0; i < n; i++) {
      x = (x * 1103515245 + 12345) >>> 0;
      b[i] = x >>> 24;
    }
    return b;
  };
}

const now = new Date('2026-01-01T00:00:00Z');

describe('key ring', () => {
  const rnd = seeded(7);
  const ring = KeyRing.generate(rnd, now);
  const plain = Buffer.from('hunter2-the-password');

  it('seals and opens a value bound to its object', () => {
    const s = ring.seal(plain, { kind: 'secret', id: 's1' }, rnd);
    assert.equal(s.kid, ring.active.kid);
    assert.equal(Buffer.from(s.nonce, 'base64').length, 12);
    assert.ok(!Buffer.from(s.ct, 'base64').includes(plain), 'ciphertext holds no plaintext');
    assert.deepEqual(ring.open(s, { kind: 'secret', id: 's1' }), plain);
  });

  it('uses a fresh nonce for every seal', () => {
    const a = ring.seal(plain, { kind: 'secret', id: 's1' }, randomBytes);
    const b = ring.seal(plain, { kind: 'secret', id: 's1' }, randomBytes);
    assert.notEqual(a.nonce, b.nonce);
    assert.notEqual(a.ct, b.ct);
  });

  it('refuses a tampered ciphertext', () => {
    const s = ring.seal(plain, { kind: 'secret', id: 's1' }, rnd);
    const ct = Buffer.from(s.ct, 'base64');
    ct[0]! ^= 1;
    assert.throws(() => ring.open({ ...s, ct: ct.toString('base64') }, { kind: 'secret', id: 's1' }), SealError);
  });

  it('refuses a value copied into another object (wrong AAD)', () => {
    const s = ring.seal(plain, { kind: 'secret', id: 's1' }, rnd);
    assert.throws(() => ring.open(s, { kind: 'secret', id: 's2' }), /does not authenticate/);
  });

  it('refuses a value relabelled with another key id, and an unknown key id', () => {
    const other = newDataKey(seeded(9), now);
    const two = new KeyRing([ring.active, other]);
    const s = ring.seal(plain, { kind: 'secret', id: 's1' }, rnd);
    assert.throws(() => two.open({ ...s, kid: other.kid }, { kind: 'secret', id: 's1' }), SealError);
    assert.throws(() => KeyRing.generate(seeded(3), now).open(s, { kind: 'secret', id: 's1' }), /does not have/);
    // A ring that gained a key (rotation) still opens what the old key sealed, and seals with the new one.
    assert.deepEqual(two.open(s, { kind: 'secret', id: 's1' }), plain);
    assert.equal(two.seal(plain, { kind: 'secret', id: 's1' }, rnd).kid, other.kid);
  });

  it('refuses malformed keys', () => {
    assert.throws(() => new KeyRing([]), SealError);
    assert.throws(() => new KeyRing([{ kid: 'a', key: Buffer.alloc(16), createdAt: '' }]), /32 bytes/);
  });
});

describe('key file', () => {
  it('round-trips, and is 0600 in a 0700 directory', () => {
    const dir = mkdtempSync(join(tmpdir(), 'h9-keys-'));
    try {
      assert.equal(loadKeyRing(dir), null);
      const ring = KeyRing.generate(randomBytes, now);
      saveKeyRing(dir, ring);
      assert.equal(statSync(keyFilePath(dir)).mode & 0o777, 0o600);
      assert.equal(statSync(join(dir, 'keys')).mode & 0o777, 0o700);
      const back = loadKeyRing(dir)!;
      assert.equal(back.active.kid, ring.active.kid);
      assert.deepEqual(back.active.key, ring.active.key);
      removeKeyRing(dir);
      assert.equal(loadKeyRing(dir), null);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses a wrapped (autolock) file and other shapes with a reason', () => {
    assert.throws(() => decodeKeyRing({ version: 1, wrapped: true, kek: {}, ct: '' }), /wrapped by a key-encryption key/);
    assert.throws(() => decodeKeyRing({ version: 2, wrapped: false, keys: [] }), /version 2/);
    assert.throws(() => decodeKeyRing({ version: 1, wrapped: false, keys: [{ kid: 'a', key: 'AAAA', createdAt: '' }] }), /bytes/);
    const enc = encodeKeyRing(KeyRing.generate(seeded(1), now));
    assert.equal(enc.wrapped, false);
    assert.equal(decodeKeyRing(JSON.parse(JSON.stringify(enc))).active.kid, enc.keys[0]!.kid);
    const dir = mkdtempSync(join(tmpdir(), 'h9-keys-'));
    try {
      mkdirSync(join(dir, 'keys'));
      writeFileSync(keyFilePath(dir), '{"version":1,"wrapped":true,"kek":{},"ct":""}');
      assert.throws(() => loadKeyRing(dir), SealError);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
