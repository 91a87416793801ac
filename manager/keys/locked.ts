// How the cluster learns that a manager is locked (autolock, issue 15). A locked manager cannot prove
// who it is: its TLS key is wrapped (node-key.ts), so it has no Raft link and no dispatcher session and
// looks exactly like a manager that is down. So, while locked, its daemon tells the managers it knows
// "node N is up and locked" on the one unauthenticated path besides /v1/ca and /v1/join:
// POST /v1/locked { nodeId } over TLS that trusts the cluster CA (it verifies the managers; they cannot
// verify it). A manager believes the notice only if N is a manager in the store, the request comes from
// the address N is recorded at (the dispatcher records the address connections come from), and N has no
// live Raft link; it remembers the notice for LOCKED_TTL_MS, in memory only (nothing is written to Raft
// on an unauthenticated request). `node ls` then shows MANAGER STATUS "Locked" instead of
// "Unreachable". What a forged notice can do: relabel an unreachable manager as Locked, from its own
// address — nothing else (docs/design/security.md).
import { httpsRaw } from '../../transport/https.ts';
import type { Node } from '../../api/objects.ts';

export const LOCKED_PATH = '/v1/locked';
/** How long one notice counts; the locked daemon repeats it every LOCKED_EVERY_MS. */
export const LOCKED_TTL_MS = 15_000;
export const LOCKED_EVERY_MS = 3_000;
/** How long one notice may take: a round (all managers at once) ends within it, well inside LOCKED_TTL_MS. */
export const LOCKED_NOTICE_TIMEOUT_MS = 2_000;

/** The manager side: notices it believed, by node id. Bounded by the number of managers in the store. */
export class LockedNodes {
  private readonly seen = new Map<string, number>();

  /**
   * A notice from `remote` for `nodeId`: believed (true) when the node is a manager recorded at that
   * address and is not reachable over Raft. Returns the reason when it is not.
   */
  report(nodeId: unknown, remote: string, node: Node | undefined, reachable: boolean, now: number): string | null {
    if (typeof nodeId !== 'string' || node === undefined) return 'no such node';
    if (node.spec.role !== 'manager') return 'only a manager can be locked';
    const ip = remote.replace(/^::ffff:/, '');
    if (ip !== node.status.addr && ip !== node.description.addr) return 'the notice does not come from the address the node is recorded at';
    if (reachable) return 'the node is reachable: it is not locked';
    this.seen.set(nodeId, now);
    return null;
  }

  isLocked(nodeId: string, now: number): boolean {
    const at = this.seen.get(nodeId);
    if (at === undefined) return false;
    if (now - at > LOCKED_TTL_MS) {
      this.seen.delete(nodeId);
      return false;
    }
    return true;
  }
}

/**
 * The locked daemon's side: tells every manager in `managers` (except itself) every LOCKED_EVERY_MS
 * until the returned function is called. Failures are silent: the managers may be down too. Each notice
 * gets at most LOCKED_NOTICE_TIMEOUT_MS, so an unreachable manager cannot stretch a round past the TTL
 * the reachable ones count a notice for. `everyMs` and `timeoutMs` are for tests.
 */
export function announceLocked(opts: { nodeId: string; managers: () => string[]; ca: string; everyMs?: number; timeoutMs?: number }): () => void {
  let stopped = false;
  let timer: NodeJS.Timeout | null = null;
  const timeoutMs = opts.timeoutMs ?? LOCKED_NOTICE_TIMEOUT_MS;
  const notify = (m: string): Promise<unknown> => {
    // The request's own timeout is an idle timeout; the deadline also bounds a peer that trickles.
    let deadline: NodeJS.Timeout | undefined;
    return Promise.race([
      httpsRaw(m, 'POST', LOCKED_PATH, { nodeId: opts.nodeId }, { ca: opts.ca }, timeoutMs),
      new Promise((r) => {
        deadline = setTimeout(r, timeoutMs);
        deadline.unref();
      }),
    ]).finally(() => clearTimeout(deadline));
  };
  const once = async () => {
    await Promise.allSettled(opts.managers().map(notify));
    if (!stopped) {
      timer = setTimeout(() => void once(), opts.everyMs ?? LOCKED_EVERY_MS);
      timer.unref();
    }
  };
  void once();
  return () => {
    stopped = true;
    if (timer) clearTimeout(timer);
  };
}
