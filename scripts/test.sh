#!/usr/bin/env bash
# The one command that runs Shoal's tests (see README): installs what they need, type-checks, lints, then
# runs the tests in two parts, both with node:test:
#   1. unit:   the quick tests of pure logic and in-process servers; no root needed. When run as root and
#              the tree is readable by `nobody`, they run as `nobody`, which proves they need no privilege.
#   2. system: tests on the real kernel (containers, namespaces, cgroups, nftables) and real multi-host labs;
#              root needed. Which files need root is decided in one place: scripts/test-files.sh.
# `bash scripts/test.sh unit` or `bash scripts/test.sh system` runs one part. The last line is the combined
# count ("tests: N passed, N failed, N skipped").
set -euo pipefail
cd "$(dirname "$0")/.."
part="${1:-all}"
case "$part" in all | unit | system) ;; *) echo "usage: bash scripts/test.sh [unit|system]" >&2; exit 2 ;; esac

SHOAL_NO_LINK=1 bash scripts/install.sh
echo "typecheck: tsc --noEmit"
npx tsc -p tsconfig.json --noEmit
echo "lint: biome ci (lint rules and formatting, biome.json)"
npx biome ci --reporter=summary .

results="$(mktemp -d)"
trap 'rm -rf "$results"' EXIT
chmod 755 "$results"

# Runs node:test over the files of one part; its TAP output goes to the console and to $results/<part>.tap.
run_part() {
  local name="$1"
  shift
  mapfile -t files < <(bash scripts/test-files.sh "$name")
  # Unit files are independent processes with no shared state: one per core. (node:test's default, cores - 1,
  # runs them one at a time on a 2-core machine.) System files share the kernel and the machine's CPU with
  # the labs they time, so they keep the default.
  local conc=()
  if [ "$name" = unit ]; then conc=("--test-concurrency=$(($(nproc) > 2 ? $(nproc) : 2))"); fi
  echo "== $name tests: ${#files[@]} files"
  local rc=0
  "$@" node --import tsx --test --test-reporter=tap "${conc[@]}" "${files[@]}" | tee "$results/$name.tap" || rc=$?
  return $rc
}

# Unit tests as `nobody` when we are root and `nobody` can read the tree (a clone with a private umask
# cannot be read: then they run as the current user).
as_nobody=()
if [ "$(id -u)" -eq 0 ] && setpriv --reuid=65534 --regid=65534 --clear-groups test -r package.json 2>/dev/null &&
  setpriv --reuid=65534 --regid=65534 --clear-groups test -r node_modules/tsx/package.json 2>/dev/null; then
  mkdir -p "$results/home" && chown 65534:65534 "$results/home"
  as_nobody=(setpriv --reuid=65534 --regid=65534 --clear-groups env "HOME=$results/home" "TMPDIR=$results/home")
fi

status=0
if [ "$part" != system ]; then run_part unit "${as_nobody[@]}" || status=1; fi
if [ "$part" != unit ]; then run_part system || status=1; fi

# One closing line for both parts (each TAP stream ends with its own "# pass N" / "# fail N").
sum() { cat "$results"/*.tap 2>/dev/null | awk -v k="$1" '$1 == "#" && $2 == k { n += $3 } END { print n + 0 }'; }
echo "tests: $(sum pass) passed, $(sum fail) failed, $(sum skipped) skipped"
exit $status
