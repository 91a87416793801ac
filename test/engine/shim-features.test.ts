// shoal-shim features beyond a plain container: `exec` into a running container, --mount, --netns /
// --net host, and the clone/clone3 rules of the seccomp filter. Real containers; needs root and gcc.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { TaskCgroup } from '../../worker/engine/cgroups.ts';
import { DEFAULT_SHIM_PATH, execInContainer, startContainer, stopContainer, waitExited } from '../../worker/engine/shim.ts';
import { run, setup, skip, sleep, type Env } from './shim-env.ts';

const CG_PARENT = `shoal-eng-${process.pid}`;
const NETNS = `shoal-eng-${process.pid}`;
after(async () => {
  await TaskCgroup.cleanupParent(CG_PARENT).catch(() => {});
  spawnSync('ip', ['netns', 'del', NETNS], { stdio: 'ignore' });
});

/** Starts `sh -c script` and waits until it printed "ready". */
async function startReady(e: Env, script: string, extra: Parameters<Env['opts']>[1] = {}) {
  const s = await startContainer(e.opts(['sh', '-c', `${script}; echo ready; while true; do sleep 0.05; done`], extra));
  const end = Date.now() + 5000;
  while (!e.stdout().includes('ready')) {
    if (Date.now() > end) throw new Error(`container never got ready: ${JSON.stringify(e.log())}`);
    await sleep(10);
  }
  return s;
}

const text = (b: Buffer) => b.toString('utf8');

test('exec runs in the container: its namespaces, cgroups, environment, working directory and hardening', { skip }, async (t) => {
  const e = setup(t);
  const cg = await TaskCgroup.create({ parent: CG_PARENT, id: 'exec' });
  mkdirSync(join(e.rootfs, 'srv'));
  await startReady(e, 'true', { hostname: 'box-exec', env: { FROM_IMAGE: 'img', KEEP: 'container' }, workdir: '/srv', cgroups: cg.paths() });
  const r = await execInContainer(
    e.stateDir,
    [
      'sh',
      '-c',
      'hostname; echo "$FROM_IMAGE|$KEEP|$EXTRA"; pwd; ps -o pid,comm | grep -c sleep >/dev/null && echo sees-pid1; cat /proc/1/cmdline | tr "\\0" " "; echo; [ "$(cat /proc/self/cgroup)" = "$(cat /proc/1/cgroup)" ] && echo same-cgroups; grep -E "^(CapEff|NoNewPrivs|Seccomp):" /proc/self/status; echo err >&2',
    ],
    {
      env: { EXTRA: 'x', KEEP: 'exec' },
    },
  );
  assert.equal(r.exitCode, 0, text(r.stderr));
  assert.deepEqual(text(r.stdout).trim().split('\n'), [
    'box-exec',
    'img|exec|x',
    '/srv',
    'sees-pid1',
    'sh -c true; echo ready; while true; do sleep 0.05; done ',
    'same-cgroups',
    'CapEff:\t00000000a80425fb',
    'NoNewPrivs:\t1',
    'Seccomp:\t2',
  ]);
  assert.equal(text(r.stderr), 'err\n');
  // as the host sees it: the exec shim and its command are in every cgroup of the task
  // (The command lives 5 s and the check waits up to 4.5 s for it: under load an exec can take over a
  // second to start, and a 2 s command checked for 1.5 s failed once at load 8.)
  const pending = execInContainer(e.stateDir, ['sleep', '5']);
  const procsOf = (dir: string) => readFileSync(join(dir, 'cgroup.procs'), 'utf8').trim().split('\n');
  for (const end = Date.now() + 4500; cg.paths().some((d) => procsOf(d).length < 3) && Date.now() < end; ) await sleep(10);
  for (const dir of cg.paths()) {
    const procs = procsOf(dir);
    assert.ok(procs.length >= 3, `${dir} holds PID 1, the exec shim and its command: ${procs.join(',')}`);
  }
  assert.equal((await pending).exitCode, 0);
  const other = await execInContainer(e.stateDir, ['sh', '-c', 'id; pwd'], { user: { uid: 65534, gid: 65534 }, workdir: '/tmp' });
  assert.match(text(other.stdout), /^uid=65534\(nobody\) gid=65534\(nogroup\)\n\/tmp\n$/);
});

