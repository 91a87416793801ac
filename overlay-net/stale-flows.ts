// Connections a load balancer sent to a backend it has since dropped (the routing mesh's ingress table,
// the host-mode table, each task's VIP table).
//
// Why: a nat chain sees only the first packet of a connection; conntrack keeps every later packet of it
// on the backend that packet was sent to. A SYN sent to a backend that has just died is never answered,
// and its entry stays (SYN_SENT, [UNREPLIED]) for nf_conntrack_tcp_timeout_syn_sent, 120 s. The client's
// retransmissions follow it to the dead backend, and so does any new connection that reuses the source
// port (the same five-tuple), however the table changed meanwhile: seen in the lab as a request through
// the mesh that nothing answered for 5 s, a few seconds after a task had been killed on another node.
// UDP is worse: each datagram refreshes an unreplied entry (30 s), so a client that keeps sending from one
// socket never reaches another backend. IPVS, which Swarm uses, expires such connections
// (`expire_nodest_conn`); here, when a backend leaves a table, the entries of that namespace that point at
// it and never saw a reply are deleted (overlay-net/netlink.ts dropStaleFlows). The next SYN or
// datagram is then balanced afresh.
//
// Entries that did see a reply are left alone while the backend may be alive: a backend is withdrawn
// *before* its task is stopped (manager/dispatcher/drain.ts), and the connections it has accepted finish
// there. Deleting an unreplied entry of a backend that is alive but withdrawn costs at most that
// handshake a retransmission (1 s): its SYN-ACK finds no entry, and the client's next SYN goes to
// another backend. Once the backend's address is gone from the view altogether (its task ended and the
// allocator released the address, which IPAM does not hand out again soon: it rotates), its remaining
// entries go too, replied or not: a client of a task that died mid-connection then sends its next packet
// to a live backend, which answers with a reset, instead of waiting minutes for its own TCP timeout (what
// IPVS's `expire_nodest_conn` does for Swarm).
//
// The pure part names which addresses left a table. The sweep is a netlink call on a libuv worker
// thread, and its cost is the kernel's: a conntrack dump walks the whole hash table, shared by every
// namespace (10.6 ms p50 at 262,144 buckets here, whatever the namespace holds). So a sweep never holds up the
// apply that asked for it (nor, through it, the acknowledgement the stop drain waits for); sweeps run
// one at a time for the whole process, and the addresses that leave a namespace's table while its sweep
// waits join that sweep; a namespace with no conntrack entry at all is not dumped (the addon reads its
// count first). A failure is reported, never thrown: the table is already right, and only the entries
// wait for their timeout, as before.
import { dropStaleFlows, type FlowTargets } from './netlink.ts';
import type { NftTable } from './nft.ts';

/** Every address a rule of `t` DNATs to (`dnat to A` or `dnat to A:PORT`). */
export function dnatTargets(t: NftTable): Set<string> {
  const out = new Set<string>();
  for (const c of t.chains.values()) {
    for (const r of c.rules) {
      const m = /\bdnat to (\d{1,3}(?:\.\d{1,3}){3})(?::\d+)?$/.exec(r);
      if (m) out.add(m[1]!);
    }
  }
  return out;
}

/** The addresses of `before` that `after` no longer has, sorted. */
export function goneTargets(before: ReadonlySet<string>, after: ReadonlySet<string>): string[] {
  return [...before].filter((a) => !after.has(a)).sort();
}

export type DropFlows = (targets: FlowTargets, netns: string | null) => Promise<{ scanned: number; deleted: number }>;

const dropInKernel: DropFlows = (targets, netns) => dropStaleFlows(targets, netns === null ? undefined : { netns });

export interface StaleFlowOptions {
  /** Replaces the kernel call (tests). */
  drop?: DropFlows;
  /** A sweep failed (the entries then expire by themselves). */
  onError?: (err: Error) => void;
  /** A sweep ran: the backends it was for (both kinds), and how many entries it deleted (logs, metrics). */
  onSwept?: (gone: readonly string[], deleted: number) => void;
}

