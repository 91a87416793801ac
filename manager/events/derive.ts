// Cluster events (api/events.ts) derived from the store's changes: a pure function of one applied
// change (StoreEvent: the object before and after, the entry's index, term and time) to zero or more
// ClusterEvents. Every manager applies the same entries in the same order, so every manager derives the
// same events with the same `seq` and `time` — nothing here reads a clock or this manager's state.
//
// What becomes an event (and what does not):
//   service  create · remove · update when the spec changes (image, replicas, mode as old/new pairs, the
//            other changed spec fields named in `changed`) or the rolling update's state moves
//            (`updatestate.old/new`, as Docker reports it) · autoscale when the autoscaler's recorded
//            decision changes (replicas.old/new, reason). Allocator and orchestrator bookkeeping (VIPs,
//            job iterations, `blocked` reasons) is not.
//   task     create (state.new) · state when status.state moves (state.old/new, with the service, slot,
//            node and the status message) · remove. Other task writes (network attachments, desired state
//            alone) are not events: the state change they lead to is.
//   node     create · remove · down / up when status.state turns down / back to ready · update for
//            other state moves and for availability, role and label changes. Heartbeat and address writes
//            are not events.
//   network, secret, config   create · update (spec changes only: labels) · remove. A secret's data
//            never appears, sealed or not.
//   cluster  create · update naming the changed parts (`changed=spec.raft,joinTokens`), never values:
//            tokens and keys are secrets.
// Leader changes are marked by the log itself (leaderEvent below): the first entry of a new term.
import type { ClusterEvent, EventType } from '../../api/events.ts';
import type { AutoscaleStatus, Cluster, Frozen, Network, Node, Service, ServiceMode, Task } from '../../api/objects.ts';
import type { StoreEvent } from '../store/store.ts';

/** A derived event before it has its place in the log. */
export type EventBody = Omit<ClusterEvent, 'seq' | 'time'>;

/** What the deriver may look up about other objects (names for ids). Must read replicated state only. */
export interface DeriveLookup {
  /** A node's hostname, or undefined. */
  nodeName(id: string): string | undefined;
}

const NO_LOOKUP: DeriveLookup = { nodeName: () => undefined };

/** The `seq` of the event at `position` among those derived from the entry at `index`. */
export function seqOf(index: number, position: number): string {
  return `${index}.${position}`;
}

function same(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

function labelAttrs(labels: Readonly<Record<string, string>> | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(labels ?? {})) out[`label.${k}`] = v;
  return out;
}

function pair(attrs: Record<string, string>, key: string, old: string, now: string): void {
  if (old === now) return;
  attrs[`${key}.old`] = old;
  attrs[`${key}.new`] = now;
}

function modeName(m: ServiceMode | undefined): string {
  if (!m) return '';
  if ('replicated' in m) return 'replicated';
  if ('global' in m) return 'global';
  if ('replicatedJob' in m) return 'replicated-job';
  return 'global-job';
}

function replicasOf(m: ServiceMode | undefined): string {
  if (m && 'replicated' in m) return String(m.replicated.replicas);
  if (m && 'replicatedJob' in m) return String(m.replicatedJob.totalCompletions);
  return '';
}

/** The autoscaler's last decision (api/objects.ts AutoscaleStatus, written with the replica change). */
function autoscaleOf(s: Frozen<Service> | undefined): Frozen<AutoscaleStatus> | undefined {
  return s?.status?.autoscale;
}

/** Spec fields that changed, as dotted paths one level into the task template (`task.env`, `endpoint`). */
function changedSpecFields(old: Frozen<Service>['spec'], now: Frozen<Service>['spec']): string[] {
  const out: string[] = [];
  const keys = new Set([...Object.keys(old), ...Object.keys(now)]);
  for (const k of [...keys].sort()) {
    const a = (old as unknown as Record<string, unknown>)[k];
    const b = (now as unknown as Record<string, unknown>)[k];
    if (same(a, b)) continue;
    if (k === 'task') {
      const ta = (a ?? {}) as Record<string, unknown>;
      const tb = (b ?? {}) as Record<string, unknown>;
      for (const tk of [...new Set([...Object.keys(ta), ...Object.keys(tb)])].sort()) if (!same(ta[tk], tb[tk])) out.push(`task.${tk}`);
    } else out.push(k);
  }
  return out;
}

