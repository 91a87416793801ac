// The Engine API's HTTP conventions: errors are `{"message": …}` with the status the control API's
// error mapping gives (404 for a missing object above all: `stack deploy`, `docker inspect` and
// `service logs` branch on it), a version prefix `/vX.Y` that may or may not be there (Portainer and
// dockerode send unversioned paths), and bodies read as the control API reads them (bounded).
import type { IncomingMessage, ServerResponse } from 'node:http';
import { errorStatus } from '../api/errors.ts';
import { ApiError, badRequest, requestBodyUnread, sendJsonAndClose } from '../api/http.ts';
import { API_VERSION, MIN_API_VERSION } from './deps.ts';

export interface DockerCtx {
  /** The API version the client asked for (the path's, else the current one). */
  version: string;
}

export function sendDocker(res: ServerResponse, status: number, body: unknown): void {
  if (status === 204 || body === undefined) {
    res.writeHead(status, { 'api-version': API_VERSION });
    res.end();
    return;
  }
  const data = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data), 'api-version': API_VERSION });
  res.end(data);
}

/** Any thrown error as the engine's error answer. A redirect the control API would give is a 503 here: Docker clients do not follow it. */
export function sendDockerError(res: ServerResponse, e: unknown): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const s = errorStatus(e);
  const status = s.status === 421 ? 503 : s.status;
  // Before the body is read (a 413 above all): answered at once, closed once the body is discarded.
  if (status === 413 || requestBodyUnread(res)) sendJsonAndClose(res, status, { message: s.message }, { 'api-version': API_VERSION });
  else sendDocker(res, status, { message: s.message });
}

function cmpVersion(a: string, b: string): number {
  const [a1, a2] = a.split('.').map(Number) as [number, number];
  const [b1, b2] = b.split('.').map(Number) as [number, number];
  return a1 !== b1 ? a1 - b1 : a2 - b2;
}

/** Splits `/v1.47/services` into the version and `/services`; refuses versions outside what is served. */
export function splitVersion(url: string): { version: string; url: string } {
  const m = /^\/v(\d+\.\d+)(\/.*)?$/.exec(url.split('?')[0] ?? '');
  if (!m) return { version: API_VERSION, url };
  const version = m[1]!;
  if (cmpVersion(version, MIN_API_VERSION) < 0)
    throw badRequest(
      `client version ${version} is too old. Minimum supported API version is ${MIN_API_VERSION}, please upgrade your client to a newer version`,
    );
  if (cmpVersion(version, API_VERSION) > 0) throw badRequest(`client version ${version} is too new. Maximum supported API version is ${API_VERSION}`);
  return { version, url: url.slice(m[1]!.length + 2) || '/' };
}

export function query(req: IncomingMessage): URLSearchParams {
  return new URL(req.url ?? '/', 'http://x').searchParams;
}

/** The `version` query parameter every update must carry (the object's Version.Index that was read). */
export function requiredVersion(req: IncomingMessage): number {
  const raw = query(req).get('version');
  if (raw === null || raw === '') throw badRequest('invalid cluster node version: the update needs ?version=<Version.Index that was read>');
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < 0) throw badRequest(`invalid version ${JSON.stringify(raw)}: a non-negative integer is required`);
  return n;
}

/** The error a stale `version` gets: the words Docker clients and scripts look for. */
export function outOfSequence(kind: string, name: string, sent: number, current: number): ApiError {
  return new ApiError(
    409,
    'ECONFLICT',
    `update out of sequence: ${kind} ${name} is at version ${current}, the update was based on version ${sent}; inspect it again and retry`,
  );
}
