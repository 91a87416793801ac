import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CODEC_VERSION, CodecError, decodeMessages, encodeMessages, encodedSize } from '../../manager/raft/codec.ts';
import { MESSAGE_TYPES } from '../../manager/raft/types.ts';
import type { Entry, Message, MessageType, SnapshotChunk } from '../../manager/raft/types.ts';
import { mulberry32 } from '../../sim/rng.ts';

const prng = mulberry32;

function bytes(n: number, seed: number): Uint8Array {
  const rnd = prng(seed);
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.floor(rnd() * 256);
  return out;
}

function msg(type: MessageType, over: Partial<Message> = {}): Message {
  return {
    type,
    from: 'n1',
    to: 'n2',
    term: 7,
    index: 0,
    logTerm: 0,
    commit: 0,
    entries: [],
    reject: false,
    rejectHint: 0,
    context: '',
    snapshot: null,
    ...over,
  };
}

function entries(first: number, n: number, size: number, term = 3): Entry[] {
  const out: Entry[] = [];
  for (let i = 0; i < n; i++) {
    out.push({ index: first + i, term, type: i % 5 === 4 ? 'conf' : 'normal', data: bytes(size + i, first + i) });
  }
  return out;
}

function chunk(size: number): SnapshotChunk {
  return {
    meta: {
      index: 120_000,
      term: 9,
      conf: { voters: ['n1', 'nœud-2', '节点3'], learners: ['🐟-learner'], removed: ['old', ''] },
    },
    offset: 4096,
    total: 1 << 30,
    data: bytes(size, 42),
  };
}

/** One message of every type, with realistic and awkward field values. */
function everyType(): Message[] {
  return MESSAGE_TYPES.map((type, i) => {
    switch (type) {
      case 'app':
        return msg(type, { index: 99, logTerm: 3, commit: 98, entries: entries(100, 12, 17) });
      case 'appResp':
        return msg(type, { index: 90, logTerm: 2, reject: true, rejectHint: 85, from: 'nœud-2', to: 'n1' });
      case 'snap':
        return msg(type, { snapshot: chunk(3000), from: '节点3' });
      case 'snapResp':
        return msg(type, { index: 7096, reject: i % 2 === 0 });
      case 'preVote':
      case 'vote':
        return msg(type, { index: 2 ** 40, logTerm: 2 ** 33 + 1, context: 'transfer', from: '🐟', to: 'a\u0000b' });
      case 'heartbeat':
        return msg(type, { commit: Number.MAX_SAFE_INTEGER, context: 'read-ctx-ü'.repeat(20) });
      case 'readIndexResp':
        return msg(type, { index: 123456789, context: 'c'.repeat(300), reject: true });
      default:
        return msg(type, { term: 2 ** 31 + i, reject: i % 2 === 1, context: `ctx-${i}` });
    }
  });
}

function assertPlainBytes(m: Message): void {
  for (const e of m.entries) assert.equal(Object.getPrototypeOf(e.data), Uint8Array.prototype);
  if (m.snapshot) assert.equal(Object.getPrototypeOf(m.snapshot.data), Uint8Array.prototype);
}

test('round trip of every message type, one per frame and all in one frame', () => {
  const all = everyType();
  for (const m of all) {
    const frame = encodeMessages([m]);
    assert.equal(frame[0], CODEC_VERSION);
    assert.equal(frame.length, encodedSize([m]));
    const [back] = decodeMessages(frame);
    assert.ok(back);
    assert.deepStrictEqual(back, m);
    assertPlainBytes(back);
  }
  const frame = encodeMessages(all);
  const back = decodeMessages(frame);
  assert.deepStrictEqual(back, all);
  back.forEach(assertPlainBytes);
  assert.deepStrictEqual(decodeMessages(encodeMessages([])), []);
});

test('decodes from a view with a non-zero byteOffset and never aliases the input', () => {
  const m = msg('app', { entries: entries(1, 3, 64) });
  const frame = encodeMessages([m]);
  const big = new Uint8Array(frame.length + 100);
  big.set(frame, 37);
  const view = big.subarray(37, 37 + frame.length);
  const [back] = decodeMessages(view);
  assert.deepStrictEqual(back, m);
  big.fill(0);
  assert.deepStrictEqual(back, m, 'decoded data must be a copy');
});

