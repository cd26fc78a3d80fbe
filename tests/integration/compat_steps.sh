# shellcheck shell=bash disable=SC2034
# The scripted etcdctl 3.4 session that etcdctl_compat.sh runs against two fresh servers.
#
# Each `step NAME CMD...` is one small named check: its normalized stdout, stderr and exit
# status are diffed between the two servers. `expect STRING` additionally requires the previous
# step's output to contain STRING on both sides (it pins etcd's exact texts, and proves the
# harness really exercised the path even when both sides agree).
#
# Steps run in order on one server and the state carries over, so revisions are part of what is
# compared: both servers start at revision 1 and the comments track the revision each write
# makes. Groups run in COMPAT_GROUPS order; compaction stays last because it destroys history.
# To extend (watch, lease): add a steps_<group> function here and name it in COMPAT_GROUPS.
#
# Data under /r/ is chosen so that every --sort-by target gives a different order and no ties
# (etcd sorts with Go's unstable sort; ties would test Go's sort, not the server):
#   key    create  mod  version  value
#   /r/a      3     7      3     pear
#   /r/b      2     5      2     apple
#   /r/c      4     4      1     melon
#   /r/d      8    11      4     fig

COMPAT_GROUPS=(basics put_get sort put_variants delete txn errors status watch lease compaction
    watch_compacted)

# put_seq N KEY: a value of N numbered lines (multi-frame over HTTP/2 for large N), from stdin.
put_seq() { seq 1 "$1" | ctl put "$2"; }

steps_basics() {
    step health ctl endpoint health
    expect "is healthy"
    step status_initial_json ctl endpoint status -w json
    expect '"revision":1,'
    step get_empty_store ctl get --prefix /
    step get_empty_store_json ctl get --prefix / -w json
}

steps_put_get() {
    step put_r_b1 ctl put /r/b banana # rev 2
    expect OK
    step put_r_a1 ctl put /r/a grape # rev 3
    step put_r_c1 ctl put /r/c melon # rev 4
    step put_r_b2 ctl put /r/b apple # rev 5
    step put_r_a2_prev_kv ctl put --prev-kv /r/a kiwi # rev 6
    expect grape
    step put_r_a3_json ctl put /r/a pear -w json # rev 7
    expect '"revision":7'
    step put_r_d1_fields ctl put /r/d fig1 -w fields # rev 8
    step put_r_d2 ctl put /r/d fig2                 # rev 9
    step put_r_d3 ctl put /r/d fig3                 # rev 10
    step put_r_d4 ctl put /r/d fig                  # rev 11
    step put_r0_outside_prefix ctl put /r0 edge     # rev 12: sorts after /r/..., not in /r/
    step put_s_x ctl put /s/x other                 # rev 13
    step put_dash_value ctl put -- /v/dash -starts-with-dash # rev 14
    step put_empty_value ctl put /v/empty ""        # rev 15
    step put_spaces ctl put "/v/sp ace" "hello world" # rev 16
    step put_value_from_stdin ctl_in "from stdin" put /v/stdin # rev 17
    step put_big_value put_seq 60000 /v/big         # rev 18: ~400 KB value

    step get_single ctl get /r/a
    expect pear
    step get_single_json ctl get /r/a -w json
    step get_single_fields ctl get /r/a -w fields
    step get_missing ctl get /nope
    step get_missing_json ctl get /nope -w json
    step get_prefix ctl get --prefix /r/
    step get_prefix_json ctl get --prefix /r/ -w json
    step get_prefix_no_slash ctl get --prefix /r
    expect edge
    step get_range ctl get /r/a /r/c
    step get_from_key_keys_only ctl get --from-key /r/c --keys-only
    step get_all_keys ctl get --from-key "" --keys-only
    step get_all_keys_json ctl get --from-key "" --keys-only -w json
    step get_limit ctl get --prefix /r/ --limit 2
    step get_limit_json ctl get --prefix /r/ --limit 2 -w json
    expect '"more":true'
    step get_limit_larger_than_range_json ctl get --prefix /r/ --limit 10 -w json
    step get_keys_only ctl get --prefix /r/ --keys-only
    step get_print_value_only ctl get --prefix /r/ --print-value-only
    step get_hex ctl get --prefix /v/ --hex --keys-only
    step get_odd_values ctl get --from-key /v/d --print-value-only
    step get_big_value_cksum ctl_sum get /v/big --print-value-only
    step get_rev_history ctl get --prefix /r/ --rev 4
    step get_rev_history_json ctl get /r/a --rev 6 -w json
    expect '"version":2'
    step get_rev_1_json ctl get /r/a --rev 1 -w json
    step get_rev_0 ctl get /r/a --rev 0
    step get_serializable_json ctl get /r/a --consistency=s -w json
}

