// Deterministic simulation of a Raft cluster: N cores in one process on a virtual clock, a network
// that drops, delays, duplicates and reorders messages and can be partitioned (also one-way), disks
// that lose everything not yet fsynced when a node crashes, and clients whose every operation is
// recorded for the linearizability checker. One seed = one exact execution.
import { RaftCore, NotLeaderError, ProposalRejectedError, type RaftOptions, type Ready, type UnsafeFlags } from '../manager/raft/core.ts';
import type { PersistBatch, PersistedState } from '../manager/raft/storage.ts';
import type { ConfChange, Entry, HardState, Message, NodeId, Snapshot } from '../manager/raft/types.ts';
import { KvStateMachine, decodeCommand, encodeCommand, type KvCommand } from './kv.ts';
import type { HistoryOp, KvInput, KvOutput } from './linearizability.ts';
import { Rng } from './rng.ts';

export interface SimOptions {
  seed: number;
  /** Initial voters (n1..nN). */
  nodes: number;
  unsafe?: UnsafeFlags;
  tickMs?: number;
  electionTicks?: number;
  electionJitterTicks?: number;
  heartbeatTicks?: number;
  /** Network delay bounds in ms; occasional outliers up to `slowDelay`. */
  minDelay?: number;
  maxDelay?: number;
  slowDelay?: number;
  dropRate?: number;
  dupRate?: number;
  fsyncMin?: number;
  fsyncMax?: number;
  /** Take a snapshot every this many applied entries (0 = never). */
  snapshotEvery?: number;
  keepEntries?: number;
  snapshotChunkBytes?: number;
  maxEntriesPerMsg?: number;
  maxInflight?: number;
  /** Keep a trace of what happened (for replaying a failing seed). */
  trace?: boolean;
  /** Events processed before the run is declared a livelock (a message storm). */
  maxEvents?: number;
  /**
   * Check election safety and state machine safety as the run goes (default true). Turned off to show
   * that the linearizability checker alone also catches a bug.
   */
  invariants?: boolean;
  /**
   * Model the transport's evidence that a peer is gone (RaftCore.leaderGone): a crashed node's peers
   * learn it within `goneDelay` ms, and, as false evidence, nodes cut off from a live node by a partition
   * learn it with probability one half (a firewall that resets connections looks the same). Off by
   * default so that seeds keep their histories.
   */
  goneEvidence?: boolean;
  /** Most ms before a peer learns of a crash (goneEvidence). */
  goneDelay?: number;
}

interface DiskState {
  hardState: HardState;
  snapshot: Snapshot | null;
  /** Every stored entry after the base (may include a retained tail at or below the snapshot). */
  entries: Entry[];
}

/** A disk that models the page cache: writes are lost on a crash until synced. */
export class SimDisk {
  durable: DiskState;
  private pending: PersistBatch[] = [];
  syncs = 0;

  constructor(initial?: DiskState) {
    this.durable = initial ?? { hardState: { term: 0, vote: null, commit: 0 }, snapshot: null, entries: [] };
  }

  write(batch: PersistBatch): void {
    this.pending.push(batch);
  }

  sync(): void {
    for (const b of this.pending) applyBatch(this.durable, b);
    this.pending = [];
    this.syncs++;
  }

  /** A crash: the page cache is gone. */
  crash(): void {
    this.pending = [];
  }

  compact(snapshot: Snapshot, keep: number): void {
    this.sync();
    const d = this.durable;
    if (d.snapshot && d.snapshot.meta.index >= snapshot.meta.index) return;
    d.snapshot = snapshot;
    const cut = snapshot.meta.index - keep;
    d.entries = d.entries.filter((e) => e.index > cut);
  }

  load(): PersistedState {
    const d = this.durable;
    const base = d.snapshot ? d.snapshot.meta.index : 0;
    return {
      hardState: { ...d.hardState },
      snapshot: d.snapshot,
      entries: d.entries.filter((e) => e.index > base),
    };
  }
}

