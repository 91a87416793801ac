// Raft metrics. The Raft core never sees prom-client: RaftNode and SqliteRaftStorage take plain optional
// callbacks (a proposal's and a WAL commit's duration), and this file turns them into histograms. Term,
// commit and apply index and leadership are read from the node's status() when Prometheus scrapes, so
// nothing is updated on the hot path that nobody reads.
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { FAST_BUCKETS } from './registry.ts';

/** The part of RaftNode.status() these metrics read. */
export interface RaftStatusView {
  role: string;
  term: number;
  commit: number;
  applied: number;
  lastIndex: number;
}

export class RaftMetrics {
  private status: (() => RaftStatusView | null) | null = null;
  /** Collect-time gauges: registered only while a manager runs (a label-less gauge would otherwise read 0 on workers). */
  private readonly gauges: Gauge[] = [];
  private readonly leaderChanges: Counter;
  private readonly proposals: Histogram<'outcome'>;
  private readonly fsyncs: Histogram;

  constructor(private readonly reg: Registry) {
    const read = (): RaftStatusView | null => this.status?.() ?? null;
    const gauge = (name: string, help: string, value: (s: RaftStatusView) => number) =>
      this.gauges.push(
        new Gauge({
          name,
          help,
          registers: [],
          collect() {
            const s = read();
            this.reset();
            if (s) this.set(value(s));
          },
        }),
      );
    gauge('shoal_raft_term', 'Current Raft term of this manager.', (s) => s.term);
    gauge('shoal_raft_commit_index', 'Highest log index known to be committed.', (s) => s.commit);
    gauge('shoal_raft_apply_index', 'Highest log index applied to the store on this manager.', (s) => s.applied);
    gauge('shoal_raft_last_index', "Last index in this manager's log.", (s) => s.lastIndex);
    gauge('shoal_raft_is_leader', '1 when this manager is the Raft leader, else 0.', (s) => (s.role === 'leader' ? 1 : 0));
    this.leaderChanges = new Counter({ name: 'shoal_raft_leader_changes_total', help: 'Times this manager saw the known leader change.', registers: [reg] });
    this.proposals = new Histogram({
      name: 'shoal_raft_proposal_duration_seconds',
      help: 'Proposal to applied-on-this-leader latency of store writes.',
      labelNames: ['outcome'],
      buckets: FAST_BUCKETS,
      registers: [reg],
    });
    this.fsyncs = new Histogram({
      name: 'shoal_raft_fsync_duration_seconds',
      help: 'Durable (fsynced) Raft log writes: one SQLite WAL commit per batch.',
      buckets: FAST_BUCKETS,
      registers: [reg],
    });
  }

  /** Where the collect-time gauges read from; null while this daemon runs no manager. */
  source(status: (() => RaftStatusView | null) | null): void {
    this.status = status;
    for (const g of this.gauges) {
      const name = (g as unknown as { name: string }).name;
      const present = this.reg.getSingleMetric(name) !== undefined;
      if (status && !present) this.reg.registerMetric(g);
      else if (!status && present) this.reg.removeSingleMetric(name);
    }
  }

  leaderChanged(): void {
    this.leaderChanges.inc();
  }

  proposal(seconds: number, ok: boolean): void {
    this.proposals.observe({ outcome: ok ? 'applied' : 'failed' }, seconds);
  }

  fsync(seconds: number): void {
    this.fsyncs.observe(seconds);
  }
}
