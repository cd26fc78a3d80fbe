#!/usr/bin/env bash
# etcdctl compatibility check: runs the same scripted etcdctl 3.4 session (compat_steps.sh)
# against two fresh servers and diffs the normalized output of every step.
#
#   etcdctl_compat.sh A B      A, B: etcd | etcd:/path/to/etcd | kvstore:/path/to/kvstore
#
# Exit 0 when every step matches, 1 when a step differs or a server misbehaves, 77 (ctest
# SKIP_RETURN_CODE) when etcd/etcdctl or a server binary is missing.
# A step's exit status must be 0 or 1 (etcdctl's server-error code) unless the step is called
# as `STEP_OK_EXITS="0 124" step ...`.
# Env: COMPAT_VERBOSE=1 lists passing steps too; H_KEEP=1 keeps the scratch dir (raw outputs
# in <dir>/out/{A,B}/NNN-step.{cmd,stdout,stderr,out}).
#
# Key decisions:
# - Both sessions run concurrently (one per server) and are compared afterwards; each step is
#   recorded as normalized stdout, then stderr, then the exit status.
# - Normalization removes only what legitimately differs between two servers (ids, raft
#   numbers, sizes, versions, ports, timings, etcdctl's random client ids, lease ids — hex in
#   etcdctl's text, decimal in JSON — and a lease's remaining seconds within 590..600).
#   Revisions are kept: both servers start at revision 1 and must agree on every one of them. Id-like fields are
#   only masked when nonzero, so a server that leaves them 0 (which Go's JSON then omits)
#   still shows as a difference.
# - One hung server cannot stall the run: every etcdctl call is bounded, a step slower than
#   COMPAT_SLOW_MS (default 4000) counts as a strike, and after two strikes (or when the
#   server process is gone) the remaining steps of that side are recorded as skipped.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"
# shellcheck source=compat_steps.sh
. "$here/compat_steps.sh"

