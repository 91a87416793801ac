// `npm run bench:cli`: what the compiled product (dist/, scripts/build.mjs, bin/shoal) buys a user,
// measured against the sources run through tsx in the same run (docs/design/build.md explains the
// figures). Root only (labs). Every figure is printed with its unit and goal:
//   - `node -e 0`, Node's own start on this machine now, with and without NODE_EXTRA_CA_CERTS (this
//     sandbox points it at the whole system CA bundle; bin/shoal starts node without it);
//   - `shoal --help` wall time, bin/shoal vs `node --import tsx cli/shoal.ts`;
//   - `shoal node ls` on a 3+2 lab (lab name axb), p50/p99: bin/shoal (goal p50 ≤ 100 ms), bin/shoal
//     with its TLS session cache off (SHOAL_TLS_SESSIONS=0: every call a full handshake, as the first
//     call after 2 h idle), and tsx;
//   - each daemon's RSS after 30 s idle: the lab's daemons run dist/cli/shoal.js, then a second 3+2 lab
//     whose daemons run the sources through tsx (SHOAL_USE_TSX=1). Goals: worker ≤ 60 MB, manager ≤ 90 MB
//     (MB = 10^6 bytes, from VmRSS).
// The variants alternate run by run so all see the same machine load; each figure is given as wall time
// and as CPU time (user + system), the latter being what the product controls on a shared, busy machine.
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
const IDLE_MS = Number(process.env.BENCH_CLI_IDLE_MS ?? 30_000);
const LAB = 'axb';
const TIME_FILE = join(tmpdir(), `shoal-bench-cli-${process.pid}.time`);
/** The CA bundle this sandbox sets NODE_EXTRA_CA_CERTS to (a user's machine usually sets nothing). */
const EXTRA_CA = process.env.NODE_EXTRA_CA_CERTS ?? '/etc/ssl/certs/ca-certificates.crt';
const GOAL_LS_MS = 100;
const GOAL_RSS_MB = { worker: 60, manager: 90 };

/** Command lines (argv[0] is run as is: bin/shoal through its own `#!` line, as a user runs it). */
const CLI = {
  compiled: [join(REPO, 'bin', 'shoal')],
  tsx: [process.execPath, `--import=${join(REPO, 'node_modules', 'tsx', 'dist', 'loader.mjs')}`, join(REPO, 'cli', 'shoal.ts')],
};

/**
 * Runs one command from / (as a user on the PATH would): its wall time, and its CPU time (user + system,
 * from /usr/bin/time), which the machine's load changes less — on a busy shared machine the wall time
 * mostly measures the wait for a core.
 */
function timed(cmd: string[], env: NodeJS.ProcessEnv): { wall: number; cpu: number } {
  const t = performance.now();
  const r = spawnSync('/usr/bin/time', ['-f', '%U %S', '-o', TIME_FILE, ...cmd], { cwd: '/', env, encoding: 'utf8' });
  const wall = performance.now() - t;
  if (r.status !== 0) throw new Error(`${cmd.join(' ')} exited ${r.status}: ${r.stderr.trim().split('\n')[0]}`);
  const [user, sys] = readFileSync(TIME_FILE, 'utf8').trim().split(/\s+/).slice(-2).map(Number);
  return { wall, cpu: ((user ?? NaN) + (sys ?? NaN)) * 1000 };
}

const line = (what: string, variant: string, wall: number[], cpu: number[], goal = '') => {
  const w = summarize(wall);
  const c = summarize(cpu);
  console.log(
    `${what.padEnd(14)} ${variant.padEnd(13)} wall p50 ${w.p50.toFixed(0).padStart(4)} ms  p99 ${w.p99.toFixed(0).padStart(5)} ms   cpu p50 ${c.p50.toFixed(0).padStart(4)} ms  p99 ${c.p99.toFixed(0).padStart(4)} ms   (n=${w.n})${goal}`,
  );
};

interface Variant {
  name: string;
  cmd: string[];
  env: NodeJS.ProcessEnv;
  goal?: string;
}

/** Runs the variants alternately, RUNS times each after one warm-up run, and prints a line each. */
function compare(what: string, variants: Variant[]): void {
  const samples = variants.map(() => ({ wall: [] as number[], cpu: [] as number[] }));
  for (const v of variants) timed(v.cmd, v.env); // warm the page cache (and the code cache, the TLS session)
  for (let i = 0; i < RUNS; i++) {
    variants.forEach((v, k) => {
      const r = timed(v.cmd, v.env);
      samples[k]!.wall.push(r.wall);
      samples[k]!.cpu.push(r.cpu);
    });
  }
  for (const [k, v] of variants.entries()) line(what, v.name, samples[k]!.wall, samples[k]!.cpu, v.goal ?? '');
}

