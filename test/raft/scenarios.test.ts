// Scenario tests for Raft's classic pitfalls, run on the deterministic simulation: these nodes, this
// partition, this much virtual time → this leader, this log, these answers.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RaftCore } from '../../manager/raft/core.ts';
import type { Message } from '../../manager/raft/types.ts';
import { SimCluster, SimViolation, type OpHandle, type SimOptions } from '../../sim/cluster.ts';
import { checkKv } from '../../sim/linearizability.ts';

function cluster(o: Partial<SimOptions> & { nodes: number }): SimCluster {
  return new SimCluster({ seed: 7, ...o });
}

function awaitLeader(sim: SimCluster, maxMs = 3000, among?: string[]): string {
  let l: string | null = null;
  const ok = sim.runUntil(() => {
    l = sim.leader();
    return l !== null && (!among || among.includes(l));
  }, maxMs);
  assert.ok(ok && l, `no leader within ${maxMs} ms`);
  return l!;
}

function settle(sim: SimCluster, h: OpHandle, maxMs = 2000): OpHandle {
  sim.runUntil(() => h.status !== 'pending', maxMs);
  return h;
}

function write(sim: SimCluster, node: string, key: string, value: string): OpHandle {
  return settle(sim, sim.submit(node, 0, { kind: 'write', key, value }));
}

function read(sim: SimCluster, node: string, key: string, maxMs = 2000): OpHandle {
  return settle(sim, sim.submit(node, 1, { kind: 'read', key }), maxMs);
}

function others(sim: SimCluster, id: string): string[] {
  return sim.ids().filter((x) => x !== id);
}

describe('leader election', () => {
  it('elects exactly one leader and every node learns it', () => {
    const sim = cluster({ nodes: 5 });
    const l = awaitLeader(sim);
    sim.run(200);
    for (const id of sim.ids()) assert.equal(sim.core(id).leader, l);
    assert.equal(sim.ids().filter((id) => sim.core(id).isLeader).length, 1);
  });

  it('resolves split votes: an even split elects nobody, healing elects one leader without term inflation', () => {
    const sim = cluster({ nodes: 4 });
    const first = awaitLeader(sim);
    const term0 = sim.core(first).term;
    sim.partition([
      ['n1', 'n2'],
      ['n3', 'n4'],
    ]);
    sim.run(3000);
    // No side has a majority of 4: nobody may lead, and pre-vote keeps terms from climbing.
    assert.equal(sim.ids().filter((id) => sim.core(id).isLeader).length, 0);
    for (const id of sim.ids()) assert.ok(sim.core(id).term <= term0, `${id} term climbed to ${sim.core(id).term} while partitioned`);
    sim.heal();
    awaitLeader(sim);
    assert.ok(Math.max(...sim.ids().map((id) => sim.core(id).term)) <= term0 + 2);
  });

  it('randomized timeouts elect a leader quickly across 100 seeds', () => {
    const times: number[] = [];
    for (let seed = 1; seed <= 100; seed++) {
      const sim = new SimCluster({ seed, nodes: 5 });
      assert.ok(
        sim.runUntil(() => sim.leader() !== null, 5000),
        `seed ${seed}: no leader`,
      );
      times.push(sim.now);
    }
    times.sort((a, b) => a - b);
    // Election timeout is 100–200 ms virtual here; nearly all elections succeed in the first round.
    assert.ok(times[89]! < 400, `p90 election time ${times[89]} ms`);
  });

  it('check-quorum: a leader cut off from the majority steps down within about an election timeout', () => {
    const sim = cluster({ nodes: 3 });
    const l = awaitLeader(sim);
    sim.isolate(l);
    const stepped = sim.runUntil(() => !sim.core(l).isLeader, 400);
    assert.ok(stepped, 'isolated leader kept leading');
    awaitLeader(sim, 3000, others(sim, l));
  });

  it("a killed leader's peers elect a successor in a few heartbeats, not an election timeout", () => {
    // Production's proportions: 100 ms heartbeats, a 1 s timeout + up to 0.5 s. The survivors learn from
    // their transports that the leader's process is gone (RaftCore.leaderGone) and take turns by rank.
    const timing = { electionTicks: 100, electionJitterTicks: 50, heartbeatTicks: 10 };
    const failover = (goneEvidence: boolean, seed = 7): { ms: number; terms: number } => {
      const sim = cluster({ seed, nodes: 3, ...timing, goneEvidence });
      const l = awaitLeader(sim, 5000);
      sim.run(500);
      const term = sim.core(others(sim, l)[0]!).term;
      sim.crash(l);
      const t0 = sim.now;
      awaitLeader(sim, 5000, others(sim, l));
      return { ms: sim.now - t0, terms: sim.core(sim.leader()!).term - term };
    };
    const slow = failover(false);
    assert.ok(slow.ms >= 1000, `without the evidence the failover took only ${slow.ms} ms`);
    for (let seed = 1; seed <= 40; seed++) {
      const fast = failover(true, seed);
      assert.ok(fast.ms < 300, `seed ${seed}: with the evidence the failover took ${fast.ms} ms`);
      assert.equal(fast.terms, 1, `seed ${seed}: one election, no split vote`);
    }
  });

  it('false evidence of a gone leader disrupts nothing: the pre-vote is refused in the lease', () => {
    const sim = cluster({ nodes: 3, electionTicks: 100, electionJitterTicks: 50, heartbeatTicks: 10 });
    const l = awaitLeader(sim, 5000);
    sim.run(500);
    const term = sim.core(l).term;
    const [f] = others(sim, l);
    sim.peerGone(f!, l); // a reset from a firewall, say: the leader is alive and heard by the other follower
    assert.equal(sim.core(f!).leader, null);
    sim.run(3000);
    assert.equal(sim.leader(), l);
    for (const id of sim.ids()) assert.equal(sim.core(id).term, term, `${id} changed term`);
  });

  it('leadership transfer hands over to a caught-up follower', () => {
    const sim = cluster({ nodes: 3 });
    const l = awaitLeader(sim);
    write(sim, l, 'a', '1');
    const target = others(sim, l)[0]!;
    sim.core(l).transferLeadership(target);
    sim.pump_all();
    assert.ok(
      sim.runUntil(() => sim.leader() === target, 200),
      'transfer did not complete quickly',
    );
  });
});

