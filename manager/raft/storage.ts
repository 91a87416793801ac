// The durability contract between a Raft node and its disk. The core decides *what* must be durable;
// an adapter (SQLite in production, an fsync-modelling fake in the simulation) decides *how*.
import type { Entry, HardState, Snapshot } from './types.ts';

/** Everything a node needs to restart: the latest snapshot and the log after it. */
export interface PersistedState {
  hardState: HardState;
  snapshot: Snapshot | null;
  /** Entries with index > snapshot index (or from 1 when no snapshot), contiguous, ascending. */
  entries: Entry[];
}

/** One batch of writes handed out by the core in a Ready; written in one transaction. */
export interface PersistBatch {
  hardState?: HardState;
  /**
   * Entries to append. If `entries[0].index` is not lastIndex+1, every stored entry with
   * index >= entries[0].index is discarded first (log truncation after a conflict).
   */
  entries: Entry[];
  /** A snapshot received from the leader: replaces the whole log up to and including its index. */
  snapshot?: Snapshot;
}

export interface RaftStorage {
  /** Reads and verifies the persisted state. Throws CorruptLogError if anything fails verification. */
  load(): PersistedState;
  /**
   * Writes a batch atomically. With `sync` true the call returns only once the batch is durable
   * (fsync). Throws (StorageError) on any I/O failure; the caller must then stop acknowledging.
   */
  save(batch: PersistBatch, sync: boolean): void;
  /**
   * Records a snapshot the application took locally at `snapshot.meta.index` and discards log entries
   * up to `snapshot.meta.index - keepEntries` (a tail is kept so slow followers can catch up from the
   * log instead of a snapshot). Durable on return.
   */
  compact(snapshot: Snapshot, keepEntries: number): void;
  /**
   * Optional: makes `snapshot` durable ahead of compact(snapshot, ...) without holding the event loop
   * (a large one is seconds of sealing and disk writes), so that compact() only commits it. Rejects like
   * compact() would fail.
   */
  prepareSnapshot?(snapshot: Snapshot): Promise<void>;
  close(): void;
}

/** The persisted log failed verification (checksum, gap, term regression, unreadable snapshot). */
export class CorruptLogError extends Error {
  readonly code = 'ERAFTCORRUPT';
  constructor(message: string) {
    super(message);
    this.name = 'CorruptLogError';
  }
}

/** A write or fsync failed. The node must stop acknowledging anything. */
export class StorageError extends Error {
  readonly code = 'ERAFTSTORAGE';
  constructor(message: string, cause?: unknown) {
    super(message, { cause });
    this.name = 'StorageError';
  }
}
