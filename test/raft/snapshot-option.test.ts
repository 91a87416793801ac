// The daemon's snapshot-cadence knobs (SHOAL_RAFT_SNAPSHOT_EVERY / SHOAL_RAFT_KEEP_ENTRIES): read from the
// environment by the daemon and handed to RaftNode as options; a bad value is refused by name.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { raftSnapshotOption } from '../../manager/raft/node.ts';

test('absent or empty: no options, RaftNode keeps its defaults', () => {
  assert.deepEqual(raftSnapshotOption({}), {});
  assert.deepEqual(raftSnapshotOption({ SHOAL_RAFT_SNAPSHOT_EVERY: ' ' }), {});
});

test('integers become snapshotEvery / keepEntries', () => {
  assert.deepEqual(raftSnapshotOption({ SHOAL_RAFT_SNAPSHOT_EVERY: '2000', SHOAL_RAFT_KEEP_ENTRIES: '1000' }), { snapshotEvery: 2000, keepEntries: 1000 });
});

test('anything else is refused, naming the variable', () => {
  assert.throws(() => raftSnapshotOption({ SHOAL_RAFT_KEEP_ENTRIES: '1e3' }), /SHOAL_RAFT_KEEP_ENTRIES: not a non-negative integer/);
  assert.throws(() => raftSnapshotOption({ SHOAL_RAFT_SNAPSHOT_EVERY: '-5' }), /SHOAL_RAFT_SNAPSHOT_EVERY/);
});