describe('replication and commit', () => {
  it('commits only with a majority and applies the same entries everywhere', () => {
    const sim = cluster({ nodes: 5 });
    const l = awaitLeader(sim);
    for (let i = 0; i < 50; i++) assert.equal(write(sim, l, `k${i % 3}`, `v${i}`).status, 'ok');
    sim.run(200);
    assert.ok(sim.converged().ok, sim.converged().detail);
  });

  it('Figure 8: an entry of an earlier term is not committed by counting replicas', () => {
    const res = figure8(false);
    assert.equal(res.committedEarly, false, 'old-term entry committed before a current-term entry');
    assert.equal(res.violation, null);
  });

  it('Figure 8: the unsafe variant commits it early and the simulation catches the divergence', () => {
    const res = figure8(true);
    assert.equal(res.committedEarly, true);
    assert.match(res.violation ?? '', /state machine safety/);
  });

  it("truncates a deposed leader's conflicting uncommitted entries on rejoin", () => {
    const sim = cluster({ nodes: 5 });
    const old = awaitLeader(sim);
    write(sim, old, 'x', 'committed');
    sim.isolate(old);
    // Uncommitted writes on the isolated leader: they never succeed.
    const lost = [sim.submit(old, 0, { kind: 'write', key: 'x', value: 'lost1' }), sim.submit(old, 0, { kind: 'write', key: 'x', value: 'lost2' })];
    const lastOnOld = sim.core(old).log.lastIndex();
    const nl = awaitLeader(sim, 3000, others(sim, old));
    for (let i = 0; i < 5; i++) assert.equal(write(sim, nl, 'x', `new${i}`).status, 'ok');
    sim.heal();
    assert.ok(
      sim.runUntil(() => sim.converged().ok, 3000),
      sim.converged().detail,
    );
    for (const h of lost) assert.notEqual(h.status, 'ok');
    // The old leader's log now matches the new leader's over the formerly conflicting range.
    for (let i = 1; i <= lastOnOld; i++) assert.equal(sim.core(old).log.term(i), sim.core(nl).log.term(i), `term at ${i}`);
    assert.deepEqual(read(sim, old, 'x').op.output, { kind: 'read', value: 'new4' });
    assert.equal(sim.kv(old).read('x'), 'new4');
  });
});

