#!/usr/bin/env bash
# The `scenario` binary end to end: short variants of the shipped scripts through the real
# binary, with checks of their figures from timeline.csv / summary.json.
#
#   scenario_runs.sh CASE SCENARIO_BIN KVSTORE_BIN
#   CASE: relist-storm   namespaced vs mismatch on the embedded kvstore: the mismatch LIST rate
#                        is >= 100 x namespaced (and >= 100/s), no relist in namespaced mode
#         name-collision name keys report divergence and collisions, namespaced and uid none
#         restart-herd   the restart shows a reconnect/relist burst; jitter lowers its peak
#         compaction-410 | calm-storm-recovery | backoff-vs-none
#                        the short variant of the script: all its expectations hold
#         network-blip   its expectations, and re-watches = watchers cut, one LIST per relist
#         etcd           relist-storm against a real etcd 3.4 via --endpoints (storms there too)
#         cli            --help, list, usage and script errors (exit 2), a failing expectation
#                        (exit 1, measured vs expected), SIGINT (exit 130, partial report,
#                        server stopped, temp dir removed)
#
# Exit 0 pass, 1 fail, 77 skip (etcd/etcdctl/binaries missing, or kvstore without Watch:
# probed with a watch create). Every run is bounded (timeout) and binds 127.0.0.1 only.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"
# shellcheck source=scenario_lib.sh
. "$here/scenario_lib.sh"

