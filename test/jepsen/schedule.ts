// What the real-cluster linearizability harness will do, decided up front from a seed: the nemesis's fault
// schedule and each client's operation choices. Pure (no clock, no sockets, no Math.random), so a run's
// plan is printed and replayed from its seed; only the timing of the real cluster differs between replays.
import { Rng } from '../../sim/rng.ts';

/**
 * - `partition`: nft drops between the target and the other managers (both ways), then heal.
 * - `kill`: kill -9 of the target's daemon, then restart it.
 * - `pause`: SIGSTOP of the target's daemon, then SIGCONT.
 * - `pause-partition`: SIGSTOP, then cut it off; SIGCONT while still cut off, heal a little later. A
 *   paused leader wakes up believing it still leads while the others have elected a new leader and moved
 *   on: the classic stale-leader window, where only a real ReadIndex keeps its reads from going stale.
 */
export type FaultKind = 'partition' | 'kill' | 'pause' | 'pause-partition';
export const FAULT_KINDS: readonly FaultKind[] = ['partition', 'kill', 'pause', 'pause-partition'];

/** Which manager a fault hits: the one that leads when the fault starts, or one that follows. */
export type FaultTarget = 'leader' | 'follower';

export interface Fault {
  kind: FaultKind;
  target: FaultTarget;
  /** Offset from the start of the run. */
  startMs: number;
  /** How long the fault lasts before it is healed (restart, SIGCONT, partition lifted). */
  holdMs: number;
}

export interface ScheduleOptions {
  seed: number;
  /** Faults start no later than durationMs - holdMs - tailMs: the run ends with a healthy cluster. */
  durationMs: number;
  kinds: readonly FaultKind[];
  /** Probability that a fault targets the leader (stale-leader windows are where reads go wrong). */
  leaderBias: number;
  holdMs: readonly [number, number];
  /** Quiet time between one fault's healing and the next fault. */
  gapMs: readonly [number, number];
  /** Quiet time at the start (clients warm up) and at the end (the cluster recovers under load). */
  leadInMs: number;
  tailMs: number;
}

/** The faults of one run, back to back (never two at once), in start order. */
export function nemesisSchedule(o: ScheduleOptions): Fault[] {
  if (o.kinds.length === 0) return [];
  const rng = new Rng(o.seed ^ 0x6e656d);
  const out: Fault[] = [];
  let t = o.leadInMs;
  for (;;) {
    const holdMs = rng.int(o.holdMs[0], o.holdMs[1]);
    if (t + holdMs + o.tailMs > o.durationMs) break;
    out.push({ kind: rng.pick(o.kinds), target: rng.chance(o.leaderBias) ? 'leader' : 'follower', startMs: t, holdMs });
    t += holdMs + rng.int(o.gapMs[0], o.gapMs[1]);
  }
  return out;
}

/** What a client does next. `cas` needs a version the client has read for the key; else it reads. */
export type OpChoice = { kind: 'read' | 'write' | 'cas'; key: string; thinkMs: number };

export interface OpMix {
  read: number;
  write: number;
  cas: number;
}

/** One client's stream of operation choices (a seeded generator, one per client). */
export class OpChooser {
  private readonly rng: Rng;
  private readonly total: number;

  constructor(
    seed: number,
    client: number,
    private readonly keys: readonly string[],
    private readonly mix: OpMix,
    private readonly thinkMs: readonly [number, number],
  ) {
    if (keys.length === 0) throw new RangeError('OpChooser: at least one key');
    this.total = mix.read + mix.write + mix.cas;
    if (!(this.total > 0)) throw new RangeError('OpChooser: the op mix must have a positive weight');
    this.rng = new Rng((seed * 7919 + client * 104729) >>> 0);
  }

  next(): OpChoice {
    const x = this.rng.float() * this.total;
    const kind = x < this.mix.read ? 'read' : x < this.mix.read + this.mix.write ? 'write' : 'cas';
    return { kind, key: this.rng.pick(this.keys), thinkMs: this.rng.int(this.thinkMs[0], this.thinkMs[1]) };
  }

  /** Which manager (index) to send the next request to. */
  manager(n: number): number {
    return this.rng.int(0, n - 1);
  }
}
