// Break-out attempts from inside real containers (root in the container, as an attacker would be): device
// nodes, mount, namespaces, io_uring, clone3, the shim binary, /proc/sys, and the confinement options
// (--read-only, --cap-add/--cap-drop, --sysctl, --ulimit, --init, seccomp profiles). Also the image's
// user database read on the host. Needs root and gcc (skips only when gcc is missing).
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, openSync, readFileSync, readlinkSync, rmdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { TaskCgroup, detectCgroups } from '../../worker/engine/cgroups.ts';
import { effectiveCapabilities, checkSysctl, ConfinementError } from '../../api/confinement.ts';
import { compileSeccompProfile, SeccompProfileError } from '../../api/seccomp-profile.ts';
import { DEFAULT_SHIM_PATH, execInContainer, readState, startContainer, stopContainer } from '../../worker/engine/shim.ts';
import { UserLookupError, resolveUser } from '../../worker/engine/user.ts';
import { validateServiceSpec } from '../../manager/service/spec.ts';
import { convertStack } from '../../stack/convert.ts';
import { parseServiceCreateArgs, parseServiceUpdateArgs } from '../../cli/service-flags.ts';
import { EngineExecutor, type ImageResolver } from '../../worker/engine/executor.ts';
import type { TaskStatusUpdate } from '../../api/task-status.ts';
import { mountRootfs, unmountRootfs } from '../../worker/images/store.ts';
import { loadMemory } from '../stack/helpers.ts';
import { run, setup, skip, type Env } from './shim-env.ts';

const PARENT = `shoal-h12conf-${process.pid}`;

/** Extra busybox applets the attacks use. */
function applets(e: Env, names: string[]): void {
  for (const a of names) if (!existsSync(join(e.rootfs, 'bin', a))) symlinkSync('busybox', join(e.rootfs, 'bin', a));
}

async function taskCgroup(t: import('node:test').TestContext): Promise<TaskCgroup> {
  const cg = await TaskCgroup.create({ parent: PARENT, id: `t${Math.random().toString(36).slice(2, 10)}` });
  t.after(async () => {
    await cg.destroy().catch(() => {});
    await TaskCgroup.cleanupParent(PARENT).catch(() => {});
  });
  return cg;
}

test('device cgroup: a block device of the host and an unlisted char device cannot be opened', { skip }, async (t) => {
  const e = setup(t);
  applets(e, ['mknod', 'awk']);
  const cg = await taskCgroup(t);
  await run(
    e,
    [
      // the disk the container's root lives on, as the container itself can learn it
      `mm=$(awk '$5=="/" {print $3; exit}' /proc/self/mountinfo); echo "dev=$mm"`,
      'mknod /tmp/disk b ${mm%:*} ${mm#*:} && echo mknod-block-ok',
      'dd if=/tmp/disk of=/dev/null bs=512 count=1 2>&1 | head -n 1',
      'mknod /tmp/kmem c 1 2 && echo mknod-char-ok',
      'cat /tmp/kmem 2>&1 | head -n 1',
      'echo hi > /dev/null && echo null-ok',
      'head -c 4 /dev/urandom | wc -c',
    ].join('; '),
    { cgroups: cg.paths() },
  );
  const out = e.stdout();
  const dev = out.find((l) => l.startsWith('dev='))!;
  assert.notEqual(dev, 'dev=0:0', 'the root must be on a real device for this test to mean anything');
  assert.ok(out.includes('mknod-block-ok'), 'mknod itself stays allowed (as with Docker)');
  assert.ok(
    out.some((l) => /disk.*Operation not permitted/.test(l)),
    out.join('\n'),
  );
  assert.ok(
    out.some((l) => /kmem.*Operation not permitted/.test(l)),
    out.join('\n'),
  );
  assert.ok(out.includes('null-ok'), out.join('\n'));
  assert.ok(out.includes('4'), out.join('\n'));
  assert.match(readFileSync(join(cg.paths().find((p) => p.includes('/devices/'))!, 'devices.list'), 'utf8'), /^c 1:3 rwm$/m);
});

