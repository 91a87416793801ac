// Linearizability of the real product (issue 11), the short CI version of `npm run bench:jepsen`: on a lab
// of three real managers, concurrent clients read, write and compare-and-set services through the control
// API of any manager while a nemesis partitions (nft), kills (-9), pauses (SIGSTOP) and restarts managers;
// Shoal's checker (sim/linearizability.ts) must find no anomaly. Then the same harness against a
// deliberately broken build (SHOAL_UNSAFE_RAFT=localReads: reads answered without ReadIndex) must find
// one — the proof that this test can fail. Lab `h6x`; needs root.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { JepsenCluster } from '../jepsen/cluster.ts';
import { controlRun, realRun } from '../jepsen/profiles.ts';
import { FAULT_KINDS } from '../jepsen/schedule.ts';
import { describeAnomaly, runTrial, summarize, unknownReasons } from '../jepsen/trial.ts';

const SEED = Number(process.env.SHOAL_JEPSEN_SEED ?? 20261206);

describe('linearizability of the control API on a real cluster under faults', { concurrency: false, timeout: 150_000 }, () => {
  let c: JepsenCluster;

  before(async () => {
    c = await JepsenCluster.up({ name: 'h6x' });
  });

  after(async () => {
    await c?.down();
  });

  it('the real build: no anomaly under partitions, kill -9, pauses and restarts', async (t) => {
    const r = await runTrial(c, { ...realRun, seed: SEED, run: 0, durationMs: 24_000 });
    t.diagnostic(summarize(r));
    t.diagnostic(`unknown outcomes: ${unknownReasons(r)}`);
    assert.deepEqual(r.harnessErrors, [], 'only the harness writes the registers');
    const faults = FAULT_KINDS.reduce((n, k) => n + r.faults[k], 0);
    assert.ok(faults >= 2, `the nemesis injected ${faults} faults`);
    assert.ok(
      r.counts.read.ok > 20 && r.counts.write.ok > 10 && r.counts.cas.ok > 0 && r.counts.cas.fail > 0,
      `every kind of op had definite outcomes: ${JSON.stringify(r.counts)}`,
    );
    assert.deepEqual(r.undecided, [], 'the checker decided every key');
    assert.equal(r.anomalies.length, 0, r.anomalies.map((v) => describeAnomaly(v)).join('\n\n'));
  });

  it('a broken build (reads without ReadIndex) is caught by the same harness', async (t) => {
    await c.switchBuild('localReads');
    assert.ok(
      c.managers.every((m) => c.logsUnsafe(m)),
      'every manager logged that it runs the broken build',
    );
    // A stale leader answers reads only while it still believes it leads: up to two tries.
    let caught = null;
    for (let run = 1; run <= 2 && caught === null; run++) {
      const r = await runTrial(c, { ...controlRun, seed: SEED + run, run, durationMs: 14_000 });
      t.diagnostic(`control ${run}: ${summarize(r)}`);
      assert.deepEqual(r.harnessErrors, []);
      caught = r.anomalies[0] ?? null;
    }
    assert.ok(caught, 'the checker found no anomaly in the broken build: the harness cannot fail');
    t.diagnostic(`caught: ${describeAnomaly(caught, 4)}`);
  });
});
