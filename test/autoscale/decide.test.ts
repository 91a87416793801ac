// The autoscaler's decision on recorded usage traces (test/autoscale/sim.ts turns a load into the samples
// agents would send): steps, spikes, noise, missing samples, flapping attempts, a leader change, bounds,
// cooldowns, CPU limits and memory targets. Each run's changes are compared in a readable golden form
// (`t=76 2→4`: at second 76, from 2 to 4 replicas).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { AutoscaleSpec } from '../../api/objects.ts';
import { decide, DEFAULT_COOLDOWN_IN_MS, DEFAULT_COOLDOWN_OUT_MS, DEFAULT_WINDOW_MS, TOLERANCE } from '../../manager/autoscale/decide.ts';
import type { AutoscaleInput } from '../../manager/autoscale/decide.ts';
import { changeLines, simulate } from './sim.ts';

const policy = (o: Partial<AutoscaleSpec> = {}): AutoscaleSpec => ({
  min: 2,
  max: 20,
  cpu: 50,
  windowMs: DEFAULT_WINDOW_MS,
  cooldowns: { outMs: DEFAULT_COOLDOWN_OUT_MS, inMs: DEFAULT_COOLDOWN_IN_MS },
  ...o,
});

/** No two changes in opposite directions closer than `ms` (what "flapping" would look like). */
function assertNoFlap(changes: { t: number; from: number; to: number }[], ms: number): void {
  for (let i = 1; i < changes.length; i++) {
    const a = changes[i - 1]!;
    const b = changes[i]!;
    const dirA = Math.sign(a.to - a.from);
    const dirB = Math.sign(b.to - b.from);
    if (dirA !== dirB) assert.ok((b.t - a.t) * 1000 >= ms, `flap: ${a.from}→${a.to} at ${a.t}s then ${b.from}→${b.to} at ${b.t}s`);
  }
}

