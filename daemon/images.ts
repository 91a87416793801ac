// Cluster-internal image distribution (see docs/design/images.md):
//
// * `service create/update` asks the leader to pin the image: the leader looks in its own node's image
//   store, then asks every other manager over the mutual-TLS port (`GET /images/v1/resolve`), and pins the
//   first answer as `name:tag@sha256:<config digest>`. Nothing found → the command fails with the reason.
// * A node that must run a pinned image it does not have fetches it from the managers
//   (`GET /images/v1/export`): the manager streams a deterministic OCI layout made of the layers' original
//   blobs, and the node loads it with all the usual checks (digests re-verified, no traversal, …), then
//   checks the loaded image has the pinned digest. One fetch per digest at a time; failures are retried by
//   the executor's next attempt, not here.
import { createWriteStream } from 'node:fs';
import * as fsp from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { request as httpsRequest } from 'node:https';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { TLSSocket } from 'node:tls';
import { ApiError, sendError, sendJson } from '../manager/api/http.ts';
import { ImageError, type ImageInfo, type ImageStore } from '../worker/images/store.ts';
import { normalizeName } from '../worker/images/archive.ts';
import { managerRequest } from '../transport/https.ts';

export interface Creds {
  key: string;
  cert: string;
  ca: string;
}

export const IMAGES_PREFIX = '/images/v1/';

/**
 * Exports a manager runs at once: each writes a whole image to its disk before streaming it, so an
 * unbounded number (a worker certificate asking in a loop) would fill the disk and the event loop
 * (security review, finding 9). Beyond it the node is told 503 and retries on its next attempt.
 */
export const MAX_CONCURRENT_EXPORTS = 4;
let exporting = 0;

/** The pinned form of an image the store holds: `name@sha256:<config digest>`. */
export function pinnedRef(store: ImageStore, ref: string): string | null {
  let info: ImageInfo | undefined;
  try {
    info = store.resolve(ref);
  } catch {
    return null;
  }
  if (!info) return null;
  const at = ref.indexOf('@');
  const name = at > 0 ? ref.slice(0, at) : /^(sha256:)?[a-f0-9]{4,64}$/.test(ref) ? info.name : normalizeName(ref);
  return `${name}@${info.digest}`;
}

/**
 * Serves `/images/v1/*` on a manager's secure port. `allowed(cert, roles)` returns the reason a client
 * certificate is refused, or null. Returns false for other paths.
 */
export async function serveImages(
  req: IncomingMessage,
  res: ServerResponse,
  store: () => ImageStore,
  allowed: (raw: Buffer | undefined, roles: string[]) => string | null,
  /** Whether the client (certificate CN and role) may export `ref`; absent: any authorized client may. */
  mayExport?: (cn: string, role: string, ref: string) => boolean,
): Promise<boolean> {
  const url = new URL(req.url ?? '/', 'https://x');
  if (!url.pathname.startsWith(IMAGES_PREFIX)) return false;
  try {
    const tls = req.socket as TLSSocket;
    const peer = tls.authorized ? tls.getPeerCertificate() : undefined;
    const problem = peer ? allowed(peer.raw, ['worker', 'manager']) : 'a client certificate signed by the cluster CA is required';
    if (problem) throw new ApiError(403, 'EFORBIDDEN', problem);
    const ref = url.searchParams.get('ref') ?? '';
    if (ref === '' || ref.length > 1024) throw new ApiError(400, 'EINVAL', 'ref is required (at most 1024 characters)');
    const op = url.pathname.slice(IMAGES_PREFIX.length);
    if (req.method === 'GET' && op === 'resolve') {
      const pinned = pinnedRef(store(), ref);
      if (!pinned) throw new ApiError(404, 'ENOTFOUND', `no image ${ref} on this node`);
      sendJson(res, 200, { ref: pinned });
      return true;
    }
    if (req.method === 'GET' && op === 'export') {
      const s = store();
      if (!pinnedRef(s, ref)) throw new ApiError(404, 'ENOTFOUND', `no image ${ref} on this node`);
      if (mayExport && peer && !mayExport(String(peer.subject?.CN), String(peer.subject?.OU), ref)) {
        throw new ApiError(403, 'EFORBIDDEN', `image ${ref} is not the image of a task assigned to this node`);
      }
      if (exporting >= MAX_CONCURRENT_EXPORTS) throw new ApiError(503, 'EBUSY', `this manager is exporting ${exporting} images already; try again shortly`);
      exporting++;
      const tmp = path.join(s.root, 'tmp', `export-${randomBytes(6).toString('hex')}.tar`);
      try {
        const e = await s.exportImage(ref, tmp);
        res.writeHead(200, { 'content-type': 'application/x-tar', 'content-length': e.bytes, 'x-shoal-image-digest': e.digest });
        await pipeline((await fsp.open(tmp)).createReadStream(), res);
      } finally {
        exporting--;
        await fsp.rm(tmp, { force: true });
      }
      return true;
    }
    throw new ApiError(404, 'ENOTFOUND', `no endpoint ${req.method} ${url.pathname}`);
  } catch (e) {
    if (!res.headersSent) sendError(res, e);
    else res.destroy(e as Error);
    return true;
  }
}

