// Shoal's Raft consensus core: a deterministic state machine with no I/O, no timers and no ambient
// randomness. The caller drives it with tick(), step(message), propose(), readIndex() and membership
// proposals, and drains a Ready: what to persist, what to send (after persisting), what is committed
// and may be applied, and which linearizable reads are now safe. See docs/design/raft.md.
import { RaftLog } from './log.ts';
import type { ConfChange, ConfState, Entry, HardState, Message, MessageType, NodeId, Snapshot, SnapshotChunk } from './types.ts';
import { emptyConf } from './types.ts';

export type Role = 'follower' | 'preCandidate' | 'candidate' | 'leader';

/**
 * Deliberately broken behaviours, used only by tests to prove the simulation and the linearizability
 * checker catch real bugs. Never set in production.
 */
export interface UnsafeFlags {
  /** (a) Serve reads from local state: ReadIndex answers at once, without confirming leadership. */
  localReads?: boolean;
  /** (b) Acknowledge appended entries without waiting for them to be durable (mustSync false). */
  ackBeforeDurable?: boolean;
  /** (c) Commit entries of earlier terms by counting replicas (ignores the Figure 8 rule). */
  commitOldTerm?: boolean;
}

export interface RaftOptions {
  id: NodeId;
  /** Base election timeout in ticks; the effective one is base + uniform[0, jitter). */
  electionTicks: number;
  electionJitterTicks: number;
  heartbeatTicks: number;
  /** Injected randomness in [0, 1): the only source of nondeterminism. */
  random: () => number;
  maxEntriesPerMsg?: number;
  maxBytesPerMsg?: number;
  /** Append messages in flight per follower before the leader pauses it (flow control). */
  maxInflight?: number;
  snapshotChunkBytes?: number;
  preVote?: boolean;
  checkQuorum?: boolean;
  unsafe?: UnsafeFlags;
}

export interface ReadState {
  /** The caller's request context. */
  ctx: string;
  /** Serve the read once the state machine has applied this index. -1 when the read failed (retry). */
  index: number;
}

export interface Ready {
  hardState: HardState | null;
  entries: Entry[];
  snapshot: Snapshot | null;
  /** True when hardState/entries/snapshot must be fsynced before messages go out. */
  mustSync: boolean;
  messages: Message[];
  committed: Entry[];
  readStates: ReadState[];
}

export interface Progress {
  match: number;
  next: number;
  state: 'probe' | 'replicate' | 'snapshot';
  /** Probe state: an append is outstanding, wait for its answer or the next heartbeat. */
  probeSent: boolean;
  /** Replicate state: last index of each append in flight, ascending. */
  inflight: number[];
  recentActive: boolean;
  /** Snapshot state: which snapshot and how many bytes the follower confirmed. */
  snapIndex: number;
  snapOffset: number;
  snapStalled: number;
}

export interface RaftStats {
  droppedFromRemoved: number;
  droppedFromUnknown: number;
  droppedStaleTerm: number;
  ignoredInLease: number;
  snapshotsSent: number;
  snapshotsInstalled: number;
  electionsStarted: number;
}

export class NotLeaderError extends Error {
  readonly code = 'ENOTLEADER';
  /** How the control API answers it (manager/api/errors.ts, which reads this instead of importing the class). */
  readonly wire = 'unavailable';
  constructor(readonly leader: NodeId | null) {
    super(leader ? `not the leader; the leader is ${leader}` : 'not the leader; no leader is known');
    this.name = 'NotLeaderError';
  }
}

export class ProposalRejectedError extends Error {
  readonly code = 'EPROPOSAL';
  /** How the control API answers it (manager/api/errors.ts, which reads this instead of importing the class). */
  readonly wire = 'retry';
  constructor(message: string) {
    super(message);
    this.name = 'ProposalRejectedError';
  }
}

interface PendingRead {
  ctx: string;
  index: number;
  /** Who asked: this node, or a follower that forwarded the request. */
  from: NodeId;
  acks: Set<NodeId>;
}

interface IncomingSnapshot {
  meta: SnapshotChunk['meta'];
  total: number;
  parts: Uint8Array[];
  received: number;
}

const LEADER_MESSAGES: ReadonlySet<MessageType> = new Set(['app', 'heartbeat', 'snap', 'timeoutNow', 'readIndexResp']);

export class RaftCore {
  readonly id: NodeId;
  private readonly opts: Required<Omit<RaftOptions, 'unsafe'>> & { unsafe: UnsafeFlags };

  term = 0;
  vote: NodeId | null = null;
  commit = 0;
  role: Role = 'follower';
  leader: NodeId | null = null;
  readonly log: RaftLog;
  /** Highest index handed out for applying (including any in the Ready not yet advanced). */
  private applying = 0;
  applied = 0;
  conf: ConfState;
  /** Last log index whose conf change has been applied to `conf`. */
  private confApplied = 0;
  /** The latest snapshot this node holds (taken locally or received), sent to lagging followers. */
  snapshot: Snapshot | null;
  readonly stats: RaftStats = {
    droppedFromRemoved: 0,
    droppedFromUnknown: 0,
    droppedStaleTerm: 0,
    ignoredInLease: 0,
    snapshotsSent: 0,
    snapshotsInstalled: 0,
    electionsStarted: 0,
  };

  private electionElapsed = 0;
  private heartbeatElapsed = 0;
  private randomizedElection: number;
  private votes = new Map<NodeId, boolean>();
  private progress = new Map<NodeId, Progress>();
  private pendingConfIndex = 0;
  private leadTransferee: NodeId | null = null;
  private pendingReads: PendingRead[] = [];
  /** Reads that arrived before this leader committed an entry of its term. */
  private deferredReads: { ctx: string; from: NodeId }[] = [];
  private incoming: IncomingSnapshot | null = null;
  private pendingSnapshot: Snapshot | null = null;
  private bcastPending = false;
  private removedSelf = false;

