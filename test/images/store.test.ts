// The image store: docker-save and OCI loads, layer sharing by chain id, whiteouts and opaque dirs seen
// through a real overlay mount, rm/prune keeping shared layers.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import { ImageStore, chainIds, mountRootfs, unmountRootfs } from '../../worker/images/store.ts';
import { appImage, baseImage, digest, dockerSaveLegacy, dockerSaveOci, layer, ociFiles, tarFiles, writeFiles } from './fixtures.ts';

const run = promisify(execFile);
let tmp = '';
const mounted: string[] = [];

before(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'shoal-images-'));
});

after(async () => {
  for (const m of mounted) await unmountRootfs(m).catch(() => undefined);
  fs.rmSync(tmp, { recursive: true, force: true });
});

function newStore(name: string): ImageStore {
  return new ImageStore(path.join(tmp, name));
}

test('loads a legacy docker save archive', async () => {
  const s = newStore('legacy');
  const img = baseImage();
  const r = await s.load(dockerSaveLegacy([img]));
  assert.equal(r.name, 'shoal/base:1');
  assert.match(r.digest, /^sha256:[a-f0-9]{64}$/);
  const info = s.resolve('shoal/base:1')!;
  assert.equal(info.digest, r.digest);
  assert.deepEqual(
    info.diffIds,
    img.layers.map((l) => digest(l.tar)),
  );
  assert.deepEqual(info.chainIds, chainIds(info.diffIds));
  assert.equal(info.chainIds[1], digest(`${info.diffIds[0]} ${info.diffIds[1]}`));
  const lowers = s.layersFor('shoal/base:1');
  assert.equal(lowers.length, 2);
  assert.equal(fs.readFileSync(path.join(lowers[0]!, 'data/b'), 'utf8'), 'b\n');
  assert.equal(fs.readlinkSync(path.join(lowers[1]!, 'bin/sh')), 'busybox');
  assert.equal(fs.statSync(path.join(lowers[1]!, 'bin/busybox')).mode & 0o777, 0o755);
  assert.deepEqual(s.config('shoal/base:1'), { Env: ['PATH=/bin', 'SHOAL=1'], Cmd: ['/bin/sh'], Entrypoint: null, WorkingDir: '/data', User: '0:0' });
  // resolve by digest and by prefix
  assert.equal(s.resolve(r.digest)?.name, 'shoal/base:1');
  assert.equal(s.resolve(r.digest.slice(7, 19))?.name, 'shoal/base:1');
  assert.equal(s.resolve('sha256:' + r.digest.slice(7, 19))?.name, 'shoal/base:1');
  assert.equal(s.resolve('nope'), undefined);
  assert.deepEqual(fs.readdirSync(path.join(s.root, 'tmp')), []);
});

test('loads the OCI variant of docker save, an OCI layout dir and an OCI layout tar', async () => {
  const s1 = newStore('dsoci');
  const r1 = await s1.load(dockerSaveOci([appImage()]));
  assert.equal(r1.name, 'shoal/app:1');
  const s2 = newStore('ocidir');
  const dir = path.join(tmp, 'layout');
  writeFiles(dir, ociFiles([appImage()]));
  const r2 = await s2.load(dir);
  assert.deepEqual(r2, r1); // the image id is the config digest, whatever the archive format
  assert.ok(s2.resolve(r2.name)?.manifestDigest);
  const p = path.join(tmp, 'layout.tar');
  fs.writeFileSync(p, tarFiles(ociFiles([appImage()])));
  const s3 = newStore('ocitar');
  assert.deepEqual(await s3.load(p), r1);
  assert.equal(s3.layersFor('shoal/app:1').length, 3);
  const gz = await import('node:zlib');
  const s4 = newStore('ocitargz');
  assert.deepEqual(await s4.load(gz.gzipSync(tarFiles(ociFiles([appImage()])))), r1);
});

test('a common base is unpacked once and shared between images', async () => {
  const s = newStore('shared');
  await s.load(dockerSaveLegacy([baseImage()]));
  assert.equal(s.unpackCount, 2);
  const baseLowers = s.layersFor('shoal/base:1');
  const ino = fs.statSync(path.join(baseLowers[1]!, 'bin/busybox')).ino;
  await s.load(tarFiles(ociFiles([appImage()])));
  assert.equal(s.unpackCount, 3, 'only the new top layer is unpacked');
  const appLowers = s.layersFor('shoal/app:1');
  assert.deepEqual(appLowers.slice(1), baseLowers);
  assert.equal(fs.statSync(path.join(appLowers[2]!, 'bin/busybox')).ino, ino);
  // loading again unpacks nothing
  await s.load(dockerSaveLegacy([baseImage(), appImage()]));
  assert.equal(s.unpackCount, 3);
  assert.equal(fs.readdirSync(path.join(s.root, 'layers')).length, 3);
});

