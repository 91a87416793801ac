// Cluster events derived from store changes (manager/events/derive.ts, log.ts): what each change becomes,
// that every replica of the log derives the same events under the same seq and time, leader events at
// term changes, the ring's bound, history after a snapshot, and bounded listeners.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { compareSeq, type ClusterEvent } from '../../api/events.ts';
import type { Service, Task } from '../../api/objects.ts';
import { deriveChange } from '../../manager/events/derive.ts';
import { EventLog } from '../../manager/events/log.ts';
import { emptyFilter } from '../../manager/events/filter.ts';
import { Store, type StoreEvent } from '../../manager/store/store.ts';
import { testCluster } from '../helpers/cluster.ts';
import { MiniCluster, T0, clock, network, node, secret, service, task, tick } from './fixtures.ts';

/** One line per event: "seq type action name k=v …" (attributes sorted, labels left out). */
function lines(events: Iterable<ClusterEvent>, leaders = false): string[] {
  return [...events]
    .filter((e) => leaders || e.type !== 'manager')
    .map((e) => {
      const attrs = Object.entries(e.actor.attributes)
        .filter(([k]) => k !== 'name' && !k.startsWith('label.'))
        .sort(([a], [b]) => a.localeCompare(b))
        .map(([k, v]) => `${k}=${v}`);
      return [e.seq, e.type, e.action, e.actor.name, ...attrs].join(' ');
    });
}

