// Test helpers for registry pulls: a real registry (Debian's docker-registry, distribution 2.8) started on
// loopback with its own storage, TLS certificate and auth; a small push client (blob upload, manifest PUT);
// a Bearer token server issuing RS256 JWTs; and a counting proxy that can also redirect blob GETs to a
// separate "CDN" server. Everything listens on 127.0.0.1 only, and every process is stopped by its pid.
import { execFile, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { X509Certificate, createHash, createPrivateKey, randomBytes, sign } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import * as net from 'node:net';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { ociFiles } from './fixtures.ts';
import type { FixtureImage } from './fixtures.ts';

const run = promisify(execFile);

export const REGISTRY_BIN = '/usr/bin/docker-registry';

export function sha(b: Buffer | string): string {
  return 'sha256:' + createHash('sha256').update(b).digest('hex');
}

export async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

export interface Cert {
  keyPath: string;
  certPath: string;
  key: string;
  cert: string;
}

/** A self-signed certificate (RSA 2048) for 127.0.0.1, made with the openssl CLI. */
export async function makeCert(dir: string, name: string): Promise<Cert> {
  const keyPath = path.join(dir, `${name}.key`);
  const certPath = path.join(dir, `${name}.crt`);
  await run('openssl', [
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-sha256',
    '-days',
    '2',
    '-keyout',
    keyPath,
    '-out',
    certPath,
    '-subj',
    `/CN=${name}`,
    '-addext',
    'subjectAltName=IP:127.0.0.1',
  ]);
  return { keyPath, certPath, key: fs.readFileSync(keyPath, 'utf8'), cert: fs.readFileSync(certPath, 'utf8') };
}

/** An htpasswd file with bcrypt entries (the only kind distribution accepts), made by `htpasswd -Bbn`. */
export async function htpasswdFile(dir: string, users: Record<string, string>): Promise<string> {
  const lines: string[] = [];
  for (const [u, p] of Object.entries(users)) lines.push((await run('htpasswd', ['-Bbn', '-C', '4', u, p])).stdout.trim());
  const f = path.join(dir, 'htpasswd');
  fs.writeFileSync(f, lines.join('\n') + '\n');
  return f;
}

export interface RegistryOptions {
  /** A fresh directory for config, storage and logs. */
  dir: string;
  tls?: Cert;
  htpasswd?: string;
  token?: { realm: string; service: string; issuer: string; rootCertBundle: string };
}

export interface Registry {
  /** host:port */
  host: string;
  url: string;
  /** The registry's filesystem storage root. */
  storage: string;
  pid: number;
  log(): string;
  stop(): Promise<void>;
}

/** Starts `docker-registry serve` on 127.0.0.1:<free port> and waits until /v2/ answers. */
export async function startRegistry(o: RegistryOptions): Promise<Registry> {
  const port = await freePort();
  const storage = path.join(o.dir, 'storage');
  fs.mkdirSync(storage, { recursive: true });
  const cfg = [
    'version: 0.1',
    'log:',
    '  level: info',
    '  formatter: text',
    'storage:',
    '  filesystem:',
    `    rootdirectory: ${storage}`,
    '  maintenance:',
    '    uploadpurging:',
    '      enabled: false',
    'http:',
    `  addr: 127.0.0.1:${port}`,
    `  secret: ${randomBytes(16).toString('hex')}`,
    ...(o.tls ? ['  tls:', `    certificate: ${o.tls.certPath}`, `    key: ${o.tls.keyPath}`] : []),
    ...(o.htpasswd ? ['auth:', '  htpasswd:', '    realm: shoal-test', `    path: ${o.htpasswd}`] : []),
    ...(o.token
      ? [
          'auth:',
          '  token:',
          `    realm: ${o.token.realm}`,
          `    service: ${o.token.service}`,
          `    issuer: ${o.token.issuer}`,
          `    rootcertbundle: ${o.token.rootCertBundle}`,
        ]
      : []),
    '',
  ].join('\n');
  const cfgPath = path.join(o.dir, 'config.yml');
  fs.writeFileSync(cfgPath, cfg);
  const child: ChildProcess = spawn(REGISTRY_BIN, ['serve', cfgPath], { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  const keep = (c: Buffer) => {
    log += c.toString();
    if (log.length > 4 << 20) log = log.slice(-(2 << 20));
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  let exited = false;
  const exit = new Promise<void>((r) => child.once('exit', () => ((exited = true), r())));
  const pid = child.pid!;
  const host = `127.0.0.1:${port}`;
  const url = `${o.tls ? 'https' : 'http'}://${host}`;
  const stop = async () => {
    if (exited) return;
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      return;
    }
    const t = setTimeout(() => {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    }, 3000);
    await exit;
    clearTimeout(t);
  };
  const deadline = Date.now() + 15_000;
  for (;;) {
    if (exited) throw new Error(`docker-registry exited during start-up:\n${log}`);
    try {
      await request('GET', `${url}/v2/`, { ca: o.tls?.cert });
      break;
    } catch {
      if (Date.now() > deadline) {
        await stop();
        throw new Error(`docker-registry did not answer on ${url} within 15 s:\n${log}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  return { host, url, storage, pid, log: () => log, stop };
}

export interface Resp {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

/** One HTTP(S) request, body buffered. */
export function request(method: string, url: string, o: { headers?: Record<string, string>; body?: Buffer; ca?: string | undefined } = {}): Promise<Resp> {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const mod = u.protocol === 'https:' ? https : http;
    const headers: Record<string, string> = { ...o.headers };
    if (o.body) headers['content-length'] = String(o.body.length);
    const req = mod.request(u, { method, headers, ...(o.ca ? { ca: o.ca } : {}), agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.setTimeout(10_000, () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end(o.body);
  });
}

// ------------------------------------------------------------------------------------------------ push

export interface PushTarget {
  url: string;
  ca?: string | undefined;
  /** The Authorization header to send (Basic for htpasswd, a minted Bearer token for token auth). */
  auth?: string | undefined;
}

function hdrs(t: PushTarget, extra: Record<string, string> = {}): Record<string, string> {
  return { ...(t.auth ? { authorization: t.auth } : {}), ...extra };
}

export function basic(user: string, pass: string): string {
  return `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}`;
}

/** Uploads one blob (monolithic: POST an upload, then PUT ?digest=); skips it if the registry has it. */
export async function pushBlob(t: PushTarget, repo: string, data: Buffer): Promise<string> {
  const d = sha(data);
  const head = await request('HEAD', `${t.url}/v2/${repo}/blobs/${d}`, { headers: hdrs(t), ca: t.ca });
  if (head.status === 200) return d;
  const start = await request('POST', `${t.url}/v2/${repo}/blobs/uploads/`, { headers: hdrs(t), ca: t.ca });
  if (start.status !== 202) throw new Error(`push ${repo}: POST blobs/uploads/ answered ${start.status}: ${start.body.toString()}`);
  const loc = new URL(String(start.headers.location), t.url);
  loc.searchParams.set('digest', d);
  const put = await request('PUT', loc.toString(), { headers: hdrs(t, { 'content-type': 'application/octet-stream' }), body: data, ca: t.ca });
  if (put.status !== 201) throw new Error(`push ${repo}: PUT blob ${d} answered ${put.status}: ${put.body.toString()}`);
  return d;
}

export async function pushManifest(t: PushTarget, repo: string, ref: string, body: Buffer, mediaType: string): Promise<string> {
  const r = await request('PUT', `${t.url}/v2/${repo}/manifests/${ref}`, { headers: hdrs(t, { 'content-type': mediaType }), body, ca: t.ca });
  if (r.status !== 201) throw new Error(`push ${repo}:${ref}: PUT manifest answered ${r.status}: ${r.body.toString()}`);
  return sha(body);
}

export interface BuiltImage {
  config: Buffer;
  layers: Buffer[];
  manifest: Buffer;
  mediaType: string;
  /** Config digest = the image id. */
  id: string;
  manifestDigest: string;
}

/**
 * A fixture image as a registry manifest: the OCI manifest the fixtures' OCI layout holds (same config and
 * layer blobs), or the same image rewritten with Docker schema2 media types.
 */
export function imageFromFixture(img: FixtureImage, format: 'oci' | 'docker' = 'oci'): BuiltImage {
  const files = ociFiles([img]);
  const blob = (d: string) => files.get(`blobs/sha256/${d.slice(7)}`)!;
  const index = JSON.parse(files.get('index.json')!.toString()) as { manifests: Array<{ digest: string }> };
  const oci = JSON.parse(blob(index.manifests[0]!.digest).toString()) as {
    config: { digest: string; size: number; mediaType: string };
    layers: Array<{ digest: string; size: number; mediaType: string }>;
  };
  const config = blob(oci.config.digest);
  const layers = oci.layers.map((l) => blob(l.digest));
  let manifest: Buffer;
  let mediaType: string;
  if (format === 'oci') {
    manifest = blob(index.manifests[0]!.digest);
    mediaType = 'application/vnd.oci.image.manifest.v1+json';
  } else {
    mediaType = 'application/vnd.docker.distribution.manifest.v2+json';
    manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType,
        config: { mediaType: 'application/vnd.docker.container.image.v1+json', digest: oci.config.digest, size: oci.config.size },
        layers: oci.layers.map((l) => ({
          mediaType: l.mediaType.endsWith('gzip') ? 'application/vnd.docker.image.rootfs.diff.tar.gzip' : 'application/vnd.docker.image.rootfs.diff.tar',
          digest: l.digest,
          size: l.size,
        })),
      }),
    );
  }
  return { config, layers, manifest, mediaType, id: sha(config), manifestDigest: sha(manifest) };
}

/** An OCI image for any architecture from raw layer blobs (each a tar or a gzipped tar) and their tars. */
export function buildImage(layers: Array<{ blob: Buffer; tar: Buffer; gzip: boolean }>, arch: string): BuiltImage {
  const config = Buffer.from(
    JSON.stringify({ architecture: arch, os: 'linux', config: { Cmd: ['/bin/sh'] }, rootfs: { type: 'layers', diff_ids: layers.map((l) => sha(l.tar)) } }),
  );
  const mediaType = 'application/vnd.oci.image.manifest.v1+json';
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType,
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha(config), size: config.length },
      layers: layers.map((l) => ({ mediaType: `application/vnd.oci.image.layer.v1.tar${l.gzip ? '+gzip' : ''}`, digest: sha(l.blob), size: l.blob.length })),
    }),
  );
  return { config, layers: layers.map((l) => l.blob), manifest, mediaType, id: sha(config), manifestDigest: sha(manifest) };
}

export async function pushImage(t: PushTarget, repo: string, ref: string, img: BuiltImage): Promise<string> {
  for (const b of [img.config, ...img.layers]) await pushBlob(t, repo, b);
  return pushManifest(t, repo, ref, img.manifest, img.mediaType);
}

/** A manifest list (Docker) or image index (OCI) over already-pushed images. */
export function manifestList(
  entries: Array<{ img: BuiltImage; arch: string; variant?: string }>,
  format: 'oci' | 'docker',
): { body: Buffer; mediaType: string } {
  const mediaType = format === 'oci' ? 'application/vnd.oci.image.index.v1+json' : 'application/vnd.docker.distribution.manifest.list.v2+json';
  const body = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType,
      manifests: entries.map((e) => ({
        mediaType: e.img.mediaType,
        digest: e.img.manifestDigest,
        size: e.img.manifest.length,
        platform: { architecture: e.arch, os: 'linux', ...(e.variant ? { variant: e.variant } : {}) },
      })),
    }),
  );
  return { body, mediaType };
}

/** Where the registry's filesystem driver keeps a blob's bytes. */
export function blobDataPath(reg: Registry, digest: string): string {
  const h = digest.slice(7);
  return path.join(reg.storage, 'docker/registry/v2/blobs/sha256', h.slice(0, 2), h, 'data');
}

// ------------------------------------------------------------------------------------------ token auth

function b64url(b: Buffer | string): string {
  return Buffer.from(b).toString('base64url');
}

export interface TokenIssuer {
  issuer: string;
  service: string;
  /** The signing certificate (self-signed): the registry's rootcertbundle. */
  cert: Cert;
}

/** A JWT as distribution's token auth expects: RS256, the signing cert in `x5c`, access claims. */
export function mintToken(iss: TokenIssuer, subject: string, access: Array<{ type: string; name: string; actions: string[] }>, ttl = 300): string {
  const der = new X509Certificate(iss.cert.cert).raw.toString('base64');
  const now = Math.floor(Date.now() / 1000);
  const header = b64url(JSON.stringify({ typ: 'JWT', alg: 'RS256', x5c: [der] }));
  const claims = b64url(
    JSON.stringify({ iss: iss.issuer, sub: subject, aud: iss.service, exp: now + ttl, nbf: now - 10, iat: now, jti: randomBytes(8).toString('hex'), access }),
  );
  const sig = sign('sha256', Buffer.from(`${header}.${claims}`), createPrivateKey(iss.cert.key));
  return `${header}.${claims}.${b64url(sig)}`;
}

export interface TokenServer {
  realm: string;
  /** Every token request: its account and scopes, and whether it was granted. */
  requests: Array<{ user: string | null; scopes: string[]; granted: boolean }>;
  stop(): Promise<void>;
}

/**
 * A token server over HTTPS. `users` maps a user to its password and the repositories it may pull;
 * anonymous requests and bad passwords get 401.
 */
export async function startTokenServer(tlsCert: Cert, iss: TokenIssuer, users: Record<string, { password: string; pull: string[] }>): Promise<TokenServer> {
  const requests: TokenServer['requests'] = [];
  const srv = https.createServer({ key: tlsCert.key, cert: tlsCert.cert }, (req, res) => {
    const u = new URL(req.url ?? '/', 'https://x');
    const scopes = u.searchParams.getAll('scope');
    const m = /^Basic (.+)$/.exec(req.headers.authorization ?? '');
    const [user, pass] = m ? Buffer.from(m[1]!, 'base64').toString().split(/:(.*)/s) : [null, null];
    const known = user !== null ? users[user] : undefined;
    if (u.pathname !== '/token' || !known || known.password !== pass) {
      requests.push({ user: user ?? null, scopes, granted: false });
      res.writeHead(401, { 'content-type': 'application/json' }).end(JSON.stringify({ details: 'bad credentials' }));
      return;
    }
    const access = [];
    for (const s of scopes) {
      const [type, name, actions] = s.split(':');
      if (type !== 'repository' || !name) continue;
      const ok = (actions ?? '').split(',').filter((a) => a === 'pull' && known.pull.includes(name));
      if (ok.length) access.push({ type, name, actions: ok });
    }
    requests.push({ user, scopes, granted: access.length > 0 });
    const token = mintToken(iss, user!, access);
    res
      .writeHead(200, { 'content-type': 'application/json' })
      .end(JSON.stringify({ token, access_token: token, expires_in: 300, issued_at: new Date().toISOString() }));
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as net.AddressInfo).port;
  return {
    realm: `https://127.0.0.1:${port}/token`,
    requests,
    stop: () => new Promise<void>((r) => srv.close(() => r()).closeAllConnections()),
  };
}

// ------------------------------------------------------------------------------------------------ proxy

export interface ProxyOptions {
  upstream: string;
  ca?: string | undefined;
  /** Serve HTTPS with this certificate (else plain HTTP). */
  tls?: Cert;
  /**
   * Answer blob GETs with a 307 to a separate server (another origin) that serves the blob itself, fetching
   * it from the upstream with these credentials (an Authorization header value).
   */
  redirectBlobs?: { upstreamAuth?: string };
  /** Flip one byte of the response body of GETs whose path matches. */
  tamper?: RegExp;
}

export interface Proxy {
  host: string;
  url: string;
  /** Every request the proxy forwarded: "GET /v2/…". */
  requests: string[];
  /** Requests the redirect target served, and the Authorization headers it received. */
  cdn: { requests: string[]; authHeaders: string[] };
  blobGets(): string[];
  stop(): Promise<void>;
}

export async function startProxy(o: ProxyOptions): Promise<Proxy> {
  const requests: string[] = [];
  const cdn = { requests: [] as string[], authHeaders: [] as string[] };
  const make = (h: http.RequestListener) => (o.tls ? https.createServer({ key: o.tls.key, cert: o.tls.cert }, h) : http.createServer(h));
  const cdnSrv = make((req, res) => {
    cdn.requests.push(`${req.method} ${req.url}`);
    if (req.headers.authorization) cdn.authHeaders.push(req.headers.authorization);
    const u = new URL(req.url ?? '/', 'http://x');
    const p = u.searchParams.get('p') ?? '';
    const up = new URL(p, o.upstream);
    const headers: Record<string, string> = o.redirectBlobs?.upstreamAuth ? { authorization: o.redirectBlobs.upstreamAuth } : {};
    forward('GET', up, headers, res);
  });
  await new Promise<void>((r) => cdnSrv.listen(0, '127.0.0.1', r));
  const cdnPort = (cdnSrv.address() as net.AddressInfo).port;
  const scheme = o.tls ? 'https' : 'http';

  function forward(
    method: string,
    up: URL,
    headers: Record<string, string | string[] | undefined>,
    res: http.ServerResponse,
    body?: http.IncomingMessage,
    tamper = false,
  ): void {
    const mod = up.protocol === 'https:' ? https : http;
    const preq = mod.request(up, { method, headers: { ...headers, host: up.host }, agent: false, ...(o.ca ? { ca: o.ca } : {}) }, (pres) => {
      if (!tamper) {
        res.writeHead(pres.statusCode ?? 502, pres.headers);
        pres.pipe(res);
        return;
      }
      const chunks: Buffer[] = [];
      pres.on('data', (c: Buffer) => chunks.push(c));
      pres.on('end', () => {
        const b = Buffer.concat(chunks);
        if (b.length > 0) b[b.length >> 1] = b[b.length >> 1]! ^ 0x20;
        res.writeHead(pres.statusCode ?? 502, pres.headers);
        res.end(b);
      });
    });
    preq.on('error', () => res.destroy());
    if (body) body.pipe(preq);
    else preq.end();
  }

  const srv = make((req, res) => {
    const line = `${req.method} ${req.url}`;
    requests.push(line);
    const isBlobGet = req.method === 'GET' && /^\/v2\/.+\/blobs\/sha256:[a-f0-9]{64}$/.test(req.url ?? '');
    if (isBlobGet && o.redirectBlobs) {
      res
        .writeHead(307, { location: `${scheme}://127.0.0.1:${cdnPort}/cdn?p=${encodeURIComponent(req.url ?? '')}&sig=${randomBytes(4).toString('hex')}` })
        .end();
      return;
    }
    const headers = { ...req.headers };
    delete headers.host;
    forward(req.method ?? 'GET', new URL(req.url ?? '/', o.upstream), headers, res, req, req.method === 'GET' && !!o.tamper?.test(req.url ?? ''));
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as net.AddressInfo).port;
  const close = (s: http.Server) => new Promise<void>((r) => s.close(() => r()).closeAllConnections());
  return {
    host: `127.0.0.1:${port}`,
    url: `${scheme}://127.0.0.1:${port}`,
    requests,
    cdn,
    blobGets: () => requests.filter((l) => /^GET \/v2\/.+\/blobs\/sha256:/.test(l)),
    stop: async () => {
      await close(srv);
      await close(cdnSrv);
    },
  };
}
