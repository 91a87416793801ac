// The simulation batch CI runs: hundreds of seeds with mixed faults must be safe, linearizable and
// converge; and each deliberately broken variant of the core must be caught.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { UnsafeFlags } from '../../manager/raft/core.ts';
import { runSeed, type RunOptions, type RunResult } from '../../sim/workload.ts';

const SEEDS = Number(process.env.SHOAL_SIM_SEEDS ?? 300);

function firstFailure(opts: Omit<RunOptions, 'seed'>, maxSeeds: number, want?: string): RunResult | null {
  for (let seed = 1; seed <= maxSeeds; seed++) {
    const r = runSeed({ ...opts, seed });
    if (!r.ok && (!want || r.failure === want)) return r;
  }
  return null;
}

describe('simulation batch', () => {
  it(`${SEEDS} seeds with crashes, partitions, power failures, flaky links and membership changes stay linearizable`, () => {
    const failures: string[] = [];
    let acknowledged = 0;
    let crashes = 0;
    let partitions = 0;
    let installs = 0;
    let early = 0;
    for (let seed = 1; seed <= SEEDS; seed++) {
      const r = runSeed({ seed });
      acknowledged += r.okOps;
      crashes += r.crashes;
      partitions += r.partitions;
      installs += r.snapshotsInstalled;
      early += r.earlyCampaigns;
      if (!r.ok) failures.push(`seed ${seed}: ${r.failure}: ${r.message?.split('\n')[0]}`);
    }
    assert.deepEqual(failures, [], `replay with: npm run sim -- --seed N --trace`);
    // The batch must actually exercise the faults it claims to.
    assert.ok(acknowledged > 100_000, `only ${acknowledged} acknowledged ops`);
    assert.ok(crashes > 500 && partitions > 500, `crashes ${crashes}, partitions ${partitions}`);
    assert.ok(installs > 20, `only ${installs} snapshot installs`);
    // Half the seeds bring elections forward on evidence of a gone leader, true or false.
    assert.ok(early > 100, `only ${early} early campaigns`);
  });

  it('leader churn (Figure 8 hunting) stays safe', () => {
    for (let seed = 1; seed <= 60; seed++) {
      const r = runSeed({ seed, nodes: 5, nemesis: 'churn', duration: 4000 });
      assert.ok(r.ok, `seed ${seed}: ${r.failure}: ${r.message}`);
    }
  });

  it('a seed replays exactly', () => {
    const a = runSeed({ seed: 4242, trace: true });
    const b = runSeed({ seed: 4242, trace: true });
    assert.deepEqual(a, b);
  });
});

describe('the simulation catches deliberately broken cores', () => {
  const variants: { flag: keyof UnsafeFlags; what: string }[] = [
    { flag: 'localReads', what: '(a) reads served from local state without ReadIndex' },
    { flag: 'ackBeforeDurable', what: '(b) appends acknowledged before they are durable' },
  ];
  for (const v of variants) {
    it(`${v.what}: the linearizability checker alone finds a violation`, () => {
      const r = firstFailure({ unsafe: { [v.flag]: true }, sim: { invariants: false } }, 150, 'linearizability');
      assert.ok(r, 'no linearizability violation found');
      assert.match(r.message ?? '', /./);
    });
  }

  it('(b) appends acknowledged before they are durable: the safety invariants catch it too', () => {
    const r = firstFailure({ unsafe: { ackBeforeDurable: true } }, 100, 'safety');
    assert.ok(r, 'no safety violation found');
    assert.match(r.message ?? '', /state machine safety|raft safety violation/);
  });

  it('(c) old-term entries committed by counting: random leader churn finds it (seed 244 of 3,000 searched)', () => {
    // Found by `npm run sim -- --seeds 3000 --nemesis churn --nodes 5 --unsafe commitOldTerm`; the
    // directed Figure 8 scenario in scenarios.test.ts reproduces it step by step. That search predates the
    // evidence of gone leaders, which changes an even seed's elections: the seed runs without it.
    const sim = { goneEvidence: false };
    const bad = runSeed({ seed: 244, nodes: 5, nemesis: 'churn', unsafe: { commitOldTerm: true }, sim });
    assert.equal(bad.ok, false);
    assert.equal(bad.failure, 'safety');
    const good = runSeed({ seed: 244, nodes: 5, nemesis: 'churn', sim });
    assert.equal(good.ok, true, good.message);
  });
});
