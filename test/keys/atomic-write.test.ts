// atomicWrite (manager/keys/atomic-write.ts): the one temp-file + fsync + rename used by the key files
// and the daemon's state.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { atomicWrite } from '../../manager/keys/atomic-write.ts';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'shoal-atomic-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('atomicWrite', () => {
  it('creates and replaces the file with the given mode, leaving no temporary file', () => {
    const p = path.join(dir, 'a.json');
    atomicWrite(p, 'one', 0o600);
    assert.equal(fs.readFileSync(p, 'utf8'), 'one');
    assert.equal(fs.statSync(p).mode & 0o777, 0o600);
    atomicWrite(p, Buffer.from('two'), 0o644);
    assert.equal(fs.readFileSync(p, 'utf8'), 'two');
    assert.deepEqual(fs.readdirSync(dir), ['a.json']);
  });
  it('a failed write leaves the old file and no temporary file', () => {
    const p = path.join(dir, 'b');
    atomicWrite(p, 'old', 0o600);
    fs.mkdirSync(`${p}.target`);
    // Renaming a file over a directory fails: the old content must survive, the temp file must go.
    assert.throws(() => atomicWrite(`${p}.target`, 'new', 0o600));
    assert.equal(fs.readFileSync(p, 'utf8'), 'old');
    assert.deepEqual(fs.readdirSync(dir).sort(), ['a.json', 'b', 'b.target']);
  });
});
