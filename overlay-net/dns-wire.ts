// The DNS wire format (RFC 1035, with EDNS0 from RFC 6891 and TCP framing from RFC 7766), as far as Shoal's
// embedded resolver needs it. Pure: no I/O, no clocks. Decoding is strict and bounds-checked everywhere: a
// malformed message raises DnsWireError (never a RangeError or an out-of-bounds read), compression pointers
// must point strictly backwards (so they cannot loop) and into the message body, names are limited to 255
// octets and labels to 63, every RDATA must consume exactly its RDLENGTH and nothing may trail the last
// record.
//
// Names are carried in presentation form without the trailing dot ('' is the root): a label's printable
// ASCII is kept as is, '.' and '\' inside a label are escaped as '\.' and '\\', anything else as '\DDD'.

export const TYPE = {
  A: 1,
  NS: 2,
  CNAME: 5,
  SOA: 6,
  PTR: 12,
  MX: 15,
  TXT: 16,
  AAAA: 28,
  SRV: 33,
  OPT: 41,
  IXFR: 251,
  AXFR: 252,
  ANY: 255,
} as const;

export const CLASS = { IN: 1, CH: 3, ANY: 255 } as const;

export const RCODE = {
  NOERROR: 0,
  FORMERR: 1,
  SERVFAIL: 2,
  NXDOMAIN: 3,
  NOTIMP: 4,
  REFUSED: 5,
  /** Extended (EDNS) code: needs an OPT record to carry its upper bits. */
  BADVERS: 16,
} as const;

export const OPCODE_QUERY = 0;

/** The classic UDP limit without EDNS. */
export const UDP_MIN_SIZE = 512;
/** The UDP payload size we advertise and never exceed (the 2020 DNS flag day value: no fragmentation). */
export const UDP_MAX_SIZE = 1232;
const HEADER_SIZE = 12;
const MAX_MESSAGE = 65535;
const MAX_NAME_WIRE = 255;
const MAX_LABEL = 63;
const MAX_POINTER_HOPS = 64;

export type DnsWireErrorCode = 'short' | 'label' | 'name-too-long' | 'pointer' | 'rdata' | 'opt' | 'trailing' | 'too-large' | 'bad-name';

export class DnsWireError extends Error {
  constructor(
    readonly code: DnsWireErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'DnsWireError';
  }
}

export interface DnsQuestion {
  name: string;
  type: number;
  class: number;
}

export type RData =
  | { kind: 'a'; address: string }
  /** NS, CNAME, PTR. */
  | { kind: 'name'; target: string }
  | { kind: 'srv'; priority: number; weight: number; port: number; target: string }
  | { kind: 'soa'; mname: string; rname: string; serial: number; refresh: number; retry: number; expire: number; minimum: number }
  | { kind: 'raw'; bytes: Uint8Array };

export interface DnsRecord {
  name: string;
  type: number;
  class: number;
  ttl: number;
  data: RData;
}

export interface EdnsOption {
  code: number;
  data: Uint8Array;
}

export interface Edns {
  /** Requestor's (or our) UDP payload size: the OPT record's CLASS field. */
  udpSize: number;
  /** Upper 8 bits of the 12-bit extended RCODE. */
  extRcode: number;
  version: number;
  dnssecOk: boolean;
  options: EdnsOption[];
}

/** The fixed header's fields. */
export interface HeaderFlags {
  id: number;
  qr: boolean;
  opcode: number;
  aa: boolean;
  tc: boolean;
  rd: boolean;
  ra: boolean;
  ad: boolean;
  cd: boolean;
  /** The header's 4-bit RCODE (with `edns.extRcode` the full code is extRcode << 4 | rcode). */
  rcode: number;
}

export interface DnsMessage extends HeaderFlags {
  questions: DnsQuestion[];
  answers: DnsRecord[];
  authority: DnsRecord[];
  /** Additional records other than the OPT pseudo-record, which is `edns`. */
  additional: DnsRecord[];
  edns?: Edns;
}

