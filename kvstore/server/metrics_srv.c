/* metrics_srv.c — the families `kvstore serve` exports, with the names and help texts of etcd 3.4
 * and go-grpc-prometheus (so dashboards and scripts written for etcd read ours unchanged), plus
 * relistlab's own Range split (list vs get). Built only on the public registry API. */
#include "metrics.h"

#include <string.h>

static const char *const grpc_code_names[KVS_GRPC_CODES] = {
    "OK",       "Canceled",       "Unknown",          "InvalidArgument",   "DeadlineExceeded",
    "NotFound", "AlreadyExists",  "PermissionDenied", "ResourceExhausted", "FailedPrecondition",
    "Aborted",  "OutOfRange",     "Unimplemented",    "Internal",          "Unavailable",
    "DataLoss", "Unauthenticated"};

const char *kvs_grpc_code_name(int code) {
    return code >= 0 && code < KVS_GRPC_CODES ? grpc_code_names[code] : "Unknown";
}

int kvs_srv_metrics_init(kvs_srv_metrics *m, kvs_registry *r) {
    static const char *const rpc[] = {"grpc_method", "grpc_service", "grpc_type", NULL};
    static const char *const handled[] = {"grpc_code", "grpc_method", "grpc_service", "grpc_type",
                                          NULL};
    static const char *const kind[] = {"kind", NULL};
    memset(m, 0, sizeof *m);
    m->reg = r;
    m->grpc_started = kvs_registry_counter(r, "grpc_server_started_total",
                                           "Total number of RPCs started on the server.", rpc);
    m->grpc_handled = kvs_registry_counter(
        r, "grpc_server_handled_total",
        "Total number of RPCs completed on the server, regardless of success or failure.", handled);
    m->grpc_msg_received =
        kvs_registry_counter(r, "grpc_server_msg_received_total",
                             "Total number of RPC stream messages received on the server.", rpc);
    m->grpc_msg_sent =
        kvs_registry_counter(r, "grpc_server_msg_sent_total",
                             "Total number of gRPC stream messages sent by the server.", rpc);
    m->grpc_handling_seconds = kvs_registry_family(
        r, "grpc_server_handling_seconds",
        "Histogram of response latency (seconds) of gRPC that had been application-level handled "
        "by the server.",
        KVS_HISTOGRAM, rpc, NULL, 0);
    m->mvcc_range = kvs_family_only(kvs_registry_counter(
        r, "etcd_mvcc_range_total", "Total number of ranges seen by this member.", NULL));
    m->mvcc_put = kvs_family_only(kvs_registry_counter(
        r, "etcd_mvcc_put_total", "Total number of puts seen by this member.", NULL));
    m->mvcc_delete = kvs_family_only(kvs_registry_counter(
        r, "etcd_mvcc_delete_total", "Total number of deletes seen by this member.", NULL));
    m->mvcc_txn = kvs_family_only(kvs_registry_counter(
        r, "etcd_mvcc_txn_total", "Total number of txns seen by this member.", NULL));
    m->current_revision = kvs_family_only(kvs_registry_gauge(
        r, "etcd_debugging_mvcc_current_revision", "The current revision of store.", NULL));
    m->compact_revision =
        kvs_family_only(kvs_registry_gauge(r, "etcd_debugging_mvcc_compact_revision",
                                           "The revision of the last compaction in store.", NULL));
    m->db_total_size = kvs_family_only(kvs_registry_gauge(
        r, "etcd_mvcc_db_total_size_in_bytes",
        "Total size of the underlying database physically allocated in bytes.", NULL));
    /* Finer than the default at the bottom: a namespace LIST of a few dozen keys is served in
     * tens of microseconds, and a storm is made of exactly those. */
    static const double range_buckets[] = {
        0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
        0.025,   0.05,     0.1,     0.25,   0.5,     1,      2.5,   5,      10};
    kvs_family *range_s = kvs_registry_family(
        r, "relistlab_range_seconds",
        "Latency of Range requests (seconds) by kind: list (range_end set) or get.", KVS_HISTOGRAM,
        kind, range_buckets, sizeof range_buckets / sizeof range_buckets[0]);
    kvs_family *range_n =
        kvs_registry_counter(r, "relistlab_range_requests_total",
                             "Range requests by kind: list (range_end set) or get.", kind);
    static const char *const list[] = {"list"}, *const get[] = {"get"};
    m->range_list_seconds = kvs_family_series(range_s, list);
    m->range_get_seconds = kvs_family_series(range_s, get);
    m->range_list_total = kvs_family_series(range_n, list);
    m->range_get_total = kvs_family_series(range_n, get);
    m->peers = kvs_peer_table_new(r, KVS_PEERS_DEFAULT);
    if (!m->grpc_started || !m->grpc_handled || !m->grpc_msg_received || !m->grpc_msg_sent ||
        !m->grpc_handling_seconds || !m->mvcc_range || !m->mvcc_put || !m->mvcc_delete ||
        !m->mvcc_txn || !m->current_revision || !m->compact_revision || !m->db_total_size ||
        !m->range_list_seconds || !m->range_get_seconds || !m->range_list_total ||
        !m->range_get_total || !m->peers)
        return -1;
    kvs_gauge_set(m->compact_revision, -1); /* etcd prints -1 until the first compaction */
    return 0;
}

int kvs_rpc_metrics_init(const kvs_srv_metrics *m, const char *service, const char *method,
                         const char *grpc_type, kvs_rpc_metrics *out) {
    const char *v[] = {method, service, grpc_type};
    memset(out, 0, sizeof *out);
    out->started = kvs_family_series(m->grpc_started, v);
    out->msg_received = kvs_family_series(m->grpc_msg_received, v);
    out->msg_sent = kvs_family_series(m->grpc_msg_sent, v);
    out->handling_seconds = kvs_family_series(m->grpc_handling_seconds, v);
    int rc = out->started && out->msg_received && out->msg_sent && out->handling_seconds ? 0 : -1;
    for (int c = 0; c < KVS_GRPC_CODES; c++) {
        const char *hv[] = {grpc_code_names[c], method, service, grpc_type};
        if (!(out->handled[c] = kvs_family_series(m->grpc_handled, hv))) rc = -1;
    }
    return rc;
}

void kvs_rpc_metrics_done(const kvs_rpc_metrics *rm, int code, double seconds) {
    if (!rm) return;
    kvs_counter_inc(rm->handled[code >= 0 && code < KVS_GRPC_CODES ? code : 2]);
    kvs_histogram_observe(rm->handling_seconds, seconds);
}

void kvs_srv_observe_range(const kvs_srv_metrics *m, int is_list, double seconds) {
    if (!m) return;
    kvs_counter_inc(is_list ? m->range_list_total : m->range_get_total);
    kvs_histogram_observe(is_list ? m->range_list_seconds : m->range_get_seconds, seconds);
}