if [ $# -ne 3 ]; then
    echo "usage: $0 CASE SCENARIO_BIN KVSTORE_BIN" >&2
    exit 2
fi
CASE=$1
SCN=$2
KV=$3
[ -x "$SCN" ] || h_skip "scenario binary $SCN not found"
[ -x "$KV" ] || h_skip "kvstore binary $KV not found"
h_init "scenario-$CASE"
export TMPDIR="$H_TMP/tmp" # the runner's temp data dirs go here: checked to be gone after
mkdir -p "$TMPDIR"
SCRIPTS=$(cd "$here/../../scenarios" && pwd)
export RELIST_SCENARIOS=$SCRIPTS

no_leftovers() {
    local left
    left=$(find "$TMPDIR" -mindepth 1 -maxdepth 1 -name 'relistlab-scn.*' | wc -l)
    sc_check "temp data dirs removed" "$left" == 0
}

# The HTML report as a person sees it: headless Chromium (Debian's package) renders the page,
# takes a screenshot (kept beside the report) and dumps the DOM after layout, which must hold
# the summary table and the SVG charts with a line per mode.
#
# Chromium runs with its own HOME, profile and temp dir under the scratch dir, without crash
# reporter or /dev/shm (CI sandboxes differ there), and gets up to three tries: a browser that
# dies at start-up says nothing about the report. If it cannot render even a one-line probe
# page, the machine cannot run a browser: that is logged with chromium's own last words and
# the same checks run on the HTML as written, so the report is still checked.
chrome_run() { # out_flag_and_target... ; stdout -> caller; log appended to $H_TMP/chrome.log
    local chrome=$1
    shift
    local home=$H_TMP/chrome-home
    mkdir -p "$home/tmp"
    HOME=$home XDG_CONFIG_HOME=$home/.config XDG_CACHE_HOME=$home/.cache TMPDIR=$home/tmp \
        timeout 60 "$chrome" --headless --no-sandbox --disable-gpu --disable-dev-shm-usage \
        --disable-crash-reporter --disable-breakpad --disable-quic --no-first-run \
        --disable-background-networking --disable-component-update --disable-sync \
        --user-data-dir="$home/profile" --window-size=1400,2400 "$@" 2>>"$H_TMP/chrome.log"
}

chrome_try() { # tries chrome_run up to 3 times until the check command succeeds
    local check=$1 i
    shift
    for i in 1 2 3; do
        "$@" && eval "$check" && return 0
        h_log "note: chromium try $i failed; last log lines:"
        grep -v -e dbus -e 'unexpected operator' "$H_TMP/chrome.log" | tail -n 5 >&2
        sleep 1
    done
    return 1
}

report_in_chromium() {
    local html=$1 dir chrome png dom probe
    dir=$(dirname "$html")
    png=$dir/report.png
    dom=$dir/report.dom.html
    chrome=$(command -v chromium || command -v chromium-browser || true)
    probe=$H_TMP/probe.html
    printf '<html><body><p id=probe>probe</p></body></html>\n' >"$probe"
    if [ -z "$chrome" ]; then
        h_log "note: chromium not installed: checking report.html as written"
        cp "$html" "$dom"
    elif ! chrome_try "grep -q 'id=\"probe\"' '$H_TMP/probe.dom'" \
        eval "chrome_run '$chrome' --dump-dom 'file://$probe' >'$H_TMP/probe.dom'"; then
        h_log "note: chromium cannot render a probe page on this machine:" \
            "checking report.html as written (see $H_TMP/chrome.log)"
        cp "$html" "$dom"
    else
        chrome_try "[ -s '$png' ]" chrome_run "$chrome" --screenshot="$png" "file://$html" >/dev/null
        sc_check "chromium screenshot of report.html" "$([ -s "$png" ] && echo 1 || echo 0)" == 1
        chrome_try "grep -q '<svg' '$dom'" \
            eval "chrome_run '$chrome' --dump-dom 'file://$html' >'$dom'"
    fi
    sc_check "rendered page has the summary table" "$(grep -c '<table' "$dom")" ">=" 1
    sc_check "rendered page has SVG charts" "$(grep -c '<svg' "$dom")" ">=" 3
    sc_check "charts draw both modes" "$(grep -c 'mismatch' "$dom")" ">=" 2
}

case $CASE in
relist-storm)
    sc_require_watch "$KV"
    out=$H_TMP/rs
    sc_run rs compare "$SCRIPTS/relist-storm.scn" --modes namespaced,mismatch --short \
        --kvstore-bin "$KV" --out "$out"
    sc_check "exit status (every expectation of the script held)" "$SC_RC" == 0
    csv=$out/timeline.csv
    calm=$(sc_csv "$csv" namespaced churn list_rate mean)
    storm=$(sc_csv "$csv" mismatch churn list_rate mean)
    sc_check "mismatch LIST/s in churn" "$storm" ">=" 100
    sc_check "mismatch LIST/s >= 100 x namespaced" "$storm" ">=" "$(sc_mul "$calm" 100)"
    sc_check "namespaced relists after the initial sync" \
        "$(sc_csv "$csv" namespaced '*' relist_rate max)" == 0
    sc_check "namespaced requests/s in churn (about a dozen)" \
        "$(sc_csv "$csv" namespaced churn request_rate mean)" "<" 30
    sc_check "mismatch relists/s (misses)" "$(sc_csv "$csv" mismatch churn relist_miss_rate mean)" ">" 50
    sc_check "namespaced divergent" "$(sc_json "$out/summary.json" namespaced divergent)" == 0
    for f in report.html report.md timeline.csv summary.json; do
        sc_check "$f written" "$([ -s "$out/$f" ] && echo 1 || echo 0)" == 1
    done
    grep -q "LIST rate mean" "$H_TMP/rs.out" || sc_check "terminal table printed" 0 == 1
    report_in_chromium "$out/report.html"
    no_leftovers
    ;;
