#!/usr/bin/env bash
# The main job (see README): installs what is needed, then brings up a multi-node Shoal lab on this
# machine — 3 managers and 2 workers, each host a network namespace running a real `shoal daemon`,
# joined over mutual TLS — deploys the demo web service (6 replicas of a busybox httpd image built
# locally, published on port 8080 through the routing mesh), and shows the cluster and the service.
# `bin/shoal lab down` removes every trace.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
name="${SHOAL_LAB:-shoal}"
if bin/shoal lab ls 2>/dev/null | awk 'NR>1{print $1}' | grep -qx "$name"; then
  echo "lab '$name' exists already: replacing it"
  bin/shoal lab down --name "$name" --force >/dev/null
fi
bin/shoal lab up --name "$name" --managers "${SHOAL_MANAGERS:-3}" --workers "${SHOAL_WORKERS:-2}"
echo
bin/shoal node ls
echo
bin/shoal service ps web
