/* server.c — assembling `kvstore serve`: the engine (kv_open, with leases), the metrics
 * registry, the HTTP/1 side, the gRPC server with the KV, Watch, Lease and Maintenance.Status
 * method table, the watch hub and lease expiry (watch_service.c, lease_service.c), the writer
 * thread; and taking them down in order (Watch and LeaseKeepAlive streams end at once with
 * etcd's "server stopped", the expiry timer stops; then GOAWAY and in-flight calls, then the
 * writer, then the watch/lease handles and HTTP/1, then the hub, then LMDB).
 *
 * One process per data dir: LMDB itself allows several processes on one environment, but each
 * server keeps its revision in memory, so two servers on one dir would hand out the same
 * revisions. An exclusive flock on the directory (as etcd locks its WAL) refuses the second.
 *
 * Limits follow etcd: the gRPC receive limit is max-request-bytes + 512 KiB (bigger messages get
 * RESOURCE_EXHAUSTED from the gRPC layer); writes above max-request-bytes get etcd's own
 * INVALID_ARGUMENT "etcdserver: request is too large" (kv_service.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "srv_internal.h"

static void seterr(char *err, size_t len, const char *fmt, const char *a, const char *b) {
    if (err && len) snprintf(err, len, fmt, a, b);
}

/* ---- connections ---- */

static void on_conn_open(void *ud, grpc_conn *gc) {
    kvs_server *srv = ud;
    kvs_conn *kc = calloc(1, sizeof *kc);
    if (!kc) return; /* served without per-client accounting or parking */
    kc->srv = srv;
    kc->gc = gc;
    kc->refs = 1;
    kc->peer = kvs_peer_acquire(srv->metrics.peers, grpc_conn_peer(gc));
    grpc_conn_set_user_data(gc, kc);
    kvs_logf(srv, "connection %llu from %s", (unsigned long long)grpc_conn_id(gc),
             grpc_conn_peer(gc));
}

static void on_conn_close(void *ud, grpc_conn *gc) {
    kvs_server *srv = ud;
    kvs_conn *kc = grpc_conn_user_data(gc);
    kvs_logf(srv, "connection %llu closed", (unsigned long long)grpc_conn_id(gc));
    if (!kc) return;
    grpc_conn_set_user_data(gc, NULL);
    kc->closed = true;
    kc->gc = NULL;
    kvs_conn_unref(kc);
}

static void on_http1(void *ud, uv_tcp_t *tcp, const char *initial, size_t n) {
    kvs_server *srv = ud;
    kvs_http1_adopt(srv->http1, tcp, initial, n);
}

static int health_ok(void *ud) {
    (void)ud;
    return 1;
}

/* ---- gauges evaluated at scrape time ---- */

static double g_revision(void *ud) {
    kv_status st;
    kv_status_get(ud, &st);
    return (double)st.revision;
}

static double g_compact(void *ud) {
    kv_status st;
    kv_status_get(ud, &st);
    return st.compact_revision > 0 ? (double)st.compact_revision : -1;
}

static double g_dbsize(void *ud) {
    kv_status st;
    kv_status_get(ud, &st);
    return (double)st.db_size;
}

/* kv_set_disk_observer: writer and checkpoint threads; histograms take concurrent observes */
static void on_disk(void *ud, kv_disk_event ev, double seconds) {
    kvs_server *srv = ud;
    kvs_histogram_observe(ev == KV_DISK_WAL_FSYNC ? srv->m_wal_fsync : srv->m_backend_commit,
                          seconds);
}

/* ---- start ---- */

static const char *const method_paths[KVS_M__N] = {
    "/etcdserverpb.KV/Range",
    "/etcdserverpb.KV/Put",
    "/etcdserverpb.KV/DeleteRange",
    "/etcdserverpb.KV/Txn",
    "/etcdserverpb.KV/Compact",
    "/etcdserverpb.Maintenance/Status",
    "/etcdserverpb.Watch/Watch",
    "/etcdserverpb.Lease/LeaseGrant",
    "/etcdserverpb.Lease/LeaseRevoke",
    "/etcdserverpb.Lease/LeaseKeepAlive",
    "/etcdserverpb.Lease/LeaseTimeToLive",
    "/etcdserverpb.Lease/LeaseLeases",
};

const char *kvs_method_name(kvs_method m) {
    if (m < 0 || m >= KVS_M__N) return "other";
    if (m < KVS_M_WATCH) return kvs_method_names[m];
    return strrchr(method_paths[m], '/') + 1;
}

