// Autolock's key wrapping (manager/keys/autolock.ts) and the wrapped key-file shape (keyfile.ts): the right
// unlock key opens the manager's keys, a wrong or malformed one is refused, and nothing of the keys or the
// KEK is readable in the wrapped file.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  ManagerLockedError,
  UNLOCK_KEY_PREFIX,
  UnlockKeyFormatError,
  WrongUnlockKeyError,
  generateUnlockKey,
  parseUnlockKey,
  unwrap,
  wrap,
} from '../../manager/keys/autolock.ts';
import { KeyRing } from '../../manager/keys/keyring.ts';
import { RAFT_KEY_FILE, isKeyFileWrapped, keyFilePath, loadKeyRing, saveKeyRing } from '../../manager/keys/keyfile.ts';

const dirs: string[] = [];
after(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});
function tmp(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'shoal-autolock-'));
  dirs.push(d);
  return d;
}

describe('unlock keys', () => {
  it('formats and parses SHOALKEY-1-… round trip, tolerating whitespace', () => {
    const text = generateUnlockKey(randomBytes);
    assert.ok(text.startsWith(UNLOCK_KEY_PREFIX));
    assert.equal(parseUnlockKey(`  ${text}\n`).length, 32);
  });
  it('refuses malformed keys with UnlockKeyFormatError', () => {
    const good = generateUnlockKey(randomBytes);
    for (const bad of ['', 'SWMKEY-1-abc', `${UNLOCK_KEY_PREFIX}short`, `${good}A`, `${UNLOCK_KEY_PREFIX}${'!'.repeat(43)}`]) {
      assert.throws(() => parseUnlockKey(bad), UnlockKeyFormatError, JSON.stringify(bad));
    }
  });
});

describe('KEK wrapping', () => {
  const plain = Buffer.from('{"version":1,"wrapped":false,"keys":[]}');
  it('wraps and unwraps with the same unlock key; each wrap uses a fresh salt and nonce', () => {
    const k = parseUnlockKey(generateUnlockKey(randomBytes));
    const a = wrap(plain, k, randomBytes);
    const b = wrap(plain, k, randomBytes);
    assert.notEqual(a.kek.salt, b.kek.salt);
    assert.notEqual(a.ct, b.ct);
    assert.deepEqual(unwrap(a, k), plain);
    assert.deepEqual(unwrap(b, k), plain);
  });
  it('refuses a wrong unlock key and a tampered wrap with WrongUnlockKeyError', () => {
    const k = parseUnlockKey(generateUnlockKey(randomBytes));
    const other = parseUnlockKey(generateUnlockKey(randomBytes));
    const w = wrap(plain, k, randomBytes);
    assert.throws(() => unwrap(w, other), WrongUnlockKeyError);
    const ct = Buffer.from(w.ct, 'base64');
    ct[0]! ^= 1;
    assert.throws(() => unwrap({ ...w, ct: ct.toString('base64') }, k), WrongUnlockKeyError);
    assert.throws(() => unwrap({ ...w, kek: { ...w.kek, kdf: 'none' } }, k), WrongUnlockKeyError);
  });
});

describe('wrapped key files', () => {
  it('a wrapped file needs the unlock key, holds no key bytes in the clear, and opens with the right key only', () => {
    const dir = tmp();
    const ring = KeyRing.generate(randomBytes, new Date());
    const k = parseUnlockKey(generateUnlockKey(randomBytes));
    saveKeyRing(dir, ring, { name: RAFT_KEY_FILE, unlockKey: k, random: randomBytes });
    assert.equal(isKeyFileWrapped(dir, RAFT_KEY_FILE), true);
    const text = fs.readFileSync(keyFilePath(dir, RAFT_KEY_FILE), 'utf8');
    assert.equal(text.includes(ring.active.key.toString('base64')), false, 'the key is readable in the wrapped file');
    assert.equal(text.includes(ring.active.kid), false, 'the key id is readable in the wrapped file');
    assert.equal(fs.statSync(keyFilePath(dir, RAFT_KEY_FILE)).mode & 0o777, 0o600);
    assert.throws(() => loadKeyRing(dir, { name: RAFT_KEY_FILE }), ManagerLockedError);
    assert.throws(() => loadKeyRing(dir, { name: RAFT_KEY_FILE, unlockKey: parseUnlockKey(generateUnlockKey(randomBytes)) }), WrongUnlockKeyError);
    const back = loadKeyRing(dir, { name: RAFT_KEY_FILE, unlockKey: k })!;
    assert.deepEqual(back.active.key, ring.active.key);
    // Autolock off again: rewritten unwrapped, readable without a key.
    saveKeyRing(dir, back, { name: RAFT_KEY_FILE });
    assert.equal(isKeyFileWrapped(dir, RAFT_KEY_FILE), false);
    assert.deepEqual(loadKeyRing(dir, { name: RAFT_KEY_FILE })!.active.key, ring.active.key);
  });
});
