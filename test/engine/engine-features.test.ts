// EngineExecutor with real containers: the network hook, exec, healthchecks, mounts and volumes, logs,
// usage, and re-adoption of all that by a new executor (an agent restart). Image resolution is stubbed
// with one busybox layer; the network hook is a test double that prepares a network namespace per task.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { TaskTemplate } from '../../api/objects.ts';
import { TaskCgroup, detectCgroups } from '../../worker/engine/cgroups.ts';
import { EngineExecutor, type ImageResolver, type NetworkHook } from '../../worker/engine/executor.ts';
import { BUILD_SCRIPT, makeBusyboxRootfs } from '../../worker/engine/shim.ts';
import type { TaskAssignment, TaskStatusUpdate } from '../../api/task-status.ts';

const PREFIX = `shoal-eng-${process.pid}`;
const root = mkdtempSync(join(tmpdir(), 'shoal-eng-exec-'));
const layer = join(root, 'layer');
const tasksRoot = join(root, 'tasks');
const NODE = 'node-eng-7';

const images: ImageResolver = {
  resolve: (ref) => (ref === 'busybox' ? { layers: [layer], config: { Cmd: ['sh'], Env: ['PATH=/bin', 'FROM_IMAGE=1'] } } : undefined),
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

// The network plugin double: a namespace per task with a veth pair in it, resolv.conf and hosts.
const netCalls: string[] = [];
const nsOf = (taskId: string) => `${PREFIX}-${taskId}`;
const network: NetworkHook = {
  async attach(a) {
    netCalls.push(`attach ${a.id}`);
    if (a.spec.labels?.['net'] === 'fail') throw new Error('no address left in 10.0.9.0/24');
    if (a.spec.labels?.['net'] === 'host') return { host: true };
    execFileSync('ip', ['netns', 'add', nsOf(a.id)]);
    execFileSync('ip', ['-n', nsOf(a.id), 'link', 'add', 'eth-eng0', 'type', 'veth', 'peer', 'name', 'eth-eng1']);
    return { netnsPath: `/run/netns/${nsOf(a.id)}`, resolvConf: 'nameserver 10.0.9.1\n', hosts: '127.0.0.1 localhost\n10.0.9.5 web\n' };
  },
  async detach(id) {
    netCalls.push(`detach ${id}`);
    spawnSync('ip', ['netns', 'del', nsOf(id)], { stdio: 'ignore' });
  },
};

const states = new Map<string, TaskStatusUpdate[]>();
const executors: EngineExecutor[] = [];
function newExecutor(): EngineExecutor {
  const ex = new EngineExecutor({ root: tasksRoot, images, cgroupParent: PREFIX, pollMs: 50, network, nodeName: NODE });
  ex.onStatus((u) => states.set(u.taskId, [...(states.get(u.taskId) ?? []), u]));
  executors.push(ex);
  return ex;
}
let ex: EngineExecutor;
/** What the managers would send: every task the test started and has not removed. */
const assigned = new Map<string, TaskAssignment>();

before(() => {
  execFileSync('bash', [BUILD_SCRIPT]);
  makeBusyboxRootfs(layer);
  ex = newExecutor();
});

after(async () => {
  // Stop and forget everything (also when a test failed), then remove what could still be left.
  ex.reconcile([]);
  const end = Date.now() + 15_000;
  while (existsSync(tasksRoot) && readdirSync(tasksRoot).length > 0 && Date.now() < end) await sleep(50);
  for (const e of executors) await e.close();
  for (const d of existsSync(tasksRoot) ? readdirSync(tasksRoot) : []) spawnSync('umount', ['-l', join(tasksRoot, d, 'rootfs')], { stdio: 'ignore' });
  await TaskCgroup.cleanupParent(PREFIX).catch(() => {});
  for (const ns of readdirSync('/run/netns').filter((n) => n.startsWith(PREFIX))) spawnSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
  rmSync(root, { recursive: true, force: true });
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const last = (id: string) => states.get(id)?.at(-1);
const seen = (id: string) => (states.get(id) ?? []).map((u) => u.state);

function run(id: string, spec: Omit<TaskTemplate, 'image'>, state: TaskAssignment['state'] = 'assigned'): void {
  assigned.set(id, { id, serviceId: 's', serviceName: 's', desiredState: 'running', state, spec: { image: 'busybox', ...spec } });
  ex.reconcile([...assigned.values()]);
}
function remove(id: string): void {
  assigned.delete(id);
  ex.reconcile([...assigned.values()]);
}
async function until(cond: () => boolean, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) {
      const all = [...states].map(([id, us]) => `${id}: ${us.map((u) => u.state + (u.err ? ` (${u.err})` : '')).join(' → ')}`).join('; ');
      throw new Error(`timed out after ${ms} ms; states seen: ${all}`);
    }
    await sleep(20);
  }
}
async function logLines(id: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of ex.logs(id)) out.push(e.line);
  return out;
}

