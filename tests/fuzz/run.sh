#!/usr/bin/env bash
# run.sh — short libFuzzer runs of every target in tests/fuzz (the test command's fuzz stage).
#   tests/fuzz/run.sh BUILD_DIR [TOTAL_SECONDS]
# First replays tests/fuzz/regressions/<target>/* (inputs that once crashed: they must pass),
# then fuzzes each target for its share of TOTAL_SECONDS (default 60) starting from
# corpus/<target>/. New corpus entries go to a scratch dir (the committed corpus is not
# touched); a crash leaves its reproducer in $FUZZ_ARTIFACTS (default BUILD_DIR/fuzz-artifacts)
# and fails the script. One process per target, no -jobs/-workers.
# Longer runs: see tests/fuzz/README.md.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${1:?usage: run.sh BUILD_DIR [TOTAL_SECONDS]}
total=${2:-60}
bin="$build/tests/fuzz"
artifacts=${FUZZ_ARTIFACTS:-$build/fuzz-artifacts}
mkdir -p "$artifacts"

# target:weight — the network-backed targets run slower per input, so they get more time.
targets=(fuzz_grpc_server:3 fuzz_kv_request:2 fuzz_watch_request:2 fuzz_http1:2 fuzz_scn_parse:2
         fuzz_labobj:1 fuzz_wal_replay:2)
sum=0
for t in "${targets[@]}"; do sum=$((sum + ${t#*:})); done

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
scratch=$(mktemp -d "${TMPDIR:-/tmp}/relist-fuzz-XXXXXX")
trap 'rm -rf "$scratch"' EXIT

fail=0
for t in "${targets[@]}"; do
    name=${t%%:*}
    secs=$(( total * ${t#*:} / sum ))
    [ "$secs" -ge 1 ] || secs=1
    exe="$bin/$name"
    if [ ! -x "$exe" ]; then echo "fuzz: $name not built" >&2; fail=1; continue; fi
    log="$scratch/$name.log"
    reg="$here/regressions/$name"
    if [ -d "$reg" ] && [ -n "$(ls -A "$reg" 2>/dev/null)" ]; then
        if ! "$exe" -runs=0 "$reg" >"$log" 2>&1; then
            echo "fuzz: $name FAILED on a regression input (tests/fuzz/regressions/$name):" >&2
            tail -40 "$log" >&2
            fail=1
            continue
        fi
    fi
    work="$scratch/$name.corpus"
    mkdir -p "$work"
    if "$exe" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=8192 \
        -artifact_prefix="$artifacts/$name-" -print_final_stats=1 \
        "$work" "$here/corpus/$name" >"$log" 2>&1; then
        runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
        speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
        cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1)
        echo "fuzz: $name ok: ${secs}s, ${runs:-?} runs, ${speed:-?} exec/s, ${cov:-cov: ?}"
    else
        echo "fuzz: $name FAILED (reproducer in $artifacts/$name-*):" >&2
        grep -v '^#' "$log" | tail -60 >&2
        fail=1
    fi
done
exit $fail
