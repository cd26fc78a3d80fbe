#!/usr/bin/env bash
# /metrics with curl against a running `kvstore serve`: the counters a scraper (Prometheus, the
# scenario sampler) relies on move as requests arrive — puts, ranges, a watch and its events,
# lease grants and keep-alives, per-client accounting.
#
#   metrics_curl.sh KVSTORE_BIN
#
# Exit 0 on success, 1 on a failed check, 77 (ctest SKIP_RETURN_CODE) when curl, etcdctl or the
# binary is missing.
#
# Key decisions: every value is read before and after a known amount of work, and the check is
# on the difference, so unrelated traffic (the readiness probe's Range) cannot make it flaky.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"

[ $# -eq 1 ] || {
    echo "usage: $0 KVSTORE_BIN" >&2
    exit 2
}
command -v curl >/dev/null 2>&1 || h_skip "curl not installed"
h_require_etcdctl
h_require_spec "kvstore:$1"

h_init relist-metrics
h_start_kvstore K "$1" || {
    echo "FAIL: could not start kvstore"
    exit 1
}
EP=${H_EP[K]}
failures=0

scrape() { curl -s --max-time 5 "http://$EP/metrics"; }
ctl() { timeout -k 1 8 "$H_ETCDCTL_BIN" --endpoints="$EP" --dial-timeout=2s "$@"; }

# value TEXT LINE_PREFIX: the sum of the samples on lines starting with LINE_PREFIX (0 if none)
value() {
    printf '%s\n' "$1" | grep -F -- "$2" | grep -v '^#' |
        awk '{ s += $NF } END { printf "%d\n", s }'
}

# check NAME BEFORE AFTER MIN_DELTA
check() {
    local delta
    delta=$(awk -v a="$2" -v b="$3" 'BEGIN { printf "%d", b - a }')
    if [ "$delta" -ge "$4" ]; then
        echo "ok   $1: $2 -> $3"
    else
        echo "FAIL $1: $2 -> $3 (want +$4 or more)"
        failures=$((failures + 1))
    fi
}

PUT_STARTED='grpc_server_started_total{grpc_method="Put",grpc_service="etcdserverpb.KV",grpc_type="unary"}'
RANGE_HANDLED='grpc_server_handled_total{grpc_code="OK",grpc_method="Range",grpc_service="etcdserverpb.KV",grpc_type="unary"}'
WATCH_STARTED='grpc_server_started_total{grpc_method="Watch",grpc_service="etcdserverpb.Watch",grpc_type="bidi_stream"}'

before=$(scrape)
[ -n "$before" ] || {
    echo "FAIL: no answer from http://$EP/metrics"
    exit 1
}
grep -q '^# TYPE etcd_debugging_mvcc_watcher_total gauge' <<<"$before" || {
    echo "FAIL: etcd_debugging_mvcc_watcher_total missing"
    failures=$((failures + 1))
}

# A watch that stays open while the writes happen.
timeout -s INT 4 "$H_ETCDCTL_BIN" --endpoints="$EP" watch --prefix /m/ >"$H_TMP/watch.out" 2>&1 &
wpid=$!
sleep 1
during=$(scrape)
for i in 1 2 3 4 5; do ctl put "/m/k$i" "v$i" >/dev/null || failures=$((failures + 1)); done
for i in 1 2 3; do ctl get --prefix /m/ >/dev/null || failures=$((failures + 1)); done
lease=$(ctl lease grant 60 | sed -nE 's/^lease ([0-9a-f]+) granted.*/\1/p')
ctl lease keep-alive --once "$lease" >/dev/null || failures=$((failures + 1))
sleep 0.5
after=$(scrape)
wait "$wpid"
sleep 0.3
ended=$(scrape)

check etcd_mvcc_put_total "$(value "$before" 'etcd_mvcc_put_total ')" \
    "$(value "$after" 'etcd_mvcc_put_total ')" 5
check "Put started" "$(value "$before" "$PUT_STARTED ")" "$(value "$after" "$PUT_STARTED ")" 5
check "Range handled OK" "$(value "$before" "$RANGE_HANDLED ")" \
    "$(value "$after" "$RANGE_HANDLED ")" 3
check etcd_debugging_mvcc_current_revision "$(value "$before" 'etcd_debugging_mvcc_current_revision ')" \
    "$(value "$after" 'etcd_debugging_mvcc_current_revision ')" 5
check "Watch started" "$(value "$before" "$WATCH_STARTED ")" "$(value "$during" "$WATCH_STARTED ")" 1
check "watchers while watching" 0 "$(value "$during" 'etcd_debugging_mvcc_watcher_total ')" 1
check etcd_debugging_mvcc_events_total "$(value "$before" 'etcd_debugging_mvcc_events_total ')" \
    "$(value "$after" 'etcd_debugging_mvcc_events_total ')" 5
check "client watches while watching" 0 "$(value "$during" 'relistlab_client_watches{')" 1
check etcd_debugging_lease_granted_total "$(value "$before" 'etcd_debugging_lease_granted_total ')" \
    "$(value "$after" 'etcd_debugging_lease_granted_total ')" 1
check etcd_debugging_lease_renewed_total "$(value "$before" 'etcd_debugging_lease_renewed_total ')" \
    "$(value "$after" 'etcd_debugging_lease_renewed_total ')" 1
check "per-client requests" "$(value "$before" 'relistlab_client_requests_total{')" \
    "$(value "$after" 'relistlab_client_requests_total{')" 1
# After the watch ended, no watcher is left.
if [ "$(value "$ended" 'etcd_debugging_mvcc_watcher_total ')" != 0 ]; then
    echo "FAIL watchers after the watch ended: $(value "$ended" 'etcd_debugging_mvcc_watcher_total ')"
    failures=$((failures + 1))
fi
grep -c '^PUT' "$H_TMP/watch.out" | grep -qx 5 || {
    echo "FAIL the watch saw $(grep -c '^PUT' "$H_TMP/watch.out") of 5 puts"
    failures=$((failures + 1))
}

if [ "$failures" -gt 0 ]; then
    h_log_tail K 20
    echo "metrics_curl: $failures failed"
    exit 1
fi
echo "metrics_curl: all checks passed"
