// Feeds a manager's EventLog: a store watch over every kind (events derive from applied changes, after
// apply, never inside it) and the Raft node's leader callbacks (who led which term, for leader events).
// When the store closes the watch (a snapshot was installed: StoreResetError; or an overflow), the gap is
// recorded and the watch reopened at once.
import type { Node } from '../../api/objects.ts';
import type { RaftNode } from '../raft/node.ts';
import type { Store } from '../store/store.ts';
import { EventLog, type EventLogOptions } from './log.ts';

/** Terms whose leader is remembered (older entries are long applied). */
const LEADER_TERMS = 64;

export class EventFeed {
  readonly log: EventLog;
  private readonly leaders = new Map<number, string>();
  private unwatch: (() => void) | null = null;
  private unleader: (() => void) | null = null;
  private stopped = false;

  constructor(
    private readonly store: Store,
    raft: Pick<RaftNode, 'onLeaderChange' | 'status'>,
    opts: Pick<EventLogOptions, 'capacity' | 'maxListeners' | 'listenerQueue'> = {},
    private readonly logLine: (l: string) => void = () => {},
  ) {
    this.log = new EventLog({
      ...opts,
      nodeName: (id) => (store.view((tx) => tx.get('node', id)) as Node | undefined)?.description?.hostname || undefined,
      leaderOf: (term) => {
        const known = this.leaders.get(term);
        if (known !== undefined) return known;
        const st = raft.status();
        return st.term === term && st.leader ? st.leader : undefined;
      },
    });
    this.unleader = raft.onLeaderChange((leader, term) => {
      if (leader === null) return;
      this.leaders.set(term, leader);
      if (this.leaders.size > LEADER_TERMS) this.leaders.delete(this.leaders.keys().next().value!);
    });
    this.log.begin(store.index);
    this.watch();
  }

  private watch(): void {
    if (this.stopped) return;
    this.unwatch = this.store.watch(
      {
        onClose: (err) => {
          if (this.stopped) return;
          this.log.reset(this.store.index);
          this.logLine(`events: store watch closed (${err.message}); history resumes after index ${this.store.index}`);
          this.watch();
        },
      },
      (ev) => {
        this.log.apply(ev);
      },
    );
  }

  stop(): void {
    this.stopped = true;
    this.unwatch?.();
    this.unleader?.();
  }
}
