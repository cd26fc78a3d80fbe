# shellcheck shell=bash disable=SC2034
# Shared helpers for the integration tests: start/stop a real etcd or a `kvstore serve` on
# loopback, pick free ports, wait for readiness, and clean everything up on exit.
#
# Key decisions:
# - Bash only (no python, no ss): a port is "free" when a /dev/tcp connect to it is refused;
#   a lost race with another process is caught because the server then exits early, and we
#   retry with fresh ports.
# - Every server runs under coreutils `timeout`, so even if ctest SIGKILLs this script (and the
#   EXIT trap never runs) no server outlives H_SERVER_LIFETIME seconds.
# - Readiness = `etcdctl endpoint health` succeeds (a KV Range of key "health"), which is what
#   every etcd client can do and needs nothing beyond the KV service.
# - Servers are named handles ("A", "B"): H_EP[name] is the client endpoint (host:port),
#   H_PID[name] the process, H_LOG[name] its log, H_KIND[name] etcd|kvstore, and after h_stop
#   H_EXIT[name] its exit status (137 when it had to be SIGKILLed).
#
# Source it, then call h_init once; h_init installs the EXIT trap that stops servers and
# removes the scratch directory (kept when H_KEEP=1, for debugging).

H_SERVER_LIFETIME=${H_SERVER_LIFETIME:-90}
H_READY_DEADLINE=${H_READY_DEADLINE:-10}
H_STOP_GRACE=${H_STOP_GRACE:-5}
H_ETCD_BIN=${H_ETCD_BIN:-$(command -v etcd 2>/dev/null || true)}
H_ETCDCTL_BIN=${H_ETCDCTL_BIN:-$(command -v etcdctl 2>/dev/null || true)}
export ETCDCTL_API=3

declare -A H_EP=() H_PID=() H_LOG=() H_KIND=() H_DIR=() H_EXIT=()
declare -a H_PORTS_USED=()
H_TMP=""

h_log() { printf '%s\n' "$*" >&2; }

# Exit code ctest treats as "skipped" (SKIP_RETURN_CODE 77).
h_skip() {
    h_log "SKIP: $*"
    exit 77
}

h_init() { # [scratch-name]
    local root=${RELIST_TEST_TMP:-${TMPDIR:-/tmp}}
    mkdir -p "$root"
    H_TMP=$(mktemp -d "$root/${1:-relist-it}.XXXXXX")
    trap h_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}

h_cleanup() {
    local rc=$? name
    for name in "${!H_PID[@]}"; do h_stop "$name"; done
    if [ -n "$H_TMP" ] && [ -d "$H_TMP" ]; then
        if [ "${H_KEEP:-0}" = 1 ]; then
            h_log "kept scratch dir: $H_TMP"
        else
            rm -rf "$H_TMP"
        fi
    fi
    exit "$rc"
}

# True when something accepts connections on 127.0.0.1:$1.
h_port_listening() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# h_pick_port VAR: a port that nothing listens on and that this script has not handed out
# before, taken BELOW the kernel's ephemeral range: ports in that range are also the local ends
# of outgoing connections (invisible to a connect probe), and a busy machine running many
# loopback clients makes a server's bind() there fail with "address already in use".
h_pick_port() {
    local -n _out=$1
    local p i u used lo=32768 hi base span
    read -r lo hi </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || true
    base=10000
    span=$((lo - base))
    [ "$span" -ge 1000 ] || { base=20000; span=40000; }
    for ((i = 0; i < 200; i++)); do
        p=$((base + (RANDOM * 32768 + RANDOM) % span))
        used=0
        for u in "${H_PORTS_USED[@]}"; do [ "$u" = "$p" ] && used=1; done
        [ "$used" = 1 ] && continue
        h_port_listening "$p" && continue
        H_PORTS_USED+=("$p")
        _out=$p
        return 0
    done
    h_log "no free port found"
    return 1
}

# The last lines of a server's log, indented, for failure reports.
h_log_tail() { # name [lines]
    local f=${H_LOG[$1]:-}
    [ -n "$f" ] && [ -f "$f" ] || return 0
    h_log "---- last ${2:-40} lines of $1 (${H_KIND[$1]}) log: $f"
    tail -n "${2:-40}" "$f" | sed 's/^/    | /' >&2
}

h_alive() { kill -0 "${H_PID[$1]}" 2>/dev/null; }

# Polls `endpoint health` until it succeeds, the process dies (returns 2) or the deadline
# passes (returns 1).
h_wait_ready() { # name
    local name=$1 deadline=$((SECONDS + H_READY_DEADLINE))
    while ((SECONDS < deadline)); do
        if ! h_alive "$name"; then return 2; fi
        if timeout 3 "$H_ETCDCTL_BIN" --endpoints="${H_EP[$name]}" --dial-timeout=1s \
            --command-timeout=2s endpoint health >/dev/null 2>&1; then
            # A server that lost the port race could leave us talking to someone else.
            h_alive "$name" && return 0
            return 2
        fi
        sleep 0.1
    done
    return 1
}

