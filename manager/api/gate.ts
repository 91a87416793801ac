// The one gate between the control API and the replicated store: which manager may write (the
// leader, else a redirect or "no quorum"), how a write is bounded in time and which errors a caller
// gets when the cluster cannot commit, how a read is made linearizable, and how a write is re-run on a
// version conflict. Every route and the dispatcher go through here, so these answers are the same
// everywhere. Errors from Raft and the store are matched by class.
import { setTimeout as sleep } from 'node:timers/promises';
import { quorum, ProposalRejectedError } from '../raft/core.ts';
import { NotLeaderError, ProposalDroppedError, ProposalOutcomeUnknownError, RaftStoppedError, ReadFailedError, type RaftNode } from '../raft/node.ts';
import { ConflictError } from '../store/errors.ts';
import type { Store } from '../store/store.ts';
import type { Members } from '../members.ts';
import { ApiError } from './http.ts';

export type UpdateFn = Parameters<Store['update']>[0];

/** Attempts of a write that keeps meeting version conflicts before the conflict is returned. */
const CONFLICT_RETRIES = 8;
/** How long a membership change waits for an earlier one to finish. */
const CONF_CHANGE_WAIT_MS = 10_000;

export class Gate {
  constructor(
    private readonly raft: RaftNode,
    private readonly store: Store,
    private readonly members: Members,
    /**
     * Raft election timeout (ms, or where to read the one in force: it grows with the store, see
     * election-timing.ts): a write gets three elections (plus a second) to commit.
     */
    private readonly electionMs: number | (() => number),
  ) {}

  /** Throws the error a write must get on a non-leader: a redirect, or no quorum. */
  requireLeader(): void {
    const st = this.raft.status();
    if (st.role === 'leader') return;
    const l = this.members.leaderAddr();
    if (l) throw new ApiError(421, 'ENOTLEADER', `this manager is not the leader; the leader is ${l.addr}`, { leader: l.addr });
    const r = this.members.reachableManagers();
    const need = quorum(r.total);
    if (r.reachable >= need) throw new ApiError(503, 'ENOLEADER', 'no leader yet: an election is in progress; retry in a moment');
    throw new ApiError(503, 'ENOQUORUM', `no quorum: ${r.reachable} of ${r.total} managers reachable (need ${need})`);
  }

  /**
   * A store write on behalf of an API call: bounded in time, and with the errors a caller can act on
   * (no quorum, lost leadership) instead of a hang when the cluster cannot commit.
   */
  async write(fn: UpdateFn): Promise<void> {
    this.requireLeader();
    const limit = 3 * (typeof this.electionMs === 'number' ? this.electionMs : this.electionMs()) + 1000;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new ApiError(503, 'ETIMEOUT', 'the change was not committed in time')), limit);
    });
    try {
      await Promise.race([this.update(fn), timeout]);
    } catch (e) {
      if (e instanceof ApiError && e.code !== 'ETIMEOUT') throw e;
      if (
        e instanceof ApiError ||
        e instanceof NotLeaderError ||
        e instanceof ProposalOutcomeUnknownError ||
        e instanceof ProposalDroppedError ||
        e instanceof RaftStoppedError
      ) {
        const r = this.members.reachableManagers();
        const q = quorum(r.total);
        if (r.reachable < q)
          throw new ApiError(503, 'ENOQUORUM', `no quorum: ${r.reachable} of ${r.total} managers reachable (need ${q}); the change may not have been applied`);
        throw new ApiError(
          503,
          'EUNKNOWN',
          `leadership changed while committing (${(e as Error).message}); the change may or may not have been applied: check and retry`,
        );
      }
      throw e;
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * store.update, re-run on a version conflict: transactions read their objects inside `fn`, so a retry
   * applies the change to whatever another writer (a heartbeat, a renewal) committed meanwhile.
   */
  async update(fn: UpdateFn): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      try {
        await this.store.update(fn);
        return;
      } catch (e) {
        if (!(e instanceof ConflictError) || attempt >= CONFLICT_RETRIES) throw e;
      }
    }
  }

  /** Confirms, through a ReadIndex round, that this manager's store is current before a read. */
  async linearizable(): Promise<void> {
    try {
      await this.raft.read();
    } catch (e) {
      if (e instanceof NotLeaderError || e instanceof ReadFailedError) {
        const r = this.members.reachableManagers();
        const q = quorum(r.total);
        if (r.reachable < q || !this.raft.status().leader) {
          throw new ApiError(503, 'ENOQUORUM', `no quorum: ${r.reachable} of ${r.total} managers reachable (need ${q})`);
        }
        throw new ApiError(503, 'ERETRY', `read could not be confirmed (${(e as Error).message}); retry`);
      }
      throw e;
    }
  }

  /** Runs a Raft membership change, waiting (bounded) while an earlier change is still in progress. */
  async retryConf(fn: () => Promise<void>): Promise<void> {
    const deadline = Date.now() + CONF_CHANGE_WAIT_MS;
    for (;;) {
      try {
        await fn();
        return;
      } catch (e) {
        if (!(e instanceof ProposalRejectedError) || Date.now() > deadline) throw e;
        if (!/in progress/.test(e.message)) throw e;
        await sleep(20);
      }
    }
  }
}