  private msgs: Message[] = [];
  private readStates: ReadState[] = [];
  private persisted: HardState;
  private readyInFlight: { stableIndex: number; stableTerm: number; appliedTo: number; snapshotIndex: number } | null = null;

  constructor(opts: RaftOptions, restored: { hardState: HardState; snapshot: Snapshot | null; entries: Entry[] }) {
    this.id = opts.id;
    this.opts = {
      maxEntriesPerMsg: 256,
      maxBytesPerMsg: 1 << 20,
      maxInflight: 64,
      snapshotChunkBytes: 1 << 20,
      preVote: true,
      checkQuorum: true,
      unsafe: {},
      ...opts,
    };
    const snap = restored.snapshot;
    this.snapshot = snap;
    this.log = new RaftLog(snap ? snap.meta.index : 0, snap ? snap.meta.term : 0, restored.entries.slice());
    if (restored.entries.length > 0 && restored.entries[0]!.index !== this.log.baseIndex + 1) {
      throw new Error(`restored log starts at ${restored.entries[0]!.index}, expected ${this.log.baseIndex + 1}`);
    }
    this.conf = snap ? cloneConf(snap.meta.conf) : emptyConf();
    this.confApplied = this.log.baseIndex;
    this.applied = this.applying = this.log.baseIndex;
    this.term = restored.hardState.term;
    this.vote = restored.hardState.vote;
    this.commit = Math.max(restored.hardState.commit, this.log.baseIndex);
    if (this.commit > this.log.lastIndex()) {
      throw new Error(`restored commit ${this.commit} beyond last log index ${this.log.lastIndex()}`);
    }
    // Committed membership changes are facts: apply them now so a restarted node never campaigns
    // (or counts votes) with a stale configuration.
    this.applyConfUpTo(this.commit);
    this.persisted = { term: this.term, vote: this.vote, commit: this.commit };
    this.randomizedElection = this.newElectionTimeout();
  }

  /**
   * Log entries that bootstrap a brand-new cluster: one conf change per initial voter, all at term 1.
   * Every initial member must start from the same entries (hard state term 1, commit = entries.length).
   * `context` travels with each change (Shoal puts the member's address there).
   */
  static bootstrapEntries(voters: (NodeId | { id: NodeId; context?: string })[]): Entry[] {
    return voters.map((v, i) => {
      const cc: ConfChange =
        typeof v === 'string' ? { type: 'addVoter', node: v } : { type: 'addVoter', node: v.id, ...(v.context !== undefined ? { context: v.context } : {}) };
      return { index: i + 1, term: 1, type: 'conf' as const, data: encodeConfChange(cc) };
    });
  }

  // ---------------------------------------------------------------- public inputs

  /**
   * Changes the election timeout (base and jitter, in ticks) from now on; the time already elapsed counts
   * against the new one. Raft's safety does not depend on timeouts, only its liveness, so members may
   * differ in them for a while.
   */
  setElectionTimeout(electionTicks: number, jitterTicks: number): void {
    if (!Number.isInteger(electionTicks) || electionTicks <= this.opts.heartbeatTicks) {
      throw new RangeError(`election timeout of ${electionTicks} ticks must be a whole number above the heartbeat's ${this.opts.heartbeatTicks}`);
    }
    if (!Number.isInteger(jitterTicks) || jitterTicks < 1) throw new RangeError(`election jitter of ${jitterTicks} ticks must be a whole number >= 1`);
    this.opts.electionTicks = electionTicks;
    this.opts.electionJitterTicks = jitterTicks;
    this.randomizedElection = this.newElectionTimeout();
  }

  tick(): void {
    if (this.role === 'leader') {
      this.heartbeatElapsed++;
      this.electionElapsed++;
      if (this.electionElapsed >= this.opts.electionTicks) {
        this.electionElapsed = 0;
        if (this.opts.checkQuorum && !this.checkQuorumActive()) {
          this.becomeFollower(this.term, null);
          return;
        }
        if (this.leadTransferee !== null) this.leadTransferee = null; // transfer timed out
      }
      if (this.heartbeatElapsed >= this.opts.heartbeatTicks) {
        this.heartbeatElapsed = 0;
        this.bcastHeartbeat('');
      }
      return;
    }
    this.electionElapsed++;
    if (this.promotable() && this.electionElapsed >= this.randomizedElection) {
      this.electionElapsed = 0;
      this.campaign(this.opts.preVote ? 'pre' : 'real', false);
    }
  }

  /**
   * Campaigns at once when this node is the only voter (a freshly initialised cluster): nobody can be
   * disrupted, and waiting a whole election timeout would only delay `cluster init`.
   */
  campaignIfSole(): boolean {
    if (this.role === 'leader' || !this.promotable()) return false;
    if (this.conf.voters.length !== 1 || this.conf.voters[0] !== this.id) return false;
    this.campaign('real', false);
    return true;
  }

  /**
   * Evidence from the transport that `peer` is not running: its connections closed and a new dial was
   * refused (nothing listens at its address: the process was killed, crashed or stopped). When `peer` is
   * this follower's leader, waiting out the election timeout only delays the failover, by 1-4 s on a
   * large cluster (election-timing.ts). So this follower forgets its leader, which also ends the lease
   * it defends against other survivors' pre-votes, and campaigns after `leaderGoneDelay` ticks: the
   * survivors take turns by rank so that two of them do not split the vote.
   *
   * Safety does not depend on the evidence being right, only on the votes (Raft never relies on timing).
   * Nor can a wrong one disrupt a live leader: the campaign is a pre-vote, and the voters still hearing
   * that leader refuse it while in its lease, exactly as for a follower whose timeout fired. A leader
   * whose host died without closing its connections still costs a whole timeout. Returns whether the
   * election was brought forward.
   */
  leaderGone(peer: NodeId): boolean {
    if (this.role !== 'follower' || this.leader !== peer || !this.promotable()) return false;
    this.leader = null;
    const others = this.conf.voters.filter((v) => v !== peer).sort();
    const delay = leaderGoneDelay(others.indexOf(this.id), this.opts.heartbeatTicks, this.opts.random());
    this.electionElapsed = Math.max(this.electionElapsed, this.randomizedElection - delay);
    return true;
  }