name-collision)
    sc_require_watch "$KV"
    out=$H_TMP/nc
    sc_run nc run "$SCRIPTS/name-collision.scn" --short --kvstore-bin "$KV" --out "$out"
    [ "$SC_RC" = 0 ] || h_log "note: the script's own expectations: exit $SC_RC (see below)"
    sc_check "exit status is 0 or 1 (ran to the end)" "$SC_RC" "<=" 1
    js=$out/summary.json
    sc_check "name mode: divergent" "$(sc_json "$js" name divergent)" ">" 0
    sc_check "name mode: collided" "$(sc_json "$js" name collided)" ">" 0
    sc_check "namespaced mode: divergent" "$(sc_json "$js" namespaced divergent)" == 0
    sc_check "uid mode: divergent" "$(sc_json "$js" uid divergent)" == 0
    sc_check "no storm in name mode (LIST/s)" "$(sc_csv "$out/timeline.csv" name churn list_rate mean)" "<" 1
    grep -q "divergent" "$H_TMP/nc.out" || sc_check "table shows divergence" 0 == 1
    no_leftovers
    ;;
restart-herd)
    sc_require_watch "$KV"
    out=$H_TMP/rh
    # shorter than the script's short variant, so the test stays well under a minute
    sc_run rh run "$SCRIPTS/restart-herd.scn" --short --kvstore-bin "$KV" --out "$out" \
        --set phase.before=3s --set phase.herd=9s --set phase.after=4s
    sc_check "exit status is 0 or 1 (ran to the end)" "$SC_RC" "<=" 1
    csv=$out/timeline.csv
    # the restart: samples with no server (NaN), then the reconnect burst
    nj_peak=$(sc_csv "$csv" nojitter herd watch_rate max)
    j_peak=$(sc_csv "$csv" jitter herd watch_rate max)
    sc_check "nojitter: watch re-creates peak (the herd)" "$nj_peak" ">=" 50
    sc_check "nojitter: request peak > 3 x the before-phase level" \
        "$(sc_csv "$csv" nojitter herd request_rate max)" ">" \
        "$(sc_mul "$(sc_csv "$csv" nojitter before request_rate mean)" 3)"
    sc_check "relists after the restart (compacted history)" \
        "$(sc_csv "$csv" nojitter herd relist_rate max)" ">" 0
    sc_check "jitter spreads the herd: lower watch peak" "$j_peak" "<" "$nj_peak"
    sc_check "server was down for some samples" \
        "$(awk -F, '$1 == "nojitter" && $5 == ""' "$csv" | wc -l)" ">=" 1
    sc_check "nojitter divergent" "$(sc_json "$out/summary.json" nojitter divergent)" == 0
    no_leftovers
    ;;
etcd)
    h_require_spec etcd
    h_require_etcdctl
    out=$H_TMP/etcd
    # a busy machine can have every port lib.sh picks taken by outgoing connections: then let
    # the runner start the etcd itself (`server etcd`: ports from bind(0)), still a real etcd
    if h_start_etcd E || h_start_etcd E; then
        sc_run etcd compare "$SCRIPTS/relist-storm.scn" --modes namespaced,mismatch --short \
            --endpoints "${H_EP[E]}" --out "$out"
    else
        h_log "etcd did not start here: running with --set server=etcd instead"
        sc_run etcd compare "$SCRIPTS/relist-storm.scn" --modes namespaced,mismatch --short \
            --set server=etcd --out "$out"
    fi
    sc_check "exit status (every expectation of the script held)" "$SC_RC" == 0
    csv=$out/timeline.csv
    calm=$(sc_csv "$csv" namespaced churn list_rate mean)
    storm=$(sc_csv "$csv" mismatch churn list_rate mean)
    sc_check "etcd: mismatch LIST/s" "$storm" ">=" 100
    sc_check "etcd: mismatch LIST/s >= 100 x namespaced" "$storm" ">=" "$(sc_mul "$calm" 100)"
    sc_check "etcd: namespaced relists" "$(sc_csv "$csv" namespaced '*' relist_rate max)" == 0
    sc_check "etcd: LIST latency measured (extensive metrics or not: any number is fine)" \
        "$(sc_csv "$csv" mismatch churn put_p50_ms n)" ">" 0
    if [ -n "${H_PID[E]:-}" ]; then
        sc_check "etcd still serving after the runs" "$(h_alive E && echo 1 || echo 0)" == 1
    fi
    ;;