test('device BPF program (cgroup v2 path): allows the listed devices and nothing else', { skip }, async (t) => {
  const info = detectCgroups();
  if (info.unified === undefined) return t.skip('no cgroup2 mount on this host');
  const e = setup(t);
  applets(e, ['mknod']);
  const dir = join(info.unified, `shoal-h12bpf-${process.pid}`);
  mkdirSync(dir);
  t.after(async () => {
    for (let i = 0; i < 100 && existsSync(dir); i++) {
      try {
        rmdirSync(dir);
      } catch {
        await new Promise((r) => setTimeout(r, 20));
      }
    }
  });
  // no v1 devices cgroup here: only the BPF program can refuse
  await run(e, 'mknod /tmp/kmem c 1 2 && echo mknod-ok; cat /tmp/kmem 2>&1 | head -n 1; echo hi > /dev/null && echo null-ok; head -c 3 /dev/zero | wc -c', {
    cgroups: [dir],
    devicesBpfDir: dir,
  });
  const out = e.stdout();
  assert.ok(out.includes('mknod-ok'), out.join('\n'));
  assert.ok(
    out.some((l) => /kmem.*Operation not permitted/.test(l)),
    out.join('\n'),
  );
  assert.ok(out.includes('null-ok') && out.includes('3'), out.join('\n'));
});

const PROBE = `#define _GNU_SOURCE
#include <errno.h>
#include <linux/sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/syscall.h>
#include <unistd.h>
static void show(const char *name, long r) { printf("%s=%s\\n", name, r >= 0 ? "ok" : strerror(errno)); }
int main(void) {
  char params[120] = {0};
  show("io_uring_setup", syscall(SYS_io_uring_setup, 1, params));
  struct clone_args ca = {.exit_signal = SIGCHLD};
  show("clone3", syscall(SYS_clone3, &ca, sizeof ca));
  show("unshare-user", syscall(SYS_unshare, CLONE_NEWUSER));
  show("mount", mount("none", "/tmp", "tmpfs", 0, NULL));
  show("fsopen", syscall(SYS_fsopen, "tmpfs", 0));
  show("keyctl", syscall(SYS_keyctl, 0, 0, 0, 0, 0));
  show("personality-query", personality(0xffffffff));
  show("personality-exec", personality(READ_IMPLIES_EXEC));
  show("nr-1000", syscall(1000));
  show("getpid", syscall(SYS_getpid));
  return 0;
}
`;

test('seccomp allowlist: io_uring, clone3, namespaces, mount, keyrings and unknown syscalls are refused', { skip }, async (t) => {
  const e = setup(t);
  writeFileSync(join(e.dir, 'probe.c'), PROBE);
  execFileSync('gcc', ['-static', '-O2', '-o', join(e.rootfs, 'bin', 'probe'), join(e.dir, 'probe.c')]);
  const st = await run(e, 'probe; sh -c true && echo sh-ok');
  assert.equal(st.exitCode, 0);
  assert.deepEqual(e.stdout(), [
    'io_uring_setup=Operation not permitted',
    'clone3=Function not implemented',
    'unshare-user=Operation not permitted',
    'mount=Operation not permitted',
    'fsopen=Operation not permitted',
    'keyctl=Operation not permitted',
    'personality-query=ok',
    'personality-exec=Operation not permitted',
    'nr-1000=Operation not permitted', // a syscall the filter does not know: refused, not passed through
    'getpid=ok',
    'sh-ok', // libc fell back from clone3 to clone
  ]);
  // the filter can fail: without it the kernel answers for itself
  const u = setup(t);
  execFileSync('gcc', ['-static', '-O2', '-o', join(u.rootfs, 'bin', 'probe'), join(e.dir, 'probe.c')]);
  await run(u, 'probe', { seccomp: false });
  assert.ok(u.stdout().includes('nr-1000=Function not implemented'), u.stdout().join('\n'));
  assert.ok(u.stdout().includes('unshare-user=ok'), u.stdout().join('\n'));
});

