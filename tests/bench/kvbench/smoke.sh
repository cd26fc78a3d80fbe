#!/bin/sh
# kvbench_smoke: tiny runs proving the tool works end to end (no speed assertion):
# every workload against the built-in null server, and put + list against a real etcd when
# /usr/bin/etcd is installed; watch + storm (the null server has no Watch) against the build
# tree's kvstore, and etcd when installed, asserting no lost / duplicated events and exact LISTs.
# Usage: smoke.sh PATH/TO/kvbench
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
kvs="$(dirname "$kb")/../../../kvstore"
if [ -x "$kvs" ]; then
    wt=kvstore
    [ -x /usr/bin/etcd ] && wt=kvstore,etcd
    "$kb" watch --targets $wt --watchers 50 --streams 2 --conns 2 --rate 200 -c 4 \
        --value-size 64 $q >"$out/watch.txt"
    test "$(grep -c 'lost 0, duplicates 0, gaps 0;' "$out/watch.txt")" -eq "$(echo $wt | tr , '\n' | wc -l)"
    "$kb" watch --targets kvstore --watchers 20 -c 4 --value-size 64 $q | grep -q 'lost 0, duplicates 0, gaps 0;'
    "$kb" storm --targets $wt --watchers 20 --namespaces 4 --objects 40 --rate 50 $q >"$out/storm.txt"
    test "$(grep -c 'LIST errors 0, wrong counts 0$' "$out/storm.txt")" -eq "$(echo $wt | tr , '\n' | wc -l)"
    grep -q ' lists' "$out/storm.txt"
fi
echo "kvbench smoke: ok"
