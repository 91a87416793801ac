// How managers share the data-encryption keys: GET /keys/v1/dek on the secure port, answered only to a
// caller holding a valid, unrevoked MANAGER certificate of this cluster (the same rule as /raft/v1), so
// the keys travel only inside mutual TLS between managers and never through the Raft log. A manager that
// joins, or a worker that is promoted, fetches them from a peer before it can open secrets.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { httpsJson, type ManagerTls } from '../../transport/https.ts';
import { ApiError, sendError, sendJson } from '../api/http.ts';
import { decodeKeyRing, encodeKeyRing } from './keyfile.ts';
import type { KeyRing } from './keyring.ts';

export const KEYS_PATH = '/keys/v1/dek';

export interface KeyEndpointDeps {
  ring: () => KeyRing | null;
  /** Why a DER client certificate may not call this, or null (Manager.certProblem). */
  certProblem: (raw: Buffer | undefined, roles: string[]) => string | null;
}

/** Serves GET /keys/v1/dek; false when the request is for another path. */
export function serveKeys(req: IncomingMessage, res: ServerResponse, d: KeyEndpointDeps): boolean {
  const path = (req.url ?? '').split('?')[0];
  if (path !== KEYS_PATH) return false;
  try {
    if (req.method !== 'GET') throw new ApiError(405, 'EMETHOD', `${req.method} is not allowed on ${KEYS_PATH}`);
    const tls = req.socket as TLSSocket;
    const raw = tls.authorized ? tls.getPeerCertificate().raw : undefined;
    const problem = d.certProblem(raw, ['manager']);
    if (problem) throw new ApiError(403, 'EFORBIDDEN', problem);
    const ring = d.ring();
    if (!ring) throw new ApiError(503, 'ENOKEYS', 'this manager has no data-encryption key yet');
    sendJson(res, 200, encodeKeyRing(ring), { 'cache-control': 'no-store' });
  } catch (e) {
    sendError(res, e);
  }
  return true;
}

/**
 * Fetches the key ring from the first of `managers` that answers with one. Throws naming every
 * manager tried and why it failed.
 */
export async function fetchKeyRing(managers: readonly string[], tls: ManagerTls): Promise<KeyRing> {
  const why: string[] = [];
  for (const m of managers) {
    try {
      const out = await httpsJson(m, 'GET', KEYS_PATH, undefined, tls);
      if (out.status !== 200) {
        why.push(`${m}: HTTP ${out.status} ${String(out.body?.error?.message ?? '')}`.trim());
        continue;
      }
      return decodeKeyRing(out.body);
    } catch (e) {
      why.push(`${m}: ${(e as Error).message}`);
    }
  }
  throw new Error(`could not fetch the data-encryption key from any manager (${why.join('; ') || 'none known'})`);
}