  /** Appends a normal entry. Throws NotLeaderError / ProposalRejectedError. */
  propose(data: Uint8Array): { index: number; term: number } {
    this.checkCanPropose();
    return this.appendLocal('normal', data);
  }

  /** Proposes one membership change; only one may be pending at a time. */
  proposeConfChange(cc: ConfChange): { index: number; term: number } {
    this.checkCanPropose();
    if (this.pendingConfIndex > this.applied) {
      throw new ProposalRejectedError('a membership change is already in progress; retry when it is applied');
    }
    const err = validateConfChange(this.conf, cc);
    if (err) throw new ProposalRejectedError(err);
    const res = this.appendLocal('conf', encodeConfChange(cc));
    this.pendingConfIndex = res.index;
    return res;
  }

  /**
   * Requests a linearizable read. The answer arrives as a ReadState with the same ctx: serve the read
   * once `applied >= index`. On a follower the request is forwarded to the leader.
   */
  readIndex(ctx: string): void {
    if (this.role === 'leader') {
      this.leaderReadIndex(ctx, this.id);
    } else if (this.leader !== null && this.role === 'follower') {
      this.send({ ...blank('readIndex', this.id, this.leader, this.term), context: ctx });
    } else {
      this.readStates.push({ ctx, index: -1 });
    }
  }

  /** Hands leadership to `to` once its log is caught up. */
  transferLeadership(to: NodeId): void {
    if (this.role !== 'leader') throw new NotLeaderError(this.leader);
    if (to === this.id) return;
    if (!this.conf.voters.includes(to)) throw new ProposalRejectedError(`${to} is not a voting member`);
    const pr = this.progress.get(to);
    if (!pr) throw new ProposalRejectedError(`${to} is not a member`);
    this.leadTransferee = to;
    this.electionElapsed = 0;
    if (pr.match === this.log.lastIndex()) this.send(blank('timeoutNow', this.id, to, this.term));
    else this.sendAppend(to);
  }

  /**
   * Records a snapshot the application took of its state at `snapshot.meta.index` (<= applied) and
   * drops log entries up to `snapshot.meta.index - keepEntries`.
   */
  compact(snapshot: Snapshot, keepEntries: number): void {
    const idx = snapshot.meta.index;
    if (idx > this.applied) throw new Error(`cannot snapshot at ${idx}: only ${this.applied} applied`);
    if (this.snapshot && idx <= this.snapshot.meta.index) return;
    this.snapshot = snapshot;
    const upTo = Math.min(idx - keepEntries, this.log.stable);
    if (upTo > this.log.baseIndex) this.log.compactTo(upTo);
  }

  step(m: Message): void {
    if (m.to !== this.id) return;
    if (this.conf.removed.includes(m.from)) {
      this.stats.droppedFromRemoved++;
      return;
    }
    // Requests that could disrupt the cluster are only accepted from known members. Leader traffic is
    // accepted from anyone with a valid term (a node that has not caught up on membership yet must still
    // be able to follow the leader that the majority elected).
    if (!LEADER_MESSAGES.has(m.type) && this.conf.voters.length > 0 && !this.isMember(m.from)) {
      this.stats.droppedFromUnknown++;
      return;
    }
    // ...but a non-member may never disrupt (security review §12: a former manager's certificate could
    // otherwise force elections or overwrite the log): it cannot trigger an election (timeoutNow), raise
    // our term, or displace the leader we already follow. What remains is exactly the case above: the
    // leader of our own term, elected under a configuration we have not applied yet.
    if (LEADER_MESSAGES.has(m.type) && m.type !== 'readIndexResp' && this.conf.voters.length > 0 && !this.isMember(m.from)) {
      if (m.type === 'timeoutNow' || m.term > this.term || (m.term === this.term && this.leader !== null && this.leader !== m.from)) {
        this.stats.droppedFromUnknown++;
        return;
      }
    }

    if (m.term > this.term) {
      if (m.type === 'vote' || m.type === 'preVote') {
        const forced = m.context === 'transfer';
        const inLease = this.opts.checkQuorum && this.leader !== null && this.electionElapsed < this.opts.electionTicks;
        if (!forced && inLease) {
          this.stats.ignoredInLease++;
          return;
        }
      }
      if (m.type === 'preVote' || (m.type === 'preVoteResp' && !m.reject)) {
        // Pre-votes never change our term.
      } else {
        this.becomeFollower(m.term, LEADER_MESSAGES.has(m.type) && m.type !== 'readIndexResp' ? m.from : null);
      }
    } else if (m.term < this.term) {
      if ((m.type === 'app' || m.type === 'heartbeat') && (this.opts.checkQuorum || this.opts.preVote)) {
        // A stale leader keeps talking to us: tell it our term so it steps down.
        this.send(blank('appResp', this.id, m.from, this.term));
      } else if (m.type === 'preVote') {
        this.send({ ...blank('preVoteResp', this.id, m.from, this.term), reject: true });
      } else {
        this.stats.droppedStaleTerm++;
      }
      return;
    }

    switch (m.type) {
      case 'preVote':
      case 'vote':
        this.handleVoteRequest(m);
        return;
      default:
        break;
    }

    switch (this.role) {
      case 'leader':
        this.stepLeader(m);
        break;
      case 'candidate':
      case 'preCandidate':
        this.stepCandidate(m);
        break;
      case 'follower':
        this.stepFollower(m);
        break;
    }
  }

  // ---------------------------------------------------------------- Ready / advance

  hasReady(): boolean {
    if (this.readyInFlight) return false;
    return (
      this.msgs.length > 0 ||
      this.readStates.length > 0 ||
      this.bcastPending ||
      this.log.unstable().length > 0 ||
      this.pendingSnapshot !== null ||
      Math.min(this.commit, this.log.lastIndex()) > this.applying ||
      this.hardStateChanged()
    );
  }

