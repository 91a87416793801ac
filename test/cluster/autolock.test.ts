// Encryption at rest on lab hosts (lab h14x: three managers, test executor): after a secret is created,
// every manager's Raft log holds the CA key and the secret's record — proven by opening a copy of the log
// with that manager's own Raft key — yet no file under any manager's state directory (raft.db, its WAL,
// snapshots, key files, certs, node.json) contains the CA key's PEM body or the secret's value, in
// plaintext or base64. The node's own TLS key (certs/node.key) is expected on disk and not looked for.
//
// Autolock (`cluster init --autolock`, `cluster unlock`) is not covered here yet: see
// docs/design/security.md, "Encryption at rest".
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { cpSync, lstatSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import zlib from 'node:zlib';
import { RAFT_KEY_FILE, loadKeyRing } from '../../manager/keys/keyfile.ts';
import { RaftCipher } from '../../manager/raft/encrypt.ts';
import { SqliteRaftStorage } from '../../manager/raft/storage-sqlite.ts';
import { ClusterLab, waitFor } from './cluster-lab.ts';
import { cleanupOnExit } from './lab.ts';

const NAME = 'h14x';
const SHOAL = join(resolve(fileURLToPath(new URL('../..', import.meta.url))), 'bin', 'shoal');
const MANAGERS = ['h1', 'h2', 'h3'];

/** Every regular file under `dir` containing one of `needles`. */
function filesContaining(dir: string, needles: Buffer[]): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    let names: string[];
    try {
      names = readdirSync(d);
    } catch {
      return;
    }
    for (const n of names) {
      const p = join(d, n);
      let st;
      try {
        st = lstatSync(p);
      } catch {
        continue;
      }
      if (st.isDirectory()) walk(p);
      else if (st.isFile()) {
        try {
          const data = readFileSync(p);
          if (needles.some((x) => data.includes(x))) out.push(p);
        } catch {
          // vanished (WAL checkpoint, snapshot pruning) between readdir and read
        }
      }
    }
  };
  walk(dir);
  return out;
}

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
      await waitFor(() => {
        const text = decryptedLog(c.stateDir(h), tmp);
        const m = /PRIVATE KEY-----(?:\\n|\n)([A-Za-z0-9+/]{48,})/.exec(text);
        if (m && !caKeyLine) caKeyLine = m[1]!;
        return m !== null && text.includes(secretName);
      }, 30_000, `${h}'s decrypted log holds the CA key and secret ${secretName}`);
    }
    assert.ok(caKeyLine.length >= 48, 'found a line of the CA key PEM body');
    const nodeKey = readFileSync(join(c.stateDir('h1'), 'certs', 'node.key'), 'utf8');
    assert.ok(!nodeKey.includes(caKeyLine), 'the needle is the CA key, not the node key');

    const needles = [caKeyLine, value, Buffer.from(value).toString('base64'), secretName].map((s) => Buffer.from(s));
    const leaks = MANAGERS.flatMap((h) => filesContaining(c.stateDir(h), needles));
    assert.deepEqual(leaks, [], 'plaintext CA key, secret value or secret record on disk');
  });
});
