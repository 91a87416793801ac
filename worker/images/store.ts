// The node's content-addressed image store (see docs/design/images.md):
//
//   <root>/blobs/sha256/<hex>        image configs and manifests, digest verified on write
//   <root>/layers/<chainid>/diff/    one unpacked layer, ready to be an overlayfs lower dir
//   <root>/layers/<chainid>/layer.json
//   <root>/images/<name:tag>.json    name -> config digest (the image id), manifest digest, chain ids
//   <root>/tmp/                      staging; everything is built here and renamed into place
//
// Layers are keyed by OCI chain id, so a layer is unpacked once per node and shared by every image whose
// chain starts the same way. Whiteouts become what overlayfs understands in a lower dir: `.wh.x` is a
// 0/0 character device named x; an opaque directory (`.wh..wh..opq`) gets an explicit whiteout for every
// name visible below it in the parent chain (we cannot set trusted.* xattrs without a native helper, and
// the chain id pins the exact layers below, so the result is exact).
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { constants as FS } from 'node:fs';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { promisify } from 'node:util';
import {
  cleanPath,
  decompress,
  detectCompression,
  DIGEST_RE,
  ensureDirs,
  ImageError,
  normalizeName,
  openArchive,
  parseArchive,
  peek,
  sha256,
  tagName,
} from './archive.ts';
import type { ImageSpec, LayerRef } from './archive.ts';
import { familiarName } from './reference.ts';
import { readTar } from './tar.ts';
import { TarFileWriter } from './tar-write.ts';
import * as nl from '../../overlay-net/netlink.ts';
import type { TarEntry } from './tar.ts';

const execFileP = promisify(execFile);

export { ImageError } from './archive.ts';

export interface StoreLimits {
  /** Total bytes of file data one load may unpack (all layers). Default 8 GiB. */
  maxTotalBytes: number;
  /** Entries per layer. Default 1,000,000. */
  maxEntries: number;
  /** Largest single file. Default: maxTotalBytes. */
  maxFileSize: number;
  /** Largest decompressed/compressed ratio, checked once a layer's tar passes ratioMinBytes. Default 100. */
  maxRatio: number;
  /** Default 256 MiB: smaller layers are never refused for their ratio alone. */
  ratioMinBytes: number;
  /** Bytes of files a tar archive given to load() may hold (it is staged on disk). Default 16 GiB. */
  maxArchiveBytes: number;
}

export const DEFAULT_LIMITS: StoreLimits = {
  maxTotalBytes: 8 * 1024 ** 3,
  maxEntries: 1_000_000,
  maxFileSize: 8 * 1024 ** 3,
  maxRatio: 100,
  ratioMinBytes: 256 * 1024 ** 2,
  maxArchiveBytes: 16 * 1024 ** 3,
};

/** Where install reads layer blobs from: an opened archive, or the blobs a registry pull downloaded. */
export interface BlobSource {
  /** The bytes of the blob a LayerRef's `path` names. */
  stream(p: string): AsyncIterable<Buffer>;
}

export type { ImageSpec, LayerRef } from './archive.ts';

export interface ImageInfo {
  name: string;
  /** Config digest: the image id (the same whether loaded from docker save or an OCI layout). */
  digest: string;
  manifestDigest?: string;
  diffIds: string[];
  /** Chain ids, bottom layer first. */
  chainIds: string[];
  loadedAt: string;
}

/** layers/<chainid>/layer.json */
export interface LayerMeta {
  chainId: string;
  diffId: string;
  parent: string | null;
  /** Bytes of file data unpacked. */
  size: number;
  /** The layer blob as received (absent for layers unpacked by an older Shoal). */
  blobDigest?: string;
  blobSize?: number;
  compression?: 'gzip' | 'zstd' | 'none';
  unpackedAt: string;
}

export interface ImageConfig {
  Env: string[];
  Cmd: string[] | null;
  Entrypoint: string[] | null;
  WorkingDir: string;
  User: string;
  /** The image's HEALTHCHECK (durations in nanoseconds, as Docker stores them). */
  Healthcheck?: { Test?: string[]; Interval?: number; Timeout?: number; StartPeriod?: number; Retries?: number };
}

export function chainIds(diffIds: readonly string[]): string[] {
  const out: string[] = [];
  for (const d of diffIds) {
    const prev = out[out.length - 1];
    out.push(prev === undefined ? d : sha256(`${prev} ${d}`));
  }
  return out;
}

