#!/usr/bin/env bash
# The main job: the relist-storm comparison on an embedded kvstore server. Installs what it
# needs (Debian 12, as root), builds relistlab (release), runs
#   scenario compare scenarios/relist-storm.scn --modes namespaced,mismatch --out out/relist-storm
# and prints the side-by-side table and where the HTML report is. Extra arguments go to
# `scenario` (e.g. --short for a quick run, --set watchers.count=500).
set -euo pipefail
cd "$(dirname "$0")/.."

. tests/deps.sh
relist_install_deps

cmake -S . -B build-release -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build-release -j "$(nproc)" --target kvstore scenario >/dev/null

out=${RELIST_OUT:-out/relist-storm}
build-release/scenarios/scenario compare scenarios/relist-storm.scn \
    --modes namespaced,mismatch --kvstore-bin build-release/kvstore --out "$out" "$@"
echo "report: $out/report.html (also report.md, timeline.csv, summary.json)"
