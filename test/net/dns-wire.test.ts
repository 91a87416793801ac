// The DNS wire codec: golden bytes, round trips, strict rejection of malformed messages, truncation, TCP
// framing, and a seeded fuzz run that must only ever produce DnsWireError.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  aRecord,
  asciiLower,
  CLASS,
  decodeHeaderAndQuestion,
  decodeMessage,
  DnsWireError,
  encodeMessage,
  encodeQuery,
  encodeResponse,
  frameTcp,
  labelsToName,
  nameToLabels,
  parseQuery,
  ptrRecord,
  RCODE,
  reverseName,
  soaRecord,
  srvRecord,
  TcpDeframer,
  TYPE,
  udpLimit,
} from '../../overlay-net/dns-wire.ts';
import type { DnsMessage, DnsRecord } from '../../overlay-net/dns-wire.ts';
import { Rng } from '../../sim/rng.ts';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const unhex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s.replace(/\s+/g, ''), 'hex'));

function message(over: Partial<DnsMessage> = {}): DnsMessage {
  return {
    id: 0xbeef,
    qr: true,
    opcode: 0,
    aa: true,
    tc: false,
    rd: true,
    ra: true,
    ad: false,
    cd: false,
    rcode: 0,
    questions: [{ name: 'web', type: TYPE.A, class: CLASS.IN }],
    answers: [],
    authority: [],
    additional: [],
    ...over,
  };
}

function wireError(f: () => unknown, code?: string): void {
  assert.throws(f, (e: unknown) => e instanceof DnsWireError && (code === undefined || e.code === code));
}

test('golden bytes: a query, a compressed response, an OPT record, TCP framing', () => {
  const q = encodeQuery({ id: 0x1234, name: 'web', type: TYPE.A });
  assert.equal(hex(q), '123401000001000000000000' + '0377656200' + '00010001');

  const r = encodeResponse(
    { id: 0x1234, opcode: 0, rd: true, cd: false, question: { name: 'web', type: TYPE.A, class: CLASS.IN } },
    { rcode: 0, aa: true, ra: true, answers: [aRecord('web', '10.0.0.2', 0), aRecord('WEB', '10.0.0.3', 1)] },
    512,
  );
  assert.equal(
    hex(r),
    '1234' +
      '8580' +
      '0001000200000000' +
      '0377656200' +
      '00010001' +
      // owner names compress to the question's name (offset 12) whatever their case
      'c00c' +
      '0001' +
      '0001' +
      '00000000' +
      '0004' +
      '0a000002' +
      'c00c' +
      '0001' +
      '0001' +
      '00000001' +
      '0004' +
      '0a000003',
  );

  const e = encodeQuery({ id: 1, name: '', type: TYPE.SOA, rd: false, edns: { udpSize: 1232, dnssecOk: true } });
  assert.equal(hex(e), '000100000001000000000001' + '00' + '00060001' + '00' + '0029' + '04d0' + '00' + '00' + '8000' + '0000');

  assert.equal(hex(frameTcp(q)), '0015' + hex(q));
});

test('golden bytes: PTR, SRV (uncompressed target) and SOA records decode to what was encoded', () => {
  const m = message({
    questions: [{ name: reverseName('10.0.1.5'), type: TYPE.PTR, class: CLASS.IN }],
    answers: [ptrRecord('5.1.0.10.in-addr.arpa', 'web.1.abc', 0)],
    authority: [
      soaRecord('in-addr.arpa', 0, {
        mname: 'ns.in-addr.arpa',
        rname: 'hostmaster.in-addr.arpa',
        serial: 0xfffffffe,
        refresh: 1,
        retry: 2,
        expire: 3,
        minimum: 4,
      }),
    ],
    additional: [srvRecord('_http._tcp.web', 0, 1, 2, 8080, 'web.1.abc')],
  });
  const b = encodeMessage(m);
  const d = decodeMessage(b);
  assert.deepEqual(d, m);
  // The SRV target is written out in full even though 'web.1.abc' appeared before (RFC 2782).
  assert.ok(hex(b).endsWith('0001' + '0002' + '1f90' + '03776562' + '0131' + '03616263' + '00'));
  assert.equal(reverseName('10.0.1.5'), '5.1.0.10.in-addr.arpa');
});

function randomName(rng: Rng): string {
  const n = rng.u32() % 4;
  const labels: string[] = [];
  for (let i = 0; i < n; i++) {
    let l = '';
    const len = 1 + (rng.u32() % 12);
    for (let j = 0; j < len; j++) {
      // mostly letters, sometimes anything (escapes must round-trip)
      l += rng.u32() % 8 === 0 ? String.fromCharCode(rng.u32() % 256) : String.fromCharCode(97 + (rng.u32() % 26));
    }
    labels.push(l);
  }
  return labelsToName(labels);
}

