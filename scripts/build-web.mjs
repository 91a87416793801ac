// The dashboard's page (web/, served by `shoal dashboard`): one browser bundle, web/main.ts and preact,
// minified into dist/web/app.js, plus the two static files beside it. Run by scripts/build.mjs as its
// own step; returns the source files it read, so a change to one makes dist/ stale (scripts/stale.cjs).
// Plain JavaScript for the same reason as build.mjs. Nothing is fetched at run time: no CDN.
import { build } from 'esbuild';
import { copyFileSync, mkdirSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';

const STATIC = ['web/index.html', 'web/style.css'];

/** Builds `repo`/web into `outDir`; returns the repo-relative paths of its inputs. */
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
    logLevel: 'warning',
  });
  for (const f of STATIC) copyFileSync(join(repo, f), join(outDir, f.slice('web/'.length)));
  const inputs = Object.keys(result.metafile.inputs)
    .filter((p) => !p.includes('node_modules'))
    .map((p) => relative(repo, resolve(repo, p)));
  return [...inputs, ...STATIC];
}