function hex(d: string): string {
  return d.slice('sha256:'.length);
}

function exists(p: string): boolean {
  try {
    fs.lstatSync(p);
    return true;
  } catch {
    return false;
  }
}

async function mknodWhiteout(p: string): Promise<void> {
  await execFileP('mknod', ['-m', '0000', p, 'c', '0', '0']);
}

interface LoadBudget {
  total: number;
}

export class ImageStore {
  readonly limits: StoreLimits;
  /** How many layers this instance actually unpacked (the rest were already present). */
  unpackCount = 0;

  constructor(
    readonly root = '/var/lib/shoal/images',
    limits: Partial<StoreLimits> = {},
  ) {
    this.limits = { ...DEFAULT_LIMITS, ...limits };
    if (limits.maxFileSize === undefined) this.limits.maxFileSize = this.limits.maxTotalBytes;
    for (const d of ['blobs/sha256', 'layers', 'images', 'tmp']) fs.mkdirSync(path.join(root, d), { recursive: true, mode: 0o700 });
  }

  private get tmp(): string {
    return path.join(this.root, 'tmp');
  }

  /** Loads every image in a docker-save archive or OCI layout; returns the first one. */
  async load(src: string | Buffer, opts: { tag?: string } = {}): Promise<{ name: string; digest: string }> {
    const all = await this.loadAll(src, opts);
    return all[0]!;
  }

  async loadAll(src: string | Buffer, opts: { tag?: string } = {}): Promise<Array<{ name: string; digest: string }>> {
    const a = await openArchive(src, this.tmp, { maxTotalBytes: this.limits.maxArchiveBytes, maxEntries: this.limits.maxEntries });
    try {
      const specs = await parseArchive(a);
      const out: Array<{ name: string; digest: string }> = [];
      for (const spec of specs) {
        const names = opts.tag ? [tagName(opts.tag)] : spec.names.length ? spec.names : [spec.configDigest];
        await this.install(a, spec, names);
        out.push({ name: names[0]!, digest: spec.configDigest });
      }
      return out;
    } finally {
      await a.close();
    }
  }

  /**
   * Installs an image whose blobs come from somewhere other than an archive (a registry pull), with the
   * same checks, staging and clean-up as load(): every layer blob is hashed and each uncompressed layer
   * must match its diff id. `spec.config` is checked against `spec.configDigest` and `spec.manifest`
   * (if any) against `spec.manifestDigest`. With `verifyPresentLayers: false`, a layer whose chain id is
   * already in the store is not read from the source at all (so a pull need not download it).
   */
  async importImage(
    spec: ImageSpec,
    source: BlobSource,
    opts: { names?: string[]; verifyPresentLayers?: boolean } = {},
  ): Promise<{ name: string; digest: string }> {
    const names = opts.names?.length ? opts.names.map(tagName) : spec.names.length ? spec.names : [spec.configDigest];
    if (sha256(spec.config) !== spec.configDigest)
      throw new ImageError(`config ${spec.configDigest}: digest mismatch: content hashes to ${sha256(spec.config)}`);
    if (spec.manifest && spec.manifestDigest && sha256(spec.manifest) !== spec.manifestDigest) {
      throw new ImageError(`manifest ${spec.manifestDigest}: digest mismatch: content hashes to ${sha256(spec.manifest)}`);
    }
    await this.install(source, spec, names, opts.verifyPresentLayers ?? true);
    return { name: names[0]!, digest: spec.configDigest };
  }

  /** True if the layer with this chain id is unpacked in the store. */
  hasLayer(chainId: string): boolean {
    return DIGEST_RE.test(chainId) && exists(path.join(this.root, 'layers', hex(chainId)));
  }