export function aRecord(name: string, address: string, ttl: number): DnsRecord {
  return { name, type: TYPE.A, class: CLASS.IN, ttl, data: { kind: 'a', address } };
}

export function ptrRecord(name: string, target: string, ttl: number): DnsRecord {
  return { name, type: TYPE.PTR, class: CLASS.IN, ttl, data: { kind: 'name', target } };
}

export function srvRecord(name: string, ttl: number, priority: number, weight: number, port: number, target: string): DnsRecord {
  return { name, type: TYPE.SRV, class: CLASS.IN, ttl, data: { kind: 'srv', priority, weight, port, target } };
}

export function soaRecord(name: string, ttl: number, soa: Omit<Extract<RData, { kind: 'soa' }>, 'kind'>): DnsRecord {
  return { name, type: TYPE.SOA, class: CLASS.IN, ttl, data: { kind: 'soa', ...soa } };
}

// ---------------------------------------------------------------------------------------------------------
// Names

/** Presentation form of a name → its labels as latin1 strings (one char per octet). Throws DnsWireError. */
export function nameToLabels(name: string): string[] {
  if (name === '' || name === '.') return [];
  const labels: string[] = [];
  let cur = '';
  let i = 0;
  // A trailing unescaped dot is allowed (fully qualified form).
  const end = name.length;
  while (i < end) {
    const c = name.charCodeAt(i);
    if (c === 0x2e /* . */) {
      if (cur === '') throw new DnsWireError('bad-name', `empty label in ${JSON.stringify(name)}`);
      labels.push(cur);
      cur = '';
      i++;
      if (i === end) return checkLabels(labels, name);
      continue;
    }
    if (c === 0x5c /* \ */) {
      const d = name.slice(i + 1, i + 4);
      if (/^[0-9]{3}$/.test(d)) {
        const v = Number(d);
        if (v > 255) throw new DnsWireError('bad-name', `bad escape in ${JSON.stringify(name)}`);
        cur += String.fromCharCode(v);
        i += 4;
        continue;
      }
      if (i + 1 >= end) throw new DnsWireError('bad-name', `dangling escape in ${JSON.stringify(name)}`);
      cur += name[i + 1];
      i += 2;
      continue;
    }
    if (c > 0xff) throw new DnsWireError('bad-name', `non-latin1 character in ${JSON.stringify(name)}`);
    cur += name[i];
    i++;
  }
  if (cur === '') throw new DnsWireError('bad-name', `empty label in ${JSON.stringify(name)}`);
  labels.push(cur);
  return checkLabels(labels, name);
}

function checkLabels(labels: string[], name: string): string[] {
  let wire = 1;
  for (const l of labels) {
    if (l.length > MAX_LABEL) throw new DnsWireError('label', `label longer than 63 octets in ${JSON.stringify(name)}`);
    wire += l.length + 1;
  }
  if (wire > MAX_NAME_WIRE) throw new DnsWireError('name-too-long', `name longer than 255 octets: ${JSON.stringify(name)}`);
  return labels;
}

function labelToPresentation(label: string): string {
  let out = '';
  for (let i = 0; i < label.length; i++) {
    const c = label.charCodeAt(i);
    if (c === 0x2e) out += '\\.';
    else if (c === 0x5c) out += '\\\\';
    else if (c > 0x20 && c < 0x7f) out += label[i];
    else out += '\\' + String(c).padStart(3, '0');
  }
  return out;
}

export function labelsToName(labels: readonly string[]): string {
  return labels.map(labelToPresentation).join('.');
}