function randomRecord(rng: Rng): DnsRecord {
  const name = randomName(rng);
  const ttl = rng.u32();
  switch (rng.u32() % 5) {
    case 0:
      return aRecord(name, `${rng.u32() % 256}.${rng.u32() % 256}.${rng.u32() % 256}.${rng.u32() % 256}`, ttl);
    case 1:
      return { ...ptrRecord(name, randomName(rng), ttl), type: [TYPE.PTR, TYPE.CNAME, TYPE.NS][rng.u32() % 3]! };
    case 2:
      return srvRecord(name, ttl, rng.u32() % 65536, rng.u32() % 65536, rng.u32() % 65536, randomName(rng));
    case 3:
      return soaRecord(name, ttl, {
        mname: randomName(rng),
        rname: randomName(rng),
        serial: rng.u32(),
        refresh: rng.u32(),
        retry: rng.u32(),
        expire: rng.u32(),
        minimum: rng.u32(),
      });
    default: {
      const bytes = new Uint8Array(rng.u32() % 20);
      for (let i = 0; i < bytes.length; i++) bytes[i] = rng.u32() % 256;
      return { name, type: TYPE.TXT + (rng.u32() % 3) * 100, class: CLASS.IN, ttl, data: { kind: 'raw', bytes } };
    }
  }
}

test('round trip: 500 random messages decode to exactly what was encoded', () => {
  const rng = new Rng(42);
  for (let i = 0; i < 500; i++) {
    const recs = (n: number) => Array.from({ length: rng.u32() % n }, () => randomRecord(rng));
    const m = message({
      id: rng.u32() % 65536,
      qr: rng.u32() % 2 === 0,
      opcode: rng.u32() % 16,
      aa: rng.u32() % 2 === 0,
      rd: rng.u32() % 2 === 0,
      ra: rng.u32() % 2 === 0,
      ad: rng.u32() % 2 === 0,
      cd: rng.u32() % 2 === 0,
      rcode: rng.u32() % 16,
      questions: Array.from({ length: rng.u32() % 3 }, () => ({ name: randomName(rng), type: rng.u32() % 65536, class: rng.u32() % 65536 })),
      answers: recs(6),
      authority: recs(3),
      additional: recs(3),
      ...(rng.u32() % 2 === 0
        ? {
            edns: {
              udpSize: rng.u32() % 65536,
              extRcode: rng.u32() % 256,
              version: rng.u32() % 256,
              dnssecOk: rng.u32() % 2 === 0,
              options: [{ code: 10, data: new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]) }],
            },
          }
        : {}),
    });
    const b = encodeMessage(m);
    assert.deepEqual(decodeMessage(b), m, `message ${i}`);
  }
});

test('names: escapes round-trip, limits are enforced, compression is case-insensitive', () => {
  assert.equal(asciiLower('WeB-1.X_Y'), 'web-1.x_y');
  assert.equal(asciiLower('\u00c0B\u00dd'), '\u00c0b\u00dd'); // only ASCII letters fold (RFC 4343)
  assert.deepEqual(nameToLabels('Web.'), ['Web']);
  assert.deepEqual(nameToLabels('.'), []);
  assert.deepEqual(nameToLabels('a\\.b.c'), ['a.b', 'c']);
  assert.deepEqual(nameToLabels('a\\000\\255\\\\'), ['a\u0000\u00ff\\']);
  assert.equal(labelsToName(['a.b', 'c\u0001 ']), 'a\\.b.c\\001\\032');
  wireError(() => nameToLabels('a..b'), 'bad-name');
  wireError(() => nameToLabels('a\\'), 'bad-name');
  wireError(() => nameToLabels('a\\999'), 'bad-name');
  wireError(() => nameToLabels('x'.repeat(64)), 'label');
  nameToLabels('x'.repeat(63));
  wireError(() => nameToLabels(Array(64).fill('abc').join('.')), 'name-too-long'); // 64*4+1 = 257 octets
  nameToLabels(Array(63).fill('abc').join('.') + '.x'); // 252+2+1 = 255 octets: the limit itself
  const b = encodeMessage(message({ answers: [aRecord('www.Example.COM', '1.2.3.4', 0), aRecord('mail.example.com', '1.2.3.5', 0)] }));
  const d = decodeMessage(b);
  assert.equal(d.answers[1]!.name, 'mail.Example.COM'); // the suffix points at the first spelling
  assert.ok(b.length < 12 + 5 + 4 + 2 * (17 + 10 + 4)); // compression happened
});

