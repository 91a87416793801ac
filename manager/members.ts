// What this manager knows about the manager set, as the API, the dispatcher and the gate need it:
// each manager's address, who leads, and which voters this one can reach right now. Read-only views
// of the Raft node and its transport; no decisions are taken here.
import type { RaftNode } from './raft/node.ts';
import type { WsRaftTransport } from './raft/transport-ws.ts';
import type { ManagerAddr } from '../api/dispatcher.ts';

/** The Raft endpoint of a manager whose secure port is `advertise` (host:port). */
export const raftUrl = (advertise: string): string => `wss://${advertise}/raft/v1`;

/** host:port of a Raft URL (the URL itself if it does not parse). */
export function addrFromRaftUrl(url: string): string {
  try {
    return new URL(url).host;
  } catch {
    return url;
  }
}

export class Members {
  constructor(
    private readonly selfId: string,
    private readonly raft: RaftNode,
    private readonly transport: WsRaftTransport,
  ) {}

  /** Every voter and learner with a known address. */
  managerAddrs(): ManagerAddr[] {
    const st = this.raft.status();
    return [...st.voters, ...st.learners].map((id) => ({ id, addr: addrFromRaftUrl(st.members[id] ?? '') })).filter((m) => m.addr !== '');
  }

  leaderAddr(): ManagerAddr | null {
    const st = this.raft.status();
    if (!st.leader) return null;
    const url = st.members[st.leader];
    return url ? { id: st.leader, addr: addrFromRaftUrl(url) } : null;
  }

  /** Is there an open Raft connection to this manager (or is it this one)? */
  isReachable(id: string): boolean {
    return id === this.selfId || this.transport.connections(id).some((c) => c.state === 'open');
  }

  /** Voters we currently have an open connection to, plus ourselves. */
  reachableManagers(): { reachable: number; total: number } {
    const st = this.raft.status();
    let n = 0;
    for (const v of st.voters) if (this.isReachable(v)) n++;
    return { reachable: n, total: st.voters.length };
  }

  /** The Raft part of `GET /v1/info` and `GET /v1/cluster`. */
  raftInfo() {
    const st = this.raft.status();
    return {
      nodeId: st.id,
      role: st.role,
      leader: st.leader,
      term: st.term,
      commit: st.commit,
      applied: st.applied,
      voters: st.voters,
      learners: st.learners,
      reachable: this.reachableManagers(),
    };
  }
}
