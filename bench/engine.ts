// `npm run bench:engine`: container start latency on one node, from the executor being asked to run a task
// to the user process running (the shim reports running once execve succeeded), warm (image unpacked) and
// cold (image archive unpacked first); throughput starting 100 containers; and, in the same run, the floor:
// `unshare` + `chroot` of the same root filesystem.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, existsSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { TaskCgroup } from '../worker/engine/cgroups.ts';
import { EngineExecutor, type ImageResolver } from '../worker/engine/executor.ts';
import { BUILD_SCRIPT, makeBusyboxRootfs } from '../worker/engine/shim.ts';
import type { TaskAssignment, TaskStatusUpdate } from '../worker/executor.ts';
import { ImageStore, mountRootfs, unmountRootfs } from '../worker/images/store.ts';
import { baseImage, ociFiles, tarFiles } from '../test/images/fixtures.ts';

const root = mkdtempSync(join(tmpdir(), 'shoal-bench-engine-'));
const parent = `shoal-bench${process.pid}`;
const WARM = Number(process.env.SHOAL_BENCH_STARTS ?? 100);

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(p * s.length))]!;
}
const ms = (x: number) => `${x.toFixed(2)} ms`;

function resolverFor(store: ImageStore): ImageResolver {
  return {
    resolve: (ref) => {
      const info = store.resolve(ref);
      if (!info) return undefined;
      const c = store.config(ref);
      return { layers: store.layersFor(ref), config: { Env: c.Env, ...(c.Cmd ? { Cmd: c.Cmd } : {}) } };
    },
    mountRootfs: (l, u, w, t) => mountRootfs(l, u, w, t),
    unmountRootfs: (t) => unmountRootfs(t),
  };
}