test('decoding is strict: pointers, labels, lengths, OPT placement, trailing bytes', () => {
  const header = (qd: number, an = 0, ns = 0, ar = 0) => `0001 0100 ${[qd, an, ns, ar].map((n) => n.toString(16).padStart(4, '0')).join(' ')}`;
  // a pointer to itself, a forward pointer, a pointer into the header
  wireError(() => decodeMessage(unhex(header(1) + 'c00c 0001 0001')), 'pointer');
  wireError(() => decodeMessage(unhex(header(1) + 'c010 0001 0001 00')), 'pointer');
  wireError(() => decodeMessage(unhex(header(1) + 'c002 0001 0001')), 'pointer');
  // two names pointing at each other (a loop through two hops) — the second points forward
  wireError(() => decodeMessage(unhex(header(2) + '01 61 c0 13 0001 0001 01 62 c0 0c 0001 0001')), 'pointer');
  // backward-pointing chain is fine
  const ok = decodeMessage(unhex(header(2) + '01 61 00 0001 0001 01 62 c0 0c 0001 0001'));
  assert.deepEqual(
    ok.questions.map((q) => q.name),
    ['a', 'b.a'],
  );
  // reserved label types 0x40 and 0x80
  wireError(() => decodeMessage(unhex(header(1) + '41 61 00 0001 0001')), 'label');
  wireError(() => decodeMessage(unhex(header(1) + '81 61 00 0001 0001')), 'label');
  // a name of 256 octets built from pointers to a long one
  const long =
    Array(4)
      .fill('3f' + '61'.repeat(63))
      .join('') + '00'; // 4*64+1 = 257 > 255
  wireError(() => decodeMessage(unhex(header(1) + long + '0001 0001')), 'name-too-long');
  // A record with 5 bytes of data; PTR whose name runs past its RDLENGTH
  wireError(() => decodeMessage(unhex(header(0, 1) + '00 0001 0001 00000000 0005 0a00000102')), 'rdata');
  wireError(() => decodeMessage(unhex(header(0, 1) + '00 000c 0001 00000000 0001 0161 00')), 'rdata');
  // RDLENGTH beyond the message
  wireError(() => decodeMessage(unhex(header(0, 1) + '00 0001 0001 00000000 0010 0a000001')), 'short');
  // OPT in the answer section, two OPT records, OPT with an owner name
  const opt = '00 0029 04d0 00000000 0000';
  wireError(() => decodeMessage(unhex(header(0, 1) + opt)), 'opt');
  wireError(() => decodeMessage(unhex(header(0, 0, 0, 2) + opt + opt)), 'opt');
  wireError(() => decodeMessage(unhex(header(0, 0, 0, 1) + '0161 00 0029 04d0 00000000 0000')), 'opt');
  // an EDNS option running past the OPT record
  wireError(() => decodeMessage(unhex(header(0, 0, 0, 1) + '00 0029 04d0 00000000 0004 000a 0004')), 'opt');
  // trailing bytes
  wireError(() => decodeMessage(unhex(header(1) + '00 0001 0001 ff')), 'trailing');
  // counts that cannot fit
  wireError(() => decodeMessage(unhex('0001 0100 ffff ffff ffff ffff 00 0001 0001')), 'short');
  wireError(() => decodeMessage(new Uint8Array(11)), 'short');
});

test('every truncation of a valid message is rejected with DnsWireError', () => {
  const m = encodeMessage(
    message({
      answers: [aRecord('web', '10.0.0.2', 0), ptrRecord('x.y', 'web.1.abc', 0), srvRecord('_a._tcp.web', 1, 2, 3, 4, 'z')],
      authority: [soaRecord('y', 0, { mname: 'a', rname: 'b', serial: 1, refresh: 2, retry: 3, expire: 4, minimum: 5 })],
      edns: { udpSize: 4096, extRcode: 0, version: 0, dnssecOk: false, options: [{ code: 8, data: new Uint8Array(7) }] },
    }),
  );
  decodeMessage(m);
  for (let n = 0; n < m.length; n++) wireError(() => decodeMessage(m.subarray(0, n)));
});

