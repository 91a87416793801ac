// An image name cannot defeat digest pinning (security review, finding 6): a tag shaped like a digest
// is refused at load, and a full or pinned digest reference finds the image by digest, never by name.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { ImageError, tagName } from '../../worker/images/archive.ts';
import { ImageStore } from '../../worker/images/store.ts';
import { appImage, baseImage, dockerSaveLegacy, dockerSaveOci } from './fixtures.ts';

let tmp = '';
before(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'shoal-digest-names-'));
});
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

const HEX = 'ab'.repeat(32);

test('tagName refuses digest-shaped names and 64-hex repositories, keeps ordinary ones', () => {
  for (const bad of [`sha256:${HEX}`, `SHA256:${HEX}`, `sha512:${HEX}${HEX}`, HEX, `${HEX}:1`, `reg.io/x/${HEX}`]) {
    assert.throws(() => tagName(bad), ImageError, bad);
  }
  assert.equal(tagName('busybox'), 'busybox:latest');
  assert.equal(tagName('reg.io:5000/shoal/app:1'), 'reg.io:5000/shoal/app:1');
  assert.equal(tagName(`app:${HEX.slice(0, 12)}`), `app:${HEX.slice(0, 12)}`);
});

test("an archive tagged with another image's digest is refused, in both archive formats", async () => {
  const s = new ImageStore(path.join(tmp, 'poison'));
  const real = await s.load(dockerSaveLegacy([baseImage('web:1')]));
  const evil = appImage(real.digest);
  await assert.rejects(s.load(dockerSaveLegacy([evil])), /looks like a digest/);
  await assert.rejects(s.load(dockerSaveOci([evil])), /looks like a digest/);
  await assert.rejects(s.load(dockerSaveLegacy([appImage('x:1')]), { tag: real.digest }), /looks like a digest/);
  assert.equal(s.resolve(`web:1@${real.digest}`)!.digest, real.digest);
  assert.equal(s.list().length, 1);
});

test('a pinned or full digest reference is resolved by digest even if a record is named like it', async () => {
  const s = new ImageStore(path.join(tmp, 'legacy-record'));
  const real = await s.load(dockerSaveLegacy([baseImage('web:1')]));
  const other = await s.load(dockerSaveLegacy([appImage('other:1')]));
  // A record stored before names were checked: rename other's record file to the real digest.
  const recDir = path.dirname((s as unknown as { recordPath(n: string): string }).recordPath('other:1'));
  const files = fs.readdirSync(recDir);
  const otherFile = files.find((f) => fs.readFileSync(path.join(recDir, f), 'utf8').includes('"other:1"'));
  assert.ok(otherFile, `record of other:1 among ${files.join(', ')}`);
  const rec = JSON.parse(fs.readFileSync(path.join(recDir, otherFile), 'utf8')) as { name: string };
  rec.name = real.digest;
  fs.writeFileSync((s as unknown as { recordPath(n: string): string }).recordPath(real.digest), JSON.stringify(rec));
  assert.equal(s.resolve(`web:1@${real.digest}`)!.digest, real.digest);
  assert.equal(s.resolve(real.digest)!.digest, real.digest);
  assert.equal(s.resolve('other:1')!.digest, other.digest);
});