test('whiteouts and opaque dirs through a real overlay mount', async () => {
  const s = newStore('overlay');
  await s.load(dockerSaveLegacy([appImage()]));
  const top = s.layersFor('shoal/app:1')[0]!;
  const wh = fs.lstatSync(path.join(top, 'data/a'));
  assert.ok(wh.isCharacterDevice() && wh.rdev === 0, 'data/a is a 0/0 whiteout in the top layer');
  const target = path.join(tmp, 'rootfs');
  const upper = path.join(tmp, 'upper');
  const work = path.join(tmp, 'work');
  fs.mkdirSync(upper);
  fs.mkdirSync(work);
  await mountRootfs(s.layersFor('shoal/app:1'), upper, work, target);
  mounted.push(target);
  try {
    assert.deepEqual(fs.readdirSync(path.join(target, 'data')), ['b']);
    assert.deepEqual(fs.readdirSync(path.join(target, 'opt')).sort(), ['keep', 'new']);
    assert.deepEqual(fs.readdirSync(path.join(target, 'opt/keep')), ['fresh']);
    assert.equal(fs.readFileSync(path.join(target, 'etc/motd'), 'utf8'), 'hello from shoal\n');
    // and busybox inside the image agrees
    const { stdout } = await run('chroot', [target, '/bin/ls', '/data', '/opt']);
    assert.match(stdout, /\/data:\nb\n/);
    assert.doesNotMatch(stdout, /old/);
    const cat = await run('chroot', [target, '/bin/cat', '/opt/new']);
    assert.equal(cat.stdout, 'new\n');
    // writes go to the upper dir, the layers stay untouched
    fs.writeFileSync(path.join(target, 'data/c'), 'c');
    assert.ok(fs.existsSync(path.join(upper, 'data/c')));
  } finally {
    await unmountRootfs(target);
    mounted.pop();
  }
  assert.deepEqual(fs.readdirSync(target), []);
});

test('rm and prune keep layers still used by other images', async () => {
  const s = newStore('gc');
  await s.load(dockerSaveLegacy([baseImage(), appImage()]));
  await s.load(dockerSaveLegacy([baseImage('shoal/base:alias')]));
  const layersDir = path.join(s.root, 'layers');
  assert.equal(fs.readdirSync(layersDir).length, 3);
  const app = s.resolve('shoal/app:1')!;
  await s.rm('shoal/app:1');
  assert.equal(s.resolve('shoal/app:1'), undefined);
  assert.equal(fs.readdirSync(layersDir).length, 2, 'top layer of app removed, shared base kept');
  assert.ok(!fs.existsSync(path.join(s.root, 'blobs/sha256', app.digest.slice(7))));
  for (const l of s.layersFor('shoal/base:1')) assert.ok(fs.existsSync(l));
  // removing one tag keeps the image for the other tag
  await s.rm('shoal/base:1');
  assert.ok(s.resolve('shoal/base:alias'));
  assert.equal(fs.readdirSync(layersDir).length, 2);
  // prune keeps what is in use, by name or digest
  await s.load(dockerSaveLegacy([appImage()]));
  const removed = await s.prune(new Set(['shoal/app:1']));
  assert.deepEqual(removed, ['shoal/base:alias']);
  assert.equal(fs.readdirSync(layersDir).length, 3, 'base layers kept: app uses them');
  await s.prune(new Set([s.resolve('shoal/app:1')!.digest]));
  assert.equal(s.list().length, 1);
  await s.prune(new Set());
  assert.equal(s.list().length, 0);
  assert.deepEqual(fs.readdirSync(layersDir), []);
  assert.deepEqual(fs.readdirSync(path.join(s.root, 'blobs/sha256')), []);
});

test('a directory recreated after its whiteout in the same layer hides the old content', async () => {
  const s = newStore('recreate');
  const img = {
    name: 'recreate:1',
    layers: [
      layer([
        { path: 'd/', type: 'dir' },
        { path: 'd/old', data: 'o' },
        { path: 'f', data: 'f' },
      ]),
      layer([
        { path: '.wh.d', data: '' },
        { path: 'd/', type: 'dir' },
        { path: 'd/new', data: 'n' },
        { path: '.wh.f', data: '' },
        { path: 'f', data: 'again' },
      ]),
    ],
  };
  await s.load(tarFiles(ociFiles([img])));
  const top = s.layersFor('recreate:1')[0]!;
  const old = fs.lstatSync(path.join(top, 'd/old'));
  assert.ok(old.isCharacterDevice() && old.rdev === 0);
  assert.equal(fs.readFileSync(path.join(top, 'd/new'), 'utf8'), 'n');
  assert.equal(fs.readFileSync(path.join(top, 'f'), 'utf8'), 'again');
});
