// The leader's root-rotation reconciler: each leader tick it reads the cluster and node records, asks
// the pure state machine (rotation.ts) what to do, nudges nodes to renew over their sessions and writes
// the completion. All state is in the store, so a new leader simply carries on; only the nudge times
// live here, and losing them (leader change) means at most one early nudge per node.
import { CLUSTER_ID, type Cluster, type Node } from '../../api/objects.ts';
import type { ManagerToAgent } from '../../api/dispatcher.ts';
import type { Store } from '../store/store.ts';
import { caDigest, PkiError } from './pki.ts';
import { completeRotation, nodeView, progress, reconcile, type RotationProgress } from './rotation.ts';

export interface RotationRunnerDeps {
  store: Store;
  /** Leader-only read-modify-write (Gate.update). */
  update: (fn: Parameters<Store['update']>[0]) => Promise<unknown>;
  hasSession: (nodeId: string) => boolean;
  send: (nodeId: string, m: ManagerToAgent) => boolean;
  log: (line: string) => void;
}

export class RotationRunner {
  private readonly nudged = new Map<string, number>();

  constructor(private readonly d: RotationRunnerDeps) {}

  /** One reconciler pass (called from the leader tick; the caller serialises passes). */
  async tick(now: number): Promise<void> {
    const { cluster, nodes } = this.d.store.view((tx) => ({
      cluster: (tx.get('cluster', CLUSTER_ID) as Cluster | undefined) ?? null,
      nodes: (tx.list('node') as Node[]).map(nodeView),
    }));
    if (!cluster) return;
    const step = reconcile(cluster.rootCa, nodes, this.d.hasSession, this.nudged, now);
    for (const id of step.nudge) {
      if (this.d.send(id, { t: 'renew-cert' })) this.nudged.set(id, now);
    }
    for (const id of this.nudged.keys()) if (!nodes.some((n) => n.id === id)) this.nudged.delete(id);
    if (!step.complete) return;
    const target = cluster.rootCa.rotation?.newCertPem;
    await this.d.update((tx) => {
      const c = tx.get('cluster', CLUSTER_ID) as Cluster;
      // Written only if the rotation is still the one this pass looked at (a new --rotate replaces it).
      if (!c.rootCa.rotation || c.rootCa.rotation.newCertPem !== target) return;
      const done = completeRotation(c.rootCa, c.joinTokens, new Date(now));
      tx.update({ ...c, ...done } as Cluster);
    });
    this.nudged.clear();
    if (target) this.d.log(`root CA rotation complete: the cluster now trusts only root ${caDigest(target).slice(0, 12)}`);
  }

  /** Leadership lost: forget the nudge times. */
  reset(): void {
    this.nudged.clear();
  }
}

/** The root CA's state and, during a rotation, its progress (GET /v1/ca/rotation, `cluster inspect`). */
export function caStatus(store: Store): RotationProgress | null {
  return store.view((tx) => {
    const c = tx.get('cluster', CLUSTER_ID) as Cluster | undefined;
    if (!c) return null;
    try {
      return progress(c.rootCa, (tx.list('node') as Node[]).map(nodeView), c.admins);
    } catch (e) {
      // A root that does not parse must not take `cluster inspect` down with it.
      if (e instanceof PkiError) return null;
      throw e;
    }
  });
}
