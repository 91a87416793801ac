// The control API's objects as the page sees them (web/protocol.ts): pure functions, no I/O. Only the
// fields a view shows are copied, so neither a task's environment nor a node's certificate reaches the
// browser, and a snapshot of 10,000 tasks stays a few megabytes.
import type { Node, Service, Task } from '../../api/objects.ts';
import type { DashNode, DashService, DashTask } from '../../web/protocol.ts';

/** A node as GET /v1/nodes answers it (the manager status is the live Raft view). */
export type NodeJson = Omit<Node, 'managerStatus'> & { managerStatus?: { leader: boolean; voter: boolean; reachability: string; addr: string } | null };
/** A service as GET /v1/services answers it. */
export type ServiceJson = Service & { replicas?: { running: number; desired: number | null } };

/** `busybox:latest@sha256:…` → `busybox:latest` (the digest pins it; people read the name). */
export function imageName(ref: string): string {
  const at = ref.indexOf('@');
  return at < 0 ? ref : ref.slice(0, at);
}

export function dashNode(n: NodeJson): DashNode {
  const m = n.managerStatus ?? null;
  return {
    id: n.id,
    hostname: n.description?.hostname ?? n.id.slice(0, 12),
    role: n.spec.role,
    availability: n.spec.availability,
    state: n.status?.state ?? 'unknown',
    message: n.status?.message ?? '',
    addr: n.status?.addr || n.description?.addr || '',
    labels: { ...(n.spec.labels ?? {}) },
    nanoCpus: n.description?.resources?.nanoCpus ?? 0,
    memoryBytes: n.description?.resources?.memoryBytes ?? 0,
    manager: m ? { leader: m.leader, voter: m.voter, reachability: m.reachability, addr: m.addr } : null,
  };
}

function modeOf(s: Service): { mode: string; desired: number | null } {
  const m = s.spec.mode;
  if ('replicated' in m) return { mode: 'replicated', desired: m.replicated.replicas };
  if ('replicatedJob' in m) return { mode: 'replicated-job', desired: m.replicatedJob.totalCompletions };
  if ('global' in m) return { mode: 'global', desired: null };
  return { mode: 'global-job', desired: null };
}

/** `running` comes from the tasks the dashboard holds (countRunning), so it moves with task events. */
export function dashService(s: ServiceJson, running: number): DashService {
  const { mode, desired } = modeOf(s);
  const ports = s.status?.endpoint?.ports ?? s.spec.endpoint?.ports ?? [];
  const u = s.updateStatus;
  return {
    id: s.id,
    name: s.spec.name,
    image: imageName(s.spec.task.image),
    mode,
    desired,
    running,
    ports: ports.map((p) => ({
      protocol: p.protocol,
      targetPort: p.targetPort,
      ...(p.publishedPort !== undefined ? { publishedPort: p.publishedPort } : {}),
      publishMode: p.publishMode,
    })),
    update: u
      ? { state: u.state, message: u.message, ...(u.startedAt ? { startedAt: u.startedAt } : {}), ...(u.completedAt ? { completedAt: u.completedAt } : {}) }
      : null,
    hasPrevious: s.previousSpec !== undefined,
    version: s.version,
    specVersion: s.specVersion,
    updatedAt: s.updatedAt,
    createdAt: s.createdAt,
    labels: { ...(s.spec.labels ?? {}) },
  };
}

export function dashTask(t: Task): DashTask {
  return {
    id: t.id,
    serviceId: t.serviceId,
    serviceName: t.serviceAnnotations?.name ?? '',
    slot: t.slot ?? null,
    nodeId: t.nodeId ?? null,
    state: t.status.state,
    desiredState: t.desiredState,
    message: t.status.message ?? '',
    err: t.status.err ?? null,
    timestamp: t.status.timestamp,
    image: imageName(t.spec?.image ?? ''),
    specVersion: t.specVersion ?? null,
  };
}

/** Tasks of a service that run and should: the "running" of `service ls`'s REPLICAS column. */
export function countRunning(tasks: Iterable<DashTask>, serviceId: string): number {
  let n = 0;
  for (const t of tasks) if (t.serviceId === serviceId && t.state === 'running' && t.desiredState === 'running') n++;
  return n;
}

/** Shallow-enough equality for the slim views (they are small JSON values). */
export function same(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}
