#!/bin/sh
# kvbench_smoke: tiny runs proving the tool works end to end (no speed assertion):
# every workload against the built-in null server, and put + list against a real etcd when
# /usr/bin/etcd is installed. Usage: smoke.sh PATH/TO/kvbench
set -eu
kb=$1
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
q="--duration 0.5s --warmup 0.1s --rounds 1 --quiet"
"$kb" --help | grep -q "examples:"
"$kb" put --targets null -c 8 --keys 100 $q --json "$out/put.json"
grep -q '"ops_per_s"' "$out/put.json"
"$kb" get --targets null -c 4 --keys 200 --verify $q
"$kb" list --targets null --objects 400 --namespaces 4 -c 2 $q
"$kb" list --targets null --objects 400 --namespaces 8 --scope namespace --verify $q
"$kb" txn --targets null --keys 50 -c 4 --conns 2 $q | grep -q cas_conflicts
"$kb" put --targets null --count 200 --warmup 0 --rounds 2 --quiet
if "$kb" nosuch 2>/dev/null; then echo "unknown workload accepted"; exit 1; fi
if [ -x /usr/bin/etcd ]; then
    "$kb" put --targets etcd,null -c 16 --keys 100 $q
    "$kb" list --targets etcd --objects 500 --namespaces 5 -c 2 $q
fi
echo "kvbench smoke: ok"
