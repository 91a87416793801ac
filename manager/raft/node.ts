// RaftNode: the production driver of Shoal's Raft. A thin I/O adapter around the pure RaftCore that
// owns the timers, the disk (RaftStorage), the network (RaftTransport) and the application state
// machine, and follows the Ready contract exactly like sim/cluster.ts does:
//
//   rd = core.ready()
//   1. persist rd.hardState + rd.entries + rd.snapshot (fsync when rd.mustSync)
//   2. send rd.messages
//   3. install rd.snapshot into the state machine, apply rd.committed in order
//   4. answer rd.readStates (serve a read once applied >= index; index -1 = failed)
//   5. core.advance()
//
// Event loop. Every input (tick, inbound message, proposal, read, membership change) only changes the
// core and schedules ONE processing pass with setImmediate. Everything that arrived in the same turn of
// the event loop therefore lands in one Ready: one SQLite transaction and one fsync for all of it
// (group commit), one frame per peer (the transport batches per turn as well). A pass drains the core
// (`while hasReady()`); at most one Ready is ever in flight.
//
// Two deliberate, documented relaxations of that order (both can be switched off):
//
// Leader pipelining (leaderSendBeforeSync, default on): when this node is
// the leader, the 'app', 'heartbeat' and 'snap' messages of a Ready are handed to the transport BEFORE
// the fsync, and the fsync runs in the next setImmediate — after the transport's own flush immediate,
// which was queued first — so the frames are on the wire while the leader's disk works, and followers
// persist in parallel with the leader (Raft thesis §10.2.1). This is safe because:
//   * the leader counts its own log towards the commit quorum only after advance(), i.e. after its own
//     fsync (RaftCore sets the leader's match to log.stable in advance());
//   * followers acknowledge only after their own fsync, so every commit still needs a durable majority;
//   * if the leader crashes before its fsync, followers may hold entries the leader lost; those are
//     uncommitted entries of a dead leader, which any later leader may overwrite or commit — exactly as
//     if the leader had crashed right after persisting and sending them;
//   * the leader's term and vote, however, must be durable before anything is sent at that term (else a
//     restarted node could vote again in that term and two leaders could exist in one term): early
//     sending is only done when the Ready does not change term or vote and the messages carry the
//     durable term. Votes, vote responses, acknowledgements and read responses always go out after the
//     fsync.
//
// Lazy commit index (commitFlushMs, default 1000 ms): a hard state that differs from the one on disk only
// in `commit` is not written with its Ready (such Readies have mustSync false anyway); the latest one is
// written at most once per commitFlushMs (on a tick), together with the next term/vote change or
// snapshot, and on stop(). The commit index is volatile state in Raft (Figure 2): a node restarted with an
// older commit simply re-applies less from its own log and learns the rest from the leader; term and vote
// are always written, and fsynced, before anything depends on them. The gain: an fsync per commit then
// carries only the new log entries instead of log entries plus the state row (one SQLite page less per
// fsync on every node, measurably lower commit latency).
//
// Membership addresses. Conf-change entries carry the member URL in `context`; applying them calls
// transport.addPeer/removePeer. ConfState has no addresses, so the snapshot data the driver hands to the
// core and to storage is a wrapper: a small binary header with the member map, then the application's
// bytes (see wrapSnapshot). A restart or a received snapshot therefore restores addresses as well.
//
// Failure. If storage.save/compact (or anything else in a pass) throws, the node halts: no more passes,
// ticks or stepped messages, nothing is acknowledged, every pending proposal and read is rejected with
// the error, and status().error / the log callback report it. It never continues as if the write had
// succeeded. stop() still releases the transport and storage.
import { randomInt } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { ticksDue } from './ticker.ts';
import { NotLeaderError, ProposalRejectedError, RaftCore, applyConfChange, decodeConfChange } from './core.ts';
import type { RaftStats, Ready, Role, UnsafeFlags } from './core.ts';
import type { PersistBatch, RaftStorage } from './storage.ts';
import type { RaftTransport } from './transport.ts';
import type { ConfChange, ConfState, Entry, HardState, Message, NodeId, Snapshot, SnapshotMeta } from './types.ts';
import { emptyConf } from './types.ts';
import { Slicer } from './slices.ts';

export { NotLeaderError, ProposalRejectedError };

/** The replicated application. Volatile: rebuilt from the latest snapshot plus the committed log on start. */
export interface StateMachine {
  /**
   * Applies one committed normal entry (never called for membership entries or a new leader's empty
   * no-op). Must be deterministic. The return value is handed to the proposer; a thrown error rejects
   * the proposer's promise and the node carries on (the entry counts as applied everywhere).
   */
  apply(entry: Entry): unknown;
  /** Serialises the whole state (called after `snapshotEvery` applied entries). */
  snapshot(): Uint8Array;
  /**
   * Optional: snapshot() in bounded steps. The state is captured when this is called; each next() does one
   * step and the last returns the bytes as parts (their concatenation is what snapshot() returns). With it
   * (and a storage with prepareSnapshot) the node takes its snapshots between passes of the event loop.
   */
  snapshotInSteps?(): Generator<void, Uint8Array[], void>;
  /** Replaces the whole state with a snapshot's data. */
  restore(data: Uint8Array): void;
}

