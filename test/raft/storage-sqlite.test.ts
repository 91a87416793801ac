import { after, afterEach, describe, test } from 'node:test';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { ENCRYPTED_TYPE_BIT, MemoryRaftStorage, SqliteRaftStorage, entryChecksum } from '../../manager/raft/storage-sqlite.ts';
import { RaftCipher } from '../../manager/raft/encrypt.ts';
import { KeyRing } from '../../manager/keys/keyring.ts';
import { CorruptLogError, StorageError } from '../../manager/raft/storage.ts';
import type { RaftStorage } from '../../manager/raft/storage.ts';
import type { Entry, Snapshot } from '../../manager/raft/types.ts';

// ---------------------------------------------------------------------------------------------------------
// Fixtures: every temp dir, open storage and mount is released in hooks, even when a test fails.

const dirs: string[] = [];
const mounts: string[] = [];
const opened: Array<{ close(): void }> = [];

function tmpDir(): string {
  const d = fs.mkdtempSync(os.tmpdir() + '/shoal-raft-');
  dirs.push(d);
  return d;
}

function open(dir: string, opts?: { snapshotsKept?: number; cipher?: RaftCipher }): SqliteRaftStorage {
  const s = new SqliteRaftStorage(dir, opts);
  opened.push(s);
  return s;
}

function closeAll(): void {
  for (const s of opened.splice(0)) {
    try {
      s.close();
    } catch {
      // best effort
    }
  }
}

function unmount(dir: string): void {
  try {
    execFileSync('umount', [dir], { stdio: 'pipe' });
  } catch {
    try {
      execFileSync('umount', ['-l', dir], { stdio: 'pipe' });
    } catch {
      // not mounted (any more)
    }
  }
  const i = mounts.indexOf(dir);
  if (i >= 0) mounts.splice(i, 1);
}

afterEach(() => {
  closeAll();
  for (const m of [...mounts]) unmount(m);
});

