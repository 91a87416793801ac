// The key file: where a manager keeps its data-encryption keys, <state-dir>/keys/dek.json (file 0600
// in a 0700 directory), beside — never inside — the Raft log and snapshots. Two shapes, so that autolock
// (issue 15) can wrap the keys with a key-encryption key without another format change:
//
//   { "version": 1, "wrapped": false, "keys": [{ "kid", "key" (base64), "createdAt" }, …] }
//   { "version": 1, "wrapped": true,  "kek": { "kdf", "salt", "nonce" }, "ct": base64 }
//
// The wrapped shape is written when autolock is on (autolock.ts: ct is the unwrapped JSON sealed under a
// KEK derived from the unlock key); reading it needs the unlock key, else ManagerLockedError. The same
// format holds the manager's own Raft key ring (raft.json, manager/raft/encrypt.ts). See
// docs/design/secrets.md and docs/design/security.md for what this does and does not protect.
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { atomicWrite } from './atomic-write.ts';
import { ManagerLockedError, unwrap, wrap } from './autolock.ts';
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

/** `name`: dek.json (the cluster's data keys) or RAFT_KEY_FILE (this manager's own Raft key). */
export function keyFilePath(stateDir: string, name = 'dek.json'): string {
  return join(keyDir(stateDir), name);
}

/** This manager's Raft log/snapshot key ring (never shared with other managers). */
export const RAFT_KEY_FILE = 'raft.json';

/** Whether the key file exists in the wrapped (autolocked) shape. */
export function isKeyFileWrapped(stateDir: string, name = 'dek.json'): boolean {
  const p = keyFilePath(stateDir, name);
  if (!existsSync(p)) return false;
  return (JSON.parse(readFileSync(p, 'utf8')) as { wrapped?: unknown }).wrapped === true;
}

export function encodeKeyRing(ring: KeyRing): KeyFileUnwrapped {
  return { version: KEY_FILE_VERSION, wrapped: false, keys: ring.keys.map((k) => ({ kid: k.kid, key: k.key.toString('base64'), createdAt: k.createdAt })) };
}

/** Parses a key file's (or the endpoint's) JSON; throws SealError naming what is wrong. */
export function decodeKeyRing(raw: unknown): KeyRing {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new SealError('key file: not a JSON object');
  const o = raw as Record<string, unknown>;
  if (o['version'] !== KEY_FILE_VERSION)
    throw new SealError(`key file: version ${JSON.stringify(o['version'])} is not supported (expected ${KEY_FILE_VERSION})`);
  if (o['wrapped'] === true) throw new SealError('key file: the keys are wrapped by a key-encryption key (autolock), which this version cannot unlock');
  if (o['wrapped'] !== false || !Array.isArray(o['keys'])) throw new SealError('key file: expected { wrapped: false, keys: [...] }');
  const keys: DataKey[] = (o['keys'] as unknown[]).map((k, i) => {
    const e = k as Record<string, unknown>;
    if (typeof e?.['kid'] !== 'string' || typeof e['key'] !== 'string' || typeof e['createdAt'] !== 'string')
      throw new SealError(`key file: keys[${i}] needs kid, key and createdAt strings`);
    const key = Buffer.from(e['key'], 'base64');
    if (key.length !== KEY_BYTES) throw new SealError(`key file: keys[${i}] is ${key.length} bytes, not ${KEY_BYTES}`);
    return { kid: e['kid'], key, createdAt: e['createdAt'] };
  });
  return new KeyRing(keys);
}

/** The manager's key ring, or null when it has none yet. */
export function loadKeyRing(stateDir: string, opts?: { name?: string; unlockKey?: Buffer | null }): KeyRing | null {
  const p = keyFilePath(stateDir, opts?.name);
  if (!existsSync(p)) return null;
  const raw = JSON.parse(readFileSync(p, 'utf8')) as KeyFile;
  if (raw?.wrapped === true) {
    if (!opts?.unlockKey) throw new ManagerLockedError(`${p} is wrapped by the unlock key (autolock): unlock the manager with \`shoal cluster unlock\``);
    return decodeKeyRing(JSON.parse(unwrap(raw, opts.unlockKey).toString('utf8')) as unknown);
  }
  return decodeKeyRing(raw);
}

/** Writes the key file atomically (0600 in a 0700 directory, fsynced before the rename). */
/** With `unlockKey` (autolock on) the file is written wrapped; `random` is then required. */
export function saveKeyRing(stateDir: string, ring: KeyRing, opts?: { name?: string; unlockKey?: Buffer | null; random?: (n: number) => Buffer }): void {
  const dir = keyDir(stateDir);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  const p = keyFilePath(stateDir, opts?.name);
  let body: KeyFile = encodeKeyRing(ring);
  if (opts?.unlockKey) {
    if (!opts.random) throw new SealError('wrapping a key file needs a random source');
    body = { version: KEY_FILE_VERSION, wrapped: true, ...wrap(Buffer.from(JSON.stringify(body), 'utf8'), opts.unlockKey, opts.random) };
  }
  atomicWrite(p, JSON.stringify(body), 0o600);
}

/** Forgets the keys (the node left the cluster or stopped being a manager). */
export function removeKeyRing(stateDir: string): void {
  rmSync(keyDir(stateDir), { recursive: true, force: true });
}
