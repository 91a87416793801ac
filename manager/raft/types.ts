// Shared vocabulary of Shoal's Raft: entries, persistent state, snapshots, configurations and messages.
// Everything here is plain data so the core stays pure and every adapter (storage, transport, simulation)
// speaks the same shapes.

export type NodeId = string;

/** Log entry kinds: `normal` carries application data, `conf` a JSON-encoded ConfChange. */
export type EntryType = 'normal' | 'conf';

export interface Entry {
  index: number;
  term: number;
  type: EntryType;
  /** Application payload. Empty for the no-op a new leader appends. */
  data: Uint8Array;
}

/** What must be durable before the node votes or acknowledges anything. */
export interface HardState {
  term: number;
  vote: NodeId | null;
  commit: number;
}

/** Cluster membership as of some log position. `removed` ids are refused forever. */
export interface ConfState {
  voters: NodeId[];
  learners: NodeId[];
  removed: NodeId[];
}

export interface SnapshotMeta {
  index: number;
  term: number;
  conf: ConfState;
}

export interface Snapshot {
  meta: SnapshotMeta;
  data: Uint8Array;
}

/** A membership change proposal. `context` travels with it (e.g. the member's address). */
export type ConfChangeType = 'addVoter' | 'addLearner' | 'remove';
export interface ConfChange {
  type: ConfChangeType;
  node: NodeId;
  context?: string;
}

export type MessageType =
  | 'preVote'
  | 'preVoteResp'
  | 'vote'
  | 'voteResp'
  | 'app'
  | 'appResp'
  | 'heartbeat'
  | 'heartbeatResp'
  | 'snap'
  | 'snapResp'
  | 'timeoutNow'
  | 'readIndex'
  | 'readIndexResp';

export const MESSAGE_TYPES: readonly MessageType[] = [
  'preVote',
  'preVoteResp',
  'vote',
  'voteResp',
  'app',
  'appResp',
  'heartbeat',
  'heartbeatResp',
  'snap',
  'snapResp',
  'timeoutNow',
  'readIndex',
  'readIndexResp',
];

/** One chunk of an InstallSnapshot transfer. */
export interface SnapshotChunk {
  meta: SnapshotMeta;
  /** Byte offset of `data` within the whole snapshot. */
  offset: number;
  /** Total size of the snapshot in bytes. */
  total: number;
  data: Uint8Array;
}

/**
 * A Raft message. The shape is flat (every field always present) so encoding is simple and cheap;
 * the meaning of the generic fields depends on `type`:
 *
 * | type            | index                     | logTerm                 | other                          |
 * |-----------------|---------------------------|-------------------------|--------------------------------|
 * | preVote/vote    | candidate's last index    | candidate's last term   | context 'transfer' = forced    |
 * | *VoteResp       | -                         | -                       | reject                         |
 * | app             | prev index                | prev term               | entries, commit                |
 * | appResp         | match index (or rejected) | hint term (on reject)   | reject, rejectHint             |
 * | heartbeat       | -                         | -                       | commit, context (read ctx)     |
 * | heartbeatResp   | -                         | -                       | context                        |
 * | snap            | -                         | -                       | snapshot chunk                 |
 * | snapResp        | next offset wanted / index| -                       | reject                         |
 * | readIndex       | -                         | -                       | context                        |
 * | readIndexResp   | read index                | -                       | context, reject                |
 */
export interface Message {
  type: MessageType;
  from: NodeId;
  to: NodeId;
  term: number;
  index: number;
  logTerm: number;
  commit: number;
  entries: Entry[];
  reject: boolean;
  rejectHint: number;
  context: string;
  snapshot: SnapshotChunk | null;
}

export function emptyConf(): ConfState {
  return { voters: [], learners: [], removed: [] };
}
