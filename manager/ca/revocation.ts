// The replicated revocation list and the certificate records it is built from (security review §12).
// Pure: the clock comes in as `now`, the store objects go in and come out; the manager checks the
// result on every connection (TLS accept of /raft/v1, /dispatcher/v1, /images/v1, /keys/v1, the control
// API, and the Raft transport's own dials) and closes open sessions when it changes.
//
// What revokes what (docs/design/ca.md, "Revocation"):
// - `node rm`: the node id (every certificate it ever had) and its known serials — refused everywhere.
// - demotion: the node's manager certificates (current and earlier unexpired ones) stop working as
//   manager certificates at once; they may still open the node's dispatcher session, the only way the
//   demoted node can renew into a worker certificate. At that renewal they are revoked outright.
// - a renewal that keeps the role leaves the earlier certificate valid until it expires: a running
//   manager's Raft transport keeps dialing with the certificate it started with.
// - an admin certificate: revoked by name (all its serials) or serial.
import type { Cluster, NodeCertificate } from '../../api/objects.ts';

/** Serials kept in each list; the oldest (most likely expired) go first. */
export const MAX_REVOKED_SERIALS = 2000;
/** Earlier unexpired certificates remembered per node or admin (renewals are throttled, so few exist). */
export const MAX_CERT_HISTORY = 8;
/** Admin certificates recorded in the cluster object (revoked and expired ones are pruned first). */
export const MAX_ADMINS = 500;

export interface CertRef {
  serial: string;
  /** ISO-8601. */
  notAfter: string;
}

/** A node's certificate record as the store holds it: the current one plus earlier unexpired ones. */
export interface NodeCertRecord extends NodeCertificate {
  history?: (CertRef & { role: NodeCertificate['role'] })[];
}

/** The cluster's deny list. `demotedSerials` is refused for manager-only endpoints only. */
export interface DenyList {
  removedNodes: string[];
  revokedSerials: string[];
  demotedSerials?: string[];
}

/** An admin (CLI) certificate the managers issued: listed by `cluster ca --admins`, revocable. */
export interface AdminRecord {
  name: string;
  serial: string;
  /** ISO-8601. */
  notAfter: string;
  issuedAt: string;
  revoked: boolean;
  /** Earlier certificates of this admin (renewals), still valid until they expire. */
  history?: CertRef[];
  /** sha256 of the root whose key issued the current certificate (root rotation progress). */
  issuer?: string;
}

export type ClusterWithAdmins = Cluster & { denyList: DenyList; admins?: AdminRecord[] };

const expired = (r: CertRef, now: Date): boolean => Date.parse(r.notAfter) <= now.getTime();

/** The record after issuing `issued` for `role`: the previous current certificate joins the history. */
/** `from`: digests of the issuing root and of the anchor handed out with it (manager/ca/rotation.ts). */
export function recordIssued(
  prev: NodeCertRecord | undefined,
  issued: { serial: string; notAfter: Date },
  role: NodeCertificate['role'],
  now: Date,
  from?: { issuer: string; anchor: string },
): NodeCertRecord {
  const history = [...(prev?.history ?? []), ...(prev ? [{ serial: prev.serial, notAfter: prev.notAfter, role: prev.role }] : [])]
    .filter((h) => !expired(h, now) && h.serial !== issued.serial)
    .slice(-MAX_CERT_HISTORY);
  return {
    serial: issued.serial,
    notAfter: issued.notAfter.toISOString(),
    role,
    ...(history.length > 0 ? { history } : {}),
    ...(from ? { issuer: from.issuer, anchor: from.anchor } : {}),
  };
}

/** Every serial of `rec` (current and history), optionally only those issued for `role`. */
export function serialsOf(rec: NodeCertRecord | undefined, role?: NodeCertificate['role']): string[] {
  if (!rec) return [];
  const all = [{ serial: rec.serial, role: rec.role }, ...(rec.history ?? [])];
  return all.filter((c) => !role || c.role === role).map((c) => c.serial);
}

const appendBounded = (list: readonly string[], add: readonly string[], max: number): string[] => [...list.filter((x) => !add.includes(x)), ...add].slice(-max);

/** Demotion: the node's manager certificates stop opening manager-only endpoints. */
export function revokeOnDemote(deny: DenyList, rec: NodeCertRecord | undefined): DenyList {
  const serials = serialsOf(rec, 'manager');
  if (serials.length === 0) return deny;
  return { ...deny, demotedSerials: appendBounded(deny.demotedSerials ?? [], serials, MAX_REVOKED_SERIALS) };
}

/**
 * Promotion: a node demoted and promoted again before it renewed (it was down) still holds its manager
 * certificate, and its record still says manager, so no renewal is asked for: that certificate works again.
 */
export function restoreOnPromote(deny: DenyList, rec: NodeCertRecord | undefined): DenyList {
  if (rec?.role !== 'manager' || !deny.demotedSerials?.length) return deny;
  const serials = serialsOf(rec, 'manager');
  return { ...deny, demotedSerials: deny.demotedSerials.filter((s) => !serials.includes(s)) };
}

/** Renewal into another role: the serials of the old role are revoked outright. */
export function revokeOnRoleChange(deny: DenyList, prev: NodeCertRecord | undefined, newRole: NodeCertificate['role']): DenyList {
  const stale = [...new Set([prev?.role, ...(prev?.history ?? []).map((h) => h.role)])].filter((r): r is NodeCertificate['role'] => !!r && r !== newRole);
  const serials = stale.flatMap((r) => serialsOf(prev, r));
  if (serials.length === 0) return deny;
  return {
    ...deny,
    revokedSerials: appendBounded(deny.revokedSerials, serials, MAX_REVOKED_SERIALS),
    demotedSerials: (deny.demotedSerials ?? []).filter((s) => !serials.includes(s)),
  };
}

