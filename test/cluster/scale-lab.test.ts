// The short version of `npm run bench:scale`, so the scale harness cannot rot: one real manager in a lab
// host, one agent farm (lab/agent-farm.ts) in another running a few hundred simulated nodes (each joined
// with the worker token and a certificate of its own, each on a real mutual-TLS dispatcher session), a
// service of a few thousand replicas run by their test executors. Asserts every node Ready, every task
// running, a killed agent's node marked Down, and that the farm reported its own lag. Correctness only:
// the timeouts are generous (the machine is shared); figures belong to the benchmark.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ClusterLab, waitFor } from '../../lab/cluster-lab.ts';
import { FarmProcess } from '../../lab/agent-farm.ts';
import { cleanupOnExit } from '../../lab/lab.ts';

const NAME = `sc${process.pid.toString(36).slice(-5)}`;
const NODES = Number(process.env.SHOAL_SCALE_LAB_NODES ?? 200);
const TASKS = Number(process.env.SHOAL_SCALE_LAB_TASKS ?? 2000);

describe('scale lab: a farm of simulated agents against a real manager', { concurrency: false, timeout: 240_000 }, () => {
  let c: ClusterLab;
  let farm: FarmProcess | null = null;
  let unhook: () => void = () => {};

  before(async () => {
    unhook = cleanupOnExit(NAME);
    c = await ClusterLab.up({ name: NAME, managers: 1, workers: 0, spareHosts: 1 });
    // A shared 2-core machine can starve the farm for seconds; a longer heartbeat period (Down after 3
    // missed) keeps a starved simulator from looking like dead nodes. Timing is bench:scale's business.
    await c.control('POST', '/v1/cluster/update', { heartbeatPeriodMs: 5000 });
  });

  after(async () => {
    farm?.stop();
    await c?.down();
    unhook();
  });

  const readyNodes = async () => (await c.nodes().catch(() => [])).filter((n) => n.status?.state === 'ready' && n.spec?.role === 'worker').length;

  it(`${NODES} simulated nodes join with their own certificates and become Ready`, async () => {
    const tokens = await c.control('GET', '/v1/join-tokens');
    const host = c.lab.hosts[1]!;
    farm = FarmProcess.spawn(host, {
      managers: c.ctx.managers,
      token: tokens.worker,
      caPem: c.ctx.admin.ca,
      count: NODES,
      namePrefix: 'sim',
      addr: host.ip,
      joinConcurrency: 16,
    });
    await waitFor(
      () => {
        if (farm!.error) throw new Error(`agent farm: ${farm!.error}`);
        return farm!.joined !== undefined;
      },
      150_000,
      `${NODES} joins`,
      100,
    );
    assert.equal(farm.joined!.n, NODES);
    await waitFor(async () => (await readyNodes()) >= NODES, 90_000, `${NODES} nodes ready`, 500).catch(async (e) => {
      const states: Record<string, number> = {};
      for (const n of await c.nodes().catch(() => [])) states[n.status?.state] = (states[n.status?.state] ?? 0) + 1;
      throw new Error(`${(e as Error).message}: node states ${JSON.stringify(states)}; ${farm!.summary()}`);
    });
    // Each node holds a certificate of its own: as many distinct node ids as nodes.
    const ids = new Set((await c.nodes()).filter((n) => n.spec?.role === 'worker').map((n) => n.id));
    assert.equal(ids.size, NODES);
  });

  it(`a service of ${TASKS} replicas runs on them, every task running`, async () => {
    const { id } = await c.control('POST', '/v1/services', {
      spec: { name: 'scale', mode: { replicated: { replicas: TASKS } }, task: { image: 'busybox:latest' } },
    });
    await waitFor(
      async () => ((await c.control('GET', `/v1/services/${id}`).catch(() => null))?.replicas?.running ?? 0) >= TASKS,
      120_000,
      `${TASKS} tasks running`,
      500,
    );
    const tasks = await c.control('GET', `/v1/tasks?service=${id}`);
    assert.ok(Array.isArray(tasks), `GET /v1/tasks answered ${JSON.stringify(tasks)?.slice(0, 200)}`);
    const running = tasks.filter((t) => t.status?.state === 'running');
    assert.equal(running.length, TASKS);
    // Spread over the farm's nodes, not piled on a few.
    assert.ok(new Set(running.map((t) => t.nodeId)).size >= Math.min(NODES, TASKS) * 0.9, 'tasks spread over the simulated nodes');
  });

  it("a simulated node's agent killed: the manager marks the node Down", async () => {
    const nodeId = await farm!.kill(1);
    await waitFor(async () => (await c.control('GET', `/v1/nodes/${nodeId}`).catch(() => null))?.status?.state === 'down', 60_000, 'the node down', 100);
  });

  it('the farm reported its own lag (event loop, heartbeat lateness, status backlog)', () => {
    assert.ok(farm!.lag.length >= 3, `lag reports: ${farm!.lag.length}`);
    const last = farm!.lag.at(-1)!;
    assert.equal(last.agents, NODES);
    for (const k of ['loopP99', 'hbLateP99', 'statusBacklog', 'hbSent'] as const) assert.ok(Number.isFinite(last[k]) && last[k] >= 0, `${k} = ${last[k]}`);
    assert.ok(
      farm!.lag.some((l) => l.hbSent > 0),
      'heartbeats were sent and timed',
    );
    const line = farm!.summary();
    assert.match(line, /event-loop delay p99 \d+ ms/);
    console.log(`# ${line}`);
  });
});
