#!/usr/bin/env bash
# The test command: installs what the tests need (Debian 12, as root), builds relistlab twice —
# a release build and an ASan+UBSan build — and runs the whole ctest suite on each.
#   RELIST_SKIP_SANITIZE=1   skip the sanitizer pass (faster local runs)
#   RELIST_MODEL_SEEDS / RELIST_MODEL_OPS   widen the randomized model test (see tests/README.md)
set -euo pipefail
cd "$(dirname "$0")/.."

pkgs=(build-essential cmake pkg-config clang libclang-rt-14-dev
      libuv1-dev libprotobuf-c-dev protobuf-c-compiler liblmdb-dev libcmocka-dev
      libnghttp2-dev libhttp-parser-dev etcd-server etcd-client curl)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing: ${missing[*]}"
    if [ "$(id -u)" -ne 0 ]; then echo "need root to apt-get install ${missing[*]}" >&2; exit 1; fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

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
