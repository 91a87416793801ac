// End to end through the CLI, as a user would drive it, on lab hosts running real containers (the
// engine executor): placement by node labels (constraints, spread preferences), a global service that
// follows a node joining and leaving, create and scale 6 → 30 → 6, a start-first rolling update, a
// manual rollback, an update to a broken image rolled back automatically, drain / pause / activate,
// service-to-service traffic by name across hosts, the routing mesh on every host, and `service logs`,
// `--tail` and `task exec` with a node down.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { localCall } from '../../client/context.ts';
import { isAlive, readState } from '../../worker/engine/shim.ts';
import { buildImage, busyboxLayer, demoWebImage } from '../../worker/images/build.ts';
import { ClusterLab, httpGet, waitFor } from '../../lab/cluster-lab.ts';
import { cleanupOnExit } from '../../lab/lab.ts';

const NAME = `e2e${process.pid % 10000}`;
const SHOAL = join(resolve(fileURLToPath(new URL('../..', import.meta.url))), 'bin', 'shoal');

/** A long-running command that exits at once on SIGTERM (a PID 1 without a TERM handler waits for the grace kill). */
const IDLE = `trap 'exit 0' TERM; sleep 100000 & wait`;

const get = httpGet;

describe('end to end through the CLI on lab hosts with real containers', { concurrency: false, timeout: 230_000 }, () => {
  let c: ClusterLab;
  let unhook: () => void = () => {};
  const tmp = mkdtempSync(join(tmpdir(), 'shoal-e2e-'));
  /** The pinned image references (name@digest) as `service create` stored them. */
  const pinned = new Map<string, string>();

  const sh = (...args: string[]) =>
    new Promise<{ code: number; out: string; err: string }>((res) => {
      execFile(SHOAL, args, { env: { ...process.env, SHOAL_CONTEXT: c.contextPath }, timeout: 90_000 }, (e, out, err) =>
        res({ code: e ? (typeof (e as { code?: unknown }).code === 'number' ? (e as { code: number }).code : 1) : 0, out: String(out), err: String(err) }),
      );
    });
  const ok = async (...args: string[]) => {
    const r = await sh(...args);
    assert.equal(r.code, 0, `shoal ${args.join(' ')} failed (${r.code}): ${r.err}${r.out}`);
    return r.out;
  };
  const tasksOf = async (svc: string): Promise<any[]> => c.control('GET', `/v1/tasks?service=${svc}`);
  const running = async (svc: string) => (await tasksOf(svc)).filter((t) => t.status.state === 'running' && t.desiredState === 'running');
  const hostNames = async () => new Map<string, string>((await c.nodes()).map((n: any) => [n.id, n.description.hostname]));
  /** hostname → running tasks of the service there */
  const perNode = async (svc: string) => {
    const hosts = await hostNames();
    const m = new Map<string, number>();
    for (const t of await running(svc)) m.set(hosts.get(t.nodeId)!, (m.get(hosts.get(t.nodeId)!) ?? 0) + 1);
    return m;
  };
  /** Task ids whose container is alive on a lab host right now (shim state running and shim process alive). */
  const liveContainers = (host: string): Set<string> => {
    const dir = join(c.stateDir(host), 'tasks');
    const out = new Set<string>();
    if (!existsSync(dir)) return out;
    for (const id of readdirSync(dir)) {
      const d = join(dir, id);
      if (readState(d)?.status === 'running' && isAlive(d)) out.add(id);
    }
    return out;
  };
  const sum = (m: Map<string, number>) => [...m.values()].reduce((a, b) => a + b, 0);
  const fmt = (m: Map<string, number>) => JSON.stringify([...m].sort());

  before(async () => {
    unhook = cleanupOnExit(NAME);
    c = await ClusterLab.up({ name: NAME, managers: 1, workers: 2, executor: 'engine' });
    const images: [string, Buffer][] = [
      ['box1.tar', buildImage({ name: 'shoal/box:1', layers: [busyboxLayer()], cmd: ['sh', '-c', IDLE] }).archive],
      [
        'box2.tar',
        buildImage({ name: 'shoal/box:2', layers: [busyboxLayer()], cmd: ['sh', '-c', IDLE], env: ['PATH=/bin:/usr/bin:/sbin:/usr/sbin', 'BOX_VERSION=2'] })
          .archive,
      ],
      ['broken.tar', buildImage({ name: 'shoal/broken:1', layers: [busyboxLayer()], cmd: ['sh', '-c', 'echo this image is broken >&2; exit 1'] }).archive],
      ['web.tar', demoWebImage('shoal/demo-web:1').archive],
    ];
    for (const [file, data] of images) {
      writeFileSync(join(tmp, file), data);
      await localCall(c.stateDir('h1'), 'POST', '/images/load', { path: join(tmp, file) });
    }
  });

  after(async () => {
    await c?.down();
    unhook();
    rmSync(tmp, { recursive: true, force: true });
  });

  it('node labels drive placement: constraints and spread preferences land where they must', async () => {
    await ok('node', 'update', '--label-add', 'zone=a', '--label-add', 'disk=ssd', 'h1');
    await ok('node', 'update', '--label-add', 'zone=a', 'h2');
    await ok('node', 'update', '--label-add', 'zone=b', '--label-add', 'disk=ssd', 'h3');
    assert.deepEqual((await c.nodes()).find((n: any) => n.description.hostname === 'h3').spec.labels, { zone: 'b', disk: 'ssd' });

    await ok('service', 'create', '--name', 'ssd', '--replicas', '4', '--constraint', 'node.labels.disk==ssd', 'shoal/box:1');
    const ssd = await perNode('ssd');
    assert.equal(sum(ssd), 4);
    assert.deepEqual([...ssd.keys()].sort(), ['h1', 'h3'], `ssd tasks only on disk=ssd nodes: ${fmt(ssd)}`);
    assert.equal(ssd.get('h1'), 2);

    await ok('service', 'create', '--name', 'zoned', '--replicas', '4', '--placement-pref', 'spread=node.labels.zone', 'shoal/box:1');
    const z = await perNode('zoned');
    assert.equal(sum(z), 4);
    assert.equal((z.get('h1') ?? 0) + (z.get('h2') ?? 0), 2, `zone a gets half: ${fmt(z)}`);
    assert.equal(z.get('h3'), 2, `zone b (one node) gets the other half: ${fmt(z)}`);

    // both at once: only ssd nodes, spread over their zones
    await ok(
      'service',
      'create',
      '--name',
      'both',
      '--replicas',
      '2',
      '--constraint',
      'node.labels.disk==ssd',
      '--placement-pref',
      'spread=node.labels.zone',
      'shoal/box:1',
    );
    assert.equal(
      fmt(await perNode('both')),
      fmt(
        new Map([
          ['h1', 1],
          ['h3', 1],
        ]),
      ),
    );

    // the containers are real and where the store says
    const hosts = await hostNames();
    for (const t of await running('ssd')) assert.ok(liveContainers(hosts.get(t.nodeId)!).has(t.id), `container of ${t.id} alive on ${hosts.get(t.nodeId)}`);
    await ok('service', 'rm', 'ssd', 'zoned', 'both');
    await waitFor(() => ['h1', 'h2', 'h3'].every((h) => liveContainers(h).size === 0), 20_000, 'containers of removed services stopped');
  });

  it('a global service runs one task per node and follows a node joining and leaving', async () => {
    await ok('service', 'create', '--name', 'agent', '--mode', 'global', 'shoal/box:1');
    assert.equal(
      fmt(await perNode('agent')),
      fmt(
        new Map([
          ['h1', 1],
          ['h2', 1],
          ['h3', 1],
        ]),
      ),
    );

    // a new worker joins: it gets a task of its own
    const h = await c.lab.addHost();
    c.daemons.set(h.name, { host: h, pid: null, role: 'worker', nodeId: null });
    await c.startDaemon(h.name);
    const token = (await c.control('GET', '/v1/join-tokens')).worker as string;
    const joined = await sh('cluster', 'join', '--token', token, '--state-dir', c.stateDir(h.name), '--advertise-addr', h.ip, c.ctx.managers[0]!);
    assert.equal(joined.code, 0, joined.err);
    await waitFor(async () => (await perNode('agent')).get(h.name) === 1, 30_000, `global task running on ${h.name}`);
    assert.equal(liveContainers(h.name).size, 1, 'one container on the new node');
    assert.equal(sum(await perNode('agent')), 4);

    // it leaves the way an admin would: drain, leave, rm
    await ok('node', 'update', '--availability', 'drain', h.name);
    await waitFor(async () => !(await perNode('agent')).has(h.name) && liveContainers(h.name).size === 0, 20_000, `global task stopped on drained ${h.name}`);
    assert.equal(sum(await perNode('agent')), 3, 'a drained node gets no replacement elsewhere (global)');
    await ok('cluster', 'leave', '--state-dir', c.stateDir(h.name));
    await waitFor(
      async () => (await c.nodes()).find((n: any) => n.description.hostname === h.name)?.status.state === 'down',
      10_000,
      `${h.name} down after leaving`,
    );
    await ok('node', 'rm', h.name);
    assert.ok(!(await c.nodes()).some((n: any) => n.description.hostname === h.name), `${h.name} gone from node ls`);
    assert.equal(
      fmt(await perNode('agent')),
      fmt(
        new Map([
          ['h1', 1],
          ['h2', 1],
          ['h3', 1],
        ]),
      ),
    );
    await ok('service', 'rm', 'agent');
    await waitFor(() => ['h1', 'h2', 'h3'].every((x) => liveContainers(x).size === 0), 20_000, 'global service stopped everywhere');
  });

  it('create, then scale 6 → 30 → 6 with every task running each time', async () => {
    const out = await ok(
      'service',
      'create',
      '--name',
      'web',
      '--replicas',
      '6',
      '--stop-grace-period',
      '2s',
      '--rollback-monitor',
      '500ms',
      '--rollback-parallelism',
      '3',
      'shoal/box:1',
    );
    assert.match(out, /converged/);
    const svc = await c.control('GET', '/v1/services/web');
    assert.match(svc.spec.task.image, /^shoal\/box:1@sha256:[0-9a-f]{64}$/);
    pinned.set('box1', svc.spec.task.image);
    assert.equal((await running('web')).length, 6);
    const dist6 = await perNode('web');
    assert.equal(
      fmt(dist6),
      fmt(
        new Map([
          ['h1', 2],
          ['h2', 2],
          ['h3', 2],
        ]),
      ),
    );

    await ok('service', 'scale', 'web=30');
    const r30 = await running('web');
    assert.equal(r30.length, 30);
    const d30 = await perNode('web');
    assert.equal(
      fmt(d30),
      fmt(
        new Map([
          ['h1', 10],
          ['h2', 10],
          ['h3', 10],
        ]),
      ),
    );
    // every one is a live container on its node
    const live = new Set(['h1', 'h2', 'h3'].flatMap((h) => [...liveContainers(h)]));
    assert.ok(
      r30.every((t) => live.has(t.id)),
      'all 30 containers alive',
    );
    assert.deepEqual((await c.control('GET', '/v1/services/web')).replicas, { running: 30, desired: 30 });

    await ok('service', 'scale', 'web=6');
    await waitFor(async () => (await running('web')).length === 6, 10_000, '6 running');
    const keep = new Set((await running('web')).map((t) => t.id));
    await waitFor(
      () => {
        const alive = ['h1', 'h2', 'h3'].flatMap((h) => [...liveContainers(h)]);
        return alive.length === 6 && alive.every((id) => keep.has(id));
      },
      20_000,
      'the 24 surplus containers stopped',
    );
    assert.ok(Math.max(...(await perNode('web')).values()) <= 2, `after scale-down: ${fmt(await perNode('web'))}`);
    assert.match(await ok('service', 'ls'), /web\s+replicated\s+6\/6\s+shoal\/box:1/);
  });

  it('drain moves tasks off a node and keeps new ones away; pause keeps what runs but takes nothing new; activate', async () => {
    await ok('node', 'update', '--availability', 'drain', 'h2');
    await waitFor(
      async () => {
        const d = await perNode('web');
        return !d.has('h2') && sum(d) === 6;
      },
      15_000,
      'web tasks moved off h2 and replaced elsewhere',
    );
    await waitFor(() => liveContainers('h2').size === 0, 15_000, 'h2 containers stopped');

    await ok('service', 'scale', 'web=8');
    let d = await perNode('web');
    assert.equal(sum(d), 8);
    assert.ok(!d.has('h2'), `nothing lands on a drained node: ${fmt(d)}`);

    await ok('node', 'update', '--availability', 'pause', 'h3');
    const onH3 = d.get('h3') ?? 0;
    assert.ok(onH3 > 0);
    await ok('service', 'scale', 'web=10');
    d = await perNode('web');
    assert.equal(sum(d), 10);
    assert.equal(d.get('h3'), onH3, `a paused node keeps its tasks and gets no new ones: ${fmt(d)}`);
    assert.ok(!d.has('h2'));
    assert.equal(d.get('h1'), 10 - onH3);

    await ok('node', 'update', '--availability', 'active', 'h2');
    await ok('node', 'update', '--availability', 'active', 'h3');
    assert.match(await ok('node', 'ls'), /h2\s+Ready\s+Active/);
    await ok('service', 'scale', 'web=13');
    d = await perNode('web');
    assert.equal(sum(d), 13);
    assert.equal(d.get('h2'), 3, `an active node gets tasks again (the emptiest first): ${fmt(d)}`);
    await ok('service', 'scale', 'web=6');
    await waitFor(async () => (await running('web')).length === 6, 10_000, '6 running');
  });

  it('rolling update with --update-order start-first never drops below the replica count', async () => {
    const before = new Set((await running('web')).map((t) => t.id));
    let min = Infinity;
    let polling = true;
    const poll = (async () => {
      while (polling) {
        const ts = await tasksOf('web').catch(() => null);
        if (ts) min = Math.min(min, ts.filter((t) => t.status.state === 'running').length);
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    try {
      const out = await ok(
        'service',
        'update',
        '--image',
        'shoal/box:2',
        '--update-order',
        'start-first',
        '--update-parallelism',
        '2',
        '--update-monitor',
        '300ms',
        'web',
      );
      assert.match(out, /converged/);
    } finally {
      polling = false;
      await poll;
    }
    assert.ok(min >= 6, `running tasks dropped to ${min} during a start-first update`);
    const svc = await c.control('GET', '/v1/services/web');
    assert.equal(svc.updateStatus.state, 'completed');
    pinned.set('box2', svc.spec.task.image);
    const r = await running('web');
    assert.equal(r.length, 6);
    assert.ok(
      r.every((t) => t.spec.image === pinned.get('box2') && !before.has(t.id)),
      'every task replaced by one of the new image',
    );
    // start-first: each new task was created before the old one of its slot stopped
    const all = (await c.control('GET', '/v1/tasks?service=web&all=1')) as any[];
    for (const t of r) {
      const old = all.filter((o) => o.slot === t.slot && before.has(o.id));
      for (const o of old) assert.ok(o.status.timestamp >= t.createdAt, `slot ${t.slot}: old task stopped before the new one existed`);
    }
    await waitFor(() => ['h1', 'h2', 'h3'].flatMap((h) => [...liveContainers(h)]).length === 6, 15_000, 'old containers stopped');
  });

  it('service rollback returns to the previous image', async () => {
    const out = await ok('service', 'rollback', 'web');
    assert.match(out, /converged/);
    const svc = await c.control('GET', '/v1/services/web');
    assert.equal(svc.spec.task.image, pinned.get('box1'));
    assert.equal(svc.updateStatus.state, 'rollback_completed');
    await waitFor(
      async () => {
        const r = await running('web');
        return r.length === 6 && r.every((t) => t.spec.image === pinned.get('box1'));
      },
      15_000,
      'web back on box:1',
    );
  });

  it('an update to a broken image with --update-failure-action rollback rolls back automatically', async () => {
    const bad = await sh('service', 'update', '--image', 'shoal/broken:1', '--update-failure-action', 'rollback', '--update-monitor', '2s', 'web');
    assert.notEqual(bad.code, 0, `a failed update must not succeed: ${bad.out}`);
    assert.match(bad.err, /rolled back/);
    await waitFor(
      async () => {
        const s = await c.control('GET', '/v1/services/web');
        const r = await running('web');
        return s.updateStatus?.state === 'rollback_completed' && r.length === 6 && r.every((t) => t.spec.image === pinned.get('box1'));
      },
      30_000,
      'automatic rollback completed, web back on box:1',
    );
    const svc = await c.control('GET', '/v1/services/web');
    assert.equal(svc.spec.task.image, pinned.get('box1'), 'the service ends with the previous image');
    assert.match(bad.err, /update failed and was rolled back/);
    assert.match(bad.out, /rolled back due to failure or early termination of task \w+/, 'the progress names the failed task');
    assert.match(svc.previousSpec.task.image, /^shoal\/broken:1@/);
    const hist = await ok('service', 'ps', '--all', 'web');
    assert.match(hist, /shoal\/broken:1/);
    assert.match(hist, /Failed/);
  });

  it('tasks reach another service by name across hosts, and the routing mesh answers on every host', async () => {
    await ok('network', 'create', '--driver', 'overlay', 'front');
    await ok(
      'service',
      'create',
      '--name',
      'site',
      '--replicas',
      '2',
      '--network',
      'front',
      '-p',
      '8080:80',
      '--constraint',
      'node.role==worker',
      '--stop-grace-period',
      '1s',
      'shoal/demo-web:1',
    );
    await ok('service', 'create', '--name', 'client', '--network', 'front', '--constraint', 'node.role==manager', 'shoal/box:1');
    const hosts = await hostNames();
    assert.deepEqual((await running('site')).map((t) => hosts.get(t.nodeId)).sort(), ['h2', 'h3']);
    const client = (await running('client'))[0];
    assert.equal(hosts.get(client.nodeId), 'h1', 'the client is on another host than every site task');
    const httpFromClient = (target: string) => sh('task', 'exec', client.id, '--', 'sh', '-c', `printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 ${target} 80`);
    await waitFor(async () => /Hello from/.test((await httpFromClient('site')).out), 20_000, 'client reaches site by name');
    // the mesh: every host answers on 8080, including h1 which runs no site task
    for (const h of c.lab.hosts.filter((x) => ['h1', 'h2', 'h3'].includes(x.name))) {
      await waitFor(async () => /Hello from/.test((await get(h.ip, 8080)) ?? ''), 15_000, `mesh on ${h.name} (${h.ip}:8080)`);
    }
    const seen = new Set<string>();
    for (let i = 0; i < 12; i++) {
      const body = await get(c.host(`h${1 + (i % 3)}`).ip, 8080);
      assert.match(body ?? '', /Hello from/, `request ${i}`);
      seen.add(body!.trim());
    }
    assert.equal(seen.size, 2, `requests reach both site tasks: ${[...seen].join(' | ')}`);
    await ok('service', 'rm', 'site', 'client');
  });

  it('service logs merges every node, warns about a node that is down and still succeeds; --tail; task exec exit codes', async () => {
    await ok('service', 'create', '--name', 'talk', '--replicas', '3', 'shoal/box:1', 'sh', '-c', `echo line-1; echo line-2; echo line-3; ${IDLE}`);
    const hosts = await hostNames();
    assert.deepEqual((await running('talk')).map((t) => hosts.get(t.nodeId)).sort(), ['h1', 'h2', 'h3']);
    await waitFor(async () => ((await sh('service', 'logs', 'talk')).out.match(/line-3/g) ?? []).length === 3, 10_000, 'logs of the 3 tasks');

    c.killDaemon('h3');
    try {
      await waitFor(async () => (await c.nodes()).find((n: any) => n.description.hostname === 'h3')?.status.state === 'down', 10_000, 'h3 down');
      const r = await sh('service', 'logs', 'talk');
      assert.equal(r.code, 0, `service logs failed with a node down: ${r.err}`);
      for (const h of ['h1', 'h2']) assert.match(r.out, new RegExp(`talk\\.\\d+\\.\\w+@${h}\\s+\\| line-1`), `lines from the task on ${h}`);
      assert.doesNotMatch(r.out, /@h3/);
      assert.match(r.err, /warning: node h3 \(\w+\) is down/, 'a warning naming the down node');

      const tail = await sh('service', 'logs', '--tail', '1', 'talk');
      assert.equal(tail.code, 0, tail.err);
      const lines = tail.out.trim().split('\n');
      const upTasks = (await tasksOf('talk')).filter(
        (t) => ['h1', 'h2'].includes(hosts.get(t.nodeId)!) && ['running', 'complete', 'shutdown', 'failed'].includes(t.status.state),
      );
      assert.ok(lines.length >= 2 && lines.length <= upTasks.length, `one line per task on the up nodes: ${tail.out}`);
      assert.ok(
        lines.every((l) => /\| line-3$/.test(l)),
        `--tail 1 shows only the last line of each task: ${tail.out}`,
      );
      assert.match(tail.err, /h3/);

      const onH1 = (await running('talk')).find((t) => hosts.get(t.nodeId) === 'h1');
      assert.ok(onH1);
      const ex = await sh('task', 'exec', onH1.id, '--', 'sh', '-c', 'echo out; echo err >&2; exit 3');
      assert.equal(ex.code, 3, `task exec exit code: ${ex.err}`);
      assert.equal(ex.out, 'out\n');
      assert.equal(ex.err, 'err\n');
      assert.equal((await sh('task', 'exec', onH1.id, '--', 'true')).code, 0);
    } finally {
      await c.startDaemon('h3');
    }
    await waitFor(async () => (await c.nodes()).find((n: any) => n.description.hostname === 'h3')?.status.state === 'ready', 10_000, 'h3 ready again');
  });
});
