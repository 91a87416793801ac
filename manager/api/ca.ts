// Control API for admin (CLI) certificates: issue one to a named admin, list them, revoke one, and
// let an admin renew its own before it expires. Admin certificates are recorded in the cluster object
// (name, serial, expiry) so they can be listed and revoked; a revoked one is refused on the next request
// (the control API checks the deny list on every request). The key never travels: the CLI makes it and
// sends a CSR, as joining nodes do. See docs/design/ca.md, "Admin certificates".
import { PkiError } from '../ca/pki.ts';
import { checkRootCa, createRootCa, crossSignRoot, signNodeCertificate } from '../ca/issue.ts';
import { beginRotation, issuerOf, RotationError, withChain } from '../ca/rotation.ts';
import { caStatus } from '../ca/rotation-runner.ts';
import { AdminError, addAdmin, findAdmin, pruneAdmins, renewAdmin, revokeAdmin, type AdminRecord, type ClusterWithAdmins } from '../ca/revocation.ts';
import { CLUSTER_ID, type Cluster } from '../../api/objects.ts';
import type { Store } from '../store/store.ts';
import type { Gate } from './gate.ts';
import { readCluster } from './cluster.ts';
import { ApiError, BODY_LIMITS, badRequest, conflict, notFound, readJson, type Router } from './http.ts';

export interface CaApiDeps {
  store: Store;
  gate: Gate;
  clusterId: string;
  /** Manager addresses, for the context file of a new admin. */
  managers: () => string[];
  now?: () => Date;
}

export const DEFAULT_ADMIN_VALIDITY_MS = 365 * 24 * 3600_000;
const MIN_ADMIN_VALIDITY_MS = 60_000;
const MAX_ADMIN_VALIDITY_MS = 10 * 365 * 24 * 3600_000;

/** An admin record as listed (no history: its serials are revoked with it). */
export function presentAdmin(a: AdminRecord) {
  return { name: a.name, serial: a.serial, notAfter: a.notAfter, issuedAt: a.issuedAt, revoked: a.revoked };
}

function asApiError(e: unknown): unknown {
  if (e instanceof AdminError) {
    if (e.code === 'EXISTS') return conflict(e.message);
    if (e.code === 'NOT_FOUND') return notFound(e.message);
    return badRequest(e.message);
  }
  if (e instanceof PkiError) return badRequest(`certificate request refused: ${e.message}`);
  return e;
}