steps_sort() {
    local target order
    for target in KEY CREATE MODIFY VALUE VERSION; do
        for order in ASCEND DESCEND; do
            step "get_sort_${target,,}_${order,,}" \
                ctl get --prefix /r/ --sort-by="$target" --order="$order"
        done
    done
    step get_order_descend_only ctl get --prefix /r/ --order=DESCEND --keys-only
    # etcd sorts the whole range first and then applies the limit.
    step get_sort_modify_desc_limit_json \
        ctl get --prefix /r/ --sort-by=MODIFY --order=DESCEND --limit 2 -w json
    step get_sort_value_limit ctl get --prefix /r --sort-by=VALUE --limit 3
}

steps_put_variants() {
    step put_ignore_value_existing ctl put --ignore-value /r/c # rev 19: value kept, version 2
    step get_after_ignore_value_json ctl get /r/c -w json
    step put_ignore_value_missing_key ctl put --ignore-value /nokey
    expect "etcdserver: key not found"
    step put_ignore_lease_missing_key ctl put --ignore-lease /nokey v
    expect "etcdserver: key not found"
    step put_ignore_lease_existing ctl put --ignore-lease /r/c melon2 # rev 20
    step put_unknown_lease ctl put --lease=1234abcd /l/x v
    expect "etcdserver: requested lease not found"
    step put_prev_kv_new_key_json ctl put --prev-kv /n/new v -w json # rev 21
}

steps_delete() {
    step del_missing ctl del /nope
    expect 0
    step del_missing_json ctl del /nope -w json
    step del_single_prev_kv ctl del --prev-kv /r/c # rev 22
    expect melon2
    step del_range ctl del /r/a /r/b                 # rev 23: deletes /r/a only
    step del_prefix_json ctl del --prefix /s/ -w json # rev 24
    step del_from_key ctl del --from-key /v/s          # rev 25: "/v/sp ace", "/v/stdin"
    step get_after_deletes ctl get --from-key "" --keys-only
    step get_deleted_at_old_rev ctl get --prefix /r/ --rev 21
    step del_prefix_prev_kv_json ctl del --prefix /r --prev-kv -w json # rev 26: /r/b /r/d /r0
    step get_prefix_after_delete_json ctl get --prefix /r -w json
}

steps_txn() {
    step txn_setup ctl put /t/k v1 # rev 27
    step txn_success ctl_txn 'value("/t/k") = "v1"

put /t/k v2
get /t/k

put /t/k bad
' # rev 28
    expect SUCCESS
    step txn_failure ctl_txn 'value("/t/k") = "v1"

put /t/k bad

put /t/fail yes
get /t/k
' # rev 29
    expect FAILURE
    step txn_multi_compare_json ctl_txn 'mod("/t/k") > "0"
create("/t/k") < "1000"
version("/t/k") = "2"

del --prev-kv /t/fail
get --prefix /t/

' -w json # rev 30
    step txn_missing_key_version_is_zero ctl_txn 'version("/t/none") = "0"
create("/t/none") = "0"

put /t/new x

' # rev 31
    expect SUCCESS
    step txn_missing_key_value_never_matches ctl_txn 'value("/t/none") != "q"

get /t/k

get /t/none
'
    expect FAILURE
    step txn_failure_fields ctl_txn 'value("/t/none") != "q"

get /t/k

get /t/new
' -w fields
    step txn_no_compare ctl_txn '
get --prefix /t/
put -- /t/d -x
del --prefix /t/zzz

' # rev 32
    step txn_failure_json ctl_txn 'value("/t/k") = "nope"

put /t/x 1

get /t/k --rev 28
del /t/never

' -w json
    step txn_many_puts txn_puts 100 /m/key- # rev 33: one revision for 100 keys
    expect SUCCESS
    step get_many_limit_json ctl get --prefix /m/ --limit 3 -w json
    expect '"count":100'
    step get_many_keys_cksum ctl_sum get --prefix /m/ -w json
}

