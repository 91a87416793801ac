// The cluster the linearizability harness runs against: a real lab of three managers (ClusterLab, no
// workers: registers are services with no replicas), optionally running a deliberately broken Raft. The
// broken build is chosen with SHOAL_UNSAFE_RAFT in the daemons' environment; ClusterLab passes its own
// environment to the daemons it spawns, so the variable is set around each spawn (the spawn itself is
// synchronous) and every restart by the nemesis gets it too.
import { UNSAFE_RAFT_ENV } from '../../manager/raft/node.ts';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { httpsRaw, type ManagerTls } from '../../transport/https.ts';
import { ClusterLab } from '../../lab/cluster-lab.ts';
import { Lab, cleanupOnExit, type LabHost } from '../../lab/lab.ts';

export interface JepsenClusterOptions {
  name: string;
  /** e.g. 'localReads': the daemons run RaftCore with that UnsafeFlags variant. */
  unsafe?: string;
  electionMs?: number;
  log?: (line: string) => void;
}

export class JepsenCluster {
  readonly managers = ['h1', 'h2', 'h3'];

  private constructor(
    readonly lab: ClusterLab,
    private unsafe: string | null,
    private readonly unhook: () => void,
  ) {}

  static async up(o: JepsenClusterOptions): Promise<JepsenCluster> {
    const unhook = cleanupOnExit(o.name);
    const unsafe = o.unsafe ?? null;
    try {
      // A run killed before its teardown leaves the lab behind under the same name: sweep it first.
      await Lab.downByName(o.name, { force: true });
      const lab = await withEnv(unsafe, () =>
        ClusterLab.up({ name: o.name, managers: 3, workers: 0, ...(o.electionMs ? { electionMs: o.electionMs } : {}), ...(o.log ? { log: o.log } : {}) }),
      );
      return new JepsenCluster(lab, unsafe, unhook);
    } catch (e) {
      unhook();
      throw e;
    }
  }

  get tls(): ManagerTls {
    const a = this.lab.ctx.admin;
    return { ca: a.ca, key: a.key, cert: a.cert };
  }

  host(name: string): LabHost {
    return this.lab.host(name);
  }

  addr(name: string): string {
    return `${this.lab.host(name).ip}:2377`;
  }

  pid(name: string): number | null {
    return this.lab.daemons.get(name)?.pid ?? null;
  }

  /** nft drops, both ways, between `name` and every other manager (clients in the root namespace still reach it). */
  isolate(name: string): Promise<void> {
    const others = this.managers.filter((m) => m !== name).map((m) => this.host(m));
    return this.lab.lab.partition([this.host(name)], others);
  }

  /** Lifts every partition. */
  heal(): Promise<void> {
    return this.lab.lab.heal();
  }

  /** Sends a signal to a manager's daemon (SIGKILL forgets it: startDaemon brings it back). */
  signal(name: string, sig: 'SIGKILL' | 'SIGSTOP' | 'SIGCONT'): void {
    const pid = this.pid(name);
    if (pid === null) return;
    if (sig === 'SIGKILL') this.lab.killDaemon(name, sig);
    else this.host(name).kill(pid, sig);
  }

  /** (Re)starts a manager's daemon with this cluster's build (safe or broken). */
  startDaemon(name: string): Promise<void> {
    return withEnv(this.unsafe, () => this.lab.startDaemon(name));
  }

  /** The broken-build variant the daemons run, or null for the real build. */
  get build(): string | null {
    return this.unsafe;
  }

  /**
   * Restarts every manager at once (kill -9, then start) on another build: `unsafe` names the broken
   * variant, null the real one. The cluster keeps its state; it comes back from the managers' disks.
   */
  async switchBuild(unsafe: string | null, timeoutMs = 30_000): Promise<void> {
    this.unsafe = unsafe;
    for (const m of this.managers) this.signal(m, 'SIGKILL');
    await Promise.all(this.managers.map((m) => this.startDaemon(m)));
    await this.waitHealthy(timeoutMs);
  }

  /** Whether a manager's daemon log says it runs the broken build (RaftNode logs it loudly at start). */
  logsUnsafe(name: string): boolean {
    try {
      return /UNSAFE RAFT/.test(readFileSync(join(this.host(name).dir, 'daemon.log'), 'utf8'));
    } catch {
      return false;
    }
  }

  /** Waits until every manager answers, one leads, and it reaches all of them (the state between runs). */
  async waitHealthy(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const infos = await Promise.all(
        this.managers.map(async (m) => {
          try {
            const r = await httpsRaw(this.addr(m), 'GET', '/v1/info', undefined, this.tls, 1000);
            return JSON.parse(r.text) as { role?: string; reachable?: { reachable: number; total: number } };
          } catch {
            return null;
          }
        }),
      );
      const leaders = infos.filter((i) => i?.role === 'leader');
      if (infos.every((i) => i !== null) && leaders.length === 1 && leaders[0]!.reachable?.reachable === this.managers.length) return;
      if (Date.now() > deadline) throw new Error(`lab ${this.lab.lab.name}: managers not all back with one leader within ${timeoutMs} ms`);
      await sleep(100);
    }
  }

  async down(): Promise<void> {
    try {
      await this.lab.down();
    } finally {
      this.unhook();
    }
  }
}

/** Runs `fn` with SHOAL_UNSAFE_RAFT set to `unsafe` (or unset), restoring the caller's value afterwards. */
async function withEnv<T>(unsafe: string | null, fn: () => Promise<T>): Promise<T> {
  const saved = process.env[UNSAFE_RAFT_ENV];
  if (unsafe === null) delete process.env[UNSAFE_RAFT_ENV];
  else process.env[UNSAFE_RAFT_ENV] = unsafe;
  try {
    return await fn();
  } finally {
    if (saved === undefined) delete process.env[UNSAFE_RAFT_ENV];
    else process.env[UNSAFE_RAFT_ENV] = saved;
  }
}
