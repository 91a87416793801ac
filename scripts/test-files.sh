#!/usr/bin/env bash
# Which test files make up each part of the test run (see scripts/test.sh), decided in one place.
#   system: tests that need root — real containers (test/engine), the kernel's network stack (test/net),
#           image unpacking with ownership and a real registry (test/images), multi-host labs (test/cluster,
#           and any *-lab.test.ts elsewhere), and the launcher and build tests (they build dist/ in the checkout).
#   unit:   everything else: pure logic and in-process servers on loopback.
# Usage: bash scripts/test-files.sh unit|system   (prints one path per line, sorted)
set -euo pipefail
cd "$(dirname "$0")/.."
SYSTEM_RE='^test/(cluster|engine|net|images)/|-lab\.test\.ts$|^test/cli/(launcher|build)\.test\.ts$'
case "${1:-}" in
  unit) find test -name '*.test.ts' | grep -Ev "$SYSTEM_RE" | sort ;;
  system) find test -name '*.test.ts' | grep -E "$SYSTEM_RE" | sort ;;
  *) echo "usage: bash scripts/test-files.sh unit|system" >&2; exit 2 ;;
esac
