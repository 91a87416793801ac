// Durable Raft storage: the log and hard state live in SQLite (WAL, synchronous=FULL), snapshots live in
// checksummed files next to it. Also a trivial in-memory implementation for unit tests of other code.
//
// Layout of `dir`:
//   raft.db (+ raft.db-wal)     the log (`entries`) and one `state` row: hard state + current snapshot pointer
//   snapshots/<index>-<term>.snap   snapshot files; the newest `snapshotsKept` are kept, the current one always
//
// Durability rules:
//   - save(batch, true) is one SQLite transaction = one WAL fsync (group commit of all entries in the batch).
//   - save(batch, false) runs that transaction with synchronous=NORMAL (no fsync on commit in WAL mode); the
//     next synced save or checkpoint makes it durable, in order.
//   - A snapshot file is written to a temp file, fsynced, renamed, and the directory fsynced, *before* the
//     transaction that points the state row at it (and deletes the log entries it covers) commits.
//   - Any I/O / SQLite failure in save/compact throws StorageError and poisons the instance: every later
//     save/compact throws StorageError("storage failed earlier: ...").
//   - A batch that violates the log invariants (gap, term regression, truncating a committed entry, commit
//     beyond the log, ...) is a caller bug: it is rejected with a RangeError before anything is written and
//     does not poison the instance.
//   - The database is opened with locking_mode=EXCLUSIVE: a second process (or instance) opening the same
//     directory fails instead of interleaving writes.
//
// Verification: every entry row carries CRC-32(index, term, type, data); the state row carries a CRC-32 of
// its fields; snapshot files carry a sha256 of meta+data (also recorded in the state row). Checksums cover
// what is stored, so with encryption they are computed over the ciphertext.
//
// Encryption at rest (issue 15): given a RaftCipher (encrypt.ts), entry data and snapshot data are stored
// sealed with AES-256-GCM. The format marker is per entry (bit ENCRYPTED_TYPE_BIT of the stored type code)
// and per snapshot file (version 2), so a log written before encryption still loads, and new entries and the
// next snapshot are written encrypted. While plaintext rows remain, secure_delete is on so that the pages
// they free are zeroed, and the file is vacuumed once when the last one goes (plaintextUpTo). The constructor
// runs PRAGMA quick_check; load() checks checksums, contiguity, term order, the snapshot file and the commit
// index, and throws CorruptLogError naming the index or file. Nothing is ever repaired.
//
// Beyond RaftStorage, SqliteRaftStorage offers entriesFrom(lo, hi) / firstIndex() / lastIndex() to read the
// tail that compact(snapshot, keepEntries) retains at or below the snapshot index (load() returns only the
// entries after the snapshot, per the PersistedState contract).
import Database from 'better-sqlite3';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { RaftCipherError, type RaftCipher } from './encrypt.ts';
import { CorruptLogError, StorageError } from './storage.ts';
import type { PersistBatch, PersistedState, RaftStorage } from './storage.ts';
import type { ConfState, Entry, EntryType, HardState, Snapshot, SnapshotMeta } from './types.ts';
import { Slicer } from './slices.ts';

const SCHEMA_VERSION = 1;
const DB_FILE = 'raft.db';
const SNAP_DIR = 'snapshots';
const SNAP_RE = /^(\d+)-(\d+)\.snap$/;
const TMP_SUFFIX = '.tmp';
/** Rows per prepared multi-row INSERT; must end with 1. */
const INSERT_CHUNKS = [64, 8, 1] as const;

// ---------------------------------------------------------------------------------------------------------
// Entry checksums

const TYPE_CODE: Record<EntryType, number> = { normal: 0, conf: 1 };
const CODE_TYPE: readonly EntryType[] = ['normal', 'conf'];
/** Set in a stored type code when the row's data is sealed by a RaftCipher (older rows never have it). */
export const ENCRYPTED_TYPE_BIT = 0x10;
const crcHeader = Buffer.alloc(17);

/** CRC-32 over (index u64 BE, term u64 BE, type u8, data). */
export function entryChecksum(index: number, term: number, typeCode: number, data: Uint8Array): number {
  crcHeader.writeUInt32BE(Math.floor(index / 0x1_0000_0000), 0);
  crcHeader.writeUInt32BE(index >>> 0, 4);
  crcHeader.writeUInt32BE(Math.floor(term / 0x1_0000_0000), 8);
  crcHeader.writeUInt32BE(term >>> 0, 12);
  crcHeader[16] = typeCode;
  return zlib.crc32(data, zlib.crc32(crcHeader));
}

// ---------------------------------------------------------------------------------------------------------
// Snapshot files
//
// Header (56 bytes): magic "SHOALSNP" | u32 BE version | u32 BE metaLen | u64 BE dataLen | sha256(meta+data)
// followed by meta (UTF-8 JSON {index, term, conf}) and data. Version 1: data is plaintext; version 2: data
// is sealed by a RaftCipher (meta — index, term, member ids — stays readable; the sha covers the sealed bytes).

const SNAP_MAGIC = Buffer.from('SHOALSNP', 'ascii');
const SNAP_VERSION = 1;
const SNAP_VERSION_ENCRYPTED = 2;
const SNAP_HEADER_LEN = 8 + 4 + 4 + 8 + 32;

function snapshotFileName(index: number, term: number): string {
  return `${index}-${term}.snap`;
}

function writeAll(fd: number, buf: Uint8Array): void {
  let off = 0;
  while (off < buf.byteLength) off += fs.writeSync(fd, buf, off, buf.byteLength - off);
}

