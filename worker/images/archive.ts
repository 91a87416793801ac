// Image archives: `docker save` output (legacy manifest.json + <id>/layer.tar, and the newer variant whose
// manifest.json points into an OCI blobs/ directory), plain OCI image layouts (a directory or a tar of one),
// and the safe-filesystem helpers the store shares. Nothing here trusts the archive: every path is
// normalised and refused if absolute or containing "..", every digest is checked. See docs/design/images.md.
import { createHash, randomBytes } from 'node:crypto';
import { constants as FS, createReadStream } from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { createGunzip } from 'node:zlib';
import { readTar } from './tar.ts';

export class ImageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ImageError';
  }
}

export const DIGEST_RE = /^sha256:[a-f0-9]{64}$/;

export function sha256(b: Buffer | string): string {
  return 'sha256:' + createHash('sha256').update(b).digest('hex');
}

/** Splits an archive path into clean components, refusing absolute paths and "..". */
export function cleanPath(p: string, what: string): string[] {
  if (p.startsWith('/')) throw new ImageError(`${what} "${p}": absolute paths are not allowed`);
  if (p.includes('\0')) throw new ImageError(`${what} "${p}": NUL byte in path`);
  const parts = p.split('/').filter((x) => x !== '' && x !== '.');
  if (parts.includes('..')) throw new ImageError(`${what} "${p}": ".." path components are not allowed`);
  return parts;
}

/**
 * Makes sure root/parts[0..n] exists as a chain of real directories, creating missing ones (mode 0755).
 * Never follows a symlink: an existing non-directory (or symlink) on the way is an error, except a
 * whiteout (character device 0/0) created earlier in the same layer, which is replaced.
 */
export async function ensureDirs(root: string, parts: readonly string[], what: string): Promise<string> {
  let cur = root;
  for (const part of parts) {
    cur = path.join(cur, part);
    let st: Awaited<ReturnType<typeof fsp.lstat>>;
    try {
      st = await fsp.lstat(cur);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      await fsp.mkdir(cur, { mode: 0o755 });
      continue;
    }
    if (st.isDirectory()) continue;
    if (st.isCharacterDevice() && st.rdev === 0) {
      await fsp.unlink(cur);
      await fsp.mkdir(cur, { mode: 0o755 });
      continue;
    }
    const rel = path.relative(root, cur);
    if (st.isSymbolicLink()) throw new ImageError(`${what}: parent "${rel}" is a symlink; refusing to write through a symlink`);
    throw new ImageError(`${what}: parent "${rel}" is not a directory`);
  }
  return cur;
}

export type Compression = 'none' | 'gzip';

/** Looks at the first bytes of a stream to find its compression; refuses formats we cannot read. */
export function detectCompression(head: Buffer, what: string): Compression {
  if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) return 'gzip';
  if (head.length >= 4 && head.readUInt32LE(0) === 0xfd2fb528) throw new ImageError(`${what}: zstd-compressed layers are not supported yet`);
  if (head.length >= 6 && head.subarray(0, 6).equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00])))
    throw new ImageError(`${what}: xz-compressed layers are not supported`);
  if (head.length >= 3 && head.subarray(0, 3).toString('latin1') === 'BZh') throw new ImageError(`${what}: bzip2-compressed layers are not supported`);
  return 'none';
}

/** Peeks at the first chunk of an iterable and returns it along with an iterable that replays it. */
export async function peek(src: AsyncIterable<Buffer>): Promise<{ head: Buffer; all: AsyncIterable<Buffer> }> {
  const it = src[Symbol.asyncIterator]();
  let head = Buffer.alloc(0);
  const first: Buffer[] = [];
  while (head.length < 8) {
    const r = await it.next();
    if (r.done) break;
    first.push(r.value);
    head = Buffer.concat([head, r.value]);
  }
  async function* all(): AsyncGenerator<Buffer> {
    let finished = false;
    try {
      for (const c of first) yield c;
      for (;;) {
        const r = await it.next();
        if (r.done) {
          finished = true;
          return;
        }
        yield r.value;
      }
    } finally {
      if (!finished) await it.return?.(undefined);
    }
  }
  return { head, all: all() };
}

