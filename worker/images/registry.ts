// A registry v2 pull client (the OCI distribution API): pulls an image into the node's ImageStore.
//
//   GET /v2/                         ping: HTTPS or (allow-listed) plain HTTP, and the auth challenge
//   GET /v2/<repo>/manifests/<ref>   a manifest or an index (manifest list); an index picks the platform
//   GET /v2/<repo>/blobs/<digest>    the config, then each layer not already in the store (redirects followed)
//
// Every blob is hashed while it downloads and refused unless it matches its descriptor's digest and size;
// a manifest pulled by digest must hash to that digest. Layers are downloaded (a few at a time) into a
// staging dir under the store's tmp/, then handed to ImageStore.importImage, which unpacks them with all
// the checks load() applies and renames each into place only once its digests are right. Layers whose chain
// id the store already has are not downloaded at all. See docs/design/images.md ("Registry pull").
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as http from 'node:http';
import * as https from 'node:https';
import * as path from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import * as tls from 'node:tls';
import { DIGEST_RE, ImageError, sha256 } from './archive.ts';
import type { ImageSpec, LayerRef } from './archive.ts';
import { DOCKER_HUB, DOCKER_HUB_ENDPOINT, parseReference } from './reference.ts';
import type { ImageReference } from './reference.ts';
import { chainIds } from './store.ts';
import type { BlobSource, ImageStore } from './store.ts';

export class RegistryError extends ImageError {
  constructor(message: string) {
    super(message);
    this.name = 'RegistryError';
  }
}

export type RegistryAuth = { username: string; password: string } | { token: string };

export interface Platform {
  os: string;
  /** Go/OCI architecture name: amd64, arm64, arm, 386, ppc64le, s390x, riscv64. */
  arch: string;
  variant?: string;
}

export type PullProgress =
  | { event: 'resolved'; manifestDigest: string; configDigest: string; layers: number; reused: number }
  | { event: 'layer-reused'; index: number; digest: string }
  | { event: 'layer-progress'; index: number; digest: string; bytes: number; total: number }
  | { event: 'layer-downloaded'; index: number; digest: string; bytes: number }
  | { event: 'done'; name: string; digest: string; manifestDigest: string };

export interface PullOptions {
  /** Credentials: user and password (Basic, or exchanged at a Bearer token server), or a ready bearer token. */
  auth?: RegistryAuth;
  /** Registries (`host` or `host:port`, as in the reference) that may be reached over plain HTTP. */
  insecureRegistries?: readonly string[];
  /** An extra CA (PEM) trusted for HTTPS, on top of the system roots. */
  ca?: string;
  /** Which image of a multi-platform index to pull. Default: linux and this machine's architecture. */
  platform?: Platform;
  signal?: AbortSignal;
  onProgress?: (p: PullProgress) => void;
  /** How many layers download at once (default 3). */
  concurrency?: number;
  /** A request with no bytes moving for this long fails (default 30 s). */
  timeoutMs?: number;
}

export interface PullResult {
  /** The name recorded in the store: `busybox:latest`, `127.0.0.1:5000/app:1`, `app@sha256:…`. */
  name: string;
  /** The config digest: the image id. */
  digest: string;
  /** The digest of the manifest (or index) the reference names: pulling `repo@<manifestDigest>` gets this image again. */
  manifestDigest: string;
}

export const MEDIA_TYPES = {
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
} as const;

const MANIFEST_TYPES = new Set<string>([MEDIA_TYPES.dockerManifest, MEDIA_TYPES.ociManifest]);
const INDEX_TYPES = new Set<string>([MEDIA_TYPES.dockerList, MEDIA_TYPES.ociIndex]);
const CONFIG_TYPES = new Set<string>([MEDIA_TYPES.dockerConfig, MEDIA_TYPES.ociConfig]);
const LAYER_TYPES = new Set<string>([
  'application/vnd.oci.image.layer.v1.tar',
  'application/vnd.oci.image.layer.v1.tar+gzip',
  'application/vnd.oci.image.layer.nondistributable.v1.tar',
  'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip',
  'application/vnd.docker.image.rootfs.diff.tar.gzip',
  'application/vnd.docker.image.rootfs.diff.tar',
]);
const ACCEPT = [MEDIA_TYPES.ociIndex, MEDIA_TYPES.dockerList, MEDIA_TYPES.ociManifest, MEDIA_TYPES.dockerManifest].join(', ');

const MAX_MANIFEST = 4 << 20;
const MAX_CONFIG = 16 << 20;
const MAX_SMALL = 1 << 20;
const MAX_REDIRECTS = 5;
const MAX_INDEX_DEPTH = 4;

/** Go's name for this machine's architecture (what image indexes use). */
export function defaultPlatform(): Platform {
  const arch =
    ({ x64: 'amd64', arm64: 'arm64', arm: 'arm', ia32: '386', ppc64: 'ppc64le', s390x: 's390x', riscv64: 'riscv64' } as Record<string, string>)[process.arch] ??
    process.arch;
  return { os: 'linux', arch };
}

