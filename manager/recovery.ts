// `cluster init --force-new-cluster`: a single surviving manager becomes a one-manager cluster with all
// the state it has. Every entry in its local log is taken as committed (like etcd's force-new-cluster:
// the survivor is the best copy there is), replayed into the store, and written back as one snapshot
// whose membership is this node alone. The other managers are demoted in the store, so when they come
// back they renew their certificates as workers instead of campaigning with the old membership.
import { decodeConfChange } from './raft/core.ts';
import { unwrapSnapshot, wrapSnapshot } from './raft/node.ts';
import type { RaftCipher } from './raft/encrypt.ts';
import { SqliteRaftStorage } from './raft/storage-sqlite.ts';
import type { Snapshot } from './raft/types.ts';
import type { Node as NodeObj } from '../api/objects.ts';
import { Store } from './store/store.ts';

export interface RecoveryReport {
  index: number;
  term: number;
  entriesReplayed: number;
  demoted: string[];
}

/** `cipher`: the manager's Raft key, when its log is encrypted at rest (the rewrite stays encrypted). */
export async function forceNewCluster(raftDir: string, self: { id: string; url: string }, cipher: RaftCipher | null = null): Promise<RecoveryReport> {
  const storage = new SqliteRaftStorage(raftDir, { cipher });
  try {
    const st = storage.load();
    const store = new Store({});
    if (st.snapshot) store.restore(unwrapSnapshot(st.snapshot.data).app);
    let replayed = 0;
    for (const e of st.entries) {
      if (e.type === 'conf') {
        decodeConfChange(e.data); // validates; membership is replaced below anyway
        continue;
      }
      if (e.data.length === 0) continue;
      store.apply({ index: e.index, data: e.data });
      replayed++;
    }
    const last = st.entries.at(-1);
    const lastIndex = last ? last.index : (st.snapshot?.meta.index ?? 0);
    const term = Math.max(st.hardState.term, last?.term ?? st.snapshot?.meta.term ?? 0);
    if (lastIndex === 0) throw new Error('this node has no cluster state to recover');
    const others = (store.view((tx) => tx.list('node')) as NodeObj[]).filter((n) => n.id !== self.id && n.spec.role === 'manager').map((n) => n.id);
    // The demotion is one local transaction; the snapshot covers it as a virtual entry after the log.
    if (others.length > 0) {
      await store.update((tx) => {
        for (const id of others) {
          const n = tx.get('node', id) as NodeObj | undefined;
          if (n) tx.update({ ...n, spec: { ...n.spec, role: 'worker' } });
        }
      });
    }
    const index = Math.max(lastIndex, store.index);
    const snapshot: Snapshot = {
      meta: { index, term, conf: { voters: [self.id], learners: [], removed: st.snapshot?.meta.conf.removed ?? [] } },
      data: wrapSnapshot({ members: { [self.id]: self.url }, app: store.snapshot() }),
    };
    // A received-snapshot save replaces the whole log (no entry at `index` has this term).
    storage.save({ hardState: { term, vote: null, commit: index }, entries: [], snapshot }, true);
    return { index, term, entriesReplayed: replayed, demoted: others };
  } finally {
    storage.close();
  }
}
