#!/usr/bin/env bash
# The `watcher` binary end to end against a real server: a storm (mismatch + relist: relists
# per update), the calm run (namespaced: none, verified clean), name keys (divergence reported),
# live commands on stdin (key-mode fix mid-run), SIGINT ending cleanly with the JSON written,
# and --help.
#
#   watcher_cli.sh SPEC WATCHER_BIN     SPEC: etcd | etcd:PATH | kvstore:PATH
#
# Exit 0 on success, 1 on failure, 77 (skip) when etcd/etcdctl or a binary is missing, or when
# the server has no Watch service yet (probed with etcdctl watch).
#
# Key decisions: values are plain strings (the watcher then reads namespace/name from the key
# /registry/<resource>/<ns>/<name>), written with etcdctl; JSON is checked with grep/sed on the
# summary's one-line "totals" object (no jq dependency).
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"

if [ $# -ne 2 ]; then
    echo "usage: $0 SPEC WATCHER_BIN" >&2
    exit 2
fi
SPEC=$1
W=$2
[ -x "$W" ] || h_skip "watcher binary $W not found"
h_require_etcdctl
h_require_spec "$SPEC"
h_init watcher-cli
h_start_spec S "$SPEC" || exit 1
EP=${H_EP[S]}
ctl() { timeout 5 "$H_ETCDCTL_BIN" --endpoints="$EP" --dial-timeout=2s --command-timeout=4s "$@"; }

# Does the server stream watch events at all?
(timeout 3 "$H_ETCDCTL_BIN" --endpoints="$EP" watch /probe-key >"$H_TMP/probe.out" 2>&1 &)
sleep 0.5
ctl put /probe-key x >/dev/null
sleep 0.5
grep -q '^PUT' "$H_TMP/probe.out" || h_skip "$SPEC streams no watch events (no Watch service yet?)"

fails=0
fail() {
    h_log "FAIL: $*"
    fails=$((fails + 1))
}

# totals FILE FIELD -> the number after "FIELD": on the totals line (relists.miss as "miss")
totals() {
    grep '"totals"' "$1" | sed -E "s/.*\"$2\": ([0-9.]+).*/\1/"
}
fleetval() {
    grep -A1 '"fleet"' "$1" | tr -d '\n' | sed -E "s/.*\"$2\": ([0-9.]+).*/\1/"
}

for ns in a b c; do
    for i in 0 1 2 3; do ctl put "/registry/itpods/$ns/web-$i" v0 >/dev/null || fail "put"; done
done

# updates of listed objects, spaced so that each one finds the watchers synced again
churn() {
    local k
    for k in 0 1 2 3 4; do
        ctl put "/registry/itpods/a/web-$k" "v$k" >/dev/null || fail "put"
        sleep 0.3
    done
    ctl del /registry/itpods/b/web-1 >/dev/null
    sleep 0.3
}

# ---- storm: mismatch + relist ----------------------------------------------------------------
"$W" --endpoints "$EP" --prefix /registry/itpods/ --count 4 --conns 2 --key-mode mismatch \
    --on-miss relist --backoff none --page-size 5 --duration 4s --interval 1s --verify \
    --json "$H_TMP/storm.json" </dev/null >"$H_TMP/storm.out" 2>&1 &
wpid=$!
sleep 1.2
churn
wait "$wpid" || fail "storm run exited $?"
[ -s "$H_TMP/storm.json" ] || fail "storm: no JSON"
miss=$(totals "$H_TMP/storm.json" miss)
lists=$(totals "$H_TMP/storm.json" lists)
h_log "storm: relists.miss=$miss lists=$lists"
# 4 updates + 1 delete of listed objects (web-4 is a creation: no miss) x 4 watchers = 20; an
# update that lands while a relist is reading is covered by that LIST, hence the margin
[ "${miss:-0}" -ge 12 ] || fail "storm: expected >= 12 miss relists (20 when nothing overlaps), got $miss"
[ "${lists:-0}" -ge $((4 + miss)) ] || fail "storm: expected 4 + $miss LISTs, got $lists"
grep -q 'synced 4/4' "$H_TMP/storm.out" || fail "storm: no status line with 4/4 synced"

# ---- calm: namespaced --------------------------------------------------------------------------
"$W" --endpoints "$EP" --prefix /registry/itpods/ --count 4 --key-mode namespaced \
    --duration 3s --interval 1s --verify --json "$H_TMP/calm.json" </dev/null >"$H_TMP/calm.out" 2>&1 &
wpid=$!
sleep 1.2
churn
wait "$wpid" || fail "calm run exited $?"
miss=$(totals "$H_TMP/calm.json" miss)
lists=$(totals "$H_TMP/calm.json" lists)
div=$(totals "$H_TMP/calm.json" divergent_watchers)
verified=$(grep -o '"verified": [0-9]*' "$H_TMP/calm.json" | head -1 | grep -o '[0-9]*$')
h_log "calm: relists.miss=$miss lists=$lists divergent_watchers=$div verified=$verified"
[ "$miss" = 0 ] || fail "calm: relists.miss=$miss"
[ "$lists" = 4 ] || fail "calm: lists=$lists (want 4)"
[ "$div" = 0 ] || fail "calm: divergent_watchers=$div"
[ "$verified" = 4 ] || fail "calm: verified=$verified (want 4)"

# ---- name keys: divergence reported; namespace-scoped watchers -------------------------------
"$W" --endpoints "$EP" --prefix /registry/itpods/ --count 2 --key-mode name --on-miss ignore \
    --duration 1500ms --verify --json "$H_TMP/name.json" </dev/null >"$H_TMP/name.out" 2>&1 ||
    fail "name run exited $?"
div=$(totals "$H_TMP/name.json" divergent_watchers)
[ "$div" = 2 ] || fail "name: divergent_watchers=$div (want 2)"
grep -q 'collided' "$H_TMP/name.out" || fail "name: no collision listed"
"$W" --endpoints "$EP" --prefix /registry/itpods/ --namespaces 3 --prefix-per-watcher \
    '/registry/itpods/%d/' --count 3 --duration 1s --json "$H_TMP/ns.json" </dev/null \
    >"$H_TMP/ns.out" 2>&1 || fail "namespaces run exited $?"
grep -q '"prefix": "/registry/itpods/2/"' "$H_TMP/ns.json" || fail "prefix-per-watcher not applied"

# ---- stdin commands: fix the storm while it runs; SIGINT ends it with the JSON ---------------
mkfifo "$H_TMP/cmd"
"$W" --endpoints "$EP" --prefix /registry/itpods/ --count 3 --key-mode mismatch --on-miss relist \
    --backoff none --interval 1s --json "$H_TMP/live.json" <"$H_TMP/cmd" >"$H_TMP/live.out" 2>&1 &
wpid=$!
exec 3>"$H_TMP/cmd"
sleep 1
ctl put /registry/itpods/c/web-0 x1 >/dev/null
sleep 0.5
echo "key-mode namespaced" >&3
echo "qps 50/100" >&3
echo "backoff client-go" >&3
sleep 1
before=$(grep -c relist "$H_TMP/live.out")
ctl put /registry/itpods/c/web-1 x2 >/dev/null
ctl put /registry/itpods/c/web-2 x3 >/dev/null
sleep 0.7
echo "status" >&3
sleep 0.3
kill -INT "$wpid"
wait "$wpid" || fail "live run exited $? after SIGINT"
exec 3>&-
grep -q 'key mode: namespaced' "$H_TMP/live.out" || fail "live: key-mode command not acknowledged"
miss=$(totals "$H_TMP/live.json" miss)
rekeys=$(fleetval "$H_TMP/live.json" rekeys)
h_log "live: relists.miss=$miss rekeys=$rekeys"
[ "$miss" = 3 ] || fail "live: relists.miss=$miss (want 3: one update before the fix, x3 watchers)"
[ "$rekeys" = 3 ] || fail "live: rekeys=$rekeys (want 3)"
: "$before"

# ---- help ---------------------------------------------------------------------------------------
"$W" --help | grep -q 'Storm vs calm' || fail "--help lacks the storm/calm example"
"$W" --bogus >/dev/null 2>&1
[ $? = 2 ] || fail "unknown flag should exit 2"

if [ "$fails" -gt 0 ]; then
    for f in storm calm name live; do
        h_log "---- $f.out"
        sed 's/^/    | /' "$H_TMP/$f.out" >&2
    done
    exit 1
fi
h_log "watcher_cli: all checks passed against $SPEC"
exit 0
