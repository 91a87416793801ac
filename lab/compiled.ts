// The compiled entry points (dist/, scripts/build.mjs) for code that spawns Shoal processes: the lab
// harness starts daemons with the compiled CLI, the benchmarks their agent farm and Raft members. The
// first call in a process rebuilds dist/ if a source changed since the last build (scripts/build.sh
// --if-stale: a lock, a stat per source file, a build only when needed), so a lab never runs old code.
import { execFileSync } from 'node:child_process';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = resolve(fileURLToPath(new URL('..', import.meta.url)));
let checked = false;

/**
 * The compiled form of an entry listed in scripts/build.mjs ENTRIES, e.g. 'cli/shoal' → REPO/dist/cli/shoal.js.
 * With SHOAL_USE_TSX=1 in the environment, 'cli/shoal' is bin/shoal instead, which then runs the sources
 * with tsx (the baseline of `npm run bench:cli`).
 */
export function compiledEntry(entry: 'cli/shoal' | 'lab/agent-farm' | 'bench/raft-member'): string {
  if (entry === 'cli/shoal' && process.env.SHOAL_USE_TSX) return join(REPO, 'bin', 'shoal');
  if (!checked) {
    execFileSync('bash', [join(REPO, 'scripts', 'build.sh'), '--if-stale'], { stdio: ['ignore', 'inherit', 'inherit'] });
    checked = true;
  }
  return join(REPO, 'dist', `${entry}.js`);
}