function platformString(p: { os?: unknown; architecture?: unknown; arch?: unknown; variant?: unknown }): string {
  return [p.os, p.architecture ?? p.arch, p.variant].filter((x) => typeof x === 'string' && x !== '').join('/');
}

function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

// ------------------------------------------------------------------------------------------- transport

/** A failure below HTTP (DNS, TCP, TLS, timeout): the registry could not be talked to at all. */
class NetError extends Error {
  constructor(
    readonly url: URL,
    readonly err: Error & { code?: string },
  ) {
    super(err.message);
  }
}

interface RequestInit {
  method?: string;
  headers?: Record<string, string>;
  /** Skip certificate checks (only for allow-listed insecure registries). */
  insecureTls?: boolean;
}

/** Plain node:http(s) requests over keep-alive agents; redirects are the caller's business. */
class Transport {
  private readonly secure: https.Agent;
  private readonly unverified: https.Agent;
  private readonly plain: http.Agent;

  constructor(
    ca: string | undefined,
    private readonly signal: AbortSignal,
    private readonly timeoutMs: number,
  ) {
    this.secure = new https.Agent({ keepAlive: true, maxSockets: 8, ...(ca ? { ca: [...tls.rootCertificates, ca] } : {}) });
    this.unverified = new https.Agent({ keepAlive: true, maxSockets: 8, rejectUnauthorized: false });
    this.plain = new http.Agent({ keepAlive: true, maxSockets: 8 });
  }

  request(url: URL, init: RequestInit = {}): Promise<http.IncomingMessage> {
    return new Promise((resolve, reject) => {
      if (this.signal.aborted) return reject(abortError());
      const isHttps = url.protocol === 'https:';
      const agent = isHttps ? (init.insecureTls ? this.unverified : this.secure) : this.plain;
      // The abort signal is wired by hand, and only while this request/response is alive: a signal given to
      // http.request stays attached after the response ends, and aborting then destroys a keep-alive
      // socket that another request may be using by now.
      let response: http.IncomingMessage | null = null;
      const onAbort = () => {
        if (!response) req.destroy(abortError());
        else if (!response.complete) response.destroy(abortError());
      };
      const detach = () => this.signal.removeEventListener('abort', onAbort);
      const req = (isHttps ? https : http).request(url, { method: init.method ?? 'GET', headers: { 'user-agent': 'shoal', ...init.headers }, agent }, (res) => {
        response = res;
        // the same idle limit applies while the body streams
        res.setTimeout(this.timeoutMs, () => res.destroy(new Error(`no data for ${this.timeoutMs} ms`)));
        res.once('end', detach); // the socket goes back to the pool now: it is no longer ours to destroy
        res.once('close', detach);
        resolve(res);
      });
      this.signal.addEventListener('abort', onAbort, { once: true });
      req.setTimeout(this.timeoutMs, () => req.destroy(Object.assign(new Error(`no response within ${this.timeoutMs} ms`), { code: 'ETIMEDOUT' })));
      req.on('error', (e) => {
        detach();
        reject(this.signal.aborted ? e : new NetError(url, e));
      });
      req.end();
    });
  }

  destroy(): void {
    this.secure.destroy();
    this.unverified.destroy();
    this.plain.destroy();
  }
}

function abortError(): Error {
  return Object.assign(new Error('aborted'), { name: 'AbortError', code: 'ABORT_ERR' });
}

async function readBody(res: http.IncomingMessage, max: number, what: string): Promise<Buffer> {
  const len = Number(res.headers['content-length']);
  if (Number.isFinite(len) && len > max) {
    res.destroy();
    throw new RegistryError(`${what}: ${len} bytes is over the limit of ${max}`);
  }
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of res) {
    n += (c as Buffer).length;
    if (n > max) {
      res.destroy();
      throw new RegistryError(`${what}: more than ${max} bytes`);
    }
    chunks.push(c as Buffer);
  }
  return Buffer.concat(chunks);
}

/** The message of a registry error body ({"errors":[{"code","message"}]}), if there is one. */
async function errorDetail(res: http.IncomingMessage): Promise<string> {
  try {
    const b = await readBody(res, MAX_SMALL, 'error body');
    const j = JSON.parse(b.toString('utf8')) as { errors?: Array<{ code?: string; message?: string }> };
    const e = j.errors?.[0];
    if (e) return `: ${[e.code, e.message].filter(Boolean).join(' ')}`;
    return '';
  } catch {
    return '';
  }
}

// ------------------------------------------------------------------------------------------------ auth

interface Challenge {
  scheme: 'basic' | 'bearer';
  params: Record<string, string>;
}