function fsyncDir(dir: string): void {
  const fd = fs.openSync(dir, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** The header and meta of a snapshot file whose stored (sealed or plain) data is `data`, and its sha256. */
function snapshotFileHead(snap: Snapshot, data: Uint8Array, encrypted: boolean, sha: Buffer): Buffer {
  const metaBytes = snapshotMetaBytes(snap);
  const header = Buffer.alloc(SNAP_HEADER_LEN);
  SNAP_MAGIC.copy(header, 0);
  header.writeUInt32BE(encrypted ? SNAP_VERSION_ENCRYPTED : SNAP_VERSION, 8);
  header.writeUInt32BE(metaBytes.byteLength, 12);
  header.writeBigUInt64BE(BigInt(data.byteLength), 16);
  sha.copy(header, 24);
  return Buffer.concat([header, metaBytes]);
}

function snapshotMetaBytes(snap: Snapshot): Buffer {
  const { index, term, conf } = snap.meta;
  return Buffer.from(JSON.stringify({ index, term, conf: copyConf(conf) }), 'utf8');
}

/** Writes `<dir>/<index>-<term>.snap` atomically and durably. Returns the hex sha256 recorded in its header. */
function writeSnapshotFile(dir: string, snap: Snapshot, cipher: RaftCipher | null): string {
  const { index, term } = snap.meta;
  const data = cipher ? cipher.seal(snap.data, { kind: 'snapshot', index, term }) : snap.data;
  const sha = createHash('sha256').update(snapshotMetaBytes(snap)).update(data).digest();
  const head = snapshotFileHead(snap, data, cipher !== null, sha);
  const final = path.join(dir, snapshotFileName(index, term));
  const tmp = final + TMP_SUFFIX;
  try {
    const fd = fs.openSync(tmp, 'w', 0o600);
    try {
      writeAll(fd, head);
      writeAll(fd, data);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, final);
  } catch (err) {
    removeQuietly(tmp); // free the space (ENOSPC) and leave no stray file
    throw err;
  }
  fsyncDir(dir);
  return sha.toString('hex');
}

function removeQuietly(file: string): void {
  try {
    fs.unlinkSync(file);
  } catch {
    // ignore: the file may not exist; stray temp files are removed on open anyway
  }
}

/**
 * Bytes of snapshot data sealed or hashed between two yields to the event loop by prepareSnapshot: ≈ 15 ms
 * of AES-GCM each (a 68 MB snapshot sealed in 253-273 ms in process).
 */
const SNAPSHOT_STEP_BYTES = 4 << 20;

// Sealing and hashing run SNAPSHOT_STEP_BYTES at a time in slices (slices.ts): ≈ 190 ms of AES-GCM and
// SHA-256 for 70 MB here (both in hardware) are then ≈ 5 turns, against 36 with a turn per step.
// (Sealing in the thread pool with WebCrypto was tried: its copy of the input and its output, 2 × 68 MB
// outside the heap, brought on full collections that held the loop 220-310 ms.)

/** A snapshot file written ahead as `<index>-<term>.snap.tmp`, durable, waiting for compact() to name it. */
interface PreparedSnapshot {
  data: Uint8Array;
  index: number;
  term: number;
  tmp: string;
  final: string;
  sha: string;
}

/**
 * writeSnapshotFile without holding the event loop: sealing and hashing in steps, the write and fsync in
 * libuv's thread pool. Leaves the file under its temporary name (pruneSnapshots never removes those while
 * open), so a snapshot installed from the leader meanwhile cannot see a newer-than-current file and delete
 * it; compact() renames it.
 */
async function prepareSnapshotFile(dir: string, snap: Snapshot, cipher: RaftCipher | null): Promise<PreparedSnapshot> {
  const { index, term } = snap.meta;
  let data: Uint8Array = snap.data;
  const slices = new Slicer();
  if (cipher) {
    const steps = cipher.sealInSteps(snap.data, { kind: 'snapshot', index, term }, SNAPSHOT_STEP_BYTES);
    for (let r = steps.next(); ; r = steps.next()) {
      if (r.done) {
        data = r.value;
        break;
      }
      await slices.next();
    }
  }
  const hash = createHash('sha256').update(snapshotMetaBytes(snap));
  for (let i = 0; i < data.byteLength; i += SNAPSHOT_STEP_BYTES) {
    if (i > 0) await slices.next();
    hash.update(data.subarray(i, Math.min(data.byteLength, i + SNAPSHOT_STEP_BYTES)));
  }
  const sha = hash.digest();
  const head = snapshotFileHead(snap, data, cipher !== null, sha);
  const final = path.join(dir, snapshotFileName(index, term));
  const tmp = final + TMP_SUFFIX;
  try {
    const fh = await fs.promises.open(tmp, 'w', 0o600);
    try {
      await writeAllAsync(fh, head);
      await writeAllAsync(fh, data);
      await fh.sync();
    } finally {
      await fh.close();
    }
  } catch (err) {
    removeQuietly(tmp);
    throw err;
  }
  return { data: snap.data, index, term, tmp, final, sha: sha.toString('hex') };
}

/**
 * Writes all of `data` at the handle's position, each write as large as the kernel takes. Not
 * FileHandle.writeFile: it writes 512 KiB per call, so a 70 MB snapshot made 140 trips between the thread
 * pool and a busy leader's event loop, each waiting its turn there (2.5 s of the snapshot's wall time in
 * bench:scale, for a file this disk writes and syncs in 0.1-0.3 s).
 */
async function writeAllAsync(fh: fs.promises.FileHandle, data: Uint8Array): Promise<void> {
  for (let off = 0; off < data.byteLength; ) {
    const { bytesWritten } = await fh.write(data, off, data.byteLength - off);
    if (bytesWritten <= 0) throw new Error(`write returned ${bytesWritten}`);
    off += bytesWritten;
  }
}

/** Reads and verifies a snapshot file. Throws CorruptLogError naming the file on any defect. */
function readSnapshotFile(file: string, cipher: RaftCipher | null): { snapshot: Snapshot; sha: string } {
  const bad = (what: string) => new CorruptLogError(`snapshot file ${file}: ${what}`);
  let buf: Buffer;
  try {
    buf = fs.readFileSync(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw bad('missing');
    throw new StorageError(`load: reading snapshot file ${file} failed: ${errMessage(err)}`, err);
  }
  if (buf.byteLength < SNAP_HEADER_LEN) {
    throw bad(`truncated (${buf.byteLength} bytes, header needs ${SNAP_HEADER_LEN})`);
  }
  if (!buf.subarray(0, 8).equals(SNAP_MAGIC)) throw bad('bad magic');
  const version = buf.readUInt32BE(8);
  if (version !== SNAP_VERSION && version !== SNAP_VERSION_ENCRYPTED) throw bad(`unsupported version ${version}`);
  const metaLen = buf.readUInt32BE(12);
  const dataLen = buf.readBigUInt64BE(16);
  const expected = BigInt(SNAP_HEADER_LEN) + BigInt(metaLen) + dataLen;
  if (BigInt(buf.byteLength) !== expected) {
    throw bad(`truncated or overlong (expected ${expected} bytes, found ${buf.byteLength})`);
  }
  const metaBytes = buf.subarray(SNAP_HEADER_LEN, SNAP_HEADER_LEN + metaLen);
  const stored = buf.subarray(SNAP_HEADER_LEN + metaLen);
  const sha = createHash('sha256').update(metaBytes).update(stored).digest();
  if (!sha.equals(buf.subarray(24, 56))) throw bad('checksum mismatch');
  let meta: SnapshotMeta;
  try {
    meta = JSON.parse(metaBytes.toString('utf8')) as SnapshotMeta;
    checkSnapshotMeta(meta);
  } catch (err) {
    throw bad(`bad meta: ${errMessage(err)}`);
  }
  let data = stored;
  if (version === SNAP_VERSION_ENCRYPTED) {
    if (!cipher) throw new StorageError(`load: snapshot file ${file} is encrypted and this storage was opened without the Raft key`);
    try {
      data = cipher.open(stored, { kind: 'snapshot', index: meta.index, term: meta.term });
    } catch (err) {
      if (err instanceof RaftCipherError) throw bad(err.message);
      throw err;
    }
  }
  return {
    snapshot: {
      meta: { index: meta.index, term: meta.term, conf: copyConf(meta.conf) },
      data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
    },
    sha: sha.toString('hex'),
  };
}

// ---------------------------------------------------------------------------------------------------------
// Validation shared by both implementations

function errMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function copyConf(c: ConfState): ConfState {
  return { voters: [...c.voters], learners: [...c.learners], removed: [...c.removed] };
}

function isIndex(n: unknown): n is number {
  return typeof n === 'number' && Number.isSafeInteger(n) && n >= 0;
}

function checkSnapshotMeta(meta: SnapshotMeta): void {
  if (typeof meta !== 'object' || meta === null) throw new RangeError('snapshot meta is not an object');
  if (!isIndex(meta.index) || meta.index < 1) throw new RangeError(`bad snapshot index ${String(meta.index)}`);
  if (!isIndex(meta.term) || meta.term < 1) throw new RangeError(`bad snapshot term ${String(meta.term)}`);
  const c = meta.conf;
  const ids = (a: unknown) => Array.isArray(a) && a.every((x) => typeof x === 'string');
  if (typeof c !== 'object' || c === null || !ids(c.voters) || !ids(c.learners) || !ids(c.removed)) {
    throw new RangeError('bad snapshot conf');
  }
}

function invalid(what: string): RangeError {
  return new RangeError(`invalid batch: ${what}`);
}

/** What the validators need to know about the stored log. */
interface LogView {
  hardState: HardState;
  snapIndex: number;
  snapTerm: number;
  /** Last stored index, or snapIndex when nothing is stored after it. */
  lastIndex: number;
  /** Term of the stored entry at `index` (snapTerm at snapIndex, 0 at 0), undefined if not stored. */
  termAt(index: number): number | undefined;
}

interface SavePlan {
  /** Snapshot installed by this batch; `keepLog` tells whether entries after it survive. */
  snapshot: { snap: Snapshot; keepLog: boolean } | null;
  /** Delete stored entries with index >= this before appending (conflict truncation), or null. */
  truncateFrom: number | null;
  hardState: HardState | null;
}

function planSave(view: LogView, batch: PersistBatch): SavePlan {
  let snapIndex = view.snapIndex;
  let snapTerm = view.snapTerm;
  let last = view.lastIndex;
  let termAt = (i: number) => view.termAt(i);
  let snapPlan: SavePlan['snapshot'] = null;

  if (batch.snapshot) {
    const s = batch.snapshot;
    try {
      checkSnapshotMeta(s.meta);
    } catch (err) {
      throw invalid(errMessage(err));
    }
    if (!(s.data instanceof Uint8Array)) throw invalid('snapshot data is not a Uint8Array');
    if (s.meta.index < view.snapIndex) {
      throw invalid(`snapshot ${s.meta.index} is older than the current snapshot ${view.snapIndex}`);
    }
    if (s.meta.index === view.snapIndex && s.meta.term !== view.snapTerm) {
      throw invalid(`snapshot ${s.meta.index} term ${s.meta.term} differs from current snapshot term ${view.snapTerm}`);
    }
    // Simplest correct rule: keep the entries after the snapshot only if the log agrees at its index.
    const keepLog = view.termAt(s.meta.index) === s.meta.term;
    snapIndex = s.meta.index;
    snapTerm = s.meta.term;
    if (keepLog) {
      last = Math.max(last, snapIndex);
    } else {
      last = snapIndex;
      termAt = (i: number) => (i === snapIndex ? snapTerm : undefined);
    }
    snapPlan = { snap: s, keepLog };
  }

  let truncateFrom: number | null = null;
  const es = batch.entries;
  if (es.length > 0) {
    const first = es[0]!.index;
    let prevTerm = 0;
    for (let k = 0; k < es.length; k++) {
      const e = es[k]!;
      if (!isIndex(e.index) || e.index !== first + k) {
        throw invalid(`entries not contiguous: position ${k} has index ${String(e.index)}, expected ${first + k}`);
      }
      if (!isIndex(e.term)) throw invalid(`entry ${e.index}: bad term ${String(e.term)}`);
      if (!(e.type in TYPE_CODE)) throw invalid(`entry ${e.index}: bad type ${String(e.type)}`);
      if (!(e.data instanceof Uint8Array)) throw invalid(`entry ${e.index}: data is not a Uint8Array`);
      if (e.term < prevTerm) throw invalid(`entry ${e.index}: term ${e.term} below previous term ${prevTerm}`);
      prevTerm = e.term;
    }
    if (first < 1) throw invalid(`entry index ${first} < 1`);
    if (first <= snapIndex) throw invalid(`entry ${first} is at or below the snapshot index ${snapIndex}`);
    if (first > last + 1) throw invalid(`entry ${first} would leave a gap after last index ${last}`);
    // Rewriting committed entries is only tolerated when they are the same entries (a resend): by the Log
    // Matching property it suffices that the batch reaches the last committed stored entry with its term.
    const settled = Math.min(view.hardState.commit, last);
    if (first <= settled) {
      const mine = es[settled - first];
      if (mine === undefined || mine.term !== termAt(settled)) {
        throw invalid(`entry ${first} would overwrite committed entry ${settled} (commit ${view.hardState.commit})`);
      }
    }
    const before = termAt(first - 1) ?? 0;
    if (es[0]!.term < before) {
      throw invalid(`entry ${first}: term ${es[0]!.term} below term ${before} of entry ${first - 1}`);
    }
    if (first <= view.lastIndex && (snapPlan === null || snapPlan.keepLog)) truncateFrom = first;
    last = es[es.length - 1]!.index;
  }

  const hs = batch.hardState ?? null;
  if (hs) {
    if (!isIndex(hs.term) || !isIndex(hs.commit) || !(hs.vote === null || typeof hs.vote === 'string')) {
      throw invalid(`bad hard state ${JSON.stringify(hs)}`);
    }
    if (hs.term < view.hardState.term) {
      throw invalid(`hard state term ${hs.term} below stored term ${view.hardState.term}`);
    }
  }
  const commit = (hs ?? view.hardState).commit;
  if (commit > Math.max(last, snapIndex)) {
    throw invalid(`commit ${commit} beyond last index ${Math.max(last, snapIndex)}`);
  }
  return { snapshot: snapPlan, truncateFrom, hardState: hs };
}

/**
 * Validates a compact() call; returns the highest index to delete (0 = none), or null when the call is a
 * no-op because a newer snapshot is already stored (e.g. one received from the leader while this one was
 * being taken), matching RaftCore.compact.
 */
function planCompact(view: LogView, snap: Snapshot, keepEntries: number): number | null {
  const bad = (what: string) => new RangeError(`invalid compact: ${what}`);
  try {
    checkSnapshotMeta(snap.meta);
  } catch (err) {
    throw bad(errMessage(err));
  }
  if (!(snap.data instanceof Uint8Array)) throw bad('snapshot data is not a Uint8Array');
  if (!isIndex(keepEntries)) throw bad(`bad keepEntries ${String(keepEntries)}`);
  const { index, term } = snap.meta;
  if (index < view.snapIndex) return null;
  const t = view.termAt(index);
  if (t === undefined) throw bad(`snapshot index ${index} is not in the log (last index ${view.lastIndex})`);
  if (t !== term) throw bad(`snapshot ${index} term ${term} differs from log term ${t} at that index`);
  return Math.max(0, index - keepEntries);
}

/** Verifies a stored log fed row by row in ascending order, then the commit index. Throws CorruptLogError. */
class LogVerifier {
  private prevIndex = 0;
  private prevTerm = 0;
  private count = 0;
  constructor(
    private readonly snapIndex: number,
    private readonly snapTerm: number,
  ) {}

  next(index: number, term: number): void {
    if (this.count === 0) {
      if (this.snapIndex === 0 && index !== 1) {
        throw new CorruptLogError(`log gap: log starts at ${index}, expected 1 (no snapshot)`);
      }
      if (this.snapIndex > 0 && index > this.snapIndex + 1) {
        throw new CorruptLogError(`log gap: snapshot ${this.snapIndex} followed by ${index}`);
      }
    } else {
      if (index !== this.prevIndex + 1) throw new CorruptLogError(`log gap: ${this.prevIndex} followed by ${index}`);
      if (term < this.prevTerm) {
        throw new CorruptLogError(`log entry ${index}: term ${term} below term ${this.prevTerm} of entry ${this.prevIndex}`);
      }
    }
    if (index === this.snapIndex && term !== this.snapTerm) {
      throw new CorruptLogError(`log entry ${index}: term ${term} does not match snapshot term ${this.snapTerm}`);
    }
    if (index === this.snapIndex + 1 && term < this.snapTerm) {
      throw new CorruptLogError(`log entry ${index}: term ${term} below snapshot term ${this.snapTerm}`);
    }
    this.prevIndex = index;
    this.prevTerm = term;
    this.count++;
  }

  finish(commit: number): void {
    if (this.count > 0 && this.prevIndex < this.snapIndex) {
      throw new CorruptLogError(`log gap: log ends at ${this.prevIndex} before snapshot index ${this.snapIndex}`);
    }
    const last = Math.max(this.prevIndex, this.snapIndex);
    if (commit > last) throw new CorruptLogError(`hard state commit ${commit} beyond last index ${last}`);
  }
}

function copyEntry(e: Entry): Entry {
  return { index: e.index, term: e.term, type: e.type, data: new Uint8Array(e.data) };
}

// ---------------------------------------------------------------------------------------------------------
// SQLite implementation

interface StateRow {
  term: number;
  vote: string | null;
  commit_idx: number;
  snap_index: number;
  snap_term: number;
  snap_sha: string | null;
  crc: number;
}

interface Pointer {
  hardState: HardState;
  snapIndex: number;
  snapTerm: number;
  snapSha: string | null;
}

function stateChecksum(p: Pointer): number {
  const h = p.hardState;
  return zlib.crc32(JSON.stringify([h.term, h.vote, h.commit, p.snapIndex, p.snapTerm, p.snapSha]));
}

function pointerFromRow(r: StateRow): Pointer {
  return {
    hardState: { term: r.term, vote: r.vote, commit: r.commit_idx },
    snapIndex: r.snap_index,
    snapTerm: r.snap_term,
    snapSha: r.snap_sha,
  };
}

function isCorruptionError(err: unknown): boolean {
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' && (code.startsWith('SQLITE_CORRUPT') || code.startsWith('SQLITE_NOTADB'));
}

type EntryRow = [idx: number, term: number, type: number, data: Buffer, crc: number];

export class SqliteRaftStorage implements RaftStorage {
  readonly dir: string;
  readonly snapDir: string;
  private readonly snapshotsKept: number;
  private readonly cipher: RaftCipher | null;
  private readonly db: Database.Database;
  private pointer: Pointer;
  private failed: StorageError | null = null;
  private closed = false;
  /**
   * Highest index of a plaintext row in an encrypted log (0: none), written before encryption was turned on.
   * While such rows exist secure_delete is on, so the pages they free are zeroed; once the last one is
   * deleted the file is vacuumed once (dropping pages freed in the plaintext era) and secure_delete goes
   * off. Zeroing pages of sealed rows protects nothing (the key does), and it cost compaction seconds: every
   * freed page written again through the WAL (4 s for a 150,000-task log, docs/design/scale.md).
   */
  private plaintextUpTo = 0;
  /** The snapshot file prepareSnapshot wrote, until compact() commits it (or a newer one replaces it). */
  private prepared: PreparedSnapshot | null = null;
  private readonly saveTx: (plan: SavePlan, entries: Entry[], next: Pointer | null) => void;
  private readonly compactTx: (deleteUpTo: number, next: Pointer) => void;

  private readonly st: {
    /** Multi-row INSERTs, largest first: [rows, statement]. Fewer native calls per batch. */
    insert: Array<[number, Database.Statement]>;
    deleteFrom: Database.Statement;
    deleteUpTo: Database.Statement;
    lastIndex: Database.Statement;
    firstIndex: Database.Statement;
    termAt: Database.Statement;
    all: Database.Statement;
    range: Database.Statement;
    getState: Database.Statement;
    putState: Database.Statement;
    syncNormal: Database.Statement;
    syncFull: Database.Statement;
  };

  /** `cipher`: seal what is written from now on (and open what was sealed); without it, plaintext. */
  /** Observer (metrics): duration of each durable (fsynced) save, in seconds. */
  private readonly onSync: ((seconds: number) => void) | null;

  constructor(dir: string, opts?: { snapshotsKept?: number; cipher?: RaftCipher | null; onSync?: (seconds: number) => void }) {
    this.onSync = opts?.onSync ?? null;
    const kept = opts?.snapshotsKept ?? 2;
    this.cipher = opts?.cipher ?? null;
    if (!Number.isSafeInteger(kept) || kept < 1) throw new RangeError(`snapshotsKept must be >= 1, got ${kept}`);
    this.snapshotsKept = kept;
    this.dir = path.resolve(dir);
    this.snapDir = path.join(this.dir, SNAP_DIR);
    const dbPath = path.join(this.dir, DB_FILE);

    try {
      // Make every directory entry we create durable: fsync the parent of each newly created directory.
      const firstCreated = fs.mkdirSync(this.snapDir, { recursive: true, mode: 0o700 });
      const toSync = [this.dir];
      if (firstCreated !== undefined) {
        for (let d = this.dir; d.length >= firstCreated.length; d = path.dirname(d)) toSync.push(path.dirname(d));
      }
      for (const d of toSync) fsyncDir(d);
    } catch (err) {
      throw new StorageError(`open: creating ${this.snapDir} failed: ${errMessage(err)}`, err);
    }

    let db: Database.Database;
    try {
      db = new Database(dbPath);
    } catch (err) {
      throw this.openError(err, dbPath);
    }
    this.db = db;
    try {
      // 16 KiB pages: fewer WAL frames per appended batch (measured faster than 4 KiB for 1 KiB entries).
      // Only takes effect when the database file is created.
      db.pragma('page_size = 16384');
      db.pragma('locking_mode = EXCLUSIVE');
      const mode = db.pragma('journal_mode = WAL', { simple: true });
      if (String(mode).toLowerCase() !== 'wal') throw new Error(`could not enable WAL (journal_mode=${String(mode)})`);
      db.pragma('synchronous = FULL');
      db.pragma('cell_size_check = ON');
      db.pragma('trusted_schema = OFF');
      // Take the exclusive lock now so a second opener fails here rather than at its first write.
      db.exec('BEGIN EXCLUSIVE; COMMIT');

      const check = db.pragma('quick_check') as Array<{ quick_check: string }>;
      const problems = check
        .map((r) => r.quick_check)
        .filter((m) => m !== 'ok')
        .flatMap((m) => m.split('\n'))
        .filter((m) => m !== '' && !m.startsWith('*** in database'));
      if (problems.length > 0) {
        const more = problems.length > 5 ? `; ... (${problems.length - 5} more)` : '';
        throw new CorruptLogError(`${dbPath}: PRAGMA quick_check failed: ${problems.slice(0, 5).join('; ')}${more}`);
      }

      const version = db.pragma('user_version', { simple: true }) as number;
      if (version === 0) {
        db.transaction(() => {
          db.exec(`
            CREATE TABLE entries (
              idx  INTEGER PRIMARY KEY,
              term INTEGER NOT NULL,
              type INTEGER NOT NULL,
              data BLOB    NOT NULL,
              crc  INTEGER NOT NULL
            );
            CREATE TABLE state (
              id         INTEGER PRIMARY KEY CHECK (id = 1),
              term       INTEGER NOT NULL,
              vote       TEXT,
              commit_idx INTEGER NOT NULL,
              snap_index INTEGER NOT NULL,
              snap_term  INTEGER NOT NULL,
              snap_sha   TEXT,
              crc        INTEGER NOT NULL
            );
          `);
          const p: Pointer = { hardState: { term: 0, vote: null, commit: 0 }, snapIndex: 0, snapTerm: 0, snapSha: null };
          db.prepare('INSERT INTO state (id, term, vote, commit_idx, snap_index, snap_term, snap_sha, crc) VALUES (1, ?, ?, ?, ?, ?, ?, ?)').run(
            0,
            null,
            0,
            0,
            0,
            null,
            stateChecksum(p),
          );
          db.pragma(`user_version = ${SCHEMA_VERSION}`);
        })();
      } else if (version !== SCHEMA_VERSION) {
        throw new StorageError(`open: ${dbPath} has unsupported schema version ${version}`);
      }

      this.st = {
        insert: INSERT_CHUNKS.map((n): [number, Database.Statement] => [
          n,
          db.prepare(`INSERT INTO entries (idx, term, type, data, crc) VALUES ${Array(n).fill('(?, ?, ?, ?, ?)').join(', ')}`),
        ]),
        deleteFrom: db.prepare('DELETE FROM entries WHERE idx >= ?'),
        deleteUpTo: db.prepare('DELETE FROM entries WHERE idx <= ?'),
        lastIndex: db.prepare('SELECT max(idx) FROM entries').pluck(),
        firstIndex: db.prepare('SELECT min(idx) FROM entries').pluck(),
        termAt: db.prepare('SELECT term FROM entries WHERE idx = ?').pluck(),
        all: db.prepare('SELECT idx, term, type, data, crc FROM entries ORDER BY idx').raw(),
        range: db.prepare('SELECT idx, term, type, data, crc FROM entries WHERE idx >= ? AND idx < ? ORDER BY idx').raw(),
        getState: db.prepare('SELECT term, vote, commit_idx, snap_index, snap_term, snap_sha, crc FROM state WHERE id = 1'),
        putState: db.prepare('UPDATE state SET term = ?, vote = ?, commit_idx = ?, snap_index = ?, snap_term = ?, snap_sha = ?, crc = ? WHERE id = 1'),
        syncNormal: db.prepare('PRAGMA synchronous = NORMAL'),
        syncFull: db.prepare('PRAGMA synchronous = FULL'),
      };

      this.saveTx = db.transaction((plan: SavePlan, entries: Entry[], next: Pointer | null) => {
        if (plan.snapshot) {
          if (plan.snapshot.keepLog) this.st.deleteUpTo.run(plan.snapshot.snap.meta.index);
          else this.st.deleteFrom.run(0);
        }
        if (plan.truncateFrom !== null) this.st.deleteFrom.run(plan.truncateFrom);
        this.insertEntries(entries);
        if (next) this.putState(next);
      });
      this.compactTx = db.transaction((deleteUpTo: number, next: Pointer) => {
        if (deleteUpTo > 0) this.st.deleteUpTo.run(deleteUpTo);
        this.putState(next);
      });

      const row = this.st.getState.get() as StateRow | undefined;
      if (!row) throw new CorruptLogError(`${dbPath}: state row missing`);
      this.pointer = pointerFromRow(row);
      // Never act on (tidy snapshots by, or write on top of) an unverified pointer.
      if (stateChecksum(this.pointer) !== row.crc) throw new CorruptLogError(`${dbPath}: hard state row: checksum mismatch`);
      this.pruneSnapshots(true);
      if (this.cipher) {
        this.plaintextUpTo = (db.prepare(`SELECT max(idx) FROM entries WHERE (type & ${ENCRYPTED_TYPE_BIT}) = 0`).pluck().get() as number | null) ?? 0;
        // Rows written before encryption was turned on: freed pages are zeroed until they are gone.
        if (this.plaintextUpTo > 0) db.pragma('secure_delete = ON');
      }
    } catch (err) {
      try {
        db.close();
      } catch {
        // already failing
      }
      throw this.openError(err, dbPath);
    }
  }

  private openError(err: unknown, dbPath: string): Error {
    if (err instanceof CorruptLogError || err instanceof StorageError) return err;
    if (isCorruptionError(err)) return new CorruptLogError(`${dbPath}: ${errMessage(err)}`);
    return new StorageError(`open: ${dbPath}: ${errMessage(err)}`, err);
  }

  // -------------------------------------------------------------------------------------------------------

  load(): PersistedState {
    this.checkOpen();
    try {
      const row = this.st.getState.get() as StateRow | undefined;
      if (!row) throw new CorruptLogError(`${this.dbPath()}: state row missing`);
      const p = pointerFromRow(row);
      if (stateChecksum(p) !== row.crc) throw new CorruptLogError(`${this.dbPath()}: hard state row: checksum mismatch`);

      let snapshot: Snapshot | null = null;
      if (p.snapIndex > 0) {
        const file = path.join(this.snapDir, snapshotFileName(p.snapIndex, p.snapTerm));
        const read = readSnapshotFile(file, this.cipher);
        if (read.snapshot.meta.index !== p.snapIndex || read.snapshot.meta.term !== p.snapTerm) {
          throw new CorruptLogError(
            `snapshot file ${file}: meta says ${read.snapshot.meta.index}-${read.snapshot.meta.term}, expected ${p.snapIndex}-${p.snapTerm}`,
          );
        }
        if (read.sha !== p.snapSha) throw new CorruptLogError(`snapshot file ${file}: checksum differs from the one recorded in the database`);
        snapshot = read.snapshot;
      }

      const verifier = new LogVerifier(p.snapIndex, p.snapTerm);
      const entries: Entry[] = [];
      for (const r of this.st.all.iterate() as IterableIterator<EntryRow>) {
        const e = this.decodeRow(r);
        verifier.next(e.index, e.term);
        if (e.index > p.snapIndex) entries.push(e);
      }
      verifier.finish(p.hardState.commit);
      this.pointer = p;
      return { hardState: { ...p.hardState }, snapshot, entries };
    } catch (err) {
      if (err instanceof CorruptLogError || err instanceof StorageError) throw err;
      if (isCorruptionError(err)) throw new CorruptLogError(`${this.dbPath()}: ${errMessage(err)}`);
      throw new StorageError(`load: ${errMessage(err)}`, err);
    }
  }

  save(batch: PersistBatch, sync: boolean): void {
    this.checkUsable('save');
    const plan = this.plan('save', () => planSave(this.view(), batch));
    try {
      let snapSha: string | null = null;
      if (plan.snapshot) snapSha = this.writeSnapshot(plan.snapshot.snap);

      const next: Pointer = {
        hardState: plan.hardState ? { ...plan.hardState } : this.pointer.hardState,
        snapIndex: this.pointer.snapIndex,
        snapTerm: this.pointer.snapTerm,
        snapSha: this.pointer.snapSha,
      };
      if (plan.snapshot) {
        next.snapIndex = plan.snapshot.snap.meta.index;
        next.snapTerm = plan.snapshot.snap.meta.term;
        next.snapSha = snapSha;
      }
      const stateChanged = plan.hardState !== null || plan.snapshot !== null;

      if (!sync) this.st.syncNormal.run();
      const t0 = sync && this.onSync ? performance.now() : 0;
      try {
        this.saveTx(plan, batch.entries, stateChanged ? next : null);
      } finally {
        if (!sync) this.st.syncFull.run();
      }
      if (t0 !== 0) this.onSync!((performance.now() - t0) / 1000);
      this.pointer = next;
      if (plan.snapshot) {
        this.pruneSnapshots(false);
        this.dropPrepared(plan.snapshot.snap.meta.index);
      }
      if (plan.snapshot || plan.truncateFrom !== null) this.scrubIfPlaintextGone();
    } catch (err) {
      throw this.poison('save', err);
    }
  }

  compact(snapshot: Snapshot, keepEntries: number): void {
    this.checkUsable('compact');
    const deleteUpTo = this.plan('compact', () => planCompact(this.view(), snapshot, keepEntries));
    if (deleteUpTo === null) {
      this.dropPrepared(snapshot.meta.index);
      return;
    }
    try {
      const snapSha = this.writeSnapshot(snapshot);
      const next: Pointer = {
        hardState: this.pointer.hardState,
        snapIndex: snapshot.meta.index,
        snapTerm: snapshot.meta.term,
        snapSha,
      };
      this.compactTx(deleteUpTo, next);
      this.pointer = next;
      this.pruneSnapshots(false);
      this.scrubIfPlaintextGone();
    } catch (err) {
      throw this.poison('compact', err);
    }
  }

  /** Removes the prepared snapshot file if its snapshot is at or below `index` (superseded or committed). */
  private dropPrepared(index: number): void {
    if (this.prepared === null || this.prepared.index > index) return;
    removeQuietly(this.prepared.tmp);
    this.prepared = null;
  }

  /** See plaintextUpTo. Runs after every transaction that may have deleted rows. */
  private scrubIfPlaintextGone(): void {
    if (this.plaintextUpTo === 0) return;
    const left = this.db.prepare(`SELECT 1 FROM entries WHERE idx <= ? AND (type & ${ENCRYPTED_TYPE_BIT}) = 0 LIMIT 1`).pluck().get(this.plaintextUpTo);
    if (left !== undefined) return;
    this.plaintextUpTo = 0;
    this.db.exec('VACUUM');
    this.db.pragma('wal_checkpoint(TRUNCATE)');
    this.db.pragma('secure_delete = OFF');
  }

  /**
   * Entries with lo <= index < hi (half-open, like etcd's Storage.Entries), read from the stored log,
   * including the tail retained at or below the snapshot index by compact(keepEntries) — this is what a
   * leader uses to catch up a follower from the log instead of sending a snapshot. Checksums are verified
   * (CorruptLogError). Throws RangeError if any part of the range is not stored: below firstIndex()
   * (compacted away) or above lastIndex().
   */
  entriesFrom(lo: number, hi: number): Entry[] {
    this.checkOpen();
    if (!isIndex(lo) || !isIndex(hi) || hi < lo) throw new RangeError(`entriesFrom: bad range [${lo}, ${hi})`);
    if (hi === lo) return [];
    const first = this.firstIndex();
    const last = this.lastIndex();
    if (lo < first) throw new RangeError(`entriesFrom: ${lo} is compacted (first stored index ${first})`);
    if (hi - 1 > last) throw new RangeError(`entriesFrom: ${hi - 1} is beyond the last index ${last}`);
    const out: Entry[] = [];
    for (const r of this.st.range.iterate(lo, hi) as IterableIterator<EntryRow>) {
      const e = this.decodeRow(r);
      const expected = lo + out.length;
      if (e.index !== expected) throw new CorruptLogError(`log gap: ${expected - 1} followed by ${e.index}`);
      out.push(e);
    }
    if (out.length !== hi - lo) throw new CorruptLogError(`log gap: entries ${lo + out.length}..${hi - 1} missing`);
    return out;
  }

  /** First index readable with entriesFrom (may be <= the snapshot index), or snapshot index + 1 if none stored. */
  firstIndex(): number {
    this.checkOpen();
    const v = this.st.firstIndex.get() as number | null;
    return v ?? this.pointer.snapIndex + 1;
  }

  /** Last log index (the snapshot index when no entries follow it). */
  lastIndex(): number {
    this.checkOpen();
    const v = this.st.lastIndex.get() as number | null;
    return Math.max(v ?? 0, this.pointer.snapIndex);
  }

  /**
   * Writes `snapshot`'s file ahead of compact(snapshot, ...) without holding the event loop (sealing and
   * hashing in steps, the write and fsync off the main thread); compact() then only renames it and commits.
   * A failure poisons the instance, as one in compact() would.
   */
  async prepareSnapshot(snapshot: Snapshot): Promise<void> {
    this.checkUsable('prepareSnapshot');
    this.plan('prepareSnapshot', () => planCompact(this.view(), snapshot, 0));
    let prepared: PreparedSnapshot;
    try {
      prepared = await prepareSnapshotFile(this.snapDir, snapshot, this.cipher);
    } catch (err) {
      if (this.closed) return;
      throw this.poison('prepareSnapshot', err);
    }
    if (this.closed || this.failed) {
      removeQuietly(prepared.tmp);
      return;
    }
    if (this.prepared && this.prepared.tmp !== prepared.tmp) removeQuietly(this.prepared.tmp);
    this.prepared = prepared;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.prepared) removeQuietly(this.prepared.tmp);
    this.prepared = null;
    this.db.close();
  }

  // -------------------------------------------------------------------------------------------------------

  private dbPath(): string {
    return path.join(this.dir, DB_FILE);
  }

  private checkOpen(): void {
    if (this.closed) throw new StorageError('storage is closed');
  }

  private checkUsable(op: string): void {
    if (this.failed) throw new StorageError(`storage failed earlier: ${this.failed.message}`, this.failed);
    if (this.closed) throw new StorageError(`${op}: storage is closed`);
  }

  private poison(op: string, err: unknown): StorageError {
    const e = err instanceof StorageError ? err : new StorageError(`${op} failed: ${errMessage(err)}`, err);
    this.failed = e;
    return e;
  }

  /** Runs a validator: RangeError (bad call, nothing written) passes through; anything else poisons. */
  private plan<T>(op: string, fn: () => T): T {
    try {
      return fn();
    } catch (err) {
      if (err instanceof RangeError) throw err;
      throw this.poison(op, err);
    }
  }

  private view(): LogView {
    const p = this.pointer;
    const storedLast = (this.st.lastIndex.get() as number | null) ?? 0;
    return {
      hardState: p.hardState,
      snapIndex: p.snapIndex,
      snapTerm: p.snapTerm,
      lastIndex: Math.max(storedLast, p.snapIndex),
      termAt: (i: number) => {
        if (i === 0) return 0;
        const t = this.st.termAt.get(i) as number | undefined;
        if (t !== undefined) return t;
        return i === p.snapIndex ? p.snapTerm : undefined;
      },
    };
  }

  private insertEntries(entries: Entry[]): void {
    let i = 0;
    for (const [rows, stmt] of this.st.insert) {
      while (entries.length - i >= rows) {
        const params: unknown[] = new Array(rows * 5);
        for (let k = 0; k < rows; k++) {
          const e = entries[i + k]!;
          let code = TYPE_CODE[e.type];
          let data = Buffer.from(e.data.buffer, e.data.byteOffset, e.data.byteLength);
          if (this.cipher) {
            data = this.cipher.seal(data, { kind: 'entry', index: e.index, term: e.term, type: code });
            code |= ENCRYPTED_TYPE_BIT;
          }
          const p = k * 5;
          params[p] = e.index;
          params[p + 1] = e.term;
          params[p + 2] = code;
          params[p + 3] = data;
          params[p + 4] = entryChecksum(e.index, e.term, code, data);
        }
        stmt.run(params);
        i += rows;
      }
    }
  }

  /**
   * Makes `snap` durable as a file and returns its sha256. A snapshot at the current snapshot's index and
   * term describes the same state: the existing file is kept (never overwritten under the committed pointer,
   * whose recorded checksum must keep matching if we crash before the next commit).
   */
  private writeSnapshot(snap: Snapshot): string {
    const p = this.pointer;
    if (p.snapIndex > 0 && snap.meta.index === p.snapIndex && snap.meta.term === p.snapTerm && p.snapSha !== null) {
      return p.snapSha;
    }
    const ready = this.prepared;
    if (ready !== null && ready.data === snap.data && ready.index === snap.meta.index && ready.term === snap.meta.term) {
      this.prepared = null;
      fs.renameSync(ready.tmp, ready.final);
      fsyncDir(this.snapDir);
      return ready.sha;
    }
    return writeSnapshotFile(this.snapDir, snap, this.cipher);
  }

  private putState(p: Pointer): void {
    const h = p.hardState;
    this.st.putState.run(h.term, h.vote, h.commit, p.snapIndex, p.snapTerm, p.snapSha, stateChecksum(p));
  }

  private decodeRow(r: EntryRow): Entry {
    const [index, term, code, data, crc] = r;
    if (!(data instanceof Uint8Array)) throw new CorruptLogError(`log entry ${index}: data is not a blob`);
    if (entryChecksum(index, term, code, data) !== crc) throw new CorruptLogError(`log entry ${index}: checksum mismatch`);
    const plainCode = code & ~ENCRYPTED_TYPE_BIT;
    const type = CODE_TYPE[plainCode];
    if (type === undefined) throw new CorruptLogError(`log entry ${index}: unknown type ${code}`);
    if (plainCode === code) return { index, term, type, data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) };
    if (!this.cipher) throw new StorageError(`load: log entry ${index} is encrypted and this storage was opened without the Raft key`);
    let plain: Buffer;
    try {
      plain = this.cipher.open(data, { kind: 'entry', index, term, type: plainCode });
    } catch (err) {
      if (err instanceof RaftCipherError) throw new CorruptLogError(err.message);
      throw err;
    }
    return { index, term, type, data: new Uint8Array(plain.buffer, plain.byteOffset, plain.byteLength) };
  }

  /**
   * Keeps the current snapshot file plus the newest (snapshotsKept - 1) older ones; deletes the rest, any
   * file newer than the current one (left by a crash between the rename and the commit) and, on open, stray
   * temp files. Unknown file names are left alone.
   */
  private pruneSnapshots(onOpen: boolean): void {
    const { snapIndex, snapTerm } = this.pointer;
    const older: Array<{ name: string; index: number }> = [];
    const remove: string[] = [];
    for (const name of fs.readdirSync(this.snapDir)) {
      if (name.endsWith(TMP_SUFFIX)) {
        if (onOpen) remove.push(name);
        continue;
      }
      const m = SNAP_RE.exec(name);
      if (!m) continue;
      const index = Number(m[1]);
      const term = Number(m[2]);
      if (index === snapIndex && term === snapTerm && snapIndex > 0) continue; // current
      if (index < snapIndex) older.push({ name, index });
      else remove.push(name);
    }
    older.sort((a, b) => b.index - a.index);
    for (const o of older.slice(this.snapshotsKept - 1)) remove.push(o.name);
    for (const name of remove) {
      try {
        fs.unlinkSync(path.join(this.snapDir, name));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------------------
// In-memory implementation (for unit tests of other code). Same validation and semantics as the SQLite one,
// including the tail kept by compact(), but nothing is durable. `failNextWith` injects a StorageError.

export class MemoryRaftStorage implements RaftStorage {
  private hardState: HardState = { term: 0, vote: null, commit: 0 };
  private snapshot: Snapshot | null = null;
  /** Stored entries, contiguous; may start at or below the snapshot index (retained tail). */
  private log: Entry[] = [];
  private failed: StorageError | null = null;
  /** Set to make the next save/compact fail like an I/O error (and poison the instance). */
  failNextWith: string | null = null;

  load(): PersistedState {
    const snapIndex = this.snapshot?.meta.index ?? 0;
    return {
      hardState: { ...this.hardState },
      snapshot: this.snapshot ? copySnapshot(this.snapshot) : null,
      entries: this.log.filter((e) => e.index > snapIndex).map(copyEntry),
    };
  }

  save(batch: PersistBatch, _sync: boolean): void {
    this.checkUsable();
    const plan = planSave(this.view(), batch);
    this.injectFailure('save');
    if (plan.snapshot) {
      const s = plan.snapshot.snap;
      this.snapshot = copySnapshot(s);
      this.log = plan.snapshot.keepLog ? this.log.filter((e) => e.index > s.meta.index) : [];
    }
    if (plan.truncateFrom !== null) {
      const from = plan.truncateFrom;
      this.log = this.log.filter((e) => e.index < from);
    }
    for (const e of batch.entries) this.log.push(copyEntry(e));
    if (plan.hardState) this.hardState = { ...plan.hardState };
  }

  compact(snapshot: Snapshot, keepEntries: number): void {
    this.checkUsable();
    const upTo = planCompact(this.view(), snapshot, keepEntries);
    if (upTo === null) return;
    this.injectFailure('compact');
    this.snapshot = copySnapshot(snapshot);
    this.log = this.log.filter((e) => e.index > upTo);
  }

  /** Same as SqliteRaftStorage.entriesFrom: [lo, hi), RangeError if not stored. */
  entriesFrom(lo: number, hi: number): Entry[] {
    if (hi <= lo) return [];
    const first = this.firstIndex();
    const last = this.lastIndex();
    if (lo < first) throw new RangeError(`entriesFrom: ${lo} is compacted (first stored index ${first})`);
    if (hi - 1 > last) throw new RangeError(`entriesFrom: ${hi - 1} is beyond the last index ${last}`);
    return this.log.filter((e) => e.index >= lo && e.index < hi).map(copyEntry);
  }

  firstIndex(): number {
    return this.log[0]?.index ?? (this.snapshot?.meta.index ?? 0) + 1;
  }

  lastIndex(): number {
    return Math.max(this.log[this.log.length - 1]?.index ?? 0, this.snapshot?.meta.index ?? 0);
  }

  close(): void {}

  private view(): LogView {
    const snapIndex = this.snapshot?.meta.index ?? 0;
    const snapTerm = this.snapshot?.meta.term ?? 0;
    const first = this.log[0]?.index ?? 0;
    return {
      hardState: this.hardState,
      snapIndex,
      snapTerm,
      lastIndex: this.lastIndex(),
      termAt: (i: number) => {
        if (i === 0) return 0;
        const e = this.log[i - first];
        if (this.log.length > 0 && e !== undefined && i >= first) return e.term;
        return i === snapIndex ? snapTerm : undefined;
      },
    };
  }

  private checkUsable(): void {
    if (this.failed) throw new StorageError(`storage failed earlier: ${this.failed.message}`, this.failed);
  }

  private injectFailure(op: string): void {
    if (this.failNextWith === null) return;
    this.failed = new StorageError(`${op} failed: ${this.failNextWith}`);
    this.failNextWith = null;
    throw this.failed;
  }
}

function copySnapshot(s: Snapshot): Snapshot {
  return { meta: { index: s.meta.index, term: s.meta.term, conf: copyConf(s.meta.conf) }, data: new Uint8Array(s.data) };
}
