// The cluster object that unit tests of the control API, the dispatcher and the store start from: the
// default spec with optional limits and placeholder CA material and join tokens (tests that sign real
// certificates pass a real CA).
import { DEFAULT_LIMITS, defaultClusterSpec, type Cluster, type ClusterLimits, type Draft } from '../../api/objects.ts';

export function testCluster(o: { limits?: Partial<ClusterLimits>; ca?: { caCertPem: string; caKeyPem: string } } = {}): Draft<Cluster> {
  return {
    id: 'cluster',
    kind: 'cluster',
    spec: { ...defaultClusterSpec('t'), ...(o.limits ? { limits: { ...DEFAULT_LIMITS, ...o.limits } } : {}) },
    status: {},
    rootCa: o.ca ?? { caCertPem: 'cert', caKeyPem: 'key' },
    joinTokens: { worker: 'w', manager: 'm' },
    denyList: { removedNodes: [], revokedSerials: [] },
  };
}
