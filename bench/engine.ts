// `npm run bench:engine`: container start latency on one node, from the executor being asked to run a task
// to the user process running (the shim reports running once execve succeeded), warm (image unpacked) and
// cold (image archive unpacked first); throughput starting 100 containers; and, in the same run, the floor:
// `unshare` + `chroot` of the same root filesystem. Warm starts are also measured with the shim as it was
// before the confinement work (git BASELINE_REV: deny-list seccomp, no sealed self-copy), built into a
// temp dir, so the cost of confinement shows in one run (set SHOAL_BENCH_BASELINE=0 to skip), and with the
// shim sealing a copy of itself at every start instead of the engine's one sealed copy per daemon (what
// the warm start cost before that change). The three kinds of start alternate in blocks of 10.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, existsSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { TaskCgroup } from '../worker/engine/cgroups.ts';
import { EngineExecutor, type ImageResolver } from '../worker/engine/executor.ts';
import { BUILD_SCRIPT, DEFAULT_SHIM_PATH, makeBusyboxRootfs, sealedShimError, sealedShimFd } from '../worker/engine/shim.ts';
import type { TaskAssignment, TaskStatusUpdate } from '../api/task-status.ts';
import { ImageStore, mountRootfs, unmountRootfs } from '../worker/images/store.ts';
import { baseImage, ociFiles, tarFiles } from '../test/images/fixtures.ts';

const root = mkdtempSync(join(tmpdir(), 'shoal-bench-engine-'));
const parent = `shoal-bench${process.pid}`;
const WARM = Number(process.env.SHOAL_BENCH_STARTS ?? 100);
/** The last commit before the confinement work (allowlist seccomp, sealed shim copy, device cgroup). */
const BASELINE_REV = 'b9e7827^';