/** Parses WWW-Authenticate (one or more challenges); returns them in order. */
export function parseChallenges(header: string | undefined): Challenge[] {
  if (!header) return [];
  const out: Array<{ scheme: string; params: Record<string, string> }> = [];
  let i = 0;
  const s = header;
  const skipWs = () => {
    while (i < s.length && (s[i] === ' ' || s[i] === '\t')) i++;
  };
  const token = () => {
    const m = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+/.exec(s.slice(i));
    if (!m) return '';
    i += m[0].length;
    return m[0];
  };
  while (i < s.length) {
    skipWs();
    if (s[i] === ',') {
      i++;
      continue;
    }
    const t = token();
    if (!t) break;
    skipWs();
    if (s[i] === '=' && out.length > 0) {
      // a parameter of the current challenge
      i++;
      skipWs();
      let v = '';
      if (s[i] === '"') {
        i++;
        while (i < s.length && s[i] !== '"') {
          if (s[i] === '\\' && i + 1 < s.length) i++;
          v += s[i++];
        }
        i++;
      } else v = token();
      out[out.length - 1]!.params[t.toLowerCase()] = v;
    } else {
      out.push({ scheme: t.toLowerCase(), params: {} });
    }
  }
  return out.filter((c): c is Challenge => c.scheme === 'basic' || c.scheme === 'bearer');
}

function isInsecure(registry: string, list: readonly string[] | undefined): boolean {
  if (!list) return false;
  return list.some(
    (e) =>
      e
        .replace(/^https?:\/\//, '')
        .replace(/\/+$/, '')
        .toLowerCase() === registry,
  );
}

// ---------------------------------------------------------------------------------------------- client

interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  platform?: Record<string, unknown>;
  annotations?: Record<string, unknown>;
}

interface FetchedManifest {
  body: Buffer;
  digest: string;
  mediaType: string;
  json: Record<string, unknown>;
}

/** Talks to one repository of one registry for one pull. */
class RegistryClient {
  private base: URL | null = null;
  private insecureTls = false;
  private challenge: Challenge | null = null;
  private readonly tokens = new Map<string, { token: string; expires: number }>();
  /** What the registry (not the token server) is called in messages: the host as in the reference. */
  readonly label: string;
  private readonly host: string;
  private readonly scope: string;

  constructor(
    readonly ref: ImageReference,
    private readonly opts: PullOptions,
    private readonly t: Transport,
  ) {
    this.label = ref.registry;
    this.host = ref.registry === DOCKER_HUB ? DOCKER_HUB_ENDPOINT : ref.registry;
    this.scope = `repository:${ref.repository}:pull`;
  }

  private get who(): string {
    const a = this.opts.auth;
    return a && 'username' in a ? a.username : a ? 'the given token' : 'anonymous';
  }

  private unreachable(e: NetError): RegistryError {
    const code = e.err.code ?? '';
    const msg = e.err.message.split('\n')[0]!.trim();
    if (code === 'EPROTO' || code === 'ERR_SSL_WRONG_VERSION_NUMBER' || /wrong version number|packet length too long|http request/i.test(msg)) {
      const why = /wrong version number|packet length too long|http request/i.exec(msg)?.[0] ?? msg;
      return new RegistryError(
        `registry ${this.label} unreachable: it does not answer HTTPS (TLS handshake: ${why}); if it is a plain-HTTP registry, allow it with --insecure-registry ${this.label} (insecureRegistries)`,
      );
    }
    if (/CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ALTNAME/.test(code)) {
      return new RegistryError(`registry ${this.label} unreachable: its TLS certificate is not trusted (${msg}); pass the registry's CA (ca option)`);
    }
    return new RegistryError(`registry ${this.label} unreachable: ${msg}`);
  }

  /** Pings /v2/: settles HTTPS vs plain HTTP, and learns the auth challenge. */
  async connect(): Promise<void> {
    const insecure = isInsecure(this.label, this.opts.insecureRegistries) || (this.host !== this.label && isInsecure(this.host, this.opts.insecureRegistries));
    const tries: Array<{ scheme: string; insecureTls: boolean }> = insecure
      ? [
          { scheme: 'https:', insecureTls: true },
          { scheme: 'http:', insecureTls: false },
        ]
      : [{ scheme: 'https:', insecureTls: false }];
    let last: NetError | null = null;
    for (const tr of tries) {
      const base = new URL(`${tr.scheme}//${this.host}/`);
      let res: http.IncomingMessage;
      try {
        res = await this.t.request(new URL('/v2/', base), { insecureTls: tr.insecureTls });
      } catch (e) {
        if (e instanceof NetError) {
          last = e;
          continue;
        }
        throw e;
      }
      this.base = base;
      this.insecureTls = tr.insecureTls;
      const status = res.statusCode ?? 0;
      if (status === 401) {
        res.resume();
        const ch = parseChallenges(res.headers['www-authenticate'] as string | undefined);
        this.challenge = ch.find((c) => c.scheme === 'bearer') ?? ch[0] ?? null;
        if (!this.challenge) throw new RegistryError(`registry ${this.label}: GET /v2/ answered 401 without a usable WWW-Authenticate challenge`);
        return;
      }
      if (status === 200) {
        res.resume();
        return;
      }
      const detail = await errorDetail(res);
      if (status === 404) throw new RegistryError(`registry ${this.label} does not serve the registry v2 API (GET /v2/ answered 404)`);
      throw new RegistryError(`registry ${this.label}: GET /v2/ answered HTTP ${status}${detail}`);
    }
    throw this.unreachable(last!);
  }