/**
 * A programmer's sweep options: its `onFallback` logger reports failed sweeps too, and `staleFlows`
 * (tests, NodeNetwork's logs and metrics) comes on top.
 */
export function sweepOptions(o: { onFallback?: (err: Error) => void; staleFlows?: StaleFlowOptions }): StaleFlowOptions {
  return { ...(o.onFallback ? { onError: o.onFallback } : {}), ...o.staleFlows };
}

/** Sweeps run one at a time in the process (each walks the kernel's whole conntrack hash). */
let serial: Promise<void> = Promise.resolve();

/**
 * Follows one namespace's table as it is applied: after each apply, the unreplied entries to backends the
 * table no longer has are deleted, in the background. The first table applied only sets the baseline.
 */
export class StaleFlowSweeper {
  private last: Set<string> | null = null;
  private readonly drop: DropFlows;
  /** Backends that left the table while still in the view (withdrawn, perhaps draining): watched until they leave it. */
  private readonly withdrawn = new Set<string>();
  /** Addresses waiting for a sweep that has not started yet: unreplied entries only, or every entry. */
  private readonly pending = { unreplied: new Set<string>(), all: new Set<string>() };
  /** That sweep, while it waits for its turn. */
  private queued: Promise<void> | null = null;
  /** The latest sweep asked for (settled(): tests, and a caller that wants the kernel clean now). */
  private tail: Promise<void> = Promise.resolve();

  constructor(
    readonly netns: string | null,
    private readonly opts: StaleFlowOptions = {},
  ) {
    this.drop = opts.drop ?? dropInKernel;
  }

  /**
   * `table` is now in the kernel: sweeps, in the background, what pointed at the backends it dropped.
   * `present`: every address the view still has for this table's backends, running or not (absent: the
   * caller cannot tell, and only unreplied entries are ever swept).
   */
  applied(table: NftTable, present?: ReadonlySet<string>): void {
    const now = dnatTargets(table);
    const left = this.last ? goneTargets(this.last, now) : [];
    this.last = now;
    const dead = (a: string) => present !== undefined && !present.has(a);
    for (const a of left) {
      if (dead(a)) this.pending.all.add(a);
      else {
        this.pending.unreplied.add(a);
        if (present) this.withdrawn.add(a);
      }
    }
    for (const a of this.withdrawn) {
      if (now.has(a))
        this.withdrawn.delete(a); // back in the table
      else if (dead(a)) {
        this.withdrawn.delete(a);
        this.pending.all.add(a);
      }
    }
    if (this.pending.unreplied.size === 0 && this.pending.all.size === 0) return;
    if (this.queued) return; // joins the sweep that waits for its turn
    const run = serial.then(() => this.sweep());
    serial = run;
    this.queued = run;
    this.tail = run;
  }

  /** Resolves once every sweep asked for so far has run. */
  settled(): Promise<void> {
    return this.tail;
  }

  private async sweep(): Promise<void> {
    this.queued = null; // what leaves the table from now on needs a sweep of its own
    // An address back in the table meanwhile is a backend again: its entries are live ones now.
    const take = (set: Set<string>) => [...set].filter((a) => !this.last?.has(a)).sort();
    const targets = { all: take(this.pending.all), unreplied: take(this.pending.unreplied).filter((a) => !this.pending.all.has(a)) };
    this.pending.all.clear();
    this.pending.unreplied.clear();
    const gone = [...targets.unreplied, ...targets.all].sort();
    if (gone.length === 0) return;
    try {
      const { deleted } = await this.drop(targets, this.netns);
      this.opts.onSwept?.(gone, deleted);
    } catch (e) {
      if ((e as { code?: string }).code === 'ENOENT') return; // the namespace went away with its entries
      this.opts.onError?.(new Error(`deleting stale connections to ${gone.join(', ')}: ${(e as Error).message}`));
    }
  }

  /** The table was removed: nothing to compare the next one with (a sweep already asked for still runs). */
  reset(): void {
    this.last = null;
    this.withdrawn.clear();
  }
}