describe('deriving events from store changes', () => {
  it('services: create, scale, image update, spec-only and status-only writes, remove', async () => {
    const c = new MiniCluster(1);
    await c.update((tx) => tx.create(service('s1', 'web', 2)));
    await c.update((tx) =>
      tx.modify('service', 's1', (s) => {
        s.spec.mode = { replicated: { replicas: 5 } };
      }),
    );
    await c.update((tx) =>
      tx.modify('service', 's1', (s) => {
        s.spec.task.image = 'busybox:1.37';
        s.spec.task.env = ['A=1'];
      }),
    );
    // The allocator's and orchestrator's bookkeeping is not an event …
    await c.update((tx) =>
      tx.modify('service', 's1', (s) => {
        s.status.endpoint = { virtualIps: [], ports: [] };
      }),
    );
    // … a rolling update's state is.
    await c.update((tx) =>
      tx.modify('service', 's1', (s) => {
        s.updateStatus = { state: 'updating', message: 'update in progress' };
      }),
    );
    await c.update((tx) => tx.delete('service', 's1'));
    assert.deepEqual(lines(c.logs[0]!.kept()), [
      '1.1 service create web image=busybox:1.36 mode=replicated replicas=2',
      '2.0 service update web replicas.new=5 replicas.old=2',
      '3.0 service update web changed=task.env image.new=busybox:1.37 image.old=busybox:1.36',
      '5.0 service update web updatestate.message=update in progress updatestate.new=updating updatestate.old=',
      '6.0 service remove web',
    ]);
    const created = [...c.logs[0]!.kept()].find((e) => e.type === 'service');
    assert.equal(created!.actor.attributes['label.team'], 'a');
    c.close();
  });

  it('time is the transaction time carried in the entry, for removals too', async () => {
    const c = new MiniCluster(1);
    await c.update((tx) => tx.create(network('n1', 'front')));
    await c.update((tx) => tx.delete('network', 'n1'));
    const [a, b] = [...c.logs[0]!.kept()].filter((e) => e.type !== 'manager');
    // The replica's clock gives one second per transaction, starting at T0 + 1 s.
    assert.equal(a!.time, new Date(T0 + 1000).toISOString());
    assert.equal(b!.time, new Date(T0 + 2000).toISOString());
    c.close();
  });

  it('tasks: create and every state move, with service, slot and node; other task writes are not events', async () => {
    const c = new MiniCluster(1);
    await c.update((tx) => {
      tx.create(node('n1', 'worker-1'));
      tx.create(service('s1', 'web', 1));
      tx.create(task('t1', 's1', 'web', 1));
    });
    const move = (state: Task['status']['state'], edit: (t: Task) => void = () => {}) =>
      c.update((tx) =>
        tx.modify('task', 't1', (t) => {
          t.status = { ...t.status, state, message: state };
          edit(t);
        }),
      );
    await move('pending');
    await move('assigned', (t) => {
      t.nodeId = 'n1';
    });
    await c.update((tx) =>
      tx.modify('task', 't1', (t) => {
        t.networks = [{ networkId: 'x', addresses: ['10.0.0.2/24'] }];
      }),
    );
    await move('running');
    await move('failed', (t) => {
      t.status.err = 'exit 1';
      t.status.exitCode = 1;
    });
    await c.update((tx) => tx.delete('task', 't1'));
    const tasks = [...c.logs[0]!.kept()].filter((e) => e.type === 'task');
    assert.deepEqual(lines(tasks), [
      '1.3 task create web.1 service=web service.id=s1 slot=1 state.new=new',
      '2.0 task state web.1 desired=running message=pending service=web service.id=s1 slot=1 state.new=pending state.old=new',
      '3.0 task state web.1 desired=running message=assigned node=n1 node.name=worker-1 service=web service.id=s1 slot=1 state.new=assigned state.old=pending',
      '5.0 task state web.1 desired=running message=running node=n1 node.name=worker-1 service=web service.id=s1 slot=1 state.new=running state.old=assigned',
      '6.0 task state web.1 desired=running error=exit 1 exitCode=1 message=failed node=n1 node.name=worker-1 service=web service.id=s1 slot=1 state.new=failed state.old=running',
      '7.0 task remove web.1 node=n1 node.name=worker-1 service=web service.id=s1 slot=1 state=failed',
    ]);
    c.close();
  });

  it('nodes: down and up, availability and role; heartbeats are not events', async () => {
    const c = new MiniCluster(1);
    await c.update((tx) => tx.create(node('n1', 'worker-1')));
    const edit = (fn: (n: ReturnType<typeof node> & { status: { lastHeartbeat?: string } }) => void) =>
      c.update((tx) => tx.modify('node', 'n1', (n) => fn(n as never)));
    await edit((n) => {
      n.status.lastHeartbeat = new Date().toISOString();
    });
    await edit((n) => {
      n.status = { ...n.status, state: 'down', message: 'heartbeat failure' };
    });
    await edit((n) => {
      n.status = { ...n.status, state: 'ready', message: '' };
    });
    await edit((n) => {
      n.spec.availability = 'drain';
    });
    await edit((n) => {
      n.spec.role = 'manager';
      n.spec.labels = { zone: 'a' };
    });
    await c.update((tx) => tx.delete('node', 'n1'));
    assert.deepEqual(lines(c.logs[0]!.kept()), [
      '1.1 node create worker-1 availability=active role=worker state=ready',
      '3.0 node down worker-1 availability=active message=heartbeat failure role=worker state.new=down state.old=ready',
      '4.0 node up worker-1 availability=active role=worker state.new=ready state.old=down',
      '5.0 node update worker-1 availability=drain availability.new=drain availability.old=active role=worker',
      '6.0 node update worker-1 availability=drain changed=labels role=manager role.new=manager role.old=worker',
      '7.0 node remove worker-1 availability=drain role=manager',
    ]);
    c.close();
  });

  it('secrets, configs and the cluster never show data, keys or tokens', async () => {
    const c = new MiniCluster(1);
    await c.update((tx) => {
      tx.create(testCluster());
      tx.create(secret('x1', 'db-pass'));
    });
    await c.update((tx) =>
      tx.modify('secret', 'x1', (s) => {
        s.spec.labels = { rotated: 'yes' };
      }),
    );
    await c.update((tx) =>
      tx.modify('cluster', 'cluster', (cl) => {
        cl.joinTokens = { worker: 'NEW-WORKER-TOKEN', manager: 'NEW-MANAGER-TOKEN' };
        cl.spec.dispatcher = { heartbeatPeriodMs: 5000 };
      }),
    );
    const all = [...c.logs[0]!.kept()].filter((e) => e.type !== 'manager');
    assert.deepEqual(lines(all), [
      '1.1 cluster create t',
      '1.2 secret create db-pass',
      '2.0 secret update db-pass changed=labels',
      '3.0 cluster update t changed=spec.dispatcher,joinTokens',
    ]);
    const text = JSON.stringify(all);
    for (const s of ['U0VDUkVUREFUQQ', 'NEW-WORKER-TOKEN', 'NEW-MANAGER-TOKEN', '"key"']) assert.ok(!text.includes(s), `${s} leaked: ${text}`);
    c.close();
  });

  it('an autoscaler decision recorded on the service is an autoscale event with its reason', () => {
    const before = { ...service('s1', 'web', 2), version: 3, createdAt: '', updatedAt: '' } as unknown as Service;
    const after = {
      ...before,
      spec: { ...before.spec, mode: { replicated: { replicas: 4 } } },
      status: { autoscale: { time: '2026-12-06T08:00:00Z', from: 2, to: 4, reason: 'cpu 91% > target 70%' } },
    } as unknown as Service;
    const ev: StoreEvent = { type: 'update', kind: 'service', object: after, old: before, index: 9, time: '2026-12-06T08:00:00.000Z' };
    const out = deriveChange(ev);
    assert.deepEqual(
      out.map((b) => [b.action, b.actor.attributes['replicas.old'], b.actor.attributes['replicas.new'], b.actor.attributes.reason]),
      [
        ['update', '2', '4', undefined],
        ['autoscale', '2', '4', 'cpu 91% > target 70%'],
      ],
    );
    // The same record again (another write to the service) is not a new decision.
    assert.deepEqual(
      deriveChange({ ...ev, old: after }).map((b) => b.action),
      [],
    );
  });
});

