// Real cgroups on the test machine (must run as root). Every cgroup lives under a per-run parent
// "shoal-test<pid>", which the after hooks remove (killing any process left in it) even when a test fails.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, afterEach, describe, test } from 'node:test';
import { TaskCgroup, cgroupParentFor, detectCgroups, parseMountinfo } from '../../worker/engine/cgroups.ts';

const PARENT = `shoal-test${process.pid}`;
const info = detectCgroups();
const children: ChildProcess[] = [];
const cgroups: TaskCgroup[] = [];

function start(cmd: string, args: string[]): ChildProcess {
  const c = spawn(cmd, args, { stdio: ['pipe', 'ignore', 'pipe'] });
  children.push(c);
  c.stdin?.on('error', () => {});
  return c;
}

function stderrOf(c: ChildProcess): () => string {
  let s = '';
  c.stderr?.on('data', (d: Buffer) => (s += d.toString()));
  return () => s;
}

function exited(c: ChildProcess, ms: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  return new Promise((resolve, reject) => {
    if (c.exitCode !== null || c.signalCode !== null) return resolve({ code: c.exitCode, signal: c.signalCode });
    const t = setTimeout(() => reject(new Error(`child ${c.pid} still running after ${ms} ms`)), ms);
    c.once('exit', (code, signal) => {
      clearTimeout(t);
      resolve({ code, signal });
    });
  });
}

async function make(id: string, limits: Parameters<typeof TaskCgroup.create>[0]['limits'] = {}): Promise<TaskCgroup> {
  const cg = await TaskCgroup.create({ parent: PARENT, id, limits });
  cgroups.push(cg);
  return cg;
}