/** `node rm`: the node id and every serial it is known to hold. */
export function revokeOnRemove(deny: DenyList, nodeId: string, rec: NodeCertRecord | undefined): DenyList {
  return {
    ...deny,
    removedNodes: appendBounded(deny.removedNodes, [nodeId], Number.MAX_SAFE_INTEGER),
    revokedSerials: appendBounded(deny.revokedSerials, serialsOf(rec), MAX_REVOKED_SERIALS),
  };
}

/**
 * What a caller needing one of `roles` is refused by: removed node ids and revoked serials always; the
 * demoted managers' serials unless the endpoint also takes workers (the dispatcher, where they renew).
 */
export function deniedFor(deny: DenyList | undefined, roles: readonly string[]): Set<string> {
  const out = new Set<string>([...(deny?.removedNodes ?? []), ...(deny?.revokedSerials ?? [])]);
  if (!roles.includes('worker')) for (const s of deny?.demotedSerials ?? []) out.add(s);
  return out;
}

// ------------------------------------------------------------------------------------------- admins

export class AdminError extends Error {
  override readonly name = 'AdminError';
  constructor(
    readonly code: 'EXISTS' | 'NOT_FOUND' | 'AMBIGUOUS' | 'INVALID',
    message: string,
  ) {
    super(message);
  }
}

export const ADMIN_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** Records a newly issued admin certificate. A name held by an unrevoked, unexpired admin is taken. */
export function addAdmin(admins: readonly AdminRecord[], a: { name: string; serial: string; notAfter: Date; issuer?: string }, now: Date): AdminRecord[] {
  if (!ADMIN_NAME_RE.test(a.name))
    throw new AdminError(
      'INVALID',
      `admin name must be 1-64 characters of [A-Za-z0-9._-] starting with a letter or digit, got ${JSON.stringify(a.name.slice(0, 80))}`,
    );
  if (admins.some((x) => x.name === a.name && !x.revoked && !expired(x, now))) {
    throw new AdminError('EXISTS', `an admin named ${a.name} already holds a valid certificate; revoke it first or pick another name`);
  }
  const rec: AdminRecord = {
    name: a.name,
    serial: a.serial,
    notAfter: a.notAfter.toISOString(),
    issuedAt: now.toISOString(),
    revoked: false,
    ...(a.issuer ? { issuer: a.issuer } : {}),
  };
  return pruneAdmins([...admins.filter((x) => x.name !== a.name), rec], now);
}

/** A renewal of admin `name`: new current certificate, the old one kept in its history. */
export function renewAdmin(admins: readonly AdminRecord[], name: string, a: { serial: string; notAfter: Date; issuer?: string }, now: Date): AdminRecord[] {
  const cur = admins.find((x) => x.name === name && !x.revoked);
  if (!cur) throw new AdminError('NOT_FOUND', `no valid admin certificate named ${name} to renew`);
  const history = [...(cur.history ?? []), { serial: cur.serial, notAfter: cur.notAfter }].filter((h) => !expired(h, now)).slice(-MAX_CERT_HISTORY);
  const { issuer: _was, ...rest } = cur;
  const next: AdminRecord = {
    ...rest,
    serial: a.serial,
    notAfter: a.notAfter.toISOString(),
    issuedAt: now.toISOString(),
    history,
    ...(a.issuer ? { issuer: a.issuer } : {}),
  };
  return admins.map((x) => (x === cur ? next : x));
}

/** Finds the admin `ref` names: a name, or a serial (current or earlier) of one. */
export function findAdmin(admins: readonly AdminRecord[], ref: string): AdminRecord {
  const r = ref.toLowerCase().replace(/:/g, '');
  const byName = admins.filter((x) => x.name === ref);
  const live = byName.filter((x) => !x.revoked);
  if (live.length === 1) return live[0]!;
  if (byName.length >= 1) return byName[byName.length - 1]!;
  const bySerial = admins.filter((x) => x.serial === r || (x.history ?? []).some((h) => h.serial === r));
  if (bySerial.length === 1) return bySerial[0]!;
  throw new AdminError('NOT_FOUND', `no admin certificate named or with serial ${JSON.stringify(ref.slice(0, 80))}`);
}

/** Revokes admin `ref`: every serial it holds joins the deny list. */
export function revokeAdmin(admins: readonly AdminRecord[], deny: DenyList, ref: string): { admins: AdminRecord[]; deny: DenyList; revoked: AdminRecord } {
  const a = findAdmin(admins, ref);
  const serials = [a.serial, ...(a.history ?? []).map((h) => h.serial)];
  const revoked = { ...a, revoked: true };
  return {
    admins: admins.map((x) => (x === a ? revoked : x)),
    deny: { ...deny, revokedSerials: appendBounded(deny.revokedSerials, serials, MAX_REVOKED_SERIALS) },
    revoked,
  };
}

/** Keeps the record list bounded: expired entries go first, then the oldest revoked ones. */
export function pruneAdmins(admins: readonly AdminRecord[], now: Date): AdminRecord[] {
  let out = admins.filter((x) => !expired(x, now));
  while (out.length > MAX_ADMINS) {
    const i = out.findIndex((x) => x.revoked);
    out = out.filter((_, j) => j !== (i >= 0 ? i : 0));
  }
  return out;
}