export function registerCaRoutes(r: Router<{ cn: string }>, d: CaApiDeps): void {
  const now = d.now ?? (() => new Date());

  const issue = (c: Cluster, name: string, csr: unknown, validityMs: number) => {
    if (typeof csr !== 'string') throw badRequest('csr must be a PEM certificate signing request', { field: 'csr' });
    // During a root rotation the new root's key issues; the leaf is served with its chain.
    const ca = issuerOf(c.rootCa);
    try {
      const out = signNodeCertificate({
        caCertPem: ca.certPem,
        caKeyPem: ca.keyPem,
        csrPem: csr,
        nodeId: name,
        role: 'admin',
        clusterId: d.clusterId,
        validityMs,
        now: now(),
      });
      return { ...out, certPem: withChain(out.certPem, ca), issuer: ca.digest, anchorPem: ca.anchorPem };
    } catch (e) {
      throw asApiError(e);
    }
  };

  r.add('GET', '/v1/ca/admins', async () => {
    await d.gate.linearizable();
    const c = readCluster(d.store) as ClusterWithAdmins | null;
    return (c?.admins ?? []).map(presentAdmin);
  });

  r.add('POST', '/v1/ca/admins', async (_c, _p, req) => {
    const b = (await readJson(req, BODY_LIMITS.small)) as { name?: unknown; csr?: unknown; validityMs?: unknown };
    if (typeof b !== 'object' || b === null) throw badRequest('body must be a JSON object');
    if (typeof b.name !== 'string') throw badRequest('name is required', { field: 'name' });
    const validityMs = b.validityMs ?? DEFAULT_ADMIN_VALIDITY_MS;
    if (typeof validityMs !== 'number' || !Number.isInteger(validityMs) || validityMs < MIN_ADMIN_VALIDITY_MS || validityMs > MAX_ADMIN_VALIDITY_MS) {
      throw badRequest('admin certificate expiry must be between 1m and 10 years', { field: 'validityMs' });
    }
    d.gate.requireLeader();
    const c = readCluster(d.store) as ClusterWithAdmins | null;
    if (!c) throw new ApiError(503, 'ENOTREADY', 'cluster not initialised yet');
    try {
      addAdmin(c.admins ?? [], { name: b.name, serial: '-', notAfter: new Date(now().getTime() + validityMs) }, now()); // name checks before signing
    } catch (e) {
      throw asApiError(e);
    }
    const issued = issue(c, b.name, b.csr, validityMs);
    const name = b.name;
    await d.gate.write((tx) => {
      const cur = tx.get('cluster', CLUSTER_ID) as ClusterWithAdmins;
      let admins: AdminRecord[];
      try {
        admins = addAdmin(cur.admins ?? [], { name, serial: issued.serial, notAfter: issued.notAfter, issuer: issued.issuer }, now());
      } catch (e) {
        throw asApiError(e);
      }
      tx.update({ ...cur, admins } as Cluster);
    });
    return {
      name,
      serial: issued.serial,
      notAfter: issued.notAfter.toISOString(),
      certPem: issued.certPem,
      caCertPem: issued.anchorPem,
      clusterId: d.clusterId,
      managers: d.managers(),
    };
  });

  r.add('POST', '/v1/ca/admins/revoke', async (_c, _p, req) => {
    const b = (await readJson(req, BODY_LIMITS.small)) as { ref?: unknown };
    if (typeof b !== 'object' || b === null || typeof b.ref !== 'string' || b.ref === '')
      throw badRequest('ref (an admin name or serial) is required', { field: 'ref' });
    const ref = b.ref;
    d.gate.requireLeader();
    let revoked: AdminRecord | null = null;
    await d.gate.write((tx) => {
      const cur = tx.get('cluster', CLUSTER_ID) as ClusterWithAdmins;
      try {
        const out = revokeAdmin(cur.admins ?? [], cur.denyList, ref);
        revoked = out.revoked;
        tx.update({ ...cur, admins: out.admins, denyList: out.deny } as Cluster);
      } catch (e) {
        throw asApiError(e);
      }
    });
    return { revoked: presentAdmin(revoked!) };
  });

  // The calling admin renews its own certificate (same name, new key); the CLI does it past 2/3 of its life.
  r.add('POST', '/v1/ca/admins/renew', async (ctx, _p, req) => {
    const b = (await readJson(req, BODY_LIMITS.small)) as { csr?: unknown };
    if (typeof b !== 'object' || b === null) throw badRequest('body must be a JSON object');
    d.gate.requireLeader();
    const c = readCluster(d.store) as ClusterWithAdmins | null;
    if (!c) throw new ApiError(503, 'ENOTREADY', 'cluster not initialised yet');
    const prev = (c.admins ?? []).find((a) => a.name === ctx.cn && !a.revoked);
    const validityMs = prev ? Math.max(MIN_ADMIN_VALIDITY_MS, Date.parse(prev.notAfter) - Date.parse(prev.issuedAt)) : DEFAULT_ADMIN_VALIDITY_MS;
    const issued = issue(c, ctx.cn, b.csr, Math.min(validityMs, MAX_ADMIN_VALIDITY_MS));
    await d.gate.write((tx) => {
      const cur = tx.get('cluster', CLUSTER_ID) as ClusterWithAdmins;
      const list = cur.admins ?? [];
      let admins: AdminRecord[];
      try {
        // An admin issued before certificates were recorded (or whose record expired) is recorded now.
        admins = list.some((a) => a.name === ctx.cn && !a.revoked)
          ? renewAdmin(list, ctx.cn, { serial: issued.serial, notAfter: issued.notAfter, issuer: issued.issuer }, now())
          : addAdmin(list, { name: ctx.cn, serial: issued.serial, notAfter: issued.notAfter, issuer: issued.issuer }, now());
      } catch (e) {
        throw asApiError(e);
      }
      tx.update({ ...cur, admins: pruneAdmins(admins, now()) } as Cluster);
    });
    return { name: ctx.cn, serial: issued.serial, notAfter: issued.notAfter.toISOString(), certPem: issued.certPem, caCertPem: issued.anchorPem };
  });

  // Root CA rotation (manager/ca/rotation.ts): start one (a generated root, or the operator's), and its
  // progress. The leader's reconciler moves nodes over and completes it.
  r.add('POST', '/v1/ca/rotate', async (_c, _p, req) => {
    const b = (await readJson(req, BODY_LIMITS.small)) as { certPem?: unknown; keyPem?: unknown };
    if (typeof b !== 'object' || b === null) throw badRequest('body must be a JSON object');
    if ((b.certPem === undefined) !== (b.keyPem === undefined))
      throw badRequest('an external root needs both certPem and keyPem', { field: b.certPem === undefined ? 'certPem' : 'keyPem' });
    if (b.certPem !== undefined && typeof b.certPem !== 'string') throw badRequest('certPem must be a PEM string', { field: 'certPem' });
    if (b.keyPem !== undefined && typeof b.keyPem !== 'string') throw badRequest('keyPem must be a PEM string', { field: 'keyPem' });
    d.gate.requireLeader();
    const c = readCluster(d.store);
    if (!c) throw new ApiError(503, 'ENOTREADY', 'cluster not initialised yet');
    const validity = c.spec.caConfig?.nodeCertValidityMs ?? DEFAULT_ADMIN_VALIDITY_MS;
    let next: { certPem: string; keyPem: string };
    try {
      next =
        typeof b.certPem === 'string' && typeof b.keyPem === 'string'
          ? checkRootCa(b.certPem, b.keyPem, { now: now(), minValidityMs: validity })
          : await createRootCa({ clusterId: d.clusterId, now: now() });
    } catch (e) {
      if (e instanceof PkiError) throw badRequest(`root CA refused: ${e.message}`, { field: 'certPem' });
      throw e;
    }
    await d.gate.write((tx) => {
      const cur = tx.get('cluster', CLUSTER_ID) as Cluster;
      // Cross-signed by the anchor, also when this replaces a rotation in progress.
      const crossSignedPem = crossSignRoot({ newCertPem: next.certPem, oldCertPem: cur.rootCa.caCertPem, oldKeyPem: cur.rootCa.caKeyPem, now: now() });
      try {
        const rootCa = beginRotation(
          cur.rootCa,
          { newCertPem: next.certPem, newKeyPem: next.keyPem, crossSignedPem, external: b.certPem !== undefined },
          now(),
        );
        tx.update({ ...cur, rootCa } as Cluster);
      } catch (e) {
        if (e instanceof RotationError) throw conflict(e.message);
        throw e;
      }
    });
    return caStatus(d.store);
  });

  r.add('GET', '/v1/ca/rotation', async () => {
    await d.gate.linearizable();
    return caStatus(d.store);
  });

  r.add('GET', '/v1/ca/admins/:ref', async (_c, p) => {
    await d.gate.linearizable();
    const c = readCluster(d.store) as ClusterWithAdmins | null;
    try {
      return presentAdmin(findAdmin(c?.admins ?? [], p.ref!));
    } catch (e) {
      throw asApiError(e);
    }
  });
}
