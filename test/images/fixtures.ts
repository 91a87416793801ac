// Test images built at test time: a tiny ustar writer, a 3-layer busybox image, and writers for the OCI
// image layout (directory or tar) and for `docker save` archives (legacy and OCI-variant).
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { gzipSync } from 'node:zlib';

export interface TEntry {
  path: string;
  type?: 'file' | 'dir' | 'symlink' | 'hardlink' | 'chardev' | 'blockdev' | 'fifo';
  data?: Buffer | string;
  mode?: number;
  linkname?: string;
  uid?: number;
  gid?: number;
  mtime?: number;
  devmajor?: number;
  devminor?: number;
}

const FLAGS = { file: '0', hardlink: '1', symlink: '2', chardev: '3', blockdev: '4', dir: '5', fifo: '6' } as const;

function octal(h: Buffer, off: number, len: number, v: number): void {
  h.write(v.toString(8).padStart(len - 1, '0') + '\0', off, len, 'latin1');
}

function header(name: string, flag: string, size: number, e: Partial<TEntry>, linkname = ''): Buffer {
  const h = Buffer.alloc(512);
  let prefix = '';
  let base = name;
  if (Buffer.byteLength(name) > 100) {
    const cut = name.lastIndexOf('/', 155);
    if (cut > 0 && Buffer.byteLength(name.slice(cut + 1)) <= 100) {
      prefix = name.slice(0, cut);
      base = name.slice(cut + 1);
    } else base = name.slice(0, 100);
  }
  h.write(base, 0, 100, 'utf8');
  octal(h, 100, 8, e.mode ?? (flag === '5' ? 0o755 : 0o644));
  octal(h, 108, 8, e.uid ?? 0);
  octal(h, 116, 8, e.gid ?? 0);
  octal(h, 124, 12, size);
  octal(h, 136, 12, e.mtime ?? 1_700_000_000);
  h.write(flag, 156, 1, 'latin1');
  h.write(linkname.slice(0, 100), 157, 100, 'utf8');
  h.write('ustar\0', 257, 6, 'latin1');
  h.write('00', 263, 2, 'latin1');
  octal(h, 329, 8, e.devmajor ?? 0);
  octal(h, 337, 8, e.devminor ?? 0);
  h.write(prefix, 345, 155, 'utf8');
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 8, 'latin1');
  return h;
}

function pad(b: Buffer): Buffer[] {
  const r = b.length % 512;
  return r ? [b, Buffer.alloc(512 - r)] : [b];
}

function paxRecord(k: string, v: string): string {
  const body = ` ${k}=${v}\n`;
  let n = body.length + 1;
  while (String(n).length + Buffer.byteLength(body) !== n) n = String(n).length + Buffer.byteLength(body);
  return `${n}${body}`;
}

/** A ustar archive; names or link targets that do not fit get a pax 'x' header. */
export function tar(entries: readonly TEntry[], opts: { gnuLongNames?: boolean } = {}): Buffer {
  const out: Buffer[] = [];
  for (const e of entries) {
    const type = e.type ?? (e.path.endsWith('/') ? 'dir' : 'file');
    const data = type === 'file' ? Buffer.from(e.data ?? '') : Buffer.alloc(0);
    const link = e.linkname ?? '';
    const longName = Buffer.byteLength(e.path) > 100 && (e.path.length > 255 || !e.path.slice(0, 156).includes('/'));
    if (opts.gnuLongNames && (Buffer.byteLength(e.path) > 100 || Buffer.byteLength(link) > 100)) {
      if (Buffer.byteLength(e.path) > 100) {
        const n = Buffer.from(e.path + '\0');
        out.push(header('././@LongLink', 'L', n.length, {}), ...pad(n));
      }
      if (Buffer.byteLength(link) > 100) {
        const n = Buffer.from(link + '\0');
        out.push(header('././@LongLink', 'K', n.length, {}), ...pad(n));
      }
    } else if (longName || Buffer.byteLength(link) > 100) {
      let recs = '';
      if (longName) recs += paxRecord('path', e.path);
      if (Buffer.byteLength(link) > 100) recs += paxRecord('linkpath', link);
      const b = Buffer.from(recs);
      out.push(header('PaxHeader', 'x', b.length, {}), ...pad(b));
    }
    out.push(header(e.path, FLAGS[type], data.length, e, link));
    if (data.length) out.push(...pad(data));
  }
  out.push(Buffer.alloc(1024));
  return Buffer.concat(out);
}