describe('the event log of each manager', () => {
  it('every replica derives the same events under the same seq and time', async () => {
    const c = new MiniCluster(3);
    await c.update((tx) => {
      tx.create(node('n1', 'w1'));
      tx.create(service('s1', 'web', 1));
      tx.create(task('t1', 's1', 'web', 1));
    });
    await c.update((tx) => tx.modify('task', 't1', (t) => void (t.status = { ...t.status, state: 'pending' })));
    await c.update((tx) => tx.delete('service', 's1'));
    const [a, b, d] = c.logs.map((l) => JSON.stringify([...l.kept()]));
    assert.equal(a, b);
    assert.equal(a, d);
    assert.equal(JSON.parse(a!).length, 6);
    c.close();
  });

  it('a new term in the log is a leader event, first in its entry, with the entry time', async () => {
    const c = new MiniCluster(2);
    c.leaders.set(1, 'm1');
    await c.update((tx) => tx.create(node('m2', 'manager-2', 'manager')));
    c.term = 3;
    c.leaders.set(3, 'm2');
    await c.update((tx) => tx.create(service('s1', 'web', 1)));
    await c.update((tx) => tx.create(network('n1', 'front')));
    for (const log of c.logs) {
      assert.deepEqual(lines(log.kept(), true), [
        '1.0 manager leader m1 leader=m1 term=1 term.old=0',
        '1.1 node create manager-2 availability=active role=manager state=ready',
        '2.0 manager leader manager-2 leader=m2 term=3 term.old=1',
        '2.1 service create web image=busybox:1.36 mode=replicated replicas=1',
        '3.0 network create front driver=overlay',
      ]);
      const leader = [...log.kept()][2]!;
      assert.equal(leader.time, [...log.kept()][3]!.time);
    }
    c.close();
  });

  it('the leader event names the proposer its entry carries: on every replica and on a replay from the log', async () => {
    // The leader (proposer m7) and a follower apply the same entries; neither Raft view knows who led
    // (a replica replaying its log after a restart does not), yet both name m7.
    const entries: { index: number; term: number; data: Uint8Array }[] = [];
    let term = 2;
    const follower = new Store({ now: clock() });
    const leader: Store = new Store({
      now: clock(),
      proposer: 'm7',
      propose: async (data) => {
        const e = { index: entries.length + 1, term, data };
        entries.push(e);
        follower.apply(e);
        return leader.apply(e);
      },
    });
    const logOf = (s: Store) => {
      const log = new EventLog({ nodeName: (id) => (id === 'm7' ? 'manager-7' : undefined), leaderOf: () => undefined });
      log.begin(0);
      s.watch({}, (ev) => void log.apply(ev));
      return log;
    };
    const logs = [logOf(leader), logOf(follower)];
    await leader.update((tx) => tx.create(network('n1', 'front')));
    term = 5;
    await leader.update((tx) => tx.create(network('n2', 'back')));
    await tick();
    // The same entries replayed into a fresh store (a restarted manager) give the same events.
    const replayed = new Store({});
    const replayLog = logOf(replayed);
    for (const e of entries) replayed.apply(e);
    await tick();
    for (const log of [...logs, replayLog]) {
      assert.deepEqual(
        [...log.kept()].filter((e) => e.action === 'leader').map((e) => `${e.seq} ${e.actor.id} ${e.actor.name} term=${e.actor.attributes.term}`),
        ['1.0 m7 manager-7 term=2', '2.0 m7 manager-7 term=5'],
      );
    }
    // A transaction whose proposer field is not a node id is refused as a whole (a no-op everywhere),
    // like any malformed one.
    const bad = new TextEncoder().encode(`\u0001{"ts":"2026-12-06T08:00:00.000Z","by":${JSON.stringify('x'.repeat(65))},"ops":[]}`);
    bad[0] = 1;
    assert.match(String(new Store({}).apply({ index: 1, term: 1, data: bad })), /malformed transaction proposer/);
  });

  it('the first term of a log seen from its start is a leader event; after a snapshot it is not known', async () => {
    const fresh = new MiniCluster(1);
    fresh.leaders.set(1, 'm1');
    await fresh.update((tx) => tx.create(network('n1', 'front')));
    assert.deepEqual(
      [...fresh.logs[0]!.kept()].map((e) => `${e.seq} ${e.type} ${e.action}`),
      ['1.0 manager leader', '1.1 network create'],
    );
    // A manager whose history starts at a snapshot does not know the term before it: no leader event
    // until a later term begins.
    const late = new EventLog({ nodeName: () => undefined, leaderOf: () => undefined });
    late.begin(10);
    const ev = (index: number, term: number): StoreEvent => ({
      type: 'create',
      kind: 'network',
      object: { ...network(`n${index}`, `net${index}`), version: index, createdAt: '', updatedAt: '' } as never,
      index,
      term,
      time: new Date(T0 + index).toISOString(),
    });
    late.apply(ev(11, 4));
    late.apply(ev(12, 5));
    assert.deepEqual(
      [...late.kept()].map((e) => `${e.seq} ${e.type} ${e.action} ${e.actor.attributes.leader ?? ''}`),
      ['11.0 network create ', '12.0 manager leader unknown', '12.1 network create '],
    );
    fresh.close();
  });

  it('keeps at most its capacity, oldest dropped; replay filters by time, seq and filter', async () => {
    const c = new MiniCluster(1, { capacity: 3 });
    for (let i = 1; i <= 5; i++) await c.update((tx) => tx.create(network(`n${i}`, `net${i}`)));
    const log = c.logs[0]!;
    assert.deepEqual(
      [...log.kept()].map((e) => e.seq),
      ['3.0', '4.0', '5.0'],
    );
    assert.equal(log.oldestSeq, '3.0');
    assert.equal(log.total, 6, 'five creates and the first term');
    const f = emptyFilter();
    assert.deepEqual(
      log.replay({ filter: f, since: T0 + 4000 }).map((e) => e.seq),
      ['4.0', '5.0'],
    );
    assert.deepEqual(
      log.replay({ filter: f, until: T0 + 4000 }).map((e) => e.seq),
      ['3.0', '4.0'],
    );
    assert.deepEqual(
      log.replay({ filter: f, after: '4.0' }).map((e) => e.seq),
      ['5.0'],
    );
    assert.deepEqual(
      log.replay({ filter: { ...f, name: ['net4'] } }).map((e) => e.seq),
      ['4.0'],
    );
    assert.ok(compareSeq('99.0', '100.0') < 0);
    c.close();
  });

  it('a snapshot installed under it leaves a recorded gap; events after it carry on', async () => {
    const src = new Store({ now: clock() });
    await src.update((tx) => tx.create(network('n1', 'front')));
    await src.update((tx) => tx.create(network('n2', 'back')));
    const snap = src.snapshot();
    const s = new Store({ now: clock() });
    const log = new EventLog({ nodeName: () => undefined, leaderOf: () => undefined });
    log.begin(s.index);
    const open = (): void => {
      s.watch(
        {
          onClose: () => {
            log.reset(s.index);
            open();
          },
        },
        (ev) => void log.apply(ev),
      );
    };
    open();
    s.restore(snap);
    await tick();
    await s.update((tx) => tx.create(network('n3', 'third')));
    await tick();
    assert.deepEqual(log.gaps, [{ from: 0, to: 2 }]);
    assert.deepEqual(
      [...log.kept()].map((e) => `${e.seq} ${e.actor.name}`),
      ['3.0 third'],
    );
  });

  it('listeners are bounded; a slow one is dropped with a reason and never holds up the others', async () => {
    const c = new MiniCluster(1, { maxListeners: 2, listenerQueue: 3 });
    const log = c.logs[0]!;
    let wakes = 0;
    const slow = log.listen({ filter: emptyFilter() }, () => wakes++)!;
    const fast = log.listen({ filter: emptyFilter() }, () => {})!;
    assert.equal(
      log.listen({ filter: emptyFilter() }, () => {}),
      null,
      'a third listener is refused',
    );
    const got: string[] = [];
    for (let i = 1; i <= 5; i++) {
      await c.update((tx) => tx.create(network(`n${i}`, `net${i}`)));
      for (let e = fast.take(); e; e = fast.take()) got.push(e.seq);
    }
    assert.deepEqual(got, ['1.0', '1.1', '2.0', '3.0', '4.0', '5.0']);
    assert.equal(slow.closed, true);
    assert.match(slow.endReason ?? '', /fell 3 events behind and was dropped; reconnect with after=/);
    assert.ok(wakes >= 4);
    assert.equal(log.listening, 1, 'the dropped listener no longer counts');
    fast.close();
    assert.equal(log.listening, 0);
    c.close();
  });
});