static const char *method_service(kvs_method m) {
    if (m == KVS_M_STATUS) return "etcdserverpb.Maintenance";
    if (m == KVS_M_WATCH) return "etcdserverpb.Watch";
    if (m >= KVS_M_LEASE_GRANT) return "etcdserverpb.Lease";
    return "etcdserverpb.KV";
}

static bool method_is_stream(kvs_method m) {
    return m == KVS_M_WATCH || m == KVS_M_LEASE_KEEPALIVE;
}

/* The method table entry of m (the KV ones are kv_service.c's). */
static void method_entry(kvs_server *srv, kvs_method m, grpc_method *gm) {
    memset(gm, 0, sizeof *gm);
    srv->mud[m] = (kvs_method_ud){KVS_TAG_METHOD, srv, m};
    gm->path = method_paths[m];
    gm->ud = &srv->mud[m];
    gm->kind = method_is_stream(m) ? GRPC_BIDI_STREAM : GRPC_UNARY;
    if (m == KVS_M_WATCH) {
        gm->on_open = kvs_watch_on_open;
        gm->on_message = kvs_watch_on_message;
        gm->on_half_close = kvs_watch_on_half_close;
        gm->on_cancel = kvs_watch_on_cancel;
        gm->on_writable = kvs_watch_on_writable;
    } else if (m == KVS_M_LEASE_KEEPALIVE) {
        gm->on_open = kvs_lease_ka_on_open;
        gm->on_message = kvs_lease_ka_on_message;
        gm->on_half_close = kvs_lease_ka_on_half_close;
        gm->on_cancel = kvs_lease_ka_on_cancel;
    } else if (m >= KVS_M_LEASE_GRANT) {
        gm->on_unary = kvs_lease_on_unary;
        gm->on_cancel = kvs_on_cancel; /* in the writer or answered at once: nothing parked */
    } else {
        gm->on_unary = kvs_on_unary;
        gm->on_cancel = kvs_on_cancel;
    }
}

static void apply_defaults(kvs_server_opts *o) {
    if (!o->host || !*o->host) o->host = "127.0.0.1";
    if (!o->max_request_bytes) o->max_request_bytes = KVS_DEFAULT_MAX_REQUEST_BYTES;
    if (!o->max_txn_ops) o->max_txn_ops = KVS_DEFAULT_MAX_TXN_OPS;
    if (!o->max_concurrent_streams) o->max_concurrent_streams = KVS_DEFAULT_MAX_STREAMS;
    if (!o->quota_backend_bytes) o->quota_backend_bytes = KVS_DEFAULT_QUOTA_BYTES;
    if (!o->conn_out_cap) o->conn_out_cap = KVS_DEFAULT_CONN_OUT_CAP;
    if (!o->max_parked_bytes) o->max_parked_bytes = KVS_DEFAULT_MAX_PARKED_BYTES;
    if (!o->compact_batch) o->compact_batch = KVS_DEFAULT_COMPACT_BATCH;
    if (!o->progress_notify_ms) o->progress_notify_ms = KVS_DEFAULT_PROGRESS_MS;
    if (!o->watch_queue_bytes) o->watch_queue_bytes = KVS_DEFAULT_WATCH_QUEUE_BYTES;
    if (!o->list_cache_bytes) o->list_cache_bytes = KVS_DEFAULT_LIST_CACHE_BYTES;
}

/* mkdir -p (etcd creates missing parents of --data-dir too). */
static int mkdirs(const char *dir) {
    char path[4096];
    if (snprintf(path, sizeof path, "%s", dir) >= (int)sizeof path) return ENAMETOOLONG;
    for (char *p = path + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(path, 0700) != 0 && errno != EEXIST) return errno;
        *p = '/';
    }
    if (mkdir(path, 0700) != 0 && errno != EEXIST) return errno;
    return 0;
}

/* Creates the directory if missing and takes the exclusive lock. Returns the fd or -1. */
static int lock_data_dir(const char *dir, char *err, size_t err_len) {
    int e = mkdirs(dir);
    if (e) {
        seterr(err, err_len, "cannot create data dir %s: %s", dir, strerror(e));
        return -1;
    }
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        seterr(err, err_len, "cannot open data dir %s: %s", dir, strerror(errno));
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        seterr(err, err_len, "data dir %s is in use by another kvstore process%s", dir,
               errno == EWOULDBLOCK ? "" : " (cannot lock it)");
        close(fd);
        return -1;
    }
    return fd;
}

