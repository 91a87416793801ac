// The node's TLS private key on disk (<state-dir>/certs/node.key) under autolock (issue 15). With
// autolock on, a manager's key file holds the PEM wrapped by the unlock key (autolock.ts: HKDF → KEK,
// AES-256-GCM), so a stolen disk yields neither the Raft data (keyfile.ts) nor the node's identity: the
// certificate is public, its key is not. Unlocking decrypts it in memory only; autolock off rewrites it
// plain; a rotated unlock key rewraps it. A worker's key is never wrapped (workers have no unlock key).
//
//   plain:   -----BEGIN PRIVATE KEY----- …                       (what every TLS tool reads)
//   wrapped: { "version": 1, "wrapped": true, "kind": "node-key", "kek": {…}, "ct": base64 }
import { existsSync, readFileSync } from 'node:fs';
import { atomicWrite } from './atomic-write.ts';
import { ManagerLockedError, unwrap, wrap, type WrapParams } from './autolock.ts';
import { SealError } from './keyring.ts';

interface WrappedNodeKey {
  version: 1;
  wrapped: true;
  kind: 'node-key';
  kek: WrapParams;
  ct: string;
}

function parseWrapped(text: string, path: string): WrappedNodeKey | null {
  if (!text.trimStart().startsWith('{')) return null;
  let o: Partial<WrappedNodeKey>;
  try {
    o = JSON.parse(text) as Partial<WrappedNodeKey>;
  } catch {
    throw new SealError(`${path}: neither a PEM key nor a wrapped key file`);
  }
  if (o.version !== 1 || o.wrapped !== true || o.kind !== 'node-key' || !o.kek || typeof o.ct !== 'string')
    throw new SealError(`${path}: not a wrapped node key (expected version 1, kind node-key)`);
  return o as WrappedNodeKey;
}

/** Whether the key file is wrapped (autolock). False when it does not exist. */
export function isNodeKeyWrapped(path: string): boolean {
  return existsSync(path) && parseWrapped(readFileSync(path, 'utf8'), path) !== null;
}

/** The PEM key: read as is, or unwrapped with `unlockKey` (ManagerLockedError without one). */
export function readNodeKey(path: string, unlockKey: Buffer | null): string {
  const text = readFileSync(path, 'utf8');
  const w = parseWrapped(text, path);
  if (!w) return text;
  if (!unlockKey) throw new ManagerLockedError(`${path} is wrapped by the unlock key (autolock): unlock the manager with \`shoal cluster unlock\``);
  return unwrap(w, unlockKey).toString('utf8');
}

/** Writes the key atomically (0600, fsynced before the rename): wrapped with `unlockKey`, plain with null. */
export function writeNodeKey(path: string, pem: string, unlockKey: Buffer | null, random: (n: number) => Buffer): void {
  const body = unlockKey
    ? JSON.stringify({ version: 1, wrapped: true, kind: 'node-key', ...wrap(Buffer.from(pem, 'utf8'), unlockKey, random) } satisfies WrappedNodeKey)
    : pem;
  atomicWrite(path, body, 0o600);
}

/** Autolock turned on, off, or its key rotated: the key file re-encoded from `from` to `to`. */
export function rewrapNodeKey(path: string, from: Buffer | null, to: Buffer | null, random: (n: number) => Buffer): void {
  if (!existsSync(path)) return;
  writeNodeKey(path, readNodeKey(path, from), to, random);
}
