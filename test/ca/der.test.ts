// The DER codec of manager/ca/der.ts: encodings checked against OpenSSL's asn1parse (an independent
// reader) and the reader against hostile input (a CSR comes from a node holding only a join token).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import {
  DerError,
  TAG,
  bits,
  children,
  oid,
  pemBody,
  readBits,
  readElement,
  readOid,
  readWhole,
  seq,
  time,
  tlv,
  toPem,
  uint,
  utf8,
} from '../../manager/ca/der.ts';

/** OpenSSL's reading of a DER buffer (`openssl asn1parse -inform DER`). */
function asn1parse(der: Buffer): string {
  return execFileSync('openssl', ['asn1parse', '-inform', 'DER'], { input: der, encoding: 'utf8' });
}

describe('DER encoding', () => {
  test('lengths in short and long form, up to three length bytes', () => {
    for (const n of [0, 1, 127, 128, 255, 256, 65535, 65536, 100_000]) {
      const e = tlv(TAG.OCTET_STRING, Buffer.alloc(n, 7));
      const back = readWhole(e, TAG.OCTET_STRING);
      assert.equal(back.content.length, n);
      const header = e.length - n;
      assert.equal(header, n < 0x80 ? 2 : n < 0x100 ? 3 : n < 0x10000 ? 4 : 5, `header of a ${n}-byte element`);
    }
  });

  test('INTEGERs are minimal and positive', () => {
    assert.deepEqual(uint(Buffer.from([0])), Buffer.from('020100', 'hex'));
    assert.deepEqual(uint(Buffer.from([0, 0, 5])), Buffer.from('020105', 'hex'));
    assert.deepEqual(uint(Buffer.from([0x80])), Buffer.from('02020080', 'hex'));
    assert.deepEqual(uint(Buffer.from([0x7f, 0xff])), Buffer.from('02027fff', 'hex'));
    assert.match(asn1parse(uint(Buffer.from('ff00', 'hex'))), /INTEGER\s+:FF00/);
  });

  test('OIDs round-trip and match OpenSSL, large arcs included', () => {
    for (const o of ['2.5.4.3', '1.2.840.10045.4.3.2', '1.2.840.113549.1.1.11', '2.5.29.35', '1.3.6.1.5.5.7.3.2', '2.999.1', '1.2.3.4294967296']) {
      assert.equal(readOid(readWhole(oid(o))), o);
    }
    assert.match(asn1parse(oid('1.2.840.10045.4.3.2')), /OBJECT\s+:ecdsa-with-SHA256/);
    assert.match(asn1parse(oid('2.5.29.37')), /OBJECT\s+:X509v3 Extended Key Usage/);
    for (const bad of ['1', '3.1', '1.40', 'a.b', '1..2']) assert.throws(() => oid(bad), DerError, bad);
  });

  test('times: UTCTime through 2049, GeneralizedTime from 2050', () => {
    assert.equal(time(new Date('2026-12-07T08:09:10Z')).toString('latin1'), '\x17\x0d261207080910Z');
    assert.equal(time(new Date('2049-12-31T23:59:59Z'))[0], TAG.UTC_TIME);
    assert.equal(time(new Date('2050-01-01T00:00:00Z')).toString('latin1'), '\x18\x0f20500101000000Z');
    assert.match(asn1parse(time(new Date('2066-06-01T12:00:00Z'))), /GENERALIZEDTIME\s+:20660601120000Z/);
    assert.throws(() => time(new Date('1949-12-31T00:00:00Z')), DerError);
  });

  test('a nested structure reads back as OpenSSL reads it', () => {
    const s = seq(oid('2.5.4.3'), utf8('node_1 é'), bits(Buffer.from([1, 2, 3])));
    const [a, b, c] = children(readWhole(s, TAG.SEQUENCE));
    assert.equal(readOid(a!), '2.5.4.3');
    assert.equal(b!.content.toString('utf8'), 'node_1 é');
    assert.deepEqual(readBits(c!), Buffer.from([1, 2, 3]));
    const text = asn1parse(s);
    assert.match(text, /SEQUENCE/);
    assert.match(text, /UTF8STRING/);
    assert.match(text, /BIT STRING/);
  });

  test('PEM: 64-character lines, one block, round trip', () => {
    const body = Buffer.alloc(200, 0xab);
    const pem = toPem(body, 'CERTIFICATE REQUEST');
    assert.ok(pem.split('\n').every((l) => l.length <= 64 || l.startsWith('-----')));
    assert.deepEqual(pemBody(pem, 'CERTIFICATE REQUEST'), body);
    assert.deepEqual(pemBody(pem.replace(/\n/g, '\r\n'), 'CERTIFICATE REQUEST'), body);
    assert.throws(() => pemBody(pem + pem, 'CERTIFICATE REQUEST'), /2 CERTIFICATE REQUEST blocks/);
    assert.throws(() => pemBody(pem, 'CERTIFICATE'), /no "-----BEGIN CERTIFICATE-----" block/);
    assert.throws(() => pemBody('-----BEGIN X-----\n-----END X-----', 'X'), /empty X block/);
  });
});

