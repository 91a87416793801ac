// The key file: where a manager keeps its data-encryption keys, <state-dir>/keys/dek.json (file 0600
// in a 0700 directory), beside — never inside — the Raft log and snapshots. Two shapes, so that autolock
// (issue 15) can wrap the keys with a key-encryption key without another format change:
//
//   { "version": 1, "wrapped": false, "keys": [{ "kid", "key" (base64), "createdAt" }, …] }
//   { "version": 1, "wrapped": true,  "kek": { "kdf", "salt", "nonce" }, "ct": base64 }   (not written yet)
//
// Until autolock exists, only the unwrapped shape is written, and a wrapped file is refused with a
// message saying why. See docs/design/secrets.md for what this does and does not protect.
import { chmodSync, closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { KEY_BYTES, KeyRing, SealError, type DataKey } from './keyring.ts';

export const KEY_FILE_VERSION = 1;

/** The JSON shape of an unwrapped key file (also what GET /keys/v1/dek answers). */
export interface KeyFileUnwrapped {
  version: 1;
  wrapped: false;
  keys: { kid: string; key: string; createdAt: string }[];
}

/** Reserved for autolock: the keys encrypted under a key-encryption key derived from the unlock key. */
export interface KeyFileWrapped {
  version: 1;
  wrapped: true;
  kek: { kdf: string; salt: string; nonce: string };
  ct: string;
}

export type KeyFile = KeyFileUnwrapped | KeyFileWrapped;

export function keyDir(stateDir: string): string {
  return join(stateDir, 'keys');
}

export function keyFilePath(stateDir: string): string {
  return join(keyDir(stateDir), 'dek.json');
}

export function encodeKeyRing(ring: KeyRing): KeyFileUnwrapped {
  return { version: KEY_FILE_VERSION, wrapped: false, keys: ring.keys.map((k) => ({ kid: k.kid, key: k.key.toString('base64'), createdAt: k.createdAt })) };
}

/** Parses a key file's (or the endpoint's) JSON; throws SealError naming what is wrong. */
export function decodeKeyRing(raw: unknown): KeyRing {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new SealError('key file: not a JSON object');
  const o = raw as Record<string, unknown>;
  if (o['version'] !== KEY_FILE_VERSION) throw new SealError(`key file: version ${JSON.stringify(o['version'])} is not supported (expected ${KEY_FILE_VERSION})`);
  if (o['wrapped'] === true) throw new SealError('key file: the keys are wrapped by a key-encryption key (autolock), which this version cannot unlock');
  if (o['wrapped'] !== false || !Array.isArray(o['keys'])) throw new SealError('key file: expected { wrapped: false, keys: [...] }');
  const keys: DataKey[] = (o['keys'] as unknown[]).map((k, i) => {
    const e = k as Record<string, unknown>;
    if (typeof e?.['kid'] !== 'string' || typeof e['key'] !== 'string' || typeof e['createdAt'] !== 'string') throw new SealError(`key file: keys[${i}] needs kid, key and createdAt strings`);
    const key = Buffer.from(e['key'], 'base64');
    if (key.length !== KEY_BYTES) throw new SealError(`key file: keys[${i}] is ${key.length} bytes, not ${KEY_BYTES}`);
    return { kid: e['kid'], key, createdAt: e['createdAt'] };
  });
  return new KeyRing(keys);
}

/** The manager's key ring, or null when it has none yet. */
export function loadKeyRing(stateDir: string): KeyRing | null {
  const p = keyFilePath(stateDir);
  if (!existsSync(p)) return null;
  return decodeKeyRing(JSON.parse(readFileSync(p, 'utf8')) as unknown);
}

/** Writes the key file atomically (0600 in a 0700 directory, fsynced before the rename). */
export function saveKeyRing(stateDir: string, ring: KeyRing): void {
  const dir = keyDir(stateDir);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  const p = keyFilePath(stateDir);
  const tmp = `${p}.tmp-${process.pid}`;
  writeFileSync(tmp, JSON.stringify(encodeKeyRing(ring)), { mode: 0o600 });
  const fd = openSync(tmp, 'r');
  fsyncSync(fd);
  closeSync(fd);
  renameSync(tmp, p);
}

/** Forgets the keys (the node left the cluster or stopped being a manager). */
export function removeKeyRing(stateDir: string): void {
  rmSync(keyDir(stateDir), { recursive: true, force: true });
}
