// Encryption at rest on lab hosts (lab h14x: three managers, test executor): after a secret is created,
// every manager's Raft log holds the CA key and the secret's record — proven by opening a copy of the log
// with that manager's own Raft key — yet no file under any manager's state directory (raft.db, its WAL,
// snapshots, key files, certs, node.json) contains the CA key's PEM body or the secret's value, in
// plaintext or base64. The node's own TLS key (certs/node.key) is expected on disk and not looked for.
//
// Autolock: `cluster update --autolock=true` wraps every manager's key files and its TLS key (certs/
// node.key is then no PEM private key); a restarted manager comes up locked (its local /info says so,
// `node ls` shows MANAGER STATUS Locked, from its locked notice), refuses a wrong key, and with the right
// one is a Raft member again; after `unlock-key --rotate` a restart needs the new key and refuses the
// old one. Autolock off writes the node key plain again.
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { createPrivateKey, randomBytes } from 'node:crypto';
import { cpSync, lstatSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, type Stats } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import zlib from 'node:zlib';
import { parseUnlockKey } from '../../manager/keys/autolock.ts';
import { RAFT_KEY_FILE, isKeyFileWrapped, loadKeyRing } from '../../manager/keys/keyfile.ts';
import { localCall } from '../../client/context.ts';
import { RaftCipher } from '../../manager/raft/encrypt.ts';
import { SqliteRaftStorage } from '../../manager/raft/storage-sqlite.ts';
import { ClusterLab, waitFor } from '../../lab/cluster-lab.ts';
import { cleanupOnExit } from '../../lab/lab.ts';
import { filesContaining } from '../helpers/disk-grep.ts';

const NAME = 'h14x';
const SHOAL = join(resolve(fileURLToPath(new URL('../..', import.meta.url))), 'bin', 'shoal');
const MANAGERS = ['h1', 'h2', 'h3'];

/** The plaintext of a manager's log: a copy of its raft dir opened with its own Raft key. */
function decryptedLog(stateDir: string, scratch: string): string {
  const copy = mkdtempSync(join(scratch, 'raft-'));
  try {
    cpSync(join(stateDir, 'raft'), copy, { recursive: true });
    const ring = loadKeyRing(stateDir, { name: RAFT_KEY_FILE });
    assert.ok(ring, `${stateDir} has a Raft key`);
    const s = new SqliteRaftStorage(copy, { cipher: new RaftCipher(ring, randomBytes) });
    try {
      const st = s.load();
      const parts: Buffer[] = st.entries.map((e) => Buffer.from(e.data));
      if (st.snapshot) {
        const d = Buffer.from(st.snapshot.data);
        parts.push(d);
        for (const inflate of [zlib.gunzipSync, zlib.inflateSync, zlib.brotliDecompressSync]) {
          for (let off = 0; off < Math.min(d.length, 64); off++) {
            try {
              parts.push(inflate(d.subarray(off)));
              break;
            } catch {
              // not compressed at this offset
            }
          }
        }
      }
      return Buffer.concat(parts).toString('latin1');
    } finally {
      s.close();
    }
  } finally {
    rmSync(copy, { recursive: true, force: true });
  }
}