function serviceEvents(ev: StoreEvent<'service'>): EventBody[] {
  const s = ev.object;
  const actor = (attributes: Record<string, string>) => ({ id: s.id, name: s.spec.name, attributes: { name: s.spec.name, ...attributes } });
  if (ev.type === 'create') {
    const a: Record<string, string> = { image: s.spec.task.image, mode: modeName(s.spec.mode), ...labelAttrs(s.spec.labels) };
    const r = replicasOf(s.spec.mode);
    if (r !== '') a.replicas = r;
    return [{ type: 'service', action: 'create', actor: actor(a) }];
  }
  if (ev.type === 'delete') return [{ type: 'service', action: 'remove', actor: actor(labelAttrs(s.spec.labels)) }];
  const old = ev.old;
  if (!old) return [];
  const out: EventBody[] = [];
  const a: Record<string, string> = {};
  if (!same(old.spec, s.spec)) {
    pair(a, 'image', old.spec.task.image, s.spec.task.image);
    pair(a, 'replicas', replicasOf(old.spec.mode), replicasOf(s.spec.mode));
    pair(a, 'mode', modeName(old.spec.mode), modeName(s.spec.mode));
    const changed = changedSpecFields(old.spec, s.spec).filter((f) => f !== 'task.image' && f !== 'mode');
    if (changed.length > 0) a.changed = changed.join(',');
    if (old.spec.name !== s.spec.name) pair(a, 'name', old.spec.name, s.spec.name);
  }
  const us0 = old.updateStatus?.state ?? '';
  const us1 = s.updateStatus?.state ?? '';
  pair(a, 'updatestate', us0, us1);
  if (us0 !== us1 && s.updateStatus?.message) a['updatestate.message'] = s.updateStatus.message;
  if (Object.keys(a).length > 0) out.push({ type: 'service', action: 'update', actor: actor({ ...a, ...labelAttrs(s.spec.labels) }) });
  const as0 = autoscaleOf(old);
  const as1 = autoscaleOf(s);
  if (as1 && !same(as0, as1)) {
    const aa: Record<string, string> = { 'replicas.old': String(as1.from), 'replicas.new': String(as1.to), reason: as1.reason };
    out.push({ type: 'service', action: 'autoscale', actor: actor(aa) });
  }
  return out;
}

function taskName(t: Frozen<Task>): string {
  const svc = t.serviceAnnotations?.name ?? t.serviceId;
  return `${svc}.${t.slot !== undefined ? t.slot : (t.nodeId ?? t.id)}`;
}

function taskEvents(ev: StoreEvent<'task'>, look: DeriveLookup): EventBody[] {
  const t = ev.object;
  const a: Record<string, string> = { service: t.serviceAnnotations?.name ?? '', 'service.id': t.serviceId };
  if (t.slot !== undefined) a.slot = String(t.slot);
  if (t.nodeId) {
    a.node = t.nodeId;
    const n = look.nodeName(t.nodeId);
    if (n !== undefined) a['node.name'] = n;
  }
  Object.assign(a, labelAttrs(t.serviceAnnotations?.labels));
  const actor = (extra: Record<string, string>) => ({ id: t.id, name: taskName(t), attributes: { name: taskName(t), ...a, ...extra } });
  if (ev.type === 'create') return [{ type: 'task', action: 'create', actor: actor({ 'state.new': t.status.state }) }];
  if (ev.type === 'delete') return [{ type: 'task', action: 'remove', actor: actor({ state: t.status.state }) }];
  const old = ev.old;
  if (!old || old.status.state === t.status.state) return [];
  const extra: Record<string, string> = { 'state.old': old.status.state, 'state.new': t.status.state, desired: t.desiredState };
  if (t.status.message) extra.message = t.status.message;
  if (t.status.err) extra.error = t.status.err;
  if (t.status.exitCode !== undefined) extra.exitCode = String(t.status.exitCode);
  return [{ type: 'task', action: 'state', actor: actor(extra) }];
}

function nodeEvents(ev: StoreEvent<'node'>): EventBody[] {
  const n = ev.object;
  const name = n.description?.hostname || n.id;
  const base = (): Record<string, string> => ({ name, role: n.spec.role, availability: n.spec.availability, ...labelAttrs(n.spec.labels) });
  const actor = (attributes: Record<string, string>) => ({ id: n.id, name, attributes });
  if (ev.type === 'create') return [{ type: 'node', action: 'create', actor: actor({ ...base(), state: n.status.state }) }];
  if (ev.type === 'delete') return [{ type: 'node', action: 'remove', actor: actor(base()) }];
  const old = ev.old as Frozen<Node> | undefined;
  if (!old) return [];
  const out: EventBody[] = [];
  const s0 = old.status.state;
  const s1 = n.status.state;
  if (s0 !== s1) {
    const a = { ...base(), 'state.old': s0, 'state.new': s1, ...(n.status.message ? { message: n.status.message } : {}) };
    const action = s1 === 'down' ? 'down' : s1 === 'ready' ? 'up' : 'update';
    out.push({ type: 'node', action, actor: actor(a) });
  }
  if (!same(old.spec, n.spec) || old.description?.hostname !== n.description?.hostname) {
    const a: Record<string, string> = { ...base() };
    pair(a, 'availability', old.spec.availability, n.spec.availability);
    pair(a, 'role', old.spec.role, n.spec.role);
    if (!same(old.spec.labels, n.spec.labels)) a.changed = 'labels';
    pair(a, 'name', old.description?.hostname ?? '', n.description?.hostname ?? '');
    out.push({ type: 'node', action: 'update', actor: actor(a) });
  }
  return out;
}

