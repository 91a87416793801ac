// The compiled product's moving parts (docs/design/build.md): the staleness check (scripts/stale.cjs)
// sees an edited, new-dated or deleted input; bin/shoal rebuilds dist/ when it is stale before running
// anything; the CLI bundle is ASCII and its V8 code cache is written beside it, and a bad cache is
// rejected and replaced, never trusted.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { mkdirSync, mkdtempSync, openSync, readFileSync, readSync, readdirSync, closeSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
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

describe('scripts/emit.mjs', () => {
  type Out = { path: string; contents: Uint8Array; text: string };
  let dir = '';
  let emit: {
    emitOutputs: (files: Out[], o?: { ascii?: boolean; last?: string[] }) => number;
    writeAtomic: (path: string, data: string | Uint8Array) => boolean;
  };
  const out = (path: string, text: string): Out => ({ path, contents: Buffer.from(text), text });
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'shoal-emit-'));
    emit = await import(join(REPO, 'scripts', 'emit.mjs'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('a reader holding the old file reads it whole while a new one replaces it', () => {
    const f = join(dir, 'chunk.js');
    emit.writeAtomic(f, `export const a = 1;\n${'x'.repeat(100_000)}\n`);
    const fd = openSync(f, 'r');
    try {
      assert.equal(emit.writeAtomic(f, 'export const b = 2;\n'), true);
      const buf = Buffer.alloc(200_000);
      const n = readSync(fd, buf, 0, buf.length, 0);
      assert.equal(n, 20 + 100_001, 'the open file is the old one, whole');
      assert.equal(readFileSync(f, 'utf8'), 'export const b = 2;\n');
    } finally {
      closeSync(fd);
    }
    assert.deepStrictEqual(readdirSync(dir), ['chunk.js'], 'no temporary file left');
  });

  it('the same bytes leave the file alone, with a renewed mtime', () => {
    const f = join(dir, 'same.js');
    emit.writeAtomic(f, 'same');
    const before = statSync(f);
    const past = new Date(Date.now() - 86_400_000);
    utimesSync(f, past, past);
    assert.equal(emit.writeAtomic(f, Buffer.from('same')), false);
    const after = statSync(f);
    assert.equal(after.ino, before.ino);
    assert.ok(after.mtimeMs > past.getTime() + 3_600_000, 'mtime renewed');
  });

  it('escapes non-ASCII JavaScript, writes entries last, counts what changed', () => {
    const entry = join(dir, 'cli', 'entry.js');
    const chunk = join(dir, 'chunks', 'c-1.js');
    const map = join(dir, 'chunks', 'c-1.js.map');
    const files = [out(entry, 'import "../chunks/c-1.js";'), out(chunk, 'const re = /µs/; // →'), out(map, '{"µ":1}')];
    const order: string[] = [];
    const seen = new Set<string>();
    // Which files exist each time a new one appears: the entry must find its chunk already there.
    const changed = emit.emitOutputs(
      files.map((f) => ({
        ...f,
        get contents() {
          order.push(f.path);
          for (const g of files) if (statSync(g.path, { throwIfNoEntry: false })) seen.add(`${f.path}<-${g.path}`);
          return f.contents;
        },
        get text() {
          order.push(f.path);
          for (const g of files) if (statSync(g.path, { throwIfNoEntry: false })) seen.add(`${f.path}<-${g.path}`);
          return f.text;
        },
      })),
      { ascii: true, last: [entry] },
    );
    assert.equal(changed, 3);
    assert.equal(order.at(-1), entry, 'the entry is written last');
    assert.ok(seen.has(`${entry}<-${chunk}`), 'the chunk exists when the entry is written');
    assert.equal(readFileSync(chunk, 'utf8'), 'const re = /\\u00b5s/; // \\u2192');
    assert.equal(readFileSync(map, 'utf8'), '{"µ":1}', 'maps are not JavaScript: kept as they are');
    assert.equal(emit.emitOutputs(files, { ascii: true, last: [entry] }), 0, 'a second run changes nothing');
  });
});

describe('bin/shoal and dist/', () => {
  const dist = join(REPO, 'dist');
  const shoal = (args: string[]) => spawnSync(join(REPO, 'bin', 'shoal'), args, { cwd: '/', encoding: 'utf8', timeout: 300_000 });
  const bundle = () => join(dist, (JSON.parse(readFileSync(join(dist, 'cli', 'shoal.cjs.json'), 'utf8')) as { bundle: string }).bundle);

  before(() => {
    compiledEntry('cli/shoal'); // build now if stale
  });

  it('a build is fresh: every input it lists is a file, none newer than its stamp', () => {
    // A listed input that is no file (a plugin's virtual module) reads as "gone" at every check, and
    // then every command rebuilds dist/ while daemons run from it.
    assert.equal(staleReason(REPO), null);
    const inputs = readFileSync(join(dist, '.inputs'), 'utf8')
      .split('\n')
      .filter((f) => f !== '');
    assert.ok(inputs.length > 100, `${inputs.length} inputs`);
    for (const f of inputs) assert.ok(statSync(join(REPO, f)).isFile(), `${f} is a file`);
  });

  it('rebuilds before running when dist/ is older than a source', () => {
    // A daemon importing a chunk while the rebuild runs must read a whole file, old or new, never one
    // being rewritten in place (scripts/emit.mjs). The largest chunk is made to differ from what the
    // build will write, and opened, as a reader would have it.
    const chunkDir = join(dist, 'chunks');
    const chunks = readdirSync(chunkDir).filter((f) => f.endsWith('.js'));
    chunks.sort((a, b) => statSync(join(chunkDir, b)).size - statSync(join(chunkDir, a)).size);
    const chunk = join(chunkDir, chunks[0]!);
    const built = readFileSync(chunk, 'latin1');
    writeFileSync(chunk, `${built}// an older build\n`, 'latin1');
    const reader = openSync(chunk, 'r');
    // Date the stamp back: every input is now newer than the build (no source file is touched).
    const old = new Date(Date.now() - 3_600_000);
    utimesSync(join(dist, '.stamp'), old, old);
    assert.notEqual(staleReason(REPO), null);
    const r = shoal(['--help']);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^Usage: shoal COMMAND/);
    assert.ok(statSync(join(dist, '.stamp')).mtimeMs > old.getTime() + 60_000, 'the stamp is new: dist/ was rebuilt');
    try {
      const buf = Buffer.alloc(built.length + 100);
      const n = readSync(reader, buf, 0, buf.length, 0);
      assert.equal(buf.toString('latin1', 0, n), `${built}// an older build\n`, 'the open file was not rewritten in place');
    } finally {
      closeSync(reader);
    }
    assert.equal(readFileSync(chunk, 'latin1'), built, 'the path holds the new build');
    assert.deepStrictEqual(
      readdirSync(chunkDir).filter((f) => f.endsWith('.tmp')),
      [],
      'no temporary file left',
    );
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
