#!/usr/bin/env bash
# Installs everything Shoal needs on a fresh Debian 12 machine with Node 20, idempotently:
# Debian packages (only those missing) and the npm dependencies (only when the lock file changed).
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(iproute2 nftables busybox-static python3 make g++ docker-registry apache2-utils iperf3 prometheus chromium)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install: apt packages: ${missing[*]}"
  if [ "$(id -u)" -ne 0 ]; then echo "install: need root to apt-get install ${missing[*]}" >&2; exit 1; fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# npm ci only when node_modules is missing or older than the lock file.
stamp=node_modules/.shoal-installed
if [ ! -f "$stamp" ] || [ package-lock.json -nt "$stamp" ] || [ package.json -nt "$stamp" ]; then
  echo "install: npm ci"
  npm ci --no-audit --no-fund --loglevel=error
  touch "$stamp"
fi

# Native parts (the container shim); rebuilt only when their sources changed.
bash scripts/build-native.sh

# The compiled CLI and daemon (dist/, esbuild: scripts/build.mjs); rebuilt only when a source changed.
bash scripts/build.sh --if-stale
echo "install: dist/ is up to date (bin/shoal runs dist/cli/shoal.js)"

# `shoal` on the PATH: linked when root and /usr/local/bin/shoal is free (SHOAL_NO_LINK=1 skips it).
target="$(pwd)/bin/shoal"
link=/usr/local/bin/shoal
if [ "$(readlink -f "$link" 2>/dev/null)" = "$target" ]; then
  :
elif [ -z "${SHOAL_NO_LINK:-}" ] && [ "$(id -u)" -eq 0 ] && [ ! -e "$link" ] && [ ! -L "$link" ] && [ -d /usr/local/bin ]; then
  ln -s "$target" "$link"
  echo "install: linked $link -> $target"
else
  echo "install: to run shoal from any directory: ln -s $target $link (or add $(pwd)/bin to PATH)"
fi