test('seccomp: a Docker JSON profile is honoured; what Shoal cannot honour is refused by name', { skip }, async (t) => {
  const e = setup(t);
  applets(e, ['mkdir']);
  const profile = compileSeccompProfile(
    JSON.stringify({ defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['mkdir', 'mkdirat'], action: 'SCMP_ACT_ERRNO', errnoRet: 13 }] }),
  );
  writeFileSync(join(e.dir, 'profile'), profile);
  await run(e, 'mkdir /tmp/x 2>&1 | head -n 1; unshare -U true && echo unshare-ok', { seccompProfilePath: join(e.dir, 'profile') });
  const out = e.stdout();
  assert.ok(
    out.some((l) => /Permission denied/.test(l)),
    out.join('\n'),
  );
  assert.ok(out.includes('unshare-ok'), 'the profile allows by default: ' + out.join('\n'));
  assert.throws(
    () =>
      compileSeccompProfile(
        JSON.stringify({
          defaultAction: 'SCMP_ACT_ERRNO',
          syscalls: [{ names: ['personality'], action: 'SCMP_ACT_ALLOW', args: [{ index: 0, value: 8, op: 'SCMP_CMP_EQ' }] }],
        }),
      ),
    (err: unknown) => err instanceof SeccompProfileError && /args/.test(err.message),
  );
  assert.throws(() => compileSeccompProfile('{"defaultAction":"SCMP_ACT_TRACE"}'), /SCMP_ACT_TRACE.*not supported/);
});

test('the shim runs from a sealed copy: its binary cannot be written through /proc/PID/exe', { skip }, async (t) => {
  const e = setup(t);
  const hash = () => createHash('sha256').update(readFileSync(DEFAULT_SHIM_PATH)).digest('hex');
  const before = hash();
  // an image script whose interpreter is "the current process": the exec'd shim re-runs itself
  writeFileSync(join(e.rootfs, 'bin', 'evil'), '#!/proc/self/exe\n', { mode: 0o755 });
  const st = await startContainer(e.opts(['sleep', '30']));
  const exe = readlinkSync(`/proc/${st.shimPid}/exe`);
  assert.match(exe, /^\/memfd:shoal-shim/, `the monitor runs from ${exe}`);
  assert.throws(() => openSync(`/proc/${st.shimPid}/exe`, 'r+'), /ETXTBSY|EPERM|EACCES/);
  assert.equal(readFileSync(`/proc/${st.shimPid}/comm`, 'utf8').trim(), 'shoal-shim');
  const r = await execInContainer(e.stateDir, ['/bin/evil'], { timeoutMs: 5000 });
  assert.notEqual(r.exitCode, 0);
  // an exec'd command is non-dumpable until its execve: as container root, try to open every process's exe
  const w = await execInContainer(e.stateDir, ['sh', '-c', 'for p in /proc/[0-9]*; do (echo x >> $p/exe) 2>/dev/null && echo "wrote $p"; done; echo done'], {
    timeoutMs: 5000,
  });
  assert.equal(w.stdout.toString().trim(), 'done', w.stdout.toString());
  assert.equal(hash(), before, 'the host binary is unchanged');
  await stopContainer(e.stateDir, 1000);
});

test('/proc/sys and a --read-only root are not writable; mounts placed into it stay writable', { skip }, async (t) => {
  const e = setup(t);
  applets(e, ['touch']);
  await run(
    e,
    'echo 1 > /proc/sys/net/ipv4/ip_forward 2>/dev/null && echo sys-writable || echo sys-ro; touch /newfile 2>&1 | head -n 1; touch /data/f && echo data-ok; touch /dev/shm/f && echo shm-ok',
    {
      readOnly: true,
      mounts: [{ type: 'tmpfs', target: '/data' }],
    },
  );
  const out = e.stdout();
  assert.ok(out.includes('sys-ro'), out.join('\n'));
  assert.ok(
    out.some((l) => /Read-only file system/.test(l)),
    out.join('\n'),
  );
  assert.ok(out.includes('data-ok') && out.includes('shm-ok'), out.join('\n'));
});