  ready(): Ready {
    if (this.readyInFlight) throw new Error('ready() called again before advance()');
    if (this.bcastPending) {
      this.bcastPending = false;
      if (this.role === 'leader') this.bcastAppend();
    }
    const entries = this.log.unstable();
    const snapshot = this.pendingSnapshot;
    this.pendingSnapshot = null;
    const hs = this.hardStateChanged() ? { term: this.term, vote: this.vote, commit: this.commit } : null;
    const hi = Math.min(this.commit, this.log.lastIndex());
    const lo = Math.max(this.applying + 1, this.log.firstIndex());
    const committed: Entry[] = [];
    for (let i = lo; i <= hi; i++) committed.push(this.log.entry(i)!);
    const vitalChange = hs !== null && (hs.term !== this.persisted.term || hs.vote !== this.persisted.vote);
    const mustSync = this.opts.unsafe.ackBeforeDurable ? vitalChange || snapshot !== null : vitalChange || entries.length > 0 || snapshot !== null;
    if (hs) this.persisted = hs;
    const last = entries[entries.length - 1];
    this.readyInFlight = {
      stableIndex: last ? last.index : 0,
      stableTerm: last ? last.term : 0,
      appliedTo: committed.length > 0 ? committed[committed.length - 1]!.index : this.applying,
      snapshotIndex: snapshot ? snapshot.meta.index : 0,
    };
    if (snapshot) this.applying = Math.max(this.applying, snapshot.meta.index);
    this.applying = Math.max(this.applying, this.readyInFlight.appliedTo);
    // Membership changes take effect when their entry is handed out for applying.
    for (const e of committed) if (e.type === 'conf') this.applyConfEntry(e);
    const rd: Ready = { hardState: hs, entries, snapshot, mustSync, messages: this.msgs, committed, readStates: this.readStates };
    this.msgs = [];
    this.readStates = [];
    return rd;
  }

  /** Call after the Ready's writes are durable (or written, when mustSync was false) and applied. */
  advance(): void {
    const r = this.readyInFlight;
    if (!r) throw new Error('advance() without ready()');
    this.readyInFlight = null;
    if (r.snapshotIndex > 0) this.applied = Math.max(this.applied, r.snapshotIndex);
    if (r.stableIndex > 0) this.log.stableTo(r.stableIndex, r.stableTerm);
    this.applied = Math.max(this.applied, r.appliedTo);
    if (this.role === 'leader') {
      const self = this.progress.get(this.id);
      if (self) {
        self.match = Math.max(self.match, this.log.stable);
        self.next = self.match + 1;
      }
      if (this.maybeCommit()) this.bcastPending = true;
    }
  }

  // ---------------------------------------------------------------- introspection

  get isLeader(): boolean {
    return this.role === 'leader';
  }

  get isRemoved(): boolean {
    return this.removedSelf;
  }

  get transferring(): NodeId | null {
    return this.leadTransferee;
  }

  progressOf(id: NodeId): Readonly<Progress> | undefined {
    return this.progress.get(id);
  }

  hardState(): HardState {
    return { term: this.term, vote: this.vote, commit: this.commit };
  }

  // ---------------------------------------------------------------- roles

  private becomeFollower(term: number, leader: NodeId | null): void {
    const wasLeader = this.role === 'leader';
    if (term !== this.term) {
      this.term = term;
      this.vote = null;
    }
    this.role = 'follower';
    this.leader = leader;
    this.resetTimers();
    if (wasLeader) this.abortLeaderState();
  }

  private becomePreCandidate(): void {
    this.role = 'preCandidate';
    this.leader = null;
    this.votes = new Map();
    // Keep the election clock running: a pre-candidate that fails retries on the next timeout.
    this.randomizedElection = this.newElectionTimeout();
  }

  private becomeCandidate(): void {
    this.term++;
    this.vote = this.id;
    this.role = 'candidate';
    this.leader = null;
    this.votes = new Map();
    this.resetTimers();
  }

  private becomeLeader(): void {
    this.role = 'leader';
    this.leader = this.id;
    this.resetTimers();
    this.progress = new Map();
    const last = this.log.lastIndex();
    for (const id of this.members()) this.progress.set(id, newProgress(last + 1));
    const self = this.progress.get(this.id);
    if (self) self.match = this.log.stable;
    // Until the no-op of this term commits, no membership change may be proposed (the single-server
    // change safety rule) and reads are deferred (ReadIndex needs a commit index from this term).
    this.appendLocal('normal', new Uint8Array(0));
    this.pendingConfIndex = this.log.lastIndex();
    this.bcastAppend();
  }

  private abortLeaderState(): void {
    this.progress = new Map();
    this.leadTransferee = null;
    for (const r of this.pendingReads) this.failRead(r.ctx, r.from);
    for (const r of this.deferredReads) this.failRead(r.ctx, r.from);
    this.pendingReads = [];
    this.deferredReads = [];
  }

  private campaign(kind: 'pre' | 'real', transfer: boolean): void {
    this.stats.electionsStarted++;
    if (kind === 'pre') this.becomePreCandidate();
    else this.becomeCandidate();
    const voteTerm = kind === 'pre' ? this.term + 1 : this.term;
    const type: MessageType = kind === 'pre' ? 'preVote' : 'vote';
    if (this.recordVote(this.id, true, kind)) return;
    for (const id of this.conf.voters) {
      if (id === this.id) continue;
      this.send({
        ...blank(type, this.id, id, voteTerm),
        index: this.log.lastIndex(),
        logTerm: this.log.lastTerm(),
        context: transfer ? 'transfer' : '',
      });
    }
  }

  /** Records a vote; returns true if the election concluded. */
  private recordVote(from: NodeId, granted: boolean, kind: 'pre' | 'real'): boolean {
    if (!this.votes.has(from)) this.votes.set(from, granted);
    let yes = 0;
    let no = 0;
    for (const v of this.conf.voters) {
      const r = this.votes.get(v);
      if (r === true) yes++;
      else if (r === false) no++;
    }
    const q = quorum(this.conf.voters.length);
    if (yes >= q) {
      if (kind === 'pre') this.campaign('real', false);
      else this.becomeLeader();
      return true;
    }
    if (no >= q) {
      this.becomeFollower(this.term, null);
      return true;
    }
    return false;
  }

