// CPU and memory for the charts. Usage is not a store change (nodes report it to the leader every 5 s,
// manager/api/remote.ts, and the leader keeps only the latest), so no event announces it: this is the
// dashboard's one periodic read, and it runs only while a browser has a chart open. One sampler per
// scope (a service, a node, or every task) is shared by all the browsers watching it and stops with the
// last of them. It reads GET /v1/tasks, whose answer carries each running task's last usage report.
import type { UsageSample } from '../../web/protocol.ts';

/** The agents' report period (worker/agent.ts usagePeriodMs): sampling faster only repeats numbers. */
export const USAGE_EVERY_MS = 5_000;

interface TaskWithUsage {
  id: string;
  usage?: { cpuPercent?: number; memoryBytes: number };
}

interface Sampler {
  listeners: Set<(s: UsageSample) => void>;
  timer: NodeJS.Timeout | null;
  last: UsageSample | null;
}

export class UsageFeed {
  private readonly samplers = new Map<string, Sampler>();

  constructor(
    private readonly get: <T>(path: string) => Promise<T>,
    private readonly everyMs = USAGE_EVERY_MS,
  ) {}

  /** `scope`: `service=<id>`, `node=<id>` or `all`. Returns the unsubscribe function. */
  subscribe(scope: string, fn: (s: UsageSample) => void): () => void {
    let s = this.samplers.get(scope);
    if (!s) {
      s = { listeners: new Set(), timer: null, last: null };
      this.samplers.set(scope, s);
      this.sample(scope, s);
    } else if (s.last) fn(s.last);
    s.listeners.add(fn);
    return () => {
      s.listeners.delete(fn);
      if (s.listeners.size === 0) {
        if (s.timer) clearTimeout(s.timer);
        this.samplers.delete(scope);
      }
    };
  }

  /** Scopes being sampled now. */
  get active(): number {
    return this.samplers.size;
  }

  stop(): void {
    for (const s of this.samplers.values()) if (s.timer) clearTimeout(s.timer);
    this.samplers.clear();
  }

  private sample(scope: string, s: Sampler): void {
    const path = scope === 'all' ? '/v1/tasks' : `/v1/tasks?${scope}`;
    this.get<TaskWithUsage[]>(path)
      .then((tasks) => {
        const out: UsageSample = { at: Date.now(), tasks: {} };
        for (const t of tasks) if (t.usage) out.tasks[t.id] = { cpuPercent: t.usage.cpuPercent ?? null, memoryBytes: t.usage.memoryBytes };
        s.last = out;
        for (const fn of s.listeners) fn(out);
      })
      .catch(() => {
        /* the next sample may work (a leader change); the chart shows a gap */
      })
      .finally(() => {
        if (this.samplers.get(scope) === s) s.timer = setTimeout(() => this.sample(scope, s), this.everyMs);
      });
  }
}
