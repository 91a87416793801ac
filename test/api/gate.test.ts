// The gate's answers (api/gate.ts) and the one reference resolver (api/resolve.ts), against a scripted
// Raft status and store: which status and code a client gets when this manager cannot take a write or
// confirm a read, and that Raft/store errors are recognised by class.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Gate } from '../../manager/api/gate.ts';
import { ApiError } from '../../manager/api/http.ts';
import { resolveRef } from '../../manager/api/resolve.ts';
import type { Members } from '../../manager/members.ts';
import { NotLeaderError, ProposalRejectedError } from '../../manager/raft/core.ts';
import { ReadFailedError, type RaftNode } from '../../manager/raft/node.ts';
import { ConflictError } from '../../manager/store/errors.ts';
import type { Store } from '../../manager/store/store.ts';

interface Script {
  role: string;
  leader: string | null;
  leaderAddr: { id: string; addr: string } | null;
  reachable: number;
  total: number;
  update: () => Promise<void>;
  read: () => Promise<void>;
}

function gate(s: Partial<Script>): { g: Gate; script: Script } {
  const script: Script = { role: 'follower', leader: null, leaderAddr: null, reachable: 3, total: 3, update: async () => {}, read: async () => {}, ...s };
  const raft = { status: () => ({ role: script.role, leader: script.leader }), read: () => script.read() } as unknown as RaftNode;
  const store = { update: () => script.update() } as unknown as Store;
  const members = {
    leaderAddr: () => script.leaderAddr,
    reachableManagers: () => ({ reachable: script.reachable, total: script.total }),
  } as unknown as Members;
  return { g: new Gate(raft, store, members, 50), script };
}

function apiError(fn: () => unknown): ApiError {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof ApiError, `expected ApiError, got ${String(e)}`);
    return e;
  }
  assert.fail('did not throw');
}

async function apiErrorAsync(p: Promise<unknown>): Promise<ApiError> {
  const e = await p.then(
    () => null,
    (x: unknown) => x,
  );
  assert.ok(e instanceof ApiError, `expected ApiError, got ${String(e)}`);
  return e;
}

describe('api/gate', () => {
  it('requireLeader: passes on the leader, redirects to a known leader, else says election or no quorum', () => {
    gate({ role: 'leader' }).g.requireLeader();
    const redirect = apiError(() => gate({ leaderAddr: { id: 'm2', addr: '10.0.0.2:2377' } }).g.requireLeader());
    assert.equal(redirect.status, 421);
    assert.equal(redirect.details?.leader, '10.0.0.2:2377');
    const election = apiError(() => gate({ reachable: 2, total: 3 }).g.requireLeader());
    assert.equal(election.code, 'ENOLEADER');
    const noQuorum = apiError(() => gate({ reachable: 2, total: 5 }).g.requireLeader());
    assert.equal(noQuorum.status, 503);
    assert.equal(noQuorum.code, 'ENOQUORUM');
    assert.match(noQuorum.message, /2 of 5 managers reachable \(need 3\)/);
  });

  it('update re-runs on a version conflict (bounded), and passes any other error through at once', async () => {
    let calls = 0;
    const { g, script } = gate({ role: 'leader' });
    script.update = async () => {
      if (++calls < 3) throw new ConflictError('node', 'n1', 1, 2);
    };
    await g.update(() => {});
    assert.equal(calls, 3);
    calls = 0;
    script.update = async () => {
      calls++;
      throw new ConflictError('node', 'n1', 1, 2);
    };
    await assert.rejects(
      g.update(() => {}),
      ConflictError,
    );
    assert.equal(calls, 9, 'eight retries after the first attempt');
    calls = 0;
    script.update = async () => {
      calls++;
      throw new RangeError('boom');
    };
    await assert.rejects(
      g.update(() => {}),
      RangeError,
    );
    assert.equal(calls, 1);
  });

  it('write maps a lost leadership to 503 (unknown outcome, or no quorum) and times out a stuck commit', async () => {
    const { g, script } = gate({ role: 'leader' });
    script.update = async () => {
      throw new NotLeaderError(null);
    };
    assert.equal((await apiErrorAsync(g.write(() => {}))).code, 'EUNKNOWN');
    script.reachable = 1;
    assert.equal((await apiErrorAsync(g.write(() => {}))).code, 'ENOQUORUM');
    script.reachable = 3;
    script.update = () => new Promise(() => {}); // never commits
    const slow = await apiErrorAsync(g.write(() => {}));
    assert.equal(slow.status, 503);
    assert.equal(slow.code, 'EUNKNOWN');
  });

  it('linearizable: a failed ReadIndex is 503 retry, or no quorum', async () => {
    const { g, script } = gate({ role: 'follower', leader: 'm1' });
    await g.linearizable();
    script.read = async () => {
      throw new ReadFailedError('m1');
    };
    assert.equal((await apiErrorAsync(g.linearizable())).code, 'ERETRY');
    script.reachable = 1;
    assert.equal((await apiErrorAsync(g.linearizable())).code, 'ENOQUORUM');
  });

  it('retryConf waits out a membership change in progress, and nothing else', async () => {
    const { g } = gate({ role: 'leader' });
    let n = 0;
    await g.retryConf(async () => {
      if (++n < 3) throw new ProposalRejectedError('a configuration change is in progress');
    });
    assert.equal(n, 3);
    await assert.rejects(
      g.retryConf(async () => {
        throw new ProposalRejectedError('not a member');
      }),
      /not a member/,
    );
  });
});

describe('api/resolve', () => {
  const all = [
    { id: 'abc111', name: 'web' },
    { id: 'abc222', name: 'db' },
    { id: 'def333', name: 'db' },
    { id: 'web', name: 'other' },
  ];
  const r = (ref: string) => resolveRef('node', all, ref, (o) => o.name);

  it('an exact id wins, then a unique name, then a unique id prefix', () => {
    assert.equal(r('web').id, 'web', 'an id beats a name');
    assert.equal(r('other').id, 'web');
    assert.equal(r('def').id, 'def333');
    assert.equal(r('abc2').id, 'abc222');
  });

  it('a shared name or prefix is ambiguous (400), an unknown one is 404', () => {
    const shared = apiError(() => r('db'));
    assert.equal(shared.status, 400);
    assert.match(shared.message, /node name db is ambiguous \(2 nodes have it\)/);
    assert.equal(apiError(() => r('abc')).status, 400);
    assert.equal(apiError(() => r('zzz')).status, 404);
  });
});
