#!/usr/bin/env bash
# Runs the issue's benchmark set with kvbench, kvstore against a real etcd 3.4 in the same run
# (alternating rounds, medians), and prints every ratio table: the source of BENCHMARKS.md.
#   tests/bench/run-benchmarks.sh [BUILD_DIR] [--quick]
# BUILD_DIR defaults to build-release (configured with -DCMAKE_BUILD_TYPE=Release). --quick
# runs 2 rounds of 3 s instead of 3 rounds of 10 s. Results also go to BUILD_DIR/bench-results/.
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build-release}
rounds=(--rounds 3 --duration 10s --warmup 2s)
[ "${2:-}" = --quick ] && rounds=(--rounds 2 --duration 3s --warmup 1s)
kb=$build/tests/bench/kvbench/kvbench
[ -x "$kb" ] || { echo "no $kb: build the kvbench and kvstore targets first" >&2; exit 2; }
out=$build/bench-results
mkdir -p "$out"
run() { # name, kvbench args...
    local name=$1
    shift
    echo "== $name: kvbench $*"
    "$kb" "$@" "${rounds[@]}" --quiet --kvstore-bin "$build/kvstore" --json "$out/$name.json" |
        tee "$out/$name.txt" | grep -E '^(workload|-|[a-z])' | grep -E '\|' || true
}
run list-1 list -c 1
run list-4 list -c 4 --conns 4
run put-64 put -c 64
run put-1 put -c 1
run txn-16 txn -c 16
run get-16 get -c 16
run watch-180 watch --watchers 1000 --value-size 256 --rate 180
run watch-sat watch --watchers 1000 --value-size 256 --rate 0 -c 128
run storm-500 storm --watchers 200 --namespaces 10 --objects 500 --rate 500 -c 4
for n in 1000 10000 100000; do
    run "list-curve-$n" list -c 1 --objects "$n"
done