export function digest(b: Buffer | string): string {
  return 'sha256:' + createHash('sha256').update(b).digest('hex');
}

export interface FixtureLayer {
  /** The tar (uncompressed) — its digest is the diff id. */
  tar: Buffer;
  gzip: boolean;
}

export function layer(entries: readonly TEntry[], gzip = false): FixtureLayer {
  return { tar: tar(entries), gzip };
}

export function blobOf(l: FixtureLayer): Buffer {
  return l.gzip ? gzipSync(l.tar) : l.tar;
}

export interface FixtureImage {
  name: string;
  layers: FixtureLayer[];
  /** Use these bytes as the stored layer blobs instead of blobOf(layer) (to build broken archives). */
  blobs?: Buffer[];
  cmd?: string[];
}

function configOf(img: FixtureImage): Buffer {
  return Buffer.from(
    JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      config: { Env: ['PATH=/bin', 'SHOAL=1'], Cmd: img.cmd ?? ['/bin/sh'], WorkingDir: '/data', User: '0:0' },
      rootfs: { type: 'layers', diff_ids: img.layers.map((l) => digest(l.tar)) },
    }),
  );
}

function layerBlobs(img: FixtureImage): Buffer[] {
  return img.blobs ?? img.layers.map(blobOf);
}

/** Files of an OCI image layout (path -> content). */
export function ociFiles(images: readonly FixtureImage[]): Map<string, Buffer> {
  const files = new Map<string, Buffer>();
  const put = (b: Buffer) => {
    const d = digest(b);
    files.set(`blobs/sha256/${d.slice(7)}`, b);
    return d;
  };
  files.set('oci-layout', Buffer.from(JSON.stringify({ imageLayoutVersion: '1.0.0' })));
  const manifests = [];
  for (const img of images) {
    const cfg = configOf(img);
    const blobs = layerBlobs(img);
    const m = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: put(cfg), size: cfg.length },
        layers: img.layers.map((l, i) => ({
          mediaType: l.gzip ? 'application/vnd.oci.image.layer.v1.tar+gzip' : 'application/vnd.oci.image.layer.v1.tar',
          digest: put(blobs[i]!),
          size: blobs[i]!.length,
        })),
      }),
    );
    manifests.push({
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      digest: put(m),
      size: m.length,
      annotations: { 'io.containerd.image.name': img.name, 'org.opencontainers.image.ref.name': img.name.split(':').pop() },
    });
  }
  files.set('index.json', Buffer.from(JSON.stringify({ schemaVersion: 2, manifests })));
  return files;
}

export function writeFiles(dir: string, files: Map<string, Buffer>): void {
  for (const [p, b] of files) {
    fs.mkdirSync(path.join(dir, path.dirname(p)), { recursive: true });
    fs.writeFileSync(path.join(dir, p), b);
  }
}

export function tarFiles(files: Map<string, Buffer>): Buffer {
  const dirs = new Set<string>();
  for (const p of files.keys()) {
    const parts = p.split('/');
    for (let i = 1; i < parts.length; i++) dirs.add(parts.slice(0, i).join('/') + '/');
  }
  return tar([...[...dirs].sort().map((d) => ({ path: d, type: 'dir' as const })), ...[...files].map(([p, b]) => ({ path: p, data: b }))]);
}

