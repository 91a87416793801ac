// DER, the encoding of X.509 certificates and PKCS#10 requests (ITU-T X.690), as far as Shoal's CA
// needs it: an encoder for the structures it builds and a reader for the few it takes apart (CSRs from
// joining nodes, the CA's own certificate). Node's crypto parses and verifies certificates but cannot
// build one; node-forge could, but it builds RSA structures only (no ECDSA, which Swarm's CA and Shoal's
// use) and costs a manager about 4 MB of memory. See docs/design/ca.md.
//
// The reader is strict because a CSR arrives from a node that holds only a join token: definite lengths
// only, every length checked against what encloses it, no bytes after the outer element. It walks fixed
// structures element by element and never recurses on the input's shape, so a crafted nesting cannot
// exhaust the stack.

export class DerError extends Error {
  override readonly name = 'DerError';
}

// ---------------------------------------------------------------------------------------------------
// Encoding

/** Universal tags used here. */
export const TAG = {
  BOOLEAN: 0x01,
  INTEGER: 0x02,
  BIT_STRING: 0x03,
  OCTET_STRING: 0x04,
  NULL: 0x05,
  OID: 0x06,
  UTF8_STRING: 0x0c,
  PRINTABLE_STRING: 0x13,
  IA5_STRING: 0x16,
  UTC_TIME: 0x17,
  GENERALIZED_TIME: 0x18,
  SEQUENCE: 0x30,
  SET: 0x31,
} as const;

/** One element: tag, definite length (short or long form), content. */
export function tlv(tag: number, ...content: Buffer[]): Buffer {
  const body = content.length === 1 ? content[0]! : Buffer.concat(content);
  const n = body.length;
  let len: Buffer;
  if (n < 0x80) len = Buffer.from([n]);
  else if (n < 0x100) len = Buffer.from([0x81, n]);
  else if (n < 0x10000) len = Buffer.from([0x82, n >> 8, n & 0xff]);
  else if (n < 0x1000000) len = Buffer.from([0x83, n >> 16, (n >> 8) & 0xff, n & 0xff]);
  else throw new DerError(`DER element of ${n} bytes is too large`);
  return Buffer.concat([Buffer.from([tag]), len, body]);
}

export const seq = (...items: Buffer[]): Buffer => tlv(TAG.SEQUENCE, ...items);
export const set = (...items: Buffer[]): Buffer => tlv(TAG.SET, ...items);
export const nul = (): Buffer => Buffer.from([TAG.NULL, 0]);
export const bool = (v: boolean): Buffer => Buffer.from([TAG.BOOLEAN, 1, v ? 0xff : 0]);
export const octets = (b: Buffer): Buffer => tlv(TAG.OCTET_STRING, b);
export const utf8 = (s: string): Buffer => tlv(TAG.UTF8_STRING, Buffer.from(s, 'utf8'));
/** A BIT STRING whose length is a whole number of bytes (signatures, keys). */
export const bits = (b: Buffer): Buffer => tlv(TAG.BIT_STRING, Buffer.from([0]), b);
/** [n] EXPLICIT: a constructed context-specific element around `inner`. */
export const explicit = (n: number, inner: Buffer): Buffer => tlv(0xa0 | n, inner);

/** A non-negative INTEGER from big-endian magnitude bytes (leading zeros dropped, 00 added when the top bit is set). */
export function uint(magnitude: Buffer): Buffer {
  let i = 0;
  while (i < magnitude.length - 1 && magnitude[i] === 0) i++;
  const m = magnitude.subarray(i);
  if (m.length === 0) return Buffer.from([TAG.INTEGER, 1, 0]);
  return tlv(TAG.INTEGER, (m[0]! & 0x80) !== 0 ? Buffer.concat([Buffer.from([0]), m]) : m);
}

/** An OBJECT IDENTIFIER from its dotted form. */
export function oid(dotted: string): Buffer {
  const arcs = dotted.split('.').map((a) => {
    if (!/^\d+$/.test(a)) throw new DerError(`bad OID ${dotted}`);
    return BigInt(a);
  });
  if (arcs.length < 2 || arcs[0]! > 2n || (arcs[0]! < 2n && arcs[1]! > 39n)) throw new DerError(`bad OID ${dotted}`);
  const out: number[] = [];
  const push = (v: bigint) => {
    const group: number[] = [Number(v & 0x7fn)];
    for (let x = v >> 7n; x > 0n; x >>= 7n) group.unshift(Number(x & 0x7fn) | 0x80);
    out.push(...group);
  };
  push(arcs[0]! * 40n + arcs[1]!);
  for (const a of arcs.slice(2)) push(a);
  return tlv(TAG.OID, Buffer.from(out));
}

/**
 * A certificate time (RFC 5280 4.1.2.5): UTCTime through 2049, GeneralizedTime from 2050, both in UTC
 * with whole seconds.
 */
