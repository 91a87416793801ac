// One Prometheus registry per daemon. prom-client keeps a process-wide default registry; Shoal never
// uses it, so two daemons in one process (tests, labs run in-process) each expose only their own
// metrics and nothing registers itself as a side effect of an import.
import { Registry, collectDefaultMetrics } from 'prom-client';

export interface RegistryOptions {
  /** Also export the Node.js process metrics (CPU, RSS, event-loop lag, GC). Default true. */
  processMetrics?: boolean;
}

export function createRegistry(opts: RegistryOptions = {}): Registry {
  const reg = new Registry();
  if (opts.processMetrics !== false) collectDefaultMetrics({ register: reg, prefix: 'shoal_' });
  return reg;
}

/** Latency buckets (seconds) for things that take 100 µs .. 10 s: fsyncs, proposals, API calls. */
export const FAST_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** Latency buckets (seconds) for container starts and network programming: 1 ms .. 60 s. */
export const SLOW_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
