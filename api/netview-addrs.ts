// What a leader sends an agent that named 'netview-addr-changes' (api/dispatcher.ts) instead of the whole
// list of node addresses in each NetView after the first one of a session: the change since the
// generation the agent has. The leader's side is manager/dispatcher/netview-addrs.ts. Pure.

/** What changed in the list from generation `base` to `gen`. */
export interface AddrChange {
  base: number;
  gen: number;
  add: string[];
  remove: string[];
}

/**
 * The agent's side: the list after `change`, from the list of generation `change.base` it has. Sorted as
 * the leader sorts it (by address, numerically). Throws when the change does not apply to what it has (a
 * manager bug, or a message out of place): the caller starts a new session, whose first view is whole.
 */
export function applyAddrChange(have: { gen: number; list: readonly string[] } | null, change: unknown): { gen: number; list: string[] } {
  const c = change as Partial<AddrChange> | null;
  const strings = (x: unknown): x is string[] => Array.isArray(x) && x.every((a) => typeof a === 'string');
  if (c === null || typeof c !== 'object' || !Number.isInteger(c.base) || !Number.isInteger(c.gen) || !strings(c.add) || !strings(c.remove))
    throw new Error('malformed node address change');
  if (have === null) throw new Error(`node address change against generation ${c.base}, but this session has no list yet`);
  if (have.gen !== c.base) throw new Error(`node address change against generation ${c.base}, but this session has generation ${have.gen}`);
  const set = new Set(have.list);
  for (const a of c.remove) set.delete(a);
  for (const a of c.add) set.add(a);
  return { gen: c.gen!, list: [...set].sort(byAddress) };
}

/** Dotted IPv4 addresses by value (anything else after them, by text): the order NetIndex gives. */
export function byAddress(a: string, b: string): number {
  const x = ipValue(a);
  const y = ipValue(b);
  if (x >= 0 && y >= 0) return x - y;
  if (x >= 0) return -1;
  if (y >= 0) return 1;
  return a < b ? -1 : a > b ? 1 : 0;
}

function ipValue(s: string): number {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s);
  if (m === null) return -1;
  let n = 0;
  for (let i = 1; i <= 4; i++) {
    const v = Number(m[i]);
    if (v > 255) return -1;
    n = n * 256 + v;
  }
  return n;
}
