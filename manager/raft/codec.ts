// Compact binary encoding of a batch of Raft messages (one WebSocket frame per batch).
//
// Wire format, version 1 (all multi-byte integers are variable length, little-endian groups):
//
//   frame    := version:u8(=1) count:uv message{count}            (no trailing bytes allowed)
//   message  := head:u8 from:str to:str term:int index:int logTerm:int commit:int rejectHint:int
//               context:str entryCount:uv entry{entryCount} [chunk]   (chunk present iff head bit 5)
//   head     := bits 0-3 type (index into MESSAGE_TYPES), bit 4 reject, bit 5 snapshot present,
//               bits 6-7 zero
//   entry    := index:int term:int etype:u8 (0 normal, 1 conf) data:bytes
//   chunk    := metaIndex:int metaTerm:int voters:strs learners:strs removed:strs offset:int total:int
//               data:bytes
//   strs     := count:uv str{count}
//   str      := len:uv utf8{len}    (well-formed UTF-8)
//   bytes    := len:uv raw{len}
//   uv       := unsigned LEB128, at most 8 bytes, value <= 2^53-1, minimal (no trailing 0x00 group)
//   int      := sign-magnitude varint for safe integers: first byte = cont(bit 7) | sign(bit 6) |
//               magnitude bits 0-5; following bytes = cont(bit 7) | next 7 magnitude bits; at most
//               8 bytes, magnitude <= 2^53-1, minimal, no negative zero. 0..63 take one byte.
//
// Decoding is strict: anything truncated, out of range, non-minimal or left over throws CodecError.
// Payloads (entry data, snapshot chunk data) are copied with TypedArray.set into fresh Uint8Arrays so
// decoded messages never pin the (possibly much larger) frame buffer.
import { MESSAGE_TYPES } from './types.ts';
import type { ConfState, Entry, EntryType, Message, MessageType, SnapshotChunk } from './types.ts';

export const CODEC_VERSION = 1;

/** A buffer could not be decoded (or a message could not be encoded). Never thrown for valid input. */
export class CodecError extends Error {
  readonly code = 'ERAFTCODEC';
  constructor(
    message: string,
    /** Byte offset where decoding failed (-1 when encoding). */
    readonly offset: number = -1,
  ) {
    super(message);
    this.name = 'CodecError';
  }
}

const MAX_SAFE = Number.MAX_SAFE_INTEGER;
const TYPE_INDEX = new Map<MessageType, number>(MESSAGE_TYPES.map((t, i) => [t, i]));
const HEAD_REJECT = 0x10;
const HEAD_SNAPSHOT = 0x20;
const HEAD_RESERVED = 0xc0;
/** Smallest possible encodings, used to refuse absurd counts before looping over them. */
const MIN_MESSAGE_BYTES = 10;
const MIN_ENTRY_BYTES = 4;

const textEncoder = new TextEncoder();
/** String.prototype.isWellFormed exists in Node 20 (V8 11.3) but not in the ES2022 lib typings. */
type WellFormedString = string & { isWellFormed(): boolean };
const textDecoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

// ---------------------------------------------------------------------------------------------------
// Sizing

function uvSize(v: number): number {
  if (v < 0x80) return 1;
  if (v < 0x4000) return 2;
  if (v < 0x200000) return 3;
  if (v < 0x10000000) return 4;
  let n = 4;
  let m = Math.floor(v / 0x10000000);
  while (m > 0) {
    n++;
    m = Math.floor(m / 0x80);
  }
  return n;
}

function intSize(v: number): number {
  const m = v < 0 ? -v : v;
  if (m < 0x40) return 1;
  if (m < 0x2000) return 2;
  if (m < 0x100000) return 3;
  if (m < 0x8000000) return 4;
  let n = 4;
  let r = Math.floor(m / 0x8000000);
  while (r > 0) {
    n++;
    r = Math.floor(r / 0x80);
  }
  return n;
}

/** UTF-8 byte length; short ASCII strings (ids, contexts) are measured without a native call. */
function utf8Length(s: string): number {
  const n = s.length;
  if (n <= 64) {
    let i = 0;
    while (i < n && s.charCodeAt(i) < 0x80) i++;
    if (i === n) return n;
  }
  return Buffer.byteLength(s, 'utf8');
}

function checkInt(v: unknown, field: string): void {
  if (typeof v !== 'number' || !Number.isSafeInteger(v)) {
    throw new CodecError(`cannot encode ${field}: ${String(v)} is not a safe integer`);
  }
}

function checkString(v: unknown, field: string): void {
  if (typeof v !== 'string') throw new CodecError(`cannot encode ${field}: not a string`);
}

function checkBytes(v: unknown, field: string): void {
  if (!(v instanceof Uint8Array)) throw new CodecError(`cannot encode ${field}: not a Uint8Array`);
}

