import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { checkKv, formatHistory } from '../../sim/linearizability.ts';
import type { CheckResult, HistoryOp, KvInput, KvOutput } from '../../sim/linearizability.ts';
import { mulberry32 } from '../../sim/rng.ts';

// ---- helpers ---------------------------------------------------------------------

/** Small fluent builder for hand-written histories; ids are assigned in order. */
class H {
  readonly ops: HistoryOp[] = [];
  private add(client: number, input: KvInput, invoke: number, complete: number | null, output: KvOutput | null): this {
    this.ops.push({ id: this.ops.length + 1, client, input, invoke, complete, output });
    return this;
  }
  /** Completed read of `key` during [inv, cmp] returning `value`. */
  read(client: number, key: string, inv: number, cmp: number, value: string | null): this {
    return this.add(client, { kind: 'read', key }, inv, cmp, { kind: 'read', value });
  }
  /** Read with unknown outcome. */
  readU(client: number, key: string, inv: number): this {
    return this.add(client, { kind: 'read', key }, inv, null, null);
  }
  write(client: number, key: string, value: string, inv: number, cmp: number): this {
    return this.add(client, { kind: 'write', key, value }, inv, cmp, { kind: 'write' });
  }
  /** Write with unknown outcome. */
  writeU(client: number, key: string, value: string, inv: number): this {
    return this.add(client, { kind: 'write', key, value }, inv, null, null);
  }
  cas(client: number, key: string, from: string | null, to: string, inv: number, cmp: number, ok: boolean): this {
    return this.add(client, { kind: 'cas', key, from, to }, inv, cmp, { kind: 'cas', ok });
  }
  /** Cas with unknown outcome. */
  casU(client: number, key: string, from: string | null, to: string, inv: number): this {
    return this.add(client, { kind: 'cas', key, from, to }, inv, null, null);
  }
}

function assertLinearizable(h: H | HistoryOp[]): void {
  const ops = h instanceof H ? h.ops : h;
  const res = checkKv(ops);
  if (res.ok !== true) {
    assert.fail(`expected linearizable, got ${JSON.stringify(res.ok)}: ${res.message}\n${formatHistory(ops)}`);
  }
}

function assertNotLinearizable(h: H | HistoryOp[], key?: string): Extract<CheckResult, { ok: false }> {
  const ops = h instanceof H ? h.ops : h;
  const res = checkKv(ops);
  if (res.ok !== false) {
    assert.fail(`expected a linearizability violation, got ${JSON.stringify(res)}\n${formatHistory(ops)}`);
  }
  if (key !== undefined) assert.equal(res.key, key);
  assert.ok(res.message.length > 0);
  assert.ok(res.ops.length > 0);
  assert.ok(
    res.ops.every((op) => op.input.key === res.key),
    'failure ops must be the failing key sub-history',
  );
  return res;
}

const prng = mulberry32;
const randInt = (rng: () => number, lo: number, hi: number): number => lo + Math.floor(rng() * (hi - lo + 1));
const pick = <T>(rng: () => number, xs: readonly T[]): T => xs[Math.floor(rng() * xs.length)]!;

// ---- random valid histories --------------------------------------------------------

interface GenOpts {
  nOps: number;
  nClients: number;
  nKeys: number;
  /** Probability an op's outcome is reported unknown. */
  unknownRate: number;
  /** Every written value (write values and cas `to`) is unique. */
  uniqueValues: boolean;
  /** Max widening of an interval on each side of its linearization point. */
  spread: number;
}

interface GenMeta {
  /** For each mutation op id: id of the op that wrote the value it replaced (null = initial absent). */
  prevWriter: Map<number, number | null>;
  /** For each mutation op id that took effect: the value it replaced. */
  prevValue: Map<number, string | null>;
}

/**
 * Runs a sequential execution of the register model and wraps each op in an
 * interval that contains its linearization point (strictly increasing times),
 * never overlapping the issuing client's previous op. Always linearizable.
 */