function applyBatch(d: DiskState, b: PersistBatch): void {
  if (b.snapshot) {
    const s = b.snapshot.meta;
    const at = d.entries.find((e) => e.index === s.index);
    d.entries = at && at.term === s.term ? d.entries.filter((e) => e.index > s.index) : [];
    d.snapshot = b.snapshot;
  }
  if (b.entries.length > 0) {
    const first = b.entries[0]!.index;
    d.entries = d.entries.filter((e) => e.index < first);
    for (const e of b.entries) d.entries.push(e);
  }
  if (b.hardState) d.hardState = { ...b.hardState };
}

type Completion = (out: KvOutput | 'fail' | 'unknown') => void;

interface Proposal {
  term: number;
  done: Completion;
}

class SimNode {
  core: RaftCore | null = null;
  kv = new KvStateMachine();
  busy = false;
  epoch = 0;
  proposals = new Map<number, Proposal>();
  reads = new Map<string, { key: string; done: Completion }>();
  waitingReads: { index: number; key: string; done: Completion }[] = [];
  appliedSinceSnap = 0;
  readSeq = 0;
  constructor(
    readonly id: NodeId,
    readonly disk: SimDisk,
  ) {}
  get alive(): boolean {
    return this.core !== null;
  }
}

interface Event {
  time: number;
  seq: number;
  fn: () => void;
}

/** Binary min-heap of events by (time, seq). */
class EventQueue {
  private heap: Event[] = [];
  private seq = 0;
  push(time: number, fn: () => void): void {
    const ev = { time, seq: this.seq++, fn };
    const h = this.heap;
    h.push(ev);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (less(h[p]!, ev)) break;
      h[i] = h[p]!;
      i = p;
    }
    h[i] = ev;
  }
  pop(): Event | undefined {
    const h = this.heap;
    const top = h[0];
    const last = h.pop();
    if (h.length > 0 && last) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        let best = last;
        if (l < h.length && less(h[l]!, best)) {
          m = l;
          best = h[l]!;
        }
        if (r < h.length && less(h[r]!, best)) {
          m = r;
          best = h[r]!;
        }
        if (m === i) break;
        h[i] = h[m]!;
        i = m;
      }
      h[i] = last;
    }
    return top;
  }
  peekTime(): number {
    return this.heap.length > 0 ? this.heap[0]!.time : Infinity;
  }
  get size(): number {
    return this.heap.length;
  }
}

function less(a: Event, b: Event): boolean {
  return a.time < b.time || (a.time === b.time && a.seq < b.seq);
}

export class SimViolation extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SimViolation';
  }
}

export interface OpHandle {
  op: HistoryOp;
  /** 'pending' until the op completes, fails definitively, or its outcome becomes unknown. */
  status: 'pending' | 'ok' | 'fail' | 'unknown';
}

export class SimCluster {
  readonly opts: Required<Omit<SimOptions, 'unsafe'>> & { unsafe: UnsafeFlags };
  readonly rng: Rng;
  private readonly netRng: Rng;
  private readonly nodeRng: Rng;
  now = 0;
  private queue = new EventQueue();
  readonly nodes = new Map<NodeId, SimNode>();
  /** Directed links that drop everything: `${from}>${to}`. */
  private blocked = new Set<string>();
  dropRate: number;
  dupRate: number;
  readonly history: HistoryOp[] = [];
  private opSeq = 0;
  readonly traceLines: string[] = [];
  /** term -> leader seen, for election safety. */
  private leaders = new Map<number, NodeId>();
  /** index -> "term:hash" of the entry applied there, for state machine safety. */
  private appliedAt = new Map<number, string>();
  violations: string[] = [];
  messagesSent = 0;
  messagesDelivered = 0;
  /** Elections brought forward by evidence of a gone leader (goneEvidence), right or wrong. */
  earlyCampaigns = 0;
  /** Draws for goneEvidence only, so that the option leaves other draws as they were. */
  private goneRng: Rng | null = null;
  events = 0;