function get(remote: string, pathAndQuery: string, creds: Creds, timeoutMs: number): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest({ ...managerRequest(remote, creds), path: pathAndQuery, timeout: timeoutMs }, resolve);
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}

async function readBody(res: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of res) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

function errorText(body: string): string {
  try {
    const j = JSON.parse(body) as { error?: { message?: string }; message?: string };
    return j.error?.message ?? j.message ?? body;
  } catch {
    return body;
  }
}

/**
 * The leader's image resolver: local store first, then every other manager. Throws an Error whose
 * message says where it looked.
 */
export async function resolveInCluster(
  ref: string,
  store: ImageStore,
  peers: string[],
  creds: Creds,
  timeoutMs = 3_000,
  pull?: (ref: string) => Promise<string | null>,
): Promise<string> {
  const local = pinnedRef(store, ref);
  if (local) return local;
  const reasons: string[] = [];
  const answers = await Promise.all(
    peers.map(async (p) => {
      try {
        const res = await get(p, `${IMAGES_PREFIX}resolve?ref=${encodeURIComponent(ref)}`, creds, timeoutMs);
        const body = await readBody(res);
        if (res.statusCode === 200) return (JSON.parse(body) as { ref: string }).ref;
        if (res.statusCode !== 404) reasons.push(`${p}: ${errorText(body)}`);
      } catch (e) {
        reasons.push(`${p}: ${(e as Error).message}`);
      }
      return null;
    }),
  );
  const hit = answers.find((a) => a !== null);
  if (hit) return hit;
  // A reference naming a registry is pulled into this (the leader's) node, then served to the others.
  if (pull) {
    try {
      const pulled = await pull(ref);
      if (pulled) return pulled;
    } catch (e) {
      throw new Error(`not on any manager, and the pull failed: ${(e as Error).message}`);
    }
  }
  const unreachable = reasons.length ? ` (could not ask: ${reasons.join('; ')})` : '';
  throw new Error(`not found on any manager${unreachable}; load it on a manager with \`shoal image load\``);
}

/**
 * Fetches a pinned image from the managers into this node's store. Concurrent calls for the same
 * digest share one transfer.
 */
export class ImageFetcher {
  private inflight = new Map<string, Promise<void>>();

  constructor(
    private readonly store: ImageStore,
    private readonly managers: () => string[],
    private readonly creds: () => Creds,
    private readonly log: (l: string) => void = () => {},
  ) {}

  has(ref: string): boolean {
    return pinnedRef(this.store, ref) !== null;
  }

  ensure(ref: string): Promise<void> {
    if (this.has(ref)) return Promise.resolve();
    const at = ref.indexOf('@');
    if (at < 0) return Promise.reject(new ImageError(`image ${ref} is not on this node and is not pinned to a digest`));
    const digest = ref.slice(at + 1);
    let p = this.inflight.get(digest);
    if (!p) {
      p = this.fetch(ref, digest).finally(() => this.inflight.delete(digest));
      this.inflight.set(digest, p);
    }
    return p;
  }

  private async fetch(ref: string, digest: string): Promise<void> {
    const reasons: string[] = [];
    const name = ref.slice(0, ref.indexOf('@'));
    for (const m of this.managers()) {
      const tmp = path.join(this.store.root, 'tmp', `fetch-${randomBytes(6).toString('hex')}.tar`);
      try {
        const t0 = Date.now();
        const res = await get(m, `${IMAGES_PREFIX}export?ref=${encodeURIComponent(ref)}`, this.creds(), 30_000);
        if (res.statusCode !== 200) {
          const body = await readBody(res);
          if (res.statusCode !== 404) reasons.push(`${m}: ${errorText(body)}`);
          continue;
        }
        // Never more on disk than the store would accept to load (a broken or hostile peer could stream forever).
        const max = this.store.limits.maxArchiveBytes;
        const declared = Number(res.headers['content-length'] ?? 0);
        if (declared > max) throw new ImageError(`${m} offers ${declared} bytes, over the archive limit of ${max}`);
        let got = 0;
        const cap = new Transform({
          transform(chunk: Buffer, _enc, done) {
            got += chunk.length;
            done(got > max ? new ImageError(`${m} sent more than the archive limit of ${max} bytes`) : null, chunk);
          },
        });
        await pipeline(res, cap, createWriteStream(tmp, { mode: 0o600 }));
        const loaded = await this.store.load(tmp, { tag: name });
        if (loaded.digest !== digest && this.store.resolve(digest)?.digest !== loaded.digest) {
          throw new ImageError(`${m} sent image ${loaded.digest}, expected ${digest}`);
        }
        this.log(`image ${ref} fetched from manager ${m} in ${Date.now() - t0} ms`);
        return;
      } catch (e) {
        reasons.push(`${m}: ${(e as Error).message}`);
      } finally {
        await fsp.rm(tmp, { force: true });
      }
    }
    throw new ImageError(`image ${ref}: no manager could provide it${reasons.length ? ` (${reasons.join('; ')})` : ''}`);
  }
}

/** True when a reference names a registry explicitly (`host.domain/…`, `host:port/…`, `localhost/…`). */
export function namesRegistry(ref: string): boolean {
  const first = ref.split('/')[0]!;
  return ref.includes('/') && (first.includes('.') || first.includes(':') || first === 'localhost');
}
