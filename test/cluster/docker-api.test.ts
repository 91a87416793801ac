// The Docker Engine API on a real lab (3 managers + 1 worker, real containers), driven by the real
// docker CLI over TCP 2376 with the admin certificate — always through a FOLLOWER, so every write,
// log stream and convergence poll exercises forwarding to the leader: node ls, service create
// (waiting for convergence), update --image, logs (multiplexed, with the CLI's task@node prefixes),
// rm; then the leader is killed and a write sent right away succeeds once a new leader exists.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { buildImage, busyboxLayer } from '../../worker/images/build.ts';
import { writeDockerCerts } from '../../cli/docker-context.ts';
import { ClusterLab, waitFor } from '../../lab/cluster-lab.ts';
import { cleanupOnExit } from '../../lab/lab.ts';

const NAME = 'h11x';
const REPO = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const SHOAL = join(REPO, 'bin', 'shoal');

interface Run {
  code: number;
  out: string;
  err: string;
  ms: number;
}

function run(cmd: string, args: string[], env: Record<string, string>, timeoutMs = 120_000): Promise<Run> {
  const t0 = Date.now();
  return new Promise((res) =>
    execFile(cmd, args, { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env }, timeout: timeoutMs, maxBuffer: 16 << 20 }, (e, out, err) =>
      res({ code: e ? (typeof e.code === 'number' ? e.code : 1) : 0, out, err, ms: Date.now() - t0 }),
    ),
  );
}

const docker = await run('docker', ['--version'], {});
const skip = docker.code !== 0 ? 'the docker CLI is not on PATH (the machine image ships docker 28.2.2)' : process.getuid?.() !== 0 ? 'labs need root' : false;

/** An image that prints one line naming its version and host, then waits to be stopped. */
function boxImage(name: string, version: string): Buffer {
  return buildImage({ name, layers: [busyboxLayer()], cmd: ['/bin/sh', '-c', `echo "${version} from $(hostname)"; trap "exit 0" TERM; sleep 100000 & wait`] })
    .archive;
}

