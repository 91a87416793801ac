// Stand-ins for the Raft node and the membership a leader's Dispatcher and Gate read, for tests that run
// the real dispatcher over real TLS with an in-memory store (no Raft): this manager, m1, leads alone.
import type { Members } from '../../manager/members.ts';
import type { RaftNode } from '../../manager/raft/node.ts';

export function soleLeader(): { raft: RaftNode; members: Members } {
  const raft = { status: () => ({ role: 'leader', leader: 'm1', voters: ['m1'], learners: [], members: {} }) } as unknown as RaftNode;
  const members = {
    managerAddrs: () => [{ id: 'm1', addr: '127.0.0.1:1' }],
    leaderAddr: () => null,
    reachableManagers: () => ({ reachable: 1, total: 1 }),
  } as unknown as Members;
  return { raft, members };
}
