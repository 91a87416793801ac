// Failure drills on a lab of 3 managers + 2 workers running real containers, driven through the CLI:
// the leader killed mid-update, a worker killed and brought back, the leader cut off by a network
// partition, an agent restarted under its containers, every manager restarted at once, quorum lost
// and regained, and a stream of writes from concurrent clients while managers are killed one at a
// time. Each drill checks that the cluster converges and that no acknowledged change was lost.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { control, localCall, saveContext } from '../../client/context.ts';
import { httpsJson } from '../../transport/https.ts';
import { isAlive, readState, type ShimState } from '../../worker/engine/shim.ts';
import { buildImage, busyboxLayer } from '../../worker/images/build.ts';
import { ClusterLab, waitFor } from '../../lab/cluster-lab.ts';
import { cleanupOnExit } from '../../lab/lab.ts';

const NAME = `dr${process.pid % 10000}`;
const SHOAL = join(resolve(fileURLToPath(new URL('../..', import.meta.url))), 'bin', 'shoal');
const MANAGERS = ['h1', 'h2', 'h3'];
const WORKERS = ['h4', 'h5'];
/** A long-running command that exits at once on SIGTERM. */
const IDLE = `trap 'exit 0' TERM; sleep 100000 & wait`;

describe('failure drills on lab hosts with real containers', { concurrency: false, timeout: 230_000 }, () => {
  let c: ClusterLab;
  let unhook: () => void = () => {};
  const tmp = mkdtempSync(join(tmpdir(), 'shoal-drills-'));
  const pinned = new Map<string, string>();

  const sh = (args: string[], contextPath = c.contextPath) =>
    new Promise<{ code: number; out: string; err: string }>((res) => {
      execFile(SHOAL, args, { env: { ...process.env, SHOAL_CONTEXT: contextPath }, timeout: 90_000 }, (e, out, err) =>
        res({ code: e ? (typeof (e as { code?: unknown }).code === 'number' ? (e as { code: number }).code : 1) : 0, out: String(out), err: String(err) }),
      );
    });
  const ok = async (...args: string[]) => {
    const r = await sh(args);
    assert.equal(r.code, 0, `shoal ${args.join(' ')} failed (${r.code}): ${r.err}${r.out}`);
    return r.out;
  };
  const addr = (h: string) => `${c.host(h).ip}:2377`;
  /** GET /v1/info from one manager (no quorum needed), or null if it does not answer. */
  const info = (h: string): Promise<any> => control(c.ctx, 'GET', '/v1/info', undefined, addr(h)).catch(() => null);
  /** The host whose manager says it is the leader, among `among`; null if none does. */
  const leaderAmong = async (among: string[]): Promise<string | null> => {
    const infos = await Promise.all(among.map(async (h) => [h, await info(h)] as const));
    const leaders = infos.filter(([, i]) => i?.role === 'leader');
    return leaders.length === 1 ? leaders[0]![0] : null;
  };
  const waitLeader = async (among: string[], timeoutMs = 10_000): Promise<string> => {
    let l: string | null = null;
    await waitFor(async () => (l = await leaderAmong(among)) !== null, timeoutMs, `a leader among ${among.join(',')}`, 100);
    return l!;
  };
  const tasksOf = async (svc: string, all = false): Promise<any[]> => c.control('GET', `/v1/tasks?service=${svc}${all ? '&all=1' : ''}`);
  const running = async (svc: string) => (await tasksOf(svc)).filter((t) => t.status.state === 'running' && t.desiredState === 'running');
  const hostNames = async () => new Map<string, string>((await c.nodes()).map((n: any) => [n.id, n.description.hostname]));
  const nodeState = async (h: string) => (await c.nodes().catch(() => [])).find((n: any) => n.description.hostname === h)?.status.state as string | undefined;
  const readLog = (h: string) => {
    try {
      return readFileSync(join(c.host(h).dir, 'daemon.log'), 'utf8');
    } catch {
      return '';
    }
  };
  const taskDir = (host: string, id: string) => join(c.stateDir(host), 'tasks', id);
  /** task id → shim state, for every container alive on a host right now. */
  const liveContainers = (host: string): Map<string, ShimState> => {
    const dir = join(c.stateDir(host), 'tasks');
    const out = new Map<string, ShimState>();
    if (!existsSync(dir)) return out;
    for (const id of readdirSync(dir)) {
      const st = readState(taskDir(host, id));
      if (st?.status === 'running' && isAlive(taskDir(host, id))) out.set(id, st);
    }
    return out;
  };
  /** Every manager reachable and one leader, as node ls shows it. */
  const allManagersBack = async () => {
    const nodes = await c.nodes().catch(() => []);
    const ms = nodes.filter((n: any) => n.managerStatus);
    return (
      ms.length === 3 &&
      ms.every((n: any) => n.managerStatus.reachability === 'reachable' && n.status.state === 'ready') &&
      ms.filter((n: any) => n.managerStatus.leader).length === 1
    );
  };
  /** What the managers must agree on: each service's id, name, version, spec version and spec. */
  const servicesAt = async (h: string) =>
    JSON.stringify(
      ((await control(c.ctx, 'GET', '/v1/services', undefined, addr(h))) as any[])
        .map((s) => ({ id: s.id, version: s.version, specVersion: s.specVersion, spec: s.spec }))
        .sort((a, b) => a.id.localeCompare(b.id)),
    );

  before(async () => {
    unhook = cleanupOnExit(NAME);
    c = await ClusterLab.up({ name: NAME, managers: 3, workers: 2, executor: 'engine' });
    for (const [file, img] of [
      ['box1.tar', buildImage({ name: 'shoal/box:1', layers: [busyboxLayer()], cmd: ['sh', '-c', IDLE] })],
      [
        'box2.tar',
        buildImage({ name: 'shoal/box:2', layers: [busyboxLayer()], cmd: ['sh', '-c', IDLE], env: ['PATH=/bin:/usr/bin:/sbin:/usr/sbin', 'BOX_VERSION=2'] }),
      ],
    ] as const) {
      writeFileSync(join(tmp, file), img.archive);
      // every manager has the images, so `service create` can pin them whichever manager leads
      for (const h of MANAGERS) await localCall(c.stateDir(h), 'POST', '/images/load', { path: join(tmp, file) });
    }
  });

  after(async () => {
    await c?.down();
    unhook();
    rmSync(tmp, { recursive: true, force: true });
  });

  it('kill -9 of the leader during a rolling update: the update completes under the new leader', async () => {
    await ok(
      'service',
      'create',
      '--name',
      'roll',
      '--replicas',
      '4',
      '--constraint',
      'node.role==worker',
      '--update-parallelism',
      '1',
      '--update-delay',
      '1s',
      '--update-monitor',
      '200ms',
      'shoal/box:1',
    );
    pinned.set('box1', (await c.control('GET', '/v1/services/roll')).spec.task.image);
    await ok('service', 'update', '-d', '--image', 'shoal/box:2', 'roll');
    const svc = await c.control('GET', '/v1/services/roll');
    pinned.set('box2', svc.spec.task.image);
    const version = svc.specVersion as number;
    await waitFor(async () => (await running('roll')).some((t) => t.spec.image === pinned.get('box2')), 10_000, 'the update started');
    const leader = await waitLeader(MANAGERS);
    const midway = (await c.control('GET', '/v1/services/roll')).updateStatus?.state;
    c.killDaemon(leader);
    assert.equal(midway, 'updating', 'the leader is killed while the update is in progress');
    try {
      const rest = MANAGERS.filter((h) => h !== leader);
      await waitLeader(rest);
      await waitFor(
        async () => {
          const s = await c.control('GET', '/v1/services/roll').catch(() => null);
          const r = await running('roll').catch(() => []);
          return s?.updateStatus?.state === 'completed' && r.length === 4 && r.every((t) => t.spec.image === pinned.get('box2'));
        },
        40_000,
        'update completed under the new leader',
        200,
      );
      const all = await tasksOf('roll', true);
      const fresh = all.filter((t) => t.specVersion === version);
      assert.equal(fresh.length, 4, `each slot updated exactly once (nothing redone): ${fresh.map((t) => `${t.slot}:${t.status.state}`).join(' ')}`);
      assert.deepEqual(fresh.map((t) => t.slot).sort(), [1, 2, 3, 4]);
    } finally {
      await c.startDaemon(leader);
    }
    await waitFor(allManagersBack, 15_000, `${leader} back as a follower`, 200);
    const s = await c.control('GET', '/v1/services/roll');
    assert.equal(s.spec.task.image, pinned.get('box2'), 'the acknowledged update is kept');
  });

  /** The tasks h5 ran when its daemon was killed. */
  let staleOnH5: string[] = [];

  it('kill -9 of a worker: its tasks are rescheduled elsewhere once it is Down; it comes back Ready', async () => {
    await ok('service', 'create', '--name', 'spread', '--replicas', '4', '--constraint', 'node.role==worker', 'shoal/box:1');
    const hosts = await hostNames();
    staleOnH5 = (await running('spread')).filter((t) => hosts.get(t.nodeId) === 'h5').map((t) => t.id);
    assert.equal(staleOnH5.length, 2);
    c.killDaemon('h5');
    let restarted = false;
    try {
      await waitFor(async () => (await nodeState('h5')) === 'down', 10_000, 'h5 down', 100);
      await waitFor(
        async () => {
          const r = await running('spread');
          return r.length === 4 && r.every((t) => hosts.get(t.nodeId) === 'h4');
        },
        15_000,
        'the tasks of h5 rescheduled on h4',
        100,
      );
      const old = (await tasksOf('spread', true)).filter((t) => staleOnH5.includes(t.id));
      assert.ok(old.length === 2 && old.every((t) => t.desiredState !== 'running'), 'the tasks of the down node are told to stop');
      // the agent is gone but its containers are not: nobody was there to stop them
      for (const id of staleOnH5) assert.ok(liveContainers('h5').has(id), `container ${id} still alive on h5 while its agent is down`);
      await c.startDaemon('h5');
      restarted = true;
      await waitFor(async () => (await nodeState('h5')) === 'ready', 10_000, 'h5 ready again', 100);
      assert.equal((await running('spread')).length, 4);
    } finally {
      if (!restarted) await c.startDaemon('h5');
    }
  });

  it('a worker back from kill -9 stops the containers of tasks that were moved away meanwhile', async () => {
    const hosts = await hostNames();
    await waitFor(
      async () => {
        const wanted = new Set((await tasksOf('spread', true)).filter((t) => t.desiredState === 'running' && hosts.get(t.nodeId) === 'h5').map((t) => t.id));
        return [...liveContainers('h5').keys()].every((id) => wanted.has(id));
      },
      10_000,
      'stale containers on h5 stopped',
      200,
    );
    await waitFor(
      async () =>
        (await tasksOf('spread', true))
          .filter((t) => staleOnH5.includes(t.id))
          .every((t) => ['shutdown', 'orphaned', 'complete', 'failed'].includes(t.status.state)),
      10_000,
      'the old tasks reported stopped',
      200,
    );
  });

  it('kill -9 and restart of a worker daemon: its containers keep running and are re-adopted, no task is replaced', async () => {
    // A heartbeat period of 2 s makes "Down" take 6 s, so the restart (well under a second here) is
    // never mistaken for a dead node even on a loaded machine.
    await ok('cluster', 'update', '--dispatcher-heartbeat', '2s');
    try {
      const hosts = await hostNames();
      const before = (await c.control('GET', '/v1/tasks?all=1')) as any[];
      const onH4 = before.filter((t) => hosts.get(t.nodeId) === 'h4' && t.desiredState === 'running' && t.status.state === 'running');
      assert.ok(onH4.length >= 4, `h4 runs ${onH4.length} tasks`);
      const live = liveContainers('h4');
      for (const t of onH4) assert.ok(live.has(t.id));
      c.killDaemon('h4');
      await c.startDaemon('h4');
      await waitFor(() => /re-adopted running task/.test(readLog('h4')), 10_000, 'h4 re-adopted its containers', 100);
      await waitFor(async () => (await nodeState('h4')) === 'ready', 10_000, 'h4 ready', 100);
      const after = (await c.control('GET', '/v1/tasks?all=1')) as any[];
      assert.deepEqual(after.map((t) => t.id).sort(), before.map((t) => t.id).sort(), 'no task created or removed');
      for (const t of onH4) {
        const now = after.find((x) => x.id === t.id)!;
        assert.equal(now.status.state, 'running', `${t.id} still running`);
        assert.equal(now.desiredState, 'running');
        const st = liveContainers('h4').get(t.id);
        assert.ok(st, `container of ${t.id} alive`);
        assert.equal(st.shimPid, live.get(t.id)!.shimPid, 'same shim');
        assert.equal(st.shimStartTime, live.get(t.id)!.shimStartTime, 'same shim process');
        assert.equal(st.startedAt, live.get(t.id)!.startedAt, 'container not restarted');
      }
    } finally {
      await ok('cluster', 'update', '--dispatcher-heartbeat', '1s');
    }
  });

  it('a partition isolating the leader: the majority elects a leader, the isolated one refuses writes, nothing diverges after healing', async (t) => {
    const old = await waitLeader(MANAGERS);
    const rest = MANAGERS.filter((h) => h !== old);
    const others = c.lab.hosts.filter((h) => h.name !== old && [...MANAGERS, ...WORKERS].includes(h.name));
    const tls = { ca: c.ctx.admin.ca, key: c.ctx.admin.key, cert: c.ctx.admin.cert };
    await c.lab.partition([c.host(old)], others);
    try {
      // sent straight to the isolated manager while it still believes it leads: never acknowledged
      const early = await httpsJson(addr(old), 'POST', '/v1/services/roll/scale', { replicas: 7 }, tls);
      assert.ok(early.status >= 400, `a write to the isolated leader was acknowledged (${early.status})`);
      assert.match(early.body.error.message, /no quorum|not committed|may not have been applied|leader/, `unclear error: ${early.body.error.message}`);
      const fresh = await waitLeader(rest, 15_000);
      await waitFor(
        async () => {
          const i = await info(old);
          return i !== null && i.role !== 'leader';
        },
        10_000,
        `${old} stepped down`,
        100,
      );
      // once it knows it is cut off it refuses at once, saying why
      const late = await httpsJson(addr(old), 'POST', '/v1/services/roll/scale', { replicas: 9 }, tls);
      assert.equal(late.status, 503);
      assert.match(late.body.error.message, /no quorum|no leader/, `unclear error: ${late.body.error.message}`);
      t.diagnostic(`isolated leader, before stepping down: ${early.status} ${early.body.error.message}; after: ${late.status} ${late.body.error.message}`);
      // the majority takes writes
      saveContext(join(tmp, 'majority.json'), { ...c.ctx, managers: [addr(fresh)] });
      const maj = await sh(
        ['service', 'create', '-d', '--name', 'majority', '--replicas', '1', '--constraint', 'node.role==worker', 'shoal/box:1'],
        join(tmp, 'majority.json'),
      );
      assert.equal(maj.code, 0, maj.err);
    } finally {
      await c.lab.heal();
    }
    await waitFor(allManagersBack, 20_000, 'all managers reachable after healing', 200);
    let views: string[] = [];
    await waitFor(
      async () => {
        views = await Promise.all(MANAGERS.map((h) => servicesAt(h).catch((e) => `error: ${(e as Error).message}`)));
        return views.every((v) => v === views[0]);
      },
      15_000,
      'every manager reports the same services',
      200,
    );
    const services = JSON.parse(views[0]!) as any[];
    assert.deepEqual(services.map((s) => s.spec.name).sort(), ['majority', 'roll', 'spread']);
    assert.equal(services.find((s) => s.spec.name === 'roll').spec.mode.replicated.replicas, 4, 'the writes refused by the isolated manager were not applied');
    await waitFor(async () => (await running('majority')).length === 1, 15_000, 'the service created during the partition runs');
  });

  it('the CLI reaches the majority when the first manager in its context is cut off', async () => {
    // h1 is first in every manager list (voters in join order), so the CLI asks it first, also on retry.
    const ctxPath = join(tmp, 'ordered.json');
    saveContext(ctxPath, { ...c.ctx, managers: MANAGERS.map(addr) });
    await c.lab.partition(
      [c.host('h1')],
      c.lab.hosts.filter((h) => h.name !== 'h1' && [...MANAGERS, ...WORKERS].includes(h.name)),
    );
    let created = false;
    try {
      await waitLeader(['h2', 'h3'], 15_000);
      await waitFor(
        async () => {
          const i = await info('h1');
          return i !== null && i.role !== 'leader' && !i.leader;
        },
        10_000,
        'h1 knows it has no leader',
        100,
      );
      const r = await sh(['service', 'create', '-d', '--name', 'viaothers', '--replicas', '0', 'shoal/box:1'], ctxPath);
      created = r.code === 0;
      assert.equal(r.code, 0, `the CLI gave up although h2 and h3 form a majority: ${r.err.trim()}`);
    } finally {
      await c.lab.heal();
      await waitFor(allManagersBack, 20_000, 'all managers reachable after healing', 200);
      if (created || (await c.control('GET', '/v1/services')).some((s: any) => s.spec.name === 'viaothers')) await ok('service', 'rm', 'viaothers');
    }
  });

  it('restart of all managers at once: the cluster comes back with every service and task', async () => {
    const services = await servicesAt('h1');
    const tasksBefore = new Map<string, string[]>();
    for (const s of ['roll', 'spread', 'majority']) tasksBefore.set(s, (await running(s)).map((t) => t.id).sort());
    for (const h of MANAGERS) c.killDaemon(h);
    await Promise.all(MANAGERS.map((h) => c.startDaemon(h)));
    await waitLeader(MANAGERS, 15_000);
    await waitFor(allManagersBack, 20_000, 'three managers back, one leader', 200);
    assert.equal(await servicesAt(await waitLeader(MANAGERS)), services, 'the same services, same versions');
    await waitFor(
      async () => {
        for (const [s, ids] of tasksBefore) {
          const now = (await running(s).catch(() => [])).map((t) => t.id).sort();
          if (JSON.stringify(now) !== JSON.stringify(ids)) return false;
        }
        return true;
      },
      15_000,
      'the same tasks running',
      200,
    );
    assert.ok(
      (await c.nodes()).every((n: any) => n.status.state === 'ready'),
      'every node ready',
    );
  });

  it('lose quorum: writes fail with a clear error and change nothing; one manager back restores writes', async () => {
    const leader = await waitLeader(MANAGERS);
    const [a, b] = MANAGERS.filter((h) => h !== leader) as [string, string];
    const before = await servicesAt(leader);
    c.killDaemon(a);
    c.killDaemon(b);
    let aUp = false;
    let bUp = false;
    try {
      await waitFor(async () => (await info(leader))?.role !== 'leader', 10_000, `${leader} stepped down`, 100);
      const r = await sh(['service', 'create', '-d', '--name', 'noquorum', 'shoal/box:1']);
      assert.notEqual(r.code, 0, `acknowledged without quorum: ${r.out}`);
      assert.match(r.err, /no quorum: 1 of 3 managers reachable \(need 2\)/);
      assert.equal(r.err.trim().split('\n').length, 1, `one line: ${r.err}`);
      await c.startDaemon(a);
      aUp = true;
      await waitLeader([leader, a], 15_000);
      const w = await sh(['service', 'create', '-d', '--name', 'quorum', '--replicas', '0', 'shoal/box:1']);
      assert.equal(w.code, 0, `write after quorum is back: ${w.err}`);
      const now = JSON.parse(await servicesAt(leader)) as any[];
      assert.ok(!now.some((s) => s.spec.name === 'noquorum'), 'the refused write left nothing');
      assert.deepEqual(
        now.filter((s) => s.spec.name !== 'quorum').map((s) => s.id),
        (JSON.parse(before) as any[]).map((s) => s.id),
      );
    } finally {
      if (!aUp) await c.startDaemon(a);
      await c.startDaemon(b);
      bUp = true;
    }
    assert.ok(bUp);
    await waitFor(allManagersBack, 20_000, 'three managers back', 200);
    await ok('service', 'rm', 'quorum');
  });

  it('a CLI write issued right after the leader dies waits for the new leader', async () => {
    const leader = await waitLeader(MANAGERS);
    c.killDaemon(leader);
    try {
      const r = await sh(['service', 'create', '-d', '--name', 'failover', '--replicas', '0', 'shoal/box:1']);
      assert.equal(r.code, 0, `the write failed during the election: ${r.err.trim()}`);
    } finally {
      await c.startDaemon(leader);
      await waitFor(allManagersBack, 20_000, `${leader} back`, 200);
      if ((await c.control('GET', '/v1/services')).some((s: any) => s.spec.name === 'failover')) await ok('service', 'rm', 'failover');
    }
  });

  it('concurrent clients keep writing while managers are killed and restarted one at a time: no acknowledged write is lost', async (t) => {
    const CLIENTS = 3;
    for (let j = 0; j < CLIENTS; j++) await ok('service', 'create', '-d', '--name', `c${j}`, '--replicas', '0', 'shoal/box:1');
    const acked: Set<number>[] = Array.from({ length: CLIENTS }, () => new Set());
    const failures: string[][] = Array.from({ length: CLIENTS }, () => []);
    let stop = false;
    const clients = Array.from({ length: CLIENTS }, async (_, j) => {
      for (let i = 0; !stop && i < 200; i++) {
        const r = await sh(['service', 'update', '-d', '--label-add', `k${i}=v${i}`, `c${j}`]);
        if (r.code === 0) acked[j]!.add(i);
        else failures[j]!.push(r.err.trim());
      }
    });
    const ackCount = () => acked.map((s) => s.size);
    try {
      for (const victim of MANAGERS) {
        const seen = ackCount();
        c.killDaemon(victim);
        await waitLeader(
          MANAGERS.filter((h) => h !== victim),
          15_000,
        );
        // every client gets writes through while the victim is down
        await waitFor(() => ackCount().every((n, j) => n > seen[j]!), 30_000, `every client acknowledged while ${victim} is down`, 100);
        await c.startDaemon(victim);
        await waitFor(allManagersBack, 20_000, `${victim} back`, 200);
      }
    } finally {
      stop = true;
      await Promise.all(clients);
    }
    const reasons = new Map<string, number>();
    for (const f of failures.flat())
      reasons.set(f.replace(/[0-9a-z]{25}/g, 'ID').replace(/\d+/g, 'N'), (reasons.get(f.replace(/[0-9a-z]{25}/g, 'ID').replace(/\d+/g, 'N')) ?? 0) + 1);
    t.diagnostic(
      `acknowledged per client: ${ackCount().join(', ')}; refused: ${failures.map((f) => f.length).join(', ')}${reasons.size ? ` (${[...reasons].map(([r, n]) => `${n}× ${r}`).join('; ')})` : ''}`,
    );
    for (let j = 0; j < CLIENTS; j++) {
      const labels = (await c.control('GET', `/v1/services/c${j}`)).spec.labels as Record<string, string>;
      const lost = [...acked[j]!].filter((i) => labels[`k${i}`] !== `v${i}`);
      assert.deepEqual(lost, [], `client ${j}: acknowledged updates lost (acked ${acked[j]!.size}, failures: ${failures[j]!.slice(0, 3).join(' | ')})`);
      assert.ok(acked[j]!.size >= 4, `client ${j} got ${acked[j]!.size} writes through`);
    }
    // and every manager agrees
    let views: string[] = [];
    await waitFor(
      async () => {
        views = await Promise.all(MANAGERS.map((h) => servicesAt(h).catch((e) => `error: ${(e as Error).message}`)));
        return views.every((v) => v === views[0]);
      },
      15_000,
      'every manager reports the same services',
      200,
    );
  });
});
