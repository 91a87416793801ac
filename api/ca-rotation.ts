// What `GET /v1/ca/rotation` answers (and `POST /v1/ca/rotate`): the root CA's state and, during a root
// rotation, who still holds a certificate from the old root. The manager computes it
// (manager/ca/rotation.ts progress); `shoal cluster ca` prints it.

export type RotationPhase = 'idle' | 'rotating';

export interface RotationProgress {
  phase: RotationPhase;
  /** Digest of the anchor (what join tokens pin). */
  rootDigest: string;
  newRootDigest?: string;
  startedAt?: string;
  external?: boolean;
  lastRotatedAt?: string;
  nodes: number;
  /** Nodes whose certificate the new root's key issued. */
  reissued: number;
  /** Nodes still holding a certificate from the old root (down ones block completion). */
  pending: { id: string; hostname: string; state: string }[];
  /** Admins whose current certificate the new root's key has not issued (refused after completion). */
  adminsPending?: string[];
}