  constructor(options: SimOptions) {
    this.opts = {
      tickMs: 10,
      electionTicks: 10,
      electionJitterTicks: 10,
      heartbeatTicks: 2,
      minDelay: 0.05,
      maxDelay: 3,
      slowDelay: 40,
      dropRate: 0,
      dupRate: 0,
      fsyncMin: 0.1,
      fsyncMax: 1.5,
      snapshotEvery: 0,
      keepEntries: 20,
      snapshotChunkBytes: 256,
      maxEntriesPerMsg: 64,
      maxInflight: 8,
      trace: false,
      maxEvents: 20_000_000,
      invariants: true,
      goneEvidence: false,
      goneDelay: 5,
      unsafe: {},
      ...options,
    };
    this.rng = new Rng(this.opts.seed);
    this.netRng = this.rng.fork();
    this.nodeRng = this.rng.fork();
    this.dropRate = this.opts.dropRate;
    this.dupRate = this.opts.dupRate;
    if (this.opts.goneEvidence) this.goneRng = this.rng.fork();
    const ids = Array.from({ length: this.opts.nodes }, (_, i) => `n${i + 1}`);
    const boot = RaftCore.bootstrapEntries(ids);
    for (const id of ids) {
      const disk = new SimDisk({ hardState: { term: 1, vote: null, commit: boot.length }, snapshot: null, entries: boot.slice() });
      this.nodes.set(id, new SimNode(id, disk));
      this.start(id);
    }
  }

  // ------------------------------------------------------------------ time

  at(delay: number, fn: () => void): void {
    this.queue.push(this.now + delay, fn);
  }

  /** Runs events until virtual time `this.now + ms`. */
  run(ms: number): void {
    this.runUntil(() => false, ms);
  }

  /**
   * Runs until `cond()` holds or `maxMs` passes; returns whether it held. The condition is checked at
   * most every `everyMs` of virtual time (conditions such as convergence are costly to evaluate).
   */
  runUntil(cond: () => boolean, maxMs: number, everyMs = 0): boolean {
    const end = this.now + maxMs;
    if (cond()) return true;
    let nextCheck = this.now + everyMs;
    while (this.queue.peekTime() <= end) {
      this.step();
      if (this.now >= nextCheck) {
        if (cond()) return true;
        nextCheck = this.now + everyMs;
      }
    }
    this.now = end;
    return cond();
  }

  /** Runs the next event; throws on a violation or a livelock. */
  private step(): void {
    const ev = this.queue.pop()!;
    this.now = ev.time;
    if (++this.events > this.opts.maxEvents) {
      throw new SimViolation(`livelock: more than ${this.opts.maxEvents} events by ${this.now.toFixed(0)} ms (${this.queue.size} queued)`);
    }
    ev.fn();
    if (this.violations.length > 0) throw new SimViolation(this.violations.join('\n'));
  }

  trace(line: string): void {
    if (this.opts.trace) this.traceLines.push(`${this.now.toFixed(2).padStart(10)} ${line}`);
  }

  // ------------------------------------------------------------------ nodes

  private raftOptions(id: NodeId): RaftOptions {
    const r = this.nodeRng.fork();
    return {
      id,
      electionTicks: this.opts.electionTicks,
      electionJitterTicks: this.opts.electionJitterTicks,
      heartbeatTicks: this.opts.heartbeatTicks,
      random: () => r.float(),
      maxEntriesPerMsg: this.opts.maxEntriesPerMsg,
      maxInflight: this.opts.maxInflight,
      snapshotChunkBytes: this.opts.snapshotChunkBytes,
      unsafe: this.opts.unsafe,
    };
  }