test('capabilities: drop ALL makes chown fail; add NET_ADMIN allows creating a link; exec gets the same set', { skip }, async (t) => {
  const e = setup(t);
  applets(e, ['chown']);
  await run(e, 'touch /tmp/f; chown 1 /tmp/f 2>&1 | head -n 1; grep CapEff /proc/self/status', { caps: effectiveCapabilities([], ['ALL']) });
  assert.ok(
    e.stdout().some((l) => /Operation not permitted/.test(l)),
    e.stdout().join('\n'),
  );
  assert.ok(e.stdout().includes('CapEff:\t0000000000000000'), e.stdout().join('\n'));

  const n = setup(t);
  await run(n, 'ip link add v0 type veth peer name v1 2>&1 && echo link-ok');
  assert.ok(!n.stdout().includes('link-ok'), 'without NET_ADMIN: ' + n.stdout().join('\n'));
  const a = setup(t);
  await startContainer(a.opts(['sleep', '30'], { caps: effectiveCapabilities(['NET_ADMIN']) }));
  const r = await execInContainer(a.stateDir, ['sh', '-c', 'ip link add v0 type veth peer name v1 && echo link-ok'], { timeoutMs: 5000 });
  assert.equal(r.stdout.toString().trim(), 'link-ok', r.stderr.toString());
  await stopContainer(a.stateDir, 1000);
});

test('sysctl and ulimit: applied inside the container (and to exec); a host-wide sysctl is refused at validation', { skip }, async (t) => {
  const e = setup(t);
  const hostForward = readFileSync('/proc/sys/net/ipv4/ip_forward', 'utf8');
  await startContainer(e.opts(['sleep', '30'], { sysctls: { 'net.ipv4.ip_forward': '1' }, ulimits: { nofile: { soft: 1024, hard: 2048 } } }));
  const r = await execInContainer(
    e.stateDir,
    ['sh', '-c', 'cat /proc/sys/net/ipv4/ip_forward; grep "open files" /proc/self/limits; grep "open files" /proc/1/limits'],
    { timeoutMs: 5000 },
  );
  const lines = r.stdout.toString().trim().split('\n');
  assert.equal(lines[0], '1');
  for (const l of lines.slice(1)) assert.match(l, /^Max open files\s+1024\s+2048\s+files/);
  await stopContainer(e.stateDir, 1000);
  assert.equal(readFileSync('/proc/sys/net/ipv4/ip_forward', 'utf8'), hostForward, "the host's own setting is untouched");

  assert.throws(
    () => checkSysctl('kernel.panic', '1', 'f'),
    (err: unknown) => err instanceof ConfinementError && /kernel\.panic is not namespaced/.test(err.message),
  );
  assert.throws(
    () => validateServiceSpec({ name: 's', task: { image: 'busybox', sysctls: { 'kernel.panic': '1' } } }),
    /task\.sysctls\["kernel\.panic"\].*not namespaced/,
  );
  const ok = validateServiceSpec({
    name: 's',
    task: { image: 'busybox', sysctls: { 'net.ipv4.ip_forward': '1' }, capabilityAdd: ['net_admin'], ulimits: [{ name: 'nofile', soft: 1024, hard: 2048 }] },
  });
  assert.deepEqual(ok.task.capabilityAdd, ['CAP_NET_ADMIN']);
});

test('--init: PID 1 is a reaper, orphans do not stay zombies, the exit status comes through', { skip }, async (t) => {
  const e = setup(t);
  const st = await run(e, 'cat /proc/1/comm; echo "me=$$"; sh -c "sleep 0.1 &"; sleep 0.5; grep -l "^State:.*Z" /proc/[0-9]*/status | wc -l; exit 3', {
    init: true,
  });
  assert.deepEqual(e.stdout(), ['shoal-shim', 'me=2', '0']);
  assert.equal(st.exitCode, 3);
  // a stop request reaches the command through the reaper
  const s = setup(t);
  await startContainer(s.opts(['sh', '-c', 'trap "echo got-term; exit 0" TERM; echo trapped; while :; do sleep 0.05; done'], { init: true }));
  // Running means the command was exec'd, not that sh has set its trap yet: wait for it to say so.
  const t0 = Date.now();
  while (!s.stdout().includes('trapped') && Date.now() - t0 < 5000) await new Promise((r) => setTimeout(r, 10));
  assert.ok(s.stdout().includes('trapped'), 'the trap is set');
  const fin = await stopContainer(s.stateDir, 5000);
  assert.equal(fin.exitCode, 0);
  assert.ok(s.stdout().includes('got-term'), s.stdout().join('\n'));
});