describe('linearizable reads', () => {
  it('a partitioned old leader never serves a stale read, even with clients still talking to it', () => {
    const sim = cluster({ nodes: 3 });
    const old = awaitLeader(sim);
    write(sim, old, 'k', 'v1');
    sim.isolate(old);
    const nl = awaitLeader(sim, 3000, others(sim, old));
    assert.equal(write(sim, nl, 'k', 'v2').status, 'ok');
    // The client keeps asking the old leader (which may not know it was deposed yet).
    const r = read(sim, old, 'k', 300);
    assert.notEqual(r.status === 'ok' && r.op.output?.kind === 'read' ? r.op.output.value : null, 'v1', 'stale read served');
    sim.heal();
    sim.run(500);
    assert.equal(checkKv(sim.history).ok, true);
  });

  it('the unsafe local-read variant serves that stale read and the checker rejects the history', () => {
    const sim = cluster({ nodes: 3, unsafe: { localReads: true } });
    const old = awaitLeader(sim);
    write(sim, old, 'k', 'v1');
    sim.isolate(old);
    const nl = awaitLeader(sim, 3000, others(sim, old));
    // Ask before check-quorum makes the old leader step down.
    assert.ok(sim.core(old).isLeader);
    assert.equal(write(sim, nl, 'k', 'v2').status, 'ok');
    sim.run(1); // the read starts strictly after the write completed
    const r = read(sim, old, 'k', 50);
    assert.equal(r.status, 'ok');
    assert.deepEqual(r.op.output, { kind: 'read', value: 'v1' });
    const res = checkKv(sim.history);
    assert.equal(res.ok, false);
  });

  it('a follower forwards ReadIndex to the leader and serves the read once applied', () => {
    const sim = cluster({ nodes: 3 });
    const l = awaitLeader(sim);
    write(sim, l, 'k', 'v1');
    const f = others(sim, l)[0]!;
    const r = read(sim, f, 'k');
    assert.equal(r.status, 'ok');
    assert.deepEqual(r.op.output, { kind: 'read', value: 'v1' });
  });
});

describe('durability and snapshots', () => {
  it('a power failure of every node loses no acknowledged write', () => {
    const sim = cluster({ nodes: 3 });
    const l = awaitLeader(sim);
    for (let i = 0; i < 20; i++) assert.equal(write(sim, l, 'k', `v${i}`).status, 'ok');
    for (const id of sim.ids()) sim.crash(id);
    for (const id of sim.ids()) sim.restart(id);
    const nl = awaitLeader(sim);
    const r = read(sim, nl, 'k');
    assert.deepEqual(r.op.output, { kind: 'read', value: 'v19' });
  });

  it('a node down for thousands of entries catches up through a chunked InstallSnapshot', () => {
    const sim = cluster({ nodes: 3, snapshotEvery: 200, keepEntries: 20, snapshotChunkBytes: 64 });
    const l = awaitLeader(sim);
    const lagging = others(sim, l)[0]!;
    sim.crash(lagging);
    for (let i = 0; i < 3000; i++) {
      const h = sim.submit(l, i % 4, { kind: 'write', key: `k${i % 40}`, value: `v${i}` });
      if (i % 50 === 49) settle(sim, h);
    }
    sim.run(300);
    assert.ok(sim.core(l).log.firstIndex() > 2000, 'leader did not compact');
    sim.restart(lagging);
    assert.ok(
      sim.runUntil(() => sim.converged().ok, 5000, 10),
      sim.converged().detail,
    );
    assert.ok(sim.core(lagging).stats.snapshotsInstalled >= 1, 'no snapshot was installed');
    assert.equal(sim.kv(lagging).digest(), sim.kv(l).digest());
  });

  it('a node restarted from disk replays its log and rejoins without losing anything', () => {
    const sim = cluster({ nodes: 3, snapshotEvery: 30, keepEntries: 5 });
    const l = awaitLeader(sim);
    for (let i = 0; i < 100; i++) settle(sim, sim.submit(l, 0, { kind: 'write', key: `k${i % 7}`, value: `v${i}` }));
    const f = others(sim, l)[0]!;
    const before = sim.kv(f).digest();
    sim.crash(f);
    sim.restart(f);
    sim.run(300);
    assert.equal(sim.kv(f).digest(), before === sim.kv(l).digest() ? before : sim.kv(l).digest());
    assert.ok(sim.converged().ok, sim.converged().detail);
  });
});