  private start(id: NodeId): void {
    const n = this.nodes.get(id)!;
    const st = n.disk.load();
    n.core = new RaftCore(this.raftOptions(id), st);
    n.kv = new KvStateMachine();
    if (st.snapshot) n.kv.restore(st.snapshot.data);
    n.busy = false;
    n.appliedSinceSnap = 0;
    const epoch = n.epoch;
    // Tick with a per-node phase so nodes are not in lockstep.
    const phase = this.nodeRng.float() * this.opts.tickMs;
    const tick = () => {
      if (n.epoch !== epoch || !n.core) return;
      n.core.tick();
      this.observe(n);
      this.pump(n);
      this.at(this.opts.tickMs, tick);
    };
    this.at(phase, tick);
    this.trace(`${id} start term=${st.hardState.term} commit=${st.hardState.commit} snap=${st.snapshot?.meta.index ?? 0} entries=${st.entries.length}`);
    this.pump(n);
  }

  /** Adds a brand-new, empty node (it joins when a membership change names it). */
  addNode(id: NodeId): void {
    if (this.nodes.has(id)) throw new Error(`${id} exists`);
    this.nodes.set(id, new SimNode(id, new SimDisk()));
    this.start(id);
  }

  crash(id: NodeId): void {
    const n = this.nodes.get(id)!;
    if (!n.core) return;
    this.trace(`${id} CRASH (term ${n.core.term}, ${n.core.role})`);
    n.core = null;
    n.epoch++;
    n.busy = false;
    n.disk.crash();
    for (const p of n.proposals.values()) p.done('unknown');
    for (const r of n.reads.values()) r.done('fail');
    for (const r of n.waitingReads) r.done('fail');
    n.proposals.clear();
    n.reads.clear();
    n.waitingReads = [];
    // Its peers' dials are refused from now on (unless it restarts first).
    const epoch = n.epoch;
    for (const other of this.ids()) {
      if (other !== id && this.goneRng) this.at(this.goneRng.float() * this.opts.goneDelay, () => n.epoch === epoch && this.peerGone(other, id));
    }
  }

  /** Tells `observer` that `gone` is not running (the transport's evidence; see SimOptions.goneEvidence). */
  peerGone(observer: NodeId, gone: NodeId): void {
    const n = this.nodes.get(observer);
    if (!n?.core) return;
    if (n.core.leaderGone(gone)) {
      this.earlyCampaigns++;
      this.trace(`${observer} hears ${gone} is gone: campaigning early`);
    }
    this.observe(n);
    this.pump(n);
  }

  /** False evidence for goneEvidence: some nodes cut off from a live node take it for gone. */
  private falseEvidence(): void {
    const rng = this.goneRng;
    if (!rng) return;
    for (const key of this.blocked) {
      const [from, to] = key.split('>') as [NodeId, NodeId];
      if (this.nodes.get(from)?.core && rng.float() < 0.5) this.at(rng.float() * this.opts.goneDelay, () => this.peerGone(to, from));
    }
  }

  restart(id: NodeId): void {
    const n = this.nodes.get(id)!;
    if (n.core) return;
    this.start(id);
  }

  isAlive(id: NodeId): boolean {
    return this.nodes.get(id)?.core != null;
  }

  core(id: NodeId): RaftCore {
    const c = this.nodes.get(id)?.core;
    if (!c) throw new Error(`${id} is down`);
    return c;
  }

  kv(id: NodeId): KvStateMachine {
    return this.nodes.get(id)!.kv;
  }

  disk(id: NodeId): SimDisk {
    return this.nodes.get(id)!.disk;
  }

  ids(): NodeId[] {
    return [...this.nodes.keys()];
  }

  /** The leader of the highest term among live nodes, if any. */
  leader(): NodeId | null {
    let best: NodeId | null = null;
    let bestTerm = -1;
    for (const n of this.nodes.values()) {
      if (n.core?.isLeader && n.core.term > bestTerm) {
        best = n.id;
        bestTerm = n.core.term;
      }
    }
    return best;
  }