describe('encryption at rest on lab managers', { concurrency: false, timeout: 300_000 }, () => {
  let c: ClusterLab;
  let unhook: () => void = () => {};
  const tmp = mkdtempSync(join(tmpdir(), 'shoal-h14x-'));
  const secretName = `pw_${randomBytes(4).toString('hex')}`;
  const value = `s3cret-${randomBytes(12).toString('hex')}`;

  const sh = (...args: string[]) =>
    new Promise<{ code: number; out: string; err: string }>((res) => {
      execFile(SHOAL, args, { env: { ...process.env, SHOAL_CONTEXT: c.contextPath }, timeout: 90_000 }, (e, out, err) =>
        res({ code: e ? (typeof (e as { code?: unknown }).code === 'number' ? (e as { code: number }).code : 1) : 0, out: String(out), err: String(err) }),
      );
    });

  before(async () => {
    unhook = cleanupOnExit(NAME);
    c = await ClusterLab.up({ name: NAME, managers: 3, workers: 0, executor: 'test' });
  });

  after(async () => {
    await c?.down();
    unhook();
    rmSync(tmp, { recursive: true, force: true });
  });

  it('no manager state dir holds the CA key PEM or a secret value in plaintext', async () => {
    writeFileSync(join(tmp, 'pw'), value);
    const r = await sh('secret', 'create', secretName, join(tmp, 'pw'));
    assert.equal(r.code, 0, `secret create failed: ${r.err}${r.out}`);

    // Positive control: each manager's log, decrypted with its own key, has the CA key and the secret.
    let caKeyLine = '';
    for (const h of MANAGERS) {
      await waitFor(
        () => {
          const text = decryptedLog(c.stateDir(h), tmp);
          const m = /PRIVATE KEY-----(?:\\n|\n)([A-Za-z0-9+/]{48,})/.exec(text);
          if (m && !caKeyLine) caKeyLine = m[1]!;
          return m !== null && text.includes(secretName);
        },
        30_000,
        `${h}'s decrypted log holds the CA key and secret ${secretName}`,
      );
    }
    assert.ok(caKeyLine.length >= 48, 'found a line of the CA key PEM body');
    const nodeKey = readFileSync(join(c.stateDir('h1'), 'certs', 'node.key'), 'utf8');
    assert.ok(!nodeKey.includes(caKeyLine), 'the needle is the CA key, not the node key');

    const needles = [caKeyLine, value, Buffer.from(value).toString('base64'), secretName].map((s) => Buffer.from(s));
    const leaks = MANAGERS.flatMap((h) => filesContaining(c.stateDir(h), needles));
    assert.deepEqual(leaks, [], 'plaintext CA key, secret value or secret record on disk');
  });

  it('autolock: a restarted manager is locked until unlocked with the right key; rotation', async () => {
    const on = await sh('cluster', 'update', '--autolock=true');
    assert.equal(on.code, 0, `cluster update --autolock=true failed: ${on.err}${on.out}`);
    const key1 = /SHOALKEY-1-[A-Za-z0-9_-]+/.exec(on.out)?.[0];
    assert.ok(key1, `the unlock key is printed: ${on.out}`);
    const opensWith = (h: string, key: string) => {
      try {
        return (
          isKeyFileWrapped(c.stateDir(h), RAFT_KEY_FILE) &&
          isKeyFileWrapped(c.stateDir(h)) &&
          loadKeyRing(c.stateDir(h), { name: RAFT_KEY_FILE, unlockKey: parseUnlockKey(key) }) !== null
        );
      } catch {
        return false;
      }
    };
    const nodeKeyIsPem = (h: string) => {
      try {
        createPrivateKey(readFileSync(join(c.stateDir(h), 'certs', 'node.key'), 'utf8'));
        return true;
      } catch {
        return false;
      }
    };
    for (const h of MANAGERS) await waitFor(() => opensWith(h, key1), 30_000, `${h}'s key files wrapped with the unlock key`);
    for (const h of MANAGERS) await waitFor(() => !nodeKeyIsPem(h), 30_000, `${h}'s TLS key wrapped`);

    const unlock = (h: string, key: string) =>
      new Promise<{ code: number; out: string }>((res) => {
        const p = spawn(SHOAL, ['cluster', 'unlock', '--state-dir', c.stateDir(h)], { stdio: ['pipe', 'pipe', 'pipe'] });
        let out = '';
        p.stdout.on('data', (d) => (out += String(d)));
        p.stderr.on('data', (d) => (out += String(d)));
        p.on('close', (code) => res({ code: code ?? 1, out }));
        p.stdin.end(`${key}\n`);
      });
    const info = (h: string) => localCall<any>(c.stateDir(h), 'GET', '/info', undefined, 5000);
    const h3Id = async () => (await c.nodes()).find((n: any) => n.description.hostname === 'h3').id as string;
    const reachability = async () => (await c.nodes()).find((n: any) => n.description.hostname === 'h3')?.managerStatus?.reachability;

    const restartLocked = async () => {
      await c.restartDaemon('h3', { force: true });
      assert.equal((await info('h3')).state, 'locked', 'a restarted autolocked manager is locked');
      assert.equal(nodeKeyIsPem('h3'), false, "a locked manager's TLS key on disk is not a PEM private key");
      await waitFor(async () => (await reachability().catch(() => null)) === 'locked', 30_000, 'node ls shows the manager locked');
      const ls = await sh('node', 'ls');
      // The row whose HOSTNAME column is h3 (a random node id may itself contain "h3").
      const row = ls.out.split('\n').find((l) => l.split(/\s+/)[1] === 'h3') ?? '';
      assert.match(row, /\bLocked\b/, ls.out);
    };
    const unlocked = async () => {
      await waitFor(
        async () => (await info('h3').catch(() => null))?.raft?.role === 'follower' || (await info('h3').catch(() => null))?.raft?.role === 'leader',
        30_000,
        'h3 a Raft member again',
      );
      await waitFor(async () => (await reachability().catch(() => null)) === 'reachable', 30_000, 'node ls shows h3 reachable again');
    };

    await h3Id();
    await restartLocked();
    const wrong = await unlock('h3', `SHOALKEY-1-${Buffer.alloc(32, 7).toString('base64url')}`);
    assert.notEqual(wrong.code, 0, 'a wrong unlock key is refused');
    assert.match(wrong.out, /does not open/);
    assert.equal((await info('h3')).state, 'locked', 'still locked after a wrong key');
    const right = await unlock('h3', key1);
    assert.equal(right.code, 0, `unlock with the right key failed: ${right.out}`);
    await unlocked();
    assert.ok(opensWith('h3', key1), 'an unlocked manager keeps its key files wrapped (never unwrapped while catching up)');

    const rot = await sh('cluster', 'unlock-key', '--rotate', '-q');
    assert.equal(rot.code, 0, `unlock-key --rotate failed: ${rot.err}`);
    const key2 = rot.out.trim();
    assert.notEqual(key2, key1);
    for (const h of MANAGERS) await waitFor(() => opensWith(h, key2), 30_000, `${h}'s key files rewrapped with the new unlock key`);
    await restartLocked();
    const old = await unlock('h3', key1);
    assert.notEqual(old.code, 0, 'the old unlock key is refused after rotation');
    const fresh = await unlock('h3', key2);
    assert.equal(fresh.code, 0, `unlock with the new key failed: ${fresh.out}`);
    await unlocked();
    assert.ok(opensWith('h3', key2), 'still wrapped with the new key after unlocking');
    assert.equal(nodeKeyIsPem('h3'), false, 'the TLS key stays wrapped while the manager runs');

    const off = await sh('cluster', 'update', '--autolock=false');
    assert.equal(off.code, 0, `cluster update --autolock=false failed: ${off.err}${off.out}`);
    for (const h of MANAGERS) await waitFor(() => nodeKeyIsPem(h), 30_000, `${h}'s TLS key written plain again`);
  });
});