  private handleVoteRequest(m: Message): void {
    const canVote = this.vote === m.from || (this.vote === null && this.leader === null) || (m.type === 'preVote' && m.term > this.term);
    const respType: MessageType = m.type === 'preVote' ? 'preVoteResp' : 'voteResp';
    if (canVote && this.log.isUpToDate(m.index, m.logTerm)) {
      this.send({ ...blank(respType, this.id, m.from, m.term) });
      if (m.type === 'vote') {
        this.electionElapsed = 0;
        this.vote = m.from;
      }
    } else {
      this.send({ ...blank(respType, this.id, m.from, this.term), reject: true });
    }
  }

  // ---------------------------------------------------------------- per-role message handling

  private stepLeader(m: Message): void {
    const pr = this.progress.get(m.from);
    switch (m.type) {
      case 'readIndex':
        this.leaderReadIndex(m.context, m.from);
        return;
      case 'appResp':
        if (!pr) return;
        pr.recentActive = true;
        if (m.reject) {
          this.handleAppendReject(m.from, pr, m);
          return;
        }
        this.handleAppendAck(m.from, pr, m.index);
        return;
      case 'heartbeatResp':
        if (!pr) return;
        pr.recentActive = true;
        pr.probeSent = false;
        if (pr.state === 'replicate' && pr.inflight.length >= this.opts.maxInflight) {
          // Appends were lost: resynchronise from what the follower confirmed.
          becomeProbe(pr);
        }
        if (pr.state === 'snapshot') {
          if (++pr.snapStalled >= 2) {
            pr.snapStalled = 0;
            this.sendSnapshotChunk(m.from, pr); // a chunk or its answer was lost
          }
        } else if (pr.match < this.log.lastIndex()) {
          this.sendAppend(m.from);
        }
        if (m.context !== '') this.ackRead(m.context, m.from);
        return;
      case 'snapResp':
        if (!pr) return;
        pr.recentActive = true;
        if (pr.state !== 'snapshot' || m.index !== pr.snapIndex) return;
        pr.snapStalled = 0;
        if (m.reject) {
          pr.snapOffset = 0;
        } else {
          pr.snapOffset = Math.max(pr.snapOffset, m.rejectHint);
        }
        this.sendSnapshotChunk(m.from, pr);
        return;
      default:
        return;
    }
  }

  private stepCandidate(m: Message): void {
    switch (m.type) {
      case 'app':
      case 'heartbeat':
      case 'snap':
        this.becomeFollower(m.term, m.from);
        this.stepFollower(m);
        return;
      case 'preVoteResp':
        if (this.role === 'preCandidate') this.recordVote(m.from, !m.reject, 'pre');
        return;
      case 'voteResp':
        if (this.role === 'candidate') this.recordVote(m.from, !m.reject, 'real');
        return;
      case 'readIndex':
        this.send({ ...blank('readIndexResp', this.id, m.from, this.term), context: m.context, reject: true });
        return;
      default:
        return;
    }
  }

  private stepFollower(m: Message): void {
    switch (m.type) {
      case 'app':
        this.electionElapsed = 0;
        this.leader = m.from;
        this.handleAppend(m);
        return;
      case 'heartbeat':
        this.electionElapsed = 0;
        this.leader = m.from;
        this.commitTo(Math.min(m.commit, this.log.lastIndex()));
        this.send({ ...blank('heartbeatResp', this.id, m.from, this.term), context: m.context });
        return;
      case 'snap':
        this.electionElapsed = 0;
        this.leader = m.from;
        this.handleSnapshotChunk(m);
        return;
      case 'timeoutNow':
        if (this.promotable()) this.campaign('real', true);
        return;
      case 'readIndexResp':
        this.readStates.push({ ctx: m.context, index: m.reject ? -1 : m.index });
        return;
      case 'readIndex':
        this.send({ ...blank('readIndexResp', this.id, m.from, this.term), context: m.context, reject: true });
        return;
      default:
        return;
    }
  }

  // ---------------------------------------------------------------- replication (follower side)

  private handleAppend(m: Message): void {
    if (m.index < this.commit) {
      // Everything up to our commit index is settled; tell the leader where we are.
      this.send({ ...blank('appResp', this.id, m.from, this.term), index: this.commit });
      return;
    }
    if (this.log.matchTerm(m.index, m.logTerm)) {
      const lastNew = m.index + m.entries.length;
      const conflict = this.log.findConflict(m.entries);
      if (conflict !== 0) {
        if (conflict <= this.commit) {
          throw new Error(`raft safety violation: entry ${conflict} conflicts with committed ${this.commit}`);
        }
        this.log.append(m.entries.slice(conflict - m.index - 1));
      }
      this.commitTo(Math.min(m.commit, lastNew));
      this.send({ ...blank('appResp', this.id, m.from, this.term), index: lastNew });
      return;
    }
    // Mismatch at prev: hint the largest index at or below it whose term is <= the leader's prev term.
    const hint = this.log.findConflictByTerm(Math.min(m.index, this.log.lastIndex()), m.logTerm);
    this.send({
      ...blank('appResp', this.id, m.from, this.term),
      index: m.index,
      reject: true,
      rejectHint: hint,
      logTerm: this.log.term(hint) ?? 0,
    });
  }