test("the image's /etc/passwd as a FIFO, a symlink to /dev/zero or out of the root: refused quickly", { skip }, async (t) => {
  const e = setup(t);
  const pw = join(e.rootfs, 'etc', 'passwd');
  /** Refused at once (a blocking open or an endless read would never return). */
  const refusedQuickly = (user: string, re: RegExp) => {
    const t0 = Date.now();
    assert.throws(
      () => resolveUser(e.rootfs, user),
      (err: unknown) => err instanceof UserLookupError && re.test(err.message),
    );
    assert.ok(Date.now() - t0 < 500, `refused after ${Date.now() - t0} ms`);
  };
  // a FIFO: opening it on the host would block the daemon
  execFileSync('rm', ['-f', pw]);
  execFileSync('mkfifo', [pw]);
  refusedQuickly('app', /not a regular file/);
  // a symlink to /dev/zero: reading it would never end
  execFileSync('rm', ['-f', pw]);
  symlinkSync('/dev/zero', pw);
  refusedQuickly('app', /symbolic link/);
  // /etc a symlink climbing out of the root towards the host's /etc: resolved inside the root, where
  // ".." stops at the root and the link names itself again; never the host's root user
  execFileSync('rm', ['-rf', join(e.rootfs, 'etc')]);
  symlinkSync('../../../../../../../../etc', join(e.rootfs, 'etc'));
  refusedQuickly('root', /symbolic links|not found/);
  execFileSync('rm', ['-f', join(e.rootfs, 'etc')]);
  mkdirSync(join(e.rootfs, 'real'));
  writeFileSync(join(e.rootfs, 'real', 'passwd'), 'root:x:4242:4243::/:/bin/sh\n');
  symlinkSync('/../../../real', join(e.rootfs, 'etc'));
  assert.deepEqual(resolveUser(e.rootfs, 'root'), { uid: 4242, gid: 4243 }, 'an absolute link is taken inside the root');
  // too big
  execFileSync('rm', ['-f', join(e.rootfs, 'etc')]);
  mkdirSync(join(e.rootfs, 'etc'));
  writeFileSync(join(e.rootfs, 'etc', 'passwd'), 'x'.repeat(2 * 1024 * 1024));
  assert.throws(() => resolveUser(e.rootfs, 'app'), /over the 1048576-byte limit/);
  writeFileSync(join(e.rootfs, 'etc', 'passwd'), 'app:x:1000:1001::/home/app:/bin/sh\n');
  assert.deepEqual(resolveUser(e.rootfs, 'app'), { uid: 1000, gid: 1001 });
});

test('exec output is capped per stream, and the command is not blocked by it', { skip }, async (t) => {
  const e = setup(t);
  await startContainer(e.opts(['sleep', '30']));
  const r = await execInContainer(e.stateDir, ['sh', '-c', 'head -c 300000 /dev/zero; echo done >&2'], { timeoutMs: 10_000, maxOutputBytes: 1000 });
  assert.equal(r.exitCode, 0);
  assert.equal(r.stdout.length, 1000);
  assert.equal(r.truncated, true);
  assert.equal(r.stderr.toString().trim(), 'done');
  assert.equal(readState(e.stateDir)?.status, 'running');
  await stopContainer(e.stateDir, 1000);
});

test('compose: cap_add, cap_drop, init, read_only, sysctls and ulimits become the task template, validated', () => {
  const project = loadMemory(
    {
      '/app/a.yml': [
        'services:',
        '  web:',
        '    image: busybox',
        '    cap_add: [NET_ADMIN]',
        '    cap_drop: [ALL]',
        '    init: true',
        '    read_only: true',
        '    sysctls: {net.ipv4.ip_forward: "1"}',
        '    ulimits: {nproc: 65535, nofile: {soft: 1024, hard: 2048}}',
        '',
      ].join('\n'),
    },
    ['a.yml'],
  );
  const stack = convertStack(project, 'st');
  assert.deepEqual(stack.warnings, []);
  const spec = validateServiceSpec(stack.services[0]!.spec);
  assert.deepEqual(spec.task.capabilityAdd, ['CAP_NET_ADMIN']);
  assert.deepEqual(spec.task.capabilityDrop, ['ALL']);
  assert.equal(spec.task.init, true);
  assert.equal(spec.task.readOnly, true);
  assert.deepEqual(spec.task.sysctls, { 'net.ipv4.ip_forward': '1' });
  assert.deepEqual(spec.task.ulimits, [
    { name: 'nofile', soft: 1024, hard: 2048 },
    { name: 'nproc', soft: 65535, hard: 65535 },
  ]);
  assert.deepEqual(effectiveCapabilities(spec.task.capabilityAdd, spec.task.capabilityDrop), [12]);
});

