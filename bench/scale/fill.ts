// A converged cluster of the bench's size written into a store, for the in-process figures of bench:scale.
import type { Store } from '../../manager/store/store.ts';
import { newTask } from '../../manager/orchestrator/types.ts';
import { validateServiceSpec } from '../../manager/service/spec.ts';
import { DEFAULT_LIMITS } from '../../api/objects.ts';
import { testCluster } from '../../test/helpers/cluster.ts';

/**
 * Writes `nodes` ready nodes and a service's `tasks` running tasks into `store` (through Raft when the
 * store proposes), in the transactions the dispatcher and orchestrator would use; with `reports`, each task
 * is then written once more, as its node's status report does. Calls `mark` between the phases.
 */
export async function fillStore(store: Store, nodes: number, tasks: number, reports: boolean, mark: () => void = () => {}): Promise<void> {
  const nodeIds: string[] = [];
  for (let i = 0; i < nodes; i += 1000) {
    await store.update((tx) => {
      for (let j = i; j < Math.min(nodes, i + 1000); j++) {
        const id = `node${j.toString(36).padStart(20, '0')}`;
        nodeIds.push(id);
        tx.create({
          id,
          kind: 'node',
          spec: { labels: {}, availability: 'active', role: 'worker' },
          description: {
            hostname: `f1n${j}`,
            platform: { os: 'linux', arch: 'x64' },
            resources: { nanoCpus: 2e9, memoryBytes: 24 * 2 ** 30 },
            engineVersion: 'shoal-0.1.0',
            addr: '10.213.1.15',
          },
          status: { state: 'ready', message: '', addr: '10.213.1.15', lastHeartbeat: new Date().toISOString() },
        } as never);
      }
    });
  }
  mark();
  const spec = validateServiceSpec(
    { name: 'big', mode: { replicated: { replicas: tasks } }, task: { image: 'busybox:latest' } },
    { ...DEFAULT_LIMITS, maxReplicas: Math.max(tasks, DEFAULT_LIMITS.maxReplicas) },
  );
  const service = { id: 'svc0000000000000000000000', kind: 'service', specVersion: 1, spec, status: {} } as never;
  await store.update((tx) => {
    tx.create(testCluster() as never);
    tx.create(service);
  });
  let n = 0;
  const ctx = { now: Date.now(), newId: () => `task${(n++).toString(36).padStart(21, '0')}`, nodes: new Map(), taskHistoryLimit: 5 } as never;
  const chunk = 500;
  const ids: string[] = [];
  for (let i = 0; i < tasks; i += chunk) {
    await store.update((tx) => {
      for (let j = i; j < Math.min(tasks, i + chunk); j++) {
        const t = newTask(service, ctx, { slot: j + 1, desiredState: 'running' });
        ids.push(t.id);
        tx.create({
          ...t,
          nodeId: nodeIds[j % nodeIds.length]!,
          status: { state: 'running', timestamp: new Date().toISOString(), message: 'started' },
        } as never);
      }
    });
  }
  if (!reports) return;
  for (let i = 0; i < tasks; i += chunk) {
    await store.update((tx) => {
      for (let j = i; j < Math.min(tasks, i + chunk); j++) {
        const t = tx.get('task', ids[j]!) as { status: object } | undefined;
        if (t)
          tx.update({
            ...t,
            status: { state: 'running', timestamp: new Date().toISOString(), message: 'started', containerStatus: { pid: 1000 + j } },
          } as never);
      }
    });
  }
}