static void free_partial(kvs_server *srv) {
    kvs_watch_free(srv);
    kvs_lease_free(srv);
    kvs_lcache_free(srv->lcache);
    if (srv->store) kv_close(srv->store);
    if (srv->dir_lock >= 0) close(srv->dir_lock);
    if (srv->reg) kvs_registry_free(srv->reg);
    free(srv->host);
    free(srv->data_dir);
    free(srv);
}

static void on_noop_closed(uv_handle_t *h) {
    (void)h;
}

static void on_flag(void *ud) {
    *(bool *)ud = true;
}

int kvs_server_start(uv_loop_t *loop, const kvs_server_opts *opts, kvs_server **out, char *err,
                     size_t err_len) {
    *out = NULL;
    if (!opts || !opts->data_dir || !*opts->data_dir) {
        seterr(err, err_len, "%s%s", "a data directory is required (--data-dir)", "");
        return -1;
    }
    kvs_server *srv = calloc(1, sizeof *srv);
    if (!srv) {
        seterr(err, err_len, "%s%s", "out of memory", "");
        return -1;
    }
    srv->dir_lock = -1;
    srv->loop = loop;
    srv->opts = *opts;
    apply_defaults(&srv->opts);
    srv->host = strdup(srv->opts.host);
    srv->data_dir = strdup(srv->opts.data_dir);
    if (!srv->host || !srv->data_dir) {
        seterr(err, err_len, "%s%s", "out of memory", "");
        free_partial(srv);
        return -1;
    }
    srv->opts.host = srv->host;
    srv->opts.data_dir = srv->data_dir;
    if ((srv->dir_lock = lock_data_dir(srv->data_dir, err, err_len)) < 0) {
        free_partial(srv);
        return -1;
    }

    srv->loop_thread = uv_thread_self();
    kv_options ko = {
        .map_size = srv->opts.quota_backend_bytes, .no_sync = srv->opts.no_sync, .leases = true};
    kv_err kerr;
    memset(&kerr, 0, sizeof kerr);
    if (kv_open(srv->data_dir, &ko, &srv->store, &kerr) != KV_OK) {
        seterr(err, err_len, "cannot open data dir %s: %s", srv->data_dir,
               kerr.msg[0] ? kerr.msg : kv_code_message(kerr.code));
        srv->store = NULL;
        free_partial(srv);
        return -1;
    }

    srv->reg = kvs_registry_new();
    if (!srv->reg || kvs_srv_metrics_init(&srv->metrics, srv->reg) != 0) {
        seterr(err, err_len, "%s%s", "cannot create the metrics registry", "");
        free_partial(srv);
        return -1;
    }
    for (int m = 0; m < KVS_M__N; m++) {
        if (kvs_rpc_metrics_init(&srv->metrics, method_service(m), kvs_method_name(m),
                                 method_is_stream(m) ? "bidi_stream" : "unary", &srv->rpc[m])) {
            seterr(err, err_len, "%s%s", "cannot create the metrics registry", "");
            free_partial(srv);
            return -1;
        }
    }
    static const double group_buckets[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024};
    srv->m_commit_seconds = kvs_family_only(kvs_registry_family(
        srv->reg, "relistlab_writer_commit_seconds",
        "Time of one group commit (kv_apply: apply + durable LMDB commit) on the writer thread.",
        KVS_HISTOGRAM, NULL, NULL, 0));
    /* etcd's disk histograms, same names and buckets (0.001 s doubling to ~8 s) */
    static const double disk_buckets[] = {0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064,
                                          0.128, 0.256, 0.512, 1.024, 2.048, 4.096, 8.192};
    srv->m_wal_fsync = kvs_family_only(
        kvs_registry_family(srv->reg, "etcd_disk_wal_fsync_duration_seconds",
                            "The latency distributions of fsync called by WAL.", KVS_HISTOGRAM,
                            NULL, disk_buckets, sizeof disk_buckets / sizeof disk_buckets[0]));
    srv->m_backend_commit = kvs_family_only(
        kvs_registry_family(srv->reg, "etcd_disk_backend_commit_duration_seconds",
                            "The latency distributions of commit called by backend.", KVS_HISTOGRAM,
                            NULL, disk_buckets, sizeof disk_buckets / sizeof disk_buckets[0]));
    srv->m_group_size = kvs_family_only(kvs_registry_family(
        srv->reg, "relistlab_writer_group_size",
        "Write requests applied per group commit (one fsync each).", KVS_HISTOGRAM, NULL,
        group_buckets, sizeof group_buckets / sizeof group_buckets[0]));
    srv->m_lc_hits = kvs_family_only(kvs_registry_counter(
        srv->reg, "relistlab_list_cache_hits_total",
        "LIST requests answered from the encoded response cache (no store walk).", NULL));
    srv->m_lc_misses = kvs_family_only(kvs_registry_counter(
        srv->reg, "relistlab_list_cache_misses_total",
        "LIST responses of 32 KiB or more built from the store while the response cache was on.",
        NULL));
    srv->m_lc_bytes = kvs_family_only(kvs_registry_gauge(
        srv->reg, "relistlab_list_cache_bytes",
        "Bytes held by the encoded LIST response cache (responses, keys, bookkeeping).", NULL));
    if (!srv->opts.list_cache_off && !(srv->lcache = kvs_lcache_new(srv->opts.list_cache_bytes))) {
        seterr(err, err_len, "%s%s", "out of memory", "");
        free_partial(srv);
        return -1;
    }
    kvs_series_set_fn(srv->metrics.current_revision, g_revision, srv->store);
    kvs_series_set_fn(srv->metrics.compact_revision, g_compact, srv->store);
    kvs_series_set_fn(srv->metrics.db_total_size, g_dbsize, srv->store);
    kv_set_disk_observer(srv->store, on_disk, srv); /* the store closes before the registry */

    kvs_http1_opts ho = {.metrics = srv->reg,
                         .health = health_ok,
                         .etcdserver_version = KVS_ETCD_VERSION,
                         .etcdcluster_version = KVS_ETCD_CLUSTER_VERSION,
                         .max_connections = srv->opts.max_connections};
    srv->http1 = kvs_http1_new(loop, &ho);
    if (!srv->http1) {
        seterr(err, err_len, "%s%s", "cannot create the HTTP/1 handler", "");
        free_partial(srv);
        return -1;
    }

    grpc_method methods[KVS_M__N];
    for (int m = 0; m < KVS_M__N; m++)
        method_entry(srv, (kvs_method)m, &methods[m]);
    grpc_server_opts go = {
        .max_recv_msg_size = srv->opts.max_request_bytes + KVS_GRPC_OVERHEAD_BYTES,
        .max_concurrent_streams = srv->opts.max_concurrent_streams,
        .max_connections = srv->opts.max_connections,
        .shutdown_grace_ms = srv->opts.shutdown_grace_ms,
        .handshake_timeout_ms = srv->opts.handshake_timeout_ms,
        .keepalive_interval_ms = srv->opts.keepalive_interval_ms,
        .keepalive_timeout_ms = srv->opts.keepalive_timeout_ms,
        .keepalive_min_time_ms = srv->opts.keepalive_min_time_ms,
        .on_http1 = on_http1,
        .on_conn_open = on_conn_open,
        .on_conn_close = on_conn_close,
        .ud = srv,
    };
    srv->grpc = grpc_server_new(loop, &go, methods, KVS_M__N);
    if (!srv->grpc) {
        seterr(err, err_len, "%s%s", "cannot create the gRPC server", "");
        kvs_http1_free(srv->http1, NULL, NULL);
        free_partial(srv);
        return -1;
    }
    uv_timer_init(loop, &srv->park_timer);
    srv->park_timer.data = srv;
    /* Before the writer: the hub starts at the store's revision and sees every later commit. */
    if (kvs_watch_init(srv) != 0 || kvs_lease_init(srv) != 0) {
        seterr(err, err_len, "%s%s", "cannot create the watch hub and lessor", "");
        goto fail_running;
    }
    if (kvs_writer_start(srv, &srv->writer) != 0) {
        seterr(err, err_len, "%s%s", "cannot start the writer thread", "");
        goto fail_running;
    }
    int rv = grpc_server_listen(srv->grpc, srv->host, srv->opts.port);
    if (rv != 0) {
        char addr[300];
        snprintf(addr, sizeof addr, "%s:%d", srv->host, srv->opts.port);
        seterr(err, err_len, "cannot listen on %s: %s", addr, uv_strerror(rv));
        goto fail_running;
    }
    *out = srv;
    return 0;

fail_running : {
    /* Handles exist on the loop now: take them down by running it until they are closed. */
    kvs_writer_stop(srv->writer); /* nothing was served yet: no orphans */
    srv->writer = NULL;
    bool grpc_done = false;
    grpc_server_shutdown(srv->grpc, on_flag, &grpc_done);
    kvs_http1_free(srv->http1, NULL, NULL);
    uv_close((uv_handle_t *)&srv->park_timer, on_noop_closed);
    srv->closing = 1 << 20; /* the close callbacks below must not finish a shutdown */
    kvs_watch_close(srv);
    kvs_lease_close(srv);
    while (!grpc_done)
        uv_run(loop, UV_RUN_ONCE);
    uv_run(loop, UV_RUN_NOWAIT);
    grpc_server_free(srv->grpc);
    free_partial(srv);
    return -1;
}
}

