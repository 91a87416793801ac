// shoal-shim runs real containers here: namespaces, pivot_root, capabilities, logs, stop and OOM
// handling, and survival of the agent's death. Needs root and gcc (skips only when gcc is missing).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { isAlive, readState, startContainer, stopContainer, waitExited } from '../../worker/engine/shim.ts';
import { gone, run, setup, skip, sleep } from './shim-env.ts';

test('PID 1 inside the container is the command', { skip }, async (t) => {
  const e = setup(t);
  const st = await run(e, 'echo $$');
  assert.equal(st.status, 'exited');
  assert.equal(st.exitCode, 0);
  assert.deepEqual(e.stdout(), ['1']);
});

test('hostname, env, workdir and root filesystem are as given', { skip }, async (t) => {
  const e = setup(t);
  writeFileSync(join(e.rootfs, 'marker-7f3a'), 'inside\n');
  mkdirSync(join(e.rootfs, 'srv', 'app'), { recursive: true });
  process.env['HOST_ONLY_VAR'] = '1';
  t.after(() => delete process.env['HOST_ONLY_VAR']);
  const st = await run(e, 'hostname; echo "$FOO|$BAR"; pwd; cat /marker-7f3a; echo "$PATH"; env | grep -c HOST_ONLY_VAR', {
    hostname: 'box-42',
    env: { FOO: 'hello world', BAR: 'x=y' },
    workdir: '/srv/app',
  });
  assert.equal(st.exitCode, 1, 'grep -c finds no host variable and exits 1');
  assert.deepEqual(e.stdout(), ['box-42', 'hello world|x=y', '/srv/app', 'inside', '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', '0']);
});

test('runs as the given user (nobody) with no effective capabilities', { skip }, async (t) => {
  const e = setup(t);
  const st = await run(e, 'id -u; id -g; grep CapEff /proc/self/status', { user: { uid: 65534, gid: 65534 } });
  assert.equal(st.exitCode, 0);
  assert.deepEqual(e.stdout(), ['65534', '65534', 'CapEff:\t0000000000000000']);
});

test('root gets exactly Docker default capabilities, no_new_privs, and a bounded set', { skip }, async (t) => {
  const e = setup(t);
  await run(e, 'grep -E "^(CapEff|CapPrm|CapBnd|NoNewPrivs)" /proc/self/status');
  assert.deepEqual(e.stdout(), ['CapPrm:\t00000000a80425fb', 'CapEff:\t00000000a80425fb', 'CapBnd:\t00000000a80425fb', 'NoNewPrivs:\t1']);
});

test('seccomp: the default filter is installed and denies namespace and mount syscalls with EPERM', { skip }, async (t) => {
  const e = setup(t);
  // unshare -U needs no capability, so only the filter can refuse it; mount is refused as well
  // (busybox mount words EPERM as "permission denied (are you root?)")
  const st = await run(
    e,
    'grep "^Seccomp:" /proc/self/status; unshare -U true 2>&1; echo "unshare=$?"; mount -t tmpfs x /tmp 2>&1; echo "mount=$?"; echo still-works',
  );
  assert.equal(st.exitCode, 0);
  const out = e.stdout();
  assert.equal(out[0], 'Seccomp:\t2');
  assert.ok(
    out.some((l) => /unshare.*Operation not permitted/.test(l)),
    out.join('\n'),
  );
  assert.ok(out.includes('unshare=1'), out.join('\n'));
  assert.ok(
    out.some((l) => /mount.*(Operation not permitted|permission denied)/.test(l)),
    out.join('\n'),
  );
  assert.ok(!out.includes('mount=0'), out.join('\n'));
  assert.equal(out[out.length - 1], 'still-works');
});

test('seccomp: --no-seccomp leaves the container unfiltered', { skip }, async (t) => {
  const e = setup(t);
  const st = await run(e, 'grep "^Seccomp:" /proc/self/status; unshare -U true; echo "unshare=$?"', { seccomp: false });
  assert.equal(st.exitCode, 0);
  assert.deepEqual(e.stdout(), ['Seccomp:\t0', 'unshare=0']);
});

test('host processes are invisible and /proc/sys is read-only', { skip }, async (t) => {
  const e = setup(t);
  await run(e, 'ps; echo x > /proc/sys/kernel/hostname && echo writable || echo ro');
  const out = e.stdout();
  assert.ok(out.includes('ro'), `expected /proc/sys read-only, got ${JSON.stringify(out)}`);
  const procs = out.filter((l) => /^\s*\d+\s/.test(l));
  assert.ok(procs.length >= 1 && procs.length <= 2, `ps should only see the container: ${JSON.stringify(procs)}`);
  assert.match(procs[0] ?? '', /^\s*1\s/);
});

