#!/usr/bin/env bash
# The test command: installs what the tests need (Debian 12, as root), builds relistlab twice —
# a release build and an ASan+UBSan build — and runs the whole ctest suite on each.
#   RELIST_SKIP_SANITIZE=1   skip the sanitizer pass (faster local runs)
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
