// The cluster's node addresses in the NetViews, by generation. Every node's view carries every node's
// underlay address (the senders its VXLAN devices accept, the addresses its tasks may not reach:
// overlay-net/filter.ts), so the list is O(nodes) in each of O(nodes) views. While 5,000 nodes joined,
// each round of views sent every node a list that had grown by the joins since the last round: ≈ 70 KB
// per view, O(nodes²) bytes per round for the leader to encrypt and write and for every agent to read
// and parse (the simulated agents fell seconds behind their heartbeats, and their nodes were marked Down
// by the thousand). An agent that names 'netview-addr-changes' is sent the list once per session, then
// only what changed since the generation it has.
//
//   round k: list L_k (generation g_k) ──▶ node sent g_j (j < k, still kept): { base: g_j, gen: g_k, add, remove }
//                                     └──▶ node sent nothing yet on this session, or g_j forgotten: the whole list
//
// Generations are this leader's own (a new leader starts over; its first view on each session is whole).
// The agent's side is worker/netview-addrs.ts. Pure: no clock, no sockets.
import type { AddrChange } from '../../api/netview-addrs.ts';

/** Generations kept: a node that missed more rounds than this (its sends refused) gets the whole list. */
export const ADDR_GENERATIONS_KEPT = 16;

export class AddrGenerations {
  private readonly gens: { gen: number; json: string; list: readonly string[] }[] = [];
  private nextGen = 1;
  /** JSON of the change from each base to the current generation, made once per base. */
  private readonly changes = new Map<number, string | null>();

  constructor(private readonly keep = ADDR_GENERATIONS_KEPT) {}

  /**
   * The generation of this list (`json` is its JSON, which identifies it): the current one when it is the
   * same list, else a new one.
   */
  note(list: readonly string[], json: string): number {
    const last = this.gens.at(-1);
    if (last !== undefined && last.json === json) return last.gen;
    const gen = this.nextGen++;
    this.gens.push({ gen, json, list });
    if (this.gens.length > this.keep) this.gens.shift();
    this.changes.clear();
    return gen;
  }

  /** The current generation, 0 before any. */
  get current(): number {
    return this.gens.at(-1)?.gen ?? 0;
  }

  /**
   * JSON of the change from generation `base` to the current one (an AddrChange; empty lists when `base`
   * is current), or null when `base` is not kept.
   */
  changeFrom(base: number): string | null {
    const cur = this.gens.at(-1);
    if (cur === undefined) return null;
    const known = this.changes.get(base);
    if (known !== undefined) return known;
    const from = this.gens.find((g) => g.gen === base);
    let out: string | null = null;
    if (from !== undefined) {
      const before = new Set(from.list);
      const after = new Set(cur.list);
      const change: AddrChange = {
        base,
        gen: cur.gen,
        add: cur.list.filter((a) => !before.has(a)),
        remove: from.list.filter((a) => !after.has(a)),
      };
      out = JSON.stringify(change);
    }
    this.changes.set(base, out);
    return out;
  }
}
