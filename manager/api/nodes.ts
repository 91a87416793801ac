// Control API for nodes: list, inspect, update (labels, availability), promote, demote, remove.
// Promotion and demotion only change the node's desired role here; the role manager and the node's
// certificate renewal carry them out. Demotion refuses to lose quorum, and a leader demoting itself
// hands leadership over first.
import type { RaftNode } from '../raft/node.ts';
import { quorum } from '../raft/core.ts';
import { CLUSTER_ID, type Cluster, type Node as NodeObj } from '../../api/objects.ts';
import type { Store } from '../store/store.ts';
import { addrFromRaftUrl, type Members } from '../members.ts';
import type { Gate } from './gate.ts';
import { ApiError, BODY_LIMITS, badRequest, conflict, notFound, queryParam, readJson, type Router } from './http.ts';
import { resolveRef } from './resolve.ts';
import { restoreOnPromote, revokeOnDemote, revokeOnRemove } from '../ca/revocation.ts';

export interface NodeApiDeps {
  store: Store;
  raft: RaftNode;
  gate: Gate;
  members: Members;
  selfId: string;
  /** Ends a node's dispatcher session (a removed node). */
  closeSession: (nodeId: string, code: number, reason: string) => void;
  /** An unreachable manager that says it is locked (autolock, manager/keys/locked.ts). */
  locked?: (nodeId: string) => boolean;
}

const AVAILABILITY = ['active', 'pause', 'drain'];
const LABEL_KEY_RE = /^[A-Za-z0-9_.\-/]{1,128}$/;

/** Node by id, hostname (when only one node has it) or unique id prefix. */
export function resolveNode(store: Store, ref: string): NodeObj {
  return resolveRef('node', store.view((tx) => tx.list('node')) as NodeObj[], ref, (n) => n.description?.hostname);
}

/** A node as the API shows it: the stored object plus its manager status, if it is a manager. */
export function presentNode(d: Pick<NodeApiDeps, 'raft' | 'members' | 'selfId' | 'locked'>, n: NodeObj) {
  const st = d.raft.status();
  const isVoter = st.voters.includes(n.id);
  const isLearner = st.learners.includes(n.id);
  let managerStatus: Record<string, unknown> | null = null;
  if (isVoter || isLearner) {
    const reachable = d.members.isReachable(n.id);
    managerStatus = {
      leader: st.leader === n.id,
      // `locked`: up, but waiting for `cluster unlock` (it cannot prove who it is until then).
      reachability: reachable ? 'reachable' : d.locked?.(n.id) ? 'locked' : 'unreachable',
      voter: isVoter,
      addr: addrFromRaftUrl(st.members[n.id] ?? ''),
    };
  }
  return { ...n, managerStatus, self: n.id === d.selfId };
}

interface NodeUpdate {
  labelAdd?: Record<string, string>;
  labelRm?: string[];
  availability?: string;
}

/** The body of POST /v1/nodes/:id/update, every field typed (400 naming the field otherwise). */
export function parseNodeUpdate(raw: unknown): NodeUpdate {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw badRequest('node update body must be a JSON object');
  const b = raw as Record<string, unknown>;
  const out: NodeUpdate = {};
  if (b.availability !== undefined) {
    if (typeof b.availability !== 'string' || !AVAILABILITY.includes(b.availability)) {
      throw badRequest(`availability must be active, pause or drain (got ${JSON.stringify(b.availability)})`, { field: 'availability' });
    }
    out.availability = b.availability;
  }
  if (b.labelAdd !== undefined) {
    if (typeof b.labelAdd !== 'object' || b.labelAdd === null || Array.isArray(b.labelAdd))
      throw badRequest('labelAdd must be an object of label: value', { field: 'labelAdd' });
    for (const [k, v] of Object.entries(b.labelAdd)) {
      if (!LABEL_KEY_RE.test(k)) throw badRequest(`invalid label key ${JSON.stringify(k.slice(0, 140))}`, { field: 'labelAdd' });
      if (typeof v !== 'string') throw badRequest(`label ${k} must have a string value`, { field: `labelAdd.${k}` });
    }
    out.labelAdd = b.labelAdd as Record<string, string>;
  }
  if (b.labelRm !== undefined) {
    if (!Array.isArray(b.labelRm) || b.labelRm.some((k) => typeof k !== 'string'))
      throw badRequest('labelRm must be a list of label keys', { field: 'labelRm' });
    out.labelRm = b.labelRm as string[];
  }
  return out;
}

