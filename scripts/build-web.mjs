// The dashboard's page (web/, served by `shoal dashboard`): one browser bundle, web/main.ts and preact,
// minified into dist/web/app.js, plus the two static files beside it. Run by scripts/build.mjs as its
// own step; returns the source files it read, so a change to one makes dist/ stale (scripts/stale.cjs).
// Plain JavaScript for the same reason as build.mjs. Nothing is fetched at run time: no CDN.
import { build } from 'esbuild';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { emitOutputs, writeAtomic } from './emit.mjs';
import { inputFiles } from './stale.cjs';

const STATIC = ['web/index.html', 'web/style.css'];

/**
 * Builds `repo`/web into `outDir` (atomically, scripts/emit.mjs: a dashboard may be serving it); returns
 * the repo-relative paths of its inputs and how many files changed.
 */
export async function buildWeb(repo, outDir) {
  mkdirSync(outDir, { recursive: true });
  const result = await build({
    absWorkingDir: repo,
    entryPoints: [join(repo, 'web', 'main.ts')],
    outfile: join(outDir, 'app.js'),
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: ['chrome110', 'firefox110', 'safari16'],
    minify: true,
    sourcemap: 'linked',
    metafile: true,
    write: false,
    logLevel: 'warning',
  });
  let changed = emitOutputs(result.outputFiles, { last: [join(outDir, 'app.js')] });
  for (const f of STATIC) if (writeAtomic(join(outDir, f.slice('web/'.length)), readFileSync(join(repo, f)))) changed++;
  const inputs = inputFiles(result.metafile, repo);
  return { inputs: [...inputs, ...STATIC], changed };
}