test('engine: a task whose image has a FIFO /etc/passwd and USER app is rejected at once; the event loop keeps running', { skip }, async (t) => {
  const e = setup(t);
  const pw = join(e.rootfs, 'etc', 'passwd');
  execFileSync('rm', ['-f', pw]);
  execFileSync('mkfifo', [pw]);
  const images: ImageResolver = {
    resolve: (ref) => (ref === 'evil:1' ? { layers: [e.rootfs], config: { User: 'app', Cmd: ['sleep', '30'] } } : undefined),
    mountRootfs: (l, u, w, target) => mountRootfs(l, u, w, target),
    unmountRootfs: (target) => unmountRootfs(target),
  };
  const ex = new EngineExecutor({ root: join(e.dir, 'tasks'), images, cgroupParent: PARENT, pollMs: 50 });
  t.after(async () => {
    ex.reconcile([]);
    await ex.close();
    await TaskCgroup.cleanupParent(PARENT).catch(() => {});
  });
  const updates: TaskStatusUpdate[] = [];
  ex.onStatus((u) => updates.push(u));
  let ticks = 0;
  const ticker = setInterval(() => ticks++, 10);
  t.after(() => clearInterval(ticker));
  const t0 = Date.now();
  ex.reconcile([{ id: 'fifo-task', serviceId: 's', serviceName: 's', desiredState: 'running', state: 'assigned', spec: { image: 'evil:1' } }]);
  while (!updates.some((u) => u.state === 'rejected') && Date.now() - t0 < 10_000) await new Promise((r) => setTimeout(r, 20));
  const rejected = updates.find((u) => u.state === 'rejected');
  assert.ok(rejected, `states: ${updates.map((u) => u.state).join(',')}`);
  assert.match(rejected.err ?? '', /\/etc\/passwd is not a regular file/);
  assert.ok(ticks > 0, 'timers ran meanwhile: the daemon did not block');
});

test('CLI: the confinement flags as Docker spells them, for create and update', () => {
  const { spec } = parseServiceCreateArgs([
    '--cap-add',
    'NET_ADMIN',
    '--cap-drop',
    'ALL',
    '--read-only',
    '--init',
    '--sysctl',
    'net.ipv4.ip_forward=1',
    '--ulimit',
    'nofile=1024:2048',
    '--security-opt',
    'seccomp=unconfined',
    '--security-opt',
    'no-new-privileges',
    'busybox',
  ]);
  const v = validateServiceSpec({ ...spec, name: 'c' });
  assert.deepEqual([v.task.capabilityAdd, v.task.capabilityDrop, v.task.readOnly, v.task.init], [['CAP_NET_ADMIN'], ['ALL'], true, true]);
  assert.deepEqual(v.task.sysctls, { 'net.ipv4.ip_forward': '1' });
  assert.deepEqual(v.task.ulimits, [{ name: 'nofile', soft: 1024, hard: 2048 }]);
  assert.deepEqual(v.task.seccomp, { mode: 'unconfined' });
  assert.throws(() => parseServiceCreateArgs(['--security-opt', 'no-new-privileges=false', 'busybox']), /always runs containers with no_new_privs/);
  const u = parseServiceUpdateArgs(['--cap-drop', 'NET_ADMIN', '--read-only=false', '--sysctl-rm', 'net.ipv4.ip_forward', '--ulimit-add', 'nproc=100', 'c'], v);
  const w = validateServiceSpec(u.spec);
  assert.equal(w.task.capabilityAdd, undefined, '--cap-drop takes the capability off the add list');
  assert.deepEqual(w.task.capabilityDrop, ['ALL', 'CAP_NET_ADMIN']);
  assert.equal(w.task.readOnly, undefined);
  assert.equal(w.task.sysctls, undefined);
  assert.deepEqual(w.task.ulimits, [
    { name: 'nofile', soft: 1024, hard: 2048 },
    { name: 'nproc', soft: 100, hard: 100 },
  ]);
});