test('exec: stdin, exit codes, and the errors of docker exec (125 not running, 126 not executable, 127 not found)', { skip }, async (t) => {
  const e = setup(t);
  await startReady(e, 'true');
  const cat = await execInContainer(e.stateDir, ['sh', '-c', 'tr a-z A-Z'], { input: 'hello\n' });
  assert.deepEqual([cat.exitCode, text(cat.stdout)], [0, 'HELLO\n']);
  assert.equal((await execInContainer(e.stateDir, ['sh', '-c', 'exit 7'])).exitCode, 7);
  assert.equal((await execInContainer(e.stateDir, ['sh', '-c', 'kill -9 $$'])).exitCode, 137);
  const nf = await execInContainer(e.stateDir, ['no-such-cmd']);
  assert.equal(nf.exitCode, 127);
  assert.match(text(nf.stderr), /^shoal-shim exec: exec no-such-cmd: No such file or directory/);
  const nx = await execInContainer(e.stateDir, ['/etc/passwd']);
  assert.equal(nx.exitCode, 126);
  assert.match(text(nx.stderr), /exec \/etc\/passwd: Permission denied/);
  const wd = await execInContainer(e.stateDir, ['true'], { workdir: '/nope' });
  assert.equal(wd.exitCode, 125);
  assert.match(text(wd.stderr), /chdir \/nope: No such file or directory/);
  await stopContainer(e.stateDir, 100);
  const gone = await execInContainer(e.stateDir, ['true']);
  assert.equal(gone.exitCode, 125);
  assert.match(text(gone.stderr), /container is not running/);
  const usage = spawnSync(DEFAULT_SHIM_PATH, ['exec', '--state-dir', e.stateDir, '--rootfs', '/', '--', 'true'], { encoding: 'utf8' });
  assert.equal(usage.status, 125, 'container-only options are refused in exec mode');
});

test('exec timeout kills the command and everything it started', { skip }, async (t) => {
  const e = setup(t);
  await startReady(e, 'true');
  const t0 = Date.now();
  const r = await execInContainer(e.stateDir, ['sh', '-c', 'sleep 30 & sleep 31; echo never'], { timeoutMs: 300 });
  assert.ok(Date.now() - t0 < 3000, `took ${Date.now() - t0} ms`);
  assert.equal(r.timedOut, true);
  assert.equal(r.exitCode, 137);
  let ps = await execInContainer(e.stateDir, ['ps', '-o', 'args']);
  for (const end = Date.now() + 2000; /sleep 3[01]/.test(text(ps.stdout)) && Date.now() < end; ) {
    await sleep(20); // SIGKILL to the group is sent; the processes are reaped asynchronously
    ps = await execInContainer(e.stateDir, ['ps', '-o', 'args']);
  }
  assert.doesNotMatch(text(ps.stdout), /sleep 3[01]/, 'the background sleep went with its group');
});

