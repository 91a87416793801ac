// The agent's session handover (make before break) against the real dispatcher over mutual-TLS
// WebSockets on loopback, with an in-memory store: after a renewal the node's session moves to a
// connection made with the new certificate without ever being absent, the dispatcher records which
// root's key issued what the node now presents (a root rotation completes on that), and a handover the
// leader refuses leaves the old session working.
import { serveDispatcher, until, type ServedDispatcher } from '../helpers/dispatcher-server.ts';
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { makeTestCa, type TestCa } from '../helpers/pki.ts';
import { testCluster } from '../helpers/cluster.ts';
import { caDigest } from '../../manager/ca/pki.ts';
import { Dispatcher } from '../../manager/dispatcher/dispatcher.ts';
import { Gate } from '../../manager/api/gate.ts';
import { soleLeader } from '../helpers/leader.ts';
import { Store } from '../../manager/store/store.ts';
import type { Draft, Node, Task } from '../../api/objects.ts';
import { Agent, type AgentCredentials } from '../../worker/agent.ts';
import { FakeExecutor } from '../../worker/fake-executor.ts';

describe('agent session handover (real dispatcher, real TLS)', () => {
  let r0: TestCa;
  let r1: TestCa;
  let stranger: TestCa;
  let served: ServedDispatcher;
  let store: Store;
  let d: Dispatcher;
  let agent: Agent;
  let creds: AgentCredentials;
  const agentLog: string[] = [];
  const ex = new FakeExecutor(1);
  /** Every 2 ms: whether the dispatcher had a session for n1 (a gap would show as false). */
  const samples: boolean[] = [];
  let sampler: NodeJS.Timeout | null = null;

  const nodeRec = () => store.view((tx) => tx.get('node', 'n1')) as Node;
  const taskRec = () => store.view((tx) => tx.get('task', 't1')) as Task;

  before(async () => {
    r0 = makeTestCa();
    r1 = makeTestCa();
    stranger = makeTestCa();
    // The leader mid-rotation: it accepts leaves of both roots (its TLS server trusts both; the store's
    // check, certProblem, is not under test here).
    const serverCert = r0.issue('m1', { ou: 'manager' });
    store = new Store();
    await store.update((tx) => {
      const cluster = testCluster({ ca: { caCertPem: r0.caCert, caKeyPem: r0.caKey } });
      tx.create({
        ...cluster,
        rootCa: {
          ...cluster.rootCa,
          rotation: { newCertPem: r1.caCert, newKeyPem: r1.caKey, crossSignedPem: '', startedAt: new Date(0).toISOString(), external: false },
        },
      });
      tx.create({
        id: 'n1',
        kind: 'node',
        spec: { labels: {}, availability: 'active', role: 'worker' },
        description: {
          hostname: 'n1',
          platform: { os: 'linux', arch: 'x64' },
          resources: { nanoCpus: 0, memoryBytes: 0 },
          engineVersion: '',
          addr: '10.0.0.1',
        },
        status: { state: 'unknown', message: 'joined', addr: '10.0.0.1' },
        certificate: { serial: '01', notAfter: new Date(Date.now() + 3600_000).toISOString(), role: 'worker' },
      } as Draft<Node>);
      tx.create({
        id: 't1',
        kind: 'task',
        serviceId: 'svc',
        slot: 1,
        nodeId: 'n1',
        spec: { image: 'app:1' },
        desiredState: 'running',
        status: { state: 'assigned', timestamp: new Date().toISOString(), message: 'assigned' },
        serviceAnnotations: { name: 'web', labels: {} },
        networks: [],
      } as Draft<Task>);
    });
    const { raft, members } = soleLeader();
    d = new Dispatcher({
      store,
      raft,
      gate: new Gate(raft, store, members, 1000),
      members,
      clusterId: 'c',
      certProblem: () => null,
      log: () => {},
    });
    served = await serveDispatcher(d, { key: serverCert.key, cert: serverCert.cert, ca: [r0.caCert, r1.caCert] });
    const addr = served.addr;
    const c0 = r0.issue('n1', { ou: 'worker' });
    creds = { key: c0.key, cert: c0.cert, ca: r0.caCert };
    agent = new Agent({
      nodeId: 'n1',
      managers: [addr],
      creds: () => creds,
      advertiseAddr: '10.0.0.1',
      hostname: 'n1',
      executor: ex,
      log: (l) => agentLog.push(l),
    });
    agent.start();
  });

  after(async () => {
    if (sampler) clearInterval(sampler);
    agent?.stop();
    await served?.close();
  });

  it('records the root of the certificate the session presents', async () => {
    await until(() => agent.state === 'ready' && nodeRec().status.state === 'ready', 'n1 ready', 10_000);
    await until(() => taskRec().status.state === 'running', 't1 running', 10_000);
    await until(() => nodeRec().certificate?.presented !== undefined, 'presented recorded', 10_000);
    assert.equal(nodeRec().certificate?.presented, caDigest(r0.caCert));
  });

  it('a handover moves the session to the renewed certificate with no gap, and the task carries on', async () => {
    const c1 = r1.issue('n1', { ou: 'worker' });
    creds = { key: c1.key, cert: c1.cert, ca: r0.caCert };
    const logFrom = agentLog.length;
    sampler = setInterval(() => samples.push(d.hasSession('n1') && agent.state === 'ready'), 2);
    agent.handover();
    await until(() => nodeRec().certificate?.presented === caDigest(r1.caCert), 'the new root presented', 10_000);
    await until(() => agentLog.slice(logFrom).some((l) => l.includes('session moved to a new connection')), 'handover logged', 10_000);
    // The old connection is gone and the new one still serves: a status change travels over it.
    await new Promise((r) => setTimeout(r, 50));
    clearInterval(sampler);
    sampler = null;
    assert.ok(samples.length > 5, `sampled ${samples.length} times`);
    assert.ok(
      samples.every((s) => s),
      'the node had a session and the agent stayed ready at every sample',
    );
    assert.deepEqual(
      agentLog.slice(logFrom).filter((l) => /session to .* ended/.test(l)),
      [],
      'no session ended',
    );
    assert.equal(taskRec().status.state, 'running', 'the task was not touched');
    assert.equal(nodeRec().status.state, 'ready');
    // Assignments still reach the node over the new session.
    await store.update((tx) => tx.update({ ...taskRec(), desiredState: 'shutdown' }));
    await until(() => taskRec().status.state === 'shutdown', 'the shutdown reached the node and its status came back', 10_000);
  });

  it('a handover the leader refuses keeps the current session', async () => {
    const logFrom = agentLog.length;
    const bad = stranger.issue('n1', { ou: 'worker' });
    creds = { key: bad.key, cert: bad.cert, ca: stranger.caCert }; // trusts nobody the leader serves
    agent.handover();
    await until(() => agentLog.slice(logFrom).some((l) => l.includes('moving the session to a new connection failed')), 'the failure logged', 10_000);
    assert.equal(agent.state, 'ready');
    assert.ok(d.hasSession('n1'), 'the old session is still there');
    assert.equal(nodeRec().certificate?.presented, caDigest(r1.caCert), 'what the node presents did not change');
    assert.deepEqual(
      agentLog.slice(logFrom).filter((l) => /session to .* ended/.test(l)),
      [],
    );
  });
});