export function registerNodeRoutes<C>(r: Router<C>, d: NodeApiDeps): void {
  const name = (n: NodeObj) => n.description?.hostname ?? n.id;
  const present = (n: NodeObj) => presentNode(d, n);

  r.add('GET', '/v1/nodes', async () => {
    await d.gate.linearizable();
    return d.store.view((tx) => tx.list('node')).map((n) => present(n as NodeObj));
  });

  r.add('GET', '/v1/nodes/:id', async (_c, p) => {
    await d.gate.linearizable();
    return present(resolveNode(d.store, p.id!));
  });

  r.add('POST', '/v1/nodes/:id/update', async (_c, p, req) => {
    const body = parseNodeUpdate(await readJson(req, BODY_LIMITS.small));
    d.gate.requireLeader();
    const id = resolveNode(d.store, p.id!).id;
    await d.gate.write((tx) => {
      const n = tx.get('node', id) as NodeObj | undefined;
      if (!n) throw notFound(`node ${p.id} not found`);
      const labels = { ...n.spec.labels, ...(body.labelAdd ?? {}) };
      for (const k of body.labelRm ?? []) {
        if (!(k in labels)) throw badRequest(`node ${n.description?.hostname ?? id} has no label ${k}`);
        delete labels[k];
      }
      tx.update({ ...n, spec: { ...n.spec, labels, ...(body.availability ? { availability: body.availability as NodeObj['spec']['availability'] } : {}) } });
    });
    return present(resolveNode(d.store, id));
  });

  r.add('POST', '/v1/nodes/:id/promote', async (_c, p) => {
    d.gate.requireLeader();
    const n = resolveNode(d.store, p.id!);
    if (n.spec.role === 'manager') throw conflict(`node ${name(n)} is already a manager`);
    await d.gate.write((tx) => {
      const cur = tx.get('node', n.id) as NodeObj;
      tx.update({ ...cur, spec: { ...cur.spec, role: 'manager' } });
      const c = tx.get('cluster', CLUSTER_ID) as Cluster;
      const deny = restoreOnPromote(c.denyList, cur.certificate);
      if (deny !== c.denyList) tx.update({ ...c, denyList: deny } as Cluster);
    });
    return present(resolveNode(d.store, n.id));
  });

  r.add('POST', '/v1/nodes/:id/demote', async (_c, p) => {
    d.gate.requireLeader();
    const n = resolveNode(d.store, p.id!);
    if (n.spec.role !== 'manager') throw conflict(`node ${name(n)} is not a manager`);
    const st = d.raft.status();
    if (st.voters.includes(n.id)) {
      const after = st.voters.length - 1;
      if (after === 0) throw conflict(`cannot demote ${name(n)}: it is the last manager`);
      const reachableAfter = d.members.reachableManagers().reachable - (d.members.isReachable(n.id) ? 1 : 0);
      const need = quorum(after);
      if (reachableAfter < need) {
        throw conflict(`demoting ${name(n)} would lose quorum: ${reachableAfter} of the remaining ${after} managers are reachable, and ${need} are needed`);
      }
      if (n.id === d.selfId) {
        // The leader cannot remove itself cleanly while leading: hand over first, then the client retries there.
        const target = st.voters.filter((v) => v !== n.id).find((v) => d.members.isReachable(v));
        if (!target) throw conflict(`cannot demote ${name(n)}: no other reachable manager to hand leadership to`);
        await d.raft.transferLeadership(target);
        const l = d.members.leaderAddr();
        throw new ApiError(421, 'ENOTLEADER', `leadership handed to ${l?.addr ?? target}; retry there`, { leader: l?.addr ?? '' });
      }
      await d.gate.retryConf(() => d.raft.removeMember(n.id, { demote: true }));
    } else if (st.learners.includes(n.id)) {
      await d.gate.retryConf(() => d.raft.removeMember(n.id, { demote: true }));
    }
    await d.gate.write((tx) => {
      const cur = tx.get('node', n.id) as NodeObj;
      tx.update({ ...cur, spec: { ...cur.spec, role: 'worker' } });
      // Its manager certificates stop opening Raft, keys and the rest at once (still good for the
      // dispatcher session it renews over); the renewal into a worker certificate revokes them outright.
      const c = tx.get('cluster', CLUSTER_ID) as Cluster;
      const deny = revokeOnDemote(c.denyList, cur.certificate);
      if (deny !== c.denyList) tx.update({ ...c, denyList: deny } as Cluster);
    });
    return present(resolveNode(d.store, n.id));
  });

  r.add('DELETE', '/v1/nodes/:id', async (_c, p, req) => {
    const force = queryParam(req, 'force') === '1';
    d.gate.requireLeader();
    const n = resolveNode(d.store, p.id!);
    if (n.spec.role === 'manager' || d.raft.status().voters.includes(n.id)) {
      throw conflict(`node ${name(n)} is a manager: demote it before removing it`);
    }
    if (n.status.state === 'ready' && !force) {
      throw conflict(`node ${name(n)} is ready: stop it first, or use --force`);
    }
    await d.gate.write((tx) => {
      const c = tx.get('cluster', CLUSTER_ID) as Cluster;
      const cur = tx.get('node', n.id) as NodeObj | undefined;
      tx.delete('node', n.id);
      tx.update({ ...c, denyList: revokeOnRemove(c.denyList, n.id, cur?.certificate) } as Cluster);
    });
    d.closeSession(n.id, 4003, 'node removed');
    return { removed: n.id };
  });
}