/** Decompresses (if needed) a stream, turning zlib failures into a clear message. */
export async function* decompress(src: AsyncIterable<Buffer>, kind: Compression, what: string): AsyncGenerator<Buffer> {
  if (kind === 'none') {
    yield* src;
    return;
  }
  const gz = createGunzip();
  let stopped = false;
  const waitDrain = () =>
    new Promise<void>((r) => {
      gz.once('drain', r);
      gz.once('close', r);
    });
  void (async () => {
    try {
      for await (const c of src) {
        if (stopped) break;
        if (!gz.write(c)) await waitDrain();
        if (stopped) break;
      }
      if (!stopped) gz.end();
    } catch (e) {
      if (!stopped) gz.destroy(e as Error);
    }
  })();
  try {
    for await (const c of gz) yield c as Buffer;
  } catch (e) {
    if (e instanceof ImageError) throw e;
    throw new ImageError(`${what}: gzip: ${(e as Error).message}`);
  } finally {
    stopped = true;
    gz.destroy();
  }
}

// ---------------------------------------------------------------------------------------------------------

/** Where an archive's files are read from: an OCI layout directory or a tar extracted to a staging dir. */
export class ArchiveDir {
  constructor(
    readonly root: string,
    private readonly cleanupDir: string | null,
  ) {}

  private resolve(p: string): string {
    return path.join(this.root, ...cleanPath(p, 'archive path'));
  }

  async exists(p: string): Promise<boolean> {
    try {
      return (await fsp.stat(this.resolve(p))).isFile();
    } catch {
      return false;
    }
  }

  async readFile(p: string, max = 16 << 20): Promise<Buffer> {
    const f = this.resolve(p);
    let st: Awaited<ReturnType<typeof fsp.stat>>;
    try {
      st = await fsp.stat(f);
    } catch {
      throw new ImageError(`archive: missing file ${p}`);
    }
    if (!st.isFile()) throw new ImageError(`archive: ${p} is not a regular file`);
    if (st.size > max) throw new ImageError(`archive: ${p} is ${st.size} bytes, over the limit of ${max}`);
    return fsp.readFile(f);
  }

  stream(p: string): AsyncIterable<Buffer> {
    return createReadStream(this.resolve(p), { highWaterMark: 1 << 20 });
  }

  async close(): Promise<void> {
    if (this.cleanupDir) await fsp.rm(this.cleanupDir, { recursive: true, force: true });
  }
}

export interface OpenLimits {
  maxTotalBytes: number;
  maxEntries: number;
}

/**
 * Opens an archive: a directory is used in place; a tar file or Buffer (optionally gzip-compressed) is
 * extracted under `stagingParent` (regular files only; symlinks between files, which docker save uses for
 * repeated layers, become hard links when they resolve inside the archive).
 */