after(() => {
  closeAll();
  for (const m of [...mounts]) unmount(m);
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

function payload(index: number, term: number, size = 16): Uint8Array {
  const b = new Uint8Array(size);
  for (let i = 0; i < size; i++) b[i] = (index * 31 + term * 7 + i) & 0xff;
  return b;
}

function ents(from: number, to: number, term: number, size = 16): Entry[] {
  const out: Entry[] = [];
  for (let i = from; i <= to; i++) out.push({ index: i, term, type: 'normal', data: payload(i, term, size) });
  return out;
}

function snap(index: number, term: number, size = 64): Snapshot {
  return {
    meta: { index, term, conf: { voters: ['a', 'b', 'c'], learners: ['d'], removed: ['x'] } },
    data: payload(index, term, size),
  };
}

function indices(es: Entry[]): number[] {
  return es.map((e) => e.index);
}

function range(lo: number, hi: number): number[] {
  const out: number[] = [];
  for (let i = lo; i <= hi; i++) out.push(i);
  return out;
}

function snapFiles(dir: string): string[] {
  return fs.readdirSync(path.join(dir, 'snapshots')).sort();
}

/** Opens the database behind the storage's back (the storage must be closed: it holds an exclusive lock). */
function raw(dir: string, fn: (db: Database.Database) => void): void {
  const db = new Database(path.join(dir, 'raft.db'));
  try {
    fn(db);
  } finally {
    db.close();
  }
}

function tryMountTmpfs(t: TestContext, size: string): string | null {
  if (process.getuid?.() !== 0) {
    t.skip('needs root to mount tmpfs');
    return null;
  }
  const d = tmpDir();
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', d], { stdio: 'pipe' });
  } catch (err) {
    t.skip(`cannot mount tmpfs: ${String(err)}`);
    return null;
  }
  mounts.push(d);
  return d;
}

// ---------------------------------------------------------------------------------------------------------
// Semantics shared by both implementations. `reopen` simulates a restart (identity for the memory one).

type Handle = {
  s: RaftStorage & { entriesFrom(lo: number, hi: number): Entry[]; firstIndex(): number; lastIndex(): number };
  reopen(): Handle;
};

const impls: Array<{ name: string; make(): Handle }> = [
  {
    name: 'SqliteRaftStorage',
    make() {
      const dir = tmpDir();
      const h = (s: SqliteRaftStorage): Handle => ({
        s,
        reopen() {
          s.close();
          return h(open(dir));
        },
      });
      return h(open(dir));
    },
  },
  {
    name: 'MemoryRaftStorage',
    make() {
      const s = new MemoryRaftStorage();
      const h: Handle = { s, reopen: () => h };
      return h;
    },
  },
];

for (const impl of impls) {
  describe(`${impl.name} semantics`, () => {
    test('fresh storage loads empty state', () => {
      const { s } = impl.make();
      assert.deepEqual(s.load(), { hardState: { term: 0, vote: null, commit: 0 }, snapshot: null, entries: [] });
    });

    test('round trip of hard state and entries across close/reopen', () => {
      let h = impl.make();
      const es: Entry[] = [
        { index: 1, term: 1, type: 'normal', data: new Uint8Array(0) },
        { index: 2, term: 1, type: 'conf', data: new TextEncoder().encode(JSON.stringify({ type: 'addVoter', node: 'b' })) },
        ...ents(3, 5, 2, 300),
      ];
      h.s.save({ hardState: { term: 2, vote: 'a', commit: 0 }, entries: es }, true);
      // A commit-only change without fsync must still be visible after a clean restart.
      h.s.save({ hardState: { term: 2, vote: 'a', commit: 4 }, entries: [] }, false);
      h = h.reopen();
      const st = h.s.load();
      assert.deepEqual(st.hardState, { term: 2, vote: 'a', commit: 4 });
      assert.equal(st.snapshot, null);
      assert.deepEqual(st.entries, es);
      for (const e of st.entries) assert.equal(Object.getPrototypeOf(e.data), Uint8Array.prototype);
      // Later appends without a hard state keep the stored one.
      h.s.save({ entries: ents(6, 7, 2) }, true);
      assert.deepEqual(indices(h.reopen().s.load().entries), range(1, 7));
    });

    test('input buffers are not aliased', () => {
      const { s } = impl.make();
      const es = ents(1, 2, 1);
      s.save({ entries: es }, true);
      es[0]!.data[0] = 99;
      assert.deepEqual(s.load().entries[0]!.data, payload(1, 1));
    });

    test('truncation on conflict replaces the suffix', () => {
      let h = impl.make();
      h.s.save({ hardState: { term: 1, vote: 'a', commit: 3 }, entries: ents(1, 10, 1) }, true);
      h.s.save({ hardState: { term: 2, vote: 'b', commit: 3 }, entries: ents(6, 8, 2) }, true);
      h = h.reopen();
      const st = h.s.load();
      assert.deepEqual(st.entries, [...ents(1, 5, 1), ...ents(6, 8, 2)]);
      assert.equal(h.s.lastIndex(), 8);
    });

    test('invalid batches are rejected before writing and do not poison', () => {
      const { s } = impl.make();
      s.save({ hardState: { term: 2, vote: null, commit: 5 }, entries: ents(1, 10, 2) }, true);
      const before = s.load();
      assert.throws(() => s.save({ entries: ents(12, 13, 2) }, true), /invalid batch: entry 12 would leave a gap after last index 10/);
      assert.throws(() => s.save({ entries: ents(5, 6, 3) }, true), /entry 5 would overwrite committed entry 5 \(commit 5\)/);
      assert.throws(() => s.save({ entries: ents(3, 4, 2) }, true), /entry 3 would overwrite committed entry 5/);
      assert.throws(() => s.save({ entries: ents(11, 11, 1) }, true), /term 1 below term 2 of entry 10/);
      assert.throws(() => s.save({ hardState: { term: 2, vote: null, commit: 11 }, entries: [] }, true), /commit 11 beyond last index 10/);
      assert.throws(() => s.save({ hardState: { term: 1, vote: null, commit: 5 }, entries: [] }, true), /hard state term 1 below stored term 2/);
      assert.throws(() => s.save({ entries: [...ents(11, 11, 2), ...ents(13, 13, 2)] }, true), /entries not contiguous: position 1 has index 13, expected 12/);
      s.save({ entries: ents(11, 11, 2) }, true);
      // Resending committed entries unchanged (same terms) is harmless and accepted.
      s.save({ entries: ents(4, 11, 2) }, true);
      // Not poisoned: valid writes still go through, and nothing from the rejected ones was applied.
      assert.deepEqual(s.load().entries, [...before.entries, ...ents(11, 11, 2)]);
      s.save({ entries: ents(12, 12, 3) }, true);
      assert.equal(s.load().entries.length, 12);
    });

    test('received snapshot beyond the log replaces the whole log', () => {
      let h = impl.make();
      h.s.save({ hardState: { term: 1, vote: 'a', commit: 10 }, entries: ents(1, 10, 1) }, true);
      const sn = snap(20, 3, 1000);
      h.s.save({ hardState: { term: 3, vote: null, commit: 20 }, entries: [], snapshot: sn }, true);
      let st = h.s.load();
      assert.deepEqual(st.snapshot, sn);
      assert.deepEqual(st.entries, []);
      assert.throws(() => h.s.entriesFrom(10, 11), RangeError);
      h.s.save({ entries: ents(21, 25, 3) }, true);
      h = h.reopen();
      st = h.s.load();
      assert.deepEqual(st.hardState, { term: 3, vote: null, commit: 20 });
      assert.deepEqual(st.snapshot, sn);
      assert.deepEqual(st.entries, ents(21, 25, 3));
      assert.equal(h.s.firstIndex(), 21);
      // An older snapshot is refused.
      assert.throws(() => h.s.save({ entries: [], snapshot: snap(15, 3) }, true), /older than the current snapshot 20/);
    });

    test('received snapshot matching the log keeps the entries after it', () => {
      const { s } = impl.make();
      s.save({ hardState: { term: 2, vote: null, commit: 3 }, entries: [...ents(1, 4, 1), ...ents(5, 10, 2)] }, true);
      s.save({ hardState: { term: 2, vote: null, commit: 6 }, entries: [], snapshot: snap(6, 2) }, true);
      const st = s.load();
      assert.equal(st.snapshot?.meta.index, 6);
      assert.deepEqual(st.entries, ents(7, 10, 2));
      assert.equal(s.firstIndex(), 7); // no tail kept for a received snapshot
    });

    test('received snapshot conflicting with the log discards all of it', () => {
      const { s } = impl.make();
      s.save({ hardState: { term: 2, vote: null, commit: 3 }, entries: ents(1, 10, 1) }, true);
      s.save({ hardState: { term: 2, vote: null, commit: 6 }, entries: ents(7, 8, 2), snapshot: snap(6, 2) }, true);
      const st = s.load();
      assert.equal(st.snapshot?.meta.term, 2);
      assert.deepEqual(st.entries, ents(7, 8, 2));
    });

    test('compact keeps a tail readable via entriesFrom; load starts after the snapshot', () => {
      let h = impl.make();
      h.s.save({ hardState: { term: 1, vote: 'a', commit: 100 }, entries: ents(1, 100, 1) }, true);
      h.s.compact(snap(80, 1), 30);
      h = h.reopen();
      const st = h.s.load();
      assert.deepEqual(st.snapshot, snap(80, 1));
      assert.deepEqual(indices(st.entries), range(81, 100));
      assert.equal(h.s.firstIndex(), 51);
      assert.deepEqual(h.s.entriesFrom(51, 81), ents(51, 80, 1));
      assert.deepEqual(h.s.entriesFrom(95, 101), ents(95, 100, 1));
      assert.deepEqual(h.s.entriesFrom(60, 60), []);
      assert.throws(() => h.s.entriesFrom(50, 60), /50 is compacted/);
      assert.throws(() => h.s.entriesFrom(90, 102), /101 is beyond the last index 100/);
      // Appending after compaction continues the log.
      h.s.save({ hardState: { term: 2, vote: null, commit: 100 }, entries: ents(101, 102, 2) }, true);
      // Compaction is validated against the log.
      assert.throws(() => h.s.compact(snap(90, 2), 0), /differs from log term 1/);
      assert.throws(() => h.s.compact(snap(200, 2), 0), /not in the log/);
      // An older local snapshot (a newer one is already stored) is a no-op, like RaftCore.compact.
      h.s.compact(snap(70, 1), 0);
      assert.equal(h.s.load().snapshot?.meta.index, 80);
      assert.equal(h.s.firstIndex(), 51);
      h.s.compact(snap(100, 1), 0);
      assert.equal(h.s.firstIndex(), 101);
      assert.deepEqual(h.reopen().s.load().entries, ents(101, 102, 2));
    });
  });
}

// ---------------------------------------------------------------------------------------------------------
// SQLite-specific: files, corruption, failures, throughput.

describe('SqliteRaftStorage files and recovery', () => {
  test('creates the directory and holds an exclusive lock on it', () => {
    const dir = path.join(tmpDir(), 'nested', 'node-1');
    const s = open(dir);
    assert.ok(fs.statSync(path.join(dir, 'snapshots')).isDirectory());
    assert.throws(() => open(dir), StorageError);
    s.close();
    open(dir).close();
  });

  test('snapshot file rotation keeps the newest 2 (configurable), removes temp and orphan files on open', () => {
    const dir = tmpDir();
    let s = open(dir);
    s.save({ hardState: { term: 1, vote: null, commit: 50 }, entries: ents(1, 50, 1) }, true);
    for (const i of [10, 20, 30, 40]) s.compact(snap(i, 1), 5);
    assert.deepEqual(snapFiles(dir), ['30-1.snap', '40-1.snap']);
    s.close();

    // Leftovers of a crash: a temp file, and a renamed file whose commit never happened.
    fs.writeFileSync(path.join(dir, 'snapshots', '45-1.snap.tmp'), 'partial');
    fs.copyFileSync(path.join(dir, 'snapshots', '40-1.snap'), path.join(dir, 'snapshots', '45-1.snap'));
    fs.writeFileSync(path.join(dir, 'snapshots', 'README'), 'unknown files are left alone');
    s = open(dir);
    assert.deepEqual(snapFiles(dir), ['30-1.snap', '40-1.snap', 'README']);
    assert.equal(s.load().snapshot?.meta.index, 40);
    s.close();

    s = open(dir, { snapshotsKept: 3 });
    s.compact(snap(45, 1), 0);
    s.compact(snap(50, 1), 0);
    assert.deepEqual(snapFiles(dir), ['40-1.snap', '45-1.snap', '50-1.snap', 'README']);
    // Compacting again at the current snapshot keeps its file untouched.
    const before = fs.statSync(path.join(dir, 'snapshots', '50-1.snap')).ino;
    s.compact({ ...snap(50, 1), data: new Uint8Array([1, 2, 3]) }, 0);
    assert.equal(fs.statSync(path.join(dir, 'snapshots', '50-1.snap')).ino, before);
    assert.deepEqual(s.load().snapshot, snap(50, 1));
  });

  test('flipped byte in an entry is reported with its index', () => {
    const dir = tmpDir();
    const s = open(dir);
    s.save({ hardState: { term: 1, vote: null, commit: 10 }, entries: ents(1, 10, 1) }, true);
    s.close();
    raw(dir, (db) => {
      const data = db.prepare('SELECT data FROM entries WHERE idx = 7').pluck().get() as Buffer;
      data[3]! ^= 0x01;
      db.prepare('UPDATE entries SET data = ? WHERE idx = 7').run(data);
    });
    const r = open(dir);
    assert.throws(
      () => r.load(),
      (e: unknown) => e instanceof CorruptLogError && /^log entry 7: checksum mismatch$/.test(e.message),
    );
    assert.throws(() => r.entriesFrom(5, 9), /log entry 7: checksum mismatch/);
  });

  test('a changed term is caught by the checksum too', () => {
    const dir = tmpDir();
    open(dir).save({ entries: ents(1, 5, 2) }, true);
    closeAll();
    raw(dir, (db) => db.prepare('UPDATE entries SET term = 3 WHERE idx = 2').run());
    assert.throws(() => open(dir).load(), /log entry 2: checksum mismatch/);
  });

  test('a deleted middle row is reported as a gap', () => {
    const dir = tmpDir();
    open(dir).save({ hardState: { term: 1, vote: null, commit: 3 }, entries: ents(1, 10, 1) }, true);
    closeAll();
    raw(dir, (db) => db.prepare('DELETE FROM entries WHERE idx = 5').run());
    assert.throws(
      () => open(dir).load(),
      (e: unknown) => e instanceof CorruptLogError && e.message === 'log gap: 4 followed by 6',
    );
  });

  test('a missing first entry is reported', () => {
    const dir = tmpDir();
    open(dir).save({ entries: ents(1, 3, 1) }, true);
    closeAll();
    raw(dir, (db) => db.prepare('DELETE FROM entries WHERE idx = 1').run());
    assert.throws(() => open(dir).load(), /log gap: log starts at 2, expected 1/);
  });

  test('commit beyond the last index is reported', () => {
    const dir = tmpDir();
    open(dir).save({ hardState: { term: 1, vote: null, commit: 8 }, entries: ents(1, 10, 1) }, true);
    closeAll();
    raw(dir, (db) => db.prepare('DELETE FROM entries WHERE idx > 5').run());
    assert.throws(
      () => open(dir).load(),
      (e: unknown) => e instanceof CorruptLogError && e.message === 'hard state commit 8 beyond last index 5',
    );
  });

  test('a tampered hard state row is reported', () => {
    const dir = tmpDir();
    open(dir).save({ hardState: { term: 4, vote: 'a', commit: 1 }, entries: ents(1, 2, 1) }, true);
    closeAll();
    raw(dir, (db) => db.prepare("UPDATE state SET vote = 'b'").run());
    assert.throws(() => open(dir).load(), /hard state row: checksum mismatch/);
  });

  test('a truncated snapshot file is reported naming the file', () => {
    const dir = tmpDir();
    const s = open(dir);
    s.save({ hardState: { term: 1, vote: null, commit: 10 }, entries: ents(1, 10, 1) }, true);
    s.compact(snap(10, 1, 4096), 2);
    s.close();
    const file = path.join(dir, 'snapshots', '10-1.snap');
    fs.truncateSync(file, fs.statSync(file).size - 100);
    const r = open(dir);
    assert.throws(
      () => r.load(),
      (e: unknown) => e instanceof CorruptLogError && e.message.includes(file) && /truncated/.test(e.message),
    );
    r.close();
    fs.truncateSync(file, 10);
    assert.throws(
      () => open(dir).load(),
      (e: unknown) => e instanceof CorruptLogError && e.message.includes(file),
    );
  });

  test('a corrupted or missing snapshot file is reported naming the file', () => {
    const dir = tmpDir();
    const s = open(dir);
    s.save({ hardState: { term: 1, vote: null, commit: 10 }, entries: ents(1, 10, 1) }, true);
    s.compact(snap(10, 1, 4096), 2);
    s.close();
    const file = path.join(dir, 'snapshots', '10-1.snap');
    const buf = fs.readFileSync(file);
    buf[buf.length - 10]! ^= 0xff;
    fs.writeFileSync(file, buf);
    assert.throws(
      () => open(dir).load(),
      (e: unknown) => e instanceof CorruptLogError && e.message === `snapshot file ${file}: checksum mismatch`,
    );
    closeAll();
    fs.unlinkSync(file);
    assert.throws(
      () => open(dir).load(),
      (e: unknown) => e instanceof CorruptLogError && e.message === `snapshot file ${file}: missing`,
    );
  });

  test('a file that is not a database, or a damaged b-tree, fails on open with CorruptLogError', () => {
    const dir = tmpDir();
    fs.writeFileSync(path.join(dir, 'raft.db'), Buffer.alloc(8192, 0x5a));
    assert.throws(() => open(dir), CorruptLogError);

    const dir2 = tmpDir();
    const s = open(dir2);
    for (let i = 0; i < 20; i++) s.save({ entries: ents(i * 50 + 1, i * 50 + 50, 1, 200) }, true);
    s.close();
    // Scribble over the middle of the file (interior/leaf pages of the entries b-tree).
    const dbFile = path.join(dir2, 'raft.db');
    const fd = fs.openSync(dbFile, 'r+');
    const size = fs.fstatSync(fd).size;
    for (let off = 8192; off < size - 4096; off += 16384) fs.writeSync(fd, Buffer.alloc(512, 0xa5), 0, 512, off);
    fs.closeSync(fd);
    assert.throws(
      () => open(dir2),
      (e: unknown) => e instanceof CorruptLogError && e.message.startsWith(`${path.join(dir2, 'raft.db')}: PRAGMA quick_check failed: `),
    );
  });

  test('SIGKILL mid-stream: every acknowledged save survives, the log stays valid, the lock is released', async () => {
    const dir = tmpDir();
    const mod = fileURLToPath(new URL('../../manager/raft/storage-sqlite.ts', import.meta.url));
    // The child appends batches of 8 forever (with a received snapshot now and then) and prints the last
    // index after each save returns.
    const child = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        '--input-type=module',
        '-e',
        `
        import { SqliteRaftStorage } from ${JSON.stringify(mod)};
        const s = new SqliteRaftStorage(process.argv[1]);
        let next = 1;
        for (let round = 1; ; round++) {
          const entries = [];
          for (let i = 0; i < 8; i++, next++) entries.push({ index: next, term: 1, type: 'normal', data: new Uint8Array(512).fill(next & 0xff) });
          const batch = { hardState: { term: 1, vote: 'a', commit: next - 1 }, entries };
          if (round % 50 === 0) s.compact({ meta: { index: next - 9, term: 1, conf: { voters: ['a'], learners: [], removed: [] } }, data: new Uint8Array(4096).fill(round & 0xff) }, 16);
          s.save(batch, true);
          process.stdout.write(String(next - 1) + '\\n');
        }
        `,
        dir,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let acked = 0;
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
    try {
      await new Promise<void>((resolve, reject) => {
        let buf = '';
        const timer = setTimeout(() => reject(new Error(`child made no progress: ${stderr}`)), 20_000);
        child.stdout.on('data', (d: Buffer) => {
          buf += d.toString();
          const lines = buf.split('\n');
          buf = lines.pop()!;
          for (const l of lines) acked = Number(l);
          if (acked >= 2000 && child.exitCode === null && !child.killed) {
            clearTimeout(timer);
            child.kill('SIGKILL');
          }
        });
        child.on('exit', () => {
          clearTimeout(timer);
          resolve();
        });
      });
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    }
    assert.ok(acked >= 2000, `child acknowledged only ${acked}: ${stderr}`);
    const st = open(dir).load(); // the dead child's lock is gone; the log verifies
    const last = st.entries.at(-1)?.index ?? st.snapshot?.meta.index ?? 0;
    assert.ok(last >= acked, `acknowledged ${acked} but only ${last} survived`);
    assert.ok(st.snapshot !== null);
    assert.equal(st.entries[0]?.index, st.snapshot.meta.index + 1);
  });

  test('disk full during save: StorageError, then every save/compact refuses; acknowledged entries survive', (t) => {
    const mnt = tryMountTmpfs(t, '512k');
    if (!mnt) return;
    try {
      const dir = path.join(mnt, 'node');
      const s = open(dir);
      let acked = 0;
      let failure: unknown = null;
      for (let i = 0; i < 10_000; i++) {
        try {
          s.save({ hardState: { term: 1, vote: 'a', commit: acked }, entries: ents(acked + 1, acked + 16, 1, 1024) }, true);
          acked += 16;
        } catch (err) {
          failure = err;
          break;
        }
      }
      assert.ok(failure instanceof StorageError, `expected StorageError, got ${String(failure)}`);
      assert.match(failure.message, /^save failed: /);
      assert.ok(acked > 0);
      t.diagnostic(`disk full after ${acked} acknowledged entries: ${failure.message}`);
      assert.throws(() => s.save({ entries: [] }, true), /^StorageError: storage failed earlier: save failed: /);
      assert.throws(() => s.save({ entries: ents(acked + 1, acked + 1, 1) }, false), /storage failed earlier/);
      assert.throws(() => s.compact(snap(1, 1), 0), /storage failed earlier/);
      s.close();

      // Give the disk room again: a restart sees exactly the acknowledged prefix.
      execFileSync('mount', ['-o', 'remount,size=8m', mnt], { stdio: 'pipe' });
      const r = open(dir);
      const st = r.load();
      assert.deepEqual(indices(st.entries), range(1, acked));
      r.save({ entries: ents(acked + 1, acked + 1, 1) }, true);
    } finally {
      closeAll();
      unmount(mnt);
    }
  });

  /**
   * A 512 KiB tmpfs holding 10 entries, then a 1 MiB snapshot written by `write` (which must fail with
   * ENOSPC as `op`): no file is left, the storage refuses everything after, and the entries survive.
   */
  async function snapshotOnFullDisk(t: TestContext, op: string, write: (s: SqliteRaftStorage, sn: Snapshot) => Promise<void>): Promise<void> {
    const mnt = tryMountTmpfs(t, '512k');
    if (!mnt) return;
    try {
      const dir = path.join(mnt, 'node');
      const s = open(dir);
      s.save({ hardState: { term: 1, vote: null, commit: 10 }, entries: ents(1, 10, 1) }, true);
      await assert.rejects(
        write(s, snap(10, 1, 1024 * 1024)),
        (e: unknown) => e instanceof StorageError && new RegExp(`^${op} failed: .*ENOSPC`).test(e.message),
      );
      assert.deepEqual(snapFiles(dir), []);
      assert.throws(() => s.save({ entries: ents(11, 11, 1) }, true), new RegExp(`storage failed earlier: ${op} failed`));
      s.close();
      const st = open(dir).load();
      assert.equal(st.snapshot, null);
      assert.deepEqual(st.entries, ents(1, 10, 1));
    } finally {
      closeAll();
      unmount(mnt);
    }
  }

  test('disk full while writing a snapshot: StorageError, no temp file left, state unchanged', (t) =>
    snapshotOnFullDisk(t, 'compact', async (s, sn) => s.compact(sn, 0)));

  test('disk full while preparing a snapshot: StorageError, no temp file left, state unchanged', (t) =>
    snapshotOnFullDisk(t, 'prepareSnapshot', (s, sn) => s.prepareSnapshot(sn)));

  test('throughput (logged, not asserted)', (t) => {
    const dir = tmpDir();
    const s = open(dir);
    const report: string[] = [];
    let next = 1;
    for (const [batch, batches, sync] of [
      [1, 500, true],
      [64, 400, true],
      [256, 100, true],
      [64, 400, false],
    ] as const) {
      const prepared: Entry[][] = [];
      for (let b = 0; b < batches; b++) {
        prepared.push(ents(next, next + batch - 1, 1, 1024));
        next += batch;
      }
      const t0 = process.hrtime.bigint();
      for (const es of prepared) s.save({ entries: es }, sync);
      const secs = Number(process.hrtime.bigint() - t0) / 1e9;
      const n = batch * batches;
      report.push(
        `batch ${batch} x 1KiB sync=${sync}: ${Math.round(n / secs).toLocaleString('en-US')} entries/s ` + `(${((secs / batches) * 1e3).toFixed(3)} ms/save)`,
      );
    }
    const t0 = process.hrtime.bigint();
    const st = s.load();
    const loadSecs = Number(process.hrtime.bigint() - t0) / 1e9;
    report.push(`load+verify ${st.entries.length} entries: ${(loadSecs * 1e3).toFixed(1)} ms`);
    for (const line of report) {
      t.diagnostic(line);
      console.log(`[storage-sqlite throughput] ${line}`);
    }
    assert.equal(st.entries.length, next - 1);
  });
});

describe('MemoryRaftStorage', () => {
  test('injected failure poisons the instance', () => {
    const s = new MemoryRaftStorage();
    s.save({ entries: ents(1, 3, 1) }, true);
    s.failNextWith = 'EIO';
    assert.throws(
      () => s.save({ entries: ents(4, 4, 1) }, true),
      (e: unknown) => e instanceof StorageError && e.message === 'save failed: EIO',
    );
    assert.throws(() => s.save({ entries: [] }, true), /storage failed earlier: save failed: EIO/);
    assert.deepEqual(indices(s.load().entries), [1, 2, 3]);
  });
});

// ---------------------------------------------------------------------------------------------------------
// Encryption at rest (issue 15): entry and snapshot data are sealed under the manager's Raft key.

describe('SqliteRaftStorage.prepareSnapshot (snapshots written ahead, off the event loop)', () => {
  for (const encrypted of [false, true]) {
    const cipher = () => {
      let n = 7;
      const random = (len: number) => Buffer.alloc(len, n++ & 0xff);
      return new RaftCipher(KeyRing.generate(random, new Date(0)), random);
    };
    test(`the file is written under a temporary name; compact() only renames and commits it${encrypted ? ' (encrypted)' : ''}`, async () => {
      const dir = tmpDir();
      const c = encrypted ? cipher() : undefined;
      const s = open(dir, c ? { cipher: c } : undefined);
      s.save({ hardState: { term: 1, vote: 'a', commit: 20 }, entries: ents(1, 20, 1) }, true);
      const sn = snap(15, 1, 9 * 1024 * 1024 + 5); // more than two sealing steps
      await s.prepareSnapshot(sn);
      assert.deepEqual(snapFiles(dir), ['15-1.snap.tmp']);
      const ino = fs.statSync(path.join(dir, 'snapshots', '15-1.snap.tmp')).ino;
      s.compact(sn, 3);
      assert.deepEqual(snapFiles(dir), ['15-1.snap']);
      assert.equal(fs.statSync(path.join(dir, 'snapshots', '15-1.snap')).ino, ino, 'the prepared file itself, not a second write');
      assert.equal(s.firstIndex(), 13);
      s.close();
      const st = open(dir, c ? { cipher: c } : undefined).load();
      assert.deepEqual(st.snapshot, sn);
      assert.deepEqual(indices(st.entries), range(16, 20));
    });
  }

  test('a prepared snapshot superseded by one from the leader is dropped; its compact() is a no-op', async () => {
    const dir = tmpDir();
    const s = open(dir);
    s.save({ hardState: { term: 1, vote: 'a', commit: 10 }, entries: ents(1, 10, 1) }, true);
    const mine = snap(8, 1);
    await s.prepareSnapshot(mine);
    const theirs = snap(30, 2);
    s.save({ hardState: { term: 2, vote: null, commit: 30 }, entries: [], snapshot: theirs }, true);
    assert.deepEqual(snapFiles(dir), ['30-2.snap']);
    s.compact(mine, 0);
    assert.deepEqual(snapFiles(dir), ['30-2.snap']);
    s.close();
    assert.deepEqual(open(dir).load().snapshot, theirs);
  });

  test('a snapshot other than the prepared one is written as before', async () => {
    const dir = tmpDir();
    const s = open(dir);
    s.save({ hardState: { term: 1, vote: 'a', commit: 10 }, entries: ents(1, 10, 1) }, true);
    await s.prepareSnapshot(snap(8, 1));
    const other = snap(9, 1, 100); // another object, another content
    s.compact(other, 0);
    s.close();
    assert.deepEqual(open(dir).load().snapshot, other);
    assert.deepEqual(snapFiles(dir), ['9-1.snap'], 'the stale prepared file is removed on open');
  });

  test('closing while a snapshot is being prepared leaves no temporary file', async () => {
    const dir = tmpDir();
    const s = open(dir);
    s.save({ hardState: { term: 1, vote: 'a', commit: 10 }, entries: ents(1, 10, 1) }, true);
    const p = s.prepareSnapshot(snap(10, 1, 4 * 1024 * 1024));
    s.close();
    await p;
    assert.deepEqual(snapFiles(dir), []);
  });

  test('a snapshot past the log is refused before anything is written, without poisoning', async () => {
    const dir = tmpDir();
    const s = open(dir);
    s.save({ hardState: { term: 1, vote: 'a', commit: 5 }, entries: ents(1, 5, 1) }, true);
    await assert.rejects(s.prepareSnapshot(snap(9, 1)), (e: unknown) => e instanceof RangeError && /snapshot index 9 is not in the log/.test(e.message));
    assert.deepEqual(snapFiles(dir), []);
    s.save({ entries: ents(6, 6, 1) }, true);
  });
});

describe('SqliteRaftStorage encryption at rest', () => {
  const marker = 'PLAINTEXT-MARKER-';
  const markedEnts = (from: number, to: number, term: number): Entry[] => {
    const out: Entry[] = [];
    for (let i = from; i <= to; i++) out.push({ index: i, term, type: i % 5 === 0 ? 'conf' : 'normal', data: Buffer.from(`${marker}${i}-${'x'.repeat(200)}`) });
    return out;
  };
  const cipherFor = (seed: number) => {
    let n = seed;
    const random = (len: number) => Buffer.alloc(len, n++ & 0xff);
    return new RaftCipher(KeyRing.generate(random, new Date(0)), random);
  };
  /** Every byte under `dir` (database, WAL, snapshot files). */
  const allBytes = (dir: string): Buffer => {
    const out: Buffer[] = [];
    const walk = (d: string) => {
      for (const e of fs.readdirSync(d, { withFileTypes: true })) {
        const p = path.join(d, e.name);
        if (e.isDirectory()) walk(p);
        else out.push(fs.readFileSync(p));
      }
    };
    walk(dir);
    return Buffer.concat(out);
  };
  const snapOf = (index: number, term: number): Snapshot => ({
    meta: { index, term, conf: { voters: ['a'], learners: [], removed: [] } },
    data: Buffer.from(`${marker}snapshot-${index}`),
  });

  test('round trip: entries and snapshot come back, and no plaintext is on disk', () => {
    const dir = tmpDir();
    const cipher = cipherFor(1);
    const s = open(dir, { cipher });
    s.save({ entries: markedEnts(1, 40, 1), hardState: { term: 1, vote: 'a', commit: 40 } }, true);
    s.compact(snapOf(30, 1), 5);
    s.save({ entries: markedEnts(41, 50, 1), hardState: { term: 1, vote: 'a', commit: 50 } }, false);
    assert.equal(allBytes(dir).includes(marker), false, 'a marker is readable in raft.db, its WAL or a snapshot');
    s.close();
    const r = open(dir, { cipher });
    const st = r.load();
    assert.equal(Buffer.from(st.snapshot!.data).toString(), `${marker}snapshot-30`);
    assert.deepEqual(
      indices(st.entries),
      Array.from({ length: 20 }, (_, i) => 31 + i),
    );
    assert.equal(Buffer.from(st.entries[0]!.data).toString(), markedEnts(31, 31, 1)[0]!.data.toString());
    assert.equal(r.entriesFrom(26, 28).length, 2, 'the retained tail also opens');
    assert.deepEqual(
      st.entries.map((e) => e.type),
      markedEnts(31, 50, 1).map((e) => e.type),
    );
  });

  test('an unencrypted log still loads, and new entries and the next snapshot are encrypted', () => {
    const dir = tmpDir();
    const plain = open(dir);
    plain.save({ entries: markedEnts(1, 10, 1), hardState: { term: 1, vote: null, commit: 10 } }, true);
    plain.compact(snapOf(5, 1), 100);
    plain.close();
    assert.equal(allBytes(dir).includes(`${marker}snapshot-5`), true, 'control: the old format is plaintext');
    const cipher = cipherFor(2);
    const s = open(dir, { cipher });
    const st = s.load();
    assert.equal(Buffer.from(st.snapshot!.data).toString(), `${marker}snapshot-5`);
    assert.deepEqual(indices(st.entries), [6, 7, 8, 9, 10]);
    s.save({ entries: markedEnts(11, 20, 1), hardState: { term: 1, vote: null, commit: 20 } }, true);
    s.compact(snapOf(20, 1), 0);
    s.close();
    const bytes = allBytes(dir);
    for (let i = 11; i <= 20; i++) assert.equal(bytes.includes(`${marker}${i}-`), false, `entry ${i} is plaintext on disk`);
    assert.equal(bytes.includes(`${marker}snapshot-20`), false, 'the new snapshot is plaintext on disk');
    const r = open(dir, { cipher });
    assert.equal(Buffer.from(r.load().snapshot!.data).toString(), `${marker}snapshot-20`);
  });

  test('rows from before encryption: freed pages are zeroed until the last is gone, then the file is vacuumed', () => {
    const dir = tmpDir();
    const plain = open(dir);
    plain.save({ entries: markedEnts(1, 400, 1), hardState: { term: 1, vote: null, commit: 400 } }, true);
    // Rows 1-350 deleted with no zeroing: whole pages of them go to the free list as they were.
    plain.compact(snapOf(350, 1), 0);
    plain.close();
    const cipher = cipherFor(5);
    const s = open(dir, { cipher });
    const secureDelete = () => (s as unknown as { db: Database.Database }).db.pragma('secure_delete', { simple: true });
    assert.equal(secureDelete(), 1, 'plaintext rows remain: zero what they free');
    s.save({ entries: markedEnts(401, 420, 1), hardState: { term: 1, vote: null, commit: 420 } }, true);
    s.compact(snapOf(380, 1), 0); // still plaintext rows left (381-400)
    assert.equal(secureDelete(), 1);
    s.compact(snapOf(410, 1), 0); // the last plaintext rows go
    assert.equal(secureDelete(), 0, 'only sealed rows left: no zeroing');
    s.close();
    const text = allBytes(dir).toString('latin1');
    for (let i = 1; i <= 400; i++) assert.equal(text.includes(`${marker}${i}-`), false, `plaintext entry ${i} lingers on disk`);
    assert.deepEqual(indices(open(dir, { cipher }).load().entries), range(411, 420));
  });

  test('sealInSteps: any step size seals what open() reads back; seal() is the one-step case', () => {
    const plain = Buffer.alloc(100_003);
    for (let i = 0; i < plain.length; i++) plain[i] = (i * 7) & 0xff;
    const ctx = { kind: 'snapshot', index: 12, term: 3 } as const;
    for (const step of [1 << 20, 100_003, 4096, 777, 1]) {
      const c = cipherFor(9);
      const steps = c.sealInSteps(plain, ctx, step);
      let yields = 0;
      let r = steps.next();
      while (!r.done) {
        yields++;
        r = steps.next();
      }
      assert.equal(yields, Math.ceil(plain.length / step) - 1, `step ${step}`);
      assert.deepEqual(c.open(r.value, ctx), plain);
      // The same key and nonce sequence give the same bytes as seal().
      assert.deepEqual(r.value, cipherFor(9).seal(plain, ctx));
      assert.throws(() => c.open(r.value, { ...ctx, index: 13 }), /does not authenticate/);
    }
    const c = cipherFor(10);
    assert.deepEqual(c.open(c.seal(Buffer.alloc(0), ctx), ctx), Buffer.alloc(0), 'empty data');
  });

  test('a log encrypted from the start never zeroes pages', () => {
    const dir = tmpDir();
    const s = open(dir, { cipher: cipherFor(6) });
    s.save({ entries: markedEnts(1, 10, 1), hardState: { term: 1, vote: null, commit: 10 } }, true);
    assert.equal((s as unknown as { db: Database.Database }).db.pragma('secure_delete', { simple: true }), 0);
  });

  test('tampered ciphertext is a CorruptLogError naming the index, even with a matching checksum', () => {
    const dir = tmpDir();
    const cipher = cipherFor(3);
    const s = open(dir, { cipher });
    s.save({ entries: markedEnts(1, 8, 1), hardState: { term: 1, vote: null, commit: 8 } }, true);
    s.close();
    const db = new Database(path.join(dir, 'raft.db'));
    try {
      const row = db.prepare('SELECT type, data FROM entries WHERE idx = 6').get() as { type: number; data: Buffer };
      assert.ok((row.type & ENCRYPTED_TYPE_BIT) !== 0, 'entry 6 is stored with the encrypted marker');
      row.data[row.data.length - 20]! ^= 0x01;
      db.prepare('UPDATE entries SET data = ?, crc = ? WHERE idx = 6').run(row.data, entryChecksum(6, 1, row.type, row.data));
    } finally {
      db.close();
    }
    const r = open(dir, { cipher });
    assert.throws(
      () => r.load(),
      (e: unknown) => e instanceof CorruptLogError && /log entry 6\b/.test(e.message) && /authenticate/.test(e.message),
    );
  });

  test('a row moved to another index does not open', () => {
    const dir = tmpDir();
    const cipher = cipherFor(4);
    const s = open(dir, { cipher });
    s.save({ entries: markedEnts(1, 4, 1), hardState: { term: 1, vote: null, commit: 4 } }, true);
    s.close();
    const db = new Database(path.join(dir, 'raft.db'));
    try {
      const row = db.prepare('SELECT type, data FROM entries WHERE idx = 2').get() as { type: number; data: Buffer };
      db.prepare('UPDATE entries SET type = ?, data = ?, crc = ? WHERE idx = 3').run(row.type, row.data, entryChecksum(3, 1, row.type, row.data));
    } finally {
      db.close();
    }
    assert.throws(
      () => open(dir, { cipher }).load(),
      (e: unknown) => e instanceof CorruptLogError && /log entry 3\b/.test(e.message),
    );
  });

  test('another key, or no key, cannot read an encrypted log', () => {
    const dir = tmpDir();
    const s = open(dir, { cipher: cipherFor(5) });
    s.save({ entries: markedEnts(1, 3, 1), hardState: { term: 1, vote: null, commit: 3 } }, true);
    s.compact(snapOf(2, 1), 10);
    s.close();
    assert.throws(
      () => open(dir, { cipher: cipherFor(99) }).load(),
      (e: unknown) => e instanceof CorruptLogError && /does not have/.test(e.message),
    );
    closeAll();
    assert.throws(
      () => open(dir).load(),
      (e: unknown) => e instanceof StorageError && /without the Raft key/.test(e.message),
    );
  });

  test('a tampered encrypted snapshot is a CorruptLogError naming the file', () => {
    const dir = tmpDir();
    const cipher = cipherFor(6);
    const s = open(dir, { cipher });
    s.save({ entries: markedEnts(1, 3, 1), hardState: { term: 1, vote: null, commit: 3 } }, true);
    s.compact(snapOf(3, 1), 0);
    s.close();
    const file = path.join(dir, 'snapshots', '3-1.snap');
    const buf = fs.readFileSync(file);
    assert.equal(buf.readUInt32BE(8), 2, 'an encrypted snapshot is version 2');
    buf[buf.length - 1]! ^= 0x01;
    fs.writeFileSync(file, buf);
    assert.throws(
      () => open(dir, { cipher }).load(),
      (e: unknown) => e instanceof CorruptLogError && e.message.includes(file),
    );
  });
});
