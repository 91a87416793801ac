// Whether dist/ must be (re)built: no build yet, or a file the last build read (listed in dist/.inputs
// by scripts/build.mjs) is newer than dist/.stamp or gone. CommonJS and plain JavaScript, so bin/shoal
// can require it synchronously before anything is compiled (and without the ES module loader).
//
// One stat per input file (≈ 230), on purpose: an editor that saves in place changes no directory's
// mtime, so comparing directory mtimes (or any one stamp) would miss an edit and run stale code. The
// loop is kept cheap instead: no exceptions (throwIfNoEntry: false), no path joins, and it stops at
// the first newer file. docs/design/build.md has its cost.
'use strict';
const { readFileSync, statSync } = require('node:fs');
const path = require('node:path');

/** Why the dist/ of `repo` (a path ending in '/') is stale, or null when it is fresh. */
function staleReason(repo) {
  const root = repo.endsWith('/') ? repo : `${repo}/`;
  let stamp;
  let inputs;
  try {
    stamp = statSync(`${root}dist/.stamp`).mtimeMs;
    inputs = readFileSync(`${root}dist/.inputs`, 'utf8').split('\n');
  } catch {
    return 'no build yet';
  }
  for (const f of inputs) {
    if (f === '') continue;
    const s = statSync(root + f, { throwIfNoEntry: false });
    if (s === undefined) return `${f} is gone`;
    if (s.mtimeMs > stamp) return `${f} changed`;
  }
  return null;
}

/**
 * The files of a build's esbuild metafile worth watching, repo-relative: those on disk in `repo`, not in
 * node_modules (package.json and package-lock.json stand for them). A plugin's virtual module is listed
 * by esbuild as `namespace:path` (`ws-by-require:ws`, scripts/build.mjs): no file, so it must not be
 * listed, or every check would find it "gone" and every command would rebuild.
 */
function inputFiles(metafile, repo) {
  const out = [];
  for (const p of Object.keys(metafile.inputs)) {
    if (/^[\w-]+:/.test(p) || p.includes('node_modules')) continue;
    out.push(path.relative(repo, path.resolve(repo, p)));
  }
  return out;
}

module.exports = { staleReason, inputFiles };