export async function openArchive(src: string | Buffer, stagingParent: string, limits: OpenLimits): Promise<ArchiveDir> {
  if (typeof src === 'string') {
    const st = await fsp.stat(src).catch(() => null);
    if (!st) throw new ImageError(`archive ${src}: no such file or directory`);
    if (st.isDirectory()) return new ArchiveDir(src, null);
  }
  await fsp.mkdir(stagingParent, { recursive: true, mode: 0o700 });
  const dir = path.join(stagingParent, `archive-${randomBytes(6).toString('hex')}`);
  await fsp.mkdir(dir, { mode: 0o700 });
  try {
    const buf = src;
    const raw: AsyncIterable<Buffer> =
      typeof buf === 'string'
        ? createReadStream(buf, { highWaterMark: 1 << 20 })
        : (async function* () {
            yield buf;
          })();
    const { head, all } = await peek(raw);
    const kind = detectCompression(head, 'archive');
    const links: Array<[string[], string]> = [];
    let total = 0;
    let count = 0;
    for await (const e of readTar(decompress(all, kind, 'archive'), { buffer: false })) {
      if (++count > limits.maxEntries) throw new ImageError(`archive entry "${e.path}": too many entries (limit ${limits.maxEntries})`);
      const parts = cleanPath(e.path, 'archive entry');
      if (parts.length === 0) continue;
      const what = `archive entry "${e.path}"`;
      if (e.type === 'dir') {
        await ensureDirs(dir, parts, what);
      } else if (e.type === 'file') {
        total += e.size;
        if (total > limits.maxTotalBytes) throw new ImageError(`${what}: archive exceeds the limit of ${limits.maxTotalBytes} bytes`);
        const parent = await ensureDirs(dir, parts.slice(0, -1), what);
        const fh = await fsp.open(path.join(parent, parts[parts.length - 1]!), FS.O_WRONLY | FS.O_CREAT | FS.O_EXCL | FS.O_NOFOLLOW, 0o600);
        try {
          for await (const c of e.body()) await fh.write(c);
        } finally {
          await fh.close();
        }
      } else if (e.type === 'symlink' || e.type === 'hardlink') {
        links.push([parts, e.type === 'symlink' ? path.posix.join(...parts.slice(0, -1), e.linkname) : e.linkname]);
      }
      // anything else in an image archive is ignored: we only ever read regular files from it
    }
    for (const [parts, target] of links) {
      let tparts: string[];
      try {
        tparts = cleanPath(path.posix.normalize(target), 'archive link');
      } catch {
        continue; // a link pointing outside the archive is simply not followed
      }
      const t = path.join(dir, ...tparts);
      const st = await fsp.lstat(t).catch(() => null);
      if (!st?.isFile()) continue;
      const parent = await ensureDirs(dir, parts.slice(0, -1), `archive link "${parts.join('/')}"`);
      await fsp.link(t, path.join(parent, parts[parts.length - 1]!)).catch(() => undefined);
    }
    return new ArchiveDir(dir, dir);
  } catch (e) {
    await fsp.rm(dir, { recursive: true, force: true });
    throw e;
  }
}

// ---------------------------------------------------------------------------------------------------------

export interface LayerRef {
  /** File inside the archive. */
  path: string;
  /** Digest of the blob as stored (compressed), when the format records it (OCI, new docker save). */
  blobDigest?: string;
  mediaType?: string;
  /** Uncompressed digest, from the config's rootfs.diff_ids. */
  diffId: string;
}

export interface ImageSpec {
  names: string[];
  config: Buffer;
  configDigest: string;
  manifest?: Buffer;
  manifestDigest?: string;
  layers: LayerRef[];
}

const INDEX_TYPES = new Set(['application/vnd.oci.image.index.v1+json', 'application/vnd.docker.distribution.manifest.list.v2+json']);

function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function parseJson(b: Buffer, what: string): unknown {
  try {
    return JSON.parse(b.toString('utf8'));
  } catch (e) {
    throw new ImageError(`${what}: invalid JSON: ${(e as Error).message}`);
  }
}

function blobPath(digest: unknown, what: string): string {
  if (typeof digest !== 'string' || !DIGEST_RE.test(digest)) throw new ImageError(`${what}: invalid or unsupported digest ${JSON.stringify(digest)}`);
  return `blobs/sha256/${digest.slice(7)}`;
}

async function readBlob(a: ArchiveDir, desc: unknown, what: string): Promise<{ data: Buffer; digest: string }> {
  if (!isObj(desc)) throw new ImageError(`${what}: descriptor is not an object`);
  const p = blobPath(desc.digest, what);
  if (!(await a.exists(p))) throw new ImageError(`${what}: missing blob ${desc.digest as string}`);
  const data = await a.readFile(p);
  const got = sha256(data);
  if (got !== desc.digest) throw new ImageError(`${what}: digest mismatch for blob ${desc.digest}: content hashes to ${got}`);
  if (typeof desc.size === 'number' && desc.size !== data.length)
    throw new ImageError(`${what}: size mismatch for blob ${desc.digest}: descriptor says ${desc.size}, blob has ${data.length}`);
  return { data, digest: got };
}