export function time(d: Date): Buffer {
  const iso = d.toISOString(); // YYYY-MM-DDTHH:MM:SS.sssZ
  const digits = `${iso.slice(0, 4)}${iso.slice(5, 7)}${iso.slice(8, 10)}${iso.slice(11, 13)}${iso.slice(14, 16)}${iso.slice(17, 19)}Z`;
  const year = d.getUTCFullYear();
  if (year < 1950 || year > 9999) throw new DerError(`certificate time ${iso} is outside 1950-9999`);
  return year < 2050 ? tlv(TAG.UTC_TIME, Buffer.from(digits.slice(2), 'ascii')) : tlv(TAG.GENERALIZED_TIME, Buffer.from(digits, 'ascii'));
}

// ---------------------------------------------------------------------------------------------------
// Reading

/** One element of a buffer: where its content lies, and its whole encoding. */
export interface Element {
  tag: number;
  /** The content octets (a view, not a copy). */
  content: Buffer;
  /** The whole element, tag and length included (a view). */
  raw: Buffer;
}

/** Reads the element at `offset` of `buf`; it must end within `end`. */
export function readElement(buf: Buffer, offset = 0, end = buf.length): Element {
  if (offset + 2 > end) throw new DerError('truncated element');
  const tag = buf[offset]!;
  if ((tag & 0x1f) === 0x1f) throw new DerError('multi-byte tags are not used in these structures');
  let len = buf[offset + 1]!;
  let p = offset + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0) throw new DerError('indefinite length is not DER');
    if (n > 3) throw new DerError('element length too large');
    if (p + n > end) throw new DerError('truncated length');
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + buf[p + i]!;
    p += n;
  }
  if (p + len > end) throw new DerError(`element of ${len} bytes runs past its enclosing structure`);
  return { tag, content: buf.subarray(p, p + len), raw: buf.subarray(offset, p + len) };
}

/** The one element a buffer holds, with nothing after it. */
export function readWhole(buf: Buffer, expectTag?: number): Element {
  const e = readElement(buf);
  if (e.raw.length !== buf.length) throw new DerError(`${buf.length - e.raw.length} bytes after the end of the structure`);
  if (expectTag !== undefined && e.tag !== expectTag) throw new DerError(`expected tag 0x${expectTag.toString(16)}, found 0x${e.tag.toString(16)}`);
  return e;
}

/** The elements of a constructed element's content, in order. */
export function children(parent: Element): Element[] {
  const out: Element[] = [];
  const c = parent.content;
  for (let off = 0; off < c.length; ) {
    const e = readElement(c, off);
    out.push(e);
    off += e.raw.length;
  }
  return out;
}

/** The child at `i`, checked for its tag. */
export function child(list: Element[], i: number, tag: number, what: string): Element {
  const e = list[i];
  if (!e) throw new DerError(`${what} is missing`);
  if (e.tag !== tag) throw new DerError(`${what} has tag 0x${e.tag.toString(16)}, expected 0x${tag.toString(16)}`);
  return e;
}

/** An OBJECT IDENTIFIER's dotted form. */
export function readOid(e: Element): string {
  if (e.tag !== TAG.OID) throw new DerError('expected an OBJECT IDENTIFIER');
  const b = e.content;
  if (b.length === 0 || b.length > 64) throw new DerError('OBJECT IDENTIFIER of bad length');
  const arcs: bigint[] = [];
  let v = 0n;
  for (let i = 0; i < b.length; i++) {
    v = (v << 7n) | BigInt(b[i]! & 0x7f);
    if ((b[i]! & 0x80) === 0) {
      arcs.push(v);
      v = 0n;
    } else if (i === b.length - 1) throw new DerError('truncated OBJECT IDENTIFIER');
  }
  const first = arcs.shift()!;
  const head = first < 80n ? [first / 40n, first % 40n] : [2n, first - 80n];
  return [...head, ...arcs].join('.');
}

/** A BIT STRING's bytes, which must be whole (no unused bits). */
export function readBits(e: Element): Buffer {
  if (e.tag !== TAG.BIT_STRING || e.content.length < 1) throw new DerError('expected a BIT STRING');
  if (e.content[0] !== 0) throw new DerError('BIT STRING with unused bits where whole bytes are expected');
  return e.content.subarray(1);
}

/** The PEM block of `label`, decoded. Exactly one such block must be present. */
export function pemBody(pem: string, label: string): Buffer {
  const re = new RegExp(`-----BEGIN ${label}-----([A-Za-z0-9+/=\\s]*)-----END ${label}-----`, 'g');
  const blocks = [...pem.matchAll(re)];
  if (blocks.length !== 1) throw new DerError(blocks.length === 0 ? `no "-----BEGIN ${label}-----" block` : `${blocks.length} ${label} blocks, expected one`);
  const b64 = blocks[0]![1]!.replace(/\s+/g, '');
  const body = Buffer.from(b64, 'base64');
  if (body.length === 0) throw new DerError(`empty ${label} block`);
  return body;
}

/** DER as PEM with 64-character lines and Unix line endings. */
export function toPem(body: Buffer, label: string): string {
  const b64 = body.toString('base64').replace(/(.{64})/g, '$1\n');
  return `-----BEGIN ${label}-----\n${b64}${b64.endsWith('\n') ? '' : '\n'}-----END ${label}-----\n`;
}
