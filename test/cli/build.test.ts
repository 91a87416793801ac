// The compiled product's moving parts (docs/design/build.md): the staleness check (scripts/stale.cjs)
// sees an edited, new-dated or deleted input; bin/shoal rebuilds dist/ when it is stale before running
// anything; the CLI bundle is ASCII and its V8 code cache is written beside it, and a bad cache is
// rejected and replaced, never trusted.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { compiledEntry } from '../../lab/compiled.ts';
import { DAEMON_NODE_FLAGS } from '../../daemon/node-flags.ts';

const REPO = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const { staleReason } = createRequire(import.meta.url)('../../scripts/stale.cjs') as { staleReason: (repo: string) => string | null };

describe('scripts/stale.cjs', () => {
  let repo = '';
  before(() => {
    repo = mkdtempSync(join(tmpdir(), 'shoal-stale-'));
    mkdirSync(join(repo, 'dist'));
    mkdirSync(join(repo, 'cli'));
    for (const f of ['cli/a.ts', 'cli/b.ts', 'package.json']) writeFileSync(join(repo, f), 'x');
  });
  after(() => rmSync(repo, { recursive: true, force: true }));

  const build = () => {
    writeFileSync(join(repo, 'dist', '.inputs'), 'cli/a.ts\ncli/b.ts\npackage.json\n');
    const t = new Date(Date.now() + 1000);
    writeFileSync(join(repo, 'dist', '.stamp'), '');
    utimesSync(join(repo, 'dist', '.stamp'), t, t);
  };

  it('no build yet, then fresh', () => {
    assert.equal(staleReason(repo), 'no build yet');
    build();
    assert.equal(staleReason(repo), null);
    assert.equal(staleReason(`${repo}/`), null);
  });

  it('an input saved in place after the build (no directory changes) makes it stale', () => {
    build();
    const later = new Date(Date.now() + 5000);
    writeFileSync(join(repo, 'cli', 'b.ts'), 'y'); // in place: cli/ keeps its mtime
    utimesSync(join(repo, 'cli', 'b.ts'), later, later);
    assert.equal(staleReason(repo), 'cli/b.ts changed');
  });

  it('a deleted input makes it stale', () => {
    build();
    rmSync(join(repo, 'cli', 'a.ts'));
    assert.equal(staleReason(repo), 'cli/a.ts is gone');
  });
});

describe('bin/shoal and dist/', () => {
  const dist = join(REPO, 'dist');
  const shoal = (args: string[]) => spawnSync(join(REPO, 'bin', 'shoal'), args, { cwd: '/', encoding: 'utf8', timeout: 300_000 });
  const bundle = () => join(dist, (JSON.parse(readFileSync(join(dist, 'cli', 'shoal.cjs.json'), 'utf8')) as { bundle: string }).bundle);

  before(() => {
    compiledEntry('cli/shoal'); // build now if stale
  });

  it('rebuilds before running when dist/ is older than a source', () => {
    // Date the stamp back: every input is now newer than the build (no source file is touched).
    const old = new Date(Date.now() - 3_600_000);
    utimesSync(join(dist, '.stamp'), old, old);
    assert.notEqual(staleReason(REPO), null);
    const r = shoal(['--help']);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^Usage: shoal COMMAND/);
    assert.ok(statSync(join(dist, '.stamp')).mtimeMs > old.getTime() + 60_000, 'the stamp is new: dist/ was rebuilt');
  });

  it('the CLI bundle is ASCII, and a bad code cache is replaced', () => {
    const file = bundle();
    assert.doesNotMatch(readFileSync(file, 'latin1'), /[\u0080-\uffff]/, 'ASCII only (bin/shoal reads it as latin1)');
    writeFileSync(`${file}.v8cache`, 'not a V8 code cache');
    const r = shoal(['--help']);
    assert.equal(r.status, 0, r.stderr);
    const cache = readFileSync(`${file}.v8cache`);
    assert.notEqual(cache.toString(), 'not a V8 code cache', 'rejected and rewritten at exit');
    assert.ok(cache.length > 10_000, `a real cache (${cache.length} bytes)`);
    const again = shoal(['--help']);
    assert.equal(again.status, 0, again.stderr);
    assert.equal(again.stdout, r.stdout);
  });

  it("bin/shoal's #! line gives node every option a daemon runs with", () => {
    const shebang = readFileSync(join(REPO, 'bin', 'shoal'), 'utf8').split('\n')[0]!;
    const words = shebang.split(/\s+/);
    assert.ok(DAEMON_NODE_FLAGS.length > 0);
    for (const f of DAEMON_NODE_FLAGS) assert.ok(words.slice(words.indexOf('node') + 1).includes(f), `${f} is given to node in ${shebang}`);
  });

  it('every ES module of the current build is ASCII (one-byte source in each daemon heap)', () => {
    // The graph from dist/cli/shoal.js, static and dynamic imports: old builds' chunks stay for a week.
    const seen = new Set<string>();
    const visit = (file: string) => {
      if (seen.has(file)) return;
      seen.add(file);
      const text = readFileSync(file, 'latin1');
      assert.doesNotMatch(text, /[\u0080-\uffff]/, `${file} is ASCII`);
      for (const m of text.matchAll(/(?:from |import\(|import )"(\.\.?\/[^"]+\.js)"/g)) visit(join(dirname(file), m[1]!));
    };
    visit(join(dist, 'cli', 'shoal.js'));
    assert.ok(seen.size > 20, `the whole graph was followed (${seen.size} files)`);
  });
});
