#!/usr/bin/env bash
# The one command that runs Shoal's tests (see README): installs what they need, type-checks, then runs
# every test file with node:test. Must be run as root (tests create namespaces, mounts, cgroups).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
echo "typecheck: tsc --noEmit"
npx tsc -p tsconfig.json --noEmit
mapfile -t files < <(find test -name '*.test.ts' | sort)
echo "running ${#files[@]} test files"
exec node --import tsx --test --test-reporter=tap "${files[@]}"