test('parseQuery: drop, FORMERR, NOTIMP, BADVERS, and a good query', () => {
  assert.equal(parseQuery(new Uint8Array(5)).kind, 'drop');
  const q = encodeQuery({ id: 7, name: 'web', type: TYPE.A });
  const resp = q.slice();
  resp[2]! |= 0x80;
  assert.equal(parseQuery(resp).kind, 'drop');

  const good = parseQuery(encodeQuery({ id: 7, name: 'Web.', type: TYPE.A, edns: { udpSize: 4096 } }));
  assert.equal(good.kind, 'query');
  if (good.kind !== 'query') return;
  assert.deepEqual(good.query.question, { name: 'Web', type: TYPE.A, class: CLASS.IN });
  assert.equal(good.query.edns?.udpSize, 4096);
  assert.equal(good.query.rd, true);

  const bad = (b: Uint8Array, rcode: number) => {
    const p = parseQuery(b);
    assert.equal(p.kind, 'error');
    if (p.kind === 'error') {
      assert.equal(p.rcode, rcode);
      assert.equal(p.id, (b[0]! << 8) | b[1]!);
    }
    return p;
  };
  bad(q.subarray(0, q.length - 1), RCODE.FORMERR);
  bad(encodeMessage(message({ qr: false, questions: [] })), RCODE.FORMERR);
  bad(
    encodeMessage(
      message({
        qr: false,
        questions: [
          { name: 'a', type: 1, class: 1 },
          { name: 'b', type: 1, class: 1 },
        ],
      }),
    ),
    RCODE.FORMERR,
  );
  bad(encodeMessage(message({ qr: false, answers: [aRecord('a', '1.2.3.4', 0)] })), RCODE.FORMERR);
  bad(encodeMessage(message({ qr: false, opcode: 2 })), RCODE.NOTIMP);
  const v1 = bad(encodeQuery({ id: 9, name: 'web', type: TYPE.A, edns: { version: 1 } }), RCODE.BADVERS);
  if (v1.kind !== 'error') return;
  // BADVERS (16) needs the OPT record: header RCODE 0, extended RCODE 1.
  const r = decodeMessage(encodeResponse(v1, { rcode: v1.rcode }, 512));
  assert.equal(r.rcode, 0);
  assert.equal(r.edns?.extRcode, 1);
  assert.equal(r.edns?.version, 0);
  assert.deepEqual(r.questions, [{ name: 'web', type: TYPE.A, class: CLASS.IN }]);
});

test('EDNS: the response echoes an OPT record with our size and the DO bit; udpLimit clamps', () => {
  const p = parseQuery(
    encodeQuery({ id: 3, name: 'web', type: TYPE.A, edns: { udpSize: 4096, dnssecOk: true, options: [{ code: 10, data: new Uint8Array(8) }] } }),
  );
  assert.equal(p.kind, 'query');
  if (p.kind !== 'query') return;
  const r = decodeMessage(encodeResponse(p.query, { rcode: 0 }, 1232));
  assert.deepEqual(r.edns, { udpSize: 1232, extRcode: 0, version: 0, dnssecOk: true, options: [] });
  const noEdns = decodeMessage(encodeResponse({ ...p.query, edns: undefined }, { rcode: 0 }, 512));
  assert.equal(noEdns.edns, undefined);
  assert.equal(udpLimit(undefined), 512);
  assert.equal(udpLimit({ udpSize: 100, extRcode: 0, version: 0, dnssecOk: false, options: [] }), 512);
  assert.equal(udpLimit({ udpSize: 1000, extRcode: 0, version: 0, dnssecOk: false, options: [] }), 1000);
  assert.equal(udpLimit({ udpSize: 65535, extRcode: 0, version: 0, dnssecOk: false, options: [] }), 1232);
});

test('truncation: whole records only, TC set, OPT kept, additional records dropped without TC', () => {
  const answers = Array.from({ length: 100 }, (_, i) => aRecord('tasks.api', `10.0.${i >> 8}.${i & 255}`, 0));
  const q = { id: 5, opcode: 0, rd: true, cd: false, question: { name: 'tasks.api', type: TYPE.A, class: CLASS.IN } };
  const small = encodeResponse(q, { rcode: 0, answers }, 512);
  assert.ok(small.length <= 512);
  const d = decodeMessage(small);
  assert.equal(d.tc, true);
  assert.ok(d.answers.length > 20 && d.answers.length < 100, `${d.answers.length} answers`);
  assert.deepEqual(d.answers, answers.slice(0, d.answers.length));

  const withOpt = encodeResponse({ ...q, edns: { udpSize: 600, extRcode: 0, version: 0, dnssecOk: false, options: [] } }, { rcode: 0, answers }, 600);
  assert.ok(withOpt.length <= 600);
  const d2 = decodeMessage(withOpt);
  assert.equal(d2.tc, true);
  assert.equal(d2.edns?.udpSize, 1232);

  const full = decodeMessage(encodeResponse(q, { rcode: 0, answers }, 65535));
  assert.equal(full.tc, false);
  assert.equal(full.answers.length, 100);

  const add = decodeMessage(encodeResponse(q, { rcode: 0, answers: answers.slice(0, 2), additional: answers }, 512));
  assert.equal(add.tc, false);
  assert.equal(add.answers.length, 2);
  assert.ok(add.additional.length < 100);

  const forced = decodeMessage(encodeResponse(q, { rcode: 0, tc: true }, 512));
  assert.equal(forced.tc, true);
});