steps_errors() {
    step get_empty_key ctl get ""
    expect "etcdserver: key is not provided"
    step put_empty_key ctl put "" v
    step txn_duplicate_put ctl_txn '
put /t/dup 1
put /t/dup 2

'
    expect "etcdserver: duplicate key given in txn request"
    step txn_put_inside_deleted_range ctl_txn '
put /t/dup 1
del --prefix /t/

'
    step txn_too_many_ops txn_puts 129 /m/over-
    expect "etcdserver: too many operations in txn request"
    step get_after_errors_json ctl get --prefix /t/ -w json
}

steps_status() {
    step status_json ctl endpoint status -w json
    step status_fields ctl endpoint status -w fields
    step status_simple ctl endpoint status
    step health_again ctl endpoint health
}

steps_compaction() {
    step compact_5 ctl compaction 5
    expect "compacted revision 5"
    step get_below_compacted ctl get /r/a --rev 4
    expect "etcdserver: mvcc: required revision has been compacted"
    step get_at_compacted_rev ctl get --prefix /r/ --rev 5
    expect apple
    step compact_again_lower ctl compaction 3
    expect "etcdserver: mvcc: required revision has been compacted"
    step compact_again_same ctl compaction 5
    step compact_future ctl compaction 100000
    expect "etcdserver: mvcc: required revision is a future revision"
    step get_future_rev ctl get /r/a --rev 100000
    expect "etcdserver: mvcc: required revision is a future revision"
    step compact_physical_12 ctl compaction --physical 12
    step get_below_physical ctl get --prefix / --rev 11
    step get_at_physical_json ctl get --prefix /r --rev 12 -w json
    step get_all_after_compaction_json ctl get --from-key "" --keys-only -w json
    step status_after_compaction_json ctl endpoint status -w json
}

# ---- watch and lease ------------------------------------------------------------------------
# Watches are streaming commands: they run under ctl_for for a fixed time. A live watch gets
# WATCH_SETTLE seconds to connect and create its watcher before the writes start (the output
# would otherwise depend on timing); catch-up watches use --rev, which makes them independent
# of timing altogether. Revisions of the writes are tracked in the comments as above.
WATCH_SETTLE=${WATCH_SETTLE:-1}

# watch_while SECS WATCH_ARGS... -- CMD...: `etcdctl watch WATCH_ARGS` for SECS seconds; CMD
# (writes, output discarded) runs WATCH_SETTLE seconds after the watch started.
watch_while() {
    local secs=$1 wpid
    local -a wargs=()
    shift
    while [ $# -gt 0 ] && [ "$1" != "--" ]; do
        wargs+=("$1")
        shift
    done
    shift
    ctl_for "$secs" watch "${wargs[@]}" &
    wpid=$!
    sleep "$WATCH_SETTLE"
    "$@" >/dev/null 2>&1
    wait "$wpid"
}

# The store's current revision (from a Range header), for --rev arguments.
cur_rev() { ctl get / -w json | sed -nE 's/.*"revision":([0-9]+).*/\1/p'; }

w_live_writes() { # revs: 34 35 36(outside /w/) 37
    ctl put /w/a 1 && ctl put /w/b 2 && ctl put /x/out 3 && ctl del /w/a
}
w_key_writes() { ctl put /w/b 3 && ctl put /w/c 4; } # revs 38 39

steps_watch() {
    step watch_prefix_live watch_while 3 --prefix /w/ -- w_live_writes
    expect "DELETE"
    step watch_rev_history ctl_for 1.5 watch --prefix /w/ --rev 34
    step watch_rev_history_json ctl_for 1.5 watch --prefix /w/ --rev 34 -w json
    expect '"revision":37'
    step watch_prev_kv_history ctl_for 1.5 watch --prefix /w/ --rev 34 --prev-kv
    step watch_single_key_live watch_while 3 /w/b --prev-kv -- w_key_writes
    expect "3"
    step watch_range_history ctl_for 1.5 watch /w/a /w/c --rev 30
    step watch_all_keys_from_rev ctl_for 1.5 watch --prefix "" --rev 36
    expect "/x/out"
}

# Lease ids are random (normalized to <LEASE>); the id of the last grant is kept in LEASE_ID.
LEASE_ID=""
lease_grant() { # TTL: prints etcdctl's output, remembers the id
    local out rc
    out=$(ctl lease grant "$1")
    rc=$?
    printf '%s\n' "$out"
    LEASE_ID=$(printf '%s\n' "$out" | sed -nE 's/^lease ([0-9a-f]+) granted.*/\1/p')
    return "$rc"
}
l_revoke() { ctl lease revoke "$LEASE_ID"; }
# sleep_get SECS ARGS: etcdctl get after SECS seconds (lease expiry).
sleep_get() {
    sleep "$1"
    shift
    ctl get "$@"
}

# `lease timetolive --keys`, with the attached keys sorted: etcd lists them in Go map order,
# which differs from run to run.
ttl_keys_sorted() {
    local out rc line keys
    out=$(ctl lease timetolive --keys "$1" 2>&1)
    rc=$?
    while IFS= read -r line; do
        if [[ $line =~ ^(.*attached\ keys\(\[)([^]]*)(\]\).*)$ ]]; then
            keys=$(tr ' ' '\n' <<<"${BASH_REMATCH[2]}" | sort | paste -sd' ' -)
            line="${BASH_REMATCH[1]}${keys}${BASH_REMATCH[3]}"
        fi
        printf '%s\n' "$line"
    done <<<"$out"
    return $rc
}