  private observe(n: SimNode): void {
    const c = n.core;
    if (!c || !c.isLeader) return;
    const prev = this.leaders.get(c.term);
    if (prev === undefined) {
      this.leaders.set(c.term, n.id);
      this.trace(`${n.id} LEADER term=${c.term}`);
    } else if (prev !== n.id && this.opts.invariants) {
      this.violations.push(`election safety: ${prev} and ${n.id} are both leaders of term ${c.term}`);
    }
  }

  /** Drains the core's Ready: persist (fsync takes virtual time), then send, apply, answer reads. */
  private pump(n: SimNode): void {
    const core = n.core;
    if (!core || n.busy || !core.hasReady()) return;
    const rd = core.ready();
    const batch: PersistBatch = { entries: rd.entries };
    if (rd.hardState) batch.hardState = rd.hardState;
    if (rd.snapshot) batch.snapshot = rd.snapshot;
    const needsWrite = rd.hardState !== null || rd.entries.length > 0 || rd.snapshot !== null;
    if (needsWrite) n.disk.write(batch);
    if (rd.mustSync) {
      n.busy = true;
      const epoch = n.epoch;
      const d = this.opts.fsyncMin + this.nodeRng.float() * (this.opts.fsyncMax - this.opts.fsyncMin);
      this.at(d, () => {
        if (n.epoch !== epoch) return; // crashed while syncing: the batch is lost, nothing was sent
        n.disk.sync();
        n.busy = false;
        this.finish(n, rd);
      });
    } else {
      if (needsWrite) {
        // Not synced now; the OS writes it back some time later (lost if we crash before).
        const epoch = n.epoch;
        this.at(5 + this.nodeRng.float() * 30, () => {
          if (n.epoch === epoch) n.disk.sync();
        });
      }
      this.finish(n, rd);
    }
  }

  private finish(n: SimNode, rd: Ready): void {
    const core = n.core!;
    for (const m of rd.messages) this.send(m);
    if (rd.snapshot) {
      n.kv.restore(rd.snapshot.data);
      this.trace(`${n.id} installed snapshot @${rd.snapshot.meta.index}`);
      // Proposals covered by the snapshot: their outcome is no longer observable here.
      for (const [idx, p] of n.proposals) {
        if (idx <= rd.snapshot.meta.index) {
          p.done('unknown');
          n.proposals.delete(idx);
        }
      }
    }
    for (const e of rd.committed) this.apply(n, e);
    for (const rs of rd.readStates) {
      const r = n.reads.get(rs.ctx);
      if (!r) continue;
      n.reads.delete(rs.ctx);
      if (rs.index < 0) r.done('fail');
      else n.waitingReads.push({ index: rs.index, key: r.key, done: r.done });
    }
    core.advance();
    this.serveReads(n);
    this.observe(n);
    this.maybeSnapshot(n);
    // More may be ready (messages stepped while we were syncing).
    if (core.hasReady()) {
      const epoch = n.epoch;
      this.at(0, () => {
        if (n.epoch === epoch) this.pump(n);
      });
    }
  }

  private apply(n: SimNode, e: Entry): void {
    const sig = `${e.term}:${hash(e.data)}:${e.type}`;
    const prev = this.appliedAt.get(e.index);
    if (prev === undefined) this.appliedAt.set(e.index, sig);
    else if (prev !== sig && this.opts.invariants) {
      this.violations.push(`state machine safety: ${n.id} applied ${sig} at index ${e.index}, another node applied ${prev}`);
    }
    let result: KvOutput | null = null;
    if (e.type === 'normal' && e.data.length > 0) {
      const cmd = decodeCommand(e.data);
      const r = n.kv.apply(cmd);
      result = r.op === 'write' ? { kind: 'write' } : { kind: 'cas', ok: r.ok };
    }
    if (e.type === 'conf') this.trace(`${n.id} applied conf @${e.index}: ${new TextDecoder().decode(e.data)}`);
    n.appliedSinceSnap++;
    const p = n.proposals.get(e.index);
    if (p) {
      n.proposals.delete(e.index);
      if (p.term === e.term && result) p.done(result);
      else if (p.term === e.term) p.done('unknown');
      else p.done('fail'); // another entry took that index: ours can never commit
    }
  }