test('device nodes, masked paths and loopback', { skip }, async (t) => {
  const e = setup(t);
  await run(e, 'ls /dev; cat /proc/keys; echo "keys:$?"; ls /sys/firmware; echo fw; ip -o link show; head -c 4 /dev/zero | grep -c ""');
  const out = e.stdout();
  for (const d of ['null', 'zero', 'full', 'random', 'urandom', 'tty', 'pts', 'shm', 'ptmx'])
    assert.ok(out.includes(d), `/dev/${d} missing: ${JSON.stringify(out)}`);
  assert.ok(out.includes('keys:0'), 'masked /proc/keys reads as empty');
  const fwIdx = out.indexOf('fw');
  assert.equal(out[fwIdx - 1], 'keys:0', '/sys/firmware is empty');
  const links = out.filter((l) => /^\d+: /.test(l));
  assert.equal(links.length, 1, `only loopback: ${JSON.stringify(links)}`);
  assert.match(links[0] ?? '', /^1: lo: <LOOPBACK,UP/);
});

test('exit codes are propagated', { skip }, async (t) => {
  const e = setup(t);
  const st = await run(e, 'exit 3');
  assert.equal(st.status, 'exited');
  assert.equal(st.exitCode, 3);
  assert.equal(st.signal, null);
  assert.equal(st.oomKilled, false);
  assert.ok(st.startedAt && st.finishedAt);
});

test('start failures are reported clearly', { skip }, async (t) => {
  const e = setup(t);
  await assert.rejects(startContainer({ ...e.opts(['sh']), rootfs: join(e.dir, 'nope') }), /rootfs .*nope: No such file/);
  await assert.rejects(startContainer(e.opts(['no-such-binary'])), /container failed to start: exec no-such-binary: No such file/);
  await assert.rejects(startContainer(e.opts(['sh'], { workdir: '/missing' })), /chdir workdir \/missing/);
});

test('stop: a cooperative command exits on SIGTERM', { skip }, async (t) => {
  const e = setup(t);
  const s = await startContainer(e.opts(['sh', '-c', 'trap "echo bye; exit 0" TERM; echo ready; while true; do sleep 0.05; done']));
  assert.equal(s.state.status, 'running');
  assert.ok(isAlive(e.stateDir));
  while (!e.stdout().includes('ready')) await sleep(10);
  const t0 = Date.now();
  const st = await stopContainer(e.stateDir, 5000);
  assert.ok(Date.now() - t0 < 3000);
  assert.equal(st.exitCode, 0);
  assert.ok(e.stdout().includes('bye'));
  while (isAlive(e.stateDir)) await sleep(10);
});

test('stop: a command ignoring SIGTERM is killed after the grace period', { skip }, async (t) => {
  const e = setup(t);
  await startContainer(e.opts(['sh', '-c', 'trap "" TERM; echo ready; while true; do sleep 0.05; done']));
  while (!e.stdout().includes('ready')) await sleep(10);
  const t0 = Date.now();
  const st = await stopContainer(e.stateDir, 600);
  const took = Date.now() - t0;
  assert.ok(took >= 550, `killed too early (${took}ms)`);
  assert.ok(took < 4000, `killed too late (${took}ms)`);
  assert.equal(st.signal, 9);
  assert.equal(st.exitCode, 137);
  assert.equal(st.oomKilled, false);
});