/** ASCII-only lower-casing (RFC 4343: DNS names compare case-insensitively in ASCII only). */
export function asciiLower(s: string): string {
  // For pure ASCII, toLowerCase maps exactly A-Z.
  // biome-ignore lint/suspicious/noControlCharactersInRegex: the ASCII range starts at NUL; this tests for non-ASCII
  if (!/[^\x00-\x7f]/.test(s)) return s.toLowerCase();
  let out = '';
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    out += c >= 0x41 && c <= 0x5a ? String.fromCharCode(c + 32) : s[i];
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// Decoding

class Reader {
  pos = 0;
  constructor(readonly buf: Uint8Array) {}

  need(n: number, what: string): void {
    if (this.pos + n > this.buf.length) throw new DnsWireError('short', `message ends inside ${what} at offset ${this.pos}`);
  }
  u8(what: string): number {
    this.need(1, what);
    return this.buf[this.pos++]!;
  }
  u16(what: string): number {
    this.need(2, what);
    const v = (this.buf[this.pos]! << 8) | this.buf[this.pos + 1]!;
    this.pos += 2;
    return v;
  }
  u32(what: string): number {
    this.need(4, what);
    const b = this.buf;
    const p = this.pos;
    const v = ((b[p]! << 24) >>> 0) + ((b[p + 1]! << 16) | (b[p + 2]! << 8) | b[p + 3]!);
    this.pos += 4;
    return v;
  }
  bytes(n: number, what: string): Uint8Array {
    this.need(n, what);
    const v = this.buf.slice(this.pos, this.pos + n);
    this.pos += n;
    return v;
  }

  /** A possibly compressed name; advances past its in-place part only. */
  name(): string {
    const labels: string[] = [];
    let wire = 1;
    let p = this.pos;
    let jumped = false;
    let hops = 0;
    // Pointers must target an offset before the pointer itself, and not the header: strictly decreasing
    // targets cannot loop, and the hop limit bounds the work regardless.
    for (;;) {
      if (p >= this.buf.length) throw new DnsWireError('short', `message ends inside a name at offset ${p}`);
      const len = this.buf[p]!;
      if (len === 0) {
        if (!jumped) this.pos = p + 1;
        break;
      }
      const top = len & 0xc0;
      if (top === 0xc0) {
        if (p + 1 >= this.buf.length) throw new DnsWireError('short', `message ends inside a compression pointer at offset ${p}`);
        const target = ((len & 0x3f) << 8) | this.buf[p + 1]!;
        if (target >= p || target < HEADER_SIZE)
          throw new DnsWireError('pointer', `compression pointer at ${p} to ${target} does not point backwards into the body`);
        if (++hops > MAX_POINTER_HOPS) throw new DnsWireError('pointer', 'too many compression pointers');
        if (!jumped) this.pos = p + 2;
        jumped = true;
        p = target;
        continue;
      }
      if (top !== 0) throw new DnsWireError('label', `reserved label type 0x${top.toString(16)} at offset ${p}`);
      wire += len + 1;
      if (wire > MAX_NAME_WIRE) throw new DnsWireError('name-too-long', 'name longer than 255 octets');
      if (p + 1 + len > this.buf.length) throw new DnsWireError('short', `message ends inside a label at offset ${p}`);
      let label = '';
      for (let i = 0; i < len; i++) label += String.fromCharCode(this.buf[p + 1 + i]!);
      labels.push(label);
      p += 1 + len;
    }
    return labelsToName(labels);
  }
}

export interface DecodedHeader extends HeaderFlags {
  qdcount: number;
  ancount: number;
  nscount: number;
  arcount: number;
}

/** The 12-byte header, or undefined when the buffer is shorter than that. */
export function decodeHeader(buf: Uint8Array): DecodedHeader | undefined {
  if (buf.length < HEADER_SIZE) return undefined;
  const f = (buf[2]! << 8) | buf[3]!;
  return {
    id: (buf[0]! << 8) | buf[1]!,
    qr: (f & 0x8000) !== 0,
    opcode: (f >> 11) & 0xf,
    aa: (f & 0x0400) !== 0,
    tc: (f & 0x0200) !== 0,
    rd: (f & 0x0100) !== 0,
    ra: (f & 0x0080) !== 0,
    ad: (f & 0x0020) !== 0,
    cd: (f & 0x0010) !== 0,
    rcode: f & 0xf,
    qdcount: (buf[4]! << 8) | buf[5]!,
    ancount: (buf[6]! << 8) | buf[7]!,
    nscount: (buf[8]! << 8) | buf[9]!,
    arcount: (buf[10]! << 8) | buf[11]!,
  };
}

function readQuestion(r: Reader): DnsQuestion {
  const name = r.name();
  const type = r.u16('a question type');
  const cls = r.u16('a question class');
  return { name, type, class: cls };
}

type RawRecord = { rec: DnsRecord; opt?: Edns };

function readRecord(r: Reader): RawRecord {
  const name = r.name();
  const type = r.u16('a record type');
  const cls = r.u16('a record class');
  const ttl = r.u32('a record TTL');
  const rdlen = r.u16('a record length');
  r.need(rdlen, 'record data');
  const start = r.pos;
  const end = start + rdlen;
  if (type === TYPE.OPT) {
    if (name !== '') throw new DnsWireError('opt', 'OPT record with a non-root owner name');
    const options: EdnsOption[] = [];
    while (r.pos < end) {
      if (r.pos + 4 > end) throw new DnsWireError('opt', 'truncated EDNS option');
      const code = r.u16('an EDNS option');
      const len = r.u16('an EDNS option');
      if (r.pos + len > end) throw new DnsWireError('opt', 'EDNS option overruns the OPT record');
      options.push({ code, data: r.bytes(len, 'an EDNS option') });
    }
    const opt: Edns = { udpSize: cls, extRcode: ttl >>> 24, version: (ttl >>> 16) & 0xff, dnssecOk: (ttl & 0x8000) !== 0, options };
    return { rec: { name, type, class: cls, ttl, data: { kind: 'raw', bytes: r.buf.slice(start, end) } }, opt };
  }
  let data: RData;
  // A compressed name inside RDATA may point anywhere before it, but its in-place part must end exactly
  // at the end of the RDATA.
  const sub = (): string => {
    const n = r.name();
    if (r.pos > end) throw new DnsWireError('rdata', `name overruns its record data at offset ${start}`);
    return n;
  };
  if (type === TYPE.A && (cls === CLASS.IN || cls === CLASS.ANY)) {
    if (rdlen !== 4) throw new DnsWireError('rdata', `A record with ${rdlen} bytes of data`);
    const b = r.bytes(4, 'an address');
    data = { kind: 'a', address: `${b[0]}.${b[1]}.${b[2]}.${b[3]}` };
  } else if (type === TYPE.NS || type === TYPE.CNAME || type === TYPE.PTR) {
    data = { kind: 'name', target: sub() };
  } else if (type === TYPE.SRV) {
    if (rdlen < 7) throw new DnsWireError('rdata', 'short SRV record');
    const priority = r.u16('SRV data');
    const weight = r.u16('SRV data');
    const port = r.u16('SRV data');
    data = { kind: 'srv', priority, weight, port, target: sub() };
  } else if (type === TYPE.SOA) {
    const mname = sub();
    const rname = sub();
    if (r.pos + 20 > end) throw new DnsWireError('rdata', 'short SOA record');
    data = { kind: 'soa', mname, rname, serial: r.u32('SOA'), refresh: r.u32('SOA'), retry: r.u32('SOA'), expire: r.u32('SOA'), minimum: r.u32('SOA') };
  } else {
    data = { kind: 'raw', bytes: r.bytes(rdlen, 'record data') };
  }
  if (r.pos !== end) throw new DnsWireError('rdata', `record data of type ${type} is ${rdlen} bytes but ${r.pos - start} were used`);
  return { rec: { name, type, class: cls, ttl, data } };
}

/** Decodes a whole message strictly. Throws DnsWireError. */
export function decodeMessage(buf: Uint8Array): DnsMessage {
  if (buf.length > MAX_MESSAGE) throw new DnsWireError('too-large', 'message longer than 65535 bytes');
  const h = decodeHeader(buf);
  if (!h) throw new DnsWireError('short', 'message shorter than a header');
  const r = new Reader(buf);
  r.pos = HEADER_SIZE;
  const msg: DnsMessage = {
    id: h.id,
    qr: h.qr,
    opcode: h.opcode,
    aa: h.aa,
    tc: h.tc,
    rd: h.rd,
    ra: h.ra,
    ad: h.ad,
    cd: h.cd,
    rcode: h.rcode,
    questions: [],
    answers: [],
    authority: [],
    additional: [],
  };
  // Every question takes at least 5 bytes and every record at least 11: reject impossible counts before
  // looping over them.
  if (h.qdcount * 5 + (h.ancount + h.nscount + h.arcount) * 11 > buf.length - HEADER_SIZE) {
    throw new DnsWireError('short', 'section counts exceed the message length');
  }
  for (let i = 0; i < h.qdcount; i++) msg.questions.push(readQuestion(r));
  for (let i = 0; i < h.ancount; i++) {
    const x = readRecord(r);
    if (x.opt) throw new DnsWireError('opt', 'OPT record outside the additional section');
    msg.answers.push(x.rec);
  }
  for (let i = 0; i < h.nscount; i++) {
    const x = readRecord(r);
    if (x.opt) throw new DnsWireError('opt', 'OPT record outside the additional section');
    msg.authority.push(x.rec);
  }
  for (let i = 0; i < h.arcount; i++) {
    const x = readRecord(r);
    if (x.opt) {
      if (msg.edns) throw new DnsWireError('opt', 'more than one OPT record');
      msg.edns = x.opt;
    } else msg.additional.push(x.rec);
  }
  if (r.pos !== buf.length) throw new DnsWireError('trailing', `${buf.length - r.pos} bytes after the last record`);
  return msg;
}

/**
 * The header and the first question of a message whose records are not needed (a forwarded response, which
 * is relayed as is). Undefined when even those cannot be read.
 */
export function decodeHeaderAndQuestion(buf: Uint8Array): { header: DecodedHeader; question?: DnsQuestion } | undefined {
  const header = decodeHeader(buf);
  if (!header) return undefined;
  if (header.qdcount === 0) return { header };
  try {
    const r = new Reader(buf);
    r.pos = HEADER_SIZE;
    return { header, question: readQuestion(r) };
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------------------------------------------------
// Queries as a server sees them

export interface DnsQuery {
  id: number;
  opcode: number;
  rd: boolean;
  cd: boolean;
  question: DnsQuestion;
  edns?: Edns;
}

export type QueryParse =
  | { kind: 'query'; query: DnsQuery }
  /** Answer with this RCODE (FORMERR, NOTIMP, BADVERS), echoing what could be read. */
  | { kind: 'error'; rcode: number; id: number; opcode: number; rd: boolean; cd: boolean; question?: DnsQuestion; edns?: Edns; reason: string }
  /** Not worth an answer: too short for a header, or a response rather than a query. */
  | { kind: 'drop'; reason: string };

/** Parses a message received by a server. Never throws. */
export function parseQuery(buf: Uint8Array): QueryParse {
  const h = decodeHeader(buf);
  if (!h) return { kind: 'drop', reason: 'shorter than a header' };
  if (h.qr) return { kind: 'drop', reason: 'a response, not a query' };
  const base = { id: h.id, opcode: h.opcode, rd: h.rd, cd: h.cd };
  let msg: DnsMessage;
  try {
    msg = decodeMessage(buf);
  } catch (e) {
    const reason = e instanceof DnsWireError ? e.message : String(e);
    return { kind: 'error', rcode: h.opcode === OPCODE_QUERY ? RCODE.FORMERR : RCODE.NOTIMP, ...base, reason };
  }
  const question = msg.questions.length === 1 ? msg.questions[0] : undefined;
  const echo = { ...base, ...(question ? { question } : {}), ...(msg.edns ? { edns: msg.edns } : {}) };
  if (h.opcode !== OPCODE_QUERY) return { kind: 'error', rcode: RCODE.NOTIMP, ...echo, reason: `opcode ${h.opcode} not implemented` };
  if (!question) return { kind: 'error', rcode: RCODE.FORMERR, ...echo, reason: `${msg.questions.length} questions` };
  if (msg.answers.length > 0 || msg.authority.length > 0)
    return { kind: 'error', rcode: RCODE.FORMERR, ...echo, reason: 'a query with answer or authority records' };
  if (msg.edns && msg.edns.version > 0) return { kind: 'error', rcode: RCODE.BADVERS, ...echo, reason: `EDNS version ${msg.edns.version}` };
  return { kind: 'query', query: { ...base, question, ...(msg.edns ? { edns: msg.edns } : {}) } };
}

/** The largest UDP response the querier accepts (RFC 6891: below 512 counts as 512), capped at ours. */
export function udpLimit(edns: Edns | undefined): number {
  if (!edns) return UDP_MIN_SIZE;
  return Math.min(Math.max(edns.udpSize, UDP_MIN_SIZE), UDP_MAX_SIZE);
}

// ---------------------------------------------------------------------------------------------------------
// Encoding

class Writer {
  buf = new Uint8Array(512);
  len = 0;
  /** Lower-cased name suffix → offset of its first occurrence (only offsets a pointer can reach). */
  names = new Map<string, number>();

  private grow(n: number): void {
    if (this.len + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.len + n) size *= 2;
    const b = new Uint8Array(size);
    b.set(this.buf.subarray(0, this.len));
    this.buf = b;
  }
  u8(v: number): void {
    this.grow(1);
    this.buf[this.len++] = v & 0xff;
  }
  u16(v: number): void {
    this.grow(2);
    this.buf[this.len++] = (v >>> 8) & 0xff;
    this.buf[this.len++] = v & 0xff;
  }
  u32(v: number): void {
    this.u16((v >>> 16) & 0xffff);
    this.u16(v & 0xffff);
  }
  bytes(b: Uint8Array): void {
    this.grow(b.length);
    this.buf.set(b, this.len);
    this.len += b.length;
  }
  setU16(at: number, v: number): void {
    this.buf[at] = (v >>> 8) & 0xff;
    this.buf[at + 1] = v & 0xff;
  }
  name(name: string, compress: boolean): void {
    const labels = nameToLabels(name);
    for (let i = 0; i < labels.length; i++) {
      // Length-prefixed labels: unambiguous even when a label holds a dot or a NUL.
      const key = asciiLower(
        labels
          .slice(i)
          .map((l) => String.fromCharCode(l.length) + l)
          .join(''),
      );
      const at = compress ? this.names.get(key) : undefined;
      if (at !== undefined) {
        this.u16(0xc000 | at);
        return;
      }
      if (compress && this.len < 0x4000) this.names.set(key, this.len);
      const l = labels[i]!;
      this.u8(l.length);
      this.grow(l.length);
      for (let j = 0; j < l.length; j++) this.buf[this.len++] = l.charCodeAt(j);
    }
    this.u8(0);
  }
  /** Undo everything written after `len` (compression entries included). */
  rollback(len: number): void {
    this.len = len;
    for (const [k, v] of this.names) if (v >= len) this.names.delete(k);
  }
  result(): Uint8Array {
    return this.buf.slice(0, this.len);
  }
}

function writeAddress(w: Writer, ip: string): void {
  const parts = ip.split('.');
  if (parts.length !== 4) throw new DnsWireError('rdata', `not an IPv4 address: ${ip}`);
  for (const p of parts) {
    if (!/^[0-9]{1,3}$/.test(p) || Number(p) > 255) throw new DnsWireError('rdata', `not an IPv4 address: ${ip}`);
    w.u8(Number(p));
  }
}

function writeRecord(w: Writer, rec: DnsRecord): void {
  w.name(rec.name, true);
  w.u16(rec.type);
  w.u16(rec.class);
  w.u32(rec.ttl >>> 0);
  const lenAt = w.len;
  w.u16(0);
  const start = w.len;
  const d = rec.data;
  switch (d.kind) {
    case 'a':
      writeAddress(w, d.address);
      break;
    case 'name':
      w.name(d.target, true);
      break;
    case 'srv':
      w.u16(d.priority);
      w.u16(d.weight);
      w.u16(d.port);
      w.name(d.target, false); // RFC 2782: no compression of the SRV target
      break;
    case 'soa':
      w.name(d.mname, true);
      w.name(d.rname, true);
      w.u32(d.serial);
      w.u32(d.refresh);
      w.u32(d.retry);
      w.u32(d.expire);
      w.u32(d.minimum);
      break;
    case 'raw':
      w.bytes(d.bytes);
      break;
  }
  const rdlen = w.len - start;
  if (rdlen > 0xffff) throw new DnsWireError('too-large', 'record data longer than 65535 bytes');
  w.setU16(lenAt, rdlen);
}

function optSize(e: Edns): number {
  return 11 + e.options.reduce((n, o) => n + 4 + o.data.length, 0);
}

function writeOpt(w: Writer, e: Edns): void {
  w.u8(0);
  w.u16(TYPE.OPT);
  w.u16(e.udpSize);
  w.u8(e.extRcode);
  w.u8(e.version);
  w.u16(e.dnssecOk ? 0x8000 : 0);
  w.u16(e.options.reduce((n, o) => n + 4 + o.data.length, 0));
  for (const o of e.options) {
    w.u16(o.code);
    w.u16(o.data.length);
    w.bytes(o.data);
  }
}

/**
 * Encodes a message with name compression. When it would exceed `maxSize`, records that do not fit are
 * left out from the first one that does not fit (whole records only; the OPT record is always kept) and
 * TC is set if an answer or authority record had to go; leaving out additional records does not set TC
 * (RFC 2181 §9). Throws DnsWireError on unencodable content (a bad name or address).
 */
export function encodeMessage(msg: DnsMessage, maxSize = MAX_MESSAGE): Uint8Array {
  const limit = Math.min(Math.max(maxSize, HEADER_SIZE), MAX_MESSAGE);
  const w = new Writer();
  w.len = HEADER_SIZE;
  for (const q of msg.questions) {
    w.name(q.name, true);
    w.u16(q.type);
    w.u16(q.class);
  }
  const reserve = msg.edns ? optSize(msg.edns) : 0;
  if (w.len + reserve > limit) throw new DnsWireError('too-large', 'the question alone exceeds the size limit');
  let tc = msg.tc;
  const counts = [0, 0, 0];
  const sections = [msg.answers, msg.authority, msg.additional];
  outer: for (let s = 0; s < 3; s++) {
    for (const rec of sections[s]!) {
      const before = w.len;
      writeRecord(w, rec);
      if (w.len + reserve > limit) {
        w.rollback(before);
        if (s < 2) tc = true;
        break outer;
      }
      counts[s]!++;
    }
  }
  let arcount = counts[2]!;
  if (msg.edns) {
    writeOpt(w, msg.edns);
    arcount++;
  }
  const b = w.buf;
  w.setU16(0, msg.id);
  b[2] = (msg.qr ? 0x80 : 0) | ((msg.opcode & 0xf) << 3) | (msg.aa ? 0x04 : 0) | (tc ? 0x02 : 0) | (msg.rd ? 0x01 : 0);
  b[3] = (msg.ra ? 0x80 : 0) | (msg.ad ? 0x20 : 0) | (msg.cd ? 0x10 : 0) | (msg.rcode & 0xf);
  w.setU16(4, msg.questions.length);
  w.setU16(6, counts[0]!);
  w.setU16(8, counts[1]!);
  w.setU16(10, arcount);
  return w.result();
}

/** A standard query, as a stub resolver sends it. */
export function encodeQuery(q: { id: number; name: string; type: number; class?: number; rd?: boolean; edns?: Partial<Edns> }): Uint8Array {
  return encodeMessage({
    id: q.id,
    qr: false,
    opcode: OPCODE_QUERY,
    aa: false,
    tc: false,
    rd: q.rd ?? true,
    ra: false,
    ad: false,
    cd: false,
    rcode: 0,
    questions: [{ name: q.name, type: q.type, class: q.class ?? CLASS.IN }],
    answers: [],
    authority: [],
    additional: [],
    ...(q.edns ? { edns: { udpSize: UDP_MAX_SIZE, extRcode: 0, version: 0, dnssecOk: false, options: [], ...q.edns } } : {}),
  });
}

export interface ResponseParts {
  rcode: number;
  /** Set TC even if everything fits (a relayed answer too large for the querier). */
  tc?: boolean;
  aa?: boolean;
  ra?: boolean;
  answers?: DnsRecord[];
  authority?: DnsRecord[];
  additional?: DnsRecord[];
}

/**
 * A response to a query (or to a query that could only partly be read): echoes id, opcode, RD, CD and the
 * question, and an OPT record when the query had one (with our UDP size, the DO bit copied and the
 * upper RCODE bits for extended codes such as BADVERS).
 */
export function encodeResponse(
  q: { id: number; opcode: number; rd: boolean; cd: boolean; question?: DnsQuestion; edns?: Edns },
  parts: ResponseParts,
  maxSize: number,
): Uint8Array {
  const edns: Edns | undefined = q.edns ? { udpSize: UDP_MAX_SIZE, extRcode: parts.rcode >> 4, version: 0, dnssecOk: q.edns.dnssecOk, options: [] } : undefined;
  return encodeMessage(
    {
      id: q.id,
      qr: true,
      opcode: q.opcode,
      aa: parts.aa ?? false,
      tc: parts.tc ?? false,
      rd: q.rd,
      ra: parts.ra ?? false,
      ad: false,
      cd: q.cd,
      rcode: parts.rcode & 0xf,
      questions: q.question ? [q.question] : [],
      answers: parts.answers ?? [],
      authority: parts.authority ?? [],
      additional: parts.additional ?? [],
      ...(edns ? { edns } : {}),
    },
    maxSize,
  );
}

// ---------------------------------------------------------------------------------------------------------
// TCP framing (a two-byte length before every message)

export function frameTcp(msg: Uint8Array): Uint8Array {
  if (msg.length > MAX_MESSAGE) throw new DnsWireError('too-large', 'message longer than 65535 bytes');
  const out = new Uint8Array(msg.length + 2);
  out[0] = msg.length >>> 8;
  out[1] = msg.length & 0xff;
  out.set(msg, 2);
  return out;
}

/** Splits a TCP byte stream into messages. Holds at most one incomplete message (≤ 65537 bytes). */
export class TcpDeframer {
  private chunks: Uint8Array[] = [];
  private buffered = 0;

  push(chunk: Uint8Array): Uint8Array[] {
    const out: Uint8Array[] = [];
    if (chunk.length > 0) {
      this.chunks.push(chunk);
      this.buffered += chunk.length;
    }
    while (this.buffered >= 2) {
      const head = this.peek(2);
      const len = (head[0]! << 8) | head[1]!;
      if (this.buffered < 2 + len) break;
      const all = this.take(2 + len);
      out.push(all.subarray(2));
    }
    return out;
  }

  /** Bytes received but not yet part of a complete message. */
  get pending(): number {
    return this.buffered;
  }

  private peek(n: number): Uint8Array {
    const first = this.chunks[0]!;
    if (first.length >= n) return first;
    const b = this.take(this.buffered);
    this.chunks = [b];
    this.buffered = b.length;
    return b;
  }

  private take(n: number): Uint8Array {
    const out = new Uint8Array(n);
    let got = 0;
    while (got < n) {
      const c = this.chunks[0]!;
      const k = Math.min(c.length, n - got);
      out.set(c.subarray(0, k), got);
      got += k;
      if (k === c.length) this.chunks.shift();
      else this.chunks[0] = c.subarray(k);
    }
    this.buffered -= n;
    return out;
  }
}

/** `a.b.c.d` → `d.c.b.a.in-addr.arpa`. */
export function reverseName(ip: string): string {
  return `${ip.split('.').reverse().join('.')}.in-addr.arpa`;
}