function genValid(seed: number, o: GenOpts): { ops: HistoryOp[]; meta: GenMeta } {
  const rng = prng(seed);
  const value = new Map<string, string | null>();
  const writer = new Map<string, number | null>();
  const clientFree = new Array<number>(o.nClients).fill(0); // earliest time the client may invoke
  const ops: HistoryOp[] = [];
  const meta: GenMeta = { prevWriter: new Map(), prevValue: new Map() };
  let t = 0;
  let counter = 0;
  const freshValue = (): string => (o.uniqueValues ? `v${++counter}` : `v${randInt(rng, 0, 3)}`);

  for (let id = 1; id <= o.nOps; id++) {
    t += randInt(rng, 1, 3);
    let free = clientFree.map((f, c) => (f <= t ? c : -1)).filter((c) => c >= 0);
    if (free.length === 0) {
      t = Math.min(...clientFree);
      free = clientFree.map((f, c) => (f <= t ? c : -1)).filter((c) => c >= 0);
    }
    const client = pick(rng, free);
    const key = `k${randInt(rng, 0, o.nKeys - 1)}`;
    const cur = value.get(key) ?? null;
    const curWriter = writer.get(key) ?? null;

    let input: KvInput;
    let output: KvOutput;
    const r = rng();
    if (r < 0.4) {
      input = { kind: 'read', key };
      output = { kind: 'read', value: cur };
    } else if (r < 0.7) {
      input = { kind: 'write', key, value: freshValue() };
      output = { kind: 'write' };
    } else {
      const from = rng() < 0.6 ? cur : rng() < 0.3 ? null : o.uniqueValues ? `v${randInt(rng, 1, counter + 1)}` : `v${randInt(rng, 0, 3)}`;
      input = { kind: 'cas', key, from, to: freshValue() };
      output = { kind: 'cas', ok: from === cur };
    }
    if (input.kind === 'write' || (input.kind === 'cas' && input.from === cur)) {
      meta.prevWriter.set(id, curWriter);
      meta.prevValue.set(id, cur);
      value.set(key, input.kind === 'write' ? input.value : input.to);
      writer.set(key, id);
    }

    const invoke = randInt(rng, Math.max(clientFree[client]!, t - o.spread), t);
    const complete = t + randInt(rng, 0, o.spread);
    const unknown = rng() < o.unknownRate;
    ops.push({ id, client, input, invoke, complete: unknown ? null : complete, output: unknown ? null : output });
    clientFree[client] = complete + 1;
  }
  return { ops, meta };
}

/**
 * Injects a stale read that no linearization can explain. Requires unique values.
 * Finds a completed mutation W (write, or cas that succeeded) whose replaced value p
 * was written by a completed op Wp that finished strictly before W was invoked (or p
 * is the initial absent value). A completed read R of the same key invoked strictly
 * after W completed must then follow W in every linearization, and as p is written
 * only by Wp (which precedes W), R cannot observe p. Rewrites R to return p (or, if
 * no such read exists, appends one).
 */
function injectStaleRead(ops: HistoryOp[], meta: GenMeta, rng: () => number): { ops: HistoryOp[]; key: string } {
  const byId = new Map(ops.map((op) => [op.id, op]));
  const candidates: { w: HistoryOp; p: string | null }[] = [];
  for (const w of ops) {
    if (w.complete === null || w.output === null) continue;
    const isMutation = w.input.kind === 'write' || (w.output.kind === 'cas' && w.output.ok);
    if (!isMutation || !meta.prevValue.has(w.id)) continue;
    const pw = meta.prevWriter.get(w.id) ?? null;
    if (pw !== null) {
      const wp = byId.get(pw)!;
      if (wp.complete === null || !(wp.complete < w.invoke)) continue;
    }
    candidates.push({ w, p: meta.prevValue.get(w.id) ?? null });
  }
  assert.ok(candidates.length > 0, 'generator produced no usable mutation');
  const { w, p } = pick(rng, candidates);
  const key = w.input.key;
  const reads = ops.filter((op) => op.input.kind === 'read' && op.input.key === key && op.complete !== null && op.invoke > w.complete!);
  const mutated = ops.map((op) => ({ ...op }));
  if (reads.length > 0) {
    const r = pick(rng, reads);
    const idx = mutated.findIndex((op) => op.id === r.id);
    mutated[idx] = { ...r, output: { kind: 'read', value: p } };
  } else {
    const invoke = w.complete! + 1;
    mutated.push({
      id: Math.max(...ops.map((op) => op.id)) + 1,
      client: 1_000,
      input: { kind: 'read', key },
      invoke,
      complete: invoke + 1,
      output: { kind: 'read', value: p },
    });
  }
  return { ops: mutated, key };
}

