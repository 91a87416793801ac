// `npm run bench:cli`: what the compiled product (dist/, scripts/build.mjs) buys a user, measured on a
// real lab (lab name h7x) against the sources run through tsx, in the same run:
//   - `shoal node ls` wall time, p50/p99: bin/shoal (launcher + staleness check + dist/) vs the old
//     launcher's command `node --import tsx cli/shoal.ts` (target p50 ≤ 100 ms);
//   - `shoal --help` wall time, both ways;
//   - `node -e 0` as the floor (Node's own start on this machine, now);
//   - daemon RSS after 10 s idle: a lab whose daemons run dist/cli/shoal.js, then the same lab with
//     SHOAL_USE_TSX=1 (daemons through tsx).
// The two CLI variants alternate run by run so both see the same machine load; each figure is given as
// wall time and as CPU time (user + system), the latter being what the product controls on a shared,
// busy machine. Root only (labs).
import { spawnSync } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { ClusterLab } from '../lab/cluster-lab.ts';
import { cleanupOnExit } from '../lab/lab.ts';
import { compiledEntry } from '../lab/compiled.ts';
import { summarize } from './stats.ts';

const REPO = resolve(fileURLToPath(new URL('..', import.meta.url)));
const RUNS = Number(process.env.BENCH_CLI_RUNS ?? 40);
const IDLE_MS = 10_000;
const LAB = 'h7x';
const TIME_FILE = join(tmpdir(), `shoal-bench-cli-${process.pid}.time`);

const variants = {
  compiled: [join(REPO, 'bin', 'shoal')],
  tsx: [`--import=${join(REPO, 'node_modules', 'tsx', 'dist', 'loader.mjs')}`, join(REPO, 'cli', 'shoal.ts')],
};

/**
 * Runs one command from / (as a user on the PATH would): its wall time, and its CPU time (user + system,
 * from /usr/bin/time), which the machine's load barely changes — on a busy shared machine the wall time
 * mostly measures the wait for a core.
 */
function timed(args: string[], env: NodeJS.ProcessEnv): { wall: number; cpu: number } {
  const t = performance.now();
  const r = spawnSync('/usr/bin/time', ['-f', '%U %S', '-o', TIME_FILE, process.execPath, ...args], { cwd: '/', env, encoding: 'utf8' });
  const wall = performance.now() - t;
  if (r.status !== 0) throw new Error(`${args.join(' ')} exited ${r.status}: ${r.stderr.trim().split('\n')[0]}`);
  const [user, sys] = readFileSync(TIME_FILE, 'utf8').trim().split(/\s+/).slice(-2).map(Number);
  return { wall, cpu: ((user ?? NaN) + (sys ?? NaN)) * 1000 };
}

const line = (what: string, variant: string, wall: number[], cpu: number[]) => {
  const w = summarize(wall);
  const c = summarize(cpu);
  console.log(
    `${what.padEnd(16)} ${variant.padEnd(9)} wall p50 ${w.p50.toFixed(0).padStart(4)} ms  p99 ${w.p99.toFixed(0).padStart(5)} ms   cpu p50 ${c.p50.toFixed(0).padStart(4)} ms  p99 ${c.p99.toFixed(0).padStart(4)} ms   (n=${w.n})`,
  );
};

function compare(what: string, cmd: string[], env: NodeJS.ProcessEnv): void {
  type V = keyof typeof variants;
  const names = Object.keys(variants) as V[];
  const samples = Object.fromEntries(names.map((v) => [v, { wall: [] as number[], cpu: [] as number[] }])) as Record<V, { wall: number[]; cpu: number[] }>;
  for (const v of names) timed([...variants[v], ...cmd], env); // warm the page cache
  for (let i = 0; i < RUNS; i++) {
    for (const v of names) {
      const r = timed([...variants[v], ...cmd], env);
      samples[v].wall.push(r.wall);
      samples[v].cpu.push(r.cpu);
    }
  }
  for (const v of names) line(what, v, samples[v].wall, samples[v].cpu);
}

const rssMiB = (pid: number) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? NaN) / 1024;

/** Brings the lab up, lets it idle, returns each daemon's RSS (MiB), takes it down. */
async function daemonRss(useTsx: boolean): Promise<{ host: string; role: string; mib: number }[]> {
  if (useTsx) process.env.SHOAL_USE_TSX = '1';
  else delete process.env.SHOAL_USE_TSX;
  const c = await ClusterLab.up({ name: LAB, managers: 1, workers: 1, executor: 'engine' });
  try {
    await sleep(IDLE_MS);
    return [...c.daemons.entries()].map(([host, d]) => ({ host, role: d.role, mib: d.pid === null ? NaN : rssMiB(d.pid) }));
  } finally {
    delete process.env.SHOAL_USE_TSX;
    await c.down();
  }
}

async function main(): Promise<void> {
  cleanupOnExit(LAB);
  compiledEntry('cli/shoal'); // build dist/ first if a source changed
  console.log(
    `bench:cli — ${RUNS} runs per variant, alternating, from /; load average at start ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}`,
  );
  const floor = Array.from({ length: RUNS }, () => timed(['-e', '0'], process.env));
  line(
    'node -e 0',
    'floor',
    floor.map((r) => r.wall),
    floor.map((r) => r.cpu),
  );
  compare('shoal --help', ['--help'], process.env);

  const c = await ClusterLab.up({ name: LAB, managers: 1, workers: 1, executor: 'engine' });
  try {
    compare('shoal node ls', ['node', 'ls'], { ...process.env, SHOAL_CONTEXT: c.contextPath });
  } finally {
    await c.down();
  }

  const compiled = await daemonRss(false);
  const tsx = await daemonRss(true);
  console.log(`load average at end ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}`);
  for (const [name, list] of [
    ['compiled', compiled],
    ['tsx', tsx],
  ] as const) {
    console.log(`daemon idle RSS  ${name.padEnd(9)} ${list.map((d) => `${d.host} (${d.role}) ${d.mib.toFixed(0)} MiB`).join(', ')}`);
  }
}

main().then(
  () => {
    rmSync(TIME_FILE, { force: true });
    process.exit(0);
  },
  (e) => {
    console.error(`bench:cli: ${(e as Error).stack ?? e}`);
    process.exit(1);
  },
);
