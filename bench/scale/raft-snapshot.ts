// The Raft snapshot of a large store as a manager takes it: a single-voter RaftNode over the real
// SqliteRaftStorage (encrypted at rest, fsync on), with the Store as its state machine, so the figure
// covers everything a leader does for a snapshot: serialising the store, wrapping and sealing it, the
// snapshot file and its fsync, and compacting the log the tasks were written in. Printed: the snapshot's
// wall time (as the node logs it) and the longest stretch the event loop could not run during it, which
// is what costs a leader its term (Raft's election timeout is 1 s).
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KeyRing } from '../../manager/keys/keyring.ts';
import { RaftCipher } from '../../manager/raft/encrypt.ts';
import { RaftNode } from '../../manager/raft/node.ts';
import { SqliteRaftStorage } from '../../manager/raft/storage-sqlite.ts';
import type { RaftTransport } from '../../manager/raft/transport.ts';
import { Store } from '../../manager/store/store.ts';
import { type LoopProbe, startLoopProbe } from './loop-probe.ts';

/** A single voter sends nothing; the transport only has to exist. */
const noTransport: RaftTransport = {
  send: () => {},
  onMessage: () => {},
  addPeer: () => {},
  removePeer: () => {},
  close: async () => {},
};

export interface RaftSnapshotFigures {
  /** Wall time the node logged for the snapshot. */
  wallMs: number;
  /** The serialising steps' CPU, and the file's time (sealed and hashed in steps, written off the loop). */
  workMs: number;
  fileMs: number;
  /** Longest step the node measured (serialising, wrapping, committing). */
  longestStepMs: number;
  /** Longest gap between two runs of a 5 ms timer while the snapshot was being taken. */
  longestBlockMs: number;
  bytes: number;
  /** Log entries the store's writes took (what the compaction deleted, less the kept tail). */
  entries: number;
}

/**
 * Fills a store through Raft with `fill(store)`, then has the node take one snapshot and compact.
 * `fill` writes with store.update as the orchestrator and dispatcher do; `touch` makes one more write,
 * the one whose apply takes the snapshot.
 */
export async function measureRaftSnapshot(fill: (store: Store) => Promise<void>, touch: (store: Store) => Promise<void>): Promise<RaftSnapshotFigures> {
  const dir = mkdtempSync(join(tmpdir(), 'shoal-bench-snap-'));
  const logs: string[] = [];
  let node: RaftNode | null = null;
  let probe: LoopProbe | null = null;
  try {
    const storage = new SqliteRaftStorage(dir, { cipher: new RaftCipher(KeyRing.generate(randomBytes, new Date()), randomBytes) });
    let snapshotAt = Number.POSITIVE_INFINITY;
    const store = new Store({ propose: (d) => node!.propose(d), proposer: 'n1' });
    node = new RaftNode({
      id: 'n1',
      storage,
      transport: noTransport,
      stateMachine: {
        apply: (e) => store.apply({ index: e.index, data: e.data, term: e.term }),
        snapshot: () => store.snapshot(),
        snapshotInSteps: () => store.snapshotInSteps(),
        restore: (d) => store.restore(d),
      },
      bootstrap: [{ id: 'n1', url: 'wss://127.0.0.1:1' }],
      // Production timing; a snapshot only when asked for below.
      tickMs: 10,
      heartbeatMs: 100,
      electionMs: 1000,
      electionJitterMs: 500,
      snapshotEvery: 1_000_000_000,
      // The tail kept behind the snapshot: small, so the compaction deletes most of what `fill` wrote.
      keepEntries: 50,
      log: (l) => logs.push(l),
    });
    node.start();
    while (!node.isLeader) await new Promise((r) => setTimeout(r, 10));
    await fill(store);
    const entries = store.index;
    // The next applied entry takes the snapshot: the cadence is lowered to what has been applied.
    (node as unknown as { snapshotEvery: number }).snapshotEvery = 1;
    probe = startLoopProbe();
    snapshotAt = logs.length;
    await touch(store);
    let line: RegExpExecArray | null = null;
    while (line === null) {
      for (let i = snapshotAt; i < logs.length && line === null; i++)
        line = /snapshot at \d+-\d+ \((\d+) bytes in (\d+) ms\), log compacted; longest step (\d+) ms, serialising (\d+) ms of work, file (\d+) ms/.exec(
          logs[i]!,
        );
      if (line === null) await new Promise((r) => setTimeout(r, 5));
    }
    // One more probe interval so a block that ended the snapshot is counted.
    await new Promise((r) => setTimeout(r, 20));
    const longest = probe.longest();
    return {
      wallMs: Number(line[2]),
      longestStepMs: Number(line[3]),
      workMs: Number(line[4]),
      fileMs: Number(line[5]),
      longestBlockMs: longest,
      bytes: Number(line[1]),
      entries,
    };
  } finally {
    probe?.stop();
    await node?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