function killChildren(): void {
  for (const c of children.splice(0)) {
    if (c.pid !== undefined && c.exitCode === null && c.signalCode === null) {
      try {
        process.kill(c.pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
  }
}

afterEach(async () => {
  killChildren();
  for (const cg of cgroups.splice(0)) await cg.destroy().catch(() => {});
});

after(async () => {
  killChildren();
  await TaskCgroup.cleanupParent(PARENT, { cgroups: info });
  for (const m of new Set(Object.values(info.mounts))) assert.equal(existsSync(join(m, PARENT)), false, `left ${m}/${PARENT}`);
});

const read = (dir: string, f: string) => readFileSync(join(dir, f), 'utf8').trim();
const dirWith = (cg: TaskCgroup, file: string) => {
  const d = cg.paths().find((p) => existsSync(join(p, file)));
  assert.ok(d, `no cgroup dir of ${cg.paths().join(', ')} has ${file}`);
  return d;
};

describe('detection', () => {
  test('detects this host', () => {
    assert.ok(info.version === 1 || info.version === 2);
    for (const c of ['cpu', 'memory', 'pids']) assert.ok(info.mounts[c], `controller ${c} mounted`);
  });

  test('parses v1, hybrid and pure v2 mountinfo', () => {
    const hybrid = [
      '31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755',
      '32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct',
      '35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory',
      '39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids',
      '40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd',
      '41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw',
    ].join('\n');
    const h = parseMountinfo(hybrid, () => ['hugetlb']);
    assert.equal(h.version, 1);
    assert.equal(h.mounts.cpu, '/sys/fs/cgroup/cpu,cpuacct');
    assert.equal(h.mounts.cpuacct, '/sys/fs/cgroup/cpu,cpuacct');
    assert.equal(h.mounts.memory, '/sys/fs/cgroup/memory');
    assert.equal(h.mounts.hugetlb, '/sys/fs/cgroup/unified');
    assert.equal(h.mounts['name=systemd'], undefined);
    assert.equal(h.unified, '/sys/fs/cgroup/unified');

    const v2 = '30 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot';
    const p = parseMountinfo(v2, (mp) => (mp === '/sys/fs/cgroup' ? ['cpuset', 'cpu', 'io', 'memory', 'pids'] : []));
    assert.equal(p.version, 2);
    assert.deepEqual(p.mounts, { cpuset: '/sys/fs/cgroup', cpu: '/sys/fs/cgroup', io: '/sys/fs/cgroup', memory: '/sys/fs/cgroup', pids: '/sys/fs/cgroup' });

    assert.throws(() => parseMountinfo('1 0 0:1 / / rw - ext4 /dev/sda rw', () => []), /no cgroup filesystem/);
  });

  test('parent names', () => {
    assert.equal(cgroupParentFor(), 'shoal');
    assert.equal(cgroupParentFor('h3'), 'shoal-h3');
    assert.throws(() => cgroupParentFor('a/b'));
  });
});

describe('TaskCgroup on this host', () => {
  test('create writes limits that read back; bad values give clear errors', async () => {
    const cg = await make('limits', {
      memoryBytes: 64 << 20,
      memoryReservationBytes: 32 << 20,
      nanoCpus: 5e8,
      cpuShares: 512,
      pids: 50,
      cpuset: '0',
    });
    for (const p of cg.paths()) assert.ok(p.includes(`/${PARENT}/limits`), p);
    assert.equal(cg.paths().length, cg.procsFiles().length);
    if (info.version === 1) {
      const mem = dirWith(cg, 'memory.limit_in_bytes');
      assert.equal(read(mem, 'memory.limit_in_bytes'), String(64 << 20));
      assert.equal(read(mem, 'memory.soft_limit_in_bytes'), String(32 << 20));
      const cpu = dirWith(cg, 'cpu.cfs_quota_us');
      assert.equal(read(cpu, 'cpu.cfs_period_us'), '100000');
      assert.equal(read(cpu, 'cpu.cfs_quota_us'), '50000');
      assert.equal(read(cpu, 'cpu.shares'), '512');
      assert.equal(read(dirWith(cg, 'pids.max'), 'pids.max'), '50');
      assert.equal(read(dirWith(cg, 'cpuset.cpus'), 'cpuset.cpus'), '0');
    } else {
      const d = cg.paths()[0]!;
      assert.equal(read(d, 'memory.max'), String(64 << 20));
      assert.equal(read(d, 'memory.low'), String(32 << 20));
      assert.equal(read(d, 'cpu.max'), '50000 100000');
      assert.equal(read(d, 'pids.max'), '50');
      assert.equal(read(d, 'cpuset.cpus'), '0');
    }

    await assert.rejects(make('badcpuset', { cpuset: '4000' }), (e: Error) => {
      assert.match(e.message, /cpuset\.cpus/);
      assert.match(e.message, /"4000"/);
      assert.match(e.message, /EINVAL|ENOSPC|ERANGE/);
      return true;
    });
    // a failed create leaves nothing behind
    for (const m of new Set(Object.values(info.mounts))) assert.equal(existsSync(join(m, PARENT, 'badcpuset')), false);
    await assert.rejects(make('x', { memoryReservationBytes: 10, memoryBytes: 5 }), /memoryReservationBytes/);
    await assert.rejects(TaskCgroup.create({ parent: '../etc', id: 'x' }), /invalid cgroup parent/);
  });

  test('a child process joins every hierarchy; destroy kills it and removes all dirs', async () => {
    const cg = await make('join');
    const c = start('sleep', ['30']);
    await cg.addProcess(c.pid!);
    for (const f of cg.procsFiles()) {
      assert.ok(readFileSync(f, 'utf8').split('\n').includes(String(c.pid)), `${c.pid} in ${f}`);
    }
    const u = await cg.usage();
    assert.equal(u.pids, 1);
    assert.ok(u.memoryBytes >= 0 && u.cpuNanos >= 0);
    await cg.destroy();
    const { signal } = await exited(c, 3000);
    assert.equal(signal, 'SIGKILL');
    for (const p of cg.paths()) assert.equal(existsSync(p), false, `${p} removed`);
    // The shared parent stays (other tasks may be created under it at any moment) …
    for (const p of cg.paths()) assert.equal(existsSync(join(p, '..')), true, `${join(p, '..')} kept`);
    await cg.destroy(); // idempotent
    // … until the node's cgroups are cleaned up as a whole.
    await TaskCgroup.cleanupParent(cg.parent);
    for (const p of cg.paths()) assert.equal(existsSync(join(p, '..')), false, `${join(p, '..')} removed`);
  });

  test('memory limit: a process allocating past it is OOM-killed and oomKilled() says so', async () => {
    const cg = await make('oom', { memoryBytes: 48 << 20 });
    if (info.version === 1) {
      const mem = dirWith(cg, 'memory.oom_control');
      if (!/oom_kill \d+/.test(read(mem, 'memory.oom_control'))) {
        // Kernels before 4.13 do not count OOM kills in v1.
        return;
      }
    }
    assert.equal(await cg.oomKilled(), false);
    const script = "process.stdin.once('data',()=>{const a=[];for(let i=0;i<1024;i++)a.push(Buffer.alloc(1<<20,1));process.exit(3)})";
    const c = start(process.execPath, ['-e', script]);
    await cg.addProcess(c.pid!);
    c.stdin!.write('go\n');
    const { code, signal } = await exited(c, 20000);
    assert.equal(signal, 'SIGKILL', `expected OOM kill, got code=${code} signal=${signal}`);
    assert.equal(await cg.oomKilled(), true);
    const u = await cg.usage();
    assert.ok((u.oomKills ?? 0) >= 1);
    if (u.memoryMaxBytes !== undefined) {
      assert.ok(u.memoryMaxBytes <= 48 << 20, `max ${u.memoryMaxBytes}`);
      assert.ok(u.memoryMaxBytes > 16 << 20, `max ${u.memoryMaxBytes}`);
    }
  });

  test('pids limit: forking beyond it fails', async () => {
    const cg = await make('pids', { pids: 4 });
    // waits for a line on stdin (so it forks only after joining), then tries to start 10 sleepers
    const c = start('sh', ['-c', 'read x; i=0; while [ $i -lt 10 ]; do sleep 3 & i=$((i+1)); done; wait']);
    const err = stderrOf(c);
    await cg.addProcess(c.pid!);
    c.stdin!.write('go\n');
    await exited(c, 10000);
    assert.match(err(), /fork|resource temporarily unavailable/i);
    const pidsDir = dirWith(cg, 'pids.events');
    assert.match(read(pidsDir, 'pids.events'), /max [1-9]/);
    assert.ok((await cg.usage()).pids <= 4);
    await cg.destroy(); // kills the sleepers the shell left behind
    for (const p of cg.paths()) assert.equal(existsSync(p), false);
  });

  test('cpu quota: a busy loop gets about the limit', async () => {
    const cg = await make('cpu', { nanoCpus: 2e8 });
    const c = start('sh', ['-c', 'read x; while :; do :; done']);
    await cg.addProcess(c.pid!);
    c.stdin!.write('go\n');
    await new Promise((r) => setTimeout(r, 200));
    const u0 = await cg.usage();
    const t0 = process.hrtime.bigint();
    await new Promise((r) => setTimeout(r, 1000));
    const u1 = await cg.usage();
    const secs = Number(process.hrtime.bigint() - t0) / 1e9;
    const rate = (u1.cpuNanos - u0.cpuNanos) / 1e9 / secs;
    assert.ok(rate > 0.1 && rate < 0.35, `cpu rate ${rate.toFixed(3)} CPU, want ~0.2`);
    // v1 does not move a process's existing charge on join, so a shell loop may show ~0 here
    assert.ok(u1.memoryBytes >= 0 && u1.memoryBytes < 1 << 30, `memory ${u1.memoryBytes}`);
    assert.equal(u1.pids, 1);
  });

  test('v2-only: cgroup.kill and memory.low', async (t) => {
    if (info.version !== 2) {
      t.skip('cgroup v2 is not in use on this host (v1/hybrid): v2 files not checked');
      return;
    }
    const cg = await make('v2', { memoryReservationBytes: 1 << 20 });
    const d = cg.paths()[0]!;
    assert.equal(read(d, 'memory.low'), String(1 << 20));
    assert.ok(existsSync(join(d, 'cgroup.kill')), 'cgroup.kill (kernel >= 5.14)');
  });

  test('cleanupParent removes leftovers of a crashed agent, killing what runs in them', async () => {
    const a = await make('crash-a');
    const b = await TaskCgroup.create({ parent: `${PARENT}/nested`, id: 'crash-b' });
    cgroups.push(b);
    const c = start('sleep', ['30']);
    await a.addProcess(c.pid!);
    // "crash": forget the instances, then clean up by name only
    const removed = await TaskCgroup.cleanupParent(PARENT, { cgroups: info });
    assert.ok(removed.length >= a.paths().length + b.paths().length, removed.join('\n'));
    const { signal } = await exited(c, 3000);
    assert.equal(signal, 'SIGKILL');
    for (const p of [...a.paths(), ...b.paths()]) assert.equal(existsSync(p), false, `${p} removed`);
    for (const m of new Set(Object.values(info.mounts))) assert.equal(existsSync(join(m, PARENT)), false);
    assert.deepEqual(await TaskCgroup.cleanupParent(PARENT, { cgroups: info }), []);
  });
});