export interface RaftNodeOptions {
  id: NodeId;
  /** Owned by the node from now on: closed by stop(). */
  storage: RaftStorage;
  /** Owned by the node from now on: closed by stop(). */
  transport: RaftTransport;
  stateMachine: StateMachine;
  /** Tick period. Default 10 ms. The timeouts below are rounded to whole ticks. */
  tickMs?: number;
  /** Leader heartbeat interval. Default 100 ms. */
  heartbeatMs?: number;
  /** Base election timeout. Default 1000 ms. */
  electionMs?: number;
  /** Uniform random extra election timeout in [0, electionJitterMs). Default 500 ms. */
  electionJitterMs?: number;
  /** Take a snapshot after this many applied entries (0 = never). Default 10000. */
  snapshotEvery?: number;
  /** Log entries kept behind a snapshot so slow followers catch up from the log. Default 5000. */
  keepEntries?: number;
  /** InstallSnapshot chunk size. Default 1 MiB. */
  snapshotChunkBytes?: number;
  /** Append messages in flight per follower (core default 64). */
  maxInflight?: number;
  /** Entries per append message (core default 256). */
  maxEntriesPerMsg?: number;
  /** Payload bytes per append message (core default 1 MiB). */
  maxBytesPerMsg?: number;
  /** A forwarded / pending read that got no answer within this time fails (retry). Default 2 × electionMs. */
  readTimeoutMs?: number;
  /**
   * Commit-only hard-state changes (same term and vote as on disk) are not written with every Ready but at
   * most once per this many ms (and on stop / with the next term or vote change). The commit index is
   * volatile state in Raft (it is re-learned from the leader); persisting it only shortens re-application
   * after a restart. Writing it with every commit puts a second SQLite page into every fsync.
   * 0 = write every hard state as the Ready hands it out. Default 1000.
   */
  commitFlushMs?: number;
  /** Send the leader's replication messages before its own fsync (see the header). Default true. */
  leaderSendBeforeSync?: boolean;
  /** Randomness in [0, 1) for election jitter. Default: crypto-based. */
  random?: () => number;
  /** Members of a brand-new cluster. Only used when the storage is empty; must include `id`. */
  bootstrap?: { id: NodeId; url: string }[];
  /** Diagnostics (elections, failures, snapshots). Default: discarded. */
  log?: (line: string) => void;
  /** Observer (metrics): a proposal's latency until applied here, or until it failed. Default: none. */
  onProposal?: (seconds: number, ok: boolean) => void;
  /**
   * TEST ONLY: deliberately broken core behaviours (see UnsafeFlags), so the real-cluster linearizability
   * harness (test/jepsen) can prove it catches a broken build. Never set in production; logged at start.
   */
  unsafe?: UnsafeFlags;
}

/** Environment variable a daemon reads once at start to run a deliberately broken Raft (tests only). */
export const UNSAFE_RAFT_ENV = 'SHOAL_UNSAFE_RAFT';
const UNSAFE_VARIANTS = ['localReads', 'ackBeforeDurable', 'commitOldTerm'] as const;

/**
 * The manager option for SHOAL_UNSAFE_RAFT=variant[,variant]: `{}` when unset or empty, else
 * `{ unsafeRaft: flags }`. An unknown variant is an error naming it, so a typo never silently runs the
 * safe build in a control run that must fail.
 */
/**
 * Snapshot cadence from the daemon's environment, for benchmarks that must see snapshots taken
 * (bench:scale): SHOAL_RAFT_SNAPSHOT_EVERY and SHOAL_RAFT_KEEP_ENTRIES, non-negative integers; anything
 * else is refused by name. Read by the daemon, like unsafeRaftOption, so RaftNode only takes options.
 */
export function raftSnapshotOption(env: NodeJS.ProcessEnv): { snapshotEvery?: number; keepEntries?: number } {
  const out: { snapshotEvery?: number; keepEntries?: number } = {};
  for (const [name, key] of [
    ['SHOAL_RAFT_SNAPSHOT_EVERY', 'snapshotEvery'],
    ['SHOAL_RAFT_KEEP_ENTRIES', 'keepEntries'],
  ] as const) {
    const v = env[name]?.trim();
    if (v === undefined || v === '') continue;
    if (!/^\d+$/.test(v)) throw new Error(`${name}: not a non-negative integer: ${JSON.stringify(v)}`);
    out[key] = Number(v);
  }
  return out;
}

export function unsafeRaftOption(env: NodeJS.ProcessEnv): { unsafeRaft?: UnsafeFlags } {
  const text = env[UNSAFE_RAFT_ENV]?.trim() ?? '';
  if (text === '') return {};
  const flags: UnsafeFlags = {};
  for (const v of text
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean)) {
    if (!(UNSAFE_VARIANTS as readonly string[]).includes(v)) {
      throw new Error(`${UNSAFE_RAFT_ENV}: unknown variant ${JSON.stringify(v)} (known: ${UNSAFE_VARIANTS.join(', ')})`);
    }
    flags[v as (typeof UNSAFE_VARIANTS)[number]] = true;
  }
  return { unsafeRaft: flags };
}

export interface RaftNodeStatus {
  id: NodeId;
  role: Role;
  term: number;
  leader: NodeId | null;
  commit: number;
  applied: number;
  lastIndex: number;
  voters: NodeId[];
  learners: NodeId[];
  /** Known member addresses (as of the applied log), including this node's own when known. */
  members: Record<NodeId, string>;
  /** The failure that halted the node, or null. */
  error: string | null;
  stopped: boolean;
}

export interface RaftNodeStats {
  proposals: number;
  applied: number;
  readies: number;
  fsyncs: number;
  /** Entries written to storage. */
  persistedEntries: number;
  /** Largest number of entries persisted in one Ready. */
  maxBatch: number;
  messagesSent: number;
  /** Messages sent before the fsync of their Ready (leader pipelining). */
  messagesSentEarly: number;
  messagesReceived: number;
  readBatches: number;
  reads: number;
  snapshotsTaken: number;
  snapshotsInstalled: number;
  leaderChanges: number;
  raft: RaftStats;
}

/** The node was stopped (or halted) before the operation completed. */
export class RaftStoppedError extends Error {
  readonly code = 'ERAFTSTOPPED';
  /** How the control API answers it (manager/api/errors.ts, which reads this instead of importing the class). */
  readonly wire = 'retry';
  constructor(message = 'raft node stopped') {
    super(message);
    this.name = 'RaftStoppedError';
  }
}

/** Another entry took the proposal's log index: it was definitely not applied. Safe to retry. */
export class ProposalDroppedError extends Error {
  readonly code = 'EPROPOSALDROPPED';
  /** How the control API answers it (manager/api/errors.ts, which reads this instead of importing the class). */
  readonly wire = 'retry';
  constructor(
    readonly index: number,
    readonly term: number,
    by: string,
  ) {
    super(`proposal at index ${index} (term ${term}) was overwritten by ${by}; it was not applied`);
    this.name = 'ProposalDroppedError';
  }
}

