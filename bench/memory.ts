// `npm run bench:memory`: what an idle Shoal daemon holds (issue 17, "lean daemons"; docs/design/build.md,
// "Memory"). Root only (a lab). One 5-node lab (3 managers + 2 workers, lab name m5mem, engine executor),
// its daemons running dist/cli/shoal.js as a systemd unit runs them (without NODE_EXTRA_CA_CERTS), and
// beside it Node's own floor: `node -e "setInterval(() => {}, 1e6)"`, started at the same moment and read
// after the same idle time. Printed one per line, each with its goal (MB = 10^6 bytes, from VmRSS):
//   - the floor, then the workers' and the managers' idle RSS: the largest of the role (the goal holds for
//     every daemon), and each daemon;
//   - per role, the RSS split into anonymous memory (heap, V8, malloc: what Shoal's code controls) and
//     file-backed pages (mostly the node binary's own code and data, shared by every node process), and
//     of the anonymous part, what malloc's main arena holds (smaps' [heap]: OpenSSL, libuv, V8's
//     compiler zones, and the holes those leave, which glibc returns only from the arena's top);
//   - per role, the CPU time each daemon used while idle (ms per minute), so a memory cut that costs CPU
//     (a V8 flag, a smaller cache) shows up in the same run.
// BENCH_MEMORY_IDLE_MS (default 30000) sets the idle time; BENCH_MEMORY_NODE_ARGS (space-separated) adds
// node options to every daemon (to compare V8 flags: `--max-semi-space-size=1`). The environment reaches
// the daemons and the floor alike (to compare malloc settings: `MALLOC_ARENA_MAX=2 npm run bench:memory`).
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { ClusterLab } from '../lab/cluster-lab.ts';
import { compiledEntry } from '../lab/compiled.ts';
import { cleanupOnExit } from '../lab/lab.ts';
import { summarize } from './stats.ts';

const LAB = 'm5mem';
const IDLE_MS = Number(process.env.BENCH_MEMORY_IDLE_MS ?? 30_000);
const NODE_ARGS = (process.env.BENCH_MEMORY_NODE_ARGS ?? '').split(' ').filter((a) => a !== '');
const GOAL_MB = { worker: 60, manager: 90 };
const TICK_MS = 10; // USER_HZ: /proc/<pid>/stat counts CPU in 1/100 s

interface Sample {
  name: string;
  rss: number;
  anon: number;
  file: number;
  /** Resident pages of malloc's main arena (the brk heap, `[heap]` in smaps), MB. */
  brk: number;
  /** CPU time used during the idle window, ms per minute. */
  cpuPerMin: number;
}

/** VmRSS, RssAnon and RssFile of a process, in MB (10^6 bytes). */
function memory(pid: number): { rss: number; anon: number; file: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  return { rss: (kb('VmRSS') * 1024) / 1e6, anon: (kb('RssAnon') * 1024) / 1e6, file: (kb('RssFile') * 1024) / 1e6 };
}

/** Resident pages of the `[heap]` mapping (malloc's main arena), in MB. */
function brkHeap(pid: number): number {
  const smaps = readFileSync(`/proc/${pid}/smaps`, 'utf8');
  const at = smaps.indexOf(' [heap]\n');
  if (at < 0) return 0;
  return (Number(/^Rss:\s+(\d+) kB/m.exec(smaps.slice(at))?.[1] ?? 0) * 1024) / 1e6;
}

/** utime + stime of a process, in ms. */
function cpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) * TICK_MS;
}

/** Waits IDLE_MS, then samples every process: memory now, CPU used during the wait. */
async function idle(pids: Map<string, number>): Promise<Map<string, Sample>> {
  const cpu0 = new Map([...pids].map(([n, pid]) => [n, cpuMs(pid)]));
  await sleep(IDLE_MS);
  const out = new Map<string, Sample>();
  for (const [name, pid] of pids) {
    out.set(name, { name, ...memory(pid), brk: brkHeap(pid), cpuPerMin: ((cpuMs(pid) - cpu0.get(name)!) * 60_000) / IDLE_MS });
  }
  return out;
}

const med = (xs: number[]) => summarize(xs).p50;
const loadavg = () => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');

function print(what: string, samples: Sample[], goal: string): void {
  const each = samples.map((s) => `${s.name} ${s.rss.toFixed(1)}`).join(', ');
  const worst = Math.max(...samples.map((s) => s.rss));
  console.log(`${what.padEnd(28)} ${worst.toFixed(1).padStart(5)} MB   ${goal.padEnd(12)} (${each})`);
  console.log(
    `${`  ${what.split(' ')[0]} split`.padEnd(28)} median anon ${med(samples.map((s) => s.anon)).toFixed(1)} MB (malloc's main arena ${med(samples.map((s) => s.brk)).toFixed(1)}) + file ${med(samples.map((s) => s.file)).toFixed(1)} MB; idle CPU ${med(samples.map((s) => s.cpuPerMin)).toFixed(0)} ms/min`,
  );
}

async function main(): Promise<void> {
  cleanupOnExit(LAB);
  compiledEntry('cli/shoal'); // rebuild dist/ first if a source changed
  // The daemons start as a systemd unit starts them: without NODE_EXTRA_CA_CERTS (which makes node load
  // the whole CA bundle at start; bench:cli measures that separately).
  delete process.env.NODE_EXTRA_CA_CERTS;
  delete process.env.SHOAL_USE_TSX;
  console.log(
    `bench:memory — 3+2 lab (engine executor), ${IDLE_MS / 1000} s idle${NODE_ARGS.length ? `, daemon node options: ${NODE_ARGS.join(' ')}` : ''}; load average at start ${loadavg()}`,
  );
  const lab = await ClusterLab.up({ name: LAB, managers: 3, workers: 2, executor: 'engine', nodeArgs: NODE_ARGS });
  const floor = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1e6)'], { stdio: 'ignore', env: process.env });
  try {
    await sleep(1000); // its start-up is not idle CPU
    const pids = new Map<string, number>([['floor', floor.pid!]]);
    for (const [host, d] of lab.daemons) if (d.pid !== null) pids.set(host, d.pid);
    // The node options the daemons really run with (bin/shoal's and the lab's: daemon/node-flags.ts).
    const argv = readFileSync(`/proc/${pids.get([...lab.daemons.keys()][0]!)}/cmdline`, 'utf8').split('\0');
    const script = argv.findIndex((a) => a.endsWith('.js'));
    const nodeOptions = argv.slice(1, script);
    console.log(`daemon node options: ${nodeOptions.join(' ') || '(none)'}`);
    const s = await idle(pids);
    const role = (r: 'manager' | 'worker') => [...lab.daemons].filter(([, d]) => d.role === r).map(([h]) => s.get(h)!);
    print('node floor (bare node)', [s.get('floor')!], '(no goal)');
    print('worker daemon idle RSS', role('worker'), `goal ≤ ${GOAL_MB.worker} MB`);
    print('manager daemon idle RSS', role('manager'), `goal ≤ ${GOAL_MB.manager} MB`);
    console.log(`load average at end ${loadavg()}`);
  } finally {
    floor.kill('SIGKILL');
    await lab.down();
  }
}

main().then(
  () => process.exit(0),
  (e) => {
    console.error(`bench:memory: ${(e as Error).stack ?? e}`);
    process.exit(1);
  },
);
