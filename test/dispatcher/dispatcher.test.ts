// The dispatcher against real mutual-TLS WebSockets on loopback, with an in-memory store (no Raft):
// what a hostile or broken node can and cannot do to the leader and to the other nodes.
import { serveDispatcher, until, joinedNode as node, helloDescription as desc, type ServedDispatcher } from '../helpers/dispatcher-server.ts';
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { WebSocket } from 'ws';
import { makeTestCa, type TestCa } from '../helpers/pki.ts';
import { createCsr, generateKeyPem } from '../../manager/ca/pki.ts';
import { Dispatcher } from '../../manager/dispatcher/dispatcher.ts';
import { Gate, type UpdateFn } from '../../manager/api/gate.ts';
import { soleLeader } from '../helpers/leader.ts';
import { Store } from '../../manager/store/store.ts';
import type { Cluster, Draft, Node, Task } from '../../api/objects.ts';
import { testCluster } from '../helpers/cluster.ts';

function task(id: string, nodeId: string): Draft<Task> {
  return {
    id,
    kind: 'task',
    serviceId: 'svc',
    slot: 1,
    nodeId,
    spec: { image: 'app:1' },
    desiredState: 'running',
    status: { state: 'assigned', timestamp: '2026-01-01T00:00:00.000Z', message: 'assigned' },
    serviceAnnotations: { name: 'web', labels: {} },
    networks: [],
  };
}

const upd = (taskId: string, state: string) => ({ taskId, state, message: state, timestamp: new Date().toISOString() });
/** A gate whose store refuses any write of task p1: stands in for a write that fails for one entry. */
class PoisonGate extends Gate {
  override update(fn: UpdateFn): Promise<void> {
    return super.update((tx) => {
      const guarded = new Proxy(tx, {
        get(t, k) {
          if (k === 'update') {
            return (o: { id: string }) => {
              if (o.id === 'p1') throw new Error('poisoned write');
              return (t.update as (x: unknown) => unknown)(o);
            };
          }
          const v = (t as unknown as Record<string | symbol, unknown>)[k];
          return typeof v === 'function' ? v.bind(t) : v;
        },
      });
      return fn(guarded);
    });
  }
}

interface Agent {
  ws: WebSocket;
  got: { t: string; [k: string]: unknown }[];
  closed: { code: number; reason: string } | null;
  send(m: unknown): void;
}

