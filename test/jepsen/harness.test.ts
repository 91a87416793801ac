// Unit tests of the real-cluster linearizability harness's pure parts: the seeded plans, the history
// bookkeeping, the per-key verdicts, and the parsing of the test-only SHOAL_UNSAFE_RAFT switch. The harness
// itself runs against real daemons in test/cluster/jepsen.test.ts.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { unsafeRaftOption } from '../../manager/raft/node.ts';
import { History, VersionBook, checkPerKey } from './history.ts';
import { OpChooser, nemesisSchedule, type ScheduleOptions } from './schedule.ts';

const plan: ScheduleOptions = {
  seed: 7,
  durationMs: 30_000,
  kinds: ['partition', 'kill', 'pause', 'pause-partition'],
  leaderBias: 0.5,
  holdMs: [1500, 3500],
  gapMs: [800, 2000],
  leadInMs: 1000,
  tailMs: 2500,
};

describe('nemesis schedule', () => {
  it('is a function of the seed: same seed, same plan; another seed, another plan', () => {
    assert.deepEqual(nemesisSchedule(plan), nemesisSchedule(plan));
    assert.notDeepEqual(nemesisSchedule(plan), nemesisSchedule({ ...plan, seed: 8 }));
  });

  it('runs faults one at a time, after the lead-in, healed before the tail, within their bounds', () => {
    for (let seed = 0; seed < 50; seed++) {
      const faults = nemesisSchedule({ ...plan, seed });
      assert.ok(faults.length >= 3, `seed ${seed}: ${faults.length} faults`);
      let end = plan.leadInMs;
      for (const f of faults) {
        assert.ok(f.startMs >= end, `seed ${seed}: faults overlap`);
        assert.ok(f.holdMs >= plan.holdMs[0] && f.holdMs <= plan.holdMs[1]);
        assert.ok(plan.kinds.includes(f.kind));
        end = f.startMs + f.holdMs;
        assert.ok(end + plan.tailMs <= plan.durationMs, `seed ${seed}: a fault runs into the tail`);
      }
    }
  });

  it('uses only the kinds asked for, and none when none are', () => {
    assert.ok(nemesisSchedule({ ...plan, kinds: ['pause-partition'], leaderBias: 1 }).every((f) => f.kind === 'pause-partition' && f.target === 'leader'));
    assert.deepEqual(nemesisSchedule({ ...plan, kinds: [] }), []);
  });
});

describe('op chooser', () => {
  it('gives each client its own deterministic stream, following the mix', () => {
    const a = new OpChooser(1, 0, ['x', 'y'], { read: 1, write: 1, cas: 0 }, [5, 10]);
    const b = new OpChooser(1, 0, ['x', 'y'], { read: 1, write: 1, cas: 0 }, [5, 10]);
    const other = new OpChooser(1, 1, ['x', 'y'], { read: 1, write: 1, cas: 0 }, [5, 10]);
    const xs = Array.from({ length: 200 }, () => a.next());
    assert.deepEqual(
      xs,
      Array.from({ length: 200 }, () => b.next()),
    );
    assert.notDeepEqual(
      xs,
      Array.from({ length: 200 }, () => other.next()),
    );
    assert.ok(xs.every((x) => x.kind !== 'cas' && x.thinkMs >= 5 && x.thinkMs <= 10 && (x.key === 'x' || x.key === 'y')));
    assert.ok(xs.some((x) => x.kind === 'read') && xs.some((x) => x.kind === 'write'));
    assert.throws(() => new OpChooser(1, 0, [], { read: 1, write: 0, cas: 0 }, [0, 0]), /at least one key/);
  });
});

describe('history and verdicts', () => {
  it('counts outcomes per kind and hands the checker completed and unknown ops', () => {
    const h = new History();
    const w = h.invoke(0, { kind: 'write', key: 'k', value: 'a' }, 0);
    h.complete(w, { kind: 'write' }, 10);
    const c = h.invoke(1, { kind: 'cas', key: 'k', from: 'b', to: 'c' }, 11);
    h.complete(c, { kind: 'cas', ok: false }, 20);
    const u = h.invoke(2, { kind: 'write', key: 'k', value: 'd' }, 21);
    h.unknown(u);
    assert.deepEqual(h.counts.write, { ok: 1, fail: 0, unknown: 1 });
    assert.deepEqual(h.counts.cas, { ok: 0, fail: 1, unknown: 0 });
    assert.equal(h.snapshot().find((op) => op.id === u)!.complete, null);
    assert.throws(() => h.complete(w, { kind: 'write' }, 30), /not open/);
  });

  it('passes a linearizable history with unknown outcomes and flags a stale read, per key', () => {
    const h = new History();
    const op = (client: number, input: Parameters<History['invoke']>[1], t0: number, out: Parameters<History['complete']>[1] | null, t1: number) => {
      const id = h.invoke(client, input, t0);
      if (out) h.complete(id, out, t1);
      else h.unknown(id);
    };
    // good: an unknown write that may have taken effect explains the read of "b"
    op(0, { kind: 'write', key: 'good', value: 'a' }, 0, { kind: 'write' }, 5);
    op(1, { kind: 'write', key: 'good', value: 'b' }, 6, null, 0);
    op(2, { kind: 'read', key: 'good' }, 20, { kind: 'read', value: 'b' }, 25);
    // bad: the write of "y" completed before the read began, yet the read saw "x"
    op(0, { kind: 'write', key: 'bad', value: 'x' }, 0, { kind: 'write' }, 5);
    op(1, { kind: 'write', key: 'bad', value: 'y' }, 10, { kind: 'write' }, 15);
    op(2, { kind: 'read', key: 'bad' }, 20, { kind: 'read', value: 'x' }, 25);
    const v = checkPerKey(h.snapshot());
    assert.deepEqual(
      v.map((x) => [x.key, x.verdict]),
      [
        ['bad', 'anomaly'],
        ['good', 'linearizable'],
      ],
    );
    assert.match(v[0]!.timeline!, /read\("bad"\)\s+=> "x"/);
  });

  it('reports a value seen at two versions (another writer) instead of trusting the history', () => {
    const b = new VersionBook();
    b.note('k', null, 3);
    b.note('k', 'a', 4);
    b.note('k', 'a', 4);
    assert.deepEqual(b.conflicts, []);
    b.note('k', null, 5);
    assert.match(b.conflicts[0]!, /value null read at versions 3 and 5/);
  });
});

describe('SHOAL_UNSAFE_RAFT', () => {
  it('is off unless set, names the variants, and refuses a typo', () => {
    assert.deepEqual(unsafeRaftOption({}), {});
    assert.deepEqual(unsafeRaftOption({ SHOAL_UNSAFE_RAFT: ' ' }), {});
    assert.deepEqual(unsafeRaftOption({ SHOAL_UNSAFE_RAFT: 'localReads' }), { unsafeRaft: { localReads: true } });
    assert.deepEqual(unsafeRaftOption({ SHOAL_UNSAFE_RAFT: 'localReads,commitOldTerm' }), { unsafeRaft: { localReads: true, commitOldTerm: true } });
    assert.throws(() => unsafeRaftOption({ SHOAL_UNSAFE_RAFT: 'localread' }), /unknown variant "localread"/);
  });
});