describe('membership', () => {
  it('adds a learner that catches up without voting, then promotes it', () => {
    const sim = cluster({ nodes: 3 });
    const l = awaitLeader(sim);
    for (let i = 0; i < 30; i++) write(sim, l, 'k', `v${i}`);
    sim.addNode('n4');
    assert.ok(sim.proposeConf(l, { type: 'addLearner', node: 'n4' }));
    assert.ok(sim.runUntil(() => sim.core('n4').applied >= sim.core(l).commit && sim.core(l).conf.learners.includes('n4'), 2000));
    assert.deepEqual(sim.core(l).conf.voters.length, 3);
    // A learner never campaigns.
    sim.isolate('n4');
    sim.run(1000);
    assert.equal(sim.core('n4').stats.electionsStarted, 0);
    sim.heal();
    assert.ok(sim.runUntil(() => sim.proposeConf(sim.leader() ?? l, { type: 'addVoter', node: 'n4' }), 2000));
    assert.ok(sim.runUntil(() => sim.ids().every((id) => sim.core(id).conf.voters.includes('n4')), 2000));
  });

  it('refuses a second membership change while one is pending, and invalid ones with a reason', () => {
    const sim = cluster({ nodes: 3 });
    const l = awaitLeader(sim);
    write(sim, l, 'k', 'v');
    sim.addNode('n4');
    const core = sim.core(l);
    core.proposeConfChange({ type: 'addLearner', node: 'n4' });
    assert.throws(() => core.proposeConfChange({ type: 'addLearner', node: 'n5' }), /already in progress/);
    sim.run(200);
    assert.throws(() => sim.core(l).proposeConfChange({ type: 'addVoter', node: 'n1' }), /already a voter/);
    assert.throws(() => sim.core(l).proposeConfChange({ type: 'remove', node: 'n9' }), /not a member/);
  });

  it('removes the leader itself: it steps down, the rest elect a leader, and it never disrupts again', () => {
    const sim = cluster({ nodes: 5 });
    const l = awaitLeader(sim);
    write(sim, l, 'k', 'v1');
    assert.ok(sim.proposeConf(l, { type: 'remove', node: l }));
    const nl = awaitLeader(sim, 3000, others(sim, l));
    assert.ok(sim.runUntil(() => sim.core(l).isRemoved, 1000));
    assert.equal(write(sim, nl, 'k', 'v2').status, 'ok');
    const term = sim.core(nl).term;
    const campaigns = sim.core(l).stats.electionsStarted;
    // The removed node keeps running and keeps talking: nothing it says may disturb the cluster.
    sim.run(3000);
    assert.equal(sim.leader(), nl);
    assert.equal(sim.core(nl).term, term);
    assert.equal(sim.core(l).stats.electionsStarted, campaigns, 'the removed node campaigned');
    assert.ok(sim.converged().ok, sim.converged().detail);
  });

  it('a member removed while partitioned cannot disrupt the cluster when the partition heals', () => {
    const sim = cluster({ nodes: 5 });
    const l = awaitLeader(sim, 3000);
    const victim = others(sim, l)[0]!;
    sim.isolate(victim);
    // A new leader accepts membership changes once its first entry of its term is committed.
    assert.ok(sim.runUntil(() => sim.proposeConf(l, { type: 'remove', node: victim }), 1000));
    assert.ok(sim.runUntil(() => !sim.core(l).conf.voters.includes(victim), 1000));
    // Membership change during the partition: add and promote a new member.
    sim.addNode('n6');
    assert.ok(sim.runUntil(() => sim.proposeConf(l, { type: 'addLearner', node: 'n6' }), 1000));
    assert.ok(sim.runUntil(() => sim.core(l).conf.learners.includes('n6') && sim.proposeConf(l, { type: 'addVoter', node: 'n6' }), 2000));
    assert.ok(sim.runUntil(() => sim.core(l).conf.voters.includes('n6'), 2000));
    sim.run(2000); // the removed node, unaware, keeps pre-voting in its corner
    const term = sim.core(l).term;
    sim.heal();
    sim.run(2000);
    assert.equal(sim.leader(), l);
    assert.equal(sim.core(l).term, term, 'healing the removed node bumped the term');
    assert.ok(sim.core(l).stats.droppedFromRemoved > 0, 'its messages were not counted as dropped');
  });

  it('a rejoining node with a higher term does not disrupt a stable leader (pre-vote)', () => {
    const sim = cluster({ nodes: 3 });
    const l = awaitLeader(sim);
    const f = others(sim, l)[0]!;
    sim.isolate(f);
    sim.run(5000);
    const term = sim.core(l).term;
    sim.heal();
    sim.run(2000);
    assert.equal(sim.leader(), l);
    assert.equal(sim.core(l).term, term);
  });
});

