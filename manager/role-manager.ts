// The role manager (as in SwarmKit's role_manager.go): on the leader, it brings each node's actual
// role in line with the role the admin asked for. A node whose certificate says one role while its
// spec says another is nudged (at most every two seconds) to renew its certificate, which carries the
// new role; a Raft learner that has caught up with the log is promoted to voter, one membership
// change at a time.
import type { RaftNode } from './raft/node.ts';
import type { Node as NodeObj } from '../api/objects.ts';
import type { Store } from './store/store.ts';
import type { ManagerToAgent } from '../api/dispatcher.ts';

/** Minimum time between two role nudges to the same node. */
const NUDGE_INTERVAL_MS = 2000;

export interface RoleManagerDeps {
  store: Store;
  raft: RaftNode;
  /** Sends a message over a node's dispatcher session; false if it has none. */
  send: (nodeId: string, m: ManagerToAgent) => boolean;
  log: (line: string) => void;
}

export class RoleManager {
  private nudged = new Map<string, number>();

  constructor(private readonly d: RoleManagerDeps) {}

  /** One leader tick: nudge nodes whose role must change, then promote a caught-up learner. */
  async tick(now: number): Promise<void> {
    this.reconcileRoles(now);
    await this.promoteLearners();
  }

  /** Tells nodes whose desired role differs from their certificate's role to renew (promote/demote). */
  reconcileRoles(now: number): void {
    const nodes = this.d.store.view((tx) => tx.list('node')) as NodeObj[];
    for (const n of nodes) {
      if (!n.certificate || n.certificate.role === n.spec.role) continue;
      if (now - (this.nudged.get(n.id) ?? 0) < NUDGE_INTERVAL_MS) continue;
      if (!this.d.send(n.id, { t: 'role', role: n.spec.role })) continue;
      this.nudged.set(n.id, now);
    }
    // Forget nodes that are gone, so the map stays as large as the node list.
    if (this.nudged.size > nodes.length) {
      const ids = new Set(nodes.map((n) => n.id));
      for (const id of this.nudged.keys()) if (!ids.has(id)) this.nudged.delete(id);
    }
  }

  /** Promotes one learner whose log has caught up (one membership change at a time). */
  async promoteLearners(): Promise<void> {
    const st = this.d.raft.status();
    for (const id of st.learners) {
      const pr = this.d.raft.progress(id);
      if (pr && pr.match >= st.commit - 1 && pr.match > 0) {
        try {
          await this.d.raft.promote(id);
          this.d.log(`promoted ${id} to voter`);
        } catch (e) {
          this.d.log(`promote ${id}: ${(e as Error).message}`);
        }
        return;
      }
    }
  }
}
