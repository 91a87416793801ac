// `npm run sim -- --seeds 10000 [--from 1] [--nodes 5] [--nemesis mixed] [--unsafe localReads]`
// `npm run sim -- --seed 1234 --trace` replays one seed exactly and prints its trace.
import type { UnsafeFlags } from '../manager/raft/core.ts';
import { runSeed, type Nemesis, type RunResult } from './workload.ts';

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}
const flag = (name: string) => process.argv.includes(`--${name}`);

const single = arg('seed');
const from = Number(arg('from') ?? 1);
const count = single !== undefined ? 1 : Number(arg('seeds') ?? 200);
const nodes = arg('nodes') !== undefined ? Number(arg('nodes')) : undefined;
const nemesis = arg('nemesis') as Nemesis | undefined;
const duration = arg('duration') !== undefined ? Number(arg('duration')) : undefined;
const unsafe: UnsafeFlags = {};
for (const u of (arg('unsafe') ?? '').split(',').filter(Boolean)) {
  if (!['localReads', 'ackBeforeDurable', 'commitOldTerm'].includes(u)) {
    console.error(`unknown --unsafe variant '${u}' (localReads, ackBeforeDurable, commitOldTerm)`);
    process.exit(2);
  }
  (unsafe as Record<string, boolean>)[u] = true;
}
for (const [k, v] of [
  ['seeds', count],
  ['from', from],
] as const) {
  if (!Number.isInteger(v) || v < 0) {
    console.error(`--${k} must be a non-negative integer`);
    process.exit(2);
  }
}

const started = Date.now();
const failures: RunResult[] = [];
let ops = 0;
let okOps = 0;
let crashes = 0;
let partitions = 0;
for (let i = 0; i < count; i++) {
  const seed = single !== undefined ? Number(single) : from + i;
  const r = runSeed({ seed, nodes, nemesis, duration, unsafe, trace: flag('trace') });
  ops += r.ops;
  okOps += r.okOps;
  crashes += r.crashes;
  partitions += r.partitions;
  if (!r.ok) {
    failures.push(r);
    console.log(`seed ${seed}: FAIL (${r.failure}) ${r.message?.split('\n')[0]}`);
    if (flag('verbose') || single !== undefined) console.log(r.message);
  } else if (flag('verbose') || single !== undefined) {
    console.log(
      `seed ${seed}: ok — ${r.ops} ops (${r.okOps} acknowledged, ${r.unknownOps} unknown), ${r.leaderChanges} elections, ${r.crashes} crashes, ${r.partitions} partitions, ${r.snapshotsInstalled} snapshot installs, ${r.virtualMs} virtual ms`,
    );
  }
  if (r.trace && flag('trace')) console.log(r.trace.join('\n'));
  if (flag('stop-on-fail') && !r.ok) break;
}
const secs = (Date.now() - started) / 1000;
console.log(
  `${count} seeds, ${failures.length} failed, ${ops} client ops (${okOps} acknowledged), ${crashes} crashes, ${partitions} partitions, ${secs.toFixed(1)} s`,
);
if (failures.length > 0) {
  console.log(`failing seeds: ${failures.map((f) => f.seed).join(' ')}`);
  console.log(`replay one: npm run sim -- --seed ${failures[0]!.seed} --trace${arg('unsafe') ? ` --unsafe ${arg('unsafe')}` : ''}`);
  process.exitCode = 1;
}
