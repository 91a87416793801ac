// Worker-side metrics: how long a container takes to start (engine executor) and how long programming
// the overlay network for a change takes (worker/network.ts). Both arrive as plain duration callbacks
// from the worker, which does not import prom-client.
import { Counter, Histogram, type Registry } from 'prom-client';
import { SLOW_BUCKETS } from './registry.ts';

export class WorkerMetrics {
  private readonly starts: Histogram<'outcome'>;
  private readonly netProgram: Histogram<'outcome'>;
  private readonly staleFlows: Counter;

  constructor(reg: Registry) {
    this.starts = new Histogram({
      name: 'shoal_engine_start_duration_seconds',
      help: 'Task start on this worker: prepare (rootfs, cgroup, network) to the process running.',
      labelNames: ['outcome'],
      buckets: SLOW_BUCKETS,
      registers: [reg],
    });
    this.netProgram = new Histogram({
      name: 'shoal_network_program_duration_seconds',
      help: 'Applying one network view to the kernel on this node (VXLAN, FDB/ARP, nftables).',
      labelNames: ['outcome'],
      buckets: SLOW_BUCKETS,
      registers: [reg],
    });
    this.staleFlows = new Counter({
      name: 'shoal_network_stale_connections_deleted_total',
      help: 'Connections to backends a load-balancing table dropped (unreplied ones; all once the task is gone), deleted so clients are balanced again (mesh, host ports, VIPs).',
      registers: [reg],
    });
  }

  staleConnectionsDeleted(n: number): void {
    this.staleFlows.inc(n);
  }

  engineStart(seconds: number, ok: boolean): void {
    this.starts.observe({ outcome: ok ? 'ok' : 'error' }, seconds);
  }

  networkProgram(seconds: number, ok: boolean): void {
    this.netProgram.observe({ outcome: ok ? 'ok' : 'error' }, seconds);
  }
}
