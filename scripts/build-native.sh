#!/usr/bin/env bash
# Builds Shoal's native helpers: native/build/shoal-shim (the container monitor, plain make) and
# native/build/shoal_netlink.node (the rtnetlink addon, node-gyp against the machine's own Node headers,
# offline). Idempotent: each is rebuilt only when one of its sources (or its Makefile / binding.gyp) is newer
# than its output; prints nothing and exits 0 when both are up to date. Concurrent runs (parallel test files)
# are serialised with flock. Exit 3 means no C/C++ compiler is available.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
src="$root/native/shim/shoal-shim.c"
mk="$root/native/shim/Makefile"
bin="$root/native/build/shoal-shim"
nl_dir="$root/native/netlink"
nl_out="$root/native/build/shoal_netlink.node"

shim_ok() { [[ -x "$bin" && ! "$src" -nt "$bin" && ! "$mk" -nt "$bin" ]]; }
netlink_ok() {
  [[ -f "$nl_out" ]] || return 1
  local f
  for f in "$nl_dir"/*.cc "$nl_dir"/*.hh "$nl_dir"/binding.gyp; do
    [[ -e "$f" && "$f" -nt "$nl_out" ]] && return 1
  done
  return 0
}

if shim_ok && netlink_ok; then exit 0; fi
if ! command -v "${CC:-gcc}" >/dev/null 2>&1; then
  echo "build-native: no C compiler (${CC:-gcc}) found" >&2
  exit 3
fi
mkdir -p "$root/native/build"
# serialize concurrent builds (parallel test files)
exec 9>"$root/native/build/.lock"
flock 9

if ! shim_ok; then
  make -s -C "$root/native/shim" >&2
fi

if ! netlink_ok; then
  if ! command -v "${CXX:-g++}" >/dev/null 2>&1; then
    echo "build-native: no C++ compiler (${CXX:-g++}) found" >&2
    exit 3
  fi
  gyp="$root/node_modules/node-gyp/bin/node-gyp.js"
  if [[ ! -f "$gyp" ]]; then
    echo "build-native: node-gyp is not installed (run npm ci)" >&2
    exit 1
  fi
  # The headers of the Node that runs Shoal: <prefix>/include/node (Debian's nodejs: /usr/include/node).
  node_prefix="$(cd "$(dirname "$(readlink -f "$(command -v node)")")/.." && pwd)"
  if [[ -f "$node_prefix/include/node/node_api.h" ]]; then
    nodedir=(--nodedir="$node_prefix")
  elif [[ -f /usr/include/node/node_api.h ]]; then
    nodedir=(--nodedir=/usr)
  else
    nodedir=()  # node-gyp's own header cache (needs it populated: no network here)
  fi
  cd "$nl_dir"
  # configure once (or when binding.gyp changed); make then recompiles only the changed sources.
  if [[ ! -f build/Makefile || binding.gyp -nt build/Makefile ]]; then
    node "$gyp" configure "${nodedir[@]}" --loglevel=error >/dev/null
  fi
  # make's progress lines go to stdout (dropped); compiler and node-gyp errors go to stderr.
  node "$gyp" build "${nodedir[@]}" --loglevel=error >/dev/null
  install -m 0755 build/Release/shoal_netlink.node "$nl_out.tmp.$$"
  mv -f "$nl_out.tmp.$$" "$nl_out"
fi
