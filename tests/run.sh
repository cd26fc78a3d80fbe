#!/usr/bin/env bash
# The test command: installs what the tests need (Debian 12, as root), builds relistlab twice —
# a release build and an ASan+UBSan build — runs the whole ctest suite on each, then fuzzes
# each libFuzzer target briefly.
#   RELIST_SKIP_SANITIZE=1   skip the sanitizer pass (faster local runs)
#   RELIST_SKIP_FUZZ=1       skip the fuzz stage (clang + libFuzzer, about a minute of fuzzing)
#   RELIST_FUZZ_SECONDS=N    total fuzzing time of that stage [60] (longer runs: tests/fuzz/README.md)
#   RELIST_MODEL_SEED(S) / RELIST_MODEL_OPS  widen the randomized model test (tests/unit/test_kv_model.c)
set -euo pipefail
cd "$(dirname "$0")/.."

. tests/deps.sh
relist_install_deps

jobs=$(nproc)
build() { # dir, extra cmake args...
    local dir=$1; shift
    cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
    cmake --build "$dir" -j "$jobs"
}

build build
(cd build && ctest --output-on-failure -j "$jobs")

if [ "${RELIST_SKIP_SANITIZE:-0}" != 1 ]; then
    build build-asan -DRELIST_SANITIZE=ON
    (cd build-asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
        ctest --output-on-failure -j "$jobs")
fi

# Third stage: libFuzzer targets (tests/fuzz) built with clang, ASan and UBSan; a short run of
# each (regression inputs replayed first). Only the fuzz targets are built in this directory.
if [ "${RELIST_SKIP_FUZZ:-0}" != 1 ]; then
    CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRELIST_FUZZ=ON >/dev/null
    cmake --build build-fuzz -j "$jobs" --target fuzz
    tests/fuzz/run.sh build-fuzz "${RELIST_FUZZ_SECONDS:-60}"
fi