describe('DER reading of hostile input', () => {
  const good = seq(oid('2.5.4.3'), utf8('x'));

  test('every truncation is refused, never read past the end', () => {
    for (let n = 0; n < good.length; n++) {
      assert.throws(() => children(readWhole(good.subarray(0, n))), DerError, `prefix of ${n} bytes`);
    }
  });

  test('bytes after the structure, indefinite and oversized lengths, multi-byte tags', () => {
    assert.throws(() => readWhole(Buffer.concat([good, Buffer.from([0])])), /1 bytes after the end/);
    assert.throws(() => readElement(Buffer.from('3080050000000', 'hex')), /indefinite length/);
    assert.throws(() => readElement(Buffer.from('3084ffffffff', 'hex')), /length too large/);
    assert.throws(() => readElement(Buffer.from('3082ffff00', 'hex')), /runs past its enclosing structure/);
    assert.throws(() => readElement(Buffer.from('1f8101', 'hex')), /multi-byte tags/);
  });

  test('a child that claims more than its parent holds', () => {
    // SEQUENCE of 3 bytes holding an OCTET STRING that claims 5.
    const lying = Buffer.from('3003040561', 'hex');
    assert.throws(() => children(readWhole(lying)), /runs past its enclosing structure/);
  });

  test('malformed OIDs and BIT STRINGs', () => {
    assert.throws(() => readOid(readWhole(Buffer.from('0600', 'hex'))), /bad length/);
    assert.throws(() => readOid(readWhole(Buffer.from('060255ff', 'hex'))), /truncated OBJECT IDENTIFIER/);
    assert.throws(() => readBits(readWhole(Buffer.from('030203ff', 'hex'))), /unused bits/);
    assert.throws(() => readBits(readWhole(Buffer.from('0300', 'hex'))), /expected a BIT STRING/);
  });

  test('deep nesting costs nothing: the reader walks one level at a time', () => {
    let deep: Buffer = Buffer.from('0500', 'hex');
    for (let i = 0; i < 20_000 && deep.length < 0xfffff0; i++) deep = seq(deep);
    const top = readWhole(deep, TAG.SEQUENCE);
    assert.equal(children(top).length, 1);
  });

  test('random bytes never throw anything but DerError', () => {
    let seed = 12345;
    const rnd = () => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed & 0xff;
    };
    for (let i = 0; i < 5000; i++) {
      const buf = Buffer.from(Array.from({ length: 1 + (rnd() % 24) }, rnd));
      buf[0] = i % 3 === 0 ? TAG.SEQUENCE : buf[0]!;
      try {
        const e = readWhole(buf);
        if (e.tag & 0x20) children(e);
        if (e.tag === TAG.OID) readOid(e);
        if (e.tag === TAG.BIT_STRING) readBits(e);
      } catch (err) {
        assert.ok(err instanceof DerError, `input ${buf.toString('hex')} threw ${String(err)}`);
      }
    }
  });
});