test('integer edge values round trip in every numeric field', () => {
  const values = [
    0,
    1,
    63,
    64,
    127,
    128,
    8191,
    8192,
    2 ** 20 - 1,
    2 ** 20,
    2 ** 27,
    2 ** 31,
    2 ** 32 + 5,
    2 ** 46,
    2 ** 52 + 3,
    Number.MAX_SAFE_INTEGER,
    -1,
    -63,
    -64,
    -65,
    -(2 ** 32),
    -Number.MAX_SAFE_INTEGER,
  ];
  const ms = values.map((v) =>
    msg('snap', {
      term: v,
      index: v,
      logTerm: v,
      commit: v,
      rejectHint: v,
      entries: [{ index: v, term: v, type: 'normal', data: new Uint8Array(0) }],
      snapshot: { ...chunk(1), offset: v, total: v, meta: { index: v, term: v, conf: { voters: [], learners: [], removed: [] } } },
    }),
  );
  assert.deepStrictEqual(decodeMessages(encodeMessages(ms)), ms);
});

test('small values are compact', () => {
  const hb = msg('heartbeat', { term: 5, commit: 40 });
  // version + count + head + "n1" + "n2" + 5 ints + context + entry count
  assert.equal(encodeMessages([hb]).length, 1 + 1 + 1 + 3 + 3 + 5 + 1 + 1);
  const e = entries(1000, 1, 1024)[0] as Entry;
  const app = msg('app', { entries: [e] });
  assert.ok(encodeMessages([app]).length < 1024 + 32);
});

test('encoding refuses values it cannot represent', () => {
  const bad: Array<Partial<Message>> = [
    { term: Number.NaN },
    { index: 1.5 },
    { commit: 2 ** 53 },
    { logTerm: -(2 ** 53) },
    { rejectHint: Infinity },
    { type: 'bogus' as MessageType },
    { from: 'x\uD800y' },
    { entries: [{ index: 1, term: 1, type: 'weird' as 'normal', data: new Uint8Array(1) }] },
    { entries: [{ index: 1, term: 1, type: 'normal', data: [1, 2] as unknown as Uint8Array }] },
  ];
  for (const over of bad) {
    assert.throws(() => encodeMessages([msg('app', over)]), CodecError, JSON.stringify(Object.keys(over)));
  }
});

test('malformed buffers throw CodecError naming the field and offset', () => {
  const good = encodeMessages([msg('heartbeat', { commit: 300 })]);
  const cases: Array<[Uint8Array, RegExp]> = [
    [new Uint8Array(0), /version.*offset 0/],
    [Uint8Array.of(2, 0), /unsupported version 2/],
    [Uint8Array.of(1), /count.*offset 1/],
    [Uint8Array.of(1, 0, 0), /trailing/],
    [Uint8Array.of(1, 0x80, 0x00), /non-minimal varint reading count/],
    [Uint8Array.of(1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01), /varint too long/],
    [Uint8Array.of(1, 100), /message count 100 exceeds/],
    [Uint8Array.of(1, 1, 0x0f, 0, 0, 0, 0, 0, 0, 0, 0, 0), /unknown message type 15 .*offset 2/],
    [Uint8Array.of(1, 1, 0x40, 0, 0, 0, 0, 0, 0, 0, 0, 0), /reserved bits/],
    [Uint8Array.of(1, 1, 0x00, 2, 0xc3, 0x28, 0, 0, 0, 0, 0, 0, 0, 0), /invalid utf-8 reading from in message 0 at offset 4/],
    [Uint8Array.of(1, 1, 0x00, 0, 0, 0x40, 0, 0, 0, 0, 0, 0), /negative zero reading term/],
    [Uint8Array.of(1, 1, 0x00, 0, 0, 0x80, 0, 0, 0, 0, 0, 0), /non-minimal integer reading term/],
    [Uint8Array.of(1, 1, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 9), /entry count 9 exceeds/],
    [Uint8Array.of(1, 1, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 2, 0), /unknown entry type 2 reading entry.type in message 0 entry 0/],
    [Uint8Array.of(1, 1, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 5, 1), /length 5 exceeds remaining 1 bytes reading entry.data/],
    [good.subarray(0, good.length - 1), /truncated/],
  ];
  for (const [buf, re] of cases) {
    assert.throws(
      () => decodeMessages(buf),
      (err: unknown) => err instanceof CodecError && re.test(err.message),
      `expected ${re} for [${Array.from(buf).join(',')}]`,
    );
  }
  // An integer magnitude above 2^53-1 (eight bytes, all magnitude bits set).
  const huge = Uint8Array.of(1, 1, 0x00, 0, 0, 0xbf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 0, 0, 0, 0, 0, 0);
  assert.throws(() => decodeMessages(huge), /integer exceeds 2\^53-1 reading term/);
  assert.throws(() => decodeMessages('nope' as unknown as Uint8Array), CodecError);
});

