#!/usr/bin/env bash
# The main job (see README). Until the multi-host lab lands (issues 3 and 7), it brings up Shoal's
# replicated core: three Raft managers in three processes with SQLite storage (fsync) and mutual-TLS
# WebSockets on loopback, drives writes through them, kills the leader with SIGKILL several times and
# shows the failover, then tears everything down.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
exec node --import tsx bench/raft.ts
