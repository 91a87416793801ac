// Supervision of lab daemons, through the CLI a user types: a daemon killed with -9 shows as dead in
// `shoal lab ls`; `shoal lab restart HOST` starts it again with the same state directory and arguments; the
// node comes back Ready with the same id, having re-adopted its containers (same shim processes) without a
// single task being replaced — for a worker and for the leading manager. `lab restart` refuses while the
// daemon runs, and `--force` stops it by its recorded pid first. The pure status decoding is tested first.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { control, localCall } from '../../client/context.ts';
import { isAlive, readState, type ShimState } from '../../worker/engine/shim.ts';
import { buildImage, busyboxLayer } from '../../worker/images/build.ts';
import { ClusterLab, waitFor } from '../../lab/cluster-lab.ts';
import { cleanupOnExit, procAlive } from '../../lab/lab.ts';
import { decodeWaitStatus, describeStatus, parseExitFile, statusOf, type SupervisedRecord } from '../../lab/supervisor.ts';

describe('lab supervisor status (pure)', () => {
  const rec: SupervisedRecord = {
    version: 1,
    label: 'daemon',
    host: 'h1',
    cmd: 'node',
    args: [],
    cwd: '/',
    env: {},
    logFile: 'daemon.log',
    pid: 4242,
    start: 1,
    supervisorPid: 4241,
    supervisorStart: 1,
    startedAt: '2026-12-06T00:00:00.000Z',
    starts: 1,
  };
  it('decodes shell wait statuses: exit codes, and 128+n as signal n', () => {
    assert.deepEqual(decodeWaitStatus(0), { code: 0, signal: null });
    assert.deepEqual(decodeWaitStatus(1), { code: 1, signal: null });
    assert.deepEqual(decodeWaitStatus(128 + 9), { code: null, signal: 'SIGKILL' });
    assert.deepEqual(decodeWaitStatus(128 + 15), { code: null, signal: 'SIGTERM' });
    assert.deepEqual(decodeWaitStatus(128 + 11), { code: null, signal: 'SIGSEGV' });
  });
  it('ignores an exit file about an earlier process', () => {
    assert.equal(parseExitFile('4000 137\n', 4242), null);
    assert.deepEqual(parseExitFile('4242 137\n', 4242), { code: null, signal: 'SIGKILL' });
    assert.equal(parseExitFile('garbage', 4242), null);
  });
  it('says running, dead (how, when) or not started', () => {
    const now = Date.parse('2026-12-06T00:01:00Z');
    assert.equal(describeStatus(statusOf(null, false, null), now), 'not started');
    assert.equal(describeStatus(statusOf(rec, true, null), now), 'running (pid 4242)');
    const killed = statusOf(rec, false, { text: '4242 137\n', mtime: new Date(now - 12_000) });
    assert.equal(describeStatus(killed, now), 'dead (SIGKILL, 12 s ago)');
    assert.equal(describeStatus(statusOf(rec, false, { text: '4242 1\n', mtime: new Date(now - 300_000) }), now), 'dead (exit 1, 5 min ago)');
    // its supervisor died with it (lab teardown): dead, and nobody knows how
    assert.equal(describeStatus(statusOf(rec, false, null), now), 'dead (pid 4242, exit status unknown)');
    assert.equal(describeStatus(statusOf(rec, false, { text: '1 0\n', mtime: new Date(now) }), now), 'dead (pid 4242, exit status unknown)');
  });
});

const NAME = 'h4x';
const SHOAL = join(resolve(fileURLToPath(new URL('../..', import.meta.url))), 'bin', 'shoal');
const MANAGERS = ['h1', 'h2', 'h3'];
/** A long-running command that exits at once on SIGTERM. */
const IDLE = `trap 'exit 0' TERM; sleep 100000 & wait`;