describe('dispatcher sessions (real TLS WebSockets, in-memory store)', () => {
  let ca: TestCa;
  let served: ServedDispatcher;
  let url: string;
  let store: Store;
  let d: Dispatcher;
  const agents: Agent[] = [];
  const logs: string[] = [];
  /** What certProblem answers for every session (null: all certificates are fine). */
  let refuse: string | null = null;

  before(async () => {
    ca = makeTestCa();
    const serverCert = ca.issue('m1', { ou: 'manager' });
    store = new Store();
    await store.update((tx) => {
      tx.create(testCluster({ ca: { caCertPem: ca.caCert, caKeyPem: ca.caKey } }));
      for (const id of ['n1', 'n2', 'n3']) tx.create(node(id));
      tx.create(task('t1', 'n1'));
      tx.create(task('t2', 'n2'));
      tx.create(task('t3', 'n1'));
      tx.create(task('p1', 'n1'));
    });
    const { raft, members } = soleLeader();
    d = new Dispatcher({
      store,
      raft,
      gate: new PoisonGate(raft, store, members, 1000),
      members,
      clusterId: 'c',
      certProblem: () => refuse,
      log: (l) => logs.push(l),
    });
    served = await serveDispatcher(d, { key: serverCert.key, cert: serverCert.cert, ca: ca.caCert });
    url = served.url;
  });

  after(async () => {
    for (const a of agents) a.ws.terminate();
    await served?.close();
  });

  async function agent(id: string): Promise<Agent> {
    const c = ca.issue(id, { ou: 'worker' });
    const ws = new WebSocket(url, { key: c.key, cert: c.cert, ca: ca.caCert, maxPayload: 64 << 20 });
    const a: Agent = { ws, got: [], closed: null, send: (m) => ws.send(typeof m === 'string' ? m : JSON.stringify(m)) };
    ws.on('message', (data) => a.got.push(JSON.parse(String(data))));
    ws.on('close', (code, reason) => (a.closed = { code, reason: String(reason) }));
    ws.on('error', () => {});
    agents.push(a);
    await once(ws, 'open');
    return a;
  }

  const taskState = (id: string) => (store.view((tx) => tx.get('task', id)) as Task).status.state;

  it('hello: welcome, assignments, and only the validated description is stored', async () => {
    const a = await agent('n1');
    a.send({ t: 'hello', description: { ...desc('n1'), injected: 'x'.repeat(1000) } });
    await until(() => a.got.some((m) => m.t === 'assignments'), 'assignments');
    assert.equal(a.got[0]!.t, 'welcome');
    const tasks = (a.got.find((m) => m.t === 'assignments')!.tasks as { id: string }[]).map((t) => t.id).sort();
    assert.deepEqual(tasks, ['p1', 't1', 't3']);
    await until(() => (store.view((tx) => tx.get('node', 'n1')) as Node).status.state === 'ready', 'n1 ready');
    const n = store.view((tx) => tx.get('node', 'n1')) as Node;
    assert.deepEqual(n.description, desc('n1'));
    assert.equal(n.status.addr, '127.0.0.1', 'the address it was seen from, not the one it claims');
    // A second hello at once is refused (one hello write per session per few seconds).
    a.send({ t: 'hello', description: desc('n1-renamed') });
    await until(() => (d.stats().dropped.byReason['hello-rate'] ?? 0) === 1, 'hello-rate counted');
    assert.equal((store.view((tx) => tx.get('node', 'n1')) as Node).description.hostname, 'n1');
  });

  it("a bad status batch costs only its bad entries, never another node's updates", async () => {
    const a1 = agents[0]!;
    const a2 = await agent('n2');
    a2.send({ t: 'hello', description: desc('n2') });
    await until(() => a2.got.some((m) => m.t === 'assignments'), 'n2 assignments');
    a1.send({ t: 'status', updates: [null, upd('t1', 'bogus'), upd('t2', 'failed'), upd('t1', 'running'), 'junk', upd('nope', 'running')] });
    a2.send({ t: 'status', updates: [upd('t2', 'starting')] });
    await until(() => taskState('t1') === 'running' && taskState('t2') === 'starting', 't1 running and t2 starting');
    const s = d.stats();
    assert.equal(s.dropped.byReason['bad-state'], 1);
    assert.equal(s.dropped.byReason['bad-update'], 2);
    assert.equal(s.dropped.byReason['not-owner'], 1, "n1's report about n2's task");
    assert.equal(s.dropped.byReason['unknown-task'], 1);
    assert.ok(s.status.written >= 2);
    // States only move forward.
    a1.send({ t: 'status', updates: [upd('t1', 'starting')] });
    await until(() => (d.stats().dropped.byReason['stale-state'] ?? 0) >= 1, 'stale-state counted');
    assert.equal(taskState('t1'), 'running');
    assert.equal(a1.closed, null);
  });

  it('a status write that fails for one update is retried one by one: the others still land', async () => {
    const a1 = agents[0]!;
    a1.send({ t: 'status', updates: [upd('p1', 'running'), upd('t3', 'running')] });
    await until(() => taskState('t3') === 'running', 't3 written despite p1');
    await until(() => (d.stats().dropped.byReason['write-failed'] ?? 0) === 1, 'p1 counted as failed');
    assert.equal(taskState('p1'), 'assigned');
    assert.ok(logs.some((l) => /writing them one by one/.test(l)));
  });

  it("usage: only the sender's own tasks are taken", async () => {
    const a1 = agents[0]!;
    a1.send({ t: 'usage', at: Date.now(), tasks: { t1: { cpuNanos: 5, memoryBytes: 100 }, t2: { cpuNanos: 5, memoryBytes: 999 } } });
    await until(() => d.remote.usageOf('t1') !== undefined, 'usage of t1');
    assert.equal(d.remote.usageOf('t1')!.memoryBytes, 100);
    assert.equal(d.remote.usageOf('t2'), undefined);
  });

  it('a node that keeps misbehaving is disconnected with 1008; the others keep working', async () => {
    const a3 = await agent('n3');
    for (let i = 0; i < 40; i++) a3.send(i % 2 ? '{not json' : { t: 'status', updates: [upd('t1', 'failed')] });
    await until(() => a3.closed !== null, 'n3 disconnected');
    assert.equal(a3.closed!.code, 1008);
    assert.match(a3.closed!.reason, /too many protocol violations/);
    await until(() => (d.stats().disconnects.byReason['violations'] ?? 0) === 1, 'disconnect counted');
    assert.ok(logs.some((l) => /node n3 disconnected \(violations\)/.test(l)));
    assert.equal(taskState('t1'), 'running', "n3 could not touch n1's task");
    const a1 = agents[0]!;
    const hbs = d.stats().messages.byType['hb'] ?? 0;
    a1.send({ t: 'hb' });
    await until(() => (d.stats().messages.byType['hb'] ?? 0) > hbs, 'n1 still heard');
    assert.equal(a1.closed, null);
  });

  it('renewals are rate-limited per node; a bad CSR is refused as a violation', async () => {
    const a2 = agents[1]!;
    for (let i = 0; i < 7; i++) a2.send({ t: 'renew', csr: '-----BEGIN CERTIFICATE REQUEST-----\nnot base64\n-----END CERTIFICATE REQUEST-----' });
    await until(() => (d.stats().dropped.byReason['renew-rate'] ?? 0) === 2, 'two renewals over the limit');
    assert.equal(d.stats().dropped.byReason['bad-csr'], 5);
    await until(() => a2.got.some((m) => m.t === 'error' && /limited/.test(String(m.message))), 'the node is told why');
  });

  it("a demoted node's renewal revokes its manager certificate; other renewals revoke nothing", async () => {
    const a1 = agents[0]!;
    await store.update((tx) => {
      const n = tx.get('node', 'n1') as Node;
      tx.update({ ...n, certificate: { serial: 'aa11', notAfter: new Date(Date.now() + 3600_000).toISOString(), role: 'manager' } });
    });
    const csr = createCsr({ keyPem: await generateKeyPem(), nodeId: 'n1' });
    // The certificate record and the revocation are one transaction (one commit index), committed
    // before the certificate is sent: a failed second write can no longer leave the old one valid.
    const commits: { kind: string; index: number }[] = [];
    const unwatch = store.watch({ kinds: ['node', 'cluster'] }, (ev) => {
      commits.push({ kind: ev.kind, index: ev.index });
    });
    let revokedWhenSent: string[] | undefined;
    a1.ws.once('message', () => (revokedWhenSent = [...(store.view((tx) => tx.get('cluster', 'cluster')) as Cluster).denyList.revokedSerials]));
    a1.send({ t: 'renew', csr });
    await until(() => a1.got.some((m) => m.t === 'cert'), 'the new certificate');
    unwatch();
    const nodeCommit = commits.find((c) => c.kind === 'node');
    const clusterCommit = commits.find((c) => c.kind === 'cluster');
    assert.ok(nodeCommit && clusterCommit, 'both the record and the deny list were written');
    assert.equal(nodeCommit.index, clusterCommit.index, 'in one transaction');
    assert.deepEqual(revokedWhenSent, ['aa11'], 'revoked before the certificate was sent');
    assert.equal(a1.got.find((m) => m.t === 'cert')!.role, 'worker');
    const cl = () => store.view((tx) => tx.get('cluster', 'cluster')) as Cluster;
    assert.deepEqual(cl().denyList.revokedSerials, ['aa11']);
    const serial = (store.view((tx) => tx.get('node', 'n1')) as Node).certificate!.serial;
    assert.notEqual(serial, 'aa11');
    // A plain renewal (same role) leaves the deny list alone.
    const before = a1.got.filter((m) => m.t === 'cert').length;
    a1.send({ t: 'renew', csr });
    await until(() => a1.got.filter((m) => m.t === 'cert').length === before + 1, 'a second certificate');
    assert.deepEqual(cl().denyList.revokedSerials, ['aa11']);
  });

  it('a frame over the payload limit ends only that session (1009)', async () => {
    const a = await agent('n3');
    a.ws.send('x'.repeat(5 << 20));
    await until(() => a.closed !== null, 'oversized session closed');
    assert.equal(a.closed!.code, 1009);
    await until(() => (d.stats().disconnects.byReason['oversized-frame'] ?? 0) === 1, 'counted');
    const a1 = agents[0]!;
    const hbs = d.stats().messages.byType['hb'] ?? 0;
    a1.send({ t: 'hb' });
    await until(() => (d.stats().messages.byType['hb'] ?? 0) > hbs, 'n1 still heard');
    assert.equal(a1.closed, null);
    const s = d.stats();
    assert.equal(s.sessions.open, 2);
    assert.ok(s.messages.byType['status']! >= 3);
  });
  it('a demotion revoking the session it renews over closes it only after the certificate was sent', async () => {
    await store.update((tx) => {
      tx.create({ ...node('n4'), certificate: { serial: 'bb22', notAfter: new Date(Date.now() + 3600_000).toISOString(), role: 'manager' } } as Draft<Node>);
    });
    const a = await agent('n4');
    // The manager's deny-list watch, standing in: the commit refuses the old certificate at once.
    const unwatch = store.watch({ kinds: ['cluster'] }, () => {
      refuse = 'certificate revoked';
      d.recheckCertificates();
    });
    try {
      a.send({ t: 'renew', csr: createCsr({ keyPem: await generateKeyPem(), nodeId: 'n4' }) });
      await until(() => a.closed !== null, 'the session closed');
    } finally {
      unwatch();
      refuse = null;
    }
    assert.equal(a.closed!.code, 4003);
    assert.equal(a.got.find((m) => m.t === 'cert')?.role, 'worker', 'the new certificate arrived first');
    assert.ok((store.view((tx) => tx.get('cluster', 'cluster')) as Cluster).denyList.revokedSerials.includes('bb22'));
  });

  it('a node opening sessions in a loop gets a burst of hellos, then 4029, and no more writes', async () => {
    // Each session describes the node differently (a new engine version), so every welcomed hello is a
    // write: the limit is what bounds a node's writes, not the unchanged-hello shortcut.
    await store.update((tx) => void tx.create(node('n8')));
    const version = () => (store.view((tx) => tx.get('node', 'n8')) as Node).version;
    const before = version();
    const closes: number[] = [];
    let welcomed = 0;
    const t0 = Date.now();
    for (let i = 0; i < 20; i++) {
      const a = await agent('n8');
      a.send({ t: 'hello', description: { ...desc('n8'), engineVersion: `shoal-0.${i}` } });
      await until(() => a.got.some((m) => m.t === 'welcome') || a.closed !== null, `session ${i} answered`);
      if (a.got.some((m) => m.t === 'welcome')) welcomed++;
      else closes.push(a.closed!.code);
    }
    // A burst of 10, then one per 5 s (the loop may take a few seconds on a loaded machine).
    const allowed = 10 + Math.floor((Date.now() - t0) / 5000);
    assert.ok(welcomed >= 10 && welcomed <= allowed, `welcomed ${welcomed}, allowed ${allowed}`);
    assert.ok(closes.length >= 1 && closes.every((c) => c === 4029), `closed: ${closes}`);
    await until(() => version() - before === welcomed, 'one hello write per welcomed session');
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(version() - before, welcomed, 'the refused sessions wrote nothing');
  });

  it('a ready node saying hello again unchanged (a new leader, a reconnect) is not written; a changed one is', async () => {
    await store.update((tx) => void tx.create(node('n9')));
    const n9 = () => store.view((tx) => tx.get('node', 'n9')) as Node;
    const first = await agent('n9');
    first.send({ t: 'hello', description: desc('n9') });
    await until(() => n9().status.state === 'ready', 'n9 ready');
    const v = n9().version;
    const before = d.stats().hellos;
    first.ws.close();
    // Same description, same address, already ready: welcomed, and nothing written.
    const again = await agent('n9');
    again.send({ t: 'hello', description: desc('n9') });
    await until(() => again.got.some((m) => m.t === 'welcome'), 'welcomed again');
    await until(() => d.stats().hellos.unchanged === before.unchanged + 1, 'counted as unchanged');
    assert.equal(n9().version, v, 'no write for an unchanged hello');
    assert.equal(d.stats().hellos.written, before.written);
    again.ws.close();
    // Marked down meanwhile (by the leader's liveness): the next hello writes it ready again.
    await store.update((tx) => {
      const cur = tx.get('node', 'n9') as Node;
      tx.update({ ...cur, status: { ...cur.status, state: 'down', message: 'heartbeat failure' } });
    });
    const back = await agent('n9');
    back.send({ t: 'hello', description: desc('n9') });
    await until(() => n9().status.state === 'ready', 'n9 ready again');
    // A changed description is written too.
    back.ws.close();
    const changed = await agent('n9');
    changed.send({ t: 'hello', description: { ...desc('n9'), engineVersion: 'shoal-9' } });
    await until(() => n9().description.engineVersion === 'shoal-9', 'new description stored');
    assert.equal(d.stats().hellos.written, before.written + 2);
  });

  it('a heartbeat is answered only with news: a new period or manager list', async () => {
    await store.update((tx) => void tx.create(node('n10')));
    const a = await agent('n10');
    a.send({ t: 'hello', description: desc('n10') });
    await until(() => a.got.some((m) => m.t === 'welcome'), 'welcomed');
    const answers = () => a.got.filter((m) => m.t === 'hb').map((m) => m.heartbeatPeriodMs);
    const setPeriod = (ms: number) =>
      store.update((tx) => {
        const c = tx.get('cluster', 'cluster') as Cluster;
        tx.update({ ...c, spec: { ...c.spec, dispatcher: { ...c.spec.dispatcher, heartbeatPeriodMs: ms } } });
      });
    // Nothing new since the welcome: three heartbeats, no answer. Then the operator changes the period:
    // the next heartbeat is answered with it. Messages on a session arrive in order, so once that answer
    // is here, any answer to the first three would be here before it.
    const hbs = () => d.stats().messages.byType['hb'] ?? 0;
    const before = hbs();
    for (let i = 0; i < 3; i++) a.send({ t: 'hb' });
    await until(() => hbs() === before + 3, 'three heartbeats heard');
    await setPeriod(2500);
    a.send({ t: 'hb' });
    await until(() => answers().includes(2500), 'answered with the new period');
    assert.deepEqual(answers(), [2500], 'no answer without news, then the news');
    // Told once: two more heartbeats go unanswered (the next news shows it, arriving after them).
    a.send({ t: 'hb' });
    a.send({ t: 'hb' });
    await setPeriod(3000);
    a.send({ t: 'hb' });
    await until(() => answers().includes(3000), 'answered with the next period');
    assert.deepEqual(answers(), [2500, 3000], 'each period told once');
  });

  it('an agent that takes assignment changes gets its full set once, then only what changed; others get full sets', async () => {
    await store.update((tx) => {
      for (const id of ['n11', 'n12']) tx.create(node(id));
      for (const [id, n] of [
        ['c1', 'n11'],
        ['c2', 'n11'],
        ['c4', 'n11'],
        ['f1', 'n12'],
      ] as const)
        tx.create(task(id, n));
    });
    const a = await agent('n11');
    a.send({ t: 'hello', description: desc('n11'), features: ['assignment-changes', 'from-the-future'] });
    const b = await agent('n12');
    b.send({ t: 'hello', description: desc('n12') });
    const of = (x: Agent, t: string) =>
      x.got.filter((m) => m.t === t) as unknown as { tasks: { id: string }[]; set: { id: string; desiredState: string }[]; remove: string[] }[];
    await until(() => of(a, 'assignments').length === 1 && of(b, 'assignments').length === 1, 'full sets');
    const before = d.stats().assignments;
    // On n11: a new task, a stop, and a task that failed (no longer on the node). On n12: a new task.
    await store.update((tx) => {
      tx.create(task('c3', 'n11'));
      tx.modify('task', 'c1', (x) => void (x.desiredState = 'shutdown'));
      tx.modify('task', 'c2', (x) => void (x.status = { ...x.status, state: 'failed' }));
      tx.create(task('f2', 'n12'));
    });
    await until(() => of(a, 'assignment-changes').length === 1 && of(b, 'assignments').length === 2, 'the changes and the next full set');
    const [ch] = of(a, 'assignment-changes');
    assert.deepEqual(ch!.set.map((t) => t.id).sort(), ['c1', 'c3']);
    assert.equal(ch!.set.find((t) => t.id === 'c1')!.desiredState, 'shutdown');
    assert.deepEqual(ch!.remove, ['c2']);
    assert.deepEqual(
      of(b, 'assignments')[1]!
        .tasks.map((t) => t.id)
        .sort(),
      ['f1', 'f2'],
      'an agent without the feature gets full sets',
    );
    const after = d.stats().assignments;
    assert.equal(after.changes - before.changes, 1);
    assert.equal(after.full - before.full, 1);
    // A new session starts over with a full set: what the node must run now.
    a.ws.close();
    const a2 = await agent('n11');
    a2.send({ t: 'hello', description: desc('n11'), features: ['assignment-changes'] });
    await until(() => of(a2, 'assignments').length === 1, 'a full set on the new session');
    assert.deepEqual(
      of(a2, 'assignments')[0]!
        .tasks.map((t) => t.id)
        .sort(),
      ['c1', 'c3', 'c4'],
    );
    assert.equal(of(a2, 'assignment-changes').length, 0);
  });
});
