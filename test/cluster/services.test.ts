// Services through the CLI against real managers in lab hosts (tasks run on the test executor until
// the container engine lands): create, scale, placement (constraints, spread, pending reasons), global
// services, drain, rolling updates (start-first, automatic rollback, manual rollback) and bad specs. A
// rolling update that survives the leader being killed is drilled with real containers in drills.test.ts.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ClusterLab, waitFor } from '../../lab/cluster-lab.ts';
import { cleanupOnExit } from '../../lab/lab.ts';

const NAME = `s${process.pid % 10000}`;
const SHOAL = join(resolve(fileURLToPath(new URL('../..', import.meta.url))), 'bin', 'shoal');

describe('services on lab hosts, through the CLI', { concurrency: false }, () => {
  let c: ClusterLab;
  let unhook: () => void = () => {};

  before(async () => {
    unhook = cleanupOnExit(NAME);
    c = await ClusterLab.up({ name: NAME, managers: 3, workers: 2 });
  });
  after(async () => {
    await c?.down();
    unhook();
  });

  const sh = (...args: string[]) =>
    new Promise<{ code: number; out: string; err: string }>((res) => {
      execFile(SHOAL, args, { env: { ...process.env, SHOAL_CONTEXT: c.contextPath }, timeout: 90_000 }, (e, out, err) =>
        res({ code: e ? ((e as { code?: number }).code ?? 1) : 0, out: String(out), err: String(err) }),
      );
    });
  const ok = async (...args: string[]) => {
    const r = await sh(...args);
    assert.equal(r.code, 0, `shoal ${args.join(' ')} failed: ${r.err}${r.out}`);
    return r.out;
  };
  const tasksOf = async (svc: string) => (await c.control('GET', `/v1/tasks?service=${svc}`)) as any[];
  const running = async (svc: string) => (await tasksOf(svc)).filter((t) => t.status.state === 'running' && t.desiredState === 'running');
  const hostOf = async () => new Map<string, string>((await c.nodes()).map((n: any) => [n.id, n.description.hostname]));
  const perNode = async (svc: string) => {
    const hosts = await hostOf();
    const m = new Map<string, number>();
    for (const t of await running(svc)) m.set(hosts.get(t.nodeId)!, (m.get(hosts.get(t.nodeId)!) ?? 0) + 1);
    return m;
  };

  it('service create converges and spreads replicas across nodes', async () => {
    const out = await ok('service', 'create', '--name', 'web', '--replicas', '6', 'nginx:1.25');
    assert.match(out, /converged/);
    const dist = await perNode('web');
    assert.equal(
      [...dist.values()].reduce((a, b) => a + b, 0),
      6,
    );
    assert.ok(Math.max(...dist.values()) <= 2, `uneven spread ${JSON.stringify([...dist])}`);
    const ls = await ok('service', 'ls');
    assert.match(ls, /web\s+replicated\s+6\/6\s+nginx:1.25/);
  });

  it('scales 6 → 30 → 6, removing from the busiest nodes first', async () => {
    await ok('service', 'scale', 'web=30');
    assert.equal((await running('web')).length, 30);
    const big = await perNode('web');
    assert.ok(Math.max(...big.values()) - Math.min(...big.values()) <= 1, `30 tasks unevenly spread: ${JSON.stringify([...big])}`);
    await ok('service', 'scale', 'web=6');
    await waitFor(async () => (await running('web')).length === 6, 10_000, '6 running');
    const small = await perNode('web');
    assert.ok(Math.max(...small.values()) <= 2, `after scale-down: ${JSON.stringify([...small])}`);
  });

  it('invalid specs are refused with the field and the reason, and nothing is stored', async () => {
    const before = (await c.control('GET', '/v1/services')).length;
    const cases: [string[], RegExp][] = [
      [['--name', 'bad1', '--replicas', '-1', 'nginx'], /replicas/],
      [['--name', 'bad2', '--constraint', 'node.label.zone==a', 'nginx'], /unknown key/],
      [['--name', 'bad3', '--mode', 'global', '--replicas', '3', 'nginx'], /replicas/],
      [['--name', 'web', 'nginx'], /already in use/],
      [['--name', 'bad4', '--limit-memory', '12q', 'nginx'], /--limit-memory: invalid size/],
      [['--name', 'bad5', '--update-failure-action', 'explode', 'nginx'], /failure/],
    ];
    for (const [args, re] of cases) {
      const r = await sh('service', 'create', '-d', ...args);
      assert.notEqual(r.code, 0, `accepted: ${args.join(' ')}`);
      assert.match(r.err, re);
      assert.equal(r.err.trim().split('\n').length, 1, `not one line: ${r.err}`);
    }
    assert.equal((await c.control('GET', '/v1/services')).length, before);
  });

  it('a task that fits nowhere stays pending with a reason, and is placed once a node qualifies', async () => {
    await ok('service', 'create', '-d', '--name', 'eu', '--constraint', 'node.labels.zone==eu', 'busybox');
    await waitFor(async () => (await tasksOf('eu'))[0]?.status.message?.startsWith('no suitable node') ?? false, 5000, 'pending reason');
    const ps = await ok('service', 'ps', 'eu');
    assert.match(ps, /no suitable node \(5 nodes fail constraint node\.labels\.zone==eu\)/);
    await ok('node', 'update', '--label-add', 'zone=eu', 'h5');
    await waitFor(async () => (await running('eu')).length === 1, 5000, 'eu placed');
    assert.deepEqual([...(await perNode('eu')).keys()], ['h5']);
  });

  it('spread preference splits replicas evenly across label values', async () => {
    await ok('node', 'update', '--label-add', 'dc=a', 'h1');
    await ok('node', 'update', '--label-add', 'dc=a', 'h2');
    for (const h of ['h3', 'h4', 'h5']) await ok('node', 'update', '--label-add', 'dc=b', h);
    await ok('service', 'create', '--name', 'spread', '--replicas', '6', '--placement-pref', 'spread=node.labels.dc', 'busybox');
    const d = await perNode('spread');
    const inA = (d.get('h1') ?? 0) + (d.get('h2') ?? 0);
    assert.equal(inA, 3, `zone a got ${inA} of 6: ${JSON.stringify([...d])}`);
  });

  it('a global service runs one task per node and follows drain and activate', async () => {
    await ok('service', 'create', '--name', 'agent', '--mode', 'global', 'busybox');
    assert.equal((await running('agent')).length, 5);
    await ok('node', 'update', '--availability', 'drain', 'h4');
    await waitFor(
      async () => !(await perNode('agent')).has('h4') && !(await perNode('web')).has('h4') && (await running('web')).length === 6,
      8000,
      'tasks moved off h4 and replaced elsewhere',
    );
    await ok('node', 'update', '--availability', 'active', 'h4');
    await waitFor(async () => (await perNode('agent')).has('h4'), 8000, 'global task back on h4');
  });

  it('rolling update with start-first, manual rollback, then an update to a broken image rolls back automatically', async () => {
    const out = await ok(
      'service',
      'update',
      '--image',
      'nginx:1.26',
      '--update-order',
      'start-first',
      '--update-parallelism',
      '2',
      '--update-monitor',
      '200ms',
      'web',
    );
    assert.match(out, /converged/);
    assert.ok((await running('web')).every((t) => t.spec.image === 'nginx:1.26'));
    await ok('service', 'rollback', 'web');
    const onImage = (img: string) => async () => {
      const r = await running('web');
      return r.length === 6 && r.every((t) => t.spec.image === img);
    };
    await waitFor(onImage('nginx:1.25'), 15_000, 'web rolled back to nginx:1.25');
    const bad = await sh('service', 'update', '--image', 'fail:30', '--update-failure-action', 'rollback', '--update-monitor', '1s', 'web');
    assert.notEqual(bad.code, 0);
    assert.match(bad.err, /rolled back/);
    await waitFor(onImage('nginx:1.25'), 15_000, 'web back on nginx:1.25 after the automatic rollback');
    const hist = await ok('service', 'ps', '--all', 'web');
    assert.match(hist, /\\_ web\.1/);
    assert.match(hist, /Failed/);
  });
});