  private async install(a: BlobSource, spec: ImageSpec, names: string[], verifyPresent = true): Promise<void> {
    const diffIds = spec.layers.map((l) => l.diffId);
    const chain = chainIds(diffIds);
    const budget: LoadBudget = { total: 0 };
    const fresh: string[] = [];
    try {
      for (const [i, layer] of spec.layers.entries()) {
        const cid = chain[i]!;
        const lowers = chain
          .slice(0, i)
          .reverse()
          .map((c) => this.layerDiff(c));
        if (exists(path.join(this.root, 'layers', hex(cid)))) {
          if (layer.blobDigest && verifyPresent) await this.verifyBlob(a, layer);
          continue;
        }
        if (await this.unpackLayer(a, layer, cid, i === 0 ? null : chain[i - 1]!, lowers, budget)) fresh.push(cid);
      }
    } catch (e) {
      // the image is refused as a whole: drop the layers this load added that no image uses
      const used = new Set(this.readRecords().flatMap((r) => r.chainIds));
      for (const cid of fresh) {
        if (used.has(cid)) continue;
        const blob = this.layerMeta(cid)?.blobDigest;
        await fsp.rm(path.join(this.root, 'layers', hex(cid)), { recursive: true, force: true });
        const shared = blob !== undefined && [...used].some((c) => this.layerMeta(c)?.blobDigest === blob); // same bytes atop another parent
        if (blob && !shared) await fsp.rm(path.join(this.root, 'blobs', 'sha256', hex(blob)), { force: true });
      }
      throw e;
    }
    await this.putBlob(spec.config, spec.configDigest);
    if (spec.manifest && spec.manifestDigest) await this.putBlob(spec.manifest, spec.manifestDigest);
    for (const name of names) {
      const info: ImageInfo = {
        name,
        digest: spec.configDigest,
        ...(spec.manifestDigest ? { manifestDigest: spec.manifestDigest } : {}),
        diffIds,
        chainIds: chain,
        loadedAt: new Date().toISOString(),
      };
      await this.writeAtomic(this.recordPath(name), Buffer.from(JSON.stringify(info, null, 2)));
    }
  }

  private async verifyBlob(a: BlobSource, layer: LayerRef): Promise<void> {
    const h = createHash('sha256');
    for await (const c of a.stream(layer.path)) h.update(c);
    const got = `sha256:${h.digest('hex')}`;
    if (got !== layer.blobDigest) throw new ImageError(`layer ${layer.path}: digest mismatch for blob ${layer.blobDigest}: content hashes to ${got}`);
  }

  private recordPath(name: string): string {
    return path.join(this.root, 'images', `${encodeURIComponent(name)}.json`);
  }

  private layerDiff(chainId: string): string {
    return path.join(this.root, 'layers', hex(chainId), 'diff');
  }

  private async writeAtomic(dest: string, data: Buffer): Promise<void> {
    const t = path.join(this.tmp, `w-${randomBytes(6).toString('hex')}`);
    await fsp.writeFile(t, data, { mode: 0o600 });
    await fsp.rename(t, dest);
  }

  /** Stores a blob under its digest, refusing content that does not hash to it. */
  async putBlob(data: Buffer, digest: string): Promise<void> {
    if (!DIGEST_RE.test(digest)) throw new ImageError(`blob: invalid digest ${digest}`);
    const got = sha256(data);
    if (got !== digest) throw new ImageError(`blob ${digest}: digest mismatch: content hashes to ${got}`);
    const dest = path.join(this.root, 'blobs', 'sha256', hex(digest));
    if (!exists(dest)) await this.writeAtomic(dest, data);
  }