  private url(p: string): URL {
    return new URL(p, this.base!);
  }

  /** The Authorization header for the current challenge, fetching a bearer token if needed. */
  private async authorization(): Promise<string | undefined> {
    const a = this.opts.auth;
    const ch = this.challenge;
    if (!ch) return undefined;
    if (ch.scheme === 'basic') {
      if (!a) throw new RegistryError(`registry ${this.label}: authentication required (no credentials given)`);
      if (!('username' in a)) throw new RegistryError(`registry ${this.label} asks for a user name and password (Basic); a bearer token cannot be used`);
      return `Basic ${Buffer.from(`${a.username}:${a.password}`).toString('base64')}`;
    }
    if (a && 'token' in a) return `Bearer ${a.token}`;
    return `Bearer ${await this.bearerToken(ch)}`;
  }

  private async bearerToken(ch: Challenge): Promise<string> {
    const realm = ch.params.realm;
    if (!realm) throw new RegistryError(`registry ${this.label}: Bearer challenge without a realm`);
    const scopes = [...new Set([this.scope, ...(ch.params.scope ? ch.params.scope.split(' ') : [])])].sort();
    const service = ch.params.service ?? '';
    const key = `${realm}\n${service}\n${scopes.join(' ')}`;
    const hit = this.tokens.get(key);
    if (hit && hit.expires > Date.now()) return hit.token;
    let u: URL;
    try {
      u = new URL(realm);
    } catch {
      throw new RegistryError(`registry ${this.label}: invalid token realm ${JSON.stringify(realm)}`);
    }
    const plainOk = u.protocol === 'http:' && isInsecure(u.host.toLowerCase(), this.opts.insecureRegistries);
    if (u.protocol !== 'https:' && !plainOk)
      throw new RegistryError(`registry ${this.label}: refusing token realm ${realm}: not HTTPS (allow it with --insecure-registry ${u.host})`);
    if (service) u.searchParams.set('service', service);
    for (const s of scopes) u.searchParams.append('scope', s);
    const a = this.opts.auth;
    const headers: Record<string, string> = {};
    if (a && 'username' in a) {
      u.searchParams.set('account', a.username);
      headers.authorization = `Basic ${Buffer.from(`${a.username}:${a.password}`).toString('base64')}`;
    }
    let res: http.IncomingMessage;
    try {
      res = await this.t.request(u, { headers });
    } catch (e) {
      if (e instanceof NetError) throw new RegistryError(`registry ${this.label}: token server ${u.origin} unreachable: ${e.message}`);
      throw e;
    }
    const status = res.statusCode ?? 0;
    if (status === 401 || status === 403) {
      res.resume();
      if (a && 'username' in a) throw new RegistryError(`registry ${this.label}: authentication failed for ${a.username}`);
      throw new RegistryError(`registry ${this.label}: the token server refused anonymous access (credentials needed)`);
    }
    if (status !== 200) throw new RegistryError(`registry ${this.label}: token server ${u.origin} answered HTTP ${status}${await errorDetail(res)}`);
    let body: { token?: unknown; access_token?: unknown; expires_in?: unknown };
    try {
      body = JSON.parse((await readBody(res, MAX_SMALL, 'token response')).toString('utf8')) as typeof body;
    } catch (e) {
      if (e instanceof RegistryError) throw e;
      throw new RegistryError(`registry ${this.label}: token server ${u.origin} sent invalid JSON`);
    }
    const token = typeof body.token === 'string' && body.token ? body.token : typeof body.access_token === 'string' ? body.access_token : '';
    if (!token) throw new RegistryError(`registry ${this.label}: token server ${u.origin} sent no token`);
    const life = typeof body.expires_in === 'number' && body.expires_in > 0 ? body.expires_in : 60;
    this.tokens.set(key, { token, expires: Date.now() + Math.max(0, life - 10) * 1000 });
    return token;
  }

  private authFailed(ch: Challenge): RegistryError {
    const a = this.opts.auth;
    if (ch.scheme === 'bearer' && ch.params.error === 'insufficient_scope') {
      return new RegistryError(
        `registry ${this.label}: access to repository ${this.ref.repository} denied for ${this.who} (it may not exist, or may need other credentials)`,
      );
    }
    if (!a) return new RegistryError(`registry ${this.label}: authentication required (no credentials given)`);
    if ('username' in a) return new RegistryError(`registry ${this.label}: authentication failed for ${a.username}`);
    return new RegistryError(`registry ${this.label}: authentication failed: the registry refused the given token`);
  }