test('every strict prefix of a frame is rejected', () => {
  const frame = encodeMessages(
    everyType()
      .filter((m) => m.type !== 'snap')
      .concat(msg('snap', { snapshot: chunk(40) })),
  );
  for (let len = 0; len < frame.length; len++) {
    assert.throws(() => decodeMessages(frame.subarray(0, len)), CodecError, `prefix ${len}`);
  }
});

test('fuzz: random truncations, bit flips, splices and garbage only ever throw CodecError', () => {
  const rnd = prng(0x5ea1);
  const frames = [
    encodeMessages(everyType()),
    encodeMessages([msg('app', { entries: entries(5, 40, 30) })]),
    encodeMessages([msg('heartbeat'), msg('vote', { from: '🐟🐠', context: 'transfer' })]),
    encodeMessages([msg('snap', { snapshot: chunk(200) })]),
  ];
  let decodedAnyway = 0;
  let rejected = 0;
  for (let iter = 0; iter < 6000; iter++) {
    const src = frames[Math.floor(rnd() * frames.length)] as Uint8Array;
    let buf: Uint8Array;
    const mode = iter % 4;
    if (mode === 0) {
      buf = src.slice(0, Math.floor(rnd() * src.length));
    } else if (mode === 1) {
      buf = src.slice();
      const flips = 1 + Math.floor(rnd() * 4);
      for (let f = 0; f < flips; f++) {
        const at = Math.floor(rnd() * buf.length);
        buf[at] = (buf[at] as number) ^ (1 << Math.floor(rnd() * 8));
      }
    } else if (mode === 2) {
      // Splice: drop or duplicate a random range.
      const a = Math.floor(rnd() * src.length);
      const b = a + Math.floor(rnd() * Math.min(16, src.length - a));
      buf = rnd() < 0.5 ? new Uint8Array([...src.subarray(0, a), ...src.subarray(b)]) : new Uint8Array([...src.subarray(0, b), ...src.subarray(a)]);
      if (buf.length === src.length) continue;
    } else {
      buf = bytes(Math.floor(rnd() * 64), iter);
      if (rnd() < 0.5 && buf.length > 0) buf[0] = CODEC_VERSION;
    }
    try {
      const out = decodeMessages(buf);
      decodedAnyway++;
      // Whatever decodes must be well-formed enough to encode again, byte for byte.
      assert.deepStrictEqual(new Uint8Array(encodeMessages(out)), new Uint8Array(buf));
      assert.notEqual(mode, 0, 'a strict prefix must never decode');
    } catch (err) {
      if (!(err instanceof CodecError)) {
        assert.fail(`iteration ${iter} (mode ${mode}) threw ${String(err)} for [${Array.from(buf).join(',')}]`);
      }
      rejected++;
    }
  }
  assert.ok(rejected > 3000);
  // Flips inside payload bytes legitimately decode (there is no checksum at this layer).
  assert.ok(decodedAnyway > 0);
});

test('throughput of 1 KiB entries (informational)', () => {
  const batch = 64;
  const frames = 400;
  const proto = entries(1, batch, 1024);
  const t0 = performance.now();
  let decoded = 0;
  for (let f = 0; f < frames; f++) {
    const frame = encodeMessages([msg('app', { index: f * batch, entries: proto })]);
    decoded += (decodeMessages(frame)[0] as Message).entries.length;
  }
  const secs = (performance.now() - t0) / 1000;
  assert.equal(decoded, batch * frames);
  console.log(`codec: ${Math.round(decoded / secs)} 1 KiB entries/s encoded+decoded (${batch}/message)`);

  const small = Array.from({ length: 1000 }, (_, i) => msg('appResp', { index: i, from: 'manager-1', to: 'manager-2' }));
  const t1 = performance.now();
  for (let r = 0; r < 100; r++) decodeMessages(encodeMessages(small));
  const secs2 = (performance.now() - t1) / 1000;
  console.log(`codec: ${Math.round(100_000 / secs2)} small messages/s encoded+decoded`);
});
