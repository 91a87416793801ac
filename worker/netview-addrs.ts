// The agent's side of 'netview-addr-changes' (api/netview-addrs.ts): the node address list of a session's
// last view, rebuilt from the change the leader sends. Pure.
import type { AddrChange } from '../api/netview-addrs.ts';
import { ipToInt, isIpv4 } from '../overlay-net/ipnet.ts';

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
  const x = isIpv4(a);
  const y = isIpv4(b);
  if (x && y) return ipToInt(a) - ipToInt(b);
  if (x !== y) return x ? -1 : 1;
  return a < b ? -1 : a > b ? 1 : 0;
}