describe('docker CLI through a follower of a Shoal lab', { skip }, () => {
  let c: ClusterLab;
  let unhook = () => {};
  const tmp = mkdtempSync(join(tmpdir(), 'shoal-h11x-'));
  const certs = join(tmp, 'certs');
  let env: Record<string, string> = {};
  let followerHost = '';
  let leaderHost = '';

  const dk = async (args: string[], timeoutMs = 120_000): Promise<Run> => run('docker', args, env, timeoutMs);
  const ok = async (args: string[], timeoutMs?: number): Promise<string> => {
    const r = await dk(args, timeoutMs);
    assert.equal(r.code, 0, `docker ${args.join(' ')} failed (${r.code}):\n${r.out}${r.err}`);
    return r.out;
  };

  /** Which lab host runs the leader (from the control API's Raft view). */
  const hostOfLeader = async (): Promise<string> => {
    const info = await c.control('GET', '/v1/info');
    for (const [name, d] of c.daemons) if (d.nodeId === info.leader) return name;
    throw new Error(`leader ${info.leader} is no lab host`);
  };

  before(async () => {
    unhook = cleanupOnExit(NAME);
    c = await ClusterLab.up({ name: NAME, managers: 3, workers: 1, executor: 'engine' });
    await c.waitReady(4, 60_000);
    writeFileSync(join(tmp, 'v1.tar'), boxImage('shoal/box:1', 'v1'));
    writeFileSync(join(tmp, 'v2.tar'), boxImage('shoal/box:2', 'v2'));
    // On every manager: the leader is killed later, and the survivors must still resolve the image.
    for (const h of ['h1', 'h2', 'h3']) {
      for (const [file, tag] of [
        ['v1.tar', 'shoal/box:1'],
        ['v2.tar', 'shoal/box:2'],
      ] as const) {
        const r = await run(SHOAL, ['image', 'load', '--state-dir', c.stateDir(h), '--tag', tag, join(tmp, file)], { HOME: tmp });
        assert.equal(r.code, 0, r.err);
      }
    }
    writeDockerCerts(certs, c.ctx.admin);
    leaderHost = await hostOfLeader();
    followerHost = ['h1', 'h2', 'h3'].find((h) => h !== leaderHost)!;
    env = {
      HOME: tmp,
      DOCKER_CONFIG: join(tmp, 'docker-config'),
      DOCKER_HOST: `tcp://${c.host(followerHost).ip}:2376`,
      DOCKER_TLS_VERIFY: '1',
      DOCKER_CERT_PATH: certs,
    };
  });

  after(async () => {
    await c?.down();
    // A task namespace created while the lab went down can outlive the teardown (seen once): sweep ours.
    for (const ns of (await run('ip', ['netns', 'list'], {})).out.split('\n').map((l) => l.split(' ')[0] ?? '')) {
      if (ns.startsWith(`sl-${NAME}-`)) await run('ip', ['netns', 'delete', ns], {});
    }
    unhook();
    rmSync(tmp, { recursive: true, force: true });
  });

  it('lists the nodes with their manager status', async () => {
    const out = await ok(['node', 'ls', '--format', '{{.Hostname}} {{.Status}} {{.ManagerStatus}} {{.Self}}']);
    const rows = out.trim().split('\n').sort();
    assert.equal(rows.length, 4);
    assert.equal(rows.filter((r) => / Leader /.test(r)).length, 1);
    assert.equal(rows.filter((r) => / Reachable /.test(r)).length, 2);
    assert.ok(
      rows.every((r) => / Ready /.test(r)),
      out,
    );
    assert.ok(
      rows.some((r) => r.startsWith(`${followerHost} `) && r.endsWith(' true')),
      `the follower marks itself: ${out}`,
    );
  });

  it('creates a service (waiting for convergence), updates its image, streams its logs and removes it', async () => {
    const created = await dk(['service', 'create', '--name', 'web', '--replicas', '2', 'shoal/box:1'], 180_000);
    assert.equal(created.code, 0, created.out + created.err);
    assert.match(created.out, /converged/);
    // The CLI pinned the digest Shoal's resolver gave (/distribution), and the tasks run.
    assert.match(await ok(['service', 'inspect', 'web', '--format', '{{.Spec.TaskTemplate.ContainerSpec.Image}}']), /^shoal\/box:1@sha256:[0-9a-f]{64}\n$/);
    assert.equal((await ok(['service', 'ls', '--format', '{{.Name}} {{.Replicas}}'])).trim(), 'web 2/2');

    const updated = await dk(['service', 'update', '--image', 'shoal/box:2', 'web'], 180_000);
    assert.equal(updated.code, 0, updated.out + updated.err);
    assert.match(updated.out, /converged/);
    const ps = await ok(['service', 'ps', 'web', '--format', '{{.Name}} {{.Image}} {{.DesiredState}}']);
    assert.equal(ps.split('\n').filter((l) => /shoal\/box:2 Running/.test(l)).length, 2, ps);
    assert.equal(ps.split('\n').filter((l) => /shoal\/box:1 Shutdown/.test(l)).length, 2, ps);

    // Logs come from the nodes through the leader; the CLI prefixes them with task and node.
    await waitFor(async () => ((await dk(['service', 'logs', 'web'])).out.match(/ v2 from /g) ?? []).length === 2, 30_000, 'both v2 tasks in the logs', 500);
    const logs = await ok(['service', 'logs', 'web']);
    for (const line of logs.trim().split('\n')) assert.match(line, /^web\.[12]\.[0-9a-z]{12}@h[1-4]\s+\| v[12] from /, line);

    await ok(['service', 'rm', 'web']);
    assert.equal((await ok(['service', 'ls', '-q'])).trim(), '');
  });

  it('takes a write sent right after the leader is killed, once a new leader exists', async () => {
    c.killDaemon(leaderHost);
    const r = await dk(['service', 'create', '-d', '--name', 'after', 'shoal/box:1'], 60_000);
    assert.equal(r.code, 0, r.out + r.err);
    assert.match(r.out.trim(), /^[0-9a-z]{25}$/);
    assert.match(await ok(['service', 'ls', '--format', '{{.Name}}']), /^after$/m);
    const nowLeader = await ok(['node', 'ls', '--filter', 'role=manager', '--format', '{{.Hostname}} {{.ManagerStatus}}']);
    assert.match(nowLeader, / Leader$/m);
    assert.doesNotMatch(nowLeader, new RegExp(`^${leaderHost} Leader$`, 'm'));
  });
});