describe('lab supervision: dead daemons are shown and restarted, their containers live on', { concurrency: false, timeout: 300_000 }, () => {
  let c: ClusterLab;
  let unhook: () => void = () => {};
  const tmp = mkdtempSync(join(tmpdir(), 'shoal-h4x-'));

  const sh = (args: string[]) =>
    new Promise<{ code: number; out: string; err: string }>((res) => {
      execFile(SHOAL, args, { env: { ...process.env, SHOAL_CONTEXT: c.contextPath }, timeout: 90_000 }, (e, out, err) =>
        res({ code: e ? (typeof (e as { code?: unknown }).code === 'number' ? (e as { code: number }).code : 1) : 0, out: String(out), err: String(err) }),
      );
    });
  const ok = async (...args: string[]) => {
    const r = await sh(args);
    assert.equal(r.code, 0, `shoal ${args.join(' ')} failed (${r.code}): ${r.err}${r.out}`);
    return r.out;
  };
  /** The DAEMON cell of HOST in `shoal lab ls --name h4x`. */
  const lsDaemon = async (host: string): Promise<string> => {
    const out = await ok('lab', 'ls', '--name', NAME);
    const row = out.split('\n').find((l) => new RegExp(`^${NAME}\\s+${host}\\s`).test(l));
    assert.ok(row, `no row for ${host} in:\n${out}`);
    return row
      .split(/\s{2,}/)
      .at(-1)!
      .trim();
  };
  /** The daemon pid the lab recorded for HOST in its state file (/run/shoal-lab/h4x.json). */
  const recordedDaemonPid = (host: string): number => {
    const state = JSON.parse(readFileSync(`/run/shoal-lab/${NAME}.json`, 'utf8')) as { procs: { pid: number; start: number; host: string; cmd: string }[] };
    // (its supervisor, `/bin/sh -c …`, is recorded too)
    const live = state.procs.filter((p) => p.host === host && !p.cmd.startsWith('/bin/sh ') && / daemon --state-dir /.test(p.cmd) && procAlive(p.pid, p.start));
    assert.equal(live.length, 1, `one live daemon recorded for ${host}: ${JSON.stringify(live)}`);
    return live[0]!.pid;
  };
  const hostNames = async () => new Map<string, string>((await c.nodes()).map((n: any) => [n.id, n.description.hostname]));
  const nodeOf = async (h: string) => (await c.nodes().catch(() => [])).find((n: any) => n.description.hostname === h);
  const allTasks = async () => ((await c.control('GET', '/v1/tasks?all=1')) as any[]).map((t) => `${t.id} ${t.desiredState} ${t.status.state}`).sort();
  const readLog = (h: string) => readFileSync(join(c.host(h).dir, 'daemon.log'), 'utf8');
  const adoptions = (h: string) => (readLog(h).match(/re-adopted running task/g) ?? []).length;
  /** task id → shim state, for every container alive on a host right now. */
  const liveContainers = (host: string): Map<string, ShimState> => {
    const dir = join(c.stateDir(host), 'tasks');
    const out = new Map<string, ShimState>();
    if (!existsSync(dir)) return out;
    for (const id of readdirSync(dir)) {
      const st = readState(join(dir, id));
      if (st?.status === 'running' && isAlive(join(dir, id))) out.set(id, st);
    }
    return out;
  };
  const info = (h: string): Promise<any> => control(c.ctx, 'GET', '/v1/info', undefined, `${c.host(h).ip}:2377`).catch(() => null);
  const leader = async (): Promise<string> => {
    let found: string | null = null;
    await waitFor(
      async () => {
        const roles = await Promise.all(MANAGERS.map(async (h) => [h, (await info(h))?.role] as const));
        const ls = roles.filter(([, r]) => r === 'leader');
        found = ls.length === 1 ? ls[0]![0] : null;
        return found !== null;
      },
      15_000,
      'one leader',
      100,
    );
    return found!;
  };

  /**
   * kill -9 the daemon of `host` by its recorded pid while its task runs, check `lab ls` says so, bring it
   * back with `lab restart` (or `restart` as given), then check: node Ready with the same id, containers
   * re-adopted (same shim processes, not restarted), no task created, replaced or stopped anywhere.
   */
  /**
   * The agent of `host`'s daemon has a welcomed session. Only the running daemon answers on its local
   * socket, and the callers have checked it is the new one (its recorded pid changed).
   */
  const agentWelcomed = async (host: string): Promise<boolean> => {
    const info = (await localCall(c.stateDir(host), 'GET', '/info', undefined, 2000).catch(() => null)) as {
      agent?: { state?: string } | null;
    } | null;
    return info?.agent?.state === 'ready';
  };

  const killAndRestart = async (host: string, restart: () => Promise<string>): Promise<string> => {
    const node = await nodeOf(host);
    assert.equal(node?.status.state, 'ready');
    const hosts = await hostNames();
    const mine = ((await c.control('GET', '/v1/tasks?service=idle')) as any[]).filter((t) => hosts.get(t.nodeId) === host && t.status.state === 'running');
    assert.equal(mine.length, 1, `${host} runs its task of the global service`);
    const containers = liveContainers(host);
    assert.ok(containers.has(mine[0].id), `container of ${mine[0].id} alive on ${host}`);
    const tasksBefore = await allTasks();
    const adoptedBefore = adoptions(host);
    const pid = recordedDaemonPid(host);

    process.kill(pid, 'SIGKILL');
    await waitFor(() => !procAlive(pid), 5000, `daemon ${pid} of ${host} gone`);
    await waitFor(() => c.daemonStatus(host).state === 'dead', 5000, `${host} daemon reported dead`);
    assert.match(await lsDaemon(host), /^dead \(SIGKILL, \d+ s ago\)$/);
    for (const [id, st] of containers) assert.ok(isAlive(join(c.stateDir(host), 'tasks', id)), `container ${id} (shim ${st.shimPid}) outlives its daemon`);

    const out = await restart();
    assert.match(await lsDaemon(host), /^running \(pid \d+\)$/);
    const newPid = recordedDaemonPid(host);
    assert.notEqual(newPid, pid);
    // Ready through a new session: the new daemon's agent was welcomed by the leader. (A node that comes
    // back ready and described as before is not written again, so lastHeartbeat does not show it.)
    await waitFor(
      async () => {
        const n = await nodeOf(host);
        return n?.status.state === 'ready' && (await agentWelcomed(host));
      },
      15_000,
      `${host} Ready again through a new session`,
      100,
    );
    assert.equal((await nodeOf(host)).id, node.id, 'the same node id');
    await waitFor(() => adoptions(host) > adoptedBefore, 10_000, `${host} re-adopted its container`, 100);
    const now = liveContainers(host);
    for (const [id, st] of containers) {
      const s = now.get(id);
      assert.ok(s, `container ${id} still alive`);
      assert.equal(s.shimPid, st.shimPid, 'same shim');
      assert.equal(s.shimStartTime, st.shimStartTime, 'same shim process');
      assert.equal(s.startedAt, st.startedAt, 'container not restarted');
    }
    assert.deepEqual(await allTasks(), tasksBefore, 'no task created, replaced or stopped');
    return out;
  };

  before(async () => {
    unhook = cleanupOnExit(NAME);
    c = await ClusterLab.up({ name: NAME, managers: 3, workers: 1, executor: 'engine' });
    const archive = join(tmp, 'box.tar');
    writeFileSync(archive, buildImage({ name: 'shoal/box:1', layers: [busyboxLayer()], cmd: ['sh', '-c', IDLE] }).archive);
    for (const h of MANAGERS) await localCall(c.stateDir(h), 'POST', '/images/load', { path: archive });
    // Down after 3 missed heartbeats: 15 s here, so a restart on a loaded machine is never taken for a dead
    // node (which would replace its tasks and hide what this test checks).
    await ok('cluster', 'update', '--dispatcher-heartbeat', '5s');
    await ok('service', 'create', '--name', 'idle', '--mode', 'global', 'shoal/box:1');
    await waitFor(
      async () => ((await c.control('GET', '/v1/tasks?service=idle')) as any[]).filter((t) => t.status.state === 'running').length === 4,
      30_000,
      'one idle task running on each of the 4 nodes',
      200,
    );
  });

  after(async () => {
    await c?.down();
    unhook();
    rmSync(tmp, { recursive: true, force: true });
  });

  it('a worker daemon killed with -9: lab ls shows it dead, lab restart brings the node back with its containers', async () => {
    const out = await killAndRestart('h4', () => ok('lab', 'restart', '--name', NAME, 'h4'));
    assert.match(out, /h4: daemon started again \(pid \d+; was dead \(SIGKILL/);
    assert.match(out, /h4: node \w+ \(worker\) back in cluster/);
  });

  it('the leader manager daemon killed with -9: a new leader takes over; lab restart brings it back as a manager with its containers', async () => {
    const old = await leader();
    await killAndRestart(old, async () => {
      // the cluster keeps answering meanwhile, under a new leader
      const next = await leader();
      assert.notEqual(next, old);
      return ok('lab', 'restart', '--name', NAME, old);
    });
    await waitFor(async () => (await nodeOf(old))?.managerStatus?.reachability === 'reachable', 15_000, `${old} reachable again as a manager`, 100);
  });

  it('lab restart refuses while the daemon runs; --force stops it by its recorded pid and starts it again', async () => {
    const host = 'h2';
    const pid = recordedDaemonPid(host);
    const refused = await sh(['lab', 'restart', '--name', NAME, host]);
    assert.notEqual(refused.code, 0);
    assert.equal(refused.err.trim().split('\n').length, 1, `one line: ${refused.err}`);
    assert.match(refused.err, new RegExp(`h2: the daemon is still running \\(pid ${pid}\\); use --force`));
    assert.ok(procAlive(pid), 'the running daemon was left alone');
    const node = await nodeOf(host);
    const containers = liveContainers(host);
    const tasksBefore = await allTasks();
    const out = await ok('lab', 'restart', '--name', NAME, '--force', host);
    assert.match(out, new RegExp(`was running as pid ${pid}, stopped`));
    assert.ok(!procAlive(pid), 'the old daemon is gone');
    assert.notEqual(recordedDaemonPid(host), pid);
    await waitFor(
      async () => {
        const n = await nodeOf(host);
        return n?.status.state === 'ready' && (await agentWelcomed(host));
      },
      15_000,
      `${host} Ready again through a new session`,
      100,
    );
    assert.equal((await nodeOf(host)).id, node.id);
    for (const [id, st] of containers) assert.equal(liveContainers(host).get(id)?.shimPid, st.shimPid, `container ${id} kept its shim`);
    assert.deepEqual(await allTasks(), tasksBefore, 'no task replaced');
    // the daemon stopped cleanly on SIGTERM before its restart
    assert.match(readLog(host), /SIGTERM: stopping/);
  });
});
