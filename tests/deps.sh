#!/usr/bin/env bash
# deps.sh — installs the Debian 12 packages relistlab builds, tests and runs with (as root), if
# any is missing. Sourced by tests/run.sh (the test command) and scenarios/run.sh (the main job).
relist_install_deps() {
    local pkgs=(build-essential cmake pkg-config clang libclang-rt-14-dev
        libuv1-dev libprotobuf-c-dev protobuf-c-compiler liblmdb-dev libcmocka-dev
        libnghttp2-dev libhttp-parser-dev etcd-server etcd-client curl chromium "$@")
    local missing=() p
    for p in "${pkgs[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    echo "installing: ${missing[*]}"
    if [ "$(id -u)" -ne 0 ]; then
        echo "need root to apt-get install ${missing[*]}" >&2
        return 1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}
