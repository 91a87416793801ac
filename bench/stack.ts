// `npm run bench:stack`: what `shoal stack` costs on a real 3-manager + 2-worker lab (engine executor, the
// demo image), done as a user does it — `bin/shoal stack …` with SHOAL_CONTEXT — and watched through the
// control API:
//   1. stack deploy of a 20-service stack (2 networks, 4 published ports) → every task running
//   2. the same file deployed again → command done (and the tasks restarted by it: the goal is 0)
//   3. stack rm → no service, network or task of the stack left
// One figure per line, with its unit. The lab is removed at the end, also on failure.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { buildImage, busyboxLayer, demoWebImage } from '../worker/images/build.ts';
import { ClusterLab, waitFor } from '../lab/cluster-lab.ts';
import { cleanupOnExit } from '../lab/lab.ts';

const REPO = resolve(fileURLToPath(new URL('..', import.meta.url)));
const SHOAL = join(REPO, 'bin', 'shoal');
const NAME = 'h10b';
const NS = 'bench';
const SERVICES = 20;
const NS_LABEL = 'com.docker.stack.namespace';

/** 20 services: every fifth a web server with a published port, the others idle; two networks. */
export function benchStackFile(n = SERVICES): string {
  const lines = ['version: "3.8"', 'services:'];
  for (let i = 1; i <= n; i++) {
    const web = i % 5 === 0;
    lines.push(
      `  s${i}:`,
      `    image: ${web ? 'shoal/demo-web:1' : 'shoal/box:1'}`,
      `    networks: [${i % 2 ? 'front' : 'front, back'}]`,
      `    environment:`,
      `      INDEX: "${i}"`,
    );
    if (web) lines.push(`    ports: ["${8000 + i}:80"]`);
  }
  lines.push('networks:', '  front:', '  back:', '');
  return lines.join('\n');
}

function sh(ctx: string, cwd: string, args: string[]): Promise<{ code: number; out: string; err: string }> {
  return new Promise((res) => {
    execFile(SHOAL, args, { env: { ...process.env, SHOAL_CONTEXT: ctx }, cwd, timeout: 600_000 }, (e, out, err) =>
      res({ code: e ? ((e as { code?: number }).code ?? 1) : 0, out: String(out), err: String(err) }),
    );
  });
}

async function main(): Promise<void> {
  const tmp = mkdtempSync(join(tmpdir(), 'shoal-bench-stack-'));
  const unhook = cleanupOnExit(NAME);
  let c: ClusterLab | undefined;
  const secs = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
  try {
    c = await ClusterLab.up({ name: NAME, managers: 3, workers: 2, executor: 'engine' });
    const lab = c;
    await lab.waitReady(5, 60_000);
    writeFileSync(join(tmp, 'web.tar'), demoWebImage('shoal/demo-web:1').archive);
    writeFileSync(
      join(tmp, 'box.tar'),
      buildImage({ name: 'shoal/box:1', layers: [busyboxLayer()], cmd: ['/bin/sh', '-c', 'trap "exit 0" TERM; sleep 100000 & wait'] }).archive,
    );
    for (const [a, tag] of [
      ['web.tar', 'shoal/demo-web:1'],
      ['box.tar', 'shoal/box:1'],
    ] as const) {
      const r = await sh(lab.contextPath, tmp, ['image', 'load', '--state-dir', lab.stateDir('h1'), '--tag', tag, join(tmp, a)]);
      if (r.code !== 0) throw new Error(`image load ${tag}: ${r.err}`);
    }
    writeFileSync(join(tmp, 'stack.yml'), benchStackFile());

    // A loaded machine may time a read out now and then: a poll that fails just polls again.
    const poll = (cond: () => Promise<boolean>) => async () => cond().catch(() => false);
    const ours = async () => ((await lab.control('GET', '/v1/services')) as any[]).filter((s) => s.spec.labels?.[NS_LABEL] === NS);
    const runningTasks = async () => {
      const ids = new Set((await ours()).map((s) => s.id as string));
      return ((await lab.control('GET', '/v1/tasks')) as any[]).filter(
        (t) => ids.has(t.serviceId) && t.status.state === 'running' && t.desiredState === 'running',
      );
    };

    // 1. Deploy → all running.
    let t0 = performance.now();
    let r = await sh(lab.contextPath, tmp, ['stack', 'deploy', '-d', '-c', 'stack.yml', NS]);
    if (r.code !== 0) throw new Error(`stack deploy: ${r.err}`);
    await waitFor(
      poll(async () => (await runningTasks()).length === SERVICES),
      300_000,
      `${SERVICES} tasks running`,
      100,
    );
    const deployMs = performance.now() - t0;
    const before = new Set((await runningTasks()).map((t) => t.id as string));

    // 2. Unchanged redeploy: the command's time, then the tasks it restarted (checked after a settle time).
    t0 = performance.now();
    r = await sh(lab.contextPath, tmp, ['stack', 'deploy', '-c', 'stack.yml', NS]);
    if (r.code !== 0) throw new Error(`stack redeploy: ${r.err}`);
    const redeployMs = performance.now() - t0;
    await new Promise((res) => setTimeout(res, 3000));
    const after = (await runningTasks()).map((t) => t.id as string);
    const restarted = [...before].filter((id) => !after.includes(id)).length;

    // 3. stack rm → nothing left.
    t0 = performance.now();
    r = await sh(lab.contextPath, tmp, ['stack', 'rm', NS]);
    if (r.code !== 0) throw new Error(`stack rm: ${r.err}`);
    await waitFor(
      poll(async () => {
        const nets = ((await lab.control('GET', '/v1/networks')) as any[]).filter((n) => n.spec.labels?.[NS_LABEL] === NS);
        const svcs = await ours();
        const tasks = ((await lab.control('GET', '/v1/tasks')) as any[]).filter((t) => before.has(t.id));
        return nets.length === 0 && svcs.length === 0 && tasks.length === 0;
      }),
      120_000,
      'nothing left of the stack',
      100,
    );
    const rmMs = performance.now() - t0;

    console.log(`stack deploy, ${SERVICES} services → all running: ${secs(deployMs)}`);
    console.log(`unchanged redeploy: ${secs(redeployMs)}`);
    console.log(`tasks restarted by the unchanged redeploy: ${restarted} (goal 0)`);
    console.log(`stack rm → nothing left: ${secs(rmMs)}`);
  } finally {
    await c?.down().catch((e) => console.error(`lab down: ${(e as Error).message}`));
    unhook();
    rmSync(tmp, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main().catch((e) => {
    console.error(`bench:stack failed: ${(e as Error).message}`);
    process.exitCode = 1;
  });
}