  /** Unpacks one layer into layers/<chainid>; true if this call created it. */
  private async unpackLayer(a: BlobSource, layer: LayerRef, cid: string, parent: string | null, lowers: string[], budget: LoadBudget): Promise<boolean> {
    const what = `layer ${layer.diffId.slice(0, 19)}`;
    const work = path.join(this.tmp, `layer-${randomBytes(6).toString('hex')}`);
    const diff = path.join(work, 'diff');
    await fsp.mkdir(diff, { recursive: true, mode: 0o755 });
    try {
      const L = this.limits;
      const blobHash = createHash('sha256');
      let compressed = 0;
      // The layer's blob is kept as it came (compressed or not) so the node can hand the image on to
      // others byte for byte (cluster-internal distribution): re-packing would change its digests.
      const blobFile = await fsp.open(path.join(work, 'blob'), 'w', 0o600);
      const raw = (async function* () {
        for await (const c of a.stream(layer.path)) {
          blobHash.update(c);
          compressed += c.length;
          await blobFile.write(c as Buffer);
          yield c as Buffer;
        }
      })();
      // until the tar loop's finally owns it, a failure must close the blob file itself (a source that
      // fails on its first bytes, a refused compression)
      const closingOnError = async <T>(f: () => Promise<T> | T): Promise<T> => {
        try {
          return await f();
        } catch (e) {
          await blobFile.close();
          throw e;
        }
      };
      const { head, all } = await closingOnError(() => peek(raw));
      const kind = await closingOnError(() => detectCompression(head, what));
      const diffHash = createHash('sha256');
      let plain = 0;
      const tarStream = (async function* () {
        for await (const c of decompress(all, kind, what)) {
          diffHash.update(c);
          plain += c.length;
          if (plain > L.ratioMinBytes && compressed > 0 && plain / compressed > L.maxRatio) {
            throw new ImageError(`${what}: compression ratio exceeds ${L.maxRatio}:1 (${plain} bytes from ${compressed}); refusing a possible archive bomb`);
          }
          yield c;
        }
      })();
      const u = new Unpacker(diff, what, L, budget);
      try {
        for await (const e of readTar(tarStream, { buffer: false, drain: true })) await u.entry(e);
      } finally {
        await blobFile.close();
      }
      const diffId = `sha256:${diffHash.digest('hex')}`;
      if (diffId !== layer.diffId)
        throw new ImageError(`${what} (${layer.path}): digest mismatch: uncompressed content hashes to ${diffId}, config says ${layer.diffId}`);
      const blobDigest = `sha256:${blobHash.digest('hex')}`;
      if (layer.blobDigest) {
        const got = blobDigest;
        if (got !== layer.blobDigest) throw new ImageError(`${what} (${layer.path}): digest mismatch for blob ${layer.blobDigest}: content hashes to ${got}`);
      }
      await u.finish(lowers);
      const blobDest = path.join(this.root, 'blobs', 'sha256', hex(blobDigest));
      if (exists(blobDest)) await fsp.rm(path.join(work, 'blob'), { force: true });
      else await fsp.rename(path.join(work, 'blob'), blobDest);
      const meta: LayerMeta = {
        chainId: cid,
        diffId: layer.diffId,
        parent,
        size: u.bytes,
        blobDigest,
        blobSize: compressed,
        compression: kind === 'gzip' ? 'gzip' : 'none',
        unpackedAt: new Date().toISOString(),
      };
      await fsp.writeFile(path.join(work, 'layer.json'), JSON.stringify(meta, null, 2));
      try {
        await fsp.rename(work, path.join(this.root, 'layers', hex(cid)));
        this.unpackCount++;
        return true;
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code !== 'EEXIST' && code !== 'ENOTEMPTY') throw e;
        await fsp.rm(work, { recursive: true, force: true }); // another load unpacked it first
        return false;
      }
    } catch (e) {
      await fsp.rm(work, { recursive: true, force: true });
      throw e;
    }
  }

  // ---------------------------------------------------------------------------------------------------

  private readRecords(): ImageInfo[] {
    const dir = path.join(this.root, 'images');
    const out: ImageInfo[] = [];
    for (const f of fs.readdirSync(dir).sort()) {
      if (!f.endsWith('.json')) continue;
      try {
        out.push(JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8')) as ImageInfo);
      } catch {
        // a damaged record is skipped; rm by name can still remove it
      }
    }
    return out;
  }

  list(): ImageInfo[] {
    return this.readRecords();
  }

  /**
   * An image by name (":latest" is implied), full digest ("sha256:<hex>"), or unique digest prefix (with or
   * without "sha256:", at least 4 hex digits). An ambiguous prefix throws.
   */
  resolve(ref: string): ImageInfo | undefined {
    // `name@sha256:…` (a reference pinned by the managers) is found by its digest alone: the digest is
    // the identity; the name is only what the user called it.
    // A full digest — pinned or bare — is looked up by digest only, never as a name: a record whose name
    // is shaped like a digest must not shadow the image (security review, finding 6; tagName refuses
    // such names at load, this also covers records stored before it did).
    const at = ref.indexOf('@');
    const pinned = at > 0;
    if (pinned) ref = ref.slice(at + 1);
    const recs = this.readRecords();
    if (pinned || /^sha256:[a-f0-9]{64}$/.test(ref)) {
      const h = ref.startsWith('sha256:') ? ref.slice(7) : ref;
      return recs.find((r) => hex(r.digest) === h) ?? recs.find((r) => r.manifestDigest !== undefined && hex(r.manifestDigest) === h);
    }
    const familiar = familiarName(ref); // docker.io/library/busybox -> busybox:latest
    const byName =
      recs.find((r) => r.name === ref) ??
      recs.find((r) => r.name === normalizeName(ref)) ??
      (familiar === null ? undefined : recs.find((r) => r.name === familiar));
    if (byName) return byName;
    const p = ref.startsWith('sha256:') ? ref.slice(7) : ref;
    if (!/^[a-f0-9]{4,64}$/.test(p)) return undefined;
    const hits = recs.filter((r) => hex(r.digest).startsWith(p) || (p.length === 64 && r.manifestDigest !== undefined && hex(r.manifestDigest) === p));
    const digests = new Set(hits.map((r) => r.digest));
    if (digests.size > 1) throw new ImageError(`image reference ${ref} is ambiguous (${digests.size} images match)`);
    return hits[0];
  }

  private must(ref: string): ImageInfo {
    const r = this.resolve(ref);
    if (!r) throw new ImageError(`no such image: ${ref}`);
    return r;
  }

  /** Overlay lower dirs for an image, top layer first. */
  layersFor(ref: string): string[] {
    const r = this.must(ref);
    return [...r.chainIds].reverse().map((c) => this.layerDiff(c));
  }

  config(ref: string): ImageConfig {
    const r = this.must(ref);
    const raw = JSON.parse(fs.readFileSync(path.join(this.root, 'blobs', 'sha256', hex(r.digest)), 'utf8')) as { config?: Record<string, unknown> };
    const c = raw.config ?? {};
    const strs = (v: unknown): string[] | null => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : null);
    return {
      Env: strs(c.Env) ?? [],
      Cmd: strs(c.Cmd),
      Entrypoint: strs(c.Entrypoint),
      WorkingDir: typeof c.WorkingDir === 'string' ? c.WorkingDir : '',
      User: typeof c.User === 'string' ? c.User : '',
      ...(healthcheckOf(c.Healthcheck) ?? {}),
    };
  }

  /** Removes an image: by name removes that tag; by digest removes every tag of it. Then collects garbage. */
  async rm(ref: string): Promise<void> {
    const r = this.must(ref);
    const byName = r.name === ref || r.name === normalizeName(ref) || r.name === familiarName(ref);
    for (const rec of this.readRecords()) {
      if (byName ? rec.name === r.name : rec.digest === r.digest) await fsp.rm(this.recordPath(rec.name), { force: true });
    }
    await this.gc();
  }

  /** Removes every image not named (by name or digest) in inUse, then unreferenced layers and blobs. */
  async prune(inUse: Set<string>): Promise<string[]> {
    const keep = new Set<string>();
    for (const ref of inUse) {
      const r = this.resolve(ref);
      if (r) keep.add(r.digest);
    }
    const removed: string[] = [];
    for (const rec of this.readRecords()) {
      if (keep.has(rec.digest) || inUse.has(rec.name)) continue;
      await fsp.rm(this.recordPath(rec.name), { force: true });
      removed.push(rec.name);
    }
    await this.gc();
    return removed;
  }

  /** A layer's metadata (null when missing or unreadable). */
  layerMeta(chainId: string): LayerMeta | null {
    try {
      return JSON.parse(fs.readFileSync(path.join(this.root, 'layers', hex(chainId), 'layer.json'), 'utf8')) as LayerMeta;
    } catch {
      return null;
    }
  }

  /** The path of a stored blob (config, manifest or layer), or null. */
  blobPath(digest: string): string | null {
    if (!DIGEST_RE.test(digest)) return null;
    const p = path.join(this.root, 'blobs', 'sha256', hex(digest));
    return exists(p) ? p : null;
  }

  /**
   * Writes the image as an OCI image layout tar to `dest` (config, the layers' original blobs and a
   * manifest naming them), which `load()` on another node accepts: the receiver re-verifies every digest.
   */
  async exportImage(ref: string, dest: string): Promise<{ name: string; digest: string; bytes: number }> {
    const r = this.must(ref);
    const layers = r.chainIds.map((c) => {
      const m = this.layerMeta(c);
      const p = m?.blobDigest ? this.blobPath(m.blobDigest) : null;
      if (!m || !p) throw new ImageError(`image ${r.name}: layer ${c.slice(0, 19)} has no stored blob (it was loaded by an older Shoal); load the image again`);
      return { meta: m, path: p };
    });
    const configPath = this.blobPath(r.digest);
    if (!configPath) throw new ImageError(`image ${r.name}: config blob ${r.digest} missing`);
    const config = await fsp.readFile(configPath);
    const media = (c: LayerMeta['compression']) => `application/vnd.oci.image.layer.v1.tar${c === 'gzip' ? '+gzip' : c === 'zstd' ? '+zstd' : ''}`;
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: r.digest, size: config.length },
        layers: layers.map((l) => ({ mediaType: media(l.meta.compression), digest: l.meta.blobDigest, size: l.meta.blobSize })),
      }),
    );
    const manifestDigest = sha256(manifest);
    const index = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        manifests: [
          {
            mediaType: 'application/vnd.oci.image.manifest.v1+json',
            digest: manifestDigest,
            size: manifest.length,
            annotations: { 'org.opencontainers.image.ref.name': r.name },
          },
        ],
      }),
    );
    const w = new TarFileWriter(dest);
    try {
      await w.add('oci-layout', Buffer.from('{"imageLayoutVersion":"1.0.0"}'));
      await w.add('index.json', index);
      await w.add(`blobs/sha256/${hex(manifestDigest)}`, manifest);
      await w.add(`blobs/sha256/${hex(r.digest)}`, config);
      const seen = new Set<string>();
      for (const l of layers) {
        if (seen.has(l.meta.blobDigest!)) continue;
        seen.add(l.meta.blobDigest!);
        await w.addFile(`blobs/sha256/${hex(l.meta.blobDigest!)}`, l.path);
      }
      return { name: r.name, digest: r.digest, bytes: await w.close() };
    } catch (e) {
      await w.abort();
      throw e;
    }
  }

  private async gc(): Promise<void> {
    const recs = this.readRecords();
    const layers = new Set(recs.flatMap((r) => r.chainIds.map(hex)));
    const blobs = new Set(recs.flatMap((r) => [r.digest, ...(r.manifestDigest ? [r.manifestDigest] : [])].map(hex)));
    for (const r of recs)
      for (const c of r.chainIds) {
        const m = this.layerMeta(c);
        if (m?.blobDigest) blobs.add(hex(m.blobDigest));
      }
    for (const l of await fsp.readdir(path.join(this.root, 'layers'))) {
      if (!layers.has(l)) await fsp.rm(path.join(this.root, 'layers', l), { recursive: true, force: true });
    }
    for (const b of await fsp.readdir(path.join(this.root, 'blobs', 'sha256'))) {
      if (!blobs.has(b)) await fsp.rm(path.join(this.root, 'blobs', 'sha256', b), { force: true });
    }
  }
}

