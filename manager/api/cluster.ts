// Control API for the cluster as a whole: info, the cluster object and its settings (dispatcher
// heartbeat, certificate lifetime, store limits), certificate rotation on demand, join tokens, and the
// dispatcher's counters. The CA key and the join tokens never leave through GET /v1/cluster.
import { randomBytes } from 'node:crypto';
import { generateUnlockKey } from '../keys/autolock.ts';
import { caStatus } from '../ca/rotation-runner.ts';
import type { RaftNode } from '../raft/node.ts';
import { makeJoinToken, parseJoinToken } from '../ca/tokens.ts';
import { applyLimitsUpdate, parseLimitsUpdate } from '../store/limits.ts';
import { CLUSTER_ID, type Cluster } from '../../api/objects.ts';
import type { Store } from '../store/store.ts';
import type { ManagerToAgent } from '../../api/dispatcher.ts';
import type { DispatcherStats } from '../dispatcher/stats.ts';
import type { Members } from '../members.ts';
import type { Gate } from './gate.ts';
import { ApiError, BODY_LIMITS, badRequest, notFound, readJson, type Router } from './http.ts';

export interface ClusterApiDeps {
  store: Store;
  raft: RaftNode;
  gate: Gate;
  members: Members;
  clusterId: string;
  /** Sends a message to every connected node; returns how many. */
  broadcast: (m: ManagerToAgent) => number;
  dispatcherStats: () => DispatcherStats;
}

const MIN_HEARTBEAT_MS = 100;
const MAX_HEARTBEAT_MS = 60_000;
const MIN_CERT_VALIDITY_MS = 5_000;
const MAX_CERT_VALIDITY_MS = 10 * 365 * 24 * 3600_000;

function isIntIn(v: unknown, min: number, max: number): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max;
}

export function readCluster(store: Store): Cluster | null {
  return store.view((tx) => (tx.get('cluster', CLUSTER_ID) as Cluster | undefined) ?? null);
}

export function registerClusterRoutes<C>(r: Router<C>, d: ClusterApiDeps): void {
  r.add('GET', '/v1/info', async () => ({ ...d.members.raftInfo(), clusterId: d.clusterId }));

  r.add('GET', '/v1/cluster', async () => {
    await d.gate.linearizable();
    const c = readCluster(d.store);
    if (!c) throw notFound('cluster not initialised');
    const { rootCa: _ca, joinTokens: _t, unlockKey, ...rest } = c as unknown as Record<string, unknown>;
    // `ca`: the root's digest and, during a root rotation, its progress (no key material).
    return { ...rest, autolock: typeof unlockKey === 'string', ca: caStatus(d.store), raft: d.members.raftInfo() };
  });

  r.add('POST', '/v1/cluster/update', async (_c, _p, req) => {
    const b = (await readJson(req, BODY_LIMITS.small)) as { heartbeatPeriodMs?: unknown; nodeCertValidityMs?: unknown; limits?: unknown; autolock?: unknown };
    if (b.autolock !== undefined && typeof b.autolock !== 'boolean') throw badRequest('autolock must be true or false');
    const hb = b.heartbeatPeriodMs;
    const validity = b.nodeCertValidityMs;
    if (hb !== undefined && !isIntIn(hb, MIN_HEARTBEAT_MS, MAX_HEARTBEAT_MS)) {
      throw badRequest('dispatcher heartbeat period must be between 100ms and 60s');
    }
    if (validity !== undefined && !isIntIn(validity, MIN_CERT_VALIDITY_MS, MAX_CERT_VALIDITY_MS)) {
      throw badRequest('node certificate expiry must be between 5s and 10 years');
    }
    const limits = parseLimitsUpdate(b.limits);
    d.gate.requireLeader();
    await d.gate.write((tx) => {
      const c = tx.get('cluster', CLUSTER_ID) as Cluster;
      const spec = {
        ...c.spec,
        ...(hb !== undefined ? { dispatcher: { ...c.spec.dispatcher, heartbeatPeriodMs: hb } } : {}),
        ...(validity !== undefined ? { caConfig: { ...c.spec.caConfig, nodeCertValidityMs: validity } } : {}),
      };
      // Autolock: the unlock key lives in the (encrypted) store, so `unlock-key` can show it; every
      // manager rewraps its key files when it applies the change (daemon watchAutolock).
      const { unlockKey: had, ...base } = c as Cluster & { unlockKey?: string };
      const unlockKey = b.autolock === undefined ? had : b.autolock ? (had ?? generateUnlockKey(randomBytes)) : undefined;
      tx.update({
        ...base,
        ...(unlockKey !== undefined ? { unlockKey } : {}),
        spec: Object.keys(limits).length > 0 ? applyLimitsUpdate(spec, limits) : spec,
      } as Cluster);
    });
    return readCluster(d.store)!.spec;
  });

  r.add('GET', '/v1/cluster/unlock-key', async () => {
    await d.gate.linearizable();
    const c = readCluster(d.store) as (Cluster & { unlockKey?: string }) | null;
    if (!c) throw notFound('cluster not initialised');
    return { unlockKey: c.unlockKey ?? null };
  });

  r.add('POST', '/v1/cluster/unlock-key/rotate', async () => {
    d.gate.requireLeader();
    let key: string | null = null;
    await d.gate.write((tx) => {
      const c = tx.get('cluster', CLUSTER_ID) as Cluster & { unlockKey?: string };
      if (c.unlockKey === undefined) throw new ApiError(409, 'ENOAUTOLOCK', 'autolock is off: turn it on with `shoal cluster update --autolock=true`');
      key = generateUnlockKey(randomBytes);
      tx.update({ ...c, unlockKey: key } as Cluster);
    });
    return { unlockKey: key };
  });

  r.add('POST', '/v1/cluster/rotate-node-certs', async () => {
    d.gate.requireLeader();
    return { notified: d.broadcast({ t: 'renew-cert' }) };
  });

  r.add('GET', '/v1/join-tokens', async () => {
    await d.gate.linearizable();
    const c = readCluster(d.store);
    if (!c) throw notFound('cluster not initialised');
    return { ...c.joinTokens, managers: d.members.managerAddrs().map((m) => m.addr) };
  });

  r.add('POST', '/v1/join-tokens/rotate', async (_ctx, _p, req) => {
    const body = (await readJson(req, BODY_LIMITS.small)) as { role?: unknown };
    const role = body.role;
    if (role !== 'worker' && role !== 'manager') throw badRequest('role must be worker or manager');
    d.gate.requireLeader();
    await d.gate.write((tx) => {
      const c = tx.get('cluster', CLUSTER_ID) as Cluster;
      const digest = parseJoinToken(c.joinTokens[role]).caDigest;
      tx.update({ ...c, joinTokens: { ...c.joinTokens, [role]: makeJoinToken(digest) } } as Cluster);
    });
    return { [role]: readCluster(d.store)!.joinTokens[role] };
  });

  // Counters of the node sessions (sessions, messages, drops by reason, disconnects): how the cluster
  // copes with misbehaving nodes. Any manager answers for itself: sessions live on the leader, but a
  // former leader keeps the totals of its term (`leader` says which this is).
  r.add('GET', '/v1/dispatcher/stats', async () => ({ leader: d.raft.status().role === 'leader', ...d.dispatcherStats() }));
}