test('network hook: attached before the shim starts; the container joins its namespace and gets resolv.conf and hosts; detached after', async () => {
  run('t-net', { args: ['sh', '-c', 'ip -o link show | cut -d: -f2 | cut -d@ -f1; cat /etc/resolv.conf /etc/hosts'] });
  await until(() => last('t-net')?.state === 'complete');
  assert.deepEqual(seen('t-net'), ['accepted', 'preparing', 'starting', 'running', 'complete']);
  const lines = (await logLines('t-net')).map((l) => l.trim());
  assert.deepEqual(lines.slice(0, 3).sort(), ['eth-eng0', 'eth-eng1', 'lo']);
  assert.deepEqual(lines.slice(3), ['nameserver 10.0.9.1', '127.0.0.1 localhost', '10.0.9.5 web']);
  await until(() => netCalls.includes('detach t-net'));
  assert.deepEqual(
    netCalls.filter((c) => c.endsWith(' t-net')),
    ['attach t-net', 'detach t-net'],
  );
  assert.ok(!readdirSync('/run/netns').includes(nsOf('t-net')));
  remove('t-net');
});

test('network hook: a failing attach rejects the task with its message (and detach still runs); host networking', async () => {
  run('t-netfail', { args: ['true'], labels: { net: 'fail' } });
  run('t-nethost', { args: ['ls', '/sys/class/net'], labels: { net: 'host' } });
  await until(() => last('t-netfail')?.state === 'rejected' && last('t-nethost')?.state === 'complete');
  assert.equal(last('t-netfail')!.err, 'no address left in 10.0.9.0/24');
  await until(() => netCalls.includes('detach t-netfail'));
  assert.deepEqual((await logLines('t-nethost')).sort(), readdirSync('/sys/class/net').sort());
  remove('t-netfail');
  remove('t-nethost');
});

test('exec into a running task; an unknown or finished task is refused', async () => {
  run('t-exec', { args: ['sleep', '30'], workdir: '/tmp', stopGracePeriodMs: 100 });
  await until(() => last('t-exec')?.state === 'running');
  const r = await ex.exec('t-exec', ['sh', '-c', 'echo "$FROM_IMAGE $X $(pwd) $(id -u)"; cat; exit 3'], { env: { X: 'y' }, input: 'in\n', user: 'nobody' });
  assert.deepEqual([r.exitCode, r.stdout.toString(), r.timedOut], [3, '1 y /tmp 65534\nin\n', false]);
  await assert.rejects(ex.exec('t-nope', ['true']), /^Error: task t-nope is not running on this node$/);
  assert.equal(ex.health('t-exec'), undefined, 'no healthcheck, no health');
  remove('t-exec');
  await until(() => !existsSync(join(tasksRoot, 't-exec')));
  await assert.rejects(ex.exec('t-exec', ['true']), /task t-exec is not running on this node/);
});

test('healthcheck: the task stays starting until the first healthy probe, then runs', async () => {
  const t0 = Date.now();
  run('t-healthy', {
    args: ['sh', '-c', 'sleep 0.8; touch /tmp/ready; sleep 30'],
    healthcheck: { test: ['CMD-SHELL', 'test -f /tmp/ready && echo fine'], intervalMs: 150, retries: 100 },
    stopGracePeriodMs: 100,
  });
  await until(() => last('t-healthy')?.state === 'running');
  assert.ok(Date.now() - t0 >= 800, 'running only once the probe succeeded');
  const ups = states.get('t-healthy')!;
  assert.deepEqual(
    ups.map((u) => u.state),
    ['accepted', 'preparing', 'starting', 'starting', 'running'],
  );
  assert.equal(ups[3]!.message, 'container is starting, waiting for healthcheck');
  const h = ex.health('t-healthy')!;
  assert.equal(h.status, 'healthy');
  assert.equal(h.failingStreak, 0);
  assert.ok(h.log.length >= 2 && h.log.length <= 5, JSON.stringify(h.log));
  assert.deepEqual(h.log.at(-1)!.exitCode, 0);
  assert.equal(h.log.at(-1)!.output, 'fine\n');
  assert.equal(h.log[0]!.exitCode, 1, 'the first probes failed');
  remove('t-healthy');
});