// -----------------------------------------------------------------------------------------------------------

/** Applies one layer's tar entries to a fresh directory, safely. */
class Unpacker {
  private entries = 0;
  bytes = 0;
  private readonly opaque = new Set<string>();
  private readonly dirs: Array<{ parts: string[]; mode: number; uid: number; gid: number; mtime: number }> = [];

  constructor(
    private readonly root: string,
    private readonly what: string,
    private readonly L: StoreLimits,
    private readonly budget: LoadBudget,
  ) {}

  async entry(e: TarEntry): Promise<void> {
    const what = `${this.what}: entry "${e.path}"`;
    if (++this.entries > this.L.maxEntries) throw new ImageError(`${what}: too many entries (limit ${this.L.maxEntries})`);
    const parts = cleanPath(e.path, `${this.what}: entry`);
    if (parts.length === 0) return; // the layer root itself
    const name = parts[parts.length - 1]!;
    const parentParts = parts.slice(0, -1);

    if (name.startsWith('.wh.')) {
      if (e.type !== 'file') throw new ImageError(`${what}: whiteout must be a regular file`);
      const parent = await ensureDirs(this.root, parentParts, what);
      if (name === '.wh..wh..opq') {
        this.opaque.add(parentParts.join('/'));
        return;
      }
      const victim = name.slice(4);
      if (victim === '' || victim === '.' || victim === '..' || victim.startsWith('.wh.')) throw new ImageError(`${what}: invalid whiteout name`);
      const t = path.join(parent, victim);
      if (!exists(t)) await mknodWhiteout(t); // an entry of this same layer wins over the whiteout
      return;
    }

    if (e.type === 'file') {
      if (e.size > this.L.maxFileSize) throw new ImageError(`${what}: file of ${e.size} bytes exceeds the per-file limit of ${this.L.maxFileSize} bytes`);
      this.budget.total += e.size;
      this.bytes += e.size;
      if (this.budget.total > this.L.maxTotalBytes) throw new ImageError(`${what}: total unpacked size exceeds the limit of ${this.L.maxTotalBytes} bytes`);
    }
    if (e.type === 'chardev' || e.type === 'blockdev') {
      if (e.type === 'chardev' && e.devmajor === 0 && e.devminor === 0) {
        const parent = await ensureDirs(this.root, parentParts, what);
        const t = path.join(parent, name);
        if (!exists(t)) await mknodWhiteout(t);
        return;
      }
      throw new ImageError(`${what}: device nodes are not allowed in image layers (${e.type} ${e.devmajor}:${e.devminor})`);
    }
    if (e.type === 'other') throw new ImageError(`${what}: unsupported tar entry type '${e.typeflag}'`);

    const parent = await ensureDirs(this.root, parentParts, what);
    const t = path.join(parent, name);
    const st = await fsp.lstat(t).catch(() => null);
    if (st) {
      if (st.isDirectory() && e.type === 'dir') {
        this.dirs.push({ parts, mode: e.mode, uid: e.uid, gid: e.gid, mtime: e.mtime });
        return;
      }
      const wasWhiteout = st.isCharacterDevice() && st.rdev === 0;
      await fsp.rm(t, { recursive: true, force: true });
      // a directory that replaces a whited-out one must not merge with what lies below
      if (wasWhiteout && e.type === 'dir') this.opaque.add(parts.join('/'));
    }
    switch (e.type) {
      case 'dir':
        await fsp.mkdir(t, { mode: 0o700 });
        this.dirs.push({ parts, mode: e.mode, uid: e.uid, gid: e.gid, mtime: e.mtime });
        return;
      case 'file': {
        const fh = await fsp.open(t, FS.O_WRONLY | FS.O_CREAT | FS.O_EXCL | FS.O_NOFOLLOW, 0o600);
        try {
          for await (const c of e.body()) await fh.write(c);
          await fh.chown(e.uid, e.gid);
          await fh.chmod(e.mode);
          await fh.utimes(e.mtime, e.mtime);
        } finally {
          await fh.close();
        }
        return;
      }
      case 'symlink':
        if (e.linkname === '') throw new ImageError(`${what}: empty symlink target`);
        await fsp.symlink(e.linkname, t);
        await fsp.lchown(t, e.uid, e.gid);
        await fsp.lutimes(t, e.mtime, e.mtime);
        return;
      case 'hardlink': {
        let tparts: string[];
        try {
          tparts = cleanPath(e.linkname, 'target');
        } catch {
          throw new ImageError(`${what}: hardlink target "${e.linkname}" escapes the layer root`);
        }
        if (tparts.length === 0) throw new ImageError(`${what}: hardlink target "${e.linkname}" escapes the layer root`);
        // walk the target without following symlinks on the way
        let cur = this.root;
        for (const [i, p] of tparts.entries()) {
          cur = path.join(cur, p);
          const s = await fsp.lstat(cur).catch(() => null);
          if (!s) throw new ImageError(`${what}: hardlink target "${e.linkname}" is not in this layer`);
          if (i < tparts.length - 1 && !s.isDirectory())
            throw new ImageError(`${what}: hardlink target "${e.linkname}" goes through a symlink or non-directory`);
          if (i === tparts.length - 1 && (s.isDirectory() || (s.isCharacterDevice() && s.rdev === 0)))
            throw new ImageError(`${what}: hardlink target "${e.linkname}" is not a file`);
        }
        await fsp.link(cur, t);
        return;
      }
      case 'fifo':
        await execFileP('mkfifo', ['-m', (e.mode & 0o777).toString(8), t]);
        await fsp.lchown(t, e.uid, e.gid);
        return;
    }
  }