function strSize(s: string): number {
  const len = utf8Length(s);
  return uvSize(len) + len;
}

function strsSize(list: readonly string[], field: string): number {
  if (!Array.isArray(list)) throw new CodecError(`cannot encode ${field}: not an array`);
  let n = uvSize(list.length);
  for (const s of list) {
    checkString(s, field);
    n += strSize(s);
  }
  return n;
}

/** Exact encoded size of one message inside a frame. Validates the message (throws CodecError). */
export function messageSize(m: Message): number {
  if (TYPE_INDEX.get(m.type) === undefined) {
    throw new CodecError(`cannot encode message type ${JSON.stringify(m.type)}`);
  }
  checkString(m.from, 'from');
  checkString(m.to, 'to');
  checkString(m.context, 'context');
  checkInt(m.term, 'term');
  checkInt(m.index, 'index');
  checkInt(m.logTerm, 'logTerm');
  checkInt(m.commit, 'commit');
  checkInt(m.rejectHint, 'rejectHint');
  if (!Array.isArray(m.entries)) throw new CodecError('cannot encode entries: not an array');
  let n =
    1 +
    strSize(m.from) +
    strSize(m.to) +
    intSize(m.term) +
    intSize(m.index) +
    intSize(m.logTerm) +
    intSize(m.commit) +
    intSize(m.rejectHint) +
    strSize(m.context) +
    uvSize(m.entries.length);
  for (const e of m.entries) {
    checkInt(e.index, 'entry.index');
    checkInt(e.term, 'entry.term');
    if (e.type !== 'normal' && e.type !== 'conf') {
      throw new CodecError(`cannot encode entry type ${JSON.stringify(e.type)}`);
    }
    checkBytes(e.data, 'entry.data');
    n += intSize(e.index) + intSize(e.term) + 1 + uvSize(e.data.length) + e.data.length;
  }
  const s = m.snapshot;
  if (s !== null) {
    if (typeof s !== 'object' || s === undefined) throw new CodecError('cannot encode snapshot');
    checkInt(s.meta.index, 'snapshot.meta.index');
    checkInt(s.meta.term, 'snapshot.meta.term');
    checkInt(s.offset, 'snapshot.offset');
    checkInt(s.total, 'snapshot.total');
    checkBytes(s.data, 'snapshot.data');
    n +=
      intSize(s.meta.index) +
      intSize(s.meta.term) +
      strsSize(s.meta.conf.voters, 'snapshot.meta.conf.voters') +
      strsSize(s.meta.conf.learners, 'snapshot.meta.conf.learners') +
      strsSize(s.meta.conf.removed, 'snapshot.meta.conf.removed') +
      intSize(s.offset) +
      intSize(s.total) +
      uvSize(s.data.length) +
      s.data.length;
  }
  return n;
}

/** Exact size of the frame `encodeMessages(msgs)` would produce. */
export function encodedSize(msgs: readonly Message[]): number {
  let n = 1 + uvSize(msgs.length);
  for (const m of msgs) n += messageSize(m);
  return n;
}

// ---------------------------------------------------------------------------------------------------
// Encoding

class Writer {
  pos = 0;
  constructor(readonly buf: Uint8Array) {}

  u8(v: number): void {
    this.buf[this.pos++] = v;
  }

  uv(v: number): void {
    const buf = this.buf;
    while (v >= 0x80) {
      buf[this.pos++] = (v % 0x80) | 0x80;
      v = Math.floor(v / 0x80);
    }
    buf[this.pos++] = v;
  }

  int(v: number): void {
    const buf = this.buf;
    if (v >= 0 && v < 0x40) {
      buf[this.pos++] = v;
      return;
    }
    const neg = v < 0;
    let m = neg ? -v : v;
    const first = (m % 0x40) | (neg ? 0x40 : 0);
    m = Math.floor(m / 0x40);
    if (m === 0) {
      buf[this.pos++] = first;
      return;
    }
    buf[this.pos++] = first | 0x80;
    while (m >= 0x80) {
      buf[this.pos++] = (m % 0x80) | 0x80;
      m = Math.floor(m / 0x80);
    }
    buf[this.pos++] = m;
  }

  str(s: string): void {
    const n = s.length;
    const buf = this.buf;
    if (n < 0x80) {
      // ASCII fast path: one length byte, then the characters.
      const start = this.pos;
      let i = 0;
      for (; i < n; i++) {
        const c = s.charCodeAt(i);
        if (c >= 0x80) break;
        buf[start + 1 + i] = c;
      }
      if (i === n) {
        buf[start] = n;
        this.pos = start + 1 + n;
        return;
      }
    }
    if (!(s as WellFormedString).isWellFormed()) throw new CodecError('cannot encode string with lone surrogates');
    const len = Buffer.byteLength(s, 'utf8');
    this.uv(len);
    const { written } = textEncoder.encodeInto(s, buf.subarray(this.pos, this.pos + len));
    if (written !== len) throw new CodecError('internal: utf-8 length mismatch');
    this.pos += len;
  }