function diffIdsOf(config: unknown, what: string): string[] {
  if (!isObj(config) || !isObj(config.rootfs) || !Array.isArray(config.rootfs.diff_ids)) throw new ImageError(`${what}: config has no rootfs.diff_ids`);
  const ids = config.rootfs.diff_ids as unknown[];
  for (const d of ids) if (typeof d !== 'string' || !DIGEST_RE.test(d)) throw new ImageError(`${what}: invalid diff_id ${JSON.stringify(d)}`);
  return ids as string[];
}

function goArch(): string {
  return (
    ({ x64: 'amd64', arm64: 'arm64', arm: 'arm', ia32: '386', ppc64: 'ppc64le', s390x: 's390x', riscv64: 'riscv64' } as Record<string, string>)[process.arch] ??
    process.arch
  );
}

/** Default tag when a reference has none. */
export function normalizeName(n: string): string {
  const slash = n.lastIndexOf('/');
  return n.lastIndexOf(':') > slash ? n : `${n}:latest`;
}

/**
 * A name an image is stored under (archive tags, annotations, `load --tag`, pull names), normalized.
 * A name shaped like a digest (`sha256:<64 hex>`, or a 64-hex repository as Docker refuses too) is
 * refused: it would shadow the image a pinned reference names (security review, finding 6).
 */
export function tagName(n: string): string {
  const name = normalizeName(n);
  if (/^(sha256|sha384|sha512):[a-f0-9]{32,}$/i.test(name)) {
    throw new ImageError(`image name ${JSON.stringify(n.slice(0, 100))} looks like a digest; an image cannot be tagged with one`);
  }
  const slash = name.lastIndexOf('/');
  const repo = name.slice(0, name.lastIndexOf(':') > slash ? name.lastIndexOf(':') : name.length);
  if (/(^|\/)[a-f0-9]{64}$/.test(repo)) {
    throw new ImageError(`image name ${JSON.stringify(n.slice(0, 100))} has a 64-hex repository, which reads as an image id; pick another name`);
  }
  return name;
}

async function ociManifest(a: ArchiveDir, desc: Record<string, unknown>, names: string[], depth: number): Promise<ImageSpec> {
  const what = `manifest ${String(desc.digest)}`;
  if (depth > 4) throw new ImageError(`${what}: index nesting too deep`);
  const { data, digest } = await readBlob(a, desc, what);
  const m = parseJson(data, what);
  if (!isObj(m)) throw new ImageError(`${what}: not an object`);
  const mt = (m.mediaType as string | undefined) ?? (desc.mediaType as string | undefined);
  if ((mt && INDEX_TYPES.has(mt)) || Array.isArray(m.manifests)) {
    const list = (m.manifests as unknown[] | undefined) ?? [];
    const ok = list.filter(isObj);
    const pick =
      ok.find((d) => isObj(d.platform) && d.platform.os === 'linux' && d.platform.architecture === goArch()) ??
      ok.find((d) => !isObj(d.platform) || d.platform.os === 'linux');
    if (!pick) throw new ImageError(`${what}: image index has no manifest for linux/${goArch()}`);
    return ociManifest(a, pick, names, depth + 1);
  }
  if (!isObj(m.config)) throw new ImageError(`${what}: manifest has no config descriptor`);
  if (!Array.isArray(m.layers)) throw new ImageError(`${what}: manifest has no layers list`);
  const cfg = await readBlob(a, m.config, `${what} config`);
  const diffIds = diffIdsOf(parseJson(cfg.data, `${what} config`), `${what} config`);
  if (diffIds.length !== m.layers.length)
    throw new ImageError(`${what}: manifest lists ${m.layers.length} layers but the config has ${diffIds.length} diff_ids`);
  const layers: LayerRef[] = [];
  for (const [i, l] of (m.layers as unknown[]).entries()) {
    if (!isObj(l)) throw new ImageError(`${what}: layer ${i} descriptor is not an object`);
    const lt = String(l.mediaType ?? '');
    if (lt.includes('zstd')) throw new ImageError(`${what}: layer ${String(l.digest)}: zstd-compressed layers are not supported yet`);
    const p = blobPath(l.digest, `${what} layer ${i}`);
    if (!(await a.exists(p))) throw new ImageError(`${what}: missing blob ${String(l.digest)} (layer ${i})`);
    layers.push({ path: p, blobDigest: l.digest as string, mediaType: lt, diffId: diffIds[i]! });
  }
  return { names, config: cfg.data, configDigest: cfg.digest, manifest: data, manifestDigest: digest, layers };
}