  /** Turns opaque markers into explicit whiteouts, then sets directory modes and times (deepest first). */
  async finish(lowers: readonly string[]): Promise<void> {
    const seen = new Set<string>();
    const work = [...this.opaque];
    while (work.length) {
      const rel = work.pop()!;
      if (seen.has(rel)) continue;
      seen.add(rel);
      const relParts = rel === '' ? [] : rel.split('/');
      // a later entry may have replaced the directory (say, with a symlink): never write through that
      const here = await realDirIn(this.root, relParts);
      if (!here) continue;
      const below = new Set<string>();
      for (const low of lowers) {
        const d = await realDirIn(low, relParts);
        if (d) for (const n of await fsp.readdir(d)) below.add(n);
      }
      for (const n of below) {
        const t = path.join(here, n);
        const st = await fsp.lstat(t).catch(() => null);
        if (!st) await mknodWhiteout(t);
        else if (st.isDirectory()) work.push(rel === '' ? n : `${rel}/${n}`);
      }
    }
    for (const d of this.dirs.reverse()) {
      const p = await realDirIn(this.root, d.parts); // skip directories later replaced by something else
      if (!p) continue;
      await fsp.chown(p, d.uid, d.gid);
      await fsp.chmod(p, d.mode);
      await fsp.utimes(p, d.mtime, d.mtime);
    }
  }
}

