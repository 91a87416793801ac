// Root CA rotation as a pure state machine (issue 15; docs/design/ca.md, "Root CA rotation"). The
// cluster object's `rootCa` is the whole state: this file says which key issues certificates, which
// roots a manager accepts, what the leader's reconciler (rotation-runner.ts) does next, and what the
// completion writes. No clock, no store, no network: time comes in as `now`, nodes as plain records.
//
//                      cluster ca --rotate                       every node's session presents a
//      ┌──────────┐   (new root + cross-signed copy)   ┌──────────┐   cert of the new key (down nodes  ┌──────────┐
//      │   IDLE   │ ─────────────────────────────────▶ │ ROTATING │ ─ block it; `node rm` unblocks) ▶│   IDLE   │
//      │ root R0  │                                    │ anchor R0│                                   │ root R1  │
//      └──────────┘                                    │ issuer R1│ ◀─┐ cluster ca --rotate again:   │ chain X  │
//                                                      └──────────┘ ──┘ new target R2, cross-signed  └──────────┘
//                                                                       by R0 (still the anchor)       │
//                                                                                                      ▼
//                                                                    nodes whose trust anchor is still R0
//                                                                    are nudged to renew: the answer carries R1
//
// ROTATING: the anchor (what nodes trust, what join tokens pin, what /v1/ca serves) stays R0; new
//   certificates are issued by R1's key and served with X = R1 cross-signed by R0, so a peer trusting R0
//   verifies them (leaf → X → R0) and one trusting R1 stops at R1. Managers accept leaves of R0 and R1.
//   The reconciler nudges each connected node whose session does not yet present a certificate of R1's
//   key to renew (at most every NUDGE_EVERY_MS), and completes when none is left. A node that renews
//   moves its session to a new connection made with the new certificate before closing the old one
//   (worker/agent.ts handover), so the dispatcher sees what it holds (NodeCertificate.presented) and no
//   session is closed at completion; a node whose renewal answer was lost still presents R0 and is
//   nudged again instead of being stranded.
// Completion (one store write): R1 becomes the anchor, X stays as `chainPem` (served after every leaf
//   until the next rotation, for nodes that have not swapped their anchor yet), join tokens keep their
//   secrets and take R1's digest. From then on a certificate from R0 is refused: a node that was away
//   the whole rotation must rejoin, and admin certificates not reissued during it stop working.
import type { Cluster, Node, RootCa, RootRotation } from '../../api/objects.ts';
import type { RotationPhase, RotationProgress } from '../../api/ca-rotation.ts';
import { caDigest } from './pki.ts';

export type { RotationPhase, RotationProgress };
import { formatJoinToken, parseJoinToken } from './tokens.ts';

/** How often the reconciler asks the same node to renew while it has not. */
export const NUDGE_EVERY_MS = 10_000;

export function phaseOf(root: RootCa): RotationPhase {
  return root.rotation ? 'rotating' : 'idle';
}

/** Who issues certificates now, what goes after the leaf, and the anchor handed to the holder. */
export interface Issuer {
  certPem: string;
  keyPem: string;
  /** Intermediates to append to every issued leaf ('' when none). */
  chainPem: string;
  /** The root the holder should trust (its ca.crt). */
  anchorPem: string;
  /** sha256 of the issuing root's certificate: recorded as NodeCertificate.issuer. */
  digest: string;
  /** sha256 of the anchor: recorded as NodeCertificate.anchor. */
  anchorDigest: string;
}

export function issuerOf(root: RootCa): Issuer {
  const r = root.rotation;
  if (r) {
    return {
      certPem: r.newCertPem,
      keyPem: r.newKeyPem,
      chainPem: r.crossSignedPem,
      anchorPem: root.caCertPem,
      digest: caDigest(r.newCertPem),
      anchorDigest: caDigest(root.caCertPem),
    };
  }
  const d = caDigest(root.caCertPem);
  return { certPem: root.caCertPem, keyPem: root.caKeyPem, chainPem: root.chainPem ?? '', anchorPem: root.caCertPem, digest: d, anchorDigest: d };
}

/** A leaf as served: the certificate, then the issuer's intermediates. */
export function withChain(leafPem: string, issuer: Issuer): string {
  const leaf = leafPem.endsWith('\n') ? leafPem : `${leafPem}\n`;
  return issuer.chainPem ? `${leaf}${issuer.chainPem.trim()}\n` : leaf;
}

/** The roots a manager accepts a peer's leaf from (the authorization check, manager.certProblem). */
export function acceptedRoots(root: RootCa): string[] {
  return root.rotation ? [root.caCertPem, root.rotation.newCertPem] : [root.caCertPem];
}

