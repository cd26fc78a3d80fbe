# shellcheck shell=bash
# Helpers for the scenario runner's integration tests (scenario_*.sh), on top of lib.sh:
# read the runner's timeline.csv and summary.json without jq (awk and sed only), compare
# numbers, and probe whether a kvstore serves Watch at all.
#
# Key decisions: the per-phase figures come from timeline.csv (one row per mode per second,
# columns found by header name, so new columns never break the tests); end-of-run figures
# (divergent, collided) from summary.json, where each mode's object is one line.

# sc_csv FILE MODE PHASE COLUMN AGG -> the column over the mode's rows of that phase
# ("*" = every phase); AGG: max | mean (dt-weighted) | min | sum (value * dt) | n. "nan" if
# there is no data.
sc_csv() {
    awk -F, -v m="$2" -v ph="$3" -v col="$4" -v agg="$5" '
        NR == 1 { for (i = 1; i <= NF; i++) if ($i == col) c = i; next }
        c && $1 == m && (ph == "*" || $4 == ph) && $c != "" {
            n++; s += $c * $3; d += $3
            if (n == 1 || $c + 0 > mx) mx = $c + 0
            if (n == 1 || $c + 0 < mn) mn = $c + 0
        }
        END {
            if (!c || !n) { print "nan"; exit }
            if (agg == "max") print mx; else if (agg == "min") print mn
            else if (agg == "mean") print (d > 0 ? s / d : 0)
            else if (agg == "sum") print s; else print n
        }' "$1"
}

# sc_json FILE MODE KEY -> the first "KEY": value of the mode's object in summary.json.
sc_json() {
    grep -E "^ *\"$2\": \{" "$1" | head -1 | sed -E "s/^ *\"$2\": \{//" |
        grep -oE "\"$3\": [^,}]*" | head -1 | sed -E 's/.*: //'
}

# sc_check DESCRIPTION A OP B: awk comparison of two numbers; logs and counts failures.
SC_FAILS=0
sc_check() {
    local what=$1 a=$2 op=$3 b=$4
    if awk -v a="$a" -v b="$b" -v op="$op" 'BEGIN {
            if (a == "nan" || a == "null" || a == "" || b == "nan" || b == "") exit 1
            if (op == ">=") exit !(a + 0 >= b + 0); if (op == ">") exit !(a + 0 > b + 0)
            if (op == "<=") exit !(a + 0 <= b + 0); if (op == "<") exit !(a + 0 < b + 0)
            if (op == "==") exit !(a + 0 == b + 0); exit 1 }'; then
        h_log "ok: $what: $a $op $b"
    else
        h_log "FAIL: $what: $a $op $b does not hold"
        SC_FAILS=$((SC_FAILS + 1))
    fi
}

# sc_mul A K -> A * K
sc_mul() { awk -v a="$1" -v k="$2" 'BEGIN { print a * k }'; }

# sc_require_watch KVSTORE_BIN: fails unless that kvstore starts and streams watch events.
sc_require_watch() {
    h_require_etcdctl
    h_start_kvstore PROBE "$1" || { h_log "FAIL: kvstore did not start"; exit 1; }
    local ep=${H_EP[PROBE]}
    (timeout 3 "$H_ETCDCTL_BIN" --endpoints="$ep" watch /probe-key >"$H_TMP/probe.out" 2>&1 &)
    sleep 0.5
    timeout 5 "$H_ETCDCTL_BIN" --endpoints="$ep" put /probe-key x >/dev/null 2>&1
    sleep 0.5
    h_stop PROBE
    grep -q '^PUT' "$H_TMP/probe.out" ||
        { h_log "FAIL: kvstore streamed no watch event"; exit 1; }
}

# sc_run NAME ARGS...: runs the scenario binary with a hard time limit; output in
# $H_TMP/NAME.out (stdout) and NAME.err; sets SC_RC.
sc_run() {
    local name=$1
    shift
    timeout -k 5 "${SC_LIMIT:-240}" "$SCN" "$@" >"$H_TMP/$name.out" 2>"$H_TMP/$name.err"
    SC_RC=$?
    h_log "scenario $* -> exit $SC_RC"
    # a sanitizer build reports memory errors and UB here (ASan's exit status 1 alone would
    # look like a failed expectation)
    if grep -qE "ERROR: (Address|Leak)Sanitizer|runtime error:" "$H_TMP/$name.err"; then
        h_log "FAIL: sanitizer report in scenario's stderr:"
        grep -E -A20 "ERROR: (Address|Leak)Sanitizer|runtime error:" "$H_TMP/$name.err" | head -40 >&2
        SC_FAILS=$((SC_FAILS + 1))
    fi
}

sc_show() { # NAME: the run's table and the tail of its stderr, for failure reports
    sed 's/^/    | /' "$H_TMP/$1.out" >&2
    tail -n 15 "$H_TMP/$1.err" | sed 's/^/    ! /' >&2
}