/** root/parts if every component is a real directory (no symlinks followed), else null. */
async function realDirIn(root: string, parts: readonly string[]): Promise<string | null> {
  let cur = root;
  const st0 = await fsp.lstat(cur).catch(() => null);
  if (!st0?.isDirectory()) return null;
  for (const p of parts) {
    cur = path.join(cur, p);
    const st = await fsp.lstat(cur).catch(() => null);
    if (!st?.isDirectory()) return null;
  }
  return cur;
}

// -----------------------------------------------------------------------------------------------------------

/**
 * Mounts an image rootfs: overlayfs with the image layers as lower dirs (top first, as layersFor returns
 * them), upperDir/workDir for the container's writes (same filesystem, workDir empty). Runs
 * `mount -t overlay overlay -o lowerdir=...,upperdir=...,workdir=... target`. Paths may not contain ':'
 * or ','. The option string must fit one page (about 4 KiB): ~50 layers with the default root.
 */
export async function mountRootfs(lowerDirs: readonly string[], upperDir: string, workDir: string, target: string): Promise<void> {
  if (lowerDirs.length === 0) throw new ImageError('mountRootfs: no lower dirs');
  for (const p of [...lowerDirs, upperDir, workDir]) {
    if (!path.isAbsolute(p) || /[:,\\]/.test(p))
      throw new ImageError(`mountRootfs: unusable path ${JSON.stringify(p)} (must be absolute, without ':' ',' or '\\')`);
  }
  const opts = `lowerdir=${lowerDirs.join(':')},upperdir=${upperDir},workdir=${workDir}`;
  if (opts.length > 4000) throw new ImageError(`mountRootfs: overlay options are ${opts.length} bytes, over the kernel's one-page limit (too many layers)`);
  await fsp.mkdir(target, { recursive: true });
  try {
    nl.mountOverlay(opts, target);
  } catch (e) {
    throw new ImageError(`mountRootfs: mount failed: ${(e as Error).message}`);
  }
}

/** Unmounts a rootfs mounted by mountRootfs (lazily if busy). */
export async function unmountRootfs(target: string): Promise<void> {
  try {
    nl.unmount(target);
  } catch (e) {
    if ((e as { code?: string }).code === 'EINVAL' || (e as { code?: string }).code === 'ENOENT') return; // not mounted
    nl.unmount(target, true);
  }
}

function healthcheckOf(v: unknown): { Healthcheck: NonNullable<ImageConfig['Healthcheck']> } | null {
  if (typeof v !== 'object' || v === null) return null;
  const o = v as Record<string, unknown>;
  const num = (x: unknown) => (typeof x === 'number' && Number.isFinite(x) && x >= 0 ? x : undefined);
  const test = Array.isArray(o.Test) && o.Test.every((x) => typeof x === 'string') ? (o.Test as string[]) : undefined;
  const h = {
    ...(test ? { Test: test } : {}),
    ...Object.fromEntries((['Interval', 'Timeout', 'StartPeriod', 'Retries'] as const).flatMap((k) => (num(o[k]) !== undefined ? [[k, num(o[k])]] : []))),
  };
  return Object.keys(h).length ? { Healthcheck: h } : null;
}
