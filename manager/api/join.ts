// The two endpoints anyone may call, without a client certificate: the CA certificate (so a joining
// node can pin it) and join itself. A join presents a token and a certificate request; the token's
// secret decides the role, the CA decides the node id, and a manager joins Raft as a learner (the
// role manager promotes it once it has caught up). Joins are rate-limited per source address.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { PkiError } from '../ca/pki.ts';
import { signNodeCertificate } from '../ca/issue.ts';
import { formatJoinToken, parseJoinToken, tokenMatches, RateLimiter } from '../ca/tokens.ts';
import type { RaftNode } from '../raft/node.ts';
import { newId } from '../store/ids.ts';
import type { Node as NodeObj } from '../../api/objects.ts';
import type { ReadTx, Store } from '../store/store.ts';
import { isHostname } from '../dispatcher/validate.ts';
import { raftUrl, type Members } from '../members.ts';
import type { Gate } from './gate.ts';
import { readCluster } from './cluster.ts';
import { ApiError, BODY_LIMITS, badRequest, conflict, readJson, sendError, sendJson } from './http.ts';
import { recordIssued } from '../ca/revocation.ts';
import { issuerOf, withChain } from '../ca/rotation.ts';
import { LOCKED_PATH, type LockedNodes } from '../keys/locked.ts';

export interface JoinDeps {
  store: Store;
  raft: RaftNode;
  gate: Gate;
  members: Members;
  clusterId: string;
  /** The cluster's CA certificate (PEM), served at /v1/ca. */
  caCertPem: string;
  /** Locked-manager notices (POST /v1/locked, manager/keys/locked.ts) and who is reachable over Raft. */
  locked?: { nodes: LockedNodes; reachable: (nodeId: string) => boolean };
  log: (line: string) => void;
}

const DEFAULT_CERT_VALIDITY_MS = 90 * 24 * 3600_000;
const IPV4_RE = /^\d+\.\d+\.\d+\.\d+$/;

export class JoinApi {
  private readonly limiter = new RateLimiter({ capacity: 100, refillPerSec: 20 });

  constructor(private readonly d: JoinDeps) {}

  /** Serves /v1/ca and /v1/join; false for any other request. */
  async handle(req: IncomingMessage, res: ServerResponse): Promise<boolean> {
    const path = (req.url ?? '').split('?')[0];
    if (req.method === 'GET' && path === '/v1/ca') {
      // The anchor in the store: it changes when a root rotation completes (with the tokens' digest).
      res.writeHead(200, { 'content-type': 'application/x-pem-file' });
      res.end(readCluster(this.d.store)?.rootCa.caCertPem ?? this.d.caCertPem);
      return true;
    }
    if (req.method === 'POST' && path === LOCKED_PATH && this.d.locked) {
      try {
        const remote = req.socket.remoteAddress ?? '?';
        if (!this.limiter.allow(remote, Date.now())) throw new ApiError(429, 'ERATELIMIT', 'too many requests; slow down');
        const b = (await readJson(req, 4096)) as { nodeId?: unknown } | null;
        const id = typeof b?.nodeId === 'string' ? b.nodeId : '';
        const node = id ? (this.d.store.view((tx) => tx.get('node', id)) as NodeObj | undefined) : undefined;
        const why = this.d.locked.nodes.report(b?.nodeId, remote, node, id !== '' && this.d.locked.reachable(id), Date.now());
        if (why) throw badRequest(`locked notice refused: ${why}`);
        sendJson(res, 200, { noted: true });
      } catch (e) {
        sendError(res, e);
      }
      return true;
    }
    if (req.method === 'POST' && path === '/v1/join') {
      try {
        const remote = req.socket.remoteAddress ?? '?';
        if (!this.limiter.allow(remote, Date.now())) throw new ApiError(429, 'ERATELIMIT', 'too many join attempts; slow down');
        sendJson(res, 200, await this.join(await readJson(req, BODY_LIMITS.small)));
      } catch (e) {
        sendError(res, e);
      }
      return true;
    }
    return false;
  }

