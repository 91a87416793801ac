// The node's TLS key under autolock (manager/keys/node-key.ts): wrapped on disk it is not a PEM key and
// opens only with the unlock key; unwrapping, rewrapping under a rotated key, and turning autolock off.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createPrivateKey, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateKeyPem } from '../../manager/ca/pki.ts';
import { ManagerLockedError, WrongUnlockKeyError, generateUnlockKey, parseUnlockKey } from '../../manager/keys/autolock.ts';
import { isNodeKeyWrapped, readNodeKey, rewrapNodeKey, writeNodeKey } from '../../manager/keys/node-key.ts';
import { SealError } from '../../manager/keys/keyring.ts';

let dir: string;
let pem: string;
before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'shoal-nodekey-'));
  pem = await generateKeyPem();
});
after(() => rmSync(dir, { recursive: true, force: true }));

const k1 = parseUnlockKey(generateUnlockKey(randomBytes));
const k2 = parseUnlockKey(generateUnlockKey(randomBytes));

describe('node key under autolock', () => {
  test('plain: written and read as PEM, 0600', () => {
    const p = join(dir, 'plain.key');
    writeNodeKey(p, pem, null, randomBytes);
    assert.equal(readFileSync(p, 'utf8'), pem);
    assert.equal(statSync(p).mode & 0o777, 0o600);
    assert.equal(isNodeKeyWrapped(p), false);
    assert.equal(readNodeKey(p, null), pem);
    assert.equal(readNodeKey(p, k1), pem, 'a plain key reads the same with an unlock key');
  });

  test('wrapped: no PEM on disk, no key material, opens only with the unlock key', () => {
    const p = join(dir, 'wrapped.key');
    writeNodeKey(p, pem, k1, randomBytes);
    const disk = readFileSync(p, 'utf8');
    assert.doesNotMatch(disk, /BEGIN|PRIVATE KEY/);
    assert.throws(() => createPrivateKey(disk));
    const body = pem.split('\n').slice(1, -2).join('');
    assert.ok(!disk.includes(body.slice(0, 40)));
    assert.equal(isNodeKeyWrapped(p), true);
    assert.throws(() => readNodeKey(p, null), ManagerLockedError);
    assert.throws(() => readNodeKey(p, k2), WrongUnlockKeyError);
    assert.equal(readNodeKey(p, k1), pem);
  });

  test('rotation rewraps under the new key; autolock off writes it plain', () => {
    const p = join(dir, 'rot.key');
    writeNodeKey(p, pem, k1, randomBytes);
    rewrapNodeKey(p, k1, k2, randomBytes);
    assert.throws(() => readNodeKey(p, k1), WrongUnlockKeyError);
    assert.equal(readNodeKey(p, k2), pem);
    rewrapNodeKey(p, k2, null, randomBytes);
    assert.equal(readFileSync(p, 'utf8'), pem);
    // Rewrapping with the wrong current key changes nothing.
    writeNodeKey(p, pem, k1, randomBytes);
    const before = readFileSync(p, 'utf8');
    assert.throws(() => rewrapNodeKey(p, k2, null, randomBytes), WrongUnlockKeyError);
    assert.equal(readFileSync(p, 'utf8'), before);
    rewrapNodeKey(join(dir, 'absent.key'), k1, k2, randomBytes); // nothing to do
  });

  test('a tampered or foreign file is refused with a reason', () => {
    const p = join(dir, 'bad.key');
    writeNodeKey(p, pem, k1, randomBytes);
    const w = JSON.parse(readFileSync(p, 'utf8')) as { ct: string };
    const ct = Buffer.from(w.ct, 'base64');
    ct[0] = (ct[0] ?? 0) ^ 1;
    writeFileSync(p, JSON.stringify({ ...w, ct: ct.toString('base64') }));
    assert.throws(() => readNodeKey(p, k1), WrongUnlockKeyError);
    writeFileSync(p, JSON.stringify({ version: 1, wrapped: false, keys: [] }));
    assert.throws(
      () => readNodeKey(p, k1),
      (e: unknown) => e instanceof SealError && /not a wrapped node key/.test(e.message),
    );
    writeFileSync(p, '{ not json');
    assert.throws(
      () => readNodeKey(p, k1),
      (e: unknown) => e instanceof SealError && /neither a PEM key/.test(e.message),
    );
  });
});
