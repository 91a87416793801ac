// Hostile and broken archives are refused with a message naming the entry and the rule, and leave nothing
// behind: no layer, no image record, no staging files, nothing written outside the store.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { ImageStore } from '../../worker/images/store.ts';
import type { StoreLimits } from '../../worker/images/store.ts';
import { baseImage, digest, dockerSaveLegacy, layer, ociFiles, tar, tarFiles, writeFiles } from './fixtures.ts';
import type { FixtureImage, TEntry } from './fixtures.ts';

let tmp = '';
let n = 0;
before(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'shoal-evil-'));
});
after(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

function store(limits: Partial<StoreLimits> = {}): ImageStore {
  return new ImageStore(path.join(tmp, `store${++n}`), limits);
}

function assertClean(s: ImageStore): void {
  for (const d of ['tmp', 'layers', 'images', 'blobs/sha256']) assert.deepEqual(fs.readdirSync(path.join(s.root, d)), [], `${d} is empty`);
}

function evil(entries: TEntry[], gzip = false): Buffer {
  const img: FixtureImage = { name: 'evil:1', layers: [layer([{ path: 'ok', data: 'fine' }]), layer(entries, gzip)] };
  return tarFiles(ociFiles([img]));
}

async function refused(archive: Buffer | string, re: RegExp, limits: Partial<StoreLimits> = {}): Promise<void> {
  const s = store(limits);
  await assert.rejects(s.load(archive), re);
  assertClean(s);
}

test('absolute paths', async () => {
  await refused(evil([{ path: '/etc/shadow', data: 'x' }]), /entry "\/etc\/shadow": absolute paths are not allowed/);
});

test('".." traversal', async () => {
  await refused(evil([{ path: 'a/../../escape', data: 'x' }]), /entry "a\/..\/..\/escape": ".." path components are not allowed/);
});

test('writing through a symlink that escapes', async () => {
  const outside = path.join(tmp, 'outside');
  fs.mkdirSync(outside);
  await refused(
    evil([
      { path: 'link', type: 'symlink', linkname: outside },
      { path: 'link/pwned', data: 'x' },
    ]),
    /entry "link\/pwned": parent "link" is a symlink; refusing to write through a symlink/,
  );
  await refused(
    evil([
      { path: 'rel', type: 'symlink', linkname: '../../../..' },
      { path: 'rel/x/y', type: 'dir' },
    ]),
    /parent "rel" is a symlink/,
  );
  assert.deepEqual(fs.readdirSync(outside), []);
});

test('hardlinks escaping the layer', async () => {
  await refused(
    evil([{ path: 'h', type: 'hardlink', linkname: '../../../etc/passwd' }]),
    /entry "h": hardlink target "..\/..\/..\/etc\/passwd" escapes the layer root/,
  );
  await refused(evil([{ path: 'h', type: 'hardlink', linkname: '/etc/passwd' }]), /escapes the layer root/);
  // through a symlink inside the layer
  await refused(
    evil([
      { path: 'l', type: 'symlink', linkname: '/etc' },
      { path: 'h', type: 'hardlink', linkname: 'l/passwd' },
    ]),
    /goes through a symlink/,
  );
  // to a file of a lower layer (not in this layer)
  await refused(evil([{ path: 'h', type: 'hardlink', linkname: 'ok' }]), /hardlink target "ok" is not in this layer/);
});

test('device nodes', async () => {
  await refused(evil([{ path: 'dev/sda', type: 'blockdev', devmajor: 8, devminor: 0 }]), /entry "dev\/sda": device nodes are not allowed/);
  await refused(evil([{ path: 'dev/mem', type: 'chardev', devmajor: 1, devminor: 1 }]), /entry "dev\/mem": device nodes are not allowed/);
});

test('too many entries, too many bytes, too big a file, too high a ratio', async () => {
  const many = Array.from({ length: 20 }, (_, i) => ({ path: `f${i}`, data: 'x' }));
  await refused(evil(many), /entry "f\d+": too many entries \(limit 10\)/, { maxEntries: 10 });
  await refused(
    evil([
      { path: 'big1', data: Buffer.alloc(3000) },
      { path: 'big2', data: Buffer.alloc(3000) },
    ]),
    /entry "big2": total unpacked size exceeds the limit of 5000 bytes/,
    { maxTotalBytes: 5000 },
  );
  await refused(evil([{ path: 'huge', data: Buffer.alloc(3000) }]), /entry "huge": file of 3000 bytes exceeds the per-file limit of 1000 bytes/, {
    maxFileSize: 1000,
  });
  await refused(evil([{ path: 'big', data: Buffer.alloc(3000) }]), /archive entry "blobs\/sha256\/[a-f0-9]+": archive exceeds the limit of 2000 bytes/, {
    maxArchiveBytes: 2000,
  });
  await refused(evil([{ path: 'zeros', data: Buffer.alloc(4 << 20) }], true), /compression ratio exceeds 100:1/, { ratioMinBytes: 1 << 20 });
});

function withLayerBlob(blob: Buffer, diffTar: Buffer): Buffer {
  const img: FixtureImage = { name: 'broken:1', layers: [{ tar: diffTar, gzip: false }], blobs: [blob] };
  return tarFiles(ociFiles([img]));
}

test('truncated layer tar', async () => {
  const full = tar([{ path: 'bin/busybox', data: fs.readFileSync('/bin/busybox') }]);
  const cut = full.subarray(0, 4096);
  await refused(withLayerBlob(cut, cut), /tar: truncated entry bin\/busybox at offset 0/);
});

test('bad gzip', async () => {
  const t = tar([{ path: 'f', data: Buffer.from(fs.readFileSync('/bin/busybox').subarray(0, 100_000)) }]);
  const gz = gzipSync(t);
  const bad = Buffer.from(gz);
  for (let i = 2000; i < 2100; i++) bad[i] = bad[i]! ^ 0xa5;
  await refused(withLayerBlob(bad, t), /gzip: /);
  await refused(withLayerBlob(gz.subarray(0, gz.length - 100), t), /gzip: unexpected end of file/);
});

test('zstd layers', async () => {
  const z = Buffer.concat([Buffer.from([0x28, 0xb5, 0x2f, 0xfd]), Buffer.alloc(100)]);
  await refused(withLayerBlob(z, tar([])), /zstd-compressed layers are not supported yet/);
});

test('digest mismatches and missing blobs', async () => {
  const img = baseImage();
  const files = ociFiles([img]);
  // a layer blob whose bytes changed after the manifest was written
  const dir = path.join(tmp, 'tampered');
  writeFiles(dir, files);
  const layerPath = `blobs/sha256/${digest(img.layers[1]!.tar).slice(7)}`; // layer 2 is stored uncompressed
  assert.ok(files.has(layerPath));
  fs.writeFileSync(path.join(dir, layerPath), tar([{ path: 'other', data: 'x' }]));
  await refused(dir, /digest mismatch/);
  // a manifest that does not hash to its digest
  const idx = JSON.parse(files.get('index.json')!.toString()) as { manifests: Array<{ digest: string }> };
  const mpath = `blobs/sha256/${idx.manifests[0]!.digest.slice(7)}`;
  const m2 = new Map(files);
  m2.set(mpath, Buffer.concat([files.get(mpath)!, Buffer.from(' ')]));
  await refused(tarFiles(m2), /digest mismatch for blob sha256:/);
  // a blob that is not there
  const m3 = new Map(files);
  m3.delete(layerPath);
  await refused(tarFiles(m3), /missing blob sha256:[a-f0-9]{64} \(layer 1\)/);
  // docker save: a layer whose content does not match the config's diff_id
  const legacy = dockerSaveLegacy([{ ...img, blobs: [gzipSync(img.layers[0]!.tar), tar([{ path: 'swapped', data: 'x' }])] }]);
  await refused(legacy, /digest mismatch: uncompressed content hashes to sha256:/);
  // docker save: missing layer file, and a config whose name is not its digest
  await refused(
    tarFiles(new Map([['manifest.json', Buffer.from(JSON.stringify([{ Config: 'c.json', Layers: ['x/layer.tar'] }]))]])),
    /missing blob c.json \(config\)/,
  );
  const cfg = Buffer.from(JSON.stringify({ rootfs: { type: 'layers', diff_ids: [] } }));
  const wrong = 'f'.repeat(64) + '.json';
  await refused(
    tarFiles(
      new Map([
        [wrong, cfg],
        ['manifest.json', Buffer.from(JSON.stringify([{ Config: wrong, Layers: [] }]))],
      ]),
    ),
    /digest mismatch for config/,
  );
  await refused(tarFiles(new Map([['hello', Buffer.from('x')]])), /unrecognised image archive/);
});

test('a directory replaced by a symlink after it was marked opaque or given a mode is not followed', async () => {
  const outside = path.join(tmp, 'outside2');
  fs.mkdirSync(outside, { mode: 0o755 });
  fs.writeFileSync(path.join(outside, 'keep'), 'x');
  const s = store();
  const img: FixtureImage = {
    name: 'tricky:1',
    layers: [
      layer([
        { path: 'd/', type: 'dir' },
        { path: 'd/keep', data: 'x' },
      ]),
      layer([
        { path: 'd/', type: 'dir', mode: 0o700 },
        { path: 'd/.wh..wh..opq', data: '' },
        { path: 'd', type: 'symlink', linkname: outside },
      ]),
    ],
  };
  await s.load(tarFiles(ociFiles([img])));
  assert.deepEqual(fs.readdirSync(outside), ['keep']);
  assert.equal(fs.statSync(outside).mode & 0o777, 0o755);
  assert.equal(fs.readlinkSync(path.join(s.layersFor('tricky:1')[0]!, 'd')), outside);
});

test('a failed load leaves earlier images and shared layers alone', async () => {
  const s = store();
  await s.load(dockerSaveLegacy([baseImage()]));
  const before = fs.readdirSync(path.join(s.root, 'layers')).sort();
  const img: FixtureImage = { ...baseImage('evil:2'), layers: [...baseImage().layers, layer([{ path: '../x', data: 'x' }])] };
  await assert.rejects(s.load(tarFiles(ociFiles([img]))), /".." path components/);
  assert.deepEqual(fs.readdirSync(path.join(s.root, 'layers')).sort(), before);
  assert.deepEqual(fs.readdirSync(path.join(s.root, 'tmp')), []);
  assert.deepEqual(
    s.list().map((i) => i.name),
    ['shoal/base:1'],
  );
});