describe('bad input', () => {
  it('ignores and counts messages from unknown and removed members', () => {
    const sim = cluster({ nodes: 3 });
    const l = awaitLeader(sim);
    const core = sim.core(l);
    const forged: Message = {
      type: 'vote',
      from: 'intruder',
      to: l,
      term: 999,
      index: 999,
      logTerm: 999,
      commit: 0,
      entries: [],
      reject: false,
      rejectHint: 0,
      context: '',
      snapshot: null,
    };
    core.step(forged);
    assert.equal(core.stats.droppedFromUnknown, 1);
    assert.equal(core.term < 999, true);
    assert.ok(core.isLeader);
  });

  it('refuses a restored state whose commit index is beyond its log', () => {
    assert.throws(
      () =>
        new RaftCore(
          { id: 'n1', electionTicks: 10, electionJitterTicks: 5, heartbeatTicks: 1, random: () => 0.5 },
          { hardState: { term: 2, vote: null, commit: 5 }, snapshot: null, entries: RaftCore.bootstrapEntries(['n1']) },
        ),
      /commit 5 beyond last log index 1/,
    );
  });
});

/**
 * The paper's Figure 8 on five nodes, driven step by step:
 *  (a) n1 leads term T and gets entry X at index i onto n2 only;
 *  (b) n1 crashes; n5 leads a later term with votes from n3, n4, n5 and appends Y at index i, then crashes
 *      before sending it anywhere;
 *  (c) n1 restarts, leads again and replicates X to n3 — X is on a majority but is of an old term;
 *  (d) n1 crashes before its own-term entry reaches a majority; n5 restarts and can win (its last term
 *      is newer than X's) and overwrite X everywhere.
 * The correct core never counts X as committed in (c); the unsafe one does, and n1 applies X, which the
 * simulation's state machine safety check then catches when n5 overwrites it.
 */