test('mounts: bind read-write and read-only, a single file, tmpfs with a size limit', { skip }, async (t) => {
  const e = setup(t);
  const rw = join(e.dir, 'rw');
  const ro = join(e.dir, 'ro');
  mkdirSync(rw);
  mkdirSync(ro);
  writeFileSync(join(ro, 'inside'), 'from-host\n');
  writeFileSync(join(e.dir, 'conf'), 'nameserver 10.0.0.53\n');
  const st = await run(
    e,
    'echo written > /data/rw/file; cat /data/ro/inside; touch /data/ro/x 2>&1; cat /etc/resolv.conf; dd if=/dev/zero of=/scratch/f bs=1024 count=600 2>/dev/null; echo dd1=$?; dd if=/dev/zero of=/scratch/g bs=1024 count=600 2>/dev/null; echo dd2=$?; grep " /scratch " /proc/mounts',
    {
      mounts: [
        { type: 'bind', source: rw, target: '/data/rw' },
        { type: 'bind', source: ro, target: '/data/ro', readOnly: true },
        { type: 'bind', source: join(e.dir, 'conf'), target: '/etc/resolv.conf', readOnly: true },
        { type: 'tmpfs', target: '/scratch', sizeBytes: 1024 * 1024 },
      ],
    },
  );
  assert.equal(st.exitCode, 0);
  assert.equal(readFileSync(join(rw, 'file'), 'utf8'), 'written\n');
  const out = e.stdout();
  assert.equal(out[0], 'from-host');
  assert.match(out[1] ?? '', /touch: \/data\/ro\/x: Read-only file system/);
  assert.equal(out[2], 'nameserver 10.0.0.53');
  assert.deepEqual(out.slice(3, 5), ['dd1=0', 'dd2=1'], 'the second 600 KiB do not fit in 1 MiB');
  assert.match(out[5] ?? '', /^tmpfs \/scratch tmpfs rw,nosuid,nodev,noexec,.*size=1024k/);
  assert.ok(!existsSync(join(ro, 'x')));
  assert.ok(existsSync(join(e.rootfs, 'etc', 'resolv.conf')), 'the missing target file was created in the rootfs');
});

test('mounts: targets resolve inside the rootfs, so a symlink in the image cannot reach the host', { skip }, async (t) => {
  const e = setup(t);
  const hostSide = join(e.dir, 'hostside');
  mkdirSync(hostSide);
  writeFileSync(join(e.dir, 'conf'), 'nameserver 10.0.0.53\n');
  // an image with links to absolute host paths: followed on the host, the mounts would create things there
  symlinkSync(hostSide, join(e.rootfs, 'escape'));
  symlinkSync('../../..' + hostSide, join(e.rootfs, 'etc', 'up'));
  // and a dangling relative link, as some images have for /etc/resolv.conf
  symlinkSync('../run/resolvconf/resolv.conf', join(e.rootfs, 'etc', 'resolv.conf'));
  // /proc/mounts shows where the mounts really are: at the links' targets, inside the container
  const st = await run(e, `grep -E -c " (${hostSide}/created|${hostSide}/file|/run/resolvconf/resolv.conf) " /proc/mounts; cat /etc/resolv.conf`, {
    mounts: [
      { type: 'tmpfs', target: '/escape/created' },
      { type: 'bind', source: join(e.dir, 'conf'), target: '/etc/up/file' },
      { type: 'bind', source: join(e.dir, 'conf'), target: '/etc/resolv.conf', readOnly: true },
    ],
  });
  assert.equal(st.exitCode, 0, JSON.stringify(e.log()));
  assert.deepEqual(e.stdout(), ['3', 'nameserver 10.0.0.53']);
  assert.deepEqual(readdirSync(hostSide), [], 'nothing was created on the host');
  assert.ok(existsSync(join(e.rootfs, hostSide, 'created')), 'the links were resolved inside the rootfs');
  assert.ok(existsSync(join(e.rootfs, hostSide, 'file')));
  assert.ok(existsSync(join(e.rootfs, 'run', 'resolvconf', 'resolv.conf')), 'the dangling link got its target');
});

test('mounts: bad specs and missing sources are refused before the container starts', { skip }, async (t) => {
  const e = setup(t);
  await assert.rejects(
    startContainer(e.opts(['true'], { mounts: [{ type: 'bind', source: join(e.dir, 'missing'), target: '/x' }] })),
    /bind source .*missing: No such file or directory/,
  );
  for (const bad of ['bind,/tmp,relative', 'bind,/tmp,/a/../b', 'bind,/tmp,/', 'tmpfs,/src,/x', 'tmpfs,,/x,size=abc', 'nfs,/a,/b', 'bind,/tmp,/x,exec']) {
    const r = spawnSync(DEFAULT_SHIM_PATH, ['--state-dir', e.stateDir, '--rootfs', e.rootfs, '--mount', bad, '--', 'true'], { encoding: 'utf8' });
    assert.equal(r.status, 2, `${bad}: ${r.stderr}`);
    assert.match(r.stderr, /--mount/, bad);
  }
});

