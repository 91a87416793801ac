// The manager as the metrics collectors see it (metrics/cluster.ts ClusterView): one read of the
// store per collector at scrape time, the dispatcher's counters and the usage table. Kept out of
// manager.ts so that file stays wiring only, and out of metrics/ so that metrics never imports the
// manager (it is the lower layer).
import type { ClusterView } from '../metrics/cluster.ts';
import type { DispatcherStats } from './dispatcher/stats.ts';
import type { RaftNode } from './raft/node.ts';
import type { RemoteCalls } from './api/remote.ts';
import { KINDS } from '../api/objects.ts';
import type { Store } from './store/store.ts';

export function managerClusterView(deps: { store: Store; raft: RaftNode; dispatcherStats: () => DispatcherStats; remote: () => RemoteCalls }): ClusterView {
  const { store } = deps;
  return {
    isLeader: () => deps.raft.status().role === 'leader',
    counts: () => store.view((tx) => Object.fromEntries(KINDS.map((k) => [k, tx.count(k)]))),
    tasks: () =>
      store.view((tx) =>
        tx.list('task').map((t) => ({
          id: t.id,
          service: t.serviceAnnotations.name,
          node: t.nodeId ?? null,
          state: t.status.state,
          message: t.status.message,
        })),
      ),
    services: () => store.view((tx) => tx.list('service').map((s) => ({ name: s.spec.name, updateState: s.updateStatus?.state ?? null }))),
    nodes: () =>
      store.view((tx) =>
        tx.list('node').map((n) => ({ id: n.id, hostname: n.description.hostname, state: n.status.state, availability: n.spec.availability })),
      ),
    dispatcher: () => deps.dispatcherStats(),
    usageOf: (id) => deps.remote().usageOf(id),
  };
}