test('logs are JSON lines per stream and rotate when large', { skip }, async (t) => {
  const e = setup(t);
  const st = await run(
    e,
    'echo "out \\"q\\" \\\\ tab\tend"; echo err >&2; i=0; while [ $i -lt 400 ]; do echo "line $i padding-padding-padding"; i=$((i+1)); done; printf "no-newline"',
    {
      logMaxBytes: 8192,
    },
  );
  assert.equal(st.exitCode, 0);
  const cur = readFileSync(join(e.stateDir, 'container.log'), 'utf8');
  const old = readFileSync(join(e.stateDir, 'container.log.1'), 'utf8');
  assert.ok(cur.length <= 8192 && old.length <= 8192, `sizes ${cur.length} ${old.length}`);
  assert.ok(!existsSync(join(e.stateDir, 'container.log.2')));
  const entries = e.log();
  for (const x of entries) assert.match(x.t, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  // stdout and stderr are separate pipes: no ordering between them, so look at stdout only
  const outs = entries.filter((x) => x.s === 'stdout');
  assert.equal(outs.at(-1)?.l, 'no-newline');
  assert.equal(outs.at(-2)?.l, 'line 399 padding-padding-padding');
  // the first lines were rotated away; a small log keeps everything, including escapes and stderr
  const e2 = setup(t);
  await run(e2, 'echo "out \\"q\\" \\\\ tab\tend"; echo err >&2');
  const all = e2.log();
  assert.deepEqual(all.map((x) => [x.s, x.l]).sort(), [
    ['stderr', 'err'],
    ['stdout', 'out "q" \\ tab\tend'],
  ]);
});

test('joins the given cgroups before exec and reports OOM kills', { skip }, async (t) => {
  const name = `shoal-shim-test-${process.pid}-${Date.now()}`;
  const pidsCg = `/sys/fs/cgroup/pids/${name}`;
  const memCg = `/sys/fs/cgroup/memory/${name}`;
  const e = setup(t, [() => existsSync(pidsCg) && rmdirSync(pidsCg), () => existsSync(memCg) && rmdirSync(memCg)]);
  if (!existsSync('/sys/fs/cgroup/pids') || !existsSync('/sys/fs/cgroup/memory')) return t.skip('no cgroup v1 pids/memory controllers');
  mkdirSync(pidsCg);
  mkdirSync(memCg);
  writeFileSync(join(memCg, 'memory.limit_in_bytes'), String(16 * 1024 * 1024));
  try {
    writeFileSync(join(memCg, 'memory.memsw.limit_in_bytes'), String(16 * 1024 * 1024));
  } catch {
    /* no swap accounting */
  }
  const s = await startContainer(
    e.opts(['sh', '-c', 'echo ready; sleep 0.3; x=$(head -c 100000000 /dev/zero | tr "\\0" a); echo survived'], { cgroups: [pidsCg, memCg] }),
  );
  assert.ok(s.pid);
  const procs = readFileSync(join(pidsCg, 'cgroup.procs'), 'utf8').split('\n');
  assert.ok(procs.includes(String(s.pid)), `pid ${s.pid} not in ${pidsCg}`);
  const st = await waitExited(e.stateDir, 20_000);
  assert.equal(st.oomKilled, true, JSON.stringify(st));
  assert.ok(!e.stdout().includes('survived'));
  while (isAlive(e.stateDir)) await sleep(10);
});

test('the shim survives the death of the process that started it', { skip }, async (t) => {
  let helper: ReturnType<typeof spawn> | undefined;
  const e = setup(t, [() => helper?.pid !== undefined && helper.exitCode === null && helper.kill('SIGKILL')]);
  const shimTs = new URL('../../worker/engine/shim.ts', import.meta.url).pathname;
  const code = `
    import { startContainer } from ${JSON.stringify(shimTs)};
    const r = await startContainer({ stateDir: ${JSON.stringify(e.stateDir)}, rootfs: ${JSON.stringify(e.rootfs)}, args: ['sh', '-c', 'echo up; while true; do sleep 0.05; done'] });
    process.stdout.write(JSON.stringify({ shimPid: r.shimPid, pid: r.pid }) + '\\n');
    setInterval(() => {}, 1000);
  `;
  helper = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
  const info = await new Promise<{ shimPid: number; pid: number }>((res, rej) => {
    let buf = '';
    helper!.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      if (buf.includes('\n')) res(JSON.parse(buf.split('\n')[0]!) as { shimPid: number; pid: number });
    });
    helper!.on('exit', (c) => rej(new Error(`helper exited early (${c})`)));
  });
  helper.kill('SIGKILL');
  await new Promise((r) => helper!.once('exit', r));
  await sleep(200);
  assert.ok(isAlive(e.stateDir), 'shim must outlive its starter');
  assert.ok(!gone(info.pid), 'container must keep running');
  const st = readState(e.stateDir);
  assert.equal(st?.status, 'running');
  assert.equal(st?.pid, info.pid);
  const stopped = await stopContainer(e.stateDir, 300);
  assert.equal(stopped.status, 'exited');
  assert.equal(stopped.signal, 9, 'sh as PID 1 without a TERM handler ignores SIGTERM, so the grace kill applies');
  while (isAlive(e.stateDir)) await sleep(10);
});