test('network: --netns joins a prepared namespace (exec too), --net host stays on the host', { skip }, async (t) => {
  const e = setup(t);
  execFileSync('ip', ['netns', 'add', NETNS]);
  execFileSync('ip', ['-n', NETNS, 'link', 'add', 'shoal-eng-v0', 'type', 'veth', 'peer', 'name', 'shoal-eng-v1']);
  await startReady(e, 'ip -o link show | cut -d: -f2', { netnsPath: `/run/netns/${NETNS}` });
  const links = e
    .stdout()
    .filter((l) => l !== 'ready')
    .map((l) => l.trim());
  assert.deepEqual(links.sort(), ['lo', 'shoal-eng-v0@shoal-eng-v1', 'shoal-eng-v1@shoal-eng-v0']);
  const ex = await execInContainer(e.stateDir, ['ip', '-o', 'link', 'show', 'shoal-eng-v0']);
  assert.equal(ex.exitCode, 0, text(ex.stderr));
  await stopContainer(e.stateDir, 100);

  const h = setup(t);
  await run(h, 'ls /sys/class/net');
  const hostLinks = readdirSync('/sys/class/net').sort();
  const h2 = setup(t);
  await run(h2, 'ls /sys/class/net', { hostNetwork: true });
  assert.deepEqual(h2.stdout().sort(), hostLinks);
  assert.deepEqual(h.stdout(), ['lo'], 'without options: a fresh namespace');

  await assert.rejects(startContainer(h.opts(['true'], { netnsPath: '/run/netns/shoal-eng-none' })), /netns \/run\/netns\/shoal-eng-none: No such file/);
  await assert.rejects(startContainer(h.opts(['true'], { netnsPath: '/proc/self/ns/uts' })), /not a network namespace/);
});

test('seccomp: clone with namespace flags fails with EPERM, clone3 with ENOSYS; plain fork works', { skip }, async (t) => {
  const e = setup(t);
  const src = join(e.dir, 'nsprobe.c');
  writeFileSync(
    src,
    `#define _GNU_SOURCE
#include <errno.h>
#include <linux/sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
static void report(const char *name, long r) {
  if (r == 0) _exit(0);
  if (r > 0) { waitpid((pid_t)r, NULL, 0); printf("%s=ok\\n", name); }
  else printf("%s=%s\\n", name, strerror(errno));
}
int main(void) {
  report("clone", syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0));
  report("clone-newuser", syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0));
  report("clone-newnet", syscall(SYS_clone, CLONE_NEWNET | SIGCHLD, 0, 0, 0, 0));
  struct clone_args ca = {.exit_signal = SIGCHLD};
  report("clone3", syscall(SYS_clone3, &ca, sizeof ca));
  report("fork", fork());
  return 0;
}
`,
  );
  execFileSync('gcc', ['-static', '-O2', '-o', join(e.rootfs, 'bin', 'nsprobe'), src]);
  await run(e, 'nsprobe; unshare -U true 2>/dev/null; echo unshare=$?');
  assert.deepEqual(e.stdout(), [
    'clone=ok',
    'clone-newuser=Operation not permitted',
    'clone-newnet=Operation not permitted',
    'clone3=Function not implemented',
    'fork=ok',
    'unshare=1',
  ]);
  const u = setup(t);
  execFileSync('gcc', ['-static', '-O2', '-o', join(u.rootfs, 'bin', 'nsprobe'), src]);
  await startContainer(u.opts(['nsprobe'], { seccomp: false }));
  await waitExited(u.stateDir);
  assert.deepEqual(u.stdout().slice(0, 2), ['clone=ok', 'clone-newuser=ok'], 'without the filter a user namespace can be created');
});