async function fromOciLayout(a: ArchiveDir): Promise<ImageSpec[]> {
  if (!(await a.exists('oci-layout'))) throw new ImageError('OCI layout: missing oci-layout file');
  const lay = parseJson(await a.readFile('oci-layout'), 'oci-layout');
  if (!isObj(lay) || typeof lay.imageLayoutVersion !== 'string') throw new ImageError('oci-layout: missing imageLayoutVersion');
  const idx = parseJson(await a.readFile('index.json'), 'index.json');
  if (!isObj(idx) || !Array.isArray(idx.manifests) || idx.manifests.length === 0) throw new ImageError('index.json: no manifests');
  const out: ImageSpec[] = [];
  for (const d of idx.manifests as unknown[]) {
    if (!isObj(d)) throw new ImageError('index.json: manifest descriptor is not an object');
    const ann = isObj(d.annotations) ? d.annotations : {};
    const full = ann['io.containerd.image.name'];
    const ref = ann['org.opencontainers.image.ref.name'];
    const names = typeof full === 'string' ? [tagName(full)] : typeof ref === 'string' && ref !== '' ? [tagName(ref)] : [];
    out.push(await ociManifest(a, d, names, 0));
  }
  return out;
}

async function fromDockerSave(a: ArchiveDir): Promise<ImageSpec[]> {
  const m = parseJson(await a.readFile('manifest.json'), 'manifest.json');
  if (!Array.isArray(m) || m.length === 0) throw new ImageError('manifest.json: expected a non-empty array');
  const out: ImageSpec[] = [];
  for (const [i, ent] of m.entries()) {
    const what = `manifest.json[${i}]`;
    if (!isObj(ent) || typeof ent.Config !== 'string' || !Array.isArray(ent.Layers)) throw new ImageError(`${what}: needs Config and Layers`);
    if (!(await a.exists(ent.Config))) throw new ImageError(`${what}: missing blob ${ent.Config} (config)`);
    const config = await a.readFile(ent.Config);
    const configDigest = sha256(config);
    const named = /(?:^|\/)([a-f0-9]{64})(?:\.json)?$/.exec(ent.Config);
    if (named && `sha256:${named[1]}` !== configDigest)
      throw new ImageError(`${what}: digest mismatch for config ${ent.Config}: content hashes to ${configDigest}`);
    const diffIds = diffIdsOf(parseJson(config, `${what} config`), `${what} config`);
    if (diffIds.length !== ent.Layers.length) throw new ImageError(`${what}: lists ${ent.Layers.length} layers but the config has ${diffIds.length} diff_ids`);
    const layers: LayerRef[] = [];
    for (const [j, l] of (ent.Layers as unknown[]).entries()) {
      if (typeof l !== 'string') throw new ImageError(`${what}: layer ${j} is not a path`);
      cleanPath(l, `${what} layer`);
      if (!(await a.exists(l))) throw new ImageError(`${what}: missing blob ${l} (layer ${j})`);
      const b = /(?:^|\/)blobs\/sha256\/([a-f0-9]{64})$/.exec(l);
      layers.push({ path: l, diffId: diffIds[j]!, ...(b ? { blobDigest: `sha256:${b[1]}` } : {}) });
    }
    const tags = Array.isArray(ent.RepoTags) ? (ent.RepoTags as unknown[]).filter((t): t is string => typeof t === 'string').map(tagName) : [];
    out.push({ names: tags, config, configDigest, layers });
  }
  return out;
}

/** Reads and validates the image(s) an opened archive holds. */
export async function parseArchive(a: ArchiveDir): Promise<ImageSpec[]> {
  if (await a.exists('manifest.json')) return fromDockerSave(a);
  if (await a.exists('index.json')) return fromOciLayout(a);
  throw new ImageError('unrecognised image archive: no manifest.json (docker save) or index.json (OCI layout)');
}
