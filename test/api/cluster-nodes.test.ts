// The cluster and node routes (api/cluster.ts, api/nodes.ts) through the real Router, an in-memory
// store and an in-process HTTP server on loopback, with this manager scripted as the leader: cluster
// settings and store limits are validated before anything is written, node updates are typed field by
// field, a hostname two nodes share is ambiguous, and the dispatcher's counters are served.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Router, sendError } from '../../manager/api/http.ts';
import { Gate } from '../../manager/api/gate.ts';
import { registerClusterRoutes } from '../../manager/api/cluster.ts';
import { registerNodeRoutes } from '../../manager/api/nodes.ts';
import type { Members } from '../../manager/members.ts';
import type { RaftNode } from '../../manager/raft/node.ts';
import { Store } from '../../manager/store/store.ts';
import { DEFAULT_LIMITS, defaultClusterSpec, type Cluster, type Draft, type Node } from '../../api/objects.ts';
import { StopDrain } from '../../manager/dispatcher/drain.ts';
import { DispatcherCounters } from '../../manager/dispatcher/stats.ts';
import { testCluster } from '../helpers/cluster.ts';

function node(id: string, hostname: string): Draft<Node> {
  return {
    id,
    kind: 'node',
    spec: { labels: {}, availability: 'active', role: 'worker' },
    description: { hostname, platform: { os: 'linux', arch: 'x64' }, resources: { nanoCpus: 1e9, memoryBytes: 1 << 30 }, engineVersion: '', addr: '10.0.0.1' },
    status: { state: 'ready', message: '', addr: '10.0.0.1' },
  };
}