test('healthcheck: failing or timed-out probes make the container unhealthy: stopped, task failed', async () => {
  run('t-sick', {
    args: ['sleep', '30'],
    healthcheck: { test: ['CMD', 'sh', '-c', 'echo "  db down "; exit 1'], intervalMs: 100, retries: 2 },
    stopGracePeriodMs: 100,
  });
  run('t-slow', { args: ['sleep', '30'], healthcheck: { test: ['CMD', 'sleep', '10'], intervalMs: 100, timeoutMs: 200, retries: 1 }, stopGracePeriodMs: 100 });
  await until(() => last('t-sick')?.state === 'failed' && last('t-slow')?.state === 'failed');
  assert.equal(last('t-sick')!.err, 'unhealthy container: db down');
  assert.equal(last('t-slow')!.err, 'unhealthy container: Health check exceeded timeout (200ms)');
  assert.deepEqual(seen('t-sick'), ['accepted', 'preparing', 'starting', 'starting', 'failed'], 'never running');
  const h = ex.health('t-sick')!;
  assert.equal(h.status, 'unhealthy');
  assert.equal(h.failingStreak, 2);
  const n = h.log.length;
  await sleep(300);
  assert.equal(ex.health('t-sick')!.log.length, n, 'no probes after the task ended');
  assert.equal(ex.usage()['t-sick'], undefined);
  remove('t-sick');
  remove('t-slow');
});

test('mounts: bind read-write and read-only, tmpfs with its size enforced', async () => {
  const rw = join(root, 'bind-rw');
  const ro = join(root, 'bind-ro');
  mkdirSync(rw);
  mkdirSync(ro);
  writeFileSync(join(ro, 'in'), 'host data\n');
  run('t-mnt', {
    args: [
      'sh',
      '-c',
      'echo from-task > /rw/out; cat /ro/in; touch /ro/x 2>/dev/null; echo touch=$?; dd if=/dev/zero of=/t/a bs=1024 count=400 2>/dev/null; echo dd1=$?; dd if=/dev/zero of=/t/b bs=1024 count=400 2>/dev/null; echo dd2=$?',
    ],
    mounts: [
      { type: 'bind', source: rw, target: '/rw' },
      { type: 'bind', source: ro, target: '/ro', readOnly: true },
      { type: 'tmpfs', target: '/t', tmpfsSizeBytes: 512 * 1024 },
    ],
  });
  await until(() => last('t-mnt')?.state === 'complete');
  assert.equal(readFileSync(join(rw, 'out'), 'utf8'), 'from-task\n');
  assert.deepEqual(await logLines('t-mnt'), ['host data', 'touch=1', 'dd1=0', 'dd2=1']);
  remove('t-mnt');
});

test('mounts: a missing bind source rejects the task, naming the node', async () => {
  run('t-nobind', { args: ['true'], mounts: [{ type: 'bind', source: '/nonexistent/shoal-eng-src', target: '/x' }] });
  run('t-badtarget', { args: ['true'], mounts: [{ type: 'tmpfs', target: '/a/../etc' }] });
  await until(() => last('t-nobind')?.state === 'rejected' && last('t-badtarget')?.state === 'rejected');
  assert.equal(last('t-nobind')!.err, `bind source /nonexistent/shoal-eng-src missing on node ${NODE}`);
  assert.match(last('t-badtarget')!.err ?? '', /must not contain '\.\.'/);
  remove('t-nobind');
  remove('t-badtarget');
});

test('volumes: a named volume persists across tasks and cannot be removed while used; anonymous ones go with their task', async () => {
  const vol = 'shoal-eng-data';
  run('t-vol1', {
    args: ['sh', '-c', 'echo persisted > /vol/f; echo scratch > /anon/f'],
    mounts: [
      { type: 'volume', source: vol, target: '/vol' },
      { type: 'volume', target: '/anon' },
    ],
  });
  await until(() => last('t-vol1')?.state === 'complete');
  const anon = ex.volumes.list().find((v) => v.anonymous)!;
  assert.deepEqual(anon.users, ['t-vol1']);
  assert.equal(readFileSync(join(anon.path, 'f'), 'utf8'), 'scratch\n');
  remove('t-vol1');
  await until(() => !existsSync(anon.path));
  run('t-vol2', {
    args: ['sh', '-c', 'cat /data/f; sleep 30'],
    mounts: [{ type: 'volume', source: vol, target: '/data', readOnly: true }],
    stopGracePeriodMs: 100,
  });
  await until(() => last('t-vol2')?.state === 'running');
  const end = Date.now() + 5000;
  while ((await logLines('t-vol2')).length === 0 && Date.now() < end) await sleep(20);
  assert.deepEqual(await logLines('t-vol2'), ['persisted']);
  assert.throws(() => ex.volumes.rm(vol), /^Error: volume shoal-eng-data is in use by task t-vol2$/);
  remove('t-vol2');
  await until(() => !existsSync(join(tasksRoot, 't-vol2')));
  ex.volumes.rm(vol);
  assert.deepEqual(ex.volumes.list(), []);
});

