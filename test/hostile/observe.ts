// What the hostile run watches from the honest side while the attack runs: a writer whose every
// acknowledged write must survive, a latency probe of the control API, who leads at which term, and
// the leader's resident memory. Each is a small loop with stop(); the run reads their records after.
import { readFileSync } from 'node:fs';
import { httpsJson } from '../../transport/https.ts';

/** The admin credentials of the lab's context. */
export interface AdminTls {
  ca: string;
  key: string;
  cert: string;
}

/** A control-API call with leader redirects and failover (ClusterLab.control). */
export type ControlCall = (method: string, path: string, body?: unknown) => Promise<any>;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Label keys the writer owns: the generator never names a key with a dot and this prefix. */
export const WRITER_KEY_PREFIX = 'ackw.';
const WRITER_KEYS = 8;

/**
 * Commits node label updates one after another (key `ackw.<seq mod 8>` = seq) through the control API
 * with failover, and records, per key, the highest sequence number the API acknowledged. Afterwards each
 * key must hold at least that number: an acknowledged write was not lost.
 */
export class Writer {
  readonly acked = new Map<string, number>();
  attempted = 0;
  ackedCount = 0;
  failed = 0;
  readonly errors = new Map<string, number>();
  private stopped = false;
  private done: Promise<void> | null = null;

  constructor(
    private readonly control: ControlCall,
    private readonly nodeId: string,
    private readonly everyMs = 50,
  ) {}

  start(): void {
    this.done = (async () => {
      while (!this.stopped) {
        const seq = ++this.attempted;
        const key = `${WRITER_KEY_PREFIX}${seq % WRITER_KEYS}`;
        try {
          await this.control('POST', `/v1/nodes/${this.nodeId}/update`, { labelAdd: { [key]: String(seq) } });
          this.acked.set(key, Math.max(this.acked.get(key) ?? 0, seq));
          this.ackedCount++;
        } catch (e) {
          this.failed++;
          const why = (e as Error).message.slice(0, 80);
          this.errors.set(why, (this.errors.get(why) ?? 0) + 1);
        }
        await sleep(this.everyMs);
      }
    })();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.done;
  }

  /** Acknowledged writes whose value is missing or older in `labels` (descriptions of each loss). */
  lost(labels: Record<string, string>): string[] {
    const out: string[] = [];
    for (const [key, seq] of this.acked) {
      const have = Number(labels[key]);
      if (!Number.isInteger(have) || have < seq || have > this.attempted) out.push(`${key}: acknowledged ${seq}, found ${JSON.stringify(labels[key])}`);
    }
    return out;
  }
}

export interface Sample {
  at: number;
  ms: number;
  ok: boolean;
}

/** Times a linearizable read (GET /v1/nodes/<id>) on one manager every `everyMs`. */
export class LatencyProbe {
  readonly samples: Sample[] = [];
  private stopped = false;
  private done: Promise<void> | null = null;

  constructor(
    private readonly tls: AdminTls,
    private readonly addr: () => string,
    private readonly path: string,
    private readonly everyMs = 100,
  ) {}

  start(): void {
    this.done = (async () => {
      while (!this.stopped) {
        const t = performance.now();
        let ok = false;
        try {
          const r = await httpsJson(this.addr(), 'GET', this.path, undefined, this.tls);
          ok = r.status === 200;
        } catch {
          ok = false;
        }
        this.samples.push({ at: Date.now(), ms: performance.now() - t, ok });
        await sleep(this.everyMs);
      }
    })();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.done;
  }
}

/** p-th percentile (0..100) of latencies, failed requests counted as `failMs`. */
export function percentile(samples: readonly Sample[], p: number, failMs = 10_000): number {
  const xs = samples.map((s) => (s.ok ? s.ms : Math.max(s.ms, failMs))).sort((a, b) => a - b);
  if (xs.length === 0) return NaN;
  return xs[Math.min(xs.length - 1, Math.ceil((p / 100) * xs.length) - 1)]!;
}

export interface LeaderObservation {
  at: number;
  manager: string;
  leader: string | null;
  term: number;
}

/** Asks every manager who leads and at which term (GET /v1/info needs no quorum) every `everyMs`. */
export class LeaderWatch {
  readonly seen: LeaderObservation[] = [];
  private stopped = false;
  private done: Promise<void> | null = null;

  constructor(
    private readonly tls: AdminTls,
    private readonly managers: string[],
    private readonly everyMs = 500,
  ) {}

  start(): void {
    this.done = (async () => {
      while (!this.stopped) {
        await Promise.all(
          this.managers.map(async (m) => {
            try {
              const r = await httpsJson(m, 'GET', '/v1/info', undefined, this.tls);
              if (r.status === 200) this.seen.push({ at: Date.now(), manager: m, leader: r.body.leader ?? null, term: Number(r.body.term) });
            } catch {
              /* a busy or dead manager shows as a gap */
            }
          }),
        );
        await sleep(this.everyMs);
      }
    })();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.done;
  }

  /** Distinct (leader, term) pairs any manager reported with a leader, in order of first sight. */
  epochs(): { leader: string; term: number }[] {
    const out: { leader: string; term: number }[] = [];
    for (const o of this.seen) {
      if (o.leader === null) continue;
      if (!out.some((e) => e.leader === o.leader && e.term === o.term)) out.push({ leader: o.leader, term: o.term });
    }
    return out;
  }

  maxTerm(): number {
    return this.seen.reduce((a, o) => Math.max(a, o.term), 0);
  }
}

/** VmRSS of a process in KiB, or null if it is gone. */
export function rssKiB(pid: number): number | null {
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

/** Samples a process's RSS every `everyMs`, keeping the peak. */
export class RssSampler {
  peakKiB = 0;
  lastKiB: number | null = null;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly pid: number,
    private readonly everyMs = 250,
  ) {}

  start(): void {
    const sample = () => {
      this.lastKiB = rssKiB(this.pid);
      if (this.lastKiB !== null) this.peakKiB = Math.max(this.peakKiB, this.lastKiB);
    };
    sample();
    this.timer = setInterval(sample, this.everyMs);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }
}

/** Reads the writer's node's labels (through failover). */
export async function nodeLabels(control: ControlCall, nodeId: string): Promise<Record<string, string>> {
  const n = (await control('GET', `/v1/nodes/${nodeId}`)) as { spec?: { labels?: Record<string, string> } };
  return (n.spec?.labels ?? {}) as Record<string, string>;
}