async function main(): Promise<void> {
  execFileSync('bash', [BUILD_SCRIPT]);
  const archive = join(root, 'busybox.tar');
  writeFileSync(archive, tarFiles(ociFiles([{ ...baseImage('bench/busybox:1'), cmd: ['/bin/sh'] }])));
  // Warm starts use an unpacked busybox root (one layer, with the sleep applet) as the image.
  const layer = join(root, 'layer');
  makeBusyboxRootfs(layer);
  const warmImages: ImageResolver = {
    resolve: (ref) => (ref === 'bench/busybox:1' ? { layers: [layer], config: { Env: ['PATH=/bin'] } } : undefined),
    mountRootfs: (l, u, w, t) => mountRootfs(l, u, w, t),
    unmountRootfs: (t) => unmountRootfs(t),
  };
  const ex = new EngineExecutor({ root: join(root, 'tasks'), images: warmImages, cgroupParent: parent, pollMs: 20 });
  const waiters = new Map<string, { state: string; resolve: () => void }>();
  const failures: string[] = [];
  ex.onStatus((u: TaskStatusUpdate) => {
    if (process.env.SHOAL_BENCH_DEBUG) console.error(`${u.taskId} ${u.state} ${u.err ?? ""}`);
    const w = waiters.get(u.taskId);
    if (w && (u.state === w.state || ['failed', 'rejected', 'complete', 'shutdown'].includes(u.state))) {
      if (u.state === 'failed' || u.state === 'rejected') failures.push(`${u.taskId}: ${u.err ?? u.state}`);
      waiters.delete(u.taskId);
      w.resolve();
    }
  });
  const current = new Map<string, TaskAssignment>();
  const task = (id: string, desiredState: TaskAssignment['desiredState'] = 'running'): TaskAssignment => ({ id, serviceId: 'b', serviceName: 'b', desiredState, state: 'assigned', spec: { image: 'bench/busybox:1', args: ['sleep', '60'], stopGracePeriodMs: 0 } });
  const wait = (id: string, state: string) => new Promise<void>((resolve) => waiters.set(id, { state, resolve }));
  const push = () => ex.reconcile([...current.values()]);

  try {
    // Warm starts, one at a time.
    const warm: number[] = [];
    for (let i = 0; i < WARM; i++) {
      const id = `w${i}`;
      current.set(id, task(id));
      const t0 = performance.now();
      const running = wait(id, 'running');
      push();
      await running;
      warm.push(performance.now() - t0);
      current.set(id, task(id, 'shutdown'));
      const stopped = wait(id, 'shutdown');
      push();
      await stopped;
      current.delete(id);
      push();
    }
    // 100 containers at once.
    const ids = Array.from({ length: 100 }, (_, i) => `p${i}`);
    const t1 = performance.now();
    const all = ids.map((id) => wait(id, 'running'));
    for (const id of ids) current.set(id, task(id));
    push();
    await Promise.all(all);
    const burst = performance.now() - t1;
    const stops = ids.map((id) => wait(id, 'shutdown'));
    for (const id of ids) current.set(id, task(id, 'shutdown'));
    push();
    await Promise.all(stops);
    current.clear();
    push();
    // Cold: unpack the image archive into an empty store, then start.
    const cold: number[] = [];
    for (let i = 0; i < 10; i++) {
      const s2 = new ImageStore(join(root, `images-cold-${i}`));
      const ex2 = new EngineExecutor({ root: join(root, `tasks-cold-${i}`), images: resolverFor(s2), cgroupParent: parent, pollMs: 20 });
      const id = `c${i}`;
      const t0 = performance.now();
      await s2.load(archive);
      const coldTask: TaskAssignment = { ...task(id), spec: { image: 'bench/busybox:1', args: ['sh', '-c', 'exit 0'] } };
      let markRunning: () => void = () => {};
      let markDone: () => void = () => {};
      const running = new Promise<void>((r) => (markRunning = r));
      const finished = new Promise<void>((r) => (markDone = r));
      ex2.onStatus((u) => {
        if (u.taskId !== id) return;
        if (['running', 'failed', 'rejected'].includes(u.state)) markRunning();
        if (['complete', 'failed', 'rejected'].includes(u.state)) markDone();
        if (u.state === 'failed' || u.state === 'rejected') failures.push(`${id}: ${u.err ?? u.state}`);
      });
      ex2.reconcile([coldTask]);
      await running;
      cold.push(performance.now() - t0);
      await finished;
      await new Promise((r) => setTimeout(r, 50));
      ex2.reconcile([]);
      await ex2.close();
    }
    // Floor: unshare + chroot of the same root filesystem.
    const rootfs = join(root, 'floor');
    makeBusyboxRootfs(rootfs);
    const floor: number[] = [];
    for (let i = 0; i < WARM; i++) {
      const t0 = performance.now();
      const r = spawnSync('unshare', ['--pid', '--mount', '--net', '--uts', '--ipc', '--fork', 'chroot', rootfs, '/bin/true']);
      floor.push(performance.now() - t0);
      if (r.status !== 0) throw new Error(`unshare+chroot failed: ${String(r.stderr)}`);
    }
    console.log(`warm start p50: ${ms(pct(warm, 0.5))} (target <= 30 ms; docker run --network none here: 180 ms)`);
    console.log(`warm start p99: ${ms(pct(warm, 0.99))} (target <= 100 ms)`);
    console.log(`cold start (unpack + start) p50: ${ms(pct(cold, 0.5))}`);
    console.log(`cold start (unpack + start) p99: ${ms(pct(cold, 0.99))}`);
    console.log(`100 containers started at once: ${ms(burst)} (${(100 / (burst / 1000)).toFixed(0)} containers/s)`);
    console.log(`floor, unshare + chroot of the same rootfs p50: ${ms(pct(floor, 0.5))}`);
    console.log(`floor, unshare + chroot p99: ${ms(pct(floor, 0.99))}`);
    console.log(`warm start p50 / floor p50: ${(pct(warm, 0.5) / pct(floor, 0.5)).toFixed(2)}x`);
    console.log(`starts measured: ${WARM} warm, 10 cold, 100 in a burst; failed starts: ${failures.length}`);
    if (failures.length > 0) throw new Error(`failed starts: ${failures.slice(0, 3).join('; ')}`);
  } finally {
    current.clear();
    ex.reconcile([]);
    await new Promise((r) => setTimeout(r, 500));
    await ex.close();
    for (const d of readdirSync(root)) {
      const tasks = join(root, d);
      if (!d.startsWith('tasks') || !existsSync(tasks)) continue;
      for (const t of readdirSync(tasks)) spawnSync('umount', ['-l', join(tasks, t, 'rootfs')], { stdio: 'ignore' });
    }
    await TaskCgroup.cleanupParent(parent).catch(() => {});
    rmSync(root, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(`bench:engine failed: ${(e as Error).stack ?? e}`);
  process.exitCode = 1;
});
