// `npm run bench:jepsen -- --runs N [--seconds S] [--seed K] [--no-control] [--control-runs M] [--no-cas] [--verbose]`
//
// Linearizability of the real product under faults (issue 11): N runs of concurrent clients reading,
// writing and compare-and-setting services through the control API of a real three-manager lab while a
// nemesis partitions (nft), kills (-9), pauses (SIGSTOP) and restarts managers; every history goes through
// Shoal's checker (sim/linearizability.ts). Then the control: the same harness against a deliberately
// broken build (SHOAL_UNSAFE_RAFT=localReads) must find an anomaly, or the harness proves nothing.
// Prints runs, operations, faults injected by kind, anomalies (goal 0) and whether the broken build was
// caught. Runs as root (lab namespaces); labs `h6b` (safe) and `h6c` (broken).
import { JepsenCluster } from '../test/jepsen/cluster.ts';
import { controlRun, realRun } from '../test/jepsen/profiles.ts';
import { FAULT_KINDS, type FaultKind } from '../test/jepsen/schedule.ts';
import { describeAnomaly, runTrial, summarize, unknownReasons, type TrialResult } from '../test/jepsen/trial.ts';

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}
const flag = (name: string) => process.argv.includes(`--${name}`);
function intArg(name: string, dflt: number): number {
  const v = arg(name);
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) {
    console.error(`--${name} wants a non-negative integer, got ${JSON.stringify(v)}`);
    process.exit(2);
  }
  return n;
}

const runs = intArg('runs', 5);
const seconds = intArg('seconds', 22);
const seed0 = intArg('seed', Date.now() % 100_000);
const controlRuns = flag('no-control') ? 0 : intArg('control-runs', 3);
const verbose = flag('verbose');
/** Diagnosis only: the safe-build runs without compare-and-set (reads and writes alone). */
const noCas = flag('no-cas');
const log = (l: string) => console.log(`${new Date().toISOString().slice(11, 23)} ${l}`);
const quiet = (l: string) => (verbose ? log(l) : undefined);

interface Totals {
  runs: number;
  ops: number;
  faults: Record<FaultKind, number>;
  anomalies: number;
  runsWithAnomalies: number;
  undecided: number;
  harnessErrors: number;
  unknown: number;
  seconds: number;
}

function add(t: Totals, r: TrialResult): void {
  t.runs++;
  t.ops += r.ops;
  for (const k of FAULT_KINDS) t.faults[k] += r.faults[k];
  t.anomalies += r.anomalies.length;
  if (r.anomalies.length > 0) t.runsWithAnomalies++;
  t.undecided += r.undecided.length;
  t.harnessErrors += r.harnessErrors.length;
  t.unknown += r.counts.read.unknown + r.counts.write.unknown + r.counts.cas.unknown;
  t.seconds += r.elapsedMs / 1000;
}

const emptyTotals = (): Totals => ({
  runs: 0,
  ops: 0,
  faults: { partition: 0, kill: 0, pause: 0, 'pause-partition': 0 },
  anomalies: 0,
  runsWithAnomalies: 0,
  undecided: 0,
  harnessErrors: 0,
  unknown: 0,
  seconds: 0,
});

async function campaign(
  name: string,
  unsafe: string | undefined,
  n: number,
  profile: typeof realRun,
  stopOnAnomaly: boolean,
): Promise<{ totals: Totals; first: TrialResult | null }> {
  const totals = emptyTotals();
  let first: TrialResult | null = null;
  if (n === 0) return { totals, first };
  const t0 = Date.now();
  const c = await JepsenCluster.up({ name, ...(unsafe ? { unsafe } : {}), log: quiet });
  log(`lab ${name}${unsafe ? ` (BROKEN build: ${unsafe})` : ''}: 3 managers up in ${Date.now() - t0} ms`);
  try {
    for (let i = 0; i < n; i++) {
      await c.waitHealthy(30_000);
      const r = await runTrial(c, { ...profile, seed: seed0 + i, run: i, durationMs: seconds * 1000, log: quiet });
      add(totals, r);
      log(`${unsafe ? 'control' : 'run'} ${i + 1}/${n}: ${summarize(r)}`);
      quiet(`  unknown outcomes: ${unknownReasons(r)}`);
      if (r.anomalies.length > 0 && !first) first = r;
      if (r.anomalies.length > 0 && stopOnAnomaly) break;
    }
  } finally {
    await c.down();
  }
  return { totals, first };
}

function printTotals(what: string, t: Totals): void {
  console.log(`${what}:`);
  console.log(`  runs                 ${t.runs} (${t.seconds.toFixed(0)} s)`);
  console.log(`  operations           ${t.ops} (${t.unknown} with unknown outcome)`);
  console.log(`  faults injected      ${FAULT_KINDS.map((k) => `${k} ${t.faults[k]}`).join(', ')} (total ${FAULT_KINDS.reduce((s, k) => s + t.faults[k], 0)})`);
  console.log(
    `  anomalies            ${t.anomalies} (keys whose history is not linearizable)${t.undecided ? ` (+${t.undecided} keys undecided within the checker's budget)` : ''}`,
  );
  if (t.harnessErrors) console.log(`  harness errors       ${t.harnessErrors}`);
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) {
    console.error('bench:jepsen needs root (lab network namespaces, nft)');
    process.exit(2);
  }
  log(`bench:jepsen: ${runs} run(s) of ${seconds} s on the safe build, then up to ${controlRuns} control run(s) on a broken one; seeds from ${seed0}`);
  const real = await campaign('h6b', undefined, runs, noCas ? { ...realRun, mix: { ...realRun.mix, cas: 0 } } : realRun, false);
  const control = await campaign('h6c', 'localReads', controlRuns, controlRun, true);

  console.log('');
  printTotals('safe build', real.totals);
  if (real.first) {
    console.log(`  runs with anomalies  ${real.totals.runsWithAnomalies} of ${real.totals.runs}`);
    console.log(`  first anomaly (seed ${real.first.seed}): ${describeAnomaly(real.first.anomalies[0]!)}`);
  }
  if (controlRuns > 0) {
    printTotals('broken build (SHOAL_UNSAFE_RAFT=localReads)', control.totals);
    const caught = control.totals.anomalies > 0;
    console.log(`  caught               ${caught ? `yes, in control run ${control.totals.runs} (seed ${control.first!.seed})` : 'NO'}`);
    if (caught) console.log(`  ${describeAnomaly(control.first!.anomalies[0]!, 6).split('\n').join('\n  ')}`);
  }
  const ok = real.totals.anomalies === 0 && real.totals.harnessErrors === 0 && (controlRuns === 0 || control.totals.anomalies > 0);
  console.log(`\nresult: ${ok ? 'PASS' : 'FAIL'}`);
  process.exitCode = ok ? 0 : 1;
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
