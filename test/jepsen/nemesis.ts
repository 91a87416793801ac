// The nemesis of the real-cluster linearizability harness: it injects one planned fault at a time into a
// lab of managers and heals it — nft drops between a manager and the others, kill -9 and restart,
// SIGSTOP/SIGCONT, and both of the latter at once (see FaultKind). It only touches processes and namespaces
// of its own lab.
import { setTimeout as sleep } from 'node:timers/promises';
import { Rng } from '../../sim/rng.ts';
import { httpsRaw } from '../../transport/https.ts';
import type { JepsenCluster } from './cluster.ts';
import { FAULT_KINDS, type Fault, type FaultKind } from './schedule.ts';

/**
 * How long a `pause-partition` target stays cut off after SIGCONT: check-quorum deposes a leader one to two
 * election timeouts (1 s each by default) after it last heard from a majority, so a resumed leader spends
 * most of this believing it still leads.
 */
const RESUMED_ISOLATED_MS = 2000;

export interface ActiveFault {
  fault: Fault;
  /** The manager it hit (a lab host name). */
  target: string;
}

export class Nemesis {
  readonly injected: Record<FaultKind, number> = Object.fromEntries(FAULT_KINDS.map((k) => [k, 0])) as Record<FaultKind, number>;
  private active: ActiveFault | null = null;
  private readonly rng: Rng;

  constructor(
    private readonly c: JepsenCluster,
    seed: number,
    private readonly log: (line: string) => void = () => {},
  ) {
    this.rng = new Rng(seed ^ 0x1e5e);
  }

  /** The manager that claims leadership at the highest term, or null if none answers as leader. */
  async leader(): Promise<string | null> {
    const infos = await Promise.all(
      this.c.managers.map(async (m) => {
        try {
          const r = await httpsRaw(this.c.addr(m), 'GET', '/v1/info', undefined, this.c.tls, 500);
          const i = JSON.parse(r.text) as { role?: string; term?: number };
          return { m, role: i.role, term: i.term ?? 0 };
        } catch {
          return { m, role: undefined, term: -1 };
        }
      }),
    );
    const leaders = infos.filter((i) => i.role === 'leader').sort((a, b) => b.term - a.term);
    return leaders[0]?.m ?? null;
  }

  async inject(fault: Fault): Promise<ActiveFault> {
    if (this.active) throw new Error(`nemesis: ${this.active.fault.kind} of ${this.active.target} is still active`);
    const leader = await this.leader();
    const followers = this.c.managers.filter((m) => m !== leader);
    const target = fault.target === 'leader' && leader !== null ? leader : this.rng.pick(followers);
    if (fault.kind === 'partition') await this.c.isolate(target);
    else if (fault.kind === 'kill') this.c.signal(target, 'SIGKILL');
    else {
      this.c.signal(target, 'SIGSTOP');
      if (fault.kind === 'pause-partition') await this.c.isolate(target);
    }
    this.active = { fault, target };
    this.injected[fault.kind]++;
    this.log(`nemesis: ${fault.kind} ${target}${target === leader ? ' (leader)' : ''} for ${fault.holdMs} ms`);
    return this.active;
  }

  /** Undoes the active fault, if any: lifts the partition, sends SIGCONT, or restarts the killed daemon. */
  async heal(): Promise<void> {
    const a = this.active;
    if (!a) return;
    this.active = null;
    if (a.fault.kind === 'partition') await this.c.heal();
    else if (a.fault.kind === 'pause') this.c.signal(a.target, 'SIGCONT');
    else if (a.fault.kind === 'kill') await this.c.startDaemon(a.target);
    else {
      this.c.signal(a.target, 'SIGCONT');
      await sleep(RESUMED_ISOLATED_MS);
      await this.c.heal();
    }
    this.log(`nemesis: healed ${a.fault.kind} of ${a.target}`);
  }
}
