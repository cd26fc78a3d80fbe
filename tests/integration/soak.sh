#!/usr/bin/env bash
# soak.sh — soak test: a fleet of namespaced watchers and a mixed write load against the real
# `kvstore serve`, then: zero divergence, zero lost or duplicated events, bounded memory.
#
#   bash tests/integration/soak.sh KVSTORE WATCHER SOAK_LOAD
#   SOAK_SECONDS=600 bash tests/integration/soak.sh build/kvstore build/watcher \
#       build/tests/integration/soak_load                       # the 10-minute soak
# ctest runs it as soak_60s (SOAK_SECONDS=60). Knobs (environment, defaults in brackets):
#   SOAK_SECONDS [60] load duration; SOAK_WATCHERS [1000]; SOAK_CONNS [20] connections the
#   watchers share; SOAK_NAMESPACES [20]; SOAK_NAMES [50] object names per namespace (the same
#   names in every namespace: a/web-0 and b/web-0 must stay apart); SOAK_SEED [10] objects per
#   namespace before the watchers LIST; SOAK_RATE [50] writes/s; SOAK_COMPACT [15] seconds
#   between compactions (0 = none); SOAK_SERVER_ARGS extra `kvstore serve` flags (word-split,
#   e.g. "--max-concurrent-streams 1000"); SOAK_RNG [7] the load's random seed; SOAK_KEEP=1 keeps the
#   scratch dir (rss.csv, logs, JSON); SOAK_KEY_MODE [namespaced] the watchers' cache key, for
#   proving the harness: SOAK_KEY_MODE=name SOAK_SCOPE=all (every watcher watches all
#   namespaces, so a/web-0 and b/web-0 collide in its cache) must FAIL; SOAK_SCOPE
#   [namespace] = one namespace per watcher (watcher i: ns-<i % SOAK_NAMESPACES>).
#
# What is checked, and how:
# - Divergence: the watcher's final verification (--verify) compares every cache with a LIST
#   of its namespace at the revision that watcher reached: missing + extra + stale must be 0
#   for all watchers, none unverified; and soak_load's own final LIST must equal its model.
# - Lost / duplicated events: the load starts only after every watcher has synced, so a
#   watcher that never relisted must have applied exactly one event per accepted write to its
#   namespace (soak_load counts them per namespace). Per watcher: fewer = lost, more =
#   duplicated; the fleet's "duplicates" counter (events at or below the applied revision,
#   i.e. re-sent by the server) must be 0; no relists, no misses, one LIST per watcher.
# - Memory: /proc/PID/status of the server and the watcher process every second (rss.csv).
#   Bounds (MiB; x3 when the binaries are built with ASan): server RssAnon peak <=
#   SOAK_SERVER_ANON_MAX [64] and VmRSS peak <= SOAK_SERVER_RSS_MAX [128] (VmRSS includes
#   LMDB's file-backed map); watcher VmRSS peak <= SOAK_WATCHER_RSS_MAX [96]; growth in the
#   second half of the load (mean of the last 10 samples minus the mean of the 10 samples at
#   the half-way point) <= SOAK_GROWTH_MAX [2] for the server's RssAnon and the watcher's
#   VmRSS (at 50 writes/s x 50 watchers per namespace the second half of a 10-minute soak
#   delivers 750,000 events from 15,000 writes: a leak of ~3 bytes per event or ~140 bytes
#   per write fails; the 60 s run is only a smoke test for leaks that small).
#   Under ASan the quarantine is shrunk (ASAN_OPTIONS quarantine_size_mb=4) so freed memory
#   does not pose as a leak, and sanitizer reports in the logs fail the test.
# - Repeatability: the load's random seed is fixed (SOAK_RNG), so runs issue the same op mix
#   (the exact sequence can still differ: a key busy with an in-flight op is skipped).
# The server runs under `timeout` and the watcher with --duration, so nothing outlives a
# killed test. Exit 77 (skip) when a binary is missing.
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/integration/lib.sh
. "$here/lib.sh"

