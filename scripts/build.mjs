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
// Writes dist/.inputs (every source file it read, for the staleness check in scripts/stale.mjs) and
// dist/.stamp (whose mtime is the start of this build: a file saved during the build counts as newer).
// `--if-stale` builds only when scripts/stale.mjs says so; `--quiet` prints nothing on success.
import { build } from 'esbuild';
import { closeSync, mkdirSync, openSync, readFileSync, readdirSync, renameSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { buildWeb } from './build-web.mjs';
import { staleReason } from './stale.mjs';

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
  sourcemap: 'linked',
  metafile: true,
  logLevel: 'warning',
  plugins: [sourceUrls],
});
// The dashboard's page (web/): a separate browser bundle in dist/web (scripts/build-web.mjs).
const webInputs = await buildWeb(repo, join(out, 'web'));
const files = Object.keys(result.metafile.inputs)
  .filter((p) => !p.includes('node_modules'))
  .map((p) => relative(repo, resolve(repo, p)))
  .concat(webInputs);
const dirs = new Set(files.map((f) => dirname(f)));
writeFileSync(
  join(out, '.inputs'),
  `${[...new Set(files), 'package.json', 'package-lock.json', 'scripts/build.mjs', 'scripts/build-web.mjs'].sort().join('\n')}\n`,
);
// Chunks of earlier builds stay for an hour: a process started from that build (a CLI command, a daemon
// while it starts) may still import one lazily; the daemon code itself has no dynamic imports.
const current = new Set(Object.keys(result.metafile.outputs).map((o) => resolve(repo, o)));
const chunkDir = join(out, 'chunks');
for (const f of readdirSync(chunkDir)) {
  const p = join(chunkDir, f);
  if (!current.has(p) && Date.now() - statSync(p).mtimeMs > 3_600_000) rmSync(p, { force: true });
}
// The stamp gets the build's start time, atomically.
const tmp = join(out, `.stamp.${process.pid}`);
closeSync(openSync(tmp, 'w'));
utimesSync(tmp, started, started);
renameSync(tmp, join(out, '.stamp'));
if (!quiet) {
  const bytes = Object.values(result.metafile.outputs).reduce((n, o) => n + o.bytes, 0);
  console.log(
    `build: ${Object.keys(ENTRIES).length} entries, ${Object.keys(result.metafile.inputs).length} modules from ${dirs.size} directories → dist/ (${(bytes / 1024).toFixed(0)} KiB incl. source maps) in ${Date.now() - t0} ms`,
  );
}
