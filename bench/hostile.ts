// `npm run bench:hostile -- --seconds 120 [--seed N] [--attackers N]`: the hostile-peer suite's long run
// (issue 11) on a fresh 3-manager + 1-worker lab. Joined workers, an admin client and unauthenticated
// strangers attack while a service runs and a writer commits (test/hostile/run.ts). Prints, one per line
// with units: inputs sent by kind, daemons exited (goal 0), acknowledged writes lost (goal 0), leader
// changes (goal 0), control-API p99 latency during the attack ÷ before it, and the leader's peak RSS.
// Exits 1 if a goal was missed.
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ClusterLab } from '../lab/cluster-lab.ts';
import { cleanupOnExit } from '../lab/lab.ts';
import { reportLines, runHostile } from '../test/hostile/run.ts';

const NAME = `hb${process.pid % 1000}`;

class UsageError extends Error {
  override name = 'UsageError';
}

function parseArgs(argv: string[]): { seconds: number; seed: number; attackers: number } {
  const out = { seconds: 120, seed: Date.now() % 100_000, attackers: 1 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const [flag, inline] = a.includes('=') ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)] : [a, undefined];
    if (flag === '--seconds' || flag === '--seed' || flag === '--attackers') {
      const v = Number(inline ?? argv[++i]);
      if (!Number.isInteger(v) || v < (flag === '--seed' ? 0 : 1))
        throw new UsageError(`${flag} needs a ${flag === '--seed' ? 'non-negative' : 'positive'} integer`);
      out[flag.slice(2) as 'seconds' | 'seed' | 'attackers'] = v;
    } else if (flag === '--help' || flag === '-h') {
      console.log('usage: npm run bench:hostile -- [--seconds 120] [--seed N] [--attackers 1]');
      process.exit(0);
    } else throw new UsageError(`unknown argument ${JSON.stringify(a)} (try --help)`);
  }
  return out;
}

async function main(): Promise<void> {
  const { seconds, seed, attackers } = parseArgs(process.argv.slice(2));
  const unhook = cleanupOnExit(NAME);
  const t0 = Date.now();
  const c = await ClusterLab.up({ name: NAME, managers: 3, workers: 1 });
  try {
    console.log(`lab ${NAME}: 3 managers + 1 worker up in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    // Sized for at least 100,000 inputs in 120 s on an idle machine: the dispatcher carries the volume
    // (pipelined small frames over 16 worker identities), the admin and unauthenticated clients the
    // variety. More attacker processes (--attackers) add load but share the managers' CPUs on one machine.
    const r = await runHostile(c, {
      seed,
      seconds,
      workers: 16,
      attackers,
      rates: { workerPerConn: 200, adminConns: 12, adminPerConn: 10, unauthPerSec: 20, unauthMaxOpen: 500 },
      baselineSeconds: 10,
      replicas: 4,
      log: (l) => console.log(l),
    });
    for (const l of reportLines(r)) console.log(l);
    for (const f of r.findings) console.log(`finding ${f.kind}: ${f.input} => ${f.outcome}`);
    for (const [h, tail] of Object.entries(r.crashLogs)) console.log(`${h} daemon exited; its log ends:\n${tail}`);
    if (r.leader.changes > 0 || r.leader.after.term !== r.leader.before.term)
      for (const [h, l] of Object.entries(r.managerLogs)) console.log(`${h} log (elections, peers, errors):\n${l}`);
    console.log(`attacker log (end):\n${r.attackerLog}`);
    console.log(`dispatcher stats after the attack: ${JSON.stringify(r.dispatcherStats)}`);
    const file = join(tmpdir(), `shoal-bench-hostile-${seed}.json`);
    writeFileSync(file, JSON.stringify(r, null, 2));
    console.log(`full report: ${file}`);
    const missed = r.daemonsExited.length > 0 || r.writes.lost.length > 0 || r.leader.changes > 0 || !r.service.converged;
    process.exitCode = missed ? 1 : 0;
  } finally {
    await c.down();
    unhook();
  }
}

main().catch((e) => {
  console.error(e instanceof UsageError ? `bench:hostile: ${e.message}` : e);
  process.exit(e instanceof UsageError ? 2 : 1);
});
