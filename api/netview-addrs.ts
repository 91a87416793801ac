// What a leader sends an agent that named 'netview-addr-changes' (api/dispatcher.ts) instead of the whole
// list of node addresses in each NetView after the first one of a session: the change since the
// generation the agent has. The leader's side is manager/dispatcher/netview-addrs.ts, the agent's
// worker/netview-addrs.ts.

/** What changed in the list from generation `base` to `gen`. */
export interface AddrChange {
  base: number;
  gen: number;
  add: string[];
  remove: string[];
}