  /** One request to the registry with authentication; a 401 renews the challenge/token once. */
  private async send(p: string, headers: Record<string, string> = {}): Promise<http.IncomingMessage> {
    for (let attempt = 0; ; attempt++) {
      const auth = await this.authorization();
      let res: http.IncomingMessage;
      try {
        res = await this.t.request(this.url(p), { headers: { ...headers, ...(auth ? { authorization: auth } : {}) }, insecureTls: this.insecureTls });
      } catch (e) {
        if (e instanceof NetError) throw this.unreachable(e);
        throw e;
      }
      if (res.statusCode !== 401) return res;
      res.resume();
      const chs = parseChallenges(res.headers['www-authenticate'] as string | undefined);
      const ch = chs.find((c) => c.scheme === 'bearer') ?? chs[0];
      if (!ch) throw new RegistryError(`registry ${this.label}: GET ${p} answered 401 without a usable WWW-Authenticate challenge`);
      if (attempt > 0 || (auth && ch.scheme === 'basic' && this.challenge?.scheme === 'basic')) throw this.authFailed(ch);
      this.challenge = ch;
      this.tokens.clear();
    }
  }

  /** A GET that follows redirects; credentials go only to the registry's own origin. */
  private async get(p: string, headers: Record<string, string> = {}): Promise<http.IncomingMessage> {
    let res = await this.send(p, headers);
    let url = this.url(p);
    for (let hops = 0; [301, 302, 303, 307, 308].includes(res.statusCode ?? 0); hops++) {
      res.resume();
      const loc = res.headers.location;
      if (!loc) throw new RegistryError(`registry ${this.label}: GET ${p}: redirect without a Location`);
      if (hops >= MAX_REDIRECTS) throw new RegistryError(`registry ${this.label}: GET ${p}: more than ${MAX_REDIRECTS} redirects`);
      const next = new URL(loc, url);
      if (next.protocol !== 'https:' && !(next.protocol === 'http:' && isInsecure(next.host.toLowerCase(), this.opts.insecureRegistries))) {
        throw new RegistryError(
          `registry ${this.label}: GET ${p}: refusing redirect to ${next.origin} (not HTTPS; allow it with --insecure-registry ${next.host})`,
        );
      }
      if (next.origin === this.base!.origin) {
        res = await this.send(next.pathname + next.search, headers);
      } else {
        try {
          res = await this.t.request(next, { headers, insecureTls: false });
        } catch (e) {
          if (e instanceof NetError) throw new RegistryError(`registry ${this.label}: GET ${p}: redirect target ${next.origin} unreachable: ${e.message}`);
          throw e;
        }
      }
      url = next;
    }
    return res;
  }

  async manifest(reference: string, want?: Descriptor): Promise<FetchedManifest> {
    const p = `/v2/${this.ref.repository}/manifests/${reference}`;
    const res = await this.get(p, { accept: ACCEPT });
    const status = res.statusCode ?? 0;
    if (status === 404) {
      res.resume();
      throw new RegistryError(
        want
          ? `image ${this.ref.name}: manifest ${reference} (${platformString(want.platform ?? {})}) not found in registry ${this.label}`
          : `image ${this.ref.name} not found in registry ${this.label}`,
      );
    }
    if (status !== 200) throw new RegistryError(`registry ${this.label}: GET ${p} answered HTTP ${status}${await errorDetail(res)}`);
    const body = await readBody(res, MAX_MANIFEST, `image ${this.ref.name}: manifest ${reference}`);
    const digest = sha256(body);
    if (DIGEST_RE.test(reference) && digest !== reference)
      throw new RegistryError(`image ${this.ref.name}: digest mismatch for manifest ${reference}: content hashes to ${digest}`);
    const claimed = res.headers['docker-content-digest'];
    if (typeof claimed === 'string' && DIGEST_RE.test(claimed) && claimed !== digest) {
      throw new RegistryError(`image ${this.ref.name}: digest mismatch for manifest ${reference}: the registry says ${claimed}, content hashes to ${digest}`);
    }
    if (want && want.size !== body.length)
      throw new RegistryError(`image ${this.ref.name}: size mismatch for manifest ${reference}: descriptor says ${want.size}, got ${body.length}`);
    let json: unknown;
    try {
      json = JSON.parse(body.toString('utf8'));
    } catch (e) {
      throw new RegistryError(`image ${this.ref.name}: manifest ${reference}: invalid JSON: ${(e as Error).message}`);
    }
    if (!isObj(json)) throw new RegistryError(`image ${this.ref.name}: manifest ${reference} is not a JSON object`);
    const ct = String(res.headers['content-type'] ?? '')
      .split(';')[0]!
      .trim();
    const mediaType = typeof json.mediaType === 'string' && json.mediaType !== '' ? json.mediaType : ct;
    return { body, digest, mediaType, json };
  }