const rssMB = (pid: number) => (Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? NaN) * 1024) / 1e6;

/** Each daemon's RSS (MB) after IDLE_MS idle. */
async function idleRss(c: ClusterLab): Promise<{ host: string; role: string; mb: number }[]> {
  await sleep(IDLE_MS);
  return [...c.daemons.entries()].map(([host, d]) => ({ host, role: d.role, mb: d.pid === null ? NaN : rssMB(d.pid) }));
}

/** Starts a 3+2 lab whose daemons run dist/ (or the sources through tsx). */
function labUp(useTsx: boolean): Promise<ClusterLab> {
  if (useTsx) process.env.SHOAL_USE_TSX = '1';
  else delete process.env.SHOAL_USE_TSX;
  return ClusterLab.up({ name: LAB, managers: 3, workers: 2, executor: 'engine' });
}

const loadavg = () => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');

async function main(): Promise<void> {
  cleanupOnExit(LAB);
  compiledEntry('cli/shoal'); // build dist/ first if a source changed
  // The labs' daemons start as a systemd unit starts them: without NODE_EXTRA_CA_CERTS.
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env.NODE_EXTRA_CA_CERTS;
  delete process.env.NODE_EXTRA_CA_CERTS;
  const withCa = { ...env, NODE_EXTRA_CA_CERTS: EXTRA_CA };
  console.log(`bench:cli — ${RUNS} runs per variant, alternating, from /; load average at start ${loadavg()}`);
  compare('node -e 0', [
    { name: 'floor', cmd: [process.execPath, '-e', '0'], env, goal: '   (NODE_EXTRA_CA_CERTS unset)' },
    { name: 'floor+CA', cmd: [process.execPath, '-e', '0'], env: withCa, goal: `   (NODE_EXTRA_CA_CERTS=${EXTRA_CA})` },
  ]);
  // The CLI runs as in this sandbox: with NODE_EXTRA_CA_CERTS set (bin/shoal's #! line drops it).
  compare('shoal --help', [
    { name: 'compiled', cmd: [...CLI.compiled, '--help'], env: withCa, goal: '   (no goal; context for shoal node ls: start-up without a call)' },
    { name: 'tsx', cmd: [...CLI.tsx, '--help'], env: withCa, goal: '   (no goal; context: the same through tsx)' },
  ]);

  let compiledRss: { host: string; role: string; mb: number }[] = [];
  const c = await labUp(false);
  try {
    compiledRss = await idleRss(c);
    const ctx = { ...withCa, SHOAL_CONTEXT: c.contextPath };
    compare('shoal node ls', [
      { name: 'compiled', cmd: [...CLI.compiled, 'node', 'ls'], env: ctx, goal: `   goal p50 ≤ ${GOAL_LS_MS} ms` },
      { name: 'compiled-cold', cmd: [...CLI.compiled, 'node', 'ls'], env: { ...ctx, SHOAL_TLS_SESSIONS: '0' }, goal: '   (no TLS session cache)' },
      { name: 'tsx', cmd: [...CLI.tsx, 'node', 'ls'], env: ctx, goal: '   (no goal; context for the compiled CLI)' },
    ]);
  } finally {
    await c.down();
  }
  const t = await labUp(true);
  let tsxRss: { host: string; role: string; mb: number }[] = [];
  try {
    tsxRss = await idleRss(t);
  } finally {
    delete process.env.SHOAL_USE_TSX;
    await t.down();
  }
  console.log(`load average at end ${loadavg()}`);
  for (const role of ['worker', 'manager'] as const) {
    const fmt = (list: { host: string; role: string; mb: number }[]) => {
      const mine = list.filter((d) => d.role === role);
      const med = summarize(mine.map((d) => d.mb)).p50;
      return `${med.toFixed(0).padStart(3)} MB (${mine.map((d) => `${d.host} ${d.mb.toFixed(0)}`).join(', ')})`;
    };
    console.log(
      `daemon idle RSS ${role.padEnd(7)} compiled ${fmt(compiledRss)}   tsx ${fmt(tsxRss)}   goal ≤ ${GOAL_RSS_MB[role]} MB   (3+2 lab, after ${IDLE_MS / 1000} s idle)`,
    );
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