int kvs_server_port(const kvs_server *srv) {
    return grpc_server_port(srv->grpc);
}

/* ---- shutdown ---- */

void kvs_server_step_done(kvs_server *srv) {
    if (--srv->closing) return;
    kvs_watch_free(srv);
    kvs_lease_free(srv);
    kv_close(srv->store);
    srv->store = NULL;
    kvs_logf(srv, "stopped: LMDB closed");
    if (srv->done) srv->done(srv->done_ud);
}

static void on_http1_freed(void *ud) {
    kvs_server_step_done(ud);
}

static void on_park_timer_closed(uv_handle_t *h) {
    kvs_server_step_done(h->data);
}

static void on_grpc_done(void *ud) {
    kvs_server *srv = ud;
    /* Every connection is closed; the writer finishes what it holds (committed either way). */
    kvs_req *orphans = kvs_writer_stop(srv->writer);
    srv->writer = NULL;
    while (orphans) {
        kvs_req *next = orphans->next;
        if (orphans->call) /* an expiry revoke has no caller */
            kvs_req_fail(orphans, GRPC_STATUS_UNAVAILABLE, "kvstore: server is stopping");
        kvs_req_free(orphans);
        orphans = next;
    }
    /* Parked calls were cancelled with their connections; drop the park list's references. */
    while (srv->park_list) {
        kvs_conn *kc = srv->park_list;
        srv->park_list = kc->park_next;
        kc->in_park_list = false;
        kvs_conn_unref(kc);
    }
    srv->closing = 2 + 1; /* +1 until every close below is counted */
    srv->closing += kvs_watch_close(srv);
    srv->closing += kvs_lease_close(srv);
    uv_timer_stop(&srv->park_timer);
    uv_close((uv_handle_t *)&srv->park_timer, on_park_timer_closed);
    kvs_http1_free(srv->http1, on_http1_freed, srv);
    kvs_server_step_done(srv);
}