  private handleSnapshotChunk(m: Message): void {
    const c = m.snapshot;
    if (!c) return;
    const meta = c.meta;
    const reply = (offset: number, reject: boolean) =>
      this.send({ ...blank('snapResp', this.id, m.from, this.term), index: meta.index, rejectHint: offset, reject });
    if (meta.index <= this.commit) {
      // Already have everything the snapshot covers.
      this.incoming = null;
      this.send({ ...blank('appResp', this.id, m.from, this.term), index: this.commit });
      return;
    }
    if (!this.incoming || this.incoming.meta.index !== meta.index || this.incoming.meta.term !== meta.term) {
      if (c.offset !== 0) {
        reply(0, true);
        return;
      }
      this.incoming = { meta, total: c.total, parts: [], received: 0 };
    }
    const inc = this.incoming;
    if (c.offset < inc.received) {
      reply(inc.received, false); // duplicate
      return;
    }
    if (c.offset > inc.received) {
      reply(inc.received, true);
      return;
    }
    inc.parts.push(c.data);
    inc.received += c.data.length;
    if (inc.received < inc.total) {
      reply(inc.received, false);
      return;
    }
    this.incoming = null;
    const data = concat(inc.parts, inc.total);
    this.installSnapshot({ meta: inc.meta, data });
    this.send({ ...blank('appResp', this.id, m.from, this.term), index: this.log.lastIndex() });
  }

  private installSnapshot(snap: Snapshot): void {
    const { index, term } = snap.meta;
    if (this.log.matchTerm(index, term)) {
      // Our log already contains the snapshot's last entry: just learn that it is committed.
      this.commitTo(index);
      return;
    }
    this.log.reset(index, term); // durable together with the Ready's snapshot
    this.commit = index;
    this.conf = cloneConf(snap.meta.conf);
    this.confApplied = index;
    this.snapshot = snap;
    this.pendingSnapshot = snap;
    this.applying = Math.max(this.applying, index);
    this.stats.snapshotsInstalled++;
    this.removedSelf = this.conf.removed.includes(this.id);
  }

  private commitTo(index: number): void {
    if (index > this.commit) this.commit = index;
  }

  // ---------------------------------------------------------------- replication (leader side)

  private handleAppendReject(to: NodeId, pr: Progress, m: Message): void {
    // A rejection at or below what the follower already confirmed is stale (or duplicated): acting on
    // it would resend what it has, and duplicated rejections would multiply into a message storm.
    if (m.index <= pr.match) return;
    if (pr.state === 'replicate') {
      // The follower confirmed everything up to match, so probing resumes right after it.
      becomeProbe(pr);
    } else if (pr.state === 'probe') {
      if (pr.next - 1 !== m.index) return; // stale rejection
      // Skip back a whole term per round trip: the follower hinted the last index whose term is no
      // newer than our prev term; everything after our matching point there must be resent.
      const conflict = this.log.findConflictByTerm(m.rejectHint, m.logTerm);
      pr.next = Math.max(Math.min(conflict + 1, m.index), pr.match + 1);
      pr.probeSent = false;
    } else {
      return;
    }
    this.sendAppend(to);
  }

  private handleAppendAck(to: NodeId, pr: Progress, index: number): void {
    const updated = index > pr.match;
    if (updated) {
      pr.match = index;
      if (pr.next < index + 1) pr.next = index + 1;
    }
    pr.snapStalled = 0;
    if (pr.state === 'probe') {
      pr.probeSent = false;
      pr.state = 'replicate';
      pr.inflight = [];
      pr.next = pr.match + 1;
    } else if (pr.state === 'snapshot') {
      if (pr.match >= pr.snapIndex) {
        pr.state = 'probe';
        pr.probeSent = false;
        pr.next = pr.match + 1;
      }
    } else {
      while (pr.inflight.length > 0 && pr.inflight[0]! <= index) pr.inflight.shift();
    }
    // A new commit index reaches the followers with the next Ready's broadcast (one message each,
    // however many acknowledgements arrived meanwhile).
    if (updated && this.maybeCommit()) this.bcastPending = true;
    // Keep the pipe full.
    while (pr.match < this.log.lastIndex() && this.sendAppend(to, false)) {
      /* send until paused or caught up */
    }
    if (to === this.leadTransferee && pr.match === this.log.lastIndex()) {
      this.send(blank('timeoutNow', this.id, to, this.term));
    }
  }

  /** Sends the next append (or snapshot) to `to`. Returns true if something was sent. */
  private sendAppend(to: NodeId, sendIfEmpty = true): boolean {
    const pr = this.progress.get(to);
    if (!pr || to === this.id) return false;
    if (pr.state === 'snapshot') return false;
    if (pr.state === 'probe' && pr.probeSent) return false;
    if (pr.state === 'replicate' && pr.inflight.length >= this.opts.maxInflight) return false;
    const prevIndex = pr.next - 1;
    const prevTerm = this.log.term(prevIndex);
    const entries = this.log.slice(pr.next, this.log.lastIndex(), this.opts.maxEntriesPerMsg, this.opts.maxBytesPerMsg);
    if (prevTerm === undefined || entries === undefined) {
      return this.startSnapshot(to, pr);
    }
    if (entries.length === 0 && !sendIfEmpty) return false;
    this.send({
      ...blank('app', this.id, to, this.term),
      index: prevIndex,
      logTerm: prevTerm,
      entries,
      commit: this.commit,
    });
    if (entries.length > 0) {
      const last = entries[entries.length - 1]!.index;
      if (pr.state === 'replicate') {
        pr.next = last + 1;
        pr.inflight.push(last);
      } else {
        pr.probeSent = true;
      }
    } else if (pr.state === 'probe') {
      pr.probeSent = true;
    }
    return true;
  }

  private startSnapshot(to: NodeId, pr: Progress): boolean {
    const snap = this.snapshot;
    if (!snap) return false; // cannot happen: compaction always leaves a snapshot behind
    pr.state = 'snapshot';
    pr.snapIndex = snap.meta.index;
    pr.snapOffset = 0;
    pr.snapStalled = 0;
    pr.inflight = [];
    this.stats.snapshotsSent++;
    this.sendSnapshotChunk(to, pr);
    return true;
  }

