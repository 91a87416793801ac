// Leader traffic from outside the configuration (security review §12): a node that holds a valid
// manager certificate but is not a member (a demoted or removed manager) must not be able to force an
// election, raise a member's term or displace the leader it follows. The one case Raft needs is kept:
// the leader of the follower's own term, elected under a configuration the follower has not seen yet.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RaftCore } from '../../manager/raft/core.ts';
import type { Message, MessageType } from '../../manager/raft/types.ts';
import { SimCluster } from '../../sim/cluster.ts';

function msg(type: MessageType, from: string, to: string, term: number, extra: Partial<Message> = {}): Message {
  return { type, from, to, term, index: 0, logTerm: 0, commit: 0, entries: [], reject: false, rejectHint: 0, context: '', snapshot: null, ...extra };
}

function stable(): { sim: SimCluster; l: string; f: string } {
  const sim = new SimCluster({ seed: 11, nodes: 3 });
  let l: string | null = null;
  assert.ok(
    sim.runUntil(() => (l = sim.leader()) !== null, 3000),
    'no leader',
  );
  const f = sim.ids().find((x) => x !== l)!;
  assert.ok(
    sim.runUntil(() => sim.core(f).leader === l, 3000),
    'the follower never heard from the leader',
  );
  return { sim, l: l!, f };
}

describe('raft: leader messages from non-members', () => {
  it('timeoutNow from a non-member does not start an election', () => {
    const { sim, l, f } = stable();
    const core = sim.core(f);
    const term = core.term;
    const before = core.stats.droppedFromUnknown;
    core.step(msg('timeoutNow', 'former-manager', f, term));
    assert.equal(core.role, 'follower');
    assert.equal(core.term, term);
    assert.equal(core.stats.droppedFromUnknown, before + 1);
    sim.run(500);
    assert.equal(sim.leader(), l);
  });

  it('app and heartbeat with a higher term from a non-member do not raise the term', () => {
    const { sim, l, f } = stable();
    const core = sim.core(f);
    const term = core.term;
    core.step(
      msg('app', 'former-manager', f, term + 5, {
        index: 0,
        logTerm: 0,
        entries: [{ index: 1, term: term + 5, type: 'normal', data: new Uint8Array() } as never],
      }),
    );
    core.step(msg('heartbeat', 'former-manager', f, term + 5));
    core.step(msg('snap', 'former-manager', f, term + 5));
    assert.equal(core.term, term);
    assert.equal(core.leader, l);
    sim.run(500);
    assert.equal(sim.leader(), l);
  });

  it('a non-member cannot displace the leader of the current term', () => {
    const { sim, l, f } = stable();
    const core = sim.core(f);
    const before = core.stats.droppedFromUnknown;
    core.step(msg('heartbeat', 'former-manager', f, core.term));
    assert.equal(core.leader, l);
    assert.equal(core.stats.droppedFromUnknown, before + 1);
  });

  it('the leader of our own term is followed even before its membership is known', () => {
    // n1 is configured {n1, n2}; it learnt term 3 from a vote, but the leader n3 was added later.
    const core = new RaftCore(
      { id: 'n1', electionTicks: 10, electionJitterTicks: 5, heartbeatTicks: 1, random: () => 0.5 },
      { hardState: { term: 3, vote: null, commit: 0 }, snapshot: null, entries: RaftCore.bootstrapEntries(['n1', 'n2']) },
    );
    core.step(msg('heartbeat', 'n3', 'n1', 3));
    assert.equal(core.leader, 'n3');
    assert.equal(core.stats.droppedFromUnknown, 0);
  });
});
