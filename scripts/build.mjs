// Compiles Shoal's TypeScript once, so `shoal` and the daemon start without a runtime compiler.
// Plain JavaScript on purpose: it must run before anything is compiled and without tsx.
//
// esbuild bundles each entry (the CLI, which is also the daemon, and the processes that the lab and the
// benchmarks spawn) into dist/, ESM with code splitting: a command's handler, the daemon and the lab
// harness are separate chunks loaded by the dynamic imports in cli/commands.ts, so `shoal node ls` does
// not parse the manager or the engine. npm packages stay external (better-sqlite3 is a native addon;
// node resolves them from node_modules above dist/).
//
// Every `import.meta.url` is replaced by the URL of the source file it was written in: code that finds
// files relative to itself (native/build/… from worker/engine/shim.ts, the checkout from cli/system.ts)
// then finds the same files compiled as from source. The output is therefore tied to this checkout, like
// native/build; it is never shipped elsewhere (scripts/install.sh builds it in place).
//
// Writes dist/.inputs (every source file it read, for the staleness check in scripts/stale.cjs) and
// dist/.stamp (whose mtime is the start of this build: a file saved during the build counts as newer).
// `--if-stale` builds only when scripts/stale.cjs says so; `--quiet` prints nothing on success.
import { build } from 'esbuild';
import { closeSync, mkdirSync, openSync, readFileSync, readdirSync, renameSync, rmSync, statSync, utimesSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { buildWeb } from './build-web.mjs';
import { emitOutputs, writeAtomic } from './emit.mjs';
import { inputFiles, staleReason } from './stale.cjs';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const out = join(repo, 'dist');
const quiet = process.argv.includes('--quiet');
if (process.argv.includes('--if-stale') && staleReason(repo) === null) process.exit(0);

/** Entry name (path under dist/, without .js) → source. */
export const ENTRIES = {
  'cli/shoal': 'cli/shoal.ts',
  'lab/agent-farm': 'lab/agent-farm.ts',
  'bench/raft-member': 'bench/raft-member.ts',
};

const sourceUrls = {
  name: 'source-urls',
  setup(b) {
    b.onLoad({ filter: /\.ts$/ }, (args) => {
      const text = readFileSync(args.path, 'utf8');
      if (args.path.includes('/node_modules/') || !text.includes('import.meta.url')) return undefined;
      return { contents: text.replaceAll('import.meta.url', JSON.stringify(pathToFileURL(args.path).href)), loader: 'ts' };
    });
  },
};

// ws through require(), not through its ES module wrapper. Node finds the named exports of a CommonJS
// file that an ES module imports by running cjs-module-lexer over its source; ws's wrapper imports eight
// such files, and the lexer's loop (parseSource) is hot enough that TurboFan compiled it twice at every
// daemon's start (≈ 120 + 60 ms on the main thread, with compiler zones whose holes stay in malloc's
// main arena). Required, the same files load through the CommonJS loader, which needs no lexer.
// docs/design/build.md, "Memory".
const wsByRequire = {
  name: 'ws-by-require',
  setup(b) {
    b.onResolve({ filter: /^ws$/ }, () => ({ path: 'ws', namespace: 'ws-by-require' }));
    b.onLoad({ filter: /.*/, namespace: 'ws-by-require' }, () => ({
      contents: [
        "import { createRequire } from 'node:module';",
        "const ws = createRequire(import.meta.url)('ws');",
        'export const { WebSocket, WebSocketServer, createWebSocketStream, Receiver, Sender } = ws;',
        'export default ws;',
      ].join('\n'),
      loader: 'js',
    }));
  },
};

const t0 = Date.now();
mkdirSync(out, { recursive: true });
const started = new Date();
const result = await build({
  absWorkingDir: repo,
  entryPoints: Object.fromEntries(Object.entries(ENTRIES).map(([k, v]) => [k, join(repo, v)])),
  outdir: out,
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  packages: 'external',
  chunkNames: 'chunks/[name]-[hash]',
  // Written by emitOutputs (scripts/emit.mjs): atomically, unchanged files left alone, entries last.
  write: false,
  // ASCII only (and emitOutputs' escape pass): V8 keeps a module's source text for as long as the
  // module lives, and one non-ASCII character (a `→` in a message) makes the whole text two bytes a character. The
  // daemon's chunk alone was 340 KB of text held as 680 KB in every daemon's heap.
  charset: 'ascii',
  sourcemap: 'linked',
  metafile: true,
  logLevel: 'warning',
  plugins: [sourceUrls, wsByRequire],
});
// esbuild leaves non-ASCII characters in regular expressions (`µs`) and some comments; emitOutputs
// escapes them (the ES modules' source stays in the heap; bin/shoal reads the CLI bundle as latin1).
const entryFiles = Object.keys(ENTRIES).map((k) => join(out, `${k}.js`));
let changed = emitOutputs(result.outputFiles, { ascii: true, last: entryFiles });
// The CLI once more, as one CommonJS file that bin/shoal loads through vm.Script with a V8 code cache
// (Node 20 has no compile cache for ES modules): no module graph to resolve and link, no parse of the
// parts a command does not run. Dynamic imports become lazy module initialisers inside the file, so a
// command still evaluates only the modules it uses. Its name carries a content hash, and so does its
// code cache (bin/shoal writes <bundle>.v8cache): V8 checks a cache only against the source's length,
// so a cache must never outlive the exact text it was made from. dist/cli/shoal.cjs.json names the
// current bundle. `shoal daemon` still runs the ES module build above, like the labs' daemons.
// The daemon (manager, engine, overlay: three quarters of the code) is left out: `shoal daemon` runs
// the ES module build (bin/shoal routes it there), and here its import becomes an error saying so.
const daemonLeftOut = {
  name: 'daemon-left-out',
  setup(b) {
    b.onResolve({ filter: /\/daemon\/daemon\.ts$/ }, () => ({ path: 'daemon', namespace: 'daemon-left-out' }));
    b.onLoad({ filter: /.*/, namespace: 'daemon-left-out' }, () => ({
      contents: "throw new Error('internal: the CLI bundle has no daemon; bin/shoal runs `shoal daemon` from dist/cli/shoal.js');",
      loader: 'js',
    }));
  },
};
const cjs = await build({
  absWorkingDir: repo,
  entryPoints: { 'cli/shoal': join(repo, ENTRIES['cli/shoal']) },
  entryNames: '[dir]/[name]-[hash]',
  outExtension: { '.js': '.cjs' },
  outdir: out,
  bundle: true,
  format: 'cjs',
  platform: 'node',
  target: 'node20',
  packages: 'external',
  supported: { 'dynamic-import': false },
  // Less text to read and hash, and ASCII only, so node reads it as a one-byte string (latin1).
  minifyWhitespace: true,
  charset: 'ascii',
  legalComments: 'none',
  sourcemap: 'linked',
  metafile: true,
  write: false,
  logLevel: 'warning',
  plugins: [sourceUrls, daemonLeftOut],
});
const bundle = Object.keys(cjs.metafile.outputs).find((o) => o.endsWith('.cjs'));
changed += emitOutputs(cjs.outputFiles, { ascii: true });
// The pointer last: a launcher that reads it finds the bundle (and its map) already whole.
writeAtomic(join(out, 'cli', 'shoal.cjs.json'), `${JSON.stringify({ bundle: relative(out, resolve(repo, bundle)) })}\n`);
// The dashboard's page (web/): a separate browser bundle in dist/web (scripts/build-web.mjs).
const web = await buildWeb(repo, join(out, 'web'));
const webInputs = web.inputs;
changed += web.changed;
const files = inputFiles(result.metafile, repo).concat(webInputs);
const dirs = new Set(files.map((f) => dirname(f)));
writeAtomic(
  join(out, '.inputs'),
  `${[...new Set(files), 'package.json', 'package-lock.json', 'scripts/build.mjs', 'scripts/build-web.mjs', 'scripts/emit.mjs'].sort().join('\n')}\n`,
);
// Chunks of earlier builds stay for a week after the last build that made them (emitOutputs renews the
// mtime of a file it leaves alone): a process started from that build may still import one
// lazily — a CLI command, and a worker daemon, which loads the manager's code only when it is promoted
// (daemon/daemon.ts startManager), possibly days after it started. Earlier CLI bundles and their code
// caches stay for an hour (a CLI command is short-lived). Only a checkout that rebuilds ever has old files;
// scripts/install.sh builds once.
const current = new Set([...Object.keys(result.metafile.outputs), ...Object.keys(cjs.metafile.outputs)].map((o) => resolve(repo, o)));
const HOUR = 3_600_000;
for (const [dir, old, keepMs] of [
  [join(out, 'chunks'), () => true, 7 * 24 * HOUR],
  [join(out, 'cli'), (f) => /^shoal-\w+\.cjs(\.map|\.v8cache)?$/.test(f), HOUR],
]) {
  for (const f of readdirSync(dir)) {
    const p = join(dir, f);
    const own = p.endsWith('.v8cache') ? p.slice(0, -'.v8cache'.length) : p;
    if (old(f) && !current.has(own) && Date.now() - statSync(p).mtimeMs > keepMs) rmSync(p, { force: true });
  }
}
// The stamp gets the build's start time, atomically.
const tmp = join(out, `.stamp.${process.pid}`);
closeSync(openSync(tmp, 'w'));
utimesSync(tmp, started, started);
renameSync(tmp, join(out, '.stamp'));
if (!quiet) {
  const bytes = [...Object.values(result.metafile.outputs), ...Object.values(cjs.metafile.outputs)].reduce((n, o) => n + o.bytes, 0);
  console.log(
    `build: ${Object.keys(ENTRIES).length} entries + the CLI bundle, ${Object.keys(result.metafile.inputs).length} modules from ${dirs.size} directories → dist/ (${(bytes / 1024).toFixed(0)} KiB incl. source maps, ${changed} files changed) in ${Date.now() - t0} ms`,
  );
}
