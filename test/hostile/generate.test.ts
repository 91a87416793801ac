// The hostile generator on its own (no lab): a seed replays the same attack, every message type and
// kind is reached, message-level inputs are well-framed WebSocket text (so the manager, not the frame
// parser, has to judge them), and nothing it makes for the admin client is a valid destructive request.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  ADMIN_KINDS,
  DISPATCHER_TYPES,
  FRAME_KINDS,
  MESSAGE_KINDS,
  UNAUTH_KINDS,
  adminInput,
  dispatcherInput,
  unauthInput,
  type DispatcherContext,
} from './generate.ts';
import { Rng } from './prng.ts';

const CTX: DispatcherContext = { nodeId: 'n1', otherTaskIds: ['t'.repeat(25)], csr: null, maxPayload: 4 << 20 };
const ADMIN = { nodeIds: ['node1node1node1node1node1'], serviceIds: ['svc1svc1svc1svc1svc1svc1s'], taskIds: ['task1task1task1task1task1'], maxBody: 4 << 20 };

/** Splits client frames: [opcode, fin, unmasked payload] each; throws on a truncated stream. */
function decodeFrames(b: Buffer): { opcode: number; fin: boolean; payload: Buffer }[] {
  const out: { opcode: number; fin: boolean; payload: Buffer }[] = [];
  let i = 0;
  while (i < b.length) {
    const fin = (b[i]! & 0x80) !== 0;
    const opcode = b[i]! & 0x0f;
    const masked = (b[i + 1]! & 0x80) !== 0;
    let len = b[i + 1]! & 0x7f;
    i += 2;
    if (len === 126) {
      len = b.readUInt16BE(i);
      i += 2;
    } else if (len === 127) {
      len = Number(b.readBigUInt64BE(i));
      i += 8;
    }
    assert.ok(masked, 'a client frame must be masked');
    const key = b.subarray(i, i + 4);
    i += 4;
    assert.ok(i + len <= b.length, 'truncated frame');
    const payload = Buffer.from(b.subarray(i, i + len));
    for (let j = 0; j < payload.length; j++) payload[j]! ^= key[j & 3]!;
    out.push({ opcode, fin, payload });
    i += len;
  }
  return out;
}

describe('hostile generator', () => {
  it('the same seed gives the same inputs, another seed others', () => {
    const run = (seed: number) => {
      const rng = new Rng(seed);
      return Array.from({ length: 200 }, () =>
        [
          dispatcherInput(rng, CTX, () => rng.bytes(4)).bytes.toString('hex'),
          JSON.stringify(adminInput(rng, ADMIN)),
          unauthInput(rng).first.toString('hex'),
        ].join('|'),
      );
    };
    assert.deepEqual(run(5), run(5));
    assert.notDeepEqual(run(5), run(6));
  });

  it('reaches every dispatcher message type and kind, and every frame kind', () => {
    const rng = new Rng(1);
    const seen = new Set<string>();
    for (let i = 0; i < 4000; i++) seen.add(dispatcherInput(rng, CTX, () => rng.bytes(4)).kind);
    for (const t of DISPATCHER_TYPES)
      for (const k of MESSAGE_KINDS.filter((k) => k !== 'oversized' && k !== 'huge-string')) assert.ok(seen.has(`${t}/${k}`), `${t}/${k} never drawn`);
    for (const k of FRAME_KINDS.filter((k) => k !== 'oversized-frame' && k !== 'fragments')) assert.ok(seen.has(`frame/${k}`), `frame/${k} never drawn`);
  });

  it('message-level inputs are complete masked text frames within the frame limit (or say they end the stream)', () => {
    const rng = new Rng(2);
    for (let i = 0; i < 1500; i++) {
      const x = dispatcherInput(rng, CTX, () => rng.bytes(4));
      if (x.kind.startsWith('frame/')) continue;
      const frames = decodeFrames(x.bytes);
      assert.ok(frames.length >= 1);
      for (const f of frames) {
        assert.equal(f.opcode, 1, `${x.kind}: not a text frame`);
        assert.ok(f.fin);
        if (f.payload.length > CTX.maxPayload) assert.ok(x.ends, `${x.kind}: a frame over the limit must end the stream`);
      }
    }
  });

  it('reaches every admin and unauthenticated kind', () => {
    const rng = new Rng(3);
    const a = new Set<string>();
    const u = new Set<string>();
    for (let i = 0; i < 3000; i++) {
      a.add(adminInput(rng, ADMIN).kind);
      u.add(unauthInput(rng).kind);
    }
    for (const k of ADMIN_KINDS) assert.ok(a.has(`admin/${k}`), `admin/${k} never drawn`);
    for (const k of UNAUTH_KINDS) assert.ok(u.has(`unauth/${k}`), `unauth/${k} never drawn`);
  });

  it('never makes a valid destructive admin request', () => {
    const rng = new Rng(4);
    for (let i = 0; i < 5000; i++) {
      const x = adminInput(rng, ADMIN);
      if (x.raw) continue;
      const path = x.path.split('?')[0]!;
      assert.ok(!/\/(promote|demote|rollback|rotate-node-certs)$/.test(path), `${x.method} ${path}`);
      if (x.method === 'DELETE') assert.ok(!ADMIN.nodeIds.concat(ADMIN.serviceIds).some((id) => path.includes(id)), `DELETE of a real object: ${path}`);
      if (x.method !== 'POST' || !x.body) continue;
      let body: any;
      try {
        body = JSON.parse(x.body.toString('utf8'));
      } catch {
        continue; // invalid JSON is refused whatever it targets
      }
      if (path === '/v1/cluster/update')
        assert.ok(!(Number.isInteger(body?.heartbeatPeriodMs) && body.heartbeatPeriodMs >= 100 && body.heartbeatPeriodMs <= 60_000), x.body.toString());
      if (path.endsWith('/scale')) assert.ok(!(Number.isInteger(body?.replicas) && body.replicas >= 0 && body.replicas < 1e9), x.body.toString());
      if (path.startsWith('/v1/nodes/') && path.endsWith('/update')) {
        assert.ok(!['active', 'pause', 'drain'].includes(body?.availability), x.body.toString());
        assert.ok(!Array.isArray(body?.labelRm) || !body.labelRm.some((k: unknown) => String(k).startsWith('ackw.')), 'removes a writer label');
      }
    }
  });
});