describe('autoscale decide() on usage traces', () => {
  it('a step up scales out within seconds (lowest of the out-window, then after the cooldown); the step down scales in after the window, at most halving', () => {
    // 1 core of demand over 2 tasks at 50% target = 2 replicas; 4 cores from t=60 to t=400 = 8 replicas.
    const r = simulate({ policy: policy(), replicas: 2, seconds: 1200, demand: (t) => (t >= 60 && t < 400 ? 400 : 100) });
    assert.deepEqual(changeLines(r), ['t=76 2→4', 't=106 4→8', 't=700 8→7', 't=760 7→4', 't=820 4→2']);
    assert.match(r.changes[0]!.reason, /cpu 200% of limit \(target 50%\) over 2\/2 tasks: 2 → 4 \(wants 8, the lowest of the last 15s\)/);
    assert.match(r.changes[3]!.reason, /keeping at least half per step/);
    // Out after 16 s of load, not before the out-window (15 s) has seen it.
    assert.ok(r.changes[0]!.t - 60 >= 15);
    // In not before the whole window (300 s) after the load stopped.
    assert.ok(r.changes[2]!.t - 400 >= 300);
    assertNoFlap(r.changes, DEFAULT_WINDOW_MS);
  });

  it('a spike shorter than the out-window changes nothing', () => {
    const r = simulate({ policy: policy(), replicas: 2, seconds: 600, demand: (t) => (t >= 60 && t < 65 ? 1000 : 100) });
    assert.deepEqual(changeLines(r), []);
  });

  it('noise within the tolerance band (±8% around the target) never scales', () => {
    assert.ok(0.08 < TOLERANCE);
    for (const seed of [1, 7, 42]) {
      const r = simulate({ policy: policy(), replicas: 4, seconds: 1800, demand: () => 200, noise: 0.08, seed });
      assert.deepEqual(changeLines(r), [], `seed ${seed}`);
      assert.match(r.last.reason, /within tolerance/);
    }
  });

  it('missing samples: never scales in while a replica is silent; scales in a full window after it reports again', () => {
    const r = simulate({ policy: policy(), replicas: 4, seconds: 1000, demand: () => 40, silent: (i, t) => i === 1 && t < 600 });
    // Silent until t=600: the window then still holds "4" recommendations until t≈900.
    assert.deepEqual(changeLines(r), ['t=906 4→2']);
    const quiet = simulate({ policy: policy(), replicas: 4, seconds: 700, demand: () => 40, silent: (i) => i === 1 });
    assert.deepEqual(changeLines(quiet), []);
    assert.match(quiet.last.reason, /over 3\/4 tasks: holding \(usage missing for some replicas\)/);
  });

  it('but a silent replica does not stop a scale-out (it counts as idle)', () => {
    const r = simulate({ policy: policy(), replicas: 2, seconds: 200, demand: (t) => (t >= 30 ? 400 : 100), silent: (i) => i === 1 });
    assert.ok(r.changes.length > 0 && r.changes[0]!.to > 2, changeLines(r).join(' '));
  });

  it('no usage at all holds the count', () => {
    const r = simulate({ policy: policy(), replicas: 3, seconds: 900, demand: () => 0, silent: () => true });
    assert.deepEqual(changeLines(r), []);
    assert.match(r.last.reason, /no usage reported by the 3 running tasks/);
  });

  it('flapping attempts: a load alternating every 30 s scales out once and holds', () => {
    const r = simulate({ policy: policy(), replicas: 2, seconds: 1800, demand: (t) => (Math.floor(t / 30) % 2 === 0 ? 60 : 160) });
    assert.deepEqual(changeLines(r), ['t=47 2→3']);
    const fast = simulate({ policy: policy(), replicas: 2, seconds: 1800, demand: (t) => (Math.floor(t / 10) % 2 === 0 ? 20 : 300) });
    assertNoFlap(fast.changes, DEFAULT_WINDOW_MS);
    assert.ok(fast.changes.length <= 2, changeLines(fast).join(' '));
  });

  it('a new leader starts with an empty window: it may scale out at once but waits a full window before scaling in', () => {
    const base = simulate({ policy: policy(), replicas: 8, seconds: 1000, demand: () => 100 });
    assert.deepEqual(changeLines(base), ['t=308 8→4', 't=368 4→2']);
    const moved = simulate({ policy: policy(), replicas: 8, seconds: 1000, demand: () => 100, leaderChangeAt: 200 });
    assert.deepEqual(changeLines(moved), ['t=508 8→4', 't=568 4→2']);
    const out = simulate({ policy: policy(), replicas: 2, seconds: 300, demand: (t) => (t >= 100 ? 400 : 100), leaderChangeAt: 95 });
    assert.ok(out.changes[0] && out.changes[0].t < 140 && out.changes[0].to > 2, changeLines(out).join(' '));
  });

  it('bounds are enforced at once, without usage or cooldowns', () => {
    const base: AutoscaleInput = {
      policy: policy({ min: 3, max: 5 }),
      replicas: 1,
      tasks: [],
      samples: new Map(),
      history: [],
      observingSince: 0,
      last: { at: 0, from: 4, to: 1 },
      now: 1000,
    };
    const up = decide(base);
    assert.equal(up.replicas, 3);
    assert.equal(up.changed, true);
    assert.match(up.reason, /1 replicas is below the autoscale minimum 3/);
    const down = decide({ ...base, replicas: 9 });
    assert.deepEqual([down.replicas, down.changed], [5, true]);
    assert.match(down.reason, /above the autoscale maximum 5/);
    const inside = decide({ ...base, replicas: 4 });
    assert.deepEqual([inside.replicas, inside.changed], [4, false]);
  });

  it('the out step is limited to max(4, replicas) more, and the max bound caps the result', () => {
    const r = simulate({
      policy: policy({ max: 12, cooldowns: { outMs: 5000, inMs: 60_000 } }),
      replicas: 2,
      seconds: 200,
      demand: (t) => (t >= 10 ? 5000 : 100),
    });
    // wants 100: +4 (2→6), then +6 (6→12, the max).
    assert.deepEqual(
      r.changes.map((c) => c.to),
      [6, 12],
    );
    assert.match(r.changes[0]!.reason, /at most 4 more per step/);
  });

  it('cooldowns: a second scale-out waits cooldowns.outMs after the first', () => {
    const r = simulate({ policy: policy({ cooldowns: { outMs: 45_000, inMs: 60_000 } }), replicas: 2, seconds: 300, demand: (t) => (t >= 60 ? 400 : 100) });
    assert.ok(r.changes.length >= 2);
    assert.ok(r.changes[1]!.t - r.changes[0]!.t >= 45, changeLines(r).join(' '));
  });

  it('cpu is a percentage of the task CPU limit when it has one (35% of a core under a 0.5 CPU limit is 70%)', () => {
    const tasks = [{ id: 'a', nanoCpus: 5e8 }];
    const samples = new Map([['a', [{ at: 9000, cpuPercent: 35 }]]]);
    const d = decide({ policy: policy({ min: 1, cpu: 70 }), replicas: 1, tasks, samples, history: [], observingSince: 0, now: 10_000 });
    assert.equal(Math.round(d.figures.cpu!.average), 70);
    assert.match(d.reason, /within tolerance/);
    const noLimit = decide({ policy: policy({ min: 1, cpu: 70 }), replicas: 1, tasks: [{ id: 'a' }], samples, history: [], observingSince: 0, now: 10_000 });
    assert.equal(Math.round(noLimit.figures.cpu!.average), 35);
  });

  it('memory targets are a percentage of the memory limit; with cpu too, the larger recommendation wins', () => {
    const r = simulate({
      policy: policy({ min: 1, max: 10, cpu: undefined, memory: 80, windowMs: 60_000, cooldowns: { outMs: 10_000, inMs: 10_000 } }),
      replicas: 2,
      seconds: 300,
      demand: () => 10,
      memoryBytes: 100e6,
      memory: (t, n) => (t > 50 && t < 150 ? 400e6 / n : 20e6),
    });
    assert.deepEqual(changeLines(r), ['t=67 2→3', 't=77 3→5', 't=211 5→4', 't=221 4→2', 't=271 2→1']);
    assert.match(r.changes[0]!.reason, /memory 200% of memory limit \(target 80%\)/);
    const both = decide({
      policy: policy({ min: 1, cpu: 50, memory: 50 }),
      replicas: 2,
      tasks: [
        { id: 'a', memoryBytes: 100 },
        { id: 'b', memoryBytes: 100 },
      ],
      samples: new Map([
        ['a', [{ at: 5000, cpuPercent: 50, memoryBytes: 100 }]],
        ['b', [{ at: 5000, cpuPercent: 50, memoryBytes: 100 }]],
      ]),
      history: [{ at: 0, replicas: 4 }],
      observingSince: 0,
      now: 9000,
    });
    assert.equal(both.recommendation, 4);
    assert.equal(both.figures.cpu!.average, 50);
    assert.equal(both.figures.memory!.average, 100);
  });

  it('old samples (beyond the sample span) count as missing', () => {
    const d = decide({
      policy: policy({ min: 1 }),
      replicas: 2,
      tasks: [{ id: 'a' }, { id: 'b' }],
      samples: new Map([
        ['a', [{ at: 0, cpuPercent: 1 }]],
        ['b', [{ at: 0, cpuPercent: 1 }]],
      ]),
      history: [],
      observingSince: -1e9,
      now: 60_000,
    });
    assert.equal(d.changed, false);
    assert.match(d.reason, /no usage reported/);
  });
});