cli)
    sc_run help --help
    sc_check "--help exits 0" "$SC_RC" == 0
    grep -q "scenario compare" "$H_TMP/help.out" || sc_check "--help teaches compare" 0 == 1
    sc_run list list
    sc_check "list exits 0" "$SC_RC" == 0
    grep -q "relist-storm" "$H_TMP/list.out" || sc_check "list names relist-storm" 0 == 1
    sc_run bad1 run "$SCRIPTS/relist-storm.scn" --bogus
    sc_check "unknown option exits 2" "$SC_RC" == 2
    sc_run bad2 compare "$SCRIPTS/relist-storm.scn"
    sc_check "compare without --modes exits 2" "$SC_RC" == 2
    printf 'scenario broken\nwatchers cnt=3\nphase p 1s\n' >"$H_TMP/broken.scn"
    sc_run bad3 run "$H_TMP/broken.scn" --kvstore-bin "$KV"
    sc_check "script error exits 2" "$SC_RC" == 2
    grep -q "broken.scn:2:" "$H_TMP/bad3.err" || sc_check "script error names file:line" 0 == 1
    sc_run bad4 run "$SCRIPTS/relist-storm.scn" --set watchers.nope=1 --kvstore-bin "$KV"
    sc_check "bad --set exits 2" "$SC_RC" == 2
    sc_require_watch "$KV"
    cat >"$H_TMP/fail.scn" <<'SCN'
scenario must-fail "an expectation that cannot hold"
server embedded
seed pods namespaces=2 per-namespace=5 value-size=128
watchers count=4 prefix=namespace key-mode=namespaced
phase calm 2s update=2/s
expect phase=calm list_rate.mean > 1000
expect phase=calm write_rate.mean > 0
SCN
    sc_run fail run "$H_TMP/fail.scn" --kvstore-bin "$KV"
    sc_check "failing expectation exits 1" "$SC_RC" == 1
    grep -q "FAIL .*list_rate.mean > 1000.*expected > 1000" "$H_TMP/fail.err" ||
        { sc_check "failure printed with measured vs expected" 0 == 1; sc_show fail; }
    grep -q "PASS .*write_rate.mean > 0" "$H_TMP/fail.out" ||
        { sc_check "the holding expectation passes" 0 == 1; sc_show fail; }
    # SIGINT mid-run: partial table, exit 130, server stopped, temp dir removed
    sed -e 's/phase calm 2s/phase calm 60s/' "$H_TMP/fail.scn" >"$H_TMP/long.scn"
    timeout -k 5 40 "$SCN" run "$H_TMP/long.scn" --kvstore-bin "$KV" --out "$H_TMP/int" \
        >"$H_TMP/int.out" 2>"$H_TMP/int.err" &
    pid=$!
    for _ in $(seq 1 100); do grep -q "calm" "$H_TMP/int.err" && break; sleep 0.1; done
    sleep 2
    kill -INT "$pid"
    wait "$pid"
    rc=$?
    sc_check "SIGINT exits 130" "$rc" == 130
    grep -q "interrupted" "$H_TMP/int.out" || { sc_check "note says interrupted" 0 == 1; sc_show int; }
    sc_check "partial timeline written" "$(sc_csv "$H_TMP/int/timeline.csv" run '*' write_rate n)" ">=" 1
    no_leftovers
    ;;
compaction-410 | calm-storm-recovery | backoff-vs-none)
    # The rest of the shipped library: the short variant runs every mode of the script and
    # its own expectations must all hold (exit 0), with the four reports written.
    sc_require_watch "$KV"
    out=$H_TMP/lib
    sc_run lib run "$SCRIPTS/$CASE.scn" --short --kvstore-bin "$KV" --out "$out"
    sc_check "exit status (every expectation of $CASE held)" "$SC_RC" == 0
    [ "$SC_RC" = 0 ] || sc_show lib
    sc_check "summary.json written" "$([ -s "$out/summary.json" ] && echo 1 || echo 0)" == 1
    no_leftovers
    ;;