/** The proposal's index was covered by a snapshot received from the leader: it may or may not have been applied. */
export class ProposalOutcomeUnknownError extends Error {
  readonly code = 'EPROPOSALUNKNOWN';
  /** How the control API answers it (manager/api/errors.ts, which reads this instead of importing the class). */
  readonly wire = 'outcome-unknown';
  constructor(readonly index: number) {
    super(`outcome of the proposal at index ${index} is unknown: a snapshot from the leader replaced this node's log`);
    this.name = 'ProposalOutcomeUnknownError';
  }
}

/** A linearizable read could not be confirmed (no leader, leadership lost, timeout). Retry, maybe at `leader`. */
export class ReadFailedError extends Error {
  readonly code = 'EREADFAILED';
  /** How the control API answers it (manager/api/errors.ts, which reads this instead of importing the class). */
  readonly wire = 'unavailable';
  constructor(
    readonly leader: NodeId | null,
    why = 'read failed, retry',
  ) {
    super(leader ? `${why} (leader is ${leader})` : why);
    this.name = 'ReadFailedError';
  }
}

// ---------------------------------------------------------------------------------------------------------
// Snapshot wrapper: "SHRN" | u8 version (1) | u32 BE header length | header (UTF-8 JSON) | application bytes

const WRAP_MAGIC = [0x53, 0x48, 0x52, 0x4e]; // "SHRN"
const WRAP_VERSION = 1;
const WRAP_FIXED = 9;
const utf8 = new TextEncoder();
const utf8d = new TextDecoder('utf-8', { fatal: true });

export interface SnapshotEnvelope {
  members: Record<NodeId, string>;
  app: Uint8Array;
}

export function wrapSnapshot(env: SnapshotEnvelope): Uint8Array {
  return wrapSnapshotParts(env.members, [env.app]);
}

