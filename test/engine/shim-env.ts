// Shared by the shim tests: builds shoal-shim once, and gives every test a busybox rootfs in its own
// temp dir whose after hook kills whatever is left (shim, container, helper processes), removes what
// the test registered and the directory, whether the test passed or not.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { BUILD_SCRIPT, killShim, makeBusyboxRootfs, procStartTime, readState, startContainer, waitExited } from '../../worker/engine/shim.ts';
import type { StartOptions } from '../../worker/engine/shim.ts';

const haveGcc = spawnSync('sh', ['-c', 'command -v gcc'], { stdio: 'ignore' }).status === 0;
let built = false;
export function build(): void {
  if (built) return;
  const r = spawnSync('bash', [BUILD_SCRIPT], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`build-native.sh failed (${r.status}): ${r.stderr}`);
  built = true;
}
export const skip = haveGcc ? false : 'gcc is not installed: cannot build native/build/shoal-shim';

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export function gone(pid: number): boolean {
  return procStartTime(pid) === null || /^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8'));
}

export interface Env {
  dir: string;
  rootfs: string;
  stateDir: string;
  opts(args: string[], extra?: Partial<StartOptions>): StartOptions;
  log(): Array<{ t: string; s: string; l: string }>;
  stdout(): string[];
}

export function setup(t: TestContext, extraCleanup: Array<() => void> = []): Env {
  build();
  const dir = mkdtempSync(join(tmpdir(), 'shoal-eng-shim-'));
  const rootfs = join(dir, 'rootfs');
  const stateDir = join(dir, 'state');
  makeBusyboxRootfs(rootfs);
  t.after(async () => {
    for (const f of extraCleanup) {
      try {
        f();
      } catch {
        /* best effort */
      }
    }
    const st = (() => {
      try {
        return readState(stateDir);
      } catch {
        return null;
      }
    })();
    killShim(stateDir);
    const pids = [st?.shimPid, st?.status === 'running' ? st.pid : undefined].filter((p): p is number => typeof p === 'number');
    const deadline = Date.now() + 5000;
    while (pids.some((p) => !gone(p)) && Date.now() < deadline) await sleep(20);
    rmSync(dir, { recursive: true, force: true });
  });
  const env: Env = {
    dir,
    rootfs,
    stateDir,
    opts: (args, extra = {}) => ({ stateDir, rootfs, args, ...extra }),
    log: () => {
      const p = join(stateDir, 'container.log');
      if (!existsSync(p)) return [];
      return readFileSync(p, 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as { t: string; s: string; l: string });
    },
    stdout: () =>
      env
        .log()
        .filter((e) => e.s === 'stdout')
        .map((e) => e.l),
  };
  return env;
}

export async function run(e: Env, script: string, extra: Partial<StartOptions> = {}) {
  await startContainer(e.opts(['sh', '-c', script], extra));
  return waitExited(e.stateDir);
}