# Launches "$@" as server $name (kind, endpoint and log already set), retrying with new ports
# (via the launcher callback) when it exits during startup.
h_launch() { # name kind launcher
    local name=$1 kind=$2 launcher=$3 attempt rc
    H_KIND[$name]=$kind
    for attempt in 1 2 3 4 5; do
        H_DIR[$name]="$H_TMP/$name-data"
        H_LOG[$name]="$H_TMP/$name.log"
        rm -rf "${H_DIR[$name]}"
        mkdir -m 700 "${H_DIR[$name]}"
        "$launcher" "$name" || return 1
        h_wait_ready "$name"
        rc=$?
        if [ "$rc" = 0 ]; then
            h_log "started $name: $kind at ${H_EP[$name]} (pid ${H_PID[$name]})"
            return 0
        fi
        if [ "$rc" = 1 ]; then
            h_log "$name ($kind) not ready after ${H_READY_DEADLINE}s at ${H_EP[$name]}"
            h_log_tail "$name"
            h_stop "$name"
            return 1
        fi
        h_log "$name ($kind) exited during startup (attempt $attempt)"
        wait "${H_PID[$name]}" 2>/dev/null
        grep -qi "address already in use" "${H_LOG[$name]}" 2>/dev/null || break
    done
    h_log_tail "$name"
    unset "H_PID[$name]"
    return 1
}

_h_launch_etcd() { # name
    local name=$1 cport pport
    h_pick_port cport || return 1
    h_pick_port pport || return 1
    H_EP[$name]="127.0.0.1:$cport"
    timeout -k 2 "$H_SERVER_LIFETIME" "$H_ETCD_BIN" \
        --name "$name" --data-dir "${H_DIR[$name]}" \
        --listen-client-urls "http://127.0.0.1:$cport" --advertise-client-urls "http://127.0.0.1:$cport" \
        --listen-peer-urls "http://127.0.0.1:$pport" --initial-advertise-peer-urls "http://127.0.0.1:$pport" \
        --initial-cluster "$name=http://127.0.0.1:$pport" --initial-cluster-state new \
        --initial-cluster-token "relist-$name-$$" \
        --logger=zap --log-outputs=stderr --log-level=error \
        </dev/null >"${H_LOG[$name]}" 2>&1 &
    H_PID[$name]=$!
}

_h_launch_kvstore() { # name
    local name=$1 port
    h_pick_port port || return 1
    H_EP[$name]="127.0.0.1:$port"
    timeout -k 2 "$H_SERVER_LIFETIME" "$H_KVSTORE_BIN_CUR" serve \
        --listen "127.0.0.1:$port" --data-dir "${H_DIR[$name]}" \
        </dev/null >"${H_LOG[$name]}" 2>&1 &
    H_PID[$name]=$!
}

h_start_etcd() { # name [etcd-binary]
    H_ETCD_BIN=${2:-$H_ETCD_BIN}
    h_launch "$1" etcd _h_launch_etcd
}

h_start_kvstore() { # name kvstore-binary
    H_KVSTORE_BIN_CUR=$2
    h_launch "$1" kvstore _h_launch_kvstore
}

# Starts a server from a spec: "etcd", "etcd:/path/to/etcd" or "kvstore:/path/to/kvstore".
h_start_spec() { # name spec
    local name=$1 spec=$2
    case $spec in
    etcd) h_start_etcd "$name" ;;
    etcd:*) h_start_etcd "$name" "${spec#etcd:}" ;;
    kvstore:*) h_start_kvstore "$name" "${spec#kvstore:}" ;;
    *)
        h_log "bad server spec '$spec' (etcd | etcd:PATH | kvstore:PATH)"
        return 1
        ;;
    esac
}

# Skips the test (exit 77) when a spec needs a binary that is not installed.
h_require_spec() { # spec
    local spec=$1 bin
    case $spec in
    etcd) bin=$H_ETCD_BIN ;;
    etcd:* | kvstore:*) bin=${spec#*:} ;;
    *) return 0 ;;
    esac
    if [ -z "$bin" ] || [ ! -x "$bin" ]; then h_skip "server binary for '$spec' not found"; fi
}

h_require_etcdctl() {
    if [ -z "$H_ETCDCTL_BIN" ] || [ ! -x "$H_ETCDCTL_BIN" ]; then h_skip "etcdctl not found"; fi
}

# SIGTERM, wait up to H_STOP_GRACE seconds, then SIGKILL. Idempotent.
h_stop() { # name
    local name=$1 pid=${H_PID[$1]:-} i killed=0
    [ -n "$pid" ] || return 0
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null
        for ((i = 0; i < H_STOP_GRACE * 20; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.05
        done
        if kill -0 "$pid" 2>/dev/null; then
            h_log "$name did not stop within ${H_STOP_GRACE}s: SIGKILL"
            kill -KILL "$pid" 2>/dev/null
            killed=1
        fi
    fi
    wait "$pid" 2>/dev/null
    H_EXIT[$name]=$?
    [ "$killed" = 1 ] && H_EXIT[$name]=137
    unset "H_PID[$name]"
}