test('logs: history with tail, and follow that ends when the container exits', async () => {
  run('t-logs', { args: ['sh', '-c', 'echo one; echo two >&2; sleep 0.5; echo three'] });
  await until(() => last('t-logs')?.state === 'running');
  const followed: string[] = [];
  for await (const e of ex.logs('t-logs', { follow: true })) followed.push(`${e.stream}:${e.line}`);
  assert.equal(last('t-logs')?.state, 'complete', 'follow ended with the container');
  assert.deepEqual(
    followed.filter((l) => l.startsWith('stdout')),
    ['stdout:one', 'stdout:three'],
  );
  assert.ok(followed.includes('stderr:two'));
  const tail: string[] = [];
  for await (const e of ex.logs('t-logs', { tail: 1 })) tail.push(e.line);
  assert.equal(tail.length, 1);
  assert.throws(() => ex.logs('t-unknown'), /task t-unknown is not known on this node/);
  remove('t-logs');
});

test('usage: CPU time and memory of running tasks, from their cgroups', async () => {
  run('t-busy', { args: ['sh', '-c', 'x=$(head -c 3000000 /dev/zero | tr "\\0" a); while true; do :; done'], stopGracePeriodMs: 100 });
  await until(() => last('t-busy')?.state === 'running');
  await until(() => (ex.usage()['t-busy']?.cpuNanos ?? 0) > 50e6, 10_000);
  const u = ex.usage()['t-busy']!;
  assert.ok(u.memoryBytes > 1_000_000, `memory ${u.memoryBytes}`);
  remove('t-busy');
  await until(() => ex.usage()['t-busy'] === undefined);
});

test('an agent restart: a new executor re-adopts a running task (health, exec, usage, volumes, network) and cleans it up on removal', async () => {
  run('t-adopt', {
    args: ['sh', '-c', 'touch /tmp/ok; sleep 30'],
    healthcheck: { test: ['CMD', 'test', '-f', '/tmp/ok'], intervalMs: 100 },
    mounts: [{ type: 'volume', source: 'shoal-eng-keep', target: '/keep' }],
    stopGracePeriodMs: 100,
  });
  await until(() => last('t-adopt')?.state === 'running');
  await ex.close();
  const a = assigned.get('t-adopt')!;
  assigned.set('t-adopt', { ...a, state: 'running' }); // what the managers recorded
  states.delete('t-adopt');
  ex = newExecutor();
  ex.reconcile([...assigned.values()]);
  assert.deepEqual(seen('t-adopt'), ['running']);
  assert.match(last('t-adopt')!.message, /re-adopted/);
  assert.equal((await ex.exec('t-adopt', ['true'])).exitCode, 0);
  await until(() => ex.health('t-adopt')?.status === 'healthy');
  assert.ok((ex.usage()['t-adopt']?.memoryBytes ?? 0) > 0);
  assert.throws(() => ex.volumes.rm('shoal-eng-keep'), /in use by task t-adopt/);
  const cgDirs = Object.values(detectCgroups().mounts).map((m) => join(m, PREFIX, 't-adopt'));
  assert.ok(cgDirs.some((d) => existsSync(d)));
  netCalls.length = 0;
  remove('t-adopt');
  await until(() => !existsSync(join(tasksRoot, 't-adopt')));
  assert.deepEqual(netCalls, ['detach t-adopt']);
  assert.ok(
    cgDirs.every((d) => !existsSync(d)),
    'the cgroups a previous agent created are removed',
  );
  assert.equal(
    spawnSync('sh', ['-c', `grep -c ${tasksRoot}/t-adopt /proc/mounts`])
      .stdout.toString()
      .trim(),
    '0',
  );
  ex.volumes.rm('shoal-eng-keep');
});