  private async join(body: unknown): Promise<unknown> {
    const b = (typeof body === 'object' && body !== null ? body : {}) as { token?: unknown; csr?: unknown; advertise?: unknown; hostname?: unknown };
    if (typeof b.token !== 'string') throw badRequest('join needs a token');
    if (typeof b.csr !== 'string') throw badRequest('join needs a certificate signing request');
    if (typeof b.advertise !== 'string' || b.advertise.length > 261 || !/^[^\s:]+:\d+$/.test(b.advertise))
      throw badRequest('join needs advertise as host:port');
    if (b.hostname !== undefined && (typeof b.hostname !== 'string' || !isHostname(b.hostname))) {
      throw badRequest('join hostname must be at most 253 letters, digits, dots, dashes or underscores');
    }
    const advertise = b.advertise;
    let parsed: ReturnType<typeof parseJoinToken>;
    try {
      parsed = parseJoinToken(b.token);
    } catch (e) {
      throw new ApiError(401, 'EBADTOKEN', (e as Error).message);
    }
    this.d.gate.requireLeader();
    const c = readCluster(this.d.store);
    if (!c) throw new ApiError(503, 'ENOTREADY', 'cluster not initialised yet');
    let role: 'worker' | 'manager';
    const presented = formatJoinToken(parsed); // canonical form: stray whitespace or case do not matter
    if (tokenMatches(presented, c.joinTokens.manager)) role = 'manager';
    else if (tokenMatches(presented, c.joinTokens.worker)) role = 'worker';
    else
      throw new ApiError(
        401,
        'EBADTOKEN',
        parsed.caDigest === parseJoinToken(c.joinTokens.worker).caDigest
          ? 'invalid join token (wrong secret, or it was rotated)'
          : 'invalid join token: it belongs to another cluster',
      );
    const nodeId = newId();
    const host = advertise.split(':')[0]!;
    const hostname = typeof b.hostname === 'string' ? b.hostname : host;
    // Hostnames are unique: the CLI and `node promote/rm` resolve nodes by hostname, so a joiner taking
    // another node's name would become the node an admin acts on (security review, finding 8). Swarm
    // allows duplicates; Shoal refuses them (checked again inside the write, against concurrent joins).
    this.d.store.view((tx) => this.refuseTakenHostname(hostname, tx));
    // A DNS name goes into a certificate only for a manager, which serves Raft under it; a worker
    // choosing a name (say, the one managers are reached by) would otherwise hold a certificate for it.
    const sans = IPV4_RE.test(host) ? { ips: [host] } : role === 'manager' ? { dns: [host] } : {};
    const ca = issuerOf(c.rootCa);
    const issued = signOrBadRequest({
      caCertPem: ca.certPem,
      caKeyPem: ca.keyPem,
      csrPem: b.csr,
      nodeId,
      role,
      clusterId: this.d.clusterId,
      sans,
      validityMs: c.spec.caConfig?.nodeCertValidityMs ?? DEFAULT_CERT_VALIDITY_MS,
    });
    const now = new Date().toISOString();
    await this.d.gate.write((tx) => {
      this.refuseTakenHostname(hostname, tx);
      tx.create({
        id: nodeId,
        kind: 'node',
        spec: { labels: {}, availability: 'active', role },
        description: { hostname, platform: { os: 'linux', arch: process.arch }, resources: { nanoCpus: 0, memoryBytes: 0 }, engineVersion: '', addr: host },
        status: { state: 'unknown', message: 'joined', addr: host, lastHeartbeat: now },
        certificate: recordIssued(undefined, issued, role, new Date(), { issuer: ca.digest, anchor: ca.anchorDigest }),
      } as unknown as NodeObj);
    });
    if (role === 'manager') {
      // Joins Raft as a learner; the leader promotes it once it has caught up.
      await this.d.gate.retryConf(() => this.d.raft.addMember(nodeId, raftUrl(advertise), { learner: true }));
    }
    this.d.log(`node ${nodeId} joined as ${role} from ${advertise}`);
    return {
      nodeId,
      role,
      certPem: withChain(issued.certPem, ca),
      caCertPem: ca.anchorPem,
      clusterId: this.d.clusterId,
      managers: this.d.members.managerAddrs(),
    };
  }

  /** 409 when another node already has `hostname` (case-insensitive, as DNS names compare). */
  /**
   * Hostnames compare without case, as the store's name index keeps them: a lookup, where listing every
   * node on each join (twice) was 7 of 127 busy seconds of a leader taking 5,000 joins (bench:scale
   * --profile, December 7).
   */
  private refuseTakenHostname(hostname: string, tx: ReadTx): void {
    const taken = nodeWithHostname(tx, hostname);
    if (taken) {
      throw conflict(
        `a node with hostname ${hostname} already exists (node ${taken.id}, ${taken.status?.state ?? 'unknown'}): remove it with \`shoal node rm\` first, or join with another hostname`,
      );
    }
  }
}

/** The node that has `hostname` (compared without case), if any. */
export function nodeWithHostname(tx: ReadTx, hostname: string): NodeObj | undefined {
  return tx.byName('node', hostname) as NodeObj | undefined;
}

/** Signs a CSR; a bad CSR (signature, weak key, malformed) is the caller's fault: 400, not 500. */
function signOrBadRequest(o: Parameters<typeof signNodeCertificate>[0]) {
  try {
    return signNodeCertificate(o);
  } catch (e) {
    if (e instanceof PkiError) throw badRequest(`certificate request refused: ${e.message}`);
    throw e;
  }
}