/** IDLE or ROTATING → ROTATING towards `next`. A rotation in progress is replaced (its target dropped). */
export function beginRotation(root: RootCa, next: Omit<RootRotation, 'startedAt'>, now: Date): RootCa {
  if (caDigest(next.newCertPem) === caDigest(root.caCertPem)) throw new RotationError('the new root CA is the current one');
  return { ...root, rotation: { ...next, startedAt: now.toISOString() } };
}

export class RotationError extends Error {
  override readonly name = 'RotationError';
}

/** What the reconciler needs of a node. */
export interface NodeView {
  id: string;
  hostname: string;
  state: string;
  /** Digest of the root whose key issued the node's current certificate (NodeCertificate.issuer). */
  issuer?: string | undefined;
  /** Digest of the anchor last handed to the node (NodeCertificate.anchor). */
  anchor?: string | undefined;
  /** Digest of the root that issued the certificate the node's latest session presented (NodeCertificate.presented). */
  presented?: string | undefined;
}

export function nodeView(n: Node): NodeView {
  const c = n.certificate;
  return { id: n.id, hostname: n.description.hostname, state: n.status.state, issuer: c?.issuer, anchor: c?.anchor, presented: c?.presented };
}

/**
 * A node has moved to the root `target` once a session of it presented a certificate of that key, not
 * when one was issued: the answer to a renewal can be lost on its way (the session drops), and a rotation
 * completed then would leave the node holding only a certificate of the root no longer accepted.
 */
function movedTo(n: NodeView, target: string): boolean {
  return n.presented === target;
}

export function progress(root: RootCa, nodes: readonly NodeView[], admins: Cluster['admins'] = []): RotationProgress {
  const rootDigest = caDigest(root.caCertPem);
  const base = { rootDigest, ...(root.lastRotatedAt ? { lastRotatedAt: root.lastRotatedAt } : {}), nodes: nodes.length };
  const r = root.rotation;
  if (!r) return { phase: 'idle', ...base, reissued: nodes.length, pending: [] };
  const target = caDigest(r.newCertPem);
  const pending = nodes.filter((n) => !movedTo(n, target)).map((n) => ({ id: n.id, hostname: n.hostname, state: n.state }));
  return {
    phase: 'rotating',
    ...base,
    newRootDigest: target,
    startedAt: r.startedAt,
    external: r.external,
    reissued: nodes.length - pending.length,
    pending,
    adminsPending: (admins ?? []).filter((a) => !a.revoked && a.issuer !== target).map((a) => a.name),
  };
}

export interface ReconcileStep {
  /** Write the completion (completeRotation) now. */
  complete: boolean;
  /** Nodes to ask to renew (each connected, each not asked within NUDGE_EVERY_MS). */
  nudge: string[];
}

/**
 * One pass of the leader's reconciler. ROTATING: nudge the nodes not yet reissued, or complete when
 * there are none. IDLE after a rotation: nudge nodes whose anchor is still an earlier root, so their
 * trust stores lose it. `lastNudged` is the runner's memory (lost on a leader change: harmless, the new
 * leader nudges again); `connected` says which nodes have a session to receive a nudge.
 */
export function reconcile(
  root: RootCa,
  nodes: readonly NodeView[],
  connected: (id: string) => boolean,
  lastNudged: ReadonlyMap<string, number>,
  now: number,
): ReconcileStep {
  const due = (id: string) => connected(id) && now - (lastNudged.get(id) ?? Number.NEGATIVE_INFINITY) >= NUDGE_EVERY_MS;
  const r = root.rotation;
  if (r) {
    const target = caDigest(r.newCertPem);
    const pending = nodes.filter((n) => !movedTo(n, target));
    if (pending.length === 0) return { complete: true, nudge: [] };
    return { complete: false, nudge: pending.filter((n) => due(n.id)).map((n) => n.id) };
  }
  if (!root.lastRotatedAt) return { complete: false, nudge: [] };
  const anchor = caDigest(root.caCertPem);
  return { complete: false, nudge: nodes.filter((n) => n.anchor !== anchor && due(n.id)).map((n) => n.id) };
}

/** ROTATING → IDLE: the new root becomes the anchor; join tokens keep their secrets, take its digest. */
export function completeRotation(root: RootCa, tokens: Cluster['joinTokens'], now: Date): { rootCa: RootCa; joinTokens: Cluster['joinTokens'] } {
  const r = root.rotation;
  if (!r) throw new RotationError('no root rotation is in progress');
  const digest = caDigest(r.newCertPem);
  const retarget = (t: string) => formatJoinToken({ ...parseJoinToken(t), caDigest: digest });
  return {
    rootCa: { caCertPem: r.newCertPem, caKeyPem: r.newKeyPem, chainPem: r.crossSignedPem, lastRotatedAt: now.toISOString() },
    joinTokens: { worker: retarget(tokens.worker), manager: retarget(tokens.manager) },
  };
}