  private serveReads(n: SimNode): void {
    const core = n.core;
    if (!core || n.waitingReads.length === 0) return;
    const still: typeof n.waitingReads = [];
    for (const r of n.waitingReads) {
      if (core.applied >= r.index) r.done({ kind: 'read', value: n.kv.read(r.key) });
      else still.push(r);
    }
    n.waitingReads = still;
  }

  private maybeSnapshot(n: SimNode): void {
    const core = n.core;
    if (!core || this.opts.snapshotEvery <= 0 || n.appliedSinceSnap < this.opts.snapshotEvery) return;
    n.appliedSinceSnap = 0;
    const index = core.applied;
    const term = core.log.term(index);
    if (term === undefined) return;
    const snap: Snapshot = { meta: { index, term, conf: cloneConf(core.conf) }, data: n.kv.snapshot() };
    core.compact(snap, this.opts.keepEntries);
    n.disk.compact(snap, this.opts.keepEntries);
    this.trace(`${n.id} snapshot @${index}`);
  }

  // ------------------------------------------------------------------ network

  private send(m: Message): void {
    this.messagesSent++;
    if (this.blocked.has(`${m.from}>${m.to}`)) return;
    if (this.dropRate > 0 && this.netRng.chance(this.dropRate)) return;
    const copies = this.dupRate > 0 && this.netRng.chance(this.dupRate) ? 2 : 1;
    for (let i = 0; i < copies; i++) {
      const slow = this.netRng.chance(0.02);
      const d = slow
        ? this.opts.maxDelay + this.netRng.float() * this.opts.slowDelay
        : this.opts.minDelay + this.netRng.float() * (this.opts.maxDelay - this.opts.minDelay);
      this.at(d, () => this.deliver(m));
    }
  }

  private deliver(m: Message): void {
    // A partition that started while the message was in flight also drops it.
    if (this.blocked.has(`${m.from}>${m.to}`)) return;
    const n = this.nodes.get(m.to);
    if (!n || !n.core) return;
    this.messagesDelivered++;
    n.core.step(m);
    this.observe(n);
    this.serveReads(n);
    this.pump(n);
  }

  /** Cuts the network into groups; nodes not listed form their own group. */
  partition(groups: NodeId[][]): void {
    this.blocked.clear();
    const groupOf = new Map<NodeId, number>();
    groups.forEach((g, i) => {
      for (const id of g) groupOf.set(id, i);
    });
    const ids = this.ids();
    let lone = groups.length;
    for (const id of ids) if (!groupOf.has(id)) groupOf.set(id, lone++);
    for (const a of ids) for (const b of ids) if (groupOf.get(a) !== groupOf.get(b)) this.blocked.add(`${a}>${b}`);
    this.trace(`PARTITION ${groups.map((g) => `[${g.join(',')}]`).join(' ')}`);
    this.falseEvidence();
  }

  /** Drops traffic from `from` to `to` only (asymmetric). */
  blockOneWay(from: NodeId, to: NodeId): void {
    this.blocked.add(`${from}>${to}`);
    this.trace(`BLOCK ${from}>${to}`);
  }

  isolate(id: NodeId): void {
    for (const other of this.ids()) {
      if (other === id) continue;
      this.blocked.add(`${id}>${other}`);
      this.blocked.add(`${other}>${id}`);
    }
    this.trace(`ISOLATE ${id}`);
    this.falseEvidence();
  }

  heal(): void {
    this.blocked.clear();
    this.trace('HEAL');
  }

  // ------------------------------------------------------------------ clients