if [ $# -ne 3 ]; then
    echo "usage: soak.sh KVSTORE WATCHER SOAK_LOAD" >&2
    exit 2
fi
KV_BIN=$1 W_BIN=$2 LOAD_BIN=$3
for b in "$KV_BIN" "$W_BIN" "$LOAD_BIN"; do
    [ -x "$b" ] || h_skip "binary $b not found"
done

SECS=${SOAK_SECONDS:-60}
NW=${SOAK_WATCHERS:-1000}
CONNS=${SOAK_CONNS:-20}
NNS=${SOAK_NAMESPACES:-20}
NAMES=${SOAK_NAMES:-50}
SEED=${SOAK_SEED:-10}
RATE=${SOAK_RATE:-50}
COMPACT=${SOAK_COMPACT:-15}
scale=1
if grep -q __asan_init "$KV_BIN" 2>/dev/null; then
    # ASan keeps freed memory in a quarantine (256 MiB by default) that looks exactly like a
    # leak to an RSS sampler: shrink it so the bounds still mean something.
    scale=3
    export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=4"
fi
SERVER_ANON_MAX=$((${SOAK_SERVER_ANON_MAX:-64} * scale))
SERVER_RSS_MAX=$((${SOAK_SERVER_RSS_MAX:-128} * scale))
WATCHER_RSS_MAX=$((${SOAK_WATCHER_RSS_MAX:-96} * scale))
GROWTH_MAX=$((${SOAK_GROWTH_MAX:-2} * scale))

H_KEEP=${SOAK_KEEP:-0}
h_init soak
T=$H_TMP
failures=0
bad() {
    h_log "FAIL: $*"
    failures=$((failures + 1))
}

# ---- the server: port 0, the port is read from its first line ---------------------------------
mkdir -m 700 "$T/data"
# shellcheck disable=SC2086 # SOAK_SERVER_ARGS is a list of flags
timeout -k 2 $((SECS + 300)) "$KV_BIN" serve --listen 127.0.0.1:0 --data-dir "$T/data" \
    ${SOAK_SERVER_ARGS:-} </dev/null >"$T/kvstore.log" 2>&1 &
H_PID[kv]=$!
H_KIND[kv]=kvstore
H_LOG[kv]=$T/kvstore.log
EP=""
for ((i = 0; i < 200; i++)); do
    EP=$(sed -n 's/^kvstore: serving etcd v3 API on \(127\.0\.0\.1:[0-9]*\).*/\1/p' "$T/kvstore.log" 2>/dev/null)
    [ -n "$EP" ] && break
    h_alive kv || break
    sleep 0.05
done
if [ -z "$EP" ]; then
    h_log_tail kv
    h_log "kvstore did not start"
    exit 1
fi
# The server process itself is the child of `timeout` (whose pid H_PID holds).
KV_PID=$(awk '{print $1}' "/proc/${H_PID[kv]}/task/${H_PID[kv]}/children" 2>/dev/null)
KV_PID=${KV_PID:-${H_PID[kv]}}
h_log "kvstore at $EP (pid $KV_PID); $NW watchers over $CONNS connections, $NNS namespaces," \
    "$RATE writes/s for ${SECS}s"

# ---- memory sampler: one line a second --------------------------------------------------------
# t,server_rss_kb,server_anon_kb,watcher_rss_kb,watcher_anon_kb (0 while a process is absent)
mem_of() { # pid -> "rss anon" in kB
    awk '/^VmRSS:/ {r = $2} /^RssAnon:/ {a = $2} END {print (r ? r : 0) "," (a ? a : 0)}' \
        "/proc/$1/status" 2>/dev/null || echo "0,0"
}
sampler() { # server-pid watcher-pid-file
    local t0=$SECONDS wp=""
    echo "t,server_rss_kb,server_anon_kb,watcher_rss_kb,watcher_anon_kb"
    while :; do
        [ -z "$wp" ] && [ -s "$2" ] && wp=$(cat "$2")
        echo "$((SECONDS - t0)),$(mem_of "$1"),$([ -n "$wp" ] && mem_of "$wp" || echo 0,0)"
        sleep 1
    done
}
sampler "$KV_PID" "$T/watcher.pid" >"$T/rss.csv" &
H_PID[sampler]=$!

# ---- seed, then the fleet ---------------------------------------------------------------------
if ! "$LOAD_BIN" --endpoint "$EP" --namespaces "$NNS" --names "$NAMES" --seed-objects "$SEED" \
    --out "$T/seed.txt" >/dev/null; then
    bad "seeding failed: $(grep first_error "$T/seed.txt" 2>/dev/null)"
    exit 1
fi

scope=(--namespaces "$NNS")
[ "${SOAK_SCOPE:-namespace}" = all ] && scope=()
"$W_BIN" --endpoints "$EP" --count "$NW" --conns "$CONNS" "${scope[@]}" \
    --key-mode "${SOAK_KEY_MODE:-namespaced}" --on-miss relist --verify --verify-timeout 60s \
    --interval 1s --json "$T/watcher.json" --duration $((SECS + 240))s </dev/null >"$T/watcher.out" \
    2>"$T/watcher.err" &
H_PID[watcher]=$!
H_KIND[watcher]=watcher
H_LOG[watcher]=$T/watcher.err
echo "${H_PID[watcher]}" >"$T/watcher.pid"
deadline=$((SECONDS + 120))
until grep -q "^all $NW watchers synced" "$T/watcher.out" 2>/dev/null; do
    if ! h_alive watcher || ((SECONDS > deadline)); then
        tail -n 5 "$T/watcher.out" "$T/watcher.err" >&2
        h_log "the watchers did not sync"
        exit 1
    fi
    sleep 0.2
done
h_log "$(grep "^all $NW watchers synced" "$T/watcher.out")"
t_load=$(($(wc -l <"$T/rss.csv") - 1))

# ---- the load ---------------------------------------------------------------------------------
"$LOAD_BIN" --endpoint "$EP" --namespaces "$NNS" --names "$NAMES" --rate "$RATE" \
    --duration "$SECS" --compact-every "$COMPACT" --rng "${SOAK_RNG:-7}" --out "$T/load.txt" \
    >/dev/null
load_rc=$?
t_end=$(($(wc -l <"$T/rss.csv") - 1))
[ "$load_rc" = 0 ] || bad "load generator: exit $load_rc, $(grep -E '^(errors|model_divergent|first_error)' "$T/load.txt" | tr '\n' ' ')"

# Settle: two status lines after the load with no events (every watcher has drained its stream).
lines=$(wc -l <"$T/watcher.out")
deadline=$((SECONDS + 60))
while ((SECONDS < deadline)); do
    if (($(wc -l <"$T/watcher.out") >= lines + 2)) &&
        [ "$(tail -n 2 "$T/watcher.out" | grep -c ' events 0/s ')" = 2 ]; then
        break
    fi
    sleep 0.5
done
H_STOP_GRACE=120 h_stop watcher # SIGTERM: final verification, JSON, exit
[ "${H_EXIT[watcher]}" = 0 ] || bad "watcher exited with ${H_EXIT[watcher]}"
h_stop sampler
h_stop kv
[ "${H_EXIT[kv]}" = 0 ] || bad "kvstore exited with ${H_EXIT[kv]} (want a clean shutdown)"

# ---- verdicts ---------------------------------------------------------------------------------
if grep -E "Sanitizer|runtime error" "$T/kvstore.log" "$T/watcher.err" >&2; then
    bad "sanitizer reports (above)"
fi
lv() { sed -n "s/^$1 //p" "$T/load.txt" 2>/dev/null | head -n 1; }
J=$T/watcher.json
if [ ! -s "$J" ]; then
    tail -n 20 "$T/watcher.out" "$T/watcher.err" >&2
    bad "no watcher summary"
    exit 1
fi
fleet=$(grep '"fleet"' "$J")
verify=$(grep '"verify"' "$J")
totals=$(grep '"totals"' "$J")
num() { # json-fragment field -> first number after "field":
    printf '%s' "$1" | grep -o "\"$2\": [0-9]*" | head -n 1 | grep -o '[0-9]*$'
}

# Per watcher: prefix lists events, joined with soak_load's events per namespace.
sed -n 's/.*"prefix": "\([^"]*\)".*"lists": \([0-9]*\),.*"events": \([0-9]*\),.*/\1 \2 \3/p' "$J" \
    >"$T/per_watcher.txt"
read -r lost dup relisted off_watchers got want < <(awk -v P=/registry/pods/ '
    FNR == NR { if ($1 == "ns_events") want[$2] = $3; if ($1 == "writes") want[P] = $2; next }
    { w = want[$1] + 0; got += $3; want_all += w
      if ($2 != 1) relisted++
      if ($3 < w) { lost += w - $3; off++ } else if ($3 > w) { dup += $3 - w; off++ } }
    END { printf "%d %d %d %d %d %d\n", lost, dup, relisted, off, got, want_all }' \
    "$T/load.txt" "$T/per_watcher.txt")
n_rows=$(wc -l <"$T/per_watcher.txt")

[ "$n_rows" = "$NW" ] || bad "summary has $n_rows watcher rows, want $NW"
[ "$(num "$verify" verified)" = "$NW" ] || bad "verified $(num "$verify" verified) of $NW watchers"
for f in unverified divergent_watchers missing extra stale divergent; do
    [ "$(num "$verify" "$f")" = 0 ] || bad "final verification: $f = $(num "$verify" "$f")"
done
[ "$(num "$fleet" duplicates)" = 0 ] || bad "fleet duplicates = $(num "$fleet" duplicates)"
for f in misses miss compacted error; do
    [ "$(num "$totals" "$f")" = 0 ] || bad "watchers: $f = $(num "$totals" "$f")"
done
[ "$lost" = 0 ] || bad "$lost events lost"
[ "$dup" = 0 ] || bad "$dup events duplicated"
[ "$off_watchers" = 0 ] || bad "$off_watchers watchers applied the wrong number of events"
[ "$relisted" = 0 ] || bad "$relisted watchers listed more than once"
[ "$(lv model_divergent)" = 0 ] || bad "the server differs from the writer's model"
[ "${want:-0}" -gt 0 ] || bad "no events expected: did the load run?"

# Memory: peaks over the whole run, growth over the second half of the load (in MiB).
read -r s_rss s_anon w_rss s_growth w_growth < <(awk -F, -v a="$t_load" -v e="$t_end" '
    NR == 1 { next }
    { i = NR - 2; srss[i] = $2; sanon[i] = $3; wrss[i] = $4; n = i + 1
      if ($2 > ps) ps = $2; if ($3 > pa) pa = $3; if ($4 > pw) pw = $4 }
    function mean(arr, from, k,   j, s) { s = 0; for (j = from; j < from + k; j++) s += arr[j]; return s / k }
    END {
      mid = int((a + e) / 2); if (e - 10 < mid + 10) { gs = 0; gw = 0 }
      else { gs = mean(sanon, e - 10, 10) - mean(sanon, mid, 10); gw = mean(wrss, e - 10, 10) - mean(wrss, mid, 10) }
      printf "%d %d %d %.1f %.1f\n", ps / 1024, pa / 1024, pw / 1024, gs / 1024, gw / 1024 }' "$T/rss.csv")
((s_anon <= SERVER_ANON_MAX)) || bad "server RssAnon peak ${s_anon} MiB > ${SERVER_ANON_MAX} MiB"
((s_rss <= SERVER_RSS_MAX)) || bad "server VmRSS peak ${s_rss} MiB > ${SERVER_RSS_MAX} MiB"
((w_rss <= WATCHER_RSS_MAX)) || bad "watcher VmRSS peak ${w_rss} MiB > ${WATCHER_RSS_MAX} MiB"
awk -v g="$s_growth" -v m="$GROWTH_MAX" 'BEGIN { exit !(g <= m) }' ||
    bad "server RssAnon grew ${s_growth} MiB in the second half of the load (> ${GROWTH_MAX})"
awk -v g="$w_growth" -v m="$GROWTH_MAX" 'BEGIN { exit !(g <= m) }' ||
    bad "watcher VmRSS grew ${w_growth} MiB in the second half of the load (> ${GROWTH_MAX})"

h_log "soak: ${SECS}s, $NW watchers: writes $(lv writes) (creates $(lv creates), updates" \
    "$(lv updates), deletes $(lv deletes), guarded txns $(lv guarded), compactions" \
    "$(lv compactions)), write p50/p99/max $(lv latency_ms_p50)/$(lv latency_ms_p99)/$(lv latency_ms_max) ms," \
    "revisions $(lv first_revision)..$(lv last_revision), objects $(lv objects)"
h_log "soak: events applied $got of $want expected, lost $lost, duplicated $dup, fleet duplicates" \
    "$(num "$fleet" duplicates), rewatches $(num "$fleet" rewatches), relists 0+$relisted," \
    "verified $(num "$verify" verified)/$NW, divergent $(num "$verify" divergent)"
h_log "soak: server VmRSS peak ${s_rss} MiB (bound $SERVER_RSS_MAX), RssAnon peak ${s_anon} MiB" \
    "(bound $SERVER_ANON_MAX), growth ${s_growth} MiB; watcher VmRSS peak ${w_rss} MiB (bound" \
    "$WATCHER_RSS_MAX), growth ${w_growth} MiB (growth bound $GROWTH_MAX)"
if ((failures)); then
    h_log_tail kv 20
    tail -n 5 "$T/watcher.out" >&2
    h_log "soak: $failures failure(s)"
    exit 1
fi
h_log "soak: PASS"
