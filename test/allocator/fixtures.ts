// Plain-data fixtures for the allocator's pure tests, and a tiny in-memory "store" that applies an
// AllocationPlan the way the runner writes it (so tests can run many passes without a Store).
import { deepFreeze } from '../../api/objects.ts';
import type { Frozen, Network, Node, PortConfig, Service, Task, TaskState } from '../../api/objects.ts';
import { planAllocation } from '../../manager/allocator/allocator.ts';
import type { AllocationInput, AllocationPlan } from '../../manager/allocator/allocator.ts';

export const T0 = Date.parse('2025-01-01T00:00:00.000Z');
let clock = 0;
/** Strictly increasing creation times, so creation order is the order fixtures are made in. */
export function nextTime(): string {
  return new Date(T0 + ++clock * 1000).toISOString();
}

export function net(
  id: string,
  o: { name?: string; subnet?: string; gateway?: string; ingress?: boolean; driver?: string; allocation?: Network['allocation'] } = {},
): Frozen<Network> {
  const n: Network = {
    id,
    kind: 'network',
    version: 1,
    createdAt: nextTime(),
    updatedAt: nextTime(),
    spec: {
      name: o.name ?? id,
      driver: o.driver ?? 'overlay',
      labels: {},
      ipam: { configs: o.subnet ? [{ subnet: o.subnet, ...(o.gateway ? { gateway: o.gateway } : {}) }] : [] },
      attachable: false,
      internal: false,
      ...(o.ingress ? { ingress: true } : {}),
    },
    status: {},
  };
  if (o.allocation) n.allocation = o.allocation;
  return deepFreeze(n);
}

export function ingressNet(id = 'ing'): Frozen<Network> {
  return net(id, { name: 'ingress', subnet: '10.255.0.0/16', gateway: '10.255.0.1', ingress: true });
}

export function svc(
  id: string,
  o: { name?: string; networks?: (string | { target: string; aliases?: string[] })[]; ports?: Partial<PortConfig>[]; dnsrr?: boolean; job?: boolean } = {},
): Frozen<Service> {
  const s: Service = {
    id,
    kind: 'service',
    version: 1,
    createdAt: nextTime(),
    updatedAt: nextTime(),
    spec: {
      name: o.name ?? id,
      labels: {},
      mode: o.job ? { replicatedJob: { maxConcurrent: 1, totalCompletions: 1 } } : { replicated: { replicas: 1 } },
      task: { image: 'app:1' },
      networks: (o.networks ?? []).map((n) => (typeof n === 'string' ? { target: n } : n)),
      endpoint: {
        mode: o.dnsrr ? 'dnsrr' : 'vip',
        ports: (o.ports ?? []).map((p) => ({ protocol: 'tcp', targetPort: 80, publishMode: 'ingress', ...p }) as PortConfig),
      },
    },
    specVersion: 1,
    status: {},
  };
  return deepFreeze(s);
}

export function task(
  id: string,
  serviceId: string,
  o: { state?: TaskState; desired?: TaskState; nodeId?: string; slot?: number; networks?: Task['networks']; message?: string } = {},
): Frozen<Task> {
  const t: Task = {
    id,
    kind: 'task',
    version: 1,
    createdAt: nextTime(),
    updatedAt: nextTime(),
    serviceId,
    spec: { image: 'app:1' },
    specVersion: 1,
    desiredState: o.desired ?? 'running',
    status: { state: o.state ?? 'new', timestamp: new Date(T0).toISOString(), message: o.message ?? 'created' },
    serviceAnnotations: { name: serviceId, labels: {} },
    networks: o.networks ?? [],
  };
  if (o.nodeId !== undefined) t.nodeId = o.nodeId;
  if (o.slot !== undefined) t.slot = o.slot;
  return deepFreeze(t);
}