  /** Submits one KV operation to node `id` and records it in the history. */
  submit(id: NodeId, client: number, input: KvInput): OpHandle {
    const op: HistoryOp = { id: this.opSeq++, client, input, invoke: this.now, complete: null, output: null };
    const h: OpHandle = { op, status: 'pending' };
    this.history.push(op);
    const done: Completion = (out) => {
      if (h.status !== 'pending') return;
      if (out === 'fail') {
        h.status = 'fail';
        // Definitely had no effect: it is not part of the history.
        const i = this.history.indexOf(op);
        if (i >= 0) this.history.splice(i, 1);
      } else if (out === 'unknown') {
        h.status = 'unknown';
        if (input.kind === 'read') {
          const i = this.history.indexOf(op);
          if (i >= 0) this.history.splice(i, 1);
        }
      } else {
        h.status = 'ok';
        op.complete = this.now;
        op.output = out;
      }
    };
    const n = this.nodes.get(id);
    const core = n?.core;
    if (!n || !core) {
      done('fail');
      return h;
    }
    if (input.kind === 'read') {
      const ctx = `${id}/${n.epoch}/${n.readSeq++}`;
      n.reads.set(ctx, { key: input.key, done });
      core.readIndex(ctx);
      this.pump(n);
      return h;
    }
    const cmd: KvCommand =
      input.kind === 'write'
        ? { op: 'write', key: input.key, value: input.value, id: op.id }
        : { op: 'cas', key: input.key, from: input.from, to: input.to, id: op.id };
    try {
      const { index, term } = core.propose(encodeCommand(cmd));
      n.proposals.set(index, { term, done });
      this.pump(n);
    } catch (e) {
      if (e instanceof NotLeaderError || e instanceof ProposalRejectedError) done('fail');
      else throw e;
    }
    return h;
  }

  /** Gives up on an op (client timeout): its outcome is unknown. */
  abandon(h: OpHandle): void {
    if (h.status !== 'pending') return;
    h.status = 'unknown';
    if (h.op.input.kind === 'read') {
      const i = this.history.indexOf(h.op);
      if (i >= 0) this.history.splice(i, 1);
    }
  }

  proposeConf(id: NodeId, cc: ConfChange): boolean {
    const n = this.nodes.get(id);
    if (!n?.core) return false;
    try {
      n.core.proposeConfChange(cc);
      this.trace(`${id} propose conf ${cc.type} ${cc.node}`);
      this.pump(n);
      return true;
    } catch (e) {
      if (e instanceof NotLeaderError || e instanceof ProposalRejectedError) return false;
      throw e;
    }
  }

  /**
   * Checks that every member (per the current leader's configuration) applied the same state as far as
   * the leader committed. Call after healing and settling. Removed nodes are not members any more.
   */
  converged(): { ok: boolean; detail: string } {
    const l = this.leader();
    if (!l) return { ok: false, detail: 'no leader' };
    const lc = this.core(l);
    const members = [...lc.conf.voters, ...lc.conf.learners];
    const digests = new Map<string, NodeId[]>();
    for (const id of members) {
      const n = this.nodes.get(id);
      if (!n?.core) return { ok: false, detail: `${id} is down` };
      const d = `${n.core.applied}|${n.kv.digest()}`;
      const ids = digests.get(d) ?? [];
      ids.push(n.id);
      digests.set(d, ids);
    }
    const ok = digests.size === 1 && [...digests.keys()][0]!.startsWith(`${lc.commit}|`);
    return {
      ok,
      detail: [...digests.entries()].map(([d, ids]) => `${ids.join(',')}: applied ${d.split('|')[0]}`).join('; ') + ` (leader ${l} commit ${lc.commit})`,
    };
  }

  pump_all(): void {
    for (const n of this.nodes.values()) this.pump(n);
  }
}

function cloneConf(c: { voters: string[]; learners: string[]; removed: string[] }) {
  return { voters: [...c.voters], learners: [...c.learners], removed: [...c.removed] };
}

function hash(data: Uint8Array): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < data.length; i++) h = Math.imul(h ^ data[i]!, 0x01000193) >>> 0;
  return h;
}
