// The tar reader: ustar prefix names, pax and GNU long names, checksums, truncation, streaming bodies.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { readTar, readTarBuffer } from '../../worker/images/tar.ts';
import { tar } from './fixtures.ts';

const long = 'd'.repeat(60) + '/' + 'e'.repeat(80) + '/' + 'f'.repeat(90);

test('reads files, dirs, links and metadata', async () => {
  const b = tar([
    { path: 'dir/', type: 'dir', mode: 0o750, uid: 7, gid: 8 },
    { path: 'dir/file', data: 'hello', mode: 0o640, mtime: 1234 },
    { path: 'dir/sym', type: 'symlink', linkname: '../x' },
    { path: 'dir/hard', type: 'hardlink', linkname: 'dir/file' },
    { path: 'dev', type: 'chardev', devmajor: 1, devminor: 3 },
  ]);
  const es = await readTarBuffer(b);
  assert.deepEqual(
    es.map((e) => [e.path, e.type, e.mode, e.size]),
    [
      ['dir/', 'dir', 0o750, 0],
      ['dir/file', 'file', 0o640, 5],
      ['dir/sym', 'symlink', 0o644, 0],
      ['dir/hard', 'hardlink', 0o644, 0],
      ['dev', 'chardev', 0o644, 0],
    ],
  );
  assert.equal(es[0]!.uid, 7);
  assert.equal(es[0]!.gid, 8);
  assert.equal(es[1]!.data!.toString(), 'hello');
  assert.equal(es[1]!.mtime, 1234);
  assert.equal(es[2]!.linkname, '../x');
  assert.equal(es[4]!.devmajor, 1);
  assert.equal(es[4]!.devminor, 3);
});

test('long names: ustar prefix, pax path/linkpath, GNU L/K', async () => {
  const prefixed = 'p'.repeat(120) + '/name';
  const paxed = 'q'.repeat(300);
  const es = await readTarBuffer(
    tar([
      { path: prefixed, data: '1' },
      { path: paxed, data: '2' },
      { path: 'l', type: 'symlink', linkname: long },
    ]),
  );
  assert.deepEqual(
    es.map((e) => e.path),
    [prefixed, paxed, 'l'],
  );
  assert.equal(es[2]!.linkname, long);
  const gnu = await readTarBuffer(
    tar(
      [
        { path: paxed, data: 'x' },
        { path: 's', type: 'symlink', linkname: long },
      ],
      { gnuLongNames: true },
    ),
  );
  assert.deepEqual(
    gnu.map((e) => [e.path, e.linkname]),
    [
      [paxed, ''],
      ['s', long],
    ],
  );
});

test('streaming bodies over chunked input, unread bodies skipped', async () => {
  const big = Buffer.alloc(100_000, 7);
  const b = tar([
    { path: 'a', data: big },
    { path: 'b', data: 'bee' },
    { path: 'c', data: 'sea' },
  ]);
  async function* chunks() {
    for (let i = 0; i < b.length; i += 333) yield b.subarray(i, i + 333);
  }
  const got: string[] = [];
  for await (const e of readTar(chunks(), { buffer: false })) {
    if (e.path === 'a') continue; // skipped without reading
    const parts: Buffer[] = [];
    for await (const c of e.body()) parts.push(c);
    got.push(`${e.path}=${Buffer.concat(parts).toString()}`);
  }
  assert.deepEqual(got, ['b=bee', 'c=sea']);
});

test('bad checksum and truncation are clear errors', async () => {
  const b = tar([{ path: 'x/file', data: Buffer.alloc(2000, 1) }]);
  const bad = Buffer.from(b);
  bad[0] = 0x41;
  await assert.rejects(readTarBuffer(bad), /tar: bad header checksum at offset 0/);
  await assert.rejects(readTarBuffer(b.subarray(0, 1000)), /tar: truncated entry x\/file at offset 0/);
  await assert.rejects(readTarBuffer(b.subarray(0, 300)), /tar: truncated entry header at offset 0/);
  await assert.rejects(readTarBuffer(b.subarray(0, 2560)), /missing end-of-archive marker at offset 2560/);
  assert.deepEqual(await readTarBuffer(Buffer.alloc(0)), []);
  await assert.rejects(readTarBuffer(b, { maxEntrySize: 100 }), /over the limit of 100/);
});
