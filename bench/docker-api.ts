// `npm run bench:docker-api`: what the Docker Engine API facade (manager/docker-api) costs a user, on a
// real 3-manager + 2-worker lab (test executor: the figures are the control plane's, not image pulls).
// Each figure is the wall time of the real CLI process, as a user waits for it, side by side:
//   1. `docker service ls` / `docker node ls` (to the leader and to a follower) vs `shoal service ls`
//      and `shoal node ls` in the same run: p50 and p90 of RUNS runs
//   2. `docker service create --replicas 30` without -d (returns once converged and stable for the
//      CLI's 5 s monitor period) vs `shoal service create --replicas 30` (waits for convergence)
// One figure per line, with its unit. The lab is removed at the end, also on failure.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { writeDockerCerts } from '../cli/docker-context.ts';
import { ClusterLab } from '../lab/cluster-lab.ts';
import { cleanupOnExit } from '../lab/lab.ts';

const REPO = resolve(fileURLToPath(new URL('..', import.meta.url)));
const SHOAL = join(REPO, 'bin', 'shoal');
const NAME = 'h11x';
const RUNS = 15;
const REPLICAS = 30;

function run(cmd: string, args: string[], env: Record<string, string>): Promise<{ code: number; out: string; err: string; ms: number }> {
  const t0 = performance.now();
  return new Promise((res) =>
    execFile(cmd, args, { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env }, timeout: 300_000, maxBuffer: 16 << 20 }, (e, out, err) =>
      res({ code: e ? ((e as { code?: number }).code ?? 1) : 0, out: String(out), err: String(err), ms: performance.now() - t0 }),
    ),
  );
}

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
}

async function timed(label: string, cmd: string, args: string[], env: Record<string, string>): Promise<void> {
  const ms: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const r = await run(cmd, args, env);
    if (r.code !== 0) throw new Error(`${label} failed: ${r.err}`);
    ms.push(r.ms);
  }
  console.log(`${label.padEnd(44)} p50 ${pct(ms, 50).toFixed(0).padStart(5)} ms   p90 ${pct(ms, 90).toFixed(0).padStart(5)} ms   (${RUNS} runs)`);
}

async function main(): Promise<void> {
  const tmp = mkdtempSync(join(tmpdir(), 'shoal-bench-docker-'));
  const unhook = cleanupOnExit(NAME);
  let c: ClusterLab | undefined;
  try {
    c = await ClusterLab.up({ name: NAME, managers: 3, workers: 2, executor: 'test' });
    await c.waitReady(5, 60_000);
    const info = await c.control('GET', '/v1/info');
    const hosts = [...c.daemons].filter(([, d]) => d.role === 'manager');
    const leader = hosts.find(([, d]) => d.nodeId === info.leader)![0];
    const follower = hosts.find(([, d]) => d.nodeId !== info.leader)![0];
    writeDockerCerts(join(tmp, 'certs'), c.ctx.admin);
    const dockerEnv = (h: string) => ({
      HOME: tmp,
      DOCKER_CONFIG: join(tmp, 'cfg'),
      DOCKER_HOST: `tcp://${c!.host(h).ip}:2376`,
      DOCKER_TLS_VERIFY: '1',
      DOCKER_CERT_PATH: join(tmp, 'certs'),
    });
    const shoalEnv = { HOME: tmp, SHOAL_CONTEXT: c.contextPath };
    console.log(`lab ${NAME}: 3 managers + 2 workers (test executor); leader ${leader}, follower ${follower}`);
    // A few services so the lists are not empty.
    for (let i = 1; i <= 5; i++) {
      const r = await run(SHOAL, ['service', 'create', '-d', '--name', `s${i}`, '--replicas', '2', 'busybox:1.36'], shoalEnv);
      if (r.code !== 0) throw new Error(`shoal service create: ${r.err}`);
    }
    await timed('docker service ls (leader)', 'docker', ['service', 'ls'], dockerEnv(leader));
    await timed('docker service ls (follower)', 'docker', ['service', 'ls'], dockerEnv(follower));
    await timed('shoal service ls', SHOAL, ['service', 'ls'], shoalEnv);
    await timed('docker node ls (leader)', 'docker', ['node', 'ls'], dockerEnv(leader));
    await timed('docker node ls (follower)', 'docker', ['node', 'ls'], dockerEnv(follower));
    await timed('shoal node ls', SHOAL, ['node', 'ls'], shoalEnv);

    const d = await run(
      'docker',
      ['service', 'create', '--name', 'big', '--replicas', String(REPLICAS), '--no-resolve-image', 'busybox:1.36'],
      dockerEnv(follower),
    );
    if (d.code !== 0 || !/converged/.test(d.out)) throw new Error(`docker service create: ${d.out}${d.err}`);
    console.log(`docker service create --replicas ${REPLICAS} (follower)  ${(d.ms / 1000).toFixed(1)} s to converged (includes the CLI's 5 s stability wait)`);
    const s = await run(SHOAL, ['service', 'create', '--name', 'big2', '--replicas', String(REPLICAS), 'busybox:1.36'], shoalEnv);
    if (s.code !== 0) throw new Error(`shoal service create: ${s.err}`);
    console.log(`shoal service create --replicas ${REPLICAS}              ${(s.ms / 1000).toFixed(1)} s to converged`);
  } finally {
    await c?.down().catch((e) => console.error(`lab down: ${(e as Error).message}`));
    unhook();
    rmSync(tmp, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error((e as Error).message);
  process.exitCode = 1;
});