// ---- brute-force reference (tiny histories only) -------------------------------------

/** Exhaustive search over all real-time-respecting orders; unknown mutations may be omitted. */
function bruteForce(history: HistoryOp[]): boolean {
  const byKey = new Map<string, HistoryOp[]>();
  for (const op of history) {
    if (op.complete === null && op.input.kind === 'read') continue;
    const l = byKey.get(op.input.key) ?? [];
    l.push(op);
    byKey.set(op.input.key, l);
  }
  for (const ops of byKey.values()) {
    const done = new Array<boolean>(ops.length).fill(false);
    const search = (state: string | null, remainingCompleted: number): boolean => {
      if (remainingCompleted === 0) return true;
      for (let i = 0; i < ops.length; i++) {
        if (done[i]) continue;
        const o = ops[i]!;
        // Every pending op that completed strictly before o's invocation must go first.
        if (ops.some((p, k) => !done[k] && k !== i && p.complete !== null && p.complete < o.invoke)) continue;
        let next: string | null = state;
        const out = o.output;
        if (o.input.kind === 'read') {
          if (out === null || out.kind !== 'read' || out.value !== state) continue;
        } else if (o.input.kind === 'write') {
          next = o.input.value;
        } else {
          const match = o.input.from === state;
          if (out !== null && out.kind === 'cas' && out.ok !== match) continue;
          if (match) next = o.input.to;
        }
        done[i] = true;
        const ok = search(next, remainingCompleted - (o.complete !== null ? 1 : 0));
        done[i] = false;
        if (ok) return true;
      }
      return false;
    };
    if (!search(null, ops.filter((op) => op.complete !== null).length)) return false;
  }
  return true;
}

function genTinyRandom(seed: number): HistoryOp[] {
  const rng = prng(seed);
  const n = randInt(rng, 1, 7);
  const vals = ['a', 'b']; // read results and cas `from` values
  const written = ['a', 'b', 'c']; // 'c' is never compared against by a completed op
  const ops: HistoryOp[] = [];
  for (let id = 1; id <= n; id++) {
    const invoke = randInt(rng, 0, 10);
    const complete = rng() < 0.25 ? null : invoke + randInt(rng, 0, 6);
    const key = rng() < 0.85 ? 'x' : 'y';
    const r = rng();
    let input: KvInput;
    let output: KvOutput;
    if (r < 0.4) {
      input = { kind: 'read', key };
      output = { kind: 'read', value: rng() < 0.3 ? null : pick(rng, vals) };
    } else if (r < 0.7) {
      input = { kind: 'write', key, value: pick(rng, written) };
      output = { kind: 'write' };
    } else {
      input = { kind: 'cas', key, from: rng() < 0.3 ? null : pick(rng, vals), to: pick(rng, written) };
      output = { kind: 'cas', ok: rng() < 0.5 };
    }
    ops.push({ id, client: id, input, invoke, complete, output: complete === null ? null : output });
  }
  return ops;
}

// ---- tests ------------------------------------------------------------------------------