/** wrapSnapshot of the application's snapshot given in parts (StateMachine.snapshotInSteps), one copy. */
export function wrapSnapshotParts(members: Record<NodeId, string>, app: readonly Uint8Array[]): Uint8Array {
  const header = utf8.encode(JSON.stringify({ members }));
  let size = WRAP_FIXED + header.length;
  for (const part of app) size += part.length;
  const out = new Uint8Array(size);
  out.set(WRAP_MAGIC, 0);
  out[4] = WRAP_VERSION;
  new DataView(out.buffer).setUint32(5, header.length);
  out.set(header, WRAP_FIXED);
  let at = WRAP_FIXED + header.length;
  for (const part of app) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

export function unwrapSnapshot(data: Uint8Array): SnapshotEnvelope {
  const bad = (why: string) => new Error(`raft snapshot data: ${why}`);
  if (data.length < WRAP_FIXED || WRAP_MAGIC.some((b, i) => data[i] !== b)) throw bad('bad magic');
  if (data[4] !== WRAP_VERSION) throw bad(`unsupported version ${String(data[4])}`);
  const len = new DataView(data.buffer, data.byteOffset, data.byteLength).getUint32(5);
  if (WRAP_FIXED + len > data.length) throw bad('truncated header');
  const parsed = JSON.parse(utf8d.decode(data.subarray(WRAP_FIXED, WRAP_FIXED + len))) as { members?: unknown };
  const members: Record<NodeId, string> = {};
  if (typeof parsed.members !== 'object' || parsed.members === null) throw bad('no member map');
  for (const [id, url] of Object.entries(parsed.members as Record<string, unknown>)) {
    if (typeof url !== 'string') throw bad(`bad address for ${id}`);
    members[id] = url;
  }
  return { members, app: data.subarray(WRAP_FIXED + len) };
}

// ---------------------------------------------------------------------------------------------------------

interface PendingProposal {
  term: number;
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
}

interface ReadWaiter {
  resolve: () => void;
  reject: (e: unknown) => void;
}

interface ReadBatch {
  waiters: ReadWaiter[];
  since: number;
}

const EARLY_TYPES = new Set<Message['type']>(['app', 'heartbeat', 'snap']);

function defaultRandom(): number {
  return randomInt(0, 2 ** 47) / 2 ** 47;
}

function errText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function cloneConf(c: ConfState): ConfState {
  return { voters: [...c.voters], learners: [...c.learners], removed: [...c.removed] };
}

export class RaftNode {
  readonly id: NodeId;
  private readonly core: RaftCore;
  private readonly storage: RaftStorage;
  private readonly transport: RaftTransport;
  private readonly sm: StateMachine;
  private readonly tickMs: number;
  private electionMs: number;
  private electionJitterMs: number;
  private readonly snapshotEvery: number;
  private readonly keepEntries: number;
  private readonly readTimeoutMs: number;
  private readonly earlySend: boolean;
  private readonly commitFlushMs: number;
  private readonly logFn: (line: string) => void;
  private readonly onProposal: ((seconds: number, ok: boolean) => void) | null;

  /** Index of the last entry (or snapshot) applied to the state machine. */
  private applied: number;
  /** Membership as of `applied` (for the snapshots this node takes). */
  private conf: ConfState;
  /** Member addresses as of `applied`. */
  private members = new Map<NodeId, string>();
  private appliedSinceSnapshot = 0;
  /** A snapshot being taken in steps (takeSnapshotInSteps), then waiting for commitSnapshot. */
  private snapshotJob: Promise<void> | null = null;
  private snapshotReady: { snap: Snapshot; started: number; longestStepMs: number; workMs: number; fileMs: number } | null = null;
  /** Term and vote known to be on disk. */
  private durable: HardState;
  /** A commit-only hard state not written yet (see commitFlushMs). */
  private unwrittenCommit: HardState | null = null;
  private lastCommitWrite = 0;

  private timer: NodeJS.Timeout | null = null;
  /** When the next tick is due (performance.now() ms): late wake-ups run the ticks missed (ticker.ts). */
  private tickDueAt = 0;
  private passScheduled = false;
  /** A Ready whose fsync was deferred (leader pipelining); nothing else may touch the disk until it finishes. */
  private inflight: Ready | null = null;
  private started = false;
  private halted = false;
  private stopping: Promise<void> | null = null;
  private error: Error | null = null;

  private readonly proposals = new Map<number, PendingProposal>();
  private readBatch: ReadWaiter[] | null = null;
  private readSeq = 0;
  private readonly readsByCtx = new Map<string, ReadBatch>();
  /** Confirmed reads waiting for the state machine to reach their index. */
  private readsWaitingApply: { index: number; waiters: ReadWaiter[] }[] = [];

  private lastLeader: NodeId | null = null;
  private lastLeaderTerm = 0;
  private lastRole: Role = 'follower';
  private campaignTerm = 0;
  private readonly leaderListeners = new Set<(leader: NodeId | null, term: number) => void>();
  private readonly transferWaiters = new Set<{ to: NodeId; resolve: () => void; reject: (e: unknown) => void; deadline: number }>();

  private readonly st: Omit<RaftNodeStats, 'raft'> = {
    proposals: 0,
    applied: 0,
    readies: 0,
    fsyncs: 0,
    persistedEntries: 0,
    maxBatch: 0,
    messagesSent: 0,
    messagesSentEarly: 0,
    messagesReceived: 0,
    readBatches: 0,
    reads: 0,
    snapshotsTaken: 0,
    snapshotsInstalled: 0,
    leaderChanges: 0,
  };

  constructor(opts: RaftNodeOptions) {
    if (!opts.id) throw new Error('RaftNode: id is required');
    this.id = opts.id;
    this.storage = opts.storage;
    this.transport = opts.transport;
    this.sm = opts.stateMachine;
    const tickMs = opts.tickMs ?? 10;
    const heartbeatMs = opts.heartbeatMs ?? 100;
    const electionMs = opts.electionMs ?? 1000;
    const jitterMs = opts.electionJitterMs ?? 500;
    if (!(tickMs > 0)) throw new RangeError(`tickMs must be > 0, got ${tickMs}`);
    const heartbeatTicks = Math.max(1, Math.round(heartbeatMs / tickMs));
    const electionTicks = Math.max(1, Math.round(electionMs / tickMs));
    const jitterTicks = Math.max(1, Math.round(jitterMs / tickMs));
    if (heartbeatTicks >= electionTicks) {
      throw new RangeError(`heartbeatMs (${heartbeatMs}) must be well below electionMs (${electionMs})`);
    }
    this.tickMs = tickMs;
    this.electionMs = electionMs;
    this.electionJitterMs = jitterMs;
    this.snapshotEvery = opts.snapshotEvery ?? 10_000;
    this.keepEntries = opts.keepEntries ?? 5000;
    this.readTimeoutMs = opts.readTimeoutMs ?? 2 * electionMs;
    this.earlySend = opts.leaderSendBeforeSync ?? true;
    this.commitFlushMs = opts.commitFlushMs ?? 1000;
    this.logFn = opts.log ?? (() => {});
    this.onProposal = opts.onProposal ?? null;

    let state = this.storage.load();
    const empty = state.hardState.term === 0 && state.snapshot === null && state.entries.length === 0;
    if (opts.bootstrap && opts.bootstrap.length > 0) {
      if (!opts.bootstrap.some((b) => b.id === this.id)) {
        throw new Error(`RaftNode: bootstrap members ${opts.bootstrap.map((b) => b.id).join(', ')} do not include ${this.id}`);
      }
      if (empty) {
        const entries = RaftCore.bootstrapEntries(opts.bootstrap.map((b) => ({ id: b.id, context: b.url })));
        const hardState: HardState = { term: 1, vote: null, commit: entries.length };
        this.storage.save({ hardState, entries }, true);
        state = { hardState, snapshot: null, entries };
        this.log(`bootstrapped a new cluster: ${opts.bootstrap.map((b) => `${b.id}=${b.url}`).join(' ')}`);
      } else {
        this.log('storage is not empty: bootstrap ignored, restarting from disk');
      }
    }

    const coreOpts: ConstructorParameters<typeof RaftCore>[0] = {
      id: this.id,
      electionTicks,
      electionJitterTicks: jitterTicks,
      heartbeatTicks,
      random: opts.random ?? defaultRandom,
    };
    if (opts.maxInflight !== undefined) coreOpts.maxInflight = opts.maxInflight;
    if (opts.maxEntriesPerMsg !== undefined) coreOpts.maxEntriesPerMsg = opts.maxEntriesPerMsg;
    if (opts.maxBytesPerMsg !== undefined) coreOpts.maxBytesPerMsg = opts.maxBytesPerMsg;
    if (opts.snapshotChunkBytes !== undefined) coreOpts.snapshotChunkBytes = opts.snapshotChunkBytes;
    const unsafe = Object.entries(opts.unsafe ?? {})
      .filter(([, on]) => on)
      .map(([k]) => k);
    if (unsafe.length > 0) {
      coreOpts.unsafe = { ...opts.unsafe };
      this.log(`!!! UNSAFE RAFT (${unsafe.join(', ')}): a deliberately BROKEN build for tests; never use it for real data !!!`);
    }
    this.core = new RaftCore(coreOpts, state);
    this.durable = { ...state.hardState };

    // The state machine is volatile: restore the snapshot; the committed log after it is re-applied by
    // the first passes (the core hands it out as committed entries).
    const snap = state.snapshot;
    if (snap) {
      const env = unwrapSnapshot(snap.data);
      this.sm.restore(env.app);
      for (const [id, url] of Object.entries(env.members)) this.members.set(id, url);
      this.conf = cloneConf(snap.meta.conf);
      this.applied = snap.meta.index;
    } else {
      this.conf = emptyConf();
      this.applied = 0;
    }
  }

  // ------------------------------------------------------------------------------------------- lifecycle

  /** Registers known peers, starts ticking and handling messages. */
  start(): void {
    if (this.started) return;
    if (this.halted) throw new RaftStoppedError();
    this.started = true;
    // Addresses: from the snapshot wrapper, then every membership entry in the log (in order, committed or
    // not) so a restarted node can reach its peers before the log is re-applied.
    const addrs = new Map(this.members);
    const log = this.core.log;
    for (let i = log.firstIndex(); i <= log.lastIndex(); i++) {
      const e = log.entry(i);
      if (!e || e.type !== 'conf') continue;
      const cc = this.decodeConf(e);
      if (!cc) continue;
      if (cc.type === 'remove') addrs.delete(cc.node);
      else if (cc.context) addrs.set(cc.node, cc.context);
    }
    for (const [id, url] of addrs) this.addPeer(id, url);

    this.transport.onMessage((m) => this.onMessage(m));
    this.transport.onPeerGone?.((id) => this.onPeerGone(id));
    this.tickDueAt = performance.now() + this.tickMs;
    this.timer = setInterval(() => this.onTick(), this.tickMs);
    // A single-voter cluster (just initialised, or recovered with --force-new-cluster) leads at once.
    this.core.campaignIfSole();
    this.observe();
    this.schedule();
  }

  /** Stops ticking and processing, rejects everything pending, closes the transport and the storage. */
  stop(): Promise<void> {
    this.stopping ??= this.doStop();
    return this.stopping;
  }

  private async doStop(): Promise<void> {
    const clean = !this.halted;
    this.halt(new RaftStoppedError());
    if (clean) {
      try {
        this.writeUnwrittenCommit();
      } catch (err) {
        this.log(`writing the commit index on stop failed: ${errText(err)}`);
      }
    }
    try {
      await this.transport.close();
    } finally {
      this.storage.close();
    }
  }

  // ------------------------------------------------------------------------------------------- client API

  /**
   * Proposes `data` (non-empty). Resolves with the state machine's result once the entry is applied on
   * this node. Rejects at once with NotLeaderError (with the leader hint) when not the leader, and later
   * with ProposalDroppedError if another entry took its index (definitely not applied),
   * ProposalOutcomeUnknownError if a snapshot replaced it, the storage error if the node halted,
   * RaftStoppedError if it stopped. The last three mean "outcome unknown": the entry may already be on
   * other members and still commit there.
   */
  propose(data: Uint8Array): Promise<unknown> {
    if (this.halted) return Promise.reject(this.haltError());
    if (!(data instanceof Uint8Array) || data.length === 0) {
      return Promise.reject(new RangeError('propose: data must be a non-empty Uint8Array'));
    }
    let at: { index: number; term: number };
    try {
      at = this.core.propose(data);
    } catch (err) {
      return Promise.reject(err);
    }
    this.st.proposals++;
    const tracked = this.track(at);
    const observe = this.onProposal;
    if (!observe) return tracked;
    const t0 = performance.now();
    return tracked.then(
      (v) => (observe((performance.now() - t0) / 1000, true), v),
      (err: unknown) => {
        observe((performance.now() - t0) / 1000, false);
        throw err;
      },
    );
  }

  /**
   * Linearizable read barrier: resolves once this node's state machine reflects every write acknowledged
   * before read() was called. All reads of one event-loop turn share one ReadIndex round. Rejects with
   * ReadFailedError (retry) if leadership could not be confirmed.
   */
  read(): Promise<void> {
    if (this.halted) return Promise.reject(this.haltError());
    return new Promise<void>((resolve, reject) => {
      this.st.reads++;
      if (this.readBatch === null) {
        this.readBatch = [];
        this.schedule();
      }
      this.readBatch.push({ resolve, reject });
    });
  }

  /** Adds a member (as a learner with `learner: true`, to be promoted later). Resolves once applied here. */
  addMember(id: NodeId, url: string, opts: { learner?: boolean } = {}): Promise<void> {
    try {
      new URL(url);
    } catch {
      return Promise.reject(new RangeError(`addMember: bad url ${url}`));
    }
    return this.proposeConf({ type: opts.learner ? 'addLearner' : 'addVoter', node: id, context: url });
  }

  /** Removes a voter or learner. Resolves once applied here. */
  /** Removes a member. `demote` keeps the id eligible to be added again later (manager demotion). */
  removeMember(id: NodeId, opts: { demote?: boolean } = {}): Promise<void> {
    return this.proposeConf(opts.demote ? { type: 'remove', node: id, context: 'demote' } : { type: 'remove', node: id });
  }

  /** Turns a learner into a voter. Resolves once applied here. */
  promote(id: NodeId): Promise<void> {
    const url = this.members.get(id);
    return this.proposeConf(url !== undefined ? { type: 'addVoter', node: id, context: url } : { type: 'addVoter', node: id });
  }

  /** Hands leadership to `id`; resolves when this node sees `id` as leader, rejects after ~2 election timeouts. */
  transferLeadership(id: NodeId): Promise<void> {
    if (this.halted) return Promise.reject(this.haltError());
    try {
      this.core.transferLeadership(id);
    } catch (err) {
      return Promise.reject(err);
    }
    this.schedule();
    if (this.core.leader === id) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      this.transferWaiters.add({ to: id, resolve, reject, deadline: performance.now() + 2 * this.electionMs });
    });
  }

  /** Called with (leader, term) whenever the known leader changes (leader null = none known). Returns an unsubscribe function. */
  onLeaderChange(cb: (leader: NodeId | null, term: number) => void): () => void {
    this.leaderListeners.add(cb);
    return () => this.leaderListeners.delete(cb);
  }

  status(): RaftNodeStatus {
    const c = this.core;
    return {
      id: this.id,
      role: c.role,
      term: c.term,
      leader: c.leader,
      commit: c.commit,
      applied: this.applied,
      lastIndex: c.log.lastIndex(),
      voters: [...c.conf.voters],
      learners: [...c.conf.learners],
      members: Object.fromEntries(this.members),
      error: this.error && !(this.error instanceof RaftStoppedError) ? this.error.message : null,
      stopped: this.stopping !== null,
    };
  }

  /** The election timeout now in force: base and jitter, ms. */
  get electionTimeout(): { electionMs: number; jitterMs: number } {
    return { electionMs: this.electionMs, jitterMs: this.electionJitterMs };
  }

  /**
   * Changes the election timeout (base and uniform jitter, ms) from now on. The manager lengthens it as
   * the replicated state grows (manager/election-timing.ts): a leader's work grows with it, and a leader
   * that holds its event loop longer than the timeout loses its term to a follower that did not hear it.
   */
  setElectionTimeout(electionMs: number, jitterMs: number): void {
    const electionTicks = Math.max(1, Math.round(electionMs / this.tickMs));
    const jitterTicks = Math.max(1, Math.round(jitterMs / this.tickMs));
    this.core.setElectionTimeout(electionTicks, jitterTicks);
    if (electionMs !== this.electionMs || jitterMs !== this.electionJitterMs) {
      this.log(`election timeout now ${electionMs} ms + up to ${jitterMs} ms (was ${this.electionMs} + ${this.electionJitterMs})`);
    }
    this.electionMs = electionMs;
    this.electionJitterMs = jitterMs;
  }

  get isLeader(): boolean {
    return this.core.isLeader && !this.halted;
  }

  /** Leader only: how far a member's log is known to match ours (undefined elsewhere). */
  progress(id: NodeId): { match: number; state: string } | undefined {
    const pr = this.core.progressOf(id);
    return pr ? { match: pr.match, state: pr.state } : undefined;
  }

  stats(): RaftNodeStats {
    return { ...this.st, raft: { ...this.core.stats } };
  }

  // ------------------------------------------------------------------------------------------- inputs

  private onTick(): void {
    if (this.halted) return;
    const due = ticksDue(this.tickDueAt, performance.now(), this.tickMs);
    this.tickDueAt = due.next;
    try {
      for (let i = 0; i < due.ticks; i++) this.core.tick();
    } catch (err) {
      this.fail(err);
      return;
    }
    this.observe();
    this.expire();
    // (Safe even with a deferred Ready in flight: the commit index never exceeds what is already stored.)
    if (this.unwrittenCommit !== null && performance.now() - this.lastCommitWrite >= this.commitFlushMs) {
      try {
        this.writeUnwrittenCommit();
      } catch (err) {
        this.fail(err);
        return;
      }
    }
    this.schedule();
  }

  private writeUnwrittenCommit(): void {
    const hs = this.unwrittenCommit;
    if (hs === null) return;
    this.storage.save({ entries: [], hardState: hs }, false);
    this.unwrittenCommit = null;
    this.lastCommitWrite = performance.now();
  }

  private onMessage(m: Message): void {
    if (this.halted) return;
    this.st.messagesReceived++;
    try {
      this.core.step(m);
    } catch (err) {
      this.fail(err);
      return;
    }
    this.observe();
    this.schedule();
  }

  /** The transport found `id`'s process gone: if it led us, the election is brought forward. */
  private onPeerGone(id: NodeId): void {
    if (this.halted) return;
    if (!this.core.leaderGone(id)) return;
    this.log(`leader ${id} is gone (its connections closed and a new dial was refused): campaigning early`);
    this.observe();
    this.schedule();
  }

  private proposeConf(cc: ConfChange): Promise<void> {
    if (this.halted) return Promise.reject(this.haltError());
    let at: { index: number; term: number };
    try {
      at = this.core.proposeConfChange(cc);
    } catch (err) {
      return Promise.reject(err);
    }
    return this.track(at).then(() => undefined);
  }

  private track(at: { index: number; term: number }): Promise<unknown> {
    // An older proposal still waiting at this index was evidently overwritten in our own log.
    const old = this.proposals.get(at.index);
    if (old) old.reject(new ProposalDroppedError(at.index, old.term, `an entry of term ${at.term}`));
    const p = new Promise<unknown>((resolve, reject) => {
      this.proposals.set(at.index, { term: at.term, resolve, reject });
    });
    this.schedule();
    return p;
  }

  // ------------------------------------------------------------------------------------------- the pass

  private schedule(): void {
    if (this.passScheduled || this.halted || !this.started) return;
    this.passScheduled = true;
    setImmediate(this.runPass);
  }

  private readonly runPass = (): void => {
    this.passScheduled = false;
    if (this.halted || this.inflight !== null) return; // the deferred finish continues the drain
    try {
      this.drain();
    } catch (err) {
      this.fail(err);
    }
  };

  private drain(): void {
    if (this.readBatch !== null) {
      const waiters = this.readBatch;
      this.readBatch = null;
      const ctx = `${this.id}/${++this.readSeq}`;
      this.readsByCtx.set(ctx, { waiters, since: performance.now() });
      this.st.readBatches++;
      this.core.readIndex(ctx);
    }
    while (!this.halted && this.core.hasReady()) {
      const rd = this.core.ready();
      this.st.readies++;
      const early = this.splitEarly(rd);
      if (early !== null) {
        this.send(early.now);
        this.st.messagesSentEarly += early.now.length;
        this.inflight = rd;
        // Queued after the transport's flush immediate: the frames hit the sockets before we fsync.
        setImmediate(() => {
          this.inflight = null;
          if (this.halted) return;
          try {
            this.finish(rd, early.later);
            this.drain();
          } catch (err) {
            this.fail(err);
          }
        });
        return;
      }
      this.finish(rd, rd.messages);
    }
    if (!this.halted) {
      this.commitSnapshot();
      this.maybeSnapshot();
    }
  }

  /** Leader messages that may leave before this Ready's fsync (see the header), or null. */
  private splitEarly(rd: Ready): { now: Message[]; later: Message[] } | null {
    if (!this.earlySend || !this.core.isLeader || !rd.mustSync) return null;
    if (rd.entries.length === 0 && rd.snapshot === null) return null; // nothing slow to overlap
    const term = this.core.term;
    if (term !== this.durable.term || this.core.vote !== this.durable.vote) return null;
    if (rd.hardState && (rd.hardState.term !== this.durable.term || rd.hardState.vote !== this.durable.vote)) return null;
    const now: Message[] = [];
    const later: Message[] = [];
    for (const m of rd.messages) {
      if (EARLY_TYPES.has(m.type) && m.term === term && m.from === this.id) now.push(m);
      else later.push(m);
    }
    return now.length > 0 ? { now, later } : null;
  }

  private finish(rd: Ready, messages: Message[]): void {
    // 1. Persist (throws → the node halts before anything below happens).
    let hs = rd.hardState;
    if (hs !== null && this.commitFlushMs > 0 && rd.snapshot === null && hs.term === this.durable.term && hs.vote === this.durable.vote) {
      // Commit-only change: keep it for later unless it is time to write it (see commitFlushMs).
      if (performance.now() - this.lastCommitWrite < this.commitFlushMs) {
        this.unwrittenCommit = hs;
        hs = null;
      }
    }
    if (hs !== null || rd.entries.length > 0 || rd.snapshot !== null) {
      const batch: PersistBatch = { entries: rd.entries };
      if (hs) batch.hardState = hs;
      if (rd.snapshot) batch.snapshot = rd.snapshot;
      this.storage.save(batch, rd.mustSync);
      if (rd.mustSync) this.st.fsyncs++;
      if (hs) {
        this.durable = { ...hs };
        this.unwrittenCommit = null;
        this.lastCommitWrite = performance.now();
      }
      this.st.persistedEntries += rd.entries.length;
      if (rd.entries.length > this.st.maxBatch) this.st.maxBatch = rd.entries.length;
    }
    // 2. Send.
    this.send(messages);
    // 3. Apply.
    if (rd.snapshot) this.installSnapshot(rd.snapshot);
    for (const e of rd.committed) this.applyEntry(e);
    // 4. Reads.
    for (const rs of rd.readStates) {
      const batch = this.readsByCtx.get(rs.ctx);
      if (!batch) continue;
      this.readsByCtx.delete(rs.ctx);
      if (rs.index < 0) {
        const err = new ReadFailedError(this.core.leader);
        for (const w of batch.waiters) w.reject(err);
      } else {
        this.readsWaitingApply.push({ index: rs.index, waiters: batch.waiters });
      }
    }
    // 5. Advance.
    this.core.advance();
    this.serveReads();
    this.observe();
  }

  private send(messages: Message[]): void {
    if (messages.length === 0) return;
    this.st.messagesSent += messages.length;
    this.transport.send(messages);
  }

  private installSnapshot(snap: Snapshot): void {
    const t0 = performance.now();
    const env = unwrapSnapshot(snap.data);
    this.sm.restore(env.app);
    const next = new Map(Object.entries(env.members));
    for (const id of this.members.keys()) if (!next.has(id)) this.dropPeer(id);
    for (const [id, url] of next) if (this.members.get(id) !== url) this.addPeer(id, url);
    this.members = next;
    this.conf = cloneConf(snap.meta.conf);
    this.applied = Math.max(this.applied, snap.meta.index);
    this.appliedSinceSnapshot = 0;
    this.st.snapshotsInstalled++;
    for (const [index, p] of this.proposals) {
      if (index <= snap.meta.index) {
        this.proposals.delete(index);
        p.reject(new ProposalOutcomeUnknownError(index));
      }
    }
    this.log(
      `installed snapshot ${snap.meta.index}-${snap.meta.term} from the leader (${snap.data.length} bytes in ${(performance.now() - t0).toFixed(0)} ms)`,
    );
  }

  private applyEntry(e: Entry): void {
    if (e.index <= this.applied) return; // already covered by a snapshot
    this.applied = e.index;
    this.appliedSinceSnapshot++;
    this.st.applied++;
    let result: unknown;
    let error: unknown = null;
    if (e.type === 'conf') {
      this.applyConf(e);
    } else if (e.data.length > 0) {
      try {
        result = this.sm.apply(e);
      } catch (err) {
        error = err ?? new Error('state machine apply failed');
        this.log(`state machine apply of entry ${e.index} threw: ${errText(err)}`);
      }
    }
    const p = this.proposals.get(e.index);
    if (p === undefined) return;
    this.proposals.delete(e.index);
    if (p.term !== e.term) p.reject(new ProposalDroppedError(e.index, p.term, `an entry of term ${e.term}`));
    else if (error !== null) p.reject(error);
    else p.resolve(result);
  }

  private applyConf(e: Entry): void {
    const cc = this.decodeConf(e);
    if (!cc) return;
    this.conf = applyConfChange(this.conf, cc);
    if (cc.type === 'remove') {
      this.members.delete(cc.node);
      this.dropPeer(cc.node);
      this.log(`member ${cc.node} removed (entry ${e.index})`);
    } else {
      if (cc.context) {
        this.members.set(cc.node, cc.context);
        this.addPeer(cc.node, cc.context);
      }
      this.log(`member ${cc.node} ${cc.type === 'addLearner' ? 'added as learner' : 'is a voter'} (entry ${e.index})`);
    }
  }

  private decodeConf(e: Entry): ConfChange | null {
    try {
      return decodeConfChange(e.data);
    } catch (err) {
      this.log(`malformed membership entry ${e.index}: ${errText(err)}`);
      return null;
    }
  }

  private addPeer(id: NodeId, url: string): void {
    if (id === this.id) return;
    try {
      this.transport.addPeer(id, url);
    } catch (err) {
      this.log(`cannot register peer ${id} at ${url}: ${errText(err)}`);
    }
  }

  private dropPeer(id: NodeId): void {
    if (id === this.id) return;
    try {
      this.transport.removePeer(id);
    } catch (err) {
      this.log(`cannot unregister peer ${id}: ${errText(err)}`);
    }
  }

  private serveReads(): void {
    if (this.readsWaitingApply.length === 0) return;
    const still: typeof this.readsWaitingApply = [];
    for (const r of this.readsWaitingApply) {
      if (this.applied >= r.index) for (const w of r.waiters) w.resolve();
      else still.push(r);
    }
    this.readsWaitingApply = still;
  }

  private maybeSnapshot(): void {
    if (this.snapshotEvery <= 0 || this.appliedSinceSnapshot < this.snapshotEvery || this.inflight !== null) return;
    // One snapshot at a time: being taken, or taken and waiting for its commit.
    if (this.snapshotJob !== null || this.snapshotReady !== null) return;
    const index = this.applied;
    if (this.core.applied !== index) return;
    const term = this.core.log.term(index);
    if (term === undefined) return;
    const t0 = performance.now();
    const meta = { index, term, conf: cloneConf(this.conf) };
    const members = Object.fromEntries(this.members);
    if (this.sm.snapshotInSteps && this.storage.prepareSnapshot) {
      // Captured now, at `index`; serialised, sealed and written between passes (takeSnapshotInSteps).
      const steps = this.sm.snapshotInSteps();
      this.appliedSinceSnapshot = 0;
      this.snapshotJob = this.takeSnapshotInSteps(steps, meta, members, t0).then(
        () => {
          this.snapshotJob = null;
        },
        (err: unknown) => {
          this.snapshotJob = null;
          if (!this.halted) this.fail(err);
        },
      );
      return;
    }
    const data = wrapSnapshot({ members, app: this.sm.snapshot() });
    this.appliedSinceSnapshot = 0;
    const ms = performance.now() - t0;
    this.snapshotReady = { snap: { meta, data }, started: t0, longestStepMs: ms, workMs: ms, fileMs: 0 };
    this.commitSnapshot();
  }

  /**
   * A snapshot taken without stopping the node for all of it: at 150,000 tasks serialising, sealing and
   * writing it took 3.5 s on a leader's event loop (and its compaction 4 s more before secure_delete was
   * limited to plaintext rows), longer than the 1 s election timeout, so the leader lost its term at every
   * snapshot. Each step here is bounded (the state machine's, then the storage's sealing and hashing), the
   * file is written and fsynced off the main thread, and only the commit, a rename and one small
   * transaction, runs in a pass (commitSnapshot), where no Ready is in flight.
   */
  private async takeSnapshotInSteps(
    steps: Generator<void, Uint8Array[], void>,
    meta: SnapshotMeta,
    members: Record<NodeId, string>,
    t0: number,
  ): Promise<void> {
    const slices = new Slicer();
    let work = 0;
    let parts: Uint8Array[];
    for (;;) {
      const s0 = performance.now();
      const r = steps.next();
      work += performance.now() - s0;
      if (r.done) {
        parts = r.value;
        break;
      }
      const turn = slices.next();
      if (turn !== undefined) {
        await turn;
        if (this.halted) return;
      }
    }
    const s0 = performance.now();
    const snap: Snapshot = { meta, data: wrapSnapshotParts(members, parts) };
    work += performance.now() - s0;
    slices.end();
    const longest = slices.longestMs;
    const f0 = performance.now();
    await this.storage.prepareSnapshot!(snap);
    if (this.halted) return;
    this.snapshotReady = { snap, started: t0, longestStepMs: longest, workMs: work, fileMs: performance.now() - f0 };
    this.schedule();
  }

  /** Records a snapshot taken by maybeSnapshot in the storage and the core, and compacts the log. */
  private commitSnapshot(): void {
    const ready = this.snapshotReady;
    if (ready === null || this.inflight !== null) return;
    this.snapshotReady = null;
    const c0 = performance.now();
    this.storage.compact(ready.snap, this.keepEntries);
    this.core.compact(ready.snap, this.keepEntries);
    const commitMs = performance.now() - c0;
    this.st.snapshotsTaken++;
    const { index, term } = ready.snap.meta;
    // Wall time from the capture to the commit (steps interleave with the node's other work), the longest
    // stretch it held the event loop, the serialising work, and the file (sealed, hashed in steps, written
    // and fsynced off the main thread).
    this.log(
      `snapshot at ${index}-${term} (${ready.snap.data.length} bytes in ${(performance.now() - ready.started).toFixed(0)} ms), log compacted; longest step ${Math.max(ready.longestStepMs, commitMs).toFixed(0)} ms, serialising ${ready.workMs.toFixed(0)} ms of work, file ${ready.fileMs.toFixed(0)} ms, commit ${commitMs.toFixed(0)} ms`,
    );
  }

  // ------------------------------------------------------------------------------------------- bookkeeping

  private observe(): void {
    const leader = this.core.leader;
    const term = this.core.term;
    // Elections in the log, as etcd's are: a failover that takes several terms (split votes, a voter
    // still in its leader's lease, a candidate behind on the log) is otherwise invisible (bench:scale
    // saw one take 5 s and three terms, with nothing to say why).
    const role = this.core.role;
    if (role !== this.lastRole) {
      if (role === 'candidate') this.log(`campaigning in term ${term}`);
      else if (this.lastRole === 'candidate' && role === 'follower')
        this.log(`campaign of term ${this.campaignTerm} lost; now term ${term}, leader ${leader ?? 'unknown'}`);
      else if (this.lastRole === 'preCandidate' && role === 'follower' && leader === null) this.log(`pre-vote for term ${term + 1} refused`);
      if (role === 'candidate') this.campaignTerm = term;
      this.lastRole = role;
    }
    if (leader === this.lastLeader && (leader === null || term === this.lastLeaderTerm)) return;
    this.lastLeader = leader;
    if (leader !== null) this.lastLeaderTerm = term;
    this.st.leaderChanges++;
    if (leader === this.id) this.log(`became leader of term ${term}`);
    for (const w of this.transferWaiters) {
      if (leader === w.to) {
        this.transferWaiters.delete(w);
        w.resolve();
      }
    }
    for (const cb of this.leaderListeners) {
      try {
        cb(leader, term);
      } catch (err) {
        this.log(`onLeaderChange listener threw: ${errText(err)}`);
      }
    }
  }

  /** Fails reads and leadership transfers that waited too long. */
  private expire(): void {
    const now = performance.now();
    for (const [ctx, b] of this.readsByCtx) {
      if (now - b.since < this.readTimeoutMs) continue;
      this.readsByCtx.delete(ctx);
      const err = new ReadFailedError(this.core.leader, 'read timed out, retry');
      for (const w of b.waiters) w.reject(err);
    }
    for (const w of this.transferWaiters) {
      if (now < w.deadline) continue;
      this.transferWaiters.delete(w);
      w.reject(new Error(`leadership transfer to ${w.to} did not complete (leader is ${this.core.leader ?? 'unknown'})`));
    }
  }

  private haltError(): Error {
    return this.error ?? new RaftStoppedError();
  }

  private fail(err: unknown): void {
    const e = err instanceof Error ? err : new Error(String(err));
    this.log(`halted: ${e.name}: ${e.message} — this node no longer acknowledges anything`);
    this.halt(e);
  }

  /** Stops all processing for good and rejects everything pending with `err`. */
  private halt(err: Error): void {
    if (this.halted) return;
    this.halted = true;
    this.error = err;
    if (this.timer !== null) {
      clearInterval(this.timer);
      this.timer = null;
    }
    this.transport.onMessage(() => {});
    for (const p of this.proposals.values()) p.reject(err);
    this.proposals.clear();
    for (const w of this.readBatch ?? []) w.reject(err);
    this.readBatch = null;
    for (const b of this.readsByCtx.values()) for (const w of b.waiters) w.reject(err);
    this.readsByCtx.clear();
    for (const r of this.readsWaitingApply) for (const w of r.waiters) w.reject(err);
    this.readsWaitingApply = [];
    for (const w of this.transferWaiters) w.reject(err);
    this.transferWaiters.clear();
  }

  private log(line: string): void {
    try {
      this.logFn(`raft ${this.id}: ${line}`);
    } catch {
      // a broken logger must not break the node
    }
  }
}