if [ $# -ne 2 ]; then
    echo "usage: $0 SPEC_A SPEC_B   (SPEC: etcd | etcd:PATH | kvstore:PATH)" >&2
    exit 2
fi
SPEC[0]=$1
SPEC[1]=$2
SIDES=(A B)
COMPAT_SLOW_MS=${COMPAT_SLOW_MS:-4000}

h_require_etcdctl
h_require_spec "${SPEC[0]}"
h_require_spec "${SPEC[1]}"

# ---- normalization ------------------------------------------------------------------------

# The last expression adds a missing final newline (etcdctl -w fields ends without one).
compat_normalize() {
    # shellcheck disable=SC1003
    sed -E \
        -e 's/"(cluster_id|member_id|raft_term|leader|raftIndex|raftTerm|raftAppliedIndex|dbSize|dbSizeInUse)":[1-9][0-9]*/"\1":<N>/g' \
        -e 's/"version":"[^"]*"/"version":"<VERSION>"/g' \
        -e 's/^"(ClusterID|MemberID|RaftTerm|Leader|RaftIndex|RaftAppliedIndex|DBSize)" : [1-9][0-9]*$/"\1" : <N>/' \
        -e 's/^"Version" : "[^"]*"$/"Version" : "<VERSION>"/' \
        -e 's/127\.0\.0\.1:[0-9]+/<ENDPOINT>/g' \
        -e 's/"ts":"[^"]*",//g' \
        -e 's/"target":"[^"]*",//g' \
        -e 's/(is healthy: successfully committed proposal: took = )[^ ]+$/\1<T>/' \
        -e 's/(lease )[0-9a-f]{1,16}( granted| revoked| keepalived| already expired)/\1<LEASE>\2/' \
        -e 's/^[0-9a-f]{13,16}$/<LEASE>/' \
        -e 's/"(lease|ID)":[1-9][0-9]*/"\1":<LEASE>/g' \
        -e 's/remaining\((59[0-9]|600)s\)/remaining(<~600>s)/' \
        -e 's/^(<ENDPOINT>), [1-9a-f][0-9a-f]*, [^,]+, [^,]+, (true|false), (true|false), [1-9][0-9]*, [1-9][0-9]*, [1-9][0-9]*, /\1, <MEMBER>, <VERSION>, <DBSIZE>, \2, \3, <TERM>, <INDEX>, <APPLIED>, /' \
        -e '$a\'
}

# ---- step primitives (used by compat_steps.sh) ----------------------------------------------

ctl() {
    timeout -k 1 8 "$H_ETCDCTL_BIN" --endpoints="$CUR_EP" --dial-timeout=2s \
        --command-timeout=5s "$@"
}
ctl_in() { # input args...: INPUT exactly as given on stdin (e.g. a value for `put KEY`)
    local input=$1
    shift
    printf '%s' "$input" | ctl "$@"
}
# ctl_txn INPUT [flags]: `txn` with INPUT in etcdctl's syntax (compares, blank line, success
# ops, blank line, failure ops). The two blank lines appended end the failure section: at EOF
# without them etcdctl 3.4 may fail with "Error: EOF".
ctl_txn() {
    local input=$1
    shift
    printf '%s\n\n\n' "$input" | ctl txn "$@"
}
# ctl_for SECONDS ARGS: etcdctl that runs until it exits or SECONDS pass (then SIGINT, exit 0):
# for streaming commands such as `watch`.
ctl_for() {
    local secs=$1 rc
    shift
    timeout -s INT -k 2 "$secs" "$H_ETCDCTL_BIN" --endpoints="$CUR_EP" --dial-timeout=2s "$@"
    rc=$?
    [ "$rc" = 124 ] && rc=0
    return "$rc"
}
# ctl_sum ARGS: the checksum of the normalized output, for outputs too big to show.
ctl_sum() { ctl "$@" | compat_normalize | cksum; }

step() { # name cmd...
    local name=$1 base rc t_start elapsed_ms
    shift
    STEP_SEQ=$((STEP_SEQ + 1))
    printf -v base '%s/%03d-%s' "$SIDE_DIR" "$STEP_SEQ" "$name"
    LAST_STEP=$base
    printf '%s\n' "$*" | head -c 400 >"$base.cmd"
    if [ -z "$SIDE_BROKEN" ] && ! kill -0 "$CUR_PID" 2>/dev/null; then
        SIDE_BROKEN="server process exited"
    fi
    if [ -n "$SIDE_BROKEN" ]; then
        echo "SKIPPED: $SIDE_BROKEN" >"$base.out"
        return 0
    fi
    t_start=${EPOCHREALTIME/./}
    "$@" >"$base.stdout" 2>"$base.stderr" </dev/null
    rc=$?
    elapsed_ms=$(((${EPOCHREALTIME/./} - t_start) / 1000))
    # etcdctl exits 1 for server errors; anything else (3: invalid input, 128: bad args,
    # 2: connection) means the step itself is broken, even if both sides agree.
    case " ${STEP_OK_EXITS:-0 1} " in
    *" $rc "*) ;;
    *)
        echo "unexpected exit status $rc (allowed: ${STEP_OK_EXITS:-0 1})" >>"$base.expect"
        ;;
    esac
    # A hung server makes etcdctl wait for its command timeout (rc 1 after ~5 s) or be killed
    # (124/137): either way the step is slow. Two slow steps and the side gives up; one slow
    # step alone is not a failure (the machine may just be busy).
    if [ "$elapsed_ms" -ge "$COMPAT_SLOW_MS" ]; then
        SIDE_SLOW=$((SIDE_SLOW + 1))
        [ "$SIDE_SLOW" -ge 2 ] &&
            SIDE_BROKEN="server unresponsive (2 steps took over ${COMPAT_SLOW_MS} ms)"
    fi
    {
        compat_normalize <"$base.stdout"
        if [ -s "$base.stderr" ]; then
            echo "--- stderr"
            compat_normalize <"$base.stderr"
        fi
        echo "--- exit $rc"
    } >"$base.out"
}

expect() { # fixed string the previous step's normalized output must contain
    [ -n "$SIDE_BROKEN" ] && return 0
    grep -qF -- "$1" "$LAST_STEP.out" ||
        printf 'expected the output to contain: %s\n' "$1" >>"$LAST_STEP.expect"
}

run_side() { # index
    trap - EXIT INT TERM
    local side=${SIDES[$1]} group
    SIDE_DIR="$H_TMP/out/$side"
    CUR_EP=${H_EP[$side]}
    CUR_PID=${H_PID[$side]}
    STEP_SEQ=0 SIDE_SLOW=0 SIDE_BROKEN="" LAST_STEP=""
    mkdir -p "$SIDE_DIR"
    for group in "${COMPAT_GROUPS[@]}"; do "steps_$group"; done
}

# ---- report -------------------------------------------------------------------------------

