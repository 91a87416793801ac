// The shim runs from one sealed copy per daemon (worker/engine/shim.ts sealedShimFd): every container's
// monitor executes that memfd, which nothing can write (CVE-2019-5736), and whose descriptor reaches no
// container. Also the fallbacks: a shim spawned from its file still seals itself per start, a rebuilt
// binary is copied again, and descriptors a launcher leaked never reach the container. Needs root.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, copyFileSync, fstatSync, openSync, readdirSync, readFileSync, readlinkSync, statSync, utimesSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { DEFAULT_SHIM_PATH, execInContainer, readState, sealedShimError, sealedShimFd, startContainer, stopContainer } from '../../worker/engine/shim.ts';
import { build, setup, skip, sleep } from './shim-env.ts';

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** The descriptors of process pid that are open on the file with this identity. */
function fdsOn(pid: number, id: { dev: number; ino: number }): string[] {
  const out: string[] = [];
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const st = statSync(`/proc/${pid}/fd/${fd}`);
      if (st.dev === id.dev && st.ino === id.ino) out.push(fd);
    } catch {
      /* closed meanwhile */
    }
  }
  return out;
}

test('the engine makes one sealed copy of the shim: same bytes, and no write, append or truncate gets through', { skip }, () => {
  build();
  const fd = sealedShimFd(DEFAULT_SHIM_PATH);
  assert.notEqual(fd, undefined, `no sealed copy: ${sealedShimError(DEFAULT_SHIM_PATH)}`);
  assert.equal(sealedShimFd(DEFAULT_SHIM_PATH), fd, 'one copy per daemon, not one per call');
  const self = `/proc/self/fd/${fd}`;
  assert.match(readlinkSync(self), /^\/memfd:shoal-shim/);
  const bytes = readFileSync(self);
  assert.equal(sha256(bytes), sha256(readFileSync(DEFAULT_SHIM_PATH)));
  // F_SEAL_WRITE: overwrite in place; F_SEAL_GROW: append; F_SEAL_SHRINK: O_TRUNC.
  const rw = openSync(self, 'r+');
  try {
    assert.throws(() => writeSync(rw, Buffer.from('evil'), 0, 4, 0), /EPERM/);
  } finally {
    closeSync(rw);
  }
  assert.throws(() => writeFileSync(self, 'x', { flag: 'a' }), /EPERM/);
  assert.throws(() => writeFileSync(self, 'x'), /EPERM/);
  assert.equal(sha256(readFileSync(self)), sha256(bytes), 'the copy is unchanged');
});

test('every container monitor runs from that copy; neither the shim nor the container holds its descriptor', { skip }, async (t) => {
  const a = setup(t);
  const b = setup(t);
  const fd = sealedShimFd(DEFAULT_SHIM_PATH)!;
  const copy = fstatSync(fd);
  const sa = await startContainer(a.opts(['sleep', '30']));
  const sb = await startContainer(b.opts(['sleep', '30']));
  for (const st of [sa, sb]) {
    const exe = statSync(`/proc/${st.shimPid}/exe`);
    // Same inode: the shim found all four seals (F_SEAL_SEAL included) on its /proc/self/exe and did not
    // copy itself again, which it does for anything less.
    assert.equal(exe.ino, copy.ino, `shim ${st.shimPid} runs from ${readlinkSync(`/proc/${st.shimPid}/exe`)}, not the engine's copy`);
    assert.equal(exe.dev, copy.dev);
    assert.equal(readFileSync(`/proc/${st.shimPid}/comm`, 'utf8').trim(), 'shoal-shim');
    assert.deepEqual(fdsOn(st.shimPid, copy), [], 'the shim closed the inherited descriptor');
    assert.deepEqual(fdsOn(st.pid!, copy), [], 'the container never had it');
  }
  // As container root: the monitor's binary through every /proc/PID/exe in reach (an exec's process is
  // there before its own execve), and through the descriptors the container holds.
  const r = await execInContainer(
    a.stateDir,
    [
      'sh',
      '-c',
      'for p in /proc/[0-9]*; do (echo x >> $p/exe) 2>/dev/null && echo "wrote $p"; done; ls -l /proc/1/fd /proc/self/fd | grep -c memfd; echo done',
    ],
    { timeoutMs: 10_000 },
  );
  assert.equal(r.stdout.toString().trim(), '0\ndone', r.stdout.toString() + r.stderr.toString());
  assert.equal(sha256(readFileSync(`/proc/self/fd/${fd}`)), sha256(readFileSync(DEFAULT_SHIM_PATH)), 'the copy is unchanged');
  await stopContainer(a.stateDir, 1000);
  await stopContainer(b.stateDir, 1000);
});

test('without the per-daemon copy the shim still never runs from its file: it seals a copy per start', { skip }, async (t) => {
  const e = setup(t);
  const copy = fstatSync(sealedShimFd(DEFAULT_SHIM_PATH)!);
  const st = await startContainer(e.opts(['sleep', '30'], { sealOnce: false }));
  assert.match(readlinkSync(`/proc/${st.shimPid}/exe`), /^\/memfd:shoal-shim/);
  assert.notEqual(statSync(`/proc/${st.shimPid}/exe`).ino, copy.ino, 'its own copy');
  assert.throws(() => openSync(`/proc/${st.shimPid}/exe`, 'r+'), /ETXTBSY|EPERM|EACCES/);
  await stopContainer(e.stateDir, 1000);
});

test('a shim binary that changed on disk is copied again', { skip }, (t) => {
  const e = setup(t);
  const path = join(e.dir, 'shoal-shim');
  copyFileSync(DEFAULT_SHIM_PATH, path);
  const first = sealedShimFd(path)!;
  const ino1 = fstatSync(first).ino;
  assert.equal(sealedShimFd(path), first);
  utimesSync(path, new Date(), new Date(Date.now() + 5000));
  const second = sealedShimFd(path)!;
  assert.notEqual(fstatSync(second).ino, ino1, 'a new copy');
  assert.equal(
    readdirSync('/proc/self/fd').filter((f) => {
      try {
        return statSync(`/proc/self/fd/${f}`).ino === ino1;
      } catch {
        return false;
      }
    }).length,
    0,
    'the old copy was closed',
  );
});

test('descriptors the shim inherits without close-on-exec never reach the container', { skip }, async (t) => {
  const e = setup(t);
  // sh's redirections are not close-on-exec: fd 7 is open when the shim starts
  const r = spawnSync(
    'sh',
    ['-c', 'exec 7</etc/hostname; exec "$0" "$@"', DEFAULT_SHIM_PATH, '--state-dir', e.stateDir, '--rootfs', e.rootfs, '--', 'sleep', '30'],
    {
      encoding: 'utf8',
    },
  );
  assert.equal(r.status, 0, r.stderr);
  let st = readState(e.stateDir);
  for (const deadline = Date.now() + 10_000; st?.status !== 'running' && Date.now() < deadline; st = readState(e.stateDir)) await sleep(10);
  assert.equal(st?.status, 'running', JSON.stringify(st));
  assert.deepEqual(readdirSync(`/proc/${st!.pid}/fd`).sort(), ['0', '1', '2'], 'the container holds only its stdio');
  assert.ok(!readdirSync(`/proc/${st!.shimPid}/fd`).includes('7'), 'the shim closed it too');
  await stopContainer(e.stateDir, 1000);
});