  private async blobResponse(d: Descriptor, what: string): Promise<http.IncomingMessage> {
    const p = `/v2/${this.ref.repository}/blobs/${d.digest}`;
    const res = await this.get(p);
    const status = res.statusCode ?? 0;
    if (status === 404) {
      res.resume();
      throw new RegistryError(`image ${this.ref.name}: ${what} ${d.digest} not found in registry ${this.label}`);
    }
    if (status !== 200) throw new RegistryError(`registry ${this.label}: GET ${p} answered HTTP ${status}${await errorDetail(res)}`);
    const len = Number(res.headers['content-length']);
    if (Number.isFinite(len) && res.headers['content-length'] !== undefined && len !== d.size) {
      res.destroy();
      throw new RegistryError(`image ${this.ref.name}: size mismatch for ${what} ${d.digest}: descriptor says ${d.size}, the registry sends ${len} bytes`);
    }
    return res;
  }

  /** A small blob (the config), digest and size checked. */
  async blob(d: Descriptor, what: string, max: number): Promise<Buffer> {
    if (d.size > max) throw new RegistryError(`image ${this.ref.name}: ${what} ${d.digest} is ${d.size} bytes, over the limit of ${max}`);
    const res = await this.blobResponse(d, what);
    const b = await readBody(res, max, `image ${this.ref.name}: ${what} ${d.digest}`);
    const got = sha256(b);
    if (got !== d.digest) throw new RegistryError(`image ${this.ref.name}: digest mismatch for ${what} ${d.digest}: content hashes to ${got}`);
    if (b.length !== d.size)
      throw new RegistryError(`image ${this.ref.name}: size mismatch for ${what} ${d.digest}: descriptor says ${d.size}, got ${b.length}`);
    return b;
  }

  /** Downloads a blob to `dest`, hashing as it goes; `dest` is removed unless it is complete and right. */
  async download(d: Descriptor, what: string, dest: string, onBytes: (n: number) => void): Promise<void> {
    try {
      const res = await this.blobResponse(d, what);
      const h = createHash('sha256');
      let n = 0;
      const count = new Transform({
        transform(c: Buffer, _enc, cb) {
          n += c.length;
          if (n > d.size) return cb(new RegistryError(`size mismatch for ${what} ${d.digest}: more than the ${d.size} bytes its descriptor says`));
          h.update(c);
          onBytes(n);
          cb(null, c);
        },
      });
      await pipeline(res, count, fs.createWriteStream(dest, { flags: 'wx', mode: 0o600 }));
      if (n !== d.size) throw new RegistryError(`image ${this.ref.name}: size mismatch for ${what} ${d.digest}: descriptor says ${d.size}, got ${n} bytes`);
      const got = `sha256:${h.digest('hex')}`;
      if (got !== d.digest) throw new RegistryError(`image ${this.ref.name}: digest mismatch for ${what} ${d.digest}: content hashes to ${got}`);
    } catch (e) {
      await fsp.rm(dest, { force: true });
      if (e instanceof RegistryError && !e.message.startsWith('image ') && !e.message.startsWith('registry '))
        throw new RegistryError(`image ${this.ref.name}: ${e.message}`);
      if (e instanceof NetError) throw this.unreachable(e);
      if (e instanceof ImageError || this.opts.signal?.aborted) throw e; // an abort by the caller passes through as is
      throw new RegistryError(`image ${this.ref.name}: ${what} ${d.digest}: download from registry ${this.label} failed: ${(e as Error).message}`);
    }
  }
}

// ----------------------------------------------------------------------------------------- descriptors

function descriptor(v: unknown, what: string): Descriptor {
  if (!isObj(v)) throw new RegistryError(`${what}: descriptor is not an object`);
  if (typeof v.digest !== 'string' || !DIGEST_RE.test(v.digest))
    throw new RegistryError(`${what}: invalid or unsupported digest ${JSON.stringify(v.digest)} (only sha256)`);
  if (typeof v.size !== 'number' || !Number.isSafeInteger(v.size) || v.size < 0) throw new RegistryError(`${what}: invalid size ${JSON.stringify(v.size)}`);
  return {
    mediaType: typeof v.mediaType === 'string' ? v.mediaType : '',
    digest: v.digest,
    size: v.size,
    ...(isObj(v.platform) ? { platform: v.platform } : {}),
    ...(isObj(v.annotations) ? { annotations: v.annotations } : {}),
  };
}

function pickPlatform(list: Descriptor[], want: Platform, what: string): Descriptor {
  const images = list.filter((d) => d.platform && d.platform.os !== 'unknown' && d.annotations?.['vnd.docker.reference.type'] !== 'attestation-manifest');
  const matches = images.filter((d) => d.platform!.os === want.os && d.platform!.architecture === want.arch);
  const pick =
    want.variant !== undefined
      ? (matches.find((d) => d.platform!.variant === want.variant) ??
        (want.arch === 'arm64' && want.variant === 'v8' ? matches.find((d) => d.platform!.variant === undefined) : undefined))
      : (matches.find((d) => d.platform!.variant === undefined || (want.arch === 'arm64' && d.platform!.variant === 'v8')) ?? matches[0]);
  if (!pick) {
    const have = images.map((d) => platformString(d.platform!)).join(', ') || 'none';
    throw new RegistryError(`${what}: no image for ${platformString(want)} in the manifest list (it has: ${have})`);
  }
  return pick;
}