test('TCP deframer: any split of a stream of messages yields the same messages', () => {
  const msgs = [encodeQuery({ id: 1, name: 'a', type: 1 }), new Uint8Array(0), encodeQuery({ id: 2, name: 'tasks.web', type: 1, edns: {} })];
  const stream = Buffer.concat(msgs.map((m) => frameTcp(m)));
  for (let cut1 = 0; cut1 <= stream.length; cut1++) {
    for (const cut2 of [cut1, Math.min(stream.length, cut1 + 1), Math.min(stream.length, cut1 + 17)]) {
      const d = new TcpDeframer();
      const out = [...d.push(stream.subarray(0, cut1)), ...d.push(stream.subarray(cut1, cut2)), ...d.push(stream.subarray(cut2))];
      assert.deepEqual(out.map(hex), msgs.map(hex));
      assert.equal(d.pending, 0);
    }
  }
  const d = new TcpDeframer();
  for (const byte of stream) for (const m of d.push(new Uint8Array([byte]))) assert.ok(msgs.some((x) => hex(x) === hex(m)));
  assert.equal(d.push(unhex('ffff00')).length, 0);
  assert.equal(d.pending, 3);
});

test('decodeHeaderAndQuestion reads a response without its records', () => {
  const r = encodeResponse(
    { id: 77, opcode: 0, rd: true, cd: false, question: { name: 'example.org', type: TYPE.A, class: CLASS.IN } },
    { rcode: 0, answers: [aRecord('example.org', '192.0.2.1', 60)] },
    512,
  );
  const d = decodeHeaderAndQuestion(r.subarray(0, r.length - 3)); // records cut short: still readable
  assert.equal(d?.header.id, 77);
  assert.equal(d?.header.qr, true);
  assert.deepEqual(d?.question, { name: 'example.org', type: TYPE.A, class: CLASS.IN });
  assert.equal(decodeHeaderAndQuestion(r.subarray(0, 15)), undefined);
  assert.equal(decodeHeaderAndQuestion(r.subarray(0, 11)), undefined);
});

test('fuzz: random and mutated packets only ever raise DnsWireError; parseQuery never throws', () => {
  const rng = new Rng(7);
  const seeds = [
    encodeQuery({ id: 1, name: 'tasks.web', type: TYPE.A, edns: { options: [{ code: 10, data: new Uint8Array(8) }] } }),
    encodeMessage(
      message({
        answers: [aRecord('web', '1.2.3.4', 0), ptrRecord('a.b.c', 'web.1.x', 0)],
        authority: [soaRecord('c', 0, { mname: 'a', rname: 'b', serial: 1, refresh: 2, retry: 3, expire: 4, minimum: 5 })],
      }),
    ),
  ];
  let ok = 0;
  for (let i = 0; i < 20000; i++) {
    let b: Uint8Array;
    if (i % 3 === 0) {
      b = new Uint8Array(rng.u32() % 80);
      for (let j = 0; j < b.length; j++) b[j] = rng.u32() % 256;
      if (b.length >= 12 && i % 2 === 0) b.set([0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0], 0); // plausible header
    } else {
      const s = seeds[i % seeds.length]!;
      b = s.slice(0, rng.u32() % 4 === 0 ? rng.u32() % (s.length + 1) : s.length);
      const flips = 1 + (rng.u32() % 4);
      for (let f = 0; f < flips && b.length > 0; f++) b[rng.u32() % b.length] = rng.u32() % 256;
    }
    try {
      decodeMessage(b);
      ok++;
    } catch (e) {
      assert.ok(e instanceof DnsWireError, `iteration ${i}: ${String(e)}`);
    }
    const p = parseQuery(b);
    assert.ok(['query', 'error', 'drop'].includes(p.kind));
    if (p.kind !== 'drop') encodeResponse(p.kind === 'query' ? p.query : p, { rcode: RCODE.FORMERR }, 512);
  }
  assert.ok(ok > 100, `${ok} mutated messages still decoded`);
});