  private sendSnapshotChunk(to: NodeId, pr: Progress): void {
    const snap = this.snapshot;
    if (!snap || snap.meta.index !== pr.snapIndex) {
      // We compacted again meanwhile: start over with the newer snapshot.
      if (snap) this.startSnapshot(to, pr);
      return;
    }
    const total = snap.data.length;
    if (pr.snapOffset >= total && total > 0) return; // all sent; waiting for the final ack
    const end = Math.min(total, pr.snapOffset + this.opts.snapshotChunkBytes);
    this.send({
      ...blank('snap', this.id, to, this.term),
      snapshot: { meta: snap.meta, offset: pr.snapOffset, total, data: snap.data.subarray(pr.snapOffset, end) },
    });
  }

  private bcastAppend(): void {
    for (const id of this.progress.keys()) if (id !== this.id) this.sendAppend(id);
  }

  private bcastHeartbeat(ctx: string): void {
    for (const [id, pr] of this.progress) {
      if (id === this.id) continue;
      if (pr.state === 'probe') pr.probeSent = false;
      this.send({ ...blank('heartbeat', this.id, id, this.term), commit: Math.min(pr.match, this.commit), context: ctx });
    }
  }

  /** Advances the commit index to what a quorum of voters has durably stored. */
  private maybeCommit(): boolean {
    const matches: number[] = [];
    for (const v of this.conf.voters) {
      const pr = this.progress.get(v);
      matches.push(pr ? pr.match : 0);
    }
    if (matches.length === 0) return false;
    matches.sort((a, b) => b - a);
    const q = matches[quorum(matches.length) - 1]!;
    if (q <= this.commit) return false;
    // Figure 8: only entries of the current term are committed by counting replicas.
    if (!this.opts.unsafe.commitOldTerm && this.log.term(q) !== this.term) return false;
    this.commit = q;
    this.onCommitAdvanced();
    return true;
  }

  private onCommitAdvanced(): void {
    if (this.deferredReads.length > 0 && this.log.term(this.commit) === this.term) {
      const reads = this.deferredReads;
      this.deferredReads = [];
      for (const r of reads) this.leaderReadIndex(r.ctx, r.from);
    }
  }

  private checkQuorumActive(): boolean {
    let active = 0;
    for (const v of this.conf.voters) {
      if (v === this.id) {
        active++;
        continue;
      }
      const pr = this.progress.get(v);
      if (pr?.recentActive) active++;
    }
    for (const pr of this.progress.values()) pr.recentActive = false;
    return active >= quorum(this.conf.voters.length);
  }

  // ---------------------------------------------------------------- linearizable reads

  private leaderReadIndex(ctx: string, from: NodeId): void {
    if (this.opts.unsafe.localReads) {
      this.answerRead(ctx, from, this.commit);
      return;
    }
    if (this.log.term(this.commit) !== this.term) {
      this.deferredReads.push({ ctx, from });
      return;
    }
    if (this.conf.voters.length === 1 && this.conf.voters[0] === this.id) {
      this.answerRead(ctx, from, this.commit);
      return;
    }
    this.pendingReads.push({ ctx, index: this.commit, from, acks: new Set([this.id]) });
    this.bcastHeartbeat(ctx);
  }

  private ackRead(ctx: string, from: NodeId): void {
    const pos = this.pendingReads.findIndex((r) => r.ctx === ctx);
    if (pos < 0) return;
    const r = this.pendingReads[pos]!;
    r.acks.add(from);
    let n = 0;
    for (const v of this.conf.voters) if (r.acks.has(v)) n++;
    if (n < quorum(this.conf.voters.length)) return;
    // A quorum confirmed our leadership after every earlier read was registered: all are safe.
    const done = this.pendingReads.splice(0, pos + 1);
    for (const d of done) this.answerRead(d.ctx, d.from, d.index);
  }

  private answerRead(ctx: string, from: NodeId, index: number): void {
    if (from === this.id) this.readStates.push({ ctx, index });
    else this.send({ ...blank('readIndexResp', this.id, from, this.term), context: ctx, index });
  }

  private failRead(ctx: string, from: NodeId): void {
    if (from === this.id) this.readStates.push({ ctx, index: -1 });
    else this.send({ ...blank('readIndexResp', this.id, from, this.term), context: ctx, reject: true });
  }

  // ---------------------------------------------------------------- membership

  private applyConfUpTo(index: number): void {
    for (let i = this.confApplied + 1; i <= index; i++) {
      const e = this.log.entry(i);
      if (e && e.type === 'conf') this.applyConfEntry(e);
    }
  }

  private applyConfEntry(e: Entry): void {
    if (e.index <= this.confApplied) return;
    this.confApplied = e.index;
    const cc = decodeConfChange(e.data);
    this.conf = applyConfChange(this.conf, cc);
    if (this.role === 'leader') {
      if (cc.type === 'remove') {
        this.progress.delete(cc.node);
        if (this.leadTransferee === cc.node) this.leadTransferee = null;
      } else if (!this.progress.has(cc.node)) {
        this.progress.set(cc.node, newProgress(this.log.lastIndex() + 1));
        this.sendAppend(cc.node);
      }
    }
    if (cc.type === 'remove' && cc.node === this.id) {
      this.removedSelf = true;
      if (this.role === 'leader') {
        // Hand over quickly to the most up-to-date remaining voter instead of waiting for a timeout.
        let best: NodeId | null = null;
        let bestMatch = -1;
        for (const v of this.conf.voters) {
          const pr = this.progress.get(v);
          if (pr && pr.match > bestMatch) {
            best = v;
            bestMatch = pr.match;
          }
        }
        if (best !== null && bestMatch === this.log.lastIndex()) this.send(blank('timeoutNow', this.id, best, this.term));
        this.becomeFollower(this.term, null);
      }
    } else if (this.role === 'leader') {
      // Quorum size may have changed.
      if (this.maybeCommit()) this.bcastAppend();
    }
  }

  private isMember(id: NodeId): boolean {
    return this.conf.voters.includes(id) || this.conf.learners.includes(id);
  }

  private members(): NodeId[] {
    return [...this.conf.voters, ...this.conf.learners];
  }

