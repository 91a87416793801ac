// The engine executor runs real containers: overlayfs root from image layers, cgroups, shoal-shim.
// Image resolution is stubbed here with one busybox layer (the image store has its own tests).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, readdirSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { TaskAssignment, TaskStatusUpdate } from '../../api/task-status.ts';
import { EngineExecutor, type ImageResolver } from '../../worker/engine/executor.ts';
import { BUILD_SCRIPT, makeBusyboxRootfs } from '../../worker/engine/shim.ts';
import { TaskCgroup } from '../../worker/engine/cgroups.ts';

const root = mkdtempSync(join(tmpdir(), 'shoal-engine-'));
const layer = join(root, 'layer');
const parent = `shoal-etest${process.pid}`;

const images: ImageResolver = {
  resolve: (ref) => (ref === 'busybox' ? { layers: [layer], config: { Cmd: ['sh'], Env: ['PATH=/bin'] } } : undefined),
  async mountRootfs(layers, upper, work, target) {
    execFileSync('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${layers.join(':')},upperdir=${upper},workdir=${work}`, target]);
  },
  async unmountRootfs(target) {
    try {
      execFileSync('umount', [target]);
    } catch {
      execFileSync('umount', ['-l', target]);
    }
  },
};

let ex: EngineExecutor;
const states = new Map<string, TaskStatusUpdate[]>();

before(() => {
  execFileSync('bash', [BUILD_SCRIPT]);
  makeBusyboxRootfs(layer);
  ex = new EngineExecutor({ root: join(root, 'tasks'), images, cgroupParent: parent, pollMs: 50 });
  ex.onStatus((u) => states.set(u.taskId, [...(states.get(u.taskId) ?? []), u]));
});

after(async () => {
  // Stop anything still running, unmount, remove cgroups and files — also when a test failed.
  ex.reconcile([]);
  await new Promise((r) => setTimeout(r, 300));
  await ex.close();
  for (const d of existsSync(join(root, 'tasks')) ? readdirSync(join(root, 'tasks')) : []) {
    try {
      execFileSync('umount', ['-l', join(root, 'tasks', d, 'rootfs')], { stdio: 'ignore' });
    } catch {
      /* not mounted */
    }
  }
  await TaskCgroup.cleanupParent(parent).catch(() => {});
  rmSync(root, { recursive: true, force: true });
});

const task = (id: string, spec: TaskAssignment['spec'], desiredState: TaskAssignment['desiredState'] = 'running'): TaskAssignment => ({
  id,
  serviceId: 's',
  serviceName: 's',
  desiredState,
  state: 'assigned',
  spec,
});
const last = (id: string) => states.get(id)?.at(-1);
/** Waits for `cond`; on timeout the error lists every state each task went through (for diagnosis). */
async function until(cond: () => boolean, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) {
      const seen = [...states].map(([id, us]) => `${id}: ${us.map((u) => u.state + (u.err ? ` (${u.err})` : '')).join(' → ')}`).join('; ');
      throw new Error(`timed out after ${ms} ms; states seen: ${seen}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

test('a task runs as a real container and its exit code is reported', async () => {
  ex.reconcile([task('t-ok', { image: 'busybox', args: ['sh', '-c', 'exit 0'] }), task('t-bad', { image: 'busybox', args: ['sh', '-c', 'exit 3'] })]);
  await until(() => last('t-ok')?.state === 'complete' && last('t-bad')?.state === 'failed');
  assert.deepEqual(
    states.get('t-ok')!.map((u) => u.state),
    ['accepted', 'preparing', 'starting', 'running', 'complete'],
  );
  assert.equal(last('t-bad')!.exitCode, 3);
  assert.match(last('t-bad')!.err ?? '', /non-zero exit \(3\)/);
});

test('a missing image is rejected with a reason; a running task is stopped on request', async () => {
  ex.reconcile([task('t-missing', { image: 'nope:1' }), task('t-long', { image: 'busybox', args: ['sleep', '30'], stopGracePeriodMs: 200 })]);
  await until(() => last('t-missing')?.state === 'rejected' && last('t-long')?.state === 'running');
  assert.match(last('t-missing')!.err ?? '', /image nope:1 is not present on this node/);
  ex.reconcile([task('t-long', { image: 'busybox', args: ['sleep', '30'], stopGracePeriodMs: 200 }, 'shutdown')]);
  await until(() => last('t-long')?.state === 'shutdown');
});

test('a memory limit OOM-kills a hog and the task says OOMKilled', async () => {
  ex.reconcile([
    task('t-oom', { image: 'busybox', args: ['sh', '-c', 'x=a; while true; do x=$x$x$x$x; done'], resources: { limits: { memoryBytes: 16 * 1024 * 1024 } } }),
  ]);
  await until(() => last('t-oom')?.state === 'failed', 20_000);
  assert.match(last('t-oom')!.err ?? '', /OOMKilled/);
});