/** The shim source at BASELINE_REV, compiled like the Makefile does; undefined when git or gcc fails. */
function buildBaselineShim(): string | undefined {
  if (process.env.SHOAL_BENCH_BASELINE === '0') return undefined;
  const src = spawnSync('git', ['show', `${BASELINE_REV}:native/shim/shoal-shim.c`], { encoding: 'utf8', maxBuffer: 16 << 20 });
  if (src.status !== 0) return undefined;
  writeFileSync(join(root, 'shim-baseline.c'), src.stdout);
  const out = join(root, 'shoal-shim-baseline');
  const cc = spawnSync('gcc', ['-O2', '-static', '-o', out, join(root, 'shim-baseline.c')], { stdio: 'ignore' });
  return cc.status === 0 ? out : undefined;
}

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
  const exPerStart = new EngineExecutor({ root: join(root, 'tasks-per-start'), images: warmImages, cgroupParent: parent, pollMs: 20, sealShimOnce: false });
  const sealedOnce = sealedShimFd(DEFAULT_SHIM_PATH) !== undefined;
  const baselineShim = buildBaselineShim();
  const exBase = baselineShim
    ? new EngineExecutor({
        root: join(root, 'tasks-baseline'),
        images: warmImages,
        cgroupParent: parent,
        pollMs: 20,
        shimPath: baselineShim,
        sealShimOnce: false, // the old shim runs from its file, as it did
      })
    : undefined;
  const waiters = new Map<string, { state: string; resolve: () => void }>();
  const failures: string[] = [];
  const onStatus = (u: TaskStatusUpdate) => {
    if (process.env.SHOAL_BENCH_DEBUG) console.error(`${u.taskId} ${u.state} ${u.err ?? ''}`);
    const w = waiters.get(u.taskId);
    if (w && (u.state === w.state || ['failed', 'rejected', 'complete', 'shutdown'].includes(u.state))) {
      if (u.state === 'failed' || u.state === 'rejected') failures.push(`${u.taskId}: ${u.err ?? u.state}`);
      waiters.delete(u.taskId);
      w.resolve();
    }
  };
  ex.onStatus(onStatus);
  exPerStart.onStatus(onStatus);
  exBase?.onStatus(onStatus);
  const current = new Map<string, TaskAssignment>();
  const task = (id: string, desiredState: TaskAssignment['desiredState'] = 'running'): TaskAssignment => ({
    id,
    serviceId: 'b',
    serviceName: 'b',
    desiredState,
    state: 'assigned',
    spec: { image: 'bench/busybox:1', args: ['sleep', '60'], stopGracePeriodMs: 0 },
  });
  const wait = (id: string, state: string) => new Promise<void>((resolve) => waiters.set(id, { state, resolve }));
  const push = () => ex.reconcile([...current.values()]);

  /** Warm starts one at a time on `e`; the kinds of start alternate in blocks of 10. */
  const warmOne = async (e: EngineExecutor, id: string, out: number[]) => {
    const only = new Map([[id, task(id)]]);
    const t0 = performance.now();
    const running = wait(id, 'running');
    e.reconcile([...only.values()]);
    await running;
    out.push(performance.now() - t0);
    only.set(id, task(id, 'shutdown'));
    const stopped = wait(id, 'shutdown');
    e.reconcile([...only.values()]);
    await stopped;
    e.reconcile([]);
  };

  try {
    // Warm starts, one at a time, WARM of each kind, interleaved so that all see the same machine.
    const warm: number[] = [];
    const warmPerStart: number[] = [];
    const warmBase: number[] = [];
    const kinds: Array<[EngineExecutor, string, number[]]> = [
      [ex, 'w', warm],
      [exPerStart, 's', warmPerStart],
      ...(exBase ? [[exBase, 'b', warmBase] as [EngineExecutor, string, number[]]] : []),
    ];
    for (let i = 0; kinds.some(([, , out]) => out.length < WARM); i++) {
      const [e, prefix, out] = kinds[Math.floor(i / 10) % kinds.length]!;
      if (out.length < WARM) await warmOne(e, `${prefix}${i}`, out);
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
    const how = sealedOnce ? 'shim sealed once per daemon' : `NO per-daemon sealed copy (${sealedShimError(DEFAULT_SHIM_PATH)}): sealed per start`;
    console.log(`warm start p50: ${ms(pct(warm, 0.5))} (target <= 30 ms; docker run --network none here: 180 ms) [confinement on, ${how}]`);
    console.log(`warm start p99: ${ms(pct(warm, 0.99))} (target <= 100 ms) [confinement on, ${how}]`);
    console.log(`warm start, shim sealed per start p50: ${ms(pct(warmPerStart, 0.5))} [confinement on; the shim copies and re-executes itself per start]`);
    console.log(`warm start, shim sealed per start p99: ${ms(pct(warmPerStart, 0.99))}`);
    if (warmBase.length) {
      console.log(`baseline warm start p50: ${ms(pct(warmBase, 0.5))} [shim of ${BASELINE_REV}: deny-list seccomp, no sealed copy; same engine]`);
      console.log(`baseline warm start p99: ${ms(pct(warmBase, 0.99))}`);
      console.log(`confinement cost at p50: ${(pct(warm, 0.5) - pct(warmBase, 0.5)).toFixed(2)} ms (goal: warm start p50 <= 30 ms)`);
      console.log(`confinement cost at p50, shim sealed per start: ${(pct(warmPerStart, 0.5) - pct(warmBase, 0.5)).toFixed(2)} ms`);
    } else console.log('baseline warm start: skipped (SHOAL_BENCH_BASELINE=0, or git/gcc could not build the old shim)');
    console.log(`cold start (unpack + start) p50: ${ms(pct(cold, 0.5))}`);
    console.log(`cold start (unpack + start) p99: ${ms(pct(cold, 0.99))}`);
    console.log(`100 containers started at once: ${ms(burst)} (${(100 / (burst / 1000)).toFixed(0)} containers/s)`);
    console.log(`floor, unshare + chroot of the same rootfs p50: ${ms(pct(floor, 0.5))}`);
    console.log(`floor, unshare + chroot p99: ${ms(pct(floor, 0.99))}`);
    console.log(`warm start p50 / floor p50: ${(pct(warm, 0.5) / pct(floor, 0.5)).toFixed(2)}x`);
    console.log(`starts measured: ${WARM} warm of each kind, 10 cold, 100 in a burst; failed starts: ${failures.length}`);
    if (failures.length > 0) throw new Error(`failed starts: ${failures.slice(0, 3).join('; ')}`);
  } finally {
    current.clear();
    ex.reconcile([]);
    exPerStart.reconcile([]);
    exBase?.reconcile([]);
    // Each executor removes a task's directory once its container stopped and its cgroups and mounts
    // are gone: wait for that (a fixed pause left cgroups behind on a loaded machine).
    const left = () =>
      readdirSync(root)
        .filter((d) => d.startsWith('tasks'))
        .reduce((n, d) => n + readdirSync(join(root, d)).length, 0);
    for (const end = Date.now() + 60_000; left() > 0 && Date.now() < end; ) await new Promise((r) => setTimeout(r, 50));
    await ex.close();
    await exPerStart.close();
    await exBase?.close();
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