network-blip)
    # drop-connections on a live server: the script's own expectations, plus the accounting
    # they cannot state: with history intact every watcher the cuts took re-watched exactly
    # once (watch creates = watchers cut, from the runner's log) and nothing was listed; under
    # compaction each relist is one LIST and no cut watcher relists twice.
    sc_require_watch "$KV"
    out=$H_TMP/nb
    sc_run nb run "$SCRIPTS/network-blip.scn" --short --kvstore-bin "$KV" --out "$out" --verbose
    sc_check "exit status (every expectation of network-blip held)" "$SC_RC" == 0
    csv=$out/timeline.csv
    # [none] drop lines in order: intact half, intact all, compacted half, compacted all
    mapfile -t cut < <(grep -E '^\[none\] t=[0-9.]+s drop-connections: ' "$H_TMP/nb.err" |
        sed -E 's/.*\(([0-9]+) watchers.*/\1/')
    sc_check "none: four cuts logged" "${#cut[@]}" == 4
    intact_cut=$((${cut[0]:-0} + ${cut[1]:-0}))
    comp_cut=$((${cut[2]:-0} + ${cut[3]:-0}))
    rewatch=$(sc_csv "$csv" none intact watch_rate sum)
    sc_check "none: intact re-watches >= 0.95 x watchers cut ($intact_cut)" \
        "$rewatch" ">=" "$(sc_mul "$intact_cut" 0.95)"
    sc_check "none: intact re-watches <= 1.05 x watchers cut ($intact_cut)" \
        "$rewatch" "<=" "$(sc_mul "$intact_cut" 1.05)"
    sc_check "none: intact LISTs" "$(sc_csv "$csv" none intact list_rate sum)" == 0
    relists=$(sc_csv "$csv" none compacted relist_compacted_rate sum)
    sc_check "none: compacted relists > 0" "$relists" ">" 0
    sc_check "none: compacted relists <= watchers cut ($comp_cut)" "$relists" "<=" "$comp_cut"
    sc_check "none: one LIST per relist (lists - relists, compacted)" \
        "$(awk -v a="$(sc_csv "$csv" none compacted list_rate sum)" -v b="$relists" \
            'BEGIN { d = a - b; print (d < 0 ? -d : d) }')" "<" 1
    sc_check "none: the blip is a request spike (> 3 x the warmup level)" \
        "$(sc_csv "$csv" none intact request_rate max)" ">" \
        "$(sc_mul "$(sc_csv "$csv" none warmup request_rate mean)" 3)"
    sc_check "client-go: lower request peak than none in the blips" \
        "$(sc_csv "$csv" client-go '*' request_rate max)" "<" \
        "$(sc_csv "$csv" none '*' request_rate max)"
    sc_check "client-go: no relist for a miss" \
        "$(sc_csv "$csv" client-go '*' relist_miss_rate max)" == 0
    for m in none client-go; do
        sc_check "$m divergent" "$(sc_json "$out/summary.json" "$m" divergent)" == 0
    done
    sc_check "report.html draws both modes" "$(grep -c 'client-go' "$out/report.html")" ">=" 2
    no_leftovers
    ;;
*)
    h_log "unknown case '$CASE'"
    exit 2
    ;;
esac

if [ "$SC_FAILS" != 0 ]; then
    h_log "$SC_FAILS check(s) failed; the runs' output:"
    for f in "$H_TMP"/*.out; do
        [ -f "$f" ] && [ "$(basename "$f")" != probe.out ] && sc_show "$(basename "$f" .out)"
    done
    exit 1
fi
h_log "scenario $CASE: all checks passed"
exit 0
