// Cluster-internal distribution: an image exported by one node's store loads on another with the same
// identity (config digest), the same layers (diff ids), and the layers' original blobs kept byte for byte.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { ImageStore } from '../../worker/images/store.ts';
import { appImage, dockerSaveLegacy, ociFiles, tarFiles } from './fixtures.ts';

let tmp = '';
before(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'shoal-export-'));
});
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

test('export then load on another store gives the same image, twice the same bytes', async () => {
  const a = new ImageStore(path.join(tmp, 'a'));
  const b = new ImageStore(path.join(tmp, 'b'));
  const loaded = await a.load(tarFiles(ociFiles([appImage()])));
  const out1 = path.join(tmp, 'x1.tar');
  const out2 = path.join(tmp, 'x2.tar');
  const e = await a.exportImage('shoal/app:1', out1);
  assert.equal(e.digest, loaded.digest);
  await a.exportImage(loaded.digest, out2);
  assert.deepEqual(fs.readFileSync(out1), fs.readFileSync(out2), 'exports are deterministic');
  const got = await b.load(out1);
  assert.equal(got.digest, loaded.digest);
  assert.equal(got.name, 'shoal/app:1');
  assert.deepEqual(b.resolve('shoal/app:1')!.diffIds, a.resolve('shoal/app:1')!.diffIds);
  // pinned references resolve by digest, whatever the name says
  assert.equal(b.resolve(`other/name:2@${loaded.digest}`)!.digest, loaded.digest);
  // and the receiving node can export in turn (its layer blobs were kept too)
  await b.exportImage('shoal/app:1', path.join(tmp, 'x3.tar'));
  assert.deepEqual(fs.readFileSync(path.join(tmp, 'x3.tar')), fs.readFileSync(out1));
});

test('a docker-save (legacy, uncompressed layers) image exports too', async () => {
  const a = new ImageStore(path.join(tmp, 'c'));
  const b = new ImageStore(path.join(tmp, 'd'));
  const loaded = await a.load(dockerSaveLegacy([appImage('shoal/legacy:1')]));
  await a.exportImage('shoal/legacy:1', path.join(tmp, 'l.tar'));
  assert.equal((await b.load(path.join(tmp, 'l.tar'))).digest, loaded.digest);
});

test('layer blobs are garbage-collected with their image', async () => {
  const a = new ImageStore(path.join(tmp, 'e'));
  await a.load(tarFiles(ociFiles([appImage()])));
  assert.ok(fs.readdirSync(path.join(tmp, 'e', 'blobs', 'sha256')).length >= 4);
  await a.rm('shoal/app:1');
  assert.deepEqual(fs.readdirSync(path.join(tmp, 'e', 'blobs', 'sha256')), []);
  assert.deepEqual(fs.readdirSync(path.join(tmp, 'e', 'layers')), []);
});

test('unknown image: clear error, no file left', async () => {
  const a = new ImageStore(path.join(tmp, 'f'));
  await assert.rejects(a.exportImage('nope:1', path.join(tmp, 'n.tar')), /no such image: nope:1/);
  assert.equal(fs.existsSync(path.join(tmp, 'n.tar')), false);
});