describe('linearizability checker: linearizable histories', () => {
  it('accepts the empty history', () => {
    assert.deepEqual(checkKv([]), { ok: true, keys: 0, ops: 0 });
  });

  it('accepts a sequential history over several keys', () => {
    const h = new H()
      .read(1, 'x', 0, 1, null)
      .write(1, 'x', 'a', 2, 3)
      .read(2, 'x', 4, 5, 'a')
      .write(2, 'y', 'p', 6, 7)
      .write(1, 'x', 'b', 8, 9)
      .read(1, 'x', 10, 11, 'b')
      .read(2, 'y', 12, 13, 'p')
      .read(3, 'z', 14, 15, null);
    assert.deepEqual(checkKv(h.ops), { ok: true, keys: 3, ops: 8 });
  });

  it('accepts a read of either value after two overlapping writes', () => {
    for (const seen of ['a', 'b']) {
      const h = new H().write(1, 'x', 'a', 0, 10).write(2, 'x', 'b', 1, 9).read(3, 'x', 11, 12, seen).read(3, 'x', 13, 14, seen);
      assertLinearizable(h);
    }
    // A read overlapping both writes may also still see the initial value.
    assertLinearizable(new H().write(1, 'x', 'a', 0, 10).write(2, 'x', 'b', 1, 9).read(3, 'x', 2, 3, null));
  });

  it('accepts cas chains, including racing cas ops where exactly one wins', () => {
    assertLinearizable(
      new H()
        .cas(1, 'x', null, 'a', 0, 1, true)
        .cas(1, 'x', 'a', 'b', 2, 3, true)
        .cas(2, 'x', 'a', 'c', 4, 5, false)
        .cas(2, 'x', null, 'c', 6, 7, false)
        .read(1, 'x', 8, 9, 'b'),
    );
    for (const winner of [1, 2]) {
      assertLinearizable(
        new H()
          .write(1, 'x', 'a', 0, 1)
          .cas(1, 'x', 'a', 'b', 2, 10, winner === 1)
          .cas(2, 'x', 'a', 'c', 3, 9, winner === 2)
          .read(3, 'x', 11, 12, winner === 1 ? 'b' : 'c'),
      );
    }
  });

  it('accepts an unknown-outcome write that is later observed', () => {
    assertLinearizable(new H().writeU(1, 'x', 'a', 0).read(2, 'x', 1, 2, null).read(2, 'x', 5, 6, 'a').read(3, 'x', 7, 8, 'a'));
    // ... even when it takes effect after a later completed write.
    assertLinearizable(new H().writeU(1, 'x', 'a', 0).write(2, 'x', 'b', 1, 2).read(3, 'x', 3, 4, 'b').read(3, 'x', 5, 6, 'a'));
  });

  it('accepts unknown-outcome writes and cas ops that never take effect', () => {
    assertLinearizable(
      new H()
        .write(1, 'x', 'a', 0, 1)
        .writeU(2, 'x', 'b', 2)
        .casU(3, 'x', 'a', 'c', 3)
        .read(4, 'x', 5, 6, 'a')
        .read(4, 'x', 10, 11, 'a')
        .cas(4, 'x', 'a', 'd', 12, 13, true)
        .read(4, 'x', 14, 15, 'd'),
    );
  });

  it('accepts several unknown writes each observed in turn', () => {
    assertLinearizable(new H().writeU(1, 'x', 'a', 0).writeU(2, 'x', 'b', 0).read(3, 'x', 5, 6, 'a').read(3, 'x', 7, 8, 'b'));
  });

  it('accepts an unknown write needed to explain a failed cas', () => {
    assertLinearizable(new H().write(1, 'x', 'a', 0, 1).writeU(2, 'x', 'b', 2).cas(3, 'x', 'a', 'c', 5, 6, false).read(3, 'x', 7, 8, 'b'));
  });

  it('accepts an unknown cas chained after an unknown write', () => {
    assertLinearizable(new H().writeU(1, 'x', 'a', 0).casU(2, 'x', 'a', 'b', 1).read(3, 'x', 5, 6, 'b'));
  });

  it('accepts concurrent reads seeing the old then the new value when intervals allow it', () => {
    // r2 starts after r1 but overlaps both r1 and the write: r2 -> w -> r1 is a valid order.
    assertLinearizable(new H().write(1, 'x', 'a', 0, 1).write(1, 'x', 'b', 2, 10).read(2, 'x', 3, 5, 'b').read(3, 'x', 4, 9, 'a'));
  });

  it('treats touching intervals (complete === invoke) as concurrent', () => {
    assertLinearizable(new H().write(1, 'x', 'a', 0, 5).read(2, 'x', 5, 6, null));
  });

  it('drops reads with unknown outcome', () => {
    assertLinearizable(new H().write(1, 'x', 'a', 0, 1).readU(2, 'x', 2).read(3, 'x', 3, 4, 'a'));
    assert.deepEqual(checkKv(new H().readU(1, 'x', 0).ops), { ok: true, keys: 1, ops: 1 });
  });

  it('reports ok: unknown when the step budget is exhausted', () => {
    const h = new H().write(1, 'x', 'a', 0, 10).write(2, 'x', 'b', 1, 9).read(3, 'x', 11, 12, 'a');
    const res = checkKv(h.ops, { maxSteps: 2 });
    assert.equal(res.ok, 'unknown');
    if (res.ok === 'unknown') assert.equal(res.key, 'x');
    assert.equal(checkKv(h.ops, { maxSteps: 1_000 }).ok, true);
  });

  it('rejects malformed histories', () => {
    const bad: HistoryOp = { id: 1, client: 1, input: { kind: 'read', key: 'x' }, invoke: 0, complete: 1, output: null };
    assert.throws(() => checkKv([bad]), /null together/);
    const dup = new H().read(1, 'x', 0, 1, null).ops;
    assert.throws(() => checkKv([...dup, ...dup]), /duplicate id/);
    const mismatch: HistoryOp = { id: 1, client: 1, input: { kind: 'read', key: 'x' }, invoke: 0, complete: 1, output: { kind: 'write' } };
    assert.throws(() => checkKv([mismatch]), /does not match/);
  });
});