/** A legacy `docker save` archive: manifest.json, <config hex>.json, <layer id>/layer.tar. */
export function dockerSaveLegacy(images: readonly FixtureImage[]): Buffer {
  const entries: TEntry[] = [];
  const seen = new Map<string, string>();
  const manifest = [];
  for (const img of images) {
    const cfg = configOf(img);
    const cfgName = `${digest(cfg).slice(7)}.json`;
    entries.push({ path: cfgName, data: cfg });
    const layers: string[] = [];
    for (const b of layerBlobs(img)) {
      const id = digest(b).slice(7);
      const p = `${id}/layer.tar`;
      if (!seen.has(id)) {
        seen.set(id, p);
        entries.push({ path: `${id}/`, type: 'dir' }, { path: `${id}/VERSION`, data: '1.0' }, { path: p, data: b });
        layers.push(p);
      } else {
        // docker save stores a repeated layer once and points other layer dirs at it with a symlink
        const dup = `${digest(img.name + id).slice(7)}`;
        entries.push({ path: `${dup}/`, type: 'dir' }, { path: `${dup}/layer.tar`, type: 'symlink', linkname: `../${id}/layer.tar` });
        layers.push(`${dup}/layer.tar`);
      }
    }
    manifest.push({ Config: cfgName, RepoTags: [img.name], Layers: layers });
  }
  entries.push({ path: 'manifest.json', data: JSON.stringify(manifest) });
  return tar(entries);
}

/** The newer `docker save` (Docker 25+): an OCI layout plus a manifest.json pointing into blobs/. */
export function dockerSaveOci(images: readonly FixtureImage[]): Buffer {
  const files = ociFiles(images);
  const manifest = images.map((img) => {
    const cfg = configOf(img);
    return { Config: `blobs/sha256/${digest(cfg).slice(7)}`, RepoTags: [img.name], Layers: layerBlobs(img).map((b) => `blobs/sha256/${digest(b).slice(7)}`) };
  });
  files.set('manifest.json', Buffer.from(JSON.stringify(manifest)));
  return tarFiles(files);
}

// -----------------------------------------------------------------------------------------------------------

/** Layer 1: busybox with a few applet symlinks and /etc/passwd (gzip). */
export function baseLayer(): FixtureLayer {
  return layer(
    [
      { path: 'bin/', type: 'dir' },
      { path: 'bin/busybox', data: fs.readFileSync('/bin/busybox'), mode: 0o755 },
      ...['sh', 'ls', 'cat', 'echo'].map((n) => ({ path: `bin/${n}`, type: 'symlink' as const, linkname: 'busybox' })),
      { path: 'etc/', type: 'dir' },
      { path: 'etc/passwd', data: 'root:x:0:0:root:/root:/bin/sh\n' },
    ],
    true,
  );
}

/** Layer 2: /data/a, /data/b, /etc/motd and an /opt tree (plain tar). */
export function dataLayer(): FixtureLayer {
  return layer([
    { path: 'data/', type: 'dir' },
    { path: 'data/a', data: 'a\n' },
    { path: 'data/b', data: 'b\n' },
    { path: 'etc/', type: 'dir' },
    { path: 'etc/motd', data: 'hello from shoal\n' },
    { path: 'opt/', type: 'dir' },
    { path: 'opt/old1', data: 'old\n' },
    { path: 'opt/olddir/', type: 'dir' },
    { path: 'opt/olddir/x', data: 'x\n' },
    { path: 'opt/keep/', type: 'dir' },
    { path: 'opt/keep/old', data: 'old\n' },
  ]);
}

/** Layer 3: deletes /data/a, makes /opt opaque with new content (gzip). */
export function whiteoutLayer(): FixtureLayer {
  return layer(
    [
      { path: 'data/', type: 'dir' },
      { path: 'data/.wh.a', data: '' },
      { path: 'opt/', type: 'dir' },
      { path: 'opt/.wh..wh..opq', data: '' },
      { path: 'opt/new', data: 'new\n' },
      { path: 'opt/keep/', type: 'dir' },
      { path: 'opt/keep/fresh', data: 'fresh\n' },
    ],
    true,
  );
}

export function baseImage(name = 'shoal/base:1'): FixtureImage {
  return { name, layers: [baseLayer(), dataLayer()] };
}

export function appImage(name = 'shoal/app:1'): FixtureImage {
  return { name, layers: [baseLayer(), dataLayer(), whiteoutLayer()] };
}