  strs(list: readonly string[]): void {
    this.uv(list.length);
    for (const s of list) this.str(s);
  }

  bytes(data: Uint8Array): void {
    this.uv(data.length);
    this.buf.set(data, this.pos);
    this.pos += data.length;
  }

  message(m: Message): void {
    const t = TYPE_INDEX.get(m.type) as number;
    this.u8(t | (m.reject ? HEAD_REJECT : 0) | (m.snapshot !== null ? HEAD_SNAPSHOT : 0));
    this.str(m.from);
    this.str(m.to);
    this.int(m.term);
    this.int(m.index);
    this.int(m.logTerm);
    this.int(m.commit);
    this.int(m.rejectHint);
    this.str(m.context);
    const entries = m.entries;
    this.uv(entries.length);
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i] as Entry;
      this.int(e.index);
      this.int(e.term);
      this.u8(e.type === 'conf' ? 1 : 0);
      this.bytes(e.data);
    }
    const s = m.snapshot;
    if (s !== null) {
      this.int(s.meta.index);
      this.int(s.meta.term);
      this.strs(s.meta.conf.voters);
      this.strs(s.meta.conf.learners);
      this.strs(s.meta.conf.removed);
      this.int(s.offset);
      this.int(s.total);
      this.bytes(s.data);
    }
  }
}

/**
 * Encodes a batch of messages as one frame. Throws CodecError if a message is not encodable (unknown
 * type, a number that is not a safe integer, a string with lone surrogates, data not a Uint8Array).
 */
export function encodeMessages(msgs: readonly Message[]): Uint8Array {
  const size = encodedSize(msgs);
  // Every byte is written below (checked at the end), so the uninitialised allocation is safe.
  const buf = Buffer.allocUnsafe(size);
  const w = new Writer(buf);
  w.u8(CODEC_VERSION);
  w.uv(msgs.length);
  for (const m of msgs) w.message(m);
  if (w.pos !== size) throw new CodecError(`internal: encoded ${w.pos} bytes, expected ${size}`);
  return buf;
}

// ---------------------------------------------------------------------------------------------------
// Decoding

class Reader {
  pos = 0;
  /** Where we are, for error messages. */
  msg = -1;
  entry = -1;

  constructor(readonly buf: Uint8Array) {}

  fail(field: string, what: string, at: number = this.pos): never {
    let where = '';
    if (this.msg >= 0) where += ` in message ${this.msg}`;
    if (this.entry >= 0) where += ` entry ${this.entry}`;
    throw new CodecError(`${what} reading ${field}${where} at offset ${at}`, at);
  }

  need(n: number, field: string): void {
    if (n > this.buf.length - this.pos) {
      this.fail(field, `truncated buffer (need ${n} bytes, have ${this.buf.length - this.pos})`);
    }
  }

  u8(field: string): number {
    if (this.pos >= this.buf.length) this.fail(field, 'truncated buffer');
    return this.buf[this.pos++] as number;
  }

  uv(field: string): number {
    const buf = this.buf;
    const start = this.pos;
    let b = this.u8(field);
    if (b < 0x80) return b;
    let v = b & 0x7f;
    let mul = 0x80;
    for (let i = 1; ; i++) {
      if (i >= 8) this.fail(field, 'varint too long', start);
      if (this.pos >= buf.length) this.fail(field, 'truncated varint', start);
      b = buf[this.pos++] as number;
      v += (b & 0x7f) * mul;
      if (b < 0x80) {
        if (b === 0) this.fail(field, 'non-minimal varint', start);
        break;
      }
      mul *= 0x80;
    }
    if (v > MAX_SAFE) this.fail(field, 'varint exceeds 2^53-1', start);
    return v;
  }

  int(field: string): number {
    const buf = this.buf;
    const start = this.pos;
    let b = this.u8(field);
    const neg = (b & 0x40) !== 0;
    let m = b & 0x3f;
    if (b >= 0x80) {
      let mul = 0x40;
      for (let i = 1; ; i++) {
        if (i >= 8) this.fail(field, 'integer too long', start);
        if (this.pos >= buf.length) this.fail(field, 'truncated integer', start);
        b = buf[this.pos++] as number;
        m += (b & 0x7f) * mul;
        if (b < 0x80) {
          if (b === 0) this.fail(field, 'non-minimal integer', start);
          break;
        }
        mul *= 0x80;
      }
      if (m > MAX_SAFE) this.fail(field, 'integer exceeds 2^53-1', start);
    }
    if (neg) {
      if (m === 0) this.fail(field, 'negative zero', start);
      return -m;
    }
    return m;
  }