void kvs_server_shutdown(kvs_server *srv, void (*done)(void *ud), void *ud) {
    if (srv->stopping) return;
    srv->stopping = true;
    srv->done = done;
    srv->done_ud = ud;
    kvs_logf(srv, "shutting down: GOAWAY to clients, finishing in-flight calls");
    kvs_watch_shutdown_begin(srv);
    kvs_lease_shutdown_begin(srv);
    grpc_server_shutdown(srv->grpc, on_grpc_done, srv);
}

void kvs_server_free(kvs_server *srv) {
    if (!srv) return;
    if (srv->grpc) grpc_server_free(srv->grpc);
    kvs_watch_free(srv);
    kvs_lease_free(srv);
    if (srv->store) kv_close(srv->store);
    if (srv->dir_lock >= 0) close(srv->dir_lock);
    kvs_chunk_pool_free(srv);
    kvs_lcache_free(srv->lcache);
    kvs_registry_free(srv->reg);
    free(srv->host);
    free(srv->data_dir);
    free(srv);
}

void kvs_server_get_stats(const kvs_server *srv, kvs_server_stats *out) {
    memset(out, 0, sizeof *out);
    out->write_groups = atomic_load(&((kvs_server *)srv)->w_groups);
    out->writes_applied = atomic_load(&((kvs_server *)srv)->w_writes);
    out->compact_steps = atomic_load(&((kvs_server *)srv)->w_steps);
    out->parked = srv->parked_total;
    out->lists_served = srv->lists_served;
    out->list_cache_hits = srv->lc_hits;
    out->list_cache_misses = srv->lc_misses;
    kvs_lcache_stats ls;
    kvs_lcache_get_stats(srv->lcache, &ls);
    out->list_cache_bytes = ls.bytes;
}

grpc_server *kvs_server_grpc(kvs_server *srv) {
    return srv->grpc;
}
kv_store *kvs_server_store(kvs_server *srv) {
    return srv->store;
}
kvs_registry *kvs_server_registry(kvs_server *srv) {
    return srv->reg;
}
