// All of one daemon's metrics: a private registry and the metric groups, each fed by plain callbacks
// (hooks) that the daemon hands to its manager, Raft node, storage, API router and worker. A daemon
// started without --metrics-addr creates none of this, and the hooks are absent (no cost).
import type { Registry } from 'prom-client';
import { ApiMetrics } from './api.ts';
import { ClusterMetrics } from './cluster.ts';
import { RaftMetrics } from './raft.ts';
import { createRegistry, type RegistryOptions } from './registry.ts';
import { WorkerMetrics } from './worker.ts';

export class DaemonMetrics {
  readonly registry: Registry;
  readonly raft: RaftMetrics;
  readonly cluster: ClusterMetrics;
  readonly api: ApiMetrics;
  readonly worker: WorkerMetrics;

  constructor(opts: RegistryOptions = {}) {
    this.registry = createRegistry(opts);
    this.raft = new RaftMetrics(this.registry);
    this.cluster = new ClusterMetrics(this.registry);
    this.api = new ApiMetrics(this.registry);
    this.worker = new WorkerMetrics(this.registry);
  }

  /** The Prometheus text exposition of everything, as a scrape would get it. */
  text(): Promise<string> {
    return this.registry.metrics();
  }
}