  len(field: string): number {
    const start = this.pos;
    const n = this.uv(field);
    if (n > this.buf.length - this.pos) {
      this.fail(field, `length ${n} exceeds remaining ${this.buf.length - this.pos} bytes`, start);
    }
    return n;
  }

  str(field: string): string {
    const n = this.len(field);
    const buf = this.buf;
    const start = this.pos;
    if (n <= 32) {
      let s = '';
      let i = 0;
      for (; i < n; i++) {
        const c = buf[start + i] as number;
        if (c >= 0x80) break;
        s += String.fromCharCode(c);
      }
      if (i === n) {
        this.pos = start + n;
        return s;
      }
    }
    let s: string;
    try {
      s = textDecoder.decode(buf.subarray(start, start + n));
    } catch {
      this.fail(field, 'invalid utf-8', start);
    }
    this.pos = start + n;
    return s;
  }

  strs(field: string): string[] {
    const start = this.pos;
    const count = this.uv(field);
    if (count > this.buf.length - this.pos) this.fail(field, `list count ${count} too large`, start);
    const out: string[] = [];
    for (let i = 0; i < count; i++) out.push(this.str(field));
    return out;
  }

  bytes(field: string): Uint8Array {
    const n = this.len(field);
    const out = new Uint8Array(n);
    if (n > 0) out.set(this.buf.subarray(this.pos, this.pos + n));
    this.pos += n;
    return out;
  }

  message(): Message {
    const headAt = this.pos;
    const head = this.u8('type');
    if ((head & HEAD_RESERVED) !== 0) this.fail('type', `reserved bits set in 0x${head.toString(16)}`, headAt);
    const type = MESSAGE_TYPES[head & 0x0f];
    if (type === undefined) this.fail('type', `unknown message type ${head & 0x0f}`, headAt);
    const from = this.str('from');
    const to = this.str('to');
    const term = this.int('term');
    const index = this.int('index');
    const logTerm = this.int('logTerm');
    const commit = this.int('commit');
    const rejectHint = this.int('rejectHint');
    const context = this.str('context');
    const countAt = this.pos;
    const count = this.uv('entries.count');
    if (count * MIN_ENTRY_BYTES > this.buf.length - this.pos) {
      this.fail('entries.count', `entry count ${count} exceeds what the buffer can hold`, countAt);
    }
    const entries: Entry[] = [];
    for (let i = 0; i < count; i++) {
      this.entry = i;
      const eIndex = this.int('entry.index');
      const eTerm = this.int('entry.term');
      const tAt = this.pos;
      const t = this.u8('entry.type');
      if (t > 1) this.fail('entry.type', `unknown entry type ${t}`, tAt);
      const etype: EntryType = t === 1 ? 'conf' : 'normal';
      entries.push({ index: eIndex, term: eTerm, type: etype, data: this.bytes('entry.data') });
    }
    this.entry = -1;
    let snapshot: SnapshotChunk | null = null;
    if ((head & HEAD_SNAPSHOT) !== 0) {
      const metaIndex = this.int('snapshot.meta.index');
      const metaTerm = this.int('snapshot.meta.term');
      const conf: ConfState = {
        voters: this.strs('snapshot.meta.conf.voters'),
        learners: this.strs('snapshot.meta.conf.learners'),
        removed: this.strs('snapshot.meta.conf.removed'),
      };
      const offset = this.int('snapshot.offset');
      const total = this.int('snapshot.total');
      const data = this.bytes('snapshot.data');
      snapshot = { meta: { index: metaIndex, term: metaTerm, conf }, offset, total, data };
    }
    return {
      type,
      from,
      to,
      term,
      index,
      logTerm,
      commit,
      entries,
      reject: (head & HEAD_REJECT) !== 0,
      rejectHint,
      context,
      snapshot,
    };
  }
}

/** Decodes one frame. Throws CodecError (never anything else) if the buffer is not exactly one valid frame. */
export function decodeMessages(buf: Uint8Array): Message[] {
  if (!(buf instanceof Uint8Array)) throw new CodecError('not a Uint8Array', 0);
  const r = new Reader(buf);
  const version = r.u8('version');
  if (version !== CODEC_VERSION) r.fail('version', `unsupported version ${version}`, 0);
  const countAt = r.pos;
  const count = r.uv('count');
  if (count * MIN_MESSAGE_BYTES > buf.length - r.pos) {
    r.fail('count', `message count ${count} exceeds what the buffer can hold`, countAt);
  }
  const out: Message[] = [];
  for (let i = 0; i < count; i++) {
    r.msg = i;
    out.push(r.message());
  }
  r.msg = -1;
  if (r.pos !== buf.length) r.fail('end of frame', `${buf.length - r.pos} trailing bytes`);
  return out;
}