export function node(id: string, o: { state?: Node['status']['state']; addr?: string; attachments?: Node['attachments'] } = {}): Frozen<Node> {
  const n: Node = {
    id,
    kind: 'node',
    version: 1,
    createdAt: nextTime(),
    updatedAt: nextTime(),
    spec: { labels: {}, availability: 'active', role: 'worker' },
    description: {
      hostname: `host-${id}`,
      platform: { os: 'linux', arch: 'x64' },
      resources: { nanoCpus: 4e9, memoryBytes: 8 * 2 ** 30 },
      engineVersion: '',
      addr: o.addr ?? '192.0.2.10',
    },
    status: { state: o.state ?? 'ready', message: '', addr: o.addr ?? '192.0.2.10' },
  };
  if (o.attachments) n.attachments = o.attachments;
  return deepFreeze(n);
}

/** A mutable world the tests edit and plan over; `apply` writes a plan like the runner does. */
export class World {
  networks = new Map<string, Frozen<Network>>();
  services = new Map<string, Frozen<Service>>();
  tasks = new Map<string, Frozen<Task>>();
  nodes = new Map<string, Frozen<Node>>();
  clusterSpec: AllocationInput['clusterSpec'];
  hostRoutes: string[] = [];

  add(...objs: Frozen<Network | Service | Task | Node>[]): this {
    for (const o of objs) {
      if (o.kind === 'network') this.networks.set(o.id, o);
      else if (o.kind === 'service') this.services.set(o.id, o);
      else if (o.kind === 'task') this.tasks.set(o.id, o);
      else this.nodes.set(o.id, o);
    }
    return this;
  }

  input(): AllocationInput {
    return {
      networks: [...this.networks.values()],
      services: [...this.services.values()],
      tasks: [...this.tasks.values()],
      nodes: [...this.nodes.values()],
      ...(this.clusterSpec ? { clusterSpec: this.clusterSpec } : {}),
      hostRoutes: this.hostRoutes,
    };
  }

  plan(): AllocationPlan {
    return planAllocation(this.input());
  }

  /** Plans and writes the plan; returns it. */
  step(): AllocationPlan {
    const plan = this.plan();
    this.apply(plan);
    return plan;
  }

  apply(plan: AllocationPlan): void {
    const bump = <T extends { version: number }>(o: T): T => ({ ...o, version: o.version + 1 });
    for (const u of plan.networks)
      this.networks.set(u.id, deepFreeze(bump({ ...(structuredClone(this.networks.get(u.id)!) as Network), allocation: u.allocation })));
    for (const u of plan.services) {
      const s = structuredClone(this.services.get(u.id)!) as Service;
      s.status.endpoint = u.endpoint;
      this.services.set(u.id, deepFreeze(bump(s)));
    }
    for (const u of plan.nodes) this.nodes.set(u.id, deepFreeze(bump({ ...(structuredClone(this.nodes.get(u.id)!) as Node), attachments: u.attachments })));
    for (const u of plan.tasks) {
      const t = structuredClone(this.tasks.get(u.id)!) as Task;
      if (u.version !== t.version) throw new Error(`stale plan for task ${u.id}`);
      t.status.message = u.message;
      if (u.state === 'pending') {
        t.status.state = 'pending';
        t.networks = u.networks;
      }
      this.tasks.set(u.id, deepFreeze(bump(t)));
    }
  }

  editTask(id: string, edit: (t: Task) => void): void {
    const t = structuredClone(this.tasks.get(id)!) as Task;
    edit(t);
    this.tasks.set(id, deepFreeze({ ...t, version: t.version + 1 }));
  }

  editService(id: string, edit: (s: Service) => void): void {
    const s = structuredClone(this.services.get(id)!) as Service;
    edit(s);
    this.services.set(id, deepFreeze({ ...s, version: s.version + 1 }));
  }

  editNode(id: string, edit: (n: Node) => void): void {
    const n = structuredClone(this.nodes.get(id)!) as Node;
    edit(n);
    this.nodes.set(id, deepFreeze({ ...n, version: n.version + 1 }));
  }

  task(id: string): Frozen<Task> {
    return this.tasks.get(id)!;
  }

  service(id: string): Frozen<Service> {
    return this.services.get(id)!;
  }

  network(id: string): Frozen<Network> {
    return this.networks.get(id)!;
  }
}
