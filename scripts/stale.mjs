// Whether dist/ must be (re)built: no build yet, or a file the last build read (listed in dist/.inputs
// by scripts/build.mjs) is newer than dist/.stamp or gone. Plain JavaScript, so bin/shoal can ask before
// anything is compiled; one stat per source file (≈ 120 files, well under a millisecond), no process.
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

/** Why `repo`'s dist/ is stale, or null when it is fresh. */
export function staleReason(repo) {
  let stamp;
  let inputs;
  try {
    stamp = statSync(join(repo, 'dist', '.stamp')).mtimeMs;
    inputs = readFileSync(join(repo, 'dist', '.inputs'), 'utf8')
      .split('\n')
      .filter(Boolean);
  } catch {
    return 'no build yet';
  }
  for (const f of inputs) {
    let m;
    try {
      m = statSync(join(repo, f)).mtimeMs;
    } catch {
      return `${f} is gone`;
    }
    if (m > stamp) return `${f} changed`;
  }
  return null;
}
