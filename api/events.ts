// What `GET /v1/events` streams and `shoal events` prints: one change in the cluster, as every manager
// derives it from the replicated log (so any manager answers, and the same change has the same `seq`
// and `time` on all of them). The Docker API's `/events` and the dashboard read the same records.
//
// Wire form: `GET /v1/events?since=T&until=T&filter=type=service&filter=name=web&follow=1` answers
// `application/x-ndjson`, one ClusterEvent per line, oldest first; with `follow` the stream stays open
// (a `{"keepalive":true}` line every 15 s so proxies and clients see it is alive) until `until` or the
// client leaves. T is RFC 3339 or Unix seconds (fractions allowed), as `docker events` accepts.
// Without `since`, a replay returns every event the manager keeps and a follow stream only new ones.
// `after=SEQ` starts after that seq (exact resume). A follower that falls too far behind gets one last
// line `{"end": "<why>", "after": "<last seq sent>"}` and the stream closes: reconnect with `after`.
// A bad parameter answers 400 with `error.param` naming it; too many open streams answer 503.

/** What an event is about (`--filter type=…`). */
export const EVENT_TYPES = ['service', 'node', 'task', 'network', 'secret', 'config', 'cluster', 'manager'] as const;
export type EventType = (typeof EVENT_TYPES)[number];

export interface ClusterEvent {
  /**
   * Order in the replicated log, identical on every manager: the Raft index of the entry that made the
   * change, then the change's position in that entry ("1234.0", "1234.1"). Compare with compareSeq.
   */
  seq: string;
  /** When the change was proposed (RFC 3339, the proposing transaction's clock, carried in the entry). */
  time: string;
  type: EventType;
  /**
   * create | update | remove for objects; for tasks `state` (attributes state.old/state.new);
   * for nodes also `down` / `up`; for managers `leader` (attributes term, leader); for services
   * `autoscale` (attributes replicas.old/new and reason).
   */
  action: string;
  actor: {
    id: string;
    /** The object's name (service name, node hostname, task `service.slot`). */
    name: string;
    /** What changed, as old/new pairs (`replicas.old`, `replicas.new`, `image.old`, …), plus labels as `label.K`. */
    attributes: Record<string, string>;
  };
}

/** Orders two `seq` values (numeric per part, so "99.0" < "100.0"). */
export function compareSeq(a: string, b: string): number {
  const [ai = 0, aj = 0] = a.split('.').map(Number);
  const [bi = 0, bj = 0] = b.split('.').map(Number);
  return ai - bi || aj - bj;
}
