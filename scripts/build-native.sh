#!/usr/bin/env bash
# Builds Shoal's native helpers (currently native/build/shoal-shim). Idempotent: rebuilds only when a
# source (or the Makefile) is newer than the binary; prints nothing and exits 0 when up to date.
# Exit 3 means no C compiler is available.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
src="$root/native/shim/shoal-shim.c"
mk="$root/native/shim/Makefile"
bin="$root/native/build/shoal-shim"
if [[ -x "$bin" && ! "$src" -nt "$bin" && ! "$mk" -nt "$bin" ]]; then exit 0; fi
if ! command -v "${CC:-gcc}" >/dev/null 2>&1; then
  echo "build-native: no C compiler (${CC:-gcc}) found" >&2
  exit 3
fi
mkdir -p "$root/native/build"
# serialize concurrent builds (parallel test files)
exec 9>"$root/native/build/.lock"
flock 9
if [[ -x "$bin" && ! "$src" -nt "$bin" && ! "$mk" -nt "$bin" ]]; then exit 0; fi
make -s -C "$root/native/shim" >&2