type SpecObject = { id: string; spec: { name: string; labels: Record<string, string> } };

function namedEvents(type: EventType, ev: StoreEvent): EventBody[] {
  const o = ev.object as unknown as Frozen<SpecObject>;
  const extra: Record<string, string> = {};
  if (type === 'network') {
    const spec = (ev.object as Frozen<Network>).spec;
    extra.driver = spec.driver;
    if (spec.ingress) extra.ingress = 'true';
  }
  const actor = (a: Record<string, string>) => ({
    id: o.id,
    name: o.spec.name,
    attributes: { name: o.spec.name, ...extra, ...a, ...labelAttrs(o.spec.labels) },
  });
  if (ev.type === 'create') return [{ type, action: 'create', actor: actor({}) }];
  if (ev.type === 'delete') return [{ type, action: 'remove', actor: actor({}) }];
  const old = ev.old as unknown as Frozen<SpecObject> | undefined;
  if (!old || same(old.spec, o.spec)) return [];
  const a: Record<string, string> = {};
  const fields = Object.keys({ ...old.spec, ...o.spec })
    .filter((k) => !same((old.spec as Record<string, unknown>)[k], (o.spec as Record<string, unknown>)[k]))
    .sort();
  if (fields.length > 0) a.changed = fields.join(',');
  return [{ type, action: 'update', actor: actor(a) }];
}

function clusterEvents(ev: StoreEvent<'cluster'>): EventBody[] {
  const c = ev.object;
  const name = c.spec?.name ?? c.id;
  const actor = (a: Record<string, string>) => ({ id: c.id, name, attributes: { name, ...a } });
  if (ev.type === 'create') return [{ type: 'cluster', action: 'create', actor: actor({}) }];
  if (ev.type === 'delete') return [{ type: 'cluster', action: 'remove', actor: actor({}) }];
  const old = ev.old as Frozen<Cluster> | undefined;
  if (!old) return [];
  const changed: string[] = [];
  for (const k of Object.keys({ ...old.spec, ...c.spec }).sort()) {
    if (!same((old.spec as unknown as Record<string, unknown>)[k], (c.spec as unknown as Record<string, unknown>)[k])) changed.push(`spec.${k}`);
  }
  // Names only: these hold the join tokens, the CA key and the revocation lists.
  for (const k of ['rootCa', 'joinTokens', 'denyList'] as const) if (!same(old[k], c[k])) changed.push(k);
  if (changed.length === 0) return [];
  return [{ type: 'cluster', action: 'update', actor: actor({ changed: changed.join(',') }) }];
}

/** The events one store change stands for (often none: most writes are bookkeeping). */
export function deriveChange(ev: StoreEvent, look: DeriveLookup = NO_LOOKUP): EventBody[] {
  switch (ev.kind) {
    case 'service':
      return serviceEvents(ev as StoreEvent<'service'>);
    case 'task':
      return taskEvents(ev as StoreEvent<'task'>, look);
    case 'node':
      return nodeEvents(ev as StoreEvent<'node'>);
    case 'cluster':
      return clusterEvents(ev as StoreEvent<'cluster'>);
    case 'network':
    case 'secret':
    case 'config':
      return namedEvents(ev.kind, ev);
    default:
      return [];
  }
}

/**
 * The leader event that opens a new term in the log: only the leader of term T proposes entries of term
 * T, so the first applied entry of T marks the point from which that leader's changes follow. `leaderId`
 * is who this manager's Raft saw lead T (undefined if it never did: it then says "unknown").
 */
export function leaderEvent(term: number, prevTerm: number, leaderId: string | undefined, leaderName: string | undefined): EventBody {
  const attributes: Record<string, string> = { term: String(term), 'term.old': String(prevTerm), leader: leaderId ?? 'unknown' };
  if (leaderName !== undefined) attributes.name = leaderName;
  return { type: 'manager', action: 'leader', actor: { id: leaderId ?? '', name: leaderName ?? leaderId ?? 'unknown', attributes } };
}

/** Places bodies at their log position. */
export function place(index: number, firstPosition: number, time: string, bodies: EventBody[]): ClusterEvent[] {
  return bodies.map((b, i) => ({ seq: seqOf(index, firstPosition + i), time, ...b }));
}