  private promotable(): boolean {
    return !this.removedSelf && this.conf.voters.includes(this.id);
  }

  // ---------------------------------------------------------------- helpers

  private checkCanPropose(): void {
    if (this.role !== 'leader') throw new NotLeaderError(this.leader);
    if (this.leadTransferee !== null) {
      throw new ProposalRejectedError(`leadership is being transferred to ${this.leadTransferee}`);
    }
  }

  private appendLocal(type: Entry['type'], data: Uint8Array): { index: number; term: number } {
    const index = this.log.lastIndex() + 1;
    this.log.append([{ index, term: this.term, type, data }]);
    this.bcastPending = true;
    return { index, term: this.term };
  }

  private send(m: Message): void {
    this.msgs.push(m);
  }

  private resetTimers(): void {
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    this.randomizedElection = this.newElectionTimeout();
    this.votes = new Map();
  }

  private newElectionTimeout(): number {
    return this.opts.electionTicks + Math.floor(this.opts.random() * this.opts.electionJitterTicks);
  }

  private hardStateChanged(): boolean {
    const p = this.persisted;
    return p.term !== this.term || p.vote !== this.vote || p.commit !== this.commit;
  }
}

// -------------------------------------------------------------------- pure helpers

/** ConfChange context marking a removal as a demotion (the member may be added again later). */
export const DEMOTE = 'demote';

/**
 * Ticks until a follower whose leader is gone campaigns (RaftCore.leaderGone), by its rank among the
 * remaining voters in id order: rank 0 after one heartbeat interval, long enough for the other survivors
 * to see the same closed connections and drop their lease, so that its pre-vote is granted; each later
 * rank two intervals after the one before, longer than a pre-vote and a vote round trip, so that a
 * survivor campaigns only if those before it could not win (behind on the log, or dead as well). Up to
 * half an interval of jitter keeps equal ranks (two members that disagree on the configuration) apart.
 * A rank of -1 (not a voter) gets the last turn.
 */
export function leaderGoneDelay(rank: number, heartbeatTicks: number, random: number): number {
  const r = rank < 0 ? 8 : Math.min(rank, 8);
  return heartbeatTicks * (1 + 2 * r) + Math.floor(random * Math.max(1, heartbeatTicks / 2));
}

export function quorum(voters: number): number {
  return Math.floor(voters / 2) + 1;
}

function newProgress(next: number): Progress {
  return {
    match: 0,
    next,
    state: 'probe',
    probeSent: false,
    inflight: [],
    recentActive: true,
    snapIndex: 0,
    snapOffset: 0,
    snapStalled: 0,
  };
}

function becomeProbe(pr: Progress): void {
  pr.state = 'probe';
  pr.probeSent = false;
  pr.inflight = [];
  pr.next = pr.match + 1;
}

function blank(type: MessageType, from: NodeId, to: NodeId, term: number): Message {
  return { type, from, to, term, index: 0, logTerm: 0, commit: 0, entries: [], reject: false, rejectHint: 0, context: '', snapshot: null };
}

function cloneConf(c: ConfState): ConfState {
  return { voters: [...c.voters], learners: [...c.learners], removed: [...c.removed] };
}

function concat(parts: Uint8Array[], total: number): Uint8Array {
  if (parts.length === 1) return parts[0]!;
  const out = new Uint8Array(total);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

const enc = new TextEncoder();
const dec = new TextDecoder();

export function encodeConfChange(cc: ConfChange): Uint8Array {
  return enc.encode(JSON.stringify(cc));
}

export function decodeConfChange(data: Uint8Array): ConfChange {
  const v = JSON.parse(dec.decode(data)) as ConfChange;
  if (!v || typeof v.node !== 'string' || !['addVoter', 'addLearner', 'remove'].includes(v.type)) {
    throw new Error('malformed membership change entry');
  }
  return v;
}

/** Why a membership change is not allowed against `conf`, or null when it is. */
export function validateConfChange(conf: ConfState, cc: ConfChange): string | null {
  if (typeof cc.node !== 'string' || cc.node === '') return 'membership change needs a node id';
  if (conf.removed.includes(cc.node)) return `${cc.node} was removed from the cluster and can never rejoin under that id`;
  switch (cc.type) {
    case 'addVoter':
      if (conf.voters.includes(cc.node)) return `${cc.node} is already a voter`;
      return null;
    case 'addLearner':
      if (conf.voters.includes(cc.node)) return `${cc.node} is a voter; demoting a voter to learner is not supported`;
      if (conf.learners.includes(cc.node)) return `${cc.node} is already a learner`;
      return null;
    case 'remove':
      if (!conf.voters.includes(cc.node) && !conf.learners.includes(cc.node)) return `${cc.node} is not a member`;
      if (conf.voters.length === 1 && conf.voters[0] === cc.node) return `cannot remove ${cc.node}: it is the last voter`;
      return null;
    default:
      return `unknown membership change type ${(cc as { type: string }).type}`;
  }
}

export function applyConfChange(conf: ConfState, cc: ConfChange): ConfState {
  const next = cloneConf(conf);
  const drop = (xs: NodeId[]) => xs.filter((x) => x !== cc.node);
  switch (cc.type) {
    case 'addVoter':
      if (next.removed.includes(cc.node)) return next;
      next.learners = drop(next.learners);
      if (!next.voters.includes(cc.node)) next.voters.push(cc.node);
      break;
    case 'addLearner':
      if (next.removed.includes(cc.node) || next.voters.includes(cc.node)) return next;
      if (!next.learners.includes(cc.node)) next.learners.push(cc.node);
      break;
    case 'remove':
      next.voters = drop(next.voters);
      next.learners = drop(next.learners);
      // A demotion (context 'demote') lets the node come back later (promotion again); any other
      // removal is permanent and the id is refused forever. A demoted node cannot disrupt either way:
      // vote requests from non-members are dropped.
      if (cc.context !== DEMOTE && !next.removed.includes(cc.node)) next.removed.push(cc.node);
      break;
  }
  return next;
}