// ------------------------------------------------------------------------------------------------ pull

/**
 * Pulls `ref` (`[registry[:port]/]repo[:tag][@sha256:…]`) into `store` and records it under its familiar
 * name. Layers the store already has (by chain id) are not downloaded. On failure nothing is left behind.
 */
export async function pullImage(store: ImageStore, refStr: string, opts: PullOptions = {}): Promise<PullResult> {
  const ref = parseReference(refStr);
  const platform = opts.platform ?? defaultPlatform();
  const ctl = new AbortController();
  const onAbort = () => ctl.abort(opts.signal?.reason);
  if (opts.signal?.aborted) throw new RegistryError(`pull ${ref.name}: aborted`);
  opts.signal?.addEventListener('abort', onAbort, { once: true });
  const t = new Transport(opts.ca, ctl.signal, opts.timeoutMs ?? 30_000);
  const client = new RegistryClient(ref, opts, t);
  const progress = (p: PullProgress) => {
    try {
      opts.onProgress?.(p);
    } catch {
      // a progress callback cannot break the pull
    }
  };
  const staging = path.join(store.root, 'tmp', `pull-${randomBytes(6).toString('hex')}`);
  const downloads = new Map<string, Promise<string>>();
  let failure: unknown = null; // the first download that failed: the reason the pull fails
  try {
    await client.connect();
    const what = `image ${ref.name}`;
    const top = await client.manifest(ref.digest ?? ref.tag!);
    let m = top;
    let fromIndex = false;
    for (let depth = 0; INDEX_TYPES.has(m.mediaType) || (m.mediaType === '' && Array.isArray(m.json.manifests)); depth++) {
      if (depth >= MAX_INDEX_DEPTH) throw new RegistryError(`${what}: manifest lists nested too deep`);
      if (!Array.isArray(m.json.manifests)) throw new RegistryError(`${what}: manifest list ${m.digest} has no manifests`);
      const list = (m.json.manifests as unknown[]).map((d, i) => descriptor(d, `${what}: manifest list entry ${i}`));
      const pick = pickPlatform(list, platform, what);
      m = await client.manifest(pick.digest, pick);
      fromIndex = true;
    }
    if (m.mediaType.startsWith('application/vnd.docker.distribution.manifest.v1'))
      throw new RegistryError(`${what}: schema 1 manifests are not supported (${m.mediaType})`);
    if (!MANIFEST_TYPES.has(m.mediaType) && m.mediaType !== '')
      throw new RegistryError(`${what}: unsupported manifest media type ${JSON.stringify(m.mediaType)}`);
    if (m.json.schemaVersion !== 2) throw new RegistryError(`${what}: manifest ${m.digest}: unsupported schemaVersion ${JSON.stringify(m.json.schemaVersion)}`);
    const cfgDesc = descriptor(m.json.config, `${what}: config`);
    if (cfgDesc.mediaType && !CONFIG_TYPES.has(cfgDesc.mediaType))
      throw new RegistryError(`${what}: not a container image (config media type ${cfgDesc.mediaType})`);
    if (!Array.isArray(m.json.layers)) throw new RegistryError(`${what}: manifest ${m.digest} has no layers list`);
    const layerDescs = (m.json.layers as unknown[]).map((d, i) => descriptor(d, `${what}: layer ${i}`));
    for (const [i, l] of layerDescs.entries()) {
      if (l.mediaType.includes('zstd')) throw new RegistryError(`${what}: layer ${i} (${l.digest}): zstd-compressed layers are not supported yet`);
      if (l.mediaType.includes('foreign')) throw new RegistryError(`${what}: layer ${i} (${l.digest}): foreign layers (${l.mediaType}) are not supported`);
      if (!LAYER_TYPES.has(l.mediaType)) throw new RegistryError(`${what}: layer ${i} (${l.digest}): unsupported media type ${JSON.stringify(l.mediaType)}`);
    }
    const config = await client.blob(cfgDesc, 'config', MAX_CONFIG);
    let cfg: unknown;
    try {
      cfg = JSON.parse(config.toString('utf8'));
    } catch (e) {
      throw new RegistryError(`${what}: config ${cfgDesc.digest}: invalid JSON: ${(e as Error).message}`);
    }
    if (opts.platform && !fromIndex && isObj(cfg) && typeof cfg.os === 'string' && typeof cfg.architecture === 'string') {
      // a single-platform image only has its config to say what it is for; an explicit request must match
      if (cfg.os !== platform.os || cfg.architecture !== platform.arch) {
        throw new RegistryError(`${what} is for ${platformString(cfg)}, not the requested ${platformString(platform)}`);
      }
    }
    const diffIds = isObj(cfg) && isObj(cfg.rootfs) && Array.isArray(cfg.rootfs.diff_ids) ? (cfg.rootfs.diff_ids as unknown[]) : null;
    if (!diffIds) throw new RegistryError(`${what}: config ${cfgDesc.digest} has no rootfs.diff_ids`);
    for (const d of diffIds)
      if (typeof d !== 'string' || !DIGEST_RE.test(d)) throw new RegistryError(`${what}: config ${cfgDesc.digest}: invalid diff_id ${JSON.stringify(d)}`);
    if (diffIds.length !== layerDescs.length)
      throw new RegistryError(`${what}: manifest ${m.digest} lists ${layerDescs.length} layers but the config has ${diffIds.length} diff_ids`);
    const chain = chainIds(diffIds as string[]);
    const layers: LayerRef[] = layerDescs.map((l, i) => ({ path: l.digest, blobDigest: l.digest, mediaType: l.mediaType, diffId: diffIds[i] as string }));
    const missing = layerDescs.map((_, i) => i).filter((i) => !store.hasLayer(chain[i]!));
    progress({ event: 'resolved', manifestDigest: top.digest, configDigest: cfgDesc.digest, layers: layers.length, reused: layers.length - missing.length });
    for (const [i, l] of layerDescs.entries()) if (!missing.includes(i)) progress({ event: 'layer-reused', index: i, digest: l.digest });
    const bytes = [...new Set(missing.map((i) => layerDescs[i]!))].reduce((s, l) => s + l.size, 0);
    if (bytes > store.limits.maxArchiveBytes)
      throw new RegistryError(`${what}: its layers are ${bytes} bytes, over the store's limit of ${store.limits.maxArchiveBytes}`);

    // Download what is missing, a few at a time, into the staging dir; the store reads each file when it
    // gets to that layer (bottom first), so unpacking overlaps the downloads of the layers above.
    await fsp.mkdir(staging, { recursive: true, mode: 0o700 });
    const limit = Math.max(1, opts.concurrency ?? 3);
    let running = 0;
    const waiters: Array<() => void> = [];
    const slot = async () => {
      while (running >= limit) await new Promise<void>((r) => waiters.push(r));
      running++;
    };
    const release = () => {
      running--;
      waiters.shift()?.();
    };
    const fetchLayer = (i: number): Promise<string> => {
      const l = layerDescs[i]!;
      const have = downloads.get(l.digest);
      if (have) return have;
      const dest = path.join(staging, l.digest.slice(7));
      const p = (async () => {
        await slot();
        try {
          if (failure) throw failure;
          let last = 0;
          await client.download(l, `layer ${i}`, dest, (n) => {
            if (n - last >= 1 << 20 || n === l.size) {
              last = n;
              progress({ event: 'layer-progress', index: i, digest: l.digest, bytes: n, total: l.size });
            }
          });
          progress({ event: 'layer-downloaded', index: i, digest: l.digest, bytes: l.size });
          return dest;
        } catch (e) {
          failure ??= e;
          ctl.abort(); // stop the other downloads: this pull has failed
          throw e;
        } finally {
          release();
        }
      })();
      p.catch(() => undefined); // observed through the source, or settled in finally
      downloads.set(l.digest, p);
      return p;
    };
    for (const i of missing) void fetchLayer(i);
    const byDigest = new Map(layerDescs.map((l, i) => [l.digest, i]));
    const source: BlobSource = {
      stream(p: string): AsyncIterable<Buffer> {
        return (async function* () {
          const i = byDigest.get(p);
          if (i === undefined) throw new RegistryError(`${what}: unknown layer blob ${p}`);
          const file = await fetchLayer(i); // a layer the store lost since we looked is fetched now
          for await (const c of fs.createReadStream(file, { highWaterMark: 1 << 20 })) {
            if (failure) throw failure;
            yield c as Buffer;
          }
        })();
      },
    };
    const spec: ImageSpec = { names: [ref.name], config, configDigest: cfgDesc.digest, manifest: top.body, manifestDigest: top.digest, layers };
    await store.importImage(spec, source, { names: [ref.name], verifyPresentLayers: false });
    const result = { name: ref.name, digest: cfgDesc.digest, manifestDigest: top.digest };
    progress({ event: 'done', ...result });
    return result;
  } catch (err) {
    ctl.abort();
    if (opts.signal?.aborted) throw new RegistryError(`pull ${ref.name}: aborted`);
    const e = failure ?? err;
    if (e instanceof RegistryError) throw e;
    if (e instanceof ImageError) throw new RegistryError(`pull ${ref.name}: ${e.message}`);
    throw e;
  } finally {
    opts.signal?.removeEventListener('abort', onAbort);
    await Promise.allSettled(downloads.values());
    await fsp.rm(staging, { recursive: true, force: true });
    t.destroy();
  }
}