steps_lease() {
    step lease_grant lease_grant 600
    expect "granted with TTL(600s)"
    step lease_put_a ctl put --lease="$LEASE_ID" /l/a va # rev 40
    step lease_put_b ctl put --lease="$LEASE_ID" /l/b vb # rev 41
    step lease_get_json ctl get /l/a -w json
    expect '"lease":<LEASE>'
    step lease_timetolive ctl lease timetolive "$LEASE_ID"
    expect "remaining(<~600>s)"
    step lease_timetolive_keys ttl_keys_sorted "$LEASE_ID"
    expect "attached keys([/l/a /l/b])"
    step lease_list ctl lease list
    expect "found 1 leases"
    step lease_keep_alive_once ctl lease keep-alive --once "$LEASE_ID"
    expect "keepalived with TTL(600)"
    step lease_revoke_watched watch_while 3 --prefix /l/ -- l_revoke # rev 42: both keys
    expect "DELETE"
    step lease_get_after_revoke ctl get --prefix /l/
    step lease_revoke_again ctl lease revoke "$LEASE_ID"
    expect "etcdserver: requested lease not found"
    step lease_timetolive_revoked ctl lease timetolive "$LEASE_ID"
    expect "already expired"
    # keep-alive of an unknown lease answers TTL 0; etcdctl reports not-found and exits 2.
    STEP_OK_EXITS=2 step lease_keep_alive_revoked ctl lease keep-alive --once "$LEASE_ID"
    expect "etcdserver: requested lease not found"
    step lease_list_empty ctl lease list
    step lease_grant_below_min lease_grant 1 # etcd raises it to its minimum, 2 s
    expect "TTL(2s)"
    step lease_put_expiring ctl put --lease="$LEASE_ID" /e/k v # rev 43
    step lease_expired_key_gone sleep_get 3.5 --prefix /e/ # rev 44: the expiry's delete
    step lease_expiry_watched ctl_for 1.5 watch --prefix /e/ --rev 43
    expect "DELETE"
    step lease_list_after_expiry ctl lease list
    step lease_get_revision_json ctl get /nope -w json
    expect '"revision":44'
}

steps_watch_compacted() {
    # etcd answers created, then canceled with compact_revision; etcdctl prints the error and
    # "watch is canceled by the server", exit 5 (ExitInterrupted).
    STEP_OK_EXITS=5 step watch_compacted_rev ctl_for 3 watch /w/b --rev 2
    expect "watch was canceled (etcdserver: mvcc: required revision has been compacted)"
    step watch_at_compacted_rev ctl_for 1.5 watch --prefix /r/ --rev 12
}

# txn_puts N PREFIX: one txn of N puts PREFIX000..; etcd allows 128 ops per txn by default.
txn_puts() {
    local i body=""
    for ((i = 0; i < $1; i++)); do printf -v body '%s\nput %s%03d v%d' "$body" "$2" "$i" "$i"; done
    ctl_txn "$body"
}