function figure8(unsafeCommit: boolean): { committedEarly: boolean; violation: string | null } {
  const sim = new SimCluster({ seed: 3, nodes: 5, maxEntriesPerMsg: 1, unsafe: unsafeCommit ? { commitOldTerm: true } : {} });
  let committedEarly = false;
  try {
    assert.ok(forceLeader(sim, 'n1', ['n2', 'n3', 'n4', 'n5']), 'n1 did not become leader');
    assert.equal(write(sim, 'n1', 'k', 'base').status, 'ok');
    sim.run(50);
    const i = sim.core('n1').log.lastIndex() + 1;
    // (a) X reaches n2 only.
    sim.partition([['n1', 'n2'], ['n3'], ['n4'], ['n5']]);
    sim.submit('n1', 0, { kind: 'write', key: 'k', value: 'X' });
    sim.run(20);
    const xTerm = sim.core('n1').log.term(i)!;
    assert.equal(sim.core('n2').log.term(i), xTerm, 'X did not reach n2');
    // (b) n1 down; n5 wins with n3, n4 and is cut off before its first append leaves.
    sim.crash('n1');
    sim.partition([['n3', 'n4', 'n5'], ['n2'], ['n1']]);
    assert.ok(sim.runUntil(() => sim.leader() === 'n5' || sim.leader() === 'n3' || sim.leader() === 'n4', 3000));
    if (sim.leader() !== 'n5') {
      const l = sim.leader()!;
      sim.runUntil(() => (sim.core(l).progressOf('n5')?.match ?? 0) >= sim.core(l).log.lastIndex(), 1000);
      sim.core(l).transferLeadership('n5');
      sim.pump_all();
      assert.ok(
        sim.runUntil(() => sim.leader() === 'n5', 1000),
        'n5 did not become leader',
      );
    }
    sim.partition([['n5'], ['n2'], ['n3'], ['n4'], ['n1']]);
    const yTerm = sim.core('n5').term;
    sim.run(20);
    sim.crash('n5');
    const j = sim.core('n3').log.lastIndex() + 1; // where n5's own-term entry sits (may be i)
    assert.ok(j <= i || sim.core('n3').log.term(i) !== xTerm);
    // (c) n1 back; it leads a newer term with n3 and n4 (its log is ahead of theirs) and brings X to
    // both: X is then on a majority (n1, n3, n4) but is of an old term.
    sim.restart('n1');
    sim.partition([['n1', 'n3', 'n4'], ['n2'], ['n5']]);
    assert.ok(
      sim.runUntil(() => sim.leader() === 'n1', 5000),
      'n1 did not lead again',
    );
    const t = sim.core('n1').term;
    const c = sim.core('n1');
    assert.ok(
      sim.runUntil(() => c.commit >= i || ((c.progressOf('n3')?.match ?? 0) >= i && (c.progressOf('n4')?.match ?? 0) >= i), 1000),
      'X never reached n3 and n4',
    );
    committedEarly = c.commit >= i && c.log.term(c.commit) !== t;
    // Cut n1 off at once: its own-term entry, maybe in flight, reaches no one else.
    sim.isolate('n1');
    sim.crash('n1');
    // (d) n5 restarts; with n2 and a node that lacks n1's own-term entry it can win (its last term is
    // newer than X's) and its entry at index i replaces X.
    sim.restart('n5');
    const lacking = ['n3', 'n4'].filter((id) => sim.core(id).log.term(i + 1) !== t);
    sim.partition([['n2', 'n5', ...lacking], ['n1'], ...['n3', 'n4'].filter((id) => !lacking.includes(id)).map((id) => [id])]);
    sim.runUntil(() => sim.leader() !== null, 5000);
    sim.run(500);
    assert.ok(yTerm > xTerm);
    return { committedEarly, violation: null };
  } catch (e) {
    if (e instanceof SimViolation) return { committedEarly, violation: e.message };
    throw e;
  }
}

/** Makes `id` leader by letting only it time out (everyone else hears from it first). */
function forceLeader(sim: SimCluster, id: string, voters: string[]): boolean {
  const ok = sim.runUntil(() => sim.leader() === id || (sim.leader() !== null && voters.includes(sim.leader()!)), 3000);
  if (sim.leader() === id) return true;
  // Another node of the group won: step it down by transferring leadership to `id`.
  const l = sim.leader();
  if (ok && l) {
    sim.runUntil(() => (sim.core(l).progressOf(id)?.match ?? 0) >= sim.core(l).log.lastIndex(), 1000);
    sim.core(l).transferLeadership(id);
    sim.pump_all();
    return sim.runUntil(() => sim.leader() === id, 1000);
  }
  return false;
}
