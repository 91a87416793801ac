// Fixtures for the event tests: store objects, and a replicated log in miniature — several Store
// replicas that apply the same entries (with a term the test sets), each with its own EventLog fed by a
// store watch, as manager/events/feed.ts does on a real manager.
import type { Draft, Network, Node, Secret, Service, Task } from '../../api/objects.ts';
import { Store, type WriteTx } from '../../manager/store/store.ts';
import { EventLog, type EventLogOptions } from '../../manager/events/log.ts';

export const T0 = Date.parse('2026-12-06T08:00:00.000Z');

export function clock(start = T0): () => Date {
  let t = start;
  return () => new Date((t += 1000));
}

export function service(id: string, name: string, replicas = 1, image = 'busybox:1.36'): Draft<Service> {
  return {
    id,
    kind: 'service',
    spec: {
      name,
      labels: { team: 'a' },
      mode: { replicated: { replicas } },
      task: { image, command: ['sleep', 'infinity'] },
      networks: [],
      endpoint: { ports: [] },
    },
    specVersion: 1,
    status: {},
  };
}

export function node(id: string, hostname: string, role: 'worker' | 'manager' = 'worker'): Draft<Node> {
  return {
    id,
    kind: 'node',
    spec: { labels: {}, availability: 'active', role },
    description: {
      hostname,
      platform: { os: 'linux', arch: 'x86_64' },
      resources: { nanoCpus: 4e9, memoryBytes: 8 * 2 ** 30 },
      engineVersion: '0.1.0',
      addr: '10.0.0.1',
    },
    status: { state: 'ready', message: '', addr: '10.0.0.1' },
  };
}

export function task(id: string, serviceId: string, name: string, slot: number): Draft<Task> {
  return {
    id,
    kind: 'task',
    serviceId,
    slot,
    spec: { image: 'busybox:1.36' },
    desiredState: 'running',
    status: { state: 'new', timestamp: new Date(T0).toISOString(), message: 'created' },
    serviceAnnotations: { name, labels: { team: 'a' } },
    networks: [],
  };
}

export function network(id: string, name: string): Draft<Network> {
  return {
    id,
    kind: 'network',
    spec: { name, driver: 'overlay', labels: {}, ipam: { configs: [] }, attachable: false, internal: false },
    status: {},
  };
}

export function secret(id: string, name: string): Draft<Secret> {
  return { id, kind: 'secret', spec: { name, labels: {}, data: { kid: 'k1', nonce: 'bm9uY2U=', ct: 'U0VDUkVUREFUQQ==' } }, status: {} };
}

export const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

/**
 * Replicas of one log. `update` runs a transaction on replica 0 (its clock stamps it), appends the entry
 * at the current term and applies it everywhere; every replica's EventLog is fed by its own watch.
 */
export class MiniCluster {
  readonly stores: Store[] = [];
  readonly logs: EventLog[] = [];
  readonly entries: { index: number; term: number; data: Uint8Array }[] = [];
  term = 1;
  /** Who led each term, as every replica's "Raft" saw it. */
  readonly leaders = new Map<number, string>();
  private readonly unwatch: (() => void)[] = [];

  constructor(replicas: number, opts: Partial<EventLogOptions> = {}) {
    for (let i = 0; i < replicas; i++) {
      const s: Store = new Store({
        now: clock(),
        propose: async (data) => {
          const e = { index: this.entries.length + 1, term: this.term, data };
          this.entries.push(e);
          let mine: unknown;
          for (const r of this.stores) {
            const res = r.apply(e);
            if (r === s) mine = res;
          }
          return mine;
        },
      });
      this.stores.push(s);
      const log = new EventLog({
        nodeName: (id) => (s.view((tx) => tx.get('node', id)) as Node | undefined)?.description.hostname,
        leaderOf: (t) => this.leaders.get(t),
        ...opts,
      });
      log.begin(s.index);
      this.logs.push(log);
      this.unwatch.push(s.watch({}, (ev) => void log.apply(ev)));
    }
  }

  async update(fn: (tx: WriteTx) => unknown): Promise<void> {
    await this.stores[0]!.update(fn);
    await tick();
  }

  close(): void {
    for (const u of this.unwatch) u();
  }
}