show() { # label file: at most 60 lines, indented
    local n
    n=$(wc -l <"$2")
    echo "  ---- $1"
    head -n 60 "$2" | cut -c1-300 | sed 's/^/  | /'
    [ "$n" -gt 60 ] && echo "  | ... ($n lines)"
}

compare() {
    local passed=0 failed=0 a b f name skipped
    FIRST_FAILED=""
    for a in "$H_TMP/out/A"/*.out; do
        f=${a##*/}
        name=${f%.out}
        b="$H_TMP/out/B/$f"
        if [ -f "$b" ] && cmp -s "$a" "$b" &&
            [ ! -e "${a%.out}.expect" ] && [ ! -e "${b%.out}.expect" ]; then
            passed=$((passed + 1))
            [ "${COMPAT_VERBOSE:-0}" = 1 ] && echo "PASS $name"
            continue
        fi
        failed=$((failed + 1))
        [ -n "$FIRST_FAILED" ] || FIRST_FAILED=$name
        if grep -q '^SKIPPED: ' "$a" "$b" 2>/dev/null; then
            skipped=$(grep -l '^SKIPPED: ' "$a" "$b" | sed -E 's|.*/out/(.)/.*|\1|' | tr '\n' ' ')
            echo "FAIL $name: ${skipped}$(grep -h -m1 '^SKIPPED: ' "$a" "$b" | head -n 1)"
            continue
        fi
        echo "FAIL $name"
        echo "  \$ etcdctl $(head -c 300 "${a%.out}.cmd" | sed 's/^ctl //')"
        [ -e "${a%.out}.expect" ] && sed 's/^/  A: /' "${a%.out}.expect"
        [ -e "${b%.out}.expect" ] && sed 's/^/  B: /' "${b%.out}.expect"
        if [ ! -f "$b" ]; then
            echo "  (no output recorded for B)"
            continue
        fi
        if ! cmp -s "$a" "$b"; then
            show "A: ${SPEC[0]}" "$a"
            show "B: ${SPEC[1]}" "$b"
            echo "  ---- diff A B"
            diff -u "$a" "$b" | tail -n +3 | head -n 40 | cut -c1-300 | sed 's/^/  /'
        fi
    done
    COMPARE_PASSED=$passed COMPARE_FAILED=$failed
}

# ---- main ---------------------------------------------------------------------------------

h_init relist-compat
t0=$SECONDS
for i in 0 1; do
    h_start_spec "${SIDES[$i]}" "${SPEC[$i]}" || {
        echo "FAIL: could not start ${SIDES[$i]} (${SPEC[$i]})"
        exit 1
    }
done

run_side 0 &
pid_a=$!
run_side 1 &
pid_b=$!
wait "$pid_a" "$pid_b"

problems=0
for i in 0 1; do
    side=${SIDES[$i]}
    if ! h_alive "$side"; then
        echo "FAIL: server $side (${SPEC[$i]}) exited during the run"
        problems=$((problems + 1))
    fi
    h_stop "$side"
    # kvstore must shut down cleanly on SIGTERM (0, or 143 when it leaves SIGTERM default) and
    # with a clean sanitizer report.
    if [ "${H_KIND[$side]}" = kvstore ]; then
        case ${H_EXIT[$side]} in
        0 | 143) ;;
        *)
            echo "FAIL: server $side (${SPEC[$i]}) exit status ${H_EXIT[$side]} after SIGTERM"
            problems=$((problems + 1))
            ;;
        esac
        if grep -qE 'AddressSanitizer|LeakSanitizer|runtime error:' "${H_LOG[$side]}"; then
            echo "FAIL: server $side (${SPEC[$i]}) log has sanitizer reports"
            problems=$((problems + 1))
        fi
    fi
done

compare
if [ "$COMPARE_FAILED" -gt 0 ] || [ "$problems" -gt 0 ]; then
    for side in "${SIDES[@]}"; do h_log_tail "$side" 30 2>&1; done
fi
[ -n "$FIRST_FAILED" ] &&
    echo "first failing step: $FIRST_FAILED (later failures may only inherit its state)"
echo "etcdctl_compat: $COMPARE_PASSED passed, $COMPARE_FAILED failed" \
    "(A=${SPEC[0]} B=${SPEC[1]}, $((SECONDS - t0)) s)"
[ "$COMPARE_FAILED" -eq 0 ] && [ "$problems" -eq 0 ] && [ "$COMPARE_PASSED" -gt 0 ]
