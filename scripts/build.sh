#!/usr/bin/env bash
# Compiles the TypeScript into dist/ (scripts/build.mjs: esbuild, about a second). Run by
# scripts/install.sh, and by bin/shoal and lab/compiled.ts when a source is newer than the last build.
#   scripts/build.sh              build now
#   scripts/build.sh --if-stale   build only if dist/ is missing or older than a source (scripts/stale.cjs)
# Concurrent callers (five lab daemons starting at once) serialise on a lock; the later ones find the
# build fresh and do nothing. Chunks of an older build stay for an hour (scripts/build.mjs): a process
# started from it may still load one lazily (chunk names carry a content hash: nothing is overwritten).
set -euo pipefail
repo="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)"
mkdir -p "$repo/dist"
exec 9>"$repo/dist/.lock"
flock 9
cd "$repo"
if [ "${1:-}" = "--if-stale" ]; then exec node scripts/build.mjs --if-stale --quiet; fi
exec node scripts/build.mjs