describe('cluster and node routes', () => {
  let server: Server;
  let base = '';
  const store = new Store();
  let broadcasts = 0;

  before(async () => {
    await store.update((tx) => {
      tx.create(testCluster());
      tx.create(node('aaa111', 'web1'));
      tx.create(node('bbb222', 'twin'));
      tx.create(node('ccc333', 'twin'));
    });
    const raft = { status: () => ({ role: 'leader', leader: 'm1', voters: ['m1'], learners: [], members: {} }), read: async () => {} } as unknown as RaftNode;
    const members = {
      raftInfo: () => ({ nodeId: 'm1' }),
      managerAddrs: () => [],
      leaderAddr: () => null,
      reachableManagers: () => ({ reachable: 1, total: 1 }),
      isReachable: () => true,
    } as unknown as Members;
    const gate = new Gate(raft, store, members, 1000);
    const counters = new DispatcherCounters();
    counters.drop('not-owner', 3);
    const r = new Router<{ cn: string }>();
    registerClusterRoutes(r, {
      store,
      raft,
      gate,
      members,
      clusterId: 'c1',
      broadcast: () => ++broadcasts,
      dispatcherStats: () => ({ ...counters.snapshot([], 0), drain: new StopDrain().stats() }),
    });
    registerNodeRoutes(r, { store, raft, gate, members, selfId: 'm1', closeSession: () => {} });
    server = createServer((req, res) => {
      r.dispatch({ cn: 'admin' }, req, res)
        .then((ok) => {
          if (!ok) sendError(res, new Error('no route'));
        })
        .catch((e) => sendError(res, e));
    });
    server.listen(0, '127.0.0.1');
    await new Promise((res) => server.once('listening', res));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  after(async () => {
    await new Promise((res) => server.close(res));
  });

  async function call(method: string, path: string, body?: unknown): Promise<{ status: number; body: any }> {
    const res = await fetch(base + path, { method, ...(body !== undefined ? { body: typeof body === 'string' ? body : JSON.stringify(body) } : {}) });
    return { status: res.status, body: await res.json() };
  }

  const spec = () => (store.view((tx) => tx.get('cluster', 'cluster')) as Cluster).spec;

  it('cluster update: settings and limits are validated first, then written together', async () => {
    const bad: [unknown, RegExp][] = [
      [{ heartbeatPeriodMs: 50 }, /heartbeat period/],
      [{ nodeCertValidityMs: 'long' }, /certificate expiry/],
      [{ limits: { maxReplicas: 0 } }, /limits\.maxReplicas/],
      [{ limits: { nope: 1 } }, /limits\.nope: unknown setting/],
      [{ limits: 'all of them' }, /limits must be an object/],
      [{ heartbeatPeriodMs: 2000, limits: { maxTasks: -1 } }, /limits\.maxTasks/],
    ];
    for (const [body, msg] of bad) {
      const r = await call('POST', '/v1/cluster/update', body);
      assert.equal(r.status, 400, JSON.stringify(body));
      assert.match(r.body.error.message, msg);
    }
    assert.equal(spec().dispatcher?.heartbeatPeriodMs ?? 1000, 1000, 'nothing of a refused update was written');
    const ok = await call('POST', '/v1/cluster/update', { heartbeatPeriodMs: 2000, limits: { maxReplicas: 50 } });
    assert.equal(ok.status, 200);
    assert.equal(spec().dispatcher?.heartbeatPeriodMs, 2000);
    assert.equal(spec().limits?.maxReplicas, 50);
    assert.equal(spec().limits?.maxTasks, DEFAULT_LIMITS.maxTasks, 'other limits keep their values');
  });

  it('GET /v1/cluster hides the CA key and the join tokens', async () => {
    const r = await call('GET', '/v1/cluster');
    assert.equal(r.status, 200);
    assert.equal(r.body.rootCa, undefined);
    assert.equal(r.body.joinTokens, undefined);
    assert.equal(r.body.raft.nodeId, 'm1');
  });

  it('rotate-node-certs notifies the connected nodes; dispatcher stats are served', async () => {
    assert.deepEqual((await call('POST', '/v1/cluster/rotate-node-certs')).body, { notified: 1 });
    const s = await call('GET', '/v1/dispatcher/stats');
    assert.equal(s.status, 200);
    assert.equal(s.body.leader, true);
    assert.equal(s.body.dropped.byReason['not-owner'], 3);
    assert.equal(s.body.sessions.open, 0);
  });

  it('node update: each field typed, refused whole on any bad one', async () => {
    const bad: [unknown, RegExp][] = [
      [null, /must be a JSON object/],
      [{ availability: 'gone' }, /availability must be active, pause or drain/],
      [{ labelAdd: { 'bad key!': 'x' } }, /invalid label key/],
      [{ labelAdd: { zone: 5 } }, /label zone must have a string value/],
      [{ labelAdd: ['zone'] }, /labelAdd must be an object/],
      [{ labelRm: 'zone' }, /labelRm must be a list/],
      [{ labelAdd: { zone: 'eu' }, labelRm: ['missing'] }, /has no label missing/],
    ];
    for (const [body, msg] of bad) {
      const r = await call('POST', '/v1/nodes/web1/update', body === null ? 'null' : body);
      assert.equal(r.status, 400, JSON.stringify(body));
      assert.match(r.body.error.message, msg);
    }
    assert.deepEqual((store.view((tx) => tx.get('node', 'aaa111')) as Node).spec.labels, {}, 'nothing written');
    const ok = await call('POST', '/v1/nodes/web1/update', { labelAdd: { zone: 'eu' }, availability: 'drain' });
    assert.equal(ok.status, 200);
    assert.equal(ok.body.spec.labels.zone, 'eu');
    assert.equal(ok.body.spec.availability, 'drain');
  });

  it('a hostname two nodes share is ambiguous; the id still works', async () => {
    const r = await call('GET', '/v1/nodes/twin');
    assert.equal(r.status, 400);
    assert.match(r.body.error.message, /node name twin is ambiguous/);
    assert.equal((await call('GET', '/v1/nodes/ccc')).body.id, 'ccc333');
    assert.equal((await call('GET', '/v1/nodes/nosuch')).status, 404);
  });
});