describe('linearizability checker: non-linearizable histories', () => {
  it('rejects a stale read after a completed write', () => {
    const res = assertNotLinearizable(new H().write(1, 'x', 'a', 0, 1).read(2, 'x', 2, 3, null), 'x');
    assert.match(res.message, /not linearizable/);
    assert.match(res.message, /#2/);
  });

  it('rejects a read of a value that was never written', () => {
    assertNotLinearizable(new H().write(1, 'x', 'a', 0, 10).read(2, 'x', 1, 9, 'zzz'), 'x');
  });

  it('rejects the new-then-old "flip" of two non-overlapping reads', () => {
    assertNotLinearizable(new H().write(1, 'x', 'a', 0, 100).read(2, 'x', 10, 20, 'a').read(3, 'x', 30, 40, null), 'x');
  });

  it('rejects a cas that reports ok although the value could not have matched', () => {
    assertNotLinearizable(new H().write(1, 'x', 'a', 0, 1).cas(2, 'x', 'b', 'c', 2, 3, true), 'x');
    // and a cas reporting failure although the value must have matched
    assertNotLinearizable(new H().write(1, 'x', 'a', 0, 1).cas(2, 'x', 'a', 'c', 2, 3, false), 'x');
  });

  it('rejects a lost acknowledged write', () => {
    assertNotLinearizable(new H().write(1, 'x', 'a', 0, 1).write(2, 'x', 'b', 2, 3).read(3, 'x', 4, 5, 'b').read(3, 'x', 6, 7, 'a'), 'x');
    assertNotLinearizable(new H().write(1, 'x', 'a', 0, 1).write(2, 'x', 'b', 2, 3).read(3, 'x', 4, 5, 'a'), 'x');
  });

  it('rejects an unknown-outcome write used to explain a read that happened before it was invoked', () => {
    assertNotLinearizable(new H().read(1, 'x', 0, 5, 'a').writeU(2, 'x', 'a', 10), 'x');
  });

  it('rejects an unknown cas whose precondition could not hold', () => {
    assertNotLinearizable(new H().write(1, 'x', 'a', 0, 1).casU(2, 'x', 'b', 'c', 2).read(3, 'x', 5, 6, 'c'), 'x');
  });

  it('rejects a value reappearing after an unknown write was observed', () => {
    assertNotLinearizable(new H().writeU(1, 'x', 'a', 0).writeU(2, 'x', 'b', 0).read(3, 'x', 5, 6, 'a').read(3, 'x', 7, 8, 'b').read(3, 'x', 9, 10, 'a'), 'x');
    // A failed cas proves the unknown write took effect; the old value cannot come back.
    assertNotLinearizable(new H().write(1, 'x', 'a', 0, 1).writeU(2, 'x', 'b', 2).cas(3, 'x', 'a', 'c', 5, 6, false).read(3, 'x', 7, 8, 'a'), 'x');
  });

  it('reports only the failing key when other keys are fine', () => {
    const h = new H()
      .write(1, 'a', '1', 0, 1)
      .read(1, 'a', 2, 3, '1')
      .write(2, 'b', '1', 0, 1)
      .read(2, 'b', 2, 3, null) // stale
      .write(3, 'c', '1', 0, 1);
    const res = assertNotLinearizable(h, 'b');
    assert.deepEqual(
      res.ops.map((op) => op.id),
      [3, 4],
    );
  });
});

describe('linearizability checker: agrees with brute force on tiny random histories', () => {
  it('matches an exhaustive search on 5000 random histories', () => {
    let yes = 0;
    let no = 0;
    for (let seed = 1; seed <= 5000; seed++) {
      const ops = genTinyRandom(seed);
      const expected = bruteForce(ops);
      const res = checkKv(ops);
      assert.notEqual(res.ok, 'unknown');
      if (res.ok !== expected) {
        assert.fail(`seed ${seed}: checker says ${String(res.ok)}, brute force says ${expected}\n${formatHistory(ops)}`);
      }
      if (expected) yes++;
      else no++;
    }
    // The generator must exercise both verdicts substantially.
    assert.ok(yes > 1000 && no > 1000, `yes=${yes} no=${no}`);
  });
});

describe('linearizability checker: randomized property tests', () => {
  const base: GenOpts = { nOps: 400, nClients: 6, nKeys: 3, unknownRate: 0, uniqueValues: true, spread: 12 };
  const variants: [string, Partial<GenOpts>][] = [
    ['unique values', {}],
    ['small value domain', { uniqueValues: false }],
    ['unknown outcomes', { unknownRate: 0.08 }],
    ['unknown outcomes, small domain', { unknownRate: 0.08, uniqueValues: false }],
    ['single key, high concurrency', { nKeys: 1, nClients: 10, spread: 25 }],
  ];

  for (const [name, v] of variants) {
    it(`accepts generated valid histories (${name})`, () => {
      for (let seed = 1; seed <= 40; seed++) {
        const { ops } = genValid(seed * 7919 + 17, { ...base, ...v });
        const res = checkKv(ops);
        if (res.ok !== true) assert.fail(`seed ${seed}: ${JSON.stringify(res.ok)} ${res.message}`);
      }
    });
  }

  for (const [name, v] of variants.filter(([, v]) => v.uniqueValues !== false)) {
    it(`rejects generated histories with one injected stale read (${name})`, () => {
      for (let seed = 1; seed <= 40; seed++) {
        const { ops, meta } = genValid(seed * 104729 + 3, { ...base, ...v });
        assert.equal(checkKv(ops).ok, true, `seed ${seed}: unmutated history must pass`);
        const { ops: mutated, key } = injectStaleRead(ops, meta, prng(seed));
        const res = checkKv(mutated);
        if (res.ok !== false) assert.fail(`seed ${seed}: mutation not detected (${JSON.stringify(res.ok)})`);
        assert.equal(res.key, key);
      }
    });
  }
});

describe('linearizability checker: performance', () => {
  const cases: [string, GenOpts][] = [
    ['5000 ops, 10 clients, 8 keys', { nOps: 5000, nClients: 10, nKeys: 8, unknownRate: 0, uniqueValues: false, spread: 20 }],
    ['5000 ops, 10 clients, 8 keys, 3% unknown', { nOps: 5000, nClients: 10, nKeys: 8, unknownRate: 0.03, uniqueValues: true, spread: 20 }],
  ];
  for (const [name, o] of cases) {
    it(`checks a valid history of ${name} in < 2 s`, (t) => {
      const { ops } = genValid(424242, o);
      const start = performance.now();
      const res = checkKv(ops);
      const ms = performance.now() - start;
      t.diagnostic(`${name}: ${ms.toFixed(1)} ms`);
      assert.deepEqual(res, { ok: true, keys: 8, ops: 5000 });
      assert.ok(ms < 2000, `took ${ms.toFixed(0)} ms`);
    });
  }
});

describe('linearizability checker: many pending unknown outcomes', () => {
  // Unknown ops never complete, so they stay candidates for the rest of the
  // history. Without pruning, each one could be linearized at any point and the
  // search would blow up; here 200 unobserved unknown writes share one hot key.
  function withGhosts(seed: number): { ops: HistoryOp[]; meta: GenMeta } {
    const { ops, meta } = genValid(seed, { nOps: 1000, nClients: 10, nKeys: 1, unknownRate: 0, uniqueValues: true, spread: 20 });
    const rng = prng(seed + 1);
    const end = Math.max(...ops.map((op) => op.complete ?? op.invoke));
    const ghosts: HistoryOp[] = [];
    for (let i = 0; i < 200; i++) {
      ghosts.push({
        id: 10_000 + i,
        client: 100 + i,
        input: i % 4 === 3 ? { kind: 'cas', key: 'k0', from: `ghost${i - 1}`, to: `ghost${i}` } : { kind: 'write', key: 'k0', value: `ghost${i}` },
        invoke: randInt(rng, 0, end),
        complete: null,
        output: null,
      });
    }
    return { ops: [...ops, ...ghosts], meta };
  }

  it('accepts a valid hot-key history with 200 never-observed unknown writes', (t) => {
    for (const seed of [11, 12, 13]) {
      const { ops } = withGhosts(seed);
      const start = performance.now();
      const res = checkKv(ops);
      t.diagnostic(`seed ${seed}: ${res.ok} in ${(performance.now() - start).toFixed(1)} ms`);
      assert.equal(res.ok, true);
    }
  });

  it('still finds an injected stale read among them', (t) => {
    for (const seed of [11, 12, 13]) {
      const { ops, meta } = withGhosts(seed);
      const { ops: mutated, key } = injectStaleRead(ops, meta, prng(seed));
      const start = performance.now();
      const res = checkKv(mutated);
      t.diagnostic(`seed ${seed}: ${res.ok} in ${(performance.now() - start).toFixed(1)} ms`);
      assert.equal(res.ok, false);
      if (res.ok === false) assert.equal(res.key, key);
    }
  });
});

describe('formatHistory', () => {
  it('prints one aligned, readable line per op ordered by invocation', () => {
    const h = new H().write(3, 'x', 'a', 10, 25).casU(1, 'x', 'a', 'b', 12).read(12, 'x', 5, 30, null).cas(2, 'x', null, 'c', 40, 41, false).readU(2, 'x', 100);
    const text = formatHistory(h.ops);
    const lines = text.split('\n');
    assert.equal(lines.length, 5);
    assert.deepEqual(lines, [
      '[  5 ..  30]  c12  #3  read("x")                => absent',
      '[ 10 ..  25]  c3   #1  write("x", "a")          => ok',
      '[ 12 ..   ?]  c1   #2  cas("x", "a" -> "b")     => ? (outcome unknown)',
      '[ 40 ..  41]  c2   #4  cas("x", absent -> "c")  => failed',
      '[100 ..   ?]  c2   #5  read("x")                => ? (outcome unknown)',
    ]);
    assert.equal(formatHistory([]), '(empty history)');
  });
});
